//! Experiments and their runs (upstream's `Experiment`, `ExperimentRun`).

use super::{custom_properties_schema, CustomProperties, IntString, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The status of an experiment run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExperimentRunStatus {
    #[default]
    Running,
    Scheduled,
    Finished,
    Failed,
    Killed,
}

/// A set of runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Experiment {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = custom_properties_schema)]
    pub custom_properties: Option<CustomProperties>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_time_since_epoch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_update_time_since_epoch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<State>,
}

/// One run of an experiment; its metrics, parameters and datasets are artifacts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExperimentRun {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = custom_properties_schema)]
    pub custom_properties: Option<CustomProperties>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_time_since_epoch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_update_time_since_epoch: Option<String>,
    /// Required on creation through `/experiment_runs`; the path gives it under
    /// `/experiments/{id}/experiment_runs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time_since_epoch: Option<IntString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time_since_epoch: Option<IntString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ExperimentRunStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<State>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}
