//! The OpenAPI document against the router it describes: served the same under both prefixes
//! as JSON and YAML; every route the router has (read from the crate's source) and no other
//! in the document with its methods, which the router answers and no others; and what each
//! read (`GET`) answers, lists first, valid against the schema the document gives it, field
//! names included; and every operation taking the namespace by query parameter and header,
//! with the 400 and 403 a restricted server answers for them. (`tests/e2e/registry.rs` checks
//! the document with an independent OpenAPI validator.)

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use tower::ServiceExt;
use weft_registry::PREFIXES;

const METHODS: &[&str] = &["get", "post", "put", "patch", "delete"];

fn document() -> Value {
    serde_json::to_value(weft_registry::openapi::document()).unwrap()
}

/// The methods of each path of the document.
fn documented(doc: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let paths = doc["paths"].as_object().unwrap();
    paths
        .iter()
        .map(|(p, item)| {
            let ms = METHODS.iter().filter(|m| item.get(**m).is_some());
            (p.clone(), ms.map(|m| m.to_string()).collect())
        })
        .collect()
}

async fn raw(app: &App, method: &str, uri: &str) -> (StatusCode, String, Vec<u8>) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(if method == "GET" { "" } else { "{}" }))
        .unwrap();
    let res = app.0.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let ty = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = axum::body::to_bytes(res.into_body(), 1 << 24)
        .await
        .unwrap();
    (status, ty, body.to_vec())
}

#[tokio::test]
async fn the_document_is_served_under_both_prefixes_as_json_and_yaml() {
    let app = App::new();
    let doc = document();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    let servers: Vec<&str> = doc["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["url"].as_str().unwrap())
        .collect();
    assert_eq!(servers, PREFIXES);
    for prefix in PREFIXES {
        let (status, ty, body) = raw(&app, "GET", &format!("{prefix}/openapi.json")).await;
        assert_eq!((status, ty.as_str()), (StatusCode::OK, "application/json"));
        let served: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(served, doc);
        let (status, ty, body) = raw(&app, "GET", &format!("{prefix}/openapi.yaml")).await;
        assert_eq!((status, ty.as_str()), (StatusCode::OK, "application/yaml"));
        let served: Value = yaml_serde::from_slice(&body).unwrap();
        assert_eq!(served, doc);
    }
}

/// The routes of the crate's source: each `.route("PATH", get(..).post(..))` with its methods.
fn source_routes() -> BTreeMap<String, BTreeSet<String>> {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src];
    let mut routes = BTreeMap::new();
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if p.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        for (at, _) in text.match_indices(".route(") {
            let call = call_text(&text[at + ".route(".len()..]);
            let path = call.trim_start();
            assert!(
                path.starts_with('"'),
                "{}: a route whose path is not a literal: {call}",
                p.display()
            );
            let path = &path[1..path[1..].find('"').unwrap() + 1];
            let rest = &call[call.find(',').unwrap() + 1..];
            let methods: BTreeSet<String> = METHODS
                .iter()
                .filter(|m| {
                    let handler = rest.trim_start().starts_with(&format!("{m}("));
                    handler || rest.contains(&format!(".{m}("))
                })
                .map(|m| m.to_string())
                .collect();
            assert!(!methods.is_empty(), "{}: no method in {call}", p.display());
            let old = routes.insert(path.to_string(), methods);
            assert!(old.is_none(), "{path} routed twice");
        }
    }
    routes
}

/// The text of a call's arguments, up to its closing parenthesis.
fn call_text(s: &str) -> &str {
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return &s[..i],
            ')' => depth -= 1,
            _ => {}
        }
    }
    panic!("unclosed call: {s}")
}

#[test]
fn every_route_of_the_source_is_documented_with_its_methods() {
    let routes = source_routes();
    assert!(routes.len() > 30, "{routes:?}");
    assert_eq!(
        routes.get("/registered_models/{id}").unwrap(),
        &BTreeSet::from(["delete".into(), "get".into(), "patch".into()])
    );
    let doc = documented(&document());
    let differ: Vec<_> = routes
        .keys()
        .chain(doc.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|p| routes.get(*p) != doc.get(*p))
        .map(|p| {
            format!(
                "{p}: routed {:?}, documented {:?}",
                routes.get(p),
                doc.get(p)
            )
        })
        .collect();
    assert!(differ.is_empty(), "{differ:#?}");
}

#[tokio::test]
async fn the_router_answers_each_documented_method_and_no_other() {
    let app = App::new();
    let doc = document();
    for prefix in PREFIXES {
        for (path, methods) in documented(&doc) {
            let uri = format!("{prefix}{}", path.replace("{id}", "1"));
            for m in METHODS {
                let (status, _, body) = raw(&app, &m.to_uppercase(), &uri).await;
                let body = String::from_utf8_lossy(&body);
                if methods.contains(*m) {
                    assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{m} {uri}");
                    assert!(!body.contains("no such path"), "{m} {uri}: {body}");
                } else {
                    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{m} {uri}: {body}");
                }
            }
        }
    }
    let (status, _, _) = raw(&app, "GET", &format!("{}/no_such_things", PREFIXES[0])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// `v` against `schema` (resolving `$ref`s in `doc`), strictly: an object schema that lists
/// properties takes no others unless it says so. The faults, each at its path.
fn check(doc: &Value, schema: &Value, v: &Value, at: &str, faults: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        let target = &doc["components"]["schemas"][name];
        assert!(!target.is_null(), "{r} is not in the document");
        return check(doc, target, v, at, faults);
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array) {
        let ok = one.iter().filter(|s| {
            let mut f = Vec::new();
            check(doc, s, v, at, &mut f);
            f.is_empty()
        });
        let n = ok.count();
        if n != 1 {
            faults.push(format!("{at}: matches {n} of oneOf, not 1: {v}"));
        }
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
        let ok = any.iter().any(|s| {
            let mut f = Vec::new();
            check(doc, s, v, at, &mut f);
            f.is_empty()
        });
        if !ok {
            faults.push(format!("{at}: matches none of anyOf: {v}"));
        }
    }
    for s in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        check(doc, s, v, at, faults);
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            faults.push(format!("{at}: {v} is not one of {e:?}"));
        }
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().map(|t| t.as_str().unwrap()).collect(),
            _ => panic!("type {t}"),
        };
        let fits = |t: &str| match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            other => panic!("type {other}"),
        };
        if !types.iter().any(|t| fits(t)) {
            faults.push(format!("{at}: {v} is not of type {t}"));
            return;
        }
    }
    if schema.get("format").and_then(Value::as_str) == Some("int64") {
        if let Some(s) = v.as_str() {
            if s.parse::<i64>().is_err() {
                faults.push(format!("{at}: {s:?} is not an int64"));
            }
        }
    }
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
        if v.as_f64().is_some_and(|n| n < min) {
            faults.push(format!("{at}: {v} is below {min}"));
        }
    }
    if let (Some(items), Some(a)) = (schema.get("items"), v.as_array()) {
        for (i, x) in a.iter().enumerate() {
            check(doc, items, x, &format!("{at}/{i}"), faults);
        }
    }
    if let Some(o) = v.as_object() {
        let props = schema.get("properties").and_then(Value::as_object);
        for r in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !o.contains_key(r.as_str().unwrap()) {
                faults.push(format!("{at}: required {r} is missing"));
            }
        }
        let extra = schema.get("additionalProperties");
        for (k, x) in o {
            let here = format!("{at}/{k}");
            match (props.and_then(|p| p.get(k)), extra) {
                (Some(s), _) => check(doc, s, x, &here, faults),
                (None, Some(Value::Bool(false))) => {
                    faults.push(format!("{here}: not a field of the schema"))
                }
                (None, Some(s)) if s.is_object() => check(doc, s, x, &here, faults),
                (None, _) if props.is_some() => {
                    faults.push(format!("{here}: not a field of the schema"))
                }
                (None, _) => {}
            }
        }
    }
}

/// The schema of the 200 answer of `GET path`.
fn ok_schema<'a>(doc: &'a Value, path: &str) -> &'a Value {
    let op = &doc["paths"][path]["get"];
    let s = &op["responses"]["200"]["content"]["application/json"]["schema"];
    assert!(!s.is_null(), "GET {path} has no 200 JSON schema");
    s
}

#[tokio::test]
async fn every_read_answers_what_its_schema_says() {
    let app = App::new();
    let doc = document();
    // One of every kind, custom properties of every type.
    let props = json!({
        "i": {"metadataType": "MetadataIntValue", "int_value": "10"},
        "d": {"metadataType": "MetadataDoubleValue", "double_value": 0.5},
        "s": {"metadataType": "MetadataStringValue", "string_value": "x"},
        "t": {"metadataType": "MetadataStructValue", "struct_value": "e30="},
        "p": {"metadataType": "MetadataProtoValue", "type": "t", "proto_value": "AA=="},
        "b": {"metadataType": "MetadataBoolValue", "bool_value": true},
    });
    let m = app
        .made(
            "/registered_models",
            json!({"name": "iris", "externalId": "x-iris", "customProperties": props, "language": ["en"]}),
        )
        .await;
    let mid = id(&m);
    let v = app
        .made(
            &format!("/registered_models/{mid}/versions"),
            json!({"name": "v1", "author": "ann", "customProperties": props}),
        )
        .await;
    let vid = id(&v);
    let ma = app
        .made(
            &format!("/model_versions/{vid}/artifacts"),
            json!({"artifactType": "model-artifact", "name": "iris", "uri": "s3://b/iris",
                   "modelFormatName": "onnx"}),
        )
        .await;
    app.made(
        &format!("/model_versions/{vid}/artifacts"),
        json!({"artifactType": "doc-artifact", "name": "card", "uri": "s3://b/card.md"}),
    )
    .await;
    let env = app
        .made("/serving_environments", json!({"name": "prod"}))
        .await;
    let envid = id(&env);
    let svc = app
        .made(
            &format!("/serving_environments/{envid}/inference_services"),
            json!({"name": "svc", "registeredModelId": mid, "runtime": "wasm"}),
        )
        .await;
    let sid = id(&svc);
    app.made(
        &format!("/inference_services/{sid}/serves"),
        json!({"name": "s1", "modelVersionId": vid, "lastKnownState": "RUNNING"}),
    )
    .await;
    let x = app.made("/experiments", json!({"name": "exp"})).await;
    let xid = id(&x);
    let run = app
        .made(
            &format!("/experiments/{xid}/experiment_runs"),
            json!({"name": "r1", "status": "RUNNING", "startTimeSinceEpoch": "5"}),
        )
        .await;
    let rid = id(&run);
    for body in [
        json!({"artifactType": "metric", "name": "loss", "value": 0.25, "step": 1, "timestamp": "7"}),
        json!({"artifactType": "parameter", "name": "lr", "value": "0.1", "parameterType": "number"}),
        json!({"artifactType": "dataset-artifact", "name": "train", "uri": "s3://b/train", "digest": "d"}),
    ] {
        app.made(&format!("/experiment_runs/{rid}/artifacts"), body)
            .await;
    }

    let ids = BTreeMap::from([
        ("registered_models", mid.clone()),
        ("model_versions", vid.clone()),
        ("model_artifacts", id(&ma)),
        ("artifacts", id(&ma)),
        ("serving_environments", envid),
        ("inference_services", sid),
        ("experiments", xid),
        ("experiment_runs", rid),
    ]);
    let finds = BTreeMap::from([
        ("/registered_model", "name=iris".to_string()),
        ("/model_version", format!("name=v1&parentResourceId={mid}")),
        (
            "/model_artifact",
            format!("name=iris&parentResourceId={vid}"),
        ),
        ("/artifact", format!("name=iris&parentResourceId={vid}")),
        ("/serving_environment", "name=prod".into()),
        ("/inference_service", "externalId=nothing-has-this".into()),
        ("/experiment", "name=exp".into()),
        ("/experiment_run", "name=r1".into()),
    ]);
    let mut lists = 0;
    let mut faults = Vec::new();
    for (path, methods) in documented(&doc) {
        if !methods.contains("get") || path.starts_with("/openapi.") {
            continue;
        }
        let uri = match path.split_once("/{id}") {
            Some((head, tail)) => format!("{head}/{}{tail}", ids[&head[1..]]),
            None => match finds.get(path.as_str()) {
                Some(q) => format!("{path}?{q}"),
                None => path.clone(),
            },
        };
        let (status, body) = app.get(&uri).await;
        let schema = match status {
            StatusCode::OK => ok_schema(&doc, &path),
            // The find that finds nothing: its error, in the document's shape.
            StatusCode::NOT_FOUND if path == "/inference_service" => {
                &doc["paths"][&path]["get"]["responses"]["404"]["content"]["application/json"]
                    ["schema"]
            }
            other => panic!("GET {uri}: {other} {body}"),
        };
        if schema["$ref"].as_str().is_some_and(|r| r.ends_with("List")) {
            lists += 1;
            assert!(body["size"].as_u64().unwrap() > 0, "GET {uri} is empty");
        }
        check(&doc, schema, &body, &format!("GET {uri} "), &mut faults);
    }
    assert!(faults.is_empty(), "{faults:#?}");
    assert_eq!(lists, 16);
}

#[test]
fn the_checker_refuses_what_the_schema_does_not_say() {
    let doc = document();
    let schema = json!({"$ref": "#/components/schemas/RegisteredModel"});
    let mut faults = Vec::new();
    let bad = json!({"name": "m", "customproperties": {}, "state": "GONE",
                     "customProperties": {"a": {"metadataType": "MetadataIntValue", "int_value": 1}}});
    check(&doc, &schema, &bad, "", &mut faults);
    assert_eq!(faults.len(), 3, "{faults:#?}");
    let mut faults = Vec::new();
    let artifact = json!({"artifactType": "metric", "name": "m", "value": 1.0});
    check(
        &doc,
        &json!({"$ref": "#/components/schemas/Artifact"}),
        &artifact,
        "",
        &mut faults,
    );
    assert!(faults.is_empty(), "{faults:#?}");
}

/// A restricted server's answer to `method uri`, the namespace named by the query parameter
/// (`by_query`) or the header.
async fn namespaced(
    app: &axum::Router,
    method: &str,
    uri: &str,
    ns: &str,
    by_query: bool,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .header("content-type", "application/json");
    req = if by_query {
        req.uri(format!("{uri}?namespace={ns}"))
    } else {
        req.uri(uri).header("X-Weft-Namespace", ns)
    };
    let body = Body::from(if method == "GET" { "" } else { "{}" });
    let res = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 24)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn every_operation_takes_the_namespace_and_answers_403_for_one_not_served() {
    let doc = document();
    let restricted = weft_registry::router_for(
        std::sync::Arc::new(store()),
        weft_registry::Namespaces::only(["team-a"]).unwrap(),
    );
    let mut operations = 0;
    for (path, methods) in documented(&doc) {
        for m in &methods {
            operations += 1;
            let op = &doc["paths"][&path][m];
            let at = format!("{m} {path}");
            // Both ways of naming it, optional, with one schema.
            let params = op["parameters"].as_array().unwrap();
            let param = |name: &str, place: &str| {
                let found: Vec<&Value> = params
                    .iter()
                    .filter(|p| p["name"] == name && p["in"] == place)
                    .collect();
                assert_eq!(found.len(), 1, "{at}: {name} in {place}");
                found[0].clone()
            };
            let query = param("namespace", "query");
            let header = param("X-Weft-Namespace", "header");
            for p in [&query, &header] {
                assert_ne!(p["required"], true, "{at}: {p}");
                assert_eq!(p["schema"]["maxLength"], 63, "{at}: {p}");
                assert!(p["description"].as_str().unwrap().contains("default"));
            }
            assert_eq!(query["schema"], header["schema"], "{at}");
            let responses = &op["responses"];
            let said = |code: &str| responses[code]["description"].as_str().unwrap_or("");
            assert!(said("403").contains("not served here"), "{at}: {responses}");
            assert!(said("400").contains("namespace"), "{at}: {responses}");
            assert_eq!(
                responses["403"]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/Error",
                "{at}"
            );

            // What the document says is what a restricted server answers, under each prefix
            // and either way the namespace is named.
            let method = m.to_uppercase();
            for prefix in PREFIXES {
                let uri = format!("{prefix}{}", path.replace("{id}", "1"));
                for by_query in [true, false] {
                    let (status, body) =
                        namespaced(&restricted, &method, &uri, "team-b", by_query).await;
                    assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri}: {body}");
                    assert_eq!(body["code"], "403", "{method} {uri}: {body}");
                    let (status, body) =
                        namespaced(&restricted, &method, &uri, "Team_B", by_query).await;
                    assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {uri}: {body}");
                    assert!(
                        body["message"]
                            .as_str()
                            .unwrap()
                            .contains("invalid namespace"),
                        "{method} {uri}: {body}"
                    );
                }
            }
        }
    }
    assert!(operations > 60, "{operations}");
    // The namespace served is answered as usual.
    let (status, body) = namespaced(
        &restricted,
        "GET",
        &format!("{}/registered_models", PREFIXES[0]),
        "team-a",
        false,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
