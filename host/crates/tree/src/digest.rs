//! Tree digests. A tree's digest is SHA-256 over one record per entry in byte order of paths;
//! files are hashed by streaming, never read whole.
//!
//! Version 2 (written since issue 12) encodes raw path bytes and directories too:
//! `weft-tree-v2\n`, then `d\0<path>\0` per directory and `f\0<path>\0<sha256 hex>\n` per file.
//! A path holds no NUL, so the records parse back one way only.
//!
//! Version 1 hashed `<path>\0<sha256 hex>\n` per file, with paths decoded lossily and `\` mapped
//! to `/`, so a file `a\b` and a file `b` in a directory `a` hashed the same, as did two names
//! that differ only in invalid UTF-8. Artifacts stored under a version-1 digest still verify:
//! [`matches`] accepts either.

use crate::walk::{walk, Kind};
use crate::{Limits, Result, TreeError};
use sha2::{Digest as _, Sha256};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A tree's digest and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeDigest {
    /// `sha256:<64 lowercase hex>`.
    pub digest: String,
    /// Bytes in all files.
    pub bytes: u64,
    pub files: u64,
}

/// One file of a tree: its path relative to the root (`/`-separated, lossily decoded for
/// display), size and `sha256:` digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    pub path: String,
    pub bytes: u64,
    pub digest: String,
}

/// A file's size and SHA-256; `None` for a directory.
type FileHash = Option<(u64, [u8; 32])>;

/// Every entry of a tree with its file hash, in byte order of paths.
struct Listing(Vec<(PathBuf, FileHash)>);

impl Listing {
    fn read(root: &Path, limits: Limits) -> Result<Self> {
        let mut entries = Vec::new();
        walk(root, limits, |entry, file| {
            let hash = match (entry.kind, file) {
                (Kind::File, Some(file)) => {
                    Some(hash_reader(file).map_err(|e| TreeError::io(&root.join(entry.rel), e))?)
                }
                _ => None,
            };
            entries.push((entry.rel.to_path_buf(), hash));
            Ok(())
        })?;
        entries.sort_by(|a, b| a.0.as_os_str().as_bytes().cmp(b.0.as_os_str().as_bytes()));
        Ok(Listing(entries))
    }

    fn files(&self) -> impl Iterator<Item = (&PathBuf, u64, &[u8; 32])> {
        self.0
            .iter()
            .filter_map(|(p, h)| h.as_ref().map(|(size, hash)| (p, *size, hash)))
    }

    fn summary(&self, digest: [u8; 32]) -> TreeDigest {
        let (files, bytes) = self.files().fold((0u64, 0u64), |(n, b), (_, size, _)| {
            (n + 1, b.saturating_add(size))
        });
        TreeDigest {
            digest: format!("sha256:{}", hex::encode(digest)),
            bytes,
            files,
        }
    }

    fn v2(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"weft-tree-v2\n");
        for (path, hash) in &self.0 {
            let kind: &[u8] = if hash.is_some() { b"f\0" } else { b"d\0" };
            h.update(kind);
            h.update(path.as_os_str().as_bytes());
            h.update(b"\0");
            if let Some((_, file)) = hash {
                h.update(hex::encode(file).as_bytes());
                h.update(b"\n");
            }
        }
        h.finalize().into()
    }

    fn v1(&self) -> [u8; 32] {
        let mut files: Vec<(String, &[u8; 32])> = self
            .files()
            .map(|(p, _, hash)| (p.to_string_lossy().replace('\\', "/"), hash))
            .collect();
        files.sort();
        let mut h = Sha256::new();
        for (rel, hash) in files {
            h.update(rel.as_bytes());
            h.update(b"\0");
            h.update(hex::encode(hash).as_bytes());
            h.update(b"\n");
        }
        h.finalize().into()
    }
}

/// The (version 2) digest of the tree at `root`.
pub fn tree_digest(root: &Path, limits: Limits) -> Result<TreeDigest> {
    let listing = Listing::read(root, limits)?;
    Ok(listing.summary(listing.v2()))
}

/// Whether the tree at `root` has `digest`, in version 2 or version 1.
pub fn matches(root: &Path, limits: Limits, digest: &str) -> Result<bool> {
    let listing = Listing::read(root, limits)?;
    let is = |d: [u8; 32]| digest.strip_prefix("sha256:") == Some(hex::encode(d).as_str());
    Ok(is(listing.v2()) || is(listing.v1()))
}

/// Every file under `root` with its size and digest, sorted by path.
pub fn files(root: &Path, limits: Limits) -> Result<Vec<FileDigest>> {
    let listing = Listing::read(root, limits)?;
    Ok(listing
        .files()
        .map(|(p, bytes, hash)| FileDigest {
            path: p.to_string_lossy().into_owned(),
            bytes,
            digest: format!("sha256:{}", hex::encode(hash)),
        })
        .collect())
}

/// Size and SHA-256 of everything `r` yields, read 64 KiB at a time.
pub fn hash_reader(mut r: impl Read) -> std::io::Result<(u64, [u8; 32])> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total = total.saturating_add(n as u64);
        h.update(&buf[..n]);
    }
    Ok((total, h.finalize().into()))
}
