//! A gang whose workers are processes of their own (the MPI engine): the runner stores a work
//! order of the one step with a [`GangOrder`], a [`GangLauncher`] starts one process per rank
//! (`mpirun -np N wasm-run task exec ORDER --mpi`), and each runs the step with its rank
//! ([`execute_rank`]), the collectives OpenMPI's.
//!
//! The processes answer on their standard output, which mpirun forwards from every node: a
//! [`GangLine`] per metric as it is reported (the runner's live progress and status) and one
//! with the digest of each rank's stored result. Nothing else is shared but the artifact store
//! and the checkpoint pointer.

use crate::executor::{run_step_with, AttemptError, OrderCheckpoints};
use crate::work_order::{get_json, put_json, StepResult, WorkOrder, ORDER_FILE, RESULTS_FILE};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weft_collective::Communicator;
use weft_runtime::{Metric, MetricWatch, Runtime, StepContext, Verdict};
use weft_spec::float::Float;
use weft_spec::train_job::CollectiveEngine;

/// What makes a work order a gang's: its size and its checkpoints.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GangOrder {
    pub workers: usize,
    /// The ranks' collectives: `mpi`, or `nccl` (on GPUs, MPI the rendezvous).
    pub engine: CollectiveEngine,
    /// Steps between checkpoints (0: none).
    pub checkpoint_every: u32,
    /// The checkpoint the workers start from (the run's latest), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<CheckpointRef>,
}

/// A checkpoint: the step it was taken after, and its artifact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointRef {
    pub step: u64,
    pub digest: String,
}

/// Starts a gang's workers as processes of one MPI job.
pub trait GangLauncher: Send + Sync {
    /// Whether this launcher's workers can run `engine` here; the reason not (an engine not
    /// built in, no GPU for NCCL) is final, as retrying would not change it.
    fn supports(&self, engine: CollectiveEngine) -> Result<(), String>;

    /// Runs work order `order` as `workers` ranks and blocks until they have all ended, or
    /// `limit` has passed or `stop` says so (then it stops them). `line` sees each line they
    /// print on standard output. The job's exit status is returned, success or not.
    fn run(
        &self,
        order: &str,
        workers: usize,
        limit: Duration,
        stop: &dyn Fn() -> bool,
        line: &mut dyn FnMut(&str),
    ) -> Result<std::process::ExitStatus>;
}

/// A shared launcher, as the executor carries it.
pub type Gangs = Arc<dyn GangLauncher>;

/// The prefix of a worker's answer lines; other lines are the worker's own.
const PREFIX: &str = "weft-gang ";

/// One line a worker prints for the runner.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum GangLine {
    /// A metric, as the step reported it.
    Metric {
        rank: usize,
        name: String,
        value: Float,
        step: Option<u64>,
    },
    /// A checkpoint the rank stored, now the job's latest.
    Checkpoint {
        rank: usize,
        step: u64,
        digest: String,
    },
    /// The digest of the rank's stored [`StepResult`].
    Result { rank: usize, results: String },
}

impl GangLine {
    /// The line as printed (one `write`, so lines of several ranks do not interleave).
    pub fn to_line(&self) -> String {
        let json = serde_json::to_string(self).expect("a gang line serialises");
        format!("{PREFIX}{json}\n")
    }

    /// The answer `line` carries, if it is one; a malformed answer is an error.
    pub fn parse(line: &str) -> Option<Result<GangLine>> {
        let json = line.trim_end().strip_prefix(PREFIX)?;
        Some(
            serde_json::from_str(json)
                .with_context(|| format!("a gang worker's line `{}`", json.escape_debug())),
        )
    }

    /// Prints the line to standard output, flushed.
    pub fn print(&self) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(self.to_line().as_bytes());
        let _ = out.flush();
    }
}

/// Prints each metric the step reports as a [`GangLine`].
#[derive(Debug)]
struct PrintMetrics {
    rank: usize,
}

impl MetricWatch for PrintMetrics {
    fn observe(&self, _context: &StepContext, metric: &Metric) -> Verdict {
        GangLine::Metric {
            rank: self.rank,
            name: metric.name.clone(),
            value: Float(metric.value),
            step: metric.step,
        }
        .print();
        Verdict::Continue
    }
}

/// Runs this process's rank of the gang work order `order`: the order's one step in the
/// sandbox with `comm` as its collective and the run's checkpoints, its outputs moved into the
/// artifact store and its result stored; returns the result and its digest. A step's failure
/// is in the result; an `Err` is the host's (store unreachable, order unreadable or not a
/// gang's, a world that is not the gang's size).
pub fn execute_rank(
    runtime: &Runtime,
    artifacts: &Arc<weft_store::ArtifactStore>,
    logs_root: &Path,
    order: &str,
    comm: Arc<dyn Communicator>,
    cancel: &Arc<AtomicBool>,
) -> Result<(StepResult, String)> {
    let digest = order;
    let order: WorkOrder = get_json(artifacts, digest, ORDER_FILE)?;
    let (Some(gang), [step]) = (&order.gang, order.steps.as_slice()) else {
        bail!("not a gang's work order (one step and a gang)");
    };
    step.check()?;
    if let Some(latest) = &gang.latest {
        weft_spec::digest::parse(&latest.digest).context("the gang's latest checkpoint")?;
    }
    let rank = comm.rank();
    if comm.world_size() != gang.workers {
        bail!(
            "{} ranks were started for a gang of {} workers",
            comm.world_size(),
            gang.workers
        );
    }
    let Some(component) = &step.component_artifact else {
        bail!("the gang's work order carries no component artifact");
    };
    let component = artifacts.component_file(component)?;
    let logs = logs_root.join("orders").join(digest.replace(':', "-"));
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let log_path = logs.join(format!("{}.rank-{rank}.log", step.task));
    let checkpoints = Arc::new(OrderCheckpoints {
        artifacts: artifacts.clone(),
        rank,
        every: gang.checkpoint_every,
        latest: Mutex::new(gang.latest.clone()),
    });
    let outcome = runtime
        .load(&component)
        .map_err(|e| AttemptError::Step(e.to_string()))
        .and_then(|c| {
            run_step_with(runtime, artifacts, step, &c, &log_path, cancel, |req| {
                req.collective = Some(comm);
                req.checkpoints = Some(checkpoints);
                req.metric_watch = Some(Arc::new(PrintMetrics { rank }));
            })
        });
    let result = crate::work_order::step_result(step, outcome, &log_path)?;
    let digest = put_json(artifacts, RESULTS_FILE, &result)?;
    Ok((result, digest))
}

/// The gang of work order `order`: what a rank reads before it joins its peers, to know the
/// engine. None where the order is not a gang's.
pub fn gang_of(artifacts: &weft_store::ArtifactStore, order: &str) -> Result<Option<GangOrder>> {
    weft_spec::digest::parse(order).context("a gang's work order")?;
    let order: WorkOrder = get_json(artifacts, order, ORDER_FILE)?;
    Ok(order.gang)
}

/// Reads rank results back: what the runner makes of a gang's lines.
pub(crate) fn read_result(
    artifacts: &weft_store::ArtifactStore,
    digest: &str,
) -> Result<StepResult> {
    weft_spec::digest::parse(digest).context("a gang worker's result")?;
    get_json(artifacts, digest, RESULTS_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_other_lines_are_not_answers() {
        let lines = [
            GangLine::Metric {
                rank: 3,
                name: "loss".into(),
                value: Float(f64::NAN),
                step: Some(7),
            },
            GangLine::Result {
                rank: 0,
                results: format!("sha256:{}", "a".repeat(64)),
            },
            GangLine::Checkpoint {
                rank: 0,
                step: 40,
                digest: format!("sha256:{}", "b".repeat(64)),
            },
        ];
        for l in &lines {
            let text = l.to_line();
            assert!(text.ends_with('\n') && text.matches('\n').count() == 1);
            let back = GangLine::parse(&text).unwrap().unwrap();
            match (&back, l) {
                (GangLine::Metric { value, .. }, GangLine::Metric { .. }) => {
                    assert!(value.0.is_nan())
                }
                _ => assert_eq!(&back, l),
            }
        }
        assert!(GangLine::parse("epoch 3: loss 0.2").is_none());
        assert!(GangLine::parse("weft-gang {\"kind\":\"metric\"}")
            .unwrap()
            .is_err());
    }
}
