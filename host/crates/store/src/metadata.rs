//! Run metadata in SQLite: runs, tasks (executions), artifacts, lineage events, metrics, the
//! cache index, the logs index (each task's log path) and tuning experiments with their
//! trials (their SQL in `experiments.rs`), with schema migrations.

use crate::experiments::{self, ExperimentRecord, TrialRecord};
use crate::rows::{self, EVENT_COLUMNS, LEASE_COLUMNS, METRIC_COLUMNS, RUN_COLUMNS, TASK_COLUMNS};
use crate::{Result, StoreError};
use rusqlite::{params, Connection, OptionalExtension};
use rusqlite_migration::{Migrations, M};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Mutex;

/// Task states, as Kubeflow Pipelines names them. The names are the stored text (the database,
/// JSON, messages): one table, strum's, for all three.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskState {
    Pending,
    Running,
    Succeeded,
    Failed,
    /// Not executed: its outputs came from the cache.
    Skipped,
    /// Not executed: its condition was false (or an upstream task was not triggered).
    NotTriggered,
    Cancelled,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The state named `s` as stored; `None` for a name no version of Weft wrote.
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }

    /// Whether the task is done, one way or another.
    pub fn is_terminal(self) -> bool {
        !matches!(self, TaskState::Pending | TaskState::Running)
    }

    /// Whether downstream tasks may use its outputs.
    pub fn has_outputs(self) -> bool {
        matches!(self, TaskState::Succeeded | TaskState::Skipped)
    }
}

/// Run states.
pub const RUN_RUNNING: &str = "RUNNING";
pub const RUN_SUCCEEDED: &str = "SUCCEEDED";
pub const RUN_FAILED: &str = "FAILED";
pub const RUN_CANCELLED: &str = "CANCELLED";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub pipeline: String,
    /// The pipeline file the run was started from.
    pub pipeline_file: String,
    /// The resolved run (pipeline spec, parameters, component and input digests) as JSON: what
    /// `resume` and `replay` re-execute.
    pub plan_json: String,
    pub state: String,
    pub created_at: String,
    pub finished_at: Option<String>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskRecord {
    pub run_id: String,
    pub name: String,
    pub state: TaskState,
    pub attempt: u32,
    pub component_digest: Option<String>,
    pub cache_key: Option<String>,
    /// For a cache hit: the run whose outputs were reused.
    pub cached_from: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<f64>,
    pub error: Option<String>,
    /// Output parameters: `{"name": {"type": .., "value": ..}}`.
    pub outputs_json: Option<String>,
    pub log_path: Option<String>,
}

/// One artifact a task produced or consumed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArtifactEvent {
    pub run_id: String,
    pub task: String,
    /// The input or output name.
    pub name: String,
    pub digest: String,
    /// `input` or `output`.
    pub direction: String,
    pub artifact_type: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricRecord {
    pub task: String,
    pub name: String,
    /// As the step reported it, NaN and infinities included (in JSON as `"NaN"`,
    /// `"Infinity"` and `"-Infinity"`: see [`weft_spec::float`]).
    #[serde(with = "weft_spec::float")]
    pub value: f64,
    pub step: Option<u64>,
}

/// What a cache hit gives back: the outputs of an earlier execution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    pub run_id: String,
    pub task: String,
    pub outputs_json: String,
    /// Output artifacts: name → digest.
    pub artifacts: Vec<(String, String)>,
}

/// Everything recorded when a task succeeds, written in one transaction.
#[derive(Clone, Debug)]
pub struct TaskCompletion {
    pub state: TaskState,
    pub outputs_json: String,
    pub inputs: Vec<(String, String, String)>,
    /// (name, digest, type, bytes, files)
    pub outputs: Vec<(String, crate::StoredArtifact, String)>,
    pub metrics: Vec<MetricRecord>,
    pub cache_key: Option<String>,
    pub cached_from: Option<String>,
    pub duration_ms: f64,
    pub log_path: Option<String>,
}

/// Journal mode, durability, the schema migrations, then foreign keys: off while migrating,
/// as SQLite's way of rebuilding a table needs (a migration that does so checks the keys
/// before it commits).
fn init(conn: &mut Connection) -> Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    migrate(conn)
}

/// The schema migrations, then foreign keys on (a database in memory has no journal to set).
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    migrations().to_latest(conn)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

fn migrations() -> Migrations<'static> {
    let registry = crate::registry::sqlite_migration();
    let all = MIGRATIONS.iter().map(|sql| M::up(sql));
    // The model registry's tables, rebuilt with their namespaces (see `registry.rs`).
    Migrations::new(all.chain([M::up(registry).foreign_key_check()]).collect())
}

/// The schema's migrations, oldest first. Existing databases run the ones they lack.
pub(crate) const MIGRATIONS: &[&str] = &[
    "CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            pipeline TEXT NOT NULL,
            pipeline_file TEXT NOT NULL,
            plan_json TEXT NOT NULL,
            state TEXT NOT NULL,
            created_at TEXT NOT NULL,
            finished_at TEXT,
            error TEXT
        );
        CREATE TABLE tasks (
            run_id TEXT NOT NULL REFERENCES runs(id),
            name TEXT NOT NULL,
            state TEXT NOT NULL,
            attempt INTEGER NOT NULL DEFAULT 0,
            component_digest TEXT,
            cache_key TEXT,
            cached_from TEXT,
            started_at TEXT,
            finished_at TEXT,
            duration_ms REAL,
            error TEXT,
            outputs_json TEXT,
            log_path TEXT,
            PRIMARY KEY (run_id, name)
        );
        CREATE TABLE artifacts (
            digest TEXT PRIMARY KEY,
            artifact_type TEXT NOT NULL,
            bytes INTEGER NOT NULL,
            files INTEGER NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id TEXT NOT NULL,
            task TEXT NOT NULL,
            name TEXT NOT NULL,
            digest TEXT NOT NULL REFERENCES artifacts(digest),
            direction TEXT NOT NULL CHECK (direction IN ('input', 'output')),
            artifact_type TEXT NOT NULL
        );
        CREATE INDEX events_by_digest ON events(digest);
        CREATE INDEX events_by_run ON events(run_id, task);
        CREATE TABLE metrics (
            run_id TEXT NOT NULL,
            task TEXT NOT NULL,
            name TEXT NOT NULL,
            value REAL NOT NULL,
            step INTEGER
        );
        CREATE INDEX metrics_by_run ON metrics(run_id, task);
        CREATE TABLE cache (
            key TEXT PRIMARY KEY,
            run_id TEXT NOT NULL,
            task TEXT NOT NULL,
            outputs_json TEXT NOT NULL,
            artifacts_json TEXT NOT NULL,
            created_at TEXT NOT NULL
        );",
    // A metric may be NaN, which SQLite cannot hold as a REAL: it binds NaN as NULL, so the
    // column allows NULL and NULL reads back as NaN. SQLite cannot drop a NOT NULL in place,
    // so the table is copied, rowids (the metrics' order) included.
    "CREATE TABLE metrics_v2 (
            run_id TEXT NOT NULL,
            task TEXT NOT NULL,
            name TEXT NOT NULL,
            value REAL,
            step INTEGER
        );
        INSERT INTO metrics_v2 (rowid, run_id, task, name, value, step)
            SELECT rowid, run_id, task, name, value, step FROM metrics ORDER BY rowid;
        DROP TABLE metrics;
        ALTER TABLE metrics_v2 RENAME TO metrics;
        CREATE INDEX metrics_by_run ON metrics(run_id, task);",
    // Who executes a run now (see `lease.rs`); taken before the run's row exists.
    "CREATE TABLE run_leases (
            run_id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            since TEXT NOT NULL,
            renewed_at TEXT NOT NULL
        );",
    // Tuning experiments and their trials.
    experiments::SQLITE_MIGRATION,
    // Keyset paging of the runs list (`runs_page`).
    crate::run_list::SQLITE_MIGRATION,
];

/// What Weft records about runs, whatever database holds it: SQLite in a file by default,
/// PostgreSQL when configured (the `postgres` feature). Every method is one statement or one
/// transaction, so a crash leaves either the old or the new record.
pub trait Metadata: Send + Sync {
    fn create_run(&self, run: &RunRecord, tasks: &[String]) -> Result<()>;
    fn finish_run(&self, run: &str, state: &str, error: Option<&str>) -> Result<()>;
    fn reopen_run(&self, run: &str) -> Result<()>;
    /// Adds a task row discovered while running (an iteration of a parallelFor), if absent.
    fn add_task(&self, run: &str, task: &str) -> Result<()>;
    /// Moves a task to RUNNING for `attempt`.
    fn start_task(
        &self,
        run: &str,
        task: &str,
        attempt: u32,
        component_digest: &str,
        log_path: &str,
    ) -> Result<()>;
    /// Sets a terminal state that carries no outputs (FAILED, NOT_TRIGGERED, CANCELLED) or
    /// resets a task to PENDING.
    fn set_task_state(
        &self,
        run: &str,
        task: &str,
        state: TaskState,
        error: Option<&str>,
    ) -> Result<()>;
    /// Records a succeeded (or cache-skipped) task with everything it produced, atomically.
    /// The output artifacts must already be in the artifact store.
    fn complete_task(&self, run: &str, task: &str, done: &TaskCompletion) -> Result<()>;
    /// Records an artifact that entered the store from outside a task (a pipeline input).
    fn record_artifact(&self, art: &crate::StoredArtifact, artifact_type: &str) -> Result<()>;
    /// The cache entry for `key`, if any.
    fn cache_lookup(&self, key: &str) -> Result<Option<CacheEntry>>;
    /// Drops a cache entry whose artifacts are gone, so it is never hit again.
    fn cache_forget(&self, key: &str) -> Result<()>;
    fn run(&self, id: &str) -> Result<RunRecord>;
    /// Runs, newest first.
    fn runs(&self, limit: usize) -> Result<Vec<RunRecord>>;
    /// One page of runs, newest first, filtered as `q` says.
    fn runs_page(&self, q: &crate::RunQuery) -> Result<Vec<RunRecord>>;
    /// A run's tasks, in the order they were added.
    fn tasks(&self, run: &str) -> Result<Vec<TaskRecord>>;
    /// Artifact events of a run (or of every run when `run` is `None`).
    fn events(&self, run: Option<&str>) -> Result<Vec<ArtifactEvent>>;
    /// Every event that touches the artifact `digest`: who produced it, who consumed it.
    fn lineage(&self, digest: &str) -> Result<Vec<ArtifactEvent>>;
    /// All artifacts recorded: (digest, type, bytes, files).
    fn artifacts(&self) -> Result<Vec<(String, String, u64, u64)>>;
    fn metrics(&self, run: &str) -> Result<Vec<MetricRecord>>;
    /// The lease on `run`, if anyone holds it (see [`crate::RunLease`]).
    fn lease_get(&self, run: &str) -> Result<Option<crate::Lease>>;
    /// Stores `lease` for `run` if the current holder is `expected` (`None`: nobody): a
    /// compare-and-swap. False when someone else got there first.
    fn lease_put(&self, run: &str, lease: &crate::Lease, expected: Option<&str>) -> Result<bool>;
    /// Moves the renewal time of `owner`'s lease on `run`; false when it no longer holds it.
    fn lease_renew(&self, run: &str, owner: &str, at: &str) -> Result<bool>;
    /// Gives `owner`'s lease on `run` back (nothing when it no longer holds it).
    fn lease_release(&self, run: &str, owner: &str) -> Result<()>;
    /// Records a tuning experiment, or updates every field of the one named so but its name
    /// and `created_at`.
    fn put_experiment(&self, e: &ExperimentRecord) -> Result<()>;
    fn experiment(&self, name: &str) -> Result<Option<ExperimentRecord>>;
    /// Experiments, oldest first.
    fn experiments(&self) -> Result<Vec<ExperimentRecord>>;
    /// Records a trial, or updates its state, objective, observation, `finished_at`, message
    /// and run (keyed by experiment and name). A NaN objective is stored as none. For an
    /// experiment the store does not have: [`StoreError::NoExperiment`].
    fn put_trial(&self, t: &TrialRecord) -> Result<()>;
    /// An experiment's trials, by `seq`.
    fn trials(&self, experiment: &str) -> Result<Vec<TrialRecord>>;
    /// Deletes the experiment and its trials, atomically (their runs stay); nothing when
    /// there is no such experiment.
    fn delete_experiment(&self, name: &str) -> Result<()>;
}

/// The metadata store of a process: [`Metadata`] in whichever database it was opened on.
pub struct MetadataStore(Box<dyn Metadata>);

impl std::ops::Deref for MetadataStore {
    type Target = dyn Metadata;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl MetadataStore {
    /// SQLite in the file `path` (made if absent).
    pub fn open(path: &Path) -> Result<Self> {
        Ok(MetadataStore(Box::new(SqliteMetadata::open(path)?)))
    }

    /// `postgres://` (or `postgresql://`) URLs name a PostgreSQL database (a build with the
    /// `postgres` feature); anything else is a SQLite file path.
    pub fn connect(location: &str) -> Result<Self> {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            #[cfg(feature = "postgres")]
            return Ok(MetadataStore(Box::new(
                crate::metadata_pg::PostgresMetadata::connect(location)?,
            )));
            #[cfg(not(feature = "postgres"))]
            return Err(StoreError::Invalid(
                "metadata in PostgreSQL needs a build with the `postgres` feature".into(),
            ));
        }
        Self::open(Path::new(location))
    }
}

/// The SQLite metadata store. One writer connection; WAL mode so readers (`wasm-run runs list`
/// while a run is going) never block it.
pub struct SqliteMetadata {
    conn: Mutex<Connection>,
    /// For messages.
    path: std::path::PathBuf,
}

/// A task state read from the database that no version of Weft writes: an error, not a guess
/// (reading it as PENDING would run a finished task again).
pub(crate) fn unknown_state(text: &str) -> String {
    format!(
        "a task's state is `{}`, which this version of Weft does not know",
        crate::text_shown(text)
    )
}

/// `e`, or when it says the database file is damaged, that with the file and what to do.
fn damaged(path: &Path, e: StoreError) -> StoreError {
    match e {
        StoreError::Sql(rusqlite::Error::SqliteFailure(f, _))
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
            ) =>
        {
            StoreError::Unusable(format!(
                "{}: the database is damaged ({}); restore it from a backup, or move it aside \
                 to start a new history (the artifact store is kept)",
                path.display(),
                rusqlite::Error::SqliteFailure(f, None)
            ))
        }
        other => other,
    }
}

/// The current time as RFC 3339 with microseconds (sorts as text).
pub fn now() -> String {
    humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string()
}

impl SqliteMetadata {
    pub fn open(path: &Path) -> Result<Self> {
        Ok(SqliteMetadata {
            conn: Mutex::new(open_connection(path)?),
            path: path.to_path_buf(),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        f(&mut self.conn.lock().unwrap()).map_err(|e| damaged(&self.path, e.into()))
    }
}

/// A connection to the SQLite metadata database at `path` (made if absent), its schema
/// current: the metadata store's, and the model registry's (`registry.rs`).
pub(crate) fn open_connection(path: &Path) -> Result<Connection> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // SQLite takes an empty file for a new database: a history truncated to 0 bytes would
    // silently start over. Only a file that does not exist yet is a new store.
    // (Another process creating the store right now leaves it empty for a moment: wait
    // for its first write before calling it truncated.)
    let empty = || std::fs::metadata(path).is_ok_and(|m| m.len() == 0);
    let mut waited = 0;
    while empty() && waited < 100 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        waited += 1;
    }
    if empty() {
        return Err(StoreError::Unusable(format!(
            "{}: the database is empty (0 bytes), so the runs it recorded are gone; \
             restore it from a backup, or remove it to start a new history",
            path.display()
        )));
    }
    let corrupt = |e: StoreError| damaged(path, e);
    let mut conn = Connection::open(path).map_err(|e| corrupt(e.into()))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // Processes opening a fresh store at once (a run starting while `runs list` looks) race:
    // SQLite answers some of them "busy" without waiting (switching to WAL), and the loser of
    // the first migration fails on tables the winner made. Retrying the whole set-up settles
    // both: the retry finds WAL on and the schema current, with nothing left to do.
    let mut attempt = 0;
    loop {
        match init(&mut conn).map_err(corrupt) {
            Ok(()) => break,
            Err(e @ StoreError::Unusable(_)) => return Err(e),
            // Up to 10 s: on a loaded machine eight openers of a fresh store took over 2 s.
            Err(e) if attempt < 500 => {
                tracing::debug!(error = %e, "store set-up raced another process; retrying");
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(conn)
}

impl Metadata for SqliteMetadata {
    fn create_run(&self, run: &RunRecord, tasks: &[String]) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO runs (id, pipeline, pipeline_file, plan_json, state, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![run.id, run.pipeline, run.pipeline_file, run.plan_json, run.state, run.created_at],
            )?;
            for t in tasks {
                tx.execute("INSERT INTO tasks (run_id, name, state) VALUES (?1, ?2, 'PENDING')", params![run.id, t])?;
            }
            tx.commit()
        })
    }

    fn finish_run(&self, run: &str, state: &str, error: Option<&str>) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE runs SET state = ?2, finished_at = ?3, error = ?4 WHERE id = ?1",
                params![run, state, now(), error],
            )
            .map(|_| ())
        })
    }

    fn reopen_run(&self, run: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE runs SET state = 'RUNNING', finished_at = NULL, error = NULL WHERE id = ?1",
                params![run],
            )
            .map(|_| ())
        })
    }

    /// Adds a task row discovered while running (an iteration of a parallelFor), if absent.
    fn add_task(&self, run: &str, task: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO tasks (run_id, name, state) VALUES (?1, ?2, 'PENDING')",
                params![run, task],
            )
            .map(|_| ())
        })
    }

    /// Moves a task to RUNNING for `attempt`.
    fn start_task(
        &self,
        run: &str,
        task: &str,
        attempt: u32,
        component_digest: &str,
        log_path: &str,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE tasks SET state = 'RUNNING', attempt = ?3, component_digest = ?4, log_path = ?5, started_at = ?6, error = NULL
                 WHERE run_id = ?1 AND name = ?2",
                params![run, task, attempt, component_digest, log_path, now()],
            )
            .map(|_| ())
        })
    }

    /// Sets a terminal state that carries no outputs (FAILED, NOT_TRIGGERED, CANCELLED) or resets
    /// a task to PENDING.
    fn set_task_state(
        &self,
        run: &str,
        task: &str,
        state: TaskState,
        error: Option<&str>,
    ) -> Result<()> {
        let finished = state.is_terminal().then(now);
        self.with(|c| {
            c.execute(
                "UPDATE tasks SET state = ?3, error = ?4, finished_at = ?5 WHERE run_id = ?1 AND name = ?2",
                params![run, task, state.as_str(), error, finished],
            )
            .map(|_| ())
        })
    }

    /// Records a succeeded (or cache-skipped) task with everything it produced, atomically.
    /// The output artifacts must already be in the artifact store.
    fn complete_task(&self, run: &str, task: &str, done: &TaskCompletion) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            let ts = now();
            for (name, art, ty) in &done.outputs {
                tx.execute(
                    "INSERT OR IGNORE INTO artifacts (digest, artifact_type, bytes, files, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![art.digest, ty, art.bytes, art.files, ts],
                )?;
                tx.execute(
                    "INSERT INTO events (run_id, task, name, digest, direction, artifact_type) VALUES (?1, ?2, ?3, ?4, 'output', ?5)",
                    params![run, task, name, art.digest, ty],
                )?;
            }
            for (name, digest, ty) in &done.inputs {
                tx.execute(
                    "INSERT INTO events (run_id, task, name, digest, direction, artifact_type) VALUES (?1, ?2, ?3, ?4, 'input', ?5)",
                    params![run, task, name, digest, ty],
                )?;
            }
            for m in &done.metrics {
                tx.execute(
                    "INSERT INTO metrics (run_id, task, name, value, step) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![run, task, m.name, sql_metric(m.value), m.step.map(|s| s as i64)],
                )?;
            }
            if let (Some(key), TaskState::Succeeded) = (&done.cache_key, done.state) {
                let artifacts: Vec<(&str, &str)> =
                    done.outputs.iter().map(|(n, a, _)| (n.as_str(), a.digest.as_str())).collect();
                tx.execute(
                    "INSERT OR REPLACE INTO cache (key, run_id, task, outputs_json, artifacts_json, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![key, run, task, done.outputs_json, serde_json::to_string(&artifacts).unwrap(), ts],
                )?;
            }
            tx.execute(
                "UPDATE tasks SET state = ?3, outputs_json = ?4, cache_key = ?5, cached_from = ?6, finished_at = ?7, duration_ms = ?8,
                        log_path = COALESCE(?9, log_path), error = NULL
                 WHERE run_id = ?1 AND name = ?2",
                params![run, task, done.state.as_str(), done.outputs_json, done.cache_key, done.cached_from, ts, done.duration_ms, done.log_path],
            )?;
            tx.commit()
        })
    }

    /// Records an artifact that entered the store from outside a task (a pipeline input).
    fn record_artifact(&self, art: &crate::StoredArtifact, artifact_type: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO artifacts (digest, artifact_type, bytes, files, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![art.digest, artifact_type, art.bytes, art.files, now()],
            )
            .map(|_| ())
        })
    }

    /// The cache entry for `key`, if any.
    fn cache_lookup(&self, key: &str) -> Result<Option<CacheEntry>> {
        let row = self.with(|c| {
            c.query_row(
                "SELECT run_id, task, outputs_json, artifacts_json FROM cache WHERE key = ?1",
                params![key],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                },
            )
            .optional()
        })?;
        Ok(match row {
            Some((run_id, task, outputs_json, artifacts)) => Some(CacheEntry {
                run_id,
                task,
                outputs_json,
                artifacts: serde_json::from_str(&artifacts)?,
            }),
            None => None,
        })
    }

    /// Drops a cache entry whose artifacts are gone, so it is never hit again.
    fn cache_forget(&self, key: &str) -> Result<()> {
        self.with(|c| {
            c.execute("DELETE FROM cache WHERE key = ?1", params![key])
                .map(|_| ())
        })
    }

    fn run(&self, id: &str) -> Result<RunRecord> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
                params![id],
                |r| rows::run(r),
            )
            .optional()
        })?
        .ok_or_else(|| StoreError::NoRun(id.to_string()))
    }

    /// Runs, newest first.
    fn runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        self.with(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs ORDER BY created_at DESC, rowid DESC LIMIT ?1"
            ))?;
            let rows = st.query_map(params![limit as i64], |r| rows::run(r))?;
            rows.collect()
        })
    }

    fn runs_page(&self, q: &crate::RunQuery) -> Result<Vec<RunRecord>> {
        let (time, id) = q.before.clone().unzip();
        self.with(|c| {
            let mut st = c.prepare(&crate::run_list::sql(RUN_COLUMNS, |n| format!("?{n}")))?;
            let rows = st.query_map(
                params![q.state, q.pipeline, q.experiment, time, id, q.limit],
                |r| rows::run(r),
            )?;
            rows.collect()
        })
    }

    fn tasks(&self, run: &str) -> Result<Vec<TaskRecord>> {
        self.with(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE run_id = ?1 ORDER BY rowid"
            ))?;
            let rows = st.query_map(params![run], |r| rows::task(r))?;
            rows.collect()
        })
    }

    fn events(&self, run: Option<&str>) -> Result<Vec<ArtifactEvent>> {
        self.with(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE ?1 IS NULL OR run_id = ?1 ORDER BY id"
            ))?;
            let rows = st.query_map(params![run], |r| rows::event(r))?;
            rows.collect()
        })
    }

    /// Every event that touches the artifact `digest`: who produced it, who consumed it.
    fn lineage(&self, digest: &str) -> Result<Vec<ArtifactEvent>> {
        self.with(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE digest = ?1 ORDER BY id"
            ))?;
            let rows = st.query_map(params![digest], |r| rows::event(r))?;
            rows.collect()
        })
    }

    /// All artifacts recorded, with size.
    fn artifacts(&self) -> Result<Vec<(String, String, u64, u64)>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT digest, artifact_type, bytes, files FROM artifacts ORDER BY created_at, digest")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            rows.collect()
        })
    }

    fn metrics(&self, run: &str) -> Result<Vec<MetricRecord>> {
        self.with(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {METRIC_COLUMNS} FROM metrics WHERE run_id = ?1 ORDER BY rowid"
            ))?;
            let rows = st.query_map(params![run], |r| rows::metric(r))?;
            rows.collect()
        })
    }

    fn lease_get(&self, run: &str) -> Result<Option<crate::Lease>> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {LEASE_COLUMNS} FROM run_leases WHERE run_id = ?1"),
                params![run],
                |r| rows::lease(r),
            )
            .optional()
        })
    }

    fn lease_put(&self, run: &str, l: &crate::Lease, expected: Option<&str>) -> Result<bool> {
        self.with(|c| {
            let changed = match expected {
                None => c.execute(
                    "INSERT INTO run_leases (run_id, owner, host, pid, since, renewed_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (run_id) DO NOTHING",
                    params![run, l.owner, l.host, l.pid, l.since, l.renewed_at],
                )?,
                Some(old) => c.execute(
                    "UPDATE run_leases SET owner = ?2, host = ?3, pid = ?4, since = ?5, renewed_at = ?6
                     WHERE run_id = ?1 AND owner = ?7",
                    params![run, l.owner, l.host, l.pid, l.since, l.renewed_at, old],
                )?,
            };
            Ok(changed == 1)
        })
    }

    fn lease_renew(&self, run: &str, owner: &str, at: &str) -> Result<bool> {
        self.with(|c| {
            c.execute(
                "UPDATE run_leases SET renewed_at = ?3 WHERE run_id = ?1 AND owner = ?2",
                params![run, owner, at],
            )
            .map(|n| n == 1)
        })
    }

    fn lease_release(&self, run: &str, owner: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "DELETE FROM run_leases WHERE run_id = ?1 AND owner = ?2",
                params![run, owner],
            )
            .map(drop)
        })
    }

    fn put_experiment(&self, e: &ExperimentRecord) -> Result<()> {
        self.with(|c| experiments::put_experiment(c, e))
    }

    fn experiment(&self, name: &str) -> Result<Option<ExperimentRecord>> {
        self.with(|c| experiments::experiment(c, name))
    }

    fn experiments(&self) -> Result<Vec<ExperimentRecord>> {
        self.with(|c| experiments::experiments(c))
    }

    fn put_trial(&self, t: &TrialRecord) -> Result<()> {
        self.with(|c| experiments::put_trial(c, t))
            .map_err(|e| experiments::unknown_experiment(e, &t.experiment))
    }

    fn trials(&self, experiment: &str) -> Result<Vec<TrialRecord>> {
        self.with(|c| experiments::trials(c, experiment))
    }

    fn delete_experiment(&self, name: &str) -> Result<()> {
        self.with(|c| experiments::delete_experiment(c, name))
    }
}

/// A metric value as SQLite holds it: NULL for NaN (which SQLite would turn into NULL anyway;
/// said here so that reading it back is not a surprise), the value itself otherwise, infinities
/// included.
fn sql_metric(value: f64) -> Option<f64> {
    (!value.is_nan()).then_some(value)
}

#[cfg(test)]
mod state_names {
    use super::*;
    use strum::VariantArray;

    /// The stored names, serde's and strum's, agree, and each parses back.
    #[test]
    fn every_state_round_trips_through_its_one_name() {
        for state in TaskState::VARIANTS {
            let serde_name = serde_json::to_value(state).unwrap();
            assert_eq!(serde_name, state.as_str(), "{state:?}");
            assert_eq!(TaskState::parse(state.as_str()), Some(*state));
        }
        assert_eq!(TaskState::NotTriggered.as_str(), "NOT_TRIGGERED");
        assert_eq!(TaskState::parse("BOGUS"), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_opening_a_fresh_store_at_once_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| MetadataStore::open(&path).map(|_| ())))
                .collect();
            for h in handles {
                h.join().unwrap().unwrap();
            }
        });
    }

    #[test]
    fn migrations_are_valid() {
        migrations().validate().unwrap();
    }

    /// A store made before metrics could be NaN migrates and keeps its metrics, in order.
    #[test]
    fn a_store_from_before_nan_metrics_migrates_and_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let mut old = Connection::open(&path).unwrap();
        Migrations::new(vec![M::up(MIGRATIONS[0])])
            .to_latest(&mut old)
            .unwrap();
        for (name, value, step) in [
            ("loss", 0.5, Some(1)),
            ("acc", 0.9, None),
            ("loss", 0.25, Some(2)),
        ] {
            old.execute(
                "INSERT INTO metrics (run_id, task, name, value, step) VALUES ('r', 't', ?1, ?2, ?3)",
                params![name, value, step],
            )
            .unwrap();
        }
        drop(old);
        let db = MetadataStore::open(&path).unwrap();
        let kept: Vec<(String, f64, Option<u64>)> = db
            .metrics("r")
            .unwrap()
            .into_iter()
            .map(|m| (m.name, m.value, m.step))
            .collect();
        assert_eq!(
            kept,
            [
                ("loss".into(), 0.5, Some(1)),
                ("acc".into(), 0.9, None),
                ("loss".into(), 0.25, Some(2))
            ]
        );
        // And takes NaN from now on.
        let nan = MetricRecord {
            task: "t".into(),
            name: "loss".into(),
            value: f64::NAN,
            step: Some(3),
        };
        let done = TaskCompletion {
            state: TaskState::Succeeded,
            outputs_json: "{}".into(),
            inputs: vec![],
            outputs: vec![],
            metrics: vec![nan],
            cache_key: None,
            cached_from: None,
            duration_ms: 1.0,
            log_path: None,
        };
        db.complete_task("r", "t", &done).unwrap();
        assert!(db.metrics("r").unwrap()[3].value.is_nan());
    }
}
