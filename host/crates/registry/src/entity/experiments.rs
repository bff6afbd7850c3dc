//! Experiments and experiment runs as entities.

use super::{json_int, json_text, Entity, STATE};
use crate::error::ApiError;
use crate::filter::{Field, Ty};
use crate::model::*;
use crate::ops::Scoped;
use weft_store::RegistryKind;

impl Entity for Experiment {
    const KIND: RegistryKind = RegistryKind::Experiment;
    const FIELDS: &'static [(&'static str, Field)] = &[STATE, json_text("owner")];
    fn fill_defaults(&mut self) {
        self.state.get_or_insert(State::Live);
        self.custom_properties.get_or_insert_with(Default::default);
    }
}

impl Entity for ExperimentRun {
    const KIND: RegistryKind = RegistryKind::ExperimentRun;
    const PARENT_FIELD: Option<&'static str> = Some("experimentId");
    const FIELDS: &'static [(&'static str, Field)] = &[
        STATE,
        ("experimentId", Field::Col("parent", Ty::Int)),
        json_text("status"),
        json_text("owner"),
        json_int("startTimeSinceEpoch"),
        json_int("endTimeSinceEpoch"),
    ];
    fn fill_defaults(&mut self) {
        self.state.get_or_insert(State::Live);
        self.status.get_or_insert(ExperimentRunStatus::Running);
        self.custom_properties.get_or_insert_with(Default::default);
    }
    /// A run does not end before it starts (as upstream checks).
    fn validate(&self, _store: &Scoped) -> Result<(), ApiError> {
        let time = |t: &Option<IntString>| t.as_ref().and_then(|t| t.0.parse::<i64>().ok());
        match (
            time(&self.start_time_since_epoch),
            time(&self.end_time_since_epoch),
        ) {
            (Some(start), Some(end)) if end < start => Err(ApiError::bad_request(format!(
                "invalid field `endTimeSinceEpoch`: {end} is before startTimeSinceEpoch {start}"
            ))),
            _ => Ok(()),
        }
    }
}
