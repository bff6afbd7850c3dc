//! Spec types shared by every Weft front end: the local `wasm-run`, and the Kubernetes operator,
//! which serves them as CRDs. Kept free of wasmtime and kube so both can depend on it.

pub mod digest;
pub mod experiment;
pub mod float;
pub mod inference;
pub mod model_registry;
pub mod one_task;
pub mod optimization_job;
pub mod params;
pub mod pipeline;
pub mod report;
pub mod schema;
pub mod text;
pub mod train_job;
pub mod validate;
pub mod yaml;

pub use params::{ParamError, ParamValue};
pub use yaml::{Document, SpecError};
