//! Rows to records, written once for both databases: each backend says how to read a column
//! of its row type ([`Columns`]), and the mapping of every record (which column is which
//! field, NULL metric values as NaN, unknown task states as errors) lives here alone.

use crate::metadata::{
    unknown_state, ArtifactEvent, MetricRecord, RunRecord, TaskRecord, TaskState,
};
use crate::{ExperimentRecord, Lease, TrialRecord};

/// The columns of one result row, read by position.
pub(crate) trait Columns {
    type Error;
    fn text(&self, i: usize) -> Result<String, Self::Error>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, Self::Error>;
    /// An integer column of any width.
    fn int(&self, i: usize) -> Result<i64, Self::Error>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, Self::Error>;
    fn opt_float(&self, i: usize) -> Result<Option<f64>, Self::Error>;
    /// A column whose value is not one this version of Weft writes.
    fn invalid(i: usize, message: String) -> Self::Error;
}

/// `SELECT` lists matching the mappings below.
pub(crate) const RUN_COLUMNS: &str =
    "id, pipeline, pipeline_file, plan_json, state, created_at, finished_at, error";
pub(crate) const TASK_COLUMNS: &str = "run_id, name, state, attempt, component_digest, cache_key, \
     cached_from, started_at, finished_at, duration_ms, error, outputs_json, log_path";
pub(crate) const EVENT_COLUMNS: &str = "run_id, task, name, digest, direction, artifact_type";
pub(crate) const METRIC_COLUMNS: &str = "task, name, value, step";
pub(crate) const LEASE_COLUMNS: &str = "owner, host, pid, since, renewed_at";
pub(crate) const EXPERIMENT_COLUMNS: &str =
    "name, spec_json, state, created_at, finished_at, message";
pub(crate) const TRIAL_COLUMNS: &str = "experiment, name, seq, run_id, assignment_json, state, \
     objective, observation_json, created_at, finished_at, message";

pub(crate) fn run<C: Columns>(r: &C) -> Result<RunRecord, C::Error> {
    Ok(RunRecord {
        id: r.text(0)?,
        pipeline: r.text(1)?,
        pipeline_file: r.text(2)?,
        plan_json: r.text(3)?,
        state: r.text(4)?,
        created_at: r.text(5)?,
        finished_at: r.opt_text(6)?,
        error: r.opt_text(7)?,
    })
}

pub(crate) fn task<C: Columns>(r: &C) -> Result<TaskRecord, C::Error> {
    let state = r.text(2)?;
    Ok(TaskRecord {
        run_id: r.text(0)?,
        name: r.text(1)?,
        state: TaskState::parse(&state).ok_or_else(|| C::invalid(2, unknown_state(&state)))?,
        attempt: u32::try_from(r.int(3)?)
            .map_err(|_| C::invalid(3, "a task's attempt is out of range".into()))?,
        component_digest: r.opt_text(4)?,
        cache_key: r.opt_text(5)?,
        cached_from: r.opt_text(6)?,
        started_at: r.opt_text(7)?,
        finished_at: r.opt_text(8)?,
        duration_ms: r.opt_float(9)?,
        error: r.opt_text(10)?,
        outputs_json: r.opt_text(11)?,
        log_path: r.opt_text(12)?,
    })
}

pub(crate) fn event<C: Columns>(r: &C) -> Result<ArtifactEvent, C::Error> {
    Ok(ArtifactEvent {
        run_id: r.text(0)?,
        task: r.text(1)?,
        name: r.text(2)?,
        digest: r.text(3)?,
        direction: r.text(4)?,
        artifact_type: r.text(5)?,
    })
}

/// A metric; NULL is NaN (SQLite cannot store NaN in a REAL: it binds it as NULL).
pub(crate) fn metric<C: Columns>(r: &C) -> Result<MetricRecord, C::Error> {
    Ok(MetricRecord {
        task: r.text(0)?,
        name: r.text(1)?,
        value: r.opt_float(2)?.unwrap_or(f64::NAN),
        step: r.opt_int(3)?.map(|s| s as u64),
    })
}

pub(crate) fn lease<C: Columns>(r: &C) -> Result<Lease, C::Error> {
    Ok(Lease {
        owner: r.text(0)?,
        host: r.text(1)?,
        pid: u32::try_from(r.int(2)?).unwrap_or(0),
        since: r.text(3)?,
        renewed_at: r.text(4)?,
    })
}

pub(crate) fn experiment<C: Columns>(r: &C) -> Result<ExperimentRecord, C::Error> {
    Ok(ExperimentRecord {
        name: r.text(0)?,
        spec_json: r.text(1)?,
        state: r.text(2)?,
        created_at: r.text(3)?,
        finished_at: r.opt_text(4)?,
        message: r.opt_text(5)?,
    })
}

/// A trial; a NULL objective is none (a NaN one is stored as NULL: see `experiments.rs`).
pub(crate) fn trial<C: Columns>(r: &C) -> Result<TrialRecord, C::Error> {
    Ok(TrialRecord {
        experiment: r.text(0)?,
        name: r.text(1)?,
        seq: u32::try_from(r.int(2)?)
            .map_err(|_| C::invalid(2, "a trial's seq is out of range".into()))?,
        run_id: r.text(3)?,
        assignment_json: r.text(4)?,
        state: r.text(5)?,
        objective: r.opt_float(6)?,
        observation_json: r.opt_text(7)?,
        created_at: r.text(8)?,
        finished_at: r.opt_text(9)?,
        message: r.opt_text(10)?,
    })
}

impl Columns for rusqlite::Row<'_> {
    type Error = rusqlite::Error;
    fn text(&self, i: usize) -> rusqlite::Result<String> {
        self.get(i)
    }
    fn opt_text(&self, i: usize) -> rusqlite::Result<Option<String>> {
        self.get(i)
    }
    fn int(&self, i: usize) -> rusqlite::Result<i64> {
        self.get(i)
    }
    fn opt_int(&self, i: usize) -> rusqlite::Result<Option<i64>> {
        self.get(i)
    }
    fn opt_float(&self, i: usize) -> rusqlite::Result<Option<f64>> {
        self.get(i)
    }
    fn invalid(i: usize, message: String) -> rusqlite::Error {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, message.into())
    }
}

#[cfg(feature = "postgres")]
impl Columns for sqlx::postgres::PgRow {
    type Error = sqlx::Error;
    fn text(&self, i: usize) -> sqlx::Result<String> {
        sqlx::Row::try_get(self, i)
    }
    fn opt_text(&self, i: usize) -> sqlx::Result<Option<String>> {
        sqlx::Row::try_get(self, i)
    }
    /// PostgreSQL keeps widths apart (INTEGER is 32 bits, BIGINT 64): either reads.
    fn int(&self, i: usize) -> sqlx::Result<i64> {
        sqlx::Row::try_get::<i64, _>(self, i)
            .or_else(|_| sqlx::Row::try_get::<i32, _>(self, i).map(i64::from))
    }
    fn opt_int(&self, i: usize) -> sqlx::Result<Option<i64>> {
        sqlx::Row::try_get::<Option<i64>, _>(self, i)
            .or_else(|_| sqlx::Row::try_get::<Option<i32>, _>(self, i).map(|v| v.map(i64::from)))
    }
    fn opt_float(&self, i: usize) -> sqlx::Result<Option<f64>> {
        sqlx::Row::try_get(self, i)
    }
    fn invalid(_: usize, message: String) -> sqlx::Error {
        sqlx::Error::Decode(message.into())
    }
}
