//! The model registry's rows in PostgreSQL (sqlx): the statements of `registry.rs` in
//! PostgreSQL's words, on a pool and a runtime of its own, as the metadata store's
//! (`metadata_pg.rs`) runs them. `body_json` is JSONB, read back as text.

use crate::metadata_pg::on;
use crate::registry::{
    cascade_sql, conflict, find_sql, in_use, list_sql, no_parent, numbered, row, served_refs,
    RegistryDialect, RegistryError, RegistryKind, RegistryPage, RegistryRow, RegistryValue,
    RegistryWhere,
};
use crate::StoreError;
use sqlx::postgres::{PgArguments, PgPool, PgRow};
use sqlx::query::Query;
use sqlx::{Postgres, Row};
use std::future::Future;

const COLUMNS: &str = "id, parent, artifact_type, name, external_id, state, created_ms, \
     updated_ms, body_json::text";

/// A deployed inference service of the namespace (`$1`) that serves the model `$2`, the
/// version `$3`, or, naming no version, the model `$4` (the version's).
const SERVED_BY: &str = "SELECT id, COALESCE(name, '') FROM registry_inference_services \
    WHERE namespace = $1 AND body_json ->> 'desiredState' = 'DEPLOYED' AND ( \
        weft_registry_int(body_json -> 'registeredModelId') = $2 \
     OR weft_registry_int(body_json -> 'modelVersionId') = $3 \
     OR ($3 IS NOT NULL AND body_json ->> 'modelVersionId' IS NULL \
         AND weft_registry_int(body_json -> 'registeredModelId') = $4)) \
    ORDER BY id LIMIT 1";

pub(crate) struct PgRegistry {
    pool: PgPool,
    /// Always `Some` until dropped.
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for PgRegistry {
    fn drop(&mut self) {
        // As the metadata store's: never block on a runtime's shutdown inside another.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn bind<'q>(
    q: Query<'q, Postgres, PgArguments>,
    args: &[RegistryValue],
) -> Query<'q, Postgres, PgArguments> {
    args.iter().fold(q, |q, v| match v {
        RegistryValue::Int(n) => q.bind(*n),
        RegistryValue::Real(x) => q.bind(*x),
        RegistryValue::Text(t) => q.bind(t.clone()),
    })
}

fn rows(found: Vec<PgRow>) -> Result<Vec<RegistryRow>, RegistryError> {
    found.iter().map(|r| row(r).map_err(sql)).collect()
}

fn sql(e: sqlx::Error) -> RegistryError {
    RegistryError::Store(StoreError::Postgres(e))
}

/// A unique or foreign key failure as what it means for `r`; a value PostgreSQL's text cannot
/// hold as invalid; anything else as it is.
fn constraint(kind: RegistryKind, r: &RegistryRow, e: sqlx::Error) -> RegistryError {
    if let sqlx::Error::Database(d) = &e {
        if d.is_unique_violation() {
            let external = d.constraint().is_some_and(|c| c.ends_with("_external_id"));
            return conflict(kind, r, external);
        }
        if d.is_foreign_key_violation() {
            return no_parent(kind, r);
        }
        // Class 22, data exceptions: a NUL character, bytes not in the encoding.
        if d.code().is_some_and(|c| c.starts_with("22")) {
            return RegistryError::Invalid(format!("invalid {}: {}", kind.noun(), d.message()));
        }
    }
    sql(e)
}

impl PgRegistry {
    pub(crate) fn connect(url: &str) -> Result<Self, RegistryError> {
        let (pool, rt) = crate::metadata_pg::connect(url)?;
        Ok(PgRegistry { pool, rt: Some(rt) })
    }

    fn on<T: Send>(&self, f: impl Future<Output = T> + Send) -> T {
        on(self.rt.as_ref().expect("set until dropped"), f)
    }

    pub(crate) fn insert(
        &self,
        kind: RegistryKind,
        ns: &str,
        r: &RegistryRow,
    ) -> Result<RegistryRow, RegistryError> {
        let statement = format!(
            "INSERT INTO {} (namespace, parent, artifact_type, name, external_id, state, \
             created_ms, updated_ms, body_json) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb) RETURNING {COLUMNS}",
            kind.table()
        );
        let found = self.on(async {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .bind(ns)
                .bind(r.parent)
                .bind(&r.artifact_type)
                .bind(&r.name)
                .bind(&r.external_id)
                .bind(&r.state)
                .bind(r.created_ms)
                .bind(r.updated_ms)
                .bind(&r.body_json)
                .fetch_one(&self.pool)
                .await
        });
        row(&found.map_err(|e| constraint(kind, r, e))?).map_err(sql)
    }

    pub(crate) fn update(
        &self,
        kind: RegistryKind,
        ns: &str,
        r: &RegistryRow,
    ) -> Result<Option<RegistryRow>, RegistryError> {
        let statement = format!(
            "UPDATE {} SET parent = $3, name = $4, external_id = $5, state = $6, \
             updated_ms = $7, body_json = $8::jsonb WHERE namespace = $1 AND id = $2 \
             RETURNING {COLUMNS}",
            kind.table()
        );
        let found = self.on(async {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .bind(ns)
                .bind(r.id)
                .bind(r.parent)
                .bind(&r.name)
                .bind(&r.external_id)
                .bind(&r.state)
                .bind(r.updated_ms)
                .bind(&r.body_json)
                .fetch_optional(&self.pool)
                .await
        });
        let found = found.map_err(|e| constraint(kind, r, e))?;
        found.map(|f| row(&f).map_err(sql)).transpose()
    }

    pub(crate) fn get(
        &self,
        kind: RegistryKind,
        ns: &str,
        id: i64,
    ) -> Result<Option<RegistryRow>, RegistryError> {
        let statement = format!(
            "SELECT {COLUMNS} FROM {} WHERE namespace = $1 AND id = $2",
            kind.table()
        );
        let found = self.on(async {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .bind(ns)
                .bind(id)
                .fetch_optional(&self.pool)
                .await
        });
        found
            .map_err(sql)?
            .map(|f| row(&f).map_err(sql))
            .transpose()
    }

    pub(crate) fn find(
        &self,
        kind: RegistryKind,
        ns: &str,
        name: Option<&str>,
        external_id: Option<&str>,
        parent: Option<i64>,
    ) -> Result<Option<RegistryRow>, RegistryError> {
        let (statement, args) = find_sql(kind, COLUMNS, ns, name, external_id, parent);
        let statement = numbered(&statement, RegistryDialect::Postgres);
        let found = self.on(async {
            bind(sqlx::query(sqlx::AssertSqlSafe(statement)), &args)
                .fetch_optional(&self.pool)
                .await
        });
        found
            .map_err(sql)?
            .map(|f| row(&f).map_err(sql))
            .transpose()
    }

    /// A page and one more row.
    pub(crate) fn list(
        &self,
        kind: RegistryKind,
        ns: &str,
        conds: &[RegistryWhere],
        page: &RegistryPage,
    ) -> Result<Vec<RegistryRow>, RegistryError> {
        let (statement, args) = list_sql(kind, COLUMNS, ns, conds, page);
        let statement = numbered(&statement, RegistryDialect::Postgres);
        let found = self.on(async {
            bind(sqlx::query(sqlx::AssertSqlSafe(statement)), &args)
                .fetch_all(&self.pool)
                .await
        });
        rows(found.map_err(sql)?)
    }

    /// As SQLite's: one transaction, which holds off changes to inference services (a share
    /// lock on their table) from the check of what they serve to the commit.
    pub(crate) fn delete(
        &self,
        kind: RegistryKind,
        ns: &str,
        id: i64,
    ) -> Result<Option<std::collections::BTreeSet<String>>, RegistryError> {
        let get_parent = format!(
            "SELECT parent FROM {} WHERE namespace = $1 AND id = $2 FOR UPDATE",
            kind.table()
        );
        self.on(async {
            let mut tx = self.pool.begin().await.map_err(sql)?;
            sqlx::query("LOCK TABLE registry_inference_services IN SHARE MODE")
                .execute(&mut *tx)
                .await
                .map_err(sql)?;
            let parent = sqlx::query(sqlx::AssertSqlSafe(get_parent))
                .bind(ns)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(sql)?;
            let Some(parent) = parent else {
                return Ok(None);
            };
            let parent: Option<i64> = parent.try_get(0).map_err(sql)?;
            let (model, version) = served_refs(kind, id, parent)?;
            let version_model: Option<i64> = match version {
                Some(v) => sqlx::query("SELECT parent FROM registry_versions WHERE id = $1")
                    .bind(v)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(sql)?
                    .map(|r| r.try_get(0))
                    .transpose()
                    .map_err(sql)?,
                None => None,
            };
            let served = sqlx::query(SERVED_BY)
                .bind(ns)
                .bind(model)
                .bind(version)
                .bind(version_model)
                .fetch_optional(&mut *tx)
                .await
                .map_err(sql)?;
            if let Some(s) = served {
                let service: i64 = s.try_get(0).map_err(sql)?;
                let name: String = s.try_get(1).map_err(sql)?;
                return Err(in_use(kind, id, service, &name));
            }
            let mut named = std::collections::BTreeSet::new();
            for statement in crate::registry::freed_bodies_sql(kind) {
                let statement = numbered(&statement, RegistryDialect::Postgres);
                for row in sqlx::query(sqlx::AssertSqlSafe(statement))
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(sql)?
                {
                    let body: String = row.try_get(0).map_err(sql)?;
                    named.extend(crate::registry::digests_in(&body));
                }
            }
            for statement in cascade_sql(kind) {
                let statement = numbered(&statement, RegistryDialect::Postgres);
                let done = sqlx::query(sqlx::AssertSqlSafe(statement))
                    .bind(id)
                    .execute(&mut *tx)
                    .await;
                match done {
                    Err(sqlx::Error::Database(d)) if d.is_foreign_key_violation() => {
                        return Err(RegistryError::InUse(format!(
                            "{} {id} gained a child while it was being deleted: try again",
                            kind.noun()
                        )))
                    }
                    other => other.map_err(sql)?,
                };
            }
            tx.commit().await.map_err(sql)?;
            Ok(Some(named))
        })
    }

    /// Whether any row of any registry table names `text` in its body.
    pub(crate) fn mentions(&self, text: &str) -> Result<bool, RegistryError> {
        self.on(async {
            for statement in crate::registry::freed_mention_sql() {
                let hit = sqlx::query(sqlx::AssertSqlSafe(statement))
                    .bind(text)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(sql)?;
                if hit.is_some() {
                    return Ok(true);
                }
            }
            Ok(false)
        })
    }
}
