//! What every reconcile shares: the client, the event recorder, metrics and settings.

use crate::metrics::Metrics;
use crate::registry::{Registry, Token};
use kube::runtime::events::{Recorder, Reporter};
use kube::Client;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The name of the runner's service account and of its role, by default.
pub const RUNNER: &str = "weft-runner";

/// Operator settings (flags of `weft-operator run`, from the Helm chart's values).
#[derive(Clone, Debug)]
pub struct Config {
    /// The image with `wasm-run` that runner Jobs and serving pods run.
    pub image: String,
    /// The image with OpenMPI and sshd beside a `wasm-run` built with `mpi` (the Dockerfile's
    /// `mpi` target): launcher and workers of a TrainJob whose ranks span pods. None: such
    /// jobs fail, saying so.
    pub mpi_image: Option<String>,
    /// `--artifact-store` for runners and servers (e.g. `s3://bucket/weft`); None keeps
    /// artifacts on the runner's volume.
    pub artifact_store: Option<String>,
    /// A Secret whose keys become the runner's and server's environment (S3 credentials).
    pub store_secret: Option<String>,
    /// A Secret whose key `url` names the PostgreSQL database runners record run metadata in
    /// (`postgres://user:password@host/db`); None keeps SQLite in each runner's home.
    pub metadata_secret: Option<String>,
    /// A PersistentVolumeClaim mounted as the runner's Weft home (SQLite metadata, local
    /// artifacts, component cache); None gives each run an emptyDir.
    pub home_pvc: Option<String>,
    /// The service account runner pods use. None: the operator keeps a `weft-runner` account
    /// in each namespace with runs, bound to `runner_cluster_role`.
    pub runner_service_account: Option<String>,
    /// The ClusterRole that lets a runner write its PipelineRun's status (the chart makes it).
    pub runner_cluster_role: String,
    /// The model registry's REST API (`wasm-run ui`, `http://HOST:PORT`) that resolves
    /// InferenceServices' `model-registry://NAME/VERSION`; None: such names are refused.
    pub registry_url: Option<String>,
    /// The bearer token the registry wants (the UI's `--token`), if any.
    pub registry_token: Option<Token>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            image: "ghcr.io/weft-dev/wasm-run:latest".into(),
            mpi_image: None,
            artifact_store: None,
            store_secret: None,
            metadata_secret: None,
            home_pvc: None,
            runner_service_account: None,
            runner_cluster_role: RUNNER.into(),
            registry_url: None,
            registry_token: None,
        }
    }
}

pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub config: Config,
    /// The model registry of `config.registry_url`, or why there is none.
    pub registry: Result<Registry, String>,
    /// Transient registry failures in a row, per InferenceService (`ns/name`): the backoff.
    pub registry_failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(client: Client, metrics: Arc<Metrics>, config: Config) -> Arc<Self> {
        let reporter = Reporter {
            controller: crate::MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let registry = match &config.registry_url {
            Some(url) => Registry::new(url, config.registry_token.clone()),
            None => Err("set WEFT_REGISTRY_URL (the chart does when ui.enabled)".into()),
        };
        Arc::new(Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            config,
            registry,
            registry_failures: Mutex::default(),
        })
    }
}
