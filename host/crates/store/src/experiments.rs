//! Tuning experiments and their trials (issue 15): the records, and their SQL for SQLite
//! (PostgreSQL's mirrors it in `metadata_pg.rs`). An experiment's spec is kept as the JSON of
//! `weft_spec::experiment::Experiment`, opaque here; each trial is one run of the trial
//! template with one assignment of the parameters, and references its experiment.
//!
//! An objective that is NaN is stored as no objective: read back, it is `None`, on both
//! backends (SQLite binds NaN as NULL; PostgreSQL could hold it, but is told NULL too so that
//! the two agree). The infinities are kept.

use crate::rows::{self, EXPERIMENT_COLUMNS, TRIAL_COLUMNS};
use crate::StoreError;
use rusqlite::{params, Connection, OptionalExtension};

/// A tuning experiment as recorded: its spec (JSON of weft_spec::experiment::Experiment, opaque
/// here), its state and why.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ExperimentRecord {
    pub name: String,
    pub spec_json: String,
    /// `Created`, `Running`, `Succeeded`, `Failed` or `Cancelled`: free text here.
    pub state: String,
    pub created_at: String,
    pub finished_at: Option<String>,
    pub message: Option<String>,
}

/// One trial of an experiment.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TrialRecord {
    pub experiment: String,
    /// E.g. `exp-00003`; unique within its experiment.
    pub name: String,
    /// Order of creation within the experiment, 0-based.
    pub seq: u32,
    pub run_id: String,
    pub assignment_json: String,
    /// `Pending`, `Running`, `Succeeded`, `Failed`, `EarlyStopped`, `MetricsUnavailable` or
    /// `Cancelled`: free text here.
    pub state: String,
    /// The objective metric's value; a NaN is stored as `None` (see the module's doc).
    pub objective: Option<f64>,
    pub observation_json: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
    pub message: Option<String>,
}

/// The SQLite migration that adds the tables (appended to `metadata::MIGRATIONS`). A trial's
/// run is not a foreign key: a trial is recorded before its run exists, and deleting an
/// experiment keeps its runs.
pub(crate) const SQLITE_MIGRATION: &str = "CREATE TABLE experiments (
            name TEXT PRIMARY KEY,
            spec_json TEXT NOT NULL,
            state TEXT NOT NULL,
            created_at TEXT NOT NULL,
            finished_at TEXT,
            message TEXT
        );
        CREATE TABLE trials (
            experiment TEXT NOT NULL REFERENCES experiments(name),
            name TEXT NOT NULL,
            seq INTEGER NOT NULL,
            run_id TEXT NOT NULL,
            assignment_json TEXT NOT NULL,
            state TEXT NOT NULL,
            objective REAL,
            observation_json TEXT,
            created_at TEXT NOT NULL,
            finished_at TEXT,
            message TEXT,
            PRIMARY KEY (experiment, name)
        );
        CREATE INDEX trials_by_seq ON trials(experiment, seq);";

/// An objective as both stores hold it: NaN is no objective.
pub(crate) fn stored_objective(objective: Option<f64>) -> Option<f64> {
    objective.filter(|v| !v.is_nan())
}

/// A foreign key failure of `put_trial` (trials have one: their experiment) as the error that
/// names the experiment; anything else as it is.
pub(crate) fn unknown_experiment(e: StoreError, experiment: &str) -> StoreError {
    match e {
        StoreError::Sql(rusqlite::Error::SqliteFailure(f, _))
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
        {
            StoreError::NoExperiment(experiment.to_string())
        }
        other => other,
    }
}

pub(crate) fn put_experiment(c: &Connection, e: &ExperimentRecord) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO experiments (name, spec_json, state, created_at, finished_at, message)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (name) DO UPDATE SET spec_json = excluded.spec_json, state = excluded.state,
            finished_at = excluded.finished_at, message = excluded.message",
        params![
            e.name,
            e.spec_json,
            e.state,
            e.created_at,
            e.finished_at,
            e.message
        ],
    )
    .map(drop)
}

pub(crate) fn experiment(c: &Connection, name: &str) -> rusqlite::Result<Option<ExperimentRecord>> {
    c.query_row(
        &format!("SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE name = ?1"),
        params![name],
        |r| rows::experiment(r),
    )
    .optional()
}

/// Oldest first (ties in the order they were recorded).
pub(crate) fn experiments(c: &Connection) -> rusqlite::Result<Vec<ExperimentRecord>> {
    let mut st = c.prepare(&format!(
        "SELECT {EXPERIMENT_COLUMNS} FROM experiments ORDER BY created_at, rowid"
    ))?;
    let rows = st.query_map([], |r| rows::experiment(r))?;
    rows.collect()
}

pub(crate) fn put_trial(c: &Connection, t: &TrialRecord) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO trials (experiment, name, seq, run_id, assignment_json, state, objective,
            observation_json, created_at, finished_at, message)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (experiment, name) DO UPDATE SET state = excluded.state,
            objective = excluded.objective, observation_json = excluded.observation_json,
            finished_at = excluded.finished_at, message = excluded.message,
            run_id = excluded.run_id",
        params![
            t.experiment,
            t.name,
            t.seq,
            t.run_id,
            t.assignment_json,
            t.state,
            stored_objective(t.objective),
            t.observation_json,
            t.created_at,
            t.finished_at,
            t.message
        ],
    )
    .map(drop)
}

/// By `seq` (then name, should two share one).
pub(crate) fn trials(c: &Connection, experiment: &str) -> rusqlite::Result<Vec<TrialRecord>> {
    let mut st = c.prepare(&format!(
        "SELECT {TRIAL_COLUMNS} FROM trials WHERE experiment = ?1 ORDER BY seq, name"
    ))?;
    let rows = st.query_map(params![experiment], |r| rows::trial(r))?;
    rows.collect()
}

/// The experiment and its trials, in one transaction; nothing when there is none.
pub(crate) fn delete_experiment(c: &mut Connection, name: &str) -> rusqlite::Result<()> {
    let tx = c.transaction()?;
    tx.execute("DELETE FROM trials WHERE experiment = ?1", params![name])?;
    tx.execute("DELETE FROM experiments WHERE name = ?1", params![name])?;
    tx.commit()
}

#[cfg(test)]
mod tests {
    use crate::metadata::MIGRATIONS;
    use crate::*;
    use rusqlite_migration::{Migrations, M};

    /// A store made before experiments (the migrations up to the leases) gets the tables, and
    /// keeps what it had.
    #[test]
    fn a_store_from_before_experiments_gets_the_tables() {
        let index = MIGRATIONS
            .iter()
            .position(|m| *m == super::SQLITE_MIGRATION)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let mut old = rusqlite::Connection::open(&path).unwrap();
        Migrations::new(MIGRATIONS[..index].iter().map(|m| M::up(m)).collect())
            .to_latest(&mut old)
            .unwrap();
        old.execute(
            "INSERT INTO runs (id, pipeline, pipeline_file, plan_json, state, created_at)
             VALUES ('r', 'p', 'p.yaml', '{}', 'SUCCEEDED', '2026-01-01T00:00:00Z')",
            [],
        )
        .unwrap();
        drop(old);
        let db = MetadataStore::open(&path).unwrap();
        assert_eq!(db.run("r").unwrap().state, RUN_SUCCEEDED);
        assert!(db.experiments().unwrap().is_empty());
        let e = ExperimentRecord {
            name: "e".into(),
            spec_json: "{}".into(),
            state: "Created".into(),
            created_at: now(),
            finished_at: None,
            message: None,
        };
        db.put_experiment(&e).unwrap();
        assert_eq!(db.experiments().unwrap(), [e]);
    }
}
