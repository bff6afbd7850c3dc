//! Artifacts posted to their owner: a model version (`/model_versions/{id}/artifacts`) or an
//! experiment run (`/experiment_runs/{id}/artifacts`). A body without an `id` makes a new
//! artifact (201); one with an `id` attaches that artifact, the body's fields written over it
//! (200). A metric posted to a run is also recorded in the run's metric history.

use crate::entity::{body_object, from_row, patched, to_row, Entity, MetricRecord};
use crate::error::ApiError;
use crate::handlers::Created;
use crate::model::*;
use crate::ops::{self, blocking, Scoped};
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{Map, Value};
use weft_store::{RegistryKind, RegistryRow};

/// Who an artifact is posted to.
#[derive(Clone, Copy)]
enum Owner {
    Version(i64),
    /// The run's id and its experiment's.
    Run(i64, i64),
}

pub(crate) async fn upsert_for_version(
    s: Scoped,
    Path(id): Path<String>,
    body: Bytes,
) -> Created<Artifact> {
    blocking(move || {
        let version = ops::get_row::<ModelVersion>(&s, &id)?;
        upsert(&s, Owner::Version(version.id), body_object(&body)?)
    })
    .await
}

pub(crate) async fn upsert_for_run(
    s: Scoped,
    Path(id): Path<String>,
    body: Bytes,
) -> Created<Artifact> {
    blocking(move || {
        let run = ops::get_row::<ExperimentRun>(&s, &id)?;
        let experiment = run.parent.unwrap_or_default();
        upsert(&s, Owner::Run(run.id, experiment), body_object(&body)?)
    })
    .await
}

fn upsert(store: &Scoped, owner: Owner, mut m: Map<String, Value>) -> Created<Artifact> {
    if let Owner::Run(run, experiment) = owner {
        claim_for_run(&mut m, run, experiment)?;
    }
    let existing = m.get("id").filter(|v| !v.is_null()).cloned();
    let (status, stored) = match existing {
        None => {
            let parent = match owner {
                Owner::Version(v) => Some(v),
                Owner::Run(..) => None,
            };
            let (_, Json(a)) = ops::create::<Artifact>(store, m, parent)?;
            let id = artifact_id(&a);
            (StatusCode::CREATED, ops::get_row::<Artifact>(store, &id)?)
        }
        Some(id) => (StatusCode::OK, attach(store, &owner, &id, m)?),
    };
    if let (Owner::Run(run, _), METRIC) = (&owner, stored.artifact_type.as_str()) {
        record_metric(store, *run, &stored)?;
    }
    Ok((status, Json(from_row(&stored)?)))
}

/// Sets the run's ids in the body; ids given there must be the same.
fn claim_for_run(m: &mut Map<String, Value>, run: i64, experiment: i64) -> Result<(), ApiError> {
    for (field, want) in [("experimentRunId", run), ("experimentId", experiment)] {
        match m.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::String(given)) if *given == want.to_string() => {}
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "invalid field `{field}`: {other} is not the experiment run's ({want})"
                )))
            }
        }
        m.insert(field.into(), want.to_string().into());
    }
    Ok(())
}

/// The existing artifact `id` given to `owner`, `m`'s fields written over it.
fn attach(
    store: &Scoped,
    owner: &Owner,
    id: &Value,
    m: Map<String, Value>,
) -> Result<RegistryRow, ApiError> {
    let id = id
        .as_str()
        .ok_or_else(|| ApiError::bad_request("invalid field `id`: expected a string"))?;
    let row = ops::get_row::<Artifact>(store, id)?;
    let held_by = match owner {
        Owner::Version(v) => row.parent.filter(|p| p != v).map(|p| ("model version", p)),
        Owner::Run(r, _) => run_of(&row)
            .filter(|p| p != r)
            .map(|p| ("experiment run", p)),
    };
    if let Some((noun, other)) = held_by {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("artifact {id} belongs to {noun} {other}"),
        ));
    }
    let mut new = patched::<Artifact>(&row, m)?;
    if let Owner::Version(v) = owner {
        new.parent = Some(*v);
    }
    let stored = store.update(RegistryKind::Artifact, &new)?;
    stored.ok_or_else(|| ApiError::not_found("the artifact is gone"))
}

/// The experiment run an artifact row was logged to.
fn run_of(row: &RegistryRow) -> Option<i64> {
    let body: Value = serde_json::from_str(&row.body_json).ok()?;
    body.get("experimentRunId")?.as_str()?.parse().ok()
}

fn artifact_id(a: &Artifact) -> String {
    let id = match a {
        Artifact::Model(a) => &a.id,
        Artifact::Doc(a) => &a.id,
        Artifact::DataSet(a) => &a.id,
        Artifact::Metric(a) => &a.id,
        Artifact::Parameter(a) => &a.id,
    };
    id.clone().unwrap_or_default()
}

/// The metric as stored now, as a new row of the run's metric history.
fn record_metric(store: &Scoped, run: i64, stored: &RegistryRow) -> Result<(), ApiError> {
    let mut metric = from_row::<Metric>(stored)?;
    metric.id = None;
    metric.external_id = None;
    let record = MetricRecord(metric);
    let mut row = to_row(&record, Some(run), stored.updated_ms);
    row.artifact_type = METRIC.into();
    store.insert(MetricRecord::KIND, &row)?;
    Ok(())
}
