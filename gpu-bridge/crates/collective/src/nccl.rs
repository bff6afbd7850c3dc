//! The NCCL engine (feature `nccl`): one rank per process and one GPU per rank, the
//! collectives NVIDIA's NCCL through cudarc's bindings, loaded at run time as the CUDA tensor
//! backend is, so the crate builds without a CUDA toolkit and a machine without a GPU gets a
//! clear error instead of a panic in the loader.
//!
//! The ranks are an MPI job's ([`MpiRank`]): MPI is the rendezvous, as with Horovod and
//! torchrun's MPI launch. Rank 0 makes NCCL's unique id and broadcasts it over MPI; every rank
//! then joins the NCCL communicator on the GPU its local rank names (`local_rank % devices`).
//!
//! A collective's elements are staged through a device buffer: the step's tensors reach the
//! communicator as host slices (the [`Communicator`] trait), NCCL moves them GPU to GPU. A
//! wait watches the step's deadline and cancel flag as MPI's does, and one that must end
//! aborts the job (`MPI_Abort`): NCCL has no way back from a peer that never joins either.

use crate::mpi::{MpiRank, ABORTED};
use crate::{gathered_len, scatter_part, Backoff, CollectiveError, Communicator, ReduceOp, Wait};
use cudarc::driver::{CudaContext, CudaSlice, CudaStream};
use cudarc::nccl::{Comm, Id};
use std::sync::{Arc, Mutex};

/// Why NCCL could not be started on this machine.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum NcclError {
    #[error("engine nccl: no CUDA driver (libcuda.so) on this machine: NCCL needs a GPU")]
    NoDriver,
    #[error("engine nccl: the CUDA driver sees no GPU")]
    NoDevice,
    #[error(
        "engine nccl: no NCCL library: cudarc loads `libnccl.so` from the library path (NCCL's packages install `libnccl.so.2`; \
         link `libnccl.so` to it in a directory on LD_LIBRARY_PATH)"
    )]
    NoLibrary,
    #[error("engine nccl: {0}")]
    Start(String),
}

/// Whether NCCL can run here: a CUDA driver, at least one GPU, and the NCCL library. What a
/// runner checks before starting a gang, and a machine without a GPU fails with
/// [`NcclError::NoDriver`].
pub fn available() -> Result<usize, NcclError> {
    // SAFETY: only asks the dynamic loader whether the library can be found; cudarc's loaders
    // panic without it.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(NcclError::NoDriver);
    }
    // SAFETY: as above.
    if !unsafe { cudarc::nccl::sys::is_culib_present() } {
        return Err(NcclError::NoLibrary);
    }
    use cudarc::driver::sys::cudaError_enum::CUDA_ERROR_NO_DEVICE;
    let devices = CudaContext::device_count().map_err(|e| match e.0 {
        // A driver but no GPU it may use (none, or CUDA_VISIBLE_DEVICES hides them all).
        CUDA_ERROR_NO_DEVICE => NcclError::NoDevice,
        _ => NcclError::Start(format!("{e:?}")),
    })?;
    match usize::try_from(devices) {
        Ok(0) | Err(_) => Err(NcclError::NoDevice),
        Ok(n) => Ok(n),
    }
}

/// This process's rank of an NCCL communicator over the ranks of its MPI job.
pub struct NcclRank {
    mpi: MpiRank,
    comm: Mutex<Comm>,
    stream: Arc<CudaStream>,
    device: usize,
}

// SAFETY: the communicator is only used under its mutex, and cudarc binds the stream's
// context to whichever thread calls; NCCL allows a communicator to be used from any thread,
// one call at a time.
unsafe impl Send for NcclRank {}
// SAFETY: as above.
unsafe impl Sync for NcclRank {}

impl std::fmt::Debug for NcclRank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "NcclRank({} of {}, GPU {})",
            self.mpi.rank(),
            self.mpi.world_size(),
            self.device
        )
    }
}

impl NcclRank {
    /// Joins every rank of `mpi`'s job to one NCCL communicator (a collective call: every
    /// rank makes it), each on the GPU of its local rank.
    pub fn over(mpi: MpiRank, wait: &Wait) -> Result<NcclRank, NcclError> {
        let devices = available()?;
        let device = mpi.local_rank() % devices;
        let ctx = CudaContext::new(device)
            .map_err(|e| NcclError::Start(format!("opening GPU {device}: {e:?}")))?;
        let stream = ctx.default_stream();
        // Rank 0's id, broadcast; a rank 0 that cannot make one exits, which ends the job.
        let mut id = [0u8; 128];
        if mpi.rank() == 0 {
            let made =
                Id::new().map_err(|e| NcclError::Start(format!("ncclGetUniqueId: {e:?}")))?;
            for (b, c) in id.iter_mut().zip(made.internal()) {
                *b = *c as u8;
            }
        }
        mpi.broadcast_bytes(&mut id, 0, wait)
            .map_err(|e| NcclError::Start(format!("sharing NCCL's unique id over MPI: {e}")))?;
        let id = Id::uninit(id.map(|b| b as std::ffi::c_char));
        let comm = Comm::from_rank(stream.clone(), mpi.rank(), mpi.world_size(), id)
            .map_err(|e| NcclError::Start(format!("ncclCommInitRank: {e:?}")))?;
        Ok(NcclRank {
            mpi,
            comm: Mutex::new(comm),
            stream,
            device,
        })
    }

    /// The GPU this rank runs its collectives on.
    pub fn device(&self) -> usize {
        self.device
    }

    /// `data` copied to the device, `f` run on it with the communicator, the result waited
    /// for (or the job aborted when `wait` must end) and copied back into `out`, whose length
    /// is the result's.
    fn staged(
        &self,
        data: &[f32],
        out: &mut [f32],
        wait: &Wait,
        f: impl FnOnce(&Comm, &CudaSlice<f32>, &mut CudaSlice<f32>) -> Result<(), String>,
    ) -> Result<(), CollectiveError> {
        let fail = |what: &str, e: String| CollectiveError::Peer(format!("NCCL: {what}: {e}"));
        // Lengths agree across the ranks (the trait's rule), so every rank skips together.
        let out_len = out.len();
        if out_len == 0 {
            return Ok(());
        }
        let comm = self.comm.lock().unwrap_or_else(|e| e.into_inner());
        let send = self
            .stream
            .clone_htod(data)
            .map_err(|e| fail("copying to the GPU", format!("{e:?}")))?;
        let mut recv = self
            .stream
            .alloc_zeros::<f32>(out_len)
            .map_err(|e| fail("allocating on the GPU", format!("{e:?}")))?;
        f(&comm, &send, &mut recv).map_err(|e| fail("the collective", e))?;
        self.finish(wait)?;
        self.stream
            .memcpy_dtoh(&recv, out)
            .map_err(|e| fail("copying from the GPU", format!("{e:?}")))?;
        // `out` is pageable memory, which CUDA copies to before returning; said outright.
        self.stream
            .synchronize()
            .map_err(|e| fail("copying from the GPU", format!("{e:?}")))
    }

    /// Waits for the stream's work, watching `wait`; one that must end aborts the job.
    fn finish(&self, wait: &Wait) -> Result<(), CollectiveError> {
        let done = self
            .stream
            .record_event(None)
            .map_err(|e| CollectiveError::Peer(format!("NCCL: recording an event: {e:?}")))?;
        let mut backoff = Backoff::new();
        loop {
            match done.try_is_complete() {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => return Err(CollectiveError::Peer(format!("NCCL: the GPU: {e:?}"))),
            }
            if let Err(e) = wait.check(self.mpi.rank()) {
                eprintln!("weft: rank {}: {e}: aborting the job", self.mpi.rank());
                self.mpi.abort(ABORTED);
            }
            backoff.pause();
        }
    }
}

fn nccl_op(op: ReduceOp) -> cudarc::nccl::ReduceOp {
    match op {
        ReduceOp::Sum => cudarc::nccl::ReduceOp::Sum,
        ReduceOp::Mean => cudarc::nccl::ReduceOp::Avg,
        ReduceOp::Max => cudarc::nccl::ReduceOp::Max,
        ReduceOp::Min => cudarc::nccl::ReduceOp::Min,
    }
}

fn status<T>(r: Result<T, cudarc::nccl::result::NcclError>) -> Result<(), String> {
    r.map(|_| ()).map_err(|e| format!("{e:?}"))
}

impl Communicator for NcclRank {
    fn rank(&self) -> usize {
        self.mpi.rank()
    }

    fn world_size(&self) -> usize {
        self.mpi.world_size()
    }

    fn local_rank(&self) -> usize {
        self.mpi.local_rank()
    }

    fn all_reduce(
        &self,
        data: &mut [f32],
        op: ReduceOp,
        wait: &Wait,
    ) -> Result<(), CollectiveError> {
        let send = data.to_vec();
        self.staged(&send, data, wait, |c, s, r| {
            status(c.all_reduce(s, r, &nccl_op(op)))
        })
    }

    fn broadcast(&self, data: &mut [f32], root: usize, wait: &Wait) -> Result<(), CollectiveError> {
        if root >= self.world_size() {
            return Err(CollectiveError::Mismatch(format!(
                "broadcast from root {root}, but the world has {} ranks (0..{})",
                self.world_size(),
                self.world_size()
            )));
        }
        let send = data.to_vec();
        self.staged(&send, data, wait, |c, s, r| {
            status(c.broadcast(Some(s), r, root as i32))
        })
    }

    fn all_gather(&self, data: &[f32], wait: &Wait) -> Result<Vec<f32>, CollectiveError> {
        let len = gathered_len(data.len(), self.world_size())?;
        let mut out = vec![0.0; len];
        self.staged(data, &mut out, wait, |c, s, r| status(c.all_gather(s, r)))?;
        Ok(out)
    }

    fn reduce_scatter(
        &self,
        data: &[f32],
        op: ReduceOp,
        wait: &Wait,
    ) -> Result<Vec<f32>, CollectiveError> {
        let len = scatter_part(data.len(), self.world_size())?;
        let mut out = vec![0.0; len];
        self.staged(data, &mut out, wait, |c, s, r| {
            status(c.reduce_scatter(s, r, &nccl_op(op)))
        })?;
        Ok(out)
    }

    fn barrier(&self, wait: &Wait) -> Result<(), CollectiveError> {
        // The GPU's work first, then the ranks'.
        self.finish(wait)?;
        self.mpi.barrier(wait)
    }
}
