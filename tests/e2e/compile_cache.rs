//! Compiled components as a Python or JS author meets them: a first use says it compiles and
//! how long it took, `compile` and `pipeline validate --compile` do it ahead of time, a rerun
//! answered by the result cache compiles nothing, a component that cannot link fails before
//! its compile, and the compiled cache stays under its cap (`cache list|prune`).

use crate::support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The compiled cache of `s`'s home.
fn cache_dir(s: &Scratch) -> PathBuf {
    s.path("home/cache/components")
}

/// The compiled entries in `s`'s home: (file name, bytes).
fn cache_entries(s: &Scratch) -> Vec<(String, u64)> {
    match std::fs::read_dir(cache_dir(s)) {
        Err(_) => Vec::new(),
        Ok(dir) => dir
            .map(|e| e.unwrap())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".cwasm"))
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (name, e.metadata().unwrap().len())
            })
            .collect(),
    }
}

/// `sha256:<hex>` of a file.
fn digest_of(path: &str) -> String {
    weft_runtime::digest(&std::fs::read(path).unwrap())
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_first_use_says_it_compiles_and_how_long_and_a_cached_one_says_nothing() {
    let s = Scratch::new();
    let args = ["-p", "mode=env", "-p", "var=HOME", "--json"];
    let first = s.run(MISBEHAVE_PY, &args);
    first.json();
    let err = first.stderr();
    assert!(
        err.contains("compiling misbehave-py.wasm (first use)…"),
        "{err}"
    );
    let line = err
        .lines()
        .find(|l| l.starts_with("compiled misbehave-py.wasm in "))
        .unwrap_or_else(|| panic!("no compile time: {err}"));
    assert!(line.ends_with(" s"), "{line}");

    let again = s.run(MISBEHAVE_PY, &args);
    again.json();
    assert!(!again.stderr().contains("compil"), "{}", again.stderr());

    // Ahead of time: already there.
    let out = succeed(s.wasm_run().arg("compile").arg(MISBEHAVE_PY));
    assert_eq!(
        stdout(&out),
        format!(
            "{MISBEHAVE_PY}: already compiled ({})\n",
            digest_of(MISBEHAVE_PY)
        )
    );
}

#[test]
fn compile_and_validate_compile_do_it_ahead_so_the_first_run_waits_for_nothing() {
    let s = Scratch::new();
    let out = succeed(s.wasm_run().arg("compile").arg(MISBEHAVE_JS).arg(NOOP));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("{MISBEHAVE_JS}: compiled in ")),
        "{text}"
    );
    assert!(text.contains(&digest_of(MISBEHAVE_JS)), "{text}");
    assert!(text.contains(&format!("{NOOP}: compiled in ")), "{text}");
    assert_eq!(cache_entries(&s).len(), 2);
    let run = s.run(
        MISBEHAVE_JS,
        &["-p", "mode=env", "-p", "var=HOME", "--json"],
    );
    run.json();
    assert!(!run.stderr().contains("compil"), "{}", run.stderr());

    // One that cannot be compiled is named; the others still are.
    let (code, err) = fails(
        s.wasm_run()
            .arg("compile")
            .arg(NOT_A_STEP)
            .arg(CSV_TRANSFORM),
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("not a Weft step"), "{err}");
    assert_eq!(cache_entries(&s).len(), 3, "csv-transform compiled anyway");

    // `pipeline validate --compile`: every component of the pipeline, named as the pipeline
    // names it.
    let yaml = s.path("p.yaml");
    std::fs::write(&yaml, example_pipeline_text("polyglot/pipeline.yaml")).unwrap();
    let out = succeed(
        s.wasm_run()
            .args(["pipeline", "validate", "--compile"])
            .arg(&yaml),
    );
    let text = stdout(&out);
    assert!(text.contains("valid pipeline `polyglot-iris`"), "{text}");
    for name in ["profile", "filter", "scale", "split", "train", "evaluate"] {
        assert!(
            text.contains(&format!("{name}: compiled in ")),
            "{name}: {text}"
        );
    }
    let out = succeed(
        s.wasm_run()
            .args(["pipeline", "validate", "--compile"])
            .arg(&yaml),
    );
    assert_eq!(stdout(&out).matches(": already compiled (").count(), 6);
    let out = succeed(s.wasm_run().args(["pipeline", "run"]).arg(&yaml));
    assert!(!stderr(&out).contains("compil"), "{}", stderr(&out));
}

/// A rerun whose every task is a cache hit needs no compiled component: with the compiled
/// cache removed in between, it writes no entry (nothing was compiled), and the first run
/// announced each compile by the pipeline's component names.
#[test]
fn a_rerun_answered_by_the_result_cache_compiles_nothing() {
    let s = Scratch::new();
    let yaml = s.path("p.yaml");
    std::fs::write(&yaml, example_pipeline_text("polyglot/pipeline.yaml")).unwrap();
    let first = succeed(s.wasm_run().args(["pipeline", "run"]).arg(&yaml));
    let err = stderr(&first);
    assert!(err.contains("compiling profile (first use)…"), "{err}");
    assert!(err.contains("compiling filter (first use)…"), "{err}");
    assert!(err.contains("compiled profile in "), "{err}");
    assert_eq!(cache_entries(&s).len(), 6);

    std::fs::remove_dir_all(cache_dir(&s)).unwrap();
    let started = Instant::now();
    let again = succeed(s.wasm_run().args(["pipeline", "run", "--json"]).arg(&yaml));
    let took = started.elapsed();
    let summary: Value = serde_json::from_slice(&again.stdout).unwrap();
    for t in summary["tasks"].as_array().unwrap() {
        assert_eq!(t["state"], "SKIPPED", "{t}");
    }
    assert!(cache_entries(&s).is_empty(), "{:?}", cache_entries(&s));
    assert!(!stderr(&again).contains("compil"), "{}", stderr(&again));
    eprintln!("rerun, every task cached, no compiled cache: {took:?}");
}

/// The iterations of a loop over a JavaScript step run at once, and the component is compiled
/// once for them all: the first compiles, the others wait for it.
#[test]
fn a_loop_over_a_js_step_compiles_it_once() {
    let s = Scratch::new();
    let yaml = s.path("loop.yaml");
    std::fs::write(
        &yaml,
        format!(
            "apiVersion: weft.dev/v1alpha1
kind: Pipeline
metadata: {{name: loop}}
spec:
  components:
    js:
      source: {MISBEHAVE_JS}
      inputs:
        params:
          mode: {{type: string, default: env}}
          var: {{type: string}}
  tasks:
    each:
      component: js
      parallelFor: {{items: {{value: [A, B, C, D]}}, parallelism: 4}}
      params: {{var: {{loopItem: .}}}}
"
        ),
    )
    .unwrap();
    let out = succeed(
        s.wasm_run()
            .args(["pipeline", "run", "--parallelism", "4"])
            .arg(&yaml),
    );
    let err = stderr(&out);
    assert_eq!(err.matches("compiling js (first use)…").count(), 1, "{err}");
    assert_eq!(err.matches("compiled js in ").count(), 1, "{err}");
    assert_eq!(cache_entries(&s).len(), 1);
}

/// A step component, as component WAT, that imports `imports` (WAT import declarations)
/// besides what its `run` needs (nothing).
fn step_importing(s: &Scratch, name: &str, imports: &str) -> PathBuf {
    let wat = format!(
        r#"(component
  {imports}
  (core module $m
    (memory (export "memory") 1)
    (func (export "run") (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
      i32.const 8)
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) i32.const 4096))
  (core instance $i (instantiate $m))
  (type $param-value' (variant (case "str" string) (case "int" s64) (case "float" f64)
    (case "boolean" bool) (case "json" string)))
  (export $param-value "param-value" (type $param-value'))
  (type $param' (record (field "name" string) (field "value" $param-value)))
  (export $param "param" (type $param'))
  (type $artifact' (record (field "name" string) (field "path" string)))
  (export $artifact "artifact" (type $artifact'))
  (type $ctx' (record (field "run-id" string) (field "task-name" string) (field "attempt" u32)))
  (export $ctx "step-context" (type $ctx'))
  (type $input' (record (field "context" $ctx) (field "params" (list $param))
    (field "inputs" (list $artifact)) (field "outputs" (list $artifact))))
  (export $input "step-input" (type $input'))
  (type $output' (record (field "params" (list $param))))
  (export $output "step-output" (type $output'))
  (func $run (param "input" $input) (result (result $output (error string)))
    (canon lift (core func $i "run") (memory (core memory $i "memory"))
      (realloc (core func $i "realloc"))))
  (instance $task
    (export "step-input" (type $input))
    (export "step-output" (type $output))
    (export "run" (func $run)))
  (export "weft:pipeline/task@0.1.0" (instance $task)))"#
    );
    let bytes = wat::parse_str(&wat).expect("the component WAT parses");
    let path = s.path(&format!("{name}.wasm"));
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_component_whose_imports_are_not_provided_fails_before_its_compile_naming_them() {
    let s = Scratch::new();
    let unknown = step_importing(
        &s,
        "unknown",
        r#"(import "wasi:http/outgoing-handler@0.2.3" (instance (export "handle" (func))))
  (import "example:nowhere/thing@1.0.0" (instance))
  (import "wasi:cli/environment@0.2.3" (instance (export "get-arguments" (func (result (list string))))))"#,
    );
    let run = s.run(unknown.to_str().unwrap(), &[]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    let err = run.stderr();
    assert!(
        err.contains(
            "`wasi:http/outgoing-handler@0.2.3`, `example:nowhere/thing@1.0.0` are not provided to steps"
        ),
        "{err}"
    );
    assert!(err.contains("-d http -d fetch-event"), "{err}");
    assert!(!err.contains("compiling"), "{err}");
    assert!(cache_entries(&s).is_empty(), "nothing was compiled");

    // An interface that is provided, with a function that is not: wasmtime's words.
    let mismatch = step_importing(
        &s,
        "mismatch",
        r#"(import "wasi:cli/environment@0.2.3" (instance (export "get-everything" (func))))"#,
    );
    let run = s.run(mismatch.to_str().unwrap(), &[]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(
        run.stderr().contains("`wasi:cli/environment@0.2.3`")
            && run.stderr().contains("get-everything"),
        "{}",
        run.stderr()
    );
    assert!(cache_entries(&s).is_empty(), "nothing was compiled");

    // Planning a run checks the same, compiling nothing.
    let yaml = s.path("p.yaml");
    std::fs::write(
        &yaml,
        format!(
            "apiVersion: weft.dev/v1alpha1\nkind: Pipeline\nmetadata: {{name: p}}\nspec:\n  components:\n    web: {{source: {}}}\n  tasks:\n    t: {{component: web}}\n",
            unknown.display()
        ),
    )
    .unwrap();
    let (code, err) = fails(s.wasm_run().args(["pipeline", "validate"]).arg(&yaml));
    assert_eq!(code, Some(2));
    assert!(
        err.contains("component `web`") && err.contains("are not provided to steps"),
        "{err}"
    );
}

/// A componentize-js build that keeps its default `wasi:http` imports (no `-d http`) fails in
/// well under its compile's time, naming what it imports.
#[test]
fn a_default_componentize_js_build_is_refused_before_its_compile() {
    let bin = Path::new(GUEST_TOOLS).join("js/node_modules/.bin/componentize-js");
    if !bin.is_file() {
        return tool_missing(&format!("{} missing: skipped", bin.display()));
    }
    let s = Scratch::new();
    let wit = s.path("wit");
    std::fs::create_dir_all(wit.join("deps/pipeline")).unwrap();
    std::fs::copy(repo_file("wit/js/world.wit"), wit.join("world.wit")).unwrap();
    std::fs::copy(
        repo_file("wit/pipeline/step.wit"),
        wit.join("deps/pipeline/step.wit"),
    )
    .unwrap();
    for dep in ["filesystem", "io", "clocks", "cli", "random", "sockets"] {
        std::fs::create_dir_all(wit.join("deps").join(dep)).unwrap();
        std::fs::copy(
            repo_file(&format!("wit/js/deps/wasi/{dep}.wit")),
            wit.join("deps").join(dep).join(format!("{dep}.wit")),
        )
        .unwrap();
    }
    std::fs::write(
        s.path("app.js"),
        "export const task = { run(input) { return { params: [] }; } };\n",
    )
    .unwrap();
    let component = s.path("web.wasm");
    succeed(
        std::process::Command::new(&bin)
            .arg(s.path("app.js"))
            .arg("--wit")
            .arg(&wit)
            .args(["--world-name", "step", "-o"])
            .arg(&component),
    );
    let started = Instant::now();
    let run = s.run(component.to_str().unwrap(), &[]);
    let took = started.elapsed();
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(
        run.stderr().contains("`wasi:http/") && run.stderr().contains("not provided to steps"),
        "{}",
        run.stderr()
    );
    assert!(cache_entries(&s).is_empty(), "nothing was compiled");
    eprintln!("default componentize-js build refused in {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

/// `cache list --output json` of `s`'s home.
fn listed(s: &Scratch) -> Vec<Value> {
    let out = succeed(s.wasm_run().args(["cache", "list", "--output", "json"]));
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn cache_list_shows_entries_and_prune_removes_the_least_recently_used() {
    let s = Scratch::new();
    succeed(s.wasm_run().arg("compile").arg(NOOP));
    succeed(s.wasm_run().arg("compile").arg(CSV_TRANSFORM));
    // A use of noop's entry makes csv-transform's the least recently used.
    std::thread::sleep(Duration::from_millis(20));
    s.run(NOOP, &["--json"]).json();

    let entries = listed(&s);
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0]["digest"], digest_of(NOOP), "most recent first");
    assert_eq!(entries[1]["digest"], digest_of(CSV_TRANSFORM));
    let table = stdout(&succeed(s.wasm_run().args(["cache", "list"])));
    assert!(table.contains(&digest_of(NOOP)), "{table}");
    assert!(table.contains("2 entries"), "{table}");
    assert!(table.contains("cap 2.0 GiB"), "{table}");

    let noop_bytes = entries[0]["bytes"].as_u64().unwrap();
    let out = succeed(
        s.wasm_run()
            .args(["cache", "prune", "--max"])
            .arg(noop_bytes.to_string()),
    );
    assert!(
        stdout(&out).starts_with("removed 1 entries"),
        "{}",
        stdout(&out)
    );
    let left = listed(&s);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["digest"], digest_of(NOOP));

    succeed(s.wasm_run().args(["cache", "prune", "--all"]));
    assert!(listed(&s).is_empty());
}

#[test]
fn a_run_under_a_small_cap_keeps_the_cache_under_it() {
    // The sizes of two compiled components, to put the cap between one and both.
    let sizes = Scratch::new();
    succeed(sizes.wasm_run().arg("compile").arg(NOOP).arg(MISBEHAVE));
    let bytes: Vec<u64> = listed(&sizes)
        .iter()
        .map(|e| e["bytes"].as_u64().unwrap())
        .collect();
    let cap = bytes.iter().max().unwrap() + bytes.iter().min().unwrap() / 2;

    let s = Scratch::new();
    let run = |component: &str, cap: &str| {
        s.run_with(
            component,
            &["-p", "mode=env", "-p", "var=HOME", "--json"],
            |c| {
                c.env("WEFT_CACHE_MAX", cap);
            },
        )
        .json();
    };
    run(NOOP, &cap.to_string());
    run(MISBEHAVE, &cap.to_string());
    let entries = listed(&s);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        entries[0]["digest"],
        digest_of(MISBEHAVE),
        "the newest stays"
    );
    let total: u64 = cache_entries(&s).iter().map(|(_, b)| b).sum();
    assert!(total <= cap, "{total} > {cap}");

    // A cap smaller than one entry keeps none, and the step still runs.
    run(NOOP, "1KiB");
    assert!(cache_entries(&s).is_empty(), "{:?}", cache_entries(&s));
}
