//! `TrainJob` as a custom resource: Kubeflow Trainer v2's data-parallel training job, its gang
//! of workers run by one runner Job (`wasm-run train`: the workers as instances on threads of
//! one pod) or, when its ranks span pods, by an MPI gang of worker pods and that Job as their
//! launcher; its status shaped like Trainer's (conditions, `trainerStatus`).

use crate::pipeline::RunnerStatus;
use crate::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `kind: TrainJob`: data-parallel training. In the cluster the trainer component and the
/// initializer's artifacts are `sha256:` digests in the artifact store (or absolute paths the
/// runner's image has).
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "weft.dev",
    version = "v1alpha1",
    kind = "TrainJob",
    namespaced,
    status = "TrainJobStatus",
    shortname = "wtj",
    category = "weft",
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.state"}"#,
    printcolumn = r#"{"name":"Nodes","type":"integer","jsonPath":".spec.trainer.numNodes"}"#,
    printcolumn = r#"{"name":"Progress","type":"integer","jsonPath":".status.trainerStatus.progressPercentage"}"#,
    printcolumn = r#"{"name":"ETA (s)","type":"integer","jsonPath":".status.trainerStatus.estimatedRemainingSeconds","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(transparent)]
pub struct TrainJobResourceSpec(pub weft_spec::train_job::TrainJobSpec);
crate::structural::structural_schema!(
    TrainJobResourceSpec,
    weft_spec::train_job::TrainJobSpec,
    "TrainJobSpec"
);

/// What the operator and the runner report of a training job, in Trainer's field names.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrainJobStatus {
    /// `Created`, `Running`, `Suspended`, `Complete`, `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Trainer's conditions: `Created`, `Suspended`, `Complete`, `Failed`, each with a reason
    /// and message, set on every path (a child the API server refused included).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The job's progress, written by the runner as the workers report steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trainer_status: Option<TrainerStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    /// Where the workers run and where their log is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<RunnerStatus>,
    /// Why the job ended, could not start, or failed, in one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// A gang's tries at getting all its workers ready within `scheduleTimeoutSeconds`, each
    /// ended by releasing them; after `backoffLimit` more the job fails `GangTimeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_attempts: Option<u32>,
}

/// Trainer v2's `trainerStatus` (KEP 2779).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrainerStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_percentage: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_remaining_seconds: Option<u64>,
    /// The latest value of each metric the workers report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<TrainerMetric>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_time: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TrainerMetric {
    pub name: String,
    /// As text, as Trainer has it (a float's shortest form).
    pub value: String,
}
