//! Namespaces: the same names in two namespaces, rows of another namespace answered 404
//! whatever the method, lists, finds and filterQuery of one namespace only, DELETE's check in
//! the namespace, and a server restricted to some namespaces answering 403 for the others,
//! storing nothing for a refused request. On each backend.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::json;
use std::sync::Arc;
use weft_registry::{router, router_for, Namespaces};

on_each_backend! {
async fn the_same_names_live_in_two_namespaces_apart() {
    let app = App::new();
    let (a, b) = (app.ns("team-a"), app.ns("team-b"));
    let ma = a.made("/registered_models", json!({"name": "iris", "externalId": "x"})).await;
    let mb = b.made("/registered_models", json!({"name": "iris", "externalId": "x"})).await;
    // Named by the query parameter too; and the default namespace is one more.
    let (status, _) = app
        .post("/registered_models?namespace=team-c", json!({"name": "iris"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    app.made("/registered_models", json!({"name": "iris"})).await;
    assert_ne!(id(&ma), id(&mb));
    // Unique within one.
    let taken = a.post("/registered_models", json!({"name": "iris"})).await;
    error(&taken, StatusCode::CONFLICT, "iris");
    let taken = b.post("/registered_models", json!({"name": "other", "externalId": "x"})).await;
    error(&taken, StatusCode::CONFLICT, "external id");
    // Versions of the same name under each.
    for (ns, m) in [(&a, &ma), (&b, &mb)] {
        ns.made(
            &format!("/registered_models/{}/versions", id(m)),
            json!({"name": "v1", "registeredModelId": id(m)}),
        )
        .await;
    }
    // Lists, finds and filters see their namespace.
    for ns in [&a, &b] {
        assert_eq!(ns.count("/registered_models").await, 1);
        assert_eq!(ns.count("/model_versions").await, 1);
        assert_eq!(
            ns.count(&format!("/registered_models?filterQuery={}", enc("name = 'iris'"))).await,
            1
        );
    }
    assert_eq!(app.count("/registered_models").await, 1);
    assert_eq!(app.ns("default").count("/registered_models").await, 1);
    assert_eq!(app.ns("nobody").count("/registered_models").await, 0);
    let (status, found) = b.get("/registered_model?name=iris").await;
    assert_eq!((status, id(&found)), (StatusCode::OK, id(&mb)));
    let (status, found) = b.get("/registered_model?externalId=x").await;
    assert_eq!((status, id(&found)), (StatusCode::OK, id(&mb)));
    let (status, _) = app.ns("nobody").get("/registered_model?name=iris").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn another_namespaces_rows_are_404_whatever_the_method() {
    let app = App::new();
    let (m, v, art) = registered(&app.ns("team-a")).await;
    let b = app.ns("team-b");
    let (mid, vid, aid) = (id(&m), id(&v), id(&art));
    for path in [
        format!("/registered_models/{mid}"),
        format!("/registered_models/{mid}/versions"),
        format!("/model_versions/{vid}"),
        format!("/model_versions/{vid}/artifacts"),
        format!("/model_artifacts/{aid}"),
        format!("/artifacts/{aid}"),
        "/registered_model?name=iris".to_string(),
        format!("/model_version?name=v1&parentResourceId={mid}"),
    ] {
        let got = b.get(&path).await;
        assert_eq!(got.0, StatusCode::NOT_FOUND, "{path}: {}", got.1);
    }
    let got = b.patch(&format!("/registered_models/{mid}"), json!({"description": "x"})).await;
    error(&got, StatusCode::NOT_FOUND, "no registered model");
    let got = b.patch(&format!("/artifacts/{aid}"), json!({"uri": "y"})).await;
    error(&got, StatusCode::NOT_FOUND, "no artifact");
    for path in [
        format!("/artifacts/{aid}"),
        format!("/model_versions/{vid}"),
        format!("/registered_models/{mid}"),
    ] {
        error(&b.delete(&path).await, StatusCode::NOT_FOUND, "no ");
    }
    // Nothing can hang under another namespace's rows, or take its artifacts.
    let got = b
        .post(&format!("/registered_models/{mid}/versions"), json!({"name": "v2"}))
        .await;
    assert_eq!(got.0, StatusCode::NOT_FOUND, "{}", got.1);
    let got = b
        .post("/model_versions", json!({"name": "v2", "registeredModelId": mid}))
        .await;
    assert_eq!(got.0, StatusCode::NOT_FOUND, "{}", got.1);
    let env = b.made("/serving_environments", json!({"name": "prod"})).await;
    let got = b
        .post(
            "/inference_services",
            json!({"name": "s", "servingEnvironmentId": id(&env), "registeredModelId": mid}),
        )
        .await;
    assert_eq!(got.0, StatusCode::NOT_FOUND, "{}", got.1);
    let mine = b.made("/registered_models", json!({"name": "mine"})).await;
    let vb = b
        .made(
            &format!("/registered_models/{}/versions", id(&mine)),
            json!({"name": "v1"}),
        )
        .await;
    let got = b
        .post(&format!("/model_versions/{}/artifacts", id(&vb)), json!({"id": aid, "artifactType": "model-artifact"}))
        .await;
    assert_eq!(got.0, StatusCode::NOT_FOUND, "{}", got.1);
    // And team-a's rows are as they were.
    let a = app.ns("team-a");
    assert_eq!(a.get(&format!("/registered_models/{mid}")).await.1, m);
    assert_eq!(a.get(&format!("/artifacts/{aid}")).await.1["uri"], art["uri"]);
    assert_eq!(a.count("/model_versions").await, 1);
}

async fn a_deployed_service_holds_its_own_namespaces_model_only() {
    let app = App::new();
    let (a, b) = (app.ns("team-a"), app.ns("team-b"));
    let (ma, _, _) = registered(&a).await;
    let (mb, _, _) = registered(&b).await;
    let env = a.made("/serving_environments", json!({"name": "prod"})).await;
    a.made(
        "/inference_services",
        json!({"name": "s", "servingEnvironmentId": id(&env), "registeredModelId": id(&ma)}),
    )
    .await;
    error(
        &a.delete(&format!("/registered_models/{}", id(&ma))).await,
        StatusCode::CONFLICT,
        "DEPLOYED",
    );
    let (status, _) = b.delete(&format!("/registered_models/{}", id(&mb))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(a.count("/model_versions").await, 1);
    assert_eq!(b.count("/model_versions").await, 0);
}

async fn a_restricted_server_refuses_other_namespaces_and_stores_nothing() {
    let store = Arc::new(store());
    let open = App(router(store.clone()));
    let only = App(router_for(
        store,
        Namespaces::only(["team-a", "team-b"]).unwrap(),
    ));
    // Naming none: the first namespace accepted.
    only.made("/registered_models", json!({"name": "m"})).await;
    assert_eq!(open.ns("team-a").count("/registered_models").await, 1);
    only.ns("team-b").made("/registered_models", json!({"name": "m"})).await;
    for (ns, path) in [
        ("default", "/registered_models"),
        ("team-c", "/registered_models"),
        ("team-c", "/experiments"),
    ] {
        let got = only.ns(ns).post(path, json!({"name": "x"})).await;
        error(&got, StatusCode::FORBIDDEN, &format!("`{ns}`"));
        let got = only.ns(ns).get(path).await;
        error(&got, StatusCode::FORBIDDEN, "not served here");
        let got = only
            .post(&format!("{path}?namespace={ns}"), json!({"name": "x"}))
            .await;
        error(&got, StatusCode::FORBIDDEN, "not served here");
    }
    let got = only.ns("team-c").delete("/registered_models/1").await;
    error(&got, StatusCode::FORBIDDEN, "not served here");
    // Names that are no namespace, and two at once, are 400, on any server.
    for app in [&open, &only] {
        for ns in ["Team-A", "a_b", "-a"] {
            let got = app
                .post(&format!("/registered_models?namespace={}", enc(ns)), json!({"name": "y"}))
                .await;
            error(&got, StatusCode::BAD_REQUEST, "invalid namespace");
        }
        let got = app
            .ns("team-b")
            .post("/registered_models?namespace=team-a", json!({"name": "y"}))
            .await;
        error(&got, StatusCode::BAD_REQUEST, "X-Weft-Namespace");
    }
    // Nothing of that was stored.
    for ns in ["default", "team-a", "team-b", "team-c"] {
        let want = if ns.starts_with("team-") && ns != "team-c" { 1 } else { 0 };
        assert_eq!(open.ns(ns).count("/registered_models").await, want, "{ns}");
        assert_eq!(open.ns(ns).count("/experiments").await, 0, "{ns}");
    }
}
}

#[test]
fn a_restriction_names_namespaces() {
    assert!(Namespaces::only(["Team"]).is_err());
    assert!(Namespaces::only(Vec::<String>::new()).is_err());
}
