//! Kubeflow Trainer's `OptimizationJob` (`trainer.kubeflow.org/v1alpha1`, the successor of
//! Katib's Experiment), read as an [`Experiment`] where its fields map: `objectives` (one),
//! `searchAlgorithm`, `parameters[].searchSpace`, `numTrials`, `parallelTrials`. Its
//! `trainJobTemplate` has no meaning here (there are no TrainJobs): the trial is Weft's
//! `trialTemplate`, as in an Experiment.

use crate::experiment::*;
use crate::pipeline::ObjectMeta;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OptimizationJob {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: OptimizationJobSpec,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OptimizationJobSpec {
    pub objectives: Vec<Objective>,
    /// Exactly one algorithm, by name, with its settings (`seed` is `random_state`).
    pub search_algorithm: BTreeMap<String, BTreeMap<String, Scalar>>,
    pub parameters: Vec<SearchParameter>,
    pub num_trials: u32,
    #[serde(default = "one")]
    pub parallel_trials: u32,
    #[serde(default)]
    pub max_failed_trials: Option<u32>,
    /// Weft's trial: a component or a pipeline.
    #[serde(default)]
    pub trial_template: TrialTemplate,
    /// Refused with a reason: there are no TrainJobs to template.
    #[serde(default)]
    pub train_job_template: Option<serde_json::Value>,
}

fn one() -> u32 {
    1
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Objective {
    #[serde(default = "loss")]
    pub metric: String,
    pub direction: Direction,
}

fn loss() -> String {
    "loss".into()
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize)]
pub enum Direction {
    Minimize,
    Maximize,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SearchParameter {
    pub name: String,
    pub search_space: SearchSpace,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SearchSpace {
    #[serde(default)]
    pub uniform: Option<Range>,
    #[serde(default)]
    pub log_uniform: Option<Range>,
    #[serde(default)]
    pub categorical: Option<Choices>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Range {
    pub min: Scalar,
    pub max: Scalar,
    #[serde(rename = "type", default)]
    pub ty: NumberType,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum NumberType {
    #[default]
    Float,
    Int,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Choices {
    pub choices: Vec<Scalar>,
}

impl OptimizationJob {
    /// The Experiment it means, or why it has none (a message for the whole file).
    pub fn into_experiment(self) -> Result<Experiment, String> {
        let s = self.spec;
        let versions = [
            "trainer.kubeflow.org/v1alpha1",
            crate::pipeline::API_VERSION,
        ];
        if !versions.contains(&self.api_version.as_str()) {
            return Err(format!(
                "apiVersion `{}`: an OptimizationJob is {}",
                self.api_version,
                versions.join(" or ")
            ));
        }
        if s.train_job_template.is_some() {
            return Err(
                "trainJobTemplate: Weft runs trials as components or pipelines, not \
                        TrainJobs: give a trialTemplate (component or pipeline) instead"
                    .into(),
            );
        }
        let [objective] = &s.objectives[..] else {
            return Err(format!(
                "objectives: exactly one, not {}",
                s.objectives.len()
            ));
        };
        let mut algorithms = s.search_algorithm.into_iter();
        let (Some((name, settings)), None) = (algorithms.next(), algorithms.next()) else {
            return Err(
                "searchAlgorithm: name exactly one algorithm, e.g. {random: {seed: 42}}".into(),
            );
        };
        let parameters = s
            .parameters
            .into_iter()
            .map(parameter)
            .collect::<Result<_, _>>()?;
        let algorithm_settings = settings
            .into_iter()
            .map(|(k, value)| AlgorithmSetting {
                name: if k == "seed" {
                    "random_state".into()
                } else {
                    k
                },
                value,
            })
            .collect();
        Ok(Experiment {
            api_version: crate::pipeline::API_VERSION.into(),
            kind: "Experiment".into(),
            metadata: self.metadata,
            spec: ExperimentSpec {
                parameters,
                objective: ObjectiveSpec {
                    direction: match objective.direction {
                        Direction::Minimize => ObjectiveType::Minimize,
                        Direction::Maximize => ObjectiveType::Maximize,
                    },
                    goal: None,
                    objective_metric_name: objective.metric.clone(),
                    additional_metric_names: Vec::new(),
                    metric_strategies: Vec::new(),
                },
                algorithm: AlgorithmSpec {
                    algorithm_name: name,
                    algorithm_settings,
                },
                early_stopping: None,
                trial_template: s.trial_template,
                parallel_trial_count: s.parallel_trials,
                max_trial_count: Some(s.num_trials),
                max_failed_trial_count: s.max_failed_trials,
                resume_policy: ResumePolicy::Never,
            },
        })
    }
}

fn parameter(p: SearchParameter) -> Result<ParameterSpec, String> {
    let s = p.search_space;
    let (parameter_type, feasible_space) = match (s.uniform, s.log_uniform, s.categorical) {
        (Some(r), None, None) => range(r, Distribution::Uniform),
        (None, Some(r), None) => range(r, Distribution::LogUniform),
        (None, None, Some(c)) => (
            ParameterType::Categorical,
            FeasibleSpace {
                list: c.choices,
                ..Default::default()
            },
        ),
        _ => {
            return Err(format!(
                "parameter `{}`: searchSpace takes exactly one of uniform, logUniform, categorical",
                p.name
            ))
        }
    };
    Ok(ParameterSpec {
        name: p.name,
        parameter_type,
        feasible_space,
    })
}

fn range(r: Range, distribution: Distribution) -> (ParameterType, FeasibleSpace) {
    let ty = match r.ty {
        NumberType::Float => ParameterType::Double,
        NumberType::Int => ParameterType::Int,
    };
    let space = FeasibleSpace {
        min: Some(r.min),
        max: Some(r.max),
        distribution: Some(distribution),
        ..Default::default()
    };
    (ty, space)
}
