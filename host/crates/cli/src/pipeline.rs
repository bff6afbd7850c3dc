//! `wasm-run pipeline ...`: validate, run, resume, and the JSON Schema of the spec.

use crate::home::Home;
use crate::progress::Progress;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use weft_pipeline::{
    plan, Executor, PlanError, ReplayReport, RunArgs, RunOptions, RunSummary, Stores,
};
use weft_runtime::Runtime;
use weft_spec::ParamValue;

mod import_kfp;
mod register;

#[derive(Subcommand)]
pub enum PipelineCommand {
    /// Run a pipeline to the end, with a live progress view.
    Run(Box<RunPipelineArgs>),
    /// Check a pipeline file without running it: fields, references, types, cycles, and that
    /// each component is a weft:pipeline/step component whose imports the sandbox provides.
    Validate {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Also compile every component into the compiled cache (as `wasm-run compile`), so the
        /// first run does not wait for it.
        #[arg(long)]
        compile: bool,
    },
    /// Finish an interrupted or failed run, reusing the tasks it completed.
    Resume(ResumeArgs),
    /// Re-execute a hermetic run and report, per output, whether it reproduced bit for bit.
    Replay(ResumeArgs),
    /// Print the JSON Schema of `kind: Pipeline` (or `--kind PipelineRun`, `InferenceService`,
    /// `Experiment`, `TrainJob`).
    Schema {
        #[arg(long, default_value = "Pipeline", value_parser = ["Pipeline", "PipelineRun", "InferenceService", "Experiment", "TrainJob"])]
        kind: String,
    },
    /// Convert a compiled KFP v2 pipeline (IR YAML) of lightweight Python components into a
    /// Weft pipeline with Python components, built; what cannot convert is named, and then
    /// nothing is written.
    ImportKfp(import_kfp::ImportKfpArgs),
}

#[derive(Args)]
pub struct RunPipelineArgs {
    /// The pipeline YAML (`kind: Pipeline`), or a `kind: PipelineRun` naming one.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// A pipeline parameter: NAME=VALUE or NAME:TYPE=VALUE. Repeatable.
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE", value_parser = parse_param)]
    params: Vec<(String, ParamValue)>,
    /// A pipeline input artifact: NAME=PATH, overriding the file's default. Repeatable.
    #[arg(long = "artifact", short = 'a', value_name = "NAME=PATH", value_parser = parse_artifact)]
    artifacts: Vec<(String, PathBuf)>,
    /// Use the cache (the default).
    #[arg(long, overrides_with = "no_cache")]
    cache: bool,
    /// Run every task, ignoring cached results.
    #[arg(long)]
    no_cache: bool,
    /// Tasks running at once (default: the number of CPUs).
    #[arg(long)]
    parallelism: Option<usize>,
    /// Virtualise clocks and randomness from this seed (a replayable run).
    #[arg(long, value_name = "SEED")]
    hermetic_seed: Option<u64>,
    /// The run's id (default: random).
    #[arg(long)]
    run_id: Option<String>,
    /// Print the final summary as JSON.
    #[arg(long)]
    json: bool,
    /// Also write a compact report of the run (state, per-task states and times, at most
    /// 4 KiB) to FILE: on Kubernetes the runner's termination message, which the operator
    /// copies into the PipelineRun's status.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Write the tasks' states, as they change, to the status of this PipelineRun
    /// (NAMESPACE/NAME), with the pod's service account or the kubeconfig: the runner's live
    /// report to the operator. Needs a build with the `kube` feature.
    #[arg(long, value_name = "NAMESPACE/NAME", value_parser = parse_run_ref)]
    kube_status: Option<(String, String)>,
    /// Run tasks that ask for `resources` of their own, and parallelFors with `pods`, as Jobs
    /// in the PipelineRun's namespace, made from the pod template in FILE (a PodTemplateSpec as
    /// JSON; the operator writes it). Their steps meet the runner only in the artifact store,
    /// which must be shared (S3, or a ReadWriteMany volume). Needs `--kube-status`.
    #[arg(long, value_name = "FILE", requires = "kube_status")]
    task_pods: Option<PathBuf>,
    /// When the run succeeds, register an output artifact of one of its tasks in the model
    /// registry as a new version (VERSION: the run's id unless given), with its lineage: run,
    /// task, artifact digest (`wasm-run models show NAME VERSION`). Checked before the run
    /// starts. Repeatable.
    #[arg(long, value_name = "TASK.OUTPUT=NAME[:VERSION]", value_parser = register::parse)]
    register_model: Vec<register::Registration>,
    /// The weft:serve/predictor component recorded with the versions --register-model makes,
    /// so an InferenceService's `component: model-registry://NAME/VERSION` serves them.
    #[arg(long, value_name = "FILE.wasm", requires = "register_model")]
    register_component: Option<PathBuf>,
}

pub(crate) fn parse_run_ref(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => Err(format!("`{s}`: write NAMESPACE/NAME")),
    }
}

#[derive(Args)]
pub struct ResumeArgs {
    /// The run.
    run: String,
    #[arg(long)]
    parallelism: Option<usize>,
    #[arg(long)]
    json: bool,
}

fn parse_param(s: &str) -> Result<(String, ParamValue), String> {
    ParamValue::parse_assignment(s).map_err(|e| e.to_string())
}

fn parse_artifact(s: &str) -> Result<(String, PathBuf), String> {
    let (n, p) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: write NAME=PATH"))?;
    Ok((n.to_string(), PathBuf::from(p)))
}

/// The stores and runtime of `$WEFT_HOME`.
pub fn open(home: &Home) -> Result<Executor> {
    Ok(open_shared(home)?.1)
}

/// [`open`], and the runtime it runs on (to watch a run's metrics while it runs).
pub(crate) fn open_shared(home: &Home) -> Result<(Arc<Runtime>, Executor)> {
    let runtime =
        Arc::new(Runtime::new(home.runtime_config(64)).context("starting the WebAssembly engine")?);
    let stores = Stores {
        meta: Arc::new(home.open_metadata()?),
        artifacts: Arc::new(home.open_artifacts()?),
        components_dir: home.components(),
        logs_dir: home.logs(),
    };
    let exec = Executor::new(runtime.clone(), stores);
    // Gangs of engine mpi: their workers are ranks of an MPI job started by mpirun.
    #[cfg(feature = "mpi")]
    let exec = exec.with_gangs(Arc::new(crate::mpi_gang::Mpirun::new(home)?));
    Ok((runtime, exec))
}

fn parallelism(asked: Option<usize>) -> usize {
    asked.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    })
}

pub fn command(home: &Home, cmd: PipelineCommand) -> Result<ExitCode> {
    match cmd {
        PipelineCommand::Schema { kind } => schema(&kind),
        PipelineCommand::Validate { file, compile } => validate(home, &file, compile),
        PipelineCommand::Run(args) => run(home, *args),
        PipelineCommand::Replay(args) => replay(home, args),
        PipelineCommand::Resume(args) => resume(home, args),
        PipelineCommand::ImportKfp(args) => import_kfp::import(home, args),
    }
}

/// `pipeline schema`: prints the JSON Schema of `kind`.
fn schema(kind: &str) -> Result<ExitCode> {
    let file = format!("{}.schema.json", kind.to_lowercase());
    let schema = weft_spec::schema::all()
        .into_iter()
        .find(|(n, _)| *n == file)
        .map(|(_, s)| s)
        .expect("known kind");
    println!("{}", serde_json::to_string_pretty(&schema)?);
    Ok(ExitCode::SUCCESS)
}

/// `pipeline validate`: plans `file` without storing or importing anything; with `compile`,
/// compiles its components into the cache too.
fn validate(home: &Home, file: &std::path::Path, compile: bool) -> Result<ExitCode> {
    let exec = open(home)?;
    let s = exec.stores();
    match plan(
        file,
        &RunArgs {
            cache: true,
            check_only: true,
            ..Default::default()
        },
        exec.runtime(),
        &s.components_dir,
        &s.artifacts,
    ) {
        Ok(p) => {
            println!(
                "{}: valid pipeline `{}` with {} tasks",
                file.display(),
                p.pipeline.metadata.name,
                p.pipeline.spec.tasks.len()
            );
            if compile {
                return compile_components(exec.runtime(), &p);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => report_plan_error(e),
    }
}

/// `validate --compile`: each component of the plan compiled into the cache (or found there);
/// one that does not compile is bad input (exit 2), said after the others are done.
fn compile_components(runtime: &Runtime, plan: &weft_pipeline::Plan) -> Result<ExitCode> {
    let mut failed = 0;
    for (name, file) in &plan.component_files {
        if let Err(e) = crate::compile::compile_one(runtime, name, file) {
            eprintln!("error: component `{name}`: {e:#}");
            failed += 1;
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// `pipeline run`: plans the file (a Pipeline, or a PipelineRun naming one) and runs it; or,
/// when `--run-id` names a run that exists, resumes that run.
fn run(home: &Home, args: RunPipelineArgs) -> Result<ExitCode> {
    let exec = open(home)?;
    let s = exec.stores();
    if let Some(id) = existing_run(s, args.run_id.as_deref())? {
        eprintln!("run {id} exists: resuming it");
        let models = (args.register_model, args.register_component);
        let pending = register::prepare(home, None, models.0, models.1, &id)?;
        let total = s.meta.tasks(&id)?.len();
        let kube = Kube {
            status: args.kube_status,
            task_pods: args.task_pods,
        };
        let summary = with_progress_to(total, parallelism(args.parallelism), kube, |opts| {
            let id = id.clone();
            async move { exec.resume(&id, &opts).await }
        })?;
        if let Some(pending) = pending {
            register::finish(home, pending, &summary)?;
        }
        return finish_run(home, summary, args.report.as_deref(), args.json);
    }
    let kube = Kube::from(&args);
    let mut run_args = RunArgs {
        params: args.params,
        artifacts: args.artifacts,
        cache: !args.no_cache,
        hermetic_seed: args.hermetic_seed,
        check_only: false,
    };
    let file = match from_pipeline_run(&args.file, &mut run_args) {
        Ok(Some(file)) => file,
        Ok(None) => args.file.clone(),
        Err(e) => return report_plan_error(e),
    };
    let plan = match plan(
        &file,
        &run_args,
        exec.runtime(),
        &s.components_dir,
        &s.artifacts,
    ) {
        Ok(p) => p,
        Err(e) => return report_plan_error(e),
    };
    let run_id = args
        .run_id
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let models = (args.register_model, args.register_component);
    let pending = register::prepare(home, Some(&plan), models.0, models.1, &run_id)?;
    let total = plan.pipeline.spec.tasks.len();
    let summary = with_progress_to(
        total,
        parallelism(args.parallelism),
        kube,
        |opts| async move { exec.start(plan, Some(run_id), &opts).await },
    )?;
    if let Some(pending) = pending {
        register::finish(home, pending, &summary)?;
    }
    finish_run(home, summary, args.report.as_deref(), args.json)
}

/// The run `--run-id` names, when it exists already: this run started before and interrupted
/// (a runner pod restarted on the same volume, say), to finish rather than start over. Only
/// "no such run" starts a new one: any other store error is an error, not a reason to start
/// over under an id that may already hold a run.
fn existing_run(s: &Stores, run_id: Option<&str>) -> Result<Option<String>> {
    match run_id.map(|id| s.meta.run(id)) {
        None | Some(Err(weft_store::StoreError::NoRun(_))) => Ok(None),
        Some(Ok(r)) => Ok(Some(r.id)),
        Some(Err(e)) => Err(e).context("looking up --run-id"),
    }
}

/// `pipeline replay`: runs a hermetic run again and reports whether every output reproduced;
/// exit status 1 when one did not.
fn replay(home: &Home, args: ResumeArgs) -> Result<ExitCode> {
    let exec = open(home)?;
    let record = exec.stores().meta.run(&args.run)?;
    let total = exec.stores().meta.tasks(&record.id)?.len();
    let report = with_progress(total, parallelism(args.parallelism), |opts| async move {
        exec.replay(&args.run, &opts).await
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_replay(&report);
    }
    Ok(if report.reproduced() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A replay's report as a table: each output, whether it matched, and the replay's value where
/// it did not.
fn print_replay(report: &ReplayReport) {
    println!(
        "replay {} of run {}: {}",
        report.replay.run_id, report.original, report.replay.state
    );
    println!(
        "  {:<16} {:<14} {:<8} {:<6} ORIGINAL",
        "TASK", "OUTPUT", "KIND", "MATCH"
    );
    for o in &report.outputs {
        let mark = if o.matches() { "yes" } else { "NO" };
        println!(
            "  {:<16} {:<14} {:<8} {:<6} {}",
            o.task, o.output, o.kind, mark, o.original
        );
        if !o.matches() {
            println!(
                "  {:<47} replay: {}",
                "",
                o.replayed.as_deref().unwrap_or("(missing)")
            );
        }
    }
    for d in &report.damaged_originals {
        println!("  stored copy of {d} was damaged on disk; the replay replaced it");
    }
    if let Some(task) = &report.first_divergence {
        println!("first divergence: task `{task}` (tasks after it consumed its outputs)");
    }
    let matched = report.outputs.iter().filter(|o| o.matches()).count();
    println!(
        "{matched}/{} outputs reproduced{}",
        report.outputs.len(),
        if report.reproduced() { " exactly" } else { "" }
    );
}

/// `pipeline resume`: finishes an interrupted or failed run.
fn resume(home: &Home, args: ResumeArgs) -> Result<ExitCode> {
    resume_with(home, open(home)?, &args.run, args.parallelism, args.json)
}

/// Resumes `run` on `exec` (whose runtime may carry watches of it), with the live view.
pub(crate) fn resume_run(home: &Home, exec: Executor, run: &str, json: bool) -> Result<ExitCode> {
    resume_with(home, exec, run, None, json)
}

fn resume_with(
    home: &Home,
    exec: Executor,
    run: &str,
    parallelism_asked: Option<usize>,
    json: bool,
) -> Result<ExitCode> {
    let record = exec.stores().meta.run(run)?;
    let total = exec.stores().meta.tasks(&record.id)?.len();
    let summary = with_progress(total, parallelism(parallelism_asked), |opts| async move {
        exec.resume(&record.id, &opts).await
    })?;
    report_run(home, summary, json)
}

/// Plans and runs the pipeline in `file` as run `run_id` on `exec` (whose runtime may carry
/// watches of it), with the live view; default arguments.
pub(crate) fn run_file(
    home: &Home,
    exec: Executor,
    file: &std::path::Path,
    run_id: String,
    json: bool,
) -> Result<ExitCode> {
    let run_args = RunArgs {
        params: Vec::new(),
        artifacts: Vec::new(),
        cache: true,
        hermetic_seed: None,
        check_only: false,
    };
    let s = exec.stores();
    let plan = match plan(
        file,
        &run_args,
        exec.runtime(),
        &s.components_dir,
        &s.artifacts,
    ) {
        Ok(p) => p,
        Err(e) => return report_plan_error(e),
    };
    let total = plan.pipeline.spec.tasks.len();
    let summary = with_progress(total, parallelism(None), |opts| async move {
        exec.start(plan, Some(run_id), &opts).await
    })?;
    report_run(home, summary, json)
}

/// When `file` is a `kind: PipelineRun`, folds its arguments under the command line's (which
/// win) and returns the pipeline file it refers to; `None` for a plain `kind: Pipeline`.
fn from_pipeline_run(
    file: &std::path::Path,
    args: &mut RunArgs,
) -> Result<Option<PathBuf>, PlanError> {
    #[derive(serde::Deserialize)]
    struct Kind {
        kind: Option<String>,
    }
    let shown = file.display().to_string();
    let text = weft_tree::read_regular_text(file, weft_tree::MAX_DOCUMENT_BYTES)
        .map_err(|e| PlanError::Args(e.to_string()))?;
    let kind: Kind = serde_saphyr::from_str(&text).map_err(|e| {
        PlanError::Args(format!(
            "{shown}: {}",
            e.to_string().lines().next().unwrap_or("")
        ))
    })?;
    if kind.kind.as_deref() != Some("PipelineRun") {
        return Ok(None);
    }
    let doc = weft_spec::Document::<weft_spec::pipeline::PipelineRun>::parse(&shown, &text)?;
    let run = &doc.value;
    if run.api_version != weft_spec::pipeline::API_VERSION {
        let msg = format!("apiVersion must be `{}`", weft_spec::pipeline::API_VERSION);
        return Err(doc.error_at(&["apiVersion"], msg).into());
    }
    if run.spec.cancel {
        let msg = "this run is marked cancelled (`cancel: true`); remove it to run";
        return Err(doc.error_at(&["spec", "cancel"], msg).into());
    }
    let base = file.parent().unwrap_or(std::path::Path::new("."));
    for (name, value) in &run.spec.params {
        if !args.params.iter().any(|(n, _)| n == name) {
            args.params
                .push((name.clone(), ParamValue::infer_json(value)));
        }
    }
    for (name, path) in &run.spec.artifacts {
        if !args.artifacts.iter().any(|(n, _)| n == name) {
            args.artifacts.push((name.clone(), base.join(path)));
        }
    }
    if run.spec.cache == Some(false) {
        args.cache = false;
    }
    args.hermetic_seed = args.hermetic_seed.or(run.spec.hermetic_seed);
    Ok(Some(base.join(&run.spec.pipeline_ref)))
}

fn report_plan_error(e: PlanError) -> Result<ExitCode> {
    match e {
        PlanError::Invalid(errors) => {
            for err in &errors {
                eprintln!("error: {err}");
            }
            eprintln!("{} error(s); nothing was run", errors.len());
            Ok(ExitCode::from(2))
        }
        PlanError::Args(msg) => {
            eprintln!("error: {msg}");
            Ok(ExitCode::from(2))
        }
        PlanError::Other(e) => Err(e),
    }
}

/// Runs `run` on a tokio runtime with the live progress view and Ctrl-C cancellation (a second
/// Ctrl-C aborts).
fn with_progress<T, F, Fut>(total: usize, parallelism: usize, run: F) -> Result<T>
where
    F: FnOnce(RunOptions) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    with_progress_to(total, parallelism, Kube::default(), run)
}

/// What a runner on Kubernetes does beside running: status writes and task pods.
#[derive(Default)]
struct Kube {
    status: Option<(String, String)>,
    task_pods: Option<PathBuf>,
}

impl From<&RunPipelineArgs> for Kube {
    fn from(args: &RunPipelineArgs) -> Self {
        Kube {
            status: args.kube_status.clone(),
            task_pods: args.task_pods.clone(),
        }
    }
}

/// [`with_progress`], also writing task states to a PipelineRun's status when `kube.status`
/// names one, and running tasks in pods of their own when `kube.task_pods` says how.
fn with_progress_to<T, F, Fut>(total: usize, parallelism: usize, kube: Kube, run: F) -> Result<T>
where
    F: FnOnce(RunOptions) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let pods = match (&kube.task_pods, &kube.status) {
            (Some(template), Some(run_ref)) => {
                Some(crate::kube_status::pods(run_ref.clone(), template).await?)
            }
            _ => None,
        };
        let (rx, reporter) = match kube.status {
            None => (rx, None),
            Some(run_ref) => {
                let (rx, reporter) = crate::kube_status::follow(run_ref, rx).await?;
                (rx, Some(reporter))
            }
        };
        let cancel = Arc::new(AtomicBool::new(false));
        let ctrlc = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\ncancelling: stopping running steps (Ctrl-C again to abort)");
                ctrlc.store(true, Ordering::Relaxed);
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        let progress = tokio::spawn(Progress::new(total).follow(rx));
        // `run` owns the options, so the progress channel closes when it finishes.
        let result = run(RunOptions {
            parallelism,
            events: Some(tx),
            cancel,
            pods,
        })
        .await;
        let _ = progress.await;
        if let Some(reporter) = reporter {
            let _ = reporter.await;
        }
        result
    })
}

/// Writes the `--report` file if asked, then prints the run and maps its state to the exit
/// status.
fn finish_run(
    home: &Home,
    summary: RunSummary,
    report: Option<&std::path::Path>,
    json: bool,
) -> Result<ExitCode> {
    if let Some(path) = report {
        let events = home.open_metadata()?.events(Some(&summary.run_id))?;
        std::fs::write(path, crate::report::compact(&summary, &events))
            .with_context(|| format!("writing the report to {}", path.display()))?;
    }
    report_run(home, summary, json)
}

/// Prints a finished run and maps its state to the exit status.
fn report_run(home: &Home, summary: RunSummary, json: bool) -> Result<ExitCode> {
    crate::runs::print_summary(home, &summary, json)?;
    if let Some(why) = &summary.host_failure {
        eprintln!("error: {why}");
        return Ok(crate::exit::host_failure());
    }
    Ok(match summary.state.as_str() {
        weft_store::RUN_SUCCEEDED => ExitCode::SUCCESS,
        weft_store::RUN_CANCELLED => ExitCode::from(130),
        _ => ExitCode::from(1),
    })
}
