//! Pipelines through `wasm-run`: the iris example, caching, validation, conditions, retries,
//! parallelism, crash recovery and cancellation.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use weft_store::{ArtifactStore, MetadataStore, TaskState};

/// The iris example, with its component paths pointed at this build's components.
pub(crate) fn iris_yaml(s: &Scratch) -> PathBuf {
    let path = s.path("iris.yaml");
    std::fs::write(&path, example_text("pipeline.yaml")).unwrap();
    path
}

pub(crate) fn pipeline(s: &Scratch, file: &Path, args: &[&str]) -> Run {
    let mut cmd = s.wasm_run();
    cmd.args(["pipeline", "run"])
        .arg(file)
        .args(args)
        .arg("--json");
    Run(cmd.output().unwrap())
}

pub(crate) fn run_json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", run.stdout(), run.stderr()))
}

pub(crate) fn task<'a>(summary: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    summary["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no task {name}"))
}

fn out_param(summary: &serde_json::Value, name: &str, output: &str) -> serde_json::Value {
    let outputs: serde_json::Value =
        serde_json::from_str(task(summary, name)["outputs_json"].as_str().unwrap()).unwrap();
    outputs[output]["value"].clone()
}

pub(crate) fn states(summary: &serde_json::Value) -> Vec<(String, String)> {
    summary["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn the_iris_pipeline_trains_a_model_as_good_as_the_data_allows() {
    let s = Scratch::new();
    let run = pipeline(&s, &iris_yaml(&s), &[]);
    assert_eq!(run.code(), 0, "{}\n{}", run.stdout(), run.stderr());
    let summary = run_json(&run);
    assert_eq!(summary["state"], "SUCCEEDED");
    assert!(
        states(&summary).iter().all(|(_, st)| st == "SUCCEEDED"),
        "{:?}",
        states(&summary)
    );

    // Iris is nearly linearly separable: logistic regression reaches ~0.95 on held-out rows,
    // where always guessing the commonest class scores 1/3.
    let accuracy = out_param(&summary, "evaluate", "accuracy")
        .as_f64()
        .unwrap();
    assert!(accuracy >= 0.9, "accuracy {accuracy}");
    let test_rows = out_param(&summary, "split", "test_rows").as_i64().unwrap();
    assert_eq!(test_rows, 45);

    // The confusion matrix artifact agrees with the accuracy parameter.
    let event = |task: &str, name: &str| output_digest(&summary, task, name);
    let metrics_dir = s.path("metrics");
    let got = s
        .wasm_run()
        .args(["artifacts", "get", &event("evaluate", "metrics"), "--to"])
        .arg(&metrics_dir)
        .output()
        .unwrap();
    assert!(got.status.success());
    let cm: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(metrics_dir.join("confusion_matrix.json")).unwrap(),
    )
    .unwrap();
    let matrix = cm["matrix"].as_array().unwrap();
    let total: i64 = matrix
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_i64().unwrap())
        .sum();
    let diagonal: i64 = (0..3).map(|i| matrix[i][i].as_i64().unwrap()).sum();
    assert_eq!(total, test_rows);
    assert!((diagonal as f64 / total as f64 - accuracy).abs() < 1e-12);
    // One ROC curve per class, from (0,0) to (1,1), rising; setosa is separable (AUC 1).
    let roc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(metrics_dir.join("roc.json")).unwrap())
            .unwrap();
    let curves = roc.as_array().unwrap();
    assert_eq!(curves.len(), 3);
    for curve in curves {
        let pts = curve["points"].as_array().unwrap();
        let xy = |p: &serde_json::Value| (p["fpr"].as_f64().unwrap(), p["tpr"].as_f64().unwrap());
        assert_eq!(xy(&pts[0]), (0.0, 0.0));
        assert_eq!(xy(pts.last().unwrap()), (1.0, 1.0));
        assert!(pts
            .windows(2)
            .all(|w| xy(&w[0]).0 <= xy(&w[1]).0 && xy(&w[0]).1 <= xy(&w[1]).1));
        assert!(curve["auc"].as_f64().unwrap() > 0.9, "{curve}");
    }
    assert_eq!(curves[0]["class"], "setosa");
    assert_eq!(curves[0]["auc"], 1.0);

    // Lineage of the model: produced by train, consumed by evaluate and publish.
    let model = event("train", "model");
    let lineage = s
        .wasm_run()
        .args(["lineage", &model, "--output", "json"])
        .output()
        .unwrap();
    let lineage: serde_json::Value = serde_json::from_slice(&lineage.stdout).unwrap();
    let users: Vec<(String, String)> = lineage
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["task"].as_str().unwrap().into(),
                e["direction"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        users.contains(&("train".into(), "output".into())),
        "{users:?}"
    );
    assert!(
        users.contains(&("evaluate".into(), "input".into())),
        "{users:?}"
    );
    assert!(
        users.contains(&("publish".into(), "input".into())),
        "{users:?}"
    );

    // Logs and listings.
    let run_id = summary["run_id"].as_str().unwrap();
    let logs = s
        .wasm_run()
        .args(["logs", run_id, "load"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&logs.stdout).contains("wrote 150 rows"),
        "{}",
        String::from_utf8_lossy(&logs.stdout)
    );
    let list = s
        .wasm_run()
        .args(["runs", "list", "--output", "json"])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list[0]["id"], run_id);
}

#[test]
fn the_cache_has_no_false_hits_and_no_false_misses() {
    let s = Scratch::new();
    let yaml = iris_yaml(&s);
    let first = run_json(&pipeline(&s, &yaml, &[]));
    let first_id = first["run_id"].as_str().unwrap().to_string();

    // Same inputs: every task is a hit, pointing at the first run.
    let second = run_json(&pipeline(&s, &yaml, &[]));
    for t in second["tasks"].as_array().unwrap() {
        assert_eq!(t["state"], "SKIPPED", "{t}");
        assert_eq!(t["cached_from"], first_id.as_str());
    }
    assert_eq!(
        out_param(&second, "evaluate", "accuracy"),
        out_param(&first, "evaluate", "accuracy")
    );

    // --no-cache runs everything.
    let fresh = run_json(&pipeline(&s, &yaml, &["--no-cache"]));
    assert!(states(&fresh).iter().all(|(_, st)| st == "SUCCEEDED"));

    // A changed parameter misses from the task that uses it on, and only there.
    let epochs = run_json(&pipeline(&s, &yaml, &["-p", "epochs=50"]));
    let st: std::collections::BTreeMap<_, _> = states(&epochs).into_iter().collect();
    assert_eq!(st["load"], "SKIPPED");
    assert_eq!(st["standardize"], "SKIPPED");
    assert_eq!(st["train"], "SUCCEEDED");
    assert_eq!(st["evaluate"], "SUCCEEDED");

    // A changed input file with the same name misses.
    let edited_dir = s.path("edited");
    std::fs::create_dir_all(&edited_dir).unwrap();
    let edited = edited_dir.join("iris.csv");
    let text = std::fs::read_to_string(repo_file("examples/data/iris.csv")).unwrap();
    std::fs::write(
        &edited,
        text.replacen("5.1,3.5,1.4,0.2", "5.2,3.5,1.4,0.2", 1),
    )
    .unwrap();
    let changed = run_json(&pipeline(
        &s,
        &yaml,
        &["--artifact", &format!("iris={}", edited.display())],
    ));
    assert_eq!(task(&changed, "load")["state"], "SUCCEEDED");
    assert_eq!(task(&changed, "split")["state"], "SUCCEEDED");

    // A changed component (same file name, new bytes: a custom section appended) misses; what
    // it produces is identical, so the next task hits again.
    let comp_dir = s.path("components");
    std::fs::create_dir_all(&comp_dir).unwrap();
    let mut bytes = std::fs::read(CSV_TRANSFORM).unwrap();
    bytes.extend_from_slice(b"\x00\x05\x04test");
    std::fs::write(comp_dir.join("csv-transform.wasm"), bytes).unwrap();
    let text = std::fs::read_to_string(&yaml).unwrap().replace(
        CSV_TRANSFORM,
        comp_dir.join("csv-transform.wasm").to_str().unwrap(),
    );
    let yaml2 = s.path("iris2.yaml");
    std::fs::write(&yaml2, text).unwrap();
    let recompiled = run_json(&pipeline(&s, &yaml2, &[]));
    assert_eq!(task(&recompiled, "load")["state"], "SUCCEEDED");
    assert_ne!(
        task(&recompiled, "load")["component_digest"],
        task(&first, "load")["component_digest"]
    );
    assert_eq!(task(&recompiled, "split")["state"], "SKIPPED");
}

#[test]
fn an_invalid_pipeline_is_refused_with_file_line_and_column() {
    let s = Scratch::new();
    let yaml = iris_yaml(&s);
    let text = std::fs::read_to_string(&yaml).unwrap();
    let bad = s.path("bad.yaml");
    let shown = bad.display().to_string();
    // Writes a broken variant of the pipeline and returns what `wasm-run pipeline CMD` said.
    let refused = |cmd: &str, text: String| {
        std::fs::write(&bad, text).unwrap();
        let out = s
            .wasm_run()
            .args(["pipeline", cmd])
            .arg(&bad)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{err}");
        err
    };

    let err = refused(
        "validate",
        text.replace("output: accuracy}, op", "output: acuracy}, op")
            .replace(
                "epochs: {param: epochs}",
                "epochs: {param: epochs}\n        learning_rat: {value: 1}",
            ),
    );
    assert!(
        err.contains(&format!("{shown}:111:")) && err.contains("no output parameter `acuracy`"),
        "{err}"
    );
    assert!(err.contains("no input parameter `learning_rat`"), "{err}");

    let err = refused("run", text.replace(CSV_TRANSFORM, NOT_A_STEP));
    assert!(
        err.contains(&format!("{shown}:21:")) && err.contains("not a Weft step"),
        "{err}"
    );

    let err = refused(
        "validate",
        text.replace(
            "      artifacts: {data: {artifact: iris}}",
            "      artifacts: {data: {artifact: iris}}\n      after: [publish]",
        ),
    );
    assert!(err.contains("cycle") && err.contains("load -> "), "{err}");
}

#[test]
fn conditions_skip_branches_and_retries_back_off_before_failing() {
    let s = Scratch::new();
    let yaml = misbehave_pipeline(
        &s,
        "    a:
      component: busy
      params: {ms: {value: 5}}
    if-slow:
      component: busy
      when: {input: {task: a, output: busy_ms}, op: \">\", value: 100}
    after-if:
      component: busy
      after: [if-slow]
    else:
      component: busy
      when: {not: {input: {task: a, output: busy_ms}, op: \">\", value: 100}}
    flaky:
      component: m
      params: {mode: {value: fail}}
      retry: {limit: 2, backoff: 10ms}
      after: [else]
    never:
      component: busy
      after: [flaky]
",
    );
    let run = pipeline(&s, &yaml, &[]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let summary = run_json(&run);
    assert_eq!(summary["state"], "FAILED");
    let st: std::collections::BTreeMap<_, _> = states(&summary).into_iter().collect();
    assert_eq!(st["a"], "SUCCEEDED");
    assert_eq!(st["if-slow"], "NOT_TRIGGERED");
    assert_eq!(st["after-if"], "NOT_TRIGGERED");
    assert_eq!(st["else"], "SUCCEEDED");
    assert_eq!(st["flaky"], "FAILED");
    assert_eq!(st["never"], "CANCELLED");
    let flaky = task(&summary, "flaky");
    assert_eq!(flaky["attempt"], 3);
    assert!(
        flaky["error"].as_str().unwrap().contains("asked to fail"),
        "{flaky}"
    );
    assert!(
        run.stderr().contains("retrying in 10ms") && run.stderr().contains("retrying in 20ms"),
        "{}",
        run.stderr()
    );
}

#[test]
fn independent_tasks_run_at_the_same_time() {
    let s = Scratch::new();
    let yaml = misbehave_pipeline(
        &s,
        "    left:
      component: busy
      params: {ms: {value: 300}}
    right:
      component: busy
      params: {ms: {value: 300}}
",
    );
    let summary = run_json(&pipeline(&s, &yaml, &["--parallelism", "2"]));
    let (l, r) = (task(&summary, "left"), task(&summary, "right"));
    // Each started before the other finished (RFC 3339 timestamps compare as text).
    assert!(
        l["started_at"].as_str() < r["finished_at"].as_str()
            && r["started_at"].as_str() < l["finished_at"].as_str(),
        "{l}\n{r}"
    );
}

fn home_stores(s: &Scratch) -> (MetadataStore, ArtifactStore) {
    (
        MetadataStore::open(&s.path("home/metadata.db")).unwrap(),
        ArtifactStore::open(&s.path("home/artifacts")).unwrap(),
    )
}

/// Every artifact any event records exists and still has its digest.
fn assert_store_consistent(s: &Scratch) {
    let (meta, artifacts) = home_stores(s);
    for e in meta.events(None).unwrap() {
        assert!(
            artifacts.verify(&e.digest).unwrap(),
            "recorded artifact {} ({}.{}) is missing or altered",
            e.digest,
            e.task,
            e.name
        );
    }
}

fn wait_for(deadline: Duration, mut ready: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !ready() {
        assert!(Instant::now() < until, "timed out waiting");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn task_state(s: &Scratch, run: &str, name: &str) -> Option<TaskState> {
    let (meta, _) = home_stores(s);
    meta.tasks(run)
        .ok()?
        .into_iter()
        .find(|t| t.name == name)
        .map(|t| t.state)
}

const CHAIN: &str = "    first:
      component: busy
      params: {ms: {value: 10}}
    slow:
      component: busy
      params: {ms: {value: 1500}}
      after: [first]
    last:
      component: busy
      params: {ms: {value: 11}}
      after: [slow]
";

#[test]
fn kill_9_at_any_point_leaves_a_consistent_store_and_resume_finishes_the_run() {
    // Kill points: before any task finished, while `slow` runs, and after `slow` finished.
    // And in the window between an output's rename into the store and the transaction that
    // records it (held open by the executor's fault-injection variable).
    let kill_points = ["start", "slow-running", "slow-done", "renamed-not-recorded"];
    for (i, kill_when) in kill_points.iter().enumerate() {
        let s = Scratch::new();
        let yaml = misbehave_pipeline(&s, CHAIN);
        let run_id = format!("crash-{i}");
        let marker = s.path("paused");
        let mut run = s.wasm_run();
        if *kill_when == "renamed-not-recorded" {
            run.env("WEFT_FAULT_PAUSE_BEFORE_COMMIT", &marker);
        }
        let mut child = run
            .args(["pipeline", "run"])
            .arg(&yaml)
            .args(["--run-id", &run_id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        match *kill_when {
            "renamed-not-recorded" => wait_for(Duration::from_secs(30), || marker.exists()),
            "start" => wait_for(Duration::from_secs(30), || {
                task_state(&s, &run_id, "first").is_some()
            }),
            "slow-running" => wait_for(Duration::from_secs(30), || {
                task_state(&s, &run_id, "slow") == Some(TaskState::Running)
            }),
            _ => wait_for(Duration::from_secs(30), || {
                task_state(&s, &run_id, "slow") == Some(TaskState::Succeeded)
            }),
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        assert_store_consistent(&s);
        let before: Vec<_> = home_stores(&s).0.tasks(&run_id).unwrap();
        if *kill_when == "renamed-not-recorded" {
            // The window itself: `first`'s output is in the store, nothing records it yet.
            let stored = std::fs::read_dir(s.path("home/artifacts/sha256"))
                .unwrap()
                .count();
            assert_eq!(stored, 1, "first's output renamed into the store");
            assert!(home_stores(&s).0.events(Some(&run_id)).unwrap().is_empty());
            assert_eq!(task_state(&s, &run_id, "first"), Some(TaskState::Running));
        }

        // `pipeline resume`, or the same `pipeline run --run-id` again (what a restarted
        // runner pod does on its volume): both finish the run.
        let mut again = s.wasm_run();
        if i == 2 {
            again
                .args(["pipeline", "run"])
                .arg(&yaml)
                .args(["--run-id", &run_id, "--json"]);
        } else {
            again.args(["pipeline", "resume", &run_id, "--json"]);
        }
        let resumed = Run(again.output().unwrap());
        assert_eq!(
            resumed.code(),
            0,
            "{}\n{}",
            resumed.stdout(),
            resumed.stderr()
        );
        let summary = run_json(&resumed);
        assert_eq!(summary["state"], "SUCCEEDED");
        assert!(
            states(&summary).iter().all(|(_, st)| st == "SUCCEEDED"),
            "{:?}",
            states(&summary)
        );
        // What had finished was reused, not run again.
        for t in before.iter().filter(|t| t.state == TaskState::Succeeded) {
            assert_eq!(
                task(&summary, &t.name)["finished_at"].as_str(),
                t.finished_at.as_deref(),
                "{} re-ran",
                t.name
            );
        }
        assert_store_consistent(&s);
    }
}

/// Starts `run`, presses Ctrl-C (SIGINT) once `task` of `run_id` is running, and checks the
/// command ends as cancelled (130); its output.
fn ctrl_c_while_running(
    s: &Scratch,
    mut run: Command,
    run_id: &str,
    task: &str,
) -> std::process::Output {
    let child = run
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(30), || {
        task_state(s, run_id, task) == Some(TaskState::Running)
    });
    assert!(Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn ctrl_c_cancels_the_run_cleanly() {
    let s = Scratch::new();
    let yaml = misbehave_pipeline(&s, &CHAIN.replace("{value: 1500}", "{value: 20000}"));
    let mut run = s.wasm_run();
    run.args(["pipeline", "run"])
        .arg(&yaml)
        .args(["--run-id", "cancel-me"]);
    ctrl_c_while_running(&s, run, "cancel-me", "slow");
    // Stopped, not finished: a 20 s step left to run would be recorded SUCCEEDED (below).
    let (meta, _) = home_stores(&s);
    assert_eq!(meta.run("cancel-me").unwrap().state, "CANCELLED");
    assert_eq!(
        task_state(&s, "cancel-me", "slow"),
        Some(TaskState::Cancelled)
    );
    assert_eq!(
        task_state(&s, "cancel-me", "last"),
        Some(TaskState::Cancelled)
    );
    assert_store_consistent(&s);
}

#[test]
fn replay_reproduces_a_hermetic_run_bit_for_bit() {
    let s = Scratch::new();
    let yaml = misbehave_pipeline(
        &s,
        "    clocks-and-random:
      component: m
      params: {mode: {value: entropy}}
",
    );
    let first = pipeline(&s, &yaml, &["--hermetic-seed", "11", "--run-id", "h"]);
    assert_eq!(first.code(), 0, "{}", first.stderr());
    let replay = Run(s
        .wasm_run()
        .args(["pipeline", "replay", "h", "--json"])
        .output()
        .unwrap());
    assert_eq!(replay.code(), 0, "{}\n{}", replay.stdout(), replay.stderr());
    let report = run_json(&replay);
    let outputs = report["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 1, "{report}");
    assert_eq!(outputs[0]["original"], outputs[0]["replayed"]);
    assert_eq!(report["replay"]["run_id"], "h-replay-1");

    // The same step, not hermetic, gives other bytes each time: replay refuses such a run.
    let loose = run_json(&pipeline(&s, &yaml, &["--no-cache", "--run-id", "loose"]));
    assert_eq!(loose["state"], "SUCCEEDED");
    let refused = s
        .wasm_run()
        .args(["pipeline", "replay", "loose"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("was not hermetic"));
}

#[test]
fn the_iris_pipeline_replays_exactly() {
    let s = Scratch::new();
    let yaml = iris_yaml(&s);
    assert_eq!(
        pipeline(&s, &yaml, &["--hermetic-seed", "5", "--run-id", "iris"]).code(),
        0
    );
    let replay = Run(s
        .wasm_run()
        .args(["pipeline", "replay", "iris"])
        .output()
        .unwrap());
    assert_eq!(replay.code(), 0, "{}\n{}", replay.stdout(), replay.stderr());
    assert!(
        replay.stdout().contains("17/17 outputs reproduced exactly"),
        "{}",
        replay.stdout()
    );
}

#[test]
fn a_pipeline_run_file_supplies_arguments_the_command_line_can_override() {
    let s = Scratch::new();
    iris_yaml(&s);
    let run_file = s.path("run.yaml");
    std::fs::write(
        &run_file,
        "apiVersion: weft.dev/v1alpha1\nkind: PipelineRun\nmetadata: {name: r}\nspec:\n  pipelineRef: iris.yaml\n  params: {model_name: from-file, epochs: 20}\n",
    )
    .unwrap();
    let report = s.path("report.json");
    let report_arg = report.to_str().unwrap();
    let summary = run_json(&pipeline(
        &s,
        &run_file,
        &["-p", "epochs=30", "--report", report_arg],
    ));
    assert_eq!(summary["state"], "SUCCEEDED");
    assert_eq!(out_param(&summary, "publish", "uri"), "models/from-file");
    // The runner's report, as the operator reads it from a termination message.
    let report: weft_spec::report::RunReport =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(report.state, "SUCCEEDED");
    assert_eq!(report.run_id, summary["run_id"].as_str().unwrap());
    assert_eq!(report.tasks["train"].state, "SUCCEEDED");
    assert!(report.tasks["train"].finish_time.is_some());
    assert_eq!(
        report.tasks["train"].artifacts["model"],
        output_digest(&summary, "train", "model")
    );
    let bad = s.path("bad-run.yaml");
    std::fs::write(&bad, "apiVersion: weft.dev/v1alpha1\nkind: PipelineRun\nmetadata: {name: r}\nspec:\n  pipelineRef: iris.yaml\n  parms: {}\n").unwrap();
    let out = s
        .wasm_run()
        .args(["pipeline", "run"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad-run.yaml:6:") && err.contains("parms"),
        "{err}"
    );
    // A run marked cancelled (the operator's `spec.cancel`) is not started.
    let cancelled = s.path("cancelled-run.yaml");
    std::fs::write(&cancelled, "apiVersion: weft.dev/v1alpha1\nkind: PipelineRun\nmetadata: {name: r}\nspec:\n  pipelineRef: iris.yaml\n  cancel: true\n").unwrap();
    let (code, err) = fails(s.wasm_run().args(["pipeline", "run"]).arg(&cancelled));
    assert_eq!(code, Some(2));
    assert!(
        err.contains("cancelled-run.yaml:6:") && err.contains("marked cancelled"),
        "{err}"
    );
}

#[test]
fn parallel_for_fans_out_over_a_list_and_fans_the_outputs_back_in() {
    let s = Scratch::new();
    let text = std::fs::read_to_string(misbehave_pipeline(
        &s,
        "    fan:
      component: busy
      parallelFor: {items: {param: sizes}, parallelism: 1}
      params: {ms: {loopItem: ms}}
    literal:
      component: busy
      parallelFor: {items: {value: [1, 2, 3, 4]}}
      params: {ms: {loopItem: .}}
",
    ))
    .unwrap();
    let yaml = s.path("fan.yaml");
    std::fs::write(
        &yaml,
        text.replace(
            "spec:\n  components:",
            "spec:\n  params:\n    sizes: {type: json}\n  components:",
        ),
    )
    .unwrap();
    let run = pipeline(
        &s,
        &yaml,
        &["-p", r#"sizes=[{"ms": 30}, {"ms": 20}, {"ms": 10}]"#],
    );
    assert_eq!(run.code(), 0, "{}\n{}", run.stdout(), run.stderr());
    let summary = run_json(&run);
    assert_eq!(
        out_param(&summary, "fan", "busy_ms"),
        serde_json::json!([30, 20, 10])
    );
    assert_eq!(
        out_param(&summary, "literal", "busy_ms"),
        serde_json::json!([1, 2, 3, 4])
    );
    // Each iteration is recorded; with parallelism 1 they ran one after another.
    let iters: Vec<&serde_json::Value> = (0..3)
        .map(|i| task(&summary, &format!("fan[{i}]")))
        .collect();
    for w in iters.windows(2) {
        assert_eq!(w[0]["state"], "SUCCEEDED");
        assert!(
            w[0]["finished_at"].as_str() <= w[1]["started_at"].as_str(),
            "{}\n{}",
            w[0],
            w[1]
        );
    }
    // The fanned-in artifact holds every iteration's output in order.
    let digest = output_digest(&summary, "fan", "out");
    let dir = s.path("fan-out");
    assert!(s
        .wasm_run()
        .args(["artifacts", "get", &digest, "--to"])
        .arg(&dir)
        .status()
        .unwrap()
        .success());
    for (i, ms) in [30, 20, 10].iter().enumerate() {
        let text = std::fs::read_to_string(dir.join(format!("{i}/busy.txt"))).unwrap();
        assert_eq!(text, format!("fan[{i}] {ms}\n"));
    }
    // Not a list: a clear failure of the task.
    let run = pipeline(&s, &yaml, &["-p", r#"sizes={"ms": 1}"#]);
    assert_eq!(run.code(), 1);
    assert!(task(&run_json(&run), "fan")["error"]
        .as_str()
        .unwrap()
        .contains("must be a list"));
}

#[test]
fn the_exit_handler_runs_last_and_learns_the_final_status() {
    for (mode, expected) in [
        ("busy", "SUCCEEDED"),
        ("fail", "FAILED"),
        ("cancel", "CANCELLED"),
    ] {
        let s = Scratch::new();
        // `cancel`: a long step, interrupted with Ctrl-C; the handler is the cleanup and runs.
        let work = match mode {
            "cancel" => "    work:\n      component: busy\n      params: {ms: {value: 600000}}\n".to_string(),
            _ => format!("    work:\n      component: m\n      params: {{mode: {{value: {mode}}}}}\n    more:\n      component: busy\n      params: {{ms: {{value: 30}}}}\n"),
        };
        let text = std::fs::read_to_string(misbehave_pipeline(&s, &work)).unwrap();
        let text = text.replace(
            "  tasks:\n",
            &format!(
                "    echo:
      source: {MISBEHAVE}
      inputs:
        params:
          mode: {{type: string}}
          text: {{type: string}}
      outputs:
        params: {{echo: string}}
  exitHandler:
    component: echo
    params:
      mode: {{value: echo}}
      text: {{runStatus: state}}
  tasks:
"
            ),
        );
        let yaml = s.path("exit.yaml");
        std::fs::write(&yaml, text).unwrap();
        let mut run = s.wasm_run();
        run.args(["pipeline", "run"])
            .arg(&yaml)
            .args(["--run-id", "x", "--json"]);
        let summary = if mode == "cancel" {
            let out = ctrl_c_while_running(&s, run, "x", "work");
            serde_json::from_slice(&out.stdout).unwrap()
        } else {
            run_json(&Run(run.output().unwrap()))
        };
        assert_eq!(summary["state"], expected);
        assert_eq!(
            task(&summary, "exit-handler")["state"],
            "SUCCEEDED",
            "{mode}"
        );
        assert_eq!(out_param(&summary, "exit-handler", "echo"), expected);
        // Last: it started after every other task had ended.
        let handler_start = task(&summary, "exit-handler")["started_at"]
            .as_str()
            .unwrap()
            .to_string();
        for t in summary["tasks"].as_array().unwrap() {
            if t["name"] != "exit-handler" {
                let ended = t["finished_at"].as_str().unwrap_or("");
                assert!(
                    ended <= handler_start.as_str(),
                    "{mode}: {} ended {ended}, after the handler started {handler_start}",
                    t["name"]
                );
            }
        }
    }
}

/// Runs iris publishing to `backend`, loses the local artifacts, and gets them back from it.
fn backend_round_trip(backend: &str, env: &[(&str, String)]) {
    let s = Scratch::new();
    let yaml = iris_yaml(&s);
    let wasm_run = |args: &[&str]| {
        let mut cmd = s.wasm_run();
        cmd.arg("--artifact-store").arg(backend).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run(cmd.output().unwrap())
    };
    let yaml_s = yaml.to_str().unwrap();
    let first = run_json(&wasm_run(&["pipeline", "run", yaml_s, "--json"]));
    assert_eq!(first["state"], "SUCCEEDED");
    let model = output_digest(&first, "train", "model");

    // The machine loses its artifacts; the backend still has them.
    std::fs::remove_dir_all(s.path("home/artifacts")).unwrap();
    let out = s.path("model");
    let got = wasm_run(&["artifacts", "get", &model, "--to", out.to_str().unwrap()]);
    assert_eq!(got.code(), 0, "{}", got.stderr());
    assert!(std::fs::read_to_string(out.join("model.json"))
        .unwrap()
        .contains("logistic-regression"));

    // Cache hits are still good: their artifacts come back from the backend, checked.
    let second = run_json(&wasm_run(&["pipeline", "run", yaml_s, "--json"]));
    assert!(
        states(&second).iter().all(|(_, st)| st == "SKIPPED"),
        "{:?}",
        states(&second)
    );

    // Without the backend, the lost artifacts are misses: the tasks run again.
    std::fs::remove_dir_all(s.path("home/artifacts")).unwrap();
    let third = run_json(&pipeline(&s, &yaml, &[]));
    assert_eq!(task(&third, "load")["state"], "SUCCEEDED");
}

#[test]
fn artifacts_published_to_a_backend_survive_the_loss_of_the_local_store() {
    let remote = tempfile::tempdir().unwrap();
    backend_round_trip(&format!("file://{}", remote.path().display()), &[]);
}

/// Against a real S3-compatible server (moto, from PyPI; `cargo xtask test` installs it and
/// builds with the `s3` feature).
#[cfg(feature = "s3")]
#[test]
fn artifacts_round_trip_through_an_s3_compatible_server() {
    let moto = std::env::var("WEFT_TEST_MOTO_SERVER")
        .expect("tests with the s3 feature need WEFT_TEST_MOTO_SERVER (the moto_server binary; cargo xtask test installs it)");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Kill(
        Command::new(&moto)
            .args(["-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let endpoint = format!("127.0.0.1:{port}");
    wait_for(Duration::from_secs(30), || {
        std::net::TcpStream::connect(&endpoint).is_ok()
    });
    // Create the bucket with a bare S3 CreateBucket request.
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(&endpoint).unwrap();
    write!(conn, "PUT /weft-test HTTP/1.1\r\nHost: {endpoint}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let env = [
        ("AWS_ENDPOINT", format!("http://{endpoint}")),
        ("AWS_ALLOW_HTTP", "true".to_string()),
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
    ];
    backend_round_trip("s3://weft-test/artifacts", &env);
}

/// An example file with its paths pointed at this build, written to `s`.
fn example_in(s: &Scratch, name: &str) -> PathBuf {
    let path = s.path(name);
    std::fs::write(&path, example_text(name)).unwrap();
    path
}

#[test]
fn a_sub_pipeline_runs_as_a_task() {
    let s = Scratch::new();
    example_in(&s, "prepare.yaml");
    let nested = example_in(&s, "nested.yaml");
    let run = pipeline(&s, &nested, &[]);
    assert_eq!(run.code(), 0, "{}\n{}", run.stdout(), run.stderr());
    let summary = run_json(&run);
    assert_eq!(task(&summary, "prepare/load")["state"], "SUCCEEDED");
    assert_eq!(task(&summary, "prepare/split")["state"], "SUCCEEDED");
    // Same data, same split, same training as the flat pipeline: the same accuracy.
    let flat = run_json(&pipeline(&s, &iris_yaml(&s), &[]));
    assert_eq!(
        out_param(&summary, "evaluate", "accuracy"),
        out_param(&flat, "evaluate", "accuracy")
    );
    // The flat run reuses the nested run's steps from the cache: they are the same steps.
    assert_eq!(task(&flat, "split")["state"], "SKIPPED");

    // An interface that does not match the sub-pipeline is refused before anything runs.
    let text = std::fs::read_to_string(&nested)
        .unwrap()
        .replace("seed: {type: int}", "seed: {type: string}")
        .replace("seed: {param: seed}", "seed: {value: x}");
    std::fs::write(&nested, text).unwrap();
    let out = s
        .wasm_run()
        .args(["pipeline", "run"])
        .arg(&nested)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("input parameter `seed` is string here but int in the sub-pipeline"),
        "{err}"
    );
}

#[test]
fn components_can_be_referenced_by_digest_once_stored() {
    let s = Scratch::new();
    let by_path = misbehave_pipeline(&s, "    a:\n      component: busy\n      cache: false\n");
    let first = run_json(&pipeline(&s, &by_path, &[]));
    let digest = task(&first, "a")["component_digest"]
        .as_str()
        .unwrap()
        .to_string();
    // The run stored the component under its digest; a pipeline may now name it so.
    let text = std::fs::read_to_string(&by_path)
        .unwrap()
        .replace(MISBEHAVE, &digest);
    let by_digest = s.path("by-digest.yaml");
    std::fs::write(&by_digest, &text).unwrap();
    let second = run_json(&pipeline(&s, &by_digest, &[]));
    assert_eq!(task(&second, "a")["component_digest"], digest.as_str());
    // `cache: false` on the task: it ran again rather than hitting the first run's entry.
    assert_eq!(task(&second, "a")["state"], "SUCCEEDED");

    let unknown = format!("sha256:{}", "0".repeat(64));
    std::fs::write(&by_digest, text.replace(&digest, &unknown)).unwrap();
    let out = s
        .wasm_run()
        .args(["pipeline", "validate"])
        .arg(&by_digest)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not in the component store"));
}

#[test]
fn a_component_stored_as_an_artifact_runs_by_its_digest() {
    // How components reach a cluster's runners: `artifacts put` (into the remote store there),
    // then the pipeline names the digest.
    let s = Scratch::new();
    let digest = put_artifact(&s, Path::new(MISBEHAVE));
    let path = misbehave_pipeline(&s, "    t: {component: busy, params: {ms: {value: 1}}}\n");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(MISBEHAVE, &digest);
    std::fs::write(&path, text).unwrap();
    let summary = run_json(&pipeline(&s, &path, &[]));
    assert_eq!(summary["state"], "SUCCEEDED");

    // A digest of nothing stored is refused with its place in the file.
    let missing = format!("sha256:{}", "0".repeat(64));
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(&digest, &missing);
    std::fs::write(&path, text).unwrap();
    let run = pipeline(&s, &path, &[]);
    assert!(
        run.stderr().contains("p.yaml:8:") && run.stderr().contains("not in the component store"),
        "{}",
        run.stderr()
    );
}

#[test]
fn a_pipeline_input_can_be_an_artifact_already_stored_by_digest() {
    let s = Scratch::new();
    iris_yaml(&s);
    let digest = put_artifact(&s, &repo_file("examples/data/iris.csv"));
    let run_file = s.path("run.yaml");
    std::fs::write(
        &run_file,
        format!("apiVersion: weft.dev/v1alpha1\nkind: PipelineRun\nmetadata: {{name: r}}\nspec:\n  pipelineRef: iris.yaml\n  artifacts: {{iris: \"{digest}\"}}\n"),
    )
    .unwrap();
    let summary = run_json(&pipeline(&s, &run_file, &[]));
    assert_eq!(summary["state"], "SUCCEEDED");
    let consumed = summary["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["task"] == "load" && e["direction"] == "input")
        .unwrap();
    assert_eq!(consumed["digest"], digest.as_str());
}
