//! Ranks on threads of one process: each collective is a round in shared host memory. Every
//! rank leaves its part; the last to arrive checks that all made the same call, computes the
//! result once, and wakes the others.

use crate::{reduce, CollectiveError, Communicator, ReduceOp, Wait};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// How often a waiting rank looks at its deadline and cancel flag.
const POLL: Duration = Duration::from_millis(50);

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
}

struct State {
    /// Rounds finished so far.
    generation: u64,
    arrived: Vec<Option<(Call, Vec<f32>)>>,
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
            return match finish(&parts, self.shared.world) {
                Ok(done) => {
                    let done = Arc::new(done);
                    st.done = Some(done.clone());
                    st.generation += 1;
                    self.shared.cv.notify_all();
                    Ok(done)
                }
                Err(e) => {
                    st.broken = Some(e.clone());
                    self.shared.cv.notify_all();
                    Err(e)
                }
            };
        }
        loop {
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

/// The round's result from every rank's call and data, or why the ranks disagree.
fn finish(parts: &[(Call, Vec<f32>)], world: usize) -> Result<Done, CollectiveError> {
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
        data.copy_from_slice(same(&done));
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
        })
    }

    fn barrier(&self, wait: &Wait) -> Result<(), CollectiveError> {
        self.round(Call::Barrier, Vec::new(), wait).map(|_| ())
    }
}

fn same(done: &Done) -> &[f32] {
    match done {
        Done::Same(v) => v,
        Done::PerRank(_) => &[],
    }
}
