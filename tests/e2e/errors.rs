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
    let line = s
        .run(grow.to_str().unwrap(), &["--max-table-elements", "200000"])
        .failure();
    assert!(line.contains("above the maximum 100000"), "{line}");
}
