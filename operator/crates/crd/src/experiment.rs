//! `Experiment` as a custom resource: Katib's tuning experiment, its trials run by one runner
//! Job (`wasm-run tune`), its status shaped like Katib's.

use crate::pipeline::RunnerStatus;
use crate::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `kind: Experiment`: a hyperparameter tuning experiment. In the cluster, a pipeline trial's
/// `trialTemplate.pipeline.pipelineRef` names a `Pipeline` in the experiment's namespace, and
/// components and inputs are `sha256:` digests in the artifact store (or absolute paths the
/// runner's image has).
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "weft.dev",
    version = "v1alpha1",
    kind = "Experiment",
    namespaced,
    status = "ExperimentStatus",
    shortname = "wexp",
    category = "weft",
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.state"}"#,
    printcolumn = r#"{"name":"Best","type":"number","jsonPath":".status.bestValue"}"#,
    printcolumn = r#"{"name":"Trials","type":"integer","jsonPath":".status.trials"}"#,
    printcolumn = r#"{"name":"Succeeded","type":"integer","jsonPath":".status.trialsSucceeded","priority":1}"#,
    printcolumn = r#"{"name":"Failed","type":"integer","jsonPath":".status.trialsFailed","priority":1}"#,
    printcolumn = r#"{"name":"Best Trial","type":"string","jsonPath":".status.currentOptimalTrial.bestTrialName","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(transparent)]
pub struct ExperimentResourceSpec(pub weft_spec::experiment::ExperimentSpec);
crate::structural::structural_schema!(
    ExperimentResourceSpec,
    weft_spec::experiment::ExperimentSpec,
    "ExperimentSpec"
);

/// What the operator and the runner report of an experiment, in Katib's field names.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentStatus {
    /// Katib's experiment states: `Created`, `Running`, `Succeeded`, `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// `Created`, `Running`, `Succeeded` and `Failed`, with reasons (Katib's:
    /// `ExperimentGoalReached`, `ExperimentMaxTrialsReached`, `ExperimentFailed`...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The best succeeded trial so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_optimal_trial: Option<OptimalTrial>,
    /// The best trial's objective value (what `kubectl get wexp` prints as Best).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_value: Option<f64>,
    /// Trials created, in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials_succeeded: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials_failed: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials_early_stopped: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials_running: Option<u32>,
    /// Trials that ran to the end without reporting the objective metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_metrics_unavailable: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    /// Where the experiment's trials run and where its log is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<RunnerStatus>,
    /// Why the experiment ended, could not start, or failed, in one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Katib's `currentOptimalTrial`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OptimalTrial {
    pub best_trial_name: String,
    /// The trial's parameters, values as text (Katib's form).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameter_assignments: Vec<ParameterAssignment>,
    #[serde(default)]
    pub observation: Observation,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ParameterAssignment {
    pub name: String,
    pub value: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Observation {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
}

/// One metric of a trial: `value` is the trial's value of it (by the metric's strategy), also
/// given under the strategy's own Katib field (`min`, `max` or `latest`, as text).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Metric {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<String>,
}

/// One trial as the runner knows it: what [`runner_status`] counts and ranks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrialProgress {
    pub name: String,
    /// weft-experiment's trial states: `Pending`, `Running`, `Succeeded`, `Failed`,
    /// `EarlyStopped`, `MetricsUnavailable`, `Cancelled`.
    pub state: String,
    /// Parameter name and value, as text.
    pub parameters: Vec<(String, String)>,
    /// The objective's value (by its strategy).
    pub objective: Option<f64>,
    /// Other metrics' values (by their strategies).
    pub metrics: Vec<(String, f64)>,
}

/// The runner's half of an experiment's status (`wasm-run tune --kube-status`): the trial
/// counters, the best succeeded trial and its value, from the trials so far. The operator owns
/// the rest (state, conditions, times).
pub fn runner_status(
    spec: &weft_spec::experiment::ExperimentSpec,
    trials: &[TrialProgress],
) -> ExperimentStatus {
    use weft_spec::experiment::{ObjectiveType, StrategyValue};
    let count = |states: &[&str]| {
        let n = trials
            .iter()
            .filter(|t| states.contains(&t.state.as_str()))
            .count();
        (n > 0).then_some(n as u32)
    };
    let loss = |v: f64| match spec.objective.direction {
        ObjectiveType::Minimize => v,
        ObjectiveType::Maximize => -v,
    };
    let best = trials
        .iter()
        .filter(|t| t.state == "Succeeded")
        .filter_map(|t| Some((t, t.objective.filter(|v| !v.is_nan())?)))
        .min_by(|(_, a), (_, b)| loss(*a).total_cmp(&loss(*b)));
    let metric = |name: &str, value: f64| {
        let text = Some(value.to_string());
        let mut m = Metric {
            name: name.to_string(),
            value: Some(value),
            ..Default::default()
        };
        match spec.strategy(name) {
            StrategyValue::Min => m.min = text,
            StrategyValue::Max => m.max = text,
            StrategyValue::Latest => m.latest = text,
        }
        m
    };
    let current_optimal_trial = best.map(|(t, v)| OptimalTrial {
        best_trial_name: t.name.clone(),
        parameter_assignments: t
            .parameters
            .iter()
            .map(|(name, value)| ParameterAssignment {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        observation: Observation {
            metrics: std::iter::once(metric(&spec.objective.objective_metric_name, v))
                .chain(
                    t.metrics
                        .iter()
                        .filter(|(n, _)| *n != spec.objective.objective_metric_name)
                        .map(|(n, v)| metric(n, *v)),
                )
                .collect(),
        },
    });
    ExperimentStatus {
        best_value: best.map(|(_, v)| v),
        current_optimal_trial,
        trials: (!trials.is_empty()).then_some(trials.len() as u32),
        trials_succeeded: count(&["Succeeded"]),
        trials_failed: count(&["Failed"]),
        trials_early_stopped: count(&["EarlyStopped"]),
        trials_running: count(&["Running", "Pending"]),
        trial_metrics_unavailable: count(&["MetricsUnavailable"]),
        ..Default::default()
    }
}
