//! Freeing the artifacts the model registry no longer needs: when registry rows are deleted,
//! the artifacts they named are removed from the artifact store unless something still uses
//! them, which is either a run (any lineage event: it produced or consumed the artifact, so
//! its lineage and `replay` need it) or a registry row of any namespace that still names it
//! (another version, an inference service).

use crate::{ArtifactStore, MetadataStore, RegistryStore};
use std::collections::BTreeSet;

/// Removes each of `digests` that nothing uses (see the module's doc); the ones removed. A
/// failure to check or remove one is logged and leaves it in place: keeping an artifact too
/// long is harmless, removing one in use is not.
pub fn collect_freed(
    metadata: &MetadataStore,
    artifacts: &ArtifactStore,
    registry: &RegistryStore,
    digests: &BTreeSet<String>,
) -> Vec<String> {
    let mut removed = Vec::new();
    for digest in digests {
        let used = match (metadata.lineage(digest), registry.mentions(digest)) {
            (Ok(events), Ok(named)) => !events.is_empty() || named,
            (Err(e), _) => kept(digest, &e.to_string()),
            (_, Err(e)) => kept(digest, &e.to_string()),
        };
        if used {
            continue;
        }
        match artifacts.remove(digest) {
            Ok(true) => {
                tracing::info!(%digest, "removed an artifact no run or registry entry uses");
                removed.push(digest.clone());
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(%digest, error = %e, "could not remove a freed artifact"),
        }
    }
    removed
}

/// Could not tell: counted as used.
fn kept(digest: &str, why: &str) -> bool {
    tracing::warn!(%digest, error = why, "could not tell whether a freed artifact is still used: kept");
    true
}
