//! Trees shaped the way a hostile step would shape them.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use weft_tree::{digest, Limits, TreeError};

fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (rel, text) in files {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// `depth` directories nested in `root/d`, made with short paths only (rename the chain into
/// a fresh parent, over and over), the way a step builds what no path could name.
fn nest(root: &Path, depth: usize) -> PathBuf {
    let chain = root.join("d");
    std::fs::create_dir(&chain).unwrap();
    let fresh = root.join("p");
    for _ in 1..depth {
        std::fs::create_dir(&fresh).unwrap();
        std::fs::rename(&chain, fresh.join("d")).unwrap();
        std::fs::rename(&fresh, &chain).unwrap();
    }
    chain
}

#[test]
fn a_symlink_in_place_of_the_root_is_refused_and_its_target_untouched() {
    let host = tree(&[("secret.txt", "CANARY")]);
    let secret = host.path().join("secret.txt");
    let out = tempfile::tempdir().unwrap();
    let link = out.path().join("out");
    // Relative, through many `..`, as a step would write it.
    let target = format!("{}{}", "../".repeat(40), host.path().display());
    symlink(&target, &link).unwrap();
    assert!(
        link.join("secret.txt").exists(),
        "the link resolves on the host"
    );

    for err in [
        weft_tree::tree_digest(&link, Limits::DEFAULT).unwrap_err(),
        weft_tree::make_read_only(&link, Limits::DEFAULT).unwrap_err(),
        digest::files(&link, Limits::DEFAULT).unwrap_err(),
    ] {
        assert!(
            matches!(
                err,
                TreeError::Special {
                    what: "a symlink",
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains(&link.display().to_string()),
            "{err}"
        );
    }
    let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
    assert_eq!(mode & 0o200, 0o200, "the host file is still writable");
    // Removing the link removes the link only.
    weft_tree::remove_tree(&link).unwrap();
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "CANARY");
}

#[test]
fn links_and_special_files_inside_are_refused_by_name() {
    let t = tree(&[("a/model.bin", "w")]);
    symlink("../../../../etc", t.path().join("a/etc")).unwrap();
    let err = weft_tree::tree_digest(t.path(), Limits::DEFAULT).unwrap_err();
    assert!(err.to_string().contains("a/etc: a symlink"), "{err}");

    let t = tree(&[("a/model.bin", "w")]);
    std::fs::hard_link(t.path().join("a/model.bin"), t.path().join("twin")).unwrap();
    let err = weft_tree::tree_digest(t.path(), Limits::DEFAULT).unwrap_err();
    assert!(matches!(err, TreeError::HardLink { links: 2, .. }), "{err}");

    let t = tree(&[]);
    let fifo = t.path().join("pipe");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let err = weft_tree::tree_digest(t.path(), Limits::DEFAULT).unwrap_err();
    assert!(err.to_string().contains("pipe: a FIFO"), "{err}");
    weft_tree::remove_tree(t.path()).unwrap();
    assert!(!t.path().exists());
}

#[test]
fn depth_and_entries_are_bounded() {
    let t = tempfile::tempdir().unwrap();
    nest(t.path(), 70);
    let err = weft_tree::tree_digest(t.path(), Limits::DEFAULT).unwrap_err();
    assert!(matches!(err, TreeError::TooDeep { max: 64, .. }), "{err}");
    let shallow = Limits {
        max_depth: 80,
        max_entries: 50,
    };
    let err = weft_tree::tree_digest(t.path(), shallow).unwrap_err();
    assert!(
        err.to_string()
            .contains("more than 50 files and directories"),
        "{err}"
    );
    assert!(weft_tree::tree_digest(
        t.path(),
        Limits {
            max_depth: 80,
            max_entries: 80
        }
    )
    .is_ok());
}

/// 20 000 levels: removed on a 256 KiB stack, so nothing recurses per level.
#[test]
fn a_20000_deep_tree_is_removed_without_recursion() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("out");
    std::fs::create_dir(&root).unwrap();
    nest(&root, 20_000);
    std::fs::write(root.join("top.txt"), "x").unwrap();
    let removing = root.clone();
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || {
            let err = weft_tree::tree_digest(&removing, Limits::DEFAULT).unwrap_err();
            assert!(matches!(err, TreeError::TooDeep { .. }), "{err}");
            weft_tree::remove_tree(&removing).unwrap();
        })
        .unwrap()
        .join()
        .unwrap();
    assert!(!root.exists());
}

#[test]
fn version_2_tells_apart_what_version_1_confused() {
    let backslash = tree(&[("a\\b", "same")]);
    let nested = tree(&[("a/b", "same")]);
    let v2 = |t: &tempfile::TempDir| weft_tree::tree_digest(t.path(), Limits::DEFAULT).unwrap();
    assert_ne!(v2(&backslash).digest, v2(&nested).digest);
    // An empty directory is part of the tree too.
    let empty = tree(&[("a/b", "same")]);
    std::fs::create_dir(empty.path().join("e")).unwrap();
    assert_ne!(v2(&empty).digest, v2(&nested).digest);
    assert_eq!((v2(&nested).files, v2(&nested).bytes), (1, 4));

    // Version 1 (as weft-store wrote it): path, NUL, file hex, newline, per file.
    use sha2::Digest as _;
    let file = hex::encode(sha2::Sha256::digest(b"same"));
    let v1 = format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(format!("a/b\0{file}\n").as_bytes()))
    );
    for t in [&backslash, &nested] {
        assert!(
            digest::matches(t.path(), Limits::DEFAULT, &v1).unwrap(),
            "old digests verify"
        );
        assert!(digest::matches(t.path(), Limits::DEFAULT, &v2(t).digest).unwrap());
    }
    assert!(!digest::matches(backslash.path(), Limits::DEFAULT, &v2(&nested).digest).unwrap());
}

#[test]
fn copies_and_sealed_trees_keep_their_digest() {
    let t = tree(&[("m/w.bin", "weights"), ("card.md", "# card")]);
    std::fs::create_dir(t.path().join("empty")).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let copy = dest.path().join("copy");
    weft_tree::copy_tree(t.path(), &copy, Limits::DEFAULT).unwrap();
    let d = |p: &Path| weft_tree::tree_digest(p, Limits::DEFAULT).unwrap();
    assert_eq!(d(t.path()), d(&copy));
    weft_tree::make_read_only(&copy, Limits::DEFAULT).unwrap();
    let perms = std::fs::metadata(copy.join("m/w.bin"))
        .unwrap()
        .permissions();
    assert!(perms.readonly());
    assert_eq!(d(t.path()), d(&copy));
    let files = digest::files(&copy, Limits::DEFAULT).unwrap();
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["card.md", "m/w.bin"]);
    weft_tree::remove_tree(&copy).unwrap();
    assert!(!copy.exists());
}
