//! The handlers every resource shares, generic over the entity (`T`) and, for the routes
//! under a parent (`/registered_models/{id}/versions`), the parent's entity (`P`).

use crate::entity::{body_object, Entity};
use crate::error::ApiError;
use crate::model::List;
use crate::ops::{self, blocking, FindQuery, Scoped};
use crate::paging::ListQuery;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::Json;

pub(crate) type Listed<T> = Result<Json<List<T>>, ApiError>;
pub(crate) type Created<T> = Result<(StatusCode, Json<T>), ApiError>;
pub(crate) type Got<T> = Result<Json<T>, ApiError>;
pub(crate) type Query_<T> = Result<Query<T>, QueryRejection>;

/// A query string, or a 400 in the API's shape.
pub(crate) fn query<T>(q: Query_<T>) -> Result<T, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

pub(crate) async fn list<T: Entity>(s: Scoped, q: Query_<ListQuery>) -> Listed<T> {
    ops::list(s, None, query(q)?).await
}

/// The `T`s of the `P` the path names.
pub(crate) async fn list_under<P: Entity, T: Entity>(
    s: Scoped,
    Path(id): Path<String>,
    q: Query_<ListQuery>,
) -> Listed<T> {
    ops::list(s, Some((P::KIND, id)), query(q)?).await
}

/// A `T` with no parent, or under the `P` its parent field names.
pub(crate) async fn create<P: Entity, T: Entity>(s: Scoped, body: Bytes) -> Created<T> {
    blocking(move || ops::create_in::<P, T>(&s, body_object(&body)?)).await
}

/// A `T` under the `P` the path names.
pub(crate) async fn create_under<P: Entity, T: Entity>(
    s: Scoped,
    Path(id): Path<String>,
    body: Bytes,
) -> Created<T> {
    blocking(move || ops::create_under::<P, T>(&s, &id, body_object(&body)?)).await
}

pub(crate) async fn find<T: Entity>(s: Scoped, q: Query_<FindQuery>) -> Got<T> {
    ops::find(s, query(q)?).await
}

pub(crate) async fn get<T: Entity>(s: Scoped, Path(id): Path<String>) -> Got<T> {
    ops::get(s, id).await
}

pub(crate) async fn update<T: Entity>(s: Scoped, Path(id): Path<String>, body: Bytes) -> Got<T> {
    ops::update(s, id, body).await
}

/// Weft's extension: deletes the `T` with this id (and what belongs to it): 204, 404 when
/// there is none, 409 while a deployed inference service serves it.
pub(crate) async fn delete<T: Entity>(
    s: Scoped,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    blocking(move || {
        let row = ops::get_row::<T>(&s, &id)?;
        if !s.delete(T::KIND, row.id)? {
            return Err(ApiError::not_found(format!(
                "no {} with id `{id}`",
                T::KIND.noun()
            )));
        }
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}
