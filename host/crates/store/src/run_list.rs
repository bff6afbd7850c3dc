//! Runs a page at a time, filtered, for lists that must stay fast at any size (the web UI's
//! runs page with 10 000 runs in the store): keyset paging on (created_at, id), newest first,
//! over an index, so page 200 costs what page 1 does.

/// Which runs, and from where.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunQuery {
    /// Only runs in this state (`RUNNING`, `SUCCEEDED`, ...).
    pub state: Option<String>,
    /// Only runs of this pipeline (its `metadata.name`).
    pub pipeline: Option<String>,
    /// Only runs that were trials of this tuning experiment.
    pub experiment: Option<String>,
    /// Only runs older than this one: the (created_at, id) of the last run of the page before.
    pub before: Option<(String, String)>,
    /// At most this many.
    pub limit: u32,
}

/// The SQLite index that keeps the newest-first order cheap.
pub(crate) const SQLITE_MIGRATION: &str =
    "CREATE INDEX IF NOT EXISTS runs_by_created ON runs(created_at, id);";

/// The PostgreSQL one.
#[cfg(feature = "postgres")]
pub(crate) const PG_MIGRATION: &str =
    "CREATE INDEX IF NOT EXISTS runs_by_created ON runs(created_at, id);";

/// The statement, with `$N`-style placeholders written by `p(N)` (SQLite takes `?N`,
/// PostgreSQL `$N`), binding in order: state, pipeline, experiment, before's time, before's
/// id, limit.
pub(crate) fn sql(columns: &str, p: impl Fn(u8) -> String) -> String {
    format!(
        "SELECT {columns} FROM runs
         WHERE ({s} IS NULL OR state = {s})
           AND ({pi} IS NULL OR pipeline = {pi})
           AND ({e} IS NULL OR id IN (SELECT run_id FROM trials WHERE experiment = {e}))
           AND ({t} IS NULL OR created_at < {t} OR (created_at = {t} AND id < {i}))
         ORDER BY created_at DESC, id DESC LIMIT {l}",
        s = p(1),
        pi = p(2),
        e = p(3),
        t = p(4),
        i = p(5),
        l = p(6),
    )
}

#[cfg(test)]
mod tests {
    use super::RunQuery;
    use crate::{MetadataStore, RunRecord, RUN_FAILED, RUN_RUNNING, RUN_SUCCEEDED};

    fn store_with_runs() -> (tempfile::TempDir, MetadataStore) {
        let dir = tempfile::tempdir().unwrap();
        let db = MetadataStore::open(&dir.path().join("m.db")).unwrap();
        for i in 0..25u32 {
            // Three runs share each second, so the id breaks ties.
            let run = RunRecord {
                id: format!("run-{i:02}"),
                pipeline: if i % 2 == 0 { "even" } else { "odd" }.into(),
                pipeline_file: "p.yaml".into(),
                plan_json: "{}".into(),
                state: RUN_RUNNING.into(),
                created_at: format!("2026-01-01T00:00:{:02}Z", i / 3),
                finished_at: None,
                error: None,
            };
            db.create_run(&run, &[]).unwrap();
            if i % 5 == 0 {
                db.finish_run(&run.id, RUN_FAILED, Some("boom")).unwrap();
            } else if i % 5 == 1 {
                db.finish_run(&run.id, RUN_SUCCEEDED, None).unwrap();
            }
        }
        (dir, db)
    }

    /// Every page, following `before`, until one comes back short.
    fn all_pages(db: &MetadataStore, mut q: RunQuery) -> Vec<String> {
        let mut ids = Vec::new();
        loop {
            let page = db.runs_page(&q).unwrap();
            ids.extend(page.iter().map(|r| r.id.clone()));
            match page.last() {
                Some(last) if page.len() == q.limit as usize => {
                    q.before = Some((last.created_at.clone(), last.id.clone()))
                }
                _ => return ids,
            }
        }
    }

    #[test]
    fn pages_cover_every_run_once_newest_first() {
        let (_dir, db) = store_with_runs();
        let ids = all_pages(
            &db,
            RunQuery {
                limit: 4,
                ..Default::default()
            },
        );
        let expected: Vec<String> = (0..25).rev().map(|i| format!("run-{i:02}")).collect();
        assert_eq!(ids, expected);
    }

    #[test]
    fn filters_combine_and_page() {
        let (_dir, db) = store_with_runs();
        let q = RunQuery {
            state: Some(RUN_FAILED.into()),
            pipeline: Some("even".into()),
            limit: 2,
            ..Default::default()
        };
        assert_eq!(all_pages(&db, q), ["run-20", "run-10", "run-00"]);
        let none = RunQuery {
            pipeline: Some("neither".into()),
            limit: 10,
            ..Default::default()
        };
        assert!(db.runs_page(&none).unwrap().is_empty());
    }
}
