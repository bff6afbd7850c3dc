//! End-to-end tests: real components built from source (weft-test-programs), run through the
//! `wasm-run` CLI and the runtime API.

mod cli;
mod handmade;
mod hermetic;
#[cfg(feature = "kube")]
mod kube_status;
mod limits;
#[cfg(feature = "onnx")]
mod onnx;
mod pipelines;
#[cfg(feature = "postgres")]
mod postgres;
mod runtime_api;
mod sandbox;
mod serve;
mod support;
#[cfg(feature = "kube")]
mod task_pods;
mod tensors;
mod transform;
