//! The Weft operator: runs `PipelineRun`s and `Experiment`s as runner Jobs (one pod per run or
//! experiment, steps and trials in microseconds inside it) and serves `InferenceService`s as
//! `wasm-run serve` Deployments.
//!
//! Shaped like kube-rs's controller-rs: a reconciler per kind behind a finalizer, children
//! written with server-side apply and owned by their resource, status written only when it
//! changes (so a second reconcile changes nothing), errors requeued with backoff, Prometheus
//! metrics, and leader election for several replicas (`main.rs`).

pub mod apply;
pub mod conditions;
pub mod context;
pub mod error;
pub mod experiment;
pub mod inferenceservice;
pub mod metrics;
pub mod notebook;
pub mod pipelinerun;
pub mod pods;
pub mod registry;
pub mod trainjob;

pub use context::{Config, Context};
pub use error::Error;

/// The field manager of everything the operator writes (server-side apply).
pub const MANAGER: &str = "weft-operator";
/// The label every child carries: which controller made it.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "weft-operator");
