//! A cheap stand-in for a tree's digest: what the filesystem says of each file (path, size,
//! inode, modification and change times), hashed. Reading a file's content costs its size;
//! this costs one `fstat` per file.
//!
//! A store records a tree's fingerprint when it has just checked the tree's digest. Later, a
//! matching fingerprint means no file was written, replaced, truncated, renamed, added or
//! removed since (any of these changes a change time, which no unprivileged tool can set back),
//! so the digest still holds without reading the content. It does not see the disk itself
//! corrupting bytes under an unchanged inode; a full check (`artifacts verify`) does.

use crate::{walk, Kind, Limits, Result, TreeError};
use sha2::{Digest, Sha256};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A tree's fingerprint and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// Hex SHA-256 over every entry's path and metadata, in walk order.
    pub hex: String,
    /// The files' bytes in all.
    pub bytes: u64,
}

/// The fingerprint of the tree at `root`, refusing what [`walk`] refuses.
pub fn fingerprint(root: &Path, limits: Limits) -> Result<Fingerprint> {
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    walk(root, limits, |entry, file| {
        let rel = entry.rel.as_os_str().as_bytes();
        hasher.update((rel.len() as u64).to_le_bytes());
        hasher.update(rel);
        if let (Kind::File, Some(file)) = (entry.kind, file) {
            let m = file
                .metadata()
                .map_err(|e| TreeError::io(&root.join(entry.rel), e))?;
            for field in [
                m.len() as i64,
                m.ino() as i64,
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec(),
            ] {
                hasher.update(field.to_le_bytes());
            }
            bytes = bytes.saturating_add(m.len());
        }
        Ok(())
    })?;
    Ok(Fingerprint {
        hex: hex::encode(hasher.finalize()),
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_change_to_a_file_or_the_tree_changes_the_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a"), b"one").unwrap();
        let first = fingerprint(root, Limits::DEFAULT).unwrap();
        assert_eq!(first, fingerprint(root, Limits::DEFAULT).unwrap());
        assert_eq!(first.bytes, 3);

        // Same size, rewritten in place.
        std::fs::write(root.join("sub/a"), b"two").unwrap();
        let rewritten = fingerprint(root, Limits::DEFAULT).unwrap();
        assert_ne!(first.hex, rewritten.hex);

        std::fs::write(root.join("b"), b"").unwrap();
        let added = fingerprint(root, Limits::DEFAULT).unwrap();
        assert_ne!(rewritten.hex, added.hex);

        std::fs::rename(root.join("b"), root.join("c")).unwrap();
        assert_ne!(added.hex, fingerprint(root, Limits::DEFAULT).unwrap().hex);
    }
}
