//! Kubeflow's culler: every check period, a running notebook's `/notebook/NS/NAME/api/kernels`
//! is read through its Service; a busy kernel is activity now, otherwise the newest kernel
//! `last_activity` is; both kept in annotations; past the idle time the stop annotation is set
//! (and counted in the operator's metrics).

use super::{NotebookConfig, NotebookContext};
use crate::Error;
use http_body_util::{BodyExt, Empty, Limited};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::{json, Value};
use std::time::Duration;
use weft_crd::{Notebook, LAST_ACTIVITY_ANNOTATION, LAST_CHECK_ANNOTATION, STOP_ANNOTATION};

/// The idle time that applies to `nb`, None when it is not culled.
pub fn idle_time(nb: &Notebook, config: &NotebookConfig) -> Option<Duration> {
    match &nb.spec.culling {
        Some(c) if c.disabled => None,
        Some(c) => match c.idle_time.as_deref().map(weft_crd::parse_cull_duration) {
            Some(Ok(d)) => Some(d),
            // CEL refuses a malformed one; an older object falls back to the operator's.
            Some(Err(e)) => {
                tracing::warn!(%e, notebook = %nb.name_any(), "ignoring spec.culling.idleTime");
                config.culling.then_some(config.idle_time)
            }
            None => Some(config.idle_time),
        },
        None => config.culling.then_some(config.idle_time),
    }
}

pub(super) async fn annotate(
    api: &Api<Notebook>,
    name: &str,
    annotations: Value,
) -> Result<(), Error> {
    let patch = json!({"metadata": {"annotations": annotations}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// The URL of the notebook's kernels list, through its Service.
pub fn kernels_url(config: &NotebookConfig, ns: &str, name: &str) -> String {
    let base = config
        .service_url
        .replace("{name}", name)
        .replace("{namespace}", ns);
    format!(
        "{}/notebook/{ns}/{name}/api/kernels",
        base.trim_end_matches('/')
    )
}

/// One kernel of `/api/kernels`, the fields the culler reads.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Kernel {
    #[serde(default)]
    pub execution_state: Option<String>,
    #[serde(default)]
    pub last_activity: Option<String>,
}

/// The kernels' last activity: now while any is busy, else the newest `last_activity`; None
/// without kernels (the annotation then keeps what it had).
pub fn kernels_activity(kernels: &[Kernel], now: Timestamp) -> Option<Timestamp> {
    if kernels
        .iter()
        .any(|k| k.execution_state.as_deref() == Some("busy"))
    {
        return Some(now);
    }
    kernels
        .iter()
        .filter_map(|k| k.last_activity.as_deref()?.parse::<Timestamp>().ok())
        .max()
}

/// Reads the server's kernels (None when it does not answer: a pod starting, a proxy
/// refusing; the check is recorded and activity left as it was).
pub async fn kernels(nctx: &NotebookContext, url: &str) -> Result<Vec<Kernel>, String> {
    let mut request = http::Request::get(url);
    if let Some(token) = &nctx.config.token {
        request = request.header("Authorization", format!("token {token}"));
    }
    let request = request.body(Empty::new()).map_err(|e| e.to_string())?;
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        let response = nctx
            .http
            .request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = Limited::new(response.into_body(), 4 << 20)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if !status.is_success() {
            return Err(format!("{url}: {status}"));
        }
        serde_json::from_slice::<Vec<Kernel>>(&body).map_err(|e| format!("{url}: {e}"))
    })
    .await
    .map_err(|_| format!("{url}: no answer in 10 s"))?;
    answer
}

/// One culling check of a running notebook at `now`, if the last was a period ago or more:
/// records the check and the kernels' activity in annotations, and sets the stop annotation
/// when the notebook has been idle for longer than `idle_time`. Returns whether it stopped it.
pub async fn cull(
    nb: &Notebook,
    nctx: &NotebookContext,
    idle_time: Duration,
    now: Timestamp,
) -> Result<bool, Error> {
    let name = nb.name_any();
    let ns = nb
        .namespace()
        .ok_or_else(|| Error::NoNamespace(name.clone()))?;
    let a = nb.annotations();
    let parse = |key: &str| a.get(key).and_then(|v| v.parse::<Timestamp>().ok());
    let period = nctx.config.check_period.as_secs_f64();
    if let Some(last) = parse(LAST_CHECK_ANNOTATION) {
        if now.duration_since(last).as_secs_f64() < period {
            return Ok(false);
        }
    }
    let mut last_activity = parse(LAST_ACTIVITY_ANNOTATION).unwrap_or(now);
    match kernels(nctx, &kernels_url(&nctx.config, &ns, &name)).await {
        Ok(list) => {
            if let Some(t) = kernels_activity(&list, now) {
                last_activity = last_activity.max(t);
            }
        }
        Err(e) => tracing::info!(%e, notebook = %name, %ns, "culler: kernels not read"),
    }
    let mut patch = serde_json::Map::new();
    patch.insert(LAST_CHECK_ANNOTATION.into(), json!(now.to_string()));
    patch.insert(
        LAST_ACTIVITY_ANNOTATION.into(),
        json!(last_activity.to_string()),
    );
    let idle = now.duration_since(last_activity).as_secs_f64();
    let cull = idle > idle_time.as_secs_f64();
    if cull {
        patch.insert(STOP_ANNOTATION.into(), json!(now.to_string()));
    }
    annotate(
        &Api::namespaced(nctx.ctx.client.clone(), &ns),
        &name,
        Value::Object(patch),
    )
    .await?;
    if cull {
        tracing::info!(notebook = %name, %ns, idle_s = idle, "culled an idle notebook");
        nctx.ctx.metrics.notebook_culled(&ns, &name, now);
    }
    Ok(cull)
}
