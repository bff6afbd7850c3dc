//! `wasm-run ui` in a real headless Chromium, driven over WebDriver (Debian's chromium and
//! chromium-driver, which `cargo xtask test` installs and names in WEFT_TEST_CHROMEDRIVER and
//! WEFT_TEST_CHROMIUM): the runs page, a run of the example pipeline with every task node
//! and its state, a log, an artifact preview, two runs compared, a model version followed
//! back to its run, a run started while the page is open appearing and finishing without a
//! reload, and the pages read with JavaScript off. Screenshots land in
//! CARGO_TARGET_TMPDIR/ui-screenshots.

use crate::pipelines::{iris_yaml, pipeline, run_json};
use crate::support::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const TASKS: [&str; 6] = [
    "load",
    "split",
    "standardize",
    "train",
    "evaluate",
    "publish",
];

/// Kills a child process when the test ends, however it ends.
struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `url` answers.
fn wait_for(url: &str, what: &str) {
    for _ in 0..300 {
        // Any answer will do (a server behind a token answers 401).
        if let Ok(_) | Err(ureq::Error::Status(..)) = ureq::get(url).call() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not answer at {url}");
}

/// Chromium and its driver, or None (said) when this machine has none.
fn browser() -> Option<(String, String)> {
    let (Ok(driver), Ok(chromium)) = (
        std::env::var("WEFT_TEST_CHROMEDRIVER"),
        std::env::var("WEFT_TEST_CHROMIUM"),
    ) else {
        tool_missing("WEFT_TEST_CHROMEDRIVER/WEFT_TEST_CHROMIUM unset: the browser tests did not run (cargo xtask test installs chromium and chromium-driver)");
        return None;
    };
    Some((driver, chromium))
}

/// A WebDriver session on a headless Chromium with its own profile; JavaScript on or off.
async fn session(
    driver_url: &str,
    chromium: &str,
    profile: &std::path::Path,
    javascript: bool,
) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            // This machine's network is closed: no background fetches, no first-run pages.
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
                     format!("--user-data-dir={}", profile.display())],
            "prefs": { "profile.managed_default_content_settings.javascript": if javascript { 1 } else { 2 } },
        }),
    );
    // Plain HTTP to the driver on loopback: no TLS stack needed.
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(driver_url)
        .await
        .expect("a WebDriver session on Chromium")
}

fn screenshots() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// Polls `f` for up to `secs` seconds until it gives `Some`.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    secs: u64,
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    for _ in 0..secs * 4 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{what}: not within {secs} s");
}

/// The attribute `name` of every element `css` finds, read again from the start when the
/// live refresh replaced an element between finding and reading it.
async fn attrs(c: &Client, css: &str, name: &str) -> Vec<String> {
    'again: for _ in 0..5 {
        let mut out = Vec::new();
        for e in c.find_all(Locator::Css(css)).await.unwrap() {
            match e.attr(name).await {
                Ok(v) => out.extend(v),
                Err(e) if stale(&e) => continue 'again,
                Err(e) => panic!("reading {name} of {css}: {e}"),
            }
        }
        return out;
    }
    panic!("{css} kept going stale");
}

fn stale(e: &fantoccini::error::CmdError) -> bool {
    matches!(e, fantoccini::error::CmdError::Standard(w)
        if w.error == fantoccini::error::ErrorStatus::StaleElementReference)
}

/// Clicks what `loc` finds, again if the live refresh replaced it in between.
async fn click(c: &Client, loc: Locator<'_>) {
    for _ in 0..5 {
        match c.find(loc).await.unwrap().click().await {
            Ok(()) => return,
            Err(e) if stale(&e) => {}
            Err(e) => panic!("clicking {loc:?}: {e}"),
        }
    }
    panic!("{loc:?} kept going stale");
}

/// Waits until the browser's path contains `part` (after a click that navigates).
async fn arrive(c: &Client, part: &str) {
    eventually(10, &format!("a page at *{part}*"), || async {
        let url = c.current_url().await.ok()?;
        url.path().contains(part).then_some(())
    })
    .await;
}

struct Setup {
    s: Scratch,
    base: String,
    runs: [String; 2],
    model: (String, String),
    _ui: Killed,
    _driver: Killed,
    driver_url: String,
    chromium: String,
}

/// Two runs of the example pipeline, a model version registered from the first's model
/// output, the UI and chromedriver started.
fn setup() -> Option<Setup> {
    let (driver, chromium) = browser()?;
    let s = Scratch::new();
    let yaml = iris_yaml(&s);
    let first = run_json(&pipeline(&s, &yaml, &[]));
    let second = run_json(&pipeline(&s, &yaml, &["--param", "epochs=200"]));
    let model_digest = output_digest(&first, "train", "model");
    let port = free_port();
    let ui = Killed(
        s.wasm_run()
            .args(["ui", "--listen", &format!("127.0.0.1:{port}")])
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_for(&format!("{base}/runs"), "wasm-run ui");
    let api = format!("{base}/api/model_registry/v1alpha3");
    let model: serde_json::Value = ureq::post(&format!("{api}/registered_models"))
        .send_json(json!({"name": "iris", "description": "logistic regression on iris"}))
        .unwrap()
        .into_json()
        .unwrap();
    let model_id = model["id"].as_str().unwrap().to_string();
    let version: serde_json::Value =
        ureq::post(&format!("{api}/registered_models/{model_id}/versions"))
            .send_json(json!({"name": "v1"}))
            .unwrap()
            .into_json()
            .unwrap();
    let version_id = version["id"].as_str().unwrap().to_string();
    ureq::post(&format!("{api}/model_versions/{version_id}/artifacts"))
        .send_json(json!({"artifactType": "model-artifact", "name": "model", "uri": format!("weft://{model_digest}")}))
        .unwrap();
    let driver_port = free_port();
    let chromedriver = Killed(
        Command::new(&driver)
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let driver_url = format!("http://127.0.0.1:{driver_port}");
    wait_for(&format!("{driver_url}/status"), "chromedriver");
    let id = |v: &serde_json::Value| v["run_id"].as_str().unwrap().to_string();
    Some(Setup {
        runs: [id(&first), id(&second)],
        model: (model_id, version_id),
        s,
        base,
        _ui: ui,
        _driver: chromedriver,
        driver_url,
        chromium,
    })
}

#[test]
fn the_ui_in_a_browser() {
    let Some(t) = setup() else { return };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = session(&t.driver_url, &t.chromium, &t.s.path("profile"), true).await;
        runs_and_a_run(&c, &t).await;
        log_and_artifact(&c, &t).await;
        compare(&c, &t).await;
        model_lineage(&c, &t).await;
        live_run(&c, &t).await;
        keyboard(&c, &t).await;
        c.close().await.unwrap();
        let off = session(&t.driver_url, &t.chromium, &t.s.path("profile-nojs"), false).await;
        without_javascript(&off, &t).await;
        off.close().await.unwrap();
    });
}

async fn runs_and_a_run(c: &Client, t: &Setup) {
    c.goto(&format!("{}/runs", t.base)).await.unwrap();
    assert!(
        c.find(Locator::Css("html[data-js='on']")).await.is_ok(),
        "weft.js ran"
    );
    let listed = attrs(c, "tr[data-run]", "data-run").await;
    assert_eq!(
        listed,
        [t.runs[1].clone(), t.runs[0].clone()],
        "newest first"
    );
    shot(c, "runs").await;
    click(c, Locator::LinkText(&t.runs[0])).await;
    arrive(c, &format!("/runs/{}", t.runs[0])).await;
    let nodes = attrs(c, "svg.dag a.node", "data-task").await;
    for task in TASKS {
        assert!(
            nodes.contains(&task.to_string()),
            "no node for {task}: {nodes:?}"
        );
        let node = c
            .find(Locator::Css(&format!("svg.dag a.node[data-task='{task}']")))
            .await
            .unwrap();
        assert_eq!(
            node.attr("data-state").await.unwrap().as_deref(),
            Some("SUCCEEDED"),
            "{task}"
        );
    }
    let live = c.find(Locator::Css("#run-live")).await.unwrap();
    assert_eq!(
        live.attr("data-running").await.unwrap().as_deref(),
        Some("false")
    );
    shot(c, "run").await;
}

async fn log_and_artifact(c: &Client, t: &Setup) {
    c.goto(&format!("{}/runs/{}", t.base, t.runs[0]))
        .await
        .unwrap();
    click(c, Locator::Css("tr[data-task='load'] a[href$='/log']")).await;
    arrive(c, "/tasks/load/log").await;
    let log = c
        .find(Locator::Css("pre.log"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(c
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/tasks/load/log"));
    assert!(
        log.contains("wrote 150 rows x 5 columns"),
        "the load step's log: {log}"
    );
    shot(c, "log").await;
    c.back().await.unwrap();
    eventually(10, "back at the run", || async {
        let url = c.current_url().await.ok()?;
        (!url.path().contains("/log")).then_some(())
    })
    .await;
    click(
        c,
        Locator::XPath("//table[contains(@class,'artifacts')]//tr[td[1]='evaluate']//a"),
    )
    .await;
    arrive(c, "/artifacts/").await;
    let confusion = c
        .find(Locator::Css("table.confusion"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        confusion.contains("setosa") && confusion.contains("virginica"),
        "{confusion}"
    );
    assert!(c
        .find(Locator::Css("svg.plot[aria-label='ROC curve']"))
        .await
        .is_ok());
    shot(c, "artifact").await;
}

async fn compare(c: &Client, t: &Setup) {
    c.goto(&format!("{}/runs", t.base)).await.unwrap();
    for id in &t.runs {
        click(c, Locator::Css(&format!("input[name=run][value='{id}']"))).await;
    }
    click(c, Locator::Css("form[action='/compare'] button")).await;
    arrive(c, "/compare").await;
    let h1 = c
        .find(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(h1, "Comparing 2 runs");
    let epochs = c
        .find(Locator::XPath(
            "//table[contains(@class,'compare')]//tr[th[starts-with(.,'epochs')]]",
        ))
        .await
        .unwrap();
    assert_eq!(
        epochs.attr("class").await.unwrap().as_deref(),
        Some("differs")
    );
    let text = epochs.text().await.unwrap();
    assert!(text.contains("300") && text.contains("200"), "{text}");
    assert!(c
        .find(Locator::XPath("//th[.='evaluate/accuracy']"))
        .await
        .is_ok());
    shot(c, "compare").await;
}

async fn model_lineage(c: &Client, t: &Setup) {
    c.goto(&format!("{}/models", t.base)).await.unwrap();
    click(c, Locator::LinkText("iris")).await;
    arrive(c, "/models/").await;
    click(c, Locator::LinkText("v1")).await;
    arrive(c, "/versions/").await;
    assert!(c
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with(&format!("/models/{}/versions/{}", t.model.0, t.model.1)));
    shot(c, "model-version").await;
    click(
        c,
        Locator::XPath("//ul[contains(@class,'lineage')]//a[contains(., 'task train')]"),
    )
    .await;
    arrive(c, &format!("/runs/{}", t.runs[0])).await;
}

async fn live_run(c: &Client, t: &Setup) {
    c.goto(&format!("{}/runs", t.base)).await.unwrap();
    // A marker that a reload would wipe.
    c.execute("window.weftMarker = 42; return null;", vec![])
        .await
        .unwrap();
    let yaml = iris_yaml(&t.s);
    let mut third = t.s.wasm_run();
    third
        .args(["pipeline", "run"])
        .arg(&yaml)
        .args(["--param", "epochs=100", "--json"])
        .stdout(Stdio::piped());
    let third = third.spawn().unwrap();
    let id = eventually(60, "a third run on the open runs page", || async {
        let ids = attrs(c, "tr[data-run]", "data-run").await;
        ids.into_iter().find(|i| !t.runs.contains(i))
    })
    .await;
    let state = eventually(120, "the third run finishing on the open page", || async {
        let row = c
            .find(Locator::Css(&format!("tr[data-run='{id}'] .badge")))
            .await
            .ok()?;
        let s = row.text().await.ok()?;
        (s != "RUNNING").then_some(s)
    })
    .await;
    let out = third.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(state, "SUCCEEDED");
    let marker = c
        .execute("return window.weftMarker;", vec![])
        .await
        .unwrap();
    assert_eq!(marker, json!(42), "the page was not reloaded");
    shot(c, "runs-live").await;
}

async fn without_javascript(c: &Client, t: &Setup) {
    c.goto(&format!("{}/runs/{}", t.base, t.runs[0]))
        .await
        .unwrap();
    // weft.js marks the document when it runs: with scripts off it did not.
    assert!(
        c.find(Locator::Css("html[data-js]")).await.is_err(),
        "JavaScript was on"
    );
    for task in TASKS {
        assert!(
            c.find(Locator::Css(&format!("svg.dag a.node[data-task='{task}']")))
                .await
                .is_ok(),
            "{task}"
        );
        assert!(
            c.find(Locator::Css(&format!("tr[data-task='{task}']")))
                .await
                .is_ok(),
            "{task}"
        );
    }
    c.goto(&format!("{}/runs", t.base)).await.unwrap();
    assert_eq!(attrs(c, "tr[data-run]", "data-run").await.len(), 3);
    shot(c, "run-no-js").await;
}

/// `wasm-run ui` on a free loopback port with `args`, once it answers.
fn start_ui(s: &Scratch, args: &[&str]) -> (Killed, String) {
    let port = free_port();
    let ui = Killed(
        s.wasm_run()
            .args(["ui", "--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_for(&format!("{base}/static/weft.css"), "wasm-run ui");
    (ui, base)
}

#[test]
fn the_serving_page_shows_what_a_server_serves_and_its_split_as_it_changes() {
    let s = Scratch::new();
    let echo = crate::serve::component("echo-predictor");
    let server = crate::serve::start(
        &s,
        &[
            "--model",
            &format!("echo@1={echo}"),
            "--model",
            &format!("echo@2={echo}"),
            "--traffic",
            "echo:1=90,2=10",
        ],
    );
    let (_ui, base) = start_ui(
        &s,
        &["--serving", &server.url, "--serving", "http://127.0.0.1:1"],
    );
    let page = ureq::get(&format!("{base}/serving"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(page.contains("data-model=\"echo\""), "{page}");
    assert!(
        page.contains("data-version=\"1\" data-percent=\"90\"")
            && page.contains("data-version=\"2\" data-percent=\"10\""),
        "{page}"
    );
    assert!(
        page.contains("Unreachable:"),
        "a server that does not answer is said, not fatal"
    );
    let admin = server.admin.clone().expect("an admin listener");
    ureq::put(&format!("{admin}/admin/models/echo/traffic"))
        .send_json(json!({"traffic": {"1": 50, "2": 50}}))
        .unwrap();
    let page = ureq::get(&format!("{base}/serving"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        page.contains("data-version=\"2\" data-percent=\"50\""),
        "{page}"
    );
}

#[test]
fn a_token_guards_every_path_and_other_addresses_need_one() {
    let s = Scratch::new();
    let (_ui, base) = start_ui(&s, &["--token", "s3cret"]);
    for path in [
        "/runs",
        "/static/weft.js",
        "/api/model_registry/v1alpha3/registered_models",
    ] {
        match ureq::get(&format!("{base}{path}")).call() {
            Err(ureq::Error::Status(401, r)) => {
                assert_eq!(r.header("www-authenticate"), Some("Bearer"))
            }
            other => panic!("{path} without the token: {other:?}"),
        }
        let ok = ureq::get(&format!("{base}{path}"))
            .set("Authorization", "Bearer s3cret")
            .call();
        assert!(ok.is_ok(), "{path} with the token");
        let wrong = ureq::get(&format!("{base}{path}"))
            .set("Authorization", "Bearer s3cres")
            .call();
        assert!(
            matches!(wrong, Err(ureq::Error::Status(401, _))),
            "{path} with a wrong token"
        );
    }
    let (code, err) = fails(s.wasm_run().args(["ui", "--listen", "0.0.0.0:0"]));
    assert_ne!(code, Some(0));
    assert!(err.contains("--listen 0.0.0.0:0 is not loopback"), "{err}");
    let (_, err) = fails(s.wasm_run().args(["ui", "--serving", "ftp://x"]));
    assert!(
        err.contains("`ftp://x` is not an http://HOST:PORT address"),
        "{err}"
    );
}

/// The skip link is the keyboard's first stop, and every node of the graph is a link with a
/// name that says its state.
async fn keyboard(c: &Client, t: &Setup) {
    c.goto(&format!("{}/runs/{}", t.base, t.runs[0]))
        .await
        .unwrap();
    let body = c.find(Locator::Css("body")).await.unwrap();
    body.send_keys("\u{E004}").await.unwrap(); // Tab
    let focused = c
        .execute("return document.activeElement.textContent;", vec![])
        .await
        .unwrap();
    assert_eq!(focused, json!("Skip to content"));
    for task in TASKS {
        let node = c
            .find(Locator::Css(&format!("svg.dag a.node[data-task='{task}']")))
            .await
            .unwrap();
        let label = node.attr("aria-label").await.unwrap().unwrap_or_default();
        assert!(label.starts_with(&format!("{task}: SUCCEEDED")), "{label}");
    }
}
