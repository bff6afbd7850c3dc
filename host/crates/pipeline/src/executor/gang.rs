//! A task's gang of data-parallel workers (`gang:`; what a `TrainJob` runs), each with its rank
//! (`weft:tensor/collective`) and the run's checkpoints (`weft:tensor/checkpoint`). Engine
//! `local`: every worker an instance of the component on a thread of this process, the group
//! in host memory (here). Engines `mpi` and `nccl`: a process per worker under mpirun
//! (`gang_procs.rs`), the collectives MPI's or, on GPUs, NCCL's.
//!
//! The gang succeeds or fails as one: a worker that fails breaks the group, so its peers'
//! collectives fail rather than wait, and the attempt fails naming the worker that failed
//! first (not the peers it took down). The task's retries then restart every worker, and each
//! restores the latest checkpoint. Rank 0's outputs are the task's.

use super::checkpoints::{checkpoint_pointer, RunCheckpoints};
use super::*;
use weft_collective::LocalGroup;
use weft_runtime::{Checkpoints, StepOutcome};
use weft_spec::train_job::CollectiveEngine;

/// Runs the gang on its engine.
pub(super) fn run_gang(
    runtime: &Runtime,
    stores: &Stores,
    job: &Job,
    step: &OrderedStep,
    component: &LoadedComponent,
    log_path: &std::path::Path,
    cancel: &Arc<AtomicBool>,
) -> std::result::Result<StepDone, AttemptError> {
    let gang = job.spec.gang.clone().unwrap_or_default();
    let left = match gang.deadline_seconds {
        Some(limit) => Some(time_left(stores, &job.run_id, limit)?),
        None => None,
    };
    match gang.engine {
        CollectiveEngine::Auto | CollectiveEngine::Local => {
            run_local(runtime, stores, job, step, component, log_path, cancel, left)
        }
        engine @ (CollectiveEngine::Mpi | CollectiveEngine::Nccl) => match &job.gangs {
            Some(launcher) => {
                launcher.supports(engine).map_err(AttemptError::Final)?;
                super::gang_procs::run(
                    launcher, runtime, stores, job, step, log_path, cancel, left,
                )
            }
            None => Err(AttemptError::Final(format!(
                "engine {}: this wasm-run was built without MPI (the `mpi` feature), so its workers cannot be processes",
                engine.as_str()
            ))),
        },
    }
}

/// The gang's checkpoints: the run's, every `checkpoint_every` steps.
pub(super) fn checkpoints(stores: &Stores, job: &Job) -> RunCheckpoints {
    RunCheckpoints {
        artifacts: stores.artifacts.clone(),
        pointer: checkpoint_pointer(&stores.logs_dir, &job.run_id, &job.task),
        every: job
            .spec
            .gang
            .as_ref()
            .and_then(|g| g.checkpoint_every)
            .unwrap_or(0),
    }
}

/// Rank `r`'s metrics as the task keeps them: rank 0's as reported, the others' as
/// `rank-r/NAME`.
pub(super) fn rank_metrics<'a, I>(
    r: usize,
    metrics: I,
) -> impl Iterator<Item = (String, f64, Option<u64>)> + use<'a, I>
where
    I: IntoIterator<Item = (&'a str, f64, Option<u64>)>,
{
    metrics.into_iter().map(move |(name, value, step)| match r {
        0 => (name.to_string(), value, step),
        r => (format!("rank-{r}/{name}"), value, step),
    })
}

/// Engine local: every worker on a thread of this process.
#[allow(clippy::too_many_arguments)]
fn run_local(
    runtime: &Runtime,
    stores: &Stores,
    job: &Job,
    step: &OrderedStep,
    component: &LoadedComponent,
    log_path: &std::path::Path,
    cancel: &Arc<AtomicBool>,
    left: Option<Duration>,
) -> std::result::Result<StepDone, AttemptError> {
    let host = |e: anyhow::Error| AttemptError::Host(e);
    let world = job.spec.gang.as_ref().map_or(1, |g| g.workers.max(1)) as usize;
    let checkpoints: Arc<dyn Checkpoints> = Arc::new(checkpoints(stores, job));
    let logs: Vec<PathBuf> = (0..world).map(|r| rank_log(log_path, r)).collect();
    let scratches = (0..world)
        .map(|_| stores.artifacts.scratch_dir().map_err(|e| host(e.into())))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut requests = Vec::with_capacity(world);
    for (r, rank) in LocalGroup::ranks(world).into_iter().enumerate() {
        let mut req = step_request(
            &stores.artifacts,
            step,
            scratches[r].path(),
            &logs[r],
            cancel,
        )?;
        if let Some(left) = left {
            req.limits.timeout = req.limits.timeout.min(left);
        }
        req.collective = Some(Arc::new(rank));
        req.checkpoints = Some(checkpoints.clone());
        requests.push(req);
    }
    let started = Instant::now();
    // Each request (and its rank) is dropped as its worker ends, so peers waiting on a worker
    // that failed are told at once.
    let outcomes: Vec<std::result::Result<StepOutcome, StepError>> = std::thread::scope(|s| {
        let workers: Vec<_> = requests
            .into_iter()
            .map(|req| s.spawn(move || runtime.run(component, &req)))
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(StepError::Host(anyhow!("a worker thread panicked"))))
            })
            .collect()
    });
    let mut done = Vec::with_capacity(world);
    let mut failures = Vec::new();
    for (r, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Ok(o) => done.push(o),
            Err(StepError::Cancelled) => return Err(AttemptError::Cancelled),
            Err(e) => {
                append_to_log(&logs[r], &format!("\n{}\n", e.log_line()));
                failures.push((r, e));
            }
        }
    }
    if let Some((r, e)) = cause(&failures) {
        return Err(match step_or_disk_full(&stores.artifacts, e) {
            AttemptError::Step(m) => AttemptError::Step(format!("worker {r} of {world}: {m}")),
            other => other,
        });
    }
    let mut ranks = done.into_iter();
    let first = ranks.next().expect("a gang has a worker");
    let params = declared_params(step, first.params.into_iter().collect())?;
    let mut artifacts = BTreeMap::new();
    for name in &step.outputs {
        let stored = stores
            .artifacts
            .ingest_dir(&scratches[0].path().join(name))
            .map_err(|e| host(e.into()))?;
        artifacts.insert(name.clone(), stored);
    }
    let mut metrics: Vec<_> = rank_metrics(
        0,
        first
            .metrics
            .iter()
            .map(|m| (m.name.as_str(), m.value, m.step)),
    )
    .collect();
    for (r, o) in ranks.enumerate() {
        metrics.extend(rank_metrics(
            r + 1,
            o.metrics.iter().map(|m| (m.name.as_str(), m.value, m.step)),
        ));
    }
    Ok(StepDone {
        params,
        artifacts,
        metrics,
        duration_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}

/// What is left of the gang's `limit` seconds since its run began; none left is the attempt's
/// failure, said plainly.
fn time_left(
    stores: &Stores,
    run_id: &str,
    limit: u64,
) -> std::result::Result<Duration, AttemptError> {
    let run = stores
        .meta
        .run(run_id)
        .map_err(|e| AttemptError::Host(e.into()))?;
    let started = humantime::parse_rfc3339_weak(&run.created_at).map_err(|e| {
        AttemptError::Host(anyhow!("run {run_id}: created_at {}: {e}", run.created_at))
    })?;
    let spent = std::time::SystemTime::now()
        .duration_since(started)
        .unwrap_or_default();
    match Duration::from_secs(limit).checked_sub(spent) {
        Some(left) if !left.is_zero() => Ok(left),
        _ => Err(AttemptError::Final(format!(
            "the job's activeDeadlineSeconds ({limit} s) has passed ({} s since the run began): no worker started",
            spent.as_secs()
        ))),
    }
}

/// The failure that broke the gang: the first worker's that is not a peer's report of it.
fn cause(failures: &[(usize, StepError)]) -> Option<(usize, &StepError)> {
    failures
        .iter()
        .find(|(_, e)| !secondary(&e.one_line()))
        .or(failures.first())
        .map(|(r, e)| (*r, e))
}

/// A worker's failure that only reports a peer's (it left, or never came).
pub(super) fn secondary(message: &str) -> bool {
    message.contains("left the job") || message.contains("waiting for the other ranks")
}

/// Rank 0 logs where the task does; rank r beside it, as `TASK.rank-r.log`.
pub(super) fn rank_log(log_path: &std::path::Path, r: usize) -> PathBuf {
    if r == 0 {
        return log_path.to_path_buf();
    }
    let name = log_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".log").unwrap_or(&name);
    log_path.with_file_name(format!("{stem}.rank-{r}.log"))
}
