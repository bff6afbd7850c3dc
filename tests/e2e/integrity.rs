//! The artifact store stays true to its digests (issue 13, store integrity): a corrupt stored
//! artifact is never handed to a step or copied out, a run that produces it again repairs it,
//! `artifacts verify [--repair]` finds and fixes the rest, a resumed `parallelFor` keeps what
//! it had finished, and scratch left by killed runs is cleaned up.

use crate::pipelines::{pipeline, run_json, task};
use crate::support::*;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use weft_store::{ArtifactStore, MetadataStore, TaskState};

/// `make` writes `bytes` bytes to its output; `use` reads it as its input `data`.
fn make_and_use(s: &Scratch, bytes: u64) -> PathBuf {
    let text = format!(
        "apiVersion: weft.dev/v1alpha1
kind: Pipeline
metadata: {{name: integrity}}
spec:
  components:
    write:
      source: {MISBEHAVE}
      inputs:
        params:
          mode: {{type: string, default: write}}
          bytes: {{type: int, default: {bytes}}}
      outputs:
        artifacts: {{out: Artifact}}
    read:
      source: {MISBEHAVE}
      inputs:
        params:
          mode: {{type: string, default: echo}}
          text: {{type: string, default: read}}
        artifacts: {{data: Artifact}}
      outputs:
        params: {{echo: string}}
  tasks:
    make: {{component: write}}
    use:
      component: read
      artifacts: {{data: {{task: make, output: out}}}}
"
    );
    let path = s.path("integrity.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn store(s: &Scratch) -> ArtifactStore {
    ArtifactStore::open(&s.path("home/artifacts")).unwrap()
}

/// Changes one byte of the stored artifact's `blob.bin` in place, as bit rot or a stray
/// editor would (the store keeps files read-only; this makes it writable first).
fn damage(s: &Scratch, digest: &str) {
    let file = store(s).path(digest).join("blob.bin");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(&file, bytes).unwrap();
}

fn verify(s: &Scratch, args: &[&str]) -> Run {
    Run(s
        .wasm_run()
        .args(["artifacts", "verify"])
        .args(args)
        .output()
        .unwrap())
}

#[test]
fn a_corrupt_artifact_is_refused_found_and_repaired_by_the_run_that_makes_it_again() {
    let s = Scratch::new();
    let yaml = make_and_use(&s, 64 << 10);
    let first = run_json(&pipeline(&s, &yaml, &[]));
    assert_eq!(first["state"], "SUCCEEDED");
    let digest = output_digest(&first, "make", "out");
    damage(&s, &digest);

    // Never copied out, never handed to a step.
    let (code, err) = fails(
        s.wasm_run()
            .args(["artifacts", "get", &digest, "--to"])
            .arg(s.path("got")),
    );
    assert_ne!(code, Some(0));
    assert!(err.contains("corrupt") && err.contains(&digest), "{err}");
    let found = verify(&s, &[]);
    assert_eq!(found.code(), 1, "{}", found.stdout());
    assert!(
        found.stdout().contains(&format!("CORRUPT  {digest}")),
        "{}",
        found.stdout()
    );

    // --no-cache: `make` produces the same digest again; the good copy replaces the bad one
    // (kept aside in corrupt/), and `use` reads the good one.
    let again = run_json(&pipeline(&s, &yaml, &["--no-cache"]));
    assert_eq!(again["state"], "SUCCEEDED", "{again}");
    assert_eq!(output_digest(&again, "make", "out"), digest);
    assert!(store(&s).verify(&digest).unwrap());
    assert_eq!(
        std::fs::read_dir(s.path("home/artifacts/corrupt"))
            .unwrap()
            .count(),
        1
    );
    let clean = verify(&s, &[]);
    assert_eq!(clean.code(), 0, "{}", clean.stdout());
    succeed(
        s.wasm_run()
            .args(["artifacts", "get", &digest, "--to"])
            .arg(s.path("got")),
    );
}

#[test]
fn verify_repair_moves_damage_aside_and_the_next_run_recomputes_it() {
    let s = Scratch::new();
    // Past the size hashed at every grant: the fingerprint notices the rewrite.
    let yaml = make_and_use(&s, weft_store::FULL_CHECK_BYTES + (1 << 20));
    let first = run_json(&pipeline(&s, &yaml, &[]));
    let digest = output_digest(&first, "make", "out");
    damage(&s, &digest);

    let repaired = verify(&s, &["--repair"]);
    assert_eq!(repaired.code(), 0, "{}", repaired.stdout());
    assert!(
        repaired.stdout().contains(&format!("REPAIRED {digest}")),
        "{}",
        repaired.stdout()
    );
    assert!(!store(&s).contains(&digest));
    let missing = verify(&s, &["--output", "json"]).json();
    assert_eq!(missing["missing"], serde_json::json!([digest]), "{missing}");

    // The cache cannot answer `make` without its artifact: it runs again.
    let again = run_json(&pipeline(&s, &yaml, &[]));
    assert_eq!(task(&again, "make")["state"], "SUCCEEDED", "{again}");
    assert!(store(&s).verify(&digest).unwrap());
    assert_eq!(verify(&s, &[]).code(), 0);
}

#[test]
fn a_damaged_input_is_refused_before_the_step_gets_it() {
    let s = Scratch::new();
    let data = s.path("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("blob.bin"), vec![7u8; 4096]).unwrap();
    let digest = put_artifact(&s, &data);
    let text = std::fs::read_to_string(make_and_use(&s, 1)).unwrap();
    let (head, _) = text.split_once("  tasks:").unwrap();
    let yaml = s.path("given.yaml");
    std::fs::write(
        &yaml,
        format!(
            "{}  tasks:\n    use:\n      component: read\n      artifacts: {{data: {{artifact: given}}}}\n",
            head.replace("spec:\n", &format!("spec:\n  artifacts:\n    given: {{type: Artifact, path: \"{digest}\"}}\n"))
        ),
    )
    .unwrap();
    assert_eq!(run_json(&pipeline(&s, &yaml, &[]))["state"], "SUCCEEDED");
    damage(&s, &digest);
    let run = pipeline(&s, &yaml, &["--no-cache"]);
    assert_ne!(run.code(), 0, "{}", run.stdout());
    assert!(
        run.stderr().contains("corrupt") || run.stdout().contains("corrupt"),
        "{}\n{}",
        run.stdout(),
        run.stderr()
    );
}

/// Tasks of `run` named `name`, as the metadata store has them.
fn recorded(s: &Scratch, run: &str, name: &str) -> Vec<weft_store::TaskRecord> {
    let meta = MetadataStore::open(&s.path("home/metadata.db")).unwrap();
    meta.tasks(run)
        .unwrap()
        .into_iter()
        .filter(|t| t.name == name)
        .collect()
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn scratch_dirs(s: &Scratch) -> Vec<String> {
    std::fs::read_dir(s.path("home/artifacts/tmp"))
        .into_iter()
        .flatten()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_resumed_parallel_for_keeps_its_finished_iterations_and_killed_scratch_is_swept() {
    let s = Scratch::new();
    let yaml = misbehave_pipeline(
        &s,
        "    fan:
      component: busy
      parallelFor: {items: {value: [5, 6, 3000]}, parallelism: 1}
      params: {ms: {loopItem: .}}
",
    );
    let mut child = s
        .wasm_run()
        .args(["pipeline", "run"])
        .arg(&yaml)
        .args(["--run-id", "r1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let state = |name: &str| recorded(&s, "r1", name).first().map(|t| t.state);
    wait_for("fan[2] to run", || {
        std::fs::metadata(s.path("home/metadata.db")).is_ok()
            && state("fan[2]") == Some(TaskState::Running)
            && !scratch_dirs(&s).is_empty()
    });
    let pid = child.id();
    child.kill().unwrap(); // SIGKILL, with fan[2] mid-step
    child.wait().unwrap();
    let before: Vec<_> = (0..2)
        .map(|i| recorded(&s, "r1", &format!("fan[{i}]")))
        .collect();
    assert!(
        scratch_dirs(&s)
            .iter()
            .any(|d| d.starts_with(&format!("out-{pid}-"))),
        "the killed run's scratch: {:?}",
        scratch_dirs(&s)
    );

    // The finished iterations are not run again (nor answered by the cache).
    let resumed = Run(s
        .wasm_run()
        .args(["pipeline", "resume", "r1", "--json"])
        .output()
        .unwrap());
    assert_eq!(resumed.code(), 0, "{}", resumed.stderr());
    let summary = run_json(&resumed);
    assert_eq!(summary["state"], "SUCCEEDED");
    for (i, was) in before.iter().enumerate() {
        let name = format!("fan[{i}]");
        let now = recorded(&s, "r1", &name);
        assert_eq!(now.len(), 1, "{name} recorded once");
        assert_eq!(
            now[0].state,
            TaskState::Succeeded,
            "{name} still SUCCEEDED, not SKIPPED"
        );
        assert_eq!(
            now[0].finished_at, was[0].finished_at,
            "{name} was not run again"
        );
        assert_eq!(now[0].cached_from, None);
        let outputs = summary["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["task"] == name.as_str() && e["direction"] == "output")
            .count();
        assert_eq!(outputs, 1, "{name}'s output recorded once");
    }
    assert_eq!(
        recorded(&s, "r1", "fan")[0]
            .outputs_json
            .as_deref()
            .map(|j| j.contains("[5,6,3000]")),
        Some(true)
    );
    // The killed process's scratch is gone; nothing of the finished run is left either.
    assert!(scratch_dirs(&s).is_empty(), "{:?}", scratch_dirs(&s));
}

#[test]
fn scratch_of_a_live_process_is_kept_and_of_a_dead_one_removed() {
    let s = Scratch::new();
    succeed(s.wasm_run().args(["artifacts", "verify"]));
    let tmp = s.path("home/artifacts/tmp");
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let live = std::process::id();
    for name in [
        format!("out-{dead}-abc"),
        format!("out-{live}-abc"),
        "unrelated".into(),
    ] {
        std::fs::create_dir_all(tmp.join(&name).join("deep")).unwrap();
    }
    succeed(s.wasm_run().args(["artifacts", "verify"]));
    let mut left = scratch_dirs(&s);
    left.sort();
    assert_eq!(
        left,
        vec![format!("out-{live}-abc"), "unrelated".to_string()]
    );
}

/// (The held run's step lasts 10 s: room for the two refused commands on a loaded machine.)
#[test]
fn a_run_has_one_executor_at_a_time() {
    let s = Scratch::new();
    let yaml = misbehave_pipeline(
        &s,
        "    slow:
      component: busy
      params: {ms: {value: 10000}}
",
    );
    let mut first = s
        .wasm_run()
        .args(["pipeline", "run"])
        .arg(&yaml)
        .args(["--run-id", "one"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("slow to run", || {
        std::fs::metadata(s.path("home/metadata.db")).is_ok()
            && recorded(&s, "one", "slow").first().map(|t| t.state) == Some(TaskState::Running)
    });
    let holder = format!("being executed by pid {}", first.id());
    // A second resume, and the same `run --run-id` again (a runner restarted too early).
    for args in [
        vec!["pipeline".to_string(), "resume".into(), "one".into()],
        vec![
            "pipeline".into(),
            "run".into(),
            yaml.display().to_string(),
            "--run-id".into(),
            "one".into(),
        ],
    ] {
        let (code, err) = fails(s.wasm_run().args(&args));
        assert!(err.contains(&holder), "{args:?}: {err}");
        assert_eq!(
            code,
            Some(3),
            "{args:?}: a held run is worth retrying later: {err}"
        );
    }
    assert!(first.wait().unwrap().success());
    assert_eq!(recorded(&s, "one", "slow").len(), 1);
    assert_eq!(recorded(&s, "one", "slow")[0].attempt, 1, "ran once");
}

/// The artifact store failing under a task is the host's failure, not the run's verdict: the
/// run is recorded as FAILED with that cause (never left RUNNING), `wasm-run` exits 3 (which
/// the operator restarts), and once the store is well `pipeline resume` finishes the run.
#[test]
fn a_store_failure_under_a_task_exits_3_and_the_run_resumes_when_the_store_is_back() {
    let chain = "    make:
      component: busy
      params: {ms: {value: 1}}
";
    // The digest `make` will produce, to block its upload path in the backend.
    let probe = Scratch::new();
    let probed = run_json(&pipeline(&probe, &misbehave_pipeline(&probe, chain), &[]));
    let digest = output_digest(&probed, "make", "out");
    let hex = digest.trim_start_matches("sha256:");

    let s = Scratch::new();
    let yaml = misbehave_pipeline(&s, chain);
    let remote = s.path("remote");
    std::fs::create_dir(&remote).unwrap();
    std::fs::write(
        remote.join(hex),
        b"a file where the upload needs a directory",
    )
    .unwrap();
    let with_remote = |cmd: &mut Command| {
        cmd.env(
            "WEFT_ARTIFACT_STORE",
            format!("file://{}", remote.display()),
        );
    };
    let mut run = s.wasm_run();
    with_remote(
        run.args(["pipeline", "run"])
            .arg(&yaml)
            .args(["--run-id", "h"]),
    );
    let (code, err) = fails(&mut run);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("pipeline resume h"), "{err}");
    let meta = MetadataStore::open(&s.path("home/metadata.db")).unwrap();
    let record = meta.run("h").unwrap();
    assert_eq!(record.state, "FAILED");
    assert!(
        record
            .error
            .as_deref()
            .unwrap_or("")
            .contains("the host failed"),
        "{record:?}"
    );

    std::fs::remove_file(remote.join(hex)).unwrap();
    let mut resume = s.wasm_run();
    with_remote(resume.args(["pipeline", "resume", "h", "--json"]));
    let resumed = Run(resume.output().unwrap());
    assert_eq!(resumed.code(), 0, "{}", resumed.stderr());
    assert_eq!(run_json(&resumed)["state"], "SUCCEEDED");
}

fn replay_json(s: &Scratch, run: &str) -> serde_json::Value {
    let replay = Run(s
        .wasm_run()
        .args(["pipeline", "replay", run, "--json"])
        .output()
        .unwrap());
    assert!(matches!(replay.code(), 0 | 1), "{}", replay.stderr());
    run_json(&replay)
}

/// Replay hashes what it produces and reads verified inputs: a stored output damaged on disk
/// is reported and replaced (and does not derail the tasks after it); a genuine divergence is
/// pinned on the first task that diverged, not on those downstream.
#[test]
fn replay_reports_damage_and_the_first_divergent_task() {
    let s = Scratch::new();
    let yaml = crate::pipelines::iris_yaml(&s);
    let first = run_json(&pipeline(
        &s,
        &yaml,
        &["--hermetic-seed", "5", "--run-id", "iris"],
    ));
    assert_eq!(first["state"], "SUCCEEDED");

    // Damage split's `train` in the store: a digit changed, still a well-formed CSV.
    let train = output_digest(&first, "split", "train");
    let dir = store(&s).path(&train);
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let at = text.find(|c: char| c.is_ascii_digit() && c != '9').unwrap();
    let mut bytes = text.into_bytes();
    bytes[at] += 1;
    std::fs::write(&file, bytes).unwrap();

    let report = replay_json(&s, "iris");
    assert_eq!(
        report["damaged_originals"],
        serde_json::json!([train]),
        "{report}"
    );
    assert_eq!(
        report["first_divergence"],
        serde_json::Value::Null,
        "{report}"
    );
    assert!(
        store(&s).verify(&train).unwrap(),
        "the replay replaced the damaged copy"
    );

    // Now a real divergence: the original run recorded another digest for split's `test` (its
    // `train`'s). Everything downstream still matches, so split alone is to blame.
    rusqlite::Connection::open(s.path("home/metadata.db"))
        .unwrap()
        .execute(
            "UPDATE events SET digest = ?1 WHERE run_id = 'iris' AND task = 'split' AND name = 'test'",
            [&train],
        )
        .unwrap();
    let report = replay_json(&s, "iris");
    assert_eq!(report["first_divergence"], "split", "{report}");
}

/// Resume reads what finished tasks produced; recorded outputs that do not parse are an error
/// naming the task, not an empty set of outputs handed downstream.
#[test]
fn resume_refuses_recorded_outputs_it_cannot_read() {
    let s = Scratch::new();
    let yaml = misbehave_pipeline(
        &s,
        "    first:
      component: busy
      params: {ms: {value: 1}}
    second:
      component: m
      params: {mode: {value: fail}}
      after: [first]
",
    );
    let failed = pipeline(&s, &yaml, &["--run-id", "r"]);
    assert_eq!(failed.code(), 1, "{}", failed.stderr());
    rusqlite::Connection::open(s.path("home/metadata.db"))
        .unwrap()
        .execute(
            "UPDATE tasks SET outputs_json = '{not json' WHERE run_id = 'r' AND name = 'first'",
            [],
        )
        .unwrap();
    let (code, err) = fails(s.wasm_run().args(["pipeline", "resume", "r"]));
    assert_ne!(code, Some(0));
    assert!(
        err.contains("task `first`") && err.contains("do not parse"),
        "{err}"
    );
}

/// Unmounts the small filesystem a test mounted, whatever the test's outcome.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A step that fails because the store's disk is full fails as the host's failure: not
/// retried as if its code were at fault, the run recorded FAILED with the cause, exit 3 (which
/// the operator restarts). The home lives on an 8 MiB tmpfs; the step writes 32 MiB.
#[test]
fn a_full_disk_under_a_step_is_the_hosts_failure_not_the_steps() {
    let s = Scratch::new();
    let small = s.path("small");
    std::fs::create_dir(&small).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&small)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|st| st.success());
    if !mounted {
        tool_missing("could not mount a small tmpfs (needs root): the disk-full test did not run");
        return;
    }
    let _unmount = Unmount(small.clone());
    let text = std::fs::read_to_string(make_and_use(&s, 32 << 20))
        .unwrap()
        .replace(
            "    make: {component: write}",
            "    make:\n      component: write\n      retry: {limit: 2, backoff: 10ms}",
        );
    let yaml = s.path("full.yaml");
    std::fs::write(&yaml, text).unwrap();
    let out = s
        .wasm_run()
        .env("WEFT_HOME", small.join("home"))
        .args(["pipeline", "run"])
        .arg(&yaml)
        .args(["--run-id", "full"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("disk is full"), "{err}");
    let meta = MetadataStore::open(&small.join("home/metadata.db")).unwrap();
    assert_eq!(meta.run("full").unwrap().state, "FAILED");
    let make = meta
        .tasks("full")
        .unwrap()
        .into_iter()
        .find(|t| t.name == "make")
        .unwrap();
    assert_eq!(make.attempt, 1, "not retried as the step's failure");
}
