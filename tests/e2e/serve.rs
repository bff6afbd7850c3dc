//! `wasm-run serve` through HTTP: every V2 endpoint, the error codes, and faults that stay in
//! their own request.

use crate::support::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

pub(crate) fn component(name: &str) -> String {
    Path::new(NOOP)
        .with_file_name(format!("{name}.wasm"))
        .display()
        .to_string()
}

/// A running server; killed when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) url: String,
    /// The admin listener (by default loopback, a free port with `--port 0`), if any.
    pub(crate) admin: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `wasm-run serve` and waits until its models have loaded.
pub(crate) fn start(s: &Scratch, args: &[&str]) -> Server {
    start_as(s.wasm_run(), args)
}

/// [`start`] with a `wasm-run` command of the caller's (its environment, say).
pub(crate) fn start_as(wasm_run: std::process::Command, args: &[&str]) -> Server {
    let (server, mut lines) = start_listening_as(wasm_run, args);
    loop {
        let line = lines
            .next()
            .expect("server exited before it was ready")
            .unwrap();
        if line.starts_with("ready:") {
            break;
        }
    }
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    server
}

/// Starts `wasm-run serve` and returns as soon as it listens, models perhaps still loading.
fn start_listening(
    s: &Scratch,
    args: &[&str],
) -> (Server, std::io::Lines<BufReader<std::process::ChildStderr>>) {
    start_listening_as(s.wasm_run(), args)
}

/// [`start_listening`] with a `wasm-run` command of the caller's (its environment, say).
pub(crate) fn start_listening_as(
    mut wasm_run: std::process::Command,
    args: &[&str],
) -> (Server, std::io::Lines<BufReader<std::process::ChildStderr>>) {
    let mut child = wasm_run
        .args(["serve", "--port", "0"])
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    // The admin address is printed first, if there is one.
    let mut admin = None;
    let url = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .unwrap();
        if let Some(addr) = line.strip_prefix("admin on ") {
            admin = Some(addr.to_string());
        }
        if let Some(addr) = line.strip_prefix("listening on ") {
            break addr.to_string();
        }
    };
    (Server { child, url, admin }, lines)
}

/// More requests than the server has async worker threads (one per core).
fn more_than_workers() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get()) + 2
}

/// Waits until the server counts `n` requests in flight (its autoscaling gauge), calling
/// `between` at each poll (to check what must hold meanwhile); fails after a minute.
fn wait_in_flight(server_url: &str, n: usize, between: impl Fn()) {
    wait_for_gauge(server_url, "weft_requests_in_flight", n, between)
}

/// Waits until the server's gauge `name` reads `n`, as [`wait_in_flight`] does.
fn wait_for_gauge(server_url: &str, name: &str, n: usize, between: impl Fn()) {
    let metrics = format!("{server_url}/metrics");
    let line = format!("{name} {n}\n");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let text = ureq::get(&metrics).call().unwrap().into_string().unwrap();
        if text.contains(&line) {
            return;
        }
        between();
        assert!(
            std::time::Instant::now() < deadline,
            "never {name} {n}: {text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

pub(crate) fn get(url: &str) -> (u16, Value) {
    match ureq::get(url).call() {
        Ok(r) => (r.status(), r.into_json().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(Value::Null)),
        Err(e) => panic!("{url}: {e}"),
    }
}

pub(crate) fn post(url: &str, body: &str) -> (u16, Value) {
    match ureq::post(url)
        .set("Content-Type", "application/json")
        .send_string(body)
    {
        Ok(r) => (r.status(), r.into_json().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(Value::Null)),
        Err(e) => panic!("{url}: {e}"),
    }
}

/// Trains the iris model with the example pipeline and returns (model dir, test rows).
pub(crate) fn trained_iris(s: &Scratch) -> (PathBuf, Vec<(Vec<f64>, String)>) {
    let text = example_text("pipeline.yaml");
    let yaml = s.path("iris.yaml");
    std::fs::write(&yaml, text).unwrap();
    let out = succeed(
        s.wasm_run()
            .args(["pipeline", "run"])
            .arg(&yaml)
            .arg("--json"),
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let digest = |task: &str, name: &str| output_digest(&summary, task, name);
    let get_artifact = |digest: String, to: &str| {
        let dir = s.path(to);
        assert!(s
            .wasm_run()
            .args(["artifacts", "get", &digest, "--to"])
            .arg(&dir)
            .status()
            .unwrap()
            .success());
        dir
    };
    let model = get_artifact(digest("train", "model"), "model");
    let test = get_artifact(digest("standardize", "test"), "test");
    (model, iris_rows(&test.join("data.csv")))
}

/// The rows of an iris CSV: four features and the species.
fn iris_rows(csv: &Path) -> Vec<(Vec<f64>, String)> {
    std::fs::read_to_string(csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[..4].iter().map(|v| v.parse().unwrap()).collect(),
                f[4].to_string(),
            )
        })
        .collect()
}

#[test]
fn the_trained_iris_model_is_served_over_v2() {
    let s = Scratch::new();
    let (model, rows) = trained_iris(&s);
    let server = start(
        &s,
        &[
            "--model",
            &format!("iris={}:{}", component("iris-predictor"), model.display()),
        ],
    );
    let u = |p: &str| format!("{}{p}", server.url);

    assert_eq!(get(&u("/v2/health/live")), (200, json!({"live": true})));
    assert_eq!(get(&u("/v2/health/ready")), (200, json!({"ready": true})));
    assert_eq!(get(&u("/v2")).1["name"], "weft");
    assert_eq!(get(&u("/v2/models")).1["models"][0]["name"], "iris");
    let (code, meta) = get(&u("/v2/models/iris"));
    assert_eq!(code, 200);
    assert_eq!(
        meta["inputs"],
        json!([{"name": "input", "datatype": "FP32", "shape": [-1, 4]}])
    );
    assert_eq!(get(&u("/v2/models/iris/versions/1")).1, meta);
    assert_eq!(
        get(&u("/v2/models/iris/ready")),
        (200, json!({"name": "iris", "ready": true}))
    );
    assert_eq!(get(&u("/v2/models/iris/versions/1/ready")).0, 200);
    assert_eq!(get(&u("/v2/models/iris/versions/2")).0, 404);
    assert_eq!(get(&u("/v2/models/nope")).0, 404);
    assert_eq!(get(&u("/v2/models/nope/ready")).0, 404);

    // The held-out rows, one batch (nested data), labels selected, id echoed.
    let data: Vec<Vec<f64>> = rows.iter().map(|(x, _)| x.clone()).collect();
    let body = json!({"id": "batch-1", "inputs": [{"name": "input", "datatype": "FP32", "shape": [rows.len(), 4], "data": data}], "outputs": [{"name": "label"}]});
    let (code, resp) = post(&u("/v2/models/iris/infer"), &body.to_string());
    assert_eq!(code, 200, "{resp}");
    assert_eq!(resp["id"], "batch-1");
    assert_eq!(resp["model_name"], "iris");
    let outputs = resp["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 1);
    let labels = outputs[0]["data"].as_array().unwrap();
    let correct = labels
        .iter()
        .zip(&rows)
        .filter(|(l, (_, y))| l.as_str() == Some(y.as_str()))
        .count();
    assert!(
        correct as f64 / rows.len() as f64 >= 0.9,
        "{correct}/{}",
        rows.len()
    );

    // Flat data, both outputs, versioned path.
    let flat: Vec<f64> = rows[0].0.clone();
    let body =
        json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": flat}]});
    let (code, resp) = post(&u("/v2/models/iris/versions/1/infer"), &body.to_string());
    assert_eq!(code, 200);
    let probs: Vec<f64> = resp["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-5);

    // Errors, with KServe's codes and `{"error": ...}` bodies.
    let cases = [
        ("{not json", 400, "malformed JSON"),
        (
            r#"{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1, 2]}]}"#,
            400,
            "needs 4 elements",
        ),
        (
            r#"{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]}"#,
            400,
            "input shape must be [batch, 4]",
        ),
        (
            r#"{"inputs": [{"name": "input", "datatype": "FP99", "shape": [1], "data": [1]}]}"#,
            400,
            "unknown datatype",
        ),
        (
            r#"{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}], "outputs": [{"name": "nope"}]}"#,
            400,
            "no output `nope`",
        ),
    ];
    for (body, code, text) in cases {
        let (got, resp) = post(&u("/v2/models/iris/infer"), body);
        assert_eq!(got, code, "{body}: {resp}");
        assert!(
            resp["error"].as_str().unwrap().contains(text),
            "{body}: {resp}"
        );
    }
    assert_eq!(post(&u("/v2/models/nope/infer"), "{}").0, 404);
}

#[test]
fn requests_and_what_models_write_reach_the_structured_log_when_asked_for() {
    let s = Scratch::new();
    let mut wasm_run = s.wasm_run();
    wasm_run.env("RUST_LOG", "weft::access=info,weft::model=info");
    let model = format!("echo={}", component("echo-predictor"));
    let (server, lines) =
        start_listening_as(wasm_run, &["--log-format", "json", "--model", &model]);
    let url = format!("{}/v2/models/echo/infer", server.url);
    let body = r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [2.5]}]}"#;
    let mut code = 0;
    for _ in 0..200 {
        code = post(&url, body).0;
        if code != 503 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(code, 200);
    let say = r#"{"inputs": [{"name": "say", "datatype": "BYTES", "shape": [1], "data": ["hello from the model"]}]}"#;
    assert_eq!(post(&url, say).0, 200);
    assert_eq!(
        post(&format!("{}/v2/models/nope/infer", server.url), body).0,
        404
    );
    // One JSON object per request, with what an access log needs; and what the model wrote to
    // stderr, with the model it came from.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut model_said = None;
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(30)) {
        let Ok(entry) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let fields = &entry["fields"];
        if entry["target"] == "weft::model" {
            model_said = Some(fields.clone());
            continue;
        }
        if entry["target"] != "weft::access" {
            continue;
        }
        assert_eq!(fields["method"], "POST", "{line}");
        assert!(fields["latency_ms"].as_f64().is_some(), "{line}");
        seen.push((
            fields["uri"].as_str().unwrap().to_string(),
            fields["status"].as_u64().unwrap(),
        ));
        if seen.iter().any(|(_, status)| *status == 404) && model_said.is_some() {
            break;
        }
    }
    let model_said = model_said.expect("a weft::model line");
    assert_eq!(
        model_said["message"], "hello from the model",
        "{model_said}"
    );
    assert_eq!(model_said["model"], "echo", "{model_said}");
    assert!(
        seen.contains(&("/v2/models/echo/infer".to_string(), 200)),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("/v2/models/nope/infer".to_string(), 404)),
        "{seen:?}"
    );
}

#[test]
fn protocol_extensions_it_does_not_implement_answer_501() {
    let s = Scratch::new();
    let server = start(
        &s,
        &["--model", &format!("echo={}", component("echo-predictor"))],
    );
    let url = |path: &str| format!("{}{path}", server.url);
    let unsupported = |(code, body): (u16, Value), what: &str| {
        assert_eq!(code, 501, "{what}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains("not supported"), "{what}: {body}");
    };
    // KServe's model repository and Triton's shared-memory endpoints.
    unsupported(post(&url("/v2/repository/index"), "{}"), "repository index");
    unsupported(
        post(&url("/v2/repository/models/echo/load"), "{}"),
        "repository load",
    );
    unsupported(
        post(&url("/v2/repository/models/echo/unload"), "{}"),
        "repository unload",
    );
    unsupported(get(&url("/v2/systemsharedmemory/status")), "system shm");
    unsupported(
        post(&url("/v2/cudasharedmemory/region/r0/register"), "{}"),
        "cuda shm",
    );
    // Extension parameters on an inference are refused, not ignored.
    let infer = url("/v2/models/echo/infer");
    unsupported(
        post(
            &infer,
            r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "parameters": {"shared_memory_region": "r0", "shared_memory_byte_size": 4}}]}"#,
        ),
        "input in shared memory",
    );
    unsupported(
        post(
            &infer,
            r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}], "outputs": [{"name": "x_out", "parameters": {"classification": 2}}]}"#,
        ),
        "classification",
    );
    let (code, body) = post(
        &infer,
        r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}]}"#,
    );
    assert_eq!(code, 200, "{body}");
}

/// A `busy` request of size `n` for the host-busy predictor: one n×n matmul on the host.
fn busy(n: u32) -> String {
    format!(r#"{{"inputs": [{{"name": "n", "datatype": "UINT32", "shape": [1], "data": [{n}]}}]}}"#)
}

/// The `n` whose one matmul takes about `seconds` on the server at `url` (the host-busy
/// predictor), measured with a small one: the CPU backend is much slower in a debug build.
fn matmul_size_taking(url: &str, seconds: f64) -> u32 {
    let n0 = 384u32;
    let started = std::time::Instant::now();
    let (code, body) = post(url, &busy(n0));
    assert_eq!(code, 200, "{body}");
    let scale = (seconds / started.elapsed().as_secs_f64()).cbrt();
    // 4000² ones sum exactly in f32 (below 2²⁴).
    ((n0 as f64 * scale) as u32).clamp(n0, 4000)
}

#[test]
fn requests_busy_in_host_calls_hold_up_no_other_request() {
    let s = Scratch::new();
    let busy_model = format!("busy={}", component("host-busy-predictor"));
    let echo = format!("echo={}", component("echo-predictor"));
    // More long host calls than the server has async workers.
    let busy_requests = more_than_workers();
    let concurrency = (busy_requests + 2).to_string();
    let server = start(
        &s,
        &[
            "--tensor-backend",
            "cpu",
            "--model",
            &busy_model,
            "--model",
            &echo,
            "--concurrency",
            &concurrency,
            "--timeout",
            "300s",
        ],
    );
    let busy_url = format!("{}/v2/models/busy/infer", server.url);
    let (code, body) = post(&busy_url, &busy(64));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["outputs"][0]["data"], json!([4096.0]), "64 * 64 ones");
    let n = matmul_size_taking(&busy_url, 2.0);
    let big = busy(n);
    std::thread::scope(|scope| {
        let working: Vec<_> = (0..busy_requests)
            .map(|_| scope.spawn(|| post(&busy_url, &big)))
            .collect();
        wait_in_flight(&server.url, busy_requests, || {
            assert!(working.iter().all(|h| !h.is_finished()));
        });
        let (code, body) = post(
            &format!("{}/v2/models/echo/infer", server.url),
            r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.5]}]}"#,
        );
        assert_eq!(code, 200, "{body}");
        assert_eq!(get(&format!("{}/v2/health/ready", server.url)).0, 200);
        assert!(
            working.iter().all(|h| !h.is_finished()),
            "the other requests were answered only after a host call ended"
        );
        for h in working {
            let (code, body) = h.join().unwrap();
            assert_eq!(code, 200, "{body}");
            assert_eq!(body["outputs"][0]["data"], json!([(n as f64) * (n as f64)]));
        }
    });
}

#[test]
fn a_request_past_its_time_limit_inside_a_host_call_is_answered_at_the_limit() {
    let s = Scratch::new();
    let busy_model = format!("busy={}", component("host-busy-predictor"));
    let server = start(
        &s,
        &[
            "--tensor-backend",
            "cpu",
            "--model",
            &busy_model,
            "--timeout",
            "1s",
        ],
    );
    let url = format!("{}/v2/models/busy/infer", server.url);
    // A size whose matmul takes about four seconds with this build of the CPU backend, while
    // making its matrix (the host call before it, n² work against n³) stays well inside 1 s.
    // The estimate is one measurement: if the call still ends inside the limit (a faster
    // moment), the size grows until one does not; what is checked is the answer to that one.
    let mut n = matmul_size_taking(&url, 4.0);
    let (code, body) = loop {
        let (code, body) = post(&url, &busy(n));
        if code != 200 || n >= 4000 {
            break (code, body);
        }
        n = (n * 2).min(4000);
    };
    assert_eq!(code, 500, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("time limit exceeded") && error.contains("inside a host call"),
        "{body}"
    );
    // The server goes on (the call finishes on its blocking thread, then its instance goes).
    assert_eq!(get(&format!("{}/v2/health/live", server.url)).0, 200);
    assert_eq!(get(&format!("{}/v2/models/busy", server.url)).0, 200);
}

/// `--max-output` bounds the whole response body: tensors, and names, shapes and parameters
/// (which the echo model answers as it is sent them).
#[test]
fn an_answer_over_the_output_limit_fails_the_request() {
    let s = Scratch::new();
    let model = format!("echo={}", component("echo-predictor"));
    let server = start(&s, &["--model", &model, "--max-output", "1KiB"]);
    let url = format!("{}/v2/models/echo/infer", server.url);
    let request = |name: &str, shape: Vec<usize>, data: Vec<f64>, parameters: Value| {
        json!({"inputs": [{"name": name, "datatype": "FP32", "shape": shape, "data": data}],
               "parameters": parameters})
        .to_string()
    };
    let (code, body) = post(&url, &request("x", vec![200], vec![0.5; 200], json!({})));
    assert_eq!(code, 200, "{body}");
    for (what, large) in [
        (
            "tensor data",
            request("x", vec![300], vec![0.5; 300], json!({})),
        ),
        (
            "parameters",
            request("x", vec![1], vec![0.5], json!({"p": "a".repeat(2000)})),
        ),
        (
            "a tensor name",
            request(&"n".repeat(2000), vec![1], vec![0.5], json!({})),
        ),
        ("a shape", request("x", vec![0; 1000], vec![], json!({}))),
    ] {
        let (code, body) = post(&url, &large);
        assert_eq!(code, 500, "{what}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains("output limit exceeded") && error.contains("limit of 1024 bytes"),
            "{what}: {body}"
        );
    }
}

#[test]
fn requests_beyond_the_concurrency_limit_wait_for_a_slot() {
    let s = Scratch::new();
    let model = format!("echo={}", component("echo-predictor"));
    let server = start(&s, &["--model", &model, "--concurrency", "1"]);
    let url = format!("{}/v2/models/echo/infer", server.url);
    let slow =
        r#"{"inputs": [{"name": "sleep", "datatype": "UINT32", "shape": [1], "data": [5000]}]}"#;
    let fast = r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.5]}]}"#;
    std::thread::scope(|scope| {
        let slow = scope.spawn(|| post(&url, slow));
        wait_in_flight(&server.url, 1, || {});
        // The one slot is taken: the fast request waits in the queue, unanswered, while the
        // slow one holds the slot (events, not timings: the server's own gauges say so).
        let fast = scope.spawn(|| post(&url, fast));
        wait_for_gauge(&server.url, "weft_requests_queued", 1, || {
            assert!(
                !fast.is_finished(),
                "the fast request was answered while the slot was busy"
            )
        });
        assert!(
            !slow.is_finished(),
            "the slow request ended before the fast one queued"
        );
        assert!(!fast.is_finished(), "answered while the only slot was busy");
        let (code, body) = fast.join().unwrap();
        assert_eq!(code, 200, "{body}");
        assert_eq!(slow.join().unwrap().0, 200);
    });
}

/// Each model version has its own slots and queue: with one slot and a queue of one, a model
/// whose requests spin (one running, one waiting) answers 503 to the next at once, and another
/// model answers as ever.
#[test]
fn a_busy_models_full_queue_answers_503_and_other_models_keep_answering() {
    let s = Scratch::new();
    let echo = component("echo-predictor");
    let (busy, calm) = (format!("busy={echo}"), format!("calm={echo}"));
    let server = start(
        &s,
        &[
            "--model",
            &busy,
            "--model",
            &calm,
            "--concurrency",
            "1",
            "--queue",
            "1",
            "--timeout",
            "600s",
        ],
    );
    let busy_url = format!("{}/v2/models/busy/infer", server.url);
    let spin = r#"{"inputs": [{"name": "spin", "datatype": "INT8", "shape": [1], "data": [1]}]}"#;
    let spinning: Vec<_> = (0..2)
        .map(|_| {
            let url = busy_url.clone();
            // Answered only when the server is killed, at the end.
            std::thread::spawn(move || ureq::post(&url).send_string(spin).is_err())
        })
        .collect();
    // One of them waits: the other has busy's slot, and spins.
    let metrics = format!("{}/metrics", server.url);
    while !ureq::get(&metrics)
        .call()
        .unwrap()
        .into_string()
        .unwrap()
        .contains("weft_requests_queued 1\n")
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let good = r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.5]}]}"#;
    let (code, body) = post(&busy_url, good);
    assert_eq!(code, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("the queue is full"),
        "{body}"
    );
    let (code, body) = post(&format!("{}/v2/models/calm/infer", server.url), good);
    assert_eq!(code, 200, "{body}");
    assert!(
        spinning.iter().all(|h| !h.is_finished()),
        "a spinning request was answered"
    );
}

/// The data port is what a Kubernetes Service exposes to every pod: the admin endpoints are not
/// on it but on a listener of their own, on loopback, and with a token set they need it.
#[test]
fn admin_endpoints_answer_on_their_own_listener_with_the_token() {
    let s = Scratch::new();
    let model = format!("echo={}", component("echo-predictor"));
    let mut wasm_run = s.wasm_run();
    wasm_run.env("WEFT_ADMIN_TOKEN", "s3cret");
    let server = start_as(wasm_run, &["--model", &model]);
    let admin = server.admin.clone().expect("an admin listener by default");
    assert!(admin.starts_with("http://127.0.0.1:"), "{admin}");
    let (code, body) = get(&format!("{}/admin/models/echo/traffic", server.url));
    assert_eq!(code, 404, "the data port serves no admin endpoint: {body}");
    assert!(body["error"].is_string(), "{body}");
    let traffic = |token: Option<&str>| {
        let mut cmd = s.wasm_run();
        cmd.args(["traffic", "--server", &admin, "echo", "show"]);
        if let Some(token) = token {
            cmd.env("WEFT_ADMIN_TOKEN", token);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, out) = traffic(None);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("401") && out.contains("admin token"), "{out}");
    let (code, out) = traffic(Some("s3cret"));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(r#"echo: {"1":100}"#), "{out}");

    // Off, there is none; on another address than loopback, not without a token.
    let off = start(&s, &["--model", &model, "--admin-listen", "off"]);
    assert!(off.admin.is_none());
    let out = s
        .wasm_run()
        .args([
            "serve",
            "--port",
            "0",
            "--model",
            &model,
            "--admin-listen",
            "0.0.0.0:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "refused at start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not on loopback") && err.contains("WEFT_ADMIN_TOKEN"),
        "{err}"
    );
}

/// Kubernetes stops a pod with SIGTERM: the request in flight is answered, then the server exits
/// cleanly.
#[test]
fn a_terminated_server_answers_the_request_in_flight_then_exits() {
    answers_the_request_in_flight_then_exits("-TERM", "terminate");
}

#[test]
fn an_interrupted_server_answers_the_request_in_flight_then_exits() {
    answers_the_request_in_flight_then_exits("-INT", "interrupt");
}

fn answers_the_request_in_flight_then_exits(signal: &str, named: &str) {
    let s = Scratch::new();
    let model = format!("echo={}", component("echo-predictor"));
    let (mut server, lines) = start_listening(&s, &["--model", &model]);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = |want: &str| loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no stderr line with {want:?}"));
        if line.contains(want) {
            break line;
        }
    };
    next_line("ready:");
    let infer = format!("{}/v2/models/echo/infer", server.url);
    let slow = std::thread::spawn(move || {
        post(
            &infer,
            r#"{"inputs": [{"name": "sleep", "datatype": "UINT32", "shape": [1], "data": [1500]}]}"#,
        )
    });
    // Once the slow request is in flight, stop the server.
    wait_in_flight(&server.url, 1, || {});
    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap()
        .success());
    next_line(&format!(
        "shutting down ({named}): draining requests in flight"
    ));
    let (code, body) = slow.join().unwrap();
    assert_eq!(code, 200, "the request in flight is answered: {body}");
    assert_eq!(body["outputs"][0]["name"], "sleep_out", "{body}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not exit"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn every_json_datatype_and_parameters_pass_through_a_model() {
    let s = Scratch::new();
    let server = start(
        &s,
        &["--model", &format!("echo={}", component("echo-predictor"))],
    );
    let body = json!({
        "parameters": {"trace": "abc"},
        "inputs": [
            {"name": "b", "datatype": "BOOL", "shape": [2], "data": [true, false]},
            {"name": "u8", "datatype": "UINT8", "shape": [2], "data": [0, 255]},
            {"name": "u64", "datatype": "UINT64", "shape": [1], "data": [u64::MAX]},
            {"name": "i16", "datatype": "INT16", "shape": [2], "data": [-32768, 32767]},
            {"name": "i64", "datatype": "INT64", "shape": [1], "data": [i64::MIN]},
            {"name": "f64", "datatype": "FP64", "shape": [2, 1], "data": [[0.1], [-2.5]]},
            {"name": "s", "datatype": "BYTES", "shape": [2], "data": ["héllo", ""]},
        ]
    });
    let (code, resp) = post(
        &format!("{}/v2/models/echo/infer", server.url),
        &body.to_string(),
    );
    assert_eq!(code, 200, "{resp}");
    assert_eq!(resp["parameters"], json!({"trace": "abc"}));
    let out = |n: &str| {
        resp["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(out("b_out")["data"], json!([true, false]));
    assert_eq!(out("u8_out")["data"], json!([0, 255]));
    assert_eq!(out("u64_out")["data"], json!([u64::MAX]));
    assert_eq!(out("i16_out")["data"], json!([-32768, 32767]));
    assert_eq!(out("i64_out")["data"], json!([i64::MIN]));
    assert_eq!(out("f64_out")["data"], json!([0.1, -2.5]));
    assert_eq!(out("f64_out")["shape"], json!([2, 1]));
    assert_eq!(out("s_out")["data"], json!(["héllo", ""]));
    // A model's own rejection is a 400.
    let (code, resp) = post(
        &format!("{}/v2/models/echo/infer", server.url),
        r#"{"inputs": [{"name": "invalid", "datatype": "INT8", "shape": [1], "data": [1]}]}"#,
    );
    assert_eq!(
        (code, resp["error"].as_str().unwrap()),
        (400, "asked to reject")
    );
}

#[test]
fn a_failing_request_fails_alone_while_good_requests_keep_succeeding() {
    fails_alone("0");
}

/// With warm instances reused, a faulted one is thrown away, not handed to the next request.
#[test]
fn a_failing_request_fails_alone_with_a_warm_pool_too() {
    fails_alone("2");
}

fn fails_alone(pool: &str) {
    let s = Scratch::new();
    let model = format!("echo={}", component("echo-predictor"));
    let server = start(
        &s,
        &[
            "--model",
            &model,
            "--timeout",
            "500ms",
            "--memory",
            "32MiB",
            "--max-body",
            "64KiB",
            "--concurrency",
            "4",
            "--pool",
            pool,
        ],
    );
    let url = format!("{}/v2/models/echo/infer", server.url);
    let good = r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.5]}]}"#;
    let stop = std::sync::atomic::AtomicBool::new(false);
    // Whatever happens below, the stream stops when the scope unwinds or ends.
    struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    std::thread::scope(|scope| {
        let _stop_guard = StopOnDrop(&stop);
        let stream = scope.spawn(|| {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (code, resp) = post(&url, good);
                assert_eq!(code, 200, "a good request failed beside a bad one: {resp}");
                assert_eq!(resp["outputs"][0]["data"], json!([1.5]));
                n += 1;
            }
            n
        });
        let fault = |name: &str| {
            post(
                &url,
                &format!(
                    r#"{{"inputs": [{{"name": "{name}", "datatype": "INT8", "shape": [1], "data": [1]}}]}}"#
                ),
            )
        };
        for (input, cause) in [
            ("trap", "echo-predictor asked to trap"),
            ("spin", "time limit exceeded"),
            ("hog", "memory limit exceeded"),
        ] {
            let (code, resp) = fault(input);
            assert_eq!(code, 500, "{input}: {resp}");
            assert!(
                resp["error"].as_str().unwrap().contains(cause),
                "{input}: {resp}"
            );
        }
        let big = format!(
            r#"{{"inputs": [{{"name": "x", "datatype": "FP32", "shape": [20000], "data": [{}]}}]}}"#,
            vec!["1.0"; 20000].join(",")
        );
        let (code, body) = post(&url, &big);
        assert_eq!(code, 413, "a body over --max-body is refused");
        assert!(
            body["error"].as_str().unwrap().contains("--max-body"),
            "a 413 is a JSON error too: {body}"
        );
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(stream.join().unwrap() > 0);
    });
    // The server is still healthy, and its metrics saw all of it.
    assert_eq!(get(&format!("{}/v2/health/live", server.url)).0, 200);
    let (code, _) = post(
        &format!("{}/v2/models/nope/infer", server.url),
        r#"{"inputs": []}"#,
    );
    assert_eq!(code, 404);
    let metrics = ureq::get(&format!("{}/metrics", server.url))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        metrics.contains(r#"weft_requests_total{model_name="echo",code="500"} 3"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"weft_requests_total{model_name="echo",code="200"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"request_predict_seconds_count{model_name="echo"}"#),
        "{metrics}"
    );
    assert!(
        !metrics.contains(r#"model_name="nope""#),
        "requests for undeclared models make no series: {metrics}"
    );
    // Every request has finished: none is counted in flight (the autoscaling signal).
    assert!(metrics.contains("weft_requests_in_flight 0\n"), "{metrics}");
}

/// Requests run on the server's async workers, not on blocking threads: a request spinning in
/// wasm must yield its worker at every epoch tick, or more spinning requests than workers would
/// hold every good request back until their time limit.
#[test]
fn requests_spinning_on_every_worker_do_not_hold_up_a_good_one() {
    let s = Scratch::new();
    let model = format!("echo={}", component("echo-predictor"));
    let spinners = more_than_workers();
    let concurrency = (spinners + 2).to_string();
    let server = start(
        &s,
        &[
            "--model",
            &model,
            "--timeout",
            "5s",
            "--concurrency",
            &concurrency,
        ],
    );
    let url = format!("{}/v2/models/echo/infer", server.url);
    let spin = r#"{"inputs": [{"name": "spin", "datatype": "INT8", "shape": [1], "data": [1]}]}"#;
    let good = r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.5]}]}"#;
    std::thread::scope(|scope| {
        let spinning: Vec<_> = (0..spinners)
            .map(|_| scope.spawn(|| post(&url, spin)))
            .collect();
        // Wait until every spinner is inside the server.
        wait_in_flight(&server.url, spinners, || {
            assert!(
                spinning.iter().all(|h| !h.is_finished()),
                "the server answered nothing else while requests were spinning"
            );
        });
        let (code, resp) = post(&url, good);
        assert_eq!(code, 200, "{resp}");
        assert!(
            spinning.iter().all(|h| !h.is_finished()),
            "the good request was answered only after the spinning ones ended"
        );
        for h in spinning {
            let (code, resp) = h.join().unwrap();
            assert_eq!(code, 500, "{resp}");
            assert!(resp["error"]
                .as_str()
                .unwrap()
                .contains("time limit exceeded"));
        }
    });
}

#[test]
fn the_binary_tensor_extension_carries_fp16_and_mixes_with_json() {
    let s = Scratch::new();
    let server = start(
        &s,
        &["--model", &format!("echo={}", component("echo-predictor"))],
    );
    let url = format!("{}/v2/models/echo/infer", server.url);
    // FP16 1.0, -2.0, 0.5 and BF16 1.0, raw little-endian.
    let fp16: Vec<u8> = [0x3c00u16, 0xc000, 0x3800]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let bf16: Vec<u8> = 0x3f80u16.to_le_bytes().to_vec();
    let header = json!({
        "inputs": [
            {"name": "h", "datatype": "FP16", "shape": [3], "parameters": {"binary_data_size": 6}},
            {"name": "j", "datatype": "INT32", "shape": [2], "data": [7, 8]},
            {"name": "b", "datatype": "BF16", "shape": [1], "parameters": {"binary_data_size": 2}},
        ],
        "outputs": [{"name": "h_out", "parameters": {"binary_data": true}}, {"name": "b_out", "parameters": {"binary_data": true}}, {"name": "j_out"}],
    })
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(&fp16);
    body.extend_from_slice(&bf16);
    let resp = ureq::post(&url)
        .set("Inference-Header-Content-Length", &header.len().to_string())
        .send_bytes(&body)
        .unwrap();
    assert_eq!(
        resp.header("content-type"),
        Some("application/octet-stream")
    );
    let json_len: usize = resp
        .header("inference-header-content-length")
        .unwrap()
        .parse()
        .unwrap();
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut raw).unwrap();
    let head: Value = serde_json::from_slice(&raw[..json_len]).unwrap();
    let outs = head["outputs"].as_array().unwrap();
    let by = |n: &str| outs.iter().find(|o| o["name"] == n).unwrap().clone();
    assert_eq!(by("h_out")["parameters"]["binary_data_size"], 6);
    assert_eq!(by("b_out")["parameters"]["binary_data_size"], 2);
    assert_eq!(by("j_out")["data"], json!([7, 8]));
    // Binary outputs follow the JSON in the order listed.
    let blob = &raw[json_len..];
    let order: Vec<&str> = outs
        .iter()
        .filter(|o| o.get("data").is_none())
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    let mut expected = Vec::new();
    for name in order {
        expected.extend_from_slice(if name == "h_out" { &fp16 } else { &bf16 });
    }
    assert_eq!(blob, &expected[..]);

    // FP16 out as JSON is refused with a pointer to the extension; so is a short blob.
    let (code, resp) = match ureq::post(&url)
        .set("Inference-Header-Content-Length", &header.len().to_string())
        .send_bytes(&body[..body.len() - 1])
    {
        Err(ureq::Error::Status(code, r)) => (code, r.into_json::<Value>().unwrap()),
        other => panic!("{other:?}"),
    };
    assert_eq!(code, 400);
    assert!(
        resp["error"]
            .as_str()
            .unwrap()
            .contains("runs past the body"),
        "{resp}"
    );
    let plain = header.replace(r#""parameters":{"binary_data":true}"#, r#""parameters":{}"#);
    let mut body = plain.clone().into_bytes();
    body.extend_from_slice(&fp16);
    body.extend_from_slice(&bf16);
    let (code, resp) = match ureq::post(&url)
        .set("Inference-Header-Content-Length", &plain.len().to_string())
        .send_bytes(&body)
    {
        Err(ureq::Error::Status(code, r)) => (code, r.into_json::<Value>().unwrap()),
        other => panic!("{other:?}"),
    };
    assert_eq!(code, 400);
    assert!(
        resp["error"].as_str().unwrap().contains("binary_data"),
        "{resp}"
    );
}

/// Triton's Python client (from PyPI) talks to the server unchanged. `cargo xtask test` installs
/// it and sets WEFT_TEST_PYTHON; without it (no PyPI) the test says so and passes nothing off.
#[test]
fn an_independent_v2_client_from_pypi_works_unchanged() {
    let Ok(python) = std::env::var("WEFT_TEST_PYTHON") else {
        tool_missing("WEFT_TEST_PYTHON unset: the tritonclient test did not run (cargo xtask test installs it)");
        return;
    };
    let s = Scratch::new();
    let (model, _) = trained_iris(&s);
    let server = start(
        &s,
        &[
            "--model",
            &format!("iris={}:{}", component("iris-predictor"), model.display()),
        ],
    );
    let out = std::process::Command::new(python)
        .arg(repo_file("tests/e2e/v2_client.py"))
        .arg(server.url.trim_start_matches("http://"))
        .arg("iris")
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

#[test]
fn versions_split_traffic_and_promote_and_rollback_without_dropping_requests() {
    let s = Scratch::new();
    let echo = component("echo-predictor");
    let server = start(
        &s,
        &[
            "--model",
            &format!("echo@1={echo}"),
            "--model",
            &format!("echo@2={echo}"),
            "--traffic",
            "echo:1=90,2=10",
        ],
    );
    let url = format!("{}/v2/models/echo/infer", server.url);
    let good = r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.5]}]}"#;
    let version = |resp: &Value| resp["model_version"].as_str().unwrap().to_string();
    assert_eq!(
        get(&format!("{}/v2/models/echo", server.url)).1["versions"],
        json!(["1", "2"])
    );

    // 90/10, exactly, over 100 requests.
    let picks: Vec<String> = (0..100).map(|_| version(&post(&url, good).1)).collect();
    assert_eq!(picks.iter().filter(|v| *v == "2").count(), 10);
    assert_eq!(picks.iter().filter(|v| *v == "1").count(), 90);
    // A versioned request goes where it asks.
    assert_eq!(
        version(
            &post(
                &format!("{}/v2/models/echo/versions/2/infer", server.url),
                good
            )
            .1
        ),
        "2"
    );

    let traffic = |args: &[&str]| {
        let out = s
            .wasm_run()
            .args([
                "traffic",
                "--server",
                server.admin.as_deref().unwrap(),
                "echo",
            ])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Promote under load: no request fails, and afterwards all go to version 2.
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let stream = scope.spawn(|| {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (code, resp) = post(&url, good);
                assert_eq!(code, 200, "{resp}");
                n += 1;
            }
            n
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        let promoted = traffic(&["promote", "2"]);
        std::thread::sleep(std::time::Duration::from_millis(100));
        // Stop the stream before asserting, so a failure cannot leave it running.
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (code, out, err) = promoted;
        assert_eq!(code, Some(0), "{err}");
        assert!(out.contains(r#"{"2":100}"#), "{out}");
        assert!(stream.join().unwrap() > 0);
    });
    assert!((0..20).all(|_| version(&post(&url, good).1) == "2"));

    let (code, out, _) = traffic(&["rollback"]);
    assert_eq!(code, Some(0));
    assert!(out.contains(r#"{"1":90,"2":10}"#), "{out}");
    let (code, _, err) = traffic(&["set", "1=50,3=50"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no version `3`"), "{err}");
    let (code, out, _) = traffic(&["show"]);
    assert_eq!(code, Some(0));
    assert!(out.contains(r#"{"1":90,"2":10}"#), "{out}");
}

/// A logistic-regression `model.json` the iris predictor reads, written without training.
pub(crate) fn write_iris_model(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let model = json!({
        "kind": "logistic-regression",
        "features": ["a", "b", "c", "d"],
        "classes": ["setosa", "versicolor", "virginica"],
        "weights": [[-1.0, 1.2, -1.8, -1.7], [0.4, -0.9, -0.1, -0.6], [0.6, -0.3, 1.9, 2.3]],
        "bias": [-0.2, 1.5, -1.3],
    });
    std::fs::write(dir.join("model.json"), model.to_string()).unwrap();
}

#[test]
fn fresh_instances_start_from_a_snapshot_taken_after_load() {
    let s = Scratch::new();
    let body = json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1.0, -0.5, 2.0, 1.5]}]});
    let body = body.to_string();
    let mut answers = Vec::new();
    for (dir, extra) in [("snap", None), ("loading", Some("--no-snapshot"))] {
        let model = s.path(dir);
        write_iris_model(&model);
        let spec = format!("iris={}:{}", component("iris-predictor"), model.display());
        let mut args = vec!["--model", spec.as_str()];
        args.extend(extra);
        let server = start(&s, &args);
        let infer = format!("{}/v2/models/iris/infer", server.url);
        let (code, first) = post(&infer, &body);
        assert_eq!(code, 200, "{first}");
        // With the model's file gone, a snapshot instance still has the model in memory; one
        // that loads per request cannot load it any more, and says so.
        std::fs::remove_file(model.join("model.json")).unwrap();
        let again = post(&infer, &body);
        answers.push((first, again));
    }
    let (first, again) = &answers[0];
    assert_eq!(again, &(200, first.clone()));
    let (first, (code, err)) = &answers[1];
    assert_eq!(first, &answers[0].0);
    assert_eq!(*code, 500, "{err}");
    assert!(
        err["error"].as_str().unwrap().contains("loading the model"),
        "{err}"
    );
}

#[test]
fn a_model_still_loading_is_live_but_not_ready_and_answers_503() {
    let s = Scratch::new();
    let dir = s.path("slow");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("load-delay-ms"), "1500").unwrap();
    let spec = format!("echo={}:{}", component("echo-predictor"), dir.display());
    let (server, mut lines) = start_listening(&s, &["--model", &spec]);
    let u = |p: &str| format!("{}{p}", server.url);
    let body = json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.5]}]});
    let body = body.to_string();

    assert_eq!(get(&u("/v2/health/live")), (200, json!({"live": true})));
    assert_eq!(get(&u("/v2/health/ready")), (503, json!({"ready": false})));
    let (code, err) = get(&u("/v2/models/echo/ready"));
    assert_eq!(code, 503);
    assert!(
        err["error"].as_str().unwrap().contains("still loading"),
        "{err}"
    );
    assert_eq!(post(&u("/v2/models/echo/infer"), &body).0, 503);
    assert_eq!(get(&u("/v2/models")).1["models"][0]["ready"], false);
    assert_eq!(get(&u("/v2/models/nope/ready")).0, 404);

    let line = lines.find(|l| l.as_ref().unwrap().starts_with("ready:"));
    assert!(line.is_some(), "the server never became ready");
    std::thread::spawn(move || for _ in lines {});
    assert_eq!(get(&u("/v2/health/ready")), (200, json!({"ready": true})));
    assert_eq!(get(&u("/v2/models/echo/ready")).0, 200);
    let (code, resp) = post(&u("/v2/models/echo/infer"), &body);
    assert_eq!(code, 200, "{resp}");
    assert_eq!(resp["outputs"][0]["data"], json!([1.5]));
}

#[test]
fn a_model_that_fails_to_load_stops_the_server_with_its_error() {
    let s = Scratch::new();
    let dir = s.path("broken");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("load-delay-ms"), "soon").unwrap();
    let spec = format!("echo={}:{}", component("echo-predictor"), dir.display());
    let (_, err) = fails(
        s.wasm_run()
            .args(["serve", "--port", "0", "--model", &spec]),
    );
    assert!(
        err.contains("model `echo` version `1`") && err.contains("load-delay-ms"),
        "{err}"
    );
}

#[test]
fn an_inference_service_file_serves_its_predictor_and_canary_from_stored_artifacts() {
    let s = Scratch::new();
    let component = put_artifact(&s, Path::new(&component("iris-predictor")));
    let stable = s.path("stable");
    write_iris_model(&stable);
    let canary = s.path("canary");
    write_iris_model(&canary);
    // The canary's model differs: one more byte of whitespace is another digest.
    let text = std::fs::read_to_string(canary.join("model.json")).unwrap() + "\n";
    std::fs::write(canary.join("model.json"), text).unwrap();
    let (stable, canary) = (put_artifact(&s, &stable), put_artifact(&s, &canary));
    assert!(component.starts_with("sha256:") && stable != canary);
    let file = s.path("isvc.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: weft.dev/v1alpha1\nkind: InferenceService\nmetadata: {{name: iris}}\nspec:\n  predictor: {{component: \"{component}\", storageUri: \"{stable}\", timeout: 5s}}\n  canary: {{component: \"{component}\", storageUri: \"{canary}\", trafficPercent: 30}}\n"
        ),
    )
    .unwrap();
    let server = start(&s, &["-f", file.to_str().unwrap()]);
    let infer = format!("{}/v2/models/iris/infer", server.url);
    let body = json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1.0, -0.5, 2.0, 1.5]}]});
    let mut to_canary = 0;
    for _ in 0..100 {
        let (code, resp) = post(&infer, &body.to_string());
        assert_eq!(code, 200, "{resp}");
        to_canary += usize::from(resp["model_version"] == "2");
    }
    assert_eq!(to_canary, 30);

    // A model directory that does not exist is named with its place in the file.
    std::fs::write(
        &file,
        format!("apiVersion: weft.dev/v1alpha1\nkind: InferenceService\nmetadata: {{name: iris}}\nspec:\n  predictor:\n    component: \"{component}\"\n    storageUri: nowhere\n"),
    )
    .unwrap();
    let (_, err) = fails(s.wasm_run().args(["serve", "--port", "0", "-f"]).arg(&file));
    assert!(
        err.contains("isvc.yaml:7:") && err.contains("nowhere"),
        "{err}"
    );
}

#[test]
fn the_mlp_trained_through_the_tensor_bridge_is_served_through_it() {
    let s = Scratch::new();
    let data = repo_file("examples/data/iris.csv");
    let out = s.path("out");
    s.run(
        TRAIN_MLP,
        &[
            "--input",
            &format!("train={}", data.display()),
            "-p",
            "label=species",
            "--output-dir",
            out.to_str().unwrap(),
            "--output-artifact",
            "model",
            "--json",
        ],
    )
    .json();
    // Host tensors cannot be snapshotted: the server says so and loads per instance instead.
    let spec = format!(
        "iris={}:{}",
        component("mlp-predictor"),
        out.join("model").display()
    );
    let server = start(&s, &["--model", &spec]);
    let rows = iris_rows(&data);
    let batch: Vec<Vec<f64>> = rows.iter().map(|(x, _)| x.clone()).collect();
    let body = json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [rows.len(), 4], "data": batch}], "outputs": [{"name": "label"}]});
    let (code, resp) = post(
        &format!("{}/v2/models/iris/infer", server.url),
        &body.to_string(),
    );
    assert_eq!(code, 200, "{resp}");
    let labels = resp["outputs"][0]["data"].as_array().unwrap();
    let correct = labels
        .iter()
        .zip(&rows)
        .filter(|(l, (_, y))| l.as_str() == Some(y.as_str()))
        .count();
    assert!(
        correct as f64 / rows.len() as f64 >= 0.95,
        "{correct}/{}",
        rows.len()
    );
}

/// A snapshotted model that touches a file after `load` gets one line saying why it cannot
/// and what to do, not wasmtime's "unknown handle index".
#[test]
fn a_snapshotted_model_touching_files_after_load_is_told_why() {
    let s = Scratch::new();
    let dir = s.path("echo-model");
    std::fs::create_dir_all(&dir).unwrap();
    let spec = format!("echo={}:{}", component("echo-predictor"), dir.display());
    let server = start(&s, &["--model", &spec]);
    let body = json!({"inputs": [{"name": "list-model", "datatype": "UINT32", "shape": [1], "data": [0]}]});
    let (code, err) = post(
        &format!("{}/v2/models/echo/infer", server.url),
        &body.to_string(),
    );
    assert_eq!(code, 500, "{err}");
    let msg = err["error"].as_str().unwrap();
    assert!(
        msg.contains("snapshotted model keeps only its memory") && msg.contains("--no-snapshot"),
        "{msg}"
    );
}
