//! Tuning experiments, run locally: Katib's `Experiment` with each trial a pipeline run of
//! sandboxed components in this process (microseconds to start, not a pod), suggestions and
//! early stopping from `weft-tune`, and the experiment and its trials in the metadata store
//! beside the trials' runs (so `wasm-run runs show TRIAL` shows a trial's tasks and lineage).

mod run;
mod schedule;
mod space;
mod template;
mod trial;

pub use template::TRIAL_TASK;
pub use trial::{Observation, TrialState};
pub use weft_tune::{Assignment as TrialAssignment, Value as TrialValue};

use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use tokio::sync::mpsc::UnboundedSender;
use weft_pipeline::Executor;
use weft_spec::experiment::{Experiment, ResumePolicy};
use weft_spec::optimization_job::OptimizationJob;
use weft_spec::{Document, SpecError};
use weft_store::{ExperimentRecord, TrialRecord};
use weft_tune::{Assignment, Direction};

#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// The spec is wrong (located errors).
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<SpecError>),
    /// The experiment exists and may not run again.
    #[error("{0}")]
    Refused(String),
    /// The algorithm could not suggest.
    #[error("suggesting trials: {0}")]
    Suggest(String),
    /// A store or the disk failed: the experiment can be resumed by running it again.
    #[error("the host failed (run the experiment again to resume it): {0:#}")]
    Host(anyhow::Error),
}

/// Progress, for a live view.
#[derive(Clone, Debug)]
pub enum ExperimentEvent {
    TrialStarted {
        trial: String,
        assignment: Assignment,
    },
    TrialFinished {
        trial: String,
        state: TrialState,
        objective: Option<f64>,
        message: Option<String>,
    },
}

/// An experiment's outcome: its record, its trials, the best one.
#[derive(Clone, Debug, Serialize)]
pub struct ExperimentSummary {
    pub experiment: ExperimentRecord,
    pub trials: Vec<TrialRecord>,
    /// Katib's `currentOptimalTrial`: the best succeeded trial's name.
    pub best_trial: Option<String>,
}

impl ExperimentSummary {
    pub fn new(experiment: ExperimentRecord, trials: Vec<TrialRecord>, d: Direction) -> Self {
        let best_trial = best(&trials, d).map(|t| t.name.clone());
        ExperimentSummary {
            experiment,
            trials,
            best_trial,
        }
    }

    /// A stored experiment's summary (the objective's direction read from its stored spec).
    pub fn from_store(experiment: ExperimentRecord, trials: Vec<TrialRecord>) -> Self {
        let direction = serde_json::from_str::<Experiment>(&experiment.spec_json)
            .map(|e| space::direction(&e))
            .unwrap_or(Direction::Minimize);
        Self::new(experiment, trials, direction)
    }

    /// Trials per state.
    pub fn counts(&self) -> std::collections::BTreeMap<&str, usize> {
        let mut out = std::collections::BTreeMap::new();
        for t in &self.trials {
            *out.entry(t.state.as_str()).or_default() += 1;
        }
        out
    }
}

/// The best succeeded trial of `trials` (NaN objectives never win).
pub fn best(trials: &[TrialRecord], d: Direction) -> Option<&TrialRecord> {
    trials
        .iter()
        .filter(|t| t.state == TrialState::Succeeded.as_str())
        .filter(|t| t.objective.is_some_and(|v| !v.is_nan()))
        .min_by(|a, b| {
            let (a, b) = (d.loss(a.objective.unwrap()), d.loss(b.objective.unwrap()));
            a.total_cmp(&b)
        })
}

/// Parses and checks an experiment file (`kind: Experiment`, or Kubeflow Trainer's
/// `OptimizationJob` read as the Experiment it means): the spec, then its algorithms' settings.
pub fn load(file: &Path, text: &str) -> Result<Document<Experiment>, ExperimentError> {
    let shown = file.display().to_string();
    let invalid = |e| ExperimentError::Invalid(vec![e]);
    let kind = Document::<Kinded>::parse(&shown, text).map_err(invalid)?;
    let doc = match kind.value.kind.as_deref() {
        Some("OptimizationJob") => {
            let job = Document::<OptimizationJob>::parse(&shown, text).map_err(invalid)?;
            match job.value.clone().into_experiment() {
                Ok(e) => job.map(|_| e),
                Err(message) => return Err(invalid(job.error_at(&["spec"], message))),
            }
        }
        _ => Document::<Experiment>::parse(&shown, text).map_err(invalid)?,
    };
    weft_spec::validate::validate_experiment(&doc).map_err(ExperimentError::Invalid)?;
    let mut errors = Vec::new();
    if let Err(e) = space::suggester(&doc) {
        errors.push(e);
    }
    if let Err(e) = space::early_stopper(&doc) {
        errors.push(e);
    }
    match errors.is_empty() {
        true => Ok(doc),
        false => Err(ExperimentError::Invalid(errors)),
    }
}

/// Just the kind of a file, to tell which shape to read it as.
#[derive(serde::Deserialize)]
struct Kinded {
    kind: Option<String>,
}

/// Where and how an experiment runs.
pub struct ExperimentOptions {
    /// Where the experiment's own files go (a component template's trial pipeline).
    pub state_dir: PathBuf,
    pub events: Option<UnboundedSender<ExperimentEvent>>,
    /// Set to stop: running trials stop at their next epoch tick.
    pub cancel: Arc<AtomicBool>,
}

/// Runs (or resumes) the experiment of `doc`, read from a file in `base`, to its end.
pub async fn run_experiment(
    doc: &Document<Experiment>,
    base: &Path,
    executor: Arc<Executor>,
    opts: ExperimentOptions,
) -> Result<ExperimentSummary, ExperimentError> {
    let name = &doc.value.metadata.name;
    let meta = &executor.stores().meta;
    let existing = meta.experiment(name).map_err(run::host)?;
    if let Some(e) = &existing {
        let finished = e.finished_at.is_some();
        if finished && doc.value.spec.resume_policy == ResumePolicy::Never {
            return Err(ExperimentError::Refused(format!(
                "experiment `{name}` already ran ({}: {}); its resumePolicy is Never: \
                 delete it (`wasm-run experiments delete {name}`) or give the experiment another name",
                e.state,
                e.message.as_deref().unwrap_or("")
            )));
        }
    }
    let trials = meta.trials(name).map_err(run::host)?;
    let record = ExperimentRecord {
        name: name.clone(),
        spec_json: serde_json::to_string(&doc.value).map_err(run::host)?,
        state: "Running".into(),
        created_at: existing
            .map(|e| e.created_at)
            .unwrap_or_else(weft_store::now),
        finished_at: None,
        message: None,
    };
    meta.put_experiment(&record).map_err(run::host)?;
    let template = template::prepare(&doc.value, base, &opts.state_dir).map_err(run::host)?;
    let finished = trials
        .iter()
        .filter(|t| TrialState::parse(&t.state).is_some_and(|s| s.is_finished()))
        .map(run::tune_trial)
        .collect();
    let suggester = space::suggester(doc).map_err(|e| ExperimentError::Invalid(vec![e]))?;
    let stopper = space::early_stopper(doc)
        .map_err(|e| ExperimentError::Invalid(vec![e]))?
        .map(|s| Arc::new(trial::Stopper(s)));
    run::Loop {
        doc,
        executor,
        pipeline_file: template.file,
        fixed: template.fixed,
        suggester,
        stopper,
        events: opts.events,
        cancel: opts.cancel,
        trials,
        finished: Arc::new(RwLock::new(finished)),
        running: Default::default(),
        cancels: Vec::new(),
        schedule: schedule::Schedule {
            parallel: doc.value.spec.parallel_trial_count as usize,
            seeded: doc
                .value
                .spec
                .algorithm
                .algorithm_settings
                .iter()
                .any(|s| s.name == "random_state"),
        },
    }
    .run()
    .await
}
