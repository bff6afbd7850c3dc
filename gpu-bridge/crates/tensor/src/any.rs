//! A backend chosen at run time: the host opens one device per process and gives every
//! component instance an engine on it.

use crate::backend::{Backend, Binary, DeviceResult, Reduce, Unary, Window};
use crate::cpu::Cpu;
use std::sync::Arc;

/// Which device to compute on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Choice {
    Cpu,
    Wgpu,
    Cuda,
    /// The best GPU the machine has (CUDA, then a hardware wgpu adapter; a software adapter
    /// does not count: the CPU backend is faster), else the CPU.
    #[default]
    Auto,
}

impl std::str::FromStr for Choice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(Choice::Cpu),
            "wgpu" => Ok(Choice::Wgpu),
            "cuda" => Ok(Choice::Cuda),
            "auto" => Ok(Choice::Auto),
            other => Err(format!(
                "unknown tensor backend `{other}`: cpu, wgpu, cuda or auto"
            )),
        }
    }
}

impl std::fmt::Display for Choice {
    /// As `--tensor-backend` takes it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Choice::Cpu => "cpu",
            Choice::Wgpu => "wgpu",
            Choice::Cuda => "cuda",
            Choice::Auto => "auto",
        })
    }
}

/// The device of a process, shared by its engines.
#[derive(Clone)]
pub enum AnyBackend {
    Cpu(Cpu),
    #[cfg(feature = "wgpu")]
    Wgpu(Arc<crate::Wgpu>),
    #[cfg(feature = "cuda")]
    Cuda(Arc<crate::Cuda>),
}

/// A buffer on whichever device.
#[derive(Clone)]
pub enum AnyBuf {
    Cpu(Arc<Vec<f32>>),
    #[cfg(feature = "wgpu")]
    Wgpu(crate::wgpu_backend::WgpuBuf),
    #[cfg(feature = "cuda")]
    Cuda(crate::cuda_backend::CudaBuf),
}

impl AnyBackend {
    /// Opens the device `choice` names; a requested device that is absent is an error, never
    /// a silent fallback.
    pub fn open(choice: Choice) -> Result<Self, String> {
        match choice {
            Choice::Cpu => Ok(AnyBackend::Cpu(Cpu)),
            Choice::Wgpu => open_wgpu(),
            Choice::Cuda => open_cuda(),
            Choice::Auto => Ok(auto()),
        }
    }
}

#[cfg(feature = "wgpu")]
fn open_wgpu() -> Result<AnyBackend, String> {
    crate::Wgpu::new()
        .map(|w| AnyBackend::Wgpu(Arc::new(w)))
        .map_err(|e| format!("tensor backend wgpu: {e}"))
}

#[cfg(not(feature = "wgpu"))]
fn open_wgpu() -> Result<AnyBackend, String> {
    Err("tensor backend wgpu: this build has no wgpu support (feature `wgpu`)".into())
}

#[cfg(feature = "cuda")]
fn open_cuda() -> Result<AnyBackend, String> {
    crate::Cuda::new()
        .map(|c| AnyBackend::Cuda(Arc::new(c)))
        .map_err(|e| format!("tensor backend cuda: {e}"))
}

#[cfg(not(feature = "cuda"))]
fn open_cuda() -> Result<AnyBackend, String> {
    Err("tensor backend cuda: this build has no CUDA support (feature `cuda`)".into())
}

/// The best device present: CUDA, then a hardware wgpu adapter, else the CPU.
fn auto() -> AnyBackend {
    if !gpu_likely() {
        return AnyBackend::Cpu(Cpu);
    }
    #[cfg(feature = "cuda")]
    if let Ok(c) = crate::Cuda::new() {
        return AnyBackend::Cuda(Arc::new(c));
    }
    #[cfg(feature = "wgpu")]
    if let Ok(w) = crate::Wgpu::new() {
        if w.is_hardware() {
            return AnyBackend::Wgpu(Arc::new(w));
        }
    }
    AnyBackend::Cpu(Cpu)
}

/// Whether this machine may have a GPU, without opening a graphics API: on Linux, a DRM render
/// node or an NVIDIA device file; elsewhere (Metal, DX12) assume so. Opening Vulkan just to
/// find a software rasteriser costs a fraction of a second and prints driver warnings on every
/// command, which `auto` should not do on GPU-less machines.
fn gpu_likely() -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    let has = |dir: &str, prefix: &str| {
        std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
            })
            .unwrap_or(false)
    };
    has("/dev/dri", "renderD") || has("/dev", "nvidia")
}

/// `$body` on whichever device `$self` is, with `$buf` the accessor of that device's buffers;
/// `on!` wraps the buffer it gives as an [`AnyBuf`], `each!` returns the result as it is.
macro_rules! each {
    ($self:expr, |$d:ident, $buf:ident| $body:expr) => {
        match $self {
            AnyBackend::Cpu($d) => {
                let $buf = cpu_buf;
                $body
            }
            #[cfg(feature = "wgpu")]
            AnyBackend::Wgpu($d) => {
                let $buf = wgpu_buf;
                $body
            }
            #[cfg(feature = "cuda")]
            AnyBackend::Cuda($d) => {
                let $buf = cuda_buf;
                $body
            }
        }
    };
}

macro_rules! on {
    ($self:expr, |$d:ident, $buf:ident| $body:expr) => {
        match $self {
            AnyBackend::Cpu($d) => {
                let $buf = cpu_buf;
                $body.map(AnyBuf::Cpu)
            }
            #[cfg(feature = "wgpu")]
            AnyBackend::Wgpu($d) => {
                let $buf = wgpu_buf;
                $body.map(AnyBuf::Wgpu)
            }
            #[cfg(feature = "cuda")]
            AnyBackend::Cuda($d) => {
                let $buf = cuda_buf;
                $body.map(AnyBuf::Cuda)
            }
        }
    };
}

fn cpu_buf(b: &AnyBuf) -> &Arc<Vec<f32>> {
    match b {
        AnyBuf::Cpu(v) => v,
        #[allow(unreachable_patterns)]
        _ => unreachable!("a GPU buffer given to the CPU backend"),
    }
}

#[cfg(feature = "wgpu")]
fn wgpu_buf(b: &AnyBuf) -> &crate::wgpu_backend::WgpuBuf {
    match b {
        AnyBuf::Wgpu(v) => v,
        _ => unreachable!("a buffer of another device given to the wgpu backend"),
    }
}

#[cfg(feature = "cuda")]
fn cuda_buf(b: &AnyBuf) -> &crate::cuda_backend::CudaBuf {
    match b {
        AnyBuf::Cuda(v) => v,
        _ => unreachable!("a buffer of another device given to the CUDA backend"),
    }
}

impl Backend for AnyBackend {
    type Buf = AnyBuf;

    fn name(&self) -> &'static str {
        each!(self, |d, _b| d.name())
    }

    fn max_elements(&self) -> usize {
        each!(self, |d, _b| d.max_elements())
    }

    fn upload(&self, data: &[f32]) -> DeviceResult<AnyBuf> {
        on!(self, |d, _b| d.upload(data))
    }

    fn download(&self, buf: &AnyBuf) -> DeviceResult<Vec<f32>> {
        each!(self, |d, b| d.download(b(buf)))
    }

    fn full(&self, len: usize, value: f32) -> DeviceResult<AnyBuf> {
        on!(self, |d, _b| d.full(len, value))
    }

    fn unary(&self, op: Unary, x: &AnyBuf) -> DeviceResult<AnyBuf> {
        on!(self, |d, b| d.unary(op, b(x)))
    }

    fn binary(
        &self,
        op: Binary,
        a: &AnyBuf,
        sa: &[usize],
        bb: &AnyBuf,
        sb: &[usize],
        out: &[usize],
    ) -> DeviceResult<AnyBuf> {
        on!(self, |d, b| d.binary(op, b(a), sa, b(bb), sb, out))
    }

    fn affine(&self, x: &AnyBuf, alpha: f32, beta: f32) -> DeviceResult<AnyBuf> {
        on!(self, |d, b| d.affine(b(x), alpha, beta))
    }

    fn matmul(
        &self,
        a: &AnyBuf,
        bb: &AnyBuf,
        batch: usize,
        m: usize,
        k: usize,
        n: usize,
        ta: bool,
        tb: bool,
    ) -> DeviceResult<AnyBuf> {
        on!(self, |d, b| d.matmul(b(a), b(bb), batch, m, k, n, ta, tb))
    }

    fn reduce(&self, op: Reduce, x: &AnyBuf, shape: &[usize], axis: usize) -> DeviceResult<AnyBuf> {
        on!(self, |d, b| d.reduce(op, b(x), shape, axis))
    }

    fn transpose(&self, x: &AnyBuf, shape: &[usize], a0: usize, a1: usize) -> DeviceResult<AnyBuf> {
        on!(self, |d, b| d.transpose(b(x), shape, a0, a1))
    }

    fn slice(
        &self,
        x: &AnyBuf,
        shape: &[usize],
        axis: usize,
        start: usize,
        len: usize,
    ) -> DeviceResult<AnyBuf> {
        on!(self, |d, b| d.slice(b(x), shape, axis, start, len))
    }

    fn pad(
        &self,
        x: &AnyBuf,
        shape: &[usize],
        axis: usize,
        start: usize,
        total: usize,
    ) -> DeviceResult<AnyBuf> {
        on!(self, |d, b| d.pad(b(x), shape, axis, start, total))
    }

    fn gather_rows(&self, x: &AnyBuf, cols: usize, indices: &[usize]) -> DeviceResult<AnyBuf> {
        on!(self, |d, b| d.gather_rows(b(x), cols, indices))
    }

    fn scatter_add_rows(
        &self,
        g: &AnyBuf,
        rows: usize,
        cols: usize,
        indices: &[usize],
    ) -> DeviceResult<AnyBuf> {
        on!(self, |d, b| d.scatter_add_rows(b(g), rows, cols, indices))
    }

    fn unfold(&self, x: &AnyBuf, win: Window) -> DeviceResult<AnyBuf> {
        on!(self, |d, b| d.unfold(b(x), win))
    }

    fn fold(&self, cols: &AnyBuf, win: Window) -> DeviceResult<AnyBuf> {
        on!(self, |d, b| d.fold(b(cols), win))
    }
}
