//! What every reconcile shares: the client, the event recorder, metrics and settings.

use crate::metrics::Metrics;
use kube::runtime::events::{Recorder, Reporter};
use kube::Client;
use std::sync::Arc;

/// The name of the runner's service account and of its role, by default.
pub const RUNNER: &str = "weft-runner";

/// Operator settings (flags of `weft-operator run`, from the Helm chart's values).
#[derive(Clone, Debug)]
pub struct Config {
    /// The image with `wasm-run` that runner Jobs and serving pods run.
    pub image: String,
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            image: "ghcr.io/weft-dev/wasm-run:latest".into(),
            artifact_store: None,
            store_secret: None,
            metadata_secret: None,
            home_pvc: None,
            runner_service_account: None,
            runner_cluster_role: RUNNER.into(),
        }
    }
}

pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub config: Config,
}

impl Context {
    pub fn new(client: Client, metrics: Arc<Metrics>, config: Config) -> Arc<Self> {
        let reporter = Reporter {
            controller: crate::MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Arc::new(Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            config,
        })
    }
}
