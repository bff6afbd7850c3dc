//! The CUDA backend: the same eleven kernels as the wgpu backend ([`crate::kernels`]), in CUDA C
//! compiled at run time with NVRTC, and matmul on cuBLAS. Everything is loaded at run time
//! (cudarc's dynamic loading): the build needs no CUDA toolkit, and a machine without the
//! driver gets [`CudaError::NoDriver`] when the backend is asked for, not a crash. Once open,
//! a failed allocation, copy or launch is a [`DeviceError`] for the caller, never a panic.

use crate::backend::{DeviceError, DeviceResult};
use crate::kernels::{Kernel, KernelDevice};
use cudarc::cublas::result::CublasError;
use cudarc::cublas::sys::{cublasOperation_t, cublasStatus_t};
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig, StridedBatchedConfig};
use cudarc::driver::sys::CUresult;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DriverError, LaunchConfig, PushKernelArg,
};
use std::sync::Arc;

/// Why no CUDA device could be had.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    #[error("no CUDA driver (libcuda) is present on this machine")]
    NoDriver,
    #[error("no NVRTC (libnvrtc, the CUDA runtime compiler) is present to build the kernels")]
    NoCompiler,
    #[error("the CUDA device could not be opened: {0}")]
    Device(String),
    #[error("the CUDA kernels did not compile: {0}")]
    Compile(String),
}

/// The kernels, one thread per output element (`p` as documented on [`Kernel`]).
pub const SOURCE: &str = r#"
#define INDEX unsigned i = blockIdx.x * blockDim.x + threadIdx.x
#define ARGS const unsigned* p, const float* a, const float* b, float* out

__device__ float gelu(float x) { return 0.5f * x * (1.0f + tanhf(0.7978846f * (x + 0.044715f * x * x * x))); }
__device__ float gelu_grad(float x) {
    float t = tanhf(0.7978846f * (x + 0.044715f * x * x * x));
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * 0.7978846f * (1.0f + 3.0f * 0.044715f * x * x);
}

extern "C" __global__ void k_unary(ARGS) {
    INDEX; if (i >= p[0]) return;
    float x = a[i], y;
    switch (p[1]) {
        case 0: y = -x; break;
        case 1: y = fmaxf(x, 0.0f); break;
        case 2: y = x > 0.0f ? 1.0f : 0.0f; break;
        case 3: y = gelu(x); break;
        case 4: y = gelu_grad(x); break;
        case 5: y = tanhf(x); break;
        case 6: y = 1.0f / (1.0f + expf(-x)); break;
        case 7: y = expf(x); break;
        case 8: y = logf(x); break;
        case 9: y = 1.0f / x; break;
        case 10: y = sqrtf(x); break;
        default: y = x * x; break;
    }
    out[i] = y;
}

extern "C" __global__ void k_binary(ARGS) {
    INDEX; if (i >= p[0]) return;
    unsigned rank = p[2], rest = i, ia = 0, ib = 0;
    for (unsigned d = 0; d < rank; d++) {
        unsigned axis = rank - 1 - d, dim = p[3 + axis], c = rest % dim;
        rest /= dim;
        ia += c * p[3 + rank + axis];
        ib += c * p[3 + 2 * rank + axis];
    }
    float x = a[ia], y = b[ib], r;
    switch (p[1]) {
        case 0: r = x + y; break;
        case 1: r = x - y; break;
        case 2: r = x * y; break;
        case 3: r = x / y; break;
        default: r = x == y ? 1.0f : 0.0f; break;
    }
    out[i] = r;
}

extern "C" __global__ void k_affine(ARGS) {
    INDEX; if (i >= p[0]) return;
    out[i] = a[i] * __uint_as_float(p[1]) + __uint_as_float(p[2]);
}

extern "C" __global__ void k_matmul(ARGS) {
    INDEX;
    unsigned m = p[1], k = p[2], n = p[3];
    if (i >= p[0] * m * n) return;
    unsigned z = i / (m * n), row = (i / n) % m, col = i % n;
    const float* az = a + z * m * k;
    const float* bz = b + z * k * n;
    float acc = 0.0f;
    for (unsigned q = 0; q < k; q++) acc += az[row * p[5] + q * p[4]] * bz[q * p[7] + col * p[6]];
    out[i] = acc;
}

extern "C" __global__ void k_reduce(ARGS) {
    INDEX;
    unsigned len = p[1], inner = p[2];
    if (i >= p[0] * inner) return;
    unsigned o = i / inner, c = i % inner;
    float acc = p[3] == 1 ? -3.4028235e38f : 0.0f;
    for (unsigned l = 0; l < len; l++) {
        float v = a[(o * len + l) * inner + c];
        acc = p[3] == 1 ? fmaxf(acc, v) : acc + v;
    }
    out[i] = acc;
}

extern "C" __global__ void k_strided_read(ARGS) {
    INDEX; if (i >= p[0]) return;
    unsigned rank = p[1], rest = i, src = p[2];
    for (unsigned d = 0; d < rank; d++) {
        unsigned axis = rank - 1 - d, dim = p[3 + axis];
        src += (rest % dim) * p[3 + rank + axis];
        rest /= dim;
    }
    out[i] = a[src];
}

extern "C" __global__ void k_strided_write(ARGS) {
    INDEX; if (i >= p[0]) return;
    unsigned rank = p[1], rest = i, dst = p[2];
    for (unsigned d = 0; d < rank; d++) {
        unsigned axis = rank - 1 - d, dim = p[3 + axis];
        dst += (rest % dim) * p[3 + rank + axis];
        rest /= dim;
    }
    out[dst] = a[i];
}

extern "C" __global__ void k_gather(ARGS) {
    INDEX; if (i >= p[0]) return;
    unsigned cols = p[1];
    out[i] = a[p[2 + i / cols] * cols + i % cols];
}

extern "C" __global__ void k_scatter_add(ARGS) {
    INDEX; if (i >= p[0]) return;
    unsigned cols = p[1], row = i / cols, col = i % cols;
    float acc = 0.0f;
    for (unsigned r = 0; r < p[2]; r++) if (p[3 + r] == row) acc += a[r * cols + col];
    out[i] = acc;
}

extern "C" __global__ void k_unfold(ARGS) {
    INDEX; if (i >= p[0]) return;
    unsigned c = p[2], h = p[3], w = p[4], kh = p[5], kw = p[6], stride = p[7], pad = p[8], oh = p[9], ow = p[10];
    unsigned taps = c * kh * kw, row = i / taps, q = i % taps;
    unsigned ch = q / (kh * kw), ky = (q / kw) % kh, kx = q % kw;
    unsigned img = row / (oh * ow), oy = (row / ow) % oh, ox = row % ow;
    int y = (int)(oy * stride + ky) - (int)pad, x = (int)(ox * stride + kx) - (int)pad;
    out[i] = (y < 0 || x < 0 || y >= (int)h || x >= (int)w) ? 0.0f : a[((img * c + ch) * h + y) * w + x];
}

extern "C" __global__ void k_fold(ARGS) {
    INDEX; if (i >= p[0]) return;
    unsigned c = p[2], h = p[3], w = p[4], kh = p[5], kw = p[6], stride = p[7], pad = p[8], oh = p[9], ow = p[10];
    unsigned x = i % w, y = (i / w) % h, ch = (i / (w * h)) % c, img = i / (w * h * c);
    unsigned taps = c * kh * kw;
    float acc = 0.0f;
    for (unsigned ky = 0; ky < kh; ky++) {
        int ty = (int)(y + pad) - (int)ky;
        if (ty < 0 || ty % (int)stride != 0) continue;
        unsigned oy = ty / stride;
        if (oy >= oh) continue;
        for (unsigned kx = 0; kx < kw; kx++) {
            int tx = (int)(x + pad) - (int)kx;
            if (tx < 0 || tx % (int)stride != 0) continue;
            unsigned ox = tx / stride;
            if (ox >= ow) continue;
            unsigned row = (img * oh + oy) * ow + ox;
            acc += a[row * taps + (ch * kh + ky) * kw + kx];
        }
    }
    out[i] = acc;
}
"#;

/// Each [`Kernel`]'s function in [`SOURCE`], in [`Kernel`] order.
pub const FUNCTIONS: [(Kernel, &str); 11] = [
    (Kernel::Unary, "k_unary"),
    (Kernel::Binary, "k_binary"),
    (Kernel::Affine, "k_affine"),
    (Kernel::MatMul, "k_matmul"),
    (Kernel::Reduce, "k_reduce"),
    (Kernel::StridedRead, "k_strided_read"),
    (Kernel::StridedWrite, "k_strided_write"),
    (Kernel::Gather, "k_gather"),
    (Kernel::ScatterAdd, "k_scatter_add"),
    (Kernel::Unfold, "k_unfold"),
    (Kernel::Fold, "k_fold"),
];

/// Compiles [`SOURCE`] to PTX: what opening the device does first, and what a machine with
/// NVRTC but no GPU can check.
pub fn compile() -> Result<cudarc::nvrtc::Ptx, CudaError> {
    // SAFETY: only asks the dynamic loader whether the library can be found.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(CudaError::NoCompiler);
    }
    cudarc::nvrtc::compile_ptx(SOURCE).map_err(|e| CudaError::Compile(format!("{e:?}")))
}

/// A CUDA device (the first), its stream, kernels and cuBLAS handle.
pub struct Cuda {
    stream: Arc<CudaStream>,
    functions: Vec<CudaFunction>,
    blas: CudaBlas,
    device_name: String,
}

/// A buffer on the device (f32 elements).
pub type CudaBuf = Arc<CudaSlice<f32>>;

impl Cuda {
    /// Opens the first CUDA device and builds the kernels.
    pub fn new() -> Result<Self, CudaError> {
        // SAFETY: only asks the dynamic loader whether the library can be found;
        // `CudaContext::new` panics without it.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(CudaError::NoDriver);
        }
        let ptx = compile()?;
        let ctx = CudaContext::new(0).map_err(|e| CudaError::Device(format!("{e:?}")))?;
        let device_name = ctx.name().unwrap_or_else(|_| "cuda".into());
        let module = ctx
            .load_module(ptx)
            .map_err(|e| CudaError::Device(format!("loading the kernels: {e:?}")))?;
        let functions = FUNCTIONS
            .iter()
            .map(|(_, name)| module.load_function(name))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CudaError::Device(format!("{e:?}")))?;
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone())
            .map_err(|e| CudaError::Device(format!("cuBLAS: {e:?}")))?;
        Ok(Cuda {
            stream,
            functions,
            blas,
            device_name,
        })
    }

    /// The device's name (e.g. `NVIDIA H100 80GB HBM3`).
    pub fn device(&self) -> &str {
        &self.device_name
    }

    fn zeros(&self, len: usize) -> DeviceResult<CudaSlice<f32>> {
        self.stream
            .alloc_zeros::<f32>(len.max(1))
            .map_err(|e| driver(&format!("allocating {} bytes", len.max(1) * 4), e))
    }
}

/// A driver error as the device's: out of memory when the driver says so, else a failure.
fn driver(what: &str, e: DriverError) -> DeviceError {
    let detail = format!("cuda: {what}: {e:?}");
    if e.0 == CUresult::CUDA_ERROR_OUT_OF_MEMORY {
        DeviceError::OutOfMemory(detail)
    } else {
        DeviceError::Failed(detail)
    }
}

/// A cuBLAS error as the device's, likewise.
fn cublas(e: CublasError) -> DeviceError {
    let detail = format!("cuda: cuBLAS sgemm: {e:?}");
    if e.0 == cublasStatus_t::CUBLAS_STATUS_ALLOC_FAILED {
        DeviceError::OutOfMemory(detail)
    } else {
        DeviceError::Failed(detail)
    }
}

impl KernelDevice for Cuda {
    type Buf = CudaBuf;

    fn name(&self) -> &'static str {
        "cuda"
    }

    fn max_elements(&self) -> usize {
        // The kernels index with 32-bit integers.
        u32::MAX as usize
    }

    fn len(&self, buf: &CudaBuf) -> usize {
        buf.len()
    }

    fn upload(&self, data: &[f32]) -> DeviceResult<CudaBuf> {
        if data.is_empty() {
            return Ok(Arc::new(self.zeros(0)?));
        }
        let buf = self.stream.clone_htod(data);
        Ok(Arc::new(
            buf.map_err(|e| driver("copying to the device", e))?,
        ))
    }

    fn download(&self, buf: &CudaBuf) -> DeviceResult<Vec<f32>> {
        self.stream
            .clone_dtoh(&**buf)
            .map_err(|e| driver("copying from the device", e))
    }

    fn run(
        &self,
        kernel: Kernel,
        params: &[u32],
        a: &CudaBuf,
        b: Option<&CudaBuf>,
        out_len: usize,
        threads: usize,
    ) -> DeviceResult<CudaBuf> {
        let params = if params.is_empty() {
            &[0u32][..]
        } else {
            params
        };
        let params = self
            .stream
            .clone_htod(params)
            .map_err(|e| driver("copying kernel parameters", e))?;
        let mut out = self.zeros(out_len)?;
        let b = b.unwrap_or(a);
        let cfg = LaunchConfig::for_num_elems(threads.max(1) as u32);
        let mut launch = self.stream.launch_builder(&self.functions[kernel as usize]);
        launch.arg(&params).arg(&**a).arg(&**b).arg(&mut out);
        // SAFETY: every kernel reads `p` and the `a`/`b` elements its parameters name, which the
        // callers in `kernels` size from the same shapes, and writes `out` below `out_len`.
        unsafe { launch.launch(cfg) }.map_err(|e| driver(&format!("launching {kernel:?}"), e))?;
        Ok(Arc::new(out))
    }

    /// Row-major `C = op(A)·op(B)` as cuBLAS's column-major `Cᵀ = op(B)ᵀ·op(A)ᵀ`: the same
    /// buffers, operands swapped.
    fn vendor_matmul(
        &self,
        a: &CudaBuf,
        b: &CudaBuf,
        batch: usize,
        m: usize,
        k: usize,
        n: usize,
        trans_a: bool,
        trans_b: bool,
    ) -> DeviceResult<Option<CudaBuf>> {
        let op = |t: bool| {
            if t {
                cublasOperation_t::CUBLAS_OP_T
            } else {
                cublasOperation_t::CUBLAS_OP_N
            }
        };
        let mut c = self.zeros(batch * m * n)?;
        let cfg = StridedBatchedConfig {
            gemm: GemmConfig {
                transa: op(trans_b),
                transb: op(trans_a),
                m: n as i32,
                n: m as i32,
                k: k as i32,
                alpha: 1.0f32,
                lda: if trans_b { k } else { n } as i32,
                ldb: if trans_a { m } else { k } as i32,
                beta: 0.0f32,
                ldc: n as i32,
            },
            batch_size: batch as i32,
            stride_a: (k * n) as i64,
            stride_b: (m * k) as i64,
            stride_c: (m * n) as i64,
        };
        // SAFETY: the strides and leading dimensions above describe `batch` row-major
        // matrices of exactly the buffers' sizes.
        unsafe { self.blas.gemm_strided_batched(cfg, &**b, &**a, &mut c) }.map_err(cublas)?;
        Ok(Some(Arc::new(c)))
    }
}
