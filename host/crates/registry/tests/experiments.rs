//! Experiments, their runs, the runs' artifacts and metric history through the router.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::{json, Value};

/// An experiment `e` with run `r1` (made under the path) and `r2` (made by `experimentId`).
async fn setup(app: &App) -> (String, String, String) {
    let e = app
        .made("/experiments", json!({"name": "e", "owner": "ann"}))
        .await;
    let eid = id(&e);
    let r1 = app
        .made(
            &format!("/experiments/{eid}/experiment_runs"),
            json!({"name": "r1", "startTimeSinceEpoch": "100"}),
        )
        .await;
    let r2 = app
        .made(
            "/experiment_runs",
            json!({"name": "r2", "experimentId": eid}),
        )
        .await;
    (eid, id(&r1), id(&r2))
}

fn metric(value: f64, step: i64) -> Value {
    json!({"artifactType": "metric", "name": "loss", "value": value, "step": step})
}

on_each_backend! {
async fn experiments_and_runs_are_made_found_and_patched() {
    let app = App::new();
    let (eid, r1, _) = setup(&app).await;
    let e = app.get(&format!("/experiments/{eid}")).await.1;
    assert_eq!(
        (e["state"].clone(), e["owner"].clone()),
        (json!("LIVE"), json!("ann"))
    );
    assert_eq!(app.get("/experiment?name=e").await.1, e);
    let run = app.get(&format!("/experiment_runs/{r1}")).await.1;
    assert_eq!(run["experimentId"], eid.as_str());
    assert_eq!(
        (run["status"].clone(), run["state"].clone()),
        (json!("RUNNING"), json!("LIVE"))
    );
    let found = app
        .get(&format!("/experiment_run?name=r1&parentResourceId={eid}"))
        .await;
    assert_eq!(found.1, run);
    let listed = app
        .get(&format!("/experiments/{eid}/experiment_runs"))
        .await
        .1;
    assert_eq!(names(&listed), ["r1", "r2"]);
    let done = app
        .patch(
            &format!("/experiment_runs/{r1}"),
            json!({"status": "FINISHED", "endTimeSinceEpoch": "200"}),
        )
        .await;
    assert_eq!(done.0, StatusCode::OK, "{}", done.1);
    assert_eq!(done.1["startTimeSinceEpoch"], "100");
    let q = enc("status = 'FINISHED' AND endTimeSinceEpoch >= 200");
    let finished = app
        .get(&format!("/experiment_runs?filterQuery={q}"))
        .await
        .1;
    assert_eq!(names(&finished), ["r1"]);
    let archived = app
        .patch(&format!("/experiments/{eid}"), json!({"state": "ARCHIVED"}))
        .await;
    assert_eq!(archived.1["state"], "ARCHIVED");
    assert_eq!(app.count("/experiments").await, 1);
}
}

on_each_backend! {
async fn run_artifacts_and_metric_history() {
    let app = App::new();
    let (eid, r1, r2) = setup(&app).await;
    let arts = format!("/experiment_runs/{r1}/artifacts");
    let loss = app.made(&arts, metric(0.9, 1)).await;
    assert_eq!(loss["experimentRunId"], r1.as_str());
    assert_eq!(loss["experimentId"], eid.as_str());
    // The same metric again, by its id: updated (200), and a second history entry.
    let mut again = metric(0.5, 2);
    again["id"] = loss["id"].clone();
    let (status, updated) = app.post(&arts, again).await;
    assert_eq!(
        (status, updated["value"].clone()),
        (StatusCode::OK, json!(0.5))
    );
    let param = json!({"artifactType": "parameter", "name": "lr", "value": "0.1", "parameterType": "number"});
    app.made(&arts, param).await;
    let data = json!({"artifactType": "dataset-artifact", "name": "iris", "uri": "s3://d", "digest": "sha256:0"});
    app.made(&arts, data).await;
    app.made(&format!("/experiment_runs/{r2}/artifacts"), metric(0.7, 1))
        .await;
    assert_eq!(names(&app.get(&arts).await.1), ["loss", "lr", "iris"]);
    let params = app.get(&format!("{arts}?artifactType=parameter")).await.1;
    assert_eq!(params["items"][0]["parameterType"], "number");
    let q = enc("value < 0.6");
    assert_eq!(
        names(&app.get(&format!("/artifacts?filterQuery={q}")).await.1),
        ["loss"]
    );

    let history = format!("/experiment_runs/{r1}/metric_history");
    let h = app.get(&history).await.1;
    let values: Vec<_> = h["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].clone())
        .collect();
    assert_eq!(values, [json!(0.9), json!(0.5)]);
    assert_eq!(h["items"][0]["experimentRunId"], r1.as_str());
    assert_eq!(h["items"][0]["artifactType"], "metric");
    assert_eq!(app.count(&format!("{history}?stepIds=2")).await, 1);
    assert_eq!(
        app.count(&format!("{history}?name=loss&stepIds=1,2")).await,
        2
    );
    assert_eq!(app.count(&format!("{history}?name=acc")).await, 0);
    assert_eq!(app.count("/experiment_runs/metric_history").await, 3);
    let q = enc(&format!("experimentRunId = {r2}"));
    assert_eq!(
        app.count(&format!("/experiment_runs/metric_history?filterQuery={q}"))
            .await,
        1
    );
}
}

on_each_backend! {
async fn bad_runs_and_artifacts_are_refused_and_store_nothing() {
    let app = App::new();
    let (eid, r1, r2) = setup(&app).await;
    let loss = app
        .made(&format!("/experiment_runs/{r2}/artifacts"), metric(1.0, 1))
        .await;
    let under = format!("/experiments/{eid}/experiment_runs");
    let arts = format!("/experiment_runs/{r1}/artifacts");
    let cases = [
        (
            "/experiment_runs".to_string(),
            json!({"name": "x"}),
            StatusCode::BAD_REQUEST,
            "experimentId",
        ),
        (
            "/experiment_runs".into(),
            json!({"name": "x", "experimentId": "99"}),
            StatusCode::NOT_FOUND,
            "experiment",
        ),
        (
            "/experiments/99/experiment_runs".into(),
            json!({"name": "x"}),
            StatusCode::NOT_FOUND,
            "experiment",
        ),
        (
            under.clone(),
            json!({"name": "r1"}),
            StatusCode::CONFLICT,
            "in this experiment",
        ),
        (
            under.clone(),
            json!({"name": "x", "status": "DONE"}),
            StatusCode::BAD_REQUEST,
            "status",
        ),
        (
            under.clone(),
            json!({"name": "x", "startTimeSinceEpoch": 5}),
            StatusCode::BAD_REQUEST,
            "startTimeSinceEpoch",
        ),
        (
            under.clone(),
            json!({"name": "x", "startTimeSinceEpoch": "9", "endTimeSinceEpoch": "3"}),
            StatusCode::BAD_REQUEST,
            "endTimeSinceEpoch",
        ),
        (
            under.clone(),
            json!({"name": "x", "experimentId": "5"}),
            StatusCode::BAD_REQUEST,
            "experimentId",
        ),
        (
            "/experiments".into(),
            json!({"name": "e"}),
            StatusCode::CONFLICT,
            "`e`",
        ),
        (
            "/experiments".into(),
            json!({"owner": "x"}),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            arts.clone(),
            json!({"name": "m"}),
            StatusCode::BAD_REQUEST,
            "artifactType",
        ),
        (
            arts.clone(),
            json!({"artifactType": "metric", "value": "high"}),
            StatusCode::BAD_REQUEST,
            "value",
        ),
        (
            arts.clone(),
            json!({"artifactType": "parameter", "parameterType": "list"}),
            StatusCode::BAD_REQUEST,
            "parameterType",
        ),
        (
            arts.clone(),
            json!({"artifactType": "metric", "experimentRunId": r2}),
            StatusCode::BAD_REQUEST,
            "experimentRunId",
        ),
        (
            arts.clone(),
            json!({"artifactType": "metric", "id": loss["id"]}),
            StatusCode::CONFLICT,
            "experiment run",
        ),
        (
            arts.clone(),
            json!({"artifactType": "metric", "id": "99"}),
            StatusCode::NOT_FOUND,
            "artifact",
        ),
        (
            "/experiment_runs/99/artifacts".into(),
            metric(1.0, 1),
            StatusCode::NOT_FOUND,
            "experiment run",
        ),
    ];
    for (path, body, status, text) in cases {
        error(&app.post(&path, body).await, status, text);
    }
    let patch = app
        .patch(
            &format!("/experiment_runs/{r1}"),
            json!({"endTimeSinceEpoch": "50"}),
        )
        .await;
    error(&patch, StatusCode::BAD_REQUEST, "endTimeSinceEpoch");
    for path in [
        "/experiments/99",
        "/experiments/99/experiment_runs",
        "/experiment_runs/99",
        "/experiment_runs/99/artifacts",
        "/experiment_runs/99/metric_history",
        "/experiment?name=nope",
        "/experiment_run?name=r1&parentResourceId=99",
    ] {
        error(&app.get(path).await, StatusCode::NOT_FOUND, "");
    }
    let bad_steps = app
        .get(&format!("/experiment_runs/{r1}/metric_history?stepIds=a"))
        .await;
    error(&bad_steps, StatusCode::BAD_REQUEST, "stepIds");
    assert_eq!(app.count("/experiment_runs").await, 2);
    assert_eq!(app.count("/experiments").await, 1);
    assert_eq!(app.count("/artifacts").await, 1);
    assert_eq!(app.count("/experiment_runs/metric_history").await, 1);
    assert!(app
        .get(&format!("/experiment_runs/{r1}"))
        .await
        .1
        .get("endTimeSinceEpoch")
        .is_none());
}
}
