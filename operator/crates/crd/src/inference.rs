//! `InferenceService` as a custom resource.

use crate::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `kind: InferenceService`: a model served by `wasm-run serve` pods behind a Service.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "weft.dev",
    version = "v1alpha1",
    kind = "InferenceService",
    namespaced,
    status = "InferenceServiceStatus",
    shortname = "wisvc",
    category = "weft",
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".status.url"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Canary","type":"integer","jsonPath":".spec.canary.trafficPercent"}"#
)]
#[serde(transparent)]
pub struct InferenceServiceResourceSpec(pub weft_spec::inference::InferenceServiceSpec);
crate::structural::structural_schema!(
    InferenceServiceResourceSpec,
    weft_spec::inference::InferenceServiceSpec,
    "InferenceServiceSpec"
);

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InferenceServiceStatus {
    /// The V2 endpoint inside the cluster, e.g. `http://NAME.NS.svc:8080/v2/models/NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `Ready` (pods answering the V2 readiness probe), with reason and message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Ready serving pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
