//! The compiled-component cache as a directory: its entries, and the size cap that keeps it
//! from growing without end.
//!
//! A Python or JS component compiles to ~35 MB, and every version of it (each edit and rebuild)
//! is a new entry, so an uncapped cache grows by gigabytes over weeks of work. Entries are
//! evicted least recently used first: each use sets the entry's mtime (not atime, which
//! `noatime`/`relatime` mounts do not keep), and after each new entry is written the oldest go
//! until the directory fits the cap again. An entry being read by another process when it is
//! removed is still read whole (an open file outlives its name), and a removed entry is only
//! compiled again.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// One compiled component in the cache.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CacheEntry {
    pub path: PathBuf,
    /// `sha256:` of the component it was compiled from.
    pub digest: String,
    /// The engine settings' key it was compiled under; only entries of the current key load.
    pub engine_key: String,
    pub bytes: u64,
    /// When it was last written or loaded.
    #[serde(with = "unix_seconds")]
    pub last_used: SystemTime,
}

mod unix_seconds {
    use std::time::{SystemTime, UNIX_EPOCH};

    pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let secs = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        s.serialize_u64(secs)
    }
}

/// The entries of the cache in `dir`, most recently used first; an absent directory has none.
pub fn list_cache(dir: &Path) -> std::io::Result<Vec<CacheEntry>> {
    let listing = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other?,
    };
    let mut entries = Vec::new();
    for item in listing {
        let item = item?;
        let name = item.file_name();
        let Some((digest, engine_key)) = name.to_str().and_then(parse_name) else {
            continue;
        };
        // Removed by another process since the listing: not an entry any more.
        let Ok(meta) = item.metadata() else { continue };
        entries.push(CacheEntry {
            path: item.path(),
            digest,
            engine_key,
            bytes: meta.len(),
            last_used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        });
    }
    entries.sort_by_key(|e| std::cmp::Reverse(e.last_used));
    Ok(entries)
}

/// `<64 hex>-<engine key>.sealed.cwasm` → (`sha256:<hex>`, engine key).
fn parse_name(name: &str) -> Option<(String, String)> {
    let stem = name.strip_suffix(crate::cache::ENTRY_SUFFIX)?;
    let (hex, key) = stem.split_once('-')?;
    let hex_ok = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    hex_ok.then(|| (format!("sha256:{hex}"), key.to_string()))
}

/// What [`prune_cache`] did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Pruned {
    /// The entries removed, oldest first.
    pub removed: Vec<CacheEntry>,
    /// Bytes the cache holds now.
    pub kept_bytes: u64,
    pub kept_entries: usize,
}

/// Removes least recently used entries of the cache in `dir` until it holds at most
/// `max_bytes` (0 empties it), and temporary files that interrupted writes left behind.
pub fn prune_cache(dir: &Path, max_bytes: u64) -> std::io::Result<Pruned> {
    remove_stale_temporaries(dir);
    let mut entries = list_cache(dir)?;
    let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
    let mut pruned = Pruned::default();
    while total > max_bytes {
        let Some(oldest) = entries.pop() else { break };
        match std::fs::remove_file(&oldest.path) {
            Ok(()) => {}
            // Another process pruned it first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        total -= oldest.bytes;
        pruned.removed.push(oldest);
    }
    pruned.kept_bytes = total;
    pruned.kept_entries = entries.len();
    Ok(pruned)
}

/// After `written` was stored: prunes to `max_bytes`, best effort (a cache that cannot be
/// pruned still works). An entry larger than the cap alone is not kept either, and says so.
pub(crate) fn evict(dir: &Path, max_bytes: u64, written: &Path) {
    match prune_cache(dir, max_bytes) {
        Ok(pruned) => {
            for e in &pruned.removed {
                if e.path == written {
                    tracing::warn!(
                        entry = %written.display(),
                        bytes = e.bytes,
                        max_bytes,
                        "compiled component is larger than the cache's cap (WEFT_CACHE_MAX); not kept, so it compiles again on its next use"
                    );
                } else {
                    tracing::debug!(entry = %e.path.display(), bytes = e.bytes, "evicted from the compiled cache");
                }
            }
        }
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "could not prune the compiled cache")
        }
    }
}

/// Records a use of the entry at `path` (its mtime), best effort.
pub(crate) fn touch(path: &Path) {
    let touched = std::fs::File::open(path).and_then(|f| f.set_modified(SystemTime::now()));
    if let Err(e) = touched {
        tracing::debug!(entry = %path.display(), error = %e, "could not record the cache entry's use");
    }
}

/// Temporary files older than this are left by writes that did not finish (a crash, a kill).
const STALE_TEMPORARY: Duration = Duration::from_secs(3600);

/// Removes what interrupted writes left (`.tmp*` files, as `tempfile` names them) once they are
/// too old to belong to a write still under way.
fn remove_stale_temporaries(dir: &Path) {
    let Ok(listing) = std::fs::read_dir(dir) else {
        return;
    };
    for item in listing.flatten() {
        let stale = item
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_TEMPORARY);
        if stale && item.file_name().to_string_lossy().starts_with(".tmp") {
            let _ = std::fs::remove_file(item.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dir: &Path, n: u8, bytes: usize, age_s: u64) -> PathBuf {
        let hex = format!("{n:02x}").repeat(32);
        let path = dir.join(format!("{hex}-0123456789abcdef.sealed.cwasm"));
        std::fs::write(&path, vec![0u8; bytes]).unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(age_s))
            .unwrap();
        path
    }

    #[test]
    fn pruning_removes_the_least_recently_used_first_until_the_rest_fit() {
        let dir = tempfile::tempdir().unwrap();
        let old = entry(dir.path(), 1, 100, 300);
        let mid = entry(dir.path(), 2, 100, 200);
        let new = entry(dir.path(), 3, 100, 100);
        std::fs::write(dir.path().join("unrelated.txt"), b"kept").unwrap();
        touch(&old); // used just now: the newest
        let listed: Vec<_> = list_cache(dir.path()).unwrap();
        assert_eq!(listed.len(), 3);
        assert_eq!(listed[0].path, old);
        assert_eq!(listed[0].digest, format!("sha256:{}", "01".repeat(32)));
        let pruned = prune_cache(dir.path(), 250).unwrap();
        assert_eq!(pruned.removed.len(), 1);
        assert_eq!(pruned.removed[0].path, mid);
        assert_eq!((pruned.kept_entries, pruned.kept_bytes), (2, 200));
        assert!(old.exists() && new.exists() && !mid.exists());
        assert!(dir.path().join("unrelated.txt").exists());
        assert_eq!(prune_cache(dir.path(), 0).unwrap().removed.len(), 2);
        assert!(list_cache(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn names_that_are_not_entries_are_not_listed() {
        assert!(parse_name("abc-def.sealed.cwasm").is_none());
        assert!(parse_name(&format!("{}-k.cwasm", "a".repeat(64))).is_none());
        let (digest, key) = parse_name(&format!("{}-k.sealed.cwasm", "a".repeat(64))).unwrap();
        assert_eq!((digest.len(), key.as_str()), (71, "k"));
    }
}
