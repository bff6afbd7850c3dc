//! Virtualised clocks and randomness for hermetic runs: the same seed and the same inputs give
//! the same outputs, byte for byte. The base of run replay.

use rand::SeedableRng;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

/// 2024-01-01T00:00:00Z: where every hermetic wall clock starts.
pub(crate) const EPOCH_START: Duration = Duration::from_secs(1_704_067_200);
/// How far a virtual clock advances on each read, so loops that wait for time still progress.
const TICK_NANOS: u64 = 1_000;

/// A wall clock that starts at a fixed instant and advances one tick per read.
pub(crate) struct VirtualWallClock(AtomicU64);

impl HostWallClock for VirtualWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(TICK_NANOS)
    }
    fn now(&self) -> Duration {
        EPOCH_START + Duration::from_nanos(self.0.fetch_add(TICK_NANOS, Ordering::Relaxed))
    }
}

/// A monotonic clock that starts at zero and advances one tick per read.
pub(crate) struct VirtualMonotonicClock(AtomicU64);

impl HostMonotonicClock for VirtualMonotonicClock {
    fn resolution(&self) -> u64 {
        TICK_NANOS
    }
    fn now(&self) -> u64 {
        self.0.fetch_add(TICK_NANOS, Ordering::Relaxed)
    }
}

/// Applies hermetic clocks and seeded generators to a WASI context under construction.
pub(crate) fn apply(builder: &mut wasmtime_wasi::WasiCtxBuilder, seed: u64) {
    builder
        .wall_clock(VirtualWallClock(AtomicU64::new(0)))
        .monotonic_clock(VirtualMonotonicClock(AtomicU64::new(0)))
        .secure_random(rand::rngs::StdRng::seed_from_u64(seed))
        .insecure_random(rand::rngs::StdRng::seed_from_u64(
            seed ^ 0x9e37_79b9_7f4a_7c15,
        ))
        .insecure_random_seed(u128::from(seed) << 64 | u128::from(!seed));
}
