//! One task's attempts: the cache, retries with backoff, a step in-process or in a pod, and
//! the record of what it produced.

use super::*;

pub(super) fn run_with_retries(
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
        run_once(runtime, stores, job, attempt, emit, cancel)
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
            // Stopped by the run's metric watch (a tuner): its verdict, not retried.
            Err(AttemptError::Stopped(why)) => return Err(Unfinished::cancelled(&why)),
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
            Err(AttemptError::Step(e) | AttemptError::Final(e)) => return Err(Unfinished::step(e)),
        }
    }
}

pub(crate) enum AttemptError {
    /// The step failed (may be retried).
    Step(String),
    /// The task failed for good: retrying cannot help (a gang past its deadline).
    Final(String),
    Cancelled,
    /// Stopped by a metric watch (early stopping), with why.
    Stopped(String),
    /// The host failed (store, I/O): not the step's fault, not retried.
    Host(anyhow::Error),
}

pub(super) fn cache_hit(stores: &Stores, job: &Job) -> Result<Option<Finished>> {
    let Some(entry) = stores.meta.cache_lookup(&job.cache_key)? else {
        return Ok(None);
    };
    // A hit is only as good as its artifacts: if one is gone or altered, forget the entry.
    for (_, digest) in &entry.artifacts {
        if !stores.artifacts.intact(digest)? {
            tracing::warn!(task = %job.task, %digest, "cached artifact missing or altered; running instead");
            stores.meta.cache_forget(&job.cache_key)?;
            return Ok(None);
        }
    }
    let params: BTreeMap<String, ParamValue> = serde_json::from_str(&entry.outputs_json)?;
    let outputs = entry
        .artifacts
        .iter()
        .map(|(name, digest)| {
            let stored = weft_store::StoredArtifact {
                digest: digest.clone(),
                bytes: 0,
                files: 0,
            };
            (name.clone(), stored, output_type(job, name))
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

/// The declared type of output artifact `name` of the job's component, as recorded.
fn output_type(job: &Job, name: &str) -> String {
    job.plan.pipeline.spec.components[&job.spec.component]
        .outputs
        .artifacts
        .get(name)
        .map(|t| format!("{t:?}"))
        .unwrap_or_else(|| "Artifact".into())
}

pub(super) fn input_events(job: &Job) -> Vec<(String, String, String)> {
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
pub(super) fn ordered_step(job: &Job, attempt: u32) -> OrderedStep {
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

pub(super) fn log_path(stores: &Stores, job: &Job, attempt: u32) -> PathBuf {
    let name = if attempt == 1 {
        format!("{}.log", job.task)
    } else {
        format!("{}.attempt-{attempt}.log", job.task)
    };
    stores.logs_dir.join(&job.run_id).join(name)
}

pub(super) fn run_once(
    runtime: &Runtime,
    stores: &Stores,
    job: &Job,
    attempt: u32,
    emit: &(dyn Fn(RunEvent) + Sync),
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
        _ => {
            let component = load_component(runtime, stores, job, emit)?;
            match &job.spec.gang {
                Some(_) => super::gang::run_gang(
                    runtime, stores, job, &step, &component, &log_path, cancel,
                )?,
                None => run_step(
                    runtime,
                    &stores.artifacts,
                    &step,
                    &component,
                    &log_path,
                    cancel,
                )?,
            }
        }
    };
    record_success(stores, job, done, &log_path).map_err(host)
}

/// The job's component, loaded when its first task runs rather than when the run is planned
/// (a run whose every task is a cache hit compiles nothing); a compile is announced, and its
/// time reported, as events. A component that does not load is the step's failure.
fn load_component(
    runtime: &Runtime,
    stores: &Stores,
    job: &Job,
    emit: &(dyn Fn(RunEvent) + Sync),
) -> std::result::Result<Arc<LoadedComponent>, AttemptError> {
    let path = component_path(&stores.components_dir, &job.component);
    let name = &job.spec.component;
    let loaded = runtime
        .load_with(&path, &|c| {
            emit(RunEvent::Compiling {
                component: name.clone(),
                bytes: c.bytes,
            })
        })
        .map_err(|e| AttemptError::Step(e.to_string()))?;
    if let Some(took) = loaded.compile_time {
        emit(RunEvent::Compiled {
            component: name.clone(),
            took,
        });
    }
    Ok(loaded)
}

/// Runs `steps` in one pod through `pods`, their components shipped as artifacts.
pub(super) fn in_pod(
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
        &WorkOrder {
            parallelism,
            steps,
            gang: None,
        },
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
pub(super) fn keep_log(path: &std::path::Path, log: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, log)?;
    Ok(())
}

/// Fault injection for the crash tests: holds the task in the window between its outputs'
/// rename into the artifact store and the transaction that records them (a few microseconds
/// otherwise), announcing it in the file the variable names, so a test can `kill -9` there.
/// Inert unless `WEFT_FAULT_PAUSE_BEFORE_COMMIT` is set.
pub(super) fn pause_before_commit(task: &str) {
    if let Some(marker) = std::env::var_os("WEFT_FAULT_PAUSE_BEFORE_COMMIT") {
        if std::fs::write(&marker, task).is_ok() {
            std::thread::sleep(Duration::from_secs(600));
        }
    }
}

/// Records a step's success: one transaction, after its artifacts are in the store.
pub(super) fn record_success(
    stores: &Stores,
    job: &Job,
    done: StepDone,
    log_path: &std::path::Path,
) -> Result<Finished> {
    let outputs = done
        .artifacts
        .iter()
        .map(|(name, stored)| (name.clone(), stored.clone(), output_type(job, name)))
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

/// Below this much free space on the artifact store's filesystem, a step's failure is taken
/// for the disk's.
const DISK_FULL_BYTES: u64 = 1 << 20;

/// A failed step's error. A step that failed while the store's disk is full (checked while
/// its outputs still take their room) failed because of the host, not its code: not retried
/// as the step's failure, and the run ends with the host-failure code, to resume later.
pub(super) fn step_or_disk_full(artifacts: &ArtifactStore, e: &StepError) -> AttemptError {
    match artifacts.free_bytes().filter(|f| *f < DISK_FULL_BYTES) {
        Some(free) => AttemptError::Host(anyhow!(
            "the artifact store's disk is full ({free} bytes free under {}); the step said: {}",
            artifacts.root().display(),
            e.one_line()
        )),
        None => AttemptError::Step(e.one_line()),
    }
}

/// Runs one step here, in a fresh sandbox: its inputs fetched where needed, its output
/// parameters checked against their declared types, its output artifacts moved into the store.
pub(crate) fn run_step(
    runtime: &Runtime,
    artifacts: &ArtifactStore,
    step: &OrderedStep,
    component: &LoadedComponent,
    log_path: &std::path::Path,
    cancel: &Arc<AtomicBool>,
) -> std::result::Result<StepDone, AttemptError> {
    run_step_with(
        runtime,
        artifacts,
        step,
        component,
        log_path,
        cancel,
        |_| {},
    )
}

/// [`run_step`], with grants beyond the step's own added by `grant` (a gang worker's rank and
/// checkpoints).
pub(crate) fn run_step_with(
    runtime: &Runtime,
    artifacts: &ArtifactStore,
    step: &OrderedStep,
    component: &LoadedComponent,
    log_path: &std::path::Path,
    cancel: &Arc<AtomicBool>,
    grant: impl FnOnce(&mut StepRequest),
) -> std::result::Result<StepDone, AttemptError> {
    let host = |e: anyhow::Error| AttemptError::Host(e);
    let scratch = artifacts.scratch_dir().map_err(|e| host(e.into()))?;
    let mut req = step_request(artifacts, step, scratch.path(), log_path, cancel)?;
    grant(&mut req);

    let started = Instant::now();
    let outcome = match runtime.run(component, &req) {
        Ok(o) => o,
        Err(StepError::Cancelled) => return Err(AttemptError::Cancelled),
        Err(e @ StepError::EarlyStopped { .. }) => {
            append_to_log(log_path, &format!("\n[weft] {e}\n"));
            return Err(AttemptError::Stopped(e.to_string()));
        }
        Err(e) => {
            append_to_log(log_path, &format!("\n{}\n", e.log_line()));
            return Err(step_or_disk_full(artifacts, &e));
        }
    };
    let params = declared_params(step, outcome.params.into_iter().collect())?;

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

/// What the runtime is asked to run for `step`: its context, parameters, inputs (fetched from
/// the artifact backend when this machine does not have them), outputs into `output_dir`,
/// environment, limits, log and cancel flag.
pub(super) fn step_request(
    artifacts: &ArtifactStore,
    step: &OrderedStep,
    output_dir: &std::path::Path,
    log_path: &std::path::Path,
    cancel: &Arc<AtomicBool>,
) -> std::result::Result<StepRequest, AttemptError> {
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
                .map_err(|e| AttemptError::Host(e.into()))?;
            Ok(InputArtifact {
                name: name.clone(),
                path,
            })
        })
        .collect::<std::result::Result<_, AttemptError>>()?;
    req.output_dir = Some(output_dir.to_path_buf());
    req.outputs = step.outputs.clone();
    req.env = step
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    req.hermetic_seed = step.hermetic_seed;
    req.limits = step_limits(step);
    req.log_path = Some(log_path.to_path_buf());
    req.cancel = Some(cancel.clone());
    Ok(req)
}

/// The default limits, with the step's timeout and memory where it sets them (a value that
/// does not parse leaves the default).
pub(super) fn step_limits(step: &OrderedStep) -> Limits {
    let mut limits = Limits::default();
    if let Some(t) = step
        .timeout
        .as_deref()
        .and_then(|t| humantime::parse_duration(t).ok())
    {
        limits.timeout = t;
    }
    if let Some(m) = step
        .memory
        .as_deref()
        .and_then(|m| m.parse::<bytesize::ByteSize>().ok())
    {
        limits.memory_bytes = m.as_u64();
    }
    limits
}

/// Appends the host's note of why a step failed to the step's log, best effort: the log is
/// for people, and the failure is reported anyway.
pub(super) fn append_to_log(log_path: &std::path::Path, note: &str) {
    let _ = std::fs::OpenOptions::new()
        .append(true)
        .open(log_path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, note.as_bytes()));
}

/// The step's output parameters, only the declared ones: each must come back, with its type.
pub(super) fn declared_params(
    step: &OrderedStep,
    mut params: BTreeMap<String, ParamValue>,
) -> std::result::Result<BTreeMap<String, ParamValue>, AttemptError> {
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
    Ok(params)
}
