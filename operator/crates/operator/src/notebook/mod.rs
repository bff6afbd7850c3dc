//! The Notebook controller, Kubeflow's notebook-controller in the controller-rs shape: a
//! one-pod StatefulSet running the resource's PodSpec (replicas 0 while the
//! `kubeflow-resource-stopped` annotation is there), a Service (port 80 → the server's 8888),
//! a workspace PersistentVolumeClaim when the spec asks for one (never deleted by the
//! controller: a stopped or deleted notebook keeps its files), and a RoleBinding that lets the
//! notebook's service account submit Weft resources in its namespace and nothing more.
//!
//! Status follows the pod: a container that cannot run (image pull, crash loop, bad config)
//! makes `Ready` False with the kubelet's reason and `Failed` True with its message, so an
//! erroring notebook says why instead of sitting at 0/1.
//!
//! Idle culling is Kubeflow's culler (`culler.rs`); what a Notebook leaves out comes from the
//! operator's notebook profile (`profile.rs`).

mod culler;
pub mod profile;
mod status;

use culler::annotate;
pub use culler::{cull, idle_time, kernels, kernels_activity, kernels_url, Kernel};
pub use profile::Profile;
pub use status::status;

use crate::apply::{self, child_name, owner};
use crate::conditions;
use crate::{Context, Error};
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    ContainerPort, EnvVar, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, Pod, PodSecurityContext, PodTemplateSpec, Service,
    ServiceAccount, ServicePort, ServiceSpec, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::{Api, ResourceExt};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use weft_crd::{Notebook, LAST_ACTIVITY_ANNOTATION, LAST_CHECK_ANNOTATION, STOP_ANNOTATION};

pub const FINALIZER: &str = "weft.dev/notebook";
/// The label of the notebook's pod and children (Kubeflow's StatefulSet selector label).
pub const POD_LABEL: &str = "statefulset";
pub const NOTEBOOK_LABEL: &str = "weft.dev/notebook";
const CONTROLLER: &str = "notebook";
/// The Jupyter server's port, as Kubeflow's images listen.
pub const PORT: i32 = 8888;
/// The service account notebooks run as when their pod spec names none.
pub const ACCOUNT: &str = "weft-notebook";
/// Kubeflow images' home, where the workspace is mounted by default.
pub const HOME: &str = "/home/jovyan";
const NO_IMAGE: &str = "spec.template.spec.containers[0].image is empty and the operator's notebook profile names no image (the chart's notebooks.profile.image)";

/// Culling and RBAC settings (`weft-operator run` flags, Kubeflow's env names).
#[derive(Clone, Debug)]
pub struct NotebookConfig {
    /// `ENABLE_CULLING` (Kubeflow's default: off).
    pub culling: bool,
    /// `CULL_IDLE_TIME` (default 1440 minutes).
    pub idle_time: Duration,
    /// `IDLENESS_CHECK_PERIOD` (default 1 minute).
    pub check_period: Duration,
    /// Where the culler finds a notebook's Service: `http://NAME.NS.svc.cluster.local` by
    /// default; `{name}` and `{namespace}` are filled in (tests point it anywhere).
    pub service_url: String,
    /// A token the notebook servers want (`Authorization: token ...`), if they want one.
    pub token: Option<String>,
    /// The ClusterRole bound (in the notebook's namespace) to its service account.
    pub cluster_role: String,
    /// What a Notebook may leave out (`--notebook-profile`).
    pub profile: Profile,
}

impl Default for NotebookConfig {
    fn default() -> Self {
        NotebookConfig {
            culling: false,
            idle_time: Duration::from_secs(1440 * 60),
            check_period: Duration::from_secs(60),
            service_url: "http://{name}.{namespace}.svc.cluster.local".into(),
            token: None,
            cluster_role: ACCOUNT.into(),
            profile: Profile::default(),
        }
    }
}

/// The operator's context and the notebook settings.
pub struct NotebookContext {
    pub ctx: Arc<Context>,
    pub config: NotebookConfig,
    http: HttpClient<HttpConnector, Empty<Bytes>>,
}

impl NotebookContext {
    pub fn new(ctx: Arc<Context>, config: NotebookConfig) -> Arc<Self> {
        Arc::new(NotebookContext {
            ctx,
            config,
            http: HttpClient::builder(TokioExecutor::new()).build_http(),
        })
    }
}

pub async fn reconcile(nb: Arc<Notebook>, nctx: Arc<NotebookContext>) -> Result<Action, Error> {
    let _timer = nctx.ctx.metrics.reconcile(CONTROLLER);
    let ns = nb
        .namespace()
        .ok_or_else(|| Error::NoNamespace(nb.name_any()))?;
    let api: Api<Notebook> = Api::namespaced(nctx.ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, nb, |event| async {
        match event {
            Finalizer::Apply(nb) => apply_notebook(&nb, &nctx, &ns).await,
            // Children are owned (garbage-collected with it); the workspace claim stays.
            Finalizer::Cleanup(_) => Ok(Action::await_change()),
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

pub fn error_policy(_nb: Arc<Notebook>, error: &Error, nctx: Arc<NotebookContext>) -> Action {
    tracing::warn!(%error, "notebook reconcile failed");
    nctx.ctx.metrics.failure(CONTROLLER, error);
    Action::requeue(Duration::from_secs(15))
}

/// Whether the stop annotation is set.
pub fn stopped(nb: &Notebook) -> bool {
    nb.annotations().contains_key(STOP_ANNOTATION)
}

/// `NAME-workspace`.
pub fn workspace_claim(name: &str) -> String {
    child_name(name, "workspace")
}

fn account(nb: &Notebook) -> String {
    nb.spec
        .template
        .spec
        .service_account_name
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| ACCOUNT.into())
}

fn managed_by() -> BTreeMap<String, String> {
    BTreeMap::from([(
        crate::MANAGED_BY.0.to_string(),
        crate::MANAGED_BY.1.to_string(),
    )])
}

fn meta(nb: &Notebook, name: &str) -> ObjectMeta {
    let mut labels = managed_by();
    labels.insert(NOTEBOOK_LABEL.into(), nb.name_any());
    ObjectMeta {
        name: Some(name.into()),
        namespace: nb.namespace(),
        labels: Some(labels),
        owner_references: Some(vec![owner(nb)]),
        ..Default::default()
    }
}

async fn apply_notebook(nb: &Notebook, nctx: &NotebookContext, ns: &str) -> Result<Action, Error> {
    let ctx = &nctx.ctx;
    let client = ctx.client.clone();
    let name = nb.name_any();
    let account = account(nb);
    if account == ACCOUNT {
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(ACCOUNT.into()),
                namespace: Some(ns.into()),
                labels: Some(managed_by()),
                ..Default::default()
            },
            ..Default::default()
        };
        apply::apply(&Api::namespaced(client.clone(), ns), ACCOUNT, &sa).await?;
    }
    let binding_name = child_name(&name, "notebook");
    apply::apply(
        &Api::<RoleBinding>::namespaced(client.clone(), ns),
        &binding_name,
        &role_binding(nb, &binding_name, &account, &nctx.config.cluster_role),
    )
    .await?;
    let profile = &nctx.config.profile;
    let sts = statefulset(nb, &account, profile);
    let first = sts
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref()?.containers.first());
    if first.is_none_or(|c| c.image.as_deref().unwrap_or("").is_empty()) {
        // The API server would refuse the StatefulSet; say why on the Notebook instead.
        let current = nb.status.clone().unwrap_or_default();
        let next = status::invalid(nb, &current, "NoImage", NO_IMAGE);
        if conditions::changed(&current, &next) {
            apply::status(&Api::<Notebook>::namespaced(client, ns), &name, &next).await?;
        }
        return Ok(Action::await_change());
    }
    if let Some(pvc) = workspace(nb, profile) {
        apply::apply(
            &Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns),
            &workspace_claim(&name),
            &pvc,
        )
        .await?;
    }
    let sts = apply::apply(
        &Api::<StatefulSet>::namespaced(client.clone(), ns),
        &name,
        &sts,
    )
    .await?;
    apply::apply(
        &Api::<Service>::namespaced(client.clone(), ns),
        &name,
        &service(nb),
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod = pods
        .list(&ListParams::default().labels(&format!("{POD_LABEL}={name}")))
        .await?
        .items
        .into_iter()
        .next();
    let ready = sts
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    let current = nb.status.clone().unwrap_or_default();
    let next = status(nb, ready, pod.as_ref(), &current);
    if conditions::changed(&current, &next) {
        apply::status(&Api::<Notebook>::namespaced(client, ns), &name, &next).await?;
    }

    // Culling: a stopped notebook forgets its activity (so it starts afresh); a running one
    // with a ready server is checked once per period.
    let api: Api<Notebook> = Api::namespaced(ctx.client.clone(), ns);
    if stopped(nb) {
        let a = nb.annotations();
        if a.contains_key(LAST_ACTIVITY_ANNOTATION) || a.contains_key(LAST_CHECK_ANNOTATION) {
            annotate(
                &api,
                &name,
                json!({LAST_ACTIVITY_ANNOTATION: null, LAST_CHECK_ANNOTATION: null}),
            )
            .await?;
        }
        return Ok(Action::await_change());
    }
    let Some(idle_time) = idle_time(nb, &nctx.config) else {
        return Ok(Action::requeue(Duration::from_secs(if ready > 0 {
            300
        } else {
            15
        })));
    };
    if ready > 0 {
        cull(nb, nctx, idle_time, Timestamp::now()).await?;
    }
    Ok(Action::requeue(nctx.config.check_period))
}

fn role_binding(nb: &Notebook, name: &str, account: &str, role: &str) -> RoleBinding {
    RoleBinding {
        metadata: meta(nb, name),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: role.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: account.into(),
            namespace: nb.namespace(),
            ..Default::default()
        }]),
    }
}

/// The workspace claim: not owned by the notebook, so neither a stop nor a deletion loses it.
fn workspace(nb: &Notebook, profile: &Profile) -> Option<PersistentVolumeClaim> {
    let ws = profile.workspace(nb)?;
    let mut meta = meta(nb, &workspace_claim(&nb.name_any()));
    meta.owner_references = None;
    Some(PersistentVolumeClaim {
        metadata: meta,
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: ws.storage_class_name,
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".into(), Quantity(ws.size))])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn pod_labels(nb: &Notebook) -> BTreeMap<String, String> {
    BTreeMap::from([
        (POD_LABEL.to_string(), nb.name_any()),
        (NOTEBOOK_LABEL.to_string(), nb.name_any()),
    ])
}

/// The notebook's StatefulSet: the spec's pod with the profile's defaults and Kubeflow's
/// additions (`NB_PREFIX`, port 8888, working directory and fsGroup 100 unless set), the
/// workspace mounted.
pub fn statefulset(nb: &Notebook, account: &str, profile: &Profile) -> StatefulSet {
    let name = nb.name_any();
    let ns = nb.namespace().unwrap_or_default();
    let mut pod = nb.spec.template.spec.clone();
    profile.apply(&mut pod);
    pod.service_account_name = Some(account.into());
    let security = pod
        .security_context
        .get_or_insert_with(PodSecurityContext::default);
    if security.fs_group.is_none() {
        security.fs_group = Some(100);
    }
    let ws = profile.workspace(nb);
    if ws.is_some() {
        pod.volumes.get_or_insert_with(Vec::new).push(Volume {
            name: "workspace".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: workspace_claim(&name),
                read_only: None,
            }),
            ..Default::default()
        });
    }
    if let Some(c) = pod.containers.first_mut() {
        let env = c.env.get_or_insert_with(Vec::new);
        env.retain(|e| e.name != "NB_PREFIX");
        env.push(EnvVar {
            name: "NB_PREFIX".into(),
            value: Some(format!("/notebook/{ns}/{name}")),
            ..Default::default()
        });
        if c.working_dir.is_none() {
            c.working_dir = Some(HOME.into());
        }
        if c.ports.as_ref().is_none_or(|p| p.is_empty()) {
            c.ports = Some(vec![ContainerPort {
                name: Some("notebook-port".into()),
                container_port: PORT,
                protocol: Some("TCP".into()),
                ..Default::default()
            }]);
        }
        if let Some(ws) = ws {
            c.volume_mounts
                .get_or_insert_with(Vec::new)
                .push(VolumeMount {
                    name: "workspace".into(),
                    mount_path: ws.mount_path,
                    ..Default::default()
                });
        }
    }
    let template_meta = nb.spec.template.metadata.clone().unwrap_or_default();
    let mut labels = template_meta.labels;
    labels.extend(pod_labels(nb));
    StatefulSet {
        metadata: meta(nb, &name),
        spec: Some(StatefulSetSpec {
            replicas: Some(if stopped(nb) { 0 } else { 1 }),
            service_name: Some(name.clone()),
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([(POD_LABEL.to_string(), name.clone())])),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: (!template_meta.annotations.is_empty())
                        .then_some(template_meta.annotations),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Kubeflow's notebook Service: port 80, named `http-NAME`, to the server's port.
fn service(nb: &Notebook) -> Service {
    let name = nb.name_any();
    let port = nb
        .spec
        .template
        .spec
        .containers
        .first()
        .and_then(|c| c.ports.as_ref()?.first().map(|p| p.container_port))
        .unwrap_or(PORT);
    Service {
        metadata: meta(nb, &name),
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([(POD_LABEL.to_string(), name.clone())])),
            ports: Some(vec![ServicePort {
                name: Some(format!("http-{name}")),
                port: 80,
                target_port: Some(IntOrString::Int(port)),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
