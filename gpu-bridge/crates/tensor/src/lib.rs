//! The GPU bridge's tensor engine. Components never touch a device; the host runs this engine
//! on their behalf and hands them tensor handles (`weft:tensor`, next slice). One op set is
//! written against [`Backend`] (the device's primitives); softmax, losses, gradients and
//! optimizers are composed from those, so each backend (CPU here; wgpu and CUDA next) is a small
//! set of kernels. Autodiff is a tape of reference-counted nodes ([`Engine::backward`]).
//!
//! Why not burn or candle: measured here (`shared/toolchain/gpu.md`), burn's wgpu backend costs
//! ~36 CPU-minutes per clean build and its CUDA backend cannot build offline; candle has no
//! wgpu. Our own op set over gemm (CPU), WGSL (wgpu) and cuBLAS (CUDA, loaded at run time)
//! builds in minutes and keeps the WIT boundary ours.

pub mod any;
pub mod backend;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda_backend;
pub mod engine;
pub mod io;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub mod kernels;
pub mod optim;
pub mod shape;
#[cfg(feature = "wgpu")]
pub mod wgpu_backend;

pub use any::{AnyBackend, AnyBuf, Choice};
pub use backend::{Backend, Binary, DeviceError, DeviceResult, Reduce, Unary};
pub use cpu::Cpu;
#[cfg(feature = "cuda")]
pub use cuda_backend::{Cuda, CudaError};
pub use engine::{Engine, Gradients, Tensor};
#[cfg(feature = "wgpu")]
pub use wgpu_backend::{Wgpu, WgpuError};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TensorError {
    #[error("shape error: {0}")]
    Shape(String),
    /// A component's tensors would exceed its device-memory quota.
    #[error("device memory quota exceeded: {requested} bytes more with {used} held, limit {limit} bytes")]
    Quota {
        limit: usize,
        requested: usize,
        used: usize,
    },
    #[error("safetensors: {0}")]
    Format(String),
    /// The device could not allocate or compute (its own memory ran out, a kernel failed).
    #[error(transparent)]
    Device(#[from] DeviceError),
}
