//! `wasm-run models` and `model-registry://`: a real predictor component and a trained model
//! registered, listed, shown, served from the registry over HTTP and archived; a pipeline run
//! registering its published model with its lineage; bad input refused by name, storing
//! nothing.

use crate::serve::{component, post, start, trained_iris};
use crate::support::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// `wasm-run models ARGS...`, which must succeed: its stdout.
fn models(s: &Scratch, args: &[&str]) -> String {
    let out = succeed(s.wasm_run().arg("models").args(args));
    String::from_utf8(out.stdout).unwrap()
}

fn models_json(s: &Scratch, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["--output", "json"]);
    serde_json::from_str(&models(s, &args)).unwrap()
}

/// An InferenceService file serving `predictor` (the YAML under `predictor:`).
fn service(s: &Scratch, name: &str, predictor: &str) -> PathBuf {
    let path = s.path(&format!("{name}-isvc.yaml"));
    let text = format!(
        "apiVersion: weft.dev/v1alpha1\nkind: InferenceService\nmetadata:\n  name: {name}\nspec:\n  predictor:\n{predictor}"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// `wasm-run serve -f FILE`, which must fail before serving: its exit code and stderr.
fn serve_fails(s: &Scratch, file: &Path) -> (Option<i32>, String) {
    fails(s.wasm_run().args(["serve", "--port", "0", "-f"]).arg(file))
}

/// The entries of the home's artifact store.
fn stored_artifacts(s: &Scratch) -> usize {
    std::fs::read_dir(s.path("home/artifacts/sha256")).map_or(0, |d| d.count())
}

#[test]
fn a_registered_component_and_model_are_listed_shown_served_and_archived() {
    let s = Scratch::new();
    let (model, rows) = trained_iris(&s);
    let predictor = component("iris-predictor");
    let before = stored_artifacts(&s);
    let done = models_json(
        &s,
        &[
            "register",
            "iris",
            "--version",
            "v1",
            "--component",
            &predictor,
            "--model-dir",
            model.to_str().unwrap(),
            "--format",
            "logreg",
            "--format-version",
            "1",
            "--description",
            "first",
            "--author",
            "ann",
            "--property",
            "accuracy=0.97",
            "--property",
            "epochs=300",
        ],
    );
    // The model directory and the component went into the store (the model's files are
    // already there: the run made them); the artifact records both by digest.
    let uri = done["artifact"]["uri"].as_str().unwrap();
    let hex = uri.strip_prefix("sha256:").expect("a digest");
    assert!(s
        .path(&format!("home/artifacts/sha256/{hex}/model.json"))
        .is_file());
    let comp = done["artifact"]["customProperties"]["weft.component"]["string_value"]
        .as_str()
        .unwrap();
    assert!(comp.starts_with("sha256:"), "{done}");
    assert_eq!(stored_artifacts(&s), before + 1, "the component, once");
    assert_eq!(
        done["version"]["customProperties"]["epochs"]["int_value"],
        "300"
    );
    assert_eq!(done["model"]["owner"], "ann");

    let list = models(&s, &["list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("iris ") && l.contains("LIVE")),
        "{list}"
    );
    assert_eq!(models_json(&s, &["list"]).as_array().unwrap().len(), 1);
    let versions = models(&s, &["list", "--versions", "iris"]);
    assert!(versions.lines().any(|l| l.starts_with("v1 ")), "{versions}");
    let shown = models(&s, &["show", "iris", "v1"]);
    for text in [
        &format!("model artifact: {uri}"),
        "format: logreg 1",
        &format!("component: {comp}"),
        "accuracy: 0.97",
        "epochs: 300",
        "author: ann",
        "serve as: model-registry://iris/v1",
    ] {
        assert!(shown.contains(text), "`{text}` in {shown}");
    }

    // Served by naming the version alone: its component, and its model files.
    let file = service(&s, "iris", "    component: model-registry://iris/v1\n");
    let server = start(&s, &["-f", file.to_str().unwrap()]);
    let data: Vec<Vec<f64>> = rows.iter().map(|(x, _)| x.clone()).collect();
    let body = json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [rows.len(), 4], "data": data}], "outputs": [{"name": "label"}]});
    let (code, resp) = post(
        &format!("{}/v2/models/iris/infer", server.url),
        &body.to_string(),
    );
    assert_eq!(code, 200, "{resp}");
    let labels = resp["outputs"][0]["data"].as_array().unwrap();
    let correct = labels
        .iter()
        .zip(&rows)
        .filter(|(l, (_, y))| l.as_str() == Some(y.as_str()))
        .count();
    assert!(correct * 10 >= rows.len() * 9, "{correct}/{}", rows.len());
    drop(server);

    // Archived, the version is shown as such and no longer served.
    assert_eq!(
        models(&s, &["archive", "iris", "v1"]).trim(),
        "archived version v1 of model iris"
    );
    let shown = models_json(&s, &["show", "iris", "v1"]);
    assert_eq!(shown["version"]["state"], "ARCHIVED");
    let (code, err) = serve_fails(&s, &file);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("version `v1` of model `iris` is archived"),
        "{err}"
    );
    assert!(
        err.contains("iris-isvc.yaml:7:"),
        "located at the component: {err}"
    );
}

#[test]
fn a_pipeline_run_registers_its_published_model_with_lineage_and_it_serves() {
    let s = Scratch::new();
    let yaml = s.path("iris.yaml");
    std::fs::write(&yaml, example_text("pipeline.yaml")).unwrap();
    let out = succeed(
        s.wasm_run()
            .args(["pipeline", "run", "--json", "--register-model"])
            .arg("publish.published=iris")
            .arg(&yaml),
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let run_id = summary["run_id"].as_str().unwrap();
    let digest = output_digest(&summary, "publish", "published");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "registered publish.published ({digest}) as model iris, version {run_id}"
        )),
        "{err}"
    );

    // The version names the run, task and artifact that made it, both ways of showing it.
    let shown = models_json(&s, &["show", "iris", run_id]);
    let run = &shown["run"];
    assert_eq!(run["id"], run_id);
    assert_eq!(run["pipeline"], "iris-classifier");
    assert_eq!(run["state"], "SUCCEEDED");
    assert_eq!(run["task"], "publish");
    assert_eq!(run["digest"], digest.as_str());
    let artifact = &shown["artifacts"][0];
    assert_eq!(artifact["uri"], digest.as_str());
    assert_eq!(artifact["modelSourceClass"], "pipelinerun");
    assert_eq!(artifact["modelSourceId"], run_id);
    let text = models(&s, &["show", "iris", run_id]);
    assert!(
        text.contains(&format!(
            "made by: run {run_id} (iris-classifier, SUCCEEDED)"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("task publish output published: {digest}")),
        "{text}"
    );
    let versions = models(&s, &["list", "--versions", "iris"]);
    assert!(versions.contains(run_id), "{versions}");

    // A component of one's own, the registered version as its storageUri.
    let predictor = component("iris-predictor");
    let file = service(
        &s,
        "iris",
        &format!("    component: {predictor}\n    storageUri: model-registry://iris/{run_id}\n"),
    );
    let server = start(&s, &["-f", file.to_str().unwrap()]);
    let body = r#"{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [-1.0, 1.0, -1.3, -1.3]}], "outputs": [{"name": "label"}]}"#;
    let (code, resp) = post(&format!("{}/v2/models/iris/infer", server.url), body);
    assert_eq!(code, 200, "{resp}");
    let label = resp["outputs"][0]["data"][0].as_str().unwrap();
    assert!(
        ["setosa", "versicolor", "virginica"].contains(&label),
        "{resp}"
    );
    drop(server);

    // The same version again is refused before anything runs.
    let runs = |s: &Scratch| {
        let out = succeed(s.wasm_run().args(["runs", "list", "--output", "json"]));
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .len()
    };
    let before = runs(&s);
    let (code, err) = fails(
        s.wasm_run()
            .args(["pipeline", "run", "--register-model"])
            .arg(format!("publish.published=iris:{run_id}"))
            .arg(&yaml),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!("model `iris` already has a version `{run_id}`")),
        "{err}"
    );
    assert_eq!(runs(&s), before, "no run started");
}

#[test]
fn bad_input_is_refused_by_name_and_stores_nothing() {
    let s = Scratch::new();
    let dir = s.path("model");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("model.json"), "{}").unwrap();
    let dir = dir.to_str().unwrap();
    let refused = |args: &[&str], text: &str| {
        let (code, err) = fails(s.wasm_run().arg("models").args(args));
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(text), "{args:?}: `{text}` in {err}");
    };
    refused(&["show", "nope"], "no registered model `nope`");
    refused(&["archive", "nope", "v1"], "no registered model `nope`");
    refused(
        &["list", "--versions", "nope"],
        "no registered model `nope`",
    );
    let register = |more: &[&str]| -> Vec<String> {
        let mut args = vec!["register", "m", "--version", "v1"];
        args.extend(more);
        args.iter().map(|a| a.to_string()).collect()
    };
    let cases: [(&[&str], &str); 7] = [
        (&["--model-dir", dir, "--property", "novalue"], "`novalue`"),
        (&["--model-dir", dir, "--property", "n:int=x"], "`n:int=x`"),
        (
            &["--model-dir", dir, "--property", "weft.run=x"],
            "are Weft's own",
        ),
        (
            &[
                "--component",
                &format!("{dir}/model.json"),
                "--model-dir",
                dir,
            ],
            "not a WebAssembly component",
        ),
        (
            &["--model-dir", &format!("{dir}/missing")],
            "not a directory",
        ),
        (
            &["--uri", &format!("sha256:{}", "a".repeat(64))],
            "no such artifact",
        ),
        (
            &["--uri", "s3://b/m", "--model-dir", dir],
            "cannot be used with",
        ),
    ];
    for (more, text) in cases {
        let args = register(more);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&args, text);
    }
    // Nothing of any of them was stored.
    assert_eq!(models_json(&s, &["list"]), json!([]));
    assert_eq!(stored_artifacts(&s), 0);

    // A version registered without model files, then archived with its model.
    models(
        &s,
        &[
            "register",
            "echo",
            "--version",
            "v1",
            "--component",
            &component("echo-predictor"),
        ],
    );
    refused(
        &["register", "echo", "--version", "v1", "--uri", "s3://b/e"],
        "model `echo` already has a version `v1`",
    );
    refused(&["show", "echo", "v9"], "model `echo` has no version `v9`");
    let storage = |uri: &str| {
        let predictor = component("echo-predictor");
        service(
            &s,
            "echo",
            &format!("    component: {predictor}\n    storageUri: {uri}\n"),
        )
    };
    for (uri, text) in [
        (
            "model-registry://echo/v1",
            "the version's model artifact has no uri",
        ),
        ("model-registry://nope/v1", "no registered model `nope`"),
        (
            "model-registry://echo/v9",
            "model `echo` has no version `v9`",
        ),
        (
            "model-registry://echo",
            "write model-registry://NAME/VERSION",
        ),
    ] {
        let (code, err) = serve_fails(&s, &storage(uri));
        assert_eq!(code, Some(2), "{uri}: {err}");
        assert!(
            err.contains(text) && err.contains("echo-isvc.yaml:8:"),
            "{uri}: {err}"
        );
    }
    assert_eq!(
        models(&s, &["archive", "echo"]).trim(),
        "archived model echo"
    );
    refused(
        &["register", "echo", "--version", "v2", "--uri", "s3://b/e"],
        "model `echo` is archived",
    );
    let file = service(&s, "echo", "    component: model-registry://echo/v1\n");
    let (code, err) = serve_fails(&s, &file);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("model `echo` is archived"), "{err}");

    // A pipeline run naming a task or output it lacks is refused before it runs.
    let yaml = s.path("iris.yaml");
    std::fs::write(&yaml, example_text("pipeline.yaml")).unwrap();
    for (arg, text) in [
        ("nope.model=m", "the pipeline has no task `nope`"),
        (
            "train.nope=m",
            "task `train` has no output artifact `nope` (its output artifacts: model)",
        ),
    ] {
        let (code, err) = fails(
            s.wasm_run()
                .args(["pipeline", "run", "--register-model", arg])
                .arg(&yaml),
        );
        assert_eq!(code, Some(2), "{arg}: {err}");
        assert!(err.contains(text), "{arg}: {err}");
    }
    let out = succeed(s.wasm_run().args(["runs", "list", "--output", "json"]));
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        json!([])
    );
}

/// `models_json` in a registry namespace (`--namespace` before the subcommand).
fn models_json_in(s: &Scratch, ns: &str, args: &[&str]) -> Value {
    let mut all = vec!["--namespace", ns];
    all.extend(args);
    models_json(s, &all)
}

#[test]
fn one_model_name_in_two_namespaces_resolves_to_each_namespaces_version() {
    let s = Scratch::new();
    let predictor = component("iris-predictor");
    // Two models told apart by their class labels.
    let mut uris = Vec::new();
    for ns in ["team-a", "team-b"] {
        let dir = s.path(&format!("model-{ns}"));
        crate::serve::write_iris_model(&dir);
        let path = dir.join("model.json");
        let mut model: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        model["classes"] =
            json!(["setosa", "versicolor", "virginica"].map(|c| format!("{ns}-{c}")));
        std::fs::write(&path, model.to_string()).unwrap();
        let done = models_json_in(
            &s,
            ns,
            &[
                "register",
                "iris",
                "--version",
                "v1",
                "--component",
                &predictor,
                "--model-dir",
                dir.to_str().unwrap(),
            ],
        );
        assert_eq!(done["model"]["name"], "iris");
        uris.push(done["artifact"]["uri"].as_str().unwrap().to_string());
    }
    assert_ne!(uris[0], uris[1], "two models, two digests");
    // A version in team-b only; the flag also after the subcommand.
    models(
        &s,
        &[
            "register",
            "iris",
            "--version",
            "v2",
            "--uri",
            &uris[1],
            "--namespace",
            "team-b",
        ],
    );

    // Each namespace sees its own; the default namespace none of them.
    for (ns, uri) in [("team-a", &uris[0]), ("team-b", &uris[1])] {
        let shown = models_json_in(&s, ns, &["show", "iris", "v1"]);
        assert_eq!(shown["artifacts"][0]["uri"], uri.as_str(), "{ns}: {shown}");
        let list = models_json(&s, &["list", "--namespace", ns]);
        assert_eq!(list.as_array().unwrap().len(), 1, "{ns}: {list}");
    }
    assert_eq!(models_json(&s, &["list"]), json!([]));
    let (code, err) =
        fails(
            s.wasm_run()
                .args(["models", "show", "iris", "v2", "--namespace", "team-a"]),
        );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("model `iris` has no version `v2` in namespace `team-a`")
            && err.contains("wasm-run models --namespace team-a list --versions iris"),
        "{err}"
    );

    // Served: the resource's own namespace, else `serve --namespace`.
    let infer = |server: &crate::serve::Server| -> String {
        let body = r#"{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [-1.0, 1.0, -1.3, -1.3]}], "outputs": [{"name": "label"}]}"#;
        let (code, resp) = post(&format!("{}/v2/models/iris/infer", server.url), body);
        assert_eq!(code, 200, "{resp}");
        resp["outputs"][0]["data"][0].as_str().unwrap().to_string()
    };
    let in_ns = |ns: &str, version: &str| {
        let path = s.path(&format!("iris-{ns}-{version}-isvc.yaml"));
        let text = format!(
            "apiVersion: weft.dev/v1alpha1\nkind: InferenceService\nmetadata:\n  name: iris\n  namespace: {ns}\nspec:\n  predictor:\n    component: model-registry://iris/{version}\n"
        );
        std::fs::write(&path, text).unwrap();
        path
    };
    let file = in_ns("team-a", "v1");
    let server = start(&s, &["-f", file.to_str().unwrap()]);
    let label = infer(&server);
    assert!(label.starts_with("team-a-"), "{label}");
    drop(server);
    let file = service(&s, "iris", "    component: model-registry://iris/v1\n");
    let server = start(&s, &["-f", file.to_str().unwrap(), "--namespace", "team-b"]);
    let label = infer(&server);
    assert!(label.starts_with("team-b-"), "{label}");
    drop(server);

    // Not found in the namespace it is looked up in, which the error names.
    let (code, err) = serve_fails(&s, &in_ns("team-a", "v2"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(
            "model-registry://iris/v2: model `iris` has no version `v2` in namespace `team-a`"
        ) && err.contains("iris-team-a-v2-isvc.yaml:8:"),
        "{err}"
    );
    let (code, err) = serve_fails(&s, &file);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("no registered model `iris` in namespace `default`"),
        "{err}"
    );
    // The file's namespace and another --namespace: refused, naming both.
    let (code, err) = fails(
        s.wasm_run()
            .args(["serve", "--port", "0", "--namespace", "team-b", "-f"])
            .arg(in_ns("team-a", "v1")),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("namespace `team-a` is not --namespace `team-b`"),
        "{err}"
    );
}
