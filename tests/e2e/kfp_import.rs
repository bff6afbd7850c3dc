//! `wasm-run pipeline import-kfp` on IR compiled in the test by the real KFP SDK (`kfp` from
//! PyPI, installed by `cargo xtask test` into the Python WEFT_TEST_PYTHON names): a pipeline of
//! lightweight Python components is converted, built, run, and its outputs checked; pipelines
//! that do not convert are refused with every reason named, and nothing is written.

use crate::pipelines::{pipeline, run_json, task};
use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python with `kfp`, or None (said) when this machine has none.
fn kfp_python() -> Option<String> {
    let Ok(python) = std::env::var("WEFT_TEST_PYTHON") else {
        tool_missing(
            "WEFT_TEST_PYTHON unset: the KFP import tests did not run (cargo xtask test installs kfp)",
        );
        return None;
    };
    let has_kfp = Command::new(&python)
        .args(["-c", "import kfp"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_kfp {
        tool_missing(&format!(
            "{python} has no kfp: the KFP import tests did not run (pip install 'kfp==2.*')"
        ));
        return None;
    }
    Some(python)
}

/// Compiles the KFP pipeline `pipeline_fn` defined in `source` into IR with the KFP SDK.
fn compile(s: &Scratch, python: &str, name: &str, source: &str, pipeline_fn: &str) -> PathBuf {
    let script = s.path(&format!("{name}.py"));
    let ir = s.path(&format!("{name}.yaml"));
    let text = format!(
        "import sys, warnings\nwarnings.filterwarnings('ignore')\n{source}\n\
         from kfp import compiler\ncompiler.Compiler().compile({pipeline_fn}, sys.argv[1])\n"
    );
    std::fs::write(&script, text).unwrap();
    let out = Command::new(python).arg(&script).arg(&ir).output().unwrap();
    assert!(
        out.status.success(),
        "compiling {name} with kfp: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ir
}

fn import_kfp(s: &Scratch, ir: &Path, out: &Path) -> std::process::Output {
    s.wasm_run()
        .env("WEFT_TOOLS_DIR", GUEST_TOOLS)
        .args(["pipeline", "import-kfp"])
        .arg(ir)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

/// Asserts `wasm-run pipeline import-kfp` refused (exit 2) and left nothing behind; its stderr.
fn refused(s: &Scratch, ir: &Path, out: &Path) -> String {
    let result = import_kfp(s, ir, out);
    let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
    assert_eq!(result.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("nothing was written"), "{stderr}");
    assert!(!out.exists(), "{} was written", out.display());
    let left: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("import-kfp"))
        .collect();
    assert!(left.is_empty(), "staging left behind: {left:?}");
    stderr
}

const DEMO: &str = r#"
from typing import NamedTuple
from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

@dsl.component
def make_rows(n: int, rows: Output[Dataset]) -> int:
    with open(rows.path, "w") as f:
        for i in range(1, n + 1):
            f.write(f"{i}\n")
    return n

@dsl.component(packages_to_install=["six==1.16.0"])
def total(rows: Input[Dataset], scale: float, metrics: Output[Metrics]) -> NamedTuple("Outputs", [("sum", float), ("label", str)]):
    import six
    with open(rows.path) as f:
        s = sum(float(line) for line in f) * scale
    metrics.log_metric("sum", s)
    return (s, six.ensure_str("big" if s > 10 else "small"))

@dsl.component
def report(label: str, value: float, out: Output[Dataset]) -> str:
    text = f"{label}: {value}"
    with open(out.path, "w") as f:
        f.write(text)
    return text

@dsl.pipeline(name="kfp-demo")
def demo(n: int = 4, scale: float = 1.5):
    rows = make_rows(n=n)
    t = total(rows=rows.outputs["rows"], scale=scale).set_retry(num_retries=1)
    with dsl.If(t.outputs["sum"] > 10.0):
        report(label=t.outputs["label"], value=t.outputs["sum"])
    with dsl.Else():
        report(label="not big", value=t.outputs["sum"])
    with dsl.ParallelFor(["a", "b", "c"], parallelism=2) as k:
        report(label=k, value=scale)
"#;

fn out_param(summary: &serde_json::Value, name: &str, output: &str) -> serde_json::Value {
    let outputs: serde_json::Value =
        serde_json::from_str(task(summary, name)["outputs_json"].as_str().unwrap()).unwrap();
    outputs[output]["value"].clone()
}

#[test]
fn a_pipeline_compiled_by_the_kfp_sdk_is_imported_built_and_run() {
    let Some(python) = kfp_python() else { return };
    let s = Scratch::new();
    let ir = compile(&s, &python, "demo", DEMO, "demo");
    let dir = s.path("imported");
    let result = import_kfp(&s, &ir, &dir);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(
        stdout.contains("pipeline `kfp-demo` with 5 tasks and 3 Python components"),
        "{stdout}"
    );

    // The function source is KFP's, unchanged; its packages are bundled.
    let app = std::fs::read_to_string(dir.join("components/total/app.py")).unwrap();
    assert!(app.contains("def total(rows: Input[Dataset], scale: float, metrics: Output[Metrics]) -> NamedTuple(\"Outputs\", [(\"sum\", float), (\"label\", str)]):\n    import six\n"), "{app}");
    assert!(app.contains("from kfp.dsl import *"), "{app}");
    let manifest = std::fs::read_to_string(dir.join("components/total/weft.toml")).unwrap();
    assert!(
        manifest.contains("packages = [\"six==1.16.0\"]"),
        "{manifest}"
    );
    assert!(dir
        .join("components/total/target/weft/total.wasm")
        .is_file());

    let file = dir.join("pipeline.yaml");
    let run = pipeline(&s, &file, &[]);
    assert_eq!(run.code(), 0, "{}\n{}", run.stdout(), run.stderr());
    let summary = run_json(&run);
    assert_eq!(summary["state"], "SUCCEEDED");
    assert_eq!(out_param(&summary, "make-rows", "Output"), 4);
    // (1 + 2 + 3 + 4) * 1.5, through the artifact make-rows wrote.
    assert_eq!(out_param(&summary, "total", "sum"), 15.0);
    assert_eq!(out_param(&summary, "total", "label"), "big");
    // dsl.If / dsl.Else.
    assert_eq!(out_param(&summary, "report", "Output"), "big: 15.0");
    assert_eq!(task(&summary, "report-2")["state"], "NOT_TRIGGERED");
    // dsl.ParallelFor: the iterations' values, in order.
    assert_eq!(
        out_param(&summary, "report-3", "Output"),
        serde_json::json!(["a: 1.5", "b: 1.5", "c: 1.5"])
    );
    // The artifact report wrote, and the metric total logged.
    let digest = output_digest(&summary, "report", "out");
    let got = s.path("got");
    succeed(
        s.wasm_run()
            .args(["artifacts", "get", &digest, "--to"])
            .arg(&got),
    );
    assert_eq!(
        std::fs::read_to_string(got.join("out")).unwrap(),
        "big: 15.0"
    );
    let run_id = summary["run_id"].as_str().unwrap();
    let shown = succeed(
        s.wasm_run()
            .args(["runs", "show", run_id, "--output", "json"]),
    );
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    let metrics = shown["metrics"].as_array().unwrap();
    assert!(
        metrics
            .iter()
            .any(|m| m["task"] == "total" && m["name"] == "sum" && m["value"] == 15.0),
        "{metrics:?}"
    );

    // A pipeline parameter that sends it down the other branch.
    let run = pipeline(&s, &file, &["-p", "n=2"]);
    let summary = run_json(&run);
    assert_eq!(summary["state"], "SUCCEEDED", "{}", run.stderr());
    assert_eq!(out_param(&summary, "total", "sum"), 4.5);
    assert_eq!(task(&summary, "report")["state"], "NOT_TRIGGERED");
    assert_eq!(out_param(&summary, "report-2", "Output"), "not big: 4.5");
}

const REFUSED: &str = r#"
from kfp import dsl

@dsl.component(packages_to_install=["numpy"])
def stats(n: int) -> float:
    import numpy as np
    return float(np.mean(np.arange(n)))

@dsl.container_component
def shout(msg: str):
    return dsl.ContainerSpec(image="alpine:3.20", command=["echo"], args=[msg])

@dsl.component
def fine(x: int) -> int:
    return x

@dsl.pipeline(name="kfp-refused")
def refused(n: int = 3):
    fine(x=n)
    stats(n=n)
    shout(msg="hello")
"#;

#[test]
fn container_components_and_native_packages_are_refused_every_one_named() {
    let Some(python) = kfp_python() else { return };
    let s = Scratch::new();
    let ir = compile(&s, &python, "refused", REFUSED, "refused");
    let stderr = refused(&s, &ir, &s.path("out"));
    assert!(
        stderr.contains("2 parts of KFP pipeline `kfp-refused` cannot be converted"),
        "{stderr}"
    );
    let line = |what: &str| {
        stderr
            .lines()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no line about {what}:\n{stderr}"))
            .to_string()
    };
    let numpy = line("deploymentSpec.executors.exec-stats");
    assert!(
        numpy.contains("the package `numpy` has native code")
            && numpy.contains("only pure-Python packages can be bundled"),
        "{numpy}"
    );
    let shout = line("deploymentSpec.executors.exec-shout");
    assert!(
        shout.contains("a container component (image `alpine:3.20`")
            && shout.contains("only lightweight Python components"),
        "{shout}"
    );
}

const NOT_PURE: &str = r#"
from kfp import dsl

@dsl.component(packages_to_install=["markupsafe==3.0.2"])
def escape(text: str) -> str:
    import markupsafe
    return str(markupsafe.escape(text))

@dsl.component
def fine(x: int) -> int:
    return x

@dsl.pipeline(name="kfp-not-pure")
def not_pure():
    fine(x=1)
    escape(text="<b>")
"#;

/// A package the importer does not know to be native is tried by the build, which takes pure
/// Python wheels only: it fails there, named, and nothing is written either.
#[test]
fn a_package_without_a_pure_python_wheel_fails_its_build_and_nothing_is_written() {
    let Some(python) = kfp_python() else { return };
    let s = Scratch::new();
    let ir = compile(&s, &python, "not_pure", NOT_PURE, "not_pure");
    let stderr = refused(&s, &ir, &s.path("out"));
    assert!(
        stderr.contains("1 component of KFP pipeline `kfp-not-pure` did not build"),
        "{stderr}"
    );
    assert!(
        stderr.contains("deploymentSpec.executors.exec-escape (component escape)")
            && stderr.contains("only pure-Python packages can be bundled"),
        "{stderr}"
    );
}
