//! `wasm-run train`: a TrainJob as a gang of workers (collectives in host memory), recorded as
//! a run; a worker that fails restarts the gang from its checkpoint, a killed `wasm-run`
//! resumes from it, and either way the model is the one an uninterrupted run makes, bit for
//! bit; bad specs fail clearly.

use crate::support::*;
use std::time::{Duration, Instant};

/// A TrainJob of the iris MLP with `extra` lines under `params`, and `spec` lines appended.
pub(crate) fn job(s: &Scratch, name: &str, params: &str, spec: &str) -> std::path::PathBuf {
    let file = s.path(&format!("{name}.yaml"));
    let text = format!(
        "apiVersion: weft.dev/v1alpha1
kind: TrainJob
metadata: {{name: {name}}}
spec:
  trainer:
    component: {TRAIN_MLP}
    params: {{label: species, learning_rate: 0.05{params}}}
    numProcPerNode: 4
  initializer:
    dataset: {{path: {}}}
  checkpoint: {{everySteps: 20}}
{spec}",
        repo_file("examples/data/iris.csv").display()
    );
    std::fs::write(&file, text).unwrap();
    file
}

pub(crate) fn train(s: &Scratch, file: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let out = succeed(s.wasm_run().arg("train").arg(file).args(args).arg("--json"));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `out`, a `train --json` whose `worker` failed at epoch 50 and was retried: the retry
/// restored the epoch-40 checkpoint and ended with `whole`'s model, bit for bit.
pub(crate) fn assert_restarted_from_checkpoint(
    s: &Scratch,
    out: &std::process::Output,
    worker: &str,
    whole: &serde_json::Value,
) {
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains(&format!("attempt 1 failed ({worker}:"))
            && log.contains("fault injected at epoch 50"),
        "{log}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        model(&summary),
        model(whole),
        "the restarted run's model differs"
    );
    let run = summary["run_id"].as_str().unwrap();
    let attempt2 =
        std::fs::read_to_string(s.path(&format!("home/logs/{run}/train.attempt-2.log"))).unwrap();
    assert!(
        attempt2.contains("restored the checkpoint of epoch 40"),
        "{attempt2}"
    );
}

pub(crate) fn model(summary: &serde_json::Value) -> String {
    output_digest(summary, "train", "model")
}

pub(crate) fn losses(summary: &serde_json::Value, name: &str) -> Vec<(u64, f64)> {
    summary["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["name"] == name)
        .map(|m| (m["step"].as_u64().unwrap(), m["value"].as_f64().unwrap()))
        .collect()
}

#[test]
fn a_train_job_runs_its_workers_as_a_gang_and_records_the_run() {
    let s = Scratch::new();
    let file = job(&s, "iris", ", epochs: 100, optimizer: sgd", "");
    let out = succeed(
        s.wasm_run()
            .arg("train")
            .arg(&file)
            .args(["--workers", "2", "--json"]),
    );
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(progress.contains("step 90/100  loss "), "{progress}");
    assert!(progress.contains("2 workers"), "{progress}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["state"], "SUCCEEDED", "{summary}");
    // The loss falls; rank 1's series is kept beside rank 0's (the same, all-reduced).
    let loss = losses(&summary, "loss");
    assert!(
        loss.len() >= 10 && loss.last().unwrap().1 < loss[0].1 * 0.3,
        "{loss:?}"
    );
    assert_eq!(losses(&summary, "rank-1/loss"), loss);
    // Lineage: the dataset went in, the model came out.
    let events = summary["artifacts"].as_array().unwrap();
    assert!(events
        .iter()
        .any(|e| e["name"] == "train" && e["direction"] == "input"));
    assert!(model(&summary).starts_with("sha256:"));
    let runs = succeed(s.wasm_run().args(["runs", "list"]));
    assert!(String::from_utf8_lossy(&runs.stdout).contains("iris"));
    // Another number of workers adds the floats up otherwise: not the cached run's outputs.
    let four = train(&s, &file, &["--workers", "4"]);
    assert!(
        !losses(&four, "rank-3/loss").is_empty(),
        "a cache hit: {four}"
    );
}

/// A worker that traps mid-job fails the gang; the retry restarts all four from the epoch-40
/// checkpoint (parameters and Adam's moments), and the model is the uninterrupted run's.
#[test]
fn a_failed_worker_restarts_the_gang_from_the_checkpoint_and_ends_where_an_uninterrupted_run_does()
{
    let s = Scratch::new();
    let whole = train(&s, &job(&s, "whole", ", epochs: 120", ""), &[]);
    let failing = job(
        &s,
        "failing",
        ", epochs: 120, fail_at_epoch: 50, fail_rank: 2",
        "",
    );
    let out = succeed(s.wasm_run().arg("train").arg(&failing).arg("--json"));
    assert_restarted_from_checkpoint(&s, &out, "worker 2 of 4", &whole);
}

/// `activeDeadlineSeconds` bounds the whole job: the first attempt's workers stop at it, and the
/// restart after it does not start.
#[test]
fn the_active_deadline_counts_across_restarts() {
    let s = Scratch::new();
    let file = job(
        &s,
        "late",
        ", epochs: 1000000",
        "  runPolicy: {backoffLimit: 2, activeDeadlineSeconds: 2}\n",
    );
    let started = Instant::now();
    let (code, err) = fails(s.wasm_run().arg("train").arg(&file));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("attempt 1 failed (worker "), "{err}");
    assert!(
        err.contains("activeDeadlineSeconds (2 s) has passed"),
        "{err}"
    );
    assert!(!err.contains("attempt 3"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(60), "{err}");
}

/// A run that failed (no restarts left) is finished by `train resume`, from its checkpoint.
#[test]
fn train_resume_finishes_a_failed_run_from_its_checkpoint() {
    let s = Scratch::new();
    let whole = train(&s, &job(&s, "whole", ", epochs: 120", ""), &[]);
    let file = job(
        &s,
        "once",
        ", epochs: 120, fail_at_epoch: 50",
        "  runPolicy: {backoffLimit: 0}\n",
    );
    let (code, err) = fails(
        s.wasm_run()
            .arg("train")
            .arg(&file)
            .args(["--run-id", "r1"]),
    );
    assert_eq!(code, Some(1), "{err}");
    let out = succeed(s.wasm_run().args(["train", "resume", "r1", "--json"]));
    let resumed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(resumed["state"], "SUCCEEDED");
    assert_eq!(model(&resumed), model(&whole));
}

/// Past its backoffLimit the job fails, naming the worker.
#[test]
fn a_job_that_keeps_failing_stops_at_its_backoff_limit() {
    let s = Scratch::new();
    // A fault injected fails the first attempt only; a bad parameter fails every one.
    let file = job(
        &s,
        "broken",
        ", optimizer: lbfgs",
        "  runPolicy: {backoffLimit: 1}\n",
    );
    let (code, err) = fails(s.wasm_run().arg("train").arg(&file));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("attempt 1 failed (worker 0 of 4: "), "{err}");
    assert!(
        err.contains("`optimizer` must be adam or sgd, got `lbfgs`"),
        "{err}"
    );
    assert!(!err.contains("attempt 3"), "{err}");
}

/// `wasm-run` killed mid-job: run again with its run id (a restarted runner pod), the gang
/// restarts from the latest checkpoint and ends with the model an uninterrupted run makes.
#[test]
fn a_killed_train_resumes_from_its_checkpoint() {
    let s = Scratch::new();
    let file = job(&s, "long", ", epochs: 1500", "");
    let mut child = s
        .wasm_run()
        .arg("train")
        .arg(&file)
        .args(["--run-id", "killed"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pointer = s.path("home/logs/killed/train.checkpoint.json");
    let started = Instant::now();
    while !std::fs::read_to_string(&pointer).is_ok_and(|t| !t.contains("\"step\":20,")) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no checkpoint came"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the job ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&pointer).unwrap()).unwrap();
    let step = saved["step"].as_u64().unwrap();
    assert!((40..1500).contains(&step), "{saved}");
    // As a restarted runner pod does: the same file and run id resume the run.
    let out = succeed(
        s.wasm_run()
            .arg("train")
            .arg(&file)
            .args(["--run-id", "killed", "--json"]),
    );
    let resumed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(resumed["state"], "SUCCEEDED");
    let log = std::fs::read_to_string(s.path("home/logs/killed/train.log")).unwrap();
    assert!(log.contains("restored the checkpoint of epoch "), "{log}");
    let whole = train(&s, &job(&s, "uninterrupted", ", epochs: 1500", ""), &[]);
    assert_eq!(model(&resumed), model(&whole));
}

#[test]
fn bad_train_jobs_fail_clearly_and_run_nothing() {
    let s = Scratch::new();
    let cases: [(&str, &str, &[&str], &str); 6] = [
        (
            "numProcPerNode: 0",
            "",
            &[],
            ":8:21: numProcPerNode must be at least 1",
        ),
        (
            "engine: nccl\n    resourcesPerNode: {gpu: 1}",
            "",
            &[],
            // Built with NCCL (as CI builds it), this machine has no GPU for it.
            if cfg!(feature = "nccl") {
                "engine nccl: no CUDA driver (libcuda.so) on this machine"
            } else {
                "engine nccl is not in this build"
            },
        ),
        (
            "engine: nccl",
            "",
            &[],
            "resourcesPerNode.gpu must be at least 1",
        ),
        (
            "numNodes: 2\n    engine: local",
            "",
            &[],
            "engine local runs every worker in one process",
        ),
        (
            "numProcPerNode: 4",
            "",
            &["--workers", "0"],
            "--workers must be at least 1",
        ),
        (
            "numProcPerNode: 4",
            "  runPolicy: {suspend: true}\n",
            &[],
            "the job is suspended",
        ),
    ];
    for (i, (trainer, spec, args, wanted)) in cases.into_iter().enumerate() {
        let file = job(&s, &format!("bad-{i}"), "", spec);
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, text.replace("numProcPerNode: 4", trainer)).unwrap();
        let (code, err) = fails(s.wasm_run().arg("train").arg(&file).args(args));
        assert_eq!(code, Some(2), "{trainer}: {err}");
        assert!(err.contains(wanted), "{trainer}: {err}");
        assert!(
            err.contains(&file.display().to_string()) || !wanted.starts_with(':'),
            "{err}"
        );
    }
    let runs = succeed(s.wasm_run().args(["runs", "list"]));
    assert!(!String::from_utf8_lossy(&runs.stdout).contains("bad-"));
}

/// Outside a TrainJob a component is rank 0 of 1, and a collective is an error, not a wait.
#[test]
fn a_collective_called_from_wasm_run_run_is_not_in_a_job() {
    let s = Scratch::new();
    let run = s.run(COLLECTIVE_PROBE, &["-p", "mode=barrier"]);
    assert_ne!(run.code(), 0);
    assert!(run.failure().contains("not-in-job"), "{}", run.failure());
}

/// A gang is a pipeline task like any other (what a TrainJob is inside a pipeline): fed by the
/// tasks before it, its outputs (rank 0's model and parameters) are the task's.
#[test]
fn a_gang_task_in_a_pipeline_trains_on_its_upstream_outputs() {
    let s = Scratch::new();
    let text = example_text("mlp.yaml").replace(
        "      timeout: 60s",
        "      timeout: 60s\n      gang: {workers: 2, checkpointEvery: 50}",
    );
    assert!(
        text.contains("gang: {workers: 2"),
        "the example changed: {text}"
    );
    let file = s.path("mlp-gang.yaml");
    std::fs::write(&file, text).unwrap();
    let out = succeed(
        s.wasm_run()
            .args(["pipeline", "run"])
            .arg(&file)
            .arg("--json"),
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["state"], "SUCCEEDED", "{summary}");
    let train = summary["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "train")
        .unwrap();
    let outputs: serde_json::Value =
        serde_json::from_str(train["outputs_json"].as_str().unwrap()).unwrap();
    assert_eq!(outputs["backend"]["value"], "cpu", "{outputs}");
    assert!(
        outputs["accuracy"]["value"].as_f64().unwrap() > 0.8,
        "{outputs}"
    );
    assert!(output_digest(&summary, "train", "model").starts_with("sha256:"));
    assert!(!losses(&summary, "rank-1/loss").is_empty());
}
