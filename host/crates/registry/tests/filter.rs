//! `filterQuery` through the router: fields, custom properties, the operators, paging of a
//! filtered list, and bad queries answered 400 with the place; random queries never make the
//! server fail (a 200 or a 400, never a 500 or a panic).

mod common;

use axum::http::StatusCode;
use common::*;
use proptest::prelude::*;
use serde_json::{json, Value};

fn string(v: &str) -> Value {
    json!({"metadataType": "MetadataStringValue", "string_value": v})
}

/// Models m0..m4: owners, states, languages and custom properties to filter by.
async fn models(app: &App) {
    let specs = [
        ("m0", "ann", 0.91, "5", "notebook", vec!["en"]),
        ("m1", "bob", 0.55, "10", "job", vec!["en", "de"]),
        ("M2-tensorflow", "ann", 0.99, "20", "notebook", vec![]),
        ("m3", "cy", 0.10, "1", "job", vec!["fr"]),
        ("m4", "ann", 0.75, "15", "job", vec![]),
    ];
    for (name, owner, acc, epochs, source, lang) in specs {
        let props = json!({
            "acc": {"metadataType": "MetadataDoubleValue", "double_value": acc},
            "epochs": {"metadataType": "MetadataIntValue", "int_value": epochs},
            "mlflow.source.type": string(source),
            "prod": {"metadataType": "MetadataBoolValue", "bool_value": owner == "ann"},
        });
        app.made(
            "/registered_models",
            json!({"name": name, "owner": owner, "language": lang, "customProperties": props}),
        )
        .await;
    }
    app.patch("/registered_models/4", json!({"state": "ARCHIVED"}))
        .await;
}

async fn filtered(app: &App, path: &str, q: &str) -> Vec<String> {
    let (status, v) = app.get(&format!("{path}?filterQuery={}", enc(q))).await;
    assert_eq!(status, StatusCode::OK, "{q}: {v}");
    names(&v)
}

on_each_backend! {
async fn fields_and_custom_properties_filter_models() {
    let app = App::new();
    models(&app).await;
    let m = "/registered_models";
    for (q, want) in [
        ("name = \"m1\"", vec!["m1"]),
        ("name LIKE 'm%'", vec!["m0", "m1", "m3", "m4"]),
        ("name ILIKE '%TENSORFLOW%'", vec!["M2-tensorflow"]),
        ("name LIKE '%TENSORFLOW%'", vec![]),
        ("state = 'ARCHIVED'", vec!["m3"]),
        ("owner = 'ann' AND acc > 0.8", vec!["m0", "M2-tensorflow"]),
        (
            "(owner = 'bob' OR owner = 'cy') AND state <> 'ARCHIVED'",
            vec!["m1"],
        ),
        ("epochs >= 15", vec!["M2-tensorflow", "m4"]),
        ("epochs.int_value < '6'", vec!["m0", "m3"]),
        ("acc.double_value <= 0.1", vec!["m3"]),
        (
            "`mlflow.source.type` = \"notebook\"",
            vec!["m0", "M2-tensorflow"],
        ),
        (
            "prod = true AND id IN (1, 2, 3)",
            vec!["m0", "M2-tensorflow"],
        ),
        ("prod.bool_value = FALSE", vec!["m1", "m3"]),
        ("language = 'en'", vec!["m0", "m1"]),
        ("language IN ('fr', 'de')", vec!["m1", "m3"]),
        (
            "id > 2 and createTimeSinceEpoch > 0",
            vec!["M2-tensorflow", "m3", "m4"],
        ),
        ("missing = 'x'", vec![]),
        ("name IN ()", vec![]),
        ("  ", vec!["m0", "m1", "M2-tensorflow", "m3", "m4"]),
    ] {
        assert_eq!(filtered(&app, m, q).await, want, "{q}");
    }
}
}

on_each_backend! {
async fn a_filtered_list_pages_and_every_list_filters() {
    let app = App::new();
    models(&app).await;
    let q = enc("owner = 'ann'");
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .get(&format!(
                "/registered_models?pageSize=1&sortOrder=DESC&filterQuery={q}&nextPageToken={token}"
            ))
            .await
            .1;
        seen.extend(names(&page));
        token = page["nextPageToken"].as_str().unwrap().to_string();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(seen, ["m4", "M2-tensorflow", "m0"]);

    let (_, v, a) = registered_under(&app, "1").await;
    let vid = id(&v);
    let versions = filtered(
        &app,
        "/model_versions",
        "registeredModelId = 1 AND author = 'ann'",
    );
    assert_eq!(versions.await, ["v1"]);
    let under = filtered(&app, "/registered_models/1/versions", "name = 'nope'").await;
    assert!(under.is_empty());
    let doc = json!({"artifactType": "doc-artifact", "name": "card", "uri": "file:///c.md"});
    app.made(&format!("/model_versions/{vid}/artifacts"), doc)
        .await;
    for (path, q, want) in [
        ("/artifacts", "artifactType = 'doc-artifact'", vec!["card"]),
        ("/artifacts", "uri LIKE 'oci://%'", vec!["w"]),
        ("/model_artifacts", "modelFormatName = 'onnx'", vec!["w"]),
        ("/model_artifacts", "uri LIKE 'file%'", vec![]),
        (
            &format!("/model_versions/{vid}/artifacts"),
            "name != 'w'",
            vec!["card"],
        ),
    ] {
        assert_eq!(filtered(&app, path, q).await, want, "{path} {q}");
    }
    assert_eq!(a["name"], "w");
}
}

/// A version v1 of model `mid` with a model artifact `w`.
async fn registered_under(app: &App, mid: &str) -> (Value, Value, Value) {
    let m = app.get(&format!("/registered_models/{mid}")).await.1;
    let v = app
        .made(
            &format!("/registered_models/{mid}/versions"),
            json!({"name": "v1", "author": "ann"}),
        )
        .await;
    let a = app
        .made(
            &format!("/model_versions/{}/artifacts", id(&v)),
            json!({"artifactType": "model-artifact", "name": "w", "uri": "oci://r/w", "modelFormatName": "onnx"}),
        )
        .await;
    (m, v, a)
}

on_each_backend! {
async fn bad_queries_are_400_naming_the_place_and_change_nothing() {
    let app = App::new();
    models(&app).await;
    for (q, text) in [
        ("name =", "character 7: expected a value"),
        ("name = 'x' AND", "character 15: expected a comparison"),
        ("name == 'x'", "character 7: expected a value"),
        ("(name = 'x'", "expected `)`"),
        ("name = 'x", "character 8: unterminated string"),
        ("id = 'one'", "`id` is compared with an integer"),
        ("name > 3", "`name` is compared with a string"),
        ("state LIKE 5", "operator does not apply"),
        ("name ~ 'x'", "unexpected character `~`"),
        ("name IN 'x'", "`(` to start the list"),
    ] {
        let got = app
            .get(&format!("/registered_models?filterQuery={}", enc(q)))
            .await;
        error(&got, StatusCode::BAD_REQUEST, text);
        assert!(got.1["message"].as_str().unwrap().contains("filterQuery"));
    }
    let deep = format!("{}name = 'x'{}", "(".repeat(40), ")".repeat(40));
    let got = app
        .get(&format!("/model_versions?filterQuery={}", enc(&deep)))
        .await;
    error(&got, StatusCode::BAD_REQUEST, "deeper than 16");
    assert_eq!(app.count("/registered_models").await, 5);
}
}

/// Pieces of queries, so random ones are mostly near-valid and reach every path.
fn piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "name",
        "id",
        "state",
        "owner",
        "language",
        "acc",
        "`a.b`",
        ".",
        "string_value",
        "int_value",
        "double_value",
        "bool_value",
        "=",
        "!=",
        "<>",
        ">",
        "<",
        ">=",
        "<=",
        "LIKE",
        "ilike",
        "IN",
        "AND",
        "or",
        "(",
        ")",
        ",",
        "'x'",
        "\"%y_\"",
        "1",
        "-2.5",
        "1e3",
        "true",
        "FALSE",
        "`",
        "'",
        "\\",
        "--",
        "\n",
        "9999999999999999999999",
        "é",
        " ",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_text_never_panics_the_parser(s in "\\PC{0,300}") {
        let _ = weft_registry::filter::check(&s);
    }

    #[test]
    fn random_queries_are_200_or_400_never_a_failure(parts in prop::collection::vec(piece(), 0..40)) {
        let q = parts.join(" ");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let status = rt.block_on(async {
            let app = App::new();
            app.made("/registered_models", json!({"name": "m", "language": ["en"]})).await;
            let path = format!("/registered_models?filterQuery={}", enc(&q));
            app.get(&path).await.0
        });
        prop_assert!(status == StatusCode::OK || status == StatusCode::BAD_REQUEST, "{q}: {status}");
    }

    /// The same on PostgreSQL, whose types are strict: a query SQLite takes must not become
    /// a statement PostgreSQL refuses (a 500). One database for all the cases.
    #[test]
    fn random_queries_on_postgres_are_200_or_400_never_a_failure(parts in prop::collection::vec(piece(), 0..40)) {
        let Some(app) = postgres_app() else { return Ok(()) };
        let q = parts.join(" ");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (status, body) = rt.block_on(async {
            app.get(&format!("/registered_models?filterQuery={}", enc(&q))).await
        });
        prop_assert!(status == StatusCode::OK || status == StatusCode::BAD_REQUEST, "{q}: {status} {body}");
    }
}

/// One app on PostgreSQL with a model in it, for every case of the property above.
fn postgres_app() -> Option<&'static App> {
    static APP: std::sync::OnceLock<Option<App>> = std::sync::OnceLock::new();
    APP.get_or_init(|| {
        if !use_backend(Backend::Postgres) {
            return None;
        }
        let app = App::new();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            app.made("/registered_models", json!({"name": "m", "language": ["en"],
                "customProperties": {"acc": {"metadataType": "MetadataDoubleValue", "double_value": 0.5}}})).await;
        });
        Some(app)
    })
    .as_ref()
}
