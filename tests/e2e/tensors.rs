//! The GPU bridge from a component: a step trains an MLP through `weft:tensor` (tensors on the
//! host's device, handles in the guest), within its device-memory quota, and cannot reach a
//! tensor it was never given.

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
    assert!(
        line.contains("after 4 tensors")
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
