//! The CRDs: committed manifests in step with the types, structural as the API server demands,
//! the examples accepted as they are, and the CEL rules refusing what the types cannot.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use weft_crd::{Experiment, InferenceService, Notebook, Pipeline, PipelineRun};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../..")
        .join(rel)
}

/// Fails when `operator/chart/crds/` is stale; `WEFT_BLESS=1 cargo test -p weft-crd` rewrites it
/// (as does `weft-operator crds --out operator/chart/crds`).
#[test]
fn committed_crds_match_the_types() {
    let dir = repo("operator/chart/crds");
    for (name, yaml) in weft_crd::crd_files() {
        let path = dir.join(&name);
        if std::env::var_os("WEFT_BLESS").is_some() {
            std::fs::write(&path, &yaml).unwrap();
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == yaml,
            "{} is stale: run `WEFT_BLESS=1 cargo test -p weft-crd`",
            path.display()
        );
    }
}

/// Walks a schema and fails on what a structural schema may not hold.
fn assert_structural(node: &Value, at: &str) {
    let Value::Object(map) = node else {
        panic!("{at}: a schema must be an object, found {node}");
    };
    assert!(!map.contains_key("$ref"), "{at}: $ref");
    assert!(
        !map.contains_key("definitions") && !map.contains_key("$defs"),
        "{at}: definitions"
    );
    assert!(
        !(map.contains_key("properties") && map.contains_key("additionalProperties")),
        "{at}: properties and additionalProperties together"
    );
    let typed = map.contains_key("type")
        || map.contains_key("x-kubernetes-preserve-unknown-fields")
        || map.contains_key("x-kubernetes-int-or-string");
    let only_constraints = ["anyOf", "oneOf", "allOf"]
        .iter()
        .any(|k| map.contains_key(*k));
    assert!(typed || only_constraints, "{at}: no type in {node}");
    // Inside `anyOf`/`oneOf`/`allOf` only value constraints: no types, no pruning markers.
    for key in ["anyOf", "oneOf", "allOf"] {
        for branch in map.get(key).and_then(Value::as_array).into_iter().flatten() {
            for forbidden in ["type", "x-kubernetes-preserve-unknown-fields"] {
                assert!(
                    branch.get(forbidden).is_none(),
                    "{at}: `{forbidden}` inside {key}: {branch}"
                );
            }
        }
        if map.contains_key(key) {
            assert!(typed, "{at}: {key} without a type of its own");
        }
    }
    if let Some(Value::Object(props)) = map.get("properties") {
        for (k, v) in props {
            assert_structural(v, &format!("{at}.{k}"));
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(v) = map.get(key) {
            if v.is_object() {
                assert_structural(v, &format!("{at}[{key}]"));
            }
        }
    }
}

fn schema_of(kind: &str) -> Value {
    let crd = weft_crd::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap();
    let v = &crd.spec.versions[0];
    serde_json::to_value(
        v.schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn every_crd_is_structural_namespaced_and_in_weft_dev() {
    let crds = weft_crd::crds();
    let kinds: Vec<&str> = crds.iter().map(|c| c.spec.names.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "Pipeline",
            "PipelineRun",
            "InferenceService",
            "Experiment",
            "Notebook",
            "TrainJob"
        ]
    );
    for crd in &crds {
        assert_eq!(crd.spec.group, "weft.dev");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.versions.len(), 1);
        assert_eq!(crd.spec.versions[0].name, "v1alpha1");
        assert_structural(&schema_of(&crd.spec.names.kind), &crd.spec.names.kind);
    }
    let run = crds
        .iter()
        .find(|c| c.spec.names.kind == "PipelineRun")
        .unwrap();
    assert!(run.spec.versions[0]
        .subresources
        .as_ref()
        .unwrap()
        .status
        .is_some());
}

fn yaml_file(rel: &str) -> Value {
    let text = std::fs::read_to_string(repo(rel)).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

fn cel(kind: &str, object: &Value) -> Result<(), String> {
    kube::core::cel::Validator::new()
        .validate(&schema_of(kind), object, None)
        .map_err(|e| e.to_string())
}

#[test]
fn the_examples_wasm_run_runs_are_the_resources_kubectl_applies() {
    let pipeline = yaml_file("examples/pipelines/iris/pipeline.yaml");
    let typed: Pipeline = serde_json::from_value(pipeline.clone()).unwrap();
    assert_eq!(typed.metadata.name.as_deref(), Some("iris-classifier"));
    assert!(typed.spec.0.tasks.contains_key("train"));
    cel("Pipeline", &pipeline).unwrap();

    let run = yaml_file("examples/pipelines/iris/run.yaml");
    let typed: PipelineRun = serde_json::from_value(run.clone()).unwrap();
    assert_eq!(typed.spec.0.params["epochs"], json!(500));
    cel("PipelineRun", &run).unwrap();

    let isvc = yaml_file("examples/services/iris/inferenceservice.yaml");
    let typed: InferenceService = serde_json::from_value(isvc.clone()).unwrap();
    assert_eq!(typed.spec.0.canary.as_ref().unwrap().traffic_percent, 10);
    cel("InferenceService", &isvc).unwrap();

    let experiment = yaml_file("examples/experiments/branin.yaml");
    let typed: Experiment = serde_json::from_value(experiment.clone()).unwrap();
    assert_eq!(typed.spec.0.max_trial_count, Some(80));
    assert_eq!(typed.spec.0.objective.objective_metric_name, "value");
    cel("Experiment", &experiment).unwrap();
}

/// `kubectl get wexp` prints what matters of an experiment: its state, the best value, the
/// trials; the status has Katib's shape.
#[test]
fn the_experiment_crd_prints_state_best_and_trials_and_has_katibs_status() {
    let crd = weft_crd::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == "Experiment")
        .unwrap();
    assert_eq!(crd.spec.names.short_names, Some(vec!["wexp".to_string()]));
    assert_eq!(crd.spec.names.categories, Some(vec!["weft".to_string()]));
    let version = &crd.spec.versions[0];
    assert!(version.subresources.as_ref().unwrap().status.is_some());
    let columns: Vec<(String, String, i32)> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.clone(), c.json_path.clone(), c.priority.unwrap_or(0)))
        .collect();
    let shown: Vec<&str> = columns
        .iter()
        .filter(|c| c.2 == 0)
        .map(|c| c.0.as_str())
        .collect();
    assert_eq!(shown, ["State", "Best", "Trials", "Age"]);
    assert!(columns.contains(&("Best".into(), ".status.bestValue".into(), 0)));
    let status = &schema_of("Experiment")["properties"]["status"]["properties"];
    for field in [
        "state",
        "conditions",
        "currentOptimalTrial",
        "trials",
        "trialsSucceeded",
        "trialsFailed",
        "trialsEarlyStopped",
        "trialsRunning",
        "startTime",
        "completionTime",
        "runner",
        "message",
    ] {
        assert!(status.get(field).is_some(), "status.{field} missing");
    }
    let optimal = &status["currentOptimalTrial"]["properties"];
    assert!(optimal["bestTrialName"].is_object());
    assert!(optimal["parameterAssignments"]["items"]["properties"]["value"].is_object());
    let metric = &optimal["observation"]["properties"]["metrics"]["items"]["properties"];
    for field in ["name", "value", "min", "max", "latest"] {
        assert!(metric.get(field).is_some(), "metric.{field} missing");
    }
}

#[test]
fn cel_rules_refuse_what_the_types_cannot_say() {
    let mut pipeline = yaml_file("examples/pipelines/iris/pipeline.yaml");
    pipeline["spec"]["tasks"]["train"]["component"] = json!("no-such-component");
    let err = cel("Pipeline", &pipeline).unwrap_err();
    assert!(
        err.contains("every task's component must be an entry of spec.components"),
        "{err}"
    );

    let mut pipeline = yaml_file("examples/pipelines/iris/pipeline.yaml");
    pipeline["spec"]["tasks"]["train"]["after"] = json!(["nowhere"]);
    let err = cel("Pipeline", &pipeline).unwrap_err();
    assert!(err.contains("`after` must be a task"), "{err}");

    let isvc = yaml_file("examples/services/iris/inferenceservice.yaml");
    let mut bad = isvc.clone();
    bad["spec"]["scaling"]["minReplicas"] = json!(5);
    let err = cel("InferenceService", &bad).unwrap_err();
    assert!(
        err.contains("maxReplicas must be at least minReplicas"),
        "{err}"
    );

    let mut bad = isvc.clone();
    bad["spec"]["scaling"]["resources"] = json!({});
    let err = cel("InferenceService", &bad).unwrap_err();
    assert!(
        err.contains("autoscaling on cpu needs resources.requests.cpu"),
        "{err}"
    );

    let mut bad = isvc.clone();
    bad["spec"]["canary"]["component"] = bad["spec"]["predictor"]["component"].clone();
    bad["spec"]["canary"]["storageUri"] = bad["spec"]["predictor"]["storageUri"].clone();
    let err = cel("InferenceService", &bad).unwrap_err();
    assert!(err.contains("the canary must differ"), "{err}");
}

/// The runner's half of an experiment's status: Katib's counters and currentOptimalTrial, the
/// best trial by the objective's direction (failed trials and NaNs never win), each metric
/// under its strategy's field too.
#[test]
fn the_runners_experiment_status_counts_trials_and_names_the_best() {
    let experiment = yaml_file("examples/experiments/branin.yaml");
    let mut typed: Experiment = serde_json::from_value(experiment).unwrap();
    let trial = |name: &str, state: &str, objective: Option<f64>| weft_crd::TrialProgress {
        name: name.into(),
        state: state.into(),
        parameters: vec![("x1".into(), "3.1".into()), ("x2".into(), "2.2".into())],
        objective,
        metrics: vec![
            ("value".into(), objective.unwrap_or(0.0)),
            ("loss".into(), 0.5),
        ],
    };
    let trials = [
        trial("b-00000", "Succeeded", Some(1.5)),
        trial("b-00001", "Succeeded", Some(0.41)),
        trial("b-00002", "Failed", Some(0.01)),
        trial("b-00003", "Succeeded", Some(f64::NAN)),
        trial("b-00004", "EarlyStopped", Some(9.0)),
        trial("b-00005", "Running", None),
    ];
    let status = weft_crd::runner_status(&typed.spec.0, &trials);
    assert_eq!(status.trials, Some(6));
    assert_eq!(status.trials_succeeded, Some(3));
    assert_eq!(status.trials_failed, Some(1));
    assert_eq!(status.trials_early_stopped, Some(1));
    assert_eq!(status.trials_running, Some(1));
    assert_eq!(status.trial_metrics_unavailable, None);
    assert_eq!(status.best_value, Some(0.41));
    let best = status.current_optimal_trial.as_ref().unwrap();
    assert_eq!(best.best_trial_name, "b-00001");
    assert_eq!(best.parameter_assignments[0].name, "x1");
    assert_eq!(best.parameter_assignments[0].value, "3.1");
    let v = serde_json::to_value(&best.observation).unwrap();
    assert_eq!(
        v,
        json!({"metrics": [
            {"name": "value", "value": 0.41, "min": "0.41"},
            {"name": "loss", "value": 0.5, "min": "0.5"},
        ]})
    );
    // Maximising, the other end wins; with no trial yet, nothing is said.
    typed.spec.0.objective.direction = weft_spec::experiment::ObjectiveType::Maximize;
    let status = weft_crd::runner_status(&typed.spec.0, &trials);
    assert_eq!(status.best_value, Some(1.5));
    assert_eq!(
        serde_json::to_value(weft_crd::runner_status(&typed.spec.0, &[])).unwrap(),
        json!({})
    );
}

fn notebook() -> Value {
    json!({
        "apiVersion": "weft.dev/v1alpha1",
        "kind": "Notebook",
        "metadata": {"name": "lab", "namespace": "team-a"},
        "spec": {
            "template": {"spec": {"containers": [
                {"name": "lab", "image": "ghcr.io/weft-dev/notebook:latest",
                 "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}
            ]}},
            "workspace": {"size": "10Gi"},
            "culling": {"idleTime": "90m"}
        }
    })
}

/// Kubeflow's Notebook: `spec.template.spec` is a whole PodSpec (its schema the API server's
/// own, so a misspelt field is pruned and a wrong type refused), status as Kubeflow's plus the
/// URL; `kubectl get wnb` shows readiness and why not.
#[test]
fn the_notebook_crd_takes_a_pod_spec_and_reports_kubeflows_status() {
    let nb = notebook();
    let typed: Notebook = serde_json::from_value(nb.clone()).unwrap();
    assert_eq!(typed.spec.template.spec.containers[0].name, "lab");
    assert_eq!(
        typed.spec.workspace.as_ref().unwrap().size.as_deref(),
        Some("10Gi")
    );
    cel("Notebook", &nb).unwrap();
    let schema = schema_of("Notebook");
    let pod = &schema["properties"]["spec"]["properties"]["template"]["properties"]["spec"];
    assert!(pod["properties"]["containers"]["items"]["properties"]["image"].is_object());
    assert!(pod["properties"]["securityContext"]["properties"]["fsGroup"].is_object());
    let status = &schema["properties"]["status"]["properties"];
    for field in ["conditions", "readyReplicas", "containerState", "url"] {
        assert!(status.get(field).is_some(), "status.{field} missing");
    }
    let crd = weft_crd::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == "Notebook")
        .unwrap();
    assert_eq!(crd.spec.names.short_names, Some(vec!["wnb".to_string()]));
    assert!(crd.spec.versions[0]
        .subresources
        .as_ref()
        .unwrap()
        .status
        .is_some());
    assert_eq!(
        weft_crd::parse_cull_duration("1440").unwrap().as_secs(),
        86400
    );
    assert_eq!(weft_crd::parse_cull_duration("30s").unwrap().as_secs(), 30);
    assert_eq!(weft_crd::parse_cull_duration("2h").unwrap().as_secs(), 7200);
    for bad in ["0", "-5", "ten", "5d", ""] {
        let err = weft_crd::parse_cull_duration(bad).unwrap_err();
        assert!(err.contains(bad), "{err}");
    }
}

#[test]
fn a_notebook_without_a_container_or_with_a_bad_cull_time_is_refused_clearly() {
    let mut nb = notebook();
    nb["spec"]["template"]["spec"]["containers"] = json!([]);
    let err = cel("Notebook", &nb).unwrap_err();
    assert!(
        err.contains("a Notebook needs a container: spec.template.spec.containers is empty"),
        "{err}"
    );
    for bad in ["0", "0m", "-3", "soon", "5d", "1.5h"] {
        let mut nb = notebook();
        nb["spec"]["culling"]["idleTime"] = json!(bad);
        let err = cel("Notebook", &nb).unwrap_err();
        assert!(
            err.contains("culling.idleTime must be a positive number of minutes"),
            "{bad}: {err}"
        );
    }
    for good in ["1", "1440", "30s", "90m", "2h", "10m"] {
        let mut nb = notebook();
        nb["spec"]["culling"]["idleTime"] = json!(good);
        cel("Notebook", &nb).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    let mut nb = notebook();
    nb["spec"]["workspace"]["size"] = json!("lots");
    let err = cel("Notebook", &nb).unwrap_err();
    assert!(err.contains("workspace.size must be a quantity"), "{err}");
    // Size, path and class may come from the operator's notebook profile; none at all.
    for ws in [
        json!({}),
        json!({"disabled": true}),
        json!({"mountPath": "/work"}),
    ] {
        let mut nb = notebook();
        nb["spec"]["workspace"] = ws.clone();
        cel("Notebook", &nb).unwrap_or_else(|e| panic!("{ws}: {e}"));
    }
}
