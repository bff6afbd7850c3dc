//! Traffic between the versions of a model: a percentage split (a canary at 10%, say), changed at
//! run time by promote and rollback without touching requests in flight — each request picks its
//! version once, on arrival, and keeps it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

/// Percentages per version, summing to 100.
pub type Split = Vec<(String, u32)>;

pub(crate) struct Routing {
    split: RwLock<Split>,
    /// Splits replaced by `set`, newest last: what `rollback` returns to.
    history: RwLock<Vec<Split>>,
    counter: AtomicU64,
}

/// Checks a split against the versions a model has.
pub(crate) fn check(split: &Split, versions: &[&str]) -> Result<(), String> {
    if split.is_empty() {
        return Err("a split needs at least one version".into());
    }
    for (v, _) in split {
        if !versions.contains(&v.as_str()) {
            return Err(format!("no version `{v}` (versions: {versions:?})"));
        }
    }
    // Summed wide: weights near u32::MAX must not wrap around to 100.
    let total: u64 = split.iter().map(|(_, w)| u64::from(*w)).sum();
    if total != 100 {
        return Err(format!("the percentages add up to {total}, not 100"));
    }
    Ok(())
}

/// `1=90,2=10` → [("1", 90), ("2", 10)].
pub fn parse(text: &str) -> Result<Split, String> {
    text.split(',')
        .map(|part| {
            let (v, w) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: write VERSION=PERCENT"))?;
            let w: u32 = w.trim().parse().ok().filter(|w| *w <= 100).ok_or_else(|| {
                format!("`{part}`: the percentage must be a whole number from 0 to 100")
            })?;
            Ok((v.trim().to_string(), w))
        })
        .collect()
}

impl Routing {
    pub(crate) fn new(split: Split) -> Self {
        Routing {
            split: RwLock::new(split),
            history: RwLock::new(Vec::new()),
            counter: AtomicU64::new(0),
        }
    }

    /// The version for the next request. Deterministic: out of every 100 consecutive requests,
    /// each version gets exactly its percentage.
    pub(crate) fn pick(&self) -> String {
        let slot = (self.counter.fetch_add(1, Ordering::Relaxed) % 100) as u32;
        let split = self.split.read().unwrap();
        let mut upto = 0u32;
        for (v, w) in split.iter() {
            upto = upto.saturating_add(*w);
            if slot < upto {
                return v.clone();
            }
        }
        split.last().map(|(v, _)| v.clone()).unwrap_or_default()
    }

    /// The version with the most traffic: what unversioned metadata describes.
    pub(crate) fn primary(&self) -> String {
        let split = self.split.read().unwrap();
        split
            .iter()
            .max_by_key(|(_, w)| *w)
            .map(|(v, _)| v.clone())
            .unwrap_or_default()
    }

    pub(crate) fn current(&self) -> BTreeMap<String, u32> {
        self.split.read().unwrap().iter().cloned().collect()
    }

    /// Replaces the split (already checked), remembering the old one.
    pub(crate) fn set(&self, split: Split) {
        let old = std::mem::replace(&mut *self.split.write().unwrap(), split);
        self.history.write().unwrap().push(old);
        self.counter.store(0, Ordering::Relaxed);
    }

    /// Returns to the split before the last change.
    pub(crate) fn rollback(&self) -> Result<(), String> {
        let previous = self
            .history
            .write()
            .unwrap()
            .pop()
            .ok_or("nothing to roll back to")?;
        *self.split.write().unwrap() = previous;
        self.counter.store(0, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_routes_exact_percentages_and_rolls_back() {
        let r = Routing::new(parse("1=90,2=10").unwrap());
        let picks: Vec<String> = (0..200).map(|_| r.pick()).collect();
        assert_eq!(picks.iter().filter(|v| *v == "2").count(), 20);
        r.set(parse("2=100").unwrap());
        assert!((0..50).all(|_| r.pick() == "2"));
        r.rollback().unwrap();
        assert_eq!(
            r.current(),
            BTreeMap::from([("1".to_string(), 90), ("2".to_string(), 10)])
        );
        assert!(r.rollback().is_err());
        assert!(check(&parse("1=50,3=50").unwrap(), &["1", "2"])
            .unwrap_err()
            .contains("no version `3`"));
        assert!(check(&parse("1=50,2=40").unwrap(), &["1", "2"])
            .unwrap_err()
            .contains("add up to 90"));
    }

    #[test]
    fn weights_are_checked_not_wrapped() {
        let e = parse("1=4294967396").unwrap_err();
        assert!(
            e.contains("`1=4294967396`") && e.contains("0 to 100"),
            "{e}"
        );
        assert!(parse("1=101").is_err());
        // A split built another way still cannot wrap its sum to 100.
        let wrapping = vec![("1".to_string(), u32::MAX), ("2".to_string(), 101)];
        let e = check(&wrapping, &["1", "2"]).unwrap_err();
        assert!(e.contains("add up to 4294967396"), "{e}");
    }
}
