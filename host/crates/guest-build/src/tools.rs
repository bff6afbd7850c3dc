//! Where build tools live and how they are run.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A directory of installed build tools (venvs, npm packages, wit-bindgen), reused across builds.
#[derive(Clone, Debug)]
pub struct Tools {
    pub dir: PathBuf,
}

impl Tools {
    pub fn new(dir: impl Into<PathBuf>) -> Tools {
        Tools { dir: dir.into() }
    }

    /// A fresh scratch directory for one build of `name`.
    pub fn stage(&self, name: &str) -> Result<PathBuf> {
        let stage = self
            .dir
            .join("stage")
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&stage);
        std::fs::create_dir_all(&stage).with_context(|| format!("creating {}", stage.display()))?;
        Ok(stage)
    }
}

/// `python3` on PATH.
pub fn find_python() -> Result<String> {
    match Command::new("python3").arg("--version").output() {
        Ok(o) if o.status.success() => Ok("python3".into()),
        _ => bail!("python3 is not installed (Debian: apt-get install python3 python3-venv)"),
    }
}

/// Runs `cmd`; on failure the error carries the tail of what it printed.
pub fn run_quiet(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("starting {what}"))?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let all = format!("{stdout}{text}");
        let tail: Vec<&str> = all.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("{what} failed ({}):\n{}", out.status, tail.join("\n"));
    }
    Ok(())
}

/// Directories of a project that are outputs or caches, not its source.
const NOT_SOURCE: &[&str] = &[
    "target",
    "node_modules",
    "__pycache__",
    "build",
    "dist",
    "gen",
];

/// A digest of everything a build reads: the project's source files (names and bytes) and
/// `extra` (the tool version, the SDK, the WIT). Same digest, same component: the build is
/// skipped.
pub fn inputs_digest(dir: &Path, extra: &[&str]) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for e in extra {
        h.update((e.len() as u64).to_le_bytes());
        h.update(e.as_bytes());
    }
    let walk = walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            let name = e.file_name().to_string_lossy();
            e.depth() == 0 || !(name.starts_with('.') || NOT_SOURCE.contains(&name.as_ref()))
        });
    for entry in walk {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        if entry.file_type().is_file() {
            let rel = entry.path().strip_prefix(dir).unwrap_or(entry.path());
            let bytes = std::fs::read(entry.path())
                .with_context(|| format!("reading {}", entry.path().display()))?;
            h.update(rel.to_string_lossy().as_bytes());
            h.update([0]);
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(&bytes);
        }
    }
    Ok(hex::encode(h.finalize()))
}

/// Runs `build` unless `out` was built from inputs with this digest; records the digest after.
pub fn unless_fresh(out: &Path, digest: &str, build: impl FnOnce() -> Result<()>) -> Result<bool> {
    let stamp = out.with_extension("wasm.inputs");
    if out.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == digest) {
        return Ok(false);
    }
    build()?;
    std::fs::write(&stamp, digest).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(true)
}

/// Copies a project's source files (not its outputs or caches) from `dir` into `to`.
pub fn copy_sources(dir: &Path, to: &Path) -> Result<()> {
    let walk = walkdir::WalkDir::new(dir).into_iter().filter_entry(|e| {
        let name = e.file_name().to_string_lossy();
        e.depth() == 0 || !(name.starts_with('.') || NOT_SOURCE.contains(&name.as_ref()))
    });
    for entry in walk {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let rel = entry.path().strip_prefix(dir).unwrap_or(entry.path());
        let dest = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest)?;
        } else if entry.file_type().is_file() {
            std::fs::copy(entry.path(), &dest)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}
