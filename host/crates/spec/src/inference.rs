//! `InferenceService`: a served model, as `wasm-run serve` runs it and the operator deploys it.
//!
//! Shaped after KServe's `InferenceService` (`spec.predictor` with `storageUri`, replicas and
//! scaling, a canary with `canaryTrafficPercent`), with a Weft component in place of a container.

use crate::pipeline::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A served model: `kind: InferenceService`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InferenceService {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: InferenceServiceSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.canary) || self.canary.component != self.predictor.component || (has(self.canary.storageUri) ? (!has(self.predictor.storageUri) || self.canary.storageUri != self.predictor.storageUri) : has(self.predictor.storageUri))",
     "message": "the canary must differ from the predictor in its component or its storageUri"},
]))]
pub struct InferenceServiceSpec {
    /// The model version that takes the traffic the canary does not.
    pub predictor: PredictorSpec,
    /// A second version of the model taking `trafficPercent` of the requests; promote it by
    /// making it the predictor, roll it back by removing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanarySpec>,
    /// Replicas, resources and scaling of the serving pods.
    #[serde(default)]
    pub scaling: Scaling,
}

/// One version of a model: its component and its model artifact.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PredictorSpec {
    /// The `weft:serve/predictor` component: a path locally, `sha256:<hex>` (an artifact in the
    /// store) anywhere, or `model-registry://NAME/VERSION` anywhere (resolved by `wasm-run
    /// serve -f` or the operator through the model registry): a version registered with its
    /// component (`wasm-run models register --component`), which also brings its model files
    /// when `storageUri` is not given.
    #[schemars(length(min = 1))]
    pub component: String,
    /// The model artifact, granted read-only to the component as its model directory: a path
    /// locally, `sha256:<hex>` anywhere, or `model-registry://NAME/VERSION` anywhere (a
    /// registered version's files, stored in the artifact store). None for a model that needs
    /// no files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_uri: Option<String>,
    /// Per-request time limit, e.g. `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Per-request linear memory limit, e.g. `256MiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Warm instances kept per pod (0: a fresh instance per request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<u32>,
}

/// The canary version and its share of the traffic; it runs under the predictor's limits.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanarySpec {
    /// As the predictor's `component`.
    #[schemars(length(min = 1))]
    pub component: String,
    /// As the predictor's `storageUri`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_uri: Option<String>,
    /// Percent of requests the canary answers (0–100).
    #[schemars(range(max = 100))]
    pub traffic_percent: u32,
}

/// How many serving pods, how big, and when to add more.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.maxReplicas >= self.minReplicas", "message": "maxReplicas must be at least minReplicas"},
    {"rule": "self.maxReplicas == self.minReplicas || self.metric != 'cpu' || (has(self.resources) && has(self.resources.requests) && 'cpu' in self.resources.requests)",
     "message": "autoscaling on cpu needs resources.requests.cpu (utilisation is a share of the request)"},
]))]
pub struct Scaling {
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub min_replicas: u32,
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub max_replicas: u32,
    /// What the autoscaler follows when `maxReplicas > minReplicas`.
    #[serde(default)]
    pub metric: ScaleMetric,
    /// The target per pod: CPU percent of the request, or requests in flight.
    #[serde(default = "default_target")]
    #[schemars(range(min = 1))]
    pub target: u32,
    /// Container resources, as Kubernetes quantities: `requests`/`limits` of `cpu`, `memory`.
    #[serde(default, skip_serializing_if = "Resources::is_empty")]
    pub resources: Resources,
}

impl Default for Scaling {
    fn default() -> Self {
        Scaling {
            min_replicas: 1,
            max_replicas: 1,
            metric: ScaleMetric::default(),
            target: default_target(),
            resources: Resources::default(),
        }
    }
}

fn one() -> u32 {
    1
}

fn default_target() -> u32 {
    80
}

/// The autoscaling signal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScaleMetric {
    /// CPU utilisation, percent of the CPU request (needs `resources.requests.cpu`).
    #[default]
    Cpu,
    /// Requests in flight per pod, from the server's `/metrics` (needs a custom-metrics
    /// adapter such as prometheus-adapter).
    Concurrency,
}

/// Container resources.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, String>,
}

impl Resources {
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty() && self.limits.is_empty()
    }
}
