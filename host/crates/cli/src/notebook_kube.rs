//! `wasm-run notebook stop|start NAME [-n NS]`: a cluster's `Notebook` (weft.dev/v1alpha1)
//! stopped or started by its `kubeflow-resource-stopped` annotation, as Kubeflow's web app and
//! culler do it; the operator scales its StatefulSet to 0 or 1 and keeps its workspace volume.

use anyhow::Result;
use std::process::ExitCode;

/// The annotation whose presence stops a notebook (Kubeflow's name).
#[cfg(feature = "kube")]
const STOP_ANNOTATION: &str = "kubeflow-resource-stopped";

#[derive(clap::Args, Clone)]
pub struct NotebookRef {
    /// The Notebook resource's name.
    pub name: String,
    /// Its namespace (default: the kubeconfig context's, or the pod's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

/// Sets (`stop`) or removes (`!stop`) the stop annotation.
pub fn set_stopped(target: NotebookRef, stop: bool) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(patch(target, stop))
}

#[cfg(feature = "kube")]
async fn patch(target: NotebookRef, stop: bool) -> Result<ExitCode> {
    use anyhow::Context;
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
    let client = kube::Client::try_default()
        .await
        .context("connecting to Kubernetes (kubeconfig or in-cluster)")?;
    let ns = target
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("weft.dev", "v1alpha1", "Notebook"),
        "notebooks",
    );
    let api: kube::Api<DynamicObject> = kube::Api::namespaced_with(client, &ns, &resource);
    let value = if stop {
        serde_json::json!(
            humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
        )
    } else {
        serde_json::Value::Null
    };
    let body = serde_json::json!({"metadata": {"annotations": {STOP_ANNOTATION: value}}});
    let name = &target.name;
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&body))
        .await
    {
        Ok(_) => {
            let verb = if stop { "stopping" } else { "starting" };
            println!("notebook {ns}/{name}: {verb} (its workspace volume is kept)");
            Ok(ExitCode::SUCCESS)
        }
        Err(kube::Error::Api(e)) if e.code == 404 => {
            anyhow::bail!("no Notebook {name} in namespace {ns}")
        }
        Err(e) => Err(e).with_context(|| format!("updating Notebook {ns}/{name}")),
    }
}

#[cfg(not(feature = "kube"))]
async fn patch(_target: NotebookRef, _stop: bool) -> Result<ExitCode> {
    anyhow::bail!(
        "notebook stop/start: this wasm-run was built without Kubernetes support (cargo feature `kube`)"
    )
}
