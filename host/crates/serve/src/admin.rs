//! The admin endpoints — a model's traffic split, promote, rollback — on their own listener,
//! never the data port: the data port is what a Kubernetes Service exposes to every pod, and
//! re-routing a model is not for every pod. The admin listener is on loopback by default; with
//! a token set, every admin request needs `Authorization: Bearer TOKEN`.

use crate::error::ApiError;
use crate::server::{loaded, AppState, Model};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;

type ApiResult = Result<Json<Value>, ApiError>;

/// The admin router; with `token`, requests without it are refused (401).
pub(crate) fn router(state: Arc<AppState>, token: Option<String>) -> Router {
    let routes = Router::new()
        .route(
            "/admin/models/{name}/traffic",
            get(get_traffic).put(set_traffic),
        )
        .route("/admin/models/{name}/promote", post(promote))
        .route("/admin/models/{name}/rollback", post(rollback))
        .fallback(crate::server::not_found)
        .with_state(state);
    match token {
        None => routes,
        Some(token) => {
            let token: Arc<str> = token.into();
            routes.layer(axum::middleware::from_fn(move |req, next| {
                require_token(token.clone(), req, next)
            }))
        }
    }
}

/// Passes a request carrying `Authorization: Bearer <token>`, refuses any other.
async fn require_token(token: Arc<str>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given.is_some_and(|g| same(g.as_bytes(), token.as_bytes())) {
        return next.run(req).await;
    }
    let mut response = ApiError(
        StatusCode::UNAUTHORIZED,
        "admin endpoints need `Authorization: Bearer TOKEN` with the server's admin token (WEFT_ADMIN_TOKEN)".into(),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, "Bearer".parse().unwrap());
    response
}

/// Compares in time that depends on the lengths only, not on where the bytes differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn traffic_json(name: &str, m: &Model) -> Json<Value> {
    Json(json!({"name": name, "traffic": m.routing.current()}))
}

async fn get_traffic(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> ApiResult {
    Ok(traffic_json(&name, loaded(&state, &name)?))
}

/// `PUT {"traffic": {"1": 90, "2": 10}}`: a new split, effective for requests arriving after it.
async fn set_traffic(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult {
    let Json(body) = body?;
    let m = loaded(&state, &name)?;
    let split = split_from_json(&body["traffic"]).map_err(ApiError::bad)?;
    apply_split(&name, m, split)
}

/// `{"1": 90, "2": 10}` as a split: each percentage a whole number from 0 to 100 (a weight of
/// 4294967396 is refused, not truncated to 100).
fn split_from_json(traffic: &Value) -> Result<crate::routing::Split, String> {
    traffic
        .as_object()
        .ok_or("the body needs a `traffic` object of version → percent")?
        .iter()
        .map(|(v, w)| {
            w.as_u64()
                .and_then(|w| u32::try_from(w).ok())
                .filter(|w| *w <= 100)
                .map(|w| (v.clone(), w))
                .ok_or_else(|| {
                    format!("traffic: version `{v}`: the percentage {w} is not a whole number from 0 to 100")
                })
        })
        .collect()
}

/// Checks `split` against the model's versions and makes it the one new requests follow.
fn apply_split(name: &str, m: &Model, split: crate::routing::Split) -> ApiResult {
    let versions: Vec<&str> = m.versions.keys().map(String::as_str).collect();
    crate::routing::check(&split, &versions).map_err(ApiError::bad)?;
    m.routing.set(split);
    tracing::info!(model = %name, traffic = ?m.routing.current(), "traffic split changed");
    Ok(traffic_json(name, m))
}

/// `POST {"version": "2"}`: all traffic to that version.
async fn promote(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult {
    let Json(body) = body?;
    let m = loaded(&state, &name)?;
    let v = body["version"]
        .as_str()
        .ok_or_else(|| ApiError::bad("the body needs a `version`"))?
        .to_string();
    apply_split(&name, m, vec![(v, 100)])
}

/// Back to the split before the last change.
async fn rollback(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> ApiResult {
    let m = loaded(&state, &name)?;
    m.routing.rollback().map_err(ApiError::bad)?;
    tracing::info!(model = %name, traffic = ?m.routing.current(), "traffic rolled back");
    Ok(traffic_json(&name, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_outside_0_to_100_are_refused_not_truncated() {
        let e = split_from_json(&json!({"1": 4294967396u64})).unwrap_err();
        assert!(e.contains("version `1`") && e.contains("4294967396"), "{e}");
        assert!(split_from_json(&json!({"1": 101})).is_err());
        assert!(split_from_json(&json!({"1": -1})).is_err());
        assert!(split_from_json(&json!({"1": 50.5})).is_err());
        assert_eq!(
            split_from_json(&json!({"1": 90, "2": 10})).unwrap(),
            vec![("1".to_string(), 90), ("2".to_string(), 10)]
        );
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secret", b"secreT"));
        assert!(!same(b"secret", b"secret2"));
        assert!(!same(b"", b"x"));
    }
}
