//! The InferenceService controller: `wasm-run serve -f` pods (a Deployment) reading the
//! resource's own spec from a ConfigMap, a Service in front, and a HorizontalPodAutoscaler when
//! the replica range allows scaling.
//!
//! The canary runs in the same pods as the predictor, split by percentage inside the serve
//! process (exact per 100 requests), not by a second Deployment behind the Service: a
//! Service-level split can only be as fine as the ratio of pod counts (10% needs ten pods) and
//! depends on kube-proxy's balancing, while Weft models are small enough that every pod can
//! hold both versions. No Istio or Knative is involved either way.
//!
//! A component or storageUri naming `model-registry://NAME/VERSION` is resolved through the
//! model registry in the resource's namespace before the spec file is written
//! ([`crate::registry`]), so the pods get plain digests; condition `ModelsResolved` says what
//! each name resolved to, or why it did not. When it did not, the children are left as they
//! are (pods serving an earlier spec keep serving it) and `Ready` is False for this
//! generation: a registry that does not answer is retried with backoff, an unknown or
//! archived model or version is checked again every minute, a malformed name or a missing
//! registry setting waits for a change.

use crate::apply::{self, child_name, labels, owner};
use crate::conditions;
use crate::pods;
use crate::registry::{self, Failure, Kind};
use crate::{Context, Error};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec,
    MetricIdentifier, MetricSpec, MetricTarget, PodsMetricSource, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, ContainerPort, HTTPGetAction, PodTemplateSpec, Probe,
    ResourceRequirements, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::{Api, Resource, ResourceExt};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use weft_crd::{InferenceService, InferenceServiceStatus};
use weft_spec::inference::ScaleMetric;

pub const FINALIZER: &str = "weft.dev/inferenceservice";
pub const SERVICE_LABEL: &str = "weft.dev/inferenceservice";
const CONTROLLER: &str = "inferenceservice";
const PORT: i32 = 8080;
/// The admin listener's port, on loopback only.
const ADMIN_PORT: i32 = 8081;
/// The serve process's gauge of requests in flight, the `concurrency` scaling metric.
pub const CONCURRENCY_METRIC: &str = "weft_requests_in_flight";
/// The condition saying what the spec's `model-registry://` names resolved to.
pub const MODELS_RESOLVED: &str = "ModelsResolved";
/// How soon an unknown or archived model or version is looked up again.
pub const RECHECK: Duration = Duration::from_secs(60);

pub async fn reconcile(isvc: Arc<InferenceService>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let ns = isvc
        .namespace()
        .ok_or_else(|| Error::NoNamespace(isvc.name_any()))?;
    let api: Api<InferenceService> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, isvc, |event| async {
        match event {
            Finalizer::Apply(isvc) => apply_service(&isvc, &ctx, &ns).await,
            Finalizer::Cleanup(isvc) => cleanup(&isvc, &ctx, &ns).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

pub fn error_policy(_isvc: Arc<InferenceService>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(%error, "inferenceservice reconcile failed");
    ctx.metrics.failure(CONTROLLER, error);
    Action::requeue(Duration::from_secs(15))
}

/// The children's names: `(configmap, deployment, service, hpa)`.
pub fn names(isvc: &str) -> (String, String, String, String) {
    (
        child_name(isvc, "serve"),
        child_name(isvc, "predictor"),
        isvc.to_string(),
        child_name(isvc, "predictor"),
    )
}

async fn apply_service(isvc: &InferenceService, ctx: &Context, ns: &str) -> Result<Action, Error> {
    let name = isvc.name_any();
    let (cm_name, deploy_name, svc_name, hpa_name) = names(&name);
    let key = format!("{ns}/{name}");
    let resolution = match registry::resolve_spec(&ctx.registry, ns, &isvc.spec.0).await {
        Ok(r) => r,
        Err(failure) => return unresolved(isvc, ctx, ns, &key, failure).await,
    };
    ctx.registry_failures.lock().unwrap().remove(&key);
    let file = service_file(isvc, &resolution.spec)?;
    let hash = hex::encode(Sha256::digest(file.as_bytes()));
    let client = ctx.client.clone();
    let scaling = &isvc.spec.0.scaling;
    let autoscaled = scaling.max_replicas > scaling.min_replicas;

    apply::apply(
        &Api::<ConfigMap>::namespaced(client.clone(), ns),
        &cm_name,
        &configmap(isvc, &cm_name, file),
    )
    .await?;
    let deployment = apply::apply(
        &Api::<Deployment>::namespaced(client.clone(), ns),
        &deploy_name,
        &deployment(isvc, &ctx.config, &deploy_name, &cm_name, &hash, autoscaled),
    )
    .await?;
    apply::apply(
        &Api::<Service>::namespaced(client.clone(), ns),
        &svc_name,
        &service(isvc, &svc_name),
    )
    .await?;
    let hpas = Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), ns);
    if autoscaled {
        apply::apply(&hpas, &hpa_name, &autoscaler(isvc, &hpa_name, &deploy_name)).await?;
    } else {
        apply::delete(&hpas, &hpa_name).await?;
    }

    let current = isvc.status.clone().unwrap_or_default();
    let ready = deployment
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    let mut next = InferenceServiceStatus {
        url: Some(format!(
            "http://{svc_name}.{ns}.svc.cluster.local/v2/models/{name}"
        )),
        ready_replicas: Some(ready),
        observed_generation: isvc.meta().generation,
        conditions: Vec::new(),
    };
    let (reason, message) = if ready > 0 {
        (
            "Ready",
            format!("{ready} pod(s) answer the V2 readiness probe"),
        )
    } else {
        (
            "Loading",
            "no pod answers the V2 readiness probe yet".to_string(),
        )
    };
    conditions::set(
        &mut next.conditions,
        &current.conditions,
        "Ready",
        ready > 0,
        reason,
        &message,
        isvc.meta().generation,
    );
    if !resolution.resolved.is_empty() {
        conditions::set(
            &mut next.conditions,
            &current.conditions,
            MODELS_RESOLVED,
            true,
            "Resolved",
            &resolution.summary(),
            isvc.meta().generation,
        );
    }
    if conditions::changed(&current, &next) {
        let api = Api::<InferenceService>::namespaced(client, ns);
        apply::status(&api, &name, &next).await?;
    }
    // Deployments report readiness through their own watch; poll slowly meanwhile.
    Ok(Action::requeue(Duration::from_secs(if ready > 0 {
        300
    } else {
        15
    })))
}

/// The spec's registry names not resolved: the status says why (unless the registry is only
/// unavailable and this generation was resolved and deployed before, when the pods serve it
/// still), the children stay as they are, and the reconcile comes back by `failure`'s kind.
async fn unresolved(
    isvc: &InferenceService,
    ctx: &Context,
    ns: &str,
    key: &str,
    failure: Failure,
) -> Result<Action, Error> {
    let generation = isvc.meta().generation;
    let current = isvc.status.clone().unwrap_or_default();
    let action = {
        let mut failures = ctx.registry_failures.lock().unwrap();
        if failure.kind == Kind::Transient {
            let n = failures.entry(key.to_string()).or_insert(0);
            let wait = registry::backoff(*n);
            *n = n.saturating_add(1);
            Action::requeue(wait)
        } else {
            failures.remove(key);
            match failure.kind {
                Kind::Recheck => Action::requeue(RECHECK),
                _ => Action::await_change(),
            }
        }
    };
    tracing::warn!(inferenceservice = key, reason = failure.reason, message = %failure.message, "model registry names not resolved");
    if failure.kind == Kind::Transient {
        ctx.metrics
            .failure(CONTROLLER, &Error::Registry(failure.message.clone()));
        let deployed = current.observed_generation == generation
            && current
                .conditions
                .iter()
                .any(|c| c.type_ == MODELS_RESOLVED && c.status == "True");
        if deployed {
            return Ok(action);
        }
    }
    let mut next = InferenceServiceStatus {
        observed_generation: generation,
        conditions: Vec::new(),
        ..current.clone()
    };
    for type_ in ["Ready", MODELS_RESOLVED] {
        conditions::set(
            &mut next.conditions,
            &current.conditions,
            type_,
            false,
            failure.reason,
            &failure.message,
            generation,
        );
    }
    if conditions::changed(&current, &next) {
        let api = Api::<InferenceService>::namespaced(ctx.client.clone(), ns);
        apply::status(&api, &isvc.name_any(), &next).await?;
    }
    Ok(action)
}

/// The resource, its spec's registry names resolved (`spec`), as the `inferenceservice.yaml`
/// that `wasm-run serve -f` reads.
fn service_file(
    isvc: &InferenceService,
    spec: &weft_spec::inference::InferenceServiceSpec,
) -> Result<String, Error> {
    let local = weft_spec::inference::InferenceService {
        api_version: weft_spec::pipeline::API_VERSION.into(),
        kind: "InferenceService".into(),
        metadata: weft_spec::pipeline::ObjectMeta {
            name: isvc.name_any(),
            ..Default::default()
        },
        spec: spec.clone(),
    };
    serde_saphyr::to_string(&local).map_err(|e| Error::Serialise("InferenceService", e.to_string()))
}

fn meta(isvc: &InferenceService, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: isvc.namespace(),
        labels: Some(labels(SERVICE_LABEL, &isvc.name_any())),
        owner_references: Some(vec![owner(isvc)]),
        ..Default::default()
    }
}

fn configmap(isvc: &InferenceService, name: &str, file: String) -> ConfigMap {
    ConfigMap {
        metadata: meta(isvc, name),
        data: Some(BTreeMap::from([("inferenceservice.yaml".into(), file)])),
        ..Default::default()
    }
}

fn quantities(map: &BTreeMap<String, String>) -> Option<BTreeMap<String, Quantity>> {
    (!map.is_empty()).then(|| {
        map.iter()
            .map(|(k, v)| (k.clone(), Quantity(v.clone())))
            .collect()
    })
}

fn http_probe(path: &str, period: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        ..Default::default()
    }
}

/// The serving pods. `replicas` is left to the autoscaler when there is one; the spec file's
/// hash in the pod template rolls the pods when the spec (a canary share, say) changes.
pub fn deployment(
    isvc: &InferenceService,
    config: &crate::Config,
    name: &str,
    cm: &str,
    spec_hash: &str,
    autoscaled: bool,
) -> Deployment {
    let pod_labels = labels(SERVICE_LABEL, &isvc.name_any());
    let scaling = &isvc.spec.0.scaling;
    let spec_file = format!("{}/inferenceservice.yaml", pods::SPEC_DIR);
    let port = PORT.to_string();
    // The admin endpoints (traffic, promote, rollback) stay on the pod's loopback, which no
    // Service reaches: `kubectl port-forward` or `exec` to change a split by hand.
    let admin = format!("127.0.0.1:{ADMIN_PORT}");
    let args = pods::wasm_run_args(
        config,
        &[
            "serve",
            "-f",
            &spec_file,
            "--host",
            "0.0.0.0",
            "--port",
            &port,
            "--admin-listen",
            &admin,
        ],
    );
    let container = Container {
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: PORT,
            ..Default::default()
        }]),
        readiness_probe: Some(http_probe("/v2/health/ready", 2)),
        liveness_probe: Some(http_probe("/v2/health/live", 10)),
        resources: Some(ResourceRequirements {
            requests: quantities(&scaling.resources.requests),
            limits: quantities(&scaling.resources.limits),
            ..Default::default()
        }),
        ..pods::container(config, "serve", args)
    };
    Deployment {
        metadata: meta(isvc, name),
        spec: Some(DeploymentSpec {
            replicas: (!autoscaled).then_some(scaling.min_replicas as i32),
            selector: LabelSelector {
                match_labels: Some(pod_labels.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(BTreeMap::from([(
                        "weft.dev/spec-hash".to_string(),
                        spec_hash.to_string(),
                    )])),
                    ..Default::default()
                }),
                spec: Some(pods::pod(container, cm, pods::scratch("home"))),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Port 80 → the pods' `http`, as KServe's predictor Services have it; the data port only (V2,
/// metrics), never the admin endpoints.
fn service(isvc: &InferenceService, name: &str) -> Service {
    Service {
        metadata: meta(isvc, name),
        spec: Some(ServiceSpec {
            selector: Some(labels(SERVICE_LABEL, &isvc.name_any())),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(IntOrString::String("http".into())),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// CPU utilisation of the request, or requests in flight per pod (a custom metric).
pub fn autoscaler(
    isvc: &InferenceService,
    name: &str,
    deployment: &str,
) -> HorizontalPodAutoscaler {
    let scaling = &isvc.spec.0.scaling;
    let target = scaling.target as i32;
    let metric = match scaling.metric {
        ScaleMetric::Cpu => MetricSpec {
            type_: "Resource".into(),
            resource: Some(ResourceMetricSource {
                name: "cpu".into(),
                target: MetricTarget {
                    type_: "Utilization".into(),
                    average_utilization: Some(target),
                    ..Default::default()
                },
            }),
            ..Default::default()
        },
        ScaleMetric::Concurrency => MetricSpec {
            type_: "Pods".into(),
            pods: Some(PodsMetricSource {
                metric: MetricIdentifier {
                    name: CONCURRENCY_METRIC.into(),
                    selector: None,
                },
                target: MetricTarget {
                    type_: "AverageValue".into(),
                    average_value: Some(Quantity(target.to_string())),
                    ..Default::default()
                },
            }),
            ..Default::default()
        },
    };
    HorizontalPodAutoscaler {
        metadata: meta(isvc, name),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: deployment.into(),
            },
            min_replicas: Some(scaling.min_replicas as i32),
            max_replicas: scaling.max_replicas as i32,
            metrics: Some(vec![metric]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// On deletion: remove every child (owner references would too, but not before the finalizer
/// lets the resource go, and a user watching expects them gone with it).
async fn cleanup(isvc: &InferenceService, ctx: &Context, ns: &str) -> Result<Action, Error> {
    let (cm, deploy, svc, hpa) = names(&isvc.name_any());
    let c = ctx.client.clone();
    apply::delete(
        &Api::<HorizontalPodAutoscaler>::namespaced(c.clone(), ns),
        &hpa,
    )
    .await?;
    apply::delete(&Api::<Service>::namespaced(c.clone(), ns), &svc).await?;
    apply::delete(&Api::<Deployment>::namespaced(c.clone(), ns), &deploy).await?;
    apply::delete(&Api::<ConfigMap>::namespaced(c, ns), &cm).await?;
    Ok(Action::await_change())
}
