//! The CRDs: committed manifests in step with the types, structural as the API server demands,
//! the examples accepted as they are, and the CEL rules refusing what the types cannot.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use weft_crd::{InferenceService, Pipeline, PipelineRun};

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
    assert_eq!(kinds, ["Pipeline", "PipelineRun", "InferenceService"]);
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
