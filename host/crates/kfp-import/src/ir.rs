//! The parts of KFP's compiled pipeline (`PipelineSpec`, kubeflow/pipelines
//! `api/v2alpha1/pipeline_spec.proto`, as `kfp.compiler.Compiler().compile` writes it: the
//! protobuf's JSON names, in YAML) that the importer reads.
//!
//! Every message keeps the fields it does not know in `other` (by name only), so a field that
//! changes a pipeline's meaning is refused by name rather than silently dropped.

use serde::de::IgnoredAny;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Field names of a message that the importer does not model.
pub type Unknown = BTreeMap<String, IgnoredAny>;

/// `PipelineSpec`: the whole compiled pipeline.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineSpec {
    pub pipeline_info: PipelineInfo,
    #[serde(default)]
    pub components: BTreeMap<String, ComponentSpec>,
    #[serde(default)]
    pub deployment_spec: DeploymentSpec,
    pub root: ComponentSpec,
    #[serde(default)]
    pub schema_version: Option<String>,
    #[serde(default)]
    pub sdk_version: Option<String>,
    /// Where KFP stores artifacts; Weft has its own store.
    #[serde(default)]
    pub default_pipeline_root: Option<IgnoredAny>,
    #[serde(flatten)]
    pub other: Unknown,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineInfo {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(flatten)]
    pub other: Unknown,
}

/// The second YAML document kfp-kubernetes adds (`PlatformSpec`): secrets, volumes, node
/// selectors per executor.
#[derive(Debug, Deserialize)]
pub struct PlatformSpec {
    #[serde(default)]
    pub platforms: BTreeMap<String, IgnoredAny>,
}

/// `ComponentSpec`: a DAG of tasks, or an executor.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentSpec {
    #[serde(default)]
    pub input_definitions: Definitions<InputParam>,
    #[serde(default)]
    pub output_definitions: Definitions<OutputParam>,
    #[serde(default)]
    pub dag: Option<DagSpec>,
    #[serde(default)]
    pub executor_label: Option<String>,
    #[serde(flatten)]
    pub other: Unknown,
}

/// `ComponentInputsSpec` / `ComponentOutputsSpec`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Definitions<P> {
    #[serde(default = "BTreeMap::new")]
    pub parameters: BTreeMap<String, P>,
    #[serde(default = "BTreeMap::new")]
    pub artifacts: BTreeMap<String, ArtifactSpec>,
    #[serde(flatten)]
    pub other: Unknown,
}

impl<P> Default for Definitions<P> {
    fn default() -> Self {
        Definitions {
            parameters: BTreeMap::new(),
            artifacts: BTreeMap::new(),
            other: Unknown::new(),
        }
    }
}

/// `ParameterType.ParameterTypeEnum`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ParameterType {
    String,
    NumberInteger,
    NumberDouble,
    Boolean,
    List,
    Struct,
    TaskFinalStatus,
    #[serde(other)]
    Unspecified,
}

/// An input parameter of a component (`InputParameterSpec`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InputParam {
    pub parameter_type: ParameterType,
    /// A `google.protobuf.Value`: any JSON (integers arrive as doubles, `5.0`).
    #[serde(default)]
    pub default_value: Option<serde_json::Value>,
    #[serde(default)]
    pub is_optional: bool,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(flatten)]
    pub other: Unknown,
}

/// An output parameter of a component (`OutputParameterSpec`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputParam {
    pub parameter_type: ParameterType,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(flatten)]
    pub other: Unknown,
}

/// An input or output artifact of a component (`ArtifactSpec`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactSpec {
    pub artifact_type: ArtifactTypeSchema,
    #[serde(default)]
    pub is_artifact_list: bool,
    #[serde(default)]
    pub is_optional: bool,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(flatten)]
    pub other: Unknown,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactTypeSchema {
    #[serde(default)]
    pub schema_title: Option<String>,
    #[serde(default)]
    pub schema_version: Option<String>,
    #[serde(flatten)]
    pub other: Unknown,
}

/// `DagSpec`: the tasks of a pipeline, a sub-pipeline or a group (`dsl.If`, `dsl.ParallelFor`,
/// `dsl.ExitHandler`), and the outputs it gives its parent.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DagSpec {
    #[serde(default)]
    pub tasks: BTreeMap<String, TaskSpec>,
    #[serde(default)]
    pub outputs: DagOutputs,
    #[serde(flatten)]
    pub other: Unknown,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DagOutputs {
    #[serde(default)]
    pub parameters: BTreeMap<String, DagOutputParam>,
    #[serde(default)]
    pub artifacts: BTreeMap<String, DagOutputArtifact>,
    #[serde(flatten)]
    pub other: Unknown,
}

/// `DagOutputParameterSpec`: one sub-task's output, or `dsl.OneOf` of several.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DagOutputParam {
    #[serde(default)]
    pub value_from_parameter: Option<SubtaskParam>,
    #[serde(default)]
    pub value_from_oneof: Option<IgnoredAny>,
    #[serde(flatten)]
    pub other: Unknown,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubtaskParam {
    pub producer_subtask: String,
    pub output_parameter_key: String,
}

/// `DagOutputArtifactSpec`: usually one selector; several are `dsl.OneOf`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DagOutputArtifact {
    #[serde(default)]
    pub artifact_selectors: Vec<SubtaskArtifact>,
    #[serde(flatten)]
    pub other: Unknown,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubtaskArtifact {
    pub producer_subtask: String,
    pub output_artifact_key: String,
}

/// `PipelineTaskSpec`: one task of a DAG.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSpec {
    #[serde(default)]
    pub task_info: Option<TaskInfo>,
    pub component_ref: ComponentRef,
    #[serde(default)]
    pub inputs: TaskInputs,
    #[serde(default)]
    pub dependent_tasks: Vec<String>,
    #[serde(default)]
    pub caching_options: Option<CachingOptions>,
    #[serde(default)]
    pub trigger_policy: Option<TriggerPolicy>,
    #[serde(default)]
    pub parameter_iterator: Option<ParameterIterator>,
    #[serde(default)]
    pub artifact_iterator: Option<IgnoredAny>,
    #[serde(default)]
    pub iterator_policy: Option<IteratorPolicy>,
    #[serde(default)]
    pub retry_policy: Option<RetryPolicy>,
    #[serde(flatten)]
    pub other: Unknown,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskInfo {
    pub name: String,
    #[serde(flatten)]
    pub other: Unknown,
}

#[derive(Debug, Deserialize)]
pub struct ComponentRef {
    pub name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskInputs {
    #[serde(default)]
    pub parameters: BTreeMap<String, ParamInput>,
    #[serde(default)]
    pub artifacts: BTreeMap<String, ArtifactInput>,
    #[serde(flatten)]
    pub other: Unknown,
}

/// `TaskInputsSpec.InputParameterSpec`: exactly one source.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParamInput {
    #[serde(default)]
    pub component_input_parameter: Option<String>,
    #[serde(default)]
    pub task_output_parameter: Option<TaskOutputParam>,
    #[serde(default)]
    pub runtime_value: Option<RuntimeValue>,
    #[serde(default)]
    pub task_final_status: Option<IgnoredAny>,
    /// A CEL selection from the value, e.g. `parseJson(string_value)["a"]` for a field of a
    /// loop item.
    #[serde(default)]
    pub parameter_expression_selector: Option<String>,
    #[serde(flatten)]
    pub other: Unknown,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskOutputParam {
    pub producer_task: String,
    pub output_parameter_key: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeValue {
    #[serde(default)]
    pub constant: Option<serde_json::Value>,
    #[serde(flatten)]
    pub other: Unknown,
}

/// `TaskInputsSpec.InputArtifactSpec`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactInput {
    #[serde(default)]
    pub component_input_artifact: Option<String>,
    #[serde(default)]
    pub task_output_artifact: Option<TaskOutputArtifact>,
    #[serde(flatten)]
    pub other: Unknown,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskOutputArtifact {
    pub producer_task: String,
    pub output_artifact_key: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachingOptions {
    #[serde(default)]
    pub enable_cache: bool,
    #[serde(default)]
    pub cache_key: Option<String>,
    #[serde(flatten)]
    pub other: Unknown,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerPolicy {
    /// A CEL expression over the task's inputs (`dsl.If`).
    #[serde(default)]
    pub condition: Option<String>,
    /// `ALL_UPSTREAM_TASKS_SUCCEEDED` (the default) or `ALL_UPSTREAM_TASKS_COMPLETED` (an exit
    /// handler's task).
    #[serde(default)]
    pub strategy: Option<String>,
    #[serde(flatten)]
    pub other: Unknown,
}

/// `ParameterIteratorSpec` (`dsl.ParallelFor` over parameters).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParameterIterator {
    pub items: IteratorItems,
    /// The name of the group's input that is the current item.
    pub item_input: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IteratorItems {
    /// A JSON list, as text.
    #[serde(default)]
    pub raw: Option<String>,
    /// One of the group task's input parameters.
    #[serde(default)]
    pub input_parameter: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IteratorPolicy {
    #[serde(default)]
    pub parallelism_limit: Option<u32>,
    #[serde(flatten)]
    pub other: Unknown,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    #[serde(default)]
    pub max_retry_count: Option<u32>,
    /// A protobuf Duration as JSON: `"1s"`, `"0.5s"`.
    #[serde(default)]
    pub backoff_duration: Option<String>,
    #[serde(default)]
    pub backoff_factor: Option<f64>,
    #[serde(default)]
    pub backoff_max_duration: Option<String>,
    #[serde(flatten)]
    pub other: Unknown,
}

/// `PipelineDeploymentConfig`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpec {
    #[serde(default)]
    pub executors: BTreeMap<String, ExecutorSpec>,
    #[serde(flatten)]
    pub other: Unknown,
}

/// `ExecutorSpec`: one of container, importer, resolver, custom job.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorSpec {
    #[serde(default)]
    pub container: Option<Container>,
    #[serde(default)]
    pub importer: Option<IgnoredAny>,
    #[serde(default)]
    pub resolver: Option<IgnoredAny>,
    #[serde(default)]
    pub custom_job: Option<IgnoredAny>,
    #[serde(flatten)]
    pub other: Unknown,
}

/// `PipelineContainerSpec`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<EnvVar>,
    #[serde(default)]
    pub resources: Option<Resources>,
    /// `preCacheCheck` hooks: KFP's caching machinery.
    #[serde(default)]
    pub lifecycle: Option<IgnoredAny>,
    #[serde(flatten)]
    pub other: Unknown,
}

#[derive(Debug, Deserialize)]
pub struct EnvVar {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

/// `ResourceSpec`. The `resource*` strings are what KFP 2.x sets (Kubernetes quantities); the
/// numeric `cpuLimit`/`memoryLimit` (GB) are the older, deprecated duplicates.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    #[serde(default)]
    pub resource_cpu_limit: Option<String>,
    #[serde(default)]
    pub resource_memory_limit: Option<String>,
    #[serde(default)]
    pub resource_cpu_request: Option<String>,
    #[serde(default)]
    pub resource_memory_request: Option<String>,
    #[serde(default)]
    pub cpu_limit: Option<f64>,
    #[serde(default)]
    pub memory_limit: Option<f64>,
    #[serde(default)]
    pub cpu_request: Option<f64>,
    #[serde(default)]
    pub memory_request: Option<f64>,
    #[serde(default)]
    pub accelerator: Option<IgnoredAny>,
    #[serde(flatten)]
    pub other: Unknown,
}
