//! `wasm-run serve`: models over the Open Inference Protocol (KServe V2).

use crate::home::Home;
use anyhow::{Context, Result};
use bytesize::ByteSize;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use weft_runtime::{Limits, Runtime, RuntimeConfig};
use weft_serve::{ModelConfig, ServerConfig};

#[derive(Args)]
#[command(after_help = "\
Endpoints: GET /v2, /v2/health/live, /v2/health/ready, /v2/models, /v2/models/NAME[/versions/1],
.../ready; POST .../infer (JSON tensors). Each request runs in a fresh sandboxed instance: one that
traps, times out or runs out of memory gets a 500 and affects nothing else.

Example:
  wasm-run serve --model iris=iris-predictor.wasm:path/to/model-dir --port 8080")]
pub struct ServeArgs {
    /// A model: NAME=COMPONENT.wasm[:MODEL_DIR], the component a weft:serve/predictor and the
    /// directory its model loads from (granted read-only). Repeatable.
    #[arg(long = "model", short = 'm', value_name = "NAME=COMPONENT[:DIR]", value_parser = parse_model, required = true)]
    models: Vec<ModelConfig>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0 picks a free one; the address is printed on stderr).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Per-request time limit.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Per-request linear memory limit.
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    memory: u64,
    /// Largest request body.
    #[arg(long, default_value = "32MiB", value_parser = parse_size)]
    max_body: u64,
    /// Requests running at once (default: the number of CPUs); the rest wait their turn.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Keep up to N warm instances per model and reuse them (the model loads once); 0, the
    /// default, gives every request a fresh instance. A faulted instance is never reused.
    #[arg(long, default_value_t = 0)]
    pool: usize,
}

fn parse_size(s: &str) -> Result<u64, String> {
    s.parse::<ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("`{s}`: {e}"))
}

fn parse_model(s: &str) -> Result<ModelConfig, String> {
    let (name, rest) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: write NAME=COMPONENT.wasm[:MODEL_DIR]"))?;
    let (component, dir) = match rest.split_once(".wasm:") {
        Some((c, d)) => (format!("{c}.wasm"), Some(PathBuf::from(d))),
        None => (rest.to_string(), None),
    };
    Ok(ModelConfig {
        name: name.to_string(),
        component: PathBuf::from(component),
        model_dir: dir,
    })
}

pub fn run(home: &Home, args: ServeArgs) -> Result<ExitCode> {
    let concurrency = args.concurrency.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(home.component_cache()),
        max_concurrent_steps: (concurrency as u32 + 4).max(8),
    })
    .context("starting the WebAssembly engine")?;
    let config = ServerConfig {
        addr: format!("{}:{}", args.host, args.port)
            .parse()
            .context("--host/--port")?,
        models: args.models,
        limits: Limits {
            memory_bytes: args.memory,
            timeout: args.timeout,
            ..Limits::default()
        },
        max_body_bytes: args.max_body as usize,
        concurrency,
        pool: args.pool,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(weft_serve::serve(config, Arc::new(runtime)))?;
    Ok(ExitCode::SUCCESS)
}
