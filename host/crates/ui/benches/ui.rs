//! The web UI's figures for docs/PERFORMANCE.md, server side (the browser's own render time is
//! `benches/browser.rs`):
//! - `runs_page/first` and `runs_page/200th`: the runs page with 10 000 runs in the store, the
//!   newest page and one 10 000 runs deep (keyset paging: the two should cost the same);
//! - `runs_query_baseline`: the store query alone behind the first page, for the ratio of
//!   rendering to reading;
//! - `run_page_1000_iterations`: a run whose loop has 1000 iterations, folded into one node;
//! - `registry/versions_first_page` and `registry/versions_filtered`: the registry's version
//!   list (pageSize 100) with 10 000 versions, plain and with a filterQuery.
//!
//! It also prints the bundle's size (CSS and JS a browser downloads besides the pages).

#[path = "fixture.rs"]
mod fixture;

use criterion::{criterion_group, criterion_main, Criterion};
use weft_store::RunQuery;

fn ui_pages(c: &mut Criterion) {
    eprintln!(
        "bundle: {} bytes (CSS and JS, uncompressed)",
        weft_ui::bundle_bytes()
    );
    let dir = tempfile::tempdir().unwrap();
    let ui = fixture::ui(dir.path());
    fixture::big_run(&ui);
    let app = weft_ui::app(ui.clone());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let deep = ui
        .metadata
        .runs_page(&RunQuery {
            limit: 200 * 50,
            ..Default::default()
        })
        .unwrap()
        .pop()
        .unwrap();
    let deep_uri = format!("/runs?before={}&before_id={}", deep.created_at, deep.id);
    let mut g = c.benchmark_group("runs_page");
    g.bench_function("first", |b| {
        b.iter(|| rt.block_on(fixture::get(&app, "/runs")))
    });
    g.bench_function("200th", |b| {
        b.iter(|| rt.block_on(fixture::get(&app, &deep_uri)))
    });
    g.finish();
    c.bench_function("runs_query_baseline", |b| {
        b.iter(|| {
            ui.metadata
                .runs_page(&RunQuery {
                    limit: 50,
                    ..Default::default()
                })
                .unwrap()
        })
    });
    c.bench_function("run_page_1000_iterations", |b| {
        b.iter(|| rt.block_on(fixture::get(&app, "/runs/big")))
    });
    let model = rt.block_on(fixture::versions(&app));
    let api = "/api/model_registry/v1alpha3";
    let mut g = c.benchmark_group("registry");
    let first = format!("{api}/registered_models/{model}/versions?pageSize=100");
    g.bench_function("versions_first_page", |b| {
        b.iter(|| rt.block_on(fixture::get(&app, &first)))
    });
    let filtered =
        format!("{api}/model_versions?pageSize=100&filterQuery=name%20LIKE%20%22v99%25%22");
    g.bench_function("versions_filtered", |b| {
        b.iter(|| rt.block_on(fixture::get(&app, &filtered)))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = ui_pages
}
criterion_main!(benches);
