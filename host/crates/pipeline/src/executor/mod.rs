//! The DAG executor: runs ready tasks in parallel up to a limit, recording every transition.
//!
//! One async loop owns the run's state; each task runs on a blocking thread (a wasm step is
//! synchronous CPU work), retries included. Order of writes per task: output directories are
//! moved into the artifact store, then one transaction records the task's completion. So after a
//! crash, a task is either recorded with artifacts that exist, or re-run by `resume`.

use crate::cache_key::{cache_key, KeyParts};
use crate::condition;
use crate::plan::{component_path, from_json, Plan};
use crate::work_order::{OrderedStep, Pods, WorkOrder};
use anyhow::{anyhow, Context, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;
use weft_runtime::{InputArtifact, Limits, LoadedComponent, Runtime, StepError, StepRequest};
use weft_spec::pipeline::{ArtifactSource, ParamSource, TaskSpec};
use weft_spec::validate::EXIT_HANDLER;
use weft_spec::ParamValue;
use weft_store::{
    ArtifactStore, MetadataStore, MetricRecord, RunLease, RunRecord, TaskCompletion, TaskRecord,
    TaskState, RUN_FAILED, RUN_RUNNING, RUN_SUCCEEDED,
};

mod attempts;
mod checkpoints;
mod drive;
mod gang;
mod gang_procs;
mod loops;
mod prepare;
mod replay;
mod scheduler;

pub use attempts::StepDone;
use attempts::*;
pub(crate) use attempts::{run_step, run_step_with, AttemptError};
pub(crate) use checkpoints::OrderCheckpoints;
use drive::Drive;
use loops::run_loop;
use prepare::resolve_param;
pub use replay::{ReplayReport, ReplayedOutput};

/// Where a run's state goes.
#[derive(Clone)]
pub struct Stores {
    pub meta: Arc<MetadataStore>,
    pub artifacts: Arc<ArtifactStore>,
    /// Components by digest (`<hex>.wasm`).
    pub components_dir: PathBuf,
    /// Task logs: `<logs>/<run>/<task>.log`.
    pub logs_dir: PathBuf,
}

/// Progress of a run, for a live view.
#[derive(Clone, Debug)]
pub enum RunEvent {
    Started {
        run_id: String,
        tasks: usize,
    },
    TaskStarted {
        task: String,
        attempt: u32,
    },
    TaskRetrying {
        task: String,
        attempt: u32,
        delay: Duration,
        error: String,
    },
    TaskFinished {
        task: String,
        state: TaskState,
        duration: Option<Duration>,
        detail: Option<String>,
    },
    /// A component is being compiled for its first use (not in the compiled cache): seconds
    /// for a Python or JavaScript one, which a live view should account for.
    Compiling {
        component: String,
        bytes: u64,
    },
    /// The compile [`RunEvent::Compiling`] announced is done.
    Compiled {
        component: String,
        took: Duration,
    },
}

pub struct RunOptions {
    /// Tasks running at once.
    pub parallelism: usize,
    pub events: Option<UnboundedSender<RunEvent>>,
    /// Set to cancel the run: running steps stop at the next epoch tick.
    pub cancel: Arc<AtomicBool>,
    /// Pods for the tasks that ask for resources of their own and for sharded parallelFors
    /// (the runner on Kubernetes); None runs every task in this process.
    pub pods: Option<Pods>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            parallelism: 4,
            events: None,
            cancel: Arc::new(AtomicBool::new(false)),
            pods: None,
        }
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub state: String,
    pub tasks: Vec<TaskRecord>,
    /// Set when the host, not a step, failed the run (a store, the network, the disk): the
    /// run is recorded as FAILED with this cause and is worth resuming once the host is well.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_failure: Option<String>,
}

/// Marks an error as the host's (a store, the network, the disk), not the pipeline's: the CLI
/// exits with its host-failure code for it, which the operator restarts.
#[derive(Debug, thiserror::Error)]
#[error("the host failed (the run can be resumed)")]
pub struct HostFailure;

/// What a finished task makes available downstream.
#[derive(Clone, Debug, Default)]
struct TaskOutputs {
    params: BTreeMap<String, ParamValue>,
    /// Output artifact name → digest.
    artifacts: BTreeMap<String, String>,
}

pub struct Executor {
    runtime: Arc<Runtime>,
    stores: Stores,
    /// Iterations of a parallelFor running at once when it does not say.
    default_parallelism: usize,
    /// Starts gangs of engine mpi (`mpirun`); None where this build has no MPI.
    gangs: Option<crate::gang_order::Gangs>,
}

impl Executor {
    pub fn new(runtime: Arc<Runtime>, stores: Stores) -> Self {
        let default_parallelism = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Executor {
            runtime,
            stores,
            default_parallelism,
            gangs: None,
        }
    }

    /// This executor with `launcher` for the gangs whose workers are processes (engine mpi).
    pub fn with_gangs(self, launcher: crate::gang_order::Gangs) -> Self {
        Executor {
            gangs: Some(launcher),
            ..self
        }
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// Records a new run of `plan` and runs it to the end.
    pub async fn start(
        &self,
        plan: Plan,
        run_id: Option<String>,
        opts: &RunOptions,
    ) -> Result<RunSummary> {
        let run_id = run_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        // One executor per run: a second `run --run-id R` waits for nobody, it is refused.
        let _lease = RunLease::acquire(self.stores.meta.clone(), &run_id)?;
        let record = RunRecord {
            id: run_id.clone(),
            pipeline: plan.pipeline.metadata.name.clone(),
            pipeline_file: plan.pipeline_file.clone(),
            plan_json: serde_json::to_string(&plan)?,
            state: RUN_RUNNING.into(),
            created_at: weft_store::now(),
            finished_at: None,
            error: None,
        };
        let mut tasks = plan.order.clone();
        if plan.pipeline.spec.exit_handler.is_some() {
            tasks.push(EXIT_HANDLER.to_string());
        }
        for (name, art) in &plan.input_artifacts {
            let ty = plan
                .pipeline
                .spec
                .artifacts
                .get(name)
                .map(|d| format!("{:?}", d.ty))
                .unwrap_or_else(|| "Artifact".into());
            self.stores.meta.record_artifact(art, &ty)?;
        }
        self.stores.meta.create_run(&record, &tasks)?;
        self.drive(
            &run_id,
            Arc::new(plan),
            opts,
            BTreeMap::new(),
            BTreeMap::new(),
        )
        .await
    }

    /// Finishes an interrupted or failed run: tasks recorded as done keep their outputs; the
    /// rest run again.
    pub async fn resume(&self, run_id: &str, opts: &RunOptions) -> Result<RunSummary> {
        // Taken before anything is read: two resumes at once would both run what is left.
        let _lease = RunLease::acquire(self.stores.meta.clone(), run_id)?;
        let record = self.stores.meta.run(run_id)?;
        let plan: Plan =
            serde_json::from_str(&record.plan_json).context("reading the stored plan")?;
        let mut states = BTreeMap::new();
        let mut outputs = BTreeMap::new();
        let done = recorded_outputs(&self.stores, run_id)?;
        for t in self.stores.meta.tasks(run_id)? {
            if let Some((state, out)) = done.get(&t.name) {
                outputs.insert(t.name.clone(), out.clone());
                states.insert(t.name.clone(), *state);
                continue;
            }
            match t.state {
                TaskState::NotTriggered => {
                    states.insert(t.name.clone(), t.state);
                }
                _ => self
                    .stores
                    .meta
                    .set_task_state(run_id, &t.name, TaskState::Pending, None)?,
            }
        }
        self.stores.meta.reopen_run(run_id)?;
        self.drive(run_id, Arc::new(plan), opts, states, outputs)
            .await
    }

    /// Runs what is left of `run_id`; whatever stops it early (a store that cannot be
    /// written, a lost worker), its record says it ended and why, never RUNNING forever.
    async fn drive(
        &self,
        run_id: &str,
        plan: Arc<Plan>,
        opts: &RunOptions,
        states: BTreeMap<String, TaskState>,
        outputs: BTreeMap<String, TaskOutputs>,
    ) -> Result<RunSummary> {
        let result = Drive::new(self, run_id, plan, opts, states, outputs)
            .run()
            .await;
        if let Err(e) = &result {
            let why = format!(
                "interrupted by a host error: {e:#}; `wasm-run pipeline resume {run_id}` finishes the run"
            );
            if let Err(e) = self.stores.meta.finish_run(run_id, RUN_FAILED, Some(&why)) {
                tracing::error!(run = run_id, error = %e, "could not record the run's end");
            }
        }
        result.map_err(|e| e.context(HostFailure))
    }
}

/// A ready task with everything resolved.
#[derive(Clone)]
struct Job {
    run_id: String,
    task: String,
    spec: TaskSpec,
    plan: Arc<Plan>,
    component: String,
    params: BTreeMap<String, ParamValue>,
    inputs: BTreeMap<String, String>,
    input_types: BTreeMap<String, String>,
    cache_key: String,
    use_cache: bool,
    /// For a parallelFor: the items, the inputs fed from each item (input, field, type), and
    /// how many iterations run at once.
    items: Option<Vec<serde_json::Value>>,
    loop_params: Vec<(String, String, weft_spec::pipeline::ParamType)>,
    loop_parallelism: usize,
    /// Where tasks with resources of their own run (None: here, like every task).
    pods: Option<Pods>,
    /// What starts a gang's workers as processes (engine mpi); None: this build cannot.
    gangs: Option<crate::gang_order::Gangs>,
}

impl Job {
    /// The job of iteration `i` over `item`: its own name, parameters and cache key.
    fn iteration(&self, i: usize, item: &serde_json::Value) -> Result<Job> {
        let mut job = self.clone();
        job.task = format!("{}[{i}]", self.task);
        job.items = None;
        for (input, field, ty) in &self.loop_params {
            let value = if field == "." {
                item.clone()
            } else {
                item.get(field).cloned().ok_or_else(|| {
                    anyhow!("item {i} ({item}) has no field `{field}` for input `{input}`")
                })?
            };
            job.params.insert(input.clone(), from_json(*ty, value));
        }
        let decl = &self.plan.pipeline.spec.components[&self.spec.component];
        job.cache_key = cache_key(&KeyParts {
            component: &job.component,
            params: &job.params,
            inputs: &job.inputs,
            outputs: &decl.outputs,
            env: &job.spec.env,
            hermetic_seed: job.plan.hermetic_seed,
            workers: None,
            engine: None,
        });
        Ok(job)
    }
}

/// What the exit handler learns of the run.
struct RunStatus {
    state: String,
    error: String,
}

/// Runs one task to a terminal state: cache hit, success (with retries), or failure.
fn execute(
    runtime: &Runtime,
    stores: &Stores,
    job: Job,
    events: Option<UnboundedSender<RunEvent>>,
    cancel: Arc<AtomicBool>,
) -> (TaskState, Option<TaskOutputs>, Option<String>) {
    let emit = |e: RunEvent| {
        if let Some(tx) = &events {
            let _ = tx.send(e);
        }
    };
    let result = if job.items.is_some() {
        run_loop(runtime, stores, &job, &emit, &cancel)
    } else {
        run_with_retries(runtime, stores, &job, &emit, &cancel, None)
    };
    match result {
        Ok((state, out, duration, detail)) => {
            emit(RunEvent::TaskFinished {
                task: job.task.clone(),
                state,
                duration: Some(duration),
                detail,
            });
            (state, Some(out), None)
        }
        Err(Unfinished { state, why, host }) => {
            if let Err(e) = stores
                .meta
                .set_task_state(&job.run_id, &job.task, state, Some(&why))
            {
                tracing::error!(task = %job.task, error = %e, "recording the task's failure");
            }
            emit(RunEvent::TaskFinished {
                task: job.task.clone(),
                state,
                duration: None,
                detail: Some(why.clone()),
            });
            (state, None, host.then_some(why))
        }
    }
}

type Finished = (TaskState, TaskOutputs, Duration, Option<String>);
/// How a task (or an iteration) ended: done, or the state it failed in and why.
type Settled = std::result::Result<Finished, Unfinished>;

/// Why a task (or an iteration) did not finish.
#[derive(Clone, Debug)]
struct Unfinished {
    state: TaskState,
    why: String,
    /// The host failed it (a store, the network, the disk), not its step: the run is worth
    /// resuming once the host is well, and ends with the host-failure exit code.
    host: bool,
}

impl Unfinished {
    fn host(e: anyhow::Error) -> Self {
        Unfinished {
            state: TaskState::Failed,
            why: format!("{e:#}"),
            host: true,
        }
    }

    fn step(why: String) -> Self {
        Unfinished {
            state: TaskState::Failed,
            why,
            host: false,
        }
    }

    fn cancelled(why: &str) -> Self {
        Unfinished {
            state: TaskState::Cancelled,
            why: why.to_string(),
            host: false,
        }
    }
}

/// The tasks of `run_id` recorded as done (succeeded, or answered by the cache) with their
/// outputs, by task name: what `resume` keeps, and the iterations a resumed `parallelFor`
/// does not run (nor record) again. Stored outputs that do not parse are an error naming the
/// task, not an empty set.
fn recorded_outputs(
    stores: &Stores,
    run_id: &str,
) -> Result<BTreeMap<String, (TaskState, TaskOutputs)>> {
    let events = stores.meta.events(Some(run_id))?;
    let mut done = BTreeMap::new();
    for t in stores.meta.tasks(run_id)? {
        if !matches!(t.state, TaskState::Succeeded | TaskState::Skipped) {
            continue;
        }
        let params = match t.outputs_json.as_deref() {
            None => BTreeMap::new(),
            Some(json) => serde_json::from_str(json).with_context(|| {
                format!(
                    "run {run_id}: the recorded outputs of task `{}` do not parse",
                    t.name
                )
            })?,
        };
        let artifacts = events
            .iter()
            .filter(|e| e.task == t.name && e.direction == "output")
            .map(|e| (e.name.clone(), e.digest.clone()))
            .collect();
        done.insert(t.name, (t.state, TaskOutputs { params, artifacts }));
    }
    Ok(done)
}
