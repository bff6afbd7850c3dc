//! The InferenceService controller against a scripted API server.

use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use weft_crd::InferenceService;
use weft_kube_mock::{client, expect, within, Reply, Seen};
use weft_operator::{inferenceservice, Config, Context};

const CM: &str = "/api/v1/namespaces/default/configmaps/iris-serve";
const DEPLOY: &str = "/apis/apps/v1/namespaces/default/deployments/iris-predictor";
const SVC: &str = "/api/v1/namespaces/default/services/iris";
const HPA: &str = "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/iris-predictor";
const ISVC: &str = "/apis/weft.dev/v1alpha1/namespaces/default/inferenceservices/iris";

fn isvc() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../examples/services/iris/inferenceservice.yaml");
    let mut v: Value = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["metadata"]["namespace"] = json!("default");
    v["metadata"]["uid"] = json!("uid-9");
    v["metadata"]["generation"] = json!(3);
    v["metadata"]["finalizers"] = json!([inferenceservice::FINALIZER]);
    v
}

async fn reconcile(object: &Value, script: Vec<weft_kube_mock::Expect>) -> Vec<Seen> {
    let (c, server) = client(script);
    let ctx = Context::new(
        c,
        Default::default(),
        Config {
            image: "registry.example/wasm-run:test".into(),
            store_secret: Some("weft-s3".into()),
            ..Default::default()
        },
    );
    let isvc: InferenceService = serde_json::from_value(object.clone()).unwrap();
    within(inferenceservice::reconcile(Arc::new(isvc), ctx))
        .await
        .unwrap();
    server.finish().await
}

/// The requests of one reconcile: the children applied in order (the Deployment answered with
/// `deploy`, the autoscaler applied or deleted), then the status unless it is unchanged.
fn script(deploy: Reply, hpa: (&'static str, Reply), status: bool) -> Vec<weft_kube_mock::Expect> {
    let mut s = vec![
        expect("PATCH", CM, Reply::Echo),
        expect("PATCH", DEPLOY, deploy),
        expect("PATCH", SVC, Reply::Echo),
        expect(hpa.0, HPA, hpa.1),
    ];
    if status {
        s.push(expect(
            "PATCH",
            format!("{ISVC}/status"),
            Reply::MergeInto(isvc()),
        ));
    }
    s
}

const APPLY_HPA: (&str, Reply) = ("PATCH", Reply::Echo);

fn ready_deployment(ready: i32) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "iris-predictor"},
           "status": {"readyReplicas": ready}})
}

#[tokio::test]
async fn a_service_gets_serving_pods_a_service_and_an_autoscaler() {
    let seen = reconcile(&isvc(), script(Reply::Echo, APPLY_HPA, true)).await;
    // The pods read the resource itself, as `wasm-run serve -f` reads it locally.
    let file = seen[0].body["data"]["inferenceservice.yaml"]
        .as_str()
        .unwrap();
    let local: weft_spec::inference::InferenceService = serde_saphyr::from_str(file).unwrap();
    assert_eq!(local.metadata.name, "iris");
    assert_eq!(local.spec.canary.as_ref().unwrap().traffic_percent, 10);

    let deploy = &seen[1].body;
    assert!(
        deploy["spec"].get("replicas").is_none(),
        "the autoscaler owns replicas"
    );
    assert_eq!(
        deploy["metadata"]["ownerReferences"][0]["kind"],
        "InferenceService"
    );
    let pod = &deploy["spec"]["template"];
    assert_eq!(
        pod["metadata"]["annotations"]["weft.dev/spec-hash"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    let c = &pod["spec"]["containers"][0];
    assert_eq!(
        c["args"],
        json!([
            "--home",
            "/var/lib/weft",
            "serve",
            "-f",
            "/etc/weft/inferenceservice.yaml",
            "--host",
            "0.0.0.0",
            "--port",
            "8080",
            "--admin-listen",
            "127.0.0.1:8081"
        ])
    );
    // Only the data port is a container port, and the Service exposes only it: the admin
    // endpoints (traffic, promote, rollback) are not reachable from other pods.
    assert_eq!(c["ports"], json!([{"name": "http", "containerPort": 8080}]));
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/v2/health/ready");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/v2/health/live");
    assert_eq!(c["resources"]["requests"]["cpu"], "250m");
    assert_eq!(c["resources"]["limits"]["memory"], "512Mi");
    assert_eq!(c["envFrom"][0]["secretRef"]["name"], "weft-s3");
    assert_eq!(
        deploy["spec"]["selector"]["matchLabels"],
        seen[2].body["spec"]["selector"]
    );
    assert_eq!(
        seen[2].body["spec"]["ports"],
        json!([{"name": "http", "port": 80, "targetPort": "http"}])
    );

    let hpa = &seen[3].body["spec"];
    assert_eq!(
        (hpa["minReplicas"].as_i64(), hpa["maxReplicas"].as_i64()),
        (Some(1), Some(4))
    );
    assert_eq!(hpa["scaleTargetRef"]["name"], "iris-predictor");
    assert_eq!(
        hpa["metrics"][0]["resource"]["target"]["averageUtilization"],
        70
    );

    let status = &seen[4].body["status"];
    assert_eq!(
        status["url"],
        "http://iris.default.svc.cluster.local/v2/models/iris"
    );
    assert_eq!(status["conditions"][0]["type"], "Ready");
    assert_eq!(status["conditions"][0]["status"], "False");
    assert_eq!(status["observedGeneration"], 3);
}

#[tokio::test]
async fn ready_pods_make_it_ready_and_a_second_reconcile_writes_no_status() {
    let seen = reconcile(
        &isvc(),
        script(Reply::Json(ready_deployment(2)), APPLY_HPA, true),
    )
    .await;
    let status = seen[4].body["status"].clone();
    assert_eq!(status["conditions"][0]["status"], "True");
    assert_eq!(status["readyReplicas"], 2);
    let mut again = isvc();
    again["status"] = status;
    let seen = reconcile(
        &again,
        script(Reply::Json(ready_deployment(2)), APPLY_HPA, false),
    )
    .await;
    assert_eq!(
        seen.len(),
        4,
        "children re-applied unchanged, no status write"
    );
}

#[tokio::test]
async fn a_fixed_replica_count_sets_replicas_and_removes_the_autoscaler() {
    let mut object = isvc();
    object["spec"]["scaling"] = json!({"minReplicas": 3, "maxReplicas": 3});
    let seen = reconcile(
        &object,
        script(Reply::Echo, ("DELETE", Reply::NotFound), true),
    )
    .await;
    assert_eq!(seen[1].body["spec"]["replicas"], 3);
}

#[tokio::test]
async fn concurrency_scaling_follows_the_servers_in_flight_gauge() {
    let mut object = isvc();
    object["spec"]["scaling"] =
        json!({"minReplicas": 1, "maxReplicas": 8, "metric": "concurrency", "target": 4});
    let seen = reconcile(&object, script(Reply::Echo, APPLY_HPA, true)).await;
    let metric = &seen[3].body["spec"]["metrics"][0];
    assert_eq!(metric["type"], "Pods");
    assert_eq!(metric["pods"]["metric"]["name"], "weft_requests_in_flight");
    assert_eq!(metric["pods"]["target"]["averageValue"], "4");
}

#[tokio::test]
async fn changing_the_canary_share_rolls_the_pods() {
    let hash = |seen: &[Seen]| {
        seen[1].body["spec"]["template"]["metadata"]["annotations"]["weft.dev/spec-hash"].clone()
    };
    let script = || script(Reply::Echo, APPLY_HPA, true);
    let before = reconcile(&isvc(), script()).await;
    let mut promoted = isvc();
    promoted["spec"]["canary"]["trafficPercent"] = json!(50);
    let after = reconcile(&promoted, script()).await;
    assert_ne!(hash(&before), hash(&after));
    assert!(after[0].body["data"]["inferenceservice.yaml"]
        .as_str()
        .unwrap()
        .contains("trafficPercent: 50"));
}

#[tokio::test]
async fn deleting_a_service_removes_its_children_then_the_finalizer() {
    let mut object = isvc();
    object["metadata"]["deletionTimestamp"] = json!("2026-11-27T14:00:00Z");
    let gone = json!({"kind": "Status", "apiVersion": "v1", "status": "Success"});
    let mut released = object.clone();
    released["metadata"]["finalizers"] = json!([]);
    let seen = reconcile(
        &object,
        vec![
            expect("DELETE", HPA, Reply::Json(gone.clone())),
            expect("DELETE", SVC, Reply::Json(gone.clone())),
            expect("DELETE", DEPLOY, Reply::Json(gone.clone())),
            expect("DELETE", CM, Reply::Json(gone)),
            expect("PATCH", ISVC, Reply::Json(released)),
        ],
    )
    .await;
    assert!(seen[4].body.to_string().contains("remove"));
}
