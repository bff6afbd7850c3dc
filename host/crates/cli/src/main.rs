//! `wasm-run`: Weft's command line.

mod build;
mod compile;
mod exit;
mod home;
mod inference_file;
mod kube_status;
mod models;
#[cfg(feature = "mpi")]
mod mpi_gang;
mod notebook;
mod notebook_kube;
mod pipeline;
mod progress;
mod report;
mod run;
mod runs;
mod serve;
mod task;
mod train;
mod tune;
mod ui;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Run Weft pipeline steps — WebAssembly components — in a capability sandbox.
///
/// Local state (the compiled-component cache, task logs) lives under $WEFT_HOME, by default the
/// per-user data directory (e.g. ~/.local/share/weft). Set RUST_LOG (e.g. RUST_LOG=debug) for
/// structured host logs on stderr.
#[derive(Parser)]
#[command(name = "wasm-run", version, propagate_version = true)]
struct Cli {
    /// Weft's state directory (cache, logs). Overrides $WEFT_HOME.
    #[arg(long, global = true, env = "WEFT_HOME", value_name = "DIR")]
    home: Option<PathBuf>,

    /// Where artifacts are also published and fetched from: `file:///path`, `memory://`, or
    /// `s3://bucket/prefix` (a build with the `s3` feature; AWS_* env for endpoint, credentials).
    #[arg(long, global = true, env = "WEFT_ARTIFACT_STORE", value_name = "URL")]
    artifact_store: Option<String>,

    /// Where run metadata lives: a `postgres://user:password@host/db` URL (a build with the
    /// `postgres` feature) for a database several runners share; default SQLite in the home.
    #[arg(long, global = true, env = "WEFT_METADATA", value_name = "URL")]
    metadata: Option<String>,

    /// The device `weft:tensor` computes on: `cpu`, `wgpu` (a Vulkan/Metal/DX12 device), `cuda`
    /// (an NVIDIA GPU; a build with the `cuda` feature), or `auto` (the best GPU there is, else
    /// the CPU). A requested device that is absent is an error.
    #[arg(
        long,
        global = true,
        env = "WEFT_TENSOR_BACKEND",
        value_name = "BACKEND",
        default_value = "auto"
    )]
    tensor_backend: weft_tensor::Choice,

    /// The most the compiled-component cache may hold (e.g. 2GiB, 500MiB, `unlimited`); past
    /// it, the least recently used compiled components are removed.
    #[arg(
        long,
        global = true,
        env = "WEFT_CACHE_MAX",
        value_name = "SIZE",
        default_value = "2GiB",
        value_parser = parse_cache_max
    )]
    cache_max: u64,

    /// Host log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run one step: a component of the weft:pipeline/step world, on the given parameters and
    /// artifacts, in a sandbox that grants nothing else.
    Run(run::RunArgs),
    /// Pipelines: run, validate, resume, schema.
    #[command(subcommand)]
    Pipeline(pipeline::PipelineCommand),
    /// Recorded runs: list, show.
    #[command(subcommand)]
    Runs(runs::RunsCommand),
    /// Print the log of one task of a run.
    Logs { run: String, task: String },
    /// Serve models over the Open Inference Protocol (KServe V2 REST).
    Serve(serve::ServeArgs),
    /// Show or change the traffic split of a model on a running server (canary, promote, rollback).
    Traffic(serve::TrafficArgs),
    /// Artifacts in the store: list, get.
    #[command(subcommand)]
    Artifacts(runs::ArtifactsCommand),
    /// Work orders from a runner: the pod side of tasks that run in pods of their own.
    #[command(subcommand)]
    Task(task::TaskCommand),
    /// Start a component project: source, weft.toml, WIT and a test (like `spin new`).
    New(build::NewArgs),
    /// Build the component project in DIR (Rust, Python, JavaScript or C; from its weft.toml),
    /// installing the language's tools on first use; prints the component's path.
    Build(build::BuildArgs),
    /// Compile components into the compiled cache ahead of their first use.
    Compile(compile::CompileArgs),
    /// The compiled-component cache: list, prune.
    #[command(subcommand)]
    Cache(compile::CacheCommand),
    /// Tune hyperparameters: run a Katib-style Experiment (trials as sandboxed pipeline runs,
    /// `parallelTrialCount` at a time), or resume it.
    Tune(tune::TuneArgs),
    /// Train data-parallel: run a TrainJob (Kubeflow Trainer's names) as a gang of workers
    /// with collectives and checkpoints, restarted whole from the latest checkpoint when one
    /// fails; or `train resume RUN`.
    Train(train::TrainArgs),
    /// Tuning experiments: list, show, trials, delete.
    #[command(subcommand)]
    Experiments(tune::ExperimentsCommand),
    /// Serve the web UI (runs, graphs, logs, artifacts, comparison, experiments, models,
    /// serving) and the model registry's REST API (Kubeflow Model Registry v1alpha3, at
    /// /api/model_registry/v1alpha3/).
    Ui(ui::UiArgs),
    /// The model registry: list, show, register, archive (in one namespace: --namespace).
    Models(models::ModelsArgs),
    /// JupyterLab on loopback from a venv Weft manages, the Weft SDK importable and set to this
    /// home (`wasm-run notebook [DIR]`).
    Notebook(notebook::NotebookArgs),
    /// Which runs and tasks produced and consumed an artifact.
    Lineage {
        /// The artifact's digest (sha256:...).
        digest: String,
        #[arg(long, value_enum, default_value = "table")]
        output: runs::Format,
    },
}

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so printing into a closed pipe (`| head`) panics in println!;
    // a command-line tool should end quietly there, as cat and grep do.
    #[cfg(unix)]
    // SAFETY: done first, before any thread exists; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    // With both the S3 store and the Kubernetes client built in, rustls sees two crypto
    // providers and will not choose: name one for the process.
    #[cfg(feature = "kube")]
    let _ = rustls::crypto::ring::default_provider().install_default();
    let metadata = cli.metadata.clone();
    let home = home::Home::resolve(
        cli.home,
        cli.artifact_store,
        cli.tensor_backend,
        cli.metadata,
        cli.cache_max,
    );
    let result = match cli.command {
        Command::Run(args) => run::run(&home, args),
        Command::Pipeline(cmd) => pipeline::command(&home, cmd),
        Command::Runs(cmd) => runs::runs(&home, cmd),
        Command::Logs { run, task } => runs::logs(&home, &run, &task),
        Command::Serve(args) => serve::run(&home, args),
        Command::Traffic(args) => serve::traffic(args),
        Command::Artifacts(cmd) => runs::artifacts(&home, cmd),
        Command::Lineage { digest, output } => runs::lineage(&home, &digest, output),
        Command::Task(cmd) => task::command(&home, cmd),
        Command::New(args) => build::new(args),
        Command::Build(args) => build::build(&home, args),
        Command::Compile(args) => compile::compile(&home, args),
        Command::Cache(cmd) => compile::cache(&home, cmd),
        Command::Tune(args) => tune::tune(&home, args),
        Command::Train(args) => train::train(&home, args),
        Command::Experiments(cmd) => tune::experiments(&home, cmd),
        Command::Models(cmd) => models::command(&home, cmd),
        Command::Notebook(args) => notebook::command(&home, args),
        Command::Ui(args) => ui::run(&home, metadata.as_deref(), args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::code_for(&e)
        }
    }
}

/// `--cache-max`: a size, or `unlimited` (as `u64::MAX`).
fn parse_cache_max(s: &str) -> Result<u64, String> {
    match s {
        "unlimited" | "none" => Ok(u64::MAX),
        _ => run::parse_size(s),
    }
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only for a terminal: piped or collected logs stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
