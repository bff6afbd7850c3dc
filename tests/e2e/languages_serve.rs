//! A predictor written in Python (`components/iris-predictor-py`, the `weft` SDK's
//! `@weft.predictor`) served through `wasm-run serve`: the V2 endpoints, the same answers as the
//! Rust iris-predictor, the SDK's errors as HTTP codes, and its after-`load` snapshot compiled
//! once, then taken from the compiled cache at every restart with the same model.

use crate::serve::{component, get, post, start_listening_as, trained_iris, write_iris_model};
use crate::support::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// A server started with `RUST_LOG` showing what models write, ready, with the time it took
/// from the start of the process, and the lines of its log after that.
struct Started {
    server: crate::serve::Server,
    took: Duration,
    log: std::sync::mpsc::Receiver<String>,
}

fn start_timed(s: &Scratch, args: &[&str]) -> Started {
    let started = Instant::now();
    let mut wasm_run = s.wasm_run();
    wasm_run.env("RUST_LOG", "weft::model=info");
    let (server, mut lines) = start_listening_as(wasm_run, args);
    let ready = lines.find(|l| l.as_ref().is_ok_and(|l| l.starts_with("ready:")));
    assert!(ready.is_some(), "the server exited before it was ready");
    let took = started.elapsed();
    // Keep draining stderr so the server never blocks on a full pipe.
    let (send, log) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = send.send(line);
        }
    });
    Started { server, took, log }
}

/// The server's log lines until one contains all of `texts` (that one included); fails after
/// 30 s.
fn wait_for_log(log: &std::sync::mpsc::Receiver<String>, texts: &[&str]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match log.recv_timeout(left) {
            Ok(line) => {
                let done = texts.iter().all(|t| line.contains(t));
                seen.push(line);
                if done {
                    return seen;
                }
            }
            Err(_) => panic!(
                "no log line with {texts:?}; the log said:\n{}",
                seen.join("\n")
            ),
        }
    }
}

fn infer_body(rows: &[Vec<f64>]) -> String {
    json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [rows.len(), 4], "data": rows}]})
        .to_string()
}

/// Output `name` of a V2 response.
fn output<'a>(resp: &'a Value, name: &str) -> &'a Vec<Value> {
    resp["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no output {name} in {resp}"))["data"]
        .as_array()
        .unwrap()
}

fn floats(values: &[Value]) -> Vec<f64> {
    values.iter().map(|v| v.as_f64().unwrap()).collect()
}

/// The iris model with one class fewer than it has weights: a row the third class wins makes
/// the Python model fail with an `IndexError` (not a bad request: the model is broken); any
/// other row, with probabilities the shape it declares no longer holds.
fn write_broken_model(dir: &Path) {
    write_iris_model(dir);
    let path = dir.join("model.json");
    let mut model: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    model["classes"] = json!(["setosa", "versicolor"]);
    std::fs::write(&path, model.to_string()).unwrap();
}

#[test]
fn a_python_predictor_answers_v2_like_the_rust_one_with_its_errors_as_http_codes() {
    let s = Scratch::new();
    let (model, rows) = trained_iris(&s);
    let broken = s.path("broken");
    write_broken_model(&broken);
    let py = component("iris-predictor-py");
    let started = start_timed(
        &s,
        &[
            "--model",
            &format!("iris-py={py}:{}", model.display()),
            "--model",
            &format!(
                "iris-rs={}:{}",
                component("iris-predictor"),
                model.display()
            ),
            "--model",
            &format!("broken={py}:{}", broken.display()),
        ],
    );
    eprintln!(
        "three models (two Python snapshots) ready in {:.1} s",
        started.took.as_secs_f64()
    );
    let u = |p: &str| format!("{}{p}", started.server.url);

    // Ready and metadata, as the Rust model answers them.
    assert_eq!(get(&u("/v2/health/ready")), (200, json!({"ready": true})));
    assert_eq!(
        get(&u("/v2/models/iris-py/ready")),
        (200, json!({"name": "iris-py", "ready": true}))
    );
    assert_eq!(get(&u("/v2/models/iris-py/versions/1/ready")).0, 200);
    let (code, meta) = get(&u("/v2/models/iris-py"));
    assert_eq!(code, 200, "{meta}");
    assert_eq!(meta["name"], "iris-py");
    assert_eq!(meta["versions"], json!(["1"]));
    assert_eq!(meta["platform"], "weft-logistic-regression-python");
    assert_eq!(
        meta["inputs"],
        json!([{"name": "input", "datatype": "FP32", "shape": [-1, 4]}])
    );
    assert_eq!(
        meta["outputs"],
        json!([
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
            {"name": "label", "datatype": "BYTES", "shape": [-1]}
        ])
    );
    let (_, rust_meta) = get(&u("/v2/models/iris-rs"));
    assert_eq!(meta["inputs"], rust_meta["inputs"]);
    assert_eq!(meta["outputs"], rust_meta["outputs"]);

    // The held-out rows and every row of the data set: the same classes as the Rust model,
    // and probabilities equal to FP32's precision.
    let data = std::fs::read_to_string(repo_file("examples/data/iris.csv")).unwrap();
    let raw: Vec<Vec<f64>> = data
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').take(4).map(|v| v.parse().unwrap()).collect())
        .collect();
    let held_out: Vec<Vec<f64>> = rows.iter().map(|(x, _)| x.clone()).collect();
    for batch in [&held_out, &raw] {
        let body = infer_body(batch);
        let (code, p) = post(&u("/v2/models/iris-py/infer"), &body);
        assert_eq!(code, 200, "{p}");
        let (code, r) = post(&u("/v2/models/iris-rs/infer"), &body);
        assert_eq!(code, 200, "{r}");
        assert_eq!(p["model_name"], "iris-py");
        assert_eq!(output(&p, "label").len(), batch.len());
        assert_eq!(output(&p, "label"), output(&r, "label"));
        let (pp, rp) = (
            floats(output(&p, "probabilities")),
            floats(output(&r, "probabilities")),
        );
        assert_eq!(pp.len(), rp.len());
        for (a, b) in pp.iter().zip(&rp) {
            assert!((a - b).abs() < 1e-5, "python {a} rust {b}");
        }
    }
    let labels = output(
        &post(&u("/v2/models/iris-py/infer"), &infer_body(&held_out)).1,
        "label",
    )
    .clone();
    let correct = labels
        .iter()
        .zip(&rows)
        .filter(|(l, (_, y))| l.as_str() == Some(y.as_str()))
        .count();
    assert!(correct * 10 >= rows.len() * 9, "{correct}/{}", rows.len());

    // A malformed tensor is the SDK's `InvalidInput`: 400, the model's message in the body.
    let bad = [
        (
            json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]}),
            "input shape must be [batch, 4], got [1, 3]",
        ),
        (
            json!({"inputs": [{"name": "input", "datatype": "INT32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}),
            "input datatype must be FP32 or FP64, got INT32",
        ),
        (
            json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}),
            "expected an input named `input`",
        ),
    ];
    for (body, text) in &bad {
        let (code, resp) = post(&u("/v2/models/iris-py/infer"), &body.to_string());
        assert_eq!(code, 400, "{body}: {resp}");
        let error = resp["error"].as_str().unwrap_or_default();
        assert!(error.contains(text), "{body}: {resp}");
    }

    // The model failing (a Python exception other than `InvalidInput`): 500 with the
    // exception's type and message, its traceback in the server's log, and the server, that
    // model included, answering on.
    let virginica = [vec![1.0, -0.5, 2.0, 1.5]];
    let (code, resp) = post(&u("/v2/models/broken/infer"), &infer_body(&virginica));
    assert_eq!(code, 500, "{resp}");
    let error = resp["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("IndexError: list index out of range"),
        "{resp}"
    );
    let log = wait_for_log(&started.log, &["IndexError"]).join("\n");
    assert!(log.contains("Traceback") && log.contains("app.py"), "{log}");
    let setosa = [vec![-0.9, 1.0, -1.3, -1.3]];
    let (code, resp) = post(&u("/v2/models/iris-py/infer"), &infer_body(&setosa));
    assert_eq!(code, 200, "{resp}");
    assert_eq!(output(&resp, "label"), &vec![json!("setosa")]);
    let (code, resp) = post(&u("/v2/models/broken/infer"), &infer_body(&virginica));
    assert_eq!(code, 500, "{resp}");
    assert_eq!(get(&u("/v2/health/live")), (200, json!({"live": true})));

    // Triton's Python client, from PyPI, against the Python model unchanged.
    let Ok(python) = std::env::var("WEFT_TEST_PYTHON") else {
        tool_missing("WEFT_TEST_PYTHON unset: the tritonclient check of the Python predictor did not run (cargo xtask test installs it)");
        return;
    };
    let out = std::process::Command::new(python)
        .arg(repo_file("tests/e2e/v2_client.py"))
        .arg(started.server.url.trim_start_matches("http://"))
        .arg("iris-py")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}

/// The compiled cache's entries, as `wasm-run cache list` shows them: their file names.
fn cache_entries(s: &Scratch) -> Vec<String> {
    let out = succeed(s.wasm_run().args(["cache", "list", "--output", "json"]));
    let entries: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut names: Vec<String> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn a_python_predictors_snapshot_is_compiled_once_and_reused_until_its_model_changes() {
    let s = Scratch::new();
    let model = s.path("model");
    write_iris_model(&model);
    let spec = format!(
        "iris={}:{}",
        component("iris-predictor-py"),
        model.display()
    );
    let body = infer_body(&[vec![1.0, -0.5, 2.0, 1.5], vec![-0.9, 1.0, -1.3, -1.3]]);
    let serve = || {
        let started = start_timed(&s, &["--model", &spec]);
        let (code, resp) = post(
            &format!("{}/v2/models/iris/infer", started.server.url),
            &body,
        );
        assert_eq!(code, 200, "{resp}");
        (started.took, resp)
    };
    assert!(cache_entries(&s).is_empty());

    let (first, answer) = serve();
    let compiled = cache_entries(&s);
    assert!(!compiled.is_empty());
    // Restarts with the same component and model compile nothing and answer the same.
    let (second, again) = serve();
    assert_eq!(cache_entries(&s), compiled);
    assert_eq!(again, answer);
    let (third, _) = serve();
    assert_eq!(cache_entries(&s), compiled);
    eprintln!(
        "start to ready: {:.1} s first, {:.1} s second, {:.1} s third ({} compiled entries)",
        first.as_secs_f64(),
        second.as_secs_f64(),
        third.as_secs_f64(),
        compiled.len()
    );
    assert!(second < first, "{second:?} then {first:?}");

    // The same file changed in place is another model: a snapshot of its own (one entry more,
    // the component's own compiles reused), and its answers, not the old model's.
    let path = model.join("model.json");
    let mut changed: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    changed["bias"] = json!([5.0, 1.5, -1.3]);
    std::fs::write(&path, changed.to_string()).unwrap();
    let (_, other) = serve();
    let now = cache_entries(&s);
    assert_eq!(now.len(), compiled.len() + 1, "{compiled:?} then {now:?}");
    assert!(compiled.iter().all(|e| now.contains(e)));
    assert_ne!(other["outputs"], answer["outputs"]);
    assert_eq!(output(&other, "label")[1], "setosa");

    // And back: the first model's snapshot is still there, and used.
    write_iris_model(&model);
    let (_, back) = serve();
    assert_eq!(back, answer);
    assert_eq!(cache_entries(&s), now);
}
