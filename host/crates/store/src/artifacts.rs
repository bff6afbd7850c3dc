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
        for dir in ["sha256", "tmp", "verified", "corrupt"] {
            std::fs::create_dir_all(root.join(dir))?;
        }
        let store = ArtifactStore {
            root: root.to_path_buf(),
            backend: None,
        };
        store.sweep_scratch();
        Ok(store)
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
        self.settle(&staged, digest, None)?;
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

    /// Where the store lives.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Bytes an unprivileged writer may still use on the store's filesystem, if it can say.
    pub fn free_bytes(&self) -> Option<u64> {
        let st = rustix::fs::statvfs(&self.root).ok()?;
        Some(st.f_bavail.saturating_mul(st.f_frsize))
    }

    /// Whether `digest` is here or in the backend (without fetching it).
    pub fn available(&self, digest: &str) -> Result<bool> {
        if self.contains(digest) {
            return Ok(true);
        }
        match &self.backend {
            Some(b) if parse_digest(digest).is_ok() => b.contains(digest),
            _ => Ok(false),
        }
    }

    pub fn contains(&self, digest: &str) -> bool {
        parse_digest(digest).is_ok() && self.path(digest).is_dir()
    }

    /// A fresh scratch directory on the store's filesystem, for outputs to be ingested.
    pub fn scratch_dir(&self) -> Result<ScratchDir> {
        Ok(ScratchDir(Some(
            tempfile::Builder::new()
                .prefix(&format!("out-{}-", std::process::id()))
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
        self.settle(dir, &stored.digest, Some(stored.bytes))?;
        Ok(stored)
    }

    /// Seals `dir` (already checked to have `digest`) and renames it to the digest's path,
    /// or drops it when an identical artifact is already there.
    ///
    /// An artifact already stored under that name is checked in full first: a corrupt one is
    /// swapped for `dir` in one atomic exchange and moved aside (`corrupt/`), so a run that
    /// produces it again repairs it instead of computing on the damaged copy.
    fn settle(&self, dir: &Path, digest: &str, bytes: Option<u64>) -> Result<()> {
        let dest = self.path(digest);
        weft_tree::make_read_only(dir, Limits::DEFAULT)?;
        if dest.exists() {
            if self.check(digest, &dest, Check::Full) {
                return Ok(weft_tree::remove_tree(dir)?);
            }
            tracing::warn!(%digest, "replacing a corrupt stored artifact with a good copy");
            weft_tree::exchange(dir, &dest)?;
            self.quarantine_at(dir, digest)?;
            self.mark(digest, &dest, bytes);
            return Ok(());
        }
        match std::fs::rename(dir, &dest) {
            Ok(()) => {
                self.mark(digest, &dest, bytes);
                Ok(())
            }
            // Lost a race with an identical artifact: same digest, same content.
            Err(_) if dest.exists() => Ok(weft_tree::remove_tree(dir)?),
            Err(e) => Err(e.into()),
        }
    }

    /// The local directory of `digest`, checked before a step or a server is given it: hashed
    /// in full up to [`FULL_CHECK_BYTES`], above that trusted while its fingerprint matches
    /// the one recorded when its digest was last checked. A corrupt copy is moved aside and
    /// fetched again from the backend when there is one; otherwise it is an error naming the
    /// digest and the repair (and the copy stays, for `artifacts verify` to report).
    pub fn checked_local(&self, digest: &str) -> Result<PathBuf> {
        self.local_checked(digest, Check::Cheap)
    }

    /// As [`checked_local`](Self::checked_local), always hashing the whole tree: for copies
    /// leaving the store (`artifacts get`).
    pub fn verified_local(&self, digest: &str) -> Result<PathBuf> {
        self.local_checked(digest, Check::Full)
    }

    fn local_checked(&self, digest: &str, how: Check) -> Result<PathBuf> {
        let path = self.ensure_local(digest)?;
        if self.check(digest, &path, how) {
            return Ok(path);
        }
        // Left in place without a backend: `artifacts verify` reports it, the cache misses on
        // it, and the task that made it replaces it when it runs again.
        if self.backend.is_some() {
            tracing::warn!(%digest, "stored artifact corrupt; fetching it again");
            self.quarantine(digest)?;
            return self.ensure_local(digest);
        }
        Err(StoreError::Corrupt {
            digest: digest.to_string(),
            path,
        })
    }

    /// Whether the tree at `path` still has `digest`. Anything unreadable or refused counts as
    /// corrupt: the store wrote none of that.
    fn check(&self, digest: &str, path: &Path, how: Check) -> bool {
        let Ok(hex) = parse_digest(digest) else {
            return false;
        };
        let mark = self.root.join("verified").join(hex);
        let Ok(now) = weft_tree::fingerprint(path, Limits::DEFAULT) else {
            return false;
        };
        if how == Check::Cheap
            && now.bytes > FULL_CHECK_BYTES
            && std::fs::read_to_string(&mark).is_ok_and(|m| m == now.hex)
        {
            return true;
        }
        let ok = weft_tree::digest::matches(path, Limits::DEFAULT, digest).unwrap_or(false);
        if ok && now.bytes > FULL_CHECK_BYTES {
            let _ = std::fs::write(&mark, &now.hex);
        }
        ok
    }

    /// Records the fingerprint of a tree whose digest was just checked, when it is big enough
    /// for the fingerprint to stand in for the digest (smaller ones are hashed every time).
    /// (`bytes`, when known, spares small trees the walk.)
    fn mark(&self, digest: &str, path: &Path, bytes: Option<u64>) {
        if bytes.is_some_and(|b| b <= FULL_CHECK_BYTES) {
            return;
        }
        if let (Ok(hex), Ok(now)) = (
            parse_digest(digest),
            weft_tree::fingerprint(path, Limits::DEFAULT),
        ) {
            if now.bytes > FULL_CHECK_BYTES {
                let _ = std::fs::write(self.root.join("verified").join(hex), now.hex);
            }
        }
    }

    /// Moves the stored copy of `digest` aside into `corrupt/`, kept for inspection.
    pub fn quarantine(&self, digest: &str) -> Result<()> {
        let path = self.path(digest);
        if path.is_dir() {
            self.quarantine_at(&path, digest)?;
        }
        Ok(())
    }

    fn quarantine_at(&self, dir: &Path, digest: &str) -> Result<()> {
        let hex = parse_digest(digest)?;
        let _ = std::fs::remove_file(self.root.join("verified").join(hex));
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let aside = self.root.join("corrupt").join(format!("{hex}-{stamp}"));
        std::fs::rename(dir, &aside)?;
        tracing::warn!(%digest, aside = %aside.display(), "corrupt artifact moved aside");
        Ok(())
    }

    /// Removes the local copy of `digest`: moved into scratch first (one rename, so a reader
    /// sees the whole tree or none), then deleted, with its verification mark. A published
    /// copy in the backend stays (object stores keep their own lifecycle rules). `false` when
    /// there was none.
    pub fn remove(&self, digest: &str) -> Result<bool> {
        let hex = parse_digest(digest)?;
        let path = self.path(digest);
        if !path.is_dir() {
            return Ok(false);
        }
        let scratch = self.scratch_dir()?;
        let aside = scratch.path().join("removed");
        std::fs::rename(&path, &aside)?;
        let _ = std::fs::remove_file(self.root.join("verified").join(hex));
        weft_tree::remove_tree(&aside)?;
        Ok(true)
    }

    /// Removes scratch directories left by processes that are gone (a killed run's outputs
    /// never ingested). Each is named after the process that made it, so a live run's are kept.
    fn sweep_scratch(&self) {
        let Ok(entries) = std::fs::read_dir(self.root.join("tmp")) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = scratch_owner(&name.to_string_lossy()) else {
                continue;
            };
            if pid != std::process::id() && !crate::lease::process_alive(pid) {
                match weft_tree::remove_tree(&entry.path()) {
                    // Another process sharing this home (a gang's ranks start together) swept
                    // part of it first.
                    Err(weft_tree::TreeError::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(path = %entry.path().display(), error = %e, "could not remove a leftover scratch directory")
                    }
                    Ok(()) => {}
                }
            }
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
        } else if !meta.is_file() {
            // A FIFO would block the copy forever, a device never end.
            return Err(StoreError::Invalid(format!(
                "{}: not a regular file or a directory (a device, FIFO or socket)",
                src.display()
            )));
        } else {
            std::fs::create_dir(&staged)?;
            let name = src
                .file_name()
                .ok_or_else(|| StoreError::Invalid(format!("{}: no file name", src.display())))?;
            std::fs::copy(src, staged.join(name))?;
        }
        self.ingest_dir(&staged)
    }

    /// Checks every stored artifact against its digest (`artifacts verify`), calling `progress`
    /// with (done, total) after each. With `repair`, a corrupt one is moved aside and fetched
    /// again from the backend when it has a good copy; the cache then misses on it, so the
    /// task that made it runs again.
    pub fn fsck(&self, repair: bool, mut progress: impl FnMut(usize, usize)) -> Result<Fsck> {
        let mut report = Fsck::default();
        let mut digests = Vec::new();
        for entry in std::fs::read_dir(self.root.join("sha256"))? {
            let entry = entry?;
            let digest = format!("sha256:{}", entry.file_name().to_string_lossy());
            if parse_digest(&digest).is_ok() && entry.file_type()?.is_dir() {
                digests.push(digest);
            } else {
                report.stray.push(entry.path());
            }
        }
        digests.sort();
        for (i, digest) in digests.iter().enumerate() {
            let path = self.path(digest);
            if self.check(digest, &path, Check::Full) {
                report.checked.push(digest.clone());
            } else if repair {
                self.quarantine(digest)?;
                let refetched = self.backend.is_some() && self.ensure_local(digest).is_ok();
                report.repaired.push((digest.clone(), refetched));
            } else {
                report.corrupt.push(digest.clone());
            }
            progress(i + 1, digests.len());
        }
        Ok(report)
    }

    /// Whether the artifact is here and intact by the grant-time check (see
    /// [`checked_local`](Self::checked_local)), or in the backend: what a cache hit needs.
    pub fn intact(&self, digest: &str) -> Result<bool> {
        let path = self.path(digest);
        if path.is_dir() {
            return Ok(self.check(digest, &path, Check::Cheap));
        }
        self.verify(digest)
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

/// Trees up to this size are hashed in full every time they are checked out to a step.
pub const FULL_CHECK_BYTES: u64 = 16 << 20;

/// How thoroughly [`ArtifactStore::check`] looks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Whole digest for small trees, fingerprint for big ones.
    Cheap,
    /// Whole digest.
    Full,
}

/// The process that made scratch directory `name` (`out-<pid>-<random>`).
fn scratch_owner(name: &str) -> Option<u32> {
    name.strip_prefix("out-")?.split('-').next()?.parse().ok()
}

/// What [`ArtifactStore::fsck`] found.
#[derive(Debug, Default, serde::Serialize)]
pub struct Fsck {
    /// Intact artifacts.
    pub checked: Vec<String>,
    /// Corrupt ones, left in place (no repair asked).
    pub corrupt: Vec<String>,
    /// Corrupt ones moved aside, and whether a good copy was fetched again.
    pub repaired: Vec<(String, bool)>,
    /// Entries in the store that are not artifacts (a name that is not a digest, a file).
    pub stray: Vec<PathBuf>,
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
