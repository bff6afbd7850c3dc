//! The artifact types as entities: each typed one (model, doc, dataset, metric, parameter),
//! the generic [`Artifact`] told apart by `artifactType`, and a run's metric history.

use super::{check_artifact_type, json_int, json_text, typed, Entity, STATE};
use crate::error::ApiError;
use crate::filter::{Field, Ty};
use crate::model::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use weft_store::RegistryKind;

/// Every artifact type's fields (`/artifacts` lists them all). A metric's `value` is a number
/// and a parameter's is text, so `value` compares as whatever the literal is.
const ARTIFACT_FIELDS: &[(&str, Field)] = &[
    STATE,
    ("artifactType", Field::Col("artifact_type", Ty::Text)),
    json_text("uri"),
    json_int("experimentId"),
    json_int("experimentRunId"),
    json_text("modelFormatName"),
    json_text("modelFormatVersion"),
    json_text("storageKey"),
    json_text("storagePath"),
    json_text("serviceAccountName"),
    json_text("modelSourceKind"),
    json_text("modelSourceClass"),
    json_text("modelSourceGroup"),
    json_text("modelSourceId"),
    json_text("modelSourceName"),
    json_text("digest"),
    json_text("sourceType"),
    json_text("source"),
    json_text("schema"),
    json_text("profile"),
    ("value", Field::Json("value", Ty::Any)),
    json_int("timestamp"),
    ("step", Field::Json("step", Ty::Num)),
    json_text("parameterType"),
];

/// An artifact type of its own: its `artifactType`, checked when given and set when stored.
macro_rules! typed_artifact {
    ($t:ty, $name:expr) => {
        impl Entity for $t {
            const KIND: RegistryKind = RegistryKind::Artifact;
            const ARTIFACT_TYPE: Option<&'static str> = Some($name);
            const FIELDS: &'static [(&'static str, Field)] = ARTIFACT_FIELDS;
            fn fill_defaults(&mut self) {
                self.artifact_type = Some($name.into());
                self.state.get_or_insert(ArtifactState::Unknown);
                self.custom_properties.get_or_insert_with(Default::default);
            }
            fn from_value(v: Value, _: &str) -> Result<Self, ApiError> {
                if let Value::Object(m) = &v {
                    check_artifact_type(m, $name)?;
                }
                typed(v)
            }
        }
    };
}

typed_artifact!(ModelArtifact, MODEL_ARTIFACT);
typed_artifact!(DocArtifact, DOC_ARTIFACT);
typed_artifact!(DataSet, DATASET_ARTIFACT);
typed_artifact!(Metric, METRIC);
typed_artifact!(Parameter, PARAMETER);

const TYPES: &str = "model-artifact, doc-artifact, dataset-artifact, metric, parameter";

impl Entity for Artifact {
    const KIND: RegistryKind = RegistryKind::Artifact;
    const FIELDS: &'static [(&'static str, Field)] = ARTIFACT_FIELDS;
    fn fill_defaults(&mut self) {
        match self {
            Artifact::Model(a) => a.fill_defaults(),
            Artifact::Doc(a) => a.fill_defaults(),
            Artifact::DataSet(a) => a.fill_defaults(),
            Artifact::Metric(a) => a.fill_defaults(),
            Artifact::Parameter(a) => a.fill_defaults(),
        }
    }
    /// By the row's type when read from a row, else by the body's `artifactType`.
    fn from_value(v: Value, artifact_type: &str) -> Result<Self, ApiError> {
        let named = v.get("artifactType").and_then(Value::as_str);
        let kind = match (artifact_type, named) {
            ("", Some(named)) => named.to_string(),
            ("", None) => {
                return Err(ApiError::bad_request(format!(
                    "invalid field `artifactType`: missing ({TYPES})"
                )))
            }
            (stored, _) => stored.to_string(),
        };
        match kind.as_str() {
            MODEL_ARTIFACT => typed_as(v, Artifact::Model),
            DOC_ARTIFACT => typed_as(v, Artifact::Doc),
            DATASET_ARTIFACT => typed_as(v, Artifact::DataSet),
            METRIC => typed_as(v, Artifact::Metric),
            PARAMETER => typed_as(v, Artifact::Parameter),
            other => Err(ApiError::bad_request(format!(
                "invalid field `artifactType`: `{other}` is not one of {TYPES}"
            ))),
        }
    }
    fn row_artifact_type(&self) -> String {
        match self {
            Artifact::Model(_) => MODEL_ARTIFACT,
            Artifact::Doc(_) => DOC_ARTIFACT,
            Artifact::DataSet(_) => DATASET_ARTIFACT,
            Artifact::Metric(_) => METRIC,
            Artifact::Parameter(_) => PARAMETER,
        }
        .into()
    }
}

fn typed_as<T: Entity>(v: Value, wrap: fn(Box<T>) -> Artifact) -> Result<Artifact, ApiError> {
    T::from_value(v, "").map(|a| wrap(Box::new(a)))
}

impl<'de> Deserialize<'de> for Artifact {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Artifact::from_value(v, "").map_err(|e| serde::de::Error::custom(e.message))
    }
}

/// One value of a metric as it was logged to an experiment run: a row of the run's metric
/// history, answered as a `Metric`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct MetricRecord(pub Metric);

impl Entity for MetricRecord {
    const KIND: RegistryKind = RegistryKind::MetricHistory;
    const PARENT_FIELD: Option<&'static str> = Some("experimentRunId");
    fn field(name: &str) -> Option<Field> {
        match name {
            "experimentRunId" => Some(Field::Col("parent", Ty::Int)),
            other => Metric::field(other),
        }
    }
    fn fill_defaults(&mut self) {
        self.0.fill_defaults()
    }
    fn from_value(v: Value, _: &str) -> Result<Self, ApiError> {
        Metric::from_value(v, "").map(MetricRecord)
    }
}
