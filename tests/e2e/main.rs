//! End-to-end tests: real components built from source (weft-test-programs), run through the
//! `wasm-run` CLI and the runtime API.

mod cli;
mod collective;
mod compile_cache;
mod errors;
mod handmade;
mod hermetic;
mod host_bounds;
mod integrity;
mod kfp_import;
#[cfg(feature = "kube")]
mod kube_status;
mod languages;
mod languages_c;
mod languages_serve;
mod limits;
mod models;
#[cfg(feature = "kube")]
mod notebook_kube;
#[cfg(feature = "onnx")]
mod onnx;
mod outputs;
mod pipelines;
#[cfg(feature = "postgres")]
mod postgres;
mod registry;
mod runtime_api;
mod sandbox;
mod serve;
mod support;
#[cfg(feature = "kube")]
mod task_pods;
mod tensors;
mod train;
#[cfg(all(feature = "mpi", feature = "s3"))]
mod train_hosts;
mod train_mpi;
mod transform;
mod tune;
mod ui;
mod validate;
