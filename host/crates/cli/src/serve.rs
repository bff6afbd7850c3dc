//! `wasm-run serve`: models over the Open Inference Protocol (KServe V2).

use crate::home::Home;
use anyhow::{Context, Result};
use bytesize::ByteSize;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use weft_runtime::{Limits, Runtime};
use weft_serve::{ModelConfig, ServerConfig};

#[derive(Args)]
#[command(after_help = "\
Endpoints: GET /v2, /v2/health/live, /v2/health/ready, /v2/models, /v2/models/NAME[/versions/1],
.../ready; POST .../infer (JSON tensors). Each request runs in a fresh sandboxed instance: one that
traps, times out or runs out of memory gets a 500 and affects nothing else. Each model version has
its own --concurrency slots and --queue; a request finding the queue full gets a 503.
Admin (traffic, promote, rollback: `wasm-run traffic`) answers on --admin-listen only, never on
the data port.

Examples:
  wasm-run serve --model iris=iris-predictor.wasm:path/to/model-dir --port 8080
  wasm-run serve -f inferenceservice.yaml")]
pub struct ServeArgs {
    /// A model version: NAME[@VERSION]=COMPONENT.wasm[:MODEL_DIR], the component a
    /// weft:serve/predictor and the directory its model loads from (granted read-only). Give one
    /// name several times with different versions to serve them side by side. Repeatable.
    #[arg(long = "model", short = 'm', value_name = "NAME[@V]=COMPONENT[:DIR]", value_parser = parse_model, required_unless_present = "file")]
    models: Vec<ModelConfig>,
    /// Serve the model of an InferenceService file (`kind: InferenceService`, the resource the
    /// operator deploys) instead of --model: its predictor is version 1, its canary version 2
    /// with the canary's share of traffic; its timeout, memory and pool override the flags.
    #[arg(long, short = 'f', value_name = "FILE", conflicts_with_all = ["models", "traffic"])]
    file: Option<PathBuf>,
    /// The registry namespace the file's `model-registry://NAME/VERSION` names resolve in,
    /// for a file whose `metadata.namespace` names none (one that does resolves in its own,
    /// as `kubectl apply -f` places it; the two differing is an error). Default: `default`.
    #[arg(long, value_name = "NS", requires = "file")]
    namespace: Option<String>,
    /// A traffic split: NAME:V1=90,V2=10 (percentages summing to 100). Without one, a model's
    /// traffic goes to its last version. Change it at run time with `wasm-run traffic`.
    #[arg(long = "traffic", value_name = "NAME:V=PERCENT,...", value_parser = parse_traffic)]
    traffic: Vec<(String, Vec<(String, u32)>)>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0 picks a free one; the address is printed on stderr).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Where the admin endpoints listen (/admin/models/NAME/traffic|promote|rollback), apart
    /// from the data port, which never serves them; `off` for none. Default: loopback, the
    /// port after --port (a free one with --port 0; printed on stderr). An address other than
    /// loopback needs --admin-token.
    #[arg(long, value_name = "ADDR|off")]
    admin_listen: Option<String>,
    /// A token every admin request must carry (`Authorization: Bearer TOKEN`).
    #[arg(long, env = "WEFT_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Per-request time limit.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Per-request linear memory limit.
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    memory: u64,
    /// Largest request body.
    #[arg(long, default_value = "32MiB", value_parser = parse_size)]
    max_body: u64,
    /// Largest response body: tensors, names, shapes, parameters, all of it. A model answering
    /// more fails the request with a 500 (encoding stops at the limit). Error messages are cut
    /// at 4 KiB.
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    max_output: u64,
    /// Requests running at once per model version (default: the number of CPUs); the rest
    /// wait their turn in the version's queue.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Requests waiting per model version while its slots are busy; one more is answered 503
    /// at once.
    #[arg(long, default_value_t = 64)]
    queue: usize,
    /// Keep up to N warm instances per model and reuse them (the model loads once); 0, the
    /// default, gives every request a fresh instance. A faulted instance is never reused.
    #[arg(long, default_value_t = 0)]
    pool: usize,
    /// Run the model's `load` in every fresh instance. By default it runs once at start-up and
    /// instances start from a snapshot of that state (memories and globals), so a request pays
    /// no model load.
    #[arg(long)]
    no_snapshot: bool,
}

fn parse_size(s: &str) -> Result<u64, String> {
    s.parse::<ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("`{s}`: {e}"))
}

fn parse_model(s: &str) -> Result<ModelConfig, String> {
    let (name, rest) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: write NAME[@VERSION]=COMPONENT.wasm[:MODEL_DIR]"))?;
    let (name, version) = match name.split_once('@') {
        Some((n, v)) => (n, v.to_string()),
        None => (name, "1".to_string()),
    };
    let (component, dir) = match rest.split_once(".wasm:") {
        Some((c, d)) => (format!("{c}.wasm"), Some(PathBuf::from(d))),
        None => (rest.to_string(), None),
    };
    Ok(ModelConfig {
        name: name.to_string(),
        version,
        component: PathBuf::from(component),
        model_dir: dir,
    })
}

fn parse_traffic(s: &str) -> Result<(String, Vec<(String, u32)>), String> {
    let (name, split) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}`: write NAME:V1=90,V2=10"))?;
    Ok((name.to_string(), weft_serve::parse_split(split)?))
}

pub fn run(home: &Home, mut args: ServeArgs) -> Result<ExitCode> {
    if let Some(file) = &args.file {
        let service = crate::inference_file::load(home, file, args.namespace.as_deref())?;
        args.models = service.models;
        args.traffic = service.splits.into_iter().collect();
        args.timeout = service.timeout.unwrap_or(args.timeout);
        args.memory = service.memory.unwrap_or(args.memory);
        args.pool = service.pool.unwrap_or(args.pool);
    }
    let concurrency = args.concurrency.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    // Every version may run its slots and keep its warm instances at once.
    let instances = args.models.len() * (concurrency + args.pool) + 4;
    let runtime = Runtime::new(home.runtime_config(instances.max(8).try_into()?))
        .context("starting the WebAssembly engine")?;
    let config = ServerConfig {
        addr: format!("{}:{}", args.host, args.port)
            .parse()
            .context("--host/--port")?,
        admin_addr: admin_addr(args.admin_listen.as_deref(), args.port)?,
        admin_token: args.admin_token,
        models: args.models,
        limits: Limits {
            memory_bytes: args.memory,
            timeout: args.timeout,
            max_output_bytes: args.max_output,
            ..Limits::default()
        },
        max_body_bytes: args.max_body as usize,
        concurrency,
        queue: args.queue,
        pool: args.pool,
        snapshot: !args.no_snapshot,
        splits: args.traffic.into_iter().collect(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(weft_serve::serve(config, Arc::new(runtime)))?;
    Ok(ExitCode::SUCCESS)
}

/// The admin listener: `--admin-listen`, else loopback on the port after the data port (a free
/// one when that is 0).
fn admin_addr(listen: Option<&str>, port: u16) -> Result<Option<std::net::SocketAddr>> {
    match listen {
        Some("off") => Ok(None),
        Some(addr) => Ok(Some(addr.parse().with_context(|| {
            format!("--admin-listen `{addr}`: write IP:PORT, or off")
        })?)),
        None => {
            let admin_port = match port {
                0 => 0,
                p => p.checked_add(1).context(
                    "--port 65535 leaves no port for the admin listener: give --admin-listen",
                )?,
            };
            Ok(Some(std::net::SocketAddr::from((
                [127, 0, 0, 1],
                admin_port,
            ))))
        }
    }
}

/// `wasm-run traffic`: look at or change a running server's traffic split.
#[derive(Args)]
pub struct TrafficArgs {
    /// The server's admin listener (`wasm-run serve --admin-listen`; by default loopback on
    /// the port after the data port).
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    server: String,
    /// The server's admin token, if it has one.
    #[arg(long, env = "WEFT_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The model.
    model: String,
    #[command(subcommand)]
    action: Option<TrafficAction>,
}

#[derive(clap::Subcommand)]
enum TrafficAction {
    /// Print the split (the default).
    Show,
    /// Set the split: V1=90,V2=10.
    Set { split: String },
    /// Send all traffic to one version.
    Promote {
        #[arg(value_name = "VERSION")]
        target: String,
    },
    /// Return to the split before the last change.
    Rollback,
}

pub fn traffic(args: TrafficArgs) -> Result<ExitCode> {
    let base = format!(
        "{}/admin/models/{}",
        args.server.trim_end_matches('/'),
        args.model
    );
    let authorized = |req: ureq::Request| match &args.token {
        Some(token) => req.set("Authorization", &format!("Bearer {token}")),
        None => req,
    };
    let result = match args.action.unwrap_or(TrafficAction::Show) {
        TrafficAction::Show => authorized(ureq::get(&format!("{base}/traffic"))).call(),
        TrafficAction::Set { split } => {
            let split = weft_serve::parse_split(&split).map_err(anyhow::Error::msg)?;
            let map: serde_json::Map<String, serde_json::Value> =
                split.into_iter().map(|(v, w)| (v, w.into())).collect();
            authorized(ureq::put(&format!("{base}/traffic")))
                .send_json(serde_json::json!({"traffic": map}))
        }
        TrafficAction::Promote { target } => authorized(ureq::post(&format!("{base}/promote")))
            .send_json(serde_json::json!({"version": target})),
        TrafficAction::Rollback => authorized(ureq::post(&format!("{base}/rollback"))).call(),
    };
    match result {
        Ok(r) => {
            let body: serde_json::Value = r.into_json()?;
            println!("{}: {}", args.model, body["traffic"]);
            Ok(ExitCode::SUCCESS)
        }
        Err(ureq::Error::Status(code, r)) => {
            let body: serde_json::Value = r.into_json().unwrap_or_default();
            eprintln!(
                "error: {code}: {}",
                body["error"].as_str().unwrap_or("(no message)")
            );
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(anyhow::anyhow!("{}: {e}", args.server)),
    }
}
