//! A notebook's status from its StatefulSet and pod: a container that cannot run (image pull,
//! crash loop, bad config) makes `Ready` False with the kubelet's reason and `Failed` True with
//! its message, so an erroring notebook says why instead of sitting at 0/1.

use super::stopped;
use crate::conditions;
use k8s_openapi::api::core::v1::Pod;
use kube::{Resource, ResourceExt};
use weft_crd::{Notebook, NotebookStatus, STOP_ANNOTATION};

/// Waiting reasons that mean the pod will not come up by itself.
const FAILING: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// The status from the StatefulSet's ready count and the notebook server's pod.
pub fn status(
    nb: &Notebook,
    ready: i32,
    pod: Option<&Pod>,
    current: &NotebookStatus,
) -> NotebookStatus {
    let name = nb.name_any();
    let ns = nb.namespace().unwrap_or_default();
    let generation = nb.meta().generation;
    let container = pod
        .and_then(|p| p.status.as_ref()?.container_statuses.as_ref())
        .and_then(|cs| {
            let first = nb.spec.template.spec.containers.first()?;
            cs.iter().find(|c| c.name == first.name)
        });
    let state = container.and_then(|c| c.state.clone());
    let failing = state.as_ref().and_then(|s| {
        let w = s.waiting.as_ref()?;
        let reason = w.reason.clone()?;
        FAILING
            .contains(&reason.as_str())
            .then(|| (reason, w.message.clone().unwrap_or_default()))
    });
    let failing = failing.or_else(|| {
        // Unschedulable pods say so in their PodScheduled condition.
        let c = pod?
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
        Some((
            c.reason.clone().unwrap_or_else(|| "Unschedulable".into()),
            c.message.clone().unwrap_or_default(),
        ))
    });
    let mut next = NotebookStatus {
        ready_replicas: ready,
        container_state: state,
        url: Some(format!(
            "http://{name}.{ns}.svc.cluster.local/notebook/{ns}/{name}/"
        )),
        observed_generation: generation,
        conditions: Vec::new(),
    };
    let (ok, reason, message) = if stopped(nb) {
        (
            false,
            "Stopped".to_string(),
            format!(
                "stopped by the {STOP_ANNOTATION} annotation (remove it, or `wasm-run notebook start {name}`, to start it)"
            ),
        )
    } else if ready > 0 {
        (true, "Ready".into(), "the notebook server is ready".into())
    } else if let Some((reason, message)) = &failing {
        (false, reason.clone(), message.clone())
    } else {
        (
            false,
            "Starting".into(),
            "the notebook server's pod is not ready yet".into(),
        )
    };
    conditions::set(
        &mut next.conditions,
        &current.conditions,
        "Ready",
        ok,
        &reason,
        &message,
        generation,
    );
    match (&failing, stopped(nb)) {
        (Some((reason, message)), false) => conditions::set(
            &mut next.conditions,
            &current.conditions,
            "Failed",
            true,
            reason,
            &format!("the notebook server's pod cannot run: {reason}: {message}"),
            generation,
        ),
        _ => conditions::set(
            &mut next.conditions,
            &current.conditions,
            "Failed",
            false,
            "NoError",
            "",
            generation,
        ),
    }
    next
}

/// The status of a notebook the controller cannot run as written (nothing is made for it):
/// `Ready` and `Failed` say why.
pub fn invalid(
    nb: &Notebook,
    current: &NotebookStatus,
    reason: &str,
    message: &str,
) -> NotebookStatus {
    let generation = nb.meta().generation;
    let mut next = NotebookStatus {
        observed_generation: generation,
        ..Default::default()
    };
    for (kind, value) in [("Ready", false), ("Failed", true)] {
        conditions::set(
            &mut next.conditions,
            &current.conditions,
            kind,
            value,
            reason,
            message,
            generation,
        );
    }
    next
}
