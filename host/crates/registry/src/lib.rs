//! Weft's model registry: Kubeflow Model Registry's REST API (v1alpha3) over the metadata
//! store, so the `model-registry` Python client works against it unchanged.
//!
//! Served under `/api/model_registry/v1alpha3/` and, with the same handlers, under
//! `/api/model_registry/v1/`, the prefix the current PyPI client (0.3) speaks. This slice has
//! registered models, model versions and their artifacts (model and doc artifacts): list
//! (paged, and filtered by `filterQuery`: see [`filter`]), find, get, create and update.
//! Later slices: serving environments, inference services, experiments and experiment runs,
//! DELETE, namespaces, the OpenAPI document, PostgreSQL.

mod entity;
pub mod error;
pub mod filter;
pub mod model;
mod ops;
pub mod paging;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use error::ApiError;
use model::*;
use ops::{blocking, FindQuery, Store};
use paging::ListQuery;
use serde_json::Value;
use std::sync::Arc;
use weft_store::{RegistryKind, RegistryStore};

pub use weft_store::RegistryStore as Registry;

/// Where the API is served: the prefix of the spec, and the one the current client uses.
pub const PREFIXES: &[&str] = &["/api/model_registry/v1alpha3", "/api/model_registry/v1"];

/// The registry's routes over `store`.
pub fn router(store: Arc<RegistryStore>) -> Router {
    let api = Router::new()
        .route("/registered_models", get(models_list).post(models_create))
        .route("/registered_model", get(models_find))
        .route(
            "/registered_models/{id}",
            get(models_get).patch(models_update),
        )
        .route(
            "/registered_models/{id}/versions",
            get(model_versions_list).post(model_versions_create),
        )
        .route("/model_versions", get(versions_list).post(versions_create))
        .route("/model_version", get(versions_find))
        .route(
            "/model_versions/{id}",
            get(versions_get).patch(versions_update),
        )
        .route(
            "/model_versions/{id}/artifacts",
            get(version_artifacts_list).post(version_artifacts_upsert),
        )
        .route(
            "/model_artifacts",
            get(model_artifacts_list).post(model_artifacts_create),
        )
        .route("/model_artifact", get(model_artifacts_find))
        .route(
            "/model_artifacts/{id}",
            get(model_artifacts_get).patch(model_artifacts_update),
        )
        .route("/artifacts", get(artifacts_list).post(artifacts_create))
        .route("/artifact", get(artifacts_find))
        .route(
            "/artifacts/{id}",
            get(artifacts_get).patch(artifacts_update),
        )
        .with_state(store);
    let mut router = Router::new();
    for prefix in PREFIXES {
        router = router.nest(prefix, api.clone());
    }
    router.fallback(|| async { ApiError::not_found("no such path in the model registry API") })
}

type Listed<T> = Result<Json<List<T>>, ApiError>;
type Created<T> = Result<(StatusCode, Json<T>), ApiError>;
type Query_<T> = Result<Query<T>, QueryRejection>;

/// A query string, or a 400 in the API's shape.
fn query<T>(q: Query_<T>) -> Result<T, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

async fn models_list(State(s): State<Store>, q: Query_<ListQuery>) -> Listed<RegisteredModel> {
    ops::list(s, None, query(q)?).await
}
async fn models_create(State(s): State<Store>, body: Bytes) -> Created<RegisteredModel> {
    ops::create_from(s, body).await
}
async fn models_find(
    State(s): State<Store>,
    q: Query_<FindQuery>,
) -> Result<Json<RegisteredModel>, ApiError> {
    ops::find(s, query(q)?).await
}
async fn models_get(
    State(s): State<Store>,
    Path(id): Path<String>,
) -> Result<Json<RegisteredModel>, ApiError> {
    ops::get(s, id).await
}
async fn models_update(
    State(s): State<Store>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<RegisteredModel>, ApiError> {
    ops::update(s, id, body).await
}

async fn model_versions_list(
    State(s): State<Store>,
    Path(id): Path<String>,
    q: Query_<ListQuery>,
) -> Listed<ModelVersion> {
    ops::list(s, Some((RegistryKind::RegisteredModel, id)), query(q)?).await
}

/// A version under the model the path names; a `registeredModelId` in the body must agree.
async fn model_versions_create(
    State(s): State<Store>,
    Path(id): Path<String>,
    body: Bytes,
) -> Created<ModelVersion> {
    blocking(move || {
        let model = ops::get_row::<RegisteredModel>(&s, &id)?;
        let mut m = entity::body_object(&body)?;
        match m.get("registeredModelId") {
            None | Some(Value::Null) => {}
            Some(Value::String(given)) if *given == model.id.to_string() => {}
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "invalid field `registeredModelId`: {other} is not the model of the path ({id})"
                )))
            }
        }
        m.remove("registeredModelId");
        ops::create::<ModelVersion>(&s, m, Some(model.id))
    })
    .await
}

async fn versions_list(State(s): State<Store>, q: Query_<ListQuery>) -> Listed<ModelVersion> {
    ops::list(s, None, query(q)?).await
}

/// A version under the model its `registeredModelId` names.
async fn versions_create(State(s): State<Store>, body: Bytes) -> Created<ModelVersion> {
    blocking(move || {
        let mut m = entity::body_object(&body)?;
        let parent = match m.remove("registeredModelId") {
            Some(Value::String(p)) => p,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "invalid field `registeredModelId`: expected a string, got {other}"
                )))
            }
            None => {
                return Err(ApiError::bad_request(
                    "invalid field `registeredModelId`: missing",
                ))
            }
        };
        let model = ops::get_row::<RegisteredModel>(&s, &parent)?;
        ops::create::<ModelVersion>(&s, m, Some(model.id))
    })
    .await
}

async fn versions_find(
    State(s): State<Store>,
    q: Query_<FindQuery>,
) -> Result<Json<ModelVersion>, ApiError> {
    ops::find(s, query(q)?).await
}
async fn versions_get(
    State(s): State<Store>,
    Path(id): Path<String>,
) -> Result<Json<ModelVersion>, ApiError> {
    ops::get(s, id).await
}
async fn versions_update(
    State(s): State<Store>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<ModelVersion>, ApiError> {
    ops::update(s, id, body).await
}

async fn version_artifacts_list(
    State(s): State<Store>,
    Path(id): Path<String>,
    q: Query_<ListQuery>,
) -> Listed<Artifact> {
    ops::list(s, Some((RegistryKind::ModelVersion, id)), query(q)?).await
}

/// An artifact of the version: a new one (201), or, when the body has an `id`, that
/// existing artifact attached to this version with the body's fields written over it (200).
async fn version_artifacts_upsert(
    State(s): State<Store>,
    Path(id): Path<String>,
    body: Bytes,
) -> Created<Artifact> {
    blocking(move || {
        let version = ops::get_row::<ModelVersion>(&s, &id)?;
        let m = entity::body_object(&body)?;
        let Some(artifact) = m.get("id").filter(|v| !v.is_null()).cloned() else {
            return ops::create::<Artifact>(&s, m, Some(version.id));
        };
        let artifact = artifact
            .as_str()
            .ok_or_else(|| ApiError::bad_request("invalid field `id`: expected a string"))?;
        let row = ops::get_row::<Artifact>(&s, artifact)?;
        if let Some(other) = row.parent.filter(|p| *p != version.id) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("artifact {artifact} belongs to model version {other}"),
            ));
        }
        let mut new = entity::patched::<Artifact>(&row, m)?;
        new.parent = Some(version.id);
        let stored = s.update(RegistryKind::Artifact, &new)?;
        let stored = stored.ok_or_else(|| ApiError::not_found("the artifact is gone"))?;
        Ok((StatusCode::OK, Json(entity::from_row(&stored)?)))
    })
    .await
}

async fn model_artifacts_list(
    State(s): State<Store>,
    q: Query_<ListQuery>,
) -> Listed<ModelArtifact> {
    ops::list(s, None, query(q)?).await
}
async fn model_artifacts_create(State(s): State<Store>, body: Bytes) -> Created<ModelArtifact> {
    ops::create_from(s, body).await
}
async fn model_artifacts_find(
    State(s): State<Store>,
    q: Query_<FindQuery>,
) -> Result<Json<ModelArtifact>, ApiError> {
    ops::find(s, query(q)?).await
}
async fn model_artifacts_get(
    State(s): State<Store>,
    Path(id): Path<String>,
) -> Result<Json<ModelArtifact>, ApiError> {
    ops::get(s, id).await
}
async fn model_artifacts_update(
    State(s): State<Store>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<ModelArtifact>, ApiError> {
    ops::update(s, id, body).await
}

async fn artifacts_list(State(s): State<Store>, q: Query_<ListQuery>) -> Listed<Artifact> {
    ops::list(s, None, query(q)?).await
}
async fn artifacts_create(State(s): State<Store>, body: Bytes) -> Created<Artifact> {
    ops::create_from(s, body).await
}
async fn artifacts_find(
    State(s): State<Store>,
    q: Query_<FindQuery>,
) -> Result<Json<Artifact>, ApiError> {
    ops::find(s, query(q)?).await
}
async fn artifacts_get(
    State(s): State<Store>,
    Path(id): Path<String>,
) -> Result<Json<Artifact>, ApiError> {
    ops::get(s, id).await
}
async fn artifacts_update(
    State(s): State<Store>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Artifact>, ApiError> {
    ops::update(s, id, body).await
}
