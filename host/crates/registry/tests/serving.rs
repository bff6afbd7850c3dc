//! Serving environments, inference services and their serve actions through the router.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::json;

/// A model with versions v1 and v2, and a serving environment `prod`: (model, v1, v2, env).
async fn setup(app: &App) -> (String, String, String, String) {
    let (m, v1, _) = registered(app).await;
    let mid = id(&m);
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let v2 = app
        .made(
            &format!("/registered_models/{mid}/versions"),
            json!({"name": "v2"}),
        )
        .await;
    let env = app
        .made(
            "/serving_environments",
            json!({"name": "prod", "description": "p"}),
        )
        .await;
    (mid, id(&v1), id(&v2), id(&env))
}

on_each_backend! {
async fn services_are_made_found_and_serve_the_model() {
    let app = App::new();
    let (mid, v1, v2, env) = setup(&app).await;
    let under = format!("/serving_environments/{env}/inference_services");
    let s = app
        .made(
            &under,
            json!({"name": "iris-svc", "registeredModelId": mid, "runtime": "wasm"}),
        )
        .await;
    assert_eq!(s["desiredState"], "DEPLOYED");
    assert_eq!(s["servingEnvironmentId"], env.as_str());
    assert_eq!(s["customProperties"], json!({}));
    let sid = id(&s);
    assert_eq!(app.get(&format!("/inference_services/{sid}")).await.1, s);
    let found = app
        .get(&format!(
            "/inference_service?name=iris-svc&parentResourceId={env}"
        ))
        .await;
    assert_eq!(found.1, s);
    assert_eq!(app.get(&under).await.1["items"], json!([s]));
    let model = app.get(&format!("/inference_services/{sid}/model")).await;
    assert_eq!(
        (found.0, model.1["id"].as_str()),
        (StatusCode::OK, Some(mid.as_str()))
    );
    // No version named: the model's latest.
    let version = app
        .get(&format!("/inference_services/{sid}/version"))
        .await
        .1;
    assert_eq!(version["id"], v2.as_str());
    let patched = app
        .patch(
            &format!("/inference_services/{sid}"),
            json!({"modelVersionId": v1, "desiredState": "UNDEPLOYED"}),
        )
        .await;
    assert_eq!(patched.0, StatusCode::OK, "{}", patched.1);
    assert_eq!(patched.1["runtime"], "wasm");
    let version = app
        .get(&format!("/inference_services/{sid}/version"))
        .await
        .1;
    assert_eq!(version["id"], v1.as_str());

    let other = app
        .made(
            "/inference_services",
            json!({"name": "b", "registeredModelId": mid, "servingEnvironmentId": env, "modelVersionId": v2}),
        )
        .await;
    assert_eq!(app.count("/inference_services").await, 2);
    let q = enc("desiredState = 'DEPLOYED'");
    let deployed = app
        .get(&format!("/inference_services?filterQuery={q}"))
        .await
        .1;
    assert_eq!(deployed["items"], json!([other]));

    let serves = format!("/inference_services/{sid}/serves");
    let sm = app.made(&serves, json!({"modelVersionId": v1})).await;
    assert_eq!(sm["lastKnownState"], "UNKNOWN");
    app.made(
        &serves,
        json!({"name": "second", "modelVersionId": v2, "lastKnownState": "RUNNING"}),
    )
    .await;
    let listed = app
        .get(&format!("{serves}?orderBy=ID&sortOrder=DESC"))
        .await
        .1;
    assert_eq!(names(&listed), ["second", ""]);
    let q = enc("lastKnownState = 'RUNNING'");
    assert_eq!(app.count(&format!("{serves}?filterQuery={q}")).await, 1);
}
}

on_each_backend! {
async fn environments_are_found_listed_and_patched() {
    let app = App::new();
    let (.., env) = setup(&app).await;
    app.made(
        "/serving_environments",
        json!({"name": "dev", "externalId": "d"}),
    )
    .await;
    let found = app.get("/serving_environment?externalId=d").await.1;
    assert_eq!(found["name"], "dev");
    assert_eq!(
        names(&app.get("/serving_environments?sortOrder=DESC").await.1),
        ["dev", "prod"]
    );
    let got = app
        .patch(
            &format!("/serving_environments/{env}"),
            json!({"description": "q"}),
        )
        .await;
    assert_eq!(
        (got.0, got.1["description"].clone()),
        (StatusCode::OK, json!("q"))
    );
    assert_eq!(
        app.get(&format!("/serving_environments/{env}")).await.1,
        got.1
    );
}
}

on_each_backend! {
async fn bad_services_are_refused_and_store_nothing() {
    let app = App::new();
    let (mid, v1, _, env) = setup(&app).await;
    let other = app
        .made("/registered_models", json!({"name": "other"}))
        .await;
    let under = format!("/serving_environments/{env}/inference_services");
    app.made(&under, json!({"name": "s", "registeredModelId": mid}))
        .await;
    let cases = [
        (
            "/serving_environments/99/inference_services".to_string(),
            json!({"registeredModelId": mid}),
            StatusCode::NOT_FOUND,
            "serving environment",
        ),
        (
            "/inference_services".into(),
            json!({"registeredModelId": mid, "servingEnvironmentId": "99"}),
            StatusCode::NOT_FOUND,
            "serving environment",
        ),
        (
            "/inference_services".into(),
            json!({"registeredModelId": mid}),
            StatusCode::BAD_REQUEST,
            "servingEnvironmentId",
        ),
        (
            under.clone(),
            json!({"registeredModelId": "99"}),
            StatusCode::NOT_FOUND,
            "registered model",
        ),
        (
            under.clone(),
            json!({"name": "x"}),
            StatusCode::BAD_REQUEST,
            "registeredModelId",
        ),
        (
            under.clone(),
            json!({"registeredModelId": 1}),
            StatusCode::BAD_REQUEST,
            "registeredModelId",
        ),
        (
            under.clone(),
            json!({"registeredModelId": mid, "modelVersionId": "99"}),
            StatusCode::NOT_FOUND,
            "model version",
        ),
        (
            under.clone(),
            json!({"registeredModelId": id(&other), "modelVersionId": v1}),
            StatusCode::BAD_REQUEST,
            "modelVersionId",
        ),
        (
            under.clone(),
            json!({"registeredModelId": mid, "desiredState": "UP"}),
            StatusCode::BAD_REQUEST,
            "desiredState",
        ),
        (
            under.clone(),
            json!({"registeredModelId": mid, "servingEnvironmentId": "7"}),
            StatusCode::BAD_REQUEST,
            "servingEnvironmentId",
        ),
        (
            under.clone(),
            json!({"name": "s", "registeredModelId": mid}),
            StatusCode::CONFLICT,
            "`s` already exists in this serving environment",
        ),
        (
            "/serving_environments".into(),
            json!({"name": "prod"}),
            StatusCode::CONFLICT,
            "prod",
        ),
        (
            "/serving_environments".into(),
            json!({"name": "x", "owner": "me"}),
            StatusCode::BAD_REQUEST,
            "owner",
        ),
        (
            "/serving_environments".into(),
            json!({}),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            "/inference_services/1/serves".into(),
            json!({}),
            StatusCode::BAD_REQUEST,
            "modelVersionId",
        ),
        (
            "/inference_services/1/serves".into(),
            json!({"modelVersionId": "99"}),
            StatusCode::NOT_FOUND,
            "model version",
        ),
        (
            "/inference_services/1/serves".into(),
            json!({"modelVersionId": v1, "lastKnownState": "GOOD"}),
            StatusCode::BAD_REQUEST,
            "lastKnownState",
        ),
        (
            "/inference_services/99/serves".into(),
            json!({"modelVersionId": v1}),
            StatusCode::NOT_FOUND,
            "inference service",
        ),
    ];
    for (path, body, status, text) in cases {
        error(&app.post(&path, body).await, status, text);
    }
    let patch = app
        .patch("/inference_services/1", json!({"modelVersionId": "99"}))
        .await;
    error(&patch, StatusCode::NOT_FOUND, "model version");
    for path in [
        "/inference_services/99",
        "/inference_services/99/model",
        "/inference_services/99/version",
        "/inference_services/99/serves",
        "/inference_services/x/model",
        "/serving_environments/99",
        "/serving_environments/99/inference_services",
        "/serving_environment?name=nope",
        "/inference_service?name=s&parentResourceId=99",
    ] {
        error(&app.get(path).await, StatusCode::NOT_FOUND, "");
    }
    assert_eq!(app.count("/inference_services").await, 1);
    assert_eq!(app.count("/serving_environments").await, 1);
    assert_eq!(app.count("/inference_services/1/serves").await, 0);
    let s = app.get("/inference_services/1").await.1;
    assert!(s.get("modelVersionId").is_none(), "{s}");
}
}
