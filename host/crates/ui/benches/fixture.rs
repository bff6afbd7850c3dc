//! A store the size the figures are quoted at: 10 000 runs of a six-task pipeline, each task
//! with a metric, one run with a 1000-iteration parallelFor, and 10 000 versions of one model.

#![allow(dead_code)] // shared by two benches, each using part of it

use axum::body::Body;
use axum::http::Request;
use std::sync::Arc;
use tower::ServiceExt;
use weft_store::*;

pub const RUNS: usize = 10_000;
pub const VERSIONS: usize = 10_000;
const TASKS: [&str; 6] = [
    "load",
    "split",
    "standardize",
    "train",
    "evaluate",
    "publish",
];

pub fn ui(dir: &std::path::Path) -> Arc<weft_ui::Ui> {
    let db = dir.join("metadata.db");
    let ui = Arc::new(weft_ui::Ui {
        metadata: MetadataStore::open(&db).unwrap(),
        artifacts: ArtifactStore::open(&dir.join("artifacts")).unwrap(),
        registry: Arc::new(RegistryStore::open(&db).unwrap()),
        logs_dir: dir.join("logs"),
        serving: vec![],
        namespaces: weft_registry::Namespaces::any(),
    });
    let plan = serde_json::json!({
        "upstream": {"load": [], "split": ["load"], "standardize": ["split"], "train": ["standardize"],
                     "evaluate": ["train", "split"], "publish": ["evaluate"]},
        "params": {"epochs": 300, "learning_rate": 0.5},
    })
    .to_string();
    let tasks: Vec<String> = TASKS.iter().map(|t| t.to_string()).collect();
    for i in 0..RUNS {
        let id = format!("run-{i:05}");
        let run = RunRecord {
            id: id.clone(),
            pipeline: "iris-classifier".into(),
            pipeline_file: "pipeline.yaml".into(),
            plan_json: plan.clone(),
            state: RUN_RUNNING.into(),
            created_at: format!(
                "2026-12-{:02}T{:02}:{:02}:{:02}Z",
                1 + i / 86400,
                i / 3600 % 24,
                i / 60 % 60,
                i % 60
            ),
            finished_at: None,
            error: None,
        };
        ui.metadata.create_run(&run, &tasks).unwrap();
        for t in TASKS {
            ui.metadata.start_task(&id, t, 1, "sha256:0", "").unwrap();
            let done = TaskCompletion {
                state: TaskState::Succeeded,
                outputs_json: "{}".into(),
                inputs: vec![],
                outputs: vec![],
                metrics: vec![MetricRecord {
                    task: t.into(),
                    name: "accuracy".into(),
                    value: 0.9,
                    step: None,
                }],
                cache_key: None,
                cached_from: None,
                duration_ms: 12.0,
                log_path: None,
            };
            ui.metadata.complete_task(&id, t, &done).unwrap();
        }
        ui.metadata.finish_run(&id, RUN_SUCCEEDED, None).unwrap();
    }
    ui
}

/// A run whose one task is a 1000-iteration loop.
pub fn big_run(ui: &weft_ui::Ui) {
    let plan = serde_json::json!({"upstream": {"fan": [], "join": ["fan"]}}).to_string();
    let run = RunRecord {
        id: "big".into(),
        pipeline: "fan".into(),
        pipeline_file: "fan.yaml".into(),
        plan_json: plan,
        state: RUN_RUNNING.into(),
        created_at: "2026-11-30T00:00:00Z".into(),
        finished_at: None,
        error: None,
    };
    ui.metadata
        .create_run(&run, &["fan".into(), "join".into()])
        .unwrap();
    for i in 0..1000 {
        ui.metadata.add_task("big", &format!("fan[{i}]")).unwrap();
    }
}

pub async fn get(app: &axum::Router, uri: &str) -> usize {
    let resp = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{uri}: {}", resp.status());
    axum::body::to_bytes(resp.into_body(), 64 << 20)
        .await
        .unwrap()
        .len()
}

pub async fn post(app: &axum::Router, uri: &str, body: serde_json::Value) -> serde_json::Value {
    let req = Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert!(resp.status().is_success(), "{uri}: {}", resp.status());
    serde_json::from_slice(
        &axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap(),
    )
    .unwrap()
}

/// 10 000 versions of one model, through the API; the model's id.
pub async fn versions(app: &axum::Router) -> String {
    let api = "/api/model_registry/v1alpha3";
    let model = post(
        app,
        &format!("{api}/registered_models"),
        serde_json::json!({"name": "iris"}),
    )
    .await;
    let id = model["id"].as_str().unwrap().to_string();
    for v in 0..VERSIONS {
        post(
            app,
            &format!("{api}/registered_models/{id}/versions"),
            serde_json::json!({"name": format!("v{v}")}),
        )
        .await;
    }
    id
}
