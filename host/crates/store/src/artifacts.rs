//! Artifacts as immutable directories named by the digest of their content.
//!
//! A task writes each output artifact into a fresh directory; when the task succeeds, the
//! directory is hashed (sorted relative paths and file digests) and renamed into
//! `<root>/sha256/<hex>`. Renames are atomic, so a crash never leaves half an artifact under its
//! name, and an artifact that already exists is deduplicated. Consumers are granted these
//! directories read-only, without copying.

use crate::{Result, StoreError};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

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
        let fetched = self.ingest_local(&staged)?;
        if fetched.digest != digest {
            return Err(StoreError::Invalid(format!(
                "artifact {digest} from {} has digest {}: corrupt, not used",
                backend.describe(),
                fetched.digest
            )));
        }
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

    fn ingest_local(&self, dir: &Path) -> Result<StoredArtifact> {
        // The root itself must be a directory, not a link a step left in its place: renaming,
        // hashing or chmod-ing through it would reach host files.
        let meta = std::fs::symlink_metadata(dir)?;
        if !meta.is_dir() {
            return Err(StoreError::Invalid(format!(
                "{}: an output artifact must be a directory; the step left a symlink or special file in its place",
                dir.display()
            )));
        }
        let stored = tree_digest(dir)?;
        let dest = self.path(&stored.digest);
        if dest.exists() {
            std::fs::remove_dir_all(dir)?;
            return Ok(stored);
        }
        make_read_only(dir)?;
        match std::fs::rename(dir, &dest) {
            Ok(()) => Ok(stored),
            // Lost a race with an identical artifact: same digest, same content.
            Err(_) if dest.exists() => {
                let _ = std::fs::remove_dir_all(dir);
                Ok(stored)
            }
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
            copy_tree(src, &staged)?;
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
        Ok(tree_digest(&path)?.digest == digest)
    }
}

/// The hex of a strict `sha256:<64 lowercase hex>` digest, or an error naming the value.
pub fn parse_digest(digest: &str) -> Result<&str> {
    weft_spec::digest::parse(digest).map_err(|e| StoreError::Invalid(e.to_string()))
}

/// How deep an artifact's directories may nest: deeper trees are refused, not walked.
pub const MAX_DEPTH: usize = 64;
/// How many files and directories one artifact may hold.
pub const MAX_ENTRIES: usize = 100_000;

/// Digest of a directory: SHA-256 over `path\0file-sha256\n` lines in path order. Files are
/// hashed by streaming, never read whole.
pub fn tree_digest(dir: &Path) -> Result<StoredArtifact> {
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    files.sort();
    let mut h = Sha256::new();
    let mut bytes = 0u64;
    for (rel, path) in &files {
        let (size, file_hex) = hash_file(path)?;
        bytes = bytes.saturating_add(size);
        h.update(rel.as_bytes());
        h.update([0]);
        h.update(file_hex.as_bytes());
        h.update([b'\n']);
    }
    Ok(StoredArtifact {
        digest: format!("sha256:{}", hex::encode(h.finalize())),
        bytes,
        files: files.len() as u64,
    })
}

/// Size and hex SHA-256 of a regular file, read in chunks through a handle opened without
/// following links; a file with other hard links is refused (its bytes would be counted, and
/// could be changed, through another name).
fn hash_file(path: &Path) -> Result<(u64, String)> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_o_nofollow())
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.nlink() > 1 {
        return Err(StoreError::Invalid(format!(
            "{}: artifacts hold regular files with one link each (found a hard link or special file)",
            path.display()
        )));
    }
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut reader = file;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok((meta.len(), hex::encode(h.finalize())))
}

/// `O_NOFOLLOW` on Linux (x86-64 and aarch64 share the value), so a file swapped for a link
/// after the walk is not followed when opened.
const fn libc_o_nofollow() -> i32 {
    0o400000
}

/// Every regular file under `root` (relative path, path), walked iteratively without following
/// links; symlinks, devices and other special files, trees deeper than [`MAX_DEPTH`] and more
/// than [`MAX_ENTRIES`] entries are refused with an error naming the path.
fn walk(root: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    let mut entries = 0usize;
    while let Some((dir, depth)) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let ty = entry.file_type()?;
            let path = entry.path();
            entries += 1;
            if entries > MAX_ENTRIES {
                return Err(StoreError::Invalid(format!(
                    "{}: more than {MAX_ENTRIES} files and directories in one artifact",
                    root.display()
                )));
            }
            if ty.is_dir() {
                if depth + 1 > MAX_DEPTH {
                    return Err(StoreError::Invalid(format!(
                        "{}: directories nest deeper than {MAX_DEPTH} levels",
                        path.display()
                    )));
                }
                stack.push((path, depth + 1));
            } else if ty.is_file() {
                let rel = path
                    .strip_prefix(root)
                    .map_err(|_| {
                        StoreError::Invalid(format!(
                            "{}: outside {}",
                            path.display(),
                            root.display()
                        ))
                    })?
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push((rel, path));
            } else {
                return Err(StoreError::Invalid(format!(
                    "{}: artifacts hold regular files and directories only (found a symlink or special file)",
                    path.display()
                )));
            }
        }
    }
    Ok(())
}

/// Makes every file under `dir` read-only; runs after [`walk`] accepted the tree.
fn make_read_only(dir: &Path) -> Result<()> {
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    for (_, path) in files {
        let mut perms = std::fs::symlink_metadata(&path)?.permissions();
        perms.set_readonly(true);
        std::fs::set_permissions(&path, perms)?;
    }
    Ok(())
}

/// Removes a directory tree iteratively, never following links. `std::fs::remove_dir_all`
/// (and so `TempDir`'s drop) recurses once per level: a step's 20 000-deep output tree
/// overflowed a runner thread's stack with it.
pub fn remove_tree(root: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(m) if !m.is_dir() => return std::fs::remove_file(root),
        Ok(_) => {}
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.last().cloned() {
        let mut pushed = false;
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
                pushed = true;
            } else {
                std::fs::remove_file(entry.path())?;
            }
        }
        if !pushed {
            std::fs::remove_dir(&dir)?;
            stack.pop();
        }
    }
    Ok(())
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
            if let Err(e) = remove_tree(&path) {
                tracing::warn!(path = %path.display(), error = %e, "removing a scratch directory");
            }
        }
    }
}

/// Copies a user's directory (a pipeline input) into `dest`, refusing what [`walk`] refuses.
fn copy_tree(src: &Path, dest: &Path) -> Result<()> {
    let mut files = Vec::new();
    walk(src, &mut files)?;
    std::fs::create_dir_all(dest)?;
    for (rel, path) in files {
        let target = dest.join(&rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(path, target)?;
    }
    Ok(())
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
