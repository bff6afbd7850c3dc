//! Ranks on threads of one process: each collective is a round in shared host memory. Every
//! rank leaves its part; the last to arrive checks that all made the same call, computes the
//! result once, and wakes the others. A large all-reduce is reduced by every rank at once,
//! each its own slice of the elements (reduce-scatter then all-gather, in memory), so the
//! reduction runs on as many cores as there are ranks rather than on the last to arrive.

use crate::{reduce, CollectiveError, Communicator, ReduceOp, Wait};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// How often a waiting rank looks at its deadline and cancel flag.
const POLL: Duration = Duration::from_millis(50);

/// Elements from which an all-reduce is reduced by every rank, each its slice: below it the
/// second meeting (a thread wake-up, tens of µs) costs more than the reduction it shares.
const SHARED_REDUCE_MIN: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Call {
    AllReduce(ReduceOp),
    Broadcast(usize),
    AllGather,
    ReduceScatter(ReduceOp),
    Barrier,
}

impl Call {
    fn name(&self) -> String {
        match self {
            Call::AllReduce(op) => format!("all-reduce({op:?})"),
            Call::Broadcast(root) => format!("broadcast(root {root})"),
            Call::AllGather => "all-gather".into(),
            Call::ReduceScatter(op) => format!("reduce-scatter({op:?})"),
            Call::Barrier => "barrier".into(),
        }
    }
}

/// What a finished round hands each rank.
enum Done {
    Same(Vec<f32>),
    PerRank(Vec<Vec<f32>>),
    /// One result in consecutive slices (a shared reduction's, each copied out in place
    /// rather than joined first).
    Sliced(Vec<Vec<f32>>),
}

/// An all-reduce being reduced by every rank: the inputs, and each rank's reduced slice.
struct Reducing {
    op: ReduceOp,
    inputs: Arc<Vec<Vec<f32>>>,
    slices: Vec<Option<Vec<f32>>>,
}

struct State {
    /// Rounds finished so far.
    generation: u64,
    arrived: Vec<Option<(Call, Vec<f32>)>>,
    /// This round's all-reduce, while its ranks reduce their slices.
    reducing: Option<Reducing>,
    /// The last finished round's result.
    done: Option<Arc<Done>>,
    /// Why the group failed; every later call fails with it.
    broken: Option<CollectiveError>,
}

struct Shared {
    world: usize,
    state: Mutex<State>,
    cv: Condvar,
}

/// Makes the ranks of an in-process group.
pub struct LocalGroup;

impl LocalGroup {
    /// `world` ranks (at least one), to hand one to each worker thread.
    pub fn ranks(world: usize) -> Vec<LocalRank> {
        let world = world.max(1);
        let shared = Arc::new(Shared {
            world,
            state: Mutex::new(State {
                generation: 0,
                arrived: vec![None; world],
                reducing: None,
                done: None,
                broken: None,
            }),
            cv: Condvar::new(),
        });
        (0..world)
            .map(|rank| LocalRank {
                shared: shared.clone(),
                rank,
            })
            .collect()
    }
}

/// One rank of a [`LocalGroup`]. Dropping it (the worker ended, failed or was killed) breaks
/// the group: peers waiting now or later get [`CollectiveError::Peer`] naming it.
pub struct LocalRank {
    shared: Arc<Shared>,
    rank: usize,
}

impl std::fmt::Debug for LocalRank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocalRank({} of {})", self.rank, self.shared.world)
    }
}

impl Drop for LocalRank {
    fn drop(&mut self) {
        let mut st = self.lock();
        if st.broken.is_none() {
            st.broken = Some(CollectiveError::Peer(format!(
                "rank {} left the job",
                self.rank
            )));
        }
        self.shared.cv.notify_all();
    }
}

impl LocalRank {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A rank thread that panicked holding the lock leaves consistent state: each update
        // is made whole before the lock is released.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes part in one round; returns its result.
    fn round(&self, call: Call, data: Vec<f32>, wait: &Wait) -> Result<Arc<Done>, CollectiveError> {
        let mut st = self.lock();
        if let Some(e) = &st.broken {
            return Err(e.clone());
        }
        let generation = st.generation;
        st.arrived[self.rank] = Some((call, data));
        if st.arrived.iter().all(Option::is_some) {
            let parts: Vec<(Call, Vec<f32>)> =
                st.arrived.iter_mut().filter_map(Option::take).collect();
            match (agree(&parts), parts[0].0) {
                (Err(e), _) => {
                    st.broken = Some(e.clone());
                    self.shared.cv.notify_all();
                    return Err(e);
                }
                (Ok(()), Call::AllReduce(op))
                    if parts[0].1.len() >= SHARED_REDUCE_MIN && self.shared.world > 1 =>
                {
                    // Every rank (this one too, below) reduces its slice.
                    st.reducing = Some(Reducing {
                        op,
                        inputs: Arc::new(parts.into_iter().map(|(_, d)| d).collect()),
                        slices: vec![None; self.shared.world],
                    });
                    self.shared.cv.notify_all();
                }
                (Ok(()), _) => {
                    let finished = finish(&parts, self.shared.world);
                    self.shared.cv.notify_all();
                    return match finished {
                        Ok(done) => {
                            let done = Arc::new(done);
                            st.done = Some(done.clone());
                            st.generation += 1;
                            Ok(done)
                        }
                        Err(e) => {
                            st.broken = Some(e.clone());
                            Err(e)
                        }
                    };
                }
            }
        }
        loop {
            if let Some(r) = st
                .reducing
                .as_ref()
                .filter(|r| r.slices[self.rank].is_none())
            {
                let (op, inputs) = (r.op, r.inputs.clone());
                drop(st);
                let slice = reduce_slice(&inputs, op, self.rank, self.shared.world);
                st = self.lock();
                if let Some(e) = &st.broken {
                    return Err(e.clone());
                }
                self.slice_done(&mut st, slice);
                continue;
            }
            if st.generation != generation {
                // The next round needs this rank, so `done` is still this round's.
                return Ok(st.done.clone().expect("a finished round leaves its result"));
            }
            if let Some(e) = &st.broken {
                return Err(e.clone());
            }
            if let Err(e) = wait.check(self.rank) {
                st.broken = Some(match &e {
                    CollectiveError::Cancelled => {
                        CollectiveError::Peer(format!("rank {} was cancelled", self.rank))
                    }
                    other => other.clone(),
                });
                self.shared.cv.notify_all();
                return Err(e);
            }
            st = self
                .shared
                .cv
                .wait_timeout(st, POLL)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }
}

impl LocalRank {
    /// Leaves this rank's reduced slice; the last one joins the slices into the round's result.
    fn slice_done(&self, st: &mut State, slice: Vec<f32>) {
        let Some(r) = st.reducing.as_mut() else {
            return;
        };
        r.slices[self.rank] = Some(slice);
        if r.slices.iter().all(Option::is_some) {
            let slices: Vec<Vec<f32>> = r.slices.iter_mut().filter_map(Option::take).collect();
            st.reducing = None;
            st.done = Some(Arc::new(Done::Sliced(slices)));
            st.generation += 1;
            self.shared.cv.notify_all();
        }
    }
}

/// Rank `rank`'s share of the reduction of `inputs`: its slice of the elements, reduced as
/// the whole would be (element by element in rank order, so the result is the same bits).
fn reduce_slice(inputs: &[Vec<f32>], op: ReduceOp, rank: usize, world: usize) -> Vec<f32> {
    let len = inputs.first().map_or(0, Vec::len);
    let per = len.div_ceil(world.max(1));
    let start = (rank * per).min(len);
    let end = (start + per).min(len);
    let parts: Vec<&[f32]> = inputs.iter().map(|d| &d[start..end]).collect();
    reduce(&parts, op)
}

/// Whether every rank made the same call with as many elements; else how they differ.
fn agree(parts: &[(Call, Vec<f32>)]) -> Result<(), CollectiveError> {
    let (call, first) = &parts[0];
    for (rank, (c, data)) in parts.iter().enumerate() {
        if c != call {
            return Err(CollectiveError::Mismatch(format!(
                "rank 0 called {} while rank {rank} called {}",
                call.name(),
                c.name()
            )));
        }
        if data.len() != first.len() {
            return Err(CollectiveError::Mismatch(format!(
                "{}: rank 0 gave {} elements, rank {rank} {}",
                call.name(),
                first.len(),
                data.len()
            )));
        }
    }
    Ok(())
}

/// The round's result from every rank's call and data (which [`agree`]), or why not.
fn finish(parts: &[(Call, Vec<f32>)], world: usize) -> Result<Done, CollectiveError> {
    let (call, first) = &parts[0];
    let inputs: Vec<&[f32]> = parts.iter().map(|(_, d)| d.as_slice()).collect();
    Ok(match *call {
        Call::AllReduce(op) => Done::Same(reduce(&inputs, op)),
        Call::Broadcast(root) if root >= world => {
            return Err(CollectiveError::Mismatch(format!(
                "broadcast from root {root}, but the world has {world} ranks (0..{world})"
            )))
        }
        Call::Broadcast(root) => Done::Same(inputs[root].to_vec()),
        Call::AllGather => Done::Same(inputs.concat()),
        Call::ReduceScatter(op) => {
            let part = crate::scatter_part(first.len(), world)?;
            let full = reduce(&inputs, op);
            Done::PerRank(
                full.chunks(part.max(1))
                    .map(<[f32]>::to_vec)
                    .take(world)
                    .collect(),
            )
        }
        Call::Barrier => Done::Same(Vec::new()),
    })
}

impl Communicator for LocalRank {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.shared.world
    }

    fn local_rank(&self) -> usize {
        self.rank
    }

    fn all_reduce(
        &self,
        data: &mut [f32],
        op: ReduceOp,
        wait: &Wait,
    ) -> Result<(), CollectiveError> {
        let done = self.round(Call::AllReduce(op), data.to_vec(), wait)?;
        match &*done {
            Done::Sliced(slices) => {
                let mut at = 0;
                for slice in slices {
                    data[at..at + slice.len()].copy_from_slice(slice);
                    at += slice.len();
                }
            }
            other => data.copy_from_slice(same(other)),
        }
        Ok(())
    }

    fn broadcast(&self, data: &mut [f32], root: usize, wait: &Wait) -> Result<(), CollectiveError> {
        let done = self.round(Call::Broadcast(root), data.to_vec(), wait)?;
        data.copy_from_slice(same(&done));
        Ok(())
    }

    fn all_gather(&self, data: &[f32], wait: &Wait) -> Result<Vec<f32>, CollectiveError> {
        let done = self.round(Call::AllGather, data.to_vec(), wait)?;
        Ok(same(&done).to_vec())
    }

    fn reduce_scatter(
        &self,
        data: &[f32],
        op: ReduceOp,
        wait: &Wait,
    ) -> Result<Vec<f32>, CollectiveError> {
        let done = self.round(Call::ReduceScatter(op), data.to_vec(), wait)?;
        Ok(match &*done {
            Done::PerRank(parts) => parts.get(self.rank).cloned().unwrap_or_default(),
            Done::Same(v) => v.clone(),
            Done::Sliced(slices) => slices.concat(),
        })
    }

    fn barrier(&self, wait: &Wait) -> Result<(), CollectiveError> {
        self.round(Call::Barrier, Vec::new(), wait).map(|_| ())
    }
}

fn same(done: &Done) -> &[f32] {
    match done {
        Done::Same(v) => v,
        Done::PerRank(_) | Done::Sliced(_) => &[],
    }
}
