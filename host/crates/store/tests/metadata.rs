//! The metadata store's contract, run on every backend: SQLite always, PostgreSQL where
//! `WEFT_TEST_POSTGRES` names a server (`cargo xtask test` starts one and sets
//! `WEFT_REQUIRE_POSTGRES`, so there the PostgreSQL cases cannot skip silently).

use weft_store::*;

fn run_record(id: &str, created_at: &str) -> RunRecord {
    RunRecord {
        id: id.into(),
        pipeline: "p".into(),
        pipeline_file: "p.yaml".into(),
        plan_json: "{}".into(),
        state: RUN_RUNNING.into(),
        created_at: created_at.into(),
        finished_at: None,
        error: None,
    }
}

fn artifact(digest: &str) -> StoredArtifact {
    StoredArtifact {
        digest: digest.into(),
        bytes: 3,
        files: 1,
    }
}

/// Everything the executor and the CLI ask of a store, checked through the trait.
fn honours_the_contract(db: &MetadataStore) {
    db.create_run(
        &run_record("r1", "2026-01-01T00:00:00Z"),
        &["a".into(), "b".into()],
    )
    .unwrap();
    db.create_run(&run_record("r2", "2026-01-02T00:00:00Z"), &[])
        .unwrap();
    // Newest first.
    let ids: Vec<String> = db.runs(10).unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(ids, ["r2", "r1"]);
    assert_eq!(db.runs(1).unwrap().len(), 1);
    assert!(matches!(db.run("nope"), Err(StoreError::NoRun(_))));

    // Tasks keep the order they were added in; adding one twice is harmless.
    db.add_task("r1", "c[0]").unwrap();
    db.add_task("r1", "c[0]").unwrap();
    let names: Vec<String> = db
        .tasks("r1")
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["a", "b", "c[0]"]);

    db.record_artifact(&artifact("sha256:in"), "Dataset")
        .unwrap();
    db.record_artifact(&artifact("sha256:in"), "Dataset")
        .unwrap();
    db.start_task("r1", "a", 2, "sha256:c", "/logs/a.log")
        .unwrap();
    let a = &db.tasks("r1").unwrap()[0];
    assert_eq!((a.state, a.attempt), (TaskState::Running, 2));
    assert_eq!(a.log_path.as_deref(), Some("/logs/a.log"));
    let done = TaskCompletion {
        state: TaskState::Succeeded,
        outputs_json: r#"{"n":{"type":"int","value":3}}"#.into(),
        inputs: vec![("data".into(), "sha256:in".into(), "Dataset".into())],
        outputs: vec![("model".into(), artifact("sha256:out"), "Model".into())],
        metrics: vec![
            MetricRecord {
                task: "a".into(),
                name: "loss".into(),
                value: 0.5,
                step: Some(1),
            },
            MetricRecord {
                task: "a".into(),
                name: "acc".into(),
                value: 0.9,
                step: None,
            },
        ],
        cache_key: Some("k".into()),
        cached_from: None,
        duration_ms: 12.5,
        log_path: None,
    };
    db.complete_task("r1", "a", &done).unwrap();
    let a = &db.tasks("r1").unwrap()[0];
    assert_eq!(a.state, TaskState::Succeeded);
    assert_eq!(a.duration_ms, Some(12.5));
    assert_eq!(a.outputs_json.as_deref(), Some(done.outputs_json.as_str()));
    assert_eq!(a.cache_key.as_deref(), Some("k"));
    assert_eq!(
        a.log_path.as_deref(),
        Some("/logs/a.log"),
        "kept when none is given"
    );
    assert!(a.finished_at.is_some());

    // The cache entry, replaced by a later completion of the same key, and forgotten.
    let hit = db.cache_lookup("k").unwrap().unwrap();
    assert_eq!(hit.run_id, "r1");
    assert_eq!(
        hit.artifacts,
        vec![("model".to_string(), "sha256:out".to_string())]
    );
    db.complete_task("r1", "b", &done).unwrap();
    assert_eq!(db.cache_lookup("k").unwrap().unwrap().task, "b");
    db.cache_forget("k").unwrap();
    assert!(db.cache_lookup("k").unwrap().is_none());

    // Lineage: who made an artifact, who used one; events in order.
    let made = db.lineage("sha256:out").unwrap();
    assert_eq!(made.len(), 2);
    assert_eq!(
        (made[0].task.as_str(), made[0].direction.as_str()),
        ("a", "output")
    );
    let used = db.lineage("sha256:in").unwrap();
    assert_eq!(used[0].direction, "input");
    assert_eq!(db.events(Some("r1")).unwrap().len(), 4);
    assert_eq!(db.events(None).unwrap().len(), 4);
    assert!(db.events(Some("r2")).unwrap().is_empty());
    let arts: Vec<(String, String, u64, u64)> = db.artifacts().unwrap();
    assert!(arts.contains(&("sha256:out".into(), "Model".into(), 3, 1)));
    assert_eq!(arts.len(), 2);

    let metrics = db.metrics("r1").unwrap();
    assert_eq!(metrics.len(), 4);
    assert_eq!(
        (metrics[0].name.as_str(), metrics[0].step),
        ("loss", Some(1))
    );
    assert_eq!((metrics[1].name.as_str(), metrics[1].step), ("acc", None));

    non_finite_metrics_round_trip(db);

    // Failure, then a reset to pending (resume).
    db.set_task_state("r1", "c[0]", TaskState::Failed, Some("boom"))
        .unwrap();
    let c = &db.tasks("r1").unwrap()[2];
    assert_eq!(
        (c.state, c.error.as_deref()),
        (TaskState::Failed, Some("boom"))
    );
    assert!(c.finished_at.is_some());
    db.set_task_state("r1", "c[0]", TaskState::Pending, None)
        .unwrap();
    assert!(db.tasks("r1").unwrap()[2].finished_at.is_none());

    db.finish_run("r1", RUN_FAILED, Some("failed tasks: c[0]"))
        .unwrap();
    let r1 = db.run("r1").unwrap();
    assert_eq!(r1.state, RUN_FAILED);
    assert_eq!(r1.error.as_deref(), Some("failed tasks: c[0]"));
    assert!(r1.finished_at.is_some());
    db.reopen_run("r1").unwrap();
    let r1 = db.run("r1").unwrap();
    assert_eq!((r1.state.as_str(), r1.error), (RUN_RUNNING, None));

    // A second run with an existing id is refused, not merged.
    assert!(
        db.create_run(&run_record("r1", "x"), &[]).is_err(),
        "ids are unique"
    );
}

/// NaN and the infinities are recorded as a step reports them (the WIT says so), in order.
fn non_finite_metrics_round_trip(db: &MetadataStore) {
    let metric = |name: &str, value: f64| MetricRecord {
        task: "c[0]".into(),
        name: name.into(),
        value,
        step: Some(7),
    };
    let done = TaskCompletion {
        state: TaskState::Succeeded,
        outputs_json: "{}".into(),
        inputs: vec![],
        outputs: vec![],
        metrics: vec![
            metric("nan", f64::NAN),
            metric("inf", f64::INFINITY),
            metric("-inf", f64::NEG_INFINITY),
            metric("tiny", f64::MIN_POSITIVE),
        ],
        cache_key: None,
        cached_from: None,
        duration_ms: 1.0,
        log_path: None,
    };
    db.create_run(&run_record("nf", "2025-01-01T00:00:00Z"), &["c[0]".into()])
        .unwrap();
    db.complete_task("nf", "c[0]", &done).unwrap();
    let back = db.metrics("nf").unwrap();
    let names: Vec<&str> = back.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["nan", "inf", "-inf", "tiny"]);
    assert!(back[0].value.is_nan());
    assert_eq!(back[1].value, f64::INFINITY);
    assert_eq!(back[2].value, f64::NEG_INFINITY);
    assert_eq!(back[3].value, f64::MIN_POSITIVE);
    assert!(back.iter().all(|m| m.step == Some(7) && m.task == "c[0]"));
    // Through JSON (`runs show --output json`, work-order results) and back.
    let text = serde_json::to_string(&back).unwrap();
    assert!(text.contains(r#""value":"NaN""#), "{text}");
    let again: Vec<MetricRecord> = serde_json::from_str(&text).unwrap();
    assert!(again[0].value.is_nan());
    assert_eq!(again[1..], back[1..]);
}

fn experiment_record(name: &str, created_at: &str) -> ExperimentRecord {
    ExperimentRecord {
        name: name.into(),
        spec_json: r#"{"name":"spec"}"#.into(),
        state: "Created".into(),
        created_at: created_at.into(),
        finished_at: None,
        message: None,
    }
}

fn trial_record(experiment: &str, seq: u32) -> TrialRecord {
    TrialRecord {
        experiment: experiment.into(),
        name: format!("{experiment}-{seq:05}"),
        seq,
        run_id: format!("{experiment}-run-{seq}"),
        assignment_json: format!(r#"{{"lr":0.{seq}}}"#),
        state: "Pending".into(),
        objective: None,
        observation_json: None,
        created_at: format!("2026-03-01T00:00:0{seq}Z"),
        finished_at: None,
        message: None,
    }
}

/// Tuning experiments and their trials: recorded, updated in place, listed in order, kept
/// apart per experiment, refused for an unknown experiment, deleted together. Leaves the
/// experiments `older` and `tie` (with one trial) for the callers to find again.
fn keeps_experiments_and_trials(db: &MetadataStore) {
    assert!(db.experiments().unwrap().is_empty());
    assert_eq!(db.experiment("exp").unwrap(), None);

    // Round trip, then an update of everything but the name and created_at.
    let exp = experiment_record("exp", "2026-02-01T00:00:00Z");
    db.put_experiment(&exp).unwrap();
    assert_eq!(db.experiment("exp").unwrap().as_ref(), Some(&exp));
    let running = ExperimentRecord {
        spec_json: r#"{"name":"spec","v":2}"#.into(),
        state: "Failed".into(),
        created_at: "2030-01-01T00:00:00Z".into(),
        finished_at: Some("2026-02-02T00:00:00Z".into()),
        message: Some("3 trials failed".into()),
        ..exp.clone()
    };
    db.put_experiment(&running).unwrap();
    let updated = ExperimentRecord {
        created_at: exp.created_at.clone(),
        ..running.clone()
    };
    assert_eq!(db.experiment("exp").unwrap().as_ref(), Some(&updated));
    // And back: optional fields can be cleared.
    let resumed = ExperimentRecord {
        state: "Running".into(),
        ..exp.clone()
    };
    db.put_experiment(&resumed).unwrap();
    assert_eq!(db.experiment("exp").unwrap().as_ref(), Some(&resumed));

    // Oldest first; two made at the same time in the order they were recorded.
    db.put_experiment(&experiment_record("older", "2026-01-01T00:00:00Z"))
        .unwrap();
    db.put_experiment(&experiment_record("tie", "2026-02-01T00:00:00Z"))
        .unwrap();
    let names: Vec<String> = db
        .experiments()
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["older", "exp", "tie"]);

    // Trials come back by seq, whatever order they were recorded in.
    db.create_run(&run_record("exp-run-1", "2026-03-01T00:00:00Z"), &[])
        .unwrap();
    for seq in [2, 0, 1] {
        db.put_trial(&trial_record("exp", seq)).unwrap();
    }
    assert_eq!(
        db.trials("exp").unwrap(),
        [0, 1, 2].map(|seq| trial_record("exp", seq))
    );
    assert_eq!(db.trials("exp").unwrap()[1].name, "exp-00001");

    // A second experiment's trials are its own, even under the same trial name.
    let mut same_name = trial_record("tie", 0);
    same_name.name = "exp-00000".into();
    db.put_trial(&same_name).unwrap();
    assert_eq!(db.trials("tie").unwrap(), [same_name.clone()]);
    assert_eq!(db.trials("exp").unwrap().len(), 3);
    assert!(db.trials("older").unwrap().is_empty());
    assert!(db.trials("nope").unwrap().is_empty());

    // An update changes state, objective, observation, finished_at, message and run, and
    // keeps the seq, assignment and created_at the trial was made with.
    let done = TrialRecord {
        seq: 9,
        run_id: "exp-run-1b".into(),
        assignment_json: r#"{"lr":9}"#.into(),
        state: "Succeeded".into(),
        objective: Some(0.25),
        observation_json: Some(r#"{"metrics":[{"name":"loss","latest":0.25}]}"#.into()),
        created_at: "2031-01-01T00:00:00Z".into(),
        finished_at: Some("2026-03-02T00:00:00Z".into()),
        message: Some("done".into()),
        ..trial_record("exp", 1)
    };
    db.put_trial(&done).unwrap();
    let trials = db.trials("exp").unwrap();
    assert_eq!(
        trials[1],
        TrialRecord {
            seq: 1,
            assignment_json: trial_record("exp", 1).assignment_json,
            created_at: trial_record("exp", 1).created_at,
            ..done.clone()
        }
    );
    assert_eq!(trials[0], trial_record("exp", 0), "the others untouched");
    let json = serde_json::to_value(&trials[1]).unwrap();
    assert_eq!(json["objective"], 0.25);
    assert_eq!(json["seq"], 1);

    // Objectives: NaN is stored as none (the same on both backends); infinities are kept.
    for (seq, objective, back) in [
        (0, f64::NAN, None),
        (2, f64::NEG_INFINITY, Some(f64::NEG_INFINITY)),
    ] {
        let failed = TrialRecord {
            state: "MetricsUnavailable".into(),
            objective: Some(objective),
            ..trial_record("exp", seq)
        };
        db.put_trial(&failed).unwrap();
        assert_eq!(db.trials("exp").unwrap()[seq as usize].objective, back);
    }

    // A trial of an experiment that does not exist is refused, naming it.
    match db.put_trial(&trial_record("ghost", 0)) {
        Err(e @ StoreError::NoExperiment(_)) => {
            assert!(e.to_string().contains("`ghost`"), "{e}");
            assert!(!e.is_transient());
        }
        other => panic!("a trial of no experiment: {other:?}"),
    }
    assert!(db.trials("ghost").unwrap().is_empty());
    assert_eq!(db.experiment("ghost").unwrap(), None);

    // Deleting an experiment takes its trials, not its runs nor other experiments'.
    db.delete_experiment("exp").unwrap();
    assert_eq!(db.experiment("exp").unwrap(), None);
    assert!(db.trials("exp").unwrap().is_empty());
    assert_eq!(db.trials("tie").unwrap(), [same_name]);
    assert!(db.run("exp-run-1").is_ok(), "runs stay");
    db.delete_experiment("exp").unwrap();
    db.delete_experiment("never").unwrap();
    // The name is free again, with no trials left over.
    db.put_experiment(&exp).unwrap();
    assert!(db.trials("exp").unwrap().is_empty());
    db.delete_experiment("exp").unwrap();
    let names: Vec<String> = db
        .experiments()
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["older", "tie"]);
}

/// What `keeps_experiments_and_trials` leaves, found again after reopening the store.
fn experiments_left(db: &MetadataStore) {
    assert_eq!(
        db.experiments().unwrap(),
        [
            experiment_record("older", "2026-01-01T00:00:00Z"),
            experiment_record("tie", "2026-02-01T00:00:00Z")
        ]
    );
    let trials = db.trials("tie").unwrap();
    assert_eq!((trials.len(), trials[0].name.as_str()), (1, "exp-00000"));
}

/// A store as the version before experiments left it, with a run in it, then opened: the
/// run is kept and experiments can be recorded.
fn experiments_arrive_in_an_old_store(db: &MetadataStore) {
    assert_eq!(db.run("old").unwrap().state, RUN_RUNNING);
    assert!(db.experiments().unwrap().is_empty());
    db.put_experiment(&experiment_record("e", "2026-01-01T00:00:00Z"))
        .unwrap();
    db.put_trial(&trial_record("e", 0)).unwrap();
    assert_eq!(db.trials("e").unwrap(), [trial_record("e", 0)]);
}

/// One executor per run: a held lease refuses a second taker (naming the holder), is given
/// back on drop, and a lease whose holder is gone (a dead pid here, or no renewal for
/// STALE_AFTER elsewhere) is taken over.
fn leases_hold_one_run_at_a_time(db: std::sync::Arc<MetadataStore>) {
    let first = RunLease::acquire(db.clone(), "leased").unwrap();
    match RunLease::acquire(db.clone(), "leased") {
        Err(StoreError::RunHeld { pid, .. }) => assert_eq!(pid, std::process::id()),
        other => panic!("second taker: {:?}", other.map(|_| ())),
    }
    let other_run = RunLease::acquire(db.clone(), "another").unwrap();
    drop(first);
    let again = RunLease::acquire(db.clone(), "leased").unwrap();
    drop((again, other_run));
    assert_eq!(db.lease_get("leased").unwrap(), None);

    let long_ago = humantime::format_rfc3339_micros(std::time::SystemTime::now() - 2 * STALE_AFTER)
        .to_string();
    for (run, holder) in [
        // Another host that stopped renewing.
        (
            "stale",
            Lease {
                owner: "elsewhere:1:1".into(),
                host: "elsewhere".into(),
                pid: 1,
                since: long_ago.clone(),
                renewed_at: long_ago.clone(),
            },
        ),
        // This host, a process that is gone (renewed just now, so only the pid tells).
        (
            "dead",
            Lease {
                owner: "here:x".into(),
                host: this_host(),
                pid: dead_pid(),
                since: now(),
                renewed_at: now(),
            },
        ),
    ] {
        assert!(db.lease_put(run, &holder, None).unwrap());
        assert!(
            !db.lease_put(run, &holder, None).unwrap(),
            "{run}: CAS on an empty slot"
        );
        let taken = RunLease::acquire(db.clone(), run).unwrap();
        let now_held = db.lease_get(run).unwrap().unwrap();
        assert_eq!(now_held.pid, std::process::id(), "{run}");
        assert!(
            !db.lease_renew(run, &holder.owner, &now()).unwrap(),
            "{run}: old holder lost it"
        );
        drop(taken);
    }
    // A live holder on another host that keeps renewing is not taken over: refused once the
    // wait for it to lapse is over (zero here; a restarted runner waits STALE_AFTER).
    let live = Lease {
        owner: "elsewhere:2:2".into(),
        host: "elsewhere".into(),
        pid: 2,
        since: now(),
        renewed_at: now(),
    };
    assert!(db.lease_put("live", &live, None).unwrap());
    assert!(matches!(
        RunLease::acquire_waiting(db.clone(), "live", std::time::Duration::ZERO),
        Err(StoreError::RunHeld { .. })
    ));
    // One that stops renewing while a contender waits is taken over when it lapses.
    let fading_at = humantime::format_rfc3339_micros(
        std::time::SystemTime::now() - STALE_AFTER + std::time::Duration::from_secs(2),
    )
    .to_string();
    let fading = Lease {
        owner: "elsewhere:3:3".into(),
        renewed_at: fading_at,
        ..live.clone()
    };
    assert!(db.lease_put("fading", &fading, None).unwrap());
    let taken = RunLease::acquire_waiting(db.clone(), "fading", std::time::Duration::from_secs(30))
        .unwrap();
    assert_eq!(
        db.lease_get("fading").unwrap().unwrap().pid,
        std::process::id()
    );
    drop(taken);
}

fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[test]
fn sqlite_leases_hold_one_run_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    leases_hold_one_run_at_a_time(std::sync::Arc::new(
        MetadataStore::open(&dir.path().join("m.db")).unwrap(),
    ));
}

#[test]
fn sqlite_honours_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let db = MetadataStore::open(&dir.path().join("m.db")).unwrap();
    honours_the_contract(&db);
    // Everything is still there when the file is opened again.
    drop(db);
    let db = MetadataStore::connect(dir.path().join("m.db").to_str().unwrap()).unwrap();
    assert_eq!(db.runs(10).unwrap().len(), 3);
}

#[test]
fn sqlite_keeps_experiments_and_trials() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let db = MetadataStore::open(&path).unwrap();
    keeps_experiments_and_trials(&db);
    drop(db);
    experiments_left(&MetadataStore::open(&path).unwrap());
}

/// The experiments migration is the fourth: a store from before it is one at schema version
/// 3, without the tables (the later migrations, run again, find what they make in place).
/// (`experiments.rs` also builds one from the older migrations themselves.)
#[test]
fn sqlite_a_store_from_before_experiments_gets_the_tables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let db = MetadataStore::open(&path).unwrap();
    db.create_run(&run_record("old", "2026-01-01T00:00:00Z"), &[])
        .unwrap();
    drop(db);
    let old = rusqlite::Connection::open(&path).unwrap();
    old.execute_batch("DROP TABLE trials; DROP TABLE experiments;")
        .unwrap();
    old.pragma_update(None, "user_version", 3).unwrap();
    drop(old);
    experiments_arrive_in_an_old_store(&MetadataStore::open(&path).unwrap());
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use sqlx::{Connection, Executor};

    /// A fresh, empty database on the test server, as a URL; None (said) when there is none.
    fn fresh_database() -> Option<String> {
        let Ok(admin) = std::env::var("WEFT_TEST_POSTGRES") else {
            assert!(
                std::env::var_os("WEFT_REQUIRE_POSTGRES").is_none(),
                "WEFT_REQUIRE_POSTGRES is set but WEFT_TEST_POSTGRES names no server"
            );
            assert!(
                std::env::var_os("CI").is_none(),
                "WEFT_TEST_POSTGRES not set, and CI is set: a test whose server is missing fails there"
            );
            eprintln!(
                "WEFT_TEST_POSTGRES not set: PostgreSQL not tested (cargo xtask test starts one)"
            );
            return None;
        };
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "weft_test_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
            c.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await
                .unwrap();
        });
        let (server, _) = admin.rsplit_once('/').unwrap();
        Some(format!("{server}/{name}"))
    }

    #[test]
    fn postgres_leases_hold_one_run_at_a_time() {
        let Some(url) = fresh_database() else { return };
        leases_hold_one_run_at_a_time(std::sync::Arc::new(MetadataStore::connect(&url).unwrap()));
    }

    #[test]
    fn postgres_honours_the_contract() {
        let Some(url) = fresh_database() else { return };
        let db = MetadataStore::connect(&url).unwrap();
        honours_the_contract(&db);
        // Connecting again finds the schema current and the data kept.
        drop(db);
        let db = MetadataStore::connect(&url).unwrap();
        assert_eq!(db.runs(10).unwrap().len(), 3);
    }

    #[test]
    fn postgres_keeps_experiments_and_trials() {
        let Some(url) = fresh_database() else { return };
        let db = MetadataStore::connect(&url).unwrap();
        keeps_experiments_and_trials(&db);
        drop(db);
        experiments_left(&MetadataStore::connect(&url).unwrap());
    }

    /// A database migrated by the version before experiments (migration 3): its tables
    /// absent and the migration not recorded as applied.
    #[test]
    fn postgres_a_database_from_before_experiments_gets_the_tables() {
        let Some(url) = fresh_database() else { return };
        let db = MetadataStore::connect(&url).unwrap();
        db.create_run(&run_record("old", "2026-01-01T00:00:00Z"), &[])
            .unwrap();
        drop(db);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            c.execute(
                "DROP TABLE trials; DROP TABLE experiments; \
                 DELETE FROM _sqlx_migrations WHERE version = 3;",
            )
            .await
            .unwrap();
            c.close().await.unwrap();
        });
        experiments_arrive_in_an_old_store(&MetadataStore::connect(&url).unwrap());
    }

    /// Runners starting together against a fresh database: the migration runs once (sqlx's
    /// migrator takes an advisory lock), and every one of them connects.
    #[test]
    fn runners_connecting_to_a_fresh_database_at_once_all_succeed() {
        let Some(url) = fresh_database() else { return };
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..6)
                .map(|_| s.spawn(|| MetadataStore::connect(&url).map(|_| ())))
                .collect();
            for h in handles {
                h.join().unwrap().unwrap();
            }
        });
    }

    /// Opened, used and dropped inside an async runtime (the executor's loop uses it there).
    #[test]
    fn the_store_can_be_used_from_async_code() {
        let Some(url) = fresh_database() else { return };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let db = MetadataStore::connect(&url).unwrap();
            db.create_run(&run_record("r", "2026-01-01T00:00:00Z"), &["t".into()])
                .unwrap();
            assert_eq!(db.tasks("r").unwrap().len(), 1);
            // Dropped here too, inside the runtime.
            drop(db);
        });
    }

    #[test]
    fn a_bad_url_or_unreachable_server_is_a_clear_error() {
        let err = MetadataStore::connect("postgres://weft:secret@127.0.0.1:1/none")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("metadata database"), "{err}");
        assert!(!err.contains("secret"), "the password is not shown: {err}");
    }
}

/// A task state no version of Weft wrote is an error naming it, not a guess: read as PENDING,
/// a finished task would run again on resume.
#[test]
fn an_unknown_task_state_is_an_error_not_pending() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let db = MetadataStore::open(&path).unwrap();
    db.create_run(&run_record("r", "2026-01-01T00:00:00Z"), &["t".into()])
        .unwrap();
    drop(db);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("UPDATE tasks SET state = 'HALF_DONE' WHERE name = 't'", [])
        .unwrap();
    let db = MetadataStore::open(&path).unwrap();
    let err = db.tasks("r").unwrap_err().to_string();
    assert!(err.contains("HALF_DONE"), "{err}");
}
