//! Every endpoint of the registry through the router (`oneshot`): what a client sends and
//! what it gets back, errors in the API's shape, and nothing stored by a refused request.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::{json, Value};

on_each_backend! {
async fn a_model_its_version_and_artifact_are_created_found_and_read_back() {
    let app = App::new();
    let (m, v, a) = registered(&app).await;
    assert_eq!(m["state"], "LIVE");
    assert_eq!(m["customProperties"], json!({}));
    assert!(
        m["createTimeSinceEpoch"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > 0
    );
    assert_eq!(v["registeredModelId"], m["id"]);
    assert_eq!(v["customProperties"]["epochs"]["int_value"], "10");
    assert_eq!(a["artifactType"], "model-artifact");
    assert_eq!(a["state"], "UNKNOWN");

    let (mid, vid, aid) = (&m["id"], &v["id"], &a["id"]);
    let mid = mid.as_str().unwrap();
    let vid = vid.as_str().unwrap();
    let aid = aid.as_str().unwrap();
    assert_eq!(app.get(&format!("/registered_models/{mid}")).await.1, m);
    assert_eq!(app.get("/registered_model?name=iris").await.1, m);
    assert_eq!(app.get(&format!("/model_versions/{vid}")).await.1, v);
    let found = app
        .get(&format!("/model_version?name=v1&parentResourceId={mid}"))
        .await;
    assert_eq!(found.1, v);
    assert_eq!(app.get(&format!("/model_artifacts/{aid}")).await.1, a);
    assert_eq!(app.get(&format!("/artifacts/{aid}")).await.1, a);
    let found = app
        .get(&format!("/model_artifact?name=iris&parentResourceId={vid}"))
        .await;
    assert_eq!(found.1, a);
    assert_eq!(app.get("/artifact?name=iris").await.1, a);
    let listed = app.get(&format!("/model_versions/{vid}/artifacts")).await.1;
    assert_eq!(listed["items"], json!([a]));
    // The prefix the current PyPI client speaks serves the same.
    let v1 = app
        .get(&format!("/api/model_registry/v1/registered_models/{mid}"))
        .await;
    assert_eq!(v1.1, m);
}
}

on_each_backend! {
async fn versions_and_artifacts_are_made_through_every_route() {
    let app = App::new();
    let m = app.made("/registered_models", json!({"name": "m"})).await;
    let mid = m["id"].as_str().unwrap();
    let v = app
        .made(
            "/model_versions",
            json!({"name": "v", "registeredModelId": mid}),
        )
        .await;
    let listed = app.get(&format!("/registered_models/{mid}/versions")).await;
    assert_eq!(listed.1["items"], json!([v]));
    assert_eq!(app.get("/model_versions").await.1["items"], json!([v]));
    // An artifact made alone, then attached to the version by its id.
    let a = app
        .made(
            "/model_artifacts",
            json!({"name": "weights", "uri": "s3://b/w"}),
        )
        .await;
    let vid = v["id"].as_str().unwrap();
    let attached = app
        .post(
            &format!("/model_versions/{vid}/artifacts"),
            json!({"id": a["id"], "artifactType": "model-artifact", "description": "d"}),
        )
        .await;
    assert_eq!(attached.0, StatusCode::OK, "{}", attached.1);
    assert_eq!(attached.1["description"], "d");
    assert_eq!(attached.1["uri"], "s3://b/w");
    let doc = app
        .made(
            "/artifacts",
            json!({"artifactType": "doc-artifact", "uri": "file:///README.md"}),
        )
        .await;
    assert_eq!(doc["artifactType"], "doc-artifact");
    let all = app.get("/artifacts").await.1;
    assert_eq!(all["size"], 2);
    let docs = app.get("/artifacts?artifactType=doc-artifact").await.1;
    assert_eq!(docs["items"], json!([doc]));
    // A doc artifact is no model artifact.
    let did = doc["id"].as_str().unwrap();
    error(
        &app.get(&format!("/model_artifacts/{did}")).await,
        StatusCode::NOT_FOUND,
        "no artifact",
    );
    assert_eq!(app.get("/model_artifacts").await.1["size"], 1);
}
}

on_each_backend! {
async fn patch_writes_the_fields_given_and_archives() {
    let app = App::new();
    let (m, v, a) = registered(&app).await;
    let mid = m["id"].as_str().unwrap();
    let (status, got) = app
        .patch(
            &format!("/registered_models/{mid}"),
            json!({"state": "ARCHIVED", "description": "old"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["state"], "ARCHIVED");
    assert_eq!(got["owner"], "ann");
    assert_eq!(got["name"], "iris");
    assert_eq!(got["createTimeSinceEpoch"], m["createTimeSinceEpoch"]);
    assert_eq!(app.get(&format!("/registered_models/{mid}")).await.1, got);

    let vid = v["id"].as_str().unwrap();
    let props = json!({"note": {"metadataType": "MetadataStringValue", "string_value": "x"}});
    let got = app
        .patch(
            &format!("/model_versions/{vid}"),
            json!({"state": "ARCHIVED", "customProperties": props}),
        )
        .await
        .1;
    assert_eq!(got["customProperties"], props);
    assert_eq!(got["author"], "ann");
    let aid = a["id"].as_str().unwrap();
    let got = app
        .patch(&format!("/model_artifacts/{aid}"), json!({"state": "LIVE"}))
        .await
        .1;
    assert_eq!(
        (got["state"].clone(), got["uri"].clone()),
        (json!("LIVE"), a["uri"].clone())
    );
    let got = app
        .patch(&format!("/artifacts/{aid}"), json!({"description": "w"}))
        .await
        .1;
    assert_eq!(got["description"], "w");
    assert_eq!(got["state"], "LIVE");
}
}

on_each_backend! {
async fn lists_page_in_every_order_and_tokens_are_checked() {
    let app = App::new();
    for i in 0..5 {
        app.made("/registered_models", json!({"name": format!("m{i}")}))
            .await;
    }
    // Touch m1 last, so it is the latest update (a later millisecond than the creations).
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    app.patch("/registered_models/2", json!({"description": "x"}))
        .await;
    for (order, sort, want) in [
        ("ID", "ASC", ["m0", "m1", "m2", "m3", "m4"]),
        ("ID", "DESC", ["m4", "m3", "m2", "m1", "m0"]),
        ("CREATE_TIME", "DESC", ["m4", "m3", "m2", "m1", "m0"]),
        ("LAST_UPDATE_TIME", "DESC", ["m1", "m4", "m3", "m2", "m0"]),
    ] {
        let mut names = Vec::new();
        let mut token = String::new();
        loop {
            let page = app
                .get(&format!(
                    "/registered_models?pageSize=2&orderBy={order}&sortOrder={sort}&nextPageToken={token}"
                ))
                .await
                .1;
            assert_eq!(page["pageSize"], 2);
            for item in page["items"].as_array().unwrap() {
                names.push(item["name"].as_str().unwrap().to_string());
            }
            token = page["nextPageToken"].as_str().unwrap().to_string();
            if token.is_empty() {
                break;
            }
        }
        assert_eq!(names, want, "{order} {sort}");
    }
    let first = app.get("/registered_models?pageSize=2").await.1;
    let token = first["nextPageToken"].as_str().unwrap();
    let other_order = format!("/registered_models?pageSize=2&sortOrder=DESC&nextPageToken={token}");
    error(
        &app.get(&other_order).await,
        StatusCode::BAD_REQUEST,
        "nextPageToken",
    );
    for bad in ["zz", "%00", "4944"] {
        let got = app
            .get(&format!("/registered_models?nextPageToken={bad}"))
            .await;
        error(&got, StatusCode::BAD_REQUEST, "nextPageToken");
    }
    for (query, field) in [
        ("pageSize=0", "pageSize"),
        ("pageSize=x", "pageSize"),
        ("orderBy=NAME", "orderBy"),
        ("sortOrder=UP", "sortOrder"),
        ("filterQuery=name%3D", "filterQuery"),
    ] {
        let got = app.get(&format!("/registered_models?{query}")).await;
        error(&got, StatusCode::BAD_REQUEST, field);
    }
    error(
        &app.get("/artifacts?artifactType=table").await,
        StatusCode::BAD_REQUEST,
        "artifactType",
    );
}
}

on_each_backend! {
async fn duplicate_names_are_409_and_store_nothing() {
    let app = App::new();
    let (m, v, _) = registered(&app).await;
    let mid = m["id"].as_str().unwrap();
    let vid = v["id"].as_str().unwrap();
    let got = app
        .post("/registered_models", json!({"name": "iris"}))
        .await;
    error(&got, StatusCode::CONFLICT, "iris");
    let got = app
        .post(
            &format!("/registered_models/{mid}/versions"),
            json!({"name": "v1"}),
        )
        .await;
    error(&got, StatusCode::CONFLICT, "v1");
    let got = app
        .post(
            &format!("/model_versions/{vid}/artifacts"),
            json!({"artifactType": "model-artifact", "name": "iris"}),
        )
        .await;
    error(&got, StatusCode::CONFLICT, "iris");
    app.made(
        "/registered_models",
        json!({"name": "a", "externalId": "x"}),
    )
    .await;
    let got = app
        .post(
            "/registered_models",
            json!({"name": "b", "externalId": "x"}),
        )
        .await;
    error(&got, StatusCode::CONFLICT, "external id");
    assert_eq!(app.get("/registered_models").await.1["size"], 2);
    assert_eq!(app.get("/model_versions").await.1["size"], 1);
    assert_eq!(app.get("/artifacts").await.1["size"], 1);
    // The same version name under another model is fine.
    let other = app.get("/registered_model?name=a").await.1;
    let oid = other["id"].as_str().unwrap();
    app.made(
        &format!("/registered_models/{oid}/versions"),
        json!({"name": "v1"}),
    )
    .await;
}
}

on_each_backend! {
async fn unknown_ids_are_404() {
    let app = App::new();
    registered(&app).await;
    for path in [
        "/registered_models/99",
        "/registered_models/abc",
        "/registered_models/99/versions",
        "/model_versions/99",
        "/model_versions/-1",
        "/model_versions/99/artifacts",
        "/model_artifacts/99",
        "/artifacts/99",
        "/registered_model?name=nope",
        "/registered_model?externalId=nope",
        "/model_version?name=v1&parentResourceId=99",
        "/model_version?name=v1&parentResourceId=x",
        "/model_artifact?name=nope",
        "/artifact?name=nope",
        "/no_such_thing",
    ] {
        error(&app.get(path).await, StatusCode::NOT_FOUND, "");
    }
    let body = json!({"description": "x"});
    for path in [
        "/registered_models/99",
        "/model_versions/99",
        "/model_artifacts/99",
        "/artifacts/9",
    ] {
        error(
            &app.patch(path, body.clone()).await,
            StatusCode::NOT_FOUND,
            "no ",
        );
    }
    let version = json!({"name": "v9"});
    let got = app.post("/registered_models/99/versions", version).await;
    error(&got, StatusCode::NOT_FOUND, "registered model");
    let got = app
        .post(
            "/model_versions",
            json!({"name": "v9", "registeredModelId": "99"}),
        )
        .await;
    error(&got, StatusCode::NOT_FOUND, "registered model");
    let art = json!({"artifactType": "model-artifact", "name": "z"});
    let got = app.post("/model_versions/99/artifacts", art).await;
    error(&got, StatusCode::NOT_FOUND, "model version");
    let got = app
        .post(
            "/model_versions/1/artifacts",
            json!({"id": "99", "artifactType": "model-artifact"}),
        )
        .await;
    error(&got, StatusCode::NOT_FOUND, "artifact");
    assert_eq!(app.get("/model_versions").await.1["size"], 1);
    assert_eq!(app.get("/artifacts").await.1["size"], 1);
}
}

on_each_backend! {
async fn bad_bodies_are_400_naming_the_field() {
    let app = App::new();
    let (m, v, _) = registered(&app).await;
    let mid = m["id"].as_str().unwrap();
    let vid = v["id"].as_str().unwrap();
    let cases: Vec<(&str, String, Value, &str)> = vec![
        (
            "POST",
            "/registered_models".into(),
            json!({"name": 3}),
            "name",
        ),
        ("POST", "/registered_models".into(), json!({}), "name"),
        (
            "POST",
            "/registered_models".into(),
            json!({"name": ""}),
            "name",
        ),
        (
            "POST",
            "/registered_models".into(),
            json!({"name": "n", "colour": "red"}),
            "colour",
        ),
        (
            "POST",
            "/registered_models".into(),
            json!({"name": "n", "state": "GONE"}),
            "state",
        ),
        (
            "POST",
            "/registered_models".into(),
            json!({"name": "n", "language": "en"}),
            "language",
        ),
        (
            "POST",
            "/registered_models".into(),
            json!({"name": "n", "customProperties": {"k": {"metadataType": "MetadataIntValue", "int_value": "1.5"}}}),
            "customProperties.k",
        ),
        (
            "POST",
            "/registered_models".into(),
            json!({"name": "n", "customProperties": {"k": {"metadataType": "MetadataFooValue"}}}),
            "customProperties.k",
        ),
        (
            "POST",
            "/model_versions".into(),
            json!({"name": "n"}),
            "registeredModelId",
        ),
        (
            "POST",
            "/model_versions".into(),
            json!({"name": "n", "registeredModelId": 1}),
            "registeredModelId",
        ),
        (
            "POST",
            format!("/registered_models/{mid}/versions"),
            json!({"name": "n", "registeredModelId": "77"}),
            "registeredModelId",
        ),
        ("POST", "/model_artifacts".into(), json!({"uri": 5}), "uri"),
        (
            "POST",
            "/model_artifacts".into(),
            json!({"artifactType": "doc-artifact"}),
            "artifactType",
        ),
        (
            "POST",
            "/artifacts".into(),
            json!({"uri": "x"}),
            "artifactType",
        ),
        (
            "POST",
            "/artifacts".into(),
            json!({"artifactType": "table"}),
            "artifactType",
        ),
        (
            "POST",
            format!("/model_versions/{vid}/artifacts"),
            json!({"name": "q"}),
            "artifactType",
        ),
        (
            "PATCH",
            format!("/registered_models/{mid}"),
            json!({"name": "other"}),
            "name",
        ),
        (
            "PATCH",
            format!("/registered_models/{mid}"),
            json!({"state": 1}),
            "state",
        ),
        (
            "PATCH",
            format!("/model_versions/{vid}"),
            json!({"registeredModelId": "5"}),
            "registeredModelId",
        ),
        (
            "PATCH",
            format!("/model_versions/{vid}"),
            json!({"author": ["a"]}),
            "author",
        ),
    ];
    for (method, path, body, field) in cases {
        let got = app.call(method, &path, Some(&body.to_string())).await;
        error(&got, StatusCode::BAD_REQUEST, field);
    }
    for raw in ["not json", "[1]", ""] {
        let got = app.call("POST", "/registered_models", Some(raw)).await;
        error(&got, StatusCode::BAD_REQUEST, "body");
    }
    error(
        &app.get("/registered_model").await,
        StatusCode::BAD_REQUEST,
        "name",
    );
    // Nothing of that was stored or changed.
    assert_eq!(app.get("/registered_models").await.1["size"], 1);
    assert_eq!(app.get("/model_versions").await.1["size"], 1);
    assert_eq!(app.get("/artifacts").await.1["size"], 1);
    assert_eq!(app.get(&format!("/registered_models/{mid}")).await.1, m);
}
}

#[tokio::test]
async fn a_database_file_is_opened_again_with_its_rows() {
    let dir = std::env::temp_dir().join(format!("weft-registry-reopen-{}", std::process::id()));
    let db = dir.join("metadata.db");
    let _ = std::fs::remove_dir_all(&dir);
    {
        let app = App(weft_registry::router(std::sync::Arc::new(
            weft_registry::Registry::open(&db).unwrap(),
        )));
        registered(&app).await;
    }
    let app = App(weft_registry::router(std::sync::Arc::new(
        weft_registry::Registry::open(&db).unwrap(),
    )));
    assert_eq!(app.count("/artifacts").await, 1);
    app.made("/experiments", json!({"name": "e"})).await;
    std::fs::remove_dir_all(&dir).unwrap();
}
