//! The model registry's rows (issue 16): registered models, their versions and artifacts,
//! serving environments, their inference services and those services' serve actions,
//! experiments, their runs and the runs' metric history, a table each in the metadata
//! database. Each row keeps the columns the registry looks things up by (id, parent, name,
//! external id, state, times) and the rest of the entity as JSON text (`body_json`:
//! description, custom properties, type-specific fields), which the `weft-registry` crate
//! types. An artifact's parent is its model version; the experiment run it was logged to is
//! its `experimentRunId` in `body_json` (names are unique per version, or per run for an
//! artifact of no version).
//!
//! This slice is SQLite only, on its own connection to the metadata database: the tables are
//! made with `CREATE TABLE IF NOT EXISTS` when the registry opens, outside the metadata
//! store's migrations. Moving them into `metadata::MIGRATIONS` (and PostgreSQL's), behind the
//! `Metadata` trait, is a later slice.

use crate::rows::Columns;
use rusqlite::{params_from_iter, Connection, OptionalExtension};
use std::path::Path;
use std::sync::Mutex;

/// The kinds of registry rows, each in its own table with its own id sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistryKind {
    RegisteredModel,
    ModelVersion,
    /// Any artifact type (model, doc, dataset, metric, parameter): `artifact_type` tells which.
    Artifact,
    ServingEnvironment,
    /// Under a serving environment.
    InferenceService,
    /// Under an inference service.
    ServeModel,
    Experiment,
    /// Under an experiment.
    ExperimentRun,
    /// A metric's value as logged at one time, under an experiment run.
    MetricHistory,
}

impl RegistryKind {
    fn table(self) -> &'static str {
        match self {
            RegistryKind::RegisteredModel => "registry_models",
            RegistryKind::ModelVersion => "registry_versions",
            RegistryKind::Artifact => "registry_artifacts",
            RegistryKind::ServingEnvironment => "registry_serving_environments",
            RegistryKind::InferenceService => "registry_inference_services",
            RegistryKind::ServeModel => "registry_serve_models",
            RegistryKind::Experiment => "registry_experiments",
            RegistryKind::ExperimentRun => "registry_experiment_runs",
            RegistryKind::MetricHistory => "registry_metric_history",
        }
    }

    /// The word messages use.
    pub fn noun(self) -> &'static str {
        match self {
            RegistryKind::RegisteredModel => "registered model",
            RegistryKind::ModelVersion => "model version",
            RegistryKind::Artifact => "artifact",
            RegistryKind::ServingEnvironment => "serving environment",
            RegistryKind::InferenceService => "inference service",
            RegistryKind::ServeModel => "serve model",
            RegistryKind::Experiment => "experiment",
            RegistryKind::ExperimentRun => "experiment run",
            RegistryKind::MetricHistory => "metric history entry",
        }
    }

    /// Where a name is unique, for messages ("" when in the whole registry).
    fn scope(self) -> &'static str {
        match self {
            RegistryKind::ModelVersion => " in this registered model",
            RegistryKind::Artifact => " in this model version or experiment run",
            RegistryKind::InferenceService => " in this serving environment",
            RegistryKind::ServeModel => " in this inference service",
            RegistryKind::ExperimentRun => " in this experiment",
            _ => "",
        }
    }
}

/// One registry row. Times are milliseconds since the Unix epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct RegistryRow {
    pub id: i64,
    /// The registered model of a version, the version of an artifact; none for a model (and
    /// for an artifact not yet attached to a version).
    pub parent: Option<i64>,
    /// Artifacts only: `model-artifact`, `doc-artifact`, ...; empty for the others.
    pub artifact_type: String,
    pub name: Option<String>,
    pub external_id: Option<String>,
    pub state: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub body_json: String,
}

/// The order of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistryOrder {
    CreateTime,
    UpdateTime,
    Id,
}

/// Which rows to list and from where: after `after` (the order's value and the id of the
/// last row of the previous page), `limit` of them.
#[derive(Clone, Debug)]
pub struct RegistryPage {
    pub order: RegistryOrder,
    pub descending: bool,
    pub limit: u32,
    pub after: Option<(i64, i64)>,
}

/// A condition on a registry table's columns (`id`, `parent`, `artifact_type`, `name`,
/// `external_id`, `state`, `created_ms`, `updated_ms`, `body_json`): SQL text with one `?`
/// per value of `args`, in order, so no value is ever spliced into the text.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RegistryWhere {
    pub sql: String,
    pub args: Vec<RegistryValue>,
}

impl RegistryWhere {
    /// `column = value`.
    pub fn eq(column: &str, value: impl Into<RegistryValue>) -> Self {
        RegistryWhere {
            sql: format!("{column} = ?"),
            args: vec![value.into()],
        }
    }
}

/// A value bound to a [`RegistryWhere`].
#[derive(Clone, Debug, PartialEq)]
pub enum RegistryValue {
    Int(i64),
    Real(f64),
    Text(String),
}

impl RegistryValue {
    fn sql(&self) -> rusqlite::types::Value {
        match self {
            RegistryValue::Int(n) => (*n).into(),
            RegistryValue::Real(x) => (*x).into(),
            RegistryValue::Text(t) => t.clone().into(),
        }
    }
}

impl From<i64> for RegistryValue {
    fn from(n: i64) -> Self {
        RegistryValue::Int(n)
    }
}

impl From<&str> for RegistryValue {
    fn from(t: &str) -> Self {
        RegistryValue::Text(t.to_string())
    }
}

impl From<String> for RegistryValue {
    fn from(t: String) -> Self {
        RegistryValue::Text(t)
    }
}

/// What can go wrong, worded for the API's callers.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A name or external id already taken.
    #[error("{0}")]
    Conflict(String),
    /// The parent the row names does not exist.
    #[error("{0}")]
    NoParent(String),
    /// A deployed inference service serves what was to be deleted.
    #[error("{0}")]
    InUse(String),
    #[error("metadata store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("metadata store: {0}")]
    Io(#[from] std::io::Error),
}

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS registry_models (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        parent INTEGER,
        artifact_type TEXT NOT NULL DEFAULT '',
        name TEXT NOT NULL UNIQUE,
        external_id TEXT UNIQUE,
        state TEXT,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        body_json TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS registry_versions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        parent INTEGER NOT NULL REFERENCES registry_models(id),
        artifact_type TEXT NOT NULL DEFAULT '',
        name TEXT NOT NULL,
        external_id TEXT UNIQUE,
        state TEXT,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        body_json TEXT NOT NULL,
        UNIQUE (parent, name)
    );
    CREATE TABLE IF NOT EXISTS registry_artifacts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        parent INTEGER REFERENCES registry_versions(id),
        artifact_type TEXT NOT NULL,
        name TEXT,
        external_id TEXT UNIQUE,
        state TEXT,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        body_json TEXT NOT NULL
    );
    DROP INDEX IF EXISTS registry_artifacts_name;
    CREATE UNIQUE INDEX IF NOT EXISTS registry_artifacts_scoped_name ON registry_artifacts (
        COALESCE(parent, 0),
        CASE WHEN parent IS NULL
            THEN COALESCE(json_extract(body_json, '$.experimentRunId'), '') ELSE '' END,
        name);
    CREATE TABLE IF NOT EXISTS registry_serving_environments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        parent INTEGER,
        artifact_type TEXT NOT NULL DEFAULT '',
        name TEXT NOT NULL UNIQUE,
        external_id TEXT UNIQUE,
        state TEXT,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        body_json TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS registry_inference_services (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        parent INTEGER NOT NULL REFERENCES registry_serving_environments(id),
        artifact_type TEXT NOT NULL DEFAULT '',
        name TEXT,
        external_id TEXT UNIQUE,
        state TEXT,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        body_json TEXT NOT NULL,
        UNIQUE (parent, name)
    );
    CREATE TABLE IF NOT EXISTS registry_serve_models (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        parent INTEGER NOT NULL REFERENCES registry_inference_services(id),
        artifact_type TEXT NOT NULL DEFAULT '',
        name TEXT,
        external_id TEXT UNIQUE,
        state TEXT,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        body_json TEXT NOT NULL,
        UNIQUE (parent, name)
    );
    CREATE TABLE IF NOT EXISTS registry_experiments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        parent INTEGER,
        artifact_type TEXT NOT NULL DEFAULT '',
        name TEXT NOT NULL UNIQUE,
        external_id TEXT UNIQUE,
        state TEXT,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        body_json TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS registry_experiment_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        parent INTEGER NOT NULL REFERENCES registry_experiments(id),
        artifact_type TEXT NOT NULL DEFAULT '',
        name TEXT,
        external_id TEXT UNIQUE,
        state TEXT,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        body_json TEXT NOT NULL,
        UNIQUE (parent, name)
    );
    CREATE TABLE IF NOT EXISTS registry_metric_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        parent INTEGER NOT NULL REFERENCES registry_experiment_runs(id),
        artifact_type TEXT NOT NULL DEFAULT '',
        name TEXT,
        external_id TEXT,
        state TEXT,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        body_json TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS registry_metric_history_by_parent
        ON registry_metric_history (parent, name);
    CREATE INDEX IF NOT EXISTS registry_versions_by_parent ON registry_versions (parent);";

const COLUMNS: &str =
    "id, parent, artifact_type, name, external_id, state, created_ms, updated_ms, body_json";

fn row<C: Columns>(r: &C) -> Result<RegistryRow, C::Error> {
    Ok(RegistryRow {
        id: r.int(0)?,
        parent: r.opt_int(1)?,
        artifact_type: r.text(2)?,
        name: r.opt_text(3)?,
        external_id: r.opt_text(4)?,
        state: r.opt_text(5)?,
        created_ms: r.int(6)?,
        updated_ms: r.int(7)?,
        body_json: r.text(8)?,
    })
}

/// The registry's tables in the metadata database (SQLite).
pub struct RegistryStore {
    conn: Mutex<Connection>,
}

impl RegistryStore {
    /// The registry in the SQLite metadata database at `path` (made if absent).
    pub fn open(path: &Path) -> Result<Self, RegistryError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(&format!("BEGIN IMMEDIATE; {SCHEMA} COMMIT;"))?;
        Ok(RegistryStore {
            conn: Mutex::new(conn),
        })
    }

    /// A registry in memory (tests).
    pub fn in_memory() -> Result<Self, RegistryError> {
        let conn = Connection::open_in_memory()?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        Ok(RegistryStore {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> rusqlite::Result<T> {
        f(&self.conn.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Inserts `r` (its id is ignored) and returns it as stored, with its id.
    pub fn insert(
        &self,
        kind: RegistryKind,
        r: &RegistryRow,
    ) -> Result<RegistryRow, RegistryError> {
        let sql = format!(
            "INSERT INTO {} (parent, artifact_type, name, external_id, state, created_ms, \
             updated_ms, body_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING {COLUMNS}",
            kind.table()
        );
        self.with(|c| {
            c.query_row(
                &sql,
                rusqlite::params![
                    r.parent,
                    r.artifact_type,
                    r.name,
                    r.external_id,
                    r.state,
                    r.created_ms,
                    r.updated_ms,
                    r.body_json
                ],
                |x| row(x),
            )
        })
        .map_err(|e| constraint(kind, r, e))
    }

    /// Writes every field of `r` but its id and creation time over the row with its id; the
    /// row as stored, or `None` when there is no such row.
    pub fn update(
        &self,
        kind: RegistryKind,
        r: &RegistryRow,
    ) -> Result<Option<RegistryRow>, RegistryError> {
        let sql = format!(
            "UPDATE {} SET parent = ?2, name = ?3, external_id = ?4, state = ?5, updated_ms = ?6, \
             body_json = ?7 WHERE id = ?1 RETURNING {COLUMNS}",
            kind.table()
        );
        self.with(|c| {
            c.query_row(
                &sql,
                rusqlite::params![
                    r.id,
                    r.parent,
                    r.name,
                    r.external_id,
                    r.state,
                    r.updated_ms,
                    r.body_json
                ],
                |x| row(x),
            )
            .optional()
        })
        .map_err(|e| constraint(kind, r, e))
    }

    pub fn get(&self, kind: RegistryKind, id: i64) -> Result<Option<RegistryRow>, RegistryError> {
        let sql = format!("SELECT {COLUMNS} FROM {} WHERE id = ?1", kind.table());
        Ok(self.with(|c| c.query_row(&sql, [id], |x| row(x)).optional())?)
    }

    /// The row with this name (under `parent`, when given) and external id, whichever are
    /// given; the first by id when several match.
    pub fn find(
        &self,
        kind: RegistryKind,
        name: Option<&str>,
        external_id: Option<&str>,
        parent: Option<i64>,
    ) -> Result<Option<RegistryRow>, RegistryError> {
        let mut sql = format!("SELECT {COLUMNS} FROM {} WHERE 1 = 1", kind.table());
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(n) = name {
            args.push(n.to_string().into());
            sql += &format!(" AND name = ?{}", args.len());
        }
        if let Some(x) = external_id {
            args.push(x.to_string().into());
            sql += &format!(" AND external_id = ?{}", args.len());
        }
        if let Some(p) = parent {
            args.push(p.into());
            sql += &format!(" AND parent = ?{}", args.len());
        }
        sql += " ORDER BY id LIMIT 1";
        Ok(self.with(|c| {
            c.query_row(&sql, params_from_iter(args), |x| row(x))
                .optional()
        })?)
    }

    /// One page of the rows that meet every condition of `conds`, and whether more follow.
    pub fn list(
        &self,
        kind: RegistryKind,
        conds: &[RegistryWhere],
        page: &RegistryPage,
    ) -> Result<(Vec<RegistryRow>, bool), RegistryError> {
        let key = match page.order {
            RegistryOrder::CreateTime => "created_ms",
            RegistryOrder::UpdateTime => "updated_ms",
            RegistryOrder::Id => "id",
        };
        let (cmp, dir) = if page.descending {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        let mut sql = format!("SELECT {COLUMNS} FROM {} WHERE 1 = 1", kind.table());
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        for c in conds {
            sql += &format!(" AND ({})", c.sql);
            args.extend(c.args.iter().map(RegistryValue::sql));
        }
        if let Some((value, id)) = page.after {
            args.extend([value.into(), value.into(), id.into()]);
            sql += &format!(" AND ({key} {cmp} ? OR ({key} = ? AND id {cmp} ?))");
        }
        sql += &format!(
            " ORDER BY {key} {dir}, id {dir} LIMIT {}",
            page.limit as u64 + 1
        );
        let mut rows = self.with(|c| {
            let mut st = c.prepare(&sql)?;
            let rows = st.query_map(params_from_iter(args), |x| row(x))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        let more = rows.len() > page.limit as usize;
        rows.truncate(page.limit as usize);
        Ok((rows, more))
    }
}

/// A deployed inference service's id and name, and which of its references is the one.
const SERVED_BY: &str =
    "SELECT id, COALESCE(name, ''), 'registered model' FROM registry_inference_services \
    WHERE json_extract(body_json, '$.desiredState') = 'DEPLOYED' AND ( \
        (?1 IS NOT NULL AND CAST(json_extract(body_json, '$.registeredModelId') AS INTEGER) = ?1) \
     OR (?2 IS NOT NULL AND CAST(json_extract(body_json, '$.modelVersionId') AS INTEGER) = ?2) \
     OR (?2 IS NOT NULL AND json_extract(body_json, '$.modelVersionId') IS NULL \
         AND CAST(json_extract(body_json, '$.registeredModelId') AS INTEGER) = ?3)) \
    ORDER BY id LIMIT 1";

impl RegistryStore {
    /// Deletes a registered model (its versions and their artifacts with it), a model version
    /// (its artifacts with it) or an artifact, in one transaction: `Ok(false)` when there is
    /// no such row, [`RegistryError::InUse`] while a deployed inference service serves the
    /// model, the version (named, or as the model's latest when the service names none) or
    /// the artifact's version. Other kinds are not deleted.
    pub fn delete(&self, kind: RegistryKind, id: i64) -> Result<bool, RegistryError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let get_parent = format!("SELECT parent FROM {} WHERE id = ?1", kind.table());
        let parent: Option<Option<i64>> =
            tx.query_row(&get_parent, [id], |r| r.get(0)).optional()?;
        let Some(parent) = parent else {
            return Ok(false);
        };
        let (model, version) = match kind {
            RegistryKind::RegisteredModel => (Some(id), None),
            RegistryKind::ModelVersion => (None, Some(id)),
            RegistryKind::Artifact => (None, parent),
            other => {
                return Err(RegistryError::InUse(format!(
                    "a {} cannot be deleted",
                    other.noun()
                )))
            }
        };
        let version_model: Option<i64> = match version {
            Some(v) => tx
                .query_row(
                    "SELECT parent FROM registry_versions WHERE id = ?1",
                    [v],
                    |r| r.get(0),
                )
                .optional()?,
            None => None,
        };
        let served: Option<(i64, String)> = tx
            .query_row(
                SERVED_BY,
                rusqlite::params![model, version, version_model],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((service, name)) = served {
            return Err(RegistryError::InUse(format!(
                "{} {id} is served by inference service {service} (`{name}`), which is DEPLOYED: \
                 set its desiredState to UNDEPLOYED first",
                kind.noun()
            )));
        }
        cascade(&tx, kind, id)?;
        tx.commit()?;
        Ok(true)
    }
}

/// Deletes the row and what belongs to it.
fn cascade(tx: &rusqlite::Transaction, kind: RegistryKind, id: i64) -> rusqlite::Result<()> {
    if kind == RegistryKind::RegisteredModel {
        tx.execute(
            "DELETE FROM registry_artifacts WHERE parent IN \
             (SELECT id FROM registry_versions WHERE parent = ?1)",
            [id],
        )?;
        tx.execute("DELETE FROM registry_versions WHERE parent = ?1", [id])?;
    }
    if kind == RegistryKind::ModelVersion {
        tx.execute("DELETE FROM registry_artifacts WHERE parent = ?1", [id])?;
    }
    tx.execute(&format!("DELETE FROM {} WHERE id = ?1", kind.table()), [id])?;
    Ok(())
}

/// A unique or foreign key failure as what it means for `r`; anything else as it is.
fn constraint(kind: RegistryKind, r: &RegistryRow, e: rusqlite::Error) -> RegistryError {
    let rusqlite::Error::SqliteFailure(f, _) = &e else {
        return e.into();
    };
    let name = r.name.as_deref().unwrap_or("");
    match f.extended_code {
        rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
            let taken = e.to_string();
            if taken.contains("external_id") {
                let x = r.external_id.as_deref().unwrap_or("");
                RegistryError::Conflict(format!(
                    "a {} with external id `{x}` already exists",
                    kind.noun()
                ))
            } else {
                RegistryError::Conflict(format!(
                    "a {} named `{name}` already exists{}",
                    kind.noun(),
                    kind.scope()
                ))
            }
        }
        rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => RegistryError::NoParent(format!(
            "the parent of {} `{name}` does not exist",
            kind.noun()
        )),
        _ => e.into(),
    }
}
