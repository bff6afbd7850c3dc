//! DELETE (Weft's extension): cascades in one transaction, 404 for unknown ids, 409 while a
//! deployed inference service serves what would go.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::json;

on_each_backend! {
async fn deleting_a_model_takes_its_versions_and_their_artifacts() {
    let app = App::new();
    let (m, v, a) = registered(&app).await;
    let (mid, vid, aid) = (id(&m), id(&v), id(&a));
    let doc = json!({"artifactType": "doc-artifact", "name": "card"});
    app.made(&format!("/model_versions/{vid}/artifacts"), doc)
        .await;
    let other = app
        .made("/registered_models", json!({"name": "keep"}))
        .await;
    let kept = app
        .made(
            &format!("/registered_models/{}/versions", id(&other)),
            json!({"name": "k1"}),
        )
        .await;
    app.made(
        &format!("/model_versions/{}/artifacts", id(&kept)),
        json!({"artifactType": "model-artifact", "name": "kw"}),
    )
    .await;
    let loose = app.made("/model_artifacts", json!({"name": "loose"})).await;

    let (status, body) = app.delete(&format!("/registered_models/{mid}")).await;
    assert_eq!(
        (status, body),
        (StatusCode::NO_CONTENT, serde_json::Value::Null)
    );
    for path in [
        format!("/registered_models/{mid}"),
        format!("/model_versions/{vid}"),
        format!("/artifacts/{aid}"),
    ] {
        error(&app.get(&path).await, StatusCode::NOT_FOUND, "");
    }
    assert_eq!(names(&app.get("/registered_models").await.1), ["keep"]);
    assert_eq!(names(&app.get("/model_versions").await.1), ["k1"]);
    assert_eq!(names(&app.get("/artifacts").await.1), ["kw", "loose"]);
    error(
        &app.delete(&format!("/registered_models/{mid}")).await,
        StatusCode::NOT_FOUND,
        "registered model",
    );
    // The name is free again.
    app.made("/registered_models", json!({"name": "iris"}))
        .await;

    let (status, _) = app.delete(&format!("/model_versions/{}", id(&kept))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(names(&app.get("/artifacts").await.1), ["loose"]);
    let (status, _) = app
        .delete(&format!("/model_artifacts/{}", id(&loose)))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.count("/artifacts").await, 0);
    assert_eq!(app.count("/registered_models").await, 2);
}
}

on_each_backend! {
async fn unknown_ids_are_404_and_delete_nothing() {
    let app = App::new();
    let (_, v, _) = registered(&app).await;
    let doc = json!({"artifactType": "doc-artifact", "name": "card"});
    let doc = app
        .made(&format!("/model_versions/{}/artifacts", id(&v)), doc)
        .await;
    for path in [
        "/registered_models/99".to_string(),
        "/registered_models/abc".into(),
        "/model_versions/99".into(),
        "/model_versions/-1".into(),
        "/model_artifacts/99".into(),
        "/artifacts/99".into(),
        // A doc artifact is no model artifact.
        format!("/model_artifacts/{}", id(&doc)),
    ] {
        error(&app.delete(&path).await, StatusCode::NOT_FOUND, "no ");
    }
    let (status, _) = app.delete("/serving_environments/1").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(app.count("/registered_models").await, 1);
    assert_eq!(app.count("/model_versions").await, 1);
    assert_eq!(app.count("/artifacts").await, 2);
}
}

on_each_backend! {
async fn what_a_deployed_service_serves_is_kept_until_it_is_undeployed() {
    let app = App::new();
    let (m, v1, a) = registered(&app).await;
    let mid = id(&m);
    let v2 = app
        .made(
            &format!("/registered_models/{mid}/versions"),
            json!({"name": "v2"}),
        )
        .await;
    let env = app
        .made("/serving_environments", json!({"name": "prod"}))
        .await;
    let under = format!("/serving_environments/{}/inference_services", id(&env));
    // Serves the model's latest version (it names none).
    let latest = app
        .made(&under, json!({"name": "latest", "registeredModelId": mid}))
        .await;
    for path in [
        format!("/registered_models/{mid}"),
        format!("/model_versions/{}", id(&v1)),
        format!("/model_versions/{}", id(&v2)),
        format!("/artifacts/{}", id(&a)),
        format!("/model_artifacts/{}", id(&a)),
    ] {
        error(
            &app.delete(&path).await,
            StatusCode::CONFLICT,
            "inference service 1 (`latest`)",
        );
    }
    let undeploy = json!({"desiredState": "UNDEPLOYED"});
    let lid = id(&latest);
    app.patch(&format!("/inference_services/{lid}"), undeploy.clone())
        .await;
    // Now one that names v1: v2 may go, v1 and the model may not.
    let pinned = app
        .made(
            &under,
            json!({"name": "pinned", "registeredModelId": mid, "modelVersionId": id(&v1)}),
        )
        .await;
    let (status, _) = app.delete(&format!("/model_versions/{}", id(&v2))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let refused = app.delete(&format!("/model_versions/{}", id(&v1))).await;
    error(&refused, StatusCode::CONFLICT, "`pinned`");
    error(
        &app.delete(&format!("/registered_models/{mid}")).await,
        StatusCode::CONFLICT,
        "DEPLOYED",
    );
    assert_eq!(app.count("/model_versions").await, 1);
    assert_eq!(app.count("/artifacts").await, 1);

    app.patch(&format!("/inference_services/{}", id(&pinned)), undeploy)
        .await;
    let (status, _) = app.delete(&format!("/registered_models/{mid}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.count("/model_versions").await, 0);
    assert_eq!(app.count("/artifacts").await, 0);
    // The undeployed services are kept; what they named is gone.
    assert_eq!(app.count("/inference_services").await, 2);
    let gone = app.get(&format!("/inference_services/{lid}/model")).await;
    error(&gone, StatusCode::NOT_FOUND, "registered model");
}
}
