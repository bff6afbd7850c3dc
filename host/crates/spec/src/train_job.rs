//! `TrainJob`: data-parallel training as Kubeflow Trainer v2 has it (`trainer.numNodes`,
//! `numProcPerNode`, `resourcesPerNode`, `initializer`, `suspend`, `activeDeadlineSeconds`),
//! run by `wasm-run train` and, as a CRD, by the operator.
//!
//! The changes from Trainer: the trainer is a component (each worker an instance of it, its
//! collectives through `weft:tensor/collective`), not an image and a command; there is no
//! runtime reference (the engine follows from where the workers run); and restarts are of the
//! whole gang, from the job's latest checkpoint, up to `runPolicy.backoffLimit`.

use crate::pipeline::{ArtifactType, ObjectMeta, TaskResources};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A training job: `kind: TrainJob`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrainJob {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: TrainJobSpec,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrainJobSpec {
    pub trainer: Trainer,
    /// The dataset (and a model to start from) the workers get as input artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initializer: Option<Initializer>,
    /// Checkpoints every N steps; a restarted gang goes on from the latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointPolicy>,
    #[serde(default)]
    pub run_policy: RunPolicy,
}

/// The trainer component and how many workers run it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Trainer {
    /// A `.wasm` path relative to this file, or `sha256:<hex>` of a stored component.
    pub component: String,
    /// Parameters every worker gets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, serde_json::Value>,
    /// Machines (pods on Kubernetes). More than one runs the ranks as MPI processes (engine
    /// mpi or nccl).
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub num_nodes: u32,
    /// Workers per node: component instances on threads of one process (engine local), or
    /// that many MPI processes (engines mpi and nccl).
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub num_proc_per_node: u32,
    /// What each node needs (cpu, memory, gpu, node selector), as a pipeline task's resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources_per_node: Option<TaskResources>,
    /// How workers exchange tensors: `auto` (in process on one node, MPI across nodes),
    /// `local`, `mpi` or `nccl` (CUDA tensors).
    #[serde(default)]
    pub engine: CollectiveEngine,
    /// Output artifacts the trainer writes (rank 0's are kept); `model: Model` when unset.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, ArtifactType>,
    /// Each worker's wall-clock limit per attempt, e.g. `30m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Each worker's memory limit, e.g. `512MiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

fn one() -> u32 {
    1
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CollectiveEngine {
    #[default]
    Auto,
    Local,
    Mpi,
    Nccl,
}

impl CollectiveEngine {
    pub fn is_auto(&self) -> bool {
        *self == CollectiveEngine::Auto
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CollectiveEngine::Auto => "auto",
            CollectiveEngine::Local => "local",
            CollectiveEngine::Mpi => "mpi",
            CollectiveEngine::Nccl => "nccl",
        }
    }
}

/// Trainer v2's initializer: where the dataset and the starting model come from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Initializer {
    /// Given to every worker as input `train` (or `input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<ArtifactRef>,
    /// Given to every worker as input `model` (or `input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ArtifactRef>,
}

/// An artifact: exactly one of `path`, `digest`, or a run's output (`run`, `task`, `output`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArtifactRef {
    /// A file or directory, relative to this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `sha256:<hex>` of a stored artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// A pipeline run's output: its id, with `task` and `output`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// The input name the workers get it as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckpointPolicy {
    /// Steps between checkpoints (the trainer's `checkpoint.every()`).
    #[schemars(range(min = 1))]
    pub every_steps: u32,
}

/// Kubeflow's RunPolicy, the parts that mean something here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunPolicy {
    /// Restarts after a worker fails (default 3). Each restarts the whole gang from the latest
    /// checkpoint: a lone restarted worker would wait on peers that moved on.
    #[serde(default = "backoff_limit")]
    pub backoff_limit: u32,
    /// The job's wall-clock limit from its start, restarts included: each restart's workers
    /// get what is left, and none is started once it has passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub active_deadline_seconds: Option<u64>,
    /// Do not start (on Kubernetes: stop and keep the job, to resume later).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
    /// On Kubernetes, a gang of several pods (engine mpi or nccl): how long its worker pods
    /// may take to be all ready (scheduled, pulled, sshd listening) before the job fails and
    /// releases the ones that were; all start or none (default 300). Kubeflow's
    /// `schedulingPolicy.scheduleTimeoutSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub schedule_timeout_seconds: Option<u64>,
}

/// A gang's wait for its workers when `scheduleTimeoutSeconds` is not given.
pub const DEFAULT_SCHEDULE_TIMEOUT_SECONDS: u64 = 300;

fn backoff_limit() -> u32 {
    3
}

impl Default for RunPolicy {
    fn default() -> Self {
        RunPolicy {
            backoff_limit: backoff_limit(),
            active_deadline_seconds: None,
            suspend: false,
            schedule_timeout_seconds: None,
        }
    }
}

impl TrainJobSpec {
    /// Workers in all: nodes times workers per node.
    pub fn world_size(&self) -> u64 {
        u64::from(self.trainer.num_nodes) * u64::from(self.trainer.num_proc_per_node)
    }

    /// The engine the workers meet through: `auto` is `local` on one node and `mpi` across
    /// several (as Trainer picks a runtime for the job's shape).
    pub fn engine(&self) -> CollectiveEngine {
        match self.trainer.engine {
            CollectiveEngine::Auto if self.trainer.num_nodes > 1 => CollectiveEngine::Mpi,
            CollectiveEngine::Auto => CollectiveEngine::Local,
            e => e,
        }
    }

    /// The trainer's output artifacts (`model: Model` when the spec names none).
    pub fn outputs(&self) -> BTreeMap<String, ArtifactType> {
        match self.trainer.outputs.is_empty() {
            true => BTreeMap::from([("model".to_string(), ArtifactType::Model)]),
            false => self.trainer.outputs.clone(),
        }
    }
}

/// The task a TrainJob's gang runs as, in its run.
pub const TRAIN_TASK: &str = "train";

impl TrainJob {
    /// The job as a one-task pipeline (read from a file in `base`): the trainer as a gang of
    /// `workers`, restarted up to `backoffLimit` times, with `inputs` (name → path or digest)
    /// as its input artifacts: the initializer's, resolved.
    pub fn pipeline(
        &self,
        base: &std::path::Path,
        workers: u32,
        inputs: BTreeMap<String, String>,
    ) -> crate::pipeline::Pipeline {
        use crate::one_task::{fixed_param, OneTask};
        use crate::pipeline::{Gang, RetryPolicy, TaskSpec};
        let t = &self.spec.trainer;
        OneTask {
            name: &self.metadata.name,
            description: format!("TrainJob {}: {workers} workers", self.metadata.name),
            task: TRAIN_TASK,
            source: &t.component,
            params: t
                .params
                .iter()
                .map(|(k, v)| (k.clone(), fixed_param(v)))
                .collect(),
            inputs,
            outputs: self.spec.outputs(),
            settings: TaskSpec {
                gang: Some(Gang {
                    workers,
                    checkpoint_every: self.spec.checkpoint.as_ref().map(|c| c.every_steps),
                    deadline_seconds: self.spec.run_policy.active_deadline_seconds,
                    engine: self.spec.engine(),
                }),
                retry: (self.spec.run_policy.backoff_limit > 0).then(|| RetryPolicy {
                    limit: self.spec.run_policy.backoff_limit,
                    backoff: Some("1s".into()),
                    factor: Some(2.0),
                }),
                timeout: t.timeout.clone(),
                memory: t.memory.clone(),
                ..Default::default()
            },
        }
        .pipeline(base)
    }
}
