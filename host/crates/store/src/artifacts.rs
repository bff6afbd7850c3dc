//! Artifacts as immutable directories named by the digest of their content.
//!
//! A task writes each output artifact into a fresh directory; when the task succeeds, the
//! directory is hashed (sorted relative paths and file digests) and renamed into
//! `<root>/sha256/<hex>`. Renames are atomic, so a crash never leaves half an artifact under its
//! name, and an artifact that already exists is deduplicated. Consumers are granted these
//! directories read-only, without copying.

use crate::{Result, StoreError};
use std::path::{Path, PathBuf};
use weft_tree::Limits;

/// An artifact in the store.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredArtifact {
    /// `sha256:<hex>` of the directory's content.
    pub digest: String,
    pub bytes: u64,
    pub files: u64,
}

pub struct ArtifactStore {
    root: PathBuf,
    /// Where artifacts are published and fetched from, beyond the local working copy.
    backend: Option<Box<dyn crate::ArtifactBackend>>,
}

impl ArtifactStore {
    pub fn open(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root.join("sha256"))?;
        std::fs::create_dir_all(root.join("tmp"))?;
        Ok(ArtifactStore {
            root: root.to_path_buf(),
            backend: None,
        })
    }

    /// Publishes every ingested artifact to `backend` too, and fetches from it what is not here.
    pub fn with_backend(mut self, backend: Box<dyn crate::ArtifactBackend>) -> Self {
        self.backend = Some(backend);
        self
    }

    /// The local directory of `digest`, fetched from the backend first when only it has it.
    /// The fetched copy is checked against its digest before it is used.
    pub fn ensure_local(&self, digest: &str) -> Result<PathBuf> {
        parse_digest(digest)?;
        let path = self.path(digest);
        if path.is_dir() {
            return Ok(path);
        }
        let Some(backend) = &self.backend else {
            return Err(StoreError::Invalid(format!(
                "artifact {digest} is not in {}",
                self.root.display()
            )));
        };
        let scratch = self.scratch_dir()?;
        let staged = scratch.path().join("a");
        backend.get_tree(digest, &staged)?;
        // Version 1 or 2 of the digest: artifacts published before version 2 stay readable.
        if !weft_tree::digest::matches(&staged, Limits::DEFAULT, digest)? {
            return Err(StoreError::Invalid(format!(
                "artifact {digest} from {} does not match its digest: corrupt, not used",
                backend.describe(),
            )));
        }
        self.settle(&staged, digest)?;
        Ok(path)
    }

    /// The component an artifact holds: `wasm-run artifacts put x.wasm` stores a component as
    /// an artifact of one `.wasm` file, which is how components reach a cluster's runners and
    /// servers (through the remote store) by digest.
    pub fn component_file(&self, digest: &str) -> Result<PathBuf> {
        let dir = self.ensure_local(digest)?;
        let wasm: Vec<PathBuf> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect();
        match wasm.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(StoreError::Invalid(format!(
                "artifact {digest} must hold exactly one .wasm file to be a component; it holds {}",
                wasm.len()
            ))),
        }
    }

    /// Where the artifact `digest` lives (whether or not it exists). A digest that is not
    /// exactly `sha256:` and 64 lowercase hex digits names no path in the store (`sha256:../x`
    /// would resolve outside it): it gets a path that never exists.
    pub fn path(&self, digest: &str) -> PathBuf {
        match parse_digest(digest) {
            Ok(hex) => self.root.join("sha256").join(hex),
            Err(_) => self.root.join("sha256").join("invalid-digest"),
        }
    }

    pub fn contains(&self, digest: &str) -> bool {
        parse_digest(digest).is_ok() && self.path(digest).is_dir()
    }

    /// A fresh scratch directory on the store's filesystem, for outputs to be ingested.
    pub fn scratch_dir(&self) -> Result<ScratchDir> {
        Ok(ScratchDir(Some(
            tempfile::Builder::new()
                .prefix("out-")
                .tempdir_in(self.root.join("tmp"))?,
        )))
    }

    /// Moves `dir` into the store under its digest (and publishes it to the backend, if any).
    pub fn ingest_dir(&self, dir: &Path) -> Result<StoredArtifact> {
        let stored = self.ingest_local(dir)?;
        if let Some(backend) = &self.backend {
            backend.put_tree(&stored.digest, &self.path(&stored.digest))?;
        }
        Ok(stored)
    }

    /// Hashes `dir` (refusing links, special files and trees past [`Limits::DEFAULT`]) and
    /// moves it into the store under its digest.
    fn ingest_local(&self, dir: &Path) -> Result<StoredArtifact> {
        let stored = tree_digest(dir)?;
        self.settle(dir, &stored.digest)?;
        Ok(stored)
    }

    /// Seals `dir` (already checked to have `digest`) and renames it to the digest's path,
    /// or drops it when an identical artifact is already there.
    fn settle(&self, dir: &Path, digest: &str) -> Result<()> {
        let dest = self.path(digest);
        if dest.exists() {
            return Ok(weft_tree::remove_tree(dir)?);
        }
        weft_tree::make_read_only(dir, Limits::DEFAULT)?;
        match std::fs::rename(dir, &dest) {
            Ok(()) => Ok(()),
            // Lost a race with an identical artifact: same digest, same content.
            Err(_) if dest.exists() => Ok(weft_tree::remove_tree(dir)?),
            Err(e) => Err(e.into()),
        }
    }

    /// Copies a user's file or directory into the store (a pipeline input). A file becomes the
    /// single entry of the artifact directory, under its own name.
    pub fn import(&self, src: &Path) -> Result<StoredArtifact> {
        let meta = std::fs::metadata(src)
            .map_err(|e| StoreError::Invalid(format!("{}: {e}", src.display())))?;
        let scratch = self.scratch_dir()?;
        let staged = scratch.path().join("a");
        if meta.is_dir() {
            weft_tree::copy_tree(src, &staged, Limits::DEFAULT)?;
        } else {
            std::fs::create_dir(&staged)?;
            let name = src
                .file_name()
                .ok_or_else(|| StoreError::Invalid(format!("{}: no file name", src.display())))?;
            std::fs::copy(src, staged.join(name))?;
        }
        self.ingest_dir(&staged)
    }

    /// Recomputes the digest of a stored artifact: true when it still matches its name.
    pub fn verify(&self, digest: &str) -> Result<bool> {
        let path = self.path(digest);
        if !path.is_dir() {
            // Not here: good if the backend has it intact.
            return Ok(match &self.backend {
                Some(b) if b.contains(digest)? => self.ensure_local(digest).is_ok(),
                _ => false,
            });
        }
        Ok(weft_tree::digest::matches(&path, Limits::DEFAULT, digest)?)
    }
}

/// The hex of a strict `sha256:<64 lowercase hex>` digest, or an error naming the value.
pub fn parse_digest(digest: &str) -> Result<&str> {
    weft_spec::digest::parse(digest).map_err(|e| StoreError::Invalid(e.to_string()))
}

/// Digest of a directory (version 2, see [`weft_tree::digest`]): walked by handle without
/// following links, files hashed by streaming; links, special files, hard-linked files and
/// trees past [`Limits::DEFAULT`] are refused, naming the path.
pub fn tree_digest(dir: &Path) -> Result<StoredArtifact> {
    let d = weft_tree::tree_digest(dir, Limits::DEFAULT)?;
    Ok(StoredArtifact {
        digest: d.digest,
        bytes: d.bytes,
        files: d.files,
    })
}

/// Copies a stored artifact (or any tree) to `dest`, refusing what [`tree_digest`] refuses.
pub fn copy_tree(src: &Path, dest: &Path) -> Result<()> {
    Ok(weft_tree::copy_tree(src, dest, Limits::DEFAULT)?)
}

/// A scratch directory in the store's `tmp`, removed iteratively (see [`remove_tree`]) when
/// dropped, unless kept.
pub struct ScratchDir(Option<tempfile::TempDir>);

impl ScratchDir {
    pub fn path(&self) -> &Path {
        self.0.as_ref().map(|d| d.path()).unwrap_or(Path::new(""))
    }

    /// Keeps the directory on disk and returns its path.
    pub fn keep(mut self) -> PathBuf {
        self.0.take().map(|d| d.keep()).unwrap_or_default()
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let path = dir.keep();
            if let Err(e) = weft_tree::remove_tree(&path) {
                tracing::warn!(path = %path.display(), error = %e, "removing a scratch directory");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backend_receives_artifacts_and_serves_them_to_an_empty_store() {
        // One in-memory object store shared by two artifact stores.
        let shared = std::sync::Arc::new(object_store::memory::InMemory::new());
        let make = |root: &Path| {
            let b =
                crate::ObjectStoreBackend::new(shared.clone(), "weft".into(), "memory://").unwrap();
            ArtifactStore::open(root).unwrap().with_backend(Box::new(b))
        };
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let first = make(a.path());
        let src = a.path().join("in");
        std::fs::create_dir_all(src.join("deep")).unwrap();
        std::fs::write(src.join("deep/model.json"), "{}").unwrap();
        std::fs::write(src.join("card.md"), "# card").unwrap();
        let stored = first.import(&src).unwrap();

        let second = make(b.path());
        assert!(!second.contains(&stored.digest));
        assert!(second.verify(&stored.digest).unwrap());
        let local = second.ensure_local(&stored.digest).unwrap();
        assert_eq!(
            std::fs::read_to_string(local.join("deep/model.json")).unwrap(),
            "{}"
        );
        assert_eq!(
            std::fs::read_to_string(local.join("card.md")).unwrap(),
            "# card"
        );
        assert!(second
            .ensure_local("sha256:0000000000000000000000000000000000000000000000000000000000000000")
            .is_err());
    }

    #[test]
    fn identical_content_has_one_digest_and_one_copy() {
        let root = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(root.path()).unwrap();
        let make = |text: &str| {
            let d = store.scratch_dir().unwrap().keep();
            std::fs::create_dir_all(d.join("sub")).unwrap();
            std::fs::write(d.join("sub/x.txt"), text).unwrap();
            d
        };
        let a = store.ingest_dir(&make("hello")).unwrap();
        let b = store.ingest_dir(&make("hello")).unwrap();
        let c = store.ingest_dir(&make("hellO")).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.digest, c.digest);
        assert!(store.verify(&a.digest).unwrap());
        assert_eq!(
            std::fs::read_to_string(store.path(&a.digest).join("sub/x.txt")).unwrap(),
            "hello"
        );
        assert!(std::fs::metadata(store.path(&a.digest).join("sub/x.txt"))
            .unwrap()
            .permissions()
            .readonly());
    }

    #[test]
    fn a_changed_file_with_the_same_name_changes_the_digest() {
        let root = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(root.path()).unwrap();
        let input = root.path().join("data.csv");
        std::fs::write(&input, "a,b\n1,2\n").unwrap();
        let first = store.import(&input).unwrap();
        std::fs::write(&input, "a,b\n1,3\n").unwrap();
        let second = store.import(&input).unwrap();
        assert_ne!(first.digest, second.digest);
    }
}
