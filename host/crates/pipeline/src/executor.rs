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
    TaskState, RUN_CANCELLED, RUN_FAILED, RUN_RUNNING, RUN_SUCCEEDED,
};

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

/// One output of a replayed run, next to the original.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReplayedOutput {
    pub task: String,
    pub output: String,
    /// `artifact` (compared by digest) or `param` (compared by value).
    pub kind: &'static str,
    pub original: String,
    pub replayed: Option<String>,
}

impl ReplayedOutput {
    pub fn matches(&self) -> bool {
        self.replayed.as_deref() == Some(self.original.as_str())
    }
}

/// The reproducibility proof of a run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReplayReport {
    pub original: String,
    pub replay: RunSummary,
    /// In the original run's task order.
    pub outputs: Vec<ReplayedOutput>,
    /// The first task (in dependency order) whose outputs differ: where to look first, since
    /// tasks after it consumed what it made.
    pub first_divergence: Option<String>,
    /// Original outputs whose stored copy no longer matched its digest before the replay
    /// (damaged on disk, not produced that way): the replay, producing them again, replaced
    /// them.
    pub damaged_originals: Vec<String>,
}

impl ReplayReport {
    pub fn reproduced(&self) -> bool {
        self.replay.state == RUN_SUCCEEDED && self.outputs.iter().all(ReplayedOutput::matches)
    }
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
                for name in &plan.order {
                    if states[name] != TaskState::Pending {
                        continue;
                    }
                    let ups = &plan.upstream[name];
                    if ups.iter().any(|u| !states[u].is_terminal()) {
                        continue;
                    }
                    let decided = if opts.cancel.load(Ordering::Relaxed) {
                        Some((TaskState::Cancelled, "run cancelled".to_string()))
                    } else if let Some(u) = ups
                        .iter()
                        .find(|u| matches!(states[*u], TaskState::Failed | TaskState::Cancelled))
                    {
                        Some((
                            TaskState::Cancelled,
                            format!("upstream task `{u}` did not succeed"),
                        ))
                    } else if let Some(u) =
                        ups.iter().find(|u| states[*u] == TaskState::NotTriggered)
                    {
                        Some((
                            TaskState::NotTriggered,
                            format!("upstream task `{u}` was not triggered"),
                        ))
                    } else {
                        match &spec.tasks[name].when {
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
                        }
                    };
                    if let Some((state, why)) = decided {
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
                        progressed = true;
                        continue;
                    }
                    if in_flight >= opts.parallelism.max(1) {
                        continue;
                    }
                    let job = match self.prepare(
                        run_id,
                        &plan,
                        name,
                        &spec.tasks[name],
                        &outputs,
                        None,
                    ) {
                        Ok(job) => Job {
                            pods: opts.pods.clone(),
                            ..job
                        },
                        Err(e) => {
                            let why = format!("{e:#}");
                            self.stores.meta.set_task_state(
                                run_id,
                                name,
                                TaskState::Failed,
                                Some(&why),
                            )?;
                            states.insert(name.clone(), TaskState::Failed);
                            emit(RunEvent::TaskFinished {
                                task: name.clone(),
                                state: TaskState::Failed,
                                duration: None,
                                detail: Some(why),
                            });
                            progressed = true;
                            continue;
                        }
                    };
                    states.insert(name.clone(), TaskState::Running);
                    in_flight += 1;
                    progressed = true;
                    let runtime = self.runtime.clone();
                    let stores = self.stores.clone();
                    let events = opts.events.clone();
                    let cancel = opts.cancel.clone();
                    running.spawn_blocking(move || {
                        let name = job.task.clone();
                        (name, execute(&runtime, &stores, job, events, cancel))
                    });
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

        let any_failed = states.values().any(|s| *s == TaskState::Failed);
        let state = if opts.cancel.load(Ordering::Relaxed) {
            RUN_CANCELLED
        } else if any_failed {
            RUN_FAILED
        } else {
            RUN_SUCCEEDED
        };
        let failed: Vec<&String> = states
            .iter()
            .filter(|(_, s)| **s == TaskState::Failed)
            .map(|(n, _)| n)
            .collect();
        let mut error = (!failed.is_empty()).then(|| {
            format!(
                "failed tasks: {}",
                failed
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
        let mut state = state;
        if let Some(handler) = &spec.exit_handler {
            let done = states.get(EXIT_HANDLER).is_some_and(|s| s.has_outputs());
            if !done {
                let status = RunStatus {
                    state: state.to_string(),
                    error: error.clone().unwrap_or_default(),
                };
                let handler_state = match self.prepare(
                    run_id,
                    &plan,
                    EXIT_HANDLER,
                    handler,
                    &outputs,
                    Some(&status),
                ) {
                    Ok(job) => {
                        let job = Job {
                            pods: opts.pods.clone(),
                            ..job
                        };
                        let runtime = self.runtime.clone();
                        let stores = self.stores.clone();
                        let events = opts.events.clone();
                        // The handler runs even after a cancel: it is the cleanup.
                        let cancel = Arc::new(AtomicBool::new(false));
                        tokio::task::spawn_blocking(move || {
                            execute(&runtime, &stores, job, events, cancel)
                        })
                        .await?
                        .0
                    }
                    Err(e) => {
                        let why = format!("{e:#}");
                        self.stores.meta.set_task_state(
                            run_id,
                            EXIT_HANDLER,
                            TaskState::Failed,
                            Some(&why),
                        )?;
                        TaskState::Failed
                    }
                };
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

    /// Re-executes a hermetic run from its stored plan, cache off, and compares every output
    /// (artifact digests and parameter values) with the original's.
    pub async fn replay(&self, run_id: &str, opts: &RunOptions) -> Result<ReplayReport> {
        let record = self.stores.meta.run(run_id)?;
        let mut plan: Plan =
            serde_json::from_str(&record.plan_json).context("reading the stored plan")?;
        if plan.hermetic_seed.is_none() {
            anyhow::bail!("run {run_id} was not hermetic, so its outputs may depend on time and randomness; start runs with --hermetic-seed N to replay them");
        }
        plan.cache = false;
        plan.replay_of = Some(plan.replay_of.clone().unwrap_or_else(|| run_id.to_string()));
        let n = self
            .stores
            .meta
            .runs(usize::MAX)?
            .iter()
            .filter(|r| r.id.starts_with(&format!("{run_id}-replay-")))
            .count();
        let replay_id = format!("{run_id}-replay-{}", n + 1);
        let order = plan.order.clone();
        let original_tasks = self.stores.meta.tasks(run_id)?;
        let original_events = self.stores.meta.events(Some(run_id))?;
        // Checked before the replay, which repairs what it produces again: the report says so.
        let mut damaged_originals = Vec::new();
        for e in original_events.iter().filter(|e| e.direction == "output") {
            if !damaged_originals.contains(&e.digest) && !self.stores.artifacts.verify(&e.digest)? {
                damaged_originals.push(e.digest.clone());
            }
        }
        let summary = self.start(plan, Some(replay_id.clone()), opts).await?;

        let replay_events = self.stores.meta.events(Some(&replay_id))?;
        let mut outputs = Vec::new();
        for t in &original_tasks {
            if !t.state.has_outputs() {
                continue;
            }
            for e in original_events
                .iter()
                .filter(|e| e.task == t.name && e.direction == "output")
            {
                let replayed = replay_events
                    .iter()
                    .find(|r| r.task == e.task && r.name == e.name && r.direction == "output");
                outputs.push(ReplayedOutput {
                    task: t.name.clone(),
                    output: e.name.clone(),
                    kind: "artifact",
                    original: e.digest.clone(),
                    replayed: replayed.map(|r| r.digest.clone()),
                });
            }
            let replayed_task = summary.tasks.iter().find(|r| r.name == t.name);
            let original_params: BTreeMap<String, serde_json::Value> =
                serde_json::from_str(t.outputs_json.as_deref().unwrap_or("{}"))
                    .with_context(|| format!("the recorded outputs of task `{}`", t.name))?;
            let replayed_params: BTreeMap<String, serde_json::Value> = replayed_task
                .and_then(|r| r.outputs_json.as_deref())
                .and_then(|j| serde_json::from_str(j).ok())
                .unwrap_or_default();
            for (name, value) in original_params {
                outputs.push(ReplayedOutput {
                    task: t.name.clone(),
                    output: name.clone(),
                    kind: "param",
                    original: value.to_string(),
                    replayed: replayed_params.get(&name).map(|v| v.to_string()),
                });
            }
        }
        // Tasks in dependency order (iterations after their loop, in their recorded order).
        let rank = |task: &str| {
            let base = task.split('[').next().unwrap_or(task);
            order.iter().position(|t| t == base).unwrap_or(usize::MAX)
        };
        outputs.sort_by_key(|o| rank(&o.task));
        let first_divergence = outputs
            .iter()
            .find(|o| !o.matches())
            .map(|o| o.task.clone());
        Ok(ReplayReport {
            original: run_id.to_string(),
            replay: summary,
            outputs,
            first_divergence,
            damaged_originals,
        })
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

/// Runs every iteration of a parallelFor (each cached, retried and recorded as `task[i]`), then
/// fans their outputs in: parameters as lists, artifacts as one directory of `0/`, `1/`, ...
fn run_loop(
    runtime: &Runtime,
    stores: &Stores,
    job: &Job,
    emit: &(dyn Fn(RunEvent) + Sync),
    cancel: &Arc<AtomicBool>,
) -> Settled {
    let fail = Unfinished::host;
    let started = Instant::now();
    let items = job.items.clone().unwrap_or_default();
    let iterations: Vec<Job> = items
        .iter()
        .enumerate()
        .map(|(i, item)| job.iteration(i, item))
        .collect::<Result<_>>()
        .map_err(fail)?;
    for it in &iterations {
        stores
            .meta
            .add_task(&job.run_id, &it.task)
            .map_err(|e| fail(e.into()))?;
    }
    stores
        .meta
        .start_task(&job.run_id, &job.task, 1, &job.component, "")
        .map_err(|e| fail(e.into()))?;

    // Iterations that finished before an interruption keep their outputs and records.
    let mut before = recorded_outputs(stores, &job.run_id).map_err(fail)?;
    let results: Vec<std::sync::Mutex<Option<Settled>>> = iterations
        .iter()
        .map(|it| {
            std::sync::Mutex::new(before.remove(&it.task).map(|(state, out)| {
                Ok((
                    state,
                    out,
                    Duration::ZERO,
                    Some("done before the resume".into()),
                ))
            }))
        })
        .collect();
    let todo: Vec<usize> = (0..iterations.len())
        .filter(|&i| results[i].lock().unwrap().is_none())
        .collect();
    // An iteration's end: reported, recorded when it failed, kept for the fan-in.
    let settle = |i: usize, r: Settled| {
        let it = &iterations[i];
        match &r {
            Ok((state, _, d, detail)) => emit(RunEvent::TaskFinished {
                task: it.task.clone(),
                state: *state,
                duration: Some(*d),
                detail: detail.clone(),
            }),
            Err(Unfinished { state, why, .. }) => {
                if let Err(e) = stores
                    .meta
                    .set_task_state(&job.run_id, &it.task, *state, Some(why))
                {
                    tracing::error!(task = %it.task, error = %e, "could not record the iteration's failure");
                }
                emit(RunEvent::TaskFinished {
                    task: it.task.clone(),
                    state: *state,
                    duration: None,
                    detail: Some(why.clone()),
                });
            }
        }
        *results[i].lock().unwrap() = Some(r);
    };
    let shards = job
        .spec
        .parallel_for
        .as_ref()
        .and_then(|pf| pf.pods)
        .filter(|_| job.pods.is_some());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| match (shards, &job.pods) {
        // Sharded across pods: shard k runs iterations k, k + n, k + 2n, ... in one pod.
        (Some(n), Some(pods)) => {
            let n = (n as usize).clamp(1, todo.len().max(1));
            for k in 0..n {
                let (settle, iterations, todo) = (&settle, &iterations, &todo);
                scope.spawn(move || {
                    let mine: Vec<usize> = todo.iter().copied().skip(k).step_by(n).collect();
                    run_shard(
                        runtime, stores, job, pods, k, &mine, iterations, emit, cancel,
                    )
                    .into_iter()
                    .for_each(|(i, r)| settle(i, r));
                });
            }
        }
        _ => {
            for _ in 0..job.loop_parallelism.max(1).min(todo.len().max(1)) {
                let (settle, iterations, next, todo) = (&settle, &iterations, &next, &todo);
                scope.spawn(move || {
                    while let Some(&i) = todo.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let it = &iterations[i];
                        settle(i, run_with_retries(runtime, stores, it, emit, cancel, None));
                    }
                });
            }
        }
    });
    let mut done = Vec::new();
    for (i, r) in results.into_iter().enumerate() {
        match r.into_inner().unwrap() {
            Some(Ok((_, out, ..))) => done.push(out),
            Some(Err(u)) => {
                let why = format!("iteration {i} {}: {}", u.state.as_str(), u.why);
                return Err(Unfinished { why, ..u });
            }
            None => return Err(Unfinished::cancelled(&format!("iteration {i} did not run"))),
        }
    }

    // Fan-in.
    let decl = &job.plan.pipeline.spec.components[&job.spec.component];
    let mut params = BTreeMap::new();
    for name in decl.outputs.params.keys() {
        let values: Vec<serde_json::Value> = done
            .iter()
            .map(|o| {
                o.params
                    .get(name)
                    .map(crate::plan::to_json)
                    .unwrap_or(serde_json::Value::Null)
            })
            .collect();
        params.insert(
            name.clone(),
            ParamValue::Json(serde_json::Value::Array(values)),
        );
    }
    let mut outputs = Vec::new();
    let mut out_map = BTreeMap::new();
    for (name, ty) in &decl.outputs.artifacts {
        let scratch = stores.artifacts.scratch_dir().map_err(|e| fail(e.into()))?;
        let combined = scratch.path().join(name);
        for (i, o) in done.iter().enumerate() {
            let digest = &o.artifacts[name];
            let local = stores
                .artifacts
                .checked_local(digest)
                .map_err(|e| fail(e.into()))?;
            // Copied, not hard-linked: an artifact's files have one link each (see weft-tree).
            weft_store::copy_tree(&local, &combined.join(i.to_string()))
                .map_err(|e| fail(e.into()))?;
        }
        std::fs::create_dir_all(&combined).map_err(|e| fail(e.into()))?;
        let stored = stores
            .artifacts
            .ingest_dir(&combined)
            .map_err(|e| fail(e.into()))?;
        out_map.insert(name.clone(), stored.digest.clone());
        outputs.push((name.clone(), stored, format!("{ty:?}")));
    }
    let duration = started.elapsed();
    let outputs_json = serde_json::to_string(&params).map_err(|e| fail(e.into()))?;
    stores
        .meta
        .complete_task(
            &job.run_id,
            &job.task,
            &TaskCompletion {
                state: TaskState::Succeeded,
                outputs_json,
                inputs: input_events(job),
                outputs,
                metrics: Vec::new(),
                cache_key: None,
                cached_from: None,
                duration_ms: duration.as_secs_f64() * 1e3,
                log_path: None,
            },
        )
        .map_err(|e| fail(e.into()))?;
    let detail = format!("{} iterations", iterations.len());
    Ok((
        TaskState::Succeeded,
        TaskOutputs {
            params,
            artifacts: out_map,
        },
        duration,
        Some(detail),
    ))
}

/// Shard `k` of a sharded parallelFor: the iterations `mine` not answered by the cache run in
/// one pod (first attempts); those that fail there and may be retried go through the usual
/// retries from attempt 2 (in pods of their own when the task has resources, else here).
#[allow(clippy::too_many_arguments)]
fn run_shard(
    runtime: &Runtime,
    stores: &Stores,
    job: &Job,
    pods: &Pods,
    k: usize,
    mine: &[usize],
    iterations: &[Job],
    emit: &(dyn Fn(RunEvent) + Sync),
    cancel: &Arc<AtomicBool>,
) -> Vec<(usize, Settled)> {
    let fail = Unfinished::host;
    let mut settled = Vec::new();
    let mut pending = Vec::new();
    for &i in mine {
        let it = &iterations[i];
        if it.use_cache {
            match cache_hit(stores, it) {
                Ok(Some(hit)) => {
                    settled.push((i, Ok(hit)));
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    settled.push((i, Err(fail(e))));
                    continue;
                }
            }
        }
        pending.push(i);
    }
    if pending.is_empty() {
        return settled;
    }
    let mut steps = Vec::new();
    for &i in &pending {
        let it = &iterations[i];
        emit(RunEvent::TaskStarted {
            task: it.task.clone(),
            attempt: 1,
        });
        let started = stores.meta.start_task(
            &it.run_id,
            &it.task,
            1,
            &it.component,
            &log_path(stores, it, 1).display().to_string(),
        );
        if let Err(e) = started {
            let why = fail(e.into());
            settled.extend(pending.iter().map(|&i| (i, Err(why.clone()))));
            return settled;
        }
        steps.push(ordered_step(it, 1));
    }
    let resources = job.spec.resources.clone().unwrap_or_default();
    let name = format!("{}-shard-{k}", job.task);
    let results = match in_pod(
        stores,
        pods,
        &name,
        steps,
        job.loop_parallelism,
        &resources,
        cancel,
    ) {
        Ok(results) => results,
        Err(e) => {
            let why = match e {
                AttemptError::Cancelled => Unfinished::cancelled("cancelled"),
                AttemptError::Host(e) => fail(e),
                AttemptError::Step(m) => Unfinished::step(m),
            };
            settled.extend(pending.iter().map(|&i| (i, Err(why.clone()))));
            return settled;
        }
    };
    for (&i, result) in pending.iter().zip(results) {
        let it = &iterations[i];
        let log = log_path(stores, it, 1);
        if let Err(e) = keep_log(&log, &result.log) {
            settled.push((i, Err(fail(e))));
            continue;
        }
        let r = match result.outcome {
            Ok(done) => record_success(stores, it, done, &log).map_err(fail),
            Err(_) if cancel.load(Ordering::Relaxed) => Err(Unfinished::cancelled("cancelled")),
            // Retried by the task's policy (backoff included), each retry a pod of its own
            // when the task has resources, else here.
            Err(message) => run_with_retries(runtime, stores, it, emit, cancel, Some(message)),
        };
        settled.push((i, r));
    }
    settled
}

fn run_with_retries(
    runtime: &Runtime,
    stores: &Stores,
    job: &Job,
    emit: &(dyn Fn(RunEvent) + Sync),
    cancel: &Arc<AtomicBool>,
    first_failed: Option<String>,
) -> Settled {
    let fail = Unfinished::host;
    let retry = job.spec.retry.clone();
    let limit = retry.as_ref().map(|r| r.limit).unwrap_or(0);
    let mut delay = retry
        .as_ref()
        .and_then(|r| r.backoff.as_deref())
        .and_then(|b| humantime::parse_duration(b).ok())
        .unwrap_or(Duration::from_secs(1));
    let factor = retry.as_ref().and_then(|r| r.factor).unwrap_or(2.0);
    let start = |attempt: u32| {
        emit(RunEvent::TaskStarted {
            task: job.task.clone(),
            attempt,
        });
        run_once(runtime, stores, job, attempt, cancel)
    };
    let mut attempt = 1;
    // The first attempt, unless it already ran elsewhere (in a shard's pod) and failed.
    let mut outcome = match first_failed {
        Some(message) => Err(AttemptError::Step(message)),
        None => {
            if job.use_cache {
                if let Some(hit) = cache_hit(stores, job).map_err(fail)? {
                    return Ok(hit);
                }
            }
            start(attempt)
        }
    };
    loop {
        match outcome {
            Ok(done) => return Ok(done),
            Err(AttemptError::Cancelled) => return Err(Unfinished::cancelled("cancelled")),
            Err(AttemptError::Host(e)) => return Err(fail(e)),
            Err(AttemptError::Step(e)) if attempt <= limit && !cancel.load(Ordering::Relaxed) => {
                emit(RunEvent::TaskRetrying {
                    task: job.task.clone(),
                    attempt,
                    delay,
                    error: e,
                });
                let until = Instant::now() + delay;
                while Instant::now() < until && !cancel.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(10).min(until - Instant::now()));
                }
                delay = delay.mul_f64(factor);
                attempt += 1;
                outcome = start(attempt);
            }
            Err(AttemptError::Step(e)) => return Err(Unfinished::step(e)),
        }
    }
}

pub(crate) enum AttemptError {
    /// The step failed (may be retried).
    Step(String),
    Cancelled,
    /// The host failed (store, I/O): not the step's fault, not retried.
    Host(anyhow::Error),
}

fn cache_hit(stores: &Stores, job: &Job) -> Result<Option<Finished>> {
    let Some(entry) = stores.meta.cache_lookup(&job.cache_key)? else {
        return Ok(None);
    };
    // A hit is only as good as its artifacts: if one is gone or altered, forget the entry.
    for (_, digest) in &entry.artifacts {
        if !stores.artifacts.verify(digest)? {
            tracing::warn!(task = %job.task, %digest, "cached artifact missing or altered; running instead");
            stores.meta.cache_forget(&job.cache_key)?;
            return Ok(None);
        }
    }
    let params: BTreeMap<String, ParamValue> = serde_json::from_str(&entry.outputs_json)?;
    let decl = &job.plan.pipeline.spec.components[&job.spec.component];
    let outputs = entry
        .artifacts
        .iter()
        .map(|(name, digest)| {
            let stored = weft_store::StoredArtifact {
                digest: digest.clone(),
                bytes: 0,
                files: 0,
            };
            let ty = decl
                .outputs
                .artifacts
                .get(name)
                .map(|t| format!("{t:?}"))
                .unwrap_or_else(|| "Artifact".into());
            (name.clone(), stored, ty)
        })
        .collect();
    stores.meta.complete_task(
        &job.run_id,
        &job.task,
        &TaskCompletion {
            state: TaskState::Skipped,
            outputs_json: entry.outputs_json.clone(),
            inputs: input_events(job),
            outputs,
            metrics: Vec::new(),
            cache_key: Some(job.cache_key.clone()),
            cached_from: Some(entry.run_id.clone()),
            duration_ms: 0.0,
            log_path: None,
        },
    )?;
    let out = TaskOutputs {
        params,
        artifacts: entry.artifacts.into_iter().collect(),
    };
    Ok(Some((
        TaskState::Skipped,
        out,
        Duration::ZERO,
        Some(format!("cache hit from run {}", entry.run_id)),
    )))
}

fn input_events(job: &Job) -> Vec<(String, String, String)> {
    job.inputs
        .iter()
        .map(|(n, d)| (n.clone(), d.clone(), job.input_types[n].clone()))
        .collect()
}

/// What a step that succeeded produced (its artifacts already in the store).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct StepDone {
    pub params: BTreeMap<String, ParamValue>,
    pub artifacts: BTreeMap<String, weft_store::StoredArtifact>,
    /// (name, value, step) of each metric the step logged; values as reported, NaN included.
    #[serde(with = "metric_list")]
    pub metrics: Vec<(String, f64, Option<u64>)>,
    pub duration_ms: f64,
}

/// [`StepDone::metrics`] in JSON (a pod's results): values through [`weft_spec::float`], so a
/// NaN or infinite metric reaches the runner instead of failing to read back from `null`.
mod metric_list {
    use weft_spec::float::Float;

    type Metric = (String, f64, Option<u64>);

    pub fn serialize<S: serde::Serializer>(m: &[Metric], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.iter().map(|(name, v, step)| (name, Float(*v), step)))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Metric>, D::Error> {
        let m: Vec<(String, Float, Option<u64>)> = serde::Deserialize::deserialize(d)?;
        Ok(m.into_iter()
            .map(|(name, Float(v), step)| (name, v, step))
            .collect())
    }
}

/// The step `job` is at `attempt`: what it runs on, pinned by digest.
fn ordered_step(job: &Job, attempt: u32) -> OrderedStep {
    let decl = &job.plan.pipeline.spec.components[&job.spec.component];
    OrderedStep {
        task: job.task.clone(),
        // A replay shows the steps the original run's id, so that identical steps see
        // identical input.
        context_run: job
            .plan
            .replay_of
            .clone()
            .unwrap_or_else(|| job.run_id.clone()),
        attempt,
        component: job.component.clone(),
        component_artifact: None,
        params: job.params.clone(),
        inputs: job.inputs.clone(),
        outputs: decl.outputs.artifacts.keys().cloned().collect(),
        output_params: decl.outputs.params.clone(),
        env: job.spec.env.clone(),
        hermetic_seed: job.plan.hermetic_seed,
        timeout: job.spec.timeout.clone(),
        memory: job.spec.memory.clone(),
    }
}

fn log_path(stores: &Stores, job: &Job, attempt: u32) -> PathBuf {
    let name = if attempt == 1 {
        format!("{}.log", job.task)
    } else {
        format!("{}.attempt-{attempt}.log", job.task)
    };
    stores.logs_dir.join(&job.run_id).join(name)
}

fn run_once(
    runtime: &Runtime,
    stores: &Stores,
    job: &Job,
    attempt: u32,
    cancel: &Arc<AtomicBool>,
) -> std::result::Result<Finished, AttemptError> {
    let host = |e: anyhow::Error| AttemptError::Host(e);
    let log_path = log_path(stores, job, attempt);
    stores
        .meta
        .start_task(
            &job.run_id,
            &job.task,
            attempt,
            &job.component,
            &log_path.display().to_string(),
        )
        .map_err(|e| host(e.into()))?;
    let step = ordered_step(job, attempt);
    let done = match (&job.pods, &job.spec.resources) {
        // A task with resources of its own runs in its own pod where there are pods.
        (Some(pods), Some(resources)) => {
            let mut results = in_pod(stores, pods, &job.task, vec![step], 1, resources, cancel)?;
            let result = results.pop().expect("one step, one result");
            keep_log(&log_path, &result.log).map_err(host)?;
            result.outcome.map_err(AttemptError::Step)?
        }
        _ => run_step(
            runtime,
            &stores.artifacts,
            &step,
            &component_path(&stores.components_dir, &job.component),
            &log_path,
            cancel,
        )?,
    };
    record_success(stores, job, done, &log_path).map_err(host)
}

/// Runs `steps` in one pod through `pods`, their components shipped as artifacts.
fn in_pod(
    stores: &Stores,
    pods: &Pods,
    name: &str,
    mut steps: Vec<OrderedStep>,
    parallelism: usize,
    resources: &weft_spec::pipeline::TaskResources,
    cancel: &Arc<AtomicBool>,
) -> std::result::Result<Vec<crate::work_order::StepResult>, AttemptError> {
    let host = |e: anyhow::Error| AttemptError::Host(e);
    for step in &mut steps {
        let file = component_path(&stores.components_dir, &step.component);
        let shipped = stores.artifacts.import(&file).map_err(|e| host(e.into()))?;
        step.component_artifact = Some(shipped.digest);
    }
    let order = crate::work_order::put_json(
        &stores.artifacts,
        crate::work_order::ORDER_FILE,
        &WorkOrder { parallelism, steps },
    )
    .map_err(host)?;
    let results = pods.run(name, &order, resources, cancel);
    if cancel.load(Ordering::Relaxed) {
        return Err(AttemptError::Cancelled);
    }
    let results = results.map_err(host)?;
    crate::work_order::get_json(&stores.artifacts, &results, crate::work_order::RESULTS_FILE)
        .map_err(host)
}

/// Writes a step's log that came back from a pod where the runner keeps task logs.
fn keep_log(path: &std::path::Path, log: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, log)?;
    Ok(())
}

/// Records a step's success: one transaction, after its artifacts are in the store.
/// Fault injection for the crash tests: holds the task in the window between its outputs'
/// rename into the artifact store and the transaction that records them (a few microseconds
/// otherwise), announcing it in the file the variable names, so a test can `kill -9` there.
/// Inert unless `WEFT_FAULT_PAUSE_BEFORE_COMMIT` is set.
fn pause_before_commit(task: &str) {
    if let Some(marker) = std::env::var_os("WEFT_FAULT_PAUSE_BEFORE_COMMIT") {
        if std::fs::write(&marker, task).is_ok() {
            std::thread::sleep(Duration::from_secs(600));
        }
    }
}

fn record_success(
    stores: &Stores,
    job: &Job,
    done: StepDone,
    log_path: &std::path::Path,
) -> Result<Finished> {
    let decl = &job.plan.pipeline.spec.components[&job.spec.component];
    let outputs = done
        .artifacts
        .iter()
        .map(|(name, stored)| {
            let ty = decl
                .outputs
                .artifacts
                .get(name)
                .map(|t| format!("{t:?}"))
                .unwrap_or_else(|| "Artifact".into());
            (name.clone(), stored.clone(), ty)
        })
        .collect();
    let metrics = done
        .metrics
        .iter()
        .map(|(name, value, step)| MetricRecord {
            task: job.task.clone(),
            name: name.clone(),
            value: *value,
            step: *step,
        })
        .collect();
    let outputs_json = serde_json::to_string(&done.params)?;
    pause_before_commit(&job.task);
    stores.meta.complete_task(
        &job.run_id,
        &job.task,
        &TaskCompletion {
            state: TaskState::Succeeded,
            outputs_json,
            inputs: input_events(job),
            outputs,
            metrics,
            cache_key: Some(job.cache_key.clone()),
            cached_from: None,
            duration_ms: done.duration_ms,
            log_path: Some(log_path.display().to_string()),
        },
    )?;
    Ok((
        TaskState::Succeeded,
        TaskOutputs {
            params: done.params,
            artifacts: done
                .artifacts
                .into_iter()
                .map(|(name, stored)| (name, stored.digest))
                .collect(),
        },
        Duration::from_secs_f64(done.duration_ms / 1e3),
        None,
    ))
}

/// Runs one step here, in a fresh sandbox: its inputs fetched where needed, its output
/// parameters checked against their declared types, its output artifacts moved into the store.
pub(crate) fn run_step(
    runtime: &Runtime,
    artifacts: &ArtifactStore,
    step: &OrderedStep,
    component: &std::path::Path,
    log_path: &std::path::Path,
    cancel: &Arc<AtomicBool>,
) -> std::result::Result<StepDone, AttemptError> {
    let host = |e: anyhow::Error| AttemptError::Host(e);
    let component = runtime
        .load(component)
        .map_err(|e| AttemptError::Step(e.to_string()))?;
    let scratch = artifacts.scratch_dir().map_err(|e| host(e.into()))?;
    let mut req = StepRequest::new(step.context_run.clone(), step.task.clone());
    req.context.attempt = step.attempt;
    req.params = step
        .params
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    req.inputs = step
        .inputs
        .iter()
        .map(|(name, digest)| {
            // Fetched from the artifact backend when this machine does not have it.
            let path = artifacts
                .checked_local(digest)
                .map_err(|e| host(e.into()))?;
            Ok(InputArtifact {
                name: name.clone(),
                path,
            })
        })
        .collect::<std::result::Result<_, AttemptError>>()?;
    req.output_dir = Some(scratch.path().to_path_buf());
    req.outputs = step.outputs.clone();
    req.env = step
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    req.hermetic_seed = step.hermetic_seed;
    req.limits = Limits::default();
    if let Some(t) = step
        .timeout
        .as_deref()
        .and_then(|t| humantime::parse_duration(t).ok())
    {
        req.limits.timeout = t;
    }
    if let Some(m) = step
        .memory
        .as_deref()
        .and_then(|m| m.parse::<bytesize::ByteSize>().ok())
    {
        req.limits.memory_bytes = m.as_u64();
    }
    req.log_path = Some(log_path.to_path_buf());
    req.cancel = Some(cancel.clone());

    let started = Instant::now();
    let outcome = match runtime.run(&component, &req) {
        Ok(o) => o,
        Err(StepError::Cancelled) => return Err(AttemptError::Cancelled),
        Err(e) => {
            let message = e.to_string();
            let _ = std::fs::OpenOptions::new()
                .append(true)
                .open(log_path)
                .and_then(|mut f| {
                    std::io::Write::write_all(
                        &mut f,
                        format!("\n[weft] step {}: {message}\n", e.kind()).as_bytes(),
                    )
                });
            return Err(AttemptError::Step(e.one_line()));
        }
    };

    // Declared output parameters must all come back, with their types.
    let mut params: BTreeMap<String, ParamValue> = outcome.params.into_iter().collect();
    for (name, ty) in &step.output_params {
        match params.get(name) {
            None => {
                return Err(AttemptError::Step(format!(
                    "the component returned no output parameter `{name}` ({})",
                    ty.name()
                )))
            }
            Some(v) if !ty.accepts(crate::plan::type_of(v)) => {
                return Err(AttemptError::Step(format!(
                    "output parameter `{name}` should be {} but is {} `{v}`",
                    ty.name(),
                    crate::plan::type_of(v).name()
                )))
            }
            Some(_) => {}
        }
    }
    params.retain(|k, _| step.output_params.contains_key(k));

    let mut stored = BTreeMap::new();
    for name in &step.outputs {
        let artifact = artifacts
            .ingest_dir(&scratch.path().join(name))
            .map_err(|e| host(e.into()))?;
        stored.insert(name.clone(), artifact);
    }
    Ok(StepDone {
        params,
        artifacts: stored,
        metrics: outcome
            .metrics
            .iter()
            .map(|m| (m.name.clone(), m.value, m.step))
            .collect(),
        duration_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}
