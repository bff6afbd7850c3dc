//! Steps in other languages than Rust, built from source (components/*/weft.toml) by the same
//! build as every component, run through `wasm-run` and held to the same sandbox.

use crate::support::*;
use serde_json::Value;

fn iris_csv() -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../examples/data/iris.csv")
        .display()
        .to_string()
}

/// The mean of column `i` of the iris CSV, computed here.
fn column_mean(i: usize) -> f64 {
    let text = std::fs::read_to_string(iris_csv()).unwrap();
    let values: Vec<f64> = text
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').nth(i).unwrap().parse().unwrap())
        .collect();
    values.iter().sum::<f64>() / values.len() as f64
}

#[test]
fn a_python_step_reads_an_artifact_writes_one_reports_a_metric_and_returns_params() {
    let s = Scratch::new();
    let out = s.path("out");
    let outcome = s
        .run(
            CSV_PROFILE_PY,
            &[
                "--input",
                &format!("table={}", iris_csv()),
                "-o",
                "summary",
                "-o",
                "clean",
                "--output-dir",
                out.to_str().unwrap(),
                "-p",
                "label=species",
                "--json",
            ],
        )
        .json();
    assert_eq!(param(&outcome, "rows")["value"], 150, "{outcome}");
    assert_eq!(param(&outcome, "rows")["type"], "int");
    assert_eq!(
        param(&outcome, "columns")["value"],
        serde_json::json!([
            "sepal_length",
            "sepal_width",
            "petal_length",
            "petal_width",
            "species"
        ])
    );
    let metrics = outcome["metrics"].as_array().unwrap();
    assert!(
        metrics
            .iter()
            .any(|m| m.to_string().contains("rows") && m.to_string().contains("150")),
        "{metrics:?}"
    );
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary/summary")).unwrap())
            .unwrap();
    let mean = summary["sepal_length"]["mean"].as_f64().unwrap();
    assert!((mean - column_mean(0)).abs() < 1e-9, "{summary}");
    assert_eq!(
        summary["species"]["distinct"],
        serde_json::json!(["setosa", "versicolor", "virginica"])
    );
    let clean = std::fs::read_to_string(out.join("clean/clean")).unwrap();
    let source = std::fs::read_to_string(iris_csv()).unwrap();
    assert_eq!(
        clean.trim_end(),
        source.trim_end(),
        "iris has no incomplete row"
    );
}

#[test]
fn a_python_exception_is_the_tasks_cause_and_its_traceback_is_in_the_log() {
    let s = Scratch::new();
    let run = s.run(MISBEHAVE_PY, &["-p", "mode=raise"]);
    let line = run.failure();
    assert!(
        line.contains("step failed: ZeroDivisionError: asked to divide by zero"),
        "{line}"
    );
    let log = std::fs::read_to_string(run.log_path()).unwrap();
    assert!(log.contains("Traceback (most recent call last)"), "{log}");
    assert!(log.contains("app.py"), "{log}");

    // A parameter of the wrong type is named, before the step's code runs.
    let run = s.run(MISBEHAVE_PY, &["-p", "mode:int=3"]);
    let line = run.failure();
    assert!(
        line.contains("TypeError: parameter mode: expected string, got int 3"),
        "{line}"
    );
}

#[test]
fn a_python_step_gets_no_file_env_var_or_network_it_was_not_granted() {
    let s = Scratch::new();
    let outcome = |args: &[&str]| {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let run = s.run_with(MISBEHAVE_PY, &all, |c| {
            c.env("WEFT_TEST_SECRET", "hunter2");
        });
        param(&run.json(), "outcome")["value"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let read = outcome(&["-p", "mode=read", "-p", "path=/etc/passwd"]);
    assert!(read.starts_with("denied: FileNotFoundError"), "{read}");
    let granted = s.path("granted.txt");
    std::fs::write(&granted, "granted words").unwrap();
    let read = outcome(&[
        "-p",
        "mode=read",
        "-p",
        "path=/inputs/data/granted.txt",
        "--input",
        &format!("data={}", granted.display()),
    ]);
    assert_eq!(read, "read: granted words");

    assert_eq!(
        outcome(&["-p", "mode=env", "-p", "var=WEFT_TEST_SECRET"]),
        "<unset>"
    );
    assert_eq!(
        outcome(&[
            "-p",
            "mode=env",
            "-p",
            "var=WEFT_TEST_SECRET",
            "--env",
            "WEFT_TEST_SECRET"
        ]),
        "hunter2"
    );

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("addr:string={}", listener.local_addr().unwrap());
    let denied = outcome(&["-p", "mode=net", "-p", &addr]);
    assert!(denied.starts_with("denied"), "{denied}");
    assert_eq!(
        outcome(&["-p", "mode=net", "-p", &addr, "--allow-network"]),
        "connected"
    );
    let (mut conn, _) = listener.accept().unwrap();
    let mut got = String::new();
    std::io::Read::read_to_string(&mut conn, &mut got).unwrap();
    assert_eq!(got, "hello from the python sandbox");
}

#[test]
fn a_python_step_stops_at_the_memory_and_time_limits() {
    let s = Scratch::new();
    // CPython survives the refused growth and raises MemoryError: the cause still names the
    // limit it ran into.
    let line = s
        .run(MISBEHAVE_PY, &["-p", "mode=alloc", "--memory", "64MiB"])
        .failure();
    assert!(line.contains("MemoryError"), "{line}");
    assert!(
        line.contains("memory limit exceeded") && line.contains("limit 67108864 bytes"),
        "{line}"
    );
    let line = s
        .run(MISBEHAVE_PY, &["-p", "mode=loop", "--timeout", "300ms"])
        .failure();
    assert!(
        line.contains("time limit exceeded") && line.contains("0.300s"),
        "{line}"
    );
}

/// `wasm-run new` + `wasm-run build` + the project's own test, for each language, in a temp
/// dir, with `wasm-run` on PATH as a user would have it.
pub(crate) fn new_build_and_test(lang: &str) {
    new_build_and_test_with(lang, None);
}

/// `new_build_and_test` with `tools_bin` first on PATH (build tools a user has installed, so the
/// build finds them there instead of installing its own into the scratch home).
pub(crate) fn new_build_and_test_with(lang: &str, tools_bin: Option<&std::path::Path>) {
    let s = Scratch::new();
    let name = format!("my-{lang}-step");
    let dir = s.path(&name);
    succeed(
        s.wasm_run()
            .args(["new", "step", &name, "--lang", lang, "--dir"])
            .arg(&dir),
    );
    assert!(dir.join("weft.toml").is_file());
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_wasm-run"))
        .parent()
        .unwrap()
        .to_path_buf();
    let mut path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    if let Some(tools) = tools_bin {
        path = format!("{}:{path}", tools.display());
    }
    // The tools the build of this repository's components installed, shared as a user shares
    // them between homes (the first-use install is what that build did).
    let out = std::process::Command::new(dir.join("test.sh"))
        .env("PATH", &path)
        .env("WEFT_HOME", s.path("home"))
        .env("WEFT_TOOLS_DIR", GUEST_TOOLS)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{lang} test.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("summed the column to 7"));
    // A second build of unchanged sources builds nothing.
    let built = dir.join("target/weft").join(format!("{name}.wasm"));
    let modified = || std::fs::metadata(&built).unwrap().modified().unwrap();
    let before = modified();
    let again = succeed(
        s.wasm_run()
            .env("WEFT_TOOLS_DIR", GUEST_TOOLS)
            .env("PATH", &path)
            .arg("build")
            .arg(&dir),
    );
    assert!(String::from_utf8_lossy(&again.stdout).contains(&format!("{name}.wasm")));
    assert_eq!(
        modified(),
        before,
        "an unchanged {lang} project was built again"
    );
}

#[test]
fn new_and_build_make_a_python_step_that_runs() {
    new_build_and_test("python");
}

#[test]
fn new_and_build_make_a_rust_step_that_runs() {
    new_build_and_test("rust");
}

#[test]
fn a_js_step_reads_an_artifact_writes_one_reports_a_metric_and_returns_params() {
    let s = Scratch::new();
    let out = s.path("out");
    let outcome = s
        .run(
            CSV_FILTER_JS,
            &[
                "--input",
                &format!("table={}", iris_csv()),
                "-o",
                "kept",
                "--output-dir",
                out.to_str().unwrap(),
                "-p",
                "column=petal_length",
                "-p",
                "op=>=",
                "-p",
                "threshold:string=5",
                "--json",
            ],
        )
        .json();
    let text = std::fs::read_to_string(iris_csv()).unwrap();
    let expected: Vec<&str> = text
        .lines()
        .skip(1)
        .filter(|l| {
            l.split(',')
                .nth(2)
                .is_some_and(|v| v.parse::<f64>().unwrap() >= 5.0)
        })
        .collect();
    assert_eq!(
        param(&outcome, "kept_rows")["value"],
        expected.len(),
        "{outcome}"
    );
    assert_eq!(param(&outcome, "kept_rows")["type"], "int");
    assert_eq!(
        param(&outcome, "dropped_rows")["value"],
        150 - expected.len()
    );
    let kept = std::fs::read_to_string(out.join("kept/kept")).unwrap();
    let kept: Vec<&str> = kept.lines().collect();
    assert_eq!(kept[0], text.lines().next().unwrap());
    assert_eq!(&kept[1..], &expected[..]);
    let metrics = outcome["metrics"].to_string();
    assert!(metrics.contains("kept_rows"), "{metrics}");
}

#[test]
fn a_js_error_is_the_tasks_cause_and_its_stack_is_in_the_log() {
    let s = Scratch::new();
    let run = s.run(MISBEHAVE_JS, &["-p", "mode=raise"]);
    let line = run.failure();
    assert!(
        line.contains("step failed: RangeError: asked to be out of range"),
        "{line}"
    );
    let log = std::fs::read_to_string(run.log_path()).unwrap();
    assert!(
        log.contains("RangeError: asked to be out of range"),
        "{log}"
    );
    assert!(log.contains("app.js"), "the stack names the source: {log}");
    // A thrown non-Error is its text, not "[object]".
    let line = s.run(MISBEHAVE_JS, &["-p", "mode=throw-string"]).failure();
    assert!(line.contains("step failed: a bare string"), "{line}");
}

#[test]
fn a_js_step_gets_no_file_env_var_or_network_it_was_not_granted() {
    let s = Scratch::new();
    let run = |args: &[&str]| {
        s.run_with(MISBEHAVE_JS, args, |c| {
            c.env("WEFT_TEST_SECRET", "hunter2");
        })
    };
    let outcome = |args: &[&str]| {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        param(&run(&all).json(), "outcome")["value"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // Through `..` from a granted directory, past the SDK's own check: the host refuses.
    let granted = s.path("granted.txt");
    std::fs::write(&granted, "granted words").unwrap();
    let input = format!("data={}", granted.display());
    let read = outcome(&[
        "-p",
        "mode=read",
        "-p",
        "path=/etc/passwd",
        "--input",
        &input,
    ]);
    assert_eq!(read, "denied: not-permitted");
    let read = outcome(&[
        "-p",
        "mode=read",
        "-p",
        "path=/inputs/data/granted.txt",
        "--input",
        &input,
    ]);
    assert_eq!(read, "read: granted words");

    assert_eq!(
        outcome(&["-p", "mode=env", "-p", "var=WEFT_TEST_SECRET"]),
        "<unset>"
    );
    assert_eq!(
        outcome(&[
            "-p",
            "mode=env",
            "-p",
            "var=WEFT_TEST_SECRET",
            "--env",
            "WEFT_TEST_SECRET"
        ]),
        "hunter2"
    );

    // JS's network is fetch over wasi:http, which steps are built without: the request cannot
    // start (the stubbed import traps), and nothing connects, granted network or not.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = format!("addr:string={}", listener.local_addr().unwrap());
    for grant in [&[][..], &["--allow-network"][..]] {
        let mut args = vec!["-p", "mode=net", "-p", &addr];
        args.extend_from_slice(grant);
        let line = run(&args).failure();
        assert!(line.contains("step trapped"), "{line}");
    }
    assert!(listener.accept().is_err(), "a JS step connected");
}

#[test]
fn a_js_step_stops_at_the_memory_and_time_limits() {
    let s = Scratch::new();
    let line = s
        .run(MISBEHAVE_JS, &["-p", "mode=alloc", "--memory", "64MiB"])
        .failure();
    assert!(
        line.contains("memory limit exceeded") && line.contains("limit 67108864 bytes"),
        "{line}"
    );
    let line = s
        .run(MISBEHAVE_JS, &["-p", "mode=loop", "--timeout", "300ms"])
        .failure();
    assert!(
        line.contains("time limit exceeded") && line.contains("0.300s"),
        "{line}"
    );
}

#[test]
fn new_and_build_make_a_js_step_that_runs() {
    new_build_and_test("js");
}

/// The task `name` of a `--json` run summary.
fn task<'a>(summary: &'a Value, name: &str) -> &'a Value {
    summary["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no task {name} in {summary}"))
}

fn outputs(summary: &Value, name: &str) -> Value {
    serde_json::from_str(task(summary, name)["outputs_json"].as_str().unwrap()).unwrap()
}

/// examples/pipelines/polyglot: Python -> JavaScript -> C -> Rust, run, cached like any other
/// pipeline, and replayed to the same bytes.
#[test]
fn a_pipeline_in_four_languages_runs_is_cached_and_replays_exactly() {
    let s = Scratch::new();
    let yaml = s.path("polyglot.yaml");
    std::fs::write(&yaml, example_pipeline_text("polyglot/pipeline.yaml")).unwrap();
    let run = |args: &[&str]| {
        let out = succeed(
            s.wasm_run()
                .args(["pipeline", "run"])
                .arg(&yaml)
                .args(args)
                .arg("--json"),
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let first = run(&["--hermetic-seed", "3", "--run-id", "poly"]);
    assert_eq!(first["state"], "SUCCEEDED", "{first}");
    assert_eq!(outputs(&first, "profile")["rows"]["value"], 150);
    let (kept, dropped) = (
        outputs(&first, "filter")["kept_rows"]["value"]
            .as_i64()
            .unwrap(),
        outputs(&first, "filter")["dropped_rows"]["value"]
            .as_i64()
            .unwrap(),
    );
    // iris has one row with a sepal narrower than the default 2.2.
    assert_eq!((kept, dropped), (149, 1));
    assert_eq!(outputs(&first, "scale")["rows"]["value"], kept);
    let accuracy = outputs(&first, "evaluate")["accuracy"]["value"]
        .as_f64()
        .unwrap();
    assert!(accuracy >= 0.9, "{accuracy}");

    let again = run(&["--hermetic-seed", "3"]);
    for t in again["tasks"].as_array().unwrap() {
        assert_eq!(t["state"], "SKIPPED", "every task is a cache hit: {t}");
        assert_eq!(t["cached_from"], "poly", "{t}");
    }

    let replay = s
        .wasm_run()
        .args(["pipeline", "replay", "poly"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&replay.stdout);
    assert_eq!(
        replay.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    assert!(
        stdout.contains("19/19 outputs reproduced exactly"),
        "{stdout}"
    );
}

#[test]
fn build_names_a_missing_or_bad_manifest() {
    let s = Scratch::new();
    let out = s.wasm_run().arg("build").arg(s.path("")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a component project (no readable weft.toml"),
        "{err}"
    );
    std::fs::write(
        s.path("weft.toml"),
        "[component]\nname = \"x\"\nlanguage = \"cobol\"\n",
    )
    .unwrap();
    let out = s.wasm_run().arg("build").arg(s.path("")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("weft.toml") && err.contains("cobol"), "{err}");
}
