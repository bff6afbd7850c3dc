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
use weft_runtime::{InputArtifact, Limits, Runtime, StepError, StepRequest};
use weft_spec::pipeline::{ArtifactSource, ParamSource, TaskSpec};
use weft_spec::validate::EXIT_HANDLER;
use weft_spec::ParamValue;
use weft_store::{
    ArtifactStore, MetadataStore, MetricRecord, RunLease, RunRecord, TaskCompletion, TaskRecord,
    TaskState, RUN_FAILED, RUN_RUNNING, RUN_SUCCEEDED,
};

mod attempts;
mod loops;
mod replay;
mod scheduler;

pub use attempts::StepDone;
use attempts::*;
pub(crate) use attempts::{run_step, AttemptError};
use loops::run_loop;
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
        let result = self.drive_tasks(run_id, plan, opts, states, outputs).await;
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

    async fn drive_tasks(
        &self,
        run_id: &str,
        plan: Arc<Plan>,
        opts: &RunOptions,
        mut states: BTreeMap<String, TaskState>,
        mut outputs: BTreeMap<String, TaskOutputs>,
    ) -> Result<RunSummary> {
        let emit = |e: RunEvent| {
            if let Some(tx) = &opts.events {
                let _ = tx.send(e);
            }
        };
        let spec = &plan.pipeline.spec;
        emit(RunEvent::Started {
            run_id: run_id.to_string(),
            tasks: spec.tasks.len(),
        });
        for name in spec.tasks.keys() {
            states.entry(name.clone()).or_insert(TaskState::Pending);
        }
        let mut running = tokio::task::JoinSet::new();
        let mut in_flight = 0usize;
        let mut host_failures = Vec::new();
        loop {
            // Decide what can be decided: skip, not-trigger, cancel, or launch.
            let mut progressed = true;
            while progressed {
                progressed = false;
                let cancelled = opts.cancel.load(Ordering::Relaxed);
                let ready: Vec<(String, scheduler::Verdict)> =
                    scheduler::ready(&plan.order, &plan.upstream, &states, cancelled)
                        .into_iter()
                        .map(|(n, v)| (n.to_string(), v))
                        .collect();
                for (name, verdict) in ready {
                    let name = &name;
                    let decided = match verdict {
                        scheduler::Verdict::End(state, why) => Some((state, why)),
                        scheduler::Verdict::Run => match &spec.tasks[name].when {
                            None => None,
                            Some(cond) => match condition::holds(cond, &|src| {
                                resolve_param(&plan, &outputs, None, src)
                            }) {
                                Ok(true) => None,
                                Ok(false) => Some((
                                    TaskState::NotTriggered,
                                    "condition is false".to_string(),
                                )),
                                Err(e) => Some((
                                    TaskState::Failed,
                                    format!("evaluating the condition: {e}"),
                                )),
                            },
                        },
                    };
                    let job = match decided {
                        Some(end) => Err(end),
                        None if in_flight >= opts.parallelism.max(1) => continue,
                        None => self
                            .prepare(run_id, &plan, name, &spec.tasks[name], &outputs, None)
                            .map_err(|e| (TaskState::Failed, format!("{e:#}"))),
                    };
                    progressed = true;
                    match job {
                        Err((state, why)) => {
                            self.stores
                                .meta
                                .set_task_state(run_id, name, state, Some(&why))?;
                            states.insert(name.clone(), state);
                            emit(RunEvent::TaskFinished {
                                task: name.clone(),
                                state,
                                duration: None,
                                detail: Some(why),
                            });
                        }
                        Ok(job) => {
                            states.insert(name.clone(), TaskState::Running);
                            in_flight += 1;
                            let job = Job {
                                pods: opts.pods.clone(),
                                ..job
                            };
                            let (runtime, stores) = (self.runtime.clone(), self.stores.clone());
                            let (events, cancel) = (opts.events.clone(), opts.cancel.clone());
                            running.spawn_blocking(move || {
                                let name = job.task.clone();
                                (name, execute(&runtime, &stores, job, events, cancel))
                            });
                        }
                    }
                }
            }
            if in_flight == 0 {
                break;
            }
            let (name, result) = running.join_next().await.expect("a task is in flight")?;
            in_flight -= 1;
            let (state, out, host) = result;
            if let Some(why) = host {
                host_failures.push(format!("task `{name}`: {why}"));
            }
            states.insert(name.clone(), state);
            if let Some(out) = out {
                outputs.insert(name, out);
            }
        }

        let (mut state, failed) = scheduler::outcome(&states, opts.cancel.load(Ordering::Relaxed));
        let mut error =
            (!failed.is_empty()).then(|| format!("failed tasks: {}", failed.join(", ")));
        if let Some(handler) = &spec.exit_handler {
            let done = states.get(EXIT_HANDLER).is_some_and(|s| s.has_outputs());
            if !done {
                let status = RunStatus {
                    state: state.to_string(),
                    error: error.clone().unwrap_or_default(),
                };
                let handler_state = self
                    .run_exit_handler(run_id, &plan, handler, &outputs, &status, opts)
                    .await?;
                if handler_state == TaskState::Failed && state == RUN_SUCCEEDED {
                    state = RUN_FAILED;
                    error = Some("the exit handler failed".into());
                }
            }
        }
        let host_failure = (!host_failures.is_empty()).then(|| {
            format!(
                "the host failed {}; `wasm-run pipeline resume {run_id}` finishes the run",
                host_failures.join("; ")
            )
        });
        if host_failure.is_some() {
            error = host_failure.clone();
        }
        self.stores
            .meta
            .finish_run(run_id, state, error.as_deref())?;
        Ok(RunSummary {
            run_id: run_id.to_string(),
            state: state.to_string(),
            tasks: self.stores.meta.tasks(run_id)?,
            host_failure,
        })
    }

    /// Runs the exit handler, told the run's status; even after a cancel, since it is the
    /// cleanup. Its end state.
    async fn run_exit_handler(
        &self,
        run_id: &str,
        plan: &Arc<Plan>,
        handler: &TaskSpec,
        outputs: &BTreeMap<String, TaskOutputs>,
        status: &RunStatus,
        opts: &RunOptions,
    ) -> Result<TaskState> {
        let job = match self.prepare(run_id, plan, EXIT_HANDLER, handler, outputs, Some(status)) {
            Ok(job) => Job {
                pods: opts.pods.clone(),
                ..job
            },
            Err(e) => {
                let why = format!("{e:#}");
                self.stores.meta.set_task_state(
                    run_id,
                    EXIT_HANDLER,
                    TaskState::Failed,
                    Some(&why),
                )?;
                return Ok(TaskState::Failed);
            }
        };
        let (runtime, stores, events) = (
            self.runtime.clone(),
            self.stores.clone(),
            opts.events.clone(),
        );
        let cancel = Arc::new(AtomicBool::new(false));
        let (state, ..) =
            tokio::task::spawn_blocking(move || execute(&runtime, &stores, job, events, cancel))
                .await?;
        Ok(state)
    }

    /// Resolves a ready task's inputs and cache key.
    fn prepare(
        &self,
        run_id: &str,
        plan: &Arc<Plan>,
        name: &str,
        task: &TaskSpec,
        outputs: &BTreeMap<String, TaskOutputs>,
        status: Option<&RunStatus>,
    ) -> Result<Job> {
        let task = task.clone();
        let decl = plan.pipeline.spec.components[&task.component].clone();
        let mut params = BTreeMap::new();
        let mut loop_params = Vec::new();
        for (input, d) in &decl.inputs.params {
            match task.params.get(input) {
                Some(src) if src.loop_item.is_some() => {
                    loop_params.push((
                        input.clone(),
                        src.loop_item.clone().unwrap_or_default(),
                        d.ty,
                    ));
                }
                Some(src) => {
                    let value =
                        resolve_param(plan, outputs, status, src).map_err(|e| anyhow!(e))?;
                    // An int feeding a float input is widened, as validation allowed.
                    let value = match (d.ty, value) {
                        (weft_spec::pipeline::ParamType::Float, ParamValue::Int(i)) => {
                            ParamValue::Float(i as f64)
                        }
                        (_, v) => v,
                    };
                    params.insert(input.clone(), value);
                }
                None => {
                    if let Some(v) = &d.default {
                        params.insert(input.clone(), from_json(d.ty, v.clone()));
                    }
                }
            }
        }
        let mut inputs = BTreeMap::new();
        let mut input_types = BTreeMap::new();
        for (input, ty) in &decl.inputs.artifacts {
            let src = &task.artifacts[input];
            inputs.insert(
                input.clone(),
                resolve_artifact(plan, outputs, src).map_err(|e| anyhow!(e))?,
            );
            input_types.insert(input.clone(), format!("{ty:?}"));
        }
        let component = plan.components[&task.component].clone();
        let key = cache_key(&KeyParts {
            component: &component,
            params: &params,
            inputs: &inputs,
            outputs: &decl.outputs,
            env: &task.env,
            hermetic_seed: plan.hermetic_seed,
        });
        let items = match &task.parallel_for {
            None => None,
            Some(pf) => {
                let list = match &pf.items.value {
                    Some(v) => v.clone(),
                    None => crate::plan::to_json(
                        &resolve_param(plan, outputs, None, &pf.items).map_err(|e| anyhow!(e))?,
                    ),
                };
                match list {
                    serde_json::Value::Array(items) => Some(items),
                    other => anyhow::bail!("parallelFor items must be a list, got {other}"),
                }
            }
        };
        let loop_parallelism = task
            .parallel_for
            .as_ref()
            .and_then(|pf| pf.parallelism)
            .map(|p| p as usize)
            .unwrap_or(self.default_parallelism);
        Ok(Job {
            items,
            loop_params,
            loop_parallelism,
            run_id: run_id.to_string(),
            task: name.to_string(),
            spec: task.clone(),
            plan: plan.clone(),
            component,
            params,
            inputs,
            input_types,
            cache_key: key,
            use_cache: plan.cache && task.cache.unwrap_or(true),
            pods: None,
        })
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
        });
        Ok(job)
    }
}

/// What the exit handler learns of the run.
struct RunStatus {
    state: String,
    error: String,
}

fn resolve_param(
    plan: &Plan,
    outputs: &BTreeMap<String, TaskOutputs>,
    status: Option<&RunStatus>,
    src: &ParamSource,
) -> Result<ParamValue, String> {
    if let Some(field) = &src.run_status {
        let status = status.ok_or("`runStatus` is only available to the exit handler")?;
        let value = if field == "error" {
            &status.error
        } else {
            &status.state
        };
        return Ok(ParamValue::String(value.clone()));
    }
    if let Some(v) = &src.value {
        return Ok(ParamValue::infer_json(v));
    }
    if let Some(p) = &src.param {
        return plan
            .params
            .get(p)
            .cloned()
            .ok_or_else(|| format!("no pipeline parameter `{p}`"));
    }
    let (t, o) = (
        src.task.as_deref().unwrap_or(""),
        src.output.as_deref().unwrap_or(""),
    );
    outputs
        .get(t)
        .and_then(|out| out.params.get(o))
        .cloned()
        .ok_or_else(|| format!("task `{t}` produced no output parameter `{o}`"))
}

fn resolve_artifact(
    plan: &Plan,
    outputs: &BTreeMap<String, TaskOutputs>,
    src: &ArtifactSource,
) -> Result<String, String> {
    if let Some(a) = &src.artifact {
        return plan
            .input_artifacts
            .get(a)
            .map(|s| s.digest.clone())
            .ok_or_else(|| format!("no pipeline artifact `{a}`"));
    }
    let (t, o) = (
        src.task.as_deref().unwrap_or(""),
        src.output.as_deref().unwrap_or(""),
    );
    outputs
        .get(t)
        .and_then(|out| out.artifacts.get(o))
        .cloned()
        .ok_or_else(|| format!("task `{t}` produced no output artifact `{o}`"))
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
