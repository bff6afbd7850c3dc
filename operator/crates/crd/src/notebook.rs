//! `Notebook` as a custom resource: Kubeflow's v1 Notebook (`spec.template.spec` a PodSpec,
//! run as a one-pod StatefulSet behind a Service, stopped by the `kubeflow-resource-stopped`
//! annotation, culled when idle), with a workspace volume the controller keeps across stops.

use crate::Condition;
use k8s_openapi::api::core::v1::{ContainerState, PodSpec};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Present (any value; the culler writes the time) ⇒ the notebook's StatefulSet has 0 replicas.
pub const STOP_ANNOTATION: &str = "kubeflow-resource-stopped";
/// When the notebook's kernels were last active (RFC 3339), as Kubeflow's culler keeps it.
pub const LAST_ACTIVITY_ANNOTATION: &str = "notebooks.kubeflow.org/last-activity";
/// When the culler last asked the notebook server (RFC 3339).
pub const LAST_CHECK_ANNOTATION: &str = "notebooks.kubeflow.org/last_activity_check_timestamp";

/// `kind: Notebook`: a Jupyter server in a pod, with Kubeflow's semantics.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "weft.dev",
    version = "v1alpha1",
    kind = "Notebook",
    namespaced,
    status = "NotebookStatus",
    shortname = "wnb",
    category = "weft",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".status.url","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.template.spec.containers.size() > 0",
     "message": "a Notebook needs a container: spec.template.spec.containers is empty (the first container is the notebook server, listening on 8888)"},
]))]
pub struct NotebookSpec {
    /// The notebook's pod, as Kubeflow's: its first container is the Jupyter server.
    pub template: NotebookTemplate,
    /// A PersistentVolumeClaim `NAME-workspace` the controller makes and mounts on the first
    /// container; kept when the notebook stops (and when it is deleted), so it starts again
    /// with its files. Unset: the operator's notebook profile's workspace, if it has one
    /// (`disabled: true` for none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<Workspace>,
    /// This notebook's idle culling, overriding the operator's settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub culling: Option<Culling>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotebookTemplate {
    /// Labels and annotations of the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMeta>,
    pub spec: PodSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateMeta {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.size) || self.size.matches('^[0-9]+(\\\\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$')",
     "message": "workspace.size must be a quantity such as 10Gi"},
]))]
pub struct Workspace {
    /// The claim's size, e.g. `10Gi`: the operator's notebook profile's when unset, else 10Gi.
    // Bounded (so is idleTime), as a string a CEL regex reads must be for the API server's
    // cost estimate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub size: Option<String>,
    /// Where the first container sees it: the profile's, else `/home/jovyan` (Kubeflow
    /// images' home).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_path: Option<String>,
    /// The profile's, else the cluster's default class, when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// No workspace, not even the profile's default one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.idleTime) || self.idleTime.matches('^[0-9]*[1-9][0-9]*[smh]?$')",
     "message": "culling.idleTime must be a positive number of minutes (Kubeflow's CULL_IDLE_TIME), or a number with s, m or h, such as 90m"},
]))]
pub struct Culling {
    /// Never cull this notebook.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// How long without kernel activity before the notebook stops: minutes (`1440`), or with
    /// a unit (`30s`, `90m`, `2h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub idle_time: Option<String>,
}

/// Kubeflow's Notebook status, plus the URL.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotebookStatus {
    /// `Ready` (the server's pod is ready; reasons `Stopped`, `Starting`, or why the pod
    /// fails: `ImagePullBackOff`, `CrashLoopBackOff`...) and `Failed` (True while the pod
    /// cannot run, with the kubelet's message).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    pub ready_replicas: i32,
    /// The notebook server's container state, as Kubeflow reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_state: Option<ContainerState>,
    /// Where the server answers inside the cluster: `http://NAME.NS.svc.cluster.local/notebook/NS/NAME/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// `minutes`, or a number with `s`, `m` or `h`: Kubeflow's `CULL_IDLE_TIME` and
/// `IDLENESS_CHECK_PERIOD` are minutes; a unit allows shorter ones.
pub fn parse_cull_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().last() {
        Some((i, c @ ('s' | 'm' | 'h'))) => (&t[..i], c),
        _ => (t, 'm'),
    };
    let n: u64 = digits.parse().map_err(|_| {
        format!("`{text}` is not a duration: give minutes (1440), or a number with s, m or h (30s, 90m, 2h)")
    })?;
    if n == 0 {
        return Err(format!("`{text}`: the duration must be more than 0"));
    }
    let secs = match unit {
        's' => n,
        'm' => n * 60,
        _ => n * 3600,
    };
    Ok(std::time::Duration::from_secs(secs))
}
