//! `pipeline run --kube-status NS/NAME`: the runner writes its tasks' states into the
//! PipelineRun's status, here to a stand-in API server named by a kubeconfig (the real client
//! configuration path; in a pod it is the service account instead).

use crate::support::*;
use axum::routing::patch;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

type Seen = Arc<Mutex<Vec<(String, Value)>>>;

/// An API server answering status patches of `kind` `ns/NAME` (its `plural`), recording each
/// body with its query.
fn status_server(plural: &str, name: &str, kind: &'static str) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let object_name = name.to_string();
    let app = axum::Router::new().route(
        &format!("/apis/weft.dev/v1alpha1/namespaces/ns/{plural}/{name}/status"),
        patch(
            // Server-side apply sends `application/apply-patch+yaml`; kube writes it as JSON.
            move |q: axum::extract::RawQuery, body: axum::body::Bytes| {
                let record = record.clone();
                let name = object_name.clone();
                let body: Value = serde_json::from_slice(&body).unwrap();
                async move {
                    record
                        .lock()
                        .unwrap()
                        .push((q.0.unwrap_or_default(), body.clone()));
                    let mut object = json!({"apiVersion": "weft.dev/v1alpha1", "kind": kind,
                        "metadata": {"name": name, "namespace": "ns"}});
                    object["status"] = body["status"].clone();
                    axum::Json(object)
                }
            },
        ),
    );
    (serve_in_background(app), seen)
}

/// An API server answering status patches of PipelineRun `ns/r`, recording each body.
fn api_server() -> (String, Seen) {
    status_server("pipelineruns", "r", "PipelineRun")
}

/// A kubeconfig in `s` naming the server at `url`.
fn kubeconfig(s: &Scratch, url: &str) -> std::path::PathBuf {
    let path = s.path("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: fake, cluster: {{server: \"{url}\"}}}}]\nusers: [{{name: u, user: {{token: t}}}}]\ncontexts: [{{name: c, context: {{cluster: fake, user: u}}}}]\ncurrent-context: c\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_runner_writes_live_task_states_to_its_pipeline_run() {
    let (url, seen) = api_server();
    let s = Scratch::new();
    let kubeconfig = kubeconfig(&s, &url);
    let yaml = s.path("iris.yaml");
    std::fs::write(&yaml, example_text("pipeline.yaml")).unwrap();
    let out = succeed(
        s.wasm_run()
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "weft_run_reporter=warn,kube_client=error")
            .args(["pipeline", "run"])
            .arg(&yaml)
            .args(["--kube-status", "ns/r"]),
    );
    let seen = seen.lock().unwrap();
    assert!(
        !seen.is_empty(),
        "no status was written: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(seen
        .iter()
        .all(|(q, _)| q.contains("fieldManager=weft-runner")));
    let last = &seen.last().unwrap().1["status"]["tasks"];
    for task in [
        "load",
        "split",
        "standardize",
        "train",
        "evaluate",
        "publish",
    ] {
        assert_eq!(last[task]["state"], "SUCCEEDED", "{task}: {last}");
    }
}

#[test]
fn kube_status_needs_a_namespace_and_a_name() {
    let s = Scratch::new();
    let (code, err) =
        fails(
            s.wasm_run()
                .args(["pipeline", "run", "x.yaml", "--kube-status", "just-a-name"]),
        );
    assert_eq!(code, Some(2));
    assert!(err.contains("write NAMESPACE/NAME"), "{err}");
}

/// `tune --kube-status NS/NAME`: the runner writes the trial counters and the best trial into
/// the Experiment's status as trials finish, and a last time from the experiment's summary.
#[test]
fn a_runner_writes_trial_counters_and_the_best_trial_to_its_experiment() {
    let (url, seen) = status_server("experiments", "e", "Experiment");
    let s = Scratch::new();
    let kubeconfig = kubeconfig(&s, &url);
    let file = s.path("e.yaml");
    std::fs::write(
        &file,
        format!(
            r#"apiVersion: weft.dev/v1alpha1
kind: Experiment
metadata: {{name: e}}
spec:
  objective: {{type: minimize, objectiveMetricName: value}}
  algorithm:
    algorithmName: random
    algorithmSettings: [{{name: random_state, value: "3"}}]
  parallelTrialCount: 2
  maxTrialCount: 5
  parameters:
    - {{name: x1, parameterType: double, feasibleSpace: {{min: "-5", max: "10"}}}}
    - {{name: x2, parameterType: double, feasibleSpace: {{min: "0", max: "15"}}}}
  trialTemplate:
    component:
      source: {OBJECTIVE}
      params: {{function: branin}}
      timeout: 20s
"#
        ),
    )
    .unwrap();
    let out = succeed(
        s.wasm_run()
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "weft_run_reporter=warn,kube_client=error")
            .arg("tune")
            .arg(&file)
            .args(["--json", "--kube-status", "ns/e"]),
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let seen = seen.lock().unwrap();
    assert!(
        seen.len() >= 2,
        "the status was not written as trials ran: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(seen
        .iter()
        .all(|(q, _)| q.contains("fieldManager=weft-runner")));
    let last = &seen.last().unwrap().1["status"];
    assert_eq!(last["trials"], 5, "{last}");
    assert_eq!(last["trialsSucceeded"], 5, "{last}");
    assert!(last.get("trialsRunning").is_none(), "{last}");
    let best = summary["best_trial"].as_str().unwrap();
    let best_value = summary["trials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == best)
        .unwrap()["objective"]
        .clone();
    assert_eq!(last["currentOptimalTrial"]["bestTrialName"], best);
    assert_eq!(last["bestValue"], best_value);
    let names: Vec<&str> = last["currentOptimalTrial"]["parameterAssignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["x1", "x2"]);
}

/// `train --kube-status NS/NAME`: the runner writes Trainer's `trainerStatus` (progress, time
/// left, the latest metrics) as the workers report steps, and reaches 100% at the end.
#[test]
fn a_runner_writes_training_progress_to_its_train_job() {
    let (url, seen) = status_server("trainjobs", "iris", "TrainJob");
    let s = Scratch::new();
    let kubeconfig = kubeconfig(&s, &url);
    let file = s.path("iris.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: weft.dev/v1alpha1\nkind: TrainJob\nmetadata: {{name: iris}}\nspec:\n  trainer:\n    component: {TRAIN_MLP}\n    params: {{label: species, epochs: 3000}}\n    numProcPerNode: 2\n  initializer:\n    dataset: {{path: {}}}\n",
            repo_file("examples/data/iris.csv").display()
        ),
    )
    .unwrap();
    let out = succeed(
        s.wasm_run()
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "weft_run_reporter=warn,kube_client=error")
            .arg("train")
            .arg(&file)
            .args(["--kube-status", "ns/iris"]),
    );
    let seen = seen.lock().unwrap();
    assert!(
        seen.len() >= 2,
        "a first write and a last: {seen:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(seen
        .iter()
        .all(|(q, _)| q.contains("fieldManager=weft-runner")));
    let first = &seen[0].1["status"]["trainerStatus"];
    let last = &seen.last().unwrap().1["status"]["trainerStatus"];
    assert!(
        first["progressPercentage"].as_u64().unwrap() < 100,
        "{first}"
    );
    assert_eq!(last["progressPercentage"], 100, "{last}");
    assert_eq!(last["estimatedRemainingSeconds"], 0, "{last}");
    let metrics = last["metrics"].as_array().unwrap();
    assert!(metrics.iter().any(|m| m["name"] == "loss"), "{last}");
    assert!(metrics.iter().any(|m| m["name"] == "accuracy"), "{last}");
    assert!(last["lastUpdatedTime"].is_string());
}
