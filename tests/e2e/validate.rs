//! `pipeline validate` checks everything a run would and writes nothing: no input imported
//! into the artifact store, no component (least of all a rejected one) into the component
//! store; and a path that would import more than it names is refused.

use crate::support::*;
use std::path::Path;

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

fn pipeline_with(s: &Scratch, source: &str, artifact_path: &str) -> std::path::PathBuf {
    let data = s.path("data.csv");
    std::fs::write(&data, "a,b\n1,2\n").unwrap();
    let yaml = s.path("p.yaml");
    std::fs::write(
        &yaml,
        format!(
            "apiVersion: weft.dev/v1alpha1
kind: Pipeline
metadata: {{name: p}}
spec:
  artifacts:
    data: {{type: Dataset, path: {artifact_path:?}}}
  components:
    c:
      source: {source}
      inputs: {{artifacts: {{data: Dataset}}}}
  tasks:
    t:
      component: c
      artifacts: {{data: {{artifact: data}}}}
"
        ),
    )
    .unwrap();
    yaml
}

#[test]
fn validate_writes_nothing_into_the_stores() {
    let s = Scratch::new();
    let good = pipeline_with(&s, NOOP, "data.csv");
    succeed(s.wasm_run().args(["pipeline", "validate"]).arg(&good));
    let bad = pipeline_with(&s, NOT_A_STEP, "data.csv");
    let (code, err) = fails(s.wasm_run().args(["pipeline", "validate"]).arg(&bad));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("p.yaml:") && err.contains("component `c`"),
        "{err}"
    );
    assert_eq!(
        entries(&s.path("home/artifacts/sha256")),
        0,
        "no input imported"
    );
    assert_eq!(
        entries(&s.path("home/components")),
        0,
        "no component stored"
    );

    // A run stores the good component, never the rejected one.
    let run = Run(s
        .wasm_run()
        .args(["pipeline", "run"])
        .arg(&bad)
        .output()
        .unwrap());
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert_eq!(
        entries(&s.path("home/components")),
        0,
        "rejected component not stored"
    );
}

#[test]
fn an_input_path_must_name_a_file_or_directory_of_its_own() {
    let s = Scratch::new();
    for path in ["", "/"] {
        let yaml = pipeline_with(&s, NOOP, path);
        for cmd in ["validate", "run"] {
            let (code, err) = fails(s.wasm_run().args(["pipeline", cmd]).arg(&yaml));
            assert_eq!(code, Some(2), "{cmd} with path {path:?}: {err}");
            assert!(
                err.contains("spec.artifacts.data.path") || err.contains("p.yaml:"),
                "{err}"
            );
            assert!(err.contains("names no file or directory"), "{err}");
        }
    }
    assert_eq!(entries(&s.path("home/artifacts/sha256")), 0);
}
