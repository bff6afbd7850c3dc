//! `wasm-run train TRAINJOB.yaml [--workers N]` (Kubeflow Trainer's TrainJob, run here: the
//! trainer component as a gang of workers, on threads with collectives in host memory, or with
//! engine mpi as processes under mpirun, `mpi_gang.rs`) and `wasm-run train resume RUN`.
//!
//! A TrainJob runs as a one-task pipeline run (`weft_spec::train_job`), so it is recorded,
//! listed, shown in the UI and resumed like any run; the task is a gang (the pipeline
//! executor's `gang.rs`), restarted whole from its latest checkpoint when a worker fails.

use crate::home::Home;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use weft_runtime::{Metric, MetricWatch, StepContext, Verdict};
use weft_spec::train_job::{ArtifactRef, CollectiveEngine, TrainJob};
use weft_spec::Document;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TrainArgs {
    #[command(subcommand)]
    command: Option<TrainCommand>,
    /// The TrainJob file (`kind: TrainJob`).
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
    /// Workers in all, instead of numNodes × numProcPerNode (on one node: its numProcPerNode).
    #[arg(long)]
    workers: Option<u32>,
    /// Only check the file; run nothing.
    #[arg(long)]
    validate: bool,
    /// With --validate: check the job as a cluster runs it (its engine need not be in this
    /// build or have this machine's GPUs: the operator's pods run it).
    #[arg(long, requires = "validate")]
    for_cluster: bool,
    /// The run's id (default: random). When that run exists, it is resumed instead (how a
    /// restarted runner pod carries on).
    #[arg(long)]
    run_id: Option<String>,
    /// Print the final summary as JSON.
    #[arg(long)]
    json: bool,
    /// Write the job's progress (Trainer's `trainerStatus`: percentage, time left, latest
    /// metrics) to TrainJob NAMESPACE/NAME's status, at most once a second: what the runner in
    /// a cluster does for the operator. Needs a build with the `kube` feature.
    #[arg(long, value_name = "NAMESPACE/NAME", value_parser = crate::pipeline::parse_run_ref)]
    kube_status: Option<(String, String)>,
    /// Engines mpi and nccl: start the ranks on the hosts OpenMPI's hostfile FILE names
    /// (`HOST slots=N` a line, reached by ssh, sharing the artifact store: `--artifact-store
    /// s3://...` or a shared file system), not all on this machine.
    #[arg(long, global = true, value_name = "FILE")]
    hostfile: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum TrainCommand {
    /// Finish an interrupted or failed training run: the gang restarts from its latest
    /// checkpoint.
    Resume {
        run: String,
        #[arg(long)]
        json: bool,
    },
}

pub fn train(home: &Home, args: TrainArgs) -> Result<ExitCode> {
    if let Some(TrainCommand::Resume { run, json }) = args.command {
        let (runtime, exec) = open(home, args.hostfile.as_deref())?;
        let _watch = runtime.watch_run(&run, Arc::new(StepProgress::new(None, 0, None)));
        return crate::pipeline::resume_run(home, exec, &run, json);
    }
    let Some(file) = args.file.clone() else {
        bail!("give a TrainJob file (wasm-run train FILE), or `wasm-run train resume RUN`");
    };
    let text = weft_tree::read_regular_text(&file, weft_tree::MAX_DOCUMENT_BYTES)
        .with_context(|| format!("reading {}", file.display()))?;
    let doc = match load(&file, &text) {
        Ok(doc) => doc,
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            eprintln!("{} error(s); nothing was run", errors.len());
            return Ok(ExitCode::from(2));
        }
    };
    let job = &doc.value;
    // Ranks elsewhere (a hostfile's hosts, a cluster's pods) check their engine where they run.
    let elsewhere = args.hostfile.is_some() || args.for_cluster;
    let workers = match workers(job, args.workers, elsewhere) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            return Ok(ExitCode::from(2));
        }
    };
    if args.validate {
        println!(
            "{}: valid TrainJob `{}` ({workers} workers)",
            file.display(),
            job.metadata.name
        );
        return Ok(ExitCode::SUCCESS);
    }
    if job.spec.run_policy.suspend {
        eprintln!(
            "error: {}: spec.runPolicy.suspend is set: the job is suspended (unset it to run)",
            file.display()
        );
        return Ok(ExitCode::from(2));
    }
    let steps = job
        .spec
        .trainer
        .params
        .get("epochs")
        .and_then(|v| v.as_u64());
    let report = match args.kube_status.clone() {
        Some(at) => Some(crate::kube_status::follow_train(at, steps)?),
        None => None,
    };
    let sink = report.as_ref().map(|r| r.sink());
    let code = start_or_resume(home, &file, job, workers, steps, sink, args);
    if let Some(report) = report {
        report.finish();
    }
    code
}

/// Runs the job (or resumes the run `--run-id` names), its steps shown and sent to `sink`.
fn start_or_resume(
    home: &Home,
    file: &Path,
    job: &TrainJob,
    workers: u32,
    steps: Option<u64>,
    sink: Option<crate::kube_status::TrainSink>,
    args: TrainArgs,
) -> Result<ExitCode> {
    let (runtime, exec) = open(home, args.hostfile.as_deref())?;
    // The run this id names exists: this job started before and was interrupted (a runner pod
    // restarted), so it is resumed, its gang from the latest checkpoint.
    if let Some(id) = args.run_id.as_deref() {
        if exec.stores().meta.run(id).is_ok() {
            eprintln!("run {id} exists: resuming it");
            let _watch = runtime.watch_run(id, Arc::new(StepProgress::new(steps, workers, sink)));
            return crate::pipeline::resume_run(home, exec, id, args.json);
        }
    }
    let inputs = initializer_inputs(home, job)?;
    let base = file.parent().unwrap_or(Path::new("."));
    let pipeline = job.pipeline(base, workers, inputs);
    let dir = home.path().join("train").join(&job.metadata.name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let pipeline_file = dir.join("pipeline.json");
    // JSON is YAML: the planner reads it as any pipeline file.
    std::fs::write(&pipeline_file, serde_json::to_string_pretty(&pipeline)?)
        .with_context(|| format!("writing {}", pipeline_file.display()))?;
    let run_id = args
        .run_id
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let _watch = runtime.watch_run(&run_id, Arc::new(StepProgress::new(steps, workers, sink)));
    let place = match job.spec.engine() {
        CollectiveEngine::Mpi | CollectiveEngine::Nccl => "processes under mpirun",
        _ => "in process",
    };
    eprintln!(
        "train {}: {workers} workers ({place}), run {run_id}",
        job.metadata.name
    );
    crate::pipeline::run_file(home, exec, &pipeline_file, run_id, args.json)
}

/// Parses and checks a TrainJob file; errors located in it.
fn load(file: &Path, text: &str) -> Result<Document<TrainJob>, Vec<weft_spec::SpecError>> {
    let doc =
        Document::<TrainJob>::parse(&file.display().to_string(), text).map_err(|e| vec![e])?;
    weft_spec::validate::validate_train_job(&doc)?;
    Ok(doc)
}

/// The gang's size: the spec's, or `--workers` where it fits; an engine this build cannot
/// run is refused, never replaced by another. On one machine, numNodes × numProcPerNode
/// ranks of engine mpi are all local processes (`mpirun -np N`); `elsewhere`, they run on
/// other hosts (a hostfile's, a cluster's pods), which check their engine themselves.
fn workers(job: &TrainJob, asked: Option<u32>, elsewhere: bool) -> Result<u32, String> {
    let world = job.spec.world_size();
    match job.spec.engine() {
        CollectiveEngine::Mpi if !cfg!(feature = "mpi") && !elsewhere => {
            return Err(format!(
                "engine mpi is not in this build (wasm-run built without the `mpi` feature){}",
                match job.spec.trainer.num_nodes {
                    1 => String::new(),
                    n => format!(": numNodes {n} needs workers in several processes; use numNodes 1 and engine local"),
                }
            ))
        }
        // On the hosts of a hostfile (a launcher pod with no GPU of its own, say), each rank
        // finds its GPU, or says why not, where it runs.
        CollectiveEngine::Nccl if elsewhere => {}
        CollectiveEngine::Nccl => {
            // On one machine every rank is local, and each needs a GPU of its own.
            let gpus = nccl_here()?;
            let ranks = asked.map_or(world, u64::from);
            if ranks > gpus as u64 {
                return Err(format!(
                    "engine nccl: {ranks} ranks on this machine but {gpus} GPU(s): NCCL needs a GPU per rank"
                ));
            }
        }
        _ => {}
    }
    match asked {
        None => Ok(world as u32),
        Some(0) => Err("--workers must be at least 1".into()),
        Some(n) if u64::from(n) > weft_spec::validate::MAX_WORKERS => Err(format!(
            "--workers {n}: at most {}",
            weft_spec::validate::MAX_WORKERS
        )),
        Some(n) => Ok(n),
    }
}

/// The initializer's dataset and model as input artifacts: a path or digest as written, a
/// run's output as its digest.
fn initializer_inputs(home: &Home, job: &TrainJob) -> Result<BTreeMap<String, String>> {
    let mut inputs = BTreeMap::new();
    let Some(init) = &job.spec.initializer else {
        return Ok(inputs);
    };
    for (r, default) in [(&init.dataset, "train"), (&init.model, "model")] {
        if let Some(r) = r {
            let name = r.input.clone().unwrap_or_else(|| default.into());
            inputs.insert(name, resolve(home, r)?);
        }
    }
    Ok(inputs)
}

fn resolve(home: &Home, r: &ArtifactRef) -> Result<String> {
    if let Some(p) = r.path.as_ref().or(r.digest.as_ref()) {
        return Ok(p.clone());
    }
    let (Some(run), Some(task), Some(output)) = (&r.run, &r.task, &r.output) else {
        bail!("the initializer names neither a path, a digest nor a run's output");
    };
    let events = home.open_metadata()?.events(Some(run))?;
    events
        .into_iter()
        .find(|e| &e.task == task && &e.name == output && e.direction == "output")
        .map(|e| e.digest)
        .with_context(|| format!("run {run} has no output {task}.{output}"))
}

/// A progress line per reported step: the step (of how many), the loss, steps a second since
/// the last line, the workers. Every rank reports the same (all-reduced) step; the first
/// report of a step is shown.
struct StepProgress {
    total: Option<u64>,
    workers: u32,
    last: Mutex<Option<(u64, Instant)>>,
    /// Where the job's status is written (`--kube-status`).
    sink: Option<crate::kube_status::TrainSink>,
}

impl std::fmt::Debug for StepProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "StepProgress({:?} steps, {} workers)",
            self.total, self.workers
        )
    }
}

impl StepProgress {
    fn new(total: Option<u64>, workers: u32, sink: Option<crate::kube_status::TrainSink>) -> Self {
        StepProgress {
            total,
            workers,
            last: Mutex::new(None),
            sink,
        }
    }
}

impl MetricWatch for StepProgress {
    fn observe(&self, _ctx: &StepContext, metric: &Metric) -> Verdict {
        if let Some(sink) = &self.sink {
            sink.send(&metric.name, metric.value, metric.step);
        }
        let Some(step) = metric.step else {
            return Verdict::Continue;
        };
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|(s, _)| step <= s) {
            return Verdict::Continue;
        }
        let now = Instant::now();
        let rate = match *last {
            Some((s, t)) if step > s => {
                format!(
                    "  {:.1} steps/s",
                    (step - s) as f64 / now.duration_since(t).as_secs_f64().max(1e-9)
                )
            }
            _ => String::new(),
        };
        *last = Some((step, now));
        let of = self.total.map(|t| format!("/{t}")).unwrap_or_default();
        let workers = match self.workers {
            0 => String::new(),
            w => format!("  {w} workers"),
        };
        eprintln!(
            "step {step}{of}  {} {:.4}{rate}{workers}",
            metric.name, metric.value
        );
        Verdict::Continue
    }
}

/// The runtime and executor, whose gangs of engine mpi or nccl start on the hosts of
/// `hostfile` when one is given.
fn open(
    home: &Home,
    hostfile: Option<&Path>,
) -> Result<(Arc<weft_runtime::Runtime>, weft_pipeline::Executor)> {
    let (runtime, exec) = crate::pipeline::open_shared(home)?;
    let Some(hostfile) = hostfile else {
        return Ok((runtime, exec));
    };
    #[cfg(feature = "mpi")]
    {
        let launcher = crate::mpi_gang::Mpirun::new(home)?.on_hosts(hostfile)?;
        Ok((runtime, exec.with_gangs(Arc::new(launcher))))
    }
    #[cfg(not(feature = "mpi"))]
    bail!(
        "--hostfile {}: this wasm-run was built without MPI (the `mpi` feature)",
        hostfile.display()
    )
}

/// Whether engine nccl can run on this machine (a GPU and the NCCL library), and how many
/// GPUs it has; else why not.
#[cfg(feature = "nccl")]
pub(crate) fn nccl_here() -> std::result::Result<usize, String> {
    weft_collective::nccl::available().map_err(|e| e.to_string())
}

/// Engine nccl is not built in.
#[cfg(not(feature = "nccl"))]
pub(crate) fn nccl_here() -> std::result::Result<usize, String> {
    Err("engine nccl is not in this build (wasm-run built without the `nccl` feature); use engine mpi or local".into())
}
