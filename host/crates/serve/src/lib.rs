//! The model server: Open Inference Protocol (KServe V2) REST endpoints over predictor
//! components. By default every request runs in a fresh, sandboxed instance, so a request that
//! traps, times out or runs out of memory fails alone (500) and leaves the server and other
//! requests untouched. Each model version has its own slots and bounded queue; the admin
//! endpoints (traffic, promote, rollback) answer on a listener of their own.

mod admin;
mod error;
mod infer;
mod load;
mod metrics;
mod routing;
mod server;
mod slots;
mod tensor;
mod v2;

pub use error::MAX_ERROR_BYTES;
pub use routing::parse as parse_split;
pub use server::{serve, serve_on, Listeners, ModelConfig, ServerConfig};
