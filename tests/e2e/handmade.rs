//! Steps made by hand from WAT: a core module turned into a `weft:pipeline/step` component
//! with wit-component, against the repository's WIT, the way a guest toolchain makes one. They
//! reach what Rust guests cannot emit (several linear memories).

use crate::support::*;
use std::path::PathBuf;

/// `run` of the step world, flattened: eleven i32s in (the step input's strings and lists),
/// a pointer to the result out. The result at `8` is zeroed memory: `ok` with no params.
const RUN: &str = r#"
    (func (export "weft:pipeline/task@0.1.0#run")
      (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
      i32.const 8)
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
      i32.const 4096)
"#;

/// Builds a step component from the body of a core module (memories, functions) plus `RUN`.
pub fn wat_step(s: &Scratch, name: &str, body: &str) -> PathBuf {
    let wat = format!("(module (memory (export \"memory\") 1) {body} {RUN})");
    let mut module = wat::parse_str(&wat).expect("the WAT parses");
    let mut resolve = wit_parser::Resolve::default();
    let (pkg, _) = resolve
        .push_dir(repo_file("wit/pipeline"))
        .expect("the step WIT parses");
    let world = resolve
        .select_world(&[pkg], Some("step"))
        .expect("the step world");
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
        false,
    )
    .expect("embedding the world");
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .expect("a core module")
        .validate(true)
        .encode()
        .expect("a component");
    let path = s.path(&format!("{name}.wasm"));
    std::fs::write(&path, component).unwrap();
    path
}

/// 15 memories of 250 MiB each, every one under `--memory 256MiB` alone: the limit is on the
/// step's memory in all, so instantiation is refused.
#[test]
fn many_memories_are_bounded_together_by_the_memory_limit() {
    let s = Scratch::new();
    let extra = "(memory 4000)".repeat(15);
    let step = wat_step(&s, "many-memories", &extra);
    let step = step.to_str().unwrap();

    let run = s.run(step, &["--memory", "256MiB"]);
    let line = run.failure();
    assert!(
        line.contains("memory limit exceeded") && line.contains("limit 268435456 bytes"),
        "{line}"
    );
    // One such memory alone is within the limit: the component itself is sound.
    let one = wat_step(&s, "one-memory", "(memory 4000)");
    let run = s.run(one.to_str().unwrap(), &["--memory", "256MiB", "--json"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
}
