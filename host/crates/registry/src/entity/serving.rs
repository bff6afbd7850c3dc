//! Serving environments, inference services and serve actions as entities. An inference
//! service names a registered model (and maybe one of its versions), a serve action a model
//! version: they must exist when the entity is stored.

use super::{json_int, json_text, Entity};
use crate::error::ApiError;
use crate::filter::{Field, Ty};
use crate::model::*;
use crate::ops::get_row;
use crate::ops::Scoped;
use weft_store::RegistryKind;

impl Entity for ServingEnvironment {
    const KIND: RegistryKind = RegistryKind::ServingEnvironment;
    fn fill_defaults(&mut self) {
        self.custom_properties.get_or_insert_with(Default::default);
    }
}

/// A required id field's value, or a 400 naming it.
pub(crate) fn required<'a>(value: &'a Option<String>, field: &str) -> Result<&'a str, ApiError> {
    value
        .as_deref()
        .ok_or_else(|| ApiError::bad_request(format!("invalid field `{field}`: missing")))
}

impl Entity for InferenceService {
    const KIND: RegistryKind = RegistryKind::InferenceService;
    const PARENT_FIELD: Option<&'static str> = Some("servingEnvironmentId");
    const FIELDS: &'static [(&'static str, Field)] = &[
        ("servingEnvironmentId", Field::Col("parent", Ty::Int)),
        json_int("registeredModelId"),
        json_int("modelVersionId"),
        json_text("runtime"),
        json_text("desiredState"),
    ];
    fn fill_defaults(&mut self) {
        self.desired_state
            .get_or_insert(InferenceServiceState::Deployed);
        self.custom_properties.get_or_insert_with(Default::default);
    }
    /// The model exists, and the version, when named, is one of the model's.
    fn validate(&self, store: &Scoped) -> Result<(), ApiError> {
        let model = required(&self.registered_model_id, "registeredModelId")?;
        let model = get_row::<RegisteredModel>(store, model)?;
        let Some(version) = self.model_version_id.as_deref() else {
            return Ok(());
        };
        let version = get_row::<ModelVersion>(store, version)?;
        if version.parent != Some(model.id) {
            return Err(ApiError::bad_request(format!(
                "invalid field `modelVersionId`: model version {} is not a version of registered model {}",
                version.id, model.id
            )));
        }
        Ok(())
    }
}

impl Entity for ServeModel {
    const KIND: RegistryKind = RegistryKind::ServeModel;
    const FIELDS: &'static [(&'static str, Field)] =
        &[json_int("modelVersionId"), json_text("lastKnownState")];
    fn fill_defaults(&mut self) {
        self.last_known_state.get_or_insert(ExecutionState::Unknown);
        self.custom_properties.get_or_insert_with(Default::default);
    }
    /// The version served exists.
    fn validate(&self, store: &Scoped) -> Result<(), ApiError> {
        let version = required(&self.model_version_id, "modelVersionId")?;
        get_row::<ModelVersion>(store, version).map(|_| ())
    }
}
