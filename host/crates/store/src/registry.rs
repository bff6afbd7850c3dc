//! The model registry's rows (issue 16): registered models, their versions and artifacts,
//! serving environments, their inference services and those services' serve actions,
//! experiments, their runs and the runs' metric history, a table each in the metadata
//! database. Each row keeps the columns the registry looks things up by (id, namespace,
//! parent, name, external id, state, times) and the rest of the entity as JSON (`body_json`:
//! description, custom properties, type-specific fields), which the `weft-registry` crate
//! types. An artifact's parent is its model version; the experiment run it was logged to is
//! its `experimentRunId` in `body_json` (names are unique per version, or per run for an
//! artifact of no version).
//!
//! Every row belongs to a namespace, and every call names one: rows of other namespaces are
//! not there for it. Names and external ids are unique per namespace (a child's name per
//! parent, as before); a child's parent is in its namespace (the foreign keys are on
//! `(parent, namespace)`).
//!
//! Two backends, the metadata store's: SQLite (the tables are the last of the metadata
//! migrations, `metadata.rs`; a database whose registry tables were made before, outside the
//! migrations, has them rebuilt with their rows in the namespace `default`) and PostgreSQL
//! (`registry_pg.rs`, the `postgres` feature: migration 5 of `metadata_pg.rs`, `body_json`
//! as JSONB). Both are made from one description of the tables ([`TABLES`]).

use crate::rows::Columns;
use rusqlite::{params_from_iter, Connection, OptionalExtension};
use std::path::Path;
use std::sync::{LazyLock, Mutex};

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
    pub(crate) fn table(self) -> &'static str {
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
    pub(crate) fn scope(self) -> &'static str {
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

/// The SQL a registry's database speaks, for conditions written outside the store (the
/// `weft-registry` crate's `filterQuery`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistryDialect {
    /// `json_extract(body_json, '$.x')`, `GLOB`; placeholders `?N`.
    Sqlite,
    /// `body_json -> 'x'` on JSONB, `LIKE`/`ILIKE` with no escape character, and three
    /// functions of the registry's migration: `weft_registry_int(jsonb) -> bigint` (a JSON
    /// integer, or a string of one), `weft_registry_num(jsonb) -> double precision` (a JSON
    /// number), `weft_registry_bool(jsonb) -> integer` (1 or 0 for a JSON boolean), each NULL
    /// for any other value; placeholders `$N`.
    Postgres,
}

/// A condition on a registry table's columns (`id`, `parent`, `artifact_type`, `name`,
/// `external_id`, `state`, `created_ms`, `updated_ms`, `body_json`), in the store's dialect
/// ([`RegistryStore::dialect`]): SQL text with one `?` per value of `args`, in order, so no
/// value is ever spliced into the text. The store numbers the `?`s (those outside quoted
/// text) as its database writes placeholders (`?N`, `$N`); none may stand for anything else.
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

/// `sql` with each `?` outside quoted text numbered from 1 as `dialect` writes placeholders.
pub(crate) fn numbered(sql: &str, dialect: RegistryDialect) -> String {
    let mark = match dialect {
        RegistryDialect::Sqlite => '?',
        RegistryDialect::Postgres => '$',
    };
    let mut out = String::with_capacity(sql.len() + 16);
    let mut quote: Option<char> = None;
    let mut n = 0;
    for c in sql.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '?') => {
                n += 1;
                out.push(mark);
                out.push_str(&n.to_string());
                continue;
            }
            (None, _) => {}
        }
        out.push(c);
    }
    out
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
    /// A value the database cannot hold (PostgreSQL's text takes no NUL character).
    #[error("{0}")]
    Invalid(String),
    #[error("metadata store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("metadata store: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Store(#[from] crate::StoreError),
}

/// Where a table's names are unique.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Names {
    /// In the namespace (registered models, serving environments, experiments).
    Namespace,
    /// Under the parent.
    Parent,
    /// Artifacts: under the version, or the experiment run for an artifact of no version.
    Artifact,
    /// Not unique (metric history).
    Free,
}

/// One registry table, as both backends make it.
pub(crate) struct Table {
    pub kind: RegistryKind,
    /// The kind of the parent, and whether a row must have one.
    pub parent: Option<(RegistryKind, bool)>,
    pub name_required: bool,
    pub names: Names,
    pub external_ids_unique: bool,
}

/// The tables, parents before their children.
pub(crate) const TABLES: &[Table] = &[
    Table {
        kind: RegistryKind::RegisteredModel,
        parent: None,
        name_required: true,
        names: Names::Namespace,
        external_ids_unique: true,
    },
    Table {
        kind: RegistryKind::ModelVersion,
        parent: Some((RegistryKind::RegisteredModel, true)),
        name_required: true,
        names: Names::Parent,
        external_ids_unique: true,
    },
    Table {
        kind: RegistryKind::Artifact,
        parent: Some((RegistryKind::ModelVersion, false)),
        name_required: false,
        names: Names::Artifact,
        external_ids_unique: true,
    },
    Table {
        kind: RegistryKind::ServingEnvironment,
        parent: None,
        name_required: true,
        names: Names::Namespace,
        external_ids_unique: true,
    },
    Table {
        kind: RegistryKind::InferenceService,
        parent: Some((RegistryKind::ServingEnvironment, true)),
        name_required: false,
        names: Names::Parent,
        external_ids_unique: true,
    },
    Table {
        kind: RegistryKind::ServeModel,
        parent: Some((RegistryKind::InferenceService, true)),
        name_required: false,
        names: Names::Parent,
        external_ids_unique: true,
    },
    Table {
        kind: RegistryKind::Experiment,
        parent: None,
        name_required: true,
        names: Names::Namespace,
        external_ids_unique: true,
    },
    Table {
        kind: RegistryKind::ExperimentRun,
        parent: Some((RegistryKind::Experiment, true)),
        name_required: false,
        names: Names::Parent,
        external_ids_unique: true,
    },
    Table {
        kind: RegistryKind::MetricHistory,
        parent: Some((RegistryKind::ExperimentRun, true)),
        name_required: false,
        names: Names::Free,
        external_ids_unique: false,
    },
];

/// `CREATE TABLE` for `t` named `name`, in the dialect's types.
pub(crate) fn create_table(t: &Table, name: &str, dialect: RegistryDialect) -> String {
    let pg = dialect == RegistryDialect::Postgres;
    let (id, int, json, namespace) = if pg {
        (
            "id BIGSERIAL PRIMARY KEY",
            "BIGINT",
            "JSONB",
            "namespace TEXT NOT NULL",
        )
    } else {
        (
            "id INTEGER PRIMARY KEY AUTOINCREMENT",
            "INTEGER",
            "TEXT",
            // A row written by a version of Weft from before namespaces is in `default`.
            "namespace TEXT NOT NULL DEFAULT 'default'",
        )
    };
    let table = t.kind.table();
    let not_null = |yes: bool| if yes { " NOT NULL" } else { "" };
    let mut lines = vec![
        id.to_string(),
        namespace.to_string(),
        format!("parent {int}{}", not_null(t.parent.is_some_and(|p| p.1))),
        "artifact_type TEXT NOT NULL DEFAULT ''".to_string(),
        format!("name TEXT{}", not_null(t.name_required)),
        "external_id TEXT".to_string(),
        "state TEXT".to_string(),
        format!("created_ms {int} NOT NULL"),
        format!("updated_ms {int} NOT NULL"),
        format!("body_json {json} NOT NULL"),
        // What children's foreign keys name.
        format!("CONSTRAINT {table}_in_namespace UNIQUE (id, namespace)"),
    ];
    if let Some((parent, _)) = t.parent {
        lines.push(format!(
            "CONSTRAINT {table}_parent FOREIGN KEY (parent, namespace) REFERENCES {} (id, namespace)",
            parent.table()
        ));
    }
    match t.names {
        Names::Namespace => lines.push(format!("CONSTRAINT {table}_name UNIQUE (namespace, name)")),
        Names::Parent => lines.push(format!("CONSTRAINT {table}_name UNIQUE (parent, name)")),
        Names::Artifact | Names::Free => {}
    }
    if t.external_ids_unique {
        lines.push(format!(
            "CONSTRAINT {table}_external_id UNIQUE (namespace, external_id)"
        ));
    }
    format!("CREATE TABLE {name} (\n    {}\n);\n", lines.join(",\n    "))
}

/// The indexes, in the dialect: artifact names unique where they are (an artifact of no
/// version by the experiment run it was logged to), and the lookups by parent.
fn indexes(dialect: RegistryDialect) -> String {
    let run = match dialect {
        RegistryDialect::Sqlite => "json_extract(body_json, '$.experimentRunId')",
        RegistryDialect::Postgres => "body_json ->> 'experimentRunId'",
    };
    format!(
        "CREATE UNIQUE INDEX registry_artifacts_scoped_name ON registry_artifacts (
    namespace,
    COALESCE(parent, 0),
    (CASE WHEN parent IS NULL THEN COALESCE({run}, '') ELSE '' END),
    name);
CREATE INDEX registry_metric_history_by_parent ON registry_metric_history (parent, name);
CREATE INDEX registry_versions_by_parent ON registry_versions (parent);
"
    )
}

/// The registry's tables as they were made before namespaces, outside the migrations, by
/// `CREATE TABLE IF NOT EXISTS`: the SQLite migration makes them first where they are absent,
/// so it rebuilds them the same way whether a database had them or not.
const BEFORE_NAMESPACES: &str = "
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

/// The SQLite migration: the tables as they were (where absent), rebuilt with namespaces and
/// the foreign keys on `(parent, namespace)`, ids and id sequences kept (a deleted row's id is
/// never given again), every row in `default`.
pub(crate) fn sqlite_migration() -> &'static str {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        let mut sql = format!("{BEFORE_NAMESPACES}\n");
        for t in TABLES {
            let table = t.kind.table();
            let new = format!("{table}_v2");
            sql += &create_table(t, &new, RegistryDialect::Sqlite);
            sql += &format!(
                "INSERT INTO sqlite_sequence (name, seq)
    SELECT '{new}', seq FROM sqlite_sequence WHERE name = '{table}';
INSERT INTO {new} (id, namespace, {COLUMNS_BUT_ID})
    SELECT id, 'default', {COLUMNS_BUT_ID} FROM {table} ORDER BY id;
DROP TABLE {table};
ALTER TABLE {new} RENAME TO {table};
"
            );
        }
        sql + &indexes(RegistryDialect::Sqlite)
    });
    &SQL
}

/// The PostgreSQL migration: the functions conditions use ([`RegistryDialect::Postgres`]),
/// the tables and their indexes.
#[cfg(feature = "postgres")]
pub(crate) fn pg_migration() -> &'static str {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        let mut sql = PG_FUNCTIONS.to_string();
        for t in TABLES {
            sql += &create_table(t, t.kind.table(), RegistryDialect::Postgres);
        }
        sql + &indexes(RegistryDialect::Postgres)
    });
    &SQL
}

/// A JSON value as an integer, a number, a boolean (1 or 0), or NULL when it is none: what
/// SQLite's `CAST(json_extract(...) AS INTEGER)` and `json_extract` give, without failing on a
/// value of another type. CASE decides before any cast runs, so none can fail.
#[cfg(feature = "postgres")]
const PG_FUNCTIONS: &str = r"CREATE FUNCTION weft_registry_int(j jsonb) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $f$
SELECT CASE jsonb_typeof(j)
    WHEN 'number' THEN CASE WHEN abs((j #>> '{}')::numeric) < 9e18
        THEN trunc((j #>> '{}')::numeric)::bigint END
    WHEN 'string' THEN CASE WHEN (j #>> '{}') ~ '^ *[-+]?[0-9]{1,18} *$'
        THEN btrim(j #>> '{}')::bigint END
END
$f$;
CREATE FUNCTION weft_registry_num(j jsonb) RETURNS double precision
LANGUAGE sql IMMUTABLE AS $f$
SELECT CASE jsonb_typeof(j) WHEN 'number' THEN (j #>> '{}')::double precision END
$f$;
CREATE FUNCTION weft_registry_bool(j jsonb) RETURNS integer
LANGUAGE sql IMMUTABLE AS $f$
SELECT CASE jsonb_typeof(j) WHEN 'boolean' THEN CASE WHEN j = 'true'::jsonb THEN 1 ELSE 0 END END
$f$;
";

const COLUMNS_BUT_ID: &str =
    "parent, artifact_type, name, external_id, state, created_ms, updated_ms, body_json";

const COLUMNS: &str =
    "id, parent, artifact_type, name, external_id, state, created_ms, updated_ms, body_json";

pub(crate) fn row<C: Columns>(r: &C) -> Result<RegistryRow, C::Error> {
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

/// The column a list is ordered by, and the comparison and direction of its pages.
pub(crate) fn order(page: &RegistryPage) -> (&'static str, &'static str, &'static str) {
    let key = match page.order {
        RegistryOrder::CreateTime => "created_ms",
        RegistryOrder::UpdateTime => "updated_ms",
        RegistryOrder::Id => "id",
    };
    if page.descending {
        (key, "<", "DESC")
    } else {
        (key, ">", "ASC")
    }
}

/// The statement of a list (`?` placeholders, not numbered) and its values: the namespace's
/// rows of `kind` that meet every condition, one page of them and one more.
pub(crate) fn list_sql(
    kind: RegistryKind,
    columns: &str,
    ns: &str,
    conds: &[RegistryWhere],
    page: &RegistryPage,
) -> (String, Vec<RegistryValue>) {
    let (key, cmp, dir) = order(page);
    let mut sql = format!("SELECT {columns} FROM {} WHERE namespace = ?", kind.table());
    let mut args = vec![RegistryValue::from(ns)];
    for c in conds {
        sql += &format!(" AND ({})", c.sql);
        args.extend(c.args.iter().cloned());
    }
    if let Some((value, id)) = page.after {
        args.extend([value.into(), value.into(), id.into()]);
        sql += &format!(" AND ({key} {cmp} ? OR ({key} = ? AND id {cmp} ?))");
    }
    sql += &format!(
        " ORDER BY {key} {dir}, id {dir} LIMIT {}",
        page.limit as u64 + 1
    );
    (sql, args)
}

/// The statement of a find (`?` placeholders) and its values.
pub(crate) fn find_sql(
    kind: RegistryKind,
    columns: &str,
    ns: &str,
    name: Option<&str>,
    external_id: Option<&str>,
    parent: Option<i64>,
) -> (String, Vec<RegistryValue>) {
    let mut sql = format!("SELECT {columns} FROM {} WHERE namespace = ?", kind.table());
    let mut args = vec![RegistryValue::from(ns)];
    if let Some(n) = name {
        args.push(n.into());
        sql += " AND name = ?";
    }
    if let Some(x) = external_id {
        args.push(x.into());
        sql += " AND external_id = ?";
    }
    if let Some(p) = parent {
        args.push(p.into());
        sql += " AND parent = ?";
    }
    sql += " ORDER BY id LIMIT 1";
    (sql, args)
}

/// What a delete must check: the registered model and the model version whose serving keeps
/// it, for a row of `kind` with this id and parent.
pub(crate) fn served_refs(
    kind: RegistryKind,
    id: i64,
    parent: Option<i64>,
) -> Result<(Option<i64>, Option<i64>), RegistryError> {
    match kind {
        RegistryKind::RegisteredModel => Ok((Some(id), None)),
        RegistryKind::ModelVersion => Ok((None, Some(id))),
        RegistryKind::Artifact => Ok((None, parent)),
        other => Err(RegistryError::InUse(format!(
            "a {} cannot be deleted",
            other.noun()
        ))),
    }
}

/// The refusal of a delete while inference service `service` serves the row.
pub(crate) fn in_use(kind: RegistryKind, id: i64, service: i64, name: &str) -> RegistryError {
    RegistryError::InUse(format!(
        "{} {id} is served by inference service {service} (`{name}`), which is DEPLOYED: \
         set its desiredState to UNDEPLOYED first",
        kind.noun()
    ))
}

/// The deletes of a row and what belongs to it, in order, each with one placeholder: the id.
pub(crate) fn cascade_sql(kind: RegistryKind) -> Vec<String> {
    let mut out = Vec::new();
    if kind == RegistryKind::RegisteredModel {
        out.push(
            "DELETE FROM registry_artifacts WHERE parent IN \
             (SELECT id FROM registry_versions WHERE parent = ?)"
                .to_string(),
        );
        out.push("DELETE FROM registry_versions WHERE parent = ?".to_string());
    }
    if kind == RegistryKind::ModelVersion {
        out.push("DELETE FROM registry_artifacts WHERE parent = ?".to_string());
    }
    out.push(format!("DELETE FROM {} WHERE id = ?", kind.table()));
    out
}

/// A name or external id taken, as a message about `r`.
pub(crate) fn conflict(kind: RegistryKind, r: &RegistryRow, external_id: bool) -> RegistryError {
    if external_id {
        let x = r.external_id.as_deref().unwrap_or("");
        RegistryError::Conflict(format!(
            "a {} with external id `{x}` already exists",
            kind.noun()
        ))
    } else {
        RegistryError::Conflict(format!(
            "a {} named `{}` already exists{}",
            kind.noun(),
            r.name.as_deref().unwrap_or(""),
            kind.scope()
        ))
    }
}

/// The parent of `r` missing (in its namespace), as a message.
pub(crate) fn no_parent(kind: RegistryKind, r: &RegistryRow) -> RegistryError {
    RegistryError::NoParent(format!(
        "the parent of {} `{}` does not exist",
        kind.noun(),
        r.name.as_deref().unwrap_or("")
    ))
}

/// The registry's tables in the metadata database: SQLite, or PostgreSQL (`postgres`
/// feature). Every call names the namespace it works in.
pub struct RegistryStore {
    db: Db,
    /// Told what a delete freed (see [`RegistryStore::on_freed`]).
    freed: std::sync::RwLock<Option<FreedHook>>,
}

enum Db {
    Sqlite(Mutex<Connection>),
    #[cfg(feature = "postgres")]
    Postgres(crate::registry_pg::PgRegistry),
}

// Without the `postgres` feature, SQLite is the only backend to match.
#[cfg_attr(
    not(feature = "postgres"),
    allow(clippy::infallible_destructuring_match)
)]
impl RegistryStore {
    /// The registry in the SQLite metadata database at `path` (made if absent), its schema
    /// brought up to date with the metadata store's.
    pub fn open(path: &Path) -> Result<Self, RegistryError> {
        let conn = crate::metadata::open_connection(path)?;
        Ok(RegistryStore {
            db: Db::Sqlite(Mutex::new(conn)),
            freed: Default::default(),
        })
    }

    /// The registry where [`crate::MetadataStore::connect`] keeps run metadata for the same
    /// `location`: a `postgres://` (or `postgresql://`) URL names a PostgreSQL database (a
    /// build with the `postgres` feature), anything else a SQLite file.
    pub fn connect(location: &str) -> Result<Self, RegistryError> {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            #[cfg(feature = "postgres")]
            return Ok(RegistryStore {
                db: Db::Postgres(crate::registry_pg::PgRegistry::connect(location)?),
                freed: Default::default(),
            });
            #[cfg(not(feature = "postgres"))]
            return Err(RegistryError::Store(crate::StoreError::Invalid(
                "the model registry in PostgreSQL needs a build with the `postgres` feature".into(),
            )));
        }
        Self::open(Path::new(location))
    }

    /// A registry in memory (tests).
    pub fn in_memory() -> Result<Self, RegistryError> {
        let mut conn = Connection::open_in_memory()?;
        crate::metadata::migrate(&mut conn)?;
        Ok(RegistryStore {
            db: Db::Sqlite(Mutex::new(conn)),
            freed: Default::default(),
        })
    }

    /// The SQL that conditions given to [`Self::list`] are written in.
    pub fn dialect(&self) -> RegistryDialect {
        match &self.db {
            Db::Sqlite(_) => RegistryDialect::Sqlite,
            #[cfg(feature = "postgres")]
            Db::Postgres(_) => RegistryDialect::Postgres,
        }
    }

    fn sqlite(conn: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
        conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Inserts `r` (its id is ignored) in namespace `ns` and returns it as stored, with its
    /// id.
    pub fn insert(
        &self,
        kind: RegistryKind,
        ns: &str,
        r: &RegistryRow,
    ) -> Result<RegistryRow, RegistryError> {
        let conn = match &self.db {
            Db::Sqlite(conn) => conn,
            #[cfg(feature = "postgres")]
            Db::Postgres(pg) => return pg.insert(kind, ns, r),
        };
        let sql = format!(
            "INSERT INTO {} (namespace, {COLUMNS_BUT_ID}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING {COLUMNS}",
            kind.table()
        );
        Self::sqlite(conn)
            .query_row(
                &sql,
                rusqlite::params![
                    ns,
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
            .map_err(|e| constraint(kind, r, e))
    }

    /// Writes every field of `r` but its id and creation time over the row of namespace `ns`
    /// with its id; the row as stored, or `None` when there is no such row.
    pub fn update(
        &self,
        kind: RegistryKind,
        ns: &str,
        r: &RegistryRow,
    ) -> Result<Option<RegistryRow>, RegistryError> {
        let conn = match &self.db {
            Db::Sqlite(conn) => conn,
            #[cfg(feature = "postgres")]
            Db::Postgres(pg) => return pg.update(kind, ns, r),
        };
        let sql = format!(
            "UPDATE {} SET parent = ?3, name = ?4, external_id = ?5, state = ?6, updated_ms = ?7, \
             body_json = ?8 WHERE namespace = ?1 AND id = ?2 RETURNING {COLUMNS}",
            kind.table()
        );
        Self::sqlite(conn)
            .query_row(
                &sql,
                rusqlite::params![
                    ns,
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
            .map_err(|e| constraint(kind, r, e))
    }

    /// The row of namespace `ns` with this id.
    pub fn get(
        &self,
        kind: RegistryKind,
        ns: &str,
        id: i64,
    ) -> Result<Option<RegistryRow>, RegistryError> {
        let conn = match &self.db {
            Db::Sqlite(conn) => conn,
            #[cfg(feature = "postgres")]
            Db::Postgres(pg) => return pg.get(kind, ns, id),
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM {} WHERE namespace = ?1 AND id = ?2",
            kind.table()
        );
        Ok(Self::sqlite(conn)
            .query_row(&sql, rusqlite::params![ns, id], |x| row(x))
            .optional()?)
    }

    /// The row of namespace `ns` with this name (under `parent`, when given) and external id,
    /// whichever are given; the first by id when several match.
    pub fn find(
        &self,
        kind: RegistryKind,
        ns: &str,
        name: Option<&str>,
        external_id: Option<&str>,
        parent: Option<i64>,
    ) -> Result<Option<RegistryRow>, RegistryError> {
        let conn = match &self.db {
            Db::Sqlite(conn) => conn,
            #[cfg(feature = "postgres")]
            Db::Postgres(pg) => return pg.find(kind, ns, name, external_id, parent),
        };
        let (sql, args) = find_sql(kind, COLUMNS, ns, name, external_id, parent);
        let sql = numbered(&sql, RegistryDialect::Sqlite);
        let args = args.iter().map(RegistryValue::sql);
        Ok(Self::sqlite(conn)
            .query_row(&sql, params_from_iter(args), |x| row(x))
            .optional()?)
    }

    /// One page of the rows of namespace `ns` that meet every condition of `conds` (in
    /// [`Self::dialect`]), and whether more follow.
    pub fn list(
        &self,
        kind: RegistryKind,
        ns: &str,
        conds: &[RegistryWhere],
        page: &RegistryPage,
    ) -> Result<(Vec<RegistryRow>, bool), RegistryError> {
        let mut rows = match &self.db {
            Db::Sqlite(conn) => {
                let (sql, args) = list_sql(kind, COLUMNS, ns, conds, page);
                let sql = numbered(&sql, RegistryDialect::Sqlite);
                let c = Self::sqlite(conn);
                let mut st = c.prepare(&sql)?;
                let rows = st
                    .query_map(params_from_iter(args.iter().map(RegistryValue::sql)), |x| {
                        row(x)
                    })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            }
            #[cfg(feature = "postgres")]
            Db::Postgres(pg) => pg.list(kind, ns, conds, page)?,
        };
        let more = rows.len() > page.limit as usize;
        rows.truncate(page.limit as usize);
        Ok((rows, more))
    }
}

/// A deployed inference service of the namespace (`?1`) and its name: one that serves the
/// model `?2`, the version `?3`, or, naming no version, the model `?4` (the version's).
const SERVED_BY: &str = "SELECT id, COALESCE(name, '') FROM registry_inference_services \
    WHERE namespace = ?1 AND json_extract(body_json, '$.desiredState') = 'DEPLOYED' AND ( \
        (?2 IS NOT NULL AND CAST(json_extract(body_json, '$.registeredModelId') AS INTEGER) = ?2) \
     OR (?3 IS NOT NULL AND CAST(json_extract(body_json, '$.modelVersionId') AS INTEGER) = ?3) \
     OR (?3 IS NOT NULL AND json_extract(body_json, '$.modelVersionId') IS NULL \
         AND CAST(json_extract(body_json, '$.registeredModelId') AS INTEGER) = ?4)) \
    ORDER BY id LIMIT 1";

// Without the `postgres` feature, SQLite is the only backend to match.
#[cfg_attr(
    not(feature = "postgres"),
    allow(clippy::infallible_destructuring_match)
)]
impl RegistryStore {
    /// Deletes a registered model (its versions and their artifacts with it), a model version
    /// (its artifacts with it) or an artifact of namespace `ns`, in one transaction:
    /// `Ok(false)` when there is no such row, [`RegistryError::InUse`] while a deployed
    /// inference service of the namespace serves the model, the version (named, or as the
    /// model's latest when the service names none) or the artifact's version. Other kinds are
    /// not deleted.
    pub fn delete(&self, kind: RegistryKind, ns: &str, id: i64) -> Result<bool, RegistryError> {
        let conn = match &self.db {
            Db::Sqlite(conn) => conn,
            #[cfg(feature = "postgres")]
            Db::Postgres(pg) => {
                let named = pg.delete(kind, ns, id)?;
                let deleted = named.is_some();
                self.freed(&named.unwrap_or_default());
                return Ok(deleted);
            }
        };
        let mut conn = Self::sqlite(conn);
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let get_parent = format!(
            "SELECT parent FROM {} WHERE namespace = ?1 AND id = ?2",
            kind.table()
        );
        let parent: Option<Option<i64>> = tx
            .query_row(&get_parent, rusqlite::params![ns, id], |r| r.get(0))
            .optional()?;
        let Some(parent) = parent else {
            return Ok(false);
        };
        let (model, version) = served_refs(kind, id, parent)?;
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
                rusqlite::params![ns, model, version, version_model],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((service, name)) = served {
            return Err(in_use(kind, id, service, &name));
        }
        let mut named = std::collections::BTreeSet::new();
        for sql in freed::bodies_sql(kind, false) {
            let mut st = tx.prepare(&numbered(&sql, RegistryDialect::Sqlite))?;
            for body in st.query_map([id], |r| r.get::<_, String>(0))? {
                named.extend(digests_in(&body?));
            }
        }
        for sql in cascade_sql(kind) {
            tx.execute(&numbered(&sql, RegistryDialect::Sqlite), [id])?;
        }
        tx.commit()?;
        drop(conn);
        self.freed(&named);
        Ok(true)
    }

    /// Whether any registry row, of any namespace, names `text` (a digest) in its body.
    pub fn mentions(&self, text: &str) -> Result<bool, RegistryError> {
        let conn = match &self.db {
            Db::Sqlite(conn) => conn,
            #[cfg(feature = "postgres")]
            Db::Postgres(pg) => return pg.mentions(text),
        };
        let conn = Self::sqlite(conn);
        for sql in freed::mention_sql(false) {
            if conn
                .query_row(&sql, [text], |_| Ok(()))
                .optional()?
                .is_some()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// A unique or foreign key failure as what it means for `r`; anything else as it is.
fn constraint(kind: RegistryKind, r: &RegistryRow, e: rusqlite::Error) -> RegistryError {
    let rusqlite::Error::SqliteFailure(f, _) = &e else {
        return e.into();
    };
    match f.extended_code {
        rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
            conflict(kind, r, e.to_string().contains("external_id"))
        }
        rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => no_parent(kind, r),
        _ => e.into(),
    }
}

mod freed;
pub use freed::{digests_in, FreedHook};

#[cfg(feature = "postgres")]
pub(crate) fn freed_bodies_sql(kind: RegistryKind) -> Vec<String> {
    freed::bodies_sql(kind, true)
}

#[cfg(feature = "postgres")]
pub(crate) fn freed_mention_sql() -> Vec<String> {
    freed::mention_sql(true)
}

#[cfg(test)]
mod tests;
