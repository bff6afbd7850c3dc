//! Weft's component host: runs one pipeline step (a WebAssembly component of the
//! `weft:pipeline/step` world) inside a capability sandbox, fast.
//!
//! - [`Runtime`] owns one wasmtime [`wasmtime::Engine`] (pooling allocator, copy-on-write memory
//!   images, epoch interruption) and the on-disk cache of compiled components.
//! - [`Runtime::load`] compiles or loads a component once and keeps its `InstancePre`;
//!   [`Runtime::check`] checks one without compiling it.
//! - [`Runtime::run`] runs a [`StepRequest`] in a fresh Store whose WASI context grants only what
//!   the request names, under [`Limits`], and returns a [`StepOutcome`] or a [`StepError`] that
//!   says what happened.

pub mod bindings;
mod cache;
mod cache_dir;
mod checkpoint_host;
mod collective_host;
mod engine;
mod error;
mod hermetic;
mod hermetic_fs;
mod limits;
mod load;
mod log_sink;
mod output_quota;
pub mod predictor;
mod sandbox;
mod shape;
mod snapshot;
mod state;
mod step;
pub mod tensor_host;
mod wait_cap;

pub use cache::{digest, verify_cache_dir, CacheCheck, LoadSource};
pub use cache_dir::{list_cache, prune_cache, CacheEntry, Pruned};
pub use engine::{
    cache_engine_key, LoadedComponent, Runtime, RuntimeConfig, DEFAULT_CACHE_MAX_BYTES,
};
pub use error::{LimitExceeded, StepError};
pub use limits::Limits;
pub use load::{CheckedComponent, Compiling, Precompiled};
pub use log_sink::LogSummary;
pub use step::{
    ArtifactFile, Checkpoints, InputArtifact, Metric, MetricWatch, StepContext, StepOutcome,
    StepRequest, Verdict, WatchGuard, TASK_EXPORT,
};
pub use weft_spec::ParamValue;
