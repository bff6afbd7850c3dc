//! Runs pipelines on one machine: Kubeflow Pipelines' job, done by `wasm-run`.
//!
//! - [`plan`] turns a pipeline file and run arguments into a [`Plan`]: validated spec, resolved
//!   parameters, components and input artifacts pinned by digest. The plan is stored with the
//!   run, so `resume` and `replay` re-execute exactly what ran.
//! - [`Executor`] runs a plan's DAG: ready tasks in parallel up to a limit, conditions,
//!   retries with backoff, caching, cancellation; every transition recorded in the stores.

mod cache_key;
mod condition;
mod executor;
pub mod gang_order;
mod parallel;
mod plan;
mod subpipeline;
pub mod work_order;

pub use executor::{
    Executor, HostFailure, ReplayReport, ReplayedOutput, RunEvent, RunOptions, RunSummary,
    StepDone, Stores,
};
pub use plan::{plan, Plan, PlanError, RunArgs};
