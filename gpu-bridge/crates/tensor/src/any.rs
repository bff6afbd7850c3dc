//! A backend chosen at run time: the host opens one device per process and gives every
//! component instance an engine on it.

use crate::backend::{Backend, Binary, Reduce, Unary, Window};
use crate::cpu::Cpu;
use std::sync::Arc;

/// Which device to compute on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Choice {
    Cpu,
    Wgpu,
    /// A GPU through wgpu when the machine has one (a software adapter does not count: the CPU
    /// backend is faster), else the CPU.
    #[default]
    Auto,
}

impl std::str::FromStr for Choice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(Choice::Cpu),
            "wgpu" => Ok(Choice::Wgpu),
            "auto" => Ok(Choice::Auto),
            "cuda" => {
                Err("the CUDA backend is not part of this build yet; use cpu, wgpu or auto".into())
            }
            other => Err(format!(
                "unknown tensor backend `{other}`: cpu, wgpu or auto"
            )),
        }
    }
}

/// The device of a process, shared by its engines.
#[derive(Clone)]
pub enum AnyBackend {
    Cpu(Cpu),
    #[cfg(feature = "wgpu")]
    Wgpu(Arc<crate::Wgpu>),
}

/// A buffer on whichever device.
#[derive(Clone)]
pub enum AnyBuf {
    Cpu(Arc<Vec<f32>>),
    #[cfg(feature = "wgpu")]
    Wgpu(crate::wgpu_backend::WgpuBuf),
}

impl AnyBackend {
    /// Opens the device `choice` names; a requested device that is absent is an error, never
    /// a silent fallback.
    pub fn open(choice: Choice) -> Result<Self, String> {
        match choice {
            Choice::Cpu => Ok(AnyBackend::Cpu(Cpu)),
            #[cfg(feature = "wgpu")]
            Choice::Wgpu => crate::Wgpu::new()
                .map(|w| AnyBackend::Wgpu(Arc::new(w)))
                .map_err(|e| format!("tensor backend wgpu: {e}")),
            #[cfg(not(feature = "wgpu"))]
            Choice::Wgpu => {
                Err("tensor backend wgpu: this build has no wgpu support (feature `wgpu`)".into())
            }
            #[cfg(feature = "wgpu")]
            Choice::Auto if gpu_likely() => Ok(match crate::Wgpu::new() {
                Ok(w) if w.is_hardware() => AnyBackend::Wgpu(Arc::new(w)),
                _ => AnyBackend::Cpu(Cpu),
            }),
            #[cfg(feature = "wgpu")]
            Choice::Auto => Ok(AnyBackend::Cpu(Cpu)),
            #[cfg(not(feature = "wgpu"))]
            Choice::Auto => Ok(AnyBackend::Cpu(Cpu)),
        }
    }
}

/// Whether this machine may have a GPU, without opening a graphics API: on Linux, a DRM render
/// node or an NVIDIA device file; elsewhere (Metal, DX12) assume so. Opening Vulkan just to
/// find a software rasteriser costs a fraction of a second and prints driver warnings on every
/// command, which `auto` should not do on GPU-less machines.
#[cfg(feature = "wgpu")]
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

macro_rules! on {
    ($self:expr, $b:ident => $cpu:expr, $w:ident => $gpu:expr) => {
        match $self {
            AnyBackend::Cpu($b) => AnyBuf::Cpu($cpu),
            #[cfg(feature = "wgpu")]
            AnyBackend::Wgpu($w) => AnyBuf::Wgpu($gpu),
        }
    };
}

fn cpu(b: &AnyBuf) -> &Arc<Vec<f32>> {
    match b {
        AnyBuf::Cpu(v) => v,
        #[cfg(feature = "wgpu")]
        AnyBuf::Wgpu(_) => unreachable!("a wgpu buffer given to the CPU backend"),
    }
}

#[cfg(feature = "wgpu")]
fn gpu(b: &AnyBuf) -> &crate::wgpu_backend::WgpuBuf {
    match b {
        AnyBuf::Wgpu(v) => v,
        AnyBuf::Cpu(_) => unreachable!("a CPU buffer given to the wgpu backend"),
    }
}

impl Backend for AnyBackend {
    type Buf = AnyBuf;

    fn name(&self) -> &'static str {
        match self {
            AnyBackend::Cpu(c) => c.name(),
            #[cfg(feature = "wgpu")]
            AnyBackend::Wgpu(w) => w.name(),
        }
    }

    fn max_elements(&self) -> usize {
        match self {
            AnyBackend::Cpu(c) => c.max_elements(),
            #[cfg(feature = "wgpu")]
            AnyBackend::Wgpu(w) => w.max_elements(),
        }
    }

    fn upload(&self, data: &[f32]) -> AnyBuf {
        on!(self, c => c.upload(data), w => w.upload(data))
    }

    fn download(&self, buf: &AnyBuf) -> Vec<f32> {
        match self {
            AnyBackend::Cpu(c) => c.download(cpu(buf)),
            #[cfg(feature = "wgpu")]
            AnyBackend::Wgpu(w) => w.download(gpu(buf)),
        }
    }

    fn full(&self, len: usize, value: f32) -> AnyBuf {
        on!(self, c => c.full(len, value), w => w.full(len, value))
    }

    fn unary(&self, op: Unary, x: &AnyBuf) -> AnyBuf {
        on!(self, c => c.unary(op, cpu(x)), w => w.unary(op, gpu(x)))
    }

    fn binary(
        &self,
        op: Binary,
        a: &AnyBuf,
        sa: &[usize],
        b: &AnyBuf,
        sb: &[usize],
        out: &[usize],
    ) -> AnyBuf {
        on!(self, c => c.binary(op, cpu(a), sa, cpu(b), sb, out), w => w.binary(op, gpu(a), sa, gpu(b), sb, out))
    }

    fn affine(&self, x: &AnyBuf, alpha: f32, beta: f32) -> AnyBuf {
        on!(self, c => c.affine(cpu(x), alpha, beta), w => w.affine(gpu(x), alpha, beta))
    }

    fn matmul(
        &self,
        a: &AnyBuf,
        b: &AnyBuf,
        batch: usize,
        m: usize,
        k: usize,
        n: usize,
        ta: bool,
        tb: bool,
    ) -> AnyBuf {
        on!(self, c => c.matmul(cpu(a), cpu(b), batch, m, k, n, ta, tb), w => w.matmul(gpu(a), gpu(b), batch, m, k, n, ta, tb))
    }

    fn reduce(&self, op: Reduce, x: &AnyBuf, shape: &[usize], axis: usize) -> AnyBuf {
        on!(self, c => c.reduce(op, cpu(x), shape, axis), w => w.reduce(op, gpu(x), shape, axis))
    }

    fn transpose(&self, x: &AnyBuf, shape: &[usize], a0: usize, a1: usize) -> AnyBuf {
        on!(self, c => c.transpose(cpu(x), shape, a0, a1), w => w.transpose(gpu(x), shape, a0, a1))
    }

    fn slice(&self, x: &AnyBuf, shape: &[usize], axis: usize, start: usize, len: usize) -> AnyBuf {
        on!(self, c => c.slice(cpu(x), shape, axis, start, len), w => w.slice(gpu(x), shape, axis, start, len))
    }

    fn pad(&self, x: &AnyBuf, shape: &[usize], axis: usize, start: usize, total: usize) -> AnyBuf {
        on!(self, c => c.pad(cpu(x), shape, axis, start, total), w => w.pad(gpu(x), shape, axis, start, total))
    }

    fn gather_rows(&self, x: &AnyBuf, cols: usize, indices: &[usize]) -> AnyBuf {
        on!(self, c => c.gather_rows(cpu(x), cols, indices), w => w.gather_rows(gpu(x), cols, indices))
    }

    fn scatter_add_rows(&self, g: &AnyBuf, rows: usize, cols: usize, indices: &[usize]) -> AnyBuf {
        on!(self, c => c.scatter_add_rows(cpu(g), rows, cols, indices), w => w.scatter_add_rows(gpu(g), rows, cols, indices))
    }

    fn unfold(&self, x: &AnyBuf, win: Window) -> AnyBuf {
        on!(self, c => c.unfold(cpu(x), win), w => w.unfold(gpu(x), win))
    }

    fn fold(&self, cols: &AnyBuf, win: Window) -> AnyBuf {
        on!(self, c => c.fold(cpu(cols), win), w => w.fold(gpu(cols), win))
    }
}
