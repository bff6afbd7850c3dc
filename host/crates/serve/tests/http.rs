//! The server through HTTP, on a real listener: what a response may carry (the output limit
//! over all of it), what arithmetic on shapes and values refuses, a model version's own
//! slots and queue, and the admin listener apart from the data port.

mod support;

use serde_json::{json, Value};
use std::path::Path;
use support::handmade::{self, big, fill, text, Output, Reply, Shape};
use support::{config, get, model, post, send, start};

const FP32: u8 = 11;
const UINT8: u8 = 1;

fn echo() -> &'static Path {
    Path::new(weft_test_programs::ECHO_PREDICTOR)
}

fn one_output(name: handmade::Blob, datatype: u8, shape: Shape, data: handmade::Blob) -> Reply {
    Reply::Ok {
        outputs: vec![Output {
            name,
            datatype,
            shape,
            data,
        }],
        parameters: text("{}"),
    }
}

const ANY_INPUT: &str =
    r#"{"inputs": [{"name": "x", "datatype": "UINT8", "shape": [1], "data": [1]}]}"#;

/// Serves each reply as its own model under `--max-output 1MiB`, and answers `ANY_INPUT` to
/// each: (status, body) per reply, in order.
fn ask_each(replies: &[Reply]) -> Vec<(u16, Value)> {
    let dir = tempfile::tempdir().unwrap();
    let models = replies
        .iter()
        .enumerate()
        .map(|(i, r)| {
            model(
                &format!("m{i}"),
                &handmade::predictor(dir.path(), &format!("m{i}"), r),
            )
        })
        .collect();
    let mut c = config(models);
    c.limits.max_output_bytes = 1 << 20;
    let server = start(c);
    (0..replies.len())
        .map(|i| post(&format!("{}/v2/models/m{i}/infer", server.url), ANY_INPUT))
        .collect()
}

#[test]
fn a_response_over_the_output_limit_fails_whatever_part_of_it_is_large() {
    const MB8: u32 = 8 << 20;
    let replies = [
        // A good answer: the hand-made layout is sound.
        one_output(text("y"), UINT8, Shape::Dims(vec![2]), text("\x01\x02")),
        // 8 MB of parameters, a valid JSON object.
        Reply::Ok {
            outputs: vec![],
            parameters: big("{\"p\": \"", b'a', MB8, "\"}"),
        },
        // An 8 MB tensor name.
        one_output(fill(b'n', MB8), UINT8, Shape::Dims(vec![0]), text("")),
        // A shape of a million dimensions (an empty tensor, so a valid one).
        one_output(text("y"), UINT8, Shape::Zeros(1 << 20), text("")),
    ];
    let answers = ask_each(&replies);
    assert_eq!(
        answers[0],
        (
            200,
            json!({"model_name": "m0", "model_version": "1", "outputs": [
        {"name": "y", "datatype": "UINT8", "shape": [2], "data": [1, 2]}]})
        )
    );
    for (i, (code, body)) in answers.iter().enumerate().skip(1) {
        assert_eq!(*code, 500, "reply {i}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains("output limit exceeded") && error.contains("1048576 bytes"),
            "reply {i}: {error}"
        );
    }
}

#[test]
fn a_models_error_string_is_cut_to_the_error_limit() {
    let replies = [
        Reply::InvalidInput(fill(b'e', 8 << 20)),
        Reply::Failed(fill(b'f', 8 << 20)),
    ];
    let answers = ask_each(&replies);
    for ((code, body), expected) in answers.iter().zip([400, 500]) {
        assert_eq!(*code, expected, "{body}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.len() <= weft_serve::MAX_ERROR_BYTES,
            "{}",
            error.len()
        );
        assert!(
            error.ends_with("more bytes cut)"),
            "{}",
            &error[error.len() - 40..]
        );
    }
}

#[test]
fn shapes_a_model_returns_that_overflow_are_refused_not_wrapped() {
    let replies = [
        one_output(
            text("y"),
            FP32,
            Shape::Dims(vec![i64::MAX, i64::MAX]),
            text(""),
        ),
        // Wrapped, 2^64 elements are 0, and 0 bytes would have passed for them.
        one_output(
            text("y"),
            FP32,
            Shape::Dims(vec![1 << 32, 1 << 32]),
            text(""),
        ),
        one_output(text("y"), FP32, Shape::Dims(vec![-1, -4]), text("\0\0\0\0")),
    ];
    for (code, body) in ask_each(&replies) {
        assert_eq!(code, 500, "{body}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains("model returned a bad tensor: `output y`: shape"),
            "{error}"
        );
    }
}

#[test]
fn client_values_out_of_range_are_refused_with_what_is_wrong() {
    let server = start(config(vec![model("echo", echo())]));
    let url = format!("{}/v2/models/echo/infer", server.url);
    for (body, expected) in [
        (
            r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [4294967296, 4294967296], "data": []}]}"#,
            "input `x`: shape [4294967296, 4294967296]: the element count overflows",
        ),
        (
            r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1.0, 1e39]}]}"#,
            "input `x`: element 1 (1e+39) is out of range for FP32",
        ),
        (
            r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [-2], "data": []}]}"#,
            "input `x`: shape entries must be non-negative integers, not -2",
        ),
    ] {
        assert_eq!(post(&url, body), (400, json!({"error": expected})));
    }
}

/// Requests to a model in a thread of their own, their answers ignored (they spin until the
/// server goes).
fn spin_in_background(url: &str) {
    let url = url.to_string();
    std::thread::spawn(move || {
        let spin =
            r#"{"inputs": [{"name": "spin", "datatype": "INT8", "shape": [1], "data": [1]}]}"#;
        let _ = ureq::post(&url).send_string(spin);
    });
}

/// Waits until the server counts `n` requests waiting for a slot.
fn wait_queued(server: &str, n: usize) {
    let line = format!("weft_requests_queued {n}\n");
    let metrics = format!("{server}/metrics");
    while !ureq::get(&metrics)
        .call()
        .unwrap()
        .into_string()
        .unwrap()
        .contains(&line)
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn a_saturated_model_holds_up_no_other_and_its_full_queue_answers_503() {
    let mut c = config(vec![model("busy", echo()), model("calm", echo())]);
    c.concurrency = 1;
    c.queue = 1;
    // Longer than the test: the spinning requests stay in their slot and queue throughout.
    c.limits.timeout = std::time::Duration::from_secs(3600);
    let server = start(c);
    let busy = format!("{}/v2/models/busy/infer", server.url);
    spin_in_background(&busy);
    spin_in_background(&busy);
    // One of them waits: the other has busy's one slot, and spins.
    wait_queued(&server.url, 1);
    let good = r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.5]}]}"#;
    let (code, body) = post(&busy, good);
    assert_eq!(code, 503, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("model `busy` version `1` is busy") && error.contains("the queue is full"),
        "{error}"
    );
    // The other model has slots of its own.
    let (code, body) = post(&format!("{}/v2/models/calm/infer", server.url), good);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["outputs"][0]["data"], json!([1.5]));
    let metrics = ureq::get(&format!("{}/metrics", server.url))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        metrics.contains("weft_requests_in_flight 2\n")
            && metrics.contains("weft_requests_queued 1\n"),
        "the spinning requests were answered: {metrics}"
    );
    assert!(
        metrics.contains(r#"weft_requests_total{model_name="busy",code="503"} 1"#),
        "{metrics}"
    );
}

#[test]
fn admin_endpoints_answer_on_the_admin_listener_only() {
    let mut c = config(vec![model("echo", echo()), {
        let mut v2 = model("echo", echo());
        v2.version = "2".into();
        v2
    }]);
    c.splits.insert("echo".into(), vec![("1".into(), 100)]);
    let server = start(c);
    let traffic = |base: &str| format!("{base}/admin/models/echo/traffic");
    // The data port knows no admin endpoint, whatever the method.
    let (code, body) = get(&traffic(&server.url));
    assert_eq!(code, 404, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("no endpoint"),
        "{body}"
    );
    let (code, _) = send(
        ureq::put(&traffic(&server.url)),
        r#"{"traffic": {"2": 100}}"#,
    );
    assert_eq!(code, 404);
    let (code, _) = post(
        &format!("{}/admin/models/echo/promote", server.url),
        r#"{"version": "2"}"#,
    );
    assert_eq!(code, 404);
    // The admin listener does.
    assert_eq!(
        get(&traffic(&server.admin)),
        (200, json!({"name": "echo", "traffic": {"1": 100}}))
    );
    let (code, body) = post(
        &format!("{}/admin/models/echo/promote", server.admin),
        r#"{"version": "2"}"#,
    );
    assert_eq!((code, &body["traffic"]), (200, &json!({"2": 100})));
    // Weights are checked, not truncated: 4294967396 as u32 would be 100.
    let put = || ureq::put(&traffic(&server.admin)).set("Content-Type", "application/json");
    let (code, body) = send(put(), r#"{"traffic": {"1": 4294967396}}"#);
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("version `1`: the percentage 4294967396"),
        "{body}"
    );
    let (code, body) = send(put(), "not json");
    assert_eq!(code, 400, "{body}");
}

#[test]
fn with_a_token_the_admin_listener_refuses_requests_without_it() {
    let mut c = config(vec![model("echo", echo())]);
    c.admin_token = Some("s3cret".into());
    let server = start(c);
    let url = format!("{}/admin/models/echo/traffic", server.admin);
    let (code, body) = get(&url);
    assert_eq!(code, 401, "{body}");
    let (code, _) = send(ureq::get(&url).set("Authorization", "Bearer wrong"), "");
    assert_eq!(code, 401);
    let (code, body) = send(ureq::get(&url).set("Authorization", "Bearer s3cret"), "");
    assert_eq!(
        (code, body),
        (200, json!({"name": "echo", "traffic": {"1": 100}}))
    );
}

#[test]
fn a_body_over_the_limit_is_a_413_with_a_json_error() {
    let mut c = config(vec![model("echo", echo())]);
    c.max_body_bytes = 1024;
    let server = start(c);
    let data = vec!["1.0"; 1000].join(",");
    let body = format!(
        r#"{{"inputs": [{{"name": "x", "datatype": "FP32", "shape": [1000], "data": [{data}]}}]}}"#
    );
    let (code, body) = post(&format!("{}/v2/models/echo/infer", server.url), &body);
    assert_eq!(code, 413);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("over the server's limit (--max-body)"),
        "{body}"
    );
}
