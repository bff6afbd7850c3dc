//! Hermetic mode: same seed and inputs, byte-identical outputs.

use crate::support::*;

fn entropy(s: &Scratch, out: &str, extra: &[&str]) -> (Vec<u8>, String) {
    let dir = s.path(out);
    let mut args = vec![
        "-p",
        "mode=entropy",
        "--output-dir",
        dir.to_str().unwrap(),
        "-o",
        "out",
        "--json",
    ];
    args.extend_from_slice(extra);
    let outcome = s.run(MISBEHAVE, &args).json();
    let bytes = std::fs::read(dir.join("out/entropy.txt")).unwrap();
    (
        bytes,
        param(&outcome, "entropy")["value"]
            .as_str()
            .unwrap()
            .to_string(),
    )
}

#[test]
fn same_seed_gives_byte_identical_outputs() {
    let s = Scratch::new();
    let a = entropy(&s, "a", &["--hermetic", "--seed", "42"]);
    let b = entropy(&s, "b", &["--hermetic", "--seed", "42"]);
    assert_eq!(a, b);
    assert!(a.1.contains("wall 1704067200."), "virtual clock: {}", a.1);

    // The test can fail: another seed, or no hermetic mode, changes the output.
    let c = entropy(&s, "c", &["--hermetic", "--seed", "43"]);
    assert_ne!(a.0, c.0);
    let d = entropy(&s, "d", &[]);
    let e = entropy(&s, "e", &[]);
    assert_ne!(d.0, e.0);
}

/// What `stat` says of the files a step writes and reads (`out/times.txt`).
fn file_times(s: &Scratch, out: &str, extra: &[&str]) -> String {
    let dir = s.path(out);
    // The same name in another directory: only host values may differ between runs.
    let input = s.path(&format!("{out}-in/input.txt"));
    std::fs::create_dir_all(input.parent().unwrap()).unwrap();
    std::fs::write(&input, "data").unwrap();
    let data = format!("data={}", input.display());
    let mut args = vec![
        "-p",
        "mode=file-times",
        "--input",
        &data,
        "--output-dir",
        dir.to_str().unwrap(),
        "-o",
        "out",
        "--json",
    ];
    args.extend_from_slice(extra);
    s.run(MISBEHAVE, &args).json();
    std::fs::read_to_string(dir.join("out/times.txt")).unwrap()
}

/// File times and inode-derived ids are host values; hermetic mode gives virtual ones.
#[test]
fn hermetic_stat_hides_host_times_and_inodes() {
    let s = Scratch::new();
    let a = file_times(&s, "a", &["--hermetic", "--seed", "7"]);
    // Later, on other inodes: only the host's values could differ.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let b = file_times(&s, "b", &["--hermetic", "--seed", "7"]);
    assert_eq!(a, b);
    assert!(a.contains("mtim 1704067200.000000000"), "{a}");
    assert!(!a.contains("rc -1"), "every stat succeeded: {a}");

    // The test can fail: outside hermetic mode the host's times show.
    let c = file_times(&s, "c", &[]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let d = file_times(&s, "d", &[]);
    assert_ne!(c, d);
}
