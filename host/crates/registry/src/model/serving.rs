//! Serving: environments, the inference services deployed in them, and the serve actions
//! recorded against a service (upstream's `ServingEnvironment`, `InferenceService`,
//! `ServeModel`).

use super::{custom_properties_schema, CustomProperties, ExecutionState};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What an inference service should be: `DEPLOYED` (the default) or `UNDEPLOYED`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InferenceServiceState {
    #[default]
    Deployed,
    Undeployed,
}

/// A place models are served (a namespace, a cluster).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServingEnvironment {
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
}

/// A model deployed in a serving environment: the registered model, and the version (the model's latest
/// when none is named).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InferenceService {
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
    /// Required on creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered_model_id: Option<String>,
    /// Required on creation through `/inference_services`; the path gives it under
    /// `/serving_environments/{id}/inference_services`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serving_environment_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_version_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired_state: Option<InferenceServiceState>,
}

/// One serving of a model version by an inference service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServeModel {
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
    /// Required on creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_version_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_known_state: Option<ExecutionState>,
}
