//! Where artifacts live beyond this machine: any object store the `object_store` crate reaches
//! (S3-compatible services with the `s3` feature, a filesystem path, memory), behind one trait.
//!
//! The local artifact store stays the working copy (steps are granted directories, so bytes must
//! be on disk); a backend is where artifacts are published and fetched from. An artifact is
//! uploaded file by file under `<prefix>/<hex>/`, then its manifest `<prefix>/<hex>.manifest`,
//! which marks it complete: a reader that finds no manifest treats the artifact as absent.

use crate::{Result, StoreError};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::path::Path;
use std::sync::Arc;

/// A store of whole artifact directories, by digest.
pub trait ArtifactBackend: Send + Sync {
    /// Stores the directory `dir` under `digest` (a no-op when already there).
    fn put_tree(&self, digest: &str, dir: &Path) -> Result<()>;
    /// Writes the artifact `digest` into the (new) directory `dest`.
    fn get_tree(&self, digest: &str, dest: &Path) -> Result<()>;
    /// Whether the artifact is there, complete.
    fn contains(&self, digest: &str) -> Result<bool>;
    /// For messages.
    fn describe(&self) -> String;
}

/// An [`ArtifactBackend`] over any `object_store`.
pub struct ObjectStoreBackend {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    url: String,
    /// object_store is async; this backend is called from blocking code, so it drives its own
    /// small runtime (`None` only while dropping).
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for ObjectStoreBackend {
    /// The store may be dropped inside someone else's async context, where a blocking runtime
    /// shutdown would panic; shut down in the background instead.
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl ObjectStoreBackend {
    /// `memory://`, `file:///abs/path`, or (with the `s3` feature) `s3://bucket/prefix`, whose
    /// endpoint and credentials come from the usual `AWS_*` environment variables.
    pub fn from_url(url: &str) -> Result<Self> {
        let parsed = url::Url::parse(url)
            .map_err(|e| StoreError::Invalid(format!("artifact store URL `{url}`: {e}")))?;
        let opts = std::env::vars()
            .filter(|(k, _)| k.starts_with("AWS_"))
            .map(|(k, v)| (k.to_ascii_lowercase(), v));
        if parsed.scheme() == "file" {
            std::fs::create_dir_all(parsed.path())?;
        }
        let (store, prefix) = object_store::parse_url_opts(&parsed, opts)
            .map_err(|e| StoreError::Invalid(format!("artifact store URL `{url}`: {e}")))?;
        Self::new(Arc::from(store), prefix, url)
    }

    pub fn new(store: Arc<dyn ObjectStore>, prefix: ObjectPath, url: &str) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(ObjectStoreBackend {
            store,
            prefix,
            url: url.to_string(),
            rt: Some(rt),
        })
    }

    fn key(&self, rest: &str) -> ObjectPath {
        let mut parts: Vec<String> = self
            .prefix
            .parts()
            .map(|p| p.as_ref().to_string())
            .collect();
        parts.extend(rest.split('/').map(str::to_string));
        ObjectPath::from_iter(parts)
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt
            .as_ref()
            .expect("runtime lives until drop")
            .block_on(f)
    }

    fn fail(&self, what: &str, e: object_store::Error) -> StoreError {
        StoreError::Backend(format!("artifact store {}: {what}: {e}", self.url))
    }
}

/// The hex of a digest, checked before it becomes part of an object key.
fn hex_of(digest: &str) -> Result<&str> {
    crate::parse_digest(digest)
}

impl ArtifactBackend for ObjectStoreBackend {
    fn put_tree(&self, digest: &str, dir: &Path) -> Result<()> {
        if self.contains(digest)? {
            return Ok(());
        }
        let hex = hex_of(digest)?;
        let entries = manifest_entries(dir)?;
        self.block_on(async {
            for rel in entries.iter().filter(|e| !e.ends_with('/')) {
                let bytes = std::fs::read(dir.join(rel))?;
                self.store
                    .put(&self.key(&format!("{hex}/{rel}")), PutPayload::from(bytes))
                    .await
                    .map_err(|e| self.fail("upload", e))?;
            }
            let manifest = entries.join("\n");
            self.store
                .put(
                    &self.key(&format!("{hex}.manifest")),
                    PutPayload::from(manifest.into_bytes()),
                )
                .await
                .map_err(|e| self.fail("upload manifest", e))?;
            Ok(())
        })
    }

    fn get_tree(&self, digest: &str, dest: &Path) -> Result<()> {
        let hex = hex_of(digest)?;
        self.block_on(async {
            let manifest = self
                .store
                .get(&self.key(&format!("{hex}.manifest")))
                .await
                .map_err(|e| self.fail(&format!("artifact {digest}"), e))?
                .bytes()
                .await
                .map_err(|e| self.fail("download", e))?;
            std::fs::create_dir_all(dest)?;
            for rel in String::from_utf8_lossy(&manifest)
                .lines()
                .filter(|l| !l.is_empty())
            {
                // A directory (kept, empty or not, since version 2 digests count them).
                if let Some(dir) = rel.strip_suffix('/') {
                    if dir
                        .split('/')
                        .any(|c| c == ".." || c == "." || c.is_empty())
                    {
                        return Err(StoreError::Invalid(format!(
                            "artifact {digest}: bad path `{rel}` in its manifest"
                        )));
                    }
                    std::fs::create_dir_all(dest.join(dir))?;
                    continue;
                }
                if rel
                    .split('/')
                    .any(|c| c == ".." || c == "." || c.is_empty())
                {
                    return Err(StoreError::Invalid(format!(
                        "artifact {digest}: bad path `{rel}` in its manifest"
                    )));
                }
                let bytes = self
                    .store
                    .get(&self.key(&format!("{hex}/{rel}")))
                    .await
                    .map_err(|e| self.fail("download", e))?
                    .bytes()
                    .await
                    .map_err(|e| self.fail("download", e))?;
                let path = dest.join(rel);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(path, &bytes)?;
            }
            Ok(())
        })
    }

    fn contains(&self, digest: &str) -> Result<bool> {
        let key = self.key(&format!("{}.manifest", hex_of(digest)?));
        self.block_on(async {
            match self.store.head(&key).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(self.fail("lookup", e)),
            }
        })
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}

/// The manifest of a stored tree: one line per file (its relative path) and per directory
/// (its path and `/`), sorted.
fn manifest_entries(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    weft_tree::walk(dir, weft_tree::Limits::DEFAULT, |entry, _| {
        let rel = entry.rel.to_string_lossy().into_owned();
        out.push(match entry.kind {
            weft_tree::Kind::Dir => format!("{rel}/"),
            weft_tree::Kind::File => rel,
        });
        Ok(())
    })?;
    out.sort();
    Ok(out)
}
