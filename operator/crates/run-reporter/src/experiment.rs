//! Live status for an Experiment: the runner (`wasm-run tune FILE --kube-status NS/NAME`)
//! follows the experiment's events and writes its share of the Experiment's status (the trial
//! counters, `currentOptimalTrial`, `bestValue`: [`weft_crd::runner_status`]) as trials start
//! and finish, at most once per interval, then once more from the experiment's summary when it
//! ends. A resumed experiment starts from the trials already in the metadata store. The
//! operator owns the rest of the status (state, conditions, times).

use crate::MANAGER;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;
use weft_crd::{runner_status, Experiment, TrialProgress};
use weft_experiment::ExperimentEvent;
use weft_spec::experiment::ExperimentSpec;
use weft_store::TrialRecord;

/// The trials of one experiment as the runner knows them, and where to write them.
pub struct ExperimentReporter {
    api: Api<Experiment>,
    name: String,
    spec: ExperimentSpec,
    trials: Vec<TrialProgress>,
}

impl ExperimentReporter {
    /// A reporter for Experiment `namespace/name` running `spec`, starting from the trials
    /// already in the store (`stored`: none for a new experiment).
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        spec: ExperimentSpec,
        stored: &[TrialRecord],
    ) -> Self {
        ExperimentReporter {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            spec,
            trials: stored.iter().map(progress).collect(),
        }
    }

    /// The trials so far.
    pub fn trials(&self) -> &[TrialProgress] {
        &self.trials
    }

    /// Follows `events` to their end, writing the status at most once per `interval`: at
    /// once when resuming with trials already stored, else at the first event. What is not
    /// written by the end is left to [`finish`](Self::finish). A failed write is logged, not
    /// fatal: the experiment goes on.
    pub async fn follow(
        &mut self,
        mut events: UnboundedReceiver<ExperimentEvent>,
        interval: Duration,
    ) {
        let mut last_write: Option<Instant> = None;
        if !self.trials.is_empty() {
            self.write().await;
            last_write = Some(Instant::now());
        }
        let mut dirty = false;
        loop {
            let due = last_write.map(|t| t + interval);
            let event = match (dirty, due) {
                (true, Some(due)) => tokio::select! {
                    e = events.recv() => e.map(Some),
                    _ = tokio::time::sleep_until(due) => Some(None),
                },
                _ => events.recv().await.map(Some),
            };
            match event {
                None => break,
                Some(Some(e)) => dirty |= self.apply(e),
                Some(None) => {}
            }
            if dirty && last_write.is_none_or(|t| t.elapsed() >= interval) {
                self.write().await;
                dirty = false;
                last_write = Some(Instant::now());
            }
        }
    }

    /// The final write, when the experiment has ended: from its summary's trials when there is
    /// one (every metric of the best trial, states as stored), else from the trials followed.
    pub async fn finish(mut self, summary: Option<&[TrialRecord]>) {
        if let Some(trials) = summary {
            self.trials = trials.iter().map(progress).collect();
        }
        self.write().await;
    }

    /// Folds one event into the trials; true when they changed.
    fn apply(&mut self, event: ExperimentEvent) -> bool {
        match event {
            ExperimentEvent::TrialStarted { trial, assignment } => {
                let parameters = serde_json::to_value(&assignment)
                    .map(parameters_of)
                    .unwrap_or_default();
                let t = self.trial(trial);
                t.state = "Running".into();
                t.parameters = parameters;
                t.objective = None;
                t.metrics.clear();
            }
            ExperimentEvent::TrialFinished {
                trial,
                state,
                objective,
                ..
            } => {
                let t = self.trial(trial);
                t.state = state.as_str().into();
                t.objective = objective;
            }
        }
        true
    }

    /// The trial named `name`, added when new.
    fn trial(&mut self, name: String) -> &mut TrialProgress {
        let i = match self.trials.iter().position(|t| t.name == name) {
            Some(i) => i,
            None => {
                self.trials.push(TrialProgress {
                    name,
                    ..Default::default()
                });
                self.trials.len() - 1
            }
        };
        &mut self.trials[i]
    }

    async fn write(&self) {
        let status = runner_status(&self.spec, &self.trials);
        let patch = serde_json::json!({
            "apiVersion": "weft.dev/v1alpha1",
            "kind": "Experiment",
            "status": status,
        });
        let params = PatchParams::apply(MANAGER).force();
        if let Err(e) = self
            .api
            .patch_status(&self.name, &params, &Patch::Apply(&patch))
            .await
        {
            tracing::warn!(error = %e, experiment = %self.name, "could not write the trial status");
        }
    }
}

/// A stored trial as [`runner_status`] takes it: parameters from its assignment, the other
/// metrics from its observation.
pub fn progress(t: &TrialRecord) -> TrialProgress {
    let json = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap_or_default();
    let metrics = t
        .observation_json
        .as_deref()
        .map(json)
        .and_then(|o| o.get("metrics").and_then(|m| m.as_object()).cloned())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(name, v)| Some((name, v.as_f64()?)))
        .collect();
    TrialProgress {
        name: t.name.clone(),
        state: t.state.clone(),
        parameters: parameters_of(json(&t.assignment_json)),
        objective: t.objective,
        metrics,
    }
}

/// An assignment's parameters, values as text (Katib's form: a string as itself, a number as
/// written).
fn parameters_of(assignment: serde_json::Value) -> Vec<(String, String)> {
    let serde_json::Value::Object(map) = assignment else {
        return Vec::new();
    };
    map.into_iter()
        .map(|(name, v)| {
            let text = match v {
                serde_json::Value::String(s) => s,
                v => v.to_string(),
            };
            (name, text)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weft_experiment::TrialState;
    use weft_kube_mock::{client, expect, Reply};

    const STATUS: &str = "/apis/weft.dev/v1alpha1/namespaces/ns/experiments/branin/status";

    fn experiment() -> serde_json::Value {
        json!({"apiVersion": "weft.dev/v1alpha1", "kind": "Experiment",
               "metadata": {"name": "branin", "namespace": "ns"}})
    }

    fn spec() -> ExperimentSpec {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../examples/experiments/branin.yaml"
        ))
        .unwrap();
        let exp: weft_spec::experiment::Experiment = serde_saphyr::from_str(&text).unwrap();
        exp.spec
    }

    fn started(trial: &str, x1: f64) -> ExperimentEvent {
        ExperimentEvent::TrialStarted {
            trial: trial.into(),
            assignment: [
                ("x1".to_string(), weft_tune::Value::Double(x1)),
                ("x2".to_string(), weft_tune::Value::Double(2.25)),
            ]
            .into(),
        }
    }

    fn finished(trial: &str, state: TrialState, objective: Option<f64>) -> ExperimentEvent {
        ExperimentEvent::TrialFinished {
            trial: trial.into(),
            state,
            objective,
            message: None,
        }
    }

    fn record(name: &str, state: &str, objective: Option<f64>, x1: f64) -> TrialRecord {
        TrialRecord {
            experiment: "branin".into(),
            name: name.into(),
            seq: name[name.len() - 1..].parse().unwrap(),
            run_id: format!("run-{name}"),
            assignment_json: json!({"x1": x1, "x2": 2.25}).to_string(),
            state: state.into(),
            objective,
            observation_json: objective
                .map(|v| json!({"metrics": {"value": v, "loss": 0.5}, "series": []}).to_string()),
            created_at: "2026-12-03T08:00:00Z".into(),
            finished_at: None,
            message: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn trials_are_counted_and_the_best_named_as_they_finish_then_from_the_summary() {
        let (c, server) = client(vec![
            expect("PATCH", STATUS, Reply::MergeInto(experiment())),
            expect("PATCH", STATUS, Reply::MergeInto(experiment())),
            expect("PATCH", STATUS, Reply::MergeInto(experiment())),
            expect("PATCH", STATUS, Reply::MergeInto(experiment())),
        ]);
        // Resumed: one trial already succeeded before the runner restarted.
        let stored = [record("branin-00000", "Succeeded", Some(5.0), 1.0)];
        let mut reporter = ExperimentReporter::new(c, "ns", "branin", spec(), &stored);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let follower = tokio::spawn(async move {
            reporter.follow(rx, Duration::from_secs(1)).await;
            reporter
        });
        // The stored trials are written at once; these come within the interval: one write,
        // when it has passed.
        tokio::time::sleep(Duration::from_millis(10)).await;
        tx.send(started("branin-00001", 3.5)).unwrap();
        tx.send(started("branin-00002", -3.0)).unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        tx.send(finished("branin-00001", TrialState::Succeeded, Some(0.4)))
            .unwrap();
        tx.send(finished("branin-00002", TrialState::Failed, Some(0.01)))
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        drop(tx);
        let reporter = follower.await.unwrap();
        assert_eq!(reporter.trials().len(), 3);
        // The experiment's summary: every trial with its metrics.
        let summary = [
            stored[0].clone(),
            record("branin-00001", "Succeeded", Some(0.4), 3.5),
            record("branin-00002", "Failed", None, -3.0),
        ];
        reporter.finish(Some(&summary)).await;

        let seen = server.finish().await;
        assert!(seen[0].query.contains("fieldManager=weft-runner"));
        assert_eq!(seen[0].body["kind"], "Experiment");
        let resumed = &seen[0].body["status"];
        assert_eq!(resumed["trials"], 1);
        assert_eq!(resumed["trialsSucceeded"], 1);
        assert_eq!(resumed["bestValue"], 5.0);
        assert_eq!(
            resumed["currentOptimalTrial"]["bestTrialName"],
            "branin-00000"
        );

        let running = &seen[1].body["status"];
        assert_eq!(running["trials"], 3);
        assert_eq!(running["trialsRunning"], 2);
        assert_eq!(running["trialsSucceeded"], 1);
        assert_eq!(running["bestValue"], 5.0);

        let done = &seen[2].body["status"];
        assert_eq!(done["trials"], 3);
        assert_eq!(done["trialsSucceeded"], 2);
        assert_eq!(done["trialsFailed"], 1);
        assert!(done.get("trialsRunning").is_none(), "{done}");
        assert_eq!(done["bestValue"], 0.4, "a failed trial never wins");
        let best = &done["currentOptimalTrial"];
        assert_eq!(best["bestTrialName"], "branin-00001");
        assert_eq!(
            best["parameterAssignments"],
            json!([{"name": "x1", "value": "3.5"}, {"name": "x2", "value": "2.25"}])
        );
        assert_eq!(
            best["observation"],
            json!({"metrics": [{"name": "value", "value": 0.4, "min": "0.4"}]})
        );

        let last = &seen[3].body["status"];
        assert_eq!(last["trials"], 3);
        assert_eq!(last["trialsSucceeded"], 2);
        assert_eq!(last["trialsFailed"], 1);
        assert_eq!(last["bestValue"], 0.4);
        assert_eq!(
            last["currentOptimalTrial"]["observation"],
            json!({"metrics": [
                {"name": "value", "value": 0.4, "min": "0.4"},
                {"name": "loss", "value": 0.5, "min": "0.5"},
            ]})
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_experiment_is_written_first_when_a_trial_starts_and_at_the_end_without_a_summary(
    ) {
        let (c, server) = client(vec![
            expect("PATCH", STATUS, Reply::MergeInto(experiment())),
            expect("PATCH", STATUS, Reply::MergeInto(experiment())),
        ]);
        let mut reporter = ExperimentReporter::new(c, "ns", "branin", spec(), &[]);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tx.send(started("branin-00000", 1.0)).unwrap();
        tx.send(finished("branin-00000", TrialState::Cancelled, None))
            .unwrap();
        drop(tx);
        reporter.follow(rx, Duration::from_secs(1)).await;
        reporter.finish(None).await;
        let seen = server.finish().await;
        assert_eq!(seen[0].body["status"]["trialsRunning"], 1);
        let last = &seen[1].body["status"];
        assert_eq!(last["trials"], 1);
        assert!(last.get("trialsRunning").is_none(), "{last}");
        assert!(last.get("bestValue").is_none(), "{last}");
    }
}
