//! The capability sandbox: a step reaches only what it was granted.

use crate::support::*;

#[test]
fn escapes_through_absolute_paths_dotdot_and_symlinks_are_denied() {
    let s = Scratch::new();
    let input = s.path("input.txt");
    std::fs::write(&input, "granted").unwrap();
    let out = s.path("out");
    std::fs::create_dir_all(out.join("out")).unwrap();
    // A symlink left in the output directory, pointing out of it.
    std::os::unix::fs::symlink("/etc/passwd", out.join("out/planted-link")).unwrap();
    let log = s.path("escape.log");

    let outcome = s
        .run(
            MISBEHAVE,
            &[
                "-p",
                "mode=escape",
                "--input",
                &format!("data={}", input.display()),
                "--output-dir",
                out.to_str().unwrap(),
                "-o",
                "out",
                "--log-file",
                log.to_str().unwrap(),
                "--json",
            ],
        )
        .json();

    assert_eq!(param(&outcome, "escaped")["value"], 0, "{outcome}");
    let report = param(&outcome, "report")["value"]
        .as_array()
        .unwrap()
        .clone();
    let paths: Vec<&str> = report.iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"/etc/passwd"));
    assert!(paths.contains(&"/inputs/data/../../etc/passwd"));
    assert!(paths.contains(&"/outputs/out/planted-link"));
    assert!(paths.contains(&"/outputs/out/rel-link"));
    assert!(paths.contains(&"write:/inputs/data/input.txt"), "{paths:?}");
    assert_eq!(
        std::fs::read_to_string(&input).unwrap(),
        "granted",
        "the input file is unchanged"
    );
    for r in &report {
        assert!(r["outcome"].as_str().unwrap().starts_with("denied"), "{r}");
    }
    // The run's log reports every denied access.
    let log = std::fs::read_to_string(&log).unwrap();
    for path in paths {
        let line = match path.strip_prefix("write:") {
            Some(p) => format!("write {p}: denied"),
            None => format!("access {path}: denied"),
        };
        assert!(log.contains(&line), "log lacks {line}:\n{log}");
    }
    // Nothing of /etc/passwd leaked into the outputs.
    for a in outcome["artifacts"].as_array().unwrap() {
        let content =
            std::fs::read_to_string(out.join(a["path"].as_str().unwrap())).unwrap_or_default();
        assert!(!content.contains("root:"), "{a}");
    }
}

#[test]
fn an_env_var_not_granted_is_absent_and_a_granted_one_present() {
    let s = Scratch::new();
    let secret = |cmd: &mut std::process::Command| {
        cmd.env("WEFT_TEST_SECRET", "hunter2");
    };
    let denied = s
        .run_with(
            MISBEHAVE,
            &["-p", "mode=env", "-p", "var=WEFT_TEST_SECRET", "--json"],
            secret,
        )
        .json();
    assert_eq!(param(&denied, "value")["value"], serde_json::Value::Null);
    assert_eq!(param(&denied, "env_count")["value"], 0);

    let granted = s
        .run_with(
            MISBEHAVE,
            &[
                "-p",
                "mode=env",
                "-p",
                "var=WEFT_TEST_SECRET",
                "--env",
                "WEFT_TEST_SECRET",
                "--json",
            ],
            secret,
        )
        .json();
    assert_eq!(param(&granted, "value")["value"], "hunter2");
    assert_eq!(param(&granted, "env_count")["value"], 1);
}

#[test]
fn sockets_are_denied_unless_the_network_is_granted() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let s = Scratch::new();
    let args = |extra: &'static [&'static str]| {
        let mut a = vec![
            "-p".to_string(),
            "mode=net".into(),
            "-p".into(),
            format!("addr:string={addr}"),
            "--json".into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let denied_args = args(&[]);
    let denied = s
        .run(
            MISBEHAVE,
            &denied_args.iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .json();
    let outcome = param(&denied, "outcome")["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(outcome.starts_with("denied"), "{outcome}");

    let granted_args = args(&["--allow-network"]);
    let granted = s
        .run(
            MISBEHAVE,
            &granted_args.iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .json();
    assert_eq!(param(&granted, "outcome")["value"], "connected");
    let (mut conn, _) = listener.accept().unwrap();
    let mut got = String::new();
    std::io::Read::read_to_string(&mut conn, &mut got).unwrap();
    assert_eq!(got, "hello from the sandbox");
}
