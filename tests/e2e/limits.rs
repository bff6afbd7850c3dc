//! Every sandbox limit, tripped through the CLI, with its documented error.

use crate::support::*;

#[test]
fn an_infinite_loop_stops_at_the_time_limit() {
    let s = Scratch::new();
    let run = s.run(MISBEHAVE, &["-p", "mode=loop", "--timeout", "200ms"]);
    let line = run.failure();
    assert!(
        line.contains("time limit exceeded") && line.contains("0.200s"),
        "{line}"
    );
}

#[test]
fn an_unbounded_allocation_stops_at_the_memory_limit() {
    let s = Scratch::new();
    let run = s.run(MISBEHAVE, &["-p", "mode=alloc", "--memory", "32MiB"]);
    let line = run.failure();
    assert!(
        line.contains("memory limit exceeded") && line.contains("limit 33554432 bytes"),
        "{line}"
    );
}

#[test]
fn a_stdout_flood_is_truncated_at_the_log_bound() {
    let s = Scratch::new();
    let log = s.path("flood.log");
    let run = s.run(
        MISBEHAVE,
        &[
            "-p",
            "mode=flood",
            "-p",
            "bytes=2000000",
            "--max-log",
            "64KiB",
            "--log-file",
            log.to_str().unwrap(),
            "--json",
        ],
    );
    let outcome = run.json();
    assert_eq!(outcome["log"]["bytes"], 65536);
    assert!(outcome["log"]["dropped_bytes"].as_u64().unwrap() > 1_900_000);
    assert!(
        run.stderr()
            .contains("warning: task log truncated at 64.0 KiB"),
        "{}",
        run.stderr()
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.len() < 65536 + 200, "log is {} bytes", text.len());
    assert!(
        text.trim_end().ends_with("bytes dropped"),
        "{}",
        &text[text.len() - 100..]
    );
}

#[test]
fn writing_past_the_output_limit_fails_before_the_bytes_land() {
    let s = Scratch::new();
    let out = s.path("out");
    let run = s.run(
        MISBEHAVE,
        &[
            "-p",
            "mode=write",
            "-p",
            "bytes=4000000",
            "--max-output",
            "256KiB",
            "--output-dir",
            out.to_str().unwrap(),
            "-o",
            "out",
        ],
    );
    let line = run.failure();
    assert!(
        line.contains("output limit exceeded") && line.contains("262144 bytes"),
        "{line}"
    );
    let written = std::fs::metadata(out.join("out/blob.bin")).unwrap().len();
    assert!(written <= 256 * 1024, "{written} bytes landed");
}

#[test]
fn instance_and_table_counts_are_bounded() {
    let s = Scratch::new();
    let line = s.run(NOOP, &["--max-instances", "1"]).failure();
    assert!(
        line.contains("instance limit exceeded") && line.contains("more than 1"),
        "{line}"
    );
    let line = s.run(NOOP, &["--max-table-elements", "1"]).failure();
    assert!(
        line.contains("table limit exceeded") && line.contains("limit 1"),
        "{line}"
    );
    // Generous limits let the same component run.
    s.run(NOOP, &["--max-instances", "64", "--json"]).json();
}

#[test]
fn a_trap_reports_the_panic_and_the_guest_backtrace() {
    let s = Scratch::new();
    let run = s.run(MISBEHAVE, &["-p", "mode=trap"]);
    let line = run.failure();
    assert!(
        line.contains("step trapped") && line.contains("misbehave asked to trap"),
        "{line}"
    );
    let log = std::fs::read_to_string(run.log_path()).unwrap();
    assert!(
        log.contains("guest backtrace:") && log.contains("nested_panic"),
        "{log}"
    );
}

#[test]
fn a_step_blocked_in_a_host_sleep_still_stops_at_the_time_limit() {
    let s = Scratch::new();
    let line = s
        .run(
            MISBEHAVE,
            &["-p", "mode=sleep", "-p", "ms=60000", "--timeout", "300ms"],
        )
        .failure();
    assert!(
        line.contains("time limit exceeded") && line.contains("0.300s"),
        "{line}"
    );
    // A sleep inside the limit is untouched.
    let outcome = s
        .run(
            MISBEHAVE,
            &[
                "-p",
                "mode=sleep",
                "-p",
                "ms=50",
                "--timeout",
                "10s",
                "--json",
            ],
        )
        .json();
    assert_eq!(param(&outcome, "slept_ms")["value"], 50);
}
