//! `wasm-run run`: one step, end to end.

use crate::home::Home;
use crate::progress::CompileView;
use anyhow::{bail, Context, Result};
use bytesize::ByteSize;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use weft_runtime::{
    InputArtifact, Limits, LoadedComponent, Runtime, StepError, StepOutcome, StepRequest,
};
use weft_spec::text::escape_control;
use weft_spec::ParamValue;

#[derive(Args)]
#[command(after_help = "\
Inside the sandbox the step sees: input NAME at /inputs/NAME (read-only; a file input is the one \
file in that directory), the output directory at /outputs (read-write; each --output-artifact \
NAME is created as /outputs/NAME), only the --env variables, an empty stdin, no network unless \
--allow-network. stdout and stderr go to the task log.

Exit status: 0 on success, 1 when the step fails (error, trap or limit), 2 on bad usage.

Example:
  wasm-run run csv-transform.wasm --input data=iris.csv --output-dir out \\
      --output-artifact transformed --param drop=species --memory 128MiB --timeout 10s")]
pub struct RunArgs {
    /// The component (.wasm) to run; it must target the weft:pipeline/step world.
    #[arg(value_name = "COMPONENT.wasm")]
    component: PathBuf,

    /// A parameter: NAME=VALUE (type inferred: int, float, bool, JSON list/object, else string)
    /// or NAME:TYPE=VALUE with TYPE one of string, int, float, bool, json. Repeatable.
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE", value_parser = parse_param)]
    params: Vec<(String, ParamValue)>,

    /// An input artifact: NAME=PATH, a file or directory granted read-only. Repeatable.
    #[arg(long = "input", short = 'i', value_name = "NAME=PATH", value_parser = parse_input)]
    inputs: Vec<InputArtifact>,

    /// Directory granted read-write to the step at /outputs (created if missing).
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,

    /// A named output artifact: created as DIR/NAME and passed to the step. Repeatable.
    #[arg(
        long = "output-artifact",
        short = 'o',
        value_name = "NAME",
        requires = "output_dir"
    )]
    outputs: Vec<String>,

    /// An environment variable the step may see: NAME=VALUE, or NAME to pass the host's value.
    /// Nothing else from the host environment reaches the step. Repeatable.
    #[arg(long = "env", short = 'e', value_name = "NAME[=VALUE]")]
    env: Vec<String>,

    /// Grant TCP/UDP sockets and DNS lookup (denied by default).
    #[arg(long)]
    allow_network: bool,

    /// Virtualise clocks and randomness from --seed: identical inputs give identical outputs.
    #[arg(long)]
    hermetic: bool,

    /// Seed for --hermetic.
    #[arg(long, default_value_t = 0, requires = "hermetic")]
    seed: u64,

    /// Linear memory limit of the step, all its memories together (e.g. 256MiB, 1GiB; at most
    /// 4GiB).
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    memory: u64,

    /// Wall-clock limit for the step (e.g. 500ms, 30s, 5m).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,

    /// Limit on bytes written to the output directory (a sparse extension counts in full).
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    max_output: u64,

    /// Limit on files, directories and links the step may create in its outputs.
    #[arg(long, default_value_t = Limits::default().max_output_entries)]
    max_output_entries: usize,

    /// Limit on how deep the step's output directories may nest.
    #[arg(long, default_value_t = Limits::default().max_output_depth)]
    max_output_depth: usize,

    /// Limit on the task log (stdout + stderr + log records); the rest is dropped and counted.
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    max_log: u64,

    /// Limit on the bytes the step makes the host hold for it: metric names and output
    /// parameters (e.g. 16MiB).
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    max_host_bytes: u64,

    /// Limit on core instances, tables and memories the component may create.
    #[arg(long, default_value_t = Limits::default().max_instances)]
    max_instances: usize,

    /// Limit on elements per table.
    #[arg(long, default_value_t = Limits::default().max_table_elements)]
    max_table_elements: u64,

    /// Limit on the bytes of tensors the step holds on the device at once (`weft:tensor`).
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    device_memory: u64,

    /// Run id given to the step (default: random; `hermetic-SEED` with --hermetic).
    #[arg(long)]
    run_id: Option<String>,

    /// Task name given to the step (default: the component's file stem).
    #[arg(long)]
    task: Option<String>,

    /// Where to write the task log (default: $WEFT_HOME/logs/RUN/TASK.log).
    #[arg(long, value_name = "PATH")]
    log_file: Option<PathBuf>,

    /// Print the outcome as JSON on stdout.
    #[arg(long)]
    json: bool,
}

fn parse_param(s: &str) -> Result<(String, ParamValue), String> {
    ParamValue::parse_assignment(s).map_err(|e| e.to_string())
}

fn parse_input(s: &str) -> Result<InputArtifact, String> {
    let (name, path) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: write NAME=PATH"))?;
    Ok(InputArtifact {
        name: name.to_string(),
        path: PathBuf::from(path),
    })
}

pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    s.parse::<ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("`{s}`: {e} (write e.g. 256MiB)"))
}

pub fn run(home: &Home, args: RunArgs) -> Result<ExitCode> {
    let task = task_name(&args);
    let run_id = args.run_id.clone().unwrap_or_else(|| match args.hermetic {
        true => format!("hermetic-{}", args.seed),
        false => uuid::Uuid::new_v4().to_string(),
    });
    let log_path = args
        .log_file
        .clone()
        .unwrap_or_else(|| home.task_log(&run_id, &task));
    let env = args
        .env
        .iter()
        .map(|e| resolve_env(e))
        .collect::<Result<Vec<_>>>()?;

    let runtime =
        Runtime::new(home.runtime_config(4)).context("starting the WebAssembly engine")?;
    let component = load(&runtime, &args.component)?;
    tracing::info!(component = %component.path.display(), digest = %component.digest, source = ?component.source, "loaded");

    let (json, max_log) = (args.json, args.max_log);
    let req = step_request(args, run_id, task, env, &log_path);
    match runtime.run(&component, &req) {
        Ok(outcome) => succeeded(&req, &outcome, json, max_log, &log_path),
        Err(e) => Ok(failed(&e, &log_path)),
    }
}

/// The task name given to the step: `--task`, else the component's file stem.
fn task_name(args: &RunArgs) -> String {
    match &args.task {
        Some(t) => t.clone(),
        None => args
            .component
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("step")
            .to_string(),
    }
}

/// Loads the component: from the compiled cache, quietly, or compiled for its first use, said
/// with a spinner while it takes (seconds for a Python or JavaScript component) and its time.
fn load(runtime: &Runtime, path: &std::path::Path) -> Result<Arc<LoadedComponent>> {
    let name = path
        .file_name()
        .unwrap_or(path.as_os_str())
        .to_string_lossy();
    let view = CompileView::new(&name);
    let loaded = runtime.load_with(path, &|c| view.started(c.bytes));
    view.clear();
    match loaded {
        Ok(c) => {
            if let Some(took) = c.compile_time {
                view.finished(took);
            }
            Ok(c)
        }
        Err(e) => bail!("{e}"),
    }
}

/// The step as the command line describes it.
fn step_request(
    args: RunArgs,
    run_id: String,
    task: String,
    env: Vec<(String, String)>,
    log_path: &std::path::Path,
) -> StepRequest {
    let mut req = StepRequest::new(run_id, task);
    req.params = args.params;
    req.inputs = args.inputs;
    req.output_dir = args.output_dir;
    req.outputs = args.outputs;
    req.env = env;
    req.allow_network = args.allow_network;
    req.hermetic_seed = args.hermetic.then_some(args.seed);
    req.limits = Limits {
        memory_bytes: args.memory,
        timeout: args.timeout,
        max_output_bytes: args.max_output,
        max_output_entries: args.max_output_entries,
        max_output_depth: args.max_output_depth,
        max_log_bytes: args.max_log,
        max_instances: args.max_instances,
        max_table_elements: args.max_table_elements,
        device_memory_bytes: args.device_memory,
        max_host_bytes: args.max_host_bytes,
        ..Limits::default()
    };
    req.log_path = Some(log_path.to_path_buf());
    req
}

/// Prints a step's outcome (as JSON with `--json`), warns when its log was truncated.
fn succeeded(
    req: &StepRequest,
    outcome: &StepOutcome,
    json: bool,
    max_log: u64,
    log_path: &std::path::Path,
) -> Result<ExitCode> {
    let printed = if json {
        writeln!(
            std::io::stdout(),
            "{}",
            serde_json::to_string_pretty(outcome)?
        )
    } else {
        print_outcome(&mut std::io::stdout().lock(), req, outcome)
    };
    // A closed pipe (`| head`) is the reader's choice, not our failure.
    if let Err(e) = printed.and_then(|_| std::io::stdout().flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
    }
    if outcome.log.truncated() {
        eprintln!(
            "warning: task log truncated at {} ({} bytes dropped): {}",
            ByteSize(max_log),
            outcome.log.dropped_bytes,
            log_path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Reports a step that failed: the full report (with the guest backtrace) to the log, one line
/// to the user; the exit status says whose failure it was.
fn failed(e: &StepError, log_path: &std::path::Path) -> ExitCode {
    let _ = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log_path)
        .and_then(|mut f| writeln!(f, "\n{}", e.log_line()));
    eprintln!(
        "error: {} (log: {})",
        escape_control(&e.one_line()),
        log_path.display()
    );
    match e.kind() {
        // What the user gave cannot be granted: bad input, not the step's failure.
        "grant" => ExitCode::from(2),
        // The host failed or had no room: worth retrying.
        "host" | "busy" => crate::exit::host_failure(),
        _ => ExitCode::from(1),
    }
}

/// `NAME=VALUE` as given, or `NAME` taken from the host environment.
fn resolve_env(spec: &str) -> Result<(String, String)> {
    match spec.split_once('=') {
        Some((k, v)) => Ok((k.to_string(), v.to_string())),
        None => match std::env::var(spec) {
            Ok(v) => Ok((spec.to_string(), v)),
            Err(_) => bail!(
                "--env {spec}: not set in the host environment (write {spec}=VALUE to set it)"
            ),
        },
    }
}

fn print_outcome(out: &mut impl Write, req: &StepRequest, o: &StepOutcome) -> std::io::Result<()> {
    writeln!(
        out,
        "task {} succeeded in {:.3} ms (component {})",
        req.context.task_name,
        o.elapsed.as_secs_f64() * 1e3,
        o.component_digest
    )?;
    if !o.params.is_empty() {
        writeln!(out, "output parameters:")?;
        for (name, value) in &o.params {
            let shown = escape_control(&value.to_string()).into_owned();
            writeln!(out, "  {name} = {shown} ({})", value.type_name())?;
        }
    }
    if !o.artifacts.is_empty() {
        let dir = req
            .output_dir
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        writeln!(out, "artifacts written (under {dir}):")?;
        for a in &o.artifacts {
            let path = escape_control(&a.path);
            writeln!(out, "  {path}  {}  {}", ByteSize(a.bytes), a.digest)?;
        }
    }
    if !o.metrics.is_empty() {
        writeln!(out, "metrics:")?;
        for m in &o.metrics {
            let name = escape_control(&m.name);
            match m.step {
                Some(step) => writeln!(out, "  {name} = {} (step {step})", m.value),
                None => writeln!(out, "  {name} = {}", m.value),
            }?;
        }
    }
    if let Some(path) = &o.log.path {
        writeln!(out, "log: {} ({})", path.display(), ByteSize(o.log.bytes))?;
    }
    Ok(())
}
