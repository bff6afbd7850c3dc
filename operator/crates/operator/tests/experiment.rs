//! The Experiment controller against a scripted API server.

use kube::runtime::controller::Action;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use weft_crd::Experiment;
use weft_kube_mock::{client, expect, within, Reply};
use weft_operator::{experiment, Config, Context};

const NS: &str = "default";
const EXPERIMENTS: &str = "/apis/weft.dev/v1alpha1/namespaces/default/experiments";
const JOB: &str = "/apis/batch/v1/namespaces/default/jobs/branin-runner";
const PODS: &str = "/api/v1/namespaces/default/pods";
const CONFIGMAP: &str = "/api/v1/namespaces/default/configmaps/branin-spec";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";
const ACCOUNT: &str = "/api/v1/namespaces/default/serviceaccounts/weft-runner";
const BINDING: &str =
    "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings/weft-runner";
const PIPELINE: &str = "/apis/weft.dev/v1alpha1/namespaces/default/pipelines/trainer";

fn digest() -> String {
    format!("sha256:{}", "ab".repeat(32))
}

/// Branin as examples/experiments/branin.yaml has it, its component a digest in the store.
fn experiment_object(status: Option<Value>) -> Value {
    let mut e = json!({
        "apiVersion": "weft.dev/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": "branin", "namespace": NS, "uid": "0f1e2d3c-aaaa-bbbb-cccc-000000000001",
                     "generation": 1, "finalizers": [experiment::FINALIZER]},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "value", "goal": 0.45},
            "algorithm": {"algorithmName": "tpe",
                          "algorithmSettings": [{"name": "random_state", "value": "7"}]},
            "parallelTrialCount": 4,
            "maxTrialCount": 80,
            "maxFailedTrialCount": 3,
            "parameters": [
                {"name": "x1", "parameterType": "double", "feasibleSpace": {"min": "-5", "max": "10"}},
                {"name": "x2", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "15"}},
            ],
            "trialTemplate": {"component": {"source": digest(), "params": {"function": "branin"},
                                            "timeout": "10s", "memory": "32MiB"}},
        },
    });
    if let Some(s) = status {
        e["status"] = s;
    }
    e
}

fn event() -> weft_kube_mock::Expect {
    expect("POST", EVENTS, Reply::Echo)
}

fn status_write() -> weft_kube_mock::Expect {
    expect(
        "PATCH",
        format!("{EXPERIMENTS}/branin/status"),
        Reply::MergeInto(experiment_object(None)),
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
    let exp: Experiment = serde_json::from_value(object.clone()).unwrap();
    let action = within(experiment::reconcile(Arc::new(exp), context(c)))
        .await
        .unwrap();
    (action, server.finish().await)
}

fn job(status: Value) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": "branin-runner", "namespace": NS}, "status": status})
}

/// The runner's pods: running, or ended with `exit` and its log's tail as the message.
fn pods(exit: Option<(i32, &str)>) -> Value {
    let state = match exit {
        Some((code, m)) => json!({"terminated": {"exitCode": code, "message": m}}),
        None => json!({"running": {}}),
    };
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [
        {"metadata": {"name": "branin-runner-x"}, "status": {"containerStatuses": [
            {"name": "runner", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
             "state": state}]}}]})
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

#[tokio::test]
async fn a_new_experiment_gets_its_spec_and_a_runner_job_running_wasm_run_tune() {
    let (action, seen) = reconcile(
        &experiment_object(None),
        vec![
            expect("GET", JOB, Reply::NotFound),
            expect("PATCH", CONFIGMAP, Reply::Echo),
            expect("PATCH", ACCOUNT, Reply::Echo),
            expect("PATCH", BINDING, Reply::Echo),
            expect("PATCH", JOB, Reply::Echo),
            event(),
            status_write(),
        ],
    )
    .await;
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
    for s in &seen[1..5] {
        assert!(
            s.query.contains("fieldManager=weft-operator") && s.query.contains("force=true"),
            "{}",
            s.query
        );
    }
    // The experiment file as wasm-run tune reads it: the spec unchanged, named for the store
    // by name and uid (experiments of one name elsewhere never meet in a shared store).
    let data = &seen[1].body["data"];
    let text = data["experiment.yaml"].as_str().unwrap();
    let local: weft_spec::experiment::Experiment = serde_saphyr::from_str(text).unwrap();
    assert_eq!(local.metadata.name, "branin-0f1e2d3c");
    assert_eq!(local.kind, "Experiment");
    let typed: Experiment = serde_json::from_value(experiment_object(None)).unwrap();
    assert_eq!(local.spec, typed.spec.0);
    assert!(data.get("pipeline.yaml").is_none());
    let cm_owner = &seen[1].body["metadata"]["ownerReferences"][0];
    assert_eq!(cm_owner["kind"], "Experiment");

    // The runner Job: owned by the experiment (deleting it deletes the Job and every trial).
    let job = &seen[4].body;
    let owner = &job["metadata"]["ownerReferences"][0];
    assert_eq!(
        (
            owner["kind"].as_str(),
            owner["uid"].as_str(),
            owner["controller"].as_bool()
        ),
        (
            Some("Experiment"),
            Some("0f1e2d3c-aaaa-bbbb-cccc-000000000001"),
            Some(true)
        )
    );
    assert_eq!(job["metadata"]["labels"]["weft.dev/experiment"], "branin");
    // Its verdicts end the Job; exit 3 (the host failed) and a killed runner restart it, and
    // the rerun resumes the experiment from the metadata store.
    assert_eq!(job["spec"]["backoffLimit"], 2);
    let rules = &job["spec"]["podFailurePolicy"]["rules"];
    assert_eq!(rules[0]["action"], "FailJob");
    assert_eq!(rules[0]["onExitCodes"]["values"], json!([1, 2, 130]));
    assert_eq!(rules[1]["action"], "Ignore");
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    let c = &pod["containers"][0];
    assert_eq!(c["name"], "runner");
    assert_eq!(c["image"], "registry.example/wasm-run:test");
    assert_eq!(
        c["args"],
        json!([
            "--home",
            "/var/lib/weft",
            "--artifact-store",
            "s3://bucket/weft",
            "tune",
            "/etc/weft/experiment.yaml",
            "--kube-status",
            "default/branin"
        ])
    );
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["terminationMessagePolicy"], "FallbackToLogsOnError");
    assert_eq!(pod["volumes"][0]["configMap"]["name"], "branin-spec");
    assert_eq!(pod["serviceAccountName"], "weft-runner");

    assert_eq!(seen[5].body["reason"], "ExperimentCreated");
    let status = &seen[6].body["status"];
    assert_eq!(status["state"], "Created");
    assert_eq!(status["runner"]["job"], "branin-runner");
    assert!(status["startTime"].is_string());
    assert_eq!(condition(status, "Created")["status"], "True");
    assert_eq!(condition(status, "Running")["status"], "False");
}

#[tokio::test]
async fn a_pipeline_template_names_a_pipeline_whose_file_the_runner_gets() {
    let mut object = experiment_object(None);
    object["spec"]["trialTemplate"] = json!({
        "trialParameters": [{"name": "lr", "reference": "x1"}, {"name": "width", "reference": "x2"}],
        "pipeline": {"pipelineRef": "trainer", "params": {"epochs": 5}},
    });
    let pipeline = json!({
        "apiVersion": "weft.dev/v1alpha1", "kind": "Pipeline",
        "metadata": {"name": "trainer", "namespace": NS},
        "spec": {
            "params": {"lr": {"type": "float"}, "width": {"type": "float"}, "epochs": {"type": "int"}},
            "components": {"train": {"source": digest(),
                "inputs": {"params": {"lr": {"type": "float"}, "width": {"type": "float"},
                                      "epochs": {"type": "int"}}}}},
            "tasks": {"train": {"component": "train",
                "params": {"lr": {"param": "lr"}, "width": {"param": "width"},
                           "epochs": {"param": "epochs"}}}},
        },
    });
    let (_, seen) = reconcile(
        &object,
        vec![
            expect("GET", JOB, Reply::NotFound),
            expect("GET", PIPELINE, Reply::Json(pipeline.clone())),
            expect("PATCH", CONFIGMAP, Reply::Echo),
            expect("PATCH", ACCOUNT, Reply::Echo),
            expect("PATCH", BINDING, Reply::Echo),
            expect("PATCH", JOB, Reply::Echo),
            event(),
            status_write(),
        ],
    )
    .await;
    let data = &seen[2].body["data"];
    let local: weft_spec::experiment::Experiment =
        serde_saphyr::from_str(data["experiment.yaml"].as_str().unwrap()).unwrap();
    let p = local.spec.trial_template.pipeline.unwrap();
    assert_eq!(p.pipeline_ref, "pipeline.yaml");
    assert_eq!(p.params["epochs"], json!(5));
    let file: weft_spec::pipeline::Pipeline =
        serde_saphyr::from_str(data["pipeline.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(file.metadata.name, "trainer");
    assert!(file.spec.tasks.contains_key("train"));
    assert_eq!(seen[7].body["status"]["state"], "Created");

    // Its components too must be where the runner can get them.
    let mut relative = pipeline;
    relative["spec"]["components"]["train"]["source"] = json!("train.wasm");
    let (_, seen) = reconcile(
        &object,
        vec![
            expect("GET", JOB, Reply::NotFound),
            expect("GET", PIPELINE, Reply::Json(relative)),
            event(),
            status_write(),
        ],
    )
    .await;
    let status = &seen[3].body["status"];
    assert_eq!(status["state"], "Failed");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("Pipeline `trainer`: components.train.source is `train.wasm`"),
        "{message}"
    );
}

#[tokio::test]
async fn an_experiment_waits_for_its_trial_pipeline_to_exist() {
    let mut object = experiment_object(None);
    object["spec"]["trialTemplate"] = json!({"pipeline": {"pipelineRef": "trainer"}});
    let (action, seen) = reconcile(
        &object,
        vec![
            expect("GET", JOB, Reply::NotFound),
            expect("GET", PIPELINE, Reply::NotFound),
            event(),
            status_write(),
        ],
    )
    .await;
    assert_eq!(action, Action::requeue(Duration::from_secs(10)));
    let status = &seen[3].body["status"];
    assert_eq!(status["state"], "Created");
    assert!(status["message"]
        .as_str()
        .unwrap()
        .contains("waiting for Pipeline `trainer`"));
}

#[tokio::test]
async fn a_component_path_the_runner_cannot_have_fails_the_experiment_and_starts_nothing() {
    let mut object = experiment_object(None);
    object["spec"]["trialTemplate"]["component"]["source"] =
        json!("../../target/wasm-guests/components/objective.wasm");
    let (action, seen) = reconcile(
        &object,
        vec![expect("GET", JOB, Reply::NotFound), event(), status_write()],
    )
    .await;
    assert_eq!(action, Action::await_change());
    assert_eq!(seen[1].body["type"], "Warning");
    let status = &seen[2].body["status"];
    assert_eq!(status["state"], "Failed");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("trialTemplate.component.source") && message.contains("sha256:"),
        "{message}"
    );
    let failed = condition(status, "Failed");
    assert_eq!(
        (failed["status"].as_str(), failed["reason"].as_str()),
        (Some("True"), Some("ExperimentInvalidSpec"))
    );
}

#[tokio::test]
async fn a_spec_wasm_run_refuses_fails_the_experiment_with_the_located_error() {
    let mut object = experiment_object(None);
    object["spec"]["parameters"][0]["feasibleSpace"] = json!({"min": "10", "max": "-5"});
    let (_, seen) = reconcile(
        &object,
        vec![expect("GET", JOB, Reply::NotFound), event(), status_write()],
    )
    .await;
    let status = &seen[2].body["status"];
    assert_eq!(status["state"], "Failed");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.starts_with("InvalidSpec: invalid experiment `branin`") && message.contains("min"),
        "{message}"
    );
}

#[tokio::test]
async fn a_running_runner_makes_the_experiment_running_and_a_second_reconcile_changes_nothing() {
    // The runner has reported trials already (its own field manager's share).
    let created = json!({"state": "Created", "runner": {"job": "branin-runner", "log": "l"},
                         "trials": 3, "trialsRunning": 2, "bestValue": 1.5, "message": "trial 3 started",
                         "currentOptimalTrial": {"bestTrialName": "branin-1", "observation": {}}});
    let (_, seen) = reconcile(
        &experiment_object(Some(created)),
        vec![
            expect("GET", JOB, Reply::Json(job(json!({"active": 1})))),
            expect("GET", PODS, Reply::Json(pods(None))),
            event(),
            status_write(),
        ],
    )
    .await;
    let status = seen[3].body["status"].clone();
    assert_eq!(status["state"], "Running");
    assert_eq!(condition(&status, "Running")["status"], "True");
    assert_eq!(condition(&status, "Running")["reason"], "ExperimentRunning");
    // Only the operator's fields are applied: the runner's counters, best trial and message
    // are not sent back (a stale copy would overwrite the runner's newer report).
    for runners in [
        "trials",
        "trialsRunning",
        "bestValue",
        "currentOptimalTrial",
        "message",
    ] {
        assert!(status.get(runners).is_none(), "{runners} applied: {status}");
    }

    let (action, seen) = reconcile(
        &experiment_object(Some(status)),
        vec![
            expect("GET", JOB, Reply::Json(job(json!({"active": 1})))),
            expect("GET", PODS, Reply::Json(pods(None))),
        ],
    )
    .await;
    assert_eq!(seen.len(), 2);
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
}

#[tokio::test]
async fn a_complete_runner_makes_the_experiment_succeeded() {
    let done = job(json!({"succeeded": 1, "conditions": [
        {"type": "Complete", "status": "True", "lastTransitionTime": "2026-11-27T14:00:00Z"}]}));
    let (action, seen) = reconcile(
        &experiment_object(Some(
            json!({"state": "Running", "trials": 4, "trialsRunning": 1, "trialsSucceeded": 3}),
        )),
        vec![
            expect("GET", JOB, Reply::Json(done)),
            expect("GET", PODS, Reply::Json(pods(Some((0, ""))))),
            event(),
            status_write(),
        ],
    )
    .await;
    assert_eq!(action, Action::await_change());
    let status = &seen[3].body["status"];
    assert_eq!(status["state"], "Succeeded");
    assert_eq!(status["completionTime"], "2026-11-27T14:00:00Z");
    // Nothing runs once the runner has ended; the other counters stay the runner's.
    assert_eq!(status["trialsRunning"], 0);
    assert!(status.get("trials").is_none() && status.get("trialsSucceeded").is_none());
    let succeeded = condition(status, "Succeeded");
    assert_eq!(succeeded["status"], "True");
    assert_eq!(succeeded["reason"], "ExperimentSucceeded");
    assert_eq!(condition(status, "Running")["status"], "False");
    assert_eq!(condition(status, "Failed")["status"], "False");

    // A finished experiment is left alone.
    let (action, seen) = reconcile(&experiment_object(Some(status.clone())), vec![]).await;
    assert_eq!((action, seen.len()), (Action::await_change(), 0));
}

/// A failed runner: its exit code and log tail say why, in Katib's reasons.
#[tokio::test]
async fn a_failed_runner_fails_the_experiment_with_the_runners_reason() {
    let failed = || {
        job(json!({"failed": 1, "conditions": [
            {"type": "Failed", "status": "True", "lastTransitionTime": "2026-11-27T14:00:00Z",
             "reason": "PodFailurePolicy", "message": "Container runner for pod default/branin-runner-x failed with exit code 1"}]}))
    };
    let tail = "[4/80 done, 0 running] branin-0f1e2d3c-00003 Failed (step trapped)\n\
                experiment branin-0f1e2d3c: Failed\n  \
                MaxFailedTrialsReached: 4 trials failed (maxFailedTrialCount 3)\n  \
                trials: 4 Failed\n  best: none (no trial succeeded)\n";
    let cases = [
        (
            (1, tail),
            "ExperimentMaxFailedTrialsReached",
            "MaxFailedTrialsReached: 4 trials failed (maxFailedTrialCount 3)",
        ),
        (
            (2, "error: experiment.yaml:12:7: unknown setting `n_startup` of tpe\n"),
            "ExperimentBadInput",
            "BadInput: the runner refused the experiment: experiment.yaml:12:7: unknown setting `n_startup` of tpe",
        ),
        (
            (137, "trial branin-0f1e2d3c-00001 started\n"),
            "ExperimentRunnerFailed",
            "RunnerFailed: the runner failed (exit 137) without ending the experiment: trial branin-0f1e2d3c-00001 started",
        ),
    ];
    for ((code, log), reason, message) in cases {
        let (action, seen) = reconcile(
            &experiment_object(Some(json!({"state": "Running"}))),
            vec![
                expect("GET", JOB, Reply::Json(failed())),
                expect("GET", PODS, Reply::Json(pods(Some((code, log))))),
                event(),
                status_write(),
            ],
        )
        .await;
        assert_eq!(action, Action::await_change());
        assert_eq!(seen[2].body["type"], "Warning");
        assert_eq!(seen[2].body["reason"], reason);
        let status = &seen[3].body["status"];
        assert_eq!(status["state"], "Failed");
        assert_eq!(status["message"], message);
        let f = condition(status, "Failed");
        assert_eq!(
            (f["status"].as_str(), f["reason"].as_str()),
            (Some("True"), Some(reason))
        );
    }
}

#[tokio::test]
async fn deleting_an_experiment_stops_its_runner_before_the_finalizer_goes() {
    let mut object = experiment_object(Some(json!({"state": "Running"})));
    object["metadata"]["deletionTimestamp"] = json!("2026-11-27T14:00:00Z");
    let mut released = object.clone();
    released["metadata"]["finalizers"] = json!([]);
    let (_, seen) = reconcile(
        &object,
        vec![
            expect("DELETE", JOB, Reply::Json(job(json!({})))),
            expect(
                "DELETE",
                CONFIGMAP,
                Reply::Json(json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})),
            ),
            expect(
                "PATCH",
                format!("{EXPERIMENTS}/branin"),
                Reply::Json(released),
            ),
        ],
    )
    .await;
    // The runner's pod (and every trial in it) goes with the Job.
    assert_eq!(seen[0].body["propagationPolicy"], "Background");
    let patch = seen[2].body.to_string();
    assert!(
        patch.contains("remove") && patch.contains("/metadata/finalizers"),
        "{patch}"
    );
}

#[tokio::test]
async fn an_experiment_without_the_finalizer_gets_it_first() {
    let mut object = experiment_object(None);
    object["metadata"]["finalizers"] = json!([]);
    let (_, seen) = reconcile(
        &object,
        vec![expect(
            "PATCH",
            format!("{EXPERIMENTS}/branin"),
            Reply::Json(experiment_object(None)),
        )],
    )
    .await;
    assert!(seen[0].body.to_string().contains(experiment::FINALIZER));
}

#[test]
fn the_store_name_is_a_weft_name_unique_per_resource() {
    let mut object = experiment_object(None);
    object["metadata"]["name"] = json!(format!("tune.lr.{}", "x".repeat(100)));
    let typed: Experiment = serde_json::from_value(object).unwrap();
    let name = experiment::local_name(&typed);
    assert!(name.len() <= 63, "{name}");
    assert!(
        name.starts_with("tune-lr-x") && name.ends_with("-0f1e2d3c"),
        "{name}"
    );
}
