//! The GPU bridge from a component: a step trains an MLP through `weft:tensor` (tensors on the
//! host's device, handles in the guest), within its device-memory quota, and cannot reach a
//! tensor it was never given, nor crash the host with a deep tape or escape the quota with
//! tiny tensors.

use crate::support::*;

#[test]
fn a_component_trains_an_mlp_on_the_host_device_and_saves_safetensors() {
    let s = Scratch::new();
    let out = s.path("out");
    let data = repo_file("examples/data/iris.csv");
    let run = s.run(
        TRAIN_MLP,
        &[
            "--input",
            &format!("train={}", data.display()),
            "-p",
            "label=species",
            "-p",
            "epochs=200",
            "--output-dir",
            out.to_str().unwrap(),
            "--output-artifact",
            "model",
            "--json",
        ],
    );
    let outcome = run.json();
    assert_eq!(param(&outcome, "backend")["value"], "cpu");
    let accuracy = param(&outcome, "accuracy")["value"].as_f64().unwrap();
    assert!(accuracy >= 0.95, "accuracy {accuracy}");
    // The loss curve, as metrics: it falls.
    let losses: Vec<f64> = outcome["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["name"] == "loss")
        .map(|m| m["value"].as_f64().unwrap())
        .collect();
    assert!(losses.len() >= 20, "{losses:?}");
    assert!(losses.last().unwrap() < &(losses[0] * 0.2), "{losses:?}");
    // The model is a safetensors file other tools read.
    let bytes = std::fs::read(out.join("model/model.safetensors")).unwrap();
    let engine = weft_tensor::Engine::new(weft_tensor::Cpu, 1 << 20);
    let tensors = weft_tensor::io::load(&engine, &bytes).unwrap();
    let shapes: Vec<(&str, Vec<usize>)> = tensors
        .iter()
        .map(|(n, t)| (n.as_str(), t.shape().to_vec()))
        .collect();
    assert_eq!(
        shapes,
        [
            ("b1", vec![16]),
            ("b2", vec![3]),
            ("w1", vec![4, 16]),
            ("w2", vec![16, 3])
        ]
    );
}

#[test]
fn tensors_past_the_device_memory_quota_are_refused_with_the_limit() {
    let s = Scratch::new();
    let run = s.run(
        MISBEHAVE,
        &["-p", "mode=tensor-hog", "--device-memory", "4MiB"],
    );
    let line = run.failure();
    // Each tensor's bookkeeping is charged with its MiB of values, so the fourth does not fit.
    assert!(
        line.contains("after 3 tensors")
            && line.contains("device memory quota exceeded")
            && line.contains("limit 4194304 bytes"),
        "{line}"
    );
}

#[test]
fn a_tensor_handle_the_instance_was_never_given_traps() {
    let s = Scratch::new();
    let run = s.run(MISBEHAVE, &["-p", "mode=forge-tensor", "-p", "handle=1"]);
    let line = run.failure();
    assert!(line.contains("trapped"), "{line}");
    let log = std::fs::read_to_string(run.log_path()).unwrap();
    assert!(log.contains("unknown handle index 1"), "{log}");
}

#[test]
fn the_mlp_example_pipeline_trains_through_the_bridge() {
    let s = Scratch::new();
    let yaml = s.path("mlp.yaml");
    std::fs::write(&yaml, example_text("mlp.yaml")).unwrap();
    let out = succeed(
        s.wasm_run()
            .args(["pipeline", "run"])
            .arg(&yaml)
            .arg("--json"),
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let train = summary["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "train")
        .unwrap();
    let outputs: serde_json::Value =
        serde_json::from_str(train["outputs_json"].as_str().unwrap()).unwrap();
    assert!(
        outputs["accuracy"]["value"].as_f64().unwrap() >= 0.95,
        "{outputs}"
    );
    assert_eq!(outputs["backend"]["value"], "cpu");
}

#[test]
fn layer_ops_through_the_wit_give_what_the_engine_gives() {
    // The component computes on the fixed inputs below and returns every result; the same
    // engine, called directly, must agree (the binding adds nothing and loses nothing).
    let s = Scratch::new();
    let run = s.run(TENSOR_BENCH, &["-p", "mode=ops", "--json"]);
    let outcome = run.json();
    let results = &param(&outcome, "results")["value"];
    use weft_tensor::{Cpu, Engine};
    let e = Engine::new(Cpu, 1 << 24);
    let t = |shape: &[usize], grad: bool| {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 101) as f32 / 101.0 - 0.5)
            .collect();
        e.tensor(&v, shape, grad).unwrap()
    };
    let (x, k, bias, m) = (
        t(&[2, 3, 5, 6], true),
        t(&[4, 3, 3, 3], true),
        t(&[4], true),
        t(&[5, 4], true),
    );
    let conv = e.conv2d(&x, &k, Some(&bias), 2, 1).unwrap();
    let maxp = e.pool2d(&x, 2, 2, false).unwrap();
    let avgp = e.pool2d(&x, 3, 1, true).unwrap();
    let sliced = e.slice(&m, 1, 1, 2).unwrap();
    let joined = e.concat(&[m.clone(), sliced], -1).unwrap();
    let rows = e.gather(&m, &[4, 0, 4]).unwrap();
    let normed = e
        .layer_norm(&m, &t(&[4], false), &t(&[4], false), 1e-5)
        .unwrap();
    let mut loss = None;
    for r in [&conv, &maxp, &avgp, &joined, &rows, &normed] {
        let s = e.sum(&e.reshape(r, &[r.numel()]).unwrap(), 0).unwrap();
        loss = Some(match loss {
            None => s,
            Some(l) => e.add(&l, &s).unwrap(),
        });
    }
    let grads = e.backward(&loss.unwrap()).unwrap();
    let gk = grads.get(&e, &k).unwrap().unwrap();
    for (name, want) in [
        ("conv", &conv),
        ("maxpool", &maxp),
        ("avgpool", &avgp),
        ("concat", &joined),
        ("gather", &rows),
        ("layer_norm", &normed),
        ("kernel_grad", &gk),
    ] {
        let got: Vec<f32> = results[name]
            .as_array()
            .unwrap_or_else(|| panic!("no {name} in {results}"))
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(got, e.to_vec(want).unwrap(), "{name}");
    }
}

#[test]
fn a_tensor_backend_that_is_not_there_is_an_error_not_a_fallback() {
    let s = Scratch::new();
    let out = s
        .wasm_run()
        .args(["--tensor-backend", "cuda", "run", NOOP])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // Built with CUDA on a machine with its driver: CUDA is there, so the step runs on it.
    if cfg!(feature = "cuda") && std::path::Path::new("/dev/nvidiactl").exists() {
        assert!(out.status.success(), "{err}");
    } else {
        // Built with CUDA on a machine without its driver, or built without it: either way
        // the command says so rather than computing elsewhere.
        assert_eq!(out.status.code(), Some(2), "{err}");
        let expected = if cfg!(feature = "cuda") {
            "tensor backend cuda: no CUDA driver (libcuda) is present"
        } else {
            "tensor backend cuda: this build has no CUDA support (feature `cuda`)"
        };
        assert!(err.contains(expected), "{err}");
    }
    if cfg!(not(feature = "wgpu")) {
        let (_, err) = fails(s.wasm_run().args(["--tensor-backend", "wgpu", "run", NOOP]));
        assert!(err.contains("no wgpu support"), "{err}");
    }
}

/// On the wgpu backend (lavapipe in CI), training gives the CPU backend's loss curve.
#[cfg(feature = "wgpu")]
#[test]
fn training_on_wgpu_follows_the_cpu_loss_curve() {
    let s = Scratch::new();
    let data = repo_file("examples/data/iris.csv");
    let train = |backend: &str| -> Option<Vec<f64>> {
        let out = s.path(&format!("out-{backend}"));
        let run = s.run(
            TRAIN_MLP,
            &[
                "--tensor-backend",
                backend,
                "--input",
                &format!("train={}", data.display()),
                "-p",
                "label=species",
                "-p",
                "epochs=60",
                "--output-dir",
                out.to_str().unwrap(),
                "--output-artifact",
                "model",
                "--json",
            ],
        );
        if run.code() != 0 && std::env::var_os("WEFT_REQUIRE_WGPU").is_none() {
            eprintln!("wgpu not available here: {}", run.stderr());
            return None;
        }
        let outcome = run.json();
        assert_eq!(param(&outcome, "backend")["value"], backend);
        Some(
            outcome["metrics"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["name"] == "loss")
                .map(|m| m["value"].as_f64().unwrap())
                .collect(),
        )
    };
    let Some(gpu) = train("wgpu") else { return };
    let cpu = train("cpu").unwrap();
    assert_eq!(gpu.len(), cpu.len());
    for (g, c) in gpu.iter().zip(&cpu) {
        assert!(
            (g - c).abs() < 1e-3 * (1.0 + c.abs()),
            "wgpu {gpu:?} vs cpu {cpu:?}"
        );
    }
}

#[test]
fn a_component_asking_for_an_enormous_tensor_gets_an_error_not_a_host_crash() {
    let s = Scratch::new();
    let run = s.run(MISBEHAVE, &["-p", "mode=tensor-bomb", "--json"]);
    let outcome = run.json();
    let broadcast = param(&outcome, "broadcast")["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        broadcast.contains("Quota") && broadcast.contains("quota exceeded"),
        "{broadcast}"
    );
    let overflow = param(&outcome, "overflow")["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        overflow.contains("more elements than can be addressed"),
        "{overflow}"
    );
}

#[test]
fn a_tape_a_million_ops_deep_is_dropped_without_crashing_the_host() {
    // The host took a dropped tape apart recursively and overflowed its stack on this one.
    let s = Scratch::new();
    let run = s.run(MISBEHAVE, &["-p", "mode=tensor-chain", "--json"]);
    let outcome = run.json();
    assert_eq!(param(&outcome, "ops")["value"], 1_000_000);
    assert!(param(&outcome, "held")["value"].as_i64().unwrap() > 4_000_000);
    assert_eq!(param(&outcome, "after_drop")["value"], 0);
}

#[test]
fn a_million_tiny_tensors_trip_the_device_memory_quota() {
    // Their values are 4 MB; what the host holds for each node of the tape is far more, and
    // counts.
    let s = Scratch::new();
    let run = s.run(
        MISBEHAVE,
        &["-p", "mode=tensor-chain", "--device-memory", "8MiB"],
    );
    let line = run.failure();
    assert!(
        line.contains("device memory quota exceeded") && line.contains("limit 8388608 bytes"),
        "{line}"
    );
    let ops: u64 = line
        .split("after ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no op count in {line}"));
    assert!(ops < 100_000, "{line}");
}
