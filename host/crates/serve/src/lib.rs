//! The model server: Open Inference Protocol (KServe V2) REST endpoints over predictor
//! components. By default every request runs in a fresh, sandboxed instance, so a request that
//! traps, times out or runs out of memory fails alone (500) and leaves the server and other
//! requests untouched.

mod metrics;
mod routing;
mod server;
mod tensor;

pub use routing::parse as parse_split;
pub use server::{serve, serve_on, ModelConfig, ServerConfig};
