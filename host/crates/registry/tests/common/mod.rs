//! What every test file of the router shares: an app over a fresh registry of the test's
//! backend, calls by method and path (in a namespace, or the default), and checks of the API's
//! error shape.
//!
//! Tests written inside [`on_each_backend!`] run on each backend: SQLite (in memory) always,
//! PostgreSQL (a fresh database per app) where `WEFT_TEST_POSTGRES` names a server (`cargo
//! xtask test` starts one and sets `WEFT_REQUIRE_POSTGRES`, where a missing server or a store
//! built without the `postgres` feature fails, as it does with `CI` set; elsewhere the
//! PostgreSQL cases say so and pass).
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use std::cell::Cell;
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;
use weft_registry::{router, Registry};

pub const API: &str = "/api/model_registry/v1alpha3";

/// Where a test's registry is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

thread_local! {
    /// The backend of the test running on this thread (a `#[tokio::test]` runs its body on
    /// the test's thread).
    static BACKEND: Cell<Backend> = const { Cell::new(Backend::Sqlite) };
}

/// Each test body, once per backend: `mod NAME { fn sqlite(), fn postgres() }`.
#[macro_export]
macro_rules! on_each_backend {
    ($(async fn $name:ident() $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                common::use_backend(common::Backend::Sqlite);
                $body
            }

            #[tokio::test]
            async fn postgres() {
                if !common::use_backend(common::Backend::Postgres) {
                    return;
                }
                $body
            }
        }
    )*};
}

/// Makes `backend` this thread's; false (said) when PostgreSQL's tests cannot run here.
pub fn use_backend(backend: Backend) -> bool {
    if backend == Backend::Postgres && postgres_server().is_none() {
        return false;
    }
    BACKEND.set(backend);
    true
}

/// A test's server is missing: a failure where CI or `cargo xtask test` runs the tests,
/// said elsewhere.
fn missing(what: &str) {
    assert!(
        std::env::var_os("WEFT_REQUIRE_POSTGRES").is_none(),
        "{what} (WEFT_REQUIRE_POSTGRES is set)"
    );
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} (CI is set: a test whose server is missing fails there)"
    );
    eprintln!("{what}");
}

/// The test server's URL (to its admin database), once checked to take a registry; `None`
/// (said) where there is none.
fn postgres_server() -> Option<&'static str> {
    static SERVER: OnceLock<Option<String>> = OnceLock::new();
    let checked = SERVER.get_or_init(|| {
        let Ok(admin) = std::env::var("WEFT_TEST_POSTGRES") else {
            missing("WEFT_TEST_POSTGRES not set: the registry not tested on PostgreSQL (cargo xtask test starts a server)");
            return None;
        };
        let probe = fresh_database(&admin);
        match Registry::connect(&probe) {
            Ok(_) => Some(admin),
            Err(e) if e.to_string().contains("`postgres` feature") => {
                missing("weft-store is built without the `postgres` feature: the registry not tested on PostgreSQL (--features weft-store/postgres)");
                None
            }
            Err(e) => panic!("the test server {admin}: {e}"),
        }
    });
    checked.as_deref()
}

/// A fresh, empty database on the server `admin` names, as a URL (made with `psql`).
pub fn fresh_database(admin: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!(
        "weft_registry_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let out = std::process::Command::new("psql")
        .arg(admin)
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c"])
        .arg(format!("CREATE DATABASE {name}"))
        .output()
        .expect("psql (PostgreSQL's client) runs");
    assert!(
        out.status.success(),
        "CREATE DATABASE {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (server, _) = admin.rsplit_once('/').unwrap();
    format!("{server}/{name}")
}

/// The backend of the test running on this thread.
pub fn backend() -> Backend {
    BACKEND.get()
}

/// A fresh, empty registry of this thread's backend.
pub fn store() -> Registry {
    match backend() {
        Backend::Sqlite => Registry::in_memory().unwrap(),
        Backend::Postgres => {
            let admin = postgres_server().expect("checked by use_backend");
            Registry::connect(&fresh_database(admin)).unwrap()
        }
    }
}

pub struct App(pub axum::Router);

/// An app's calls in one namespace (by the `X-Weft-Namespace` header).
pub struct In<'a> {
    pub app: &'a App,
    pub ns: &'a str,
}

impl In<'_> {
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.app.call_in(Some(self.ns), "GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let body = body.to_string();
        self.app
            .call_in(Some(self.ns), "POST", path, Some(&body))
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let body = body.to_string();
        self.app
            .call_in(Some(self.ns), "PATCH", path, Some(&body))
            .await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.app.call_in(Some(self.ns), "DELETE", path, None).await
    }

    /// Posts and expects 201; the created entity.
    pub async fn made(&self, path: &str, body: Value) -> Value {
        let (status, v) = self.post(path, body).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v
    }

    /// How many items a list path gives (one page of up to 1000).
    pub async fn count(&self, path: &str) -> u64 {
        let sep = if path.contains('?') { '&' } else { '?' };
        let (status, v) = self.get(&format!("{path}{sep}pageSize=1000")).await;
        assert_eq!(status, StatusCode::OK, "{path}: {v}");
        v["size"].as_u64().unwrap()
    }
}

impl App {
    /// The router over a fresh registry of the test's backend.
    pub fn new() -> App {
        App(router(Arc::new(store())))
    }

    /// Calls in namespace `ns`.
    pub fn ns<'a>(&'a self, ns: &'a str) -> In<'a> {
        In { app: self, ns }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<&str>) -> (StatusCode, Value) {
        self.call_in(None, method, path, body).await
    }

    /// A call, with the `X-Weft-Namespace` header when `ns` is given.
    pub async fn call_in(
        &self,
        ns: Option<&str>,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let uri = if path.starts_with("/api") {
            path.to_string()
        } else {
            format!("{API}{path}")
        };
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(ns) = ns {
            req = req.header("x-weft-namespace", ns);
        }
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

/// What a test makes its rows through: an app, or an app in a namespace.
#[allow(async_fn_in_trait)]
pub trait Caller {
    async fn made(&self, path: &str, body: Value) -> Value;
}

impl Caller for App {
    async fn made(&self, path: &str, body: Value) -> Value {
        App::made(self, path, body).await
    }
}

impl Caller for In<'_> {
    async fn made(&self, path: &str, body: Value) -> Value {
        In::made(self, path, body).await
    }
}

/// A model, its version and the version's model artifact, as the Python client makes them.
pub async fn registered(app: &impl Caller) -> (Value, Value, Value) {
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
