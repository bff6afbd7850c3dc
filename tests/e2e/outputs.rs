//! Output trees shaped against the host that reads them after the step: a symlink swapped in
//! for an output, 20 000-deep nesting, sparse files, directory floods, hard links. Each is
//! refused with an error naming what and where, the host files and the runner unharmed.

use crate::pipelines::{pipeline, run_json, task};
// misbehave_pipeline and fails come from support.
use crate::support::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A pipeline: `shape` runs misbehave in `mode` (with `target` and `levels`), `read` consumes
/// its output artifact.
fn shaping_pipeline(s: &Scratch, mode: &str, target: &Path) -> std::path::PathBuf {
    let text = format!(
        "apiVersion: weft.dev/v1alpha1
kind: Pipeline
metadata:
  name: shape
spec:
  components:
    m:
      source: {MISBEHAVE}
      inputs:
        params:
          mode: {{type: string}}
          target: {{type: string, default: /}}
          levels: {{type: int, default: 20000}}
      outputs:
        artifacts: {{out: Artifact}}
    reader:
      source: {MISBEHAVE}
      inputs:
        params: {{mode: {{type: string}}}}
        artifacts: {{data: Artifact}}
  tasks:
    shape:
      component: m
      params: {{mode: {{value: {mode}}}, target: {{value: \"{}\"}}}}
    read:
      component: reader
      params: {{mode: {{value: echo}}}}
      artifacts: {{data: {{task: shape, output: out}}}}
",
        target.display()
    );
    let path = s.path("shape.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs misbehave with `args`, its output `out` in `dir`.
fn into_out(s: &Scratch, dir: &Path, args: &[&str]) -> Run {
    let mut all = args.to_vec();
    all.extend(["--output-dir", dir.to_str().unwrap(), "-o", "out"]);
    s.run(MISBEHAVE, &all)
}

/// Nothing the failed step wrote is left in the store's scratch space or under a digest.
fn assert_store_clean(s: &Scratch) {
    let tmp = s.path("home/artifacts/tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    assert!(
        left.is_empty(),
        "scratch left behind in {}: {left:?}",
        tmp.display()
    );
    for e in std::fs::read_dir(s.path("home/artifacts/sha256")).unwrap() {
        let e = e.unwrap();
        assert!(
            !e.file_type().unwrap().is_symlink(),
            "a link in the store: {:?}",
            e.path()
        );
    }
}

#[test]
fn a_symlink_swapped_in_for_an_output_is_refused_and_the_host_left_alone() {
    let s = Scratch::new();
    let host = s.path("host-secrets");
    std::fs::create_dir(&host).unwrap();
    let canary = host.join("canary.txt");
    std::fs::write(&canary, "CANARY-SECRET").unwrap();
    std::fs::set_permissions(&canary, std::fs::Permissions::from_mode(0o644)).unwrap();

    let yaml = shaping_pipeline(&s, "swap", &host);
    let run = pipeline(&s, &yaml, &[]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let summary = run_json(&run);
    let shape = task(&summary, "shape");
    assert_eq!(shape["state"], "FAILED", "{shape}");
    let error = shape["error"].as_str().unwrap();
    assert!(
        error.contains("outputs refused") && error.contains("a symlink"),
        "{error}"
    );
    assert_eq!(task(&summary, "read")["state"], "CANCELLED");
    assert!(!run.stdout().contains("CANARY"), "{}", run.stdout());
    let mode = std::fs::metadata(&canary).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644, "the host file's mode is unchanged");
    assert_store_clean(&s);

    // `run --output-dir` refuses the same way, naming the link.
    let out = s.path("out");
    let target = format!("target={}", host.display());
    let run = into_out(&s, &out, &["-p", "mode=swap", "-p", &target]);
    let line = run.failure();
    assert!(
        line.contains("outputs refused") && line.contains("out/out: a symlink"),
        "{line}"
    );
}

#[test]
fn deep_nesting_fails_the_task_not_the_runner() {
    let s = Scratch::new();
    let yaml = shaping_pipeline(&s, "deep", Path::new("/"));
    let run = pipeline(&s, &yaml, &[]);
    assert_eq!(run.code(), 1, "the runner exits normally: {}", run.stderr());
    let summary = run_json(&run);
    assert_eq!(summary["state"], "FAILED");
    let error = task(&summary, "shape")["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("nest deeper than 64 levels"), "{error}");
    assert_store_clean(&s);
}

#[test]
fn sparse_extension_is_charged_against_max_output() {
    let s = Scratch::new();
    let out = s.path("out");
    for how in ["bytes=107374182400", "at=536870912"] {
        let run = into_out(
            &s,
            &out,
            &["-p", "mode=sparse", "-p", how, "--max-output", "1MiB"],
        );
        let line = run.failure();
        assert!(line.contains("output limit exceeded"), "{how}: {line}");
    }
    // Within the limit, a sparse file is fine.
    let run = into_out(
        &s,
        &out,
        &["-p", "mode=sparse", "-p", "bytes=4096", "--json"],
    );
    let outcome = run.json();
    assert_eq!(outcome["artifacts"][0]["bytes"], 4096, "{outcome}");
}

#[test]
fn directories_and_files_created_are_counted() {
    let s = Scratch::new();
    let out = s.path("out");
    let run = into_out(
        &s,
        &out,
        &[
            "-p",
            "mode=mkdirs",
            "-p",
            "count=2000",
            "--max-output-entries",
            "1000",
        ],
    );
    let line = run.failure();
    assert!(
        line.contains("output entries limit exceeded") && line.contains("--max-output-entries"),
        "{line}"
    );
    let fresh = s.path("fresh");
    let run = into_out(
        &s,
        &fresh,
        &[
            "-p",
            "mode=mkdirs",
            "-p",
            "count=500",
            "--max-output-entries",
            "1000",
            "--json",
        ],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr());
}

#[test]
fn hard_links_in_outputs_are_refused() {
    let s = Scratch::new();
    let out = s.path("out");
    let run = into_out(&s, &out, &["-p", "mode=links", "-p", "count=100"]);
    let line = run.failure();
    assert!(
        line.contains("outputs refused") && line.contains("hard links"),
        "{line}"
    );
}

/// Non-finite metrics are recorded as reported (the WIT says so), not a failed task.
#[test]
fn nan_and_infinite_metrics_are_recorded_as_given() {
    let s = Scratch::new();
    let yaml = misbehave_pipeline(
        &s,
        "    nan:
      component: m
      params: {mode: {value: nan-metrics}}
",
    );
    let run = pipeline(&s, &yaml, &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let summary = run_json(&run);
    assert_eq!(task(&summary, "nan")["state"], "SUCCEEDED", "{summary}");
    let values: Vec<String> = summary["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| format!("{}={}", m["name"].as_str().unwrap(), m["value"]))
        .collect();
    assert_eq!(
        values,
        [
            "loss=\"NaN\"",
            "loss=\"Infinity\"",
            "grad=\"-Infinity\"",
            "accuracy=0.5"
        ]
    );
}

/// A digest that is not `sha256:` and 64 lowercase hex digits never becomes a path.
#[test]
fn digests_are_parsed_before_they_become_paths() {
    let s = Scratch::new();
    let (code, err) = fails(
        s.wasm_run()
            .args(["artifacts", "get", "sha256:../../../etc", "--to"])
            .arg(s.path("got")),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("`sha256:../../../etc` is not a digest"),
        "{err}"
    );
    assert!(!s.path("got").exists());

    let yaml = misbehave_pipeline(
        &s,
        "    a:\n      component: m\n      params: {mode: {value: fail}}\n",
    );
    let text = std::fs::read_to_string(&yaml).unwrap().replacen(
        &format!("source: {MISBEHAVE}"),
        &format!("source: sha256:{}", "A".repeat(64)),
        1,
    );
    std::fs::write(&yaml, text).unwrap();
    let run = pipeline(&s, &yaml, &[]);
    assert_ne!(run.code(), 0);
    assert!(
        run.stderr().contains("p.yaml:8:15") && run.stderr().contains("is not a sha256 digest"),
        "{}",
        run.stderr()
    );
}

/// Tree digests are unambiguous (version 2): a file named `a\b` and a file `b` in a directory
/// `a` are different artifacts, as are trees that differ only by an empty directory.
#[test]
fn artifacts_that_differ_get_different_digests() {
    let s = Scratch::new();
    let put = |files: &[&str], dirs: &[&str]| {
        let root = s.path(&format!(
            "tree-{}",
            files.join("+").replace(['/', '\\'], "_")
        ));
        let root = root.join(dirs.len().to_string());
        for d in dirs {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in files {
            let path = root.join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "same bytes").unwrap();
        }
        put_artifact(&s, &root)
    };
    let backslash = put(&["a\\b"], &[]);
    let nested = put(&["a/b"], &[]);
    let with_empty = put(&["a/b"], &["empty"]);
    assert_ne!(backslash, nested);
    assert_ne!(nested, with_empty);
    assert_eq!(nested, put(&["a/b"], &[]), "the same tree, the same digest");
}
