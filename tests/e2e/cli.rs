//! What users meet at the command line: help, usage errors, components that are not steps.

use crate::support::*;

#[test]
fn help_documents_the_run_command() {
    let s = Scratch::new();
    let out = s.wasm_run().args(["run", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--param",
        "--input",
        "--output-dir",
        "--hermetic",
        "--seed",
        "--memory",
        "--timeout",
        "/inputs/NAME",
    ] {
        assert!(help.contains(flag), "help lacks {flag}:\n{help}");
    }
}

#[test]
fn a_bad_parameter_is_a_usage_error_naming_it() {
    let s = Scratch::new();
    let run = s.run(NOOP, &["--param", "epochs:int=ten"]);
    assert_eq!(run.code(), 2);
    assert!(
        run.stderr().contains("parameter `epochs`"),
        "{}",
        run.stderr()
    );
}

#[test]
fn a_missing_input_names_the_input_and_path() {
    let s = Scratch::new();
    let run = s.run(NOOP, &["--input", "data=/no/such/file.csv"]);
    let err = run.stderr();
    assert_ne!(run.code(), 0);
    assert!(
        err.contains("input `data`") && err.contains("/no/such/file.csv"),
        "{err}"
    );
}

#[test]
fn a_component_of_another_world_is_refused_naming_its_exports() {
    let s = Scratch::new();
    let run = s.run(NOT_A_STEP, &[]);
    assert_eq!(run.code(), 2);
    let err = run.stderr();
    assert!(
        err.contains("does not export `weft:pipeline/task@0.1.0`"),
        "{err}"
    );
    assert!(err.contains("example:greeter/greet@1.0.0"), "{err}");
}

#[test]
fn a_file_that_is_not_a_component_is_refused() {
    let s = Scratch::new();
    let bogus = s.path("bogus.wasm");
    std::fs::write(&bogus, b"\0asm\x01\0\0\0").unwrap(); // a core module header, not a component
    let run = s.run(bogus.to_str().unwrap(), &[]);
    assert_eq!(run.code(), 2);
    assert!(
        run.stderr().contains("not a valid WebAssembly component"),
        "{}",
        run.stderr()
    );
}

#[test]
fn output_into_a_closed_pipe_ends_quietly_without_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    let s = Scratch::new();
    let mut child = s
        .wasm_run()
        .args(["pipeline", "schema"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before the first line (as `| head -0` would).
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        out.status.signal(),
        Some(libc_sigpipe()),
        "{:?}",
        out.status
    );
}

/// SIGPIPE's number on Linux.
fn libc_sigpipe() -> i32 {
    13
}
