//! The MPI engine (feature `mpi`): one rank per process, launched by `mpirun` (on one machine)
//! or by an MPIJob-style launcher (on Kubernetes), the collectives OpenMPI's own.
//!
//! Every call is MPI's non-blocking form, tested until it completes, so a wait can watch the
//! step's deadline and cancel flag. OpenMPI 4 has no way back from a collective a peer never
//! joins (no ULFM, and a pending request cannot be cancelled), so a wait that must end, and a
//! panic anywhere in the process (which would otherwise hang in `MPI_Finalize` while the peers
//! spin), abort the whole job (`MPI_Abort`): the gang fails, and the job restarts it from its
//! checkpoint, as with every engine.

use crate::{gathered_len, scatter_part, Backoff, CollectiveError, Communicator, ReduceOp, Wait};
use mpi::collective::SystemOperation;
use mpi::collective::{CommunicatorCollectives as _, Root as _};
use mpi::topology::Communicator as _;
use mpi::topology::SimpleCommunicator;
use std::sync::{Mutex, OnceLock};

/// The exit status of a job aborted because a wait ran out or a rank panicked.
pub const ABORTED: i32 = 75;

/// This process's rank of `MPI_COMM_WORLD`.
pub struct MpiRank {
    world: Mutex<SimpleCommunicator>,
    rank: usize,
    size: usize,
    local_rank: usize,
}

// SAFETY: MPI is initialised with MPI_THREAD_MULTIPLE (checked in `MpiRank::world`), under
// which any thread may call MPI; the communicator is only used under its mutex.
unsafe impl Send for MpiRank {}
// SAFETY: as above; every use of the communicator takes the mutex.
unsafe impl Sync for MpiRank {}

impl std::fmt::Debug for MpiRank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MpiRank({} of {})", self.rank, self.size)
    }
}

static INIT: OnceLock<Result<(), String>> = OnceLock::new();

/// The MPI universe, finalised by [`finalize`].
struct Universe {
    _held: mpi::environment::Universe,
}
// SAFETY: only moved into and out of the mutex below, and dropped (MPI_Finalize) once, when
// the process is done with MPI; under MPI_THREAD_MULTIPLE any thread may finalise.
unsafe impl Send for Universe {}
static UNIVERSE: Mutex<Option<Universe>> = Mutex::new(None);

/// Ends MPI in this process (`MPI_Finalize`), as every rank must before it exits, after its
/// last collective: mpirun counts a rank that exits without it as failed.
pub fn finalize() {
    let universe = UNIVERSE.lock().unwrap_or_else(|e| e.into_inner()).take();
    drop(universe);
}

impl MpiRank {
    /// Initialises MPI (once per process; a process not started by mpirun is rank 0 of 1) and
    /// returns this process's rank. A panic after this aborts the job.
    pub fn world() -> Result<MpiRank, String> {
        INIT.get_or_init(|| {
                let (universe, level) = mpi::initialize_with_threading(mpi::Threading::Multiple)
                    .ok_or_else(|| "MPI was initialised already".to_string())?;
                if level != mpi::Threading::Multiple {
                    return Err(format!(
                        "this MPI gives threads {level:?}, not Multiple: a worker's calls come from its own thread"
                    ));
                }
                // Finalised by `finalize`, not when a rank value drops: MPI ends once per
                // process, after the last collective.
                *UNIVERSE.lock().unwrap_or_else(|e| e.into_inner()) = Some(Universe { _held: universe });
                let hook = std::panic::take_hook();
                std::panic::set_hook(Box::new(move |info| {
                    hook(info);
                    mpi::topology::SimpleCommunicator::world().abort(ABORTED);
                }));
                Ok(())
            })
            .clone()?;
        let world = SimpleCommunicator::world();
        let local_rank = std::env::var("OMPI_COMM_WORLD_LOCAL_RANK")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Ok(MpiRank {
            rank: world.rank() as usize,
            size: world.size() as usize,
            local_rank,
            world: Mutex::new(world),
        })
    }

    /// `data` becomes rank `root`'s bytes: how another engine's rendezvous (NCCL's unique
    /// id) travels over the job's MPI.
    pub fn broadcast_bytes(
        &self,
        data: &mut [u8],
        root: usize,
        wait: &Wait,
    ) -> Result<(), CollectiveError> {
        self.broadcast_of(data, root, wait)
    }

    /// `data` becomes rank `root`'s, elements of any type MPI knows.
    fn broadcast_of<T: mpi::datatype::Equivalence>(
        &self,
        data: &mut [T],
        root: usize,
        wait: &Wait,
    ) -> Result<(), CollectiveError> {
        let root = self.root(root)?;
        self.with(|w| {
            mpi::request::scope(|scope| {
                let r = w
                    .process_at_rank(root)
                    .immediate_broadcast_into(scope, data);
                complete(w, self.rank, r, wait)
            })
        })
    }

    /// Ends the whole job at once with `code` (`MPI_Abort`): a rank that cannot go on and
    /// whose peers may be waiting for it. (Not through the held communicator: another
    /// thread may be in a collective with it.)
    pub fn abort(&self, code: i32) -> ! {
        SimpleCommunicator::world().abort(code)
    }

    /// `root` as MPI's rank, or the mismatch when the world has no such rank.
    fn root(&self, root: usize) -> Result<i32, CollectiveError> {
        match i32::try_from(root) {
            Ok(r) if root < self.size => Ok(r),
            _ => Err(CollectiveError::Mismatch(format!(
                "broadcast from root {root}, but the world has {} ranks (0..{})",
                self.size, self.size
            ))),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&SimpleCommunicator) -> T) -> T {
        let world = self.world.lock().unwrap_or_else(|e| e.into_inner());
        f(&world)
    }
}

/// Tests `request` until it completes, or aborts the job when `wait` must end.
fn complete<'a, D: ?Sized, S: mpi::request::Scope<'a>>(
    world: &SimpleCommunicator,
    rank: usize,
    mut request: mpi::request::Request<'a, D, S>,
    wait: &Wait,
) -> Result<(), CollectiveError> {
    let mut backoff = Backoff::new();
    loop {
        match request.test() {
            Ok(_) => return Ok(()),
            Err(pending) => request = pending,
        }
        if let Err(e) = wait.check(rank) {
            eprintln!("weft: rank {rank}: {e}: aborting the MPI job");
            world.abort(ABORTED);
        }
        backoff.pause();
    }
}

fn operation(op: ReduceOp) -> SystemOperation {
    match op {
        ReduceOp::Sum | ReduceOp::Mean => SystemOperation::sum(),
        ReduceOp::Max => SystemOperation::max(),
        ReduceOp::Min => SystemOperation::min(),
    }
}

impl Communicator for MpiRank {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.size
    }

    fn local_rank(&self) -> usize {
        self.local_rank
    }

    fn all_reduce(
        &self,
        data: &mut [f32],
        op: ReduceOp,
        wait: &Wait,
    ) -> Result<(), CollectiveError> {
        let send = data.to_vec();
        let how = operation(op);
        self.with(|w| {
            mpi::request::scope(|scope| {
                let r = w.immediate_all_reduce_into(scope, &send[..], data, how);
                complete(w, self.rank, r, wait)
            })
        })?;
        if op == ReduceOp::Mean {
            let n = self.size as f32;
            data.iter_mut().for_each(|v| *v /= n);
        }
        Ok(())
    }

    fn broadcast(&self, data: &mut [f32], root: usize, wait: &Wait) -> Result<(), CollectiveError> {
        self.broadcast_of(data, root, wait)
    }

    fn all_gather(&self, data: &[f32], wait: &Wait) -> Result<Vec<f32>, CollectiveError> {
        let mut out = vec![0.0; gathered_len(data.len(), self.size)?];
        self.with(|w| {
            mpi::request::scope(|scope| {
                let r = w.immediate_all_gather_into(scope, data, &mut out[..]);
                complete(w, self.rank, r, wait)
            })
        })?;
        Ok(out)
    }

    fn reduce_scatter(
        &self,
        data: &[f32],
        op: ReduceOp,
        wait: &Wait,
    ) -> Result<Vec<f32>, CollectiveError> {
        let mut out = vec![0.0; scatter_part(data.len(), self.size)?];
        let how = operation(op);
        self.with(|w| {
            mpi::request::scope(|scope| {
                let r = w.immediate_reduce_scatter_block_into(scope, data, &mut out[..], how);
                complete(w, self.rank, r, wait)
            })
        })?;
        if op == ReduceOp::Mean {
            let n = self.size as f32;
            out.iter_mut().for_each(|v| *v /= n);
        }
        Ok(out)
    }

    fn barrier(&self, wait: &Wait) -> Result<(), CollectiveError> {
        self.with(|w| complete(w, self.rank, w.immediate_barrier(), wait))
    }
}
