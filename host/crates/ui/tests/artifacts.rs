//! Artifact previews and downloads, experiments and the model registry's pages, over HTTP.

mod common;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::Home;
use serde_json::json;
use weft_store::{ExperimentRecord, TrialRecord};

const CONFUSION: &str =
    r#"{"classes":["setosa","versicolor"],"matrix":[[10,0],[2,8]],"accuracy":0.9}"#;
const ROC: &str = r#"[{"class":"setosa","auc":0.98,"points":[{"fpr":0.0,"tpr":0.0,"threshold":null},{"fpr":0.1,"tpr":0.9,"threshold":0.5},{"fpr":1.0,"tpr":1.0,"threshold":0.0}]}]"#;

fn evaluated(home: &Home) -> String {
    home.run("r1", "iris", 1, &[("evaluate", &[])], json!({}));
    let art = home.artifact(&[
        ("confusion_matrix.json", CONFUSION),
        ("roc.json", ROC),
        ("data/rows.csv", "a,b\n1,2\n3,4\n"),
        (
            "report.md",
            "# Report\n\n<script>alert(1)</script>\n\nSome **bold** text.\n",
        ),
        ("page.html", "<h1>hi</h1><script>alert(2)</script>"),
        ("metrics.json", r#"{"accuracy": 0.953333, "f1": 0.94}"#),
        ("params.json", r#"{"layers":[16,8]}"#),
    ]);
    let log = home.start("r1", "evaluate", "");
    home.succeed(
        "r1",
        "evaluate",
        vec![("metrics", art.clone(), "ClassificationMetrics")],
        "{}",
        &[],
        &log,
    );
    art.digest
}

#[tokio::test]
async fn previews_show_tables_plots_markdown_and_sandboxed_html() {
    let home = Home::new();
    let digest = evaluated(&home);
    let run = home.get("/runs/r1").await;
    assert!(
        run.body
            .contains(&format!("href=\"/artifacts/sha256%3A{}\"", &digest[7..])),
        "the run links its artifact"
    );
    let page = home.get(&format!("/artifacts/{digest}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("ClassificationMetrics"));
    assert!(
        page.body.contains("href=\"/runs/r1\""),
        "lineage names the run"
    );
    assert!(
        page.body.contains("Confusion matrix")
            && page.body.contains(">versicolor<")
            && page.body.contains(">8<")
    );
    assert!(page.body.contains("ROC curve") && page.body.contains("setosa (AUC 0.98)"));
    assert!(
        page.body.contains("<td>3</td><td>4</td>"),
        "the CSV as a table"
    );
    assert!(page.body.contains("<strong>bold</strong>"));
    assert!(
        page.body
            .contains("<th scope=\"row\">accuracy</th><td class=\"num\">0.953333</td>"),
        "metrics as a table"
    );
    assert!(
        page.body.contains("&quot;layers&quot;: [\n    16,"),
        "other JSON pretty-printed"
    );
    assert!(
        !page.body.contains("<script>alert(1)"),
        "raw HTML in Markdown is text"
    );
    assert!(
        page.body
            .contains("<iframe class=\"html\" sandbox=\"\" srcdoc=\"&lt;h1&gt;hi"),
        "HTML in a sandboxed frame"
    );
}

#[tokio::test]
async fn files_download_as_attachments_and_paths_stay_inside() {
    let home = Home::new();
    let digest = evaluated(&home);
    let file = home
        .get(&format!("/artifacts/{digest}/files/data/rows.csv"))
        .await;
    assert_eq!(file.status, StatusCode::OK);
    assert_eq!(file.body, "a,b\n1,2\n3,4\n");
    assert_eq!(
        file.headers["content-disposition"],
        "attachment; filename=\"rows.csv\""
    );
    assert_eq!(file.headers["content-security-policy"], "sandbox");
    for bad in ["../../metadata.db", "data/../../x", "%2e%2e/x"] {
        let page = home.get(&format!("/artifacts/{digest}/files/{bad}")).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(
        home.get(&format!("/artifacts/{digest}/files/nope.txt"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let bad = home.get("/artifacts/sha256:..%2F..%2Fetc").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let unknown = home
        .get(&format!("/artifacts/sha256:{}", "0".repeat(64)))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_experiment_shows_its_trials_best_so_far_and_parallel_coordinates() {
    let home = Home::new();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../examples/experiments/branin.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let doc = weft_spec::Document::<weft_spec::experiment::Experiment>::parse(path, &text).unwrap();
    home.meta()
        .put_experiment(&ExperimentRecord {
            name: "branin".into(),
            spec_json: serde_json::to_string(&doc.value).unwrap(),
            state: "Succeeded".into(),
            created_at: "2026-12-03T10:00:00Z".into(),
            finished_at: None,
            message: None,
        })
        .unwrap();
    let names: Vec<String> = doc
        .value
        .spec
        .parameters
        .iter()
        .map(|p| p.name.clone())
        .collect();
    for (seq, objective) in [(0u32, 12.5), (1, 3.2), (2, 7.0), (3, 0.41)] {
        let assignment: serde_json::Map<_, _> = names
            .iter()
            .map(|n| (n.clone(), json!(seq as f64 + 0.5)))
            .collect();
        home.meta()
            .put_trial(&TrialRecord {
                experiment: "branin".into(),
                name: format!("branin-{seq:05}"),
                seq,
                run_id: format!("branin-{seq:05}"),
                assignment_json: serde_json::Value::Object(assignment).to_string(),
                state: "Succeeded".into(),
                objective: Some(objective),
                observation_json: None,
                created_at: "2026-12-03T10:00:00Z".into(),
                finished_at: None,
                message: None,
            })
            .unwrap();
    }
    let list = home.get("/experiments").await;
    assert!(list.body.contains("href=\"/experiments/branin\"") && list.body.contains("0.41"));
    let page = home.get("/experiments/branin").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("branin-00003: 0.41"), "the best trial");
    assert_eq!(page.body.matches("<circle class=\"trial\"").count(), 4);
    assert!(
        page.body.contains("class=\"pc best\""),
        "the best trial's line is marked"
    );
    for n in &names {
        assert!(page.body.contains(&format!("<th scope=\"col\">{n}</th>")));
    }
    assert_eq!(
        home.get("/experiments/nope").await.status,
        StatusCode::NOT_FOUND
    );
}

async fn post(home: &Home, path: &str, body: serde_json::Value) -> serde_json::Value {
    let req = Request::post(format!("/api/model_registry/v1alpha3{path}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let page = home.send(req).await;
    assert_eq!(page.status, StatusCode::CREATED, "{}", page.body);
    serde_json::from_str(&page.body).unwrap()
}

#[tokio::test]
async fn a_model_version_leads_back_to_the_run_that_made_it() {
    let home = Home::new();
    let digest = evaluated(&home);
    let model = post(
        &home,
        "/registered_models",
        json!({"name": "iris", "description": "the iris classifier"}),
    )
    .await;
    let id = model["id"].as_str().unwrap();
    let version = post(
        &home,
        &format!("/registered_models/{id}/versions"),
        json!({"name": "v1", "author": "ci"}),
    )
    .await;
    let vid = version["id"].as_str().unwrap();
    post(&home, &format!("/model_versions/{vid}/artifacts"),
        json!({"artifactType": "model-artifact", "name": "model", "uri": format!("weft://{digest}"), "modelFormatName": "weft"})).await;
    let list = home.get("/models").await;
    assert!(
        list.body.contains(&format!("href=\"/models/{id}\""))
            && list.body.contains("the iris classifier")
    );
    let model_page = home.get(&format!("/models/{id}")).await;
    assert!(model_page
        .body
        .contains(&format!("href=\"/models/{id}/versions/{vid}\"")));
    let page = home.get(&format!("/models/{id}/versions/{vid}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body
            .contains("run r1 · task evaluate · output metrics"),
        "{}",
        page.body
    );
    assert!(page.body.contains("href=\"/runs/r1\""));
    assert_eq!(home.get("/models/999").await.status, StatusCode::NOT_FOUND);
}
