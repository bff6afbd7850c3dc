//! The operations every resource shares (create, get, find, update, list), generic over the
//! entity, in the request's namespace ([`Scoped`]). Store calls run on blocking threads:
//! SQLite may wait for another writer, PostgreSQL's calls wait on its own runtime.

use crate::entity::{body_object, from_row, now_ms, patched, to_row, Entity};
use crate::error::ApiError;
use crate::model::List;
use crate::paging::{encode, ListQuery};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{Map, Value};
use std::sync::Arc;
use weft_store::{RegistryKind, RegistryRow, RegistryStore, RegistryWhere};

pub(crate) use crate::namespace::Scoped;

/// The routes' state: the store, every namespace of it.
pub(crate) type Store = Arc<RegistryStore>;

/// `f` on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

/// An id from a path or a query: ids are integers, so any other text names nothing.
pub(crate) fn parse_id(kind: RegistryKind, id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| not_found(kind, id))
}

fn not_found(kind: RegistryKind, id: &str) -> ApiError {
    ApiError::not_found(format!("no {} with id `{id}`", kind.noun()))
}

/// The row of `T` with this id (of `T`'s artifact type, for a typed artifact).
pub(crate) fn get_row<T: Entity>(store: &Scoped, id: &str) -> Result<RegistryRow, ApiError> {
    let n = parse_id(T::KIND, id)?;
    store
        .get(T::KIND, n)?
        .filter(|r| T::ARTIFACT_TYPE.is_none_or(|t| r.artifact_type == t))
        .ok_or_else(|| not_found(T::KIND, id))
}

/// Creates `T` from `body` under `parent`: 201 with the entity as stored.
pub(crate) fn create<T: Entity>(
    store: &Scoped,
    body: Map<String, Value>,
    parent: Option<i64>,
) -> Result<(StatusCode, Json<T>), ApiError> {
    let mut e = T::from_value(Value::Object(body), "")?;
    e.fill_defaults();
    e.validate(store)?;
    let row = to_row(&e, parent, now_ms());
    if row.name.as_deref() == Some("") {
        return Err(ApiError::bad_request("invalid field `name`: empty"));
    }
    let row = store.insert(T::KIND, &row)?;
    Ok((StatusCode::CREATED, Json(from_row(&row)?)))
}

/// Creates `T` under the `P` with this id (from the path); a parent field in the body must
/// name the same parent.
pub(crate) fn create_under<P: Entity, T: Entity>(
    store: &Scoped,
    id: &str,
    mut body: Map<String, Value>,
) -> Result<(StatusCode, Json<T>), ApiError> {
    let parent = get_row::<P>(store, id)?;
    if let Some(f) = T::PARENT_FIELD {
        match body.remove(f) {
            None | Some(Value::Null) => {}
            Some(Value::String(given)) if given == parent.id.to_string() => {}
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "invalid field `{f}`: {other} is not the {} of the path ({id})",
                    P::KIND.noun()
                )))
            }
        }
    }
    create::<T>(store, body, Some(parent.id))
}

/// Creates `T` under the `P` its parent field names (required).
pub(crate) fn create_in<P: Entity, T: Entity>(
    store: &Scoped,
    mut body: Map<String, Value>,
) -> Result<(StatusCode, Json<T>), ApiError> {
    let Some(f) = T::PARENT_FIELD else {
        return create::<T>(store, body, None);
    };
    let parent = match body.remove(f) {
        Some(Value::String(p)) => p,
        None | Some(Value::Null) => {
            return Err(ApiError::bad_request(format!(
                "invalid field `{f}`: missing"
            )))
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid field `{f}`: expected a string, got {other}"
            )))
        }
    };
    let parent = get_row::<P>(store, &parent)?;
    create::<T>(store, body, Some(parent.id))
}

pub(crate) async fn get<T: Entity>(store: Scoped, id: String) -> Result<Json<T>, ApiError> {
    blocking(move || Ok(Json(from_row(&get_row::<T>(&store, &id)?)?))).await
}

/// Writes the fields of `body` over the entity with this id: 200 with the result.
pub(crate) async fn update<T: Entity>(
    store: Scoped,
    id: String,
    body: axum::body::Bytes,
) -> Result<Json<T>, ApiError> {
    blocking(move || {
        let row = get_row::<T>(&store, &id)?;
        let new = patched::<T>(&row, body_object(&body)?)?;
        from_row::<T>(&new)?.validate(&store)?;
        let stored = store.update(T::KIND, &new)?;
        let stored = stored.ok_or_else(|| not_found(T::KIND, &id))?;
        Ok(Json(from_row(&stored)?))
    })
    .await
}

/// What a find (`/registered_model?name=...`) looks for.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FindQuery {
    pub name: Option<String>,
    pub external_id: Option<String>,
    pub parent_resource_id: Option<String>,
}

pub(crate) async fn find<T: Entity>(store: Scoped, q: FindQuery) -> Result<Json<T>, ApiError> {
    blocking(move || {
        if q.name.is_none() && q.external_id.is_none() {
            return Err(ApiError::bad_request(
                "give a name or an externalId to find",
            ));
        }
        let missing = || ApiError::not_found(format!("no {} matches the query", T::KIND.noun()));
        let parent = match &q.parent_resource_id {
            Some(p) => Some(p.parse::<i64>().map_err(|_| missing())?),
            None => None,
        };
        let row = store.find(T::KIND, q.name.as_deref(), q.external_id.as_deref(), parent)?;
        let row = row
            .filter(|r| T::ARTIFACT_TYPE.is_none_or(|t| r.artifact_type == t))
            .ok_or_else(missing)?;
        Ok(Json(from_row(&row)?))
    })
    .await
}

/// The artifact types upstream lists by (`artifactType=`).
const ARTIFACT_TYPES: &[&str] = &[
    "model-artifact",
    "doc-artifact",
    "dataset-artifact",
    "metric",
    "parameter",
];

/// The artifact type a list of `T` is of: `T`'s own, or the one asked for by `artifactType=`
/// (of the generic artifact only).
fn list_type<T: Entity>(asked: Option<&str>) -> Result<Option<&'static str>, ApiError> {
    match (T::ARTIFACT_TYPE, asked) {
        (Some(t), _) => Ok(Some(t)),
        (None, None | Some("")) => Ok(None),
        (None, Some(t)) if T::KIND == RegistryKind::Artifact => {
            let known = ARTIFACT_TYPES.iter().find(|k| **k == t);
            let known = known
                .ok_or_else(|| ApiError::bad_request(format!("invalid artifactType `{t}`")))?;
            Ok(Some(*known))
        }
        (None, Some(_)) => Ok(None),
    }
}

/// The rows of `T` under the `kind` with id `n`: by the parent column, but an experiment
/// run's artifacts by their `experimentRunId` (an artifact's parent is its model version).
fn children_of<T: Entity>(store: &Scoped, kind: RegistryKind, n: i64) -> RegistryWhere {
    if T::KIND == RegistryKind::Artifact && kind == RegistryKind::ExperimentRun {
        let run = crate::filter::json_int("experimentRunId", store.dialect());
        RegistryWhere {
            sql: format!("{run} = ?"),
            args: vec![n.into()],
        }
    } else {
        RegistryWhere::eq("parent", n)
    }
}

/// `stepIds=1,2,3` as a condition on a metric's `step`.
fn steps(store: &Scoped, ids: Option<&str>) -> Result<Option<RegistryWhere>, ApiError> {
    let Some(ids) = ids.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_request(format!(
            "invalid stepIds `{ids}`: expected numbers like 1,2,3"
        ))
    };
    let steps = ids
        .split(',')
        .map(|s| s.trim().parse::<i64>().map_err(|_| bad()))
        .collect::<Result<Vec<_>, _>>()?;
    if steps.len() > crate::filter::parse::MAX_LIST {
        return Err(bad());
    }
    let marks = vec!["?"; steps.len()].join(", ");
    Ok(Some(RegistryWhere {
        sql: format!(
            "{} IN ({marks})",
            crate::filter::json_int("step", store.dialect())
        ),
        args: steps.into_iter().map(Into::into).collect(),
    }))
}

/// A page of `T`s (of `parent`'s, when given, which must exist as a `parent_kind`).
pub(crate) async fn list<T: Entity>(
    store: Scoped,
    parent: Option<(RegistryKind, String)>,
    q: ListQuery,
) -> Result<Json<List<T>>, ApiError> {
    blocking(move || {
        let page = q.page()?;
        let mut conds = Vec::new();
        if let Some((kind, id)) = parent {
            let n = parse_id(kind, &id)?;
            store.get(kind, n)?.ok_or_else(|| not_found(kind, &id))?;
            conds.push(children_of::<T>(&store, kind, n));
        }
        conds.extend(q.name.as_deref().map(|n| RegistryWhere::eq("name", n)));
        conds.extend(
            q.external_id
                .as_deref()
                .map(|x| RegistryWhere::eq("external_id", x)),
        );
        if T::KIND == RegistryKind::MetricHistory {
            conds.extend(steps(&store, q.step_ids.as_deref())?);
        }
        if let Some(t) = list_type::<T>(q.artifact_type.as_deref())? {
            conds.push(RegistryWhere::eq("artifact_type", t));
        }
        if let Some(f) = q.filter_query.as_deref() {
            conds.extend(crate::filter::condition(f, &T::field, store.dialect())?);
        }
        let (rows, more) = store.list(T::KIND, &conds, &page)?;
        let next_page_token = match rows.last() {
            Some(last) if more => encode(&page, last),
            _ => String::new(),
        };
        let items = rows.iter().map(from_row).collect::<Result<Vec<T>, _>>()?;
        Ok(Json(List {
            next_page_token,
            page_size: page.limit,
            size: items.len(),
            items,
        }))
    })
    .await
}
