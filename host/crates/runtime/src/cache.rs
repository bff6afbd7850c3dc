//! On-disk cache of compiled components, keyed by content hash and engine settings.
//!
//! Compiling is the one slow part of running a component (~0.2 s for a small Rust guest, ~20 s for
//! a Python one); loading a precompiled artifact takes well under a millisecond. wasmtime has a
//! cache of its own (the `cache` feature), but keying by our own digest lets runs record exactly
//! which component they used, and keeps the format to two files per entry with atomic writes.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Where a loaded component came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoadSource {
    /// Compiled now (and stored, when a cache directory is configured).
    Compiled,
    /// Deserialised from the on-disk cache.
    DiskCache,
    /// Already loaded by this runtime.
    Memory,
}

/// `sha256:<hex>` of a component's bytes: the identity runs record.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Feeds `Hash` output into SHA-256, to fingerprint the engine's compatibility settings stably.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

pub(crate) struct ComponentCache {
    dir: Option<PathBuf>,
    engine_key: String,
}

impl ComponentCache {
    pub(crate) fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut h = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        let engine_key = hex::encode(&h.0.finalize()[..8]);
        ComponentCache { dir, engine_key }
    }

    fn entry(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{hex}-{}.cwasm", self.engine_key)))
    }

    /// Loads the compiled form of `bytes` from disk, or compiles and stores it.
    pub(crate) fn load_or_compile(
        &self,
        engine: &Engine,
        digest: &str,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, LoadSource)> {
        let entry = self.entry(digest);
        if let Some(path) = entry.as_deref() {
            // Read into memory rather than `deserialize_file`'s mmap: a cache file truncated or
            // rewritten in place by another process would otherwise crash this one (SIGBUS).
            if let Ok(compiled) = std::fs::read(path) {
                // SAFETY: entries are written by `store` below from components an engine with the
                // same settings compiled (the engine key is in the name), and wasmtime checks the
                // header again; a corrupt or foreign file fails to deserialise and is recompiled.
                match unsafe { Component::deserialize(engine, &compiled) } {
                    Ok(c) => return Ok((c, LoadSource::DiskCache)),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "discarding unusable cache entry")
                    }
                }
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Some(path) = entry {
            if let Err(e) = store(&path, &component) {
                tracing::warn!(path = %path.display(), error = %e, "could not write compiled component to cache");
            }
        }
        Ok((component, LoadSource::Compiled))
    }
}

/// Writes atomically: a crash leaves either no entry or a whole one.
fn store(path: &Path, component: &Component) -> anyhow::Result<()> {
    let dir = path.parent().expect("cache entries live in a directory");
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, &component.serialize()?)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)?;
    Ok(())
}
