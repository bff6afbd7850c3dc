//! What deleting registry rows frees: the artifact digests (`sha256:<hex>`) their bodies name
//! (a model artifact's `uri`, a version's `weft.component` and lineage properties). After a
//! delete commits, the store hands them to the hook set with [`RegistryStore::on_freed`],
//! which removes from the artifact store those no run used and no remaining row names
//! ([`crate::collect_freed`]).

use super::{cascade_sql, RegistryKind, RegistryStore, TABLES};
use std::collections::BTreeSet;

/// Called with the digests a committed delete's rows named.
pub type FreedHook = Box<dyn Fn(&BTreeSet<String>) + Send + Sync>;

/// Every well-formed `sha256:<64 lowercase hex>` in `text`.
pub fn digests_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("sha256:") {
        let candidate = rest[i..].get(..71).unwrap_or("");
        if crate::parse_digest(candidate).is_ok() {
            out.insert(candidate.to_string());
        }
        rest = &rest[i + 7..];
    }
    out
}

/// The statements that read the bodies of the rows [`cascade_sql`] deletes, in its order.
pub(crate) fn bodies_sql(kind: RegistryKind, postgres: bool) -> Vec<String> {
    let column = if postgres {
        "body_json::text"
    } else {
        "body_json"
    };
    cascade_sql(kind)
        .into_iter()
        .map(|s| s.replacen("DELETE FROM", &format!("SELECT {column} FROM"), 1))
        .collect()
}

/// One statement per registry table saying whether any row, of any namespace, names `?`.
pub(crate) fn mention_sql(postgres: bool) -> Vec<String> {
    TABLES
        .iter()
        .map(|t| match postgres {
            true => format!(
                "SELECT 1 FROM {} WHERE strpos(body_json::text, $1) > 0 LIMIT 1",
                t.kind.table()
            ),
            false => format!(
                "SELECT 1 FROM {} WHERE instr(body_json, ?1) > 0 LIMIT 1",
                t.kind.table()
            ),
        })
        .collect()
}

impl RegistryStore {
    /// Sets what runs after a delete commits, with the digests the deleted rows named (it
    /// replaces any hook set before).
    pub fn on_freed(&self, hook: FreedHook) {
        *self.freed.write().unwrap_or_else(|e| e.into_inner()) = Some(hook);
    }

    pub(crate) fn freed(&self, digests: &BTreeSet<String>) {
        if digests.is_empty() {
            return;
        }
        if let Some(hook) = &*self.freed.read().unwrap_or_else(|e| e.into_inner()) {
            hook(digests);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::digests_in;

    #[test]
    fn only_whole_digests_are_found() {
        let a = format!("sha256:{}", "a".repeat(64));
        let text = format!(
            r#"{{"uri":"{a}","x":"sha256:short","y":"sha256:{}"}}"#,
            "A".repeat(64)
        );
        assert_eq!(digests_in(&text).into_iter().collect::<Vec<_>>(), [a]);
        assert!(digests_in("sha256:").is_empty());
        assert!(
            digests_in("ésha256:é").is_empty(),
            "no panic on a char boundary"
        );
    }
}
