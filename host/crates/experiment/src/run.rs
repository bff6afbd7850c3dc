//! The experiment loop: keep `parallelTrialCount` trials running, each from a suggestion made
//! on the history (running trials included; a seeded experiment's fixed view of it, see
//! [`crate::schedule`]), until the goal is reached, the trial budget
//! is spent, too many trials failed, or the algorithm has nothing left to suggest. Every trial
//! is recorded before it starts, so a killed experiment resumes without losing or repeating one.

use crate::schedule::Schedule;
use crate::trial::{
    metric_value, Observation, Stopper, TrialEnd, TrialRun, TrialState, TrialWatch,
};
use crate::{ExperimentError, ExperimentEvent, ExperimentSummary};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;
use weft_pipeline::Executor;
use weft_spec::experiment::Experiment;
use weft_spec::Document;
use weft_store::{ExperimentRecord, TrialRecord};
use weft_tune::{Assignment, Direction, Suggester, Trial};

/// Why an experiment ended, in Katib's condition reasons.
pub(crate) struct Ending {
    pub state: &'static str,
    pub reason: String,
}

pub(crate) struct Loop<'a> {
    pub doc: &'a Document<Experiment>,
    pub executor: Arc<Executor>,
    pub pipeline_file: std::path::PathBuf,
    pub fixed: Vec<(String, weft_spec::ParamValue)>,
    pub suggester: Box<dyn Suggester>,
    pub stopper: Option<Arc<Stopper>>,
    pub events: Option<UnboundedSender<ExperimentEvent>>,
    pub cancel: Arc<AtomicBool>,
    pub trials: Vec<TrialRecord>,
    /// The finished trials in weft-tune's terms, shared with the running trials' watches.
    pub finished: Arc<RwLock<Vec<Trial>>>,
    pub running: JoinSet<(usize, anyhow::Result<TrialEnd>, Arc<TrialWatch>)>,
    pub cancels: Vec<(usize, Arc<AtomicBool>)>,
    pub schedule: Schedule,
}

impl Loop<'_> {
    fn spec(&self) -> &weft_spec::experiment::ExperimentSpec {
        &self.doc.value.spec
    }

    fn name(&self) -> &str {
        &self.doc.value.metadata.name
    }

    fn direction(&self) -> Direction {
        crate::space::direction(&self.doc.value)
    }

    fn meta(&self) -> &weft_store::MetadataStore {
        &self.executor.stores().meta
    }

    fn emit(&self, e: ExperimentEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(e);
        }
    }

    /// Runs to the end; returns the summary.
    pub async fn run(mut self) -> Result<ExperimentSummary, ExperimentError> {
        self.resume_unfinished()?;
        let ending = loop {
            if let Some(end) = self.ended() {
                break end;
            }
            let started = self.start_more()?;
            if self.running.is_empty() {
                if started == 0 {
                    break Ending {
                        state: "Succeeded",
                        reason: "SuggestionEndReached: the algorithm has no trials left to suggest"
                            .into(),
                    };
                }
                continue;
            }
            self.settle_one().await?;
        };
        self.stop_running().await?;
        self.finish(ending)
    }

    /// The experiment's end, if it has come.
    fn ended(&self) -> Option<Ending> {
        if self.cancel.load(Ordering::Relaxed) {
            return Some(Ending {
                state: "Cancelled",
                reason: "Cancelled: stopped by the user".into(),
            });
        }
        let spec = self.spec();
        let finished = self
            .trials
            .iter()
            .filter(|t| state(t).is_finished())
            .count();
        let failed = self.trials.iter().filter(|t| state(t).is_failure()).count();
        if let Some(max) = spec.max_failed_trial_count {
            if failed > max as usize {
                let reason = format!(
                    "MaxFailedTrialsReached: {failed} trials failed (maxFailedTrialCount {max})"
                );
                return Some(Ending {
                    state: "Failed",
                    reason,
                });
            }
        }
        if let (Some(goal), Some(best)) = (spec.objective.goal, self.best()) {
            let v = best.objective.unwrap_or(f64::NAN);
            if self.direction().loss(v) <= self.direction().loss(goal) {
                let reason = format!(
                    "GoalReached: trial {} reached {} = {v} (goal {goal})",
                    best.name, spec.objective.objective_metric_name
                );
                return Some(Ending {
                    state: "Succeeded",
                    reason,
                });
            }
        }
        match spec.max_trial_count {
            Some(max) if finished >= max as usize => Some(Ending {
                state: "Succeeded",
                reason: format!("MaxTrialsReached: {finished} trials ran (maxTrialCount {max})"),
            }),
            _ => None,
        }
    }

    /// The best succeeded trial so far.
    pub(crate) fn best(&self) -> Option<&TrialRecord> {
        crate::best(&self.trials, self.direction())
    }

    /// Starts suggested trials up to the parallelism and the budget, one suggestion at a time
    /// (each seeing those started before it as running); how many it started.
    fn start_more(&mut self) -> Result<usize, ExperimentError> {
        let spec = self.spec();
        let budget = spec
            .max_trial_count
            .map(|m| m as usize)
            .unwrap_or(usize::MAX);
        let mut room = (spec.parallel_trial_count as usize)
            .saturating_sub(self.running.len())
            .min(budget.saturating_sub(self.trials.len()));
        let mut started = 0;
        while room > 0 {
            let Some(assignment) = self.suggest_next()? else {
                break;
            };
            self.start_trial(&assignment)?;
            room -= 1;
            started += 1;
        }
        Ok(started)
    }

    /// The next trial's assignment: None while its suggestion must wait for a trial to end
    /// (the seeded schedule), or when the algorithm has nothing more to suggest now.
    fn suggest_next(&mut self) -> Result<Option<Assignment>, ExperimentError> {
        let history: Vec<Trial> = self.trials.iter().map(tune_trial).collect();
        let Some(view) = self.schedule.view(history.clone()) else {
            return Ok(None);
        };
        let mut got = self.suggest(&view)?;
        // An algorithm that waits for running trials (hyperband's rungs) suggests nothing from
        // a view that shows ended trials as running: once nothing runs, every trial has ended
        // and the whole history is as fixed as the view.
        if got.is_none() && self.running.is_empty() && view != history {
            got = self.suggest(&history)?;
        }
        Ok(got)
    }

    fn suggest(&mut self, history: &[Trial]) -> Result<Option<Assignment>, ExperimentError> {
        let mut got = self
            .suggester
            .suggest(history, 1)
            .map_err(|e| ExperimentError::Suggest(e.to_string()))?;
        Ok(got.pop())
    }

    fn start_trial(&mut self, assignment: &Assignment) -> Result<(), ExperimentError> {
        let seq = self.trials.len();
        let record = self.new_trial(seq, assignment)?;
        self.meta().put_trial(&record).map_err(host)?;
        self.emit(ExperimentEvent::TrialStarted {
            trial: record.name.clone(),
            assignment: assignment.clone(),
        });
        self.trials.push(record);
        self.spawn(seq, false);
        Ok(())
    }

    fn new_trial(
        &self,
        seq: usize,
        assignment: &Assignment,
    ) -> Result<TrialRecord, ExperimentError> {
        let name = format!("{}-{seq:05}", self.name());
        Ok(TrialRecord {
            experiment: self.name().to_string(),
            name: name.clone(),
            seq: seq as u32,
            run_id: name,
            assignment_json: serde_json::to_string(assignment).map_err(host)?,
            state: TrialState::Running.as_str().into(),
            objective: None,
            observation_json: None,
            created_at: weft_store::now(),
            finished_at: None,
            message: None,
        })
    }

    fn spawn(&mut self, seq: usize, resume: bool) {
        let t = &self.trials[seq];
        let assignment: Assignment = serde_json::from_str(&t.assignment_json).unwrap_or_default();
        let mut params = self.fixed.clone();
        params.extend(crate::space::trial_params(&self.doc.value, &assignment));
        let watch = Arc::new(TrialWatch {
            objective: self.spec().objective.objective_metric_name.clone(),
            direction: self.direction(),
            stopper: self.stopper.clone(),
            finished: self.stopper_sees(seq),
            series: Mutex::new(Vec::new()),
            stopped: Mutex::new(None),
        });
        let cancel = Arc::new(AtomicBool::new(false));
        self.cancels.push((seq, cancel.clone()));
        let run = TrialRun {
            executor: self.executor.clone(),
            pipeline_file: self.pipeline_file.clone(),
            params,
            run_id: t.run_id.clone(),
            watch: watch.clone(),
            cancel,
            resume,
        };
        self.running
            .spawn(async move { (seq, run.run().await, watch) });
    }

    /// The finished trials trial `seq`'s early stopper compares it with: all of them as they
    /// finish, or (seeded) the fixed set its suggestion saw.
    fn stopper_sees(&self, seq: usize) -> Arc<RwLock<Vec<Trial>>> {
        if !self.schedule.seeded {
            return self.finished.clone();
        }
        let settled = self.schedule.settled(seq);
        let ended = self.trials[..settled]
            .iter()
            .filter(|t| state(t).is_finished())
            .map(tune_trial)
            .collect();
        Arc::new(RwLock::new(ended))
    }

    /// Trials recorded as running when the experiment stopped (a kill): their runs are
    /// resumed where recorded, started where the run never got recorded.
    fn resume_unfinished(&mut self) -> Result<(), ExperimentError> {
        for seq in 0..self.trials.len() {
            if state(&self.trials[seq]).is_finished() {
                continue;
            }
            let recorded = self.meta().run(&self.trials[seq].run_id).is_ok();
            tracing::info!(trial = %self.trials[seq].name, recorded, "resuming trial");
            self.spawn(seq, recorded);
        }
        Ok(())
    }

    /// Waits for one running trial and records how it ended.
    async fn settle_one(&mut self) -> Result<(), ExperimentError> {
        let Some(joined) = self.running.join_next().await else {
            return Ok(());
        };
        let (seq, end, watch) = joined.map_err(|e| host(anyhow::anyhow!("trial task: {e}")))?;
        self.cancels.retain(|(s, _)| *s != seq);
        let end = end.map_err(host)?;
        if let Some(why) = end.host_failure {
            return Err(ExperimentError::Host(anyhow::anyhow!(
                "trial {}: {why}",
                self.trials[seq].name
            )));
        }
        self.record_end(seq, end.state, end.message, &watch)
    }

    fn record_end(
        &mut self,
        seq: usize,
        mut st: TrialState,
        message: Option<String>,
        watch: &TrialWatch,
    ) -> Result<(), ExperimentError> {
        let observation = self.observe(seq, watch)?;
        let objective_name = self.spec().objective.objective_metric_name.clone();
        let objective = observation.metrics.get(&objective_name).copied();
        if st == TrialState::Succeeded && objective.is_none() {
            st = TrialState::MetricsUnavailable;
        }
        let t = &mut self.trials[seq];
        t.state = st.as_str().into();
        t.objective = objective;
        t.observation_json = Some(serde_json::to_string(&observation).map_err(host)?);
        t.finished_at = Some(weft_store::now());
        t.message = match st {
            TrialState::MetricsUnavailable => {
                Some(format!("the trial never reported `{objective_name}`"))
            }
            _ => message,
        };
        let t = t.clone();
        self.meta().put_trial(&t).map_err(host)?;
        let done = tune_trial(&t);
        let event = ExperimentEvent::TrialFinished {
            trial: t.name,
            state: st,
            objective,
            message: t.message,
        };
        self.finished
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(done);
        self.emit(event);
        Ok(())
    }

    /// The trial's metrics as recorded with its run (and, for a trial stopped mid-way, the
    /// series its watch saw), each reduced by its strategy.
    fn observe(&self, seq: usize, watch: &TrialWatch) -> Result<Observation, ExperimentError> {
        let spec = self.spec();
        let records = self
            .meta()
            .metrics(&self.trials[seq].run_id)
            .map_err(host)?;
        let seen = watch
            .series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let objective = &spec.objective.objective_metric_name;
        let mut names = vec![objective.clone()];
        names.extend(spec.objective.additional_metric_names.iter().cloned());
        let mut obs = Observation {
            series: seen.clone(),
            ..Default::default()
        };
        for name in names {
            let mut values: Vec<f64> = records
                .iter()
                .filter(|m| m.name == name)
                .map(|m| m.value)
                .collect();
            if values.is_empty() && &name == objective {
                values = seen.iter().map(|(_, v)| *v).collect();
            }
            if let Some(v) = metric_value(&values, spec.strategy(&name)) {
                obs.metrics.insert(name, v);
            }
        }
        if obs.series.is_empty() {
            obs.series = records
                .iter()
                .filter(|m| &m.name == objective)
                .filter_map(|m| Some((m.step?, m.value)))
                .collect();
        }
        Ok(obs)
    }

    /// Stops the trials still running when the experiment ends, and records them.
    async fn stop_running(&mut self) -> Result<(), ExperimentError> {
        for (_, c) in &self.cancels {
            c.store(true, Ordering::Relaxed);
        }
        while !self.running.is_empty() {
            self.settle_one().await?;
        }
        Ok(())
    }

    fn finish(self, ending: Ending) -> Result<ExperimentSummary, ExperimentError> {
        let spec_json = serde_json::to_string(&self.doc.value).map_err(host)?;
        let created = self
            .meta()
            .experiment(self.name())
            .map_err(host)?
            .map(|e| e.created_at);
        let record = ExperimentRecord {
            name: self.name().to_string(),
            spec_json,
            state: ending.state.into(),
            created_at: created.unwrap_or_else(weft_store::now),
            finished_at: Some(weft_store::now()),
            message: Some(ending.reason.clone()),
        };
        self.meta().put_experiment(&record).map_err(host)?;
        let direction = self.direction();
        Ok(ExperimentSummary::new(record, self.trials, direction))
    }
}

fn state(t: &TrialRecord) -> TrialState {
    TrialState::parse(&t.state).unwrap_or(TrialState::Failed)
}

/// A recorded trial as the suggesters and stoppers see it.
pub(crate) fn tune_trial(t: &TrialRecord) -> Trial {
    let obs: Observation = t
        .observation_json
        .as_deref()
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default();
    Trial {
        assignment: serde_json::from_str(&t.assignment_json).unwrap_or_default(),
        state: match state(t) {
            TrialState::Pending | TrialState::Running => weft_tune::TrialState::Running,
            TrialState::Succeeded => weft_tune::TrialState::Succeeded,
            TrialState::EarlyStopped => weft_tune::TrialState::EarlyStopped,
            _ => weft_tune::TrialState::Failed,
        },
        objective: t.objective,
        series: obs.series,
    }
}

pub(crate) fn host(e: impl Into<anyhow::Error>) -> ExperimentError {
    ExperimentError::Host(e.into())
}
