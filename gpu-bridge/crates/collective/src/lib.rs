//! Collectives for data-parallel training, behind one [`Communicator`] trait so a trainer
//! component's `weft:tensor/collective` calls do not know where their peers are:
//!
//! - [`LocalGroup`]: ranks are component instances on threads of one process; a collective
//!   meets in host memory (the last rank to arrive computes it for all).
//! - [`mpi::MpiRank`] (feature `mpi`): ranks are processes of an MPI job, across machines and
//!   pods; [`nccl::NcclRank`] (feature `nccl`): the same job's ranks on GPUs, NCCL moving the
//!   data. The engines the field trusts, not a protocol of ours.
//!
//! Gang semantics everywhere: a rank that leaves (its instance failed, was cancelled, or gave
//! up waiting) breaks the group, and every peer's pending and later collectives fail with
//! [`CollectiveError::Peer`], so the job restarts the whole gang instead of hanging.

mod local;
#[cfg(feature = "mpi")]
pub mod mpi;
#[cfg(feature = "nccl")]
pub mod nccl;
mod reduce;

pub use local::{LocalGroup, LocalRank};
pub use reduce::reduce;

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a collective combines the ranks' elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    /// The sum divided by the world size (data-parallel gradient averaging).
    Mean,
    Max,
    Min,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CollectiveError {
    /// The ranks called different collectives, or with different lengths or roots.
    #[error("the ranks disagree: {0}")]
    Mismatch(String),
    /// A peer left the job or a wait ran out: the gang has failed.
    #[error("{0}")]
    Peer(String),
    /// The step was cancelled while it waited.
    #[error("cancelled while waiting for the other ranks")]
    Cancelled,
}

/// How long a rank waits for its peers, and what ends the wait early (the step's deadline and
/// its cancel flag).
#[derive(Clone, Debug)]
pub struct Wait {
    pub deadline: Instant,
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Wait {
    /// Waits of at most `limit` from now, never cancelled.
    pub fn at_most(limit: Duration) -> Wait {
        Wait {
            deadline: Instant::now() + limit,
            cancel: None,
        }
    }

    /// An error once the wait must end.
    fn check(&self, rank: usize) -> Result<(), CollectiveError> {
        if self
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
        {
            return Err(CollectiveError::Cancelled);
        }
        if Instant::now() >= self.deadline {
            return Err(CollectiveError::Peer(format!(
                "rank {rank} ran out of time waiting for the other ranks"
            )));
        }
        Ok(())
    }
}

/// How a rank polling for a collective's end waits between tests: it yields the core for the
/// first [`Backoff::SPIN`] (a collective of a small message ends within microseconds, and MPI
/// makes progress only while it is tested), then sleeps, the sleeps growing to a millisecond
/// (a rank waiting long for a slow peer leaves the cores to the others).
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub(crate) struct Backoff {
    started: Instant,
    sleep: Duration,
}

#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
impl Backoff {
    const SPIN: Duration = Duration::from_millis(2);

    pub(crate) fn new() -> Backoff {
        Backoff {
            started: Instant::now(),
            sleep: Duration::from_micros(10),
        }
    }

    /// Waits a little before the next test.
    pub(crate) fn pause(&mut self) {
        if self.started.elapsed() < Self::SPIN {
            std::thread::yield_now();
        } else {
            std::thread::sleep(self.sleep);
            self.sleep = (self.sleep * 2).min(Duration::from_millis(1));
        }
    }
}

/// One rank's view of its group. Every rank calls the same collectives in the same order
/// (MPI's rule); a call returns when all have made it.
pub trait Communicator: Send + Sync + std::fmt::Debug {
    fn rank(&self) -> usize;
    fn world_size(&self) -> usize;
    /// This rank's index among the ranks of its node (its process's threads, its pod's
    /// processes).
    fn local_rank(&self) -> usize;
    /// `data` becomes the element-wise `op` of every rank's `data` (equal lengths).
    fn all_reduce(
        &self,
        data: &mut [f32],
        op: ReduceOp,
        wait: &Wait,
    ) -> Result<(), CollectiveError>;
    /// `data` becomes rank `root`'s `data` (equal lengths).
    fn broadcast(&self, data: &mut [f32], root: usize, wait: &Wait) -> Result<(), CollectiveError>;
    /// Every rank's `data` (equal lengths), concatenated in rank order.
    fn all_gather(&self, data: &[f32], wait: &Wait) -> Result<Vec<f32>, CollectiveError>;
    /// This rank's `1 / world` of the element-wise `op` of every rank's `data` (equal lengths,
    /// a multiple of the world size; rank r gets the r-th part).
    fn reduce_scatter(
        &self,
        data: &[f32],
        op: ReduceOp,
        wait: &Wait,
    ) -> Result<Vec<f32>, CollectiveError>;
    /// Returns when every rank has called it.
    fn barrier(&self, wait: &Wait) -> Result<(), CollectiveError>;
}

/// The length of each rank's part of a reduce-scatter of `len` elements across `world` ranks,
/// or the mismatch when `len` is not a multiple of `world`.
pub(crate) fn scatter_part(len: usize, world: usize) -> Result<usize, CollectiveError> {
    if world == 0 || !len.is_multiple_of(world) {
        return Err(CollectiveError::Mismatch(format!(
            "reduce-scatter of {len} elements across {world} ranks: the length must be a multiple of the world size"
        )));
    }
    Ok(len / world)
}

/// The length of an all-gather of `len` elements from each of `world` ranks.
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub(crate) fn gathered_len(len: usize, world: usize) -> Result<usize, CollectiveError> {
    len.checked_mul(world).ok_or_else(|| {
        CollectiveError::Mismatch(format!(
            "all-gather of {len} elements from {world} ranks overflows"
        ))
    })
}

/// The items rank `rank` of `world` owns of `n`: contiguous, in rank order, sizes differing
/// by at most one (the first `n % world` ranks get one more), so every item is owned once.
pub fn shard(n: usize, rank: usize, world: usize) -> Range<usize> {
    if world == 0 || rank >= world {
        return 0..0;
    }
    let (base, extra) = (n / world, n % world);
    let start = rank * base + rank.min(extra);
    start..start + base + usize::from(rank < extra)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn shards_cover_every_item_once(n in 0usize..10_000, world in 1usize..64) {
            let mut next = 0;
            for rank in 0..world {
                let r = shard(n, rank, world);
                prop_assert_eq!(r.start, next);
                prop_assert!(r.len() == n / world || r.len() == n / world + 1);
                next = r.end;
            }
            prop_assert_eq!(next, n);
        }
    }

    #[test]
    fn shard_out_of_range_is_empty() {
        assert_eq!(shard(10, 3, 3), 0..0);
        assert_eq!(shard(10, 0, 0), 0..0);
        assert_eq!(shard(10, 0, 3), 0..4);
        assert_eq!(shard(10, 2, 3), 7..10);
    }
}
