//! The TrainJob controller's MPI gang against a scripted API server: the job's ssh keys made
//! once, the headless Service, the worker pods (an Indexed Job running sshd), the launcher
//! only once every worker is ready, the workers released when the gang times out, when the
//! job ends and when it is suspended; and a job the operator is not set up for.

mod trainjob_support;

use kube::runtime::controller::Action;
use serde_json::{json, Value};
use std::time::Duration;
use trainjob_support::*;
use weft_kube_mock::{expect, Expect, Reply, Seen};
use weft_operator::Config;

const SECRETS: &str = "/api/v1/namespaces/team-a/secrets";
const SERVICE: &str = "/api/v1/namespaces/team-a/services/iris-workers";
const SECRET_NAME: &str = "iris-ssh-7a6b5c4d";
const WORKERS: &str = "/apis/batch/v1/namespaces/team-a/jobs/iris-node";

/// 2 nodes of 2 ranks on engine mpi, each node asking for a GPU.
fn gang_object(status: Option<Value>) -> Value {
    let mut o = trainjob_object(status);
    let t = &mut o["spec"]["trainer"];
    t["numNodes"] = json!(2);
    t["numProcPerNode"] = json!(2);
    t["engine"] = json!("mpi");
    o
}

fn gang_config() -> Config {
    Config {
        mpi_image: Some("registry.example/wasm-run:test-mpi".into()),
        ..config()
    }
}

async fn gang_reconcile(object: &Value, script: Vec<Expect>) -> (Action, Vec<Seen>) {
    reconcile_with(gang_config(), object, script).await
}

/// A worker pod: ready, or pending with the scheduler's words.
fn worker_pod(i: u32, ready: bool) -> Value {
    let conditions = match ready {
        true => {
            json!([{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}])
        }
        false => json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                         "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}]),
    };
    json!({"metadata": {"name": format!("iris-node-{i}-x")}, "status": {"conditions": conditions}})
}

fn pod_list(pods: Vec<Value>) -> Reply {
    Reply::Json(json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": pods}))
}

/// The requests of a gang's start up to its workers' readiness: spec, runner account, keys
/// (`keys`: the reply to the Secret's creation), Service, workers (`workers`: the Job that
/// exists, or None: it is made), the worker pods.
fn gang_start(keys: Reply, workers: Option<Value>, pods: Reply) -> Vec<Expect> {
    let mut script = vec![
        expect("GET", JOB, Reply::NotFound),
        expect("PATCH", CONFIGMAP, Reply::Echo),
        expect("PATCH", ACCOUNT, Reply::Echo),
        expect("PATCH", BINDING, Reply::Echo),
        expect("POST", SECRETS, keys),
        expect("PATCH", SERVICE, Reply::Echo),
    ];
    match workers {
        Some(job) => script.push(expect("GET", WORKERS, Reply::Json(job))),
        None => script.extend([
            expect("GET", WORKERS, Reply::NotFound),
            expect("PATCH", WORKERS, Reply::Echo),
        ]),
    }
    script.push(expect("GET", PODS, pods));
    script
}

/// The workers Job as the API server has it: made at `created`, owned by the TrainJob of
/// `owner_uid`.
fn workers_job(created: &str, owner_uid: &str) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": "iris-node", "namespace": NS, "uid": "w-0001",
                        "creationTimestamp": created,
                        "ownerReferences": [{"apiVersion": "weft.dev/v1alpha1", "kind": "TrainJob",
                                             "name": "iris", "uid": owner_uid, "controller": true}]}})
}

const UID: &str = "7a6b5c4d-0000-1111-2222-333344445555";

/// The keys were made by an earlier reconcile: the API server says so.
fn exists() -> Reply {
    Reply::Refuse(
        409,
        "AlreadyExists",
        format!("secrets \"{SECRET_NAME}\" already exists"),
    )
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect()
}

/// The spec ConfigMap's gang files: OpenMPI's hostfile (each worker's DNS name with
/// numProcPerNode slots), sshd's and ssh's configs.
fn assert_spec_files(data: &Value) {
    assert_eq!(
        data["hostfile"],
        "iris-node-0.iris-workers slots=2\niris-node-1.iris-workers slots=2\n"
    );
    assert!(data["sshd_config"]
        .as_str()
        .unwrap()
        .contains("HostKey /etc/weft-ssh/host_ed25519"));
    assert!(data["ssh_config"]
        .as_str()
        .unwrap()
        .contains("StrictHostKeyChecking yes"));
}

/// The keys Secret: made once, owned by the job, named with its uid, OpenSSH's formats.
fn assert_keys(secret: &Value) {
    assert_eq!(secret["metadata"]["name"], SECRET_NAME);
    assert_eq!(secret["metadata"]["ownerReferences"][0]["kind"], "TrainJob");
    let files = secret["stringData"].as_object().unwrap();
    let mut names: Vec<&str> = files.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "authorized_keys",
            "host_ed25519",
            "id_ed25519",
            "known_hosts"
        ]
    );
    assert!(files["id_ed25519"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
}

/// The workers: an Indexed Job of 2 pods in the Service's subdomain, sshd as the pod's user
/// on the MPI image, each asking for the node's resources, with only its keys.
fn assert_workers(workers: &Value) {
    assert_eq!(
        (
            &workers["completionMode"],
            &workers["completions"],
            &workers["parallelism"]
        ),
        (&json!("Indexed"), &json!(2), &json!(2))
    );
    let pod = &workers["template"]["spec"];
    assert_eq!(pod["subdomain"], "iris-workers");
    assert_eq!(
        workers["template"]["metadata"]["labels"]["weft.dev/role"],
        "worker"
    );
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "registry.example/wasm-run:test-mpi");
    assert_eq!(
        strings(&c["command"]),
        ["/usr/sbin/sshd", "-D", "-e", "-f", "/etc/weft/sshd_config"]
    );
    assert_eq!(c["readinessProbe"]["tcpSocket"]["port"], 2222);
    assert_eq!(c["securityContext"]["runAsNonRoot"], true);
    assert_eq!(c["resources"]["limits"]["nvidia.com/gpu"], "1");
    let ssh = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "ssh")
        .unwrap();
    assert_eq!(ssh["secret"]["secretName"], SECRET_NAME);
    // A worker gets the host key and the launcher's public key, never the launcher's key.
    let items: Vec<&Value> = ssh["secret"]["items"].as_array().unwrap().iter().collect();
    assert_eq!(
        items
            .iter()
            .map(|i| i["key"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["host_ed25519", "authorized_keys"]
    );
    assert_eq!(pod["restartPolicy"], "Never");
    assert!(
        c["volumeMounts"].to_string().contains("/dev/shm"),
        "{}",
        c["volumeMounts"]
    );
}

#[tokio::test]
async fn a_gang_makes_its_keys_service_and_workers_then_waits_for_them() {
    let o = gang_object(None);
    let mut script = gang_start(
        Reply::Echo,
        None,
        pod_list(vec![worker_pod(0, true), worker_pod(1, false)]),
    );
    script.push(status_write(&o));
    let (action, seen) = gang_reconcile(&o, script).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(5)));
    let by = |method: &str, path: &str| -> &Seen {
        seen.iter()
            .find(|s| s.method == method && s.path == path)
            .unwrap()
    };
    assert_spec_files(&by("PATCH", CONFIGMAP).body["data"]);
    assert_keys(&by("POST", SECRETS).body);
    // The headless Service, publishing workers before they are ready.
    let svc = &by("PATCH", SERVICE).body["spec"];
    assert_eq!(svc["clusterIP"], "None");
    assert_eq!(svc["publishNotReadyAddresses"], true);
    assert_eq!(svc["selector"]["weft.dev/role"], "worker");
    assert_workers(&by("PATCH", WORKERS).body["spec"]);
    // Only the job's workers are counted.
    let pods = by("GET", PODS);
    assert!(
        pods.query.contains("weft.dev%2Frole%3Dworker"),
        "{}",
        pods.query
    );
    // No launcher yet: the job says what it waits for.
    assert!(!seen.iter().any(|s| s.path == JOB && s.method == "PATCH"));
    let status = last_status(&seen);
    assert_eq!(status["state"], "Created");
    let created = condition(status, "Created");
    let message = created["message"].as_str().unwrap();
    assert!(
        message.starts_with("WaitingForWorkers: 1 of 2 worker pods ready")
            && message.contains("iris-node-1-x: Unschedulable: 0/3 nodes are available"),
        "{created}"
    );
}

#[tokio::test]
async fn the_launcher_starts_once_every_worker_is_ready() {
    let o = gang_object(Some(json!({"state": "Created"})));
    let mut script = gang_start(
        exists(),
        Some(workers_job("2026-12-04T10:00:00Z", UID)),
        pod_list(vec![worker_pod(0, true), worker_pod(1, true)]),
    );
    script.extend([expect("PATCH", JOB, Reply::Echo), status_write(&o)]);
    // The keys exist (the workers read them): theirs stand, and the start goes on.
    let (action, seen) = gang_reconcile(&o, script).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
    let job = &seen.iter().rfind(|s| s.path == JOB).unwrap().body;
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(
        job["spec"]["template"]["metadata"]["labels"]["weft.dev/role"],
        "launcher"
    );
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "registry.example/wasm-run:test-mpi");
    // The launcher's key and the workers' host key to check, nothing else.
    let ssh = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "ssh")
        .unwrap();
    assert_eq!(
        ssh["secret"]["items"].to_string(),
        r#"[{"key":"id_ed25519","path":"id_ed25519"},{"key":"known_hosts","path":"known_hosts"}]"#
    );
    // Only the pods of the workers Job that exists now are counted.
    let pods = seen.iter().find(|s| s.path == PODS).unwrap();
    assert!(
        pods.query
            .contains("batch.kubernetes.io%2Fcontroller-uid%3Dw-0001"),
        "{}",
        pods.query
    );
    let args = strings(&c["args"]);
    let train = args.iter().position(|a| *a == "train").unwrap();
    assert_eq!(
        &args[train..],
        [
            "train",
            "/etc/weft/trainjob.yaml",
            "--run-id",
            "trainjob-iris-7a6b5c4d",
            "--kube-status",
            "team-a/iris",
            "--hostfile",
            "/etc/weft/hostfile"
        ]
    );
    assert!(args.contains(&"--artifact-store"));
    let rsh = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "OMPI_MCA_plm_rsh_args")
        .unwrap();
    assert_eq!(rsh["value"], "-F /etc/weft/ssh_config");
    // The ranks run on the workers: the launcher asks for no GPU.
    assert!(c["resources"].is_null(), "{c}");
    let status = last_status(&seen);
    assert_eq!(status["runner"]["job"], "iris-runner");
}

/// All or none: workers not all ready within scheduleTimeoutSeconds are released (they do
/// not hold nodes for a gang that cannot run) and tried again later, a busy cluster being no
/// verdict; after backoffLimit more tries the job fails with the scheduler's words.
#[tokio::test]
async fn workers_not_ready_in_time_are_released_and_tried_again_then_fail_the_job() {
    let timed_out = |tries: Option<u32>| {
        let mut o = gang_object(Some(json!({"state": "Created", "scheduleAttempts": tries})));
        o["spec"]["runPolicy"] = json!({"scheduleTimeoutSeconds": 60, "backoffLimit": 1});
        let mut script = gang_start(
            exists(),
            Some(workers_job("2026-01-01T00:00:00Z", UID)),
            pod_list(vec![worker_pod(0, true), worker_pod(1, false)]),
        );
        script.extend([
            expect("DELETE", WORKERS, Reply::Echo),
            expect("DELETE", SERVICE, Reply::Echo),
            status_write(&o),
        ]);
        (o, script)
    };
    let (o, script) = timed_out(None);
    let (action, seen) = gang_reconcile(&o, script).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
    let status = last_status(&seen);
    assert_eq!(
        (&status["state"], &status["scheduleAttempts"]),
        (&json!("Created"), &json!(1))
    );
    let created = condition(status, "Created");
    let message = created["message"].as_str().unwrap();
    assert!(
        message.starts_with("GangTimeout: 1 of 2 worker pods ready")
            && message.contains("Insufficient nvidia.com/gpu")
            && message.contains("scheduleTimeoutSeconds 60")
            && message.ends_with("trying again in 30s (try 1 of 2)"),
        "{created}"
    );
    assert_eq!(condition(status, "Failed")["status"], "False");

    let (o, script) = timed_out(Some(1));
    let (action, seen) = gang_reconcile(&o, script).await;
    assert_eq!(action, Action::await_change());
    let status = last_status(&seen);
    assert_eq!(status["state"], "Failed");
    let failed = condition(status, "Failed");
    assert_eq!(
        (&failed["status"], &failed["reason"]),
        (&json!("True"), &json!("GangTimeout"))
    );
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("2 tries (runPolicy.backoffLimit 1)"),
        "{failed}"
    );
}

#[tokio::test]
async fn an_ended_gang_releases_its_workers_and_a_suspended_one_stops_them() {
    let o = gang_object(Some(json!({"state": "Running"})));
    let done = json!({"conditions": [{"type": "Complete", "status": "True"}]});
    let (action, seen) = gang_reconcile(
        &o,
        vec![
            expect("GET", JOB, runner(done)),
            expect("GET", PODS, pod_list(vec![])),
            expect("DELETE", WORKERS, Reply::Echo),
            expect("DELETE", SERVICE, Reply::Echo),
            status_write(&o),
        ],
    )
    .await;
    assert_eq!(action, Action::await_change());
    assert_eq!(last_status(&seen)["state"], "Complete");

    let mut suspended = o.clone();
    suspended["spec"]["runPolicy"] = json!({"suspend": true});
    let (_, seen) = gang_reconcile(
        &suspended,
        vec![
            expect("DELETE", JOB, Reply::Echo),
            expect("DELETE", WORKERS, Reply::Echo),
            expect("DELETE", SERVICE, Reply::Echo),
            status_write(&suspended),
        ],
    )
    .await;
    assert_eq!(last_status(&seen)["state"], "Suspended");
}

/// Ranks in several pods share only the artifact store: an operator without one fails the
/// job naming the setting, and makes nothing.
#[tokio::test]
async fn a_gang_needs_the_operators_artifact_store() {
    let o = gang_object(None);
    let config = Config {
        artifact_store: None,
        ..gang_config()
    };
    let (_, seen) = reconcile_with(
        config,
        &o,
        vec![expect("GET", JOB, Reply::NotFound), status_write(&o)],
    )
    .await;
    let failed = condition(last_status(&seen), "Failed");
    assert_eq!(failed["reason"], "EngineUnavailable");
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("--artifact-store"),
        "{failed}"
    );
}

/// While the launcher runs, a workers Job that is gone (deleted, or failed for good) is made
/// again, so the launcher's retry finds its hosts; one that is there is left alone.
#[tokio::test]
async fn a_running_gang_keeps_its_workers() {
    let o = gang_object(Some(json!({"state": "Running"})));
    let running = || runner(json!({"active": 1}));
    let (action, seen) = gang_reconcile(
        &o,
        vec![
            expect("GET", JOB, running()),
            expect("GET", PODS, pod_list(vec![])),
            expect("PATCH", SERVICE, Reply::Echo),
            expect("GET", WORKERS, Reply::NotFound),
            expect("PATCH", WORKERS, Reply::Echo),
            status_write(&o),
        ],
    )
    .await;
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
    let made = &seen[4].body;
    assert_eq!(made["spec"]["completionMode"], "Indexed");

    let there = workers_job("2026-12-04T10:00:00Z", UID);
    gang_reconcile(
        &o,
        vec![
            expect("GET", JOB, running()),
            expect("GET", PODS, pod_list(vec![])),
            expect("PATCH", SERVICE, Reply::Echo),
            expect("GET", WORKERS, Reply::Json(there)),
            status_write(&o),
        ],
    )
    .await;
}

/// A workers Job that is not this job's (an earlier TrainJob's of the same name, orphaned or
/// not yet collected, or someone else's) is never taken for it: its pods are not counted, and
/// the job waits saying what is in the way.
#[tokio::test]
async fn an_earlier_jobs_workers_are_not_taken_for_this_ones() {
    let o = gang_object(Some(json!({"state": "Created"})));
    let mut script = gang_start(
        exists(),
        Some(workers_job("2026-12-04T10:00:00Z", "0ld-0000")),
        pod_list(vec![]),
    );
    script.pop(); // no pods are listed
    script.push(status_write(&o));
    let (action, seen) = gang_reconcile(&o, script).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(5)));
    let created = condition(last_status(&seen), "Created");
    assert!(
        created["message"]
            .as_str()
            .unwrap()
            .contains("a Job iris-node that is not this TrainJob's is in the way"),
        "{created}"
    );
}

/// The workers' Service and hostnames are named after the job: a name that cannot be a DNS
/// label is refused with the rule, before anything is made.
#[tokio::test]
async fn a_gang_whose_name_cannot_name_hosts_is_refused() {
    let mut o = gang_object(None);
    o["metadata"]["name"] = json!("iris.v2");
    let (c, server) = weft_kube_mock::client(vec![
        expect(
            "GET",
            "/apis/batch/v1/namespaces/team-a/jobs/iris.v2-runner",
            Reply::NotFound,
        ),
        expect(
            "PATCH",
            format!("{TRAINJOBS}/iris.v2/status"),
            Reply::MergeInto(o.clone()),
        ),
    ]);
    let ctx = weft_operator::Context::new(c, Default::default(), gang_config());
    let tj: weft_crd::TrainJob = serde_json::from_value(o).unwrap();
    weft_kube_mock::within(weft_operator::trainjob::reconcile(
        std::sync::Arc::new(tj),
        ctx,
    ))
    .await
    .unwrap();
    let seen = server.finish().await;
    let failed = condition(last_status(&seen), "Failed");
    assert_eq!(failed["reason"], "InvalidSpec");
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("must be a DNS label"),
        "{failed}"
    );
}
