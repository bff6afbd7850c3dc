//! `pipeline run --task-pods TEMPLATE`: tasks with resources of their own, and the shards of a
//! parallelFor with `pods`, run as Jobs. The API server here is a stand-in that also plays the
//! kubelet: a Job it is given runs its container's args with this `wasm-run`, in a home of its
//! own, sharing only the artifact store (`file://`, standing in for S3) with the runner, and the
//! Job's pod reports the termination message the container wrote.

use crate::support::*;
use axum::extract::{RawQuery, State};
use axum::routing::{get, patch, post};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex};

/// A Job the stand-in was given: its body, and once its pod ended, (succeeded, message).
type Jobs = Arc<Mutex<BTreeMap<String, (Value, Option<(bool, String)>)>>>;

#[derive(Clone)]
struct Cluster {
    jobs: Jobs,
    scratch: PathBuf,
    /// Reads (lists and watches) of Jobs still to refuse, as an API server whose etcd is
    /// electing a leader would (500: kube's client retries 503s itself).
    broken_reads: Arc<std::sync::atomic::AtomicUsize>,
}

/// Runs a Job's pod: its container's args with this `wasm-run`, the termination log a file.
fn kubelet(cluster: Cluster, name: String, job: Value) {
    let args: Vec<String> = job["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let termination = cluster.scratch.join(format!("{name}.termination-log"));
    let args: Vec<String> = args
        .into_iter()
        .map(|a| {
            if a == "/dev/termination-log" {
                termination.display().to_string()
            } else {
                a
            }
        })
        .collect();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wasm-run"))
        .args(&args)
        .env_remove("WEFT_HOME")
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let message = std::fs::read_to_string(&termination)
        .unwrap_or_else(|_| String::from_utf8_lossy(&out.stderr).into_owned());
    cluster.jobs.lock().unwrap().get_mut(&name).unwrap().1 = Some((out.status.success(), message));
}

async fn create_job(State(c): State<Cluster>, body: axum::body::Bytes) -> axum::response::Response {
    use axum::response::IntoResponse;
    let job: Value = serde_json::from_slice(&body).unwrap();
    let name = job["metadata"]["name"].as_str().unwrap().to_string();
    {
        let mut jobs = c.jobs.lock().unwrap();
        if jobs.contains_key(&name) {
            return (
                axum::http::StatusCode::CONFLICT,
                axum::Json(
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "reason": "AlreadyExists", "code": 409, "message": "exists"}),
                ),
            )
                .into_response();
        }
        jobs.insert(name.clone(), (job.clone(), None));
    }
    let cluster = c.clone();
    let pod = job.clone();
    std::thread::spawn(move || kubelet(cluster, name, pod));
    (axum::http::StatusCode::CREATED, axum::Json(job)).into_response()
}

/// A Job as the API server shows it: its body with the status its pod has reached.
fn job_object(job: &Value, ended: &Option<(bool, String)>) -> Value {
    let mut job = job.clone();
    job["status"] = match ended {
        None => json!({"active": 1}),
        Some((true, _)) => json!({"succeeded": 1}),
        Some((false, _)) => json!({"failed": 1}),
    };
    job["metadata"]["resourceVersion"] = json!(if ended.is_some() { "2" } else { "1" });
    job
}

/// The Job a `fieldSelector=metadata.name=NAME` query names.
fn selected_job(c: &Cluster, query: &str) -> Option<Value> {
    let jobs = c.jobs.lock().unwrap();
    jobs.iter()
        .find(|(name, _)| query.contains(&format!("metadata.name%3D{name}")))
        .map(|(_, (job, ended))| job_object(job, ended))
}

/// Lists the selected Job, or with `watch=true` watches it: one MODIFIED event once its pod
/// ended, after which the watch closes (a client watches again, as after any server timeout).
/// There is no route to read one Job: the runner must watch, not poll.
async fn list_jobs(State(c): State<Cluster>, RawQuery(q): RawQuery) -> axum::response::Response {
    use axum::response::IntoResponse;
    let q = q.unwrap_or_default();
    let refuse = c
        .broken_reads
        .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if refuse {
        return (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": "InternalError", "code": 500, "message": "etcd leader changed"}),
            ),
        )
            .into_response();
    }
    if !q.contains("watch=true") {
        let items: Vec<Value> = selected_job(&c, &q).into_iter().collect();
        return axum::Json(json!({"apiVersion": "batch/v1", "kind": "JobList",
            "metadata": {"resourceVersion": "1"}, "items": items}))
        .into_response();
    }
    let events = futures::stream::unfold(Some((c, q)), |state| async move {
        let (c, q) = state?;
        for _ in 0..500 {
            match selected_job(&c, &q) {
                Some(job) if job["metadata"]["resourceVersion"] == "2" => {
                    let line = format!("{}\n", json!({"type": "MODIFIED", "object": job}));
                    return Some((Ok::<_, std::convert::Infallible>(line), None));
                }
                _ => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
        None
    });
    axum::body::Body::from_stream(events).into_response()
}

async fn list_pods(State(c): State<Cluster>, RawQuery(q): RawQuery) -> axum::Json<Value> {
    let q = q.unwrap_or_default();
    let jobs = c.jobs.lock().unwrap();
    let items: Vec<Value> = jobs
        .iter()
        .filter(|(name, _)| q.contains(&format!("job-name%3D{name}")))
        .filter_map(|(name, (_, ended))| {
            let (ok, message) = ended.as_ref()?;
            Some(json!({"metadata": {"name": format!("{name}-pod"), "labels": {"job-name": name}},
                "status": {"containerStatuses": [{"name": "task", "image": "", "imageID": "",
                    "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": if *ok {0} else {1}, "message": message}}}]}}))
        })
        .collect();
    axum::Json(json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}))
}

fn run_object() -> Value {
    json!({"apiVersion": "weft.dev/v1alpha1", "kind": "PipelineRun",
        "metadata": {"name": "r", "namespace": "ns", "uid": "run-uid"}, "spec": {"pipelineRef": "p"}})
}

/// Starts the stand-in; returns its URL and the Jobs it was given.
fn cluster(s: &Scratch) -> (String, Jobs) {
    cluster_breaking_watches(s, 0)
}

/// [`cluster`], refusing the first `broken` reads of Jobs.
fn cluster_breaking_watches(s: &Scratch, broken: usize) -> (String, Jobs) {
    let c = Cluster {
        jobs: Jobs::default(),
        scratch: s.path(""),
        broken_reads: Arc::new(broken.into()),
    };
    let jobs = c.jobs.clone();
    let app = axum::Router::new()
        .route(
            "/apis/weft.dev/v1alpha1/namespaces/ns/pipelineruns/r",
            get(|| async { axum::Json(run_object()) }),
        )
        .route(
            "/apis/weft.dev/v1alpha1/namespaces/ns/pipelineruns/r/status",
            patch(|body: axum::body::Bytes| async move {
                let body: Value = serde_json::from_slice(&body).unwrap();
                let mut run = run_object();
                run["status"] = body["status"].clone();
                axum::Json(run)
            }),
        )
        .route(
            "/apis/batch/v1/namespaces/ns/jobs",
            post(create_job).get(list_jobs),
        )
        .route("/api/v1/namespaces/ns/pods", get(list_pods))
        .with_state(c);
    let url = serve_in_background(app);
    (url, jobs)
}

/// Runs `pipeline` as the runner would on the cluster: statuses to `ns/r`, task pods from a
/// template whose pods have their own home and share only the artifact store.
fn run_on_cluster(s: &Scratch, url: &str, pipeline: &std::path::Path, args: &[&str]) -> Value {
    let kubeconfig = s.path("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: fake, cluster: {{server: \"{url}\"}}}}]\nusers: [{{name: u, user: {{token: t}}}}]\ncontexts: [{{name: c, context: {{cluster: fake, user: u}}}}]\ncurrent-context: c\n"
        ),
    )
    .unwrap();
    let shared = format!("file://{}", s.path("shared").display());
    let template = s.path("task-pod.json");
    std::fs::write(
        &template,
        json!({"spec": {"containers": [{"name": "task", "image": "wasm-run:test",
            "args": ["--home", s.path("pod-home").display().to_string(), "--artifact-store", shared]}]}})
        .to_string(),
    )
    .unwrap();
    let out = s
        .wasm_run()
        .env("KUBECONFIG", &kubeconfig)
        .args(["--artifact-store", &shared, "pipeline", "run"])
        .arg(pipeline)
        .args(args)
        .args(["--kube-status", "ns/r", "--task-pods"])
        .arg(&template)
        .arg("--json")
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no run summary ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn task<'a>(summary: &'a Value, name: &str) -> &'a Value {
    summary["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no task {name} in {summary}"))
}

#[test]
fn a_task_with_resources_runs_in_a_pod_of_its_own_with_them() {
    let s = Scratch::new();
    let (url, jobs) = cluster(&s);
    let yaml = s.path("iris.yaml");
    let text = example_text("pipeline.yaml").replace(
        "      timeout: 60s\n      memory: 128MiB\n",
        "      timeout: 60s\n      memory: 128MiB\n      resources: {cpu: \"2\", memory: 1Gi, gpu: 1, nodeSelector: {accelerator: h100}}\n",
    );
    assert!(text.contains("gpu: 1"), "the train task gained resources");
    std::fs::write(&yaml, &text).unwrap();
    let summary = run_on_cluster(&s, &url, &yaml, &["--hermetic-seed", "7"]);
    assert_eq!(summary["state"], "SUCCEEDED", "{summary}");

    // One Job, for `train` only, asking for what the task asked for, owned by the run.
    let jobs = jobs.lock().unwrap();
    assert_eq!(jobs.len(), 1, "{:?}", jobs.keys());
    let (job, ended) = jobs.values().next().unwrap();
    assert!(ended.as_ref().unwrap().0);
    assert_eq!(job["metadata"]["labels"]["weft.dev/task"], "train");
    assert_eq!(job["metadata"]["ownerReferences"][0]["uid"], "run-uid");
    assert_eq!(job["spec"]["backoffLimit"], 0);
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["nodeSelector"]["accelerator"], "h100");
    let limits = &pod["containers"][0]["resources"]["limits"];
    assert_eq!(limits["nvidia.com/gpu"], "1");
    assert_eq!(limits["cpu"], "2");
    assert_eq!(limits["memory"], "1Gi");
    drop(jobs);

    // The pod's step produced what the same step produces in-process, where the same file
    // (resources and all) runs every task in the one process.
    let local = Scratch::new();
    std::fs::write(local.path("iris.yaml"), &text).unwrap();
    let out = succeed(
        local
            .wasm_run()
            .args(["pipeline", "run"])
            .arg(local.path("iris.yaml"))
            .args(["--hermetic-seed", "7", "--json"]),
    );
    let here: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        output_digest(&summary, "train", "model"),
        output_digest(&here, "train", "model")
    );
    assert_eq!(task(&summary, "train")["state"], "SUCCEEDED");
}

/// A step that fails in its pod fails its task with the step's own error, is retried by the
/// task's policy (a new pod), and its log comes back to the runner.
#[test]
fn a_step_failing_in_its_pod_is_retried_and_fails_with_its_error_and_log() {
    let s = Scratch::new();
    let (url, jobs) = cluster(&s);
    let yaml = misbehave_pipeline(
        &s,
        "    crash:
      component: m
      params: {mode: {value: trap}}
      resources: {cpu: 500m}
      retry: {limit: 1, backoff: 10ms}
",
    );
    let summary = run_on_cluster(&s, &url, &yaml, &[]);
    assert_eq!(summary["state"], "FAILED", "{summary}");
    let crash = task(&summary, "crash");
    assert_eq!(crash["state"], "FAILED", "{crash}");
    assert!(
        crash["error"]
            .as_str()
            .unwrap()
            .contains("misbehave asked to trap"),
        "{crash}"
    );
    assert_eq!(crash["attempt"], 2, "{crash}");
    assert_eq!(jobs.lock().unwrap().len(), 2, "one pod per attempt");
    let log = succeed(
        s.wasm_run()
            .args(["logs", summary["run_id"].as_str().unwrap(), "crash"]),
    );
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(log.contains("misbehave asked to trap"), "{log}");
}

/// The runner watches its task's Job; a watch the API server breaks (here: refused twice, as
/// while it elects a leader) is watched again, and the task is not failed by the blip.
#[test]
fn a_broken_watch_of_a_task_pod_is_watched_again() {
    let s = Scratch::new();
    let (url, jobs) = cluster_breaking_watches(&s, 2);
    let yaml = misbehave_pipeline(
        &s,
        "    nap:
      component: busy
      params: {ms: {value: 50}}
      resources: {cpu: 500m}
",
    );
    let summary = run_on_cluster(&s, &url, &yaml, &[]);
    assert_eq!(summary["state"], "SUCCEEDED", "{summary}");
    assert_eq!(task(&summary, "nap")["attempt"], 1, "{summary}");
    assert_eq!(jobs.lock().unwrap().len(), 1, "one pod, not a retry");
}

/// A watch that stays broken is the host's failure (exit 3, resumable), named once.
#[test]
fn a_watch_that_stays_broken_fails_the_run_as_the_hosts_failure() {
    let s = Scratch::new();
    let (url, _jobs) = cluster_breaking_watches(&s, usize::MAX);
    let yaml = misbehave_pipeline(
        &s,
        "    nap:
      component: busy
      params: {ms: {value: 50}}
      resources: {cpu: 500m}
",
    );
    let summary = run_on_cluster(&s, &url, &yaml, &[]);
    assert_eq!(summary["state"], "FAILED", "{summary}");
    let error = task(&summary, "nap")["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("failed 6 times in a row; last: etcd leader changed"),
        "{error}"
    );
    assert_eq!(error.matches("etcd leader changed").count(), 1, "{error}");
}

#[test]
fn a_parallel_for_with_pods_is_sharded_across_them() {
    let s = Scratch::new();
    let (url, jobs) = cluster(&s);
    let yaml = misbehave_pipeline(
        &s,
        "    fan:
      component: busy
      parallelFor: {items: {value: [5, 4, 3, 2, 1]}, pods: 2, parallelism: 2}
      params: {ms: {loopItem: .}}
",
    );
    let summary = run_on_cluster(&s, &url, &yaml, &[]);
    assert_eq!(summary["state"], "SUCCEEDED", "{summary}");
    let fan = task(&summary, "fan");
    let outputs: Value = serde_json::from_str(fan["outputs_json"].as_str().unwrap()).unwrap();
    assert_eq!(outputs["busy_ms"]["value"], json!([5, 4, 3, 2, 1]));

    // Two pods: shard 0 ran iterations 0, 2, 4 and shard 1 iterations 1, 3.
    let seen = jobs.lock().unwrap();
    let mut shards: Vec<&str> = seen
        .values()
        .map(|(j, _)| j["metadata"]["labels"]["weft.dev/task"].as_str().unwrap())
        .collect();
    shards.sort();
    assert_eq!(shards, ["fan-shard-0", "fan-shard-1"]);
    drop(seen);
    for i in 0..5 {
        assert_eq!(task(&summary, &format!("fan[{i}]"))["state"], "SUCCEEDED");
    }
    // The fanned-in artifact holds each iteration's output, in order, written in the pods.
    let digest = output_digest(&summary, "fan", "out");
    let dir = s.path("fan-out");
    succeed(
        s.wasm_run()
            .args(["artifacts", "get", &digest, "--to"])
            .arg(&dir),
    );
    for (i, ms) in [5, 4, 3, 2, 1].iter().enumerate() {
        let text = std::fs::read_to_string(dir.join(format!("{i}/busy.txt"))).unwrap();
        assert_eq!(text, format!("fan[{i}] {ms}\n"));
    }

    // Run again: every iteration is a cache hit, so no pod is made.
    let again = run_on_cluster(&s, &url, &yaml, &[]);
    assert_eq!(again["state"], "SUCCEEDED");
    assert_eq!(
        jobs.lock().unwrap().len(),
        2,
        "cached iterations need no pods"
    );
}

/// An iteration that fails in its shard's pod is retried by the task's policy (here in the
/// runner, the task asking for no resources), and fails the loop with its own error.
#[test]
fn an_iteration_failing_in_a_shard_is_retried_by_the_policy() {
    let s = Scratch::new();
    let (url, jobs) = cluster(&s);
    let yaml = misbehave_pipeline(
        &s,
        "    fan:
      component: m
      parallelFor: {items: {value: [busy, fail]}, pods: 2}
      params: {mode: {loopItem: .}, ms: {value: 1}}
      retry: {limit: 1, backoff: 10ms}
",
    );
    let summary = run_on_cluster(&s, &url, &yaml, &[]);
    assert_eq!(summary["state"], "FAILED", "{summary}");
    assert_eq!(task(&summary, "fan[0]")["state"], "SUCCEEDED");
    let failed = task(&summary, "fan[1]");
    assert_eq!(failed["state"], "FAILED", "{failed}");
    assert_eq!(failed["attempt"], 2, "retried once: {failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("asked to fail"),
        "{failed}"
    );
    assert_eq!(jobs.lock().unwrap().len(), 2, "one pod per shard");
}
