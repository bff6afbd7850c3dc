//! The wgpu backend: the primitives as WGSL compute kernels on any Vulkan, Metal or DX12 device
//! (Mesa's lavapipe in CI). Kernels are deliberately plain, one thread per output element; the
//! tiled matmul and fused kernels come with the GPU figures.
//!
//! wgpu reports errors to a handler that panics unless they are caught: every call on the
//! device runs inside error scopes ([`Wgpu::scoped`]), so an allocation the device refuses or an
//! op it rejects is a [`DeviceError`] for the caller, never a panic of the host.

use crate::backend::{DeviceError, DeviceResult};
use crate::kernels::{Kernel, KernelDevice};
use std::sync::Arc;
use wgpu::util::DeviceExt;

/// Why no wgpu device could be had.
#[derive(Debug, thiserror::Error)]
pub enum WgpuError {
    #[error("no wgpu adapter (Vulkan, Metal or DX12 device) is present: {0}")]
    NoAdapter(String),
    #[error("the wgpu device could not be opened: {0}")]
    Device(String),
}

const WORKGROUP: u32 = 64;

const HEADER: &str = r#"
@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * 64u; }
"#;

const UNARY: &str = r#"
fn gelu(x: f32) -> f32 { return 0.5 * x * (1.0 + tanh(0.7978846 * (x + 0.044715 * x * x * x))); }
fn gelu_grad(x: f32) -> f32 {
    let t = tanh(0.7978846 * (x + 0.044715 * x * x * x));
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * 0.7978846 * (1.0 + 3.0 * 0.044715 * x * x);
}
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p[0]) { return; }
    let x = a[i];
    var y: f32;
    switch p[1] {
        case 0u: { y = -x; }
        case 1u: { y = max(x, 0.0); }
        case 2u: { y = select(0.0, 1.0, x > 0.0); }
        case 3u: { y = gelu(x); }
        case 4u: { y = gelu_grad(x); }
        case 5u: { y = tanh(x); }
        case 6u: { y = 1.0 / (1.0 + exp(-x)); }
        case 7u: { y = exp(x); }
        case 8u: { y = log(x); }
        case 9u: { y = 1.0 / x; }
        case 10u: { y = sqrt(x); }
        default: { y = x * x; }
    }
    out[i] = y;
}
"#;

/// p: n, op, rank, out_shape[rank], a_strides[rank], b_strides[rank]
const BINARY: &str = r#"
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p[0]) { return; }
    let rank = p[2];
    var rest = i;
    var ia = 0u;
    var ib = 0u;
    for (var d = 0u; d < rank; d++) {
        let axis = rank - 1u - d;
        let dim = p[3u + axis];
        let c = rest % dim;
        rest = rest / dim;
        ia += c * p[3u + rank + axis];
        ib += c * p[3u + 2u * rank + axis];
    }
    let x = a[ia];
    let y = b[ib];
    var r: f32;
    switch p[1] {
        case 0u: { r = x + y; }
        case 1u: { r = x - y; }
        case 2u: { r = x * y; }
        case 3u: { r = x / y; }
        default: { r = select(0.0, 1.0, x == y); }
    }
    out[i] = r;
}
"#;

/// p: n, alpha bits, beta bits
const AFFINE: &str = r#"
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p[0]) { return; }
    out[i] = a[i] * bitcast<f32>(p[1]) + bitcast<f32>(p[2]);
}
"#;

/// p: batch, m, k, n, a_cs, a_rs, b_cs, b_rs
const MATMUL: &str = r#"
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    let m = p[1]; let k = p[2]; let n = p[3];
    if (i >= p[0] * m * n) { return; }
    let z = i / (m * n);
    let row = (i / n) % m;
    let col = i % n;
    let abase = z * m * k;
    let bbase = z * k * n;
    var acc = 0.0;
    for (var q = 0u; q < k; q++) {
        acc += a[abase + row * p[5] + q * p[4]] * b[bbase + q * p[7] + col * p[6]];
    }
    out[i] = acc;
}
"#;

/// p: outer, len, inner, op (0 sum, 1 max)
const REDUCE: &str = r#"
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    let len = p[1]; let inner = p[2];
    if (i >= p[0] * inner) { return; }
    let o = i / inner;
    let c = i % inner;
    var acc = select(0.0, -3.4028235e38, p[3] == 1u);
    for (var l = 0u; l < len; l++) {
        let v = a[(o * len + l) * inner + c];
        if (p[3] == 1u) { acc = max(acc, v); } else { acc += v; }
    }
    out[i] = acc;
}
"#;

/// Gather with strides: p: n, rank, src_base, shape[rank], src_strides[rank]
const STRIDED_READ: &str = r#"
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p[0]) { return; }
    let rank = p[1];
    var rest = i;
    var src = p[2];
    for (var d = 0u; d < rank; d++) {
        let axis = rank - 1u - d;
        let dim = p[3u + axis];
        src += (rest % dim) * p[3u + rank + axis];
        rest = rest / dim;
    }
    out[i] = a[src];
}
"#;

/// Scatter with strides into zeros: p: n, rank, dst_base, shape[rank], dst_strides[rank]
const STRIDED_WRITE: &str = r#"
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p[0]) { return; }
    let rank = p[1];
    var rest = i;
    var dst = p[2];
    for (var d = 0u; d < rank; d++) {
        let axis = rank - 1u - d;
        let dim = p[3u + axis];
        dst += (rest % dim) * p[3u + rank + axis];
        rest = rest / dim;
    }
    out[dst] = a[i];
}
"#;

/// p: n_out, cols, indices...
const GATHER: &str = r#"
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p[0]) { return; }
    let cols = p[1];
    out[i] = a[p[2u + i / cols] * cols + i % cols];
}
"#;

/// p: rows * cols, cols, n_indices, indices...
const SCATTER_ADD: &str = r#"
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p[0]) { return; }
    let cols = p[1];
    let row = i / cols;
    let col = i % cols;
    var acc = 0.0;
    for (var r = 0u; r < p[2]; r++) {
        if (p[3u + r] == row) { acc += a[r * cols + col]; }
    }
    out[i] = acc;
}
"#;

/// p: total, n, c, h, w, kh, kw, stride, pad, oh, ow
const UNFOLD: &str = r#"
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p[0]) { return; }
    let c = p[2]; let h = p[3]; let w = p[4]; let kh = p[5]; let kw = p[6];
    let stride = p[7]; let pad = p[8]; let oh = p[9]; let ow = p[10];
    let taps = c * kh * kw;
    let row = i / taps;
    let q = i % taps;
    let ch = q / (kh * kw);
    let ky = (q / kw) % kh;
    let kx = q % kw;
    let img = row / (oh * ow);
    let oy = (row / ow) % oh;
    let ox = row % ow;
    let y = i32(oy * stride + ky) - i32(pad);
    let x = i32(ox * stride + kx) - i32(pad);
    if (y < 0 || x < 0 || y >= i32(h) || x >= i32(w)) { out[i] = 0.0; return; }
    out[i] = a[((img * c + ch) * h + u32(y)) * w + u32(x)];
}
"#;

/// p: total, n, c, h, w, kh, kw, stride, pad, oh, ow
const FOLD: &str = r#"
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p[0]) { return; }
    let c = p[2]; let h = p[3]; let w = p[4]; let kh = p[5]; let kw = p[6];
    let stride = p[7]; let pad = p[8]; let oh = p[9]; let ow = p[10];
    let x = i % w;
    let y = (i / w) % h;
    let ch = (i / (w * h)) % c;
    let img = i / (w * h * c);
    let taps = c * kh * kw;
    var acc = 0.0;
    for (var ky = 0u; ky < kh; ky++) {
        let ty = i32(y + pad) - i32(ky);
        if (ty < 0 || ty % i32(stride) != 0) { continue; }
        let oy = u32(ty) / stride;
        if (oy >= oh) { continue; }
        for (var kx = 0u; kx < kw; kx++) {
            let tx = i32(x + pad) - i32(kx);
            if (tx < 0 || tx % i32(stride) != 0) { continue; }
            let ox = u32(tx) / stride;
            if (ox >= ow) { continue; }
            let row = (img * oh + oy) * ow + ox;
            acc += a[row * taps + (ch * kh + ky) * kw + kx];
        }
    }
    out[i] = acc;
}
"#;

/// Each kernel's WGSL body, in [`Kernel`] order.
const KERNELS: [(Kernel, &str); 11] = [
    (Kernel::Unary, UNARY),
    (Kernel::Binary, BINARY),
    (Kernel::Affine, AFFINE),
    (Kernel::MatMul, MATMUL),
    (Kernel::Reduce, REDUCE),
    (Kernel::StridedRead, STRIDED_READ),
    (Kernel::StridedWrite, STRIDED_WRITE),
    (Kernel::Gather, GATHER),
    (Kernel::ScatterAdd, SCATTER_ADD),
    (Kernel::Unfold, UNFOLD),
    (Kernel::Fold, FOLD),
];

/// A wgpu device and the compiled kernels.
pub struct Wgpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    layout: wgpu::BindGroupLayout,
    pipelines: Vec<wgpu::ComputePipeline>,
    adapter_name: String,
    device_type: wgpu::DeviceType,
}

/// A buffer on the device (f32 elements).
pub type WgpuBuf = Arc<wgpu::Buffer>;

impl Wgpu {
    /// Opens the best wgpu adapter present (a GPU before a software one).
    pub fn new() -> Result<Self, WgpuError> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        }))
        .map_err(|e| WgpuError::NoAdapter(e.to_string()))?;
        let info = adapter.get_info();
        let (adapter_name, device_type) = (info.name, info.device_type);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("weft-tensor"),
            required_limits: adapter.limits(),
            ..Default::default()
        }))
        .map_err(|e| WgpuError::Device(e.to_string()))?;
        let entry = |binding: u32, read_only: bool| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("weft-tensor"),
            entries: &[
                entry(0, true),
                entry(1, true),
                entry(2, true),
                entry(3, false),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("weft-tensor"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let scope = ErrorScopes::push(&device);
        let pipelines = KERNELS
            .iter()
            .map(|(_, body)| {
                let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: None,
                    source: wgpu::ShaderSource::Wgsl(format!("{HEADER}{body}").into()),
                });
                device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: None,
                    layout: Some(&pipeline_layout),
                    module: &module,
                    entry_point: Some("main"),
                    compilation_options: Default::default(),
                    cache: None,
                })
            })
            .collect();
        scope
            .pop()
            .map_err(|e| WgpuError::Device(format!("building the kernels: {e}")))?;
        Ok(Wgpu {
            device,
            queue,
            layout,
            pipelines,
            adapter_name,
            device_type,
        })
    }

    /// The adapter's name (e.g. `llvmpipe` for lavapipe).
    pub fn adapter(&self) -> &str {
        &self.adapter_name
    }

    /// Whether the adapter is a real GPU, not a software rasteriser.
    pub fn is_hardware(&self) -> bool {
        matches!(
            self.device_type,
            wgpu::DeviceType::DiscreteGpu | wgpu::DeviceType::IntegratedGpu
        )
    }

    /// Runs `f` on the device with its errors caught: what the device refuses is returned as a
    /// [`DeviceError`] (with `what` was being done), not handed to wgpu's panicking handler.
    fn scoped<T>(&self, what: &str, f: impl FnOnce() -> DeviceResult<T>) -> DeviceResult<T> {
        let scope = ErrorScopes::push(&self.device);
        let out = f();
        scope.pop().map_err(|e| e.context(what))?;
        out
    }

    fn buffer(&self, len: usize) -> wgpu::Buffer {
        // Zero-initialised by wgpu; at least one element (empty bindings are invalid).
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: (len.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    fn words(&self, data: &[u32]) -> wgpu::Buffer {
        let data = if data.is_empty() { &[0u32][..] } else { data };
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: bytemuck::cast_slice(data),
                usage: wgpu::BufferUsages::STORAGE,
            })
    }

    fn launch(
        &self,
        kernel: Kernel,
        params: &[u32],
        a: &wgpu::Buffer,
        b: Option<&wgpu::Buffer>,
        out_len: usize,
        threads: usize,
    ) -> WgpuBuf {
        let out = self.buffer(out_len);
        let params = self.words(params);
        let bind = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: params.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: a.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: b.unwrap_or(a).as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: out.as_entire_binding(),
                },
            ],
        });
        let groups = (threads as u32).div_ceil(WORKGROUP).max(1);
        let (x, y) = (groups.min(65_535), groups.div_ceil(65_535));
        let mut encoder = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&self.pipelines[kernel as usize]);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(x, y, 1);
        }
        self.queue.submit([encoder.finish()]);
        Arc::new(out)
    }
}

impl KernelDevice for Wgpu {
    type Buf = WgpuBuf;

    fn name(&self) -> &'static str {
        "wgpu"
    }

    fn max_elements(&self) -> usize {
        let limits = self.device.limits();
        (limits
            .max_buffer_size
            .min(limits.max_storage_buffer_binding_size)
            / 4) as usize
    }

    fn len(&self, buf: &WgpuBuf) -> usize {
        (buf.size() / 4) as usize
    }

    fn upload(&self, data: &[f32]) -> DeviceResult<WgpuBuf> {
        self.scoped("uploading", || {
            let buf = self.buffer(data.len());
            if !data.is_empty() {
                self.queue.write_buffer(&buf, 0, bytemuck::cast_slice(data));
            }
            Ok(Arc::new(buf))
        })
    }

    fn download(&self, buf: &WgpuBuf) -> DeviceResult<Vec<f32>> {
        let staging = self.scoped("downloading", || {
            let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size: buf.size(),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut encoder = self.device.create_command_encoder(&Default::default());
            encoder.copy_buffer_to_buffer(buf, 0, &staging, 0, buf.size());
            self.queue.submit([encoder.finish()]);
            Ok(staging)
        })?;
        self.read_mapped(&staging)
    }

    fn run(
        &self,
        kernel: Kernel,
        params: &[u32],
        a: &WgpuBuf,
        b: Option<&WgpuBuf>,
        out_len: usize,
        threads: usize,
    ) -> DeviceResult<WgpuBuf> {
        self.scoped(&format!("running {kernel:?}"), || {
            Ok(self.launch(kernel, params, a, b.map(|b| &**b), out_len, threads))
        })
    }
}

impl Wgpu {
    /// Maps `staging` (once the copy into it is done), reads it and unmaps it.
    fn read_mapped(&self, staging: &wgpu::Buffer) -> DeviceResult<Vec<f32>> {
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            DeviceError::Failed(format!("wgpu: downloading: {what}: {e}"))
        };
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| failed("waiting for the device", &e))?;
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(failed("mapping", &e)),
            Err(e) => return Err(failed("mapping", &e)),
        }
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| failed("reading the mapping", &e))?;
        let out = bytemuck::cast_slice::<u8, f32>(&view).to_vec();
        drop(view);
        staging.unmap();
        Ok(out)
    }
}

/// The three error scopes (out of memory, validation, internal) around some device work.
struct ErrorScopes([wgpu::ErrorScopeGuard; 3]);

impl ErrorScopes {
    fn push(device: &wgpu::Device) -> Self {
        ErrorScopes([
            device.push_error_scope(wgpu::ErrorFilter::OutOfMemory),
            device.push_error_scope(wgpu::ErrorFilter::Validation),
            device.push_error_scope(wgpu::ErrorFilter::Internal),
        ])
    }

    /// The first error caught, if any (scopes pop innermost first).
    fn pop(self) -> Result<(), ScopeError> {
        let mut first = None;
        for guard in self.0.into_iter().rev() {
            let caught = pollster::block_on(guard.pop());
            first = first.or(caught);
        }
        match first {
            None => Ok(()),
            Some(e) => Err(ScopeError(e)),
        }
    }
}

/// An error a scope caught.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ScopeError(wgpu::Error);

impl ScopeError {
    fn context(self, what: &str) -> DeviceError {
        let detail = format!("wgpu: {what}: {}", self.0);
        match self.0 {
            wgpu::Error::OutOfMemory { .. } => DeviceError::OutOfMemory(detail),
            _ => DeviceError::Failed(detail),
        }
    }
}
