//! The CUDA backend. Where a GPU is, the suite in `common` runs on it against the CPU backend.
//! Everywhere, its kernels must compile: with NVRTC present (`cargo xtask test` installs
//! NVIDIA's NVRTC wheel from PyPI and sets `WEFT_REQUIRE_NVRTC`, so there it cannot skip),
//! [`weft_tensor::cuda_backend::compile`] builds every kernel to PTX, which needs no GPU. And
//! asking for CUDA where no driver is present is a clear error.
#![cfg(feature = "cuda")]

mod common;

use weft_tensor::cuda_backend::{compile, CudaError};
use weft_tensor::{AnyBackend, Choice, Cuda};

#[test]
fn the_kernels_compile_with_nvrtc() {
    match compile() {
        Ok(ptx) => {
            let text = ptx.to_src();
            for (_, name) in weft_tensor::cuda_backend::FUNCTIONS {
                assert!(text.contains(name), "{name} is not in the PTX");
            }
        }
        Err(CudaError::NoCompiler) if std::env::var_os("WEFT_REQUIRE_NVRTC").is_none() => {
            eprintln!("NVRTC not present: kernels not compiled (cargo xtask test installs it)");
        }
        Err(e) => panic!("{e}"),
    }
}

fn device() -> Option<Cuda> {
    match Cuda::new() {
        Ok(c) => {
            eprintln!("CUDA device: {}", c.device());
            Some(c)
        }
        Err(e) => {
            eprintln!("CUDA tests not run on a device: {e}");
            None
        }
    }
}

#[test]
fn asking_for_cuda_without_a_driver_is_an_error_naming_what_is_missing() {
    if device().is_some() {
        return;
    }
    let err = AnyBackend::open(Choice::Cuda).err().unwrap();
    assert!(
        err.starts_with("tensor backend cuda: no CUDA driver"),
        "{err}"
    );
}

#[test]
fn every_primitive_matches_the_cpu_backend() {
    let Some(g) = device() else { return };
    common::every_primitive_matches_the_cpu_backend(&g);
}

#[test]
fn gradients_and_training_on_cuda_match_the_cpu_engine() {
    let Some(g) = device() else { return };
    common::gradients_and_training_match_the_cpu_engine(g);
}
