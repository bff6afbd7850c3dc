//! `weft:tensor/collective` for components: a worker's tensors moved between the ranks of its
//! training job by the step's [`Communicator`] (in host memory between threads; MPI or NCCL
//! between processes). A step that is no worker of a job has no communicator, and its
//! collectives fail at once with `not-in-job` rather than waiting for peers that do not exist.
//!
//! A wait lasts at most until the step's deadline and ends when the step is cancelled; either
//! breaks the gang, so no rank waits forever on one that is gone.

use crate::state::StepState;
use crate::tensor_host::bindings::weft::tensor::collective::{self, Error, ReduceOp};
use crate::tensor_host::{engine_ref, Gradients, Tensor};
use std::sync::Arc;
use wasmtime::component::Resource;
use weft_collective::{CollectiveError, Communicator, Wait};
use weft_tensor::{DeviceError, TensorError};

type R<T> = wasmtime::Result<Result<T, Error>>;
/// A tensor's elements on the host, and its shape.
type Elements = (Vec<f32>, Vec<usize>);

fn op(op: ReduceOp) -> weft_collective::ReduceOp {
    match op {
        ReduceOp::Sum => weft_collective::ReduceOp::Sum,
        ReduceOp::Mean => weft_collective::ReduceOp::Mean,
        ReduceOp::Max => weft_collective::ReduceOp::Max,
        ReduceOp::Min => weft_collective::ReduceOp::Min,
    }
}

fn from_collective(e: CollectiveError) -> Error {
    match e {
        CollectiveError::Mismatch(m) => Error::Mismatch(m),
        CollectiveError::Peer(m) => Error::Peer(m),
        c @ CollectiveError::Cancelled => Error::Peer(c.to_string()),
    }
}

/// A tensor engine error as the guest's; a failed device (no WIT case) fails the step.
fn from_tensor(e: TensorError) -> wasmtime::Result<Error> {
    Ok(match e {
        TensorError::Shape(m) | TensorError::Format(m) => Error::Shape(m),
        q @ TensorError::Quota { .. } => Error::Quota(q.to_string()),
        oom @ TensorError::Device(DeviceError::OutOfMemory(_)) => Error::Quota(oom.to_string()),
        failed @ TensorError::Device(_) => return Err(crate::tensor_host::trap(failed)),
    })
}

/// Early return of the guest's error from a `Result<_, Error>`.
macro_rules! guest {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        }
    };
}

impl StepState {
    /// The step's communicator and how long it may wait, or `not-in-job`.
    fn gang(&self) -> Result<(Arc<dyn Communicator>, Wait), Error> {
        let c = self.collective.clone().ok_or_else(|| {
            Error::NotInJob(
                "this component is not running as a worker of a training job (a TrainJob): there are no other ranks"
                    .into(),
            )
        })?;
        let wait = Wait {
            deadline: self.deadline,
            cancel: self.cancel.clone(),
        };
        Ok((c, wait))
    }

    /// `x`'s elements on the host, with its shape.
    fn elements(&mut self, x: &Resource<Tensor>) -> R<Elements> {
        let x = self.get(x)?;
        Ok(match self.engine().to_vec(&x) {
            Ok(v) => Ok((v, x.shape().to_vec())),
            Err(e) => Err(from_tensor(e)?),
        })
    }

    /// A new tensor (no gradient) of `shape` from `values`.
    fn result(&mut self, values: &[f32], shape: &[usize]) -> R<Resource<Tensor>> {
        match self.engine().tensor(values, shape, false) {
            Ok(t) => Ok(Ok(self.table.push(t)?)),
            Err(e) => Ok(Err(from_tensor(e)?)),
        }
    }
}

impl collective::Host for StepState {
    fn rank(&mut self) -> wasmtime::Result<u32> {
        Ok(self.collective.as_ref().map_or(0, |c| c.rank() as u32))
    }

    fn world_size(&mut self) -> wasmtime::Result<u32> {
        Ok(self
            .collective
            .as_ref()
            .map_or(1, |c| c.world_size() as u32))
    }

    fn local_rank(&mut self) -> wasmtime::Result<u32> {
        Ok(self
            .collective
            .as_ref()
            .map_or(0, |c| c.local_rank() as u32))
    }

    fn all_reduce(&mut self, x: Resource<Tensor>, how: ReduceOp) -> R<Resource<Tensor>> {
        let (c, wait) = guest!(self.gang());
        let (mut v, shape) = guest!(self.elements(&x)?);
        guest!(c
            .all_reduce(&mut v, op(how), &wait)
            .map_err(from_collective));
        self.result(&v, &shape)
    }

    fn broadcast(&mut self, x: Resource<Tensor>, root: u32) -> R<Resource<Tensor>> {
        let (c, wait) = guest!(self.gang());
        let (mut v, shape) = guest!(self.elements(&x)?);
        guest!(c
            .broadcast(&mut v, root as usize, &wait)
            .map_err(from_collective));
        self.result(&v, &shape)
    }

    fn all_gather(&mut self, x: Resource<Tensor>) -> R<Resource<Tensor>> {
        let (c, wait) = guest!(self.gang());
        let (v, mut shape) = guest!(self.elements(&x)?);
        let all = guest!(c.all_gather(&v, &wait).map_err(from_collective));
        match shape.first_mut() {
            Some(d0) => *d0 *= c.world_size(),
            None => shape = vec![c.world_size()],
        }
        self.result(&all, &shape)
    }

    fn reduce_scatter(&mut self, x: Resource<Tensor>, how: ReduceOp) -> R<Resource<Tensor>> {
        let (c, wait) = guest!(self.gang());
        let (v, mut shape) = guest!(self.elements(&x)?);
        let world = c.world_size();
        let Some(d0) = shape.first_mut().filter(|d| d.is_multiple_of(world)) else {
            return Ok(Err(Error::Shape(format!(
                "reduce-scatter of a tensor of shape {shape:?} across {world} ranks: its first axis must be a multiple of the world size"
            ))));
        };
        *d0 /= world;
        let part = guest!(c
            .reduce_scatter(&v, op(how), &wait)
            .map_err(from_collective));
        self.result(&part, &shape)
    }

    fn barrier(&mut self) -> R<()> {
        let (c, wait) = guest!(self.gang());
        Ok(c.barrier(&wait).map_err(from_collective))
    }

    fn all_reduce_gradients(
        &mut self,
        grads: Resource<Gradients>,
        params: Vec<Resource<Tensor>>,
        how: ReduceOp,
    ) -> R<()> {
        let (c, wait) = guest!(self.gang());
        let params = params
            .iter()
            .map(|p| self.get(p))
            .collect::<wasmtime::Result<Vec<_>>>()?;
        self.engine();
        let StepState { table, tensors, .. } = self;
        let engine = engine_ref(tensors);
        let g = table.get_mut(&grads)?;
        let mut flat = match g.flatten(engine, &params) {
            Ok(v) => v,
            Err(e) => return Ok(Err(from_tensor(e)?)),
        };
        guest!(c
            .all_reduce(&mut flat, op(how), &wait)
            .map_err(from_collective));
        match g.replace(engine, &params, &flat) {
            Ok(()) => Ok(Ok(())),
            Err(e) => Ok(Err(from_tensor(e)?)),
        }
    }
}
