//! `--metadata postgres://...`: run metadata in a PostgreSQL database instead of the home's
//! SQLite file, so runners on different machines (pods) share one record. Runs against the
//! server `cargo xtask test` starts (`WEFT_TEST_POSTGRES`; `WEFT_REQUIRE_POSTGRES` makes its
//! absence a failure there). `wasm-run ui` and `wasm-run models` on the same database: its
//! runs, tasks and registered models.

use crate::support::*;
use serde_json::{json, Value};

/// A fresh database on the test server, made with `psql`; None (said) without a server, a
/// failure where `cargo xtask test` (WEFT_REQUIRE_POSTGRES) or CI runs the tests.
fn fresh_database() -> Option<String> {
    let Ok(admin) = std::env::var("WEFT_TEST_POSTGRES") else {
        assert!(
            std::env::var_os("WEFT_REQUIRE_POSTGRES").is_none(),
            "WEFT_REQUIRE_POSTGRES is set but WEFT_TEST_POSTGRES names no server"
        );
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but WEFT_TEST_POSTGRES names no server (a build with the postgres \
             feature tests it there)"
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

/// A child process killed when the test ends, however it ends.
struct Killed(std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `wasm-run --metadata URL ui` on a free loopback port, once it answers: its base URL.
fn start_ui(s: &Scratch, url: &str) -> (Killed, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut ui = Killed(
        s.wasm_run()
            .args(["--metadata", url, "ui", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..600 {
        if ureq::get(&format!("{base}/static/weft.css")).call().is_ok() {
            return (ui, base);
        }
        if let Some(status) = ui.0.try_wait().unwrap() {
            panic!("wasm-run ui exited ({status}) before it answered");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("wasm-run ui did not answer at {base}");
}

/// A page of the UI: its HTML, which must come with a 200.
fn page(base: &str, path: &str) -> String {
    let res = ureq::get(&format!("{base}{path}"))
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(res.status(), 200, "GET {path}");
    res.into_string().unwrap()
}

#[test]
fn the_ui_and_models_read_runs_and_the_registry_from_postgres() {
    let Some(url) = fresh_database() else { return };
    let s = Scratch::new();
    let yaml = s.path("iris.yaml");
    std::fs::write(&yaml, example_text("pipeline.yaml")).unwrap();
    let out = succeed(
        s.wasm_run()
            .args(["--metadata", &url, "pipeline", "run"])
            .arg(&yaml)
            .arg("--json"),
    );
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["state"], "SUCCEEDED", "{run}");
    let run_id = run["run_id"].as_str().unwrap();
    let tasks: Vec<&str> = run["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(tasks.contains(&"train"), "{run}");

    // The UI (another home: nothing of this one's SQLite) lists the run and shows its tasks.
    let other = Scratch::new();
    let (_ui, base) = start_ui(&other, &url);
    let runs = page(&base, "/runs");
    assert!(runs.contains(&format!("data-run=\"{run_id}\"")), "{runs}");
    let shown = page(&base, &format!("/runs/{run_id}"));
    for task in &tasks {
        assert!(
            shown.contains(&format!("data-task=\"{task}\"")),
            "task {task} in {shown}"
        );
    }
    assert!(shown.contains("iris-classifier"), "{shown}");

    // A model registered through the registry API, in the default namespace and another.
    let api = format!("{base}/api/model_registry/v1alpha3");
    let made = |path: &str, ns: Option<&str>, body: Value| -> Value {
        let mut req = ureq::post(&format!("{api}{path}"));
        if let Some(ns) = ns {
            req = req.set("X-Weft-Namespace", ns);
        }
        let res = req
            .send_json(body)
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        assert_eq!(res.status(), 201, "POST {path}");
        res.into_json().unwrap()
    };
    let model = made(
        "/registered_models",
        None,
        json!({"name": "iris-pg", "owner": "ann", "description": "kept in postgres"}),
    );
    let model_id = model["id"].as_str().unwrap();
    made(
        &format!("/registered_models/{model_id}/versions"),
        None,
        json!({"name": "v1", "author": "ann"}),
    );
    made(
        "/registered_models",
        Some("team-a"),
        json!({"name": "iris-team"}),
    );
    let got: Value = ureq::get(&format!("{api}/registered_models/{model_id}"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(got["name"], "iris-pg");
    assert_eq!(got["description"], "kept in postgres");
    let models = page(&base, "/models");
    assert!(
        models.contains("iris-pg") && models.contains("kept in postgres"),
        "{models}"
    );
    assert!(
        !models.contains("iris-team"),
        "another namespace's: {models}"
    );
    let versions = page(&base, &format!("/models/{model_id}"));
    assert!(
        versions.contains("iris-pg") && versions.contains("v1"),
        "{versions}"
    );

    // `wasm-run models` on the same database, from a third home, sees them, each namespace
    // its own; and what it registers, the UI shows.
    let third = Scratch::new();
    let list = |args: &[&str]| -> Vec<String> {
        let out = succeed(
            third
                .wasm_run()
                .args(["--metadata", &url, "models", "list", "--output", "json"])
                .args(args),
        );
        let all: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        all.iter()
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(list(&[]), ["iris-pg"]);
    assert_eq!(list(&["--namespace", "team-a"]), ["iris-team"]);
    let out =
        succeed(
            third
                .wasm_run()
                .args(["--metadata", &url, "models", "show", "iris-pg", "v1"]),
        );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("author: ann"), "{text}");
    succeed(third.wasm_run().args([
        "--metadata",
        &url,
        "models",
        "register",
        "iris-cli",
        "--version",
        "v1",
        "--uri",
        "s3://bucket/iris",
    ]));
    let models = page(&base, "/models");
    assert!(models.contains("iris-cli"), "{models}");
    for home in [&s, &other, &third] {
        assert!(
            !home.path("home/metadata.db").exists(),
            "nothing recorded in a home's SQLite file"
        );
    }
}
