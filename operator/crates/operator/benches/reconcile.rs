//! Reconcile latency under the scripted API server (in-process, so this is the operator's own
//! cost per reconcile: building children, serialising, server-side apply requests, status
//! diffing), median and p99 over many runs.
//!
//! `cargo bench -p weft-operator --bench reconcile [-- ITERATIONS]`

use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weft_kube_mock::{client, expect, Reply};
use weft_operator::{inferenceservice, pipelinerun, Config, Context};

const JOB: &str = "/apis/batch/v1/namespaces/default/jobs/iris-run-runner";
const PODS: &str = "/api/v1/namespaces/default/pods";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";
const STATUS: &str = "/apis/weft.dev/v1alpha1/namespaces/default/pipelineruns/iris-run/status";

fn example(rel: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../..")
        .join(rel);
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn meta(v: &mut Value, finalizer: &str) {
    v["metadata"]["namespace"] = json!("default");
    v["metadata"]["uid"] = json!("uid-1");
    v["metadata"]["finalizers"] = json!([finalizer]);
}

fn summary(name: &str, mut times: Vec<Duration>) {
    times.sort();
    let p = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "{name:<44} median {:>9.1?}   p99 {:>9.1?}   ({} reconciles)",
        p(0.5),
        p(0.99),
        times.len()
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2000);
    let mut pipeline = example("examples/pipelines/iris/pipeline.yaml");
    meta(&mut pipeline, "");
    let run = json!({"apiVersion": "weft.dev/v1alpha1", "kind": "PipelineRun",
        "metadata": {"name": "iris-run", "namespace": "default", "uid": "uid-1",
                     "finalizers": [pipelinerun::FINALIZER]},
        "spec": {"pipelineRef": "iris-classifier"}});
    let mut isvc = example("examples/services/iris/inferenceservice.yaml");
    meta(&mut isvc, inferenceservice::FINALIZER);

    let active = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "iris-run-runner"}, "status": {"active": 1}});
    let no_pods = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": []});
    let mut starts = Vec::with_capacity(n);
    let mut steady = Vec::with_capacity(n);
    let mut services = Vec::with_capacity(n);
    for _ in 0..n {
        let (c, server) = client(vec![
            expect(
                "GET",
                "/apis/batch/v1/namespaces/default/jobs/iris-run-runner",
                Reply::NotFound,
            ),
            expect(
                "GET",
                "/apis/weft.dev/v1alpha1/namespaces/default/pipelines/iris-classifier",
                Reply::Json(pipeline.clone()),
            ),
            expect(
                "PATCH",
                "/api/v1/namespaces/default/configmaps/iris-run-spec",
                Reply::Echo,
            ),
            expect(
                "PATCH",
                "/api/v1/namespaces/default/serviceaccounts/weft-runner",
                Reply::Echo,
            ),
            expect(
                "PATCH",
                "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings/weft-runner",
                Reply::Echo,
            ),
            expect(
                "PATCH",
                "/apis/batch/v1/namespaces/default/jobs/iris-run-runner",
                Reply::Echo,
            ),
            expect(
                "POST",
                "/apis/events.k8s.io/v1/namespaces/default/events",
                Reply::Echo,
            ),
            expect(
                "PATCH",
                "/apis/weft.dev/v1alpha1/namespaces/default/pipelineruns/iris-run/status",
                Reply::MergeInto(run.clone()),
            ),
        ]);
        let ctx = Context::new(c, Default::default(), Config::default());
        let object = Arc::new(serde_json::from_value(run.clone()).unwrap());
        let t = Instant::now();
        pipelinerun::reconcile(object, ctx).await.unwrap();
        starts.push(t.elapsed());
        let seen = server.finish().await;

        // Pending → running once (a status write), then the steady state is timed.
        let mut running = run.clone();
        running["status"] = seen[7].body["status"].clone();
        let (c, server) = client(vec![
            expect("GET", JOB, Reply::Json(active.clone())),
            expect("GET", PODS, Reply::Json(no_pods.clone())),
            expect("POST", EVENTS, Reply::Echo),
            expect("PATCH", STATUS, Reply::MergeInto(run.clone())),
        ]);
        let ctx = Context::new(c, Default::default(), Config::default());
        let object = Arc::new(serde_json::from_value(running.clone()).unwrap());
        pipelinerun::reconcile(object, ctx).await.unwrap();
        running["status"] = server.finish().await[3].body["status"].clone();
        let (c, server) = client(vec![
            expect("GET", JOB, Reply::Json(active.clone())),
            expect("GET", PODS, Reply::Json(no_pods.clone())),
        ]);
        let ctx = Context::new(c, Default::default(), Config::default());
        let object = Arc::new(serde_json::from_value(running).unwrap());
        let t = Instant::now();
        pipelinerun::reconcile(object, ctx).await.unwrap();
        steady.push(t.elapsed());
        server.finish().await;

        let (c, server) = client(vec![
            expect(
                "PATCH",
                "/api/v1/namespaces/default/configmaps/iris-serve",
                Reply::Echo,
            ),
            expect(
                "PATCH",
                "/apis/apps/v1/namespaces/default/deployments/iris-predictor",
                Reply::Echo,
            ),
            expect(
                "PATCH",
                "/api/v1/namespaces/default/services/iris",
                Reply::Echo,
            ),
            expect(
                "PATCH",
                "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/iris-predictor",
                Reply::Echo,
            ),
            expect(
                "PATCH",
                "/apis/weft.dev/v1alpha1/namespaces/default/inferenceservices/iris/status",
                Reply::MergeInto(isvc.clone()),
            ),
        ]);
        let ctx = Context::new(c, Default::default(), Config::default());
        let object = Arc::new(serde_json::from_value(isvc.clone()).unwrap());
        let t = Instant::now();
        inferenceservice::reconcile(object, ctx).await.unwrap();
        services.push(t.elapsed());
        server.finish().await;
    }
    summary("PipelineRun start (8 API calls)", starts);
    summary("PipelineRun steady state (2 reads, no write)", steady);
    summary("InferenceService apply (5 API calls)", services);
}
