//! What a step sends the host is bounded on the host side too: metric names, output
//! parameters, error strings and log records cannot grow the host's memory, its stderr or the
//! metadata store, and a blocking host call ends at the step's deadline.

use crate::support::*;
use std::io::Read;

#[test]
fn a_huge_metric_name_trips_the_name_limit() {
    let s = Scratch::new();
    let line = s.run(MISBEHAVE, &["-p", "mode=metric-name"]).failure();
    assert!(
        line.contains("metric name limit exceeded") && line.contains("limit of 1024 bytes"),
        "{line}"
    );
}

#[test]
fn a_huge_output_parameter_trips_the_host_bytes_limit() {
    let s = Scratch::new();
    let line = s.run(MISBEHAVE, &["-p", "mode=big-param"]).failure();
    assert!(
        line.contains("host memory limit exceeded") && line.contains("--max-host-bytes"),
        "{line}"
    );
    // Raised, the same parameter passes.
    let run = s.run(
        MISBEHAVE,
        &[
            "-p",
            "mode=big-param",
            "-p",
            "bytes=1000000",
            "--max-host-bytes",
            "2MiB",
            "--json",
        ],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr());
}

/// A 100 MiB error string is cut to its first 4 KiB, and its control characters are shown
/// escaped: printed raw they would clear the screen and forge a line.
#[test]
fn a_huge_error_string_is_cut_and_escaped() {
    let s = Scratch::new();
    let run = s.run(MISBEHAVE, &["-p", "mode=big-error"]);
    let line = run.failure();
    assert!(line.len() < 8 << 10, "{} bytes", line.len());
    assert!(
        run.stderr().len() < 16 << 10,
        "{} bytes of stderr",
        run.stderr().len()
    );
    assert!(
        !run.stderr().contains('\x1b'),
        "a raw escape reached the terminal"
    );
    assert!(line.contains("\\u{1b}[2J"), "{line}");
    assert!(
        !run.stderr().lines().any(|l| l.starts_with("forged")),
        "a forged line: {}",
        run.stderr()
    );
}

/// Warn and error records go to the host's own log (RUST_LOG) only in bounded number and
/// size, escaped; the task log keeps what its own bound allows.
#[test]
fn guest_log_records_reach_the_host_log_bounded_and_escaped() {
    let s = Scratch::new();
    let run = s.run_with(MISBEHAVE, &["-p", "mode=log-storm", "--json"], |cmd| {
        cmd.env("RUST_LOG", "warn");
    });
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let err = run.stderr();
    // 100 000 records of 1 KiB were emitted: 100 MiB unbounded.
    assert!(
        err.len() < 512 << 10,
        "{} bytes on the host's stderr",
        err.len()
    );
    assert!(!err.contains('\x1b'), "a raw escape reached the host log");
    assert!(err.contains("red"), "some records are forwarded: {err}");
    assert!(
        err.contains("further log records of this step are in its task log only"),
        "{err}"
    );
}

/// A step blocked reading a socket that never answers stops at `--timeout`: the peer here
/// closes after 20 s, so without the bound the step would return `read 0`.
#[test]
fn a_blocking_socket_read_ends_at_the_time_limit() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        if let Ok((mut conn, _)) = listener.accept() {
            std::thread::sleep(std::time::Duration::from_secs(20));
            let _ = conn.read(&mut [0u8; 1]);
        }
    });
    let s = Scratch::new();
    let addr = format!("addr:string={addr}");
    let line = s
        .run(
            MISBEHAVE,
            &[
                "-p",
                "mode=read-forever",
                "-p",
                &addr,
                "--allow-network",
                "--timeout",
                "1s",
            ],
        )
        .failure();
    assert!(line.contains("time limit exceeded"), "{line}");
}
