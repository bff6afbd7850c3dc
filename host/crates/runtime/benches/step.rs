//! Per-step costs: the figures of docs/PERFORMANCE.md.
//!
//! - `noop_step_warm`: a loaded no-op component run end to end (fresh Store and WASI context,
//!   instantiate from the InstancePre, call, drop), the per-step overhead every pipeline pays;
//! - `load_cached`: loading a component from the on-disk cache (read, hash, deserialise, type
//!   check, link);
//! - `first_compile`: compiling it with no cache, for contrast.
use criterion::{criterion_group, criterion_main, Criterion};
use std::path::Path;
use weft_runtime::{LoadSource, Runtime, RuntimeConfig, StepRequest};

fn benches(c: &mut Criterion) {
    let noop = Path::new(weft_test_programs::NOOP);
    let cache = tempfile::tempdir().unwrap();
    let rt = Runtime::new(RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..Default::default()
    })
    .unwrap();
    let loaded = rt.load(noop).unwrap();
    let req = StepRequest::new("bench", "noop");

    c.bench_function("noop_step_warm", |b| {
        b.iter(|| rt.run(&loaded, &req).unwrap())
    });

    c.bench_function("load_cached", |b| {
        b.iter(|| {
            rt.clear_loaded();
            let l = rt.load(noop).unwrap();
            assert_eq!(l.source, LoadSource::DiskCache);
        })
    });

    let uncached = Runtime::new(RuntimeConfig::default()).unwrap();
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    group.bench_function("first_compile", |b| {
        b.iter(|| {
            uncached.clear_loaded();
            let l = uncached.load(noop).unwrap();
            assert_eq!(l.source, LoadSource::Compiled);
        })
    });
    group.finish();
}

criterion_group!(step, benches);
criterion_main!(step);
