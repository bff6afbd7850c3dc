//! Engines `mpi` and `nccl`, the runner's side: the gang's step stored as a work order with its
//! [`GangOrder`], started as one process per rank by the [`GangLauncher`](crate::gang_order::GangLauncher)
//! (mpirun), and their answer lines read back: metrics to the run's watch as they come (the
//! live progress, a cluster's status), each rank's result at the end. Rank 0's outputs are
//! the task's, as with threads.

use super::checkpoints::RunCheckpoints;
use super::checkpoints::{read_pointer, write_pointer, Pointer};
use super::gang::{checkpoints, rank_log, rank_metrics, secondary};
use super::*;
use crate::gang_order::{read_result, GangLine, GangOrder, Gangs};
use crate::work_order::{put_json, ORDER_FILE};
use weft_runtime::{Metric, StepContext, Verdict};

/// What the launcher gives the job beyond its workers' own time limit before stopping it:
/// they stop themselves at the limit, and then still report.
const GRACE: Duration = Duration::from_secs(30);

#[allow(clippy::too_many_arguments)]
pub(super) fn run(
    launcher: &Gangs,
    runtime: &Runtime,
    stores: &Stores,
    job: &Job,
    step: &OrderedStep,
    log_path: &std::path::Path,
    cancel: &Arc<AtomicBool>,
    left: Option<Duration>,
) -> std::result::Result<StepDone, AttemptError> {
    let host = |e: anyhow::Error| AttemptError::Host(e);
    let world = job.spec.gang.as_ref().map_or(1, |g| g.workers.max(1)) as usize;
    let mut step = step.clone();
    let mut limit = step_limits(&step).timeout;
    if let Some(left) = left {
        limit = limit.min(left);
    }
    step.timeout = Some(format!("{}ms", limit.as_millis()));
    let file = component_path(&stores.components_dir, &step.component);
    let shipped = stores.artifacts.import(&file).map_err(|e| host(e.into()))?;
    step.component_artifact = Some(shipped.digest);
    let context = StepContext {
        run_id: job.run_id.clone(),
        task_name: job.task.clone(),
        attempt: step.attempt,
    };
    let kept = checkpoints(stores, job);
    let latest = read_pointer(&kept.pointer).map_err(|e| host(anyhow!(e)))?;
    let order = WorkOrder {
        parallelism: 1,
        steps: vec![step],
        gang: Some(GangOrder {
            workers: world,
            engine: job
                .spec
                .gang
                .as_ref()
                .map_or(Default::default(), |g| g.engine),
            checkpoint_every: kept.every,
            latest,
        }),
    };
    let order = put_json(&stores.artifacts, ORDER_FILE, &order).map_err(host)?;
    let watch = runtime.run_watch(&job.run_id);
    let mut results = BTreeMap::new();
    // An early-stopping verdict on a rank's metric (a tuner's) stops the whole job.
    let mut stopped: Option<String> = None;
    let halt = AtomicBool::new(false);
    let stop = || cancel.load(Ordering::Relaxed) || halt.load(Ordering::Relaxed);
    let started = Instant::now();
    let status = launcher.run(
        &order,
        world,
        limit + GRACE,
        &stop,
        &mut |line| match GangLine::parse(line) {
            None => eprintln!("{line}"),
            Some(Err(e)) => tracing::warn!("{e:#}"),
            Some(Ok(GangLine::Metric {
                name, value, step, ..
            })) => {
                let metric = Metric {
                    name,
                    value: value.0,
                    step,
                };
                let verdict = watch.as_ref().map(|w| w.observe(&context, &metric));
                if let (Some(Verdict::Stop(why)), None) = (verdict, &stopped) {
                    stopped = Some(why);
                    halt.store(true, Ordering::Relaxed);
                }
            }
            Some(Ok(GangLine::Checkpoint { step, digest, .. })) => {
                keep_checkpoint(&kept, step, digest)
            }
            Some(Ok(GangLine::Result { rank, results: r })) => {
                results.insert(rank, r);
            }
        },
    );
    if cancel.load(Ordering::Relaxed) {
        return Err(AttemptError::Cancelled);
    }
    if let Some(why) = stopped {
        return Err(AttemptError::Stopped(why));
    }
    let status = status.map_err(host)?;
    let mut done = collect(stores, &results, world, log_path)?;
    let missing: Vec<usize> = (0..world).filter(|r| !done.contains_key(r)).collect();
    if !status.success() || !missing.is_empty() {
        let why = if started.elapsed() >= limit + GRACE {
            format!("the MPI job of {world} workers ran past its time limit ({limit:?}) and was stopped")
        } else if missing.is_empty() {
            format!("the MPI job of {world} workers ended ({status}) after every worker reported its result")
        } else {
            format!("the MPI job of {world} workers ended ({status}) without a result from worker(s) {missing:?} (their own words are in the runner's log)")
        };
        append_to_log(log_path, &format!("\n{why}\n"));
        return Err(AttemptError::Step(why));
    }
    let first = done.remove(&0).expect("every rank has a result");
    let mut metrics: Vec<_> = first.metrics.clone();
    for (r, d) in &done {
        metrics.extend(rank_metrics(
            *r,
            d.metrics.iter().map(|(n, v, s)| (n.as_str(), *v, *s)),
        ));
    }
    Ok(StepDone {
        metrics,
        duration_ms: started.elapsed().as_secs_f64() * 1e3,
        ..first
    })
}

/// A checkpoint a rank stored, kept where a restart or a resume of the run finds it (the
/// pointer moves only to a well-formed digest).
fn keep_checkpoint(kept: &RunCheckpoints, step: u64, digest: String) {
    if let Err(e) = weft_spec::digest::parse(&digest) {
        tracing::warn!("a gang worker's checkpoint of step {step}: {e}");
        return;
    }
    if let Err(e) = write_pointer(&kept.pointer, &Pointer { step, digest }) {
        tracing::warn!("keeping the gang's checkpoint of step {step}: {e}");
    }
}

/// The ranks' results: their logs kept where the task's are, the ranks that succeeded with
/// what they did; the failure that broke the gang (the first that is not a peer's report of
/// it) is the attempt's.
fn collect(
    stores: &Stores,
    results: &BTreeMap<usize, String>,
    world: usize,
    log_path: &std::path::Path,
) -> std::result::Result<BTreeMap<usize, StepDone>, AttemptError> {
    let host = |e: anyhow::Error| AttemptError::Host(e);
    let mut done = BTreeMap::new();
    let mut failures = Vec::new();
    for (&rank, digest) in results.iter().filter(|(r, _)| **r < world) {
        let result = read_result(&stores.artifacts, digest).map_err(host)?;
        keep_log(&rank_log(log_path, rank), &result.log).map_err(host)?;
        match result.outcome {
            Ok(d) => {
                done.insert(rank, d);
            }
            Err(m) => failures.push((rank, m)),
        }
    }
    let cause = failures
        .iter()
        .find(|(_, m)| !secondary(m))
        .or(failures.first());
    match cause {
        Some((r, m)) => Err(AttemptError::Step(format!("worker {r} of {world}: {m}"))),
        None => Ok(done),
    }
}
