//! What every test file of the router shares: an app over an in-memory registry, calls by
//! method and path, and checks of the API's error shape.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;
use weft_registry::{router, Registry};

pub const API: &str = "/api/model_registry/v1alpha3";

pub struct App(pub axum::Router);

impl App {
    pub fn new() -> App {
        App(router(Arc::new(Registry::in_memory().unwrap())))
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<&str>) -> (StatusCode, Value) {
        let uri = if path.starts_with("/api") {
            path.to_string()
        } else {
            format!("{API}{path}")
        };
        let req = Request::builder().method(method).uri(uri);
        let req = req.header("content-type", "application/json");
        let req = req
            .body(Body::from(body.unwrap_or("").to_string()))
            .unwrap();
        let res = self.0.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, v)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", path, Some(&body.to_string())).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call("PATCH", path, Some(&body.to_string())).await
    }

    /// Posts and expects 201; the created entity.
    pub async fn made(&self, path: &str, body: Value) -> Value {
        let (status, v) = self.post(path, body).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v
    }
}

/// An error in the API's shape, with its status as the code, whose message mentions `text`.
pub fn error(got: &(StatusCode, Value), status: StatusCode, text: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["code"], status.as_u16().to_string(), "{}", got.1);
    let message = got.1["message"].as_str().unwrap();
    assert!(
        message.contains(text),
        "{message:?} should mention {text:?}"
    );
}

/// A model, its version and the version's model artifact, as the Python client makes them.
pub async fn registered(app: &App) -> (Value, Value, Value) {
    let m = app
        .made(
            "/registered_models",
            json!({"name": "iris", "owner": "ann"}),
        )
        .await;
    let id = m["id"].as_str().unwrap();
    let v = app
        .made(
            &format!("/registered_models/{id}/versions"),
            json!({"name": "v1", "registeredModelId": id, "author": "ann",
                   "customProperties": {"acc": {"metadataType": "MetadataDoubleValue", "double_value": 0.97},
                                        "epochs": {"metadataType": "MetadataIntValue", "int_value": "10"}}}),
        )
        .await;
    let vid = v["id"].as_str().unwrap();
    let a = app
        .made(
            &format!("/model_versions/{vid}/artifacts"),
            json!({"artifactType": "model-artifact", "name": "iris", "uri": "oci://x/iris@sha256:00",
                   "modelFormatName": "onnx", "modelFormatVersion": "1"}),
        )
        .await;
    (m, v, a)
}

impl App {
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call("DELETE", path, None).await
    }

    /// How many items a list path gives (one page of up to 1000).
    pub async fn count(&self, path: &str) -> u64 {
        let sep = if path.contains('?') { '&' } else { '?' };
        let (status, v) = self.get(&format!("{path}{sep}pageSize=1000")).await;
        assert_eq!(status, StatusCode::OK, "{path}: {v}");
        v["size"].as_u64().unwrap()
    }
}

/// The `id` of an entity, as text.
pub fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

/// `s` percent-encoded for a query string.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The names of a list's items, in order.
pub fn names(list: &Value) -> Vec<String> {
    let items = list["items"].as_array().expect("a list");
    items
        .iter()
        .map(|i| i["name"].as_str().unwrap_or("").to_string())
        .collect()
}
