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
use std::sync::Mutex;
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
    let mut limit = step_limits(step).timeout;
    if let Some(left) = left {
        limit = limit.min(left);
    }
    let kept = checkpoints(stores, job);
    let order = store_order(stores, job, step, world, limit, &kept)?;
    // Why a metric watch (a tuner's early stopping) stopped the job, once it has.
    let stopped = Mutex::new(None);
    let mut answers = Answers {
        watch: runtime.run_watch(&job.run_id),
        context: StepContext {
            run_id: job.run_id.clone(),
            task_name: job.task.clone(),
            attempt: step.attempt,
        },
        kept,
        results: BTreeMap::new(),
        stopped: &stopped,
    };
    let started = Instant::now();
    let stop = || cancel.load(Ordering::Relaxed) || stopped.lock().map_or(true, |s| s.is_some());
    let status = launcher.run(&order, world, limit + GRACE, &stop, &mut |line| {
        answers.take(line)
    });
    if cancel.load(Ordering::Relaxed) {
        return Err(AttemptError::Cancelled);
    }
    let results = answers.results;
    if let Some(why) = stopped.into_inner().unwrap_or_else(|e| e.into_inner()) {
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

/// Stores the gang's work order: the step with its component shipped as an artifact and its
/// time limit `limit`, the gang's size, engine and checkpoints; returns its digest.
fn store_order(
    stores: &Stores,
    job: &Job,
    step: &OrderedStep,
    world: usize,
    limit: Duration,
    kept: &RunCheckpoints,
) -> std::result::Result<String, AttemptError> {
    let host = |e: anyhow::Error| AttemptError::Host(e);
    let mut step = step.clone();
    step.timeout = Some(format!("{}ms", limit.as_millis()));
    let file = component_path(&stores.components_dir, &step.component);
    let shipped = stores.artifacts.import(&file).map_err(|e| host(e.into()))?;
    step.component_artifact = Some(shipped.digest);
    let latest = read_pointer(&kept.pointer).map_err(|e| host(anyhow!(e)))?;
    let order = WorkOrder {
        parallelism: 1,
        steps: vec![step],
        gang: Some(GangOrder {
            workers: world,
            engine: job.spec.gang.as_ref().map(|g| g.engine).unwrap_or_default(),
            checkpoint_every: kept.every,
            latest,
        }),
    };
    put_json(&stores.artifacts, ORDER_FILE, &order).map_err(host)
}

/// What the runner makes of the ranks' lines as they come.
struct Answers<'a> {
    watch: Option<Arc<dyn weft_runtime::MetricWatch>>,
    context: StepContext,
    kept: RunCheckpoints,
    /// Each rank's result digest.
    results: BTreeMap<usize, String>,
    /// Why a metric watch stopped the job, once it has.
    stopped: &'a Mutex<Option<String>>,
}

impl Answers<'_> {
    fn take(&mut self, line: &str) {
        match GangLine::parse(line) {
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
                let verdict = self
                    .watch
                    .as_ref()
                    .map(|w| w.observe(&self.context, &metric));
                if let Some(Verdict::Stop(why)) = verdict {
                    let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
                    stopped.get_or_insert(why);
                }
            }
            Some(Ok(GangLine::Checkpoint { step, digest, .. })) => {
                keep_checkpoint(&self.kept, step, digest)
            }
            Some(Ok(GangLine::Result { rank, results })) => {
                self.results.insert(rank, results);
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use weft_runtime::MetricWatch;

    /// Stops at a loss over 1, as a tuner's early stopping would.
    #[derive(Debug)]
    struct StopHigh;

    impl MetricWatch for StopHigh {
        fn observe(&self, _: &StepContext, m: &Metric) -> Verdict {
            match m.value > 1.0 {
                true => Verdict::Stop(format!("{} {} is too high", m.name, m.value)),
                false => Verdict::Continue,
            }
        }
    }

    fn metric(rank: usize, value: f64) -> String {
        GangLine::Metric {
            rank,
            name: "loss".into(),
            value: weft_spec::float::Float(value),
            step: Some(1),
        }
        .to_line()
    }

    /// A rank's metric the run's watch stops on stops the job (the first reason kept);
    /// checkpoints move the pointer only to a well-formed digest; results are kept by rank.
    #[test]
    fn answers_stop_on_a_verdict_and_keep_checkpoints_and_results() {
        let dir = tempfile::tempdir().unwrap();
        let artifacts = Arc::new(weft_store::ArtifactStore::open(dir.path()).unwrap());
        let pointer = dir.path().join("run/train.checkpoint.json");
        let stopped = Mutex::new(None);
        let mut answers = Answers {
            watch: Some(Arc::new(StopHigh)),
            context: StepContext {
                run_id: "run".into(),
                task_name: "train".into(),
                attempt: 1,
            },
            kept: RunCheckpoints {
                artifacts,
                pointer: pointer.clone(),
                every: 10,
            },
            results: BTreeMap::new(),
            stopped: &stopped,
        };
        answers.take(&metric(1, 0.5));
        assert!(stopped.lock().unwrap().is_none());
        answers.take(&metric(1, 2.0));
        answers.take(&metric(0, 3.0));
        assert_eq!(
            stopped.lock().unwrap().as_deref(),
            Some("loss 2 is too high")
        );
        let bad = GangLine::Checkpoint {
            rank: 0,
            step: 10,
            digest: "../../etc/passwd".into(),
        };
        answers.take(&bad.to_line());
        assert_eq!(read_pointer(&pointer).unwrap(), None);
        let good = format!("sha256:{}", "c".repeat(64));
        answers.take(
            &GangLine::Checkpoint {
                rank: 0,
                step: 20,
                digest: good.clone(),
            }
            .to_line(),
        );
        let kept = read_pointer(&pointer).unwrap().unwrap();
        assert_eq!((kept.step, kept.digest), (20, good));
        answers.take(
            &GangLine::Result {
                rank: 1,
                results: "sha256:d".into(),
            }
            .to_line(),
        );
        answers.take("a worker's own words");
        assert_eq!(answers.results.keys().collect::<Vec<_>>(), [&1]);
    }
}
