//! The TrainJob controller against a scripted API server: the spec ConfigMap and the runner
//! Job (`wasm-run train` as a resumable run, in a pod asking for resourcesPerNode); a
//! condition on every path: a refused child, an engine this operator is not set up for,
//! suspend and resume, the runner's success and failure.

mod trainjob_support;

use kube::runtime::controller::Action;
use serde_json::json;
use std::time::Duration;
use trainjob_support::*;
use weft_crd::TrainJob;
use weft_kube_mock::{expect, Reply};

#[tokio::test]
async fn a_new_job_gets_its_spec_and_a_runner_running_wasm_run_train_as_a_resumable_run() {
    let o = trainjob_object(None);
    let (action, seen) = reconcile(
        &o,
        vec![
            expect("GET", JOB, Reply::NotFound),
            expect("PATCH", CONFIGMAP, Reply::Echo),
            expect("PATCH", ACCOUNT, Reply::Echo),
            expect("PATCH", BINDING, Reply::Echo),
            expect("PATCH", JOB, Reply::Echo),
            status_write(&o),
        ],
    )
    .await;
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
    // The job file as `wasm-run train` reads it: the spec unchanged.
    let text = seen[1].body["data"]["trainjob.yaml"].as_str().unwrap();
    let local: weft_spec::train_job::TrainJob = serde_saphyr::from_str(text).unwrap();
    let typed: TrainJob = serde_json::from_value(o.clone()).unwrap();
    assert_eq!(
        (local.kind.as_str(), &local.spec),
        ("TrainJob", &typed.spec.0)
    );
    // The runner: owned by the job, `wasm-run train` with a run id stable per job (a restarted
    // pod resumes the run, whose gang restarts from its checkpoint), the node's resources.
    let job = &seen[4].body;
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "TrainJob");
    assert_eq!(job["metadata"]["labels"]["weft.dev/trainjob"], "iris");
    let pod = &job["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let train = args.iter().position(|a| *a == "train").unwrap();
    assert_eq!(
        &args[train..],
        [
            "train",
            "/etc/weft/trainjob.yaml",
            "--run-id",
            "trainjob-iris-7a6b5c4d",
            "--kube-status",
            "team-a/iris"
        ]
    );
    assert_eq!(
        c["resources"]["limits"],
        json!({"cpu": "4", "memory": "8Gi", "nvidia.com/gpu": "1"})
    );
    assert_eq!(c["resources"]["requests"], c["resources"]["limits"]);
    let status = last_status(&seen);
    assert_eq!(status["state"], "Created");
    assert_eq!(condition(status, "Created")["status"], "True");
    assert_eq!(condition(status, "Failed")["status"], "False");
    assert_eq!(
        status["runner"]["log"],
        "kubectl logs -n team-a job/iris-runner"
    );
}

/// A child the API server refuses (a quota here) leaves a condition saying so, and the
/// reconcile tries again, instead of a job with no condition at all.
#[tokio::test]
async fn a_refused_child_is_a_condition_and_is_tried_again() {
    let o = trainjob_object(None);
    let refusal =
        "jobs \"iris-runner\" is forbidden: exceeded quota: compute, requested: nvidia.com/gpu=1";
    let (action, seen) = reconcile(
        &o,
        vec![
            expect("GET", JOB, Reply::NotFound),
            expect("PATCH", CONFIGMAP, Reply::Echo),
            expect("PATCH", ACCOUNT, Reply::Echo),
            expect("PATCH", BINDING, Reply::Echo),
            expect(
                "PATCH",
                JOB,
                Reply::Refuse(403, "Forbidden", refusal.into()),
            ),
            status_write(&o),
        ],
    )
    .await;
    assert_eq!(action, Action::requeue(Duration::from_secs(15)));
    let created = condition(last_status(&seen), "Created");
    assert_eq!(
        (&created["status"], &created["reason"]),
        (&json!("False"), &json!("ChildCreateFailed"))
    );
    assert!(
        created["message"]
            .as_str()
            .unwrap()
            .contains("exceeded quota"),
        "{created}"
    );
}

/// Ranks in several pods need the operator's MPI image: without one the job fails naming
/// the setting, and nothing is made (the gang itself: trainjob_gang.rs).
#[tokio::test]
async fn a_job_this_operator_cannot_run_fails_naming_the_engine() {
    for (field, value) in [("numNodes", json!(2)), ("engine", json!("mpi"))] {
        let mut o = trainjob_object(None);
        o["spec"]["trainer"][field] = value;
        let (action, seen) = reconcile(
            &o,
            vec![expect("GET", JOB, Reply::NotFound), status_write(&o)],
        )
        .await;
        assert_eq!(action, Action::await_change());
        let status = last_status(&seen);
        assert_eq!(status["state"], "Failed");
        let failed = condition(status, "Failed");
        assert_eq!(
            (&failed["status"], &failed["reason"]),
            (&json!("True"), &json!("EngineUnavailable"))
        );
        let message = failed["message"].as_str().unwrap();
        assert!(
            message.contains("MPI engine") && message.contains("--mpi-image"),
            "{failed}"
        );
    }
    // A component on someone's disk means nothing in the cluster.
    let mut o = trainjob_object(None);
    o["spec"]["trainer"]["component"] = json!("train-mlp.wasm");
    let (_, seen) = reconcile(
        &o,
        vec![expect("GET", JOB, Reply::NotFound), status_write(&o)],
    )
    .await;
    assert!(last_status(&seen)["message"]
        .as_str()
        .unwrap()
        .contains("trainer.component is `train-mlp.wasm`"));
}

#[tokio::test]
async fn suspend_stops_the_runner_and_resuming_starts_it_again() {
    let mut o = trainjob_object(Some(json!({"state": "Running"})));
    o["spec"]["runPolicy"] = json!({"suspend": true});
    let (action, seen) = reconcile(
        &o,
        vec![expect("DELETE", JOB, Reply::Echo), status_write(&o)],
    )
    .await;
    assert_eq!(action, Action::await_change());
    let status = last_status(&seen);
    assert_eq!(status["state"], "Suspended");
    assert_eq!(condition(status, "Suspended")["status"], "True");
    // Resumed: a new runner, which resumes the run (same run id) from its checkpoint.
    let mut resumed = o.clone();
    resumed["spec"]["runPolicy"] = json!({"suspend": false});
    resumed["status"] = status.clone();
    let (_, seen) = reconcile(
        &resumed,
        vec![
            expect("GET", JOB, Reply::NotFound),
            expect("PATCH", CONFIGMAP, Reply::Echo),
            expect("PATCH", ACCOUNT, Reply::Echo),
            expect("PATCH", BINDING, Reply::Echo),
            expect("PATCH", JOB, Reply::Echo),
            status_write(&resumed),
        ],
    )
    .await;
    let suspended = condition(last_status(&seen), "Suspended");
    assert_eq!(
        (&suspended["status"], &suspended["reason"]),
        (&json!("False"), &json!("Resumed"))
    );
}

fn pods(exit: Option<(i32, &str)>) -> Reply {
    let state = match exit {
        Some((code, m)) => json!({"terminated": {"exitCode": code, "message": m}}),
        None => json!({"running": {}}),
    };
    Reply::Json(
        json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [
        {"metadata": {"name": "iris-runner-x"}, "status": {"containerStatuses": [
            {"name": "runner", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
             "state": state}]}}]}),
    )
}

#[tokio::test]
async fn the_runners_job_becomes_running_complete_or_failed() {
    let o = trainjob_object(Some(json!({"state": "Created"})));
    let (_, seen) = reconcile(
        &o,
        vec![
            expect("GET", JOB, runner(json!({"active": 1}))),
            expect("GET", PODS, pods(None)),
            status_write(&o),
        ],
    )
    .await;
    assert_eq!(last_status(&seen)["state"], "Running");

    let done = json!({"conditions": [{"type": "Complete", "status": "True"}]});
    let (action, seen) = reconcile(
        &o,
        vec![
            expect("GET", JOB, runner(done)),
            expect("GET", PODS, pods(Some((0, "")))),
            status_write(&o),
        ],
    )
    .await;
    assert_eq!(action, Action::await_change());
    let status = last_status(&seen);
    assert_eq!(condition(status, "Complete")["status"], "True");

    let failed = json!({"conditions": [{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}]});
    let log = "train: attempt 4 failed (worker 2 of 4: step trapped: out of memory)\nrun trainjob-iris: FAILED";
    let (_, seen) = reconcile(
        &o,
        vec![
            expect("GET", JOB, runner(failed)),
            expect("GET", PODS, pods(Some((1, log)))),
            status_write(&o),
        ],
    )
    .await;
    let failed = condition(last_status(&seen), "Failed");
    assert_eq!(
        (&failed["status"], &failed["reason"]),
        (&json!("True"), &json!("TrainingFailed"))
    );
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("worker 2 of 4"),
        "{failed}"
    );
    // Ended: nothing more is read or written.
    let ended = trainjob_object(Some(last_status(&seen).clone()));
    let (action, _) = reconcile(&ended, vec![]).await;
    assert_eq!(action, Action::await_change());
}
