//! `wasi:nn` for ONNX: a component written against the standard interface (components/
//! onnx-classify) runs a model the test makes (`weft_nn::make`), gets what the same network
//! computes directly, and is held to its quota; bad models fail with the cause in the log.

use crate::support::*;
use weft_test_programs::ONNX_CLASSIFY;

/// Two dense layers: (first weights, first bias, second weights, second bias).
type Weights = (Vec<Vec<f32>>, Vec<f32>, Vec<Vec<f32>>, Vec<f32>);

fn weights() -> Weights {
    let w1 = vec![
        vec![0.9, -0.4, 0.2, 0.0, 0.3],
        vec![-0.6, 0.5, 0.1, 0.7, -0.2],
        vec![0.3, 0.8, -0.9, 0.4, 0.6],
        vec![-0.1, 0.2, 0.5, -0.8, 0.9],
    ];
    let w2 = vec![
        vec![1.2, -0.7, 0.1],
        vec![-0.5, 0.9, 0.3],
        vec![0.4, 0.2, -1.1],
        vec![0.8, -0.3, 0.6],
        vec![-0.2, 0.5, 0.7],
    ];
    (
        w1,
        vec![0.05, -0.1, 0.2, 0.0, 0.1],
        w2,
        vec![0.1, 0.0, -0.2],
    )
}

/// The network, computed here.
fn reference(x: &[f32]) -> Vec<f32> {
    let (w1, b1, w2, b2) = weights();
    let h: Vec<f32> = (0..b1.len())
        .map(|j| (b1[j] + (0..x.len()).map(|i| x[i] * w1[i][j]).sum::<f32>()).max(0.0))
        .collect();
    let z: Vec<f32> = (0..b2.len())
        .map(|k| b2[k] + (0..h.len()).map(|j| h[j] * w2[j][k]).sum::<f32>())
        .collect();
    let m = z.iter().cloned().fold(f32::MIN, f32::max);
    let e: Vec<f32> = z.iter().map(|v| (v - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

fn model_dir(s: &Scratch) -> std::path::PathBuf {
    let (w1, b1, w2, b2) = weights();
    let dir = s.path("model");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("model.onnx"),
        weft_nn::make::mlp(&w1, &b1, &w2, &b2),
    )
    .unwrap();
    dir
}

const ROWS: [[f32; 4]; 3] = [
    [1.0, 0.5, -0.3, 2.0],
    [-1.2, 0.3, 0.8, 0.1],
    [0.0, 2.0, 1.5, -0.5],
];

fn classify(s: &Scratch, model: &std::path::Path, extra: &[&str]) -> Run {
    let rows = serde_json::to_string(&ROWS).unwrap();
    let mut args = vec!["--input".to_string(), format!("model={}", model.display())];
    args.extend([
        "-p".to_string(),
        format!("rows:json={rows}"),
        "--json".into(),
    ]);
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    s.run(ONNX_CLASSIFY, &args)
}

#[test]
fn a_wasi_nn_component_runs_an_onnx_model_and_gets_what_the_network_computes() {
    let s = Scratch::new();
    let model = model_dir(&s);
    let outcome = classify(&s, &model, &[]).json();
    let probabilities: Vec<Vec<f32>> =
        serde_json::from_value(param(&outcome, "probabilities")["value"].clone()).unwrap();
    assert_eq!(probabilities.len(), ROWS.len());
    for (row, got) in ROWS.iter().zip(&probabilities) {
        let want = reference(row);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
        }
    }
    let labels: Vec<usize> =
        serde_json::from_value(param(&outcome, "labels")["value"].clone()).unwrap();
    let want: Vec<usize> = ROWS
        .iter()
        .map(|r| {
            let p = reference(r);
            (0..p.len()).max_by(|a, b| p[*a].total_cmp(&p[*b])).unwrap()
        })
        .collect();
    assert_eq!(labels, want);
}

#[test]
fn a_model_past_the_device_memory_quota_is_refused_and_the_log_says_why() {
    let s = Scratch::new();
    let model = model_dir(&s);
    let run = classify(&s, &model, &["--device-memory", "200B"]);
    let log = std::fs::read_to_string(run.log_path()).unwrap();
    assert!(
        log.contains("would exceed the component's quota of 200 bytes"),
        "{log}"
    );
    assert!(
        run.failure().contains("loading the model"),
        "{}",
        run.stderr()
    );
}

#[test]
fn a_file_that_is_not_an_onnx_model_fails_with_the_cause_in_the_log() {
    let s = Scratch::new();
    let dir = s.path("bad");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("model.onnx"), b"not a model").unwrap();
    let run = classify(&s, &dir, &[]);
    let log = std::fs::read_to_string(run.log_path()).unwrap();
    assert!(log.contains("wasi:nn: loading the ONNX model"), "{log}");
}
