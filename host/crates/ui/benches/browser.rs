//! The runs page's time to first render in a real browser, with 10 000 runs in the store:
//! the UI served on loopback from this process, the page loaded 15 times in headless Chromium
//! (WEFT_TEST_CHROMEDRIVER and WEFT_TEST_CHROMIUM, as the e2e tests use), and the browser's
//! own timings read back: first contentful paint and DOMContentLoaded, with the server's
//! response time (responseEnd − requestStart) as the baseline in the same load.
//!
//! `cargo bench -p weft-ui --bench browser`

#[path = "fixture.rs"]
mod fixture;

use fantoccini::ClientBuilder;
use serde_json::json;
use std::process::{Command, Stdio};

const LOADS: usize = 15;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let (Ok(driver), Ok(chromium)) = (
        std::env::var("WEFT_TEST_CHROMEDRIVER"),
        std::env::var("WEFT_TEST_CHROMIUM"),
    ) else {
        eprintln!(
            "set WEFT_TEST_CHROMEDRIVER and WEFT_TEST_CHROMIUM (cargo xtask test installs them)"
        );
        std::process::exit(2);
    };
    let dir = tempfile::tempdir().unwrap();
    eprintln!("recording {} runs…", fixture::RUNS);
    let ui = fixture::ui(dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(async move { axum::serve(listener, weft_ui::app(ui)).await.unwrap() });
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut chromedriver = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let timings = rt.block_on(async {
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     format!("--user-data-dir={}", dir.path().join("profile").display())],
        }));
        let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap();
        let mut out = Vec::new();
        for _ in 0..LOADS {
            c.goto(&format!("{base}/runs")).await.unwrap();
            // Paint entries arrive asynchronously: an observer with `buffered` sees the one
            // already recorded, or the one about to be.
            let t = c
                .execute_async(
                    "const done = arguments[arguments.length - 1];
                     const n = performance.getEntriesByType('navigation')[0];
                     const report = (fcp) => done([fcp, n.domContentLoadedEventEnd, n.responseEnd - n.requestStart, n.transferSize]);
                     new PerformanceObserver((list) => {
                       const p = list.getEntriesByName('first-contentful-paint')[0];
                       if (p) report(p.startTime);
                     }).observe({type: 'paint', buffered: true});
                     setTimeout(() => report(-1), 5000);",
                    vec![],
                )
                .await
                .unwrap();
            let t: Vec<f64> = serde_json::from_value(t).unwrap();
            out.push(t);
        }
        c.close().await.unwrap();
        out
    });
    let _ = chromedriver.kill();
    let _ = chromedriver.wait();
    let col = |i: usize| median(timings.iter().map(|t| t[i]).collect());
    println!(
        "runs page, {} runs in the store, median of {LOADS} loads in Chromium:",
        fixture::RUNS
    );
    println!("  first contentful paint   {:7.1} ms", col(0));
    println!("  DOMContentLoaded         {:7.1} ms", col(1));
    println!(
        "  server response (baseline) {:5.1} ms  ({:.0}% of first paint)",
        col(2),
        100.0 * col(2) / col(0)
    );
    println!("  page transfer            {:7.0} bytes", col(3));
    println!(
        "  bundle (CSS + JS)        {:7} bytes",
        weft_ui::bundle_bytes()
    );
}
