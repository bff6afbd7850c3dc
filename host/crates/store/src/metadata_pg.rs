//! Run metadata in PostgreSQL (sqlx), for installs where several runners and the operator's
//! users share one record, or where the record must outlive any one volume. The schema and
//! every statement mirror the SQLite store's (`metadata.rs`), with an explicit `seq` column
//! where SQLite orders by rowid; migrations run through sqlx's migrator (locked, checksummed)
//! when the store connects.
//!
//! The [`Metadata`] API is synchronous (the executor calls it from blocking threads and from
//! its async loop alike), so the store owns a small tokio runtime and runs each statement on
//! it: directly from plain threads, from a scoped helper thread where the caller is already
//! inside a runtime (where blocking on another would panic).

use crate::experiments::{stored_objective, ExperimentRecord, TrialRecord};
use crate::metadata::{
    ArtifactEvent, CacheEntry, Metadata, MetricRecord, RunRecord, TaskCompletion, TaskRecord,
    TaskState,
};
use crate::rows::{
    self, EVENT_COLUMNS, EXPERIMENT_COLUMNS, LEASE_COLUMNS, METRIC_COLUMNS, RUN_COLUMNS,
    TASK_COLUMNS, TRIAL_COLUMNS,
};
use crate::{Result, StoreError};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Row;
use std::future::Future;

const SCHEMA: &str = "CREATE TABLE runs (
    seq BIGSERIAL,
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
    seq BIGSERIAL,
    run_id TEXT NOT NULL REFERENCES runs(id),
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    component_digest TEXT,
    cache_key TEXT,
    cached_from TEXT,
    started_at TEXT,
    finished_at TEXT,
    duration_ms DOUBLE PRECISION,
    error TEXT,
    outputs_json TEXT,
    log_path TEXT,
    PRIMARY KEY (run_id, name)
);
CREATE TABLE artifacts (
    digest TEXT PRIMARY KEY,
    artifact_type TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    files BIGINT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
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
    seq BIGSERIAL,
    run_id TEXT NOT NULL,
    task TEXT NOT NULL,
    name TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    step BIGINT
);
CREATE INDEX metrics_by_run ON metrics(run_id, task);
CREATE TABLE cache (
    key TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    task TEXT NOT NULL,
    outputs_json TEXT NOT NULL,
    artifacts_json TEXT NOT NULL,
    created_at TEXT NOT NULL
);";

/// Who executes a run now (see `lease.rs`).
const LEASES: &str = "CREATE TABLE run_leases (
    run_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    since TEXT NOT NULL,
    renewed_at TEXT NOT NULL
);";

/// Tuning experiments and their trials (see `experiments.rs`); `seq` on experiments is the
/// order they were recorded in, on trials the trial's own.
const EXPERIMENTS: &str = "CREATE TABLE experiments (
    seq BIGSERIAL,
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
    seq BIGINT NOT NULL,
    run_id TEXT NOT NULL,
    assignment_json TEXT NOT NULL,
    state TEXT NOT NULL,
    objective DOUBLE PRECISION,
    observation_json TEXT,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    message TEXT,
    PRIMARY KEY (experiment, name)
);
CREATE INDEX trials_by_seq ON trials(experiment, seq);";

fn migrator() -> Migrator {
    let migration = |version, name: &str, sql| {
        Migration::new(
            version,
            name.to_string().into(),
            MigrationType::Simple,
            sqlx::SqlStr::from_static(sql),
            false,
        )
    };
    Migrator::with_migrations(vec![
        migration(1, "weft metadata", SCHEMA),
        migration(2, "run leases", LEASES),
        migration(3, "experiments", EXPERIMENTS),
        migration(4, "runs by creation", crate::run_list::PG_MIGRATION),
        migration(5, "model registry", crate::registry::pg_migration()),
    ])
}

/// The PostgreSQL metadata store.
pub struct PostgresMetadata {
    pool: PgPool,
    /// Always `Some` until dropped.
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for PostgresMetadata {
    fn drop(&mut self) {
        // The store may be dropped inside another runtime, where blocking on this one's
        // shutdown would panic: its connections are closed in the background instead.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl PostgresMetadata {
    /// Connects to `url` (`postgres://user:password@host/db`) and brings the schema up to date.
    pub fn connect(url: &str) -> Result<Self> {
        let (pool, rt) = connect(url)?;
        Ok(PostgresMetadata { pool, rt: Some(rt) })
    }

    fn on<T: Send>(&self, f: impl Future<Output = sqlx::Result<T>> + Send) -> Result<T> {
        Ok(on(self.rt.as_ref().expect("set until dropped"), f)?)
    }
}

/// A pool of connections to `url` on a runtime of its own, the schema brought up to date
/// (the metadata store's and the model registry's tables, one migrator for both).
pub(crate) fn connect(url: &str) -> Result<(PgPool, tokio::runtime::Runtime)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("weft-postgres")
        .enable_all()
        .build()?;
    // One connection first: a wrong address or password fails now, with the server's own
    // message, rather than after the pool's patient retries.
    on(&rt, async {
        use sqlx::Connection;
        sqlx::PgConnection::connect(url).await?.close().await
    })
    .map_err(|e| StoreError::Invalid(format!("metadata database {}: {e}", redact(url))))?;
    let pool = on(&rt, async {
        PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(url)
            .await
    })
    .map_err(|e| StoreError::Invalid(format!("metadata database {}: {e}", redact(url))))?;
    on(&rt, migrator().run(&pool))
        .map_err(|e| StoreError::Invalid(format!("metadata database migration: {e}")))?;
    Ok((pool, rt))
}

/// Runs `f` on `rt` and waits for it, from any thread.
pub(crate) fn on<T: Send>(rt: &tokio::runtime::Runtime, f: impl Future<Output = T> + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return rt.block_on(f);
    }
    std::thread::scope(|s| {
        s.spawn(|| rt.block_on(f))
            .join()
            .expect("a metadata statement panicked")
    })
}

/// `url` without its password, for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

impl Metadata for PostgresMetadata {
    fn create_run(&self, run: &RunRecord, tasks: &[String]) -> Result<()> {
        self.on(async {
            let mut tx = self.pool.begin().await?;
            sqlx::query("INSERT INTO runs (id, pipeline, pipeline_file, plan_json, state, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(&run.id)
                .bind(&run.pipeline)
                .bind(&run.pipeline_file)
                .bind(&run.plan_json)
                .bind(&run.state)
                .bind(&run.created_at)
                .execute(&mut *tx)
                .await?;
            for t in tasks {
                sqlx::query("INSERT INTO tasks (run_id, name, state) VALUES ($1, $2, 'PENDING')")
                    .bind(&run.id)
                    .bind(t)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        })
    }

    fn finish_run(&self, run: &str, state: &str, error: Option<&str>) -> Result<()> {
        self.on(async {
            sqlx::query("UPDATE runs SET state = $2, finished_at = $3, error = $4 WHERE id = $1")
                .bind(run)
                .bind(state)
                .bind(crate::metadata::now())
                .bind(error)
                .execute(&self.pool)
                .await
                .map(|_| ())
        })
    }

    fn reopen_run(&self, run: &str) -> Result<()> {
        self.on(async {
            sqlx::query(
                "UPDATE runs SET state = 'RUNNING', finished_at = NULL, error = NULL WHERE id = $1",
            )
            .bind(run)
            .execute(&self.pool)
            .await
            .map(|_| ())
        })
    }

    fn add_task(&self, run: &str, task: &str) -> Result<()> {
        self.on(async {
            sqlx::query("INSERT INTO tasks (run_id, name, state) VALUES ($1, $2, 'PENDING') ON CONFLICT DO NOTHING")
                .bind(run)
                .bind(task)
                .execute(&self.pool)
                .await
                .map(|_| ())
        })
    }

    fn start_task(
        &self,
        run: &str,
        task: &str,
        attempt: u32,
        component_digest: &str,
        log_path: &str,
    ) -> Result<()> {
        self.on(async {
            sqlx::query(
                "UPDATE tasks SET state = 'RUNNING', attempt = $3, component_digest = $4, log_path = $5, started_at = $6, error = NULL
                 WHERE run_id = $1 AND name = $2",
            )
            .bind(run)
            .bind(task)
            .bind(attempt as i32)
            .bind(component_digest)
            .bind(log_path)
            .bind(crate::metadata::now())
            .execute(&self.pool)
            .await
            .map(|_| ())
        })
    }

    fn set_task_state(
        &self,
        run: &str,
        task: &str,
        state: TaskState,
        error: Option<&str>,
    ) -> Result<()> {
        let finished = state.is_terminal().then(crate::metadata::now);
        self.on(async {
            sqlx::query(
                "UPDATE tasks SET state = $3, error = $4, finished_at = $5 WHERE run_id = $1 AND name = $2",
            )
            .bind(run)
            .bind(task)
            .bind(state.as_str())
            .bind(error)
            .bind(finished)
            .execute(&self.pool)
            .await
            .map(|_| ())
        })
    }

    fn complete_task(&self, run: &str, task: &str, done: &TaskCompletion) -> Result<()> {
        let ts = crate::metadata::now();
        let artifacts: Vec<(&str, &str)> = done
            .outputs
            .iter()
            .map(|(n, a, _)| (n.as_str(), a.digest.as_str()))
            .collect();
        let artifacts_json = serde_json::to_string(&artifacts)?;
        self.on(async {
            let mut tx = self.pool.begin().await?;
            for (name, art, ty) in &done.outputs {
                sqlx::query("INSERT INTO artifacts (digest, artifact_type, bytes, files, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING")
                    .bind(&art.digest)
                    .bind(ty)
                    .bind(art.bytes as i64)
                    .bind(art.files as i64)
                    .bind(&ts)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("INSERT INTO events (run_id, task, name, digest, direction, artifact_type) VALUES ($1, $2, $3, $4, 'output', $5)")
                    .bind(run)
                    .bind(task)
                    .bind(name)
                    .bind(&art.digest)
                    .bind(ty)
                    .execute(&mut *tx)
                    .await?;
            }
            for (name, digest, ty) in &done.inputs {
                sqlx::query("INSERT INTO events (run_id, task, name, digest, direction, artifact_type) VALUES ($1, $2, $3, $4, 'input', $5)")
                    .bind(run)
                    .bind(task)
                    .bind(name)
                    .bind(digest)
                    .bind(ty)
                    .execute(&mut *tx)
                    .await?;
            }
            // DOUBLE PRECISION holds NaN and the infinities, and sqlx sends an f64 as binary
            // float8: a metric goes in and comes back as the step reported it, no NULL involved.
            for m in &done.metrics {
                sqlx::query("INSERT INTO metrics (run_id, task, name, value, step) VALUES ($1, $2, $3, $4, $5)")
                    .bind(run)
                    .bind(task)
                    .bind(&m.name)
                    .bind(m.value)
                    .bind(m.step.map(|s| s as i64))
                    .execute(&mut *tx)
                    .await?;
            }
            if let (Some(key), TaskState::Succeeded) = (&done.cache_key, done.state) {
                sqlx::query(
                    "INSERT INTO cache (key, run_id, task, outputs_json, artifacts_json, created_at) VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (key) DO UPDATE SET run_id = EXCLUDED.run_id, task = EXCLUDED.task, outputs_json = EXCLUDED.outputs_json,
                        artifacts_json = EXCLUDED.artifacts_json, created_at = EXCLUDED.created_at",
                )
                .bind(key)
                .bind(run)
                .bind(task)
                .bind(&done.outputs_json)
                .bind(&artifacts_json)
                .bind(&ts)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "UPDATE tasks SET state = $3, outputs_json = $4, cache_key = $5, cached_from = $6, finished_at = $7, duration_ms = $8,
                        log_path = COALESCE($9, log_path), error = NULL
                 WHERE run_id = $1 AND name = $2",
            )
            .bind(run)
            .bind(task)
            .bind(done.state.as_str())
            .bind(&done.outputs_json)
            .bind(&done.cache_key)
            .bind(&done.cached_from)
            .bind(&ts)
            .bind(done.duration_ms)
            .bind(&done.log_path)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        })
    }

    fn record_artifact(&self, art: &crate::StoredArtifact, artifact_type: &str) -> Result<()> {
        self.on(async {
            sqlx::query("INSERT INTO artifacts (digest, artifact_type, bytes, files, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING")
                .bind(&art.digest)
                .bind(artifact_type)
                .bind(art.bytes as i64)
                .bind(art.files as i64)
                .bind(crate::metadata::now())
                .execute(&self.pool)
                .await
                .map(|_| ())
        })
    }

    fn cache_lookup(&self, key: &str) -> Result<Option<CacheEntry>> {
        let row = self.on(async {
            sqlx::query(
                "SELECT run_id, task, outputs_json, artifacts_json FROM cache WHERE key = $1",
            )
            .bind(key)
            .fetch_optional(&self.pool)
            .await
        })?;
        let Some(row) = row else { return Ok(None) };
        let artifacts: String = row.try_get(3).map_err(sql)?;
        Ok(Some(CacheEntry {
            run_id: row.try_get(0).map_err(sql)?,
            task: row.try_get(1).map_err(sql)?,
            outputs_json: row.try_get(2).map_err(sql)?,
            artifacts: serde_json::from_str(&artifacts)?,
        }))
    }

    fn cache_forget(&self, key: &str) -> Result<()> {
        self.on(async {
            sqlx::query("DELETE FROM cache WHERE key = $1")
                .bind(key)
                .execute(&self.pool)
                .await
                .map(|_| ())
        })
    }

    fn run(&self, id: &str) -> Result<RunRecord> {
        let row = self.on(async {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
        })?;
        match row {
            Some(r) => rows::run(&r).map_err(sql),
            None => Err(StoreError::NoRun(id.to_string())),
        }
    }

    fn runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        let rows = self.on(async {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {RUN_COLUMNS} FROM runs ORDER BY created_at DESC, seq DESC LIMIT $1"
            )))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
        })?;
        rows.iter().map(|r| rows::run(r).map_err(sql)).collect()
    }

    fn runs_page(&self, q: &crate::RunQuery) -> Result<Vec<RunRecord>> {
        let (time, id) = q.before.clone().unzip();
        let statement = crate::run_list::sql(RUN_COLUMNS, |n| {
            format!("${n}::{}", if n == 6 { "bigint" } else { "text" })
        });
        let rows = self.on(async {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .bind(&q.state)
                .bind(&q.pipeline)
                .bind(&q.experiment)
                .bind(time)
                .bind(id)
                .bind(i64::from(q.limit))
                .fetch_all(&self.pool)
                .await
        })?;
        rows.iter().map(|r| rows::run(r).map_err(sql)).collect()
    }

    fn tasks(&self, run: &str) -> Result<Vec<TaskRecord>> {
        let rows = self.on(async {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE run_id = $1 ORDER BY seq"
            )))
            .bind(run)
            .fetch_all(&self.pool)
            .await
        })?;
        rows.iter().map(|r| rows::task(r).map_err(sql)).collect()
    }

    fn events(&self, run: Option<&str>) -> Result<Vec<ArtifactEvent>> {
        let rows = self.on(async {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {EVENT_COLUMNS} FROM events
                 WHERE $1::text IS NULL OR run_id = $1 ORDER BY id"
            )))
            .bind(run)
            .fetch_all(&self.pool)
            .await
        })?;
        rows.iter().map(|r| rows::event(r).map_err(sql)).collect()
    }

    fn lineage(&self, digest: &str) -> Result<Vec<ArtifactEvent>> {
        let rows = self.on(async {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE digest = $1 ORDER BY id"
            )))
            .bind(digest)
            .fetch_all(&self.pool)
            .await
        })?;
        rows.iter().map(|r| rows::event(r).map_err(sql)).collect()
    }

    fn artifacts(&self) -> Result<Vec<(String, String, u64, u64)>> {
        let rows = self.on(async {
            sqlx::query(
                "SELECT digest, artifact_type, bytes, files FROM artifacts ORDER BY created_at, digest",
            )
            .fetch_all(&self.pool)
            .await
        })?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    r.try_get(1)?,
                    r.try_get::<i64, _>(2)? as u64,
                    r.try_get::<i64, _>(3)? as u64,
                ))
            })
            .collect::<sqlx::Result<_>>()
            .map_err(sql)
    }

    fn metrics(&self, run: &str) -> Result<Vec<MetricRecord>> {
        let rows = self.on(async {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {METRIC_COLUMNS} FROM metrics WHERE run_id = $1 ORDER BY seq"
            )))
            .bind(run)
            .fetch_all(&self.pool)
            .await
        })?;
        rows.iter().map(|r| rows::metric(r).map_err(sql)).collect()
    }

    fn lease_get(&self, run: &str) -> Result<Option<crate::Lease>> {
        let row = self.on(async {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {LEASE_COLUMNS} FROM run_leases WHERE run_id = $1"
            )))
            .bind(run)
            .fetch_optional(&self.pool)
            .await
        })?;
        row.map(|r| rows::lease(&r).map_err(sql)).transpose()
    }

    fn lease_put(&self, run: &str, l: &crate::Lease, expected: Option<&str>) -> Result<bool> {
        let done = self.on(async {
            // `old` is $7: bound last.
            let base = match expected {
                None => sqlx::query(
                    "INSERT INTO run_leases (run_id, owner, host, pid, since, renewed_at)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (run_id) DO NOTHING",
                ),
                Some(_) => sqlx::query(
                    "UPDATE run_leases SET owner = $2, host = $3, pid = $4, since = $5, renewed_at = $6
                     WHERE run_id = $1 AND owner = $7",
                ),
            };
            let base = base
                .bind(run)
                .bind(&l.owner)
                .bind(&l.host)
                .bind(i64::from(l.pid))
                .bind(&l.since)
                .bind(&l.renewed_at);
            let base = match expected {
                Some(old) => base.bind(old),
                None => base,
            };
            base.execute(&self.pool).await
        })?;
        Ok(done.rows_affected() == 1)
    }

    fn lease_renew(&self, run: &str, owner: &str, at: &str) -> Result<bool> {
        let done = self.on(async {
            sqlx::query("UPDATE run_leases SET renewed_at = $3 WHERE run_id = $1 AND owner = $2")
                .bind(run)
                .bind(owner)
                .bind(at)
                .execute(&self.pool)
                .await
        })?;
        Ok(done.rows_affected() == 1)
    }

    fn lease_release(&self, run: &str, owner: &str) -> Result<()> {
        self.on(async {
            sqlx::query("DELETE FROM run_leases WHERE run_id = $1 AND owner = $2")
                .bind(run)
                .bind(owner)
                .execute(&self.pool)
                .await
                .map(drop)
        })
    }

    fn put_experiment(&self, e: &ExperimentRecord) -> Result<()> {
        self.on(async {
            sqlx::query(
                "INSERT INTO experiments (name, spec_json, state, created_at, finished_at, message)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (name) DO UPDATE SET spec_json = EXCLUDED.spec_json, state = EXCLUDED.state,
                    finished_at = EXCLUDED.finished_at, message = EXCLUDED.message",
            )
            .bind(&e.name)
            .bind(&e.spec_json)
            .bind(&e.state)
            .bind(&e.created_at)
            .bind(&e.finished_at)
            .bind(&e.message)
            .execute(&self.pool)
            .await
            .map(drop)
        })
    }

    fn experiment(&self, name: &str) -> Result<Option<ExperimentRecord>> {
        let row = self.on(async {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE name = $1"
            )))
            .bind(name)
            .fetch_optional(&self.pool)
            .await
        })?;
        row.map(|r| rows::experiment(&r).map_err(sql)).transpose()
    }

    fn experiments(&self) -> Result<Vec<ExperimentRecord>> {
        let rows = self.on(async {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {EXPERIMENT_COLUMNS} FROM experiments ORDER BY created_at, seq"
            )))
            .fetch_all(&self.pool)
            .await
        })?;
        rows.iter()
            .map(|r| rows::experiment(r).map_err(sql))
            .collect()
    }

    fn put_trial(&self, t: &TrialRecord) -> Result<()> {
        let done = self.on(async {
            sqlx::query(
                "INSERT INTO trials (experiment, name, seq, run_id, assignment_json, state, objective,
                    observation_json, created_at, finished_at, message)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (experiment, name) DO UPDATE SET state = EXCLUDED.state,
                    objective = EXCLUDED.objective, observation_json = EXCLUDED.observation_json,
                    finished_at = EXCLUDED.finished_at, message = EXCLUDED.message,
                    run_id = EXCLUDED.run_id",
            )
            .bind(&t.experiment)
            .bind(&t.name)
            .bind(i64::from(t.seq))
            .bind(&t.run_id)
            .bind(&t.assignment_json)
            .bind(&t.state)
            .bind(stored_objective(t.objective))
            .bind(&t.observation_json)
            .bind(&t.created_at)
            .bind(&t.finished_at)
            .bind(&t.message)
            .execute(&self.pool)
            .await
            .map(drop)
        });
        match done {
            // Trials have one foreign key: their experiment.
            Err(StoreError::Postgres(sqlx::Error::Database(d))) if d.is_foreign_key_violation() => {
                Err(StoreError::NoExperiment(t.experiment.clone()))
            }
            other => other,
        }
    }

    fn trials(&self, experiment: &str) -> Result<Vec<TrialRecord>> {
        let rows = self.on(async {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {TRIAL_COLUMNS} FROM trials WHERE experiment = $1 ORDER BY seq, name"
            )))
            .bind(experiment)
            .fetch_all(&self.pool)
            .await
        })?;
        rows.iter().map(|r| rows::trial(r).map_err(sql)).collect()
    }

    fn delete_experiment(&self, name: &str) -> Result<()> {
        self.on(async {
            let mut tx = self.pool.begin().await?;
            sqlx::query("DELETE FROM trials WHERE experiment = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM experiments WHERE name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        })
    }
}

fn sql(e: sqlx::Error) -> StoreError {
    StoreError::Postgres(e)
}
