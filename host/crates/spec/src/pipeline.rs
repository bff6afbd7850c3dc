//! `Pipeline` and `PipelineRun`: the YAML that `wasm-run` runs and the operator serves as CRDs.
//!
//! Shaped like a Kubernetes resource (`apiVersion: weft.dev/v1alpha1`, `kind`, `metadata`,
//! `spec`) and like Kubeflow Pipelines inside: components declare a typed interface, tasks wire
//! pipeline parameters, literals and upstream outputs into it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The API group/version of every Weft resource.
pub const API_VERSION: &str = "weft.dev/v1alpha1";

/// Kubernetes-style object metadata (the subset Weft uses locally).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A pipeline definition: `kind: Pipeline`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pipeline {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: PipelineSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.tasks.all(t, self.tasks[t].component in self.components)",
     "message": "every task's component must be an entry of spec.components"},
    {"rule": "self.tasks.all(t, !has(self.tasks[t].after) || self.tasks[t].after.all(a, a in self.tasks))",
     "message": "every name in a task's `after` must be a task of spec.tasks"},
]))]
pub struct PipelineSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Pipeline parameters, given per run (`--param`) or defaulted here.
    #[serde(default)]
    pub params: BTreeMap<String, ParamDecl>,
    /// Pipeline input artifacts: a type and a default path (relative to this file).
    #[serde(default)]
    pub artifacts: BTreeMap<String, InputArtifactDecl>,
    /// The components the tasks use, with their typed interfaces.
    pub components: BTreeMap<String, ComponentDecl>,
    /// The DAG. Edges come from data references and `after`.
    pub tasks: BTreeMap<String, TaskSpec>,
    /// A task run after all others, whatever happened (Kubeflow's `dsl.ExitHandler`): for
    /// notifications and cleanup. Its parameters may use `runStatus` (`state` or `error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_handler: Option<Box<TaskSpec>>,
    /// Outputs of the pipeline, when it is used as a sub-pipeline.
    #[serde(default)]
    pub outputs: PipelineOutputs,
}

/// A parameter's type, as Kubeflow Pipelines has them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Int,
    Float,
    Bool,
    Json,
}

impl ParamType {
    /// Whether a value of type `from` may feed an input of this type (an int widens to float;
    /// anything fits JSON).
    pub fn accepts(self, from: ParamType) -> bool {
        self == from
            || (self == ParamType::Float && from == ParamType::Int)
            || self == ParamType::Json
    }

    /// The type of a YAML/JSON literal, if it has one of ours.
    pub fn of_literal(v: &serde_json::Value) -> ParamType {
        match v {
            serde_json::Value::String(_) => ParamType::String,
            serde_json::Value::Bool(_) => ParamType::Bool,
            serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => ParamType::Int,
            serde_json::Value::Number(_) => ParamType::Float,
            _ => ParamType::Json,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Int => "int",
            ParamType::Float => "float",
            ParamType::Bool => "bool",
            ParamType::Json => "json",
        }
    }
}

/// Artifact types, as Kubeflow Pipelines' `system.*` types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ArtifactType {
    Artifact,
    Dataset,
    Model,
    Metrics,
    ClassificationMetrics,
    HTML,
    Markdown,
}

impl ArtifactType {
    /// A consumer of `Artifact` takes anything; otherwise the types must match.
    pub fn accepts(self, from: ArtifactType) -> bool {
        self == from || self == ArtifactType::Artifact
    }
}

/// A declared parameter: type, optional default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParamDecl {
    #[serde(rename = "type")]
    pub ty: ParamType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A pipeline input artifact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InputArtifactDecl {
    #[serde(rename = "type")]
    pub ty: ArtifactType,
    /// Default file or directory, relative to the pipeline file; a run may override it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A component and its interface.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComponentDecl {
    /// A `.wasm` path relative to the pipeline file, or `sha256:<hex>` of a stored component.
    pub source: String,
    #[serde(default)]
    pub inputs: Interface,
    #[serde(default)]
    pub outputs: OutputInterface,
}

/// What a component takes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Interface {
    #[serde(default)]
    pub params: BTreeMap<String, ParamDecl>,
    #[serde(default)]
    pub artifacts: BTreeMap<String, ArtifactType>,
}

/// What a component produces.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutputInterface {
    #[serde(default)]
    pub params: BTreeMap<String, ParamType>,
    #[serde(default)]
    pub artifacts: BTreeMap<String, ArtifactType>,
}

/// One node of the DAG.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskSpec {
    /// The name of an entry of `spec.components`.
    pub component: String,
    #[serde(default)]
    pub params: BTreeMap<String, ParamSource>,
    #[serde(default)]
    pub artifacts: BTreeMap<String, ArtifactSource>,
    /// Extra ordering edges, beyond those data references imply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// Run the component once per item of a list, in parallel (Kubeflow's `dsl.ParallelFor`).
    /// Downstream, each output parameter of this task is the list of the iterations' values
    /// and each output artifact a directory holding the iterations' artifacts as `0/`, `1/`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_for: Option<ParallelFor>,
    /// Run only when this holds; otherwise the task (and what needs it) is NOT_TRIGGERED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Wall-clock limit, e.g. `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Linear memory limit, e.g. `256MiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Use the cache for this task (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<bool>,
    /// Environment variables granted to the step.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// What the task needs of a machine. On Kubernetes a task that names any runs in a pod of
    /// its own with these requests (the others share the runner's pod, microseconds apart);
    /// `wasm-run` on one machine runs it in-process like any task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<TaskResources>,
    /// Run the component as a data-parallel gang of workers (a `TrainJob`'s trainer): all at
    /// once, each with its rank (`weft:tensor/collective`). One worker failing fails them all,
    /// and a retry restarts them all, from the latest checkpoint. Rank 0's outputs are the
    /// task's; every rank's metrics are kept (rank r's other than 0 as `rank-r/NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gang: Option<Gang>,
}

/// A task's gang of data-parallel workers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Gang {
    /// How many workers.
    #[schemars(range(min = 1))]
    pub workers: u32,
    /// Steps between the workers' checkpoints (`weft:tensor/checkpoint`); none when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_every: Option<u32>,
    /// The gang's wall-clock limit in seconds from the run's start, restarts included (a
    /// TrainJob's `activeDeadlineSeconds`): each attempt's workers get what is left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub deadline_seconds: Option<u64>,
    /// Where the workers meet: `local` (threads of this process, collectives in host memory;
    /// what `auto` is), or `mpi` (a process each, launched by `mpirun`, OpenMPI's
    /// collectives).
    #[serde(
        default,
        skip_serializing_if = "crate::train_job::CollectiveEngine::is_auto"
    )]
    pub engine: crate::train_job::CollectiveEngine,
}

/// A task's machine requirements, as Kubernetes quantities.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskResources {
    /// CPU request and limit, e.g. `2` or `500m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Memory request and limit of the pod, e.g. `4Gi` (the step's own linear-memory limit is
    /// the task's `memory`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// GPUs (`nvidia.com/gpu`); the step reaches them through `weft:tensor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<u32>,
    /// Node labels the pod must land on, e.g. `{accelerator: h100}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
}

/// Where a parameter value comes from: exactly one of `value`, `param`, or `task` + `output`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParamSource {
    /// A literal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    /// A pipeline parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// An upstream task's output parameter (with `output`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// In the exit handler: the run's final `state` (SUCCEEDED, FAILED, CANCELLED) or its
    /// `error` (empty when none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_status: Option<String>,
    /// In a `parallelFor` task: the current item (`.`), or a field of it (`lr` for `{lr: 0.1}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loop_item: Option<String>,
}

/// Fan-out over a list.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParallelFor {
    /// The list: a literal (`value: [..]`), a JSON pipeline parameter, or an upstream JSON output.
    pub items: ParamSource,
    /// Iterations running at once (default: the run's parallelism).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    /// On Kubernetes, spread the iterations over this many pods (each running its share,
    /// `parallelism` at once), for fan-outs larger than one pod should carry. One machine runs
    /// them all in-process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<u32>,
}

/// Where an input artifact comes from: a pipeline input (`artifact`) or `task` + `output`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArtifactSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// Comparison operators of conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Op {
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
}

/// A condition on a parameter or an upstream output: a comparison (`input`, `op`, `value`), or
/// `all`/`any`/`not` of conditions. Exactly one form per node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<ParamSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<Op>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<Vec<Condition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any: Option<Vec<Condition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not: Option<Box<Condition>>,
}

/// Retries with exponential backoff.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub limit: u32,
    /// First delay, e.g. `100ms` (default `1s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<String>,
    /// Multiplier per retry (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
}

/// Pipeline outputs for use as a sub-pipeline.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PipelineOutputs {
    #[serde(default)]
    pub params: BTreeMap<String, ParamSource>,
    #[serde(default)]
    pub artifacts: BTreeMap<String, ArtifactSource>,
}

/// A run request: `kind: PipelineRun`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PipelineRun {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: PipelineRunSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PipelineRunSpec {
    /// The pipeline: a file relative to this one for `wasm-run`, the name of a `Pipeline` in
    /// the same namespace on Kubernetes.
    #[schemars(length(min = 1))]
    pub pipeline_ref: String,
    /// Values for pipeline parameters.
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
    /// Paths for pipeline input artifacts, relative to this file.
    #[serde(default)]
    pub artifacts: BTreeMap<String, String>,
    /// Turn the cache off for every task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<bool>,
    /// Virtualise clocks and randomness from this seed, for replayable runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hermetic_seed: Option<u64>,
    /// Set to stop the run (on Kubernetes; the operator stops its runner and marks the run
    /// cancelled). `wasm-run` refuses to start a run that is marked cancelled.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancel: bool,
}
