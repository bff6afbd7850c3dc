//! The API's types, as Kubeflow Model Registry's OpenAPI document (v1alpha3) names them: field
//! names in camelCase, ids and times (milliseconds since the epoch) as strings, custom
//! properties as `MetadataValue`s tagged by `metadataType`. Unknown fields are refused, as
//! upstream's server does, so a misspelt field is an error rather than lost.

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

mod artifacts;
mod experiments;
mod serving;

pub use artifacts::*;
pub use experiments::*;
pub use serving::*;

/// A custom property's value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "metadataType", deny_unknown_fields)]
pub enum MetadataValue {
    MetadataIntValue {
        /// An int64, as a string (JSON numbers lose precision past 2^53).
        int_value: IntString,
    },
    MetadataDoubleValue {
        double_value: f64,
    },
    MetadataStringValue {
        string_value: String,
    },
    /// Base64 of a `google.protobuf.Struct`.
    MetadataStructValue {
        struct_value: String,
    },
    /// Base64 of a protocol buffer message of the type `type` names.
    MetadataProtoValue {
        #[serde(rename = "type")]
        type_url: String,
        proto_value: String,
    },
    MetadataBoolValue {
        bool_value: bool,
    },
}

/// An int64 written as a decimal string.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct IntString(pub String);

impl<'de> Deserialize<'de> for IntString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<i64>()
            .map_err(|_| serde::de::Error::custom(format!("`{s}` is not an int64")))?;
        Ok(IntString(s))
    }
}

impl utoipa::PartialSchema for IntString {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Int64,
            )))
            .pattern(Some("^-?[0-9]+$"))
            .description(Some("An int64 as a decimal string."))
            .into()
    }
}

impl ToSchema for IntString {}

pub type CustomProperties = BTreeMap<String, MetadataValue>;

/// `customProperties` in the document: names to [`MetadataValue`]s.
pub(crate) fn custom_properties_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{SchemaType, Type};
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .additional_properties(Some(utoipa::openapi::Ref::from_schema_name(
            "MetadataValue",
        )))
        .description(Some("User properties, each a `MetadataValue`."))
        .build()
}

/// The state of a registered model or a model version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    #[default]
    Live,
    Archived,
}

/// The state of an artifact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ArtifactState {
    #[default]
    Unknown,
    Pending,
    Live,
    MarkedForDeletion,
    Deleted,
    Abandoned,
    Reference,
}

/// The last known state of an execution (a serve action).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionState {
    #[default]
    Unknown,
    New,
    Running,
    Complete,
    Failed,
    Cached,
    Canceled,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisteredModel {
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readme: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maturity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license_link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub library_name: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelVersion {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub name: String,
    /// Required on creation through `/model_versions`; the path gives it under
    /// `/registered_models/{id}/versions`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered_model_id: Option<String>,
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
    pub author: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<State>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelArtifact {
    /// `model-artifact` when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<ArtifactState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_format_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_format_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_source_kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_source_class: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_source_group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_source_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_source_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment_run_id: Option<String>,
}

/// A document (a model card, a README) attached to a version.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DocArtifact {
    /// `doc-artifact` when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<ArtifactState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment_run_id: Option<String>,
}

/// Any artifact, told apart by `artifactType`.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Artifact {
    Model(Box<ModelArtifact>),
    Doc(Box<DocArtifact>),
    DataSet(Box<DataSet>),
    Metric(Box<Metric>),
    Parameter(Box<Parameter>),
}

pub const MODEL_ARTIFACT: &str = "model-artifact";
pub const DOC_ARTIFACT: &str = "doc-artifact";
pub const DATASET_ARTIFACT: &str = "dataset-artifact";
pub const METRIC: &str = "metric";
pub const PARAMETER: &str = "parameter";

/// A page of a list.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct List<T> {
    /// Empty on the last page.
    pub next_page_token: String,
    pub page_size: u32,
    pub size: usize,
    pub items: Vec<T>,
}

/// Every error: `code` is the HTTP status as text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Error {
    pub code: String,
    pub message: String,
}
