//! `Pipeline` and `PipelineRun` as custom resources.

use crate::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `kind: Pipeline`: a pipeline definition that runs refer to by name.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "weft.dev",
    version = "v1alpha1",
    kind = "Pipeline",
    namespaced,
    shortname = "wpl",
    category = "weft",
    printcolumn = r#"{"name":"Tasks","type":"integer","jsonPath":".spec.tasks.length"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(transparent)]
pub struct PipelineResourceSpec(pub weft_spec::pipeline::PipelineSpec);
crate::structural::structural_schema!(
    PipelineResourceSpec,
    weft_spec::pipeline::PipelineSpec,
    "PipelineSpec"
);

/// `kind: PipelineRun`: one run of a `Pipeline`, executed by a runner Job.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "weft.dev",
    version = "v1alpha1",
    kind = "PipelineRun",
    namespaced,
    status = "PipelineRunStatus",
    shortname = "wpr",
    category = "weft",
    printcolumn = r#"{"name":"Pipeline","type":"string","jsonPath":".spec.pipelineRef"}"#,
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.state"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(transparent)]
pub struct PipelineRunResourceSpec(pub weft_spec::pipeline::PipelineRunSpec);
crate::structural::structural_schema!(
    PipelineRunResourceSpec,
    weft_spec::pipeline::PipelineRunSpec,
    "PipelineRunSpec"
);

/// What the operator and the runner report of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineRunStatus {
    /// The run's state, in Kubeflow Pipelines' names: PENDING, RUNNING, SUCCEEDED, FAILED,
    /// CANCELLED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// `Running`, `Succeeded` and `Failed`, with reasons and transition times.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Per task, as the runner reports it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tasks: BTreeMap<String, TaskStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    /// Where the run executes and where its log is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<RunnerStatus>,
    /// Why the run could not start or failed, in one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One task's state in a run: the runner's report of it, as it reported it.
pub type TaskStatus = weft_spec::report::TaskReport;

/// The runner Job of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunnerStatus {
    /// The Job's name.
    pub job: String,
    /// How to read the run's log, e.g. `kubectl logs -n NS job/NAME`.
    pub log: String,
}
