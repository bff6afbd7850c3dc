//! Seeded random streams: one PCG64 stream per (seed, purpose, index), so each suggestion
//! depends only on its position, never on how many draws came before it.

use rand::SeedableRng;
use rand_pcg::Pcg64;
use std::hash::{BuildHasher, Hasher};

/// SplitMix64's finaliser: mixes a word well.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The stream for `seed` and the path `stream` (e.g. `[PURPOSE, trial_index]`).
pub(crate) fn stream(seed: u64, stream: &[u64]) -> Pcg64 {
    let key = stream.iter().fold(mix(seed), |acc, &s| mix(acc ^ mix(s)));
    Pcg64::seed_from_u64(key)
}

/// A seed for experiments without `random_state`: std's per-process random hash keys.
pub(crate) fn entropy() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x5EED);
    h.finish() >> 1
}

/// Purposes, so different uses of one seed never share a stream.
pub(crate) const RANDOM: u64 = 1;
pub(crate) const GRID: u64 = 2;
pub(crate) const TPE: u64 = 3;
pub(crate) const BO: u64 = 4;
pub(crate) const CMA: u64 = 5;
pub(crate) const HYPERBAND: u64 = 6;
