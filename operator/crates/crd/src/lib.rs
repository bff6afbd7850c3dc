//! Weft's Kubernetes custom resources, group `weft.dev`, version `v1alpha1`: `Pipeline`,
//! `PipelineRun`, `InferenceService`, `Experiment`, `TrainJob` and `Notebook`. All but the
//! last have weft-spec's types as their specs,
//! unchanged, so the YAML `wasm-run` runs is the YAML `kubectl apply` takes; this crate adds the
//! Kubernetes envelope, the status each controller writes, and the CRD manifests (`operator/chart/crds/`).
//! `Notebook`'s spec is Kubeflow's (a PodSpec), defined here.

mod experiment;
mod inference;
mod notebook;
mod pipeline;
pub mod resources;
mod structural;
mod train_job;

pub use experiment::{
    runner_status, Experiment, ExperimentResourceSpec, ExperimentStatus, Metric, Observation,
    OptimalTrial, ParameterAssignment, TrialProgress,
};
pub use inference::{InferenceService, InferenceServiceResourceSpec, InferenceServiceStatus};
pub use notebook::{
    parse_cull_duration, Culling, Notebook, NotebookSpec, NotebookStatus, NotebookTemplate,
    TemplateMeta, Workspace, LAST_ACTIVITY_ANNOTATION, LAST_CHECK_ANNOTATION, STOP_ANNOTATION,
};
pub use pipeline::{
    Pipeline, PipelineResourceSpec, PipelineRun, PipelineRunResourceSpec, PipelineRunStatus,
    RunnerStatus, TaskStatus,
};
pub use train_job::{TrainJob, TrainJobResourceSpec, TrainJobStatus, TrainerMetric, TrainerStatus};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group of every Weft resource.
pub const GROUP: &str = "weft.dev";

/// A condition in a status, as Kubernetes conventions have them (`type`, `status`, `reason`,
/// `message`, `lastTransitionTime`).
pub type Condition = k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// Every Weft CRD, with structural schemas (see [`structural`]), as the API server takes it.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        Pipeline::crd(),
        PipelineRun::crd(),
        InferenceService::crd(),
        Experiment::crd(),
        Notebook::crd(),
        TrainJob::crd(),
    ]
}

/// `(file name, YAML)` of every CRD: what `operator/chart/crds/` holds.
pub fn crd_files() -> Vec<(String, String)> {
    crds()
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().expect("a CRD has a name");
            let yaml = serde_saphyr::to_string(&crd).expect("a CRD serialises");
            (format!("{name}.yaml"), yaml)
        })
        .collect()
}
