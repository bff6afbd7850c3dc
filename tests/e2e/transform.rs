//! The CSV transform, checked against values this test computes itself from the same file.

use crate::support::*;

fn column(rows: &[Vec<String>], c: usize) -> Vec<f64> {
    rows.iter().map(|r| r[c].parse().unwrap()).collect()
}

#[test]
fn csv_transform_standardises_columns_and_reports_metrics() {
    let s = Scratch::new();
    let iris = repo_file("examples/data/iris.csv");
    let out = s.path("out");
    let outcome = s
        .run(
            CSV_TRANSFORM,
            &[
                "--input",
                &format!("data={}", iris.display()),
                "--output-dir",
                out.to_str().unwrap(),
                "--output-artifact",
                "transformed",
                "--param",
                "drop=sepal_width",
                "--json",
            ],
        )
        .json();

    // What the data says, computed here.
    let text = std::fs::read_to_string(&iris).unwrap();
    let rows: Vec<Vec<String>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    let sepal_length = column(&rows, 0);
    let n = sepal_length.len() as f64;
    let mean = sepal_length.iter().sum::<f64>() / n;
    let std = (sepal_length.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();

    let written = std::fs::read_to_string(out.join("transformed/data.csv")).unwrap();
    let mut lines = written.lines();
    assert_eq!(
        lines.next(),
        Some("sepal_length,petal_length,petal_width,species")
    );
    let first: Vec<&str> = lines.next().unwrap().split(',').collect();
    let z: f64 = first[0].parse().unwrap();
    assert!(
        (z - (sepal_length[0] - mean) / std).abs() < 1e-5,
        "z-score {z}"
    );
    assert_eq!(first[3], "setosa");
    assert_eq!(written.lines().count(), 151);

    assert_eq!(param(&outcome, "rows")["value"], 150);
    assert_eq!(
        param(&outcome, "columns")["value"],
        serde_json::json!(["sepal_length", "petal_length", "petal_width", "species"])
    );
    let metrics = outcome["metrics"].as_array().unwrap();
    let metric = |name: &str| {
        metrics.iter().find(|m| m["name"] == name).unwrap()["value"]
            .as_f64()
            .unwrap()
    };
    assert!((metric("mean/sepal_length") - mean).abs() < 1e-9);
    assert!((metric("std/sepal_length") - std).abs() < 1e-9);
    assert_eq!(metric("rows"), 150.0);

    let artifacts = outcome["artifacts"].as_array().unwrap();
    assert_eq!(artifacts.len(), 1);
    assert_eq!(artifacts[0]["path"], "transformed/data.csv");
    assert_eq!(artifacts[0]["bytes"], written.len() as u64);
}

#[test]
fn a_step_error_names_the_cause() {
    let s = Scratch::new();
    let iris = repo_file("examples/data/iris.csv");
    let run = s.run(
        CSV_TRANSFORM,
        &[
            "--input",
            &format!("data={}", iris.display()),
            "--output-dir",
            s.path("out").to_str().unwrap(),
            "--output-artifact",
            "transformed",
            "--param",
            "drop=no_such_column",
        ],
    );
    let line = run.failure();
    assert!(
        line.contains("step failed") && line.contains("no_such_column"),
        "{line}"
    );
}
