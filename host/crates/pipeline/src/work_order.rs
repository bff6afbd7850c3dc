//! Steps that run in another process: on Kubernetes, a task that asks for resources of its own
//! runs in a pod of its own, and a parallelFor with `pods: N` runs its iterations in N pods.
//!
//! The runner and those pods share nothing but the artifact store. The runner stores a work
//! order (each step's component, parameters and inputs, by digest), a pod runs it with
//! `wasm-run task exec ORDER` ([`execute_order`]: the same sandboxed step as in-process) and
//! stores the results, and the runner reads them back and records them in its metadata as if
//! the steps had run beside it: caching, retries, lineage and status stay the runner's.

use crate::executor::{run_step, StepDone};
use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use weft_runtime::Runtime;
use weft_spec::pipeline::{ParamType, TaskResources};
use weft_spec::ParamValue;
use weft_store::ArtifactStore;

/// Runs work orders somewhere else (the Kubernetes launcher makes a Job per order).
pub trait PodLauncher: Send + Sync {
    /// Runs the work order stored as artifact `order` in a pod of its own, named after `name`,
    /// with `resources`, and returns the digest of the results the pod stored. Blocks until the
    /// pod ends; when `cancel` is set it stops the pod and returns an error.
    fn run(
        &self,
        name: &str,
        order: &str,
        resources: &TaskResources,
        cancel: &AtomicBool,
    ) -> Result<String>;
}

/// A shared launcher, as run options carry it.
pub type Pods = Arc<dyn PodLauncher>;

/// Steps for one pod to run, `parallelism` at once.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkOrder {
    pub parallelism: usize,
    pub steps: Vec<OrderedStep>,
    /// Set when the order's one step is a gang's, run by each of its ranks
    /// ([`crate::gang_order`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gang: Option<crate::gang_order::GangOrder>,
}

/// One step to run: everything it sees, pinned by digest.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderedStep {
    /// The task's name (`train`, `sweep[3]`): its log's name and the step's context.
    pub task: String,
    /// The run id the step sees (a replay shows the original's).
    pub context_run: String,
    pub attempt: u32,
    /// The component's digest.
    pub component: String,
    /// An artifact holding the component as its one `.wasm` file, for a pod to fetch; None
    /// when the step runs where the component already is.
    #[serde(default)]
    pub component_artifact: Option<String>,
    pub params: BTreeMap<String, ParamValue>,
    /// Input artifacts by name: their digests.
    pub inputs: BTreeMap<String, String>,
    /// The output artifacts the component declares.
    pub outputs: Vec<String>,
    /// The output parameters the component declares, checked on return.
    pub output_params: BTreeMap<String, ParamType>,
    pub env: BTreeMap<String, String>,
    pub hermetic_seed: Option<u64>,
    pub timeout: Option<String>,
    pub memory: Option<String>,
}

impl OrderedStep {
    /// Checks what becomes a path before it does: digests are strict `sha256:` digests, and
    /// the task name is one file name (its log's). A work order comes from a shared store.
    pub fn check(&self) -> Result<()> {
        let digests = std::iter::once(&self.component)
            .chain(self.component_artifact.iter())
            .chain(self.inputs.values());
        for d in digests {
            weft_spec::digest::parse(d)
                .with_context(|| format!("work order step `{}`", self.task.escape_debug()))?;
        }
        check_file_name("task name", &self.task)
    }
}

/// Refuses a name from a work order that would not be one file name where it becomes one.
fn check_file_name(what: &str, t: &str) -> Result<()> {
    let one_name =
        !t.is_empty() && t.len() <= 200 && t != "." && t != ".." && !t.contains(['/', '\\', '\0']);
    anyhow::ensure!(
        one_name,
        "work order: {what} `{}` is not a file name",
        t.escape_debug()
    );
    Ok(())
}

/// What became of one ordered step.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepResult {
    pub task: String,
    /// The step's outputs, or why it failed (a step failure: the runner may retry it).
    pub outcome: std::result::Result<StepDone, String>,
    /// The step's log (its end, when long).
    pub log: String,
}

/// The most of a step's log a result carries back.
const MAX_LOG_BYTES: usize = 64 << 10;

/// Stores `value` as a one-file artifact `name`; returns its digest.
pub fn put_json<T: Serialize>(store: &ArtifactStore, name: &str, value: &T) -> Result<String> {
    let scratch = store.scratch_dir()?;
    let dir = scratch.path().join("a");
    std::fs::create_dir(&dir)?;
    std::fs::write(dir.join(name), serde_json::to_vec(value)?)?;
    Ok(store.ingest_dir(&dir)?.digest)
}

/// Reads the one-file artifact `name` stored by [`put_json`].
pub fn get_json<T: DeserializeOwned>(store: &ArtifactStore, digest: &str, name: &str) -> Result<T> {
    let dir = store.checked_local(digest)?;
    let bytes = std::fs::read(dir.join(name))
        .with_context(|| format!("artifact {digest} has no {name}"))?;
    serde_json::from_slice(&bytes).with_context(|| format!("reading {name} of artifact {digest}"))
}

/// The file name of a stored work order.
pub const ORDER_FILE: &str = "order.json";
/// The file name of stored results.
pub const RESULTS_FILE: &str = "results.json";

/// Runs the work order `order` here, each step in a fresh sandbox with its outputs moved into
/// the artifact store, and stores the results; returns their digest. A step's failure is in
/// its result, not an `Err`: that is for the host (store unreachable, order unreadable).
pub fn execute_order(
    runtime: &Runtime,
    artifacts: &ArtifactStore,
    logs_dir: &Path,
    order: &str,
    cancel: &Arc<AtomicBool>,
) -> Result<String> {
    let order: WorkOrder = get_json(artifacts, order, ORDER_FILE)?;
    anyhow::ensure!(
        order.gang.is_none(),
        "a gang's work order runs under mpirun, one rank per process (task exec --mpi)"
    );
    for step in &order.steps {
        step.check()?;
    }
    std::fs::create_dir_all(logs_dir)?;
    let results = crate::parallel::bounded(&order.steps, order.parallelism as usize, |step| {
        execute_one(runtime, artifacts, logs_dir, step, cancel)
    })?
    .into_iter()
    .collect::<Result<Vec<_>>>()?;
    put_json(artifacts, RESULTS_FILE, &results)
}

fn execute_one(
    runtime: &Runtime,
    artifacts: &ArtifactStore,
    logs_dir: &Path,
    step: &OrderedStep,
    cancel: &Arc<AtomicBool>,
) -> Result<StepResult> {
    let log_path = logs_dir.join(format!("{}.log", step.task));
    let component = match &step.component_artifact {
        Some(a) => artifacts.component_file(a)?,
        None => anyhow::bail!(
            "step {}: the work order carries no component artifact",
            step.task
        ),
    };
    let outcome = runtime
        .load(&component)
        .map_err(|e| crate::executor::AttemptError::Step(e.to_string()))
        .and_then(|c| run_step(runtime, artifacts, step, &c, &log_path, cancel));
    step_result(step, outcome, &log_path)
}

/// What a step that ran here comes back as: its outcome (a step's failure in it, a host's
/// an `Err`) and the end of its log.
pub(crate) fn step_result(
    step: &OrderedStep,
    outcome: std::result::Result<StepDone, crate::executor::AttemptError>,
    log_path: &Path,
) -> Result<StepResult> {
    let outcome = match outcome {
        Ok(done) => Ok(done),
        Err(
            crate::executor::AttemptError::Step(message)
            | crate::executor::AttemptError::Final(message),
        ) => Err(message),
        Err(crate::executor::AttemptError::Cancelled) => Err("cancelled".into()),
        Err(crate::executor::AttemptError::Stopped(why)) => Err(why),
        Err(crate::executor::AttemptError::Host(e)) => return Err(e),
    };
    // The runner keeps the task's log: it comes back with the result.
    let log = std::fs::read(log_path).unwrap_or_default();
    let tail = &log[log.len().saturating_sub(MAX_LOG_BYTES)..];
    tracing::info!(task = %step.task, ok = outcome.is_ok(), "step ran");
    Ok(StepResult {
        task: step.task.clone(),
        outcome,
        log: String::from_utf8_lossy(tail).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A work order from a shared store is checked before its digests and task name become
    /// paths.
    #[test]
    fn a_work_order_with_a_path_in_a_digest_or_name_is_refused() {
        let digest = format!("sha256:{}", "0".repeat(64));
        let step = OrderedStep {
            task: "train".into(),
            context_run: "r".into(),
            attempt: 1,
            component: digest.clone(),
            component_artifact: Some(digest.clone()),
            params: BTreeMap::new(),
            inputs: [("data".to_string(), digest)].into(),
            outputs: vec![],
            output_params: BTreeMap::new(),
            env: BTreeMap::new(),
            hermetic_seed: None,
            timeout: None,
            memory: None,
        };
        assert!(step.check().is_ok());
        let mut bad = step.clone();
        bad.inputs.insert("x".into(), "sha256:../../etc".into());
        let err = format!("{:#}", bad.check().unwrap_err());
        assert!(err.contains("`sha256:../../etc` is not a digest"), "{err}");
        for name in ["../escape", "a/b", "..", ""] {
            let mut bad = step.clone();
            bad.task = name.into();
            assert!(bad.check().is_err(), "{name}");
        }
    }

    /// A pod's results carry metrics as reported: NaN and the infinities come back to the
    /// runner (serde_json alone writes them as `null`, which does not read back as a number).
    #[test]
    fn non_finite_metrics_survive_a_pods_results() {
        let done = StepDone {
            params: BTreeMap::new(),
            artifacts: BTreeMap::new(),
            metrics: vec![
                ("loss".into(), f64::NAN, Some(1)),
                ("up".into(), f64::INFINITY, None),
                ("down".into(), f64::NEG_INFINITY, Some(2)),
                ("acc".into(), 0.5, None),
            ],
            duration_ms: 3.0,
        };
        let result = StepResult {
            task: "t".into(),
            outcome: Ok(done),
            log: String::new(),
        };
        let json = serde_json::to_vec(&result).unwrap();
        let back: StepResult = serde_json::from_slice(&json).unwrap();
        let metrics = back.outcome.unwrap().metrics;
        assert!(metrics[0].1.is_nan() && metrics[0].2 == Some(1));
        assert_eq!(metrics[1..], result.outcome.unwrap().metrics[1..]);
    }
}
