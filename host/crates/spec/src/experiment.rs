//! `Experiment`: hyperparameter tuning as Katib has it (`kubeflow.org/v1beta1` field names and
//! meanings), run by `wasm-run tune` and, as a CRD, by the operator.
//!
//! The one change from Katib: a trial is not a Job whose pod logs are scraped by a sidecar, but
//! a component (a step) or a pipeline run with the trial's parameters, whose metrics arrive
//! through `metrics.report`. So there is no `metricsCollectorSpec`, and no `${...}` text
//! substitution: each trial parameter names the step or pipeline parameter it becomes.

use crate::pipeline::{ArtifactType, ObjectMeta};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A tuning experiment: `kind: Experiment`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Experiment {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: ExperimentSpec,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExperimentSpec {
    /// The search space.
    pub parameters: Vec<ParameterSpec>,
    pub objective: ObjectiveSpec,
    /// How the next trials' parameters are chosen.
    pub algorithm: AlgorithmSpec,
    /// How a running trial is judged hopeless and stopped (`medianstop`, `asha`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stopping: Option<AlgorithmSpec>,
    pub trial_template: TrialTemplate,
    /// Trials running at once (Katib's default: 3).
    #[serde(default = "default_parallel")]
    pub parallel_trial_count: u32,
    /// Trials in all; without it the experiment runs until `objective.goal` is reached or
    /// `maxFailedTrialCount` trials have failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_trial_count: Option<u32>,
    /// Failed trials that end the experiment as failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failed_trial_count: Option<u32>,
    /// What happens to a finished experiment: `Never` resumed (Katib's default), or
    /// `LongRunning`: kept resumable with a larger `maxTrialCount`.
    #[serde(default)]
    pub resume_policy: ResumePolicy,
}

fn default_parallel() -> u32 {
    3
}

/// One hyperparameter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParameterSpec {
    pub name: String,
    pub parameter_type: ParameterType,
    pub feasible_space: FeasibleSpace,
}

impl ParameterSpec {
    /// A `discrete` parameter whose list holds only whole numbers (`[16, 32, 64]`): its values
    /// reach steps as ints, so it can feed an int param (a layer width, a batch size).
    pub fn is_whole_discrete(&self) -> bool {
        self.parameter_type == ParameterType::Discrete
            && self.feasible_space.list.iter().all(|v| {
                v.number()
                    .is_some_and(|n| n.fract() == 0.0 && n.abs() < 9.0e15)
            })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParameterType {
    Double,
    Int,
    /// Numbers from `list`.
    Discrete,
    /// Strings from `list`.
    Categorical,
}

/// The values a parameter may take. Numbers may be written as YAML numbers or, as Katib
/// writes them, strings (`"0.01"`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FeasibleSpace {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Scalar>,
    /// Grid spacing (and, for `grid`, required of a `double`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<Scalar>,
    /// The values of a `discrete` or `categorical` parameter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub list: Vec<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<Distribution>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Distribution {
    Uniform,
    LogUniform,
    Normal,
    LogNormal,
}

/// A scalar written as a YAML number, string or boolean, kept as its text (Katib's settings
/// and bounds are strings).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Scalar {
    Number(serde_json::Number),
    Text(String),
    Bool(bool),
}

impl Scalar {
    pub fn text(&self) -> String {
        match self {
            Scalar::Number(n) => n.to_string(),
            Scalar::Text(s) => s.clone(),
            Scalar::Bool(b) => b.to_string(),
        }
    }

    /// The value as a finite number, if it is one.
    pub fn number(&self) -> Option<f64> {
        let v = match self {
            Scalar::Number(n) => n.as_f64()?,
            Scalar::Text(s) => s.trim().parse().ok()?,
            Scalar::Bool(_) => return None,
        };
        v.is_finite().then_some(v)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectiveSpec {
    #[serde(rename = "type")]
    pub direction: ObjectiveType,
    /// The experiment succeeds once a trial's objective reaches this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<f64>,
    /// The metric (`metrics.report` name) being optimised.
    pub objective_metric_name: String,
    /// Other metrics recorded with each trial.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_metric_names: Vec<String>,
    /// Which of a metric's reported values is the trial's: `min`, `max` or `latest` (default:
    /// `min` when minimising, `max` when maximising).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metric_strategies: Vec<MetricStrategy>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ObjectiveType {
    Minimize,
    Maximize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricStrategy {
    pub name: String,
    pub value: StrategyValue,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StrategyValue {
    Min,
    Max,
    Latest,
}

/// An algorithm and its settings (`random_state`, `n_startup_trials`...; Katib's names).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlgorithmSpec {
    pub algorithm_name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub algorithm_settings: Vec<AlgorithmSetting>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlgorithmSetting {
    pub name: String,
    pub value: Scalar,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ResumePolicy {
    #[default]
    Never,
    LongRunning,
    /// Katib's volume-backed resume; refused (every experiment's state is in the store).
    FromVolume,
}

/// What one trial runs: exactly one of `component` and `pipeline`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrialTemplate {
    /// Which experiment parameter (`reference`) becomes which step or pipeline parameter
    /// (`name`). Without any, each parameter becomes the parameter of its own name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trial_parameters: Vec<TrialParameter>,
    /// A trial is one step of this component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<ComponentTrial>,
    /// A trial is a run of this pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PipelineTrial>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrialParameter {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The name of an entry of `spec.parameters`.
    pub reference: String,
}

/// A step as a trial: the component, its fixed parameters and inputs, its limits.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComponentTrial {
    /// A `.wasm` path relative to this file, or `sha256:<hex>` of a stored component.
    pub source: String,
    /// Parameters every trial gets, besides the trial's own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, serde_json::Value>,
    /// Input artifacts: a path relative to this file, or `sha256:<hex>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
    /// Output artifacts the step writes and the trial keeps.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, ArtifactType>,
    /// Per-trial wall-clock limit, e.g. `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Per-trial memory limit, e.g. `256MiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

/// A pipeline as a trial: trial parameters become pipeline parameters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PipelineTrial {
    /// The pipeline file, relative to this file.
    pub pipeline_ref: String,
    /// Pipeline parameters every trial gets, besides the trial's own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, serde_json::Value>,
}

impl ExperimentSpec {
    /// `(trial parameter name, experiment parameter)` pairs: what each trial passes on.
    pub fn trial_bindings(&self) -> Vec<(&str, &ParameterSpec)> {
        let template = &self.trial_template.trial_parameters;
        if template.is_empty() {
            return self
                .parameters
                .iter()
                .map(|p| (p.name.as_str(), p))
                .collect();
        }
        template
            .iter()
            .filter_map(|t| {
                let p = self.parameters.iter().find(|p| p.name == t.reference)?;
                Some((t.name.as_str(), p))
            })
            .collect()
    }

    /// The strategy that turns a metric's reported values into the trial's value.
    pub fn strategy(&self, metric: &str) -> StrategyValue {
        self.objective
            .metric_strategies
            .iter()
            .find(|s| s.name == metric)
            .map(|s| s.value)
            .unwrap_or(match self.objective.direction {
                ObjectiveType::Minimize => StrategyValue::Min,
                ObjectiveType::Maximize => StrategyValue::Max,
            })
    }
}
