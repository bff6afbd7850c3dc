//! Failures said in one line: what happened and which flag changes it.

use crate::handmade::wat_step_running;
use crate::support::*;

#[test]
fn a_guest_stack_overflow_is_called_one() {
    let s = Scratch::new();
    let line = s.run(MISBEHAVE, &["-p", "mode=recurse"]).failure();
    assert!(
        line.contains("stack overflow") && line.contains("recursed too deeply"),
        "{line}"
    );
}

#[test]
fn exit_inside_run_says_so() {
    let s = Scratch::new();
    let line = s
        .run(MISBEHAVE, &["-p", "mode=exit", "-p", "code=0"])
        .failure();
    assert!(line.contains("called exit(0) inside `run`"), "{line}");
    assert!(!line.contains("trap"), "{line}");
}

/// A table grown past the default limit trips the limit (with its flag), not the pool's
/// capacity (a bare `unreachable`); a limit above what the pool holds is refused up front.
#[test]
fn the_default_table_limit_is_the_one_reached() {
    let s = Scratch::new();
    let grow = wat_step_running(
        &s,
        "table-grow",
        "(table $t 1 funcref)",
        "(if (i32.eq (table.grow $t (ref.null func) (i32.const 150000)) (i32.const -1))
           (then unreachable))",
    );
    let line = s.run(grow.to_str().unwrap(), &[]).failure();
    assert!(
        line.contains("table limit exceeded") && line.contains("limit 100000"),
        "{line}"
    );
    // A limit the host cannot grant is bad input (exit 2), not the step's failure.
    let refused = s.run(grow.to_str().unwrap(), &["--max-table-elements", "200000"]);
    assert_eq!(refused.code(), 2, "{}", refused.stderr());
    assert!(
        refused.stderr().contains("above the maximum 100000"),
        "{}",
        refused.stderr()
    );
}

/// Every file a user names is read only if it is a regular file, and only so far: `/dev/zero`
/// used to be read until memory ran out, and a FIFO hung the command. Each is refused at once
/// with exit 2, naming the path. (The deadline guards against the old hang; it is not a
/// timing assertion.)
#[test]
fn devices_and_fifos_are_refused_not_read_forever() {
    let s = Scratch::new();
    let fifo = s.path("fifo");
    succeed(std::process::Command::new("mkfifo").arg(&fifo));
    // A pipeline whose component source is the FIFO.
    let pipeline = s.path("p.yaml");
    std::fs::write(
        &pipeline,
        format!(
            "apiVersion: weft.dev/v1alpha1\nkind: Pipeline\nmetadata: {{name: p}}\nspec:\n  components:\n    c: {{source: {}}}\n  tasks:\n    t: {{component: c}}\n",
            fifo.display()
        ),
    )
    .unwrap();
    let f = fifo.to_str().unwrap();
    let fifo_input = format!("data={f}");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["run", "/dev/zero"], "/dev/zero"),
        (vec!["run", f], f),
        (vec!["pipeline", "run", "/dev/zero"], "/dev/zero"),
        (vec!["pipeline", "validate", "/dev/zero"], "/dev/zero"),
        (vec!["pipeline", "run", f], f),
        (vec!["pipeline", "run", pipeline.to_str().unwrap()], f),
        (vec!["serve", "--file", "/dev/zero"], "/dev/zero"),
        (vec!["run", NOOP, "--input", "data=/dev/zero"], "/dev/zero"),
        (vec!["run", NOOP, "--input", &fifo_input], f),
        (vec!["artifacts", "put", f], f),
    ];
    for (args, named) in cases {
        let mut child = s
            .wasm_run()
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > until {
                let _ = child.kill();
                panic!("{args:?} hung");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(named), "{args:?} names {named}: {err}");
    }
}

/// Errors say what is wrong once, in one line, with what to do, and quote no more of the
/// input than a screen holds.
#[test]
fn errors_are_one_line_said_once_and_bounded() {
    let s = Scratch::new();
    // A pipeline run, so the metadata database holds history.
    let yaml = misbehave_pipeline(&s, "    t: {component: busy}\n");
    succeed(s.wasm_run().args(["pipeline", "run"]).arg(&yaml));
    let db = s.path("home/metadata.db");
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(bytes.len() > 8192, "{}", bytes.len());
    bytes[4096..8192].fill(0x5a);
    std::fs::write(&db, &bytes).unwrap();
    let (code, err) = fails(s.wasm_run().args(["runs", "list"]));
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.matches("malformed").count(), 1, "said once: {err}");
    assert!(
        err.contains("metadata.db") && err.contains("restore it from a backup"),
        "{err}"
    );

    // Truncated to nothing: refused, not taken for a new, empty history.
    std::fs::write(&db, b"").unwrap();
    let (code, err) = fails(s.wasm_run().args(["runs", "list"]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("empty (0 bytes)"), "{err}");
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0, "left as it was");
    std::fs::remove_file(&db).unwrap();

    // Not WebAssembly: one line, no byte dump.
    let readme = repo_file("README.md");
    let (code, err) = fails(s.wasm_run().arg("run").arg(&readme));
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("not WebAssembly"), "{err}");

    // A 10 MB task name is not echoed back whole.
    let name = "x".repeat(10 << 20);
    let yaml = s.path("long.yaml");
    std::fs::write(
        &yaml,
        format!("apiVersion: weft.dev/v1alpha1\nkind: Pipeline\nmetadata: {{name: p}}\nspec:\n  components:\n    c: {{source: {NOOP}}}\n  tasks:\n    {name}: {{component: c}}\n"),
    )
    .unwrap();
    let (code, err) = fails(s.wasm_run().args(["pipeline", "validate"]).arg(&yaml));
    assert_eq!(code, Some(2), "{}", &err[..err.len().min(500)]);
    assert!(err.len() < 4096, "{} bytes of error", err.len());
    assert!(err.contains("long.yaml:"), "{err}");

    // An input that is not there is bad input, not a step failure.
    let (code, err) = fails(
        s.wasm_run()
            .args(["run", NOOP, "--input", "data=/nonexistent"]),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("/nonexistent"), "{err}");
}
