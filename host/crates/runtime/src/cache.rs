//! On-disk cache of compiled components, keyed by content hash and engine settings.
//!
//! Compiling is the one slow part of running a component (~0.2 s for a small Rust guest, ~20 s for
//! a Python one); loading a precompiled artifact takes well under a millisecond. wasmtime has a
//! cache of its own (the `cache` feature), but keying by our own digest lets runs record exactly
//! which component they used, and keeps the format to one file per entry with atomic writes.
//!
//! An entry is machine code that runs as soon as it is loaded, and wasmtime's own checks cover
//! only its header: a bit flipped on disk in its code crashes the process (SIGSEGV) or traps
//! in nonsense on every run. So each entry carries the SHA-256 of its payload ([`SEALED_MAGIC`],
//! digest, payload), checked before wasmtime sees a byte; a mismatch is logged, the entry
//! removed and the component compiled again.
//!
//! The directory is capped: see `cache_dir` for the entries, their last use and eviction.

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

/// First bytes of a sealed entry; the digest of the payload follows.
const SEALED_MAGIC: &[u8; 8] = b"WEFTCW01";
const DIGEST_LEN: usize = 32;

/// The payload of a sealed entry, when its digest matches; why not otherwise.
fn unseal(entry: &[u8]) -> Result<&[u8], &'static str> {
    let header = SEALED_MAGIC.len() + DIGEST_LEN;
    if entry.len() < header || &entry[..SEALED_MAGIC.len()] != SEALED_MAGIC {
        return Err("not a sealed cache entry");
    }
    let (digest, payload) = entry[SEALED_MAGIC.len()..].split_at(DIGEST_LEN);
    if Sha256::digest(payload).as_slice() != digest {
        return Err("its content does not match its digest (corrupt)");
    }
    Ok(payload)
}

/// `payload` with the header [`unseal`] checks.
fn seal(payload: &[u8]) -> Vec<u8> {
    let mut entry = Vec::with_capacity(SEALED_MAGIC.len() + DIGEST_LEN + payload.len());
    entry.extend_from_slice(SEALED_MAGIC);
    entry.extend_from_slice(&Sha256::digest(payload));
    entry.extend_from_slice(payload);
    entry
}

pub(crate) struct ComponentCache {
    dir: Option<PathBuf>,
    engine_key: String,
    /// The most bytes the directory may hold; least recently used entries go past it.
    max_bytes: Option<u64>,
}

impl ComponentCache {
    pub(crate) fn new(engine: &Engine, dir: Option<PathBuf>, max_bytes: Option<u64>) -> Self {
        ComponentCache {
            dir,
            engine_key: engine_key(engine),
            max_bytes,
        }
    }

    fn entry(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{hex}-{}{ENTRY_SUFFIX}", self.engine_key)))
    }

    pub(crate) fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The compiled form of `digest` from disk, when a usable entry is there; its use is
    /// recorded (the entry's mtime) for least-recently-used eviction.
    pub(crate) fn lookup(&self, engine: &Engine, digest: &str) -> Option<Component> {
        let path = self.entry(digest)?;
        // Read into memory rather than `deserialize_file`'s mmap: a cache file truncated or
        // rewritten in place by another process would otherwise crash this one (SIGBUS).
        let entry = std::fs::read(&path).ok()?;
        match unseal(&entry) {
            // SAFETY: the payload is byte for byte what `store` below wrote from a component
            // an engine with the same settings compiled (the engine key is in the name, the
            // digest checked above), and wasmtime checks its header again.
            Ok(payload) => match unsafe { Component::deserialize(engine, payload) } {
                Ok(c) => {
                    crate::cache_dir::touch(&path);
                    return Some(c);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding unusable cache entry")
                }
            },
            Err(why) => {
                tracing::warn!(path = %path.display(), why, "discarding cache entry; compiling again");
                let _ = std::fs::remove_file(&path);
            }
        }
        None
    }

    /// Compiles `bytes` and stores the result (when a directory is configured), then evicts
    /// what the size cap leaves no room for.
    pub(crate) fn compile(
        &self,
        engine: &Engine,
        digest: &str,
        bytes: &[u8],
    ) -> wasmtime::Result<Component> {
        let component = Component::new(engine, bytes)?;
        if let Some(path) = self.entry(digest) {
            if let Err(e) = store(&path, &component) {
                tracing::warn!(path = %path.display(), error = %e, "could not write compiled component to cache");
            }
            if let (Some(dir), Some(max)) = (&self.dir, self.max_bytes) {
                crate::cache_dir::evict(dir, max, &path);
            }
        }
        Ok(component)
    }
}

/// The file name ending of a cache entry (`<hex>-<engine key>` before it).
pub(crate) const ENTRY_SUFFIX: &str = ".sealed.cwasm";

/// A fingerprint of the engine's compatibility settings: entries compiled under others are
/// never loaded (their key is in their name).
pub(crate) fn engine_key(engine: &Engine) -> String {
    let mut h = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    hex::encode(&h.0.finalize()[..8])
}

/// What [`verify_cache_dir`] found.
#[derive(Debug, Default, serde::Serialize)]
pub struct CacheCheck {
    /// Entries whose payload matches their digest.
    pub intact: usize,
    /// Entries that are corrupt or not sealed (written before entries were), with why; removed
    /// with `repair` (the component is compiled again on its next load).
    pub bad: Vec<(PathBuf, String)>,
}

/// Checks every entry of the compiled-component cache in `dir` (`wasm-run artifacts verify`).
pub fn verify_cache_dir(dir: &Path, repair: bool) -> std::io::Result<CacheCheck> {
    let mut check = CacheCheck::default();
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(check),
        other => other?,
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|x| x != "cwasm") {
            continue;
        }
        let verdict = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| unseal(&bytes).map(drop).map_err(str::to_string));
        match verdict {
            Ok(()) => check.intact += 1,
            Err(why) => {
                if repair {
                    std::fs::remove_file(&path)?;
                }
                check.bad.push((path, why));
            }
        }
    }
    Ok(check)
}

/// Writes atomically: a crash leaves either no entry or a whole one.
fn store(path: &Path, component: &Component) -> anyhow::Result<()> {
    let dir = path.parent().expect("cache entries live in a directory");
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, &seal(&component.serialize()?))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_entry_opens_and_any_flipped_bit_is_refused() {
        let payload = b"compiled code".to_vec();
        let entry = seal(&payload);
        assert_eq!(unseal(&entry), Ok(payload.as_slice()));
        for i in 0..entry.len() {
            for bit in 0..8 {
                let mut bad = entry.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    unseal(&bad).is_err(),
                    "flip of bit {bit} of byte {i} accepted"
                );
            }
        }
        assert!(unseal(&entry[..10]).is_err());
        assert!(unseal(b"").is_err());
    }
}
