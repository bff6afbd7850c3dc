//! `--metadata postgres://...`: run metadata in a PostgreSQL database instead of the home's
//! SQLite file, so runners on different machines (pods) share one record. Runs against the
//! server `cargo xtask test` starts (`WEFT_TEST_POSTGRES`; `WEFT_REQUIRE_POSTGRES` makes its
//! absence a failure there).

use crate::support::*;
use serde_json::Value;

/// A fresh database on the test server, made with `psql`; None (said) without a server.
fn fresh_database() -> Option<String> {
    let Ok(admin) = std::env::var("WEFT_TEST_POSTGRES") else {
        assert!(
            std::env::var_os("WEFT_REQUIRE_POSTGRES").is_none(),
            "WEFT_REQUIRE_POSTGRES is set but WEFT_TEST_POSTGRES names no server"
        );
        crate::support::tool_missing(
            "WEFT_TEST_POSTGRES not set: not run (cargo xtask test starts a server)",
        );
        return None;
    };
    let name = format!(
        "weft_e2e_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    succeed(
        std::process::Command::new("psql")
            .arg(&admin)
            .args(["-c", &format!("CREATE DATABASE {name}")]),
    );
    let (server, _) = admin.rsplit_once('/').unwrap();
    Some(format!("{server}/{name}"))
}

#[test]
fn runs_recorded_in_postgres_are_shared_by_every_home_that_names_it() {
    let Some(url) = fresh_database() else { return };
    let s = Scratch::new();
    let yaml = s.path("iris.yaml");
    std::fs::write(&yaml, example_text("pipeline.yaml")).unwrap();
    let run = |s: &Scratch| -> Value {
        let out = succeed(
            s.wasm_run()
                .args(["--metadata", &url, "pipeline", "run"])
                .arg(&yaml)
                .arg("--json"),
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let first = run(&s);
    assert_eq!(first["state"], "SUCCEEDED", "{first}");
    assert!(
        !s.path("home/metadata.db").exists(),
        "nothing was recorded in the home's SQLite file"
    );
    // The second run's tasks are cache hits, found in the database.
    let second = run(&s);
    assert_eq!(second["state"], "SUCCEEDED");
    let states: Vec<&str> = second["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap())
        .collect();
    assert!(states.iter().all(|s| *s == "SKIPPED"), "{states:?}");

    // Another machine (another home) naming the same database sees both runs and lineage.
    let other = Scratch::new();
    let out = succeed(
        other
            .wasm_run()
            .env("WEFT_METADATA", &url)
            .args(["runs", "list", "--output", "json"]),
    );
    let runs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = runs.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            second["run_id"].as_str().unwrap(),
            first["run_id"].as_str().unwrap()
        ]
    );
    let model = output_digest(&first, "train", "model");
    let out = succeed(
        other
            .wasm_run()
            .env("WEFT_METADATA", &url)
            .args(["lineage", &model, "--output", "json"]),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("train") && text.contains("evaluate"),
        "{text}"
    );
}

#[test]
fn an_unreachable_metadata_database_is_a_clear_error() {
    let s = Scratch::new();
    let (code, err) = fails(s.wasm_run().args([
        "--metadata",
        "postgres://weft:hunter2@127.0.0.1:1/weft",
        "runs",
        "list",
    ]));
    assert_eq!(code, Some(2));
    assert!(
        err.contains("metadata database postgres://weft:***@127.0.0.1:1/weft"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}
