//! The runs list, a run's page (graph, tasks, logs, live region) and comparison, over HTTP.

mod common;
use axum::http::StatusCode;
use common::{between, Home};
use serde_json::json;
use weft_store::{TaskState, RUN_FAILED, RUN_SUCCEEDED};

const GRAPH: &[(&str, &[&str])] = &[
    ("load", &[]),
    ("train", &["load"]),
    ("evaluate", &["train", "load"]),
];

#[tokio::test]
async fn runs_are_listed_newest_first_filtered_and_paged() {
    let home = Home::new();
    for i in 0..57 {
        home.run(
            &format!("run-{i:03}"),
            if i % 2 == 0 { "even" } else { "odd" },
            i,
            GRAPH,
            json!({}),
        );
        if i % 3 == 0 {
            home.meta()
                .finish_run(&format!("run-{i:03}"), RUN_FAILED, Some("x"))
                .unwrap();
        }
    }
    let page = home.get("/runs").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.content_type.starts_with("text/html"));
    let first = page.body.find("run-056").unwrap();
    assert!(first < page.body.find("run-055").unwrap(), "newest first");
    assert!(!page.body.contains(">run-006<"), "50 to a page");
    // The pager leads to the rest, and the rest only.
    let next = between(&page.body, "rel=\"next\" href=\"", "\"").replace("&amp;", "&");
    let older = home.get(&next).await;
    assert_eq!(older.status, StatusCode::OK);
    assert!(older.body.contains(">run-006<") && older.body.contains(">run-000<"));
    assert!(!older.body.contains(">run-007<"));
    // Filters combine.
    let failed_even = home.get("/runs?state=FAILED&pipeline=even").await;
    assert!(failed_even.body.contains(">run-054<") && failed_even.body.contains(">run-000<"));
    assert!(!failed_even.body.contains(">run-056<") && !failed_even.body.contains(">run-051<"));
}

#[tokio::test]
async fn the_first_page_refreshes_and_a_fragment_is_just_the_region() {
    let home = Home::new();
    home.run("r1", "p", 1, GRAPH, json!({}));
    let page = home.get("/runs").await;
    assert!(page.body.contains("data-running=\"true\""));
    let live = between(&page.body, "data-live=\"", "\"").replace("&amp;", "&");
    home.run("r2", "p", 2, GRAPH, json!({}));
    let fragment = home.get(&live).await;
    assert!(
        fragment.body.starts_with("<section id=\"runs\""),
        "{}",
        fragment.body
    );
    assert!(
        fragment.body.contains(">r2<"),
        "a run started later shows up"
    );
    assert!(!fragment.body.contains("<html"));
}

#[tokio::test]
async fn bad_queries_are_400_naming_the_value() {
    let home = Home::new();
    let page = home.get("/runs?state=DONE").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("state `DONE`"), "{}", page.body);
    assert_eq!(
        home.get("/runs?before=x").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        home.get("/runs?colour=red").await.status,
        StatusCode::BAD_REQUEST
    );
    let missing = home.get("/runs/nope").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("no run `nope`"));
    assert_eq!(
        home.get("/no/such/page").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_run_shows_its_graph_tasks_logs_and_goes_quiet_when_done() {
    let home = Home::new();
    home.run(
        "r1",
        "iris",
        1,
        GRAPH,
        json!({"epochs": 300, "name": "iris"}),
    );
    let log = home.start("r1", "load", "loaded 150 rows\n");
    home.succeed(
        "r1",
        "load",
        vec![],
        r#"{"rows":{"type":"int","value":150}}"#,
        &[("loss", Some(1), 0.9), ("loss", Some(2), 0.4)],
        &log,
    );
    home.start("r1", "train", "epoch 1\n");
    let page = home.get("/runs/r1").await;
    assert_eq!(page.status, StatusCode::OK);
    for (task, state) in [
        ("load", "SUCCEEDED"),
        ("train", "RUNNING"),
        ("evaluate", "PENDING"),
    ] {
        assert!(
            page.body
                .contains(&format!("data-task=\"{task}\" data-state=\"{state}\"")),
            "{task} {state}"
        );
    }
    assert!(page.body.contains("rows = 150") && page.body.contains("epochs"));
    assert!(page.body.contains("data-running=\"true\""));
    assert!(
        page.body.contains("<polyline"),
        "the loss series is plotted"
    );
    let log_page = home.get("/runs/r1/tasks/load/log").await;
    assert!(log_page.body.contains("loaded 150 rows"));
    let raw = home.get("/runs/r1/tasks/load/log?raw=1").await;
    assert_eq!(
        (raw.content_type.as_str(), raw.body.as_str()),
        ("text/plain; charset=utf-8", "loaded 150 rows\n")
    );
    home.meta()
        .set_task_state(
            "r1",
            "train",
            TaskState::Failed,
            Some("trap: out of bounds"),
        )
        .unwrap();
    home.meta()
        .finish_run("r1", RUN_FAILED, Some("task train failed"))
        .unwrap();
    let live = home.get("/runs/r1/live").await;
    assert!(live.body.contains("data-running=\"false\""));
    assert!(live.body.contains("trap: out of bounds"));
}

#[tokio::test]
async fn a_log_outside_the_logs_directory_is_never_read() {
    let home = Home::new();
    home.run("r1", "p", 1, GRAPH, json!({}));
    let secret = home.dir.path().join("secret.txt");
    std::fs::write(&secret, "do not show").unwrap();
    home.meta()
        .start_task("r1", "load", 1, "sha256:0", secret.to_str().unwrap())
        .unwrap();
    let page = home.get("/runs/r1/tasks/load/log").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(!page.body.contains("do not show"));
    assert_eq!(
        home.get("/runs/r1/tasks/nope/log").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_thousand_iterations_are_one_node_and_a_paged_list() {
    let home = Home::new();
    home.run(
        "big",
        "fan",
        1,
        &[("fan", &[]), ("join", &["fan"])],
        json!({}),
    );
    for i in 0..1000 {
        home.meta().add_task("big", &format!("fan[{i}]")).unwrap();
        if i < 990 {
            let log = home.start("big", &format!("fan[{i}]"), "ok\n");
            home.succeed("big", &format!("fan[{i}]"), vec![], "{}", &[], &log);
        }
    }
    let page = home.get("/runs/big").await;
    assert!(page.body.contains("fan ×1000"));
    assert!(
        page.body.contains("990 succeeded") && page.body.contains("10 pending"),
        "counts per state"
    );
    assert_eq!(
        page.body.matches("class=\"node").count(),
        2,
        "two nodes, not a thousand"
    );
    let first = home.get("/runs/big/tasks/fan/iterations").await;
    assert!(
        first.body.contains(">fan[0]<")
            && first.body.contains(">fan[99]<")
            && !first.body.contains(">fan[100]<")
    );
    let later = home.get("/runs/big/tasks/fan/iterations?offset=900").await;
    assert!(later.body.contains(">fan[999]<") && !later.body.contains("Later"));
    assert_eq!(
        home.get("/runs/big/tasks/join/iterations").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn compare_puts_params_and_every_metric_side_by_side() {
    let home = Home::new();
    for (id, lr, acc) in [("a", 0.1, 0.9), ("b", 0.5, 0.95), ("c", 0.5, 0.97)] {
        home.run(id, "p", 1, GRAPH, json!({"lr": lr, "epochs": 10}));
        let log = home.start(id, "train", "");
        home.succeed(
            id,
            "train",
            vec![],
            "{}",
            &[
                ("accuracy", None, acc),
                ("loss", Some(1), 1.0),
                ("loss", Some(2), acc),
            ],
            &log,
        );
        let log = home.start(id, "evaluate", "");
        home.succeed(
            id,
            "evaluate",
            vec![],
            "{}",
            &[("accuracy", None, acc - 0.1)],
            &log,
        );
        home.meta().finish_run(id, RUN_SUCCEEDED, None).unwrap();
    }
    let page = home.get("/compare?run=a&run=b&run=c").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Comparing 3 runs"));
    let lr_row = between(
        &page.body,
        "<tr class=\"differs\"><th scope=\"row\">lr",
        "</tr>",
    );
    assert!(lr_row.contains("0.1") && lr_row.contains("0.5"));
    assert!(
        !page
            .body
            .contains("<tr class=\"differs\"><th scope=\"row\">epochs"),
        "equal params are not marked"
    );
    // Two tasks' `accuracy` stay two rows.
    assert!(page.body.contains(">train/accuracy") && page.body.contains(">evaluate/accuracy"));
    assert!(page.body.contains("0.97") && page.body.contains("0.87"));
    assert!(
        page.body.contains("train/loss, every run"),
        "the series are overlaid"
    );
    let many: String = (0..51).map(|i| format!("run=r{i}&")).collect();
    assert_eq!(
        home.get(&format!("/compare?{many}")).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        home.get("/compare?run=a&run=zzz").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        home.get("/compare?runs=a").await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn assets_are_served_from_the_binary() {
    let home = Home::new();
    let css = home.get("/static/weft.css").await;
    assert_eq!(
        (css.status, css.content_type.as_str()),
        (StatusCode::OK, "text/css; charset=utf-8")
    );
    let js = home.get("/static/weft.js").await;
    assert!(js.body.contains("data-live"));
    assert_eq!(weft_ui::bundle_bytes(), css.body.len() + js.body.len());
    let page = home.get("/runs").await;
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
    assert!(
        !page.body.contains("http://") && !page.body.contains("https://"),
        "no CDN"
    );
}
