//! Steps in C (components/*/weft.toml with `language = "c"`, the weft.h SDK), built from source
//! by the same build as every component and run through `wasm-run`.

use crate::support::*;
use std::path::PathBuf;

/// The iris table as rows of cells, header first.
fn iris() -> Vec<Vec<String>> {
    std::fs::read_to_string(repo_file("examples/data/iris.csv"))
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

fn run_on_iris(s: &Scratch, out: &std::path::Path, extra: &[&str]) -> Run {
    let table = format!("table={}", repo_file("examples/data/iris.csv").display());
    let mut args = vec![
        "--input",
        &table,
        "-o",
        "scaled",
        "--output-dir",
        out.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    s.run(CSV_STATS_C, &args)
}

#[test]
fn a_c_step_scales_a_csv_reports_metrics_and_returns_params() {
    let s = Scratch::new();
    let out = s.path("out");
    let outcome = run_on_iris(&s, &out, &[]).json();
    assert_eq!(param(&outcome, "rows")["type"], "int", "{outcome}");
    assert_eq!(param(&outcome, "rows")["value"], 150);
    assert_eq!(
        param(&outcome, "columns")["value"],
        serde_json::json!(["sepal_length", "sepal_width", "petal_length", "petal_width"])
    );
    let metric = |name: &str| {
        outcome["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("no metric {name} in {outcome}"))["value"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(metric("rows"), 150.0);

    // The scaled table, against min-max scaling computed here.
    let table = iris();
    let scaled: Vec<Vec<String>> = std::fs::read_to_string(out.join("scaled/scaled"))
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    assert_eq!(scaled.len(), table.len());
    assert_eq!(scaled[0], table[0], "the header is kept");
    for (c, name) in table[0].iter().enumerate().take(4) {
        let column: Vec<f64> = table[1..].iter().map(|r| r[c].parse().unwrap()).collect();
        let (lo, hi) = column
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                (lo.min(x), hi.max(x))
            });
        assert_eq!(metric(&format!("{name}.min")), lo);
        assert_eq!(metric(&format!("{name}.max")), hi);
        for (r, x) in column.iter().enumerate() {
            let got: f64 = scaled[r + 1][c].parse().unwrap();
            let want = (x - lo) / (hi - lo);
            assert!((got - want).abs() < 1e-9, "{name} row {r}: {got} vs {want}");
        }
    }
    for (r, row) in table.iter().enumerate().skip(1) {
        assert_eq!(scaled[r][4], row[4], "species is not numeric: kept as is");
    }

    // Only the columns asked for.
    let out = s.path("out2");
    let outcome = run_on_iris(&s, &out, &["-p", "columns=petal_width"]).json();
    assert_eq!(
        param(&outcome, "columns")["value"],
        serde_json::json!(["petal_width"])
    );
    let first = std::fs::read_to_string(out.join("scaled/scaled")).unwrap();
    let row: Vec<&str> = first.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(row[..2], ["5.1", "3.5"], "{first}");
}

#[test]
fn a_c_step_failing_with_a_message_makes_it_the_cause() {
    let s = Scratch::new();
    let run = run_on_iris(
        &s,
        &s.path("out"),
        &["-p", "columns=sepal_length,petal_size"],
    );
    let line = run.failure();
    assert!(
        line.contains("step failed: no column \"petal_size\" in /inputs/table/iris.csv"),
        "{line}"
    );
    // The SDK's own failures: a parameter of another type, an artifact not granted.
    let line = run_on_iris(&s, &s.path("out2"), &["-p", "columns:int=3"]).failure();
    assert!(
        line.contains("step failed: parameter columns: expected string, got int 3"),
        "{line}"
    );
    let out = s.path("out3");
    let args = ["-o", "scaled", "--output-dir", out.to_str().unwrap()];
    let line = s.run(CSV_STATS_C, &args).failure();
    assert!(
        line.contains("step failed: no input artifact `table` was granted"),
        "{line}"
    );
}

#[test]
fn new_and_build_make_a_c_step_that_runs() {
    // The wit-bindgen the component build installed, on PATH as a user's own would be, so the
    // scratch home does not install it again (cargo install takes minutes).
    let tools: PathBuf = std::path::Path::new(CSV_STATS_C)
        .parent()
        .and_then(|components| components.parent())
        .unwrap()
        .join("tools/wit-bindgen/bin");
    crate::languages::new_build_and_test_with("c", Some(&tools));
}
