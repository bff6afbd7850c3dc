//! Steps made by hand from WAT: a core module turned into a `weft:pipeline/step` component
//! with wit-component, against the repository's WIT, the way a guest toolchain makes one. They
//! reach what Rust guests cannot emit (several linear memories).

use crate::support::*;
use std::path::PathBuf;

/// `run` of the step world, flattened: eleven i32s in (the step input's strings and lists),
/// a pointer to the result out, after `before` runs. The result at `8` is zeroed memory: `ok`
/// with no params.
fn run_export(before: &str) -> String {
    format!(
        r#"
    (func (export "weft:pipeline/task@0.1.0#run")
      (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
      {before}
      i32.const 8)
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
      i32.const 4096)
"#
    )
}

/// Builds a step component from the body of a core module (tables, functions) plus `run`,
/// which runs `before` (instructions) first.
pub fn wat_step_running(s: &Scratch, name: &str, body: &str, before: &str) -> PathBuf {
    let run = run_export(before);
    let wat = format!("(module (memory (export \"memory\") 1) {body} {run})");
    let component = weft_test_programs::component_from_wat(&wat, "pipeline", "step");
    let path = s.path(&format!("{name}.wasm"));
    std::fs::write(&path, component).unwrap();
    path
}

/// A step component written as component WAT: one core instance for `run` (with one page of
/// memory), plus `extra` instances of a module that holds one memory of `pages` pages, as a
/// component may (the pool allows one memory per core module, several per component).
fn step_with_memories(s: &Scratch, name: &str, extra: usize, pages: u32) -> PathBuf {
    let instances = "(core instance (instantiate $big))".repeat(extra);
    let wat = format!(
        r#"(component
  (core module $m
    (memory (export "memory") 1)
    (func (export "run") (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
      i32.const 8)
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) i32.const 4096))
  (core module $big (memory {pages}))
  (core instance $i (instantiate $m))
  {instances}
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

/// 15 memories of 250 MiB each, every one under `--memory 256MiB` alone: the limit is on the
/// step's memory in all, so instantiation is refused.
#[test]
fn many_memories_are_bounded_together_by_the_memory_limit() {
    let s = Scratch::new();
    let step = step_with_memories(&s, "many-memories", 15, 4000);
    let step = step.to_str().unwrap();

    let run = s.run(step, &["--memory", "256MiB"]);
    let line = run.failure();
    assert!(
        line.contains("memory limit exceeded") && line.contains("limit 268435456 bytes"),
        "{line}"
    );
    // One such memory alone is within the limit: the component itself is sound.
    let one = step_with_memories(&s, "one-memory", 1, 4000);
    let run = s.run(one.to_str().unwrap(), &["--memory", "256MiB", "--json"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
}
