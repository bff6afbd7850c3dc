//! `weft:tensor/checkpoint` for components: a worker's parameters and optimizer state,
//! encoded as a [`Checkpoint`] (safetensors) and handed to the job's [`Checkpoints`], which
//! keeps the latest; on a restart every worker restores it and goes on from its step.
//!
//! The bytes are bounded by what the worker holds on the device (its quota), and only rank 0's
//! are kept: data-parallel ranks hold the same parameters.

use crate::state::StepState;
use crate::step::Checkpoints;
use crate::tensor_host::bindings::weft::tensor::checkpoint::{self, Error};
use crate::tensor_host::{engine_ref, Optimizer, Tensor};
use std::collections::HashMap;
use std::sync::Arc;
use wasmtime::component::Resource;
use weft_tensor::io::Checkpoint;
use weft_tensor::optim::StateEntry;
use weft_tensor::{DeviceError, TensorError};

type R<T> = wasmtime::Result<Result<T, Error>>;
type Restored = Option<(u64, Vec<(String, Resource<Tensor>)>)>;

fn from_tensor(e: TensorError) -> wasmtime::Result<Error> {
    Ok(match e {
        TensorError::Shape(m) | TensorError::Format(m) => Error::Format(m),
        q @ TensorError::Quota { .. } => Error::Quota(q.to_string()),
        oom @ TensorError::Device(DeviceError::OutOfMemory(_)) => Error::Quota(oom.to_string()),
        failed @ TensorError::Device(_) => return Err(crate::tensor_host::trap(failed)),
    })
}

macro_rules! tensor_ok {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Ok(Err(from_tensor(e)?)),
        }
    };
}

impl StepState {
    fn job_checkpoints(&self) -> Result<Arc<dyn Checkpoints>, Error> {
        self.checkpoints.clone().ok_or_else(|| {
            Error::NotInJob(
                "this component is not running as a worker of a training job: nothing keeps its checkpoints"
                    .into(),
            )
        })
    }

    /// `opt`'s state for `params`, as named entries.
    fn optimizer_state(
        &mut self,
        opt: Option<&Resource<Optimizer>>,
        params: &[(String, Tensor)],
    ) -> wasmtime::Result<Result<Vec<StateEntry>, TensorError>> {
        let Some(opt) = opt else {
            return Ok(Ok(Vec::new()));
        };
        self.engine();
        let StepState { table, tensors, .. } = self;
        let engine = engine_ref(tensors);
        Ok(match table.get(opt)? {
            Optimizer::Sgd(s) => s.export(engine, params),
            Optimizer::Adam(a) => a.export(engine, params),
        })
    }
}

impl checkpoint::Host for StepState {
    fn every(&mut self) -> wasmtime::Result<u32> {
        Ok(self.checkpoints.as_ref().map_or(0, |c| c.every()))
    }

    fn save(
        &mut self,
        step: u64,
        params: Vec<(String, Resource<Tensor>)>,
        opt: Option<Resource<Optimizer>>,
    ) -> R<()> {
        let store = match self.job_checkpoints() {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        if self.collective.as_ref().is_some_and(|c| c.rank() != 0) {
            return Ok(Ok(()));
        }
        let params = params
            .into_iter()
            .map(|(n, t)| Ok((n, self.get(&t)?)))
            .collect::<wasmtime::Result<Vec<_>>>()?;
        let optimizer = tensor_ok!(self.optimizer_state(opt.as_ref(), &params)?);
        let mut values = Vec::with_capacity(params.len());
        for (name, t) in &params {
            let v = tensor_ok!(self.engine().to_vec(t));
            values.push((name.clone(), v, t.shape().to_vec()));
        }
        let c = Checkpoint {
            step,
            params: values,
            optimizer,
        };
        let bytes = tensor_ok!(c.encode());
        Ok(store.save(step, bytes).map_err(Error::Store))
    }

    fn restore(&mut self, opt: Option<Resource<Optimizer>>) -> R<Restored> {
        let Some(store) = self.checkpoints.clone() else {
            return Ok(Ok(None));
        };
        let bytes = match store.latest() {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(Ok(None)),
            Err(e) => return Ok(Err(Error::Store(e))),
        };
        let c = tensor_ok!(Checkpoint::decode(&bytes));
        let mut params = Vec::with_capacity(c.params.len());
        for (name, values, shape) in &c.params {
            let t = tensor_ok!(self.engine().tensor(values, shape, true));
            params.push((name.clone(), t));
        }
        if let Some(opt) = &opt {
            let state: HashMap<String, Vec<f32>> = c.optimizer.into_iter().collect();
            self.engine();
            let StepState { table, tensors, .. } = self;
            let engine = engine_ref(tensors);
            let imported = match table.get_mut(opt)? {
                Optimizer::Sgd(s) => s.import(engine, &params, &state),
                Optimizer::Adam(a) => a.import(engine, &params, &state),
            };
            tensor_ok!(imported);
        }
        let handles = params
            .into_iter()
            .map(|(n, t)| Ok((n, self.table.push(t)?)))
            .collect::<wasmtime::Result<Vec<_>>>()?;
        Ok(Ok(Some((c.step, handles))))
    }
}
