//! What the TrainJob controller's tests share: the job, its children's paths, a reconcile
//! against a scripted API server.
#![allow(dead_code)]

use kube::runtime::controller::Action;
use serde_json::{json, Value};
use std::sync::Arc;
use weft_crd::TrainJob;
use weft_kube_mock::{client, expect, within, Expect, Reply, Seen};
use weft_operator::{trainjob, Config, Context};

pub const NS: &str = "team-a";
pub const TRAINJOBS: &str = "/apis/weft.dev/v1alpha1/namespaces/team-a/trainjobs";
pub const JOB: &str = "/apis/batch/v1/namespaces/team-a/jobs/iris-runner";
pub const PODS: &str = "/api/v1/namespaces/team-a/pods";
pub const CONFIGMAP: &str = "/api/v1/namespaces/team-a/configmaps/iris-spec";
pub const ACCOUNT: &str = "/api/v1/namespaces/team-a/serviceaccounts/weft-runner";
pub const BINDING: &str =
    "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings/weft-runner";

pub fn digest(byte: &str) -> String {
    format!("sha256:{}", byte.repeat(32))
}

pub fn trainjob_object(status: Option<Value>) -> Value {
    let mut o = json!({
        "apiVersion": "weft.dev/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": "iris", "namespace": NS, "uid": "7a6b5c4d-0000-1111-2222-333344445555",
                     "generation": 1, "finalizers": [trainjob::FINALIZER]},
        "spec": {
            "trainer": {"component": digest("ab"), "params": {"label": "species", "epochs": 200},
                        "numProcPerNode": 4,
                        "resourcesPerNode": {"cpu": "4", "memory": "8Gi", "gpu": 1}},
            "initializer": {"dataset": {"digest": digest("cd")}},
            "checkpoint": {"everySteps": 20},
        },
    });
    if let Some(s) = status {
        o["status"] = s;
    }
    o
}

pub fn status_write(object: &Value) -> Expect {
    expect(
        "PATCH",
        format!("{TRAINJOBS}/iris/status"),
        Reply::MergeInto(object.clone()),
    )
}

pub async fn reconcile(object: &Value, script: Vec<Expect>) -> (Action, Vec<Seen>) {
    reconcile_with(config(), object, script).await
}

/// The operator's settings in these tests: an artifact store, no MPI image.
pub fn config() -> Config {
    Config {
        image: "registry.example/wasm-run:test".into(),
        artifact_store: Some("s3://bucket/weft".into()),
        ..Default::default()
    }
}

pub async fn reconcile_with(
    config: Config,
    object: &Value,
    script: Vec<Expect>,
) -> (Action, Vec<Seen>) {
    let (c, server) = client(script);
    let ctx = Context::new(c, Default::default(), config);
    let tj: TrainJob = serde_json::from_value(object.clone()).unwrap();
    let action = within(trainjob::reconcile(Arc::new(tj), ctx))
        .await
        .unwrap();
    (action, server.finish().await)
}

pub fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

pub fn last_status(seen: &[Seen]) -> &Value {
    &seen.last().unwrap().body["status"]
}

/// The runner Job with this status.
pub fn runner(status: Value) -> Reply {
    Reply::Json(json!({"apiVersion": "batch/v1", "kind": "Job",
                       "metadata": {"name": "iris-runner", "namespace": NS}, "status": status}))
}
