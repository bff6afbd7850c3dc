//! Pipeline figures for docs/PERFORMANCE.md:
//! - `parallel_for_1000_noop`: a 1000-iteration parallelFor of the no-op component, end to end,
//!   every iteration recorded in the metadata store (cache off, so each one runs);
//! - `noop_step_baseline`: the same step through the runtime alone, for the ratio;
//! - `cache_lookup_100k`: a cache-key lookup with 100 000 entries in the store.
use criterion::{criterion_group, criterion_main, Criterion};
use std::path::Path;
use std::sync::Arc;
use weft_pipeline::{plan, Executor, RunArgs, RunOptions, Stores};
use weft_runtime::{Runtime, RuntimeConfig, StepRequest};
use weft_store::{
    ArtifactStore, MetadataStore, RunRecord, StoredArtifact, TaskCompletion, TaskState,
};

fn stores(dir: &Path) -> Stores {
    Stores {
        meta: Arc::new(MetadataStore::open(&dir.join("metadata.db")).unwrap()),
        artifacts: Arc::new(ArtifactStore::open(&dir.join("artifacts")).unwrap()),
        components_dir: dir.join("components"),
        logs_dir: dir.join("logs"),
    }
}

fn fan_out(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("fan.yaml");
    std::fs::write(
        &yaml,
        format!(
            "apiVersion: weft.dev/v1alpha1\nkind: Pipeline\nmetadata: {{name: fan}}\nspec:\n  params:\n    items: {{type: json}}\n  components:\n    noop: {{source: {}}}\n  tasks:\n    fan:\n      component: noop\n      parallelFor: {{items: {{param: items}}}}\n",
            weft_test_programs::NOOP
        ),
    )
    .unwrap();
    let runtime = Arc::new(
        Runtime::new(RuntimeConfig {
            cache_dir: Some(dir.path().join("cache")),
            max_concurrent_steps: 64,
            ..Default::default()
        })
        .unwrap(),
    );
    let stores = stores(dir.path());
    let items = weft_spec::ParamValue::Json(serde_json::Value::Array(
        (0..1000).map(|i| serde_json::json!(i)).collect(),
    ));
    let args = RunArgs {
        params: vec![("items".into(), items)],
        cache: false,
        ..Default::default()
    };
    let plan = plan(
        &yaml,
        &args,
        &runtime,
        &stores.components_dir,
        &stores.artifacts,
    )
    .unwrap();
    let exec = Executor::new(runtime.clone(), stores.clone());
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    let mut group = c.benchmark_group("pipeline");
    group.sample_size(10);
    group.bench_function("parallel_for_1000_noop", |b| {
        b.iter(|| {
            let summary = tokio
                .block_on(exec.start(plan.clone(), None, &RunOptions::default()))
                .unwrap();
            assert_eq!(summary.state, "SUCCEEDED");
        })
    });
    group.finish();

    let noop = runtime.load(Path::new(weft_test_programs::NOOP)).unwrap();
    let req = StepRequest::new("bench", "noop");
    c.bench_function("noop_step_baseline", |b| {
        b.iter(|| runtime.run(&noop, &req).unwrap())
    });
}

fn cache_lookup(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let meta = MetadataStore::open(&dir.path().join("metadata.db")).unwrap();
    let run = RunRecord {
        id: "fill".into(),
        pipeline: "p".into(),
        pipeline_file: "p.yaml".into(),
        plan_json: "{}".into(),
        state: "SUCCEEDED".into(),
        created_at: weft_store::now(),
        finished_at: None,
        error: None,
    };
    meta.create_run(&run, &[]).unwrap();
    let n = 100_000;
    for i in 0..n {
        let task = format!("t{i}");
        meta.add_task("fill", &task).unwrap();
        let art = StoredArtifact {
            digest: format!("sha256:{i:064x}"),
            bytes: 1,
            files: 1,
        };
        meta.complete_task(
            "fill",
            &task,
            &TaskCompletion {
                state: TaskState::Succeeded,
                outputs_json: "{}".into(),
                inputs: vec![],
                outputs: vec![("out".into(), art, "Artifact".into())],
                metrics: vec![],
                cache_key: Some(format!("sha256:key{i}")),
                cached_from: None,
                duration_ms: 0.0,
                log_path: None,
            },
        )
        .unwrap();
    }
    let mut i = 0u64;
    c.bench_function("cache_lookup_100k", |b| {
        b.iter(|| {
            i = (i * 7919 + 13) % n;
            assert!(meta
                .cache_lookup(&format!("sha256:key{i}"))
                .unwrap()
                .is_some());
        })
    });
}

criterion_group!(benches, fan_out, cache_lookup);
criterion_main!(benches);
