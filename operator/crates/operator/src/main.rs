//! `weft-operator`: the controllers (`run`) and the CRD manifests (`crds`).

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use kube::runtime::{watcher, Controller};
use kube::{Api, Client};
use std::path::PathBuf;
use std::sync::Arc;
use weft_crd::{Experiment, InferenceService, Notebook, PipelineRun, TrainJob};
use weft_operator::notebook::{self, NotebookConfig, NotebookContext};
use weft_operator::registry::{Registry, Token};
use weft_operator::{experiment, inferenceservice, pipelinerun, trainjob, Config, Context};

#[derive(Parser)]
#[command(
    name = "weft-operator",
    version,
    about = "Weft on Kubernetes: runs PipelineRuns, Experiments and TrainJobs, serves InferenceServices, runs Notebooks."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controllers (in a cluster, or against the current kubeconfig).
    Run(Box<RunArgs>),
    /// Print the CRD manifests (or write one file per CRD into --out).
    Crds {
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// The image (with `wasm-run`) of runner Jobs and serving pods.
    #[arg(
        long,
        env = "WEFT_IMAGE",
        default_value = "ghcr.io/weft-dev/wasm-run:latest"
    )]
    image: String,
    /// The image (OpenMPI, sshd and a `wasm-run` with `mpi`) of the launcher and workers of
    /// TrainJobs whose ranks span pods.
    #[arg(long, env = "WEFT_MPI_IMAGE")]
    mpi_image: Option<String>,
    /// The artifact store runners and servers use, e.g. s3://bucket/prefix.
    #[arg(long, env = "WEFT_ARTIFACT_STORE")]
    artifact_store: Option<String>,
    /// A Secret whose keys become runner and server environment (object store credentials).
    #[arg(long, env = "WEFT_STORE_SECRET")]
    store_secret: Option<String>,
    /// A Secret whose key `url` is the PostgreSQL database for run metadata.
    #[arg(long, env = "WEFT_METADATA_SECRET")]
    metadata_secret: Option<String>,
    /// A PersistentVolumeClaim mounted as every runner's Weft home (metadata and cache).
    #[arg(long, env = "WEFT_HOME_PVC")]
    home_pvc: Option<String>,
    /// The service account of runner pods.
    #[arg(long, env = "WEFT_RUNNER_SERVICE_ACCOUNT")]
    runner_service_account: Option<String>,
    /// The ClusterRole bound to runners' service accounts (patch of pipelineruns/status).
    #[arg(long, env = "WEFT_RUNNER_CLUSTER_ROLE", default_value = "weft-runner")]
    runner_cluster_role: String,
    /// The model registry's REST API (`wasm-run ui`: http://HOST:PORT) that resolves
    /// InferenceServices' model-registry://NAME/VERSION, in each one's namespace.
    #[arg(long, env = "WEFT_REGISTRY_URL")]
    registry_url: Option<String>,
    /// The bearer token the registry wants (`wasm-run ui --token`).
    #[arg(long, env = "WEFT_REGISTRY_TOKEN", hide_env_values = true)]
    registry_token: Option<String>,
    /// Stop notebooks whose kernels are idle for CULL_IDLE_TIME (Kubeflow's culler).
    #[arg(long, env = "ENABLE_CULLING")]
    enable_culling: bool,
    /// Idle time before a notebook is stopped: minutes (Kubeflow's unit), or 30s, 90m, 2h.
    #[arg(long, env = "CULL_IDLE_TIME", default_value = "1440", value_parser = weft_crd::parse_cull_duration)]
    cull_idle_time: std::time::Duration,
    /// How often each running notebook's kernels are checked: minutes, or 30s, 5m...
    #[arg(long, env = "IDLENESS_CHECK_PERIOD", default_value = "1", value_parser = weft_crd::parse_cull_duration)]
    idleness_check_period: std::time::Duration,
    /// The ClusterRole bound to a notebook's service account in its namespace (the chart's
    /// `-notebook` role: create and read Weft resources).
    #[arg(long, env = "WEFT_NOTEBOOK_CLUSTER_ROLE", default_value = notebook::ACCOUNT)]
    notebook_cluster_role: String,
    /// A YAML file of what a Notebook may leave out (image, pull policy, resources, env,
    /// workspace, node selector, tolerations), filled in by the controller; the chart's
    /// `notebooks.profile`. A file that does not parse stops the operator at its start.
    #[arg(long, env = "WEFT_NOTEBOOK_PROFILE", value_parser = load_profile)]
    notebook_profile: Option<notebook::Profile>,
    /// The token notebook servers want, if they want one (the culler reads /api/kernels).
    #[arg(long, env = "WEFT_NOTEBOOK_TOKEN", hide_env_values = true)]
    notebook_token: Option<String>,
    /// Address of /metrics and /healthz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: String,
    /// Take part in leader election (a Lease) so that only one of several replicas reconciles.
    #[arg(long)]
    leader_election: bool,
    /// The namespace of the leader Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "weft-system")]
    lease_namespace: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .json()
        .init();
    match Cli::parse().command {
        Command::Crds { out } => crds(out),
        Command::Run(args) => run(*args).await,
    }
}

fn crds(out: Option<PathBuf>) -> Result<()> {
    for (name, yaml) in weft_crd::crd_files() {
        match &out {
            Some(dir) => {
                let path = dir.join(&name);
                std::fs::write(&path, yaml)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("{}", path.display());
            }
            None => print!("---\n{yaml}"),
        }
    }
    Ok(())
}

async fn run(args: RunArgs) -> Result<()> {
    // Empty values (a chart leaving them unset) are none; a malformed URL stops the start.
    let registry_url = args.registry_url.filter(|u| !u.is_empty());
    let registry_token = args.registry_token.filter(|t| !t.is_empty()).map(Token);
    if let Some(url) = &registry_url {
        Registry::new(url, registry_token.clone()).map_err(anyhow::Error::msg)?;
    }
    let client = Client::try_default()
        .await
        .context("connecting to Kubernetes (in-cluster config or kubeconfig)")?;
    let metrics = Arc::new(weft_operator::metrics::Metrics::default());
    let ctx = Context::new(
        client.clone(),
        metrics.clone(),
        Config {
            image: args.image,
            mpi_image: args.mpi_image,
            artifact_store: args.artifact_store,
            store_secret: args.store_secret,
            metadata_secret: args.metadata_secret,
            home_pvc: args.home_pvc,
            runner_service_account: args.runner_service_account,
            runner_cluster_role: args.runner_cluster_role,
            registry_url,
            registry_token,
        },
    );
    let notebooks = NotebookContext::new(
        ctx.clone(),
        NotebookConfig {
            culling: args.enable_culling,
            idle_time: args.cull_idle_time,
            check_period: args.idleness_check_period,
            token: args.notebook_token.filter(|t| !t.is_empty()),
            cluster_role: args.notebook_cluster_role,
            profile: args.notebook_profile.unwrap_or_default(),
            ..Default::default()
        },
    );
    tokio::spawn(serve_metrics(args.metrics_addr, metrics));
    if args.leader_election {
        let identity = std::env::var("POD_NAME").unwrap_or_else(|_| "weft-operator".into());
        let lease = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), "weft-operator")
            .with_namespace(args.lease_namespace)
            .with_identity(identity)
            .build()
            .await?;
        let (mut leader, _task) = lease.watch().await;
        while !*leader.borrow_and_update() {
            tracing::info!("waiting to become the leader");
            leader.changed().await?;
        }
        tracing::info!("leading: starting the controllers");
        tokio::select! {
            _ = controllers(client, ctx, notebooks) => {}
            _ = async { while *leader.borrow() { if leader.changed().await.is_err() { break } } } => {
                // Lost the lease: stop at once; the Deployment restarts the pod as a follower.
                anyhow::bail!("lost the leader lease");
            }
        }
        Ok(())
    } else {
        controllers(client, ctx, notebooks).await;
        Ok(())
    }
}

async fn controllers(client: Client, ctx: Arc<Context>, notebooks: Arc<NotebookContext>) {
    let runs = Controller::new(
        Api::<PipelineRun>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<Job>::all(client.clone()), watcher::Config::default())
    .shutdown_on_signal()
    .run(
        pipelinerun::reconcile,
        pipelinerun::error_policy,
        ctx.clone(),
    )
    .for_each(|_| futures::future::ready(()));
    let experiments = Controller::new(
        Api::<Experiment>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<Job>::all(client.clone()), watcher::Config::default())
    .shutdown_on_signal()
    .run(experiment::reconcile, experiment::error_policy, ctx.clone())
    .for_each(|_| futures::future::ready(()));
    let trainjobs = Controller::new(
        Api::<TrainJob>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<Job>::all(client.clone()), watcher::Config::default())
    .shutdown_on_signal()
    .run(trainjob::reconcile, trainjob::error_policy, ctx.clone())
    .for_each(|_| futures::future::ready(()));
    let services = Controller::new(
        Api::<InferenceService>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(
        Api::<Deployment>::all(client.clone()),
        watcher::Config::default(),
    )
    .shutdown_on_signal()
    .run(
        inferenceservice::reconcile,
        inferenceservice::error_policy,
        ctx,
    )
    .for_each(|_| futures::future::ready(()));
    let notebooks = Controller::new(
        Api::<Notebook>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<StatefulSet>::all(client), watcher::Config::default())
    .shutdown_on_signal()
    .run(notebook::reconcile, notebook::error_policy, notebooks)
    .for_each(|_| futures::future::ready(()));
    futures::join!(runs, experiments, trainjobs, services, notebooks);
}

async fn serve_metrics(addr: String, metrics: Arc<weft_operator::metrics::Metrics>) {
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move { metrics.encode() }
            }),
        );
    match tokio::net::TcpListener::bind(&addr).await {
        Ok(listener) => {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(%e, "metrics server stopped");
            }
        }
        Err(e) => tracing::error!(%e, %addr, "cannot bind the metrics address"),
    }
}

fn load_profile(path: &str) -> Result<notebook::Profile, String> {
    notebook::Profile::load(std::path::Path::new(path)).map_err(|e| e.to_string())
}
