//! `wasm-run train` with engine mpi: the workers are processes of one MPI job started by
//! `mpirun` (OpenMPI from Debian), each `wasm-run task exec ORDER --mpi`, the collectives
//! OpenMPI's own. They train the model the threads train, report their progress through the
//! runner, and a worker that fails restarts the job from its checkpoint. With `CI` set, a
//! wasm-run built without the `mpi` feature, or no mpirun, fails these tests.

use crate::support::*;
use crate::train::{assert_restarted_from_checkpoint, job, losses, model, train};

/// The iris TrainJob on `workers` workers of `engine`; None (the test does not run) where
/// this wasm-run has no MPI and `CI` is not set.
fn mpi_job(
    s: &Scratch,
    name: &str,
    workers: u32,
    engine: &str,
    params: &str,
) -> Option<std::path::PathBuf> {
    let file = job(s, name, params, "");
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "numProcPerNode: 4",
        &format!("numProcPerNode: {workers}\n    engine: {engine}"),
    );
    std::fs::write(&file, text).unwrap();
    mpi_ready(s, &file).then_some(file)
}

/// Whether this wasm-run can run the engine mpi job `file` here (built with `mpi`, mpirun
/// present); outside CI a test without them does not run, in CI it fails.
fn mpi_ready(s: &Scratch, file: &std::path::Path) -> bool {
    let out = s
        .wasm_run()
        .arg("train")
        .arg(file)
        .arg("--validate")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("engine mpi is not in this build") {
        tool_missing("wasm-run was built without the `mpi` feature: engine mpi not tested");
        return false;
    }
    assert!(out.status.success(), "{err}");
    if !std::path::Path::new("/usr/bin/mpirun").exists()
        && std::env::var_os("WEFT_MPIRUN").is_none()
    {
        tool_missing(
            "mpirun not found (cargo xtask test installs openmpi-bin): engine mpi not tested",
        );
        return false;
    }
    true
}

/// The examples as the README runs them: `iris-mlp.yaml` on 2 and 4 workers on threads, and
/// `iris-mlp-mpi.yaml`, 2 nodes of 2 processes under mpirun; each trains the iris MLP to a
/// loss a good model has.
#[test]
fn the_example_train_jobs_train_on_2_and_4_workers() {
    let s = Scratch::new();
    let final_loss = |summary: &serde_json::Value| {
        assert_eq!(summary["state"], "SUCCEEDED", "{summary}");
        losses(summary, "loss").last().unwrap().1
    };
    let threads = repo_file("examples/train/iris-mlp.yaml");
    for workers in ["2", "4"] {
        let loss = final_loss(&train(&s, &threads, &["--workers", workers]));
        assert!(loss < 0.1, "{workers} workers: final loss {loss}");
    }
    let mpi = repo_file("examples/train/iris-mlp-mpi.yaml");
    if !mpi_ready(&s, &mpi) {
        return;
    }
    let summary = train(&s, &mpi, &[]);
    let loss = final_loss(&summary);
    assert!(loss < 0.1, "4 MPI ranks: final loss {loss}");
    assert!(!losses(&summary, "rank-3/loss").is_empty(), "{summary}");
}

/// Two ranks add their gradients up in the one order there is, so the MPI job's model is the
/// threads' bit for bit; the runner shows each step's progress as the ranks report it, and
/// keeps rank 1's series beside rank 0's.
#[test]
fn an_mpi_gang_trains_the_model_the_threads_train() {
    let s = Scratch::new();
    let params = ", epochs: 60, optimizer: sgd";
    let Some(file) = mpi_job(&s, "over-mpi", 2, "mpi", params) else {
        return;
    };
    let out = succeed(s.wasm_run().arg("train").arg(&file).arg("--json"));
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(progress.contains("processes under mpirun"), "{progress}");
    assert!(progress.contains("step 50/60  loss "), "{progress}");
    let over_mpi: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(over_mpi["state"], "SUCCEEDED", "{over_mpi}");
    let local = mpi_job(&s, "threads", 2, "local", params).unwrap();
    let threads = train(&s, &local, &[]);
    assert_eq!(model(&over_mpi), model(&threads), "the models differ");
    assert_eq!(losses(&over_mpi, "loss"), losses(&threads, "loss"));
    assert_eq!(losses(&over_mpi, "rank-1/loss"), losses(&over_mpi, "loss"));
    // Each rank's log is kept where the task's are.
    let run = over_mpi["run_id"].as_str().unwrap();
    let rank1 = s.path(&format!("home/logs/{run}/train.rank-1.log"));
    assert!(rank1.exists(), "{}", rank1.display());
    // Ranks in processes of their own ran the gang's work order (threads never write one).
    let orders: Vec<_> = std::fs::read_dir(s.path("home/logs/orders"))
        .expect("the ranks' work order logs")
        .map(|e| e.unwrap().path().join("train.rank-1.log"))
        .filter(|p| p.exists())
        .collect();
    assert_eq!(orders.len(), 1, "{orders:?}");
}

/// Four ranks reduce in OpenMPI's order, not the threads': the same training within float
/// rounding.
#[test]
fn four_mpi_ranks_train_as_four_threads_do_within_rounding() {
    let s = Scratch::new();
    let params = ", epochs: 40, optimizer: sgd";
    let Some(file) = mpi_job(&s, "four", 4, "mpi", params) else {
        return;
    };
    let over_mpi = train(&s, &file, &[]);
    let threads = train(
        &s,
        &mpi_job(&s, "four-threads", 4, "local", params).unwrap(),
        &[],
    );
    let (a, b) = (losses(&over_mpi, "loss"), losses(&threads, "loss"));
    assert_eq!(a.len(), b.len());
    for ((sa, la), (sb, lb)) in a.iter().zip(&b) {
        assert_eq!(sa, sb);
        assert!((la - lb).abs() <= 1e-4 * lb.abs().max(1.0), "{a:?}\n{b:?}");
    }
    assert!(!losses(&over_mpi, "rank-3/loss").is_empty(), "{over_mpi}");
}

/// A rank that traps mid-job ends the MPI job at once (its peers are not left waiting in a
/// collective); the retry starts the job again from the epoch-40 checkpoint, and the model is
/// the uninterrupted job's.
#[test]
fn a_failed_mpi_rank_restarts_the_job_from_its_checkpoint() {
    let s = Scratch::new();
    let Some(whole) = mpi_job(&s, "whole", 2, "mpi", ", epochs: 120") else {
        return;
    };
    let whole = train(&s, &whole, &[]);
    let failing = mpi_job(
        &s,
        "failing",
        2,
        "mpi",
        ", epochs: 120, fail_at_epoch: 50, fail_rank: 1",
    )
    .unwrap();
    let out = succeed(s.wasm_run().arg("train").arg(&failing).arg("--json"));
    assert_restarted_from_checkpoint(&s, &out, "worker 1 of 2", &whole);
}

/// `--hostfile`: the ranks start on the hosts OpenMPI's hostfile names, within its slots (here
/// this machine as `localhost`). Too few slots fails the job with mpirun's reason; a hostfile
/// that is missing or names no host is refused before anything runs.
#[test]
fn train_on_the_hosts_of_a_hostfile() {
    let s = Scratch::new();
    let Some(file) = mpi_job(&s, "hosts", 2, "mpi", ", epochs: 20") else {
        return;
    };
    let hosts = s.path("hosts");
    std::fs::write(&hosts, "# this machine\nlocalhost slots=2\n").unwrap();
    let summary = train(&s, &file, &["--hostfile", hosts.to_str().unwrap()]);
    assert_eq!(summary["state"], "SUCCEEDED", "{summary}");
    assert!(!losses(&summary, "rank-1/loss").is_empty(), "{summary}");

    std::fs::write(&hosts, "localhost slots=1\n").unwrap();
    // Other epochs than the first job's: not a cache hit of it.
    let too_few = mpi_job(&s, "too-few", 2, "mpi", ", epochs: 21");
    let out = s
        .wasm_run()
        .args(["train", too_few.unwrap().to_str().unwrap()])
        .args(["--hostfile", hosts.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("not enough slots"), "{err}");
    assert!(err.contains("the MPI job of 2 workers ended"), "{err}");

    for (text, why) in [
        (None, "No such file"),
        (Some("# nobody\n\n"), "names no host"),
    ] {
        let bad = s.path("bad-hosts");
        let _ = std::fs::remove_file(&bad);
        if let Some(t) = text {
            std::fs::write(&bad, t).unwrap();
        }
        let out = s
            .wasm_run()
            .args(["train", file.to_str().unwrap()])
            .args(["--hostfile", bad.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(err.contains("--hostfile") && err.contains(why), "{err}");
    }
}
