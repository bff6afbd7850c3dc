//! The registry as the UI serves it: a DELETE frees the artifacts only it used, and the model
//! pages stay in their namespace.

mod common;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::Home;
use serde_json::{json, Value};
use std::sync::Arc;

const API: &str = "/api/model_registry/v1alpha3";

async fn post(home: &Home, ns: &str, path: &str, body: Value) -> Value {
    let req = Request::post(format!("{API}{path}"))
        .header("content-type", "application/json")
        .header("X-Weft-Namespace", ns)
        .body(Body::from(body.to_string()))
        .unwrap();
    let page = home.send(req).await;
    assert_eq!(page.status, StatusCode::CREATED, "{}", page.body);
    serde_json::from_str(&page.body).unwrap()
}

async fn delete(home: &Home, ns: &str, path: &str) -> StatusCode {
    let req = Request::delete(format!("{API}{path}"))
        .header("X-Weft-Namespace", ns)
        .body(Body::empty())
        .unwrap();
    home.send(req).await.status
}

/// A version of `model` whose model artifact's uri is `uri`; the version's id.
async fn version(home: &Home, ns: &str, model: &str, name: &str, uri: &str) -> String {
    let v = post(
        home,
        ns,
        &format!("/registered_models/{model}/versions"),
        json!({"name": name}),
    )
    .await;
    let id = v["id"].as_str().unwrap().to_string();
    let artifact = json!({"artifactType": "model-artifact", "name": "model", "uri": uri});
    post(
        home,
        ns,
        &format!("/model_versions/{id}/artifacts"),
        artifact,
    )
    .await;
    id
}

#[tokio::test]
async fn a_delete_frees_what_only_it_used() {
    let home = Home::new();
    let only_registry = home.artifact(&[("model.bin", "weights")]).digest;
    let shared = home
        .artifact(&[("model.bin", "shared across namespaces")])
        .digest;
    // An artifact a run produced: its lineage keeps it.
    home.run("r1", "p", 1, &[("train", &[])], json!({}));
    let from_run = home.artifact(&[("model.bin", "trained")]);
    let log = home.start("r1", "train", "");
    home.succeed(
        "r1",
        "train",
        vec![("model", from_run.clone(), "Model")],
        "{}",
        &[],
        &log,
    );

    let model = post(
        &home,
        "default",
        "/registered_models",
        json!({"name": "iris"}),
    )
    .await;
    let m = model["id"].as_str().unwrap().to_string();
    let v1 = version(&home, "default", &m, "v1", &only_registry).await;
    version(&home, "default", &m, "v2", &only_registry).await;
    version(&home, "default", &m, "v3", &from_run.digest).await;
    version(&home, "default", &m, "v4", &shared).await;
    let other = post(
        &home,
        "team-b",
        "/registered_models",
        json!({"name": "iris"}),
    )
    .await;
    version(
        &home,
        "team-b",
        other["id"].as_str().unwrap(),
        "v1",
        &shared,
    )
    .await;

    assert_eq!(
        delete(&home, "default", &format!("/model_versions/{v1}")).await,
        StatusCode::NO_CONTENT
    );
    assert!(
        home.ui.artifacts.contains(&only_registry),
        "v2 still names it"
    );
    assert_eq!(
        delete(&home, "default", &format!("/registered_models/{m}")).await,
        StatusCode::NO_CONTENT
    );
    assert!(
        !home.ui.artifacts.contains(&only_registry),
        "nothing names it any more: freed"
    );
    assert!(
        home.ui.artifacts.contains(&from_run.digest),
        "a run made it: kept"
    );
    assert!(
        home.ui.artifacts.contains(&shared),
        "another namespace still names it: kept"
    );
    assert_eq!(
        delete(&home, "default", &format!("/registered_models/{m}")).await,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn model_pages_stay_in_their_namespace() {
    let home = Home::new();
    let model = post(
        &home,
        "team-b",
        "/registered_models",
        json!({"name": "fraud"}),
    )
    .await;
    let m = model["id"].as_str().unwrap().to_string();
    let v = version(&home, "team-b", &m, "v1", "s3://bucket/fraud").await;
    assert!(
        !home.get("/models").await.body.contains(">fraud<"),
        "not in the default namespace"
    );
    let list = home.get("/models?namespace=team-b").await;
    assert!(
        list.body
            .contains(&format!("href=\"/models/{m}?namespace=team-b\"")),
        "{}",
        list.body
    );
    let page = home.get(&format!("/models/{m}?namespace=team-b")).await;
    assert!(page.body.contains(&format!(
        "href=\"/models/{m}/versions/{v}?namespace=team-b\""
    )));
    assert_eq!(
        home.get(&format!("/models/{m}")).await.status,
        StatusCode::NOT_FOUND
    );
    let version_page = home
        .get(&format!("/models/{m}/versions/{v}?namespace=team-b"))
        .await;
    assert_eq!(version_page.status, StatusCode::OK);
    assert!(version_page.body.contains("s3://bucket/fraud"));

    // A server that serves team-a only: other namespaces are refused, not shown.
    let ui = weft_ui::Ui {
        metadata: weft_store::MetadataStore::open(&home.dir.path().join("metadata.db")).unwrap(),
        artifacts: weft_store::ArtifactStore::open(&home.dir.path().join("artifacts")).unwrap(),
        registry: home.ui.registry.clone(),
        logs_dir: home.ui.logs_dir.clone(),
        serving: vec![],
        namespaces: weft_registry::Namespaces::only(["team-a"]).unwrap(),
    };
    let only_a = Home {
        dir: tempfile::tempdir().unwrap(),
        ui: Arc::new(ui),
    };
    assert_eq!(
        only_a.get("/models?namespace=team-b").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(only_a.get("/models").await.status, StatusCode::OK);
}
