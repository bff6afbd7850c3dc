//! The PipelineRun controller against a scripted API server.

use kube::runtime::controller::Action;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use weft_crd::{Pipeline, PipelineRun};
use weft_kube_mock::{client, expect, within, Reply};
use weft_operator::{pipelinerun, Config, Context};

const NS: &str = "default";
const RUNS: &str = "/apis/weft.dev/v1alpha1/namespaces/default/pipelineruns";
const JOB: &str = "/apis/batch/v1/namespaces/default/jobs/iris-run-runner";
const PODS: &str = "/api/v1/namespaces/default/pods";
const JOBS: &str = "/apis/batch/v1/namespaces/default/jobs";
const CONFIGMAP: &str = "/api/v1/namespaces/default/configmaps/iris-run-spec";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";
const ACCOUNT: &str = "/api/v1/namespaces/default/serviceaccounts/weft-runner";
const BINDING: &str =
    "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings/weft-runner";
const PIPELINE: &str = "/apis/weft.dev/v1alpha1/namespaces/default/pipelines/iris-classifier";

fn example(rel: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../..")
        .join(rel);
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn pipeline() -> Value {
    let mut p = example("examples/pipelines/iris/pipeline.yaml");
    p["metadata"]["namespace"] = json!(NS);
    p
}

fn run(status: Option<Value>) -> Value {
    let mut r = json!({
        "apiVersion": "weft.dev/v1alpha1",
        "kind": "PipelineRun",
        "metadata": {"name": "iris-run", "namespace": NS, "uid": "uid-1", "generation": 1,
                     "finalizers": [pipelinerun::FINALIZER]},
        "spec": {"pipelineRef": "iris-classifier", "params": {"epochs": 50}},
    });
    if let Some(s) = status {
        r["status"] = s;
    }
    r
}

/// The event a state transition publishes.
fn event() -> weft_kube_mock::Expect {
    expect("POST", EVENTS, Reply::Echo)
}

/// The run's status, written.
fn status_write() -> weft_kube_mock::Expect {
    expect(
        "PATCH",
        format!("{RUNS}/iris-run/status"),
        Reply::MergeInto(run(None)),
    )
}

fn context(c: kube::Client) -> Arc<Context> {
    Context::new(
        c,
        Default::default(),
        Config {
            image: "registry.example/wasm-run:test".into(),
            artifact_store: Some("s3://bucket/weft".into()),
            ..Default::default()
        },
    )
}

async fn reconcile(
    object: &Value,
    script: Vec<weft_kube_mock::Expect>,
) -> (Action, Vec<weft_kube_mock::Seen>) {
    let (c, server) = client(script);
    let run: PipelineRun = serde_json::from_value(object.clone()).unwrap();
    let action = within(pipelinerun::reconcile(Arc::new(run), context(c)))
        .await
        .unwrap();
    (action, server.finish().await)
}

/// What a collection delete answers: the Jobs it deleted (none here).
fn job_list() -> Value {
    json!({"apiVersion": "batch/v1", "kind": "JobList", "metadata": {}, "items": []})
}

fn job(status: Value) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": "iris-run-runner", "namespace": NS}, "status": status})
}

fn pods(terminated_message: Option<&str>) -> Value {
    let state = match terminated_message {
        Some(m) => json!({"terminated": {"exitCode": 0, "message": m}}),
        None => json!({"running": {}}),
    };
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [
        {"metadata": {"name": "iris-run-runner-x"}, "status": {"containerStatuses": [
            {"name": "runner", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
             "state": state}]}}]})
}

#[tokio::test]
async fn a_new_run_gets_its_spec_configmap_and_a_runner_job_and_is_pending() {
    let (action, seen) = reconcile(
        &run(None),
        vec![
            expect("GET", JOB, Reply::NotFound),
            expect("GET", PIPELINE, Reply::Json(pipeline())),
            expect("PATCH", CONFIGMAP, Reply::Echo),
            expect("PATCH", ACCOUNT, Reply::Echo),
            expect("PATCH", BINDING, Reply::Echo),
            expect("PATCH", JOB, Reply::Echo),
            event(),
            status_write(),
        ],
    )
    .await;
    assert_eq!(action, Action::requeue(std::time::Duration::from_secs(30)));

    // Server-side apply, as the operator's field manager.
    for s in &seen[2..6] {
        assert!(
            s.query.contains("fieldManager=weft-operator") && s.query.contains("force=true"),
            "{}",
            s.query
        );
    }
    // The spec files: the pipeline as wasm-run reads it, the run pointing at it.
    let data = &seen[2].body["data"];
    let run_yaml: weft_spec::pipeline::PipelineRun =
        serde_saphyr::from_str(data["run.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(run_yaml.spec.pipeline_ref, "pipeline.yaml");
    assert_eq!(run_yaml.spec.params["epochs"], json!(50));
    let pipeline_yaml: weft_spec::pipeline::Pipeline =
        serde_saphyr::from_str(data["pipeline.yaml"].as_str().unwrap()).unwrap();
    let typed: Pipeline = serde_json::from_value(pipeline()).unwrap();
    assert_eq!(pipeline_yaml.spec, typed.spec.0);

    // The runner's account may write its run's status, through the runner ClusterRole.
    assert_eq!(seen[3].body["kind"], "ServiceAccount");
    let binding = &seen[4].body;
    assert_eq!(
        (
            binding["roleRef"]["kind"].as_str(),
            binding["roleRef"]["name"].as_str()
        ),
        (Some("ClusterRole"), Some("weft-runner"))
    );
    assert_eq!(binding["subjects"][0]["name"], "weft-runner");

    // The runner Job: owned by the run, one pod running wasm-run over the spec.
    let job = &seen[5].body;
    let owner = &job["metadata"]["ownerReferences"][0];
    assert_eq!(
        (
            owner["kind"].as_str(),
            owner["uid"].as_str(),
            owner["controller"].as_bool()
        ),
        (Some("PipelineRun"), Some("uid-1"), Some(true))
    );
    // The run's own verdict ends the Job; a killed runner is restarted and resumes the run.
    assert_eq!(job["spec"]["backoffLimit"], 2);
    let rules = &job["spec"]["podFailurePolicy"]["rules"];
    assert_eq!(rules[0]["action"], "FailJob");
    // Exit 3 (the host failed) is not a verdict: the runner is restarted and resumes.
    assert_eq!(rules[0]["onExitCodes"]["values"], json!([1, 2, 130]));
    assert_eq!(rules[1]["action"], "Ignore");
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "registry.example/wasm-run:test");
    assert_eq!(
        c["args"],
        json!([
            "--home",
            "/var/lib/weft",
            "--artifact-store",
            "s3://bucket/weft",
            "pipeline",
            "run",
            "/etc/weft/run.yaml",
            "--run-id",
            "uid-1",
            "--report",
            "/dev/termination-log",
            "--kube-status",
            "default/iris-run",
            "--task-pods",
            "/etc/weft/task-pod.json"
        ])
    );
    // With a shared (S3) store, tasks with resources of their own run in pods made from a
    // template in the spec ConfigMap: the runner's image, store and lock-down, no API access.
    let template: Value = serde_json::from_str(data["task-pod.json"].as_str().unwrap()).unwrap();
    let tc = &template["spec"]["containers"][0];
    assert_eq!(tc["image"], "registry.example/wasm-run:test");
    assert_eq!(
        tc["args"],
        json!([
            "--home",
            "/var/lib/weft",
            "--artifact-store",
            "s3://bucket/weft"
        ])
    );
    assert_eq!(tc["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(template["spec"]["automountServiceAccountToken"], false);
    assert!(template["spec"]["serviceAccountName"].is_null());
    assert_eq!(pod["serviceAccountName"], "weft-runner");
    assert_eq!(pod["automountServiceAccountToken"], true);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(pod["volumes"][0]["configMap"]["name"], "iris-run-spec");

    assert_eq!(seen[6].body["reason"], "Pending");
    let status = &seen[7].body["status"];
    assert_eq!(status["state"], "PENDING");
    assert_eq!(status["runner"]["job"], "iris-run-runner");
    let running = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Running")
        .unwrap();
    assert_eq!(running["status"], "True");
}

#[tokio::test]
async fn a_running_job_makes_the_run_running_and_a_second_reconcile_changes_nothing() {
    let pending = json!({"state": "PENDING", "runner": {"job": "iris-run-runner", "log": "l"}});
    let (_, seen) = reconcile(
        &run(Some(pending.clone())),
        vec![
            expect("GET", JOB, Reply::Json(job(json!({"active": 1})))),
            expect("GET", PODS, Reply::Json(pods(None))),
            event(),
            status_write(),
        ],
    )
    .await;
    let status = seen[3].body["status"].clone();
    assert_eq!(status["state"], "RUNNING");

    // Reconciled again with what it wrote: reads, and nothing else.
    let (action, seen) = reconcile(
        &run(Some(status)),
        vec![
            expect("GET", JOB, Reply::Json(job(json!({"active": 1})))),
            expect("GET", PODS, Reply::Json(pods(None))),
        ],
    )
    .await;
    assert_eq!(seen.len(), 2);
    assert_eq!(action, Action::requeue(std::time::Duration::from_secs(30)));
}

#[tokio::test]
async fn the_runners_report_becomes_the_runs_status() {
    let report = weft_spec::report::RunReport {
        run_id: "uid-1".into(),
        state: "FAILED".into(),
        tasks: [
            ("load", "SUCCEEDED", None),
            ("train", "FAILED", Some("step trapped: out of bounds")),
        ]
        .into_iter()
        .map(|(n, s, m)| {
            (
                n.to_string(),
                weft_spec::report::TaskReport {
                    state: s.into(),
                    message: m.map(str::to_string),
                    artifacts: [("out".to_string(), digest_of(n))].into(),
                    ..Default::default()
                },
            )
        })
        .collect(),
        omitted: 0,
    };
    let failed = job(json!({"failed": 1, "conditions": [
        {"type": "Failed", "status": "True", "lastTransitionTime": "2026-11-27T14:00:00Z", "message": "BackoffLimitExceeded"}]}));
    let (action, seen) = reconcile(
        &run(Some(json!({"state": "RUNNING"}))),
        vec![
            expect("GET", JOB, Reply::Json(failed)),
            expect(
                "GET",
                PODS,
                Reply::Json(pods(Some(&report.to_bounded_json()))),
            ),
            event(),
            status_write(),
        ],
    )
    .await;
    assert_eq!(action, Action::await_change());
    assert_eq!(seen[2].body["type"], "Warning");
    let status = &seen[3].body["status"];
    assert_eq!(status["state"], "FAILED");
    assert_eq!(status["tasks"]["load"]["state"], "SUCCEEDED");
    assert_eq!(
        status["tasks"]["load"]["artifacts"]["out"],
        digest_of("load")
    );
    assert_eq!(status["tasks"]["train"]["state"], "FAILED");
    assert_eq!(
        status["message"],
        "task `train` failed: step trapped: out of bounds"
    );
    assert_eq!(status["completionTime"], "2026-11-27T14:00:00Z");
    let failed = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Failed")
        .unwrap();
    assert_eq!(
        (failed["status"].as_str(), failed["reason"].as_str()),
        (Some("True"), Some("Failed"))
    );

    // A finished run is left alone.
    let (action, seen) = reconcile(&run(Some(status.clone())), vec![]).await;
    assert_eq!((action, seen.len()), (Action::await_change(), 0));
}

#[tokio::test]
async fn spec_cancel_stops_the_runner_and_marks_the_run_cancelled() {
    let mut object = run(Some(json!({"state": "RUNNING"})));
    object["spec"]["cancel"] = json!(true);
    let (_, seen) = reconcile(
        &object,
        vec![
            expect("DELETE", JOB, Reply::Json(job(json!({})))),
            expect("DELETE", JOBS, Reply::Json(job_list())),
            event(),
            status_write(),
        ],
    )
    .await;
    assert_eq!(seen[0].body["propagationPolicy"], "Background");
    // The Jobs of its tasks in pods of their own go too.
    assert!(
        seen[1]
            .query
            .contains("labelSelector=weft.dev%2Fpipelinerun%3Diris-run%2Cweft.dev%2Ftask"),
        "{}",
        seen[1].query
    );
    assert_eq!(seen[3].body["status"]["state"], "CANCELLED");
}

#[tokio::test]
async fn deleting_a_run_stops_its_runner_before_the_finalizer_goes() {
    let mut object = run(Some(json!({"state": "RUNNING"})));
    object["metadata"]["deletionTimestamp"] = json!("2026-11-27T14:00:00Z");
    let mut released = object.clone();
    released["metadata"]["finalizers"] = json!([]);
    let (_, seen) = reconcile(
        &object,
        vec![
            expect("DELETE", JOB, Reply::NotFound),
            expect("DELETE", JOBS, Reply::Json(job_list())),
            expect(
                "DELETE",
                CONFIGMAP,
                Reply::Json(json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})),
            ),
            expect("PATCH", format!("{RUNS}/iris-run"), Reply::Json(released)),
        ],
    )
    .await;
    let patch = seen[3].body.to_string();
    assert!(
        patch.contains("remove") && patch.contains("/metadata/finalizers"),
        "{patch}"
    );
}

#[tokio::test]
async fn a_run_without_the_finalizer_gets_it_first() {
    let mut object = run(None);
    object["metadata"]["finalizers"] = json!([]);
    let (_, seen) = reconcile(
        &object,
        vec![expect(
            "PATCH",
            format!("{RUNS}/iris-run"),
            Reply::Json(run(None)),
        )],
    )
    .await;
    assert!(seen[0].body.to_string().contains(pipelinerun::FINALIZER));
}

#[tokio::test]
async fn an_invalid_pipeline_fails_the_run_with_wasm_runs_message_and_starts_nothing() {
    // A cycle: CEL cannot see it, the spec validation does.
    let mut cyclic = pipeline();
    cyclic["spec"]["tasks"]["split"]["after"] = json!(["evaluate"]);
    let (action, seen) = reconcile(
        &run(None),
        vec![
            expect("GET", JOB, Reply::NotFound),
            expect("GET", PIPELINE, Reply::Json(cyclic)),
            event(),
            status_write(),
        ],
    )
    .await;
    assert_eq!(action, Action::await_change());
    let status = &seen[3].body["status"];
    assert_eq!(status["state"], "FAILED");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("invalid pipeline `iris-classifier`") && message.contains("cycle"),
        "{message}"
    );
}

#[tokio::test]
async fn a_run_waits_for_its_pipeline_to_exist() {
    let (action, seen) = reconcile(
        &run(None),
        vec![
            expect("GET", JOB, Reply::NotFound),
            expect("GET", PIPELINE, Reply::NotFound),
            event(),
            status_write(),
        ],
    )
    .await;
    assert_eq!(action, Action::requeue(std::time::Duration::from_secs(10)));
    let status = &seen[3].body["status"];
    assert_eq!(status["state"], "PENDING");
    assert!(status["message"]
        .as_str()
        .unwrap()
        .contains("waiting for Pipeline `iris-classifier`"));
}

#[tokio::test]
async fn reconciles_and_failures_are_counted_in_the_metrics() {
    let metrics = Arc::new(weft_operator::metrics::Metrics::default());
    let (c, server) = client(vec![expect(
        "GET",
        JOB,
        Reply::Json(job(json!({"active": 1}))),
    )]);
    let ctx = Context::new(c, metrics.clone(), Config::default());
    let object: PipelineRun =
        serde_json::from_value(run(Some(json!({"state": "RUNNING"})))).unwrap();
    let object = Arc::new(object);
    // The pod list is never answered: the script ends, the request fails, the reconcile errs.
    let err = within(pipelinerun::reconcile(object.clone(), ctx.clone()))
        .await
        .unwrap_err();
    server.finish().await;
    let action = pipelinerun::error_policy(object, &err, ctx);
    assert_eq!(action, Action::requeue(std::time::Duration::from_secs(15)));
    let text = metrics.encode();
    assert!(
        text.contains(r#"weft_operator_reconciles_total{controller="pipelinerun"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"weft_operator_reconcile_failures_total{controller="pipelinerun",error="kube"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"weft_operator_reconcile_duration_seconds_count{controller="pipelinerun"} 1"#
        ),
        "{text}"
    );
}

/// Task pods meet their runner only in the artifact store: with none shared (no S3 store, no
/// home claim) there are no task pods, and tasks with resources run in the runner's pod.
#[test]
fn without_a_shared_store_there_are_no_task_pods() {
    let config = Config {
        artifact_store: None,
        home_pvc: None,
        ..Config::default()
    };
    assert!(pipelinerun::task_pod_template(&config, "cm").is_none());
    let typed: PipelineRun = serde_json::from_value(run(None)).unwrap();
    let job = pipelinerun::runner_job(&typed, &config, "j", "cm");
    let args = job.spec.unwrap().template.spec.unwrap().containers[0]
        .args
        .clone()
        .unwrap();
    assert!(!args.contains(&"--task-pods".to_string()), "{args:?}");
    // A home claim is shared: its pods mount it too.
    // With a metadata database, runners get its URL from the Secret, never in the spec.
    let with_db = Config {
        metadata_secret: Some("weft-postgres".into()),
        ..config.clone()
    };
    let job = pipelinerun::runner_job(&typed, &with_db, "j", "cm");
    let env =
        serde_json::to_value(&job.spec.unwrap().template.spec.unwrap().containers[0].env).unwrap();
    let metadata = env
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "WEFT_METADATA")
        .unwrap();
    assert_eq!(
        metadata["valueFrom"]["secretKeyRef"],
        json!({"name": "weft-postgres", "key": "url", "optional": false})
    );
    let config = Config {
        home_pvc: Some("weft-home".into()),
        ..config
    };
    let template = pipelinerun::task_pod_template(&config, "cm").unwrap();
    let volumes = template.spec.unwrap().volumes.unwrap();
    let home = volumes.iter().find(|v| v.name == "home").unwrap();
    assert_eq!(
        home.persistent_volume_claim.as_ref().unwrap().claim_name,
        "weft-home"
    );
}

/// A well-formed digest for task `name` (reports with malformed digests are ignored).
fn digest_of(name: &str) -> String {
    use std::fmt::Write as _;
    let hex = name
        .bytes()
        .cycle()
        .take(32)
        .fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        });
    format!("sha256:{hex}")
}
