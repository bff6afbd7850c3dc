//! One trial: a pipeline run with the trial's parameters, its objective metric watched as it is
//! reported (early stopping decides in the `metrics.report` host call, so a stopped trial's
//! instance is interrupted at once and its later metrics never arrive), and its observation.

use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use weft_pipeline::{Executor, RunArgs, RunOptions};
use weft_runtime::{Metric, MetricWatch, StepContext, Verdict};
use weft_spec::experiment::StrategyValue;
use weft_spec::ParamValue;
use weft_tune::{Decision, Direction, EarlyStopper, Trial};

/// How a trial ended, in Katib's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum TrialState {
    Pending,
    Running,
    Succeeded,
    Failed,
    EarlyStopped,
    /// It ran to the end but never reported the objective metric.
    MetricsUnavailable,
    /// Stopped because the experiment ended (goal reached, cancelled).
    Cancelled,
}

impl TrialState {
    pub fn as_str(self) -> &'static str {
        match self {
            TrialState::Pending => "Pending",
            TrialState::Running => "Running",
            TrialState::Succeeded => "Succeeded",
            TrialState::Failed => "Failed",
            TrialState::EarlyStopped => "EarlyStopped",
            TrialState::MetricsUnavailable => "MetricsUnavailable",
            TrialState::Cancelled => "Cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            TrialState::Pending,
            TrialState::Running,
            TrialState::Succeeded,
            TrialState::Failed,
            TrialState::EarlyStopped,
            TrialState::MetricsUnavailable,
            TrialState::Cancelled,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }

    pub fn is_finished(self) -> bool {
        !matches!(self, TrialState::Pending | TrialState::Running)
    }

    /// Counts against `maxFailedTrialCount`.
    pub fn is_failure(self) -> bool {
        matches!(self, TrialState::Failed | TrialState::MetricsUnavailable)
    }
}

/// What a trial reported: the objective's value (by its strategy), the other metrics' values,
/// and the objective's series by step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Observation {
    pub metrics: BTreeMap<String, f64>,
    pub series: Vec<(u64, f64)>,
}

/// Watches one trial's objective metric; asks the early stopper on each reported step.
#[derive(Debug)]
pub struct TrialWatch {
    pub objective: String,
    pub direction: Direction,
    pub stopper: Option<Arc<Stopper>>,
    /// The experiment's finished trials, as the stopper compares against them.
    pub finished: Arc<RwLock<Vec<Trial>>>,
    pub series: Mutex<Vec<(u64, f64)>>,
    pub stopped: Mutex<Option<String>>,
}

/// Adapts a boxed stopper (weft-tune's trait objects are not `Debug`).
pub struct Stopper(pub Box<dyn EarlyStopper>);

impl std::fmt::Debug for Stopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stopper")
    }
}

impl MetricWatch for TrialWatch {
    fn observe(&self, _ctx: &StepContext, metric: &Metric) -> Verdict {
        let (Some(step), true) = (metric.step, metric.name == self.objective) else {
            return Verdict::Continue;
        };
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        series.push((step, metric.value));
        let Some(stopper) = &self.stopper else {
            return Verdict::Continue;
        };
        let finished = self.finished.read().unwrap_or_else(|e| e.into_inner());
        match stopper.0.decide(&series, &finished, self.direction) {
            Decision::Continue => Verdict::Continue,
            Decision::Stop => {
                let why = format!(
                    "{} = {} at step {step} is worse than the early-stopping rule allows",
                    self.objective, metric.value
                );
                *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.clone());
                Verdict::Stop(why)
            }
        }
    }
}

/// What a trial run needs.
pub struct TrialRun {
    pub executor: Arc<Executor>,
    pub pipeline_file: PathBuf,
    pub params: Vec<(String, ParamValue)>,
    pub run_id: String,
    pub watch: Arc<TrialWatch>,
    pub cancel: Arc<AtomicBool>,
    /// Drive a run recorded before (after a kill) to its end instead of starting it.
    pub resume: bool,
}

/// How a trial's run ended.
pub struct TrialEnd {
    pub state: TrialState,
    pub message: Option<String>,
    /// The host failed the run (a store, the disk): the experiment stops, resumable.
    pub host_failure: Option<String>,
}

impl TrialRun {
    pub async fn run(self) -> Result<TrialEnd> {
        let exec = &self.executor;
        let stores = exec.stores();
        let opts = RunOptions {
            parallelism: 4,
            events: None,
            cancel: self.cancel.clone(),
            pods: None,
        };
        let _watching = exec.runtime().watch_run(&self.run_id, self.watch.clone());
        let summary = if self.resume {
            exec.resume(&self.run_id, &opts).await?
        } else {
            let args = RunArgs {
                params: self.params.clone(),
                artifacts: Vec::new(),
                cache: true,
                hermetic_seed: None,
                check_only: false,
            };
            let plan = weft_pipeline::plan(
                &self.pipeline_file,
                &args,
                exec.runtime(),
                &stores.components_dir,
                &stores.artifacts,
            )?;
            exec.start(plan, Some(self.run_id.clone()), &opts).await?
        };
        let failed = summary
            .tasks
            .iter()
            .find(|t| t.state == weft_store::TaskState::Failed)
            .and_then(|t| t.error.clone());
        let stopped = self.watch.stopped.lock().unwrap().clone();
        let state = match (summary.state.as_str(), &stopped) {
            (_, Some(_)) => TrialState::EarlyStopped,
            ("SUCCEEDED", None) => TrialState::Succeeded,
            ("CANCELLED", None) => TrialState::Cancelled,
            _ => TrialState::Failed,
        };
        Ok(TrialEnd {
            state,
            message: stopped.or(failed),
            host_failure: summary.host_failure,
        })
    }
}

/// The value of `metric` by `strategy` over what was reported (final values and series).
pub fn metric_value(values: &[f64], strategy: StrategyValue) -> Option<f64> {
    let finite = values.iter().copied().filter(|v| !v.is_nan());
    match strategy {
        StrategyValue::Latest => values.last().copied(),
        StrategyValue::Min => finite.reduce(f64::min),
        StrategyValue::Max => finite.reduce(f64::max),
    }
}
