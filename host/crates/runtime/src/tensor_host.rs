//! `weft:tensor/ops` for components: the host side of the GPU bridge. Tensors, gradients and
//! optimizers live in the Store's resource table (so a handle means nothing to any other
//! instance) and in its tensor engine (so the instance's device-memory quota bounds them and
//! they all go when the Store does). A device that runs out of memory is the guest's `quota`
//! error; one that fails otherwise (a lost device, a kernel that did not launch) fails the step
//! with a trap that says so: the WIT has no case for it, and the host never panics on it.

use crate::state::StepState;
use bindings::weft::tensor::ops::{self, BinaryOp, Dtype, Error, UnaryOp};
use wasmtime::component::Resource;
use weft_tensor::optim::{Adam, Sgd};
use weft_tensor::{AnyBackend, Backend, DeviceError, Engine, TensorError};

pub type Tensor = weft_tensor::Tensor<AnyBackend>;
pub type Gradients = weft_tensor::Gradients<AnyBackend>;

/// An optimizer and its state.
pub enum Optimizer {
    Sgd(Sgd<AnyBackend>),
    Adam(Adam<AnyBackend>),
}

pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../../../wit/tensor",
        world: "weft:tensor/tensor-host",
        imports: { default: trappable },
        with: {
            "weft:tensor/ops.tensor": super::Tensor,
            "weft:tensor/ops.gradients": super::Gradients,
            "weft:tensor/ops.optimizer": super::Optimizer,
        },
    });
}

type R<T> = wasmtime::Result<Result<T, Error>>;

/// An engine error as the guest's, or, for a device failure the WIT has no case for, a trap.
fn error(e: TensorError) -> wasmtime::Result<Error> {
    Ok(match e {
        TensorError::Shape(m) => Error::Shape(m),
        q @ TensorError::Quota { .. } => Error::Quota(q.to_string()),
        TensorError::Format(m) => Error::Format(m),
        oom @ TensorError::Device(DeviceError::OutOfMemory(_)) => Error::Quota(oom.to_string()),
        TensorError::Device(failed) => return Err(trap(failed.into())),
    })
}

/// An engine error where the call has no error to return: the step fails with it.
pub(crate) fn trap(e: TensorError) -> wasmtime::Error {
    wasmtime::format_err!("tensor device: {e}")
}

fn dims(shape: &[u32]) -> Vec<usize> {
    shape.iter().map(|&d| d as usize).collect()
}

impl StepState {
    pub(crate) fn engine(&mut self) -> &Engine<AnyBackend> {
        let limit = self.device_memory_bytes as usize;
        let device = &self.tensor_device;
        self.tensors
            .get_or_insert_with(|| Engine::new(device.clone(), limit))
    }

    pub(crate) fn get(&self, t: &Resource<Tensor>) -> wasmtime::Result<Tensor> {
        Ok(self.table.get(t)?.clone())
    }

    /// Stores the result of an op as a new handle, or passes its error to the guest.
    pub(crate) fn put(&mut self, t: Result<Tensor, TensorError>) -> R<Resource<Tensor>> {
        match t {
            Ok(t) => Ok(Ok(self.table.push(t)?)),
            Err(e) => Ok(Err(error(e)?)),
        }
    }

    fn op1(
        &mut self,
        x: &Resource<Tensor>,
        f: impl FnOnce(&Engine<AnyBackend>, &Tensor) -> Result<Tensor, TensorError>,
    ) -> R<Resource<Tensor>> {
        let x = self.get(x)?;
        let out = f(self.engine(), &x);
        self.put(out)
    }

    fn op2(
        &mut self,
        a: &Resource<Tensor>,
        b: &Resource<Tensor>,
        f: impl FnOnce(&Engine<AnyBackend>, &Tensor, &Tensor) -> Result<Tensor, TensorError>,
    ) -> R<Resource<Tensor>> {
        let (a, b) = (self.get(a)?, self.get(b)?);
        let out = f(self.engine(), &a, &b);
        self.put(out)
    }
}

impl ops::HostTensor for StepState {
    fn from_bytes(
        &mut self,
        data: Vec<u8>,
        dtype: Dtype,
        shape: Vec<u32>,
        requires_grad: bool,
    ) -> R<Resource<Tensor>> {
        let Dtype::F32 = dtype;
        if !data.len().is_multiple_of(4) {
            return Ok(Err(Error::Format(format!(
                "{} bytes are not a whole number of f32 elements",
                data.len()
            ))));
        }
        let values: Vec<f32> = data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let t = self.engine().tensor(&values, &dims(&shape), requires_grad);
        self.put(t)
    }

    fn full(&mut self, shape: Vec<u32>, value: f32) -> R<Resource<Tensor>> {
        let t = self.engine().full(&dims(&shape), value);
        self.put(t)
    }

    fn shape(&mut self, t: Resource<Tensor>) -> wasmtime::Result<Vec<u32>> {
        Ok(self.get(&t)?.shape().iter().map(|&d| d as u32).collect())
    }

    fn dtype(&mut self, _t: Resource<Tensor>) -> wasmtime::Result<Dtype> {
        Ok(Dtype::F32)
    }

    fn to_bytes(&mut self, t: Resource<Tensor>) -> wasmtime::Result<Vec<u8>> {
        let t = self.get(&t)?;
        let values = self.engine().to_vec(&t).map_err(trap)?;
        Ok(values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    fn drop(&mut self, t: Resource<Tensor>) -> wasmtime::Result<()> {
        self.table.delete(t)?;
        Ok(())
    }
}

impl ops::HostGradients for StepState {
    fn get(&mut self, g: Resource<Gradients>, t: Resource<Tensor>) -> R<Option<Resource<Tensor>>> {
        let t = StepState::get(self, &t)?;
        self.engine();
        let found = match self.table.get(&g)?.get(engine_ref(&self.tensors), &t) {
            Ok(found) => found,
            Err(e) => return Ok(Err(error(e)?)),
        };
        match found {
            Some(t) => Ok(Ok(Some(self.table.push(t)?))),
            None => Ok(Ok(None)),
        }
    }

    fn drop(&mut self, g: Resource<Gradients>) -> wasmtime::Result<()> {
        self.table.delete(g)?;
        Ok(())
    }
}

pub(crate) fn engine_ref(e: &Option<Engine<AnyBackend>>) -> &Engine<AnyBackend> {
    e.as_ref()
        .expect("gradients exist only after the engine made them")
}

impl ops::HostOptimizer for StepState {
    fn sgd(&mut self, lr: f32, momentum: f32) -> wasmtime::Result<Resource<Optimizer>> {
        Ok(self.table.push(Optimizer::Sgd(Sgd::new(lr, momentum)))?)
    }

    fn adam(&mut self, lr: f32, weight_decay: f32) -> wasmtime::Result<Resource<Optimizer>> {
        let adam = Adam::new(lr).with_weight_decay(weight_decay);
        Ok(self.table.push(Optimizer::Adam(adam))?)
    }

    fn step(
        &mut self,
        opt: Resource<Optimizer>,
        params: Vec<Resource<Tensor>>,
        grads: Resource<Gradients>,
    ) -> wasmtime::Result<()> {
        let params = params
            .iter()
            .map(|p| self.get(p))
            .collect::<wasmtime::Result<Vec<_>>>()?;
        self.engine();
        // A copy of the handles to the gradient buffers, so the optimizer can be borrowed
        // mutably from the same table.
        let grads = self.table.get(&grads)?.clone();
        let StepState { table, tensors, .. } = self;
        let engine = engine_ref(tensors);
        match table.get_mut(&opt)? {
            Optimizer::Sgd(s) => s.step(engine, &params, &grads),
            Optimizer::Adam(a) => a.step(engine, &params, &grads),
        }
        .map_err(trap)
    }

    fn drop(&mut self, o: Resource<Optimizer>) -> wasmtime::Result<()> {
        self.table.delete(o)?;
        Ok(())
    }
}

impl ops::Host for StepState {
    fn unary(&mut self, op: UnaryOp, x: Resource<Tensor>) -> R<Resource<Tensor>> {
        use weft_tensor::Unary as U;
        let op = match op {
            UnaryOp::Neg => U::Neg,
            UnaryOp::Relu => U::Relu,
            UnaryOp::Gelu => U::Gelu,
            UnaryOp::Tanh => U::Tanh,
            UnaryOp::Sigmoid => U::Sigmoid,
            UnaryOp::Exp => U::Exp,
            UnaryOp::Log => U::Log,
            UnaryOp::Recip => U::Recip,
            UnaryOp::Sqrt => U::Sqrt,
            UnaryOp::Square => U::Square,
        };
        self.op1(&x, |e, x| e.unary(op, x))
    }

    fn binary(
        &mut self,
        op: BinaryOp,
        a: Resource<Tensor>,
        b: Resource<Tensor>,
    ) -> R<Resource<Tensor>> {
        use weft_tensor::Binary as B;
        let op = match op {
            BinaryOp::Add => B::Add,
            BinaryOp::Sub => B::Sub,
            BinaryOp::Mul => B::Mul,
            BinaryOp::Div => B::Div,
        };
        self.op2(&a, &b, |e, a, b| e.binary(op, a, b))
    }

    fn scale(&mut self, x: Resource<Tensor>, alpha: f32) -> R<Resource<Tensor>> {
        self.op1(&x, |e, x| e.scale(x, alpha))
    }

    fn matmul(&mut self, a: Resource<Tensor>, b: Resource<Tensor>) -> R<Resource<Tensor>> {
        self.op2(&a, &b, |e, a, b| e.matmul(a, b))
    }

    fn sum(&mut self, x: Resource<Tensor>, axis: i32) -> R<Resource<Tensor>> {
        self.op1(&x, |e, x| e.sum(x, axis.into()))
    }

    fn mean(&mut self, x: Resource<Tensor>, axis: i32) -> R<Resource<Tensor>> {
        self.op1(&x, |e, x| e.mean(x, axis.into()))
    }

    fn max(&mut self, x: Resource<Tensor>, axis: i32) -> R<Resource<Tensor>> {
        self.op1(&x, |e, x| e.max(x, axis.into()))
    }

    fn reshape(&mut self, x: Resource<Tensor>, shape: Vec<u32>) -> R<Resource<Tensor>> {
        self.op1(&x, |e, x| e.reshape(x, &dims(&shape)))
    }

    fn transpose(&mut self, x: Resource<Tensor>, a0: i32, a1: i32) -> R<Resource<Tensor>> {
        self.op1(&x, |e, x| e.transpose(x, a0.into(), a1.into()))
    }

    fn slice(
        &mut self,
        x: Resource<Tensor>,
        axis: i32,
        start: u32,
        len: u32,
    ) -> R<Resource<Tensor>> {
        self.op1(&x, |e, x| {
            e.slice(x, axis.into(), start as usize, len as usize)
        })
    }

    fn concat(&mut self, xs: Vec<Resource<Tensor>>, axis: i32) -> R<Resource<Tensor>> {
        let xs = xs
            .iter()
            .map(|x| self.get(x))
            .collect::<wasmtime::Result<Vec<_>>>()?;
        let out = self.engine().concat(&xs, axis.into());
        self.put(out)
    }

    fn gather(&mut self, x: Resource<Tensor>, indices: Vec<u32>) -> R<Resource<Tensor>> {
        let indices: Vec<usize> = indices.iter().map(|&i| i as usize).collect();
        self.op1(&x, |e, x| e.gather(x, &indices))
    }

    fn layer_norm(
        &mut self,
        x: Resource<Tensor>,
        gamma: Resource<Tensor>,
        beta: Resource<Tensor>,
        eps: f32,
    ) -> R<Resource<Tensor>> {
        let (x, g, b) = (self.get(&x)?, self.get(&gamma)?, self.get(&beta)?);
        let out = self.engine().layer_norm(&x, &g, &b, eps);
        self.put(out)
    }

    fn conv2d(
        &mut self,
        x: Resource<Tensor>,
        weight: Resource<Tensor>,
        bias: Option<Resource<Tensor>>,
        stride: u32,
        pad: u32,
    ) -> R<Resource<Tensor>> {
        let (x, w) = (self.get(&x)?, self.get(&weight)?);
        let bias = bias.map(|b| self.get(&b)).transpose()?;
        let out = self
            .engine()
            .conv2d(&x, &w, bias.as_ref(), stride as usize, pad as usize);
        self.put(out)
    }

    fn max_pool2d(&mut self, x: Resource<Tensor>, k: u32, stride: u32) -> R<Resource<Tensor>> {
        self.op1(&x, |e, x| e.pool2d(x, k as usize, stride as usize, false))
    }

    fn avg_pool2d(&mut self, x: Resource<Tensor>, k: u32, stride: u32) -> R<Resource<Tensor>> {
        self.op1(&x, |e, x| e.pool2d(x, k as usize, stride as usize, true))
    }

    fn softmax(&mut self, x: Resource<Tensor>, axis: i32) -> R<Resource<Tensor>> {
        self.op1(&x, |e, x| e.softmax(x, axis.into()))
    }

    fn log_softmax(&mut self, x: Resource<Tensor>, axis: i32) -> R<Resource<Tensor>> {
        self.op1(&x, |e, x| e.log_softmax(x, axis.into()))
    }

    fn one_hot(&mut self, indices: Vec<u32>, classes: u32) -> R<Resource<Tensor>> {
        let indices: Vec<usize> = indices.iter().map(|&i| i as usize).collect();
        let t = self.engine().one_hot(&indices, classes as usize);
        self.put(t)
    }

    fn cross_entropy(
        &mut self,
        logits: Resource<Tensor>,
        targets: Resource<Tensor>,
    ) -> R<Resource<Tensor>> {
        self.op2(&logits, &targets, |e, l, t| e.cross_entropy(l, t))
    }

    fn mse(&mut self, a: Resource<Tensor>, b: Resource<Tensor>) -> R<Resource<Tensor>> {
        self.op2(&a, &b, |e, a, b| e.mse(a, b))
    }

    fn detach(&mut self, x: Resource<Tensor>) -> R<Resource<Tensor>> {
        self.op1(&x, |e, x| e.detach(x))
    }

    fn backward(&mut self, loss: Resource<Tensor>) -> R<Resource<Gradients>> {
        let loss = self.get(&loss)?;
        match self.engine().backward(&loss) {
            Ok(g) => Ok(Ok(self.table.push(g)?)),
            Err(e) => Ok(Err(error(e)?)),
        }
    }

    fn save(&mut self, named: Vec<(String, Resource<Tensor>)>) -> R<Vec<u8>> {
        let named = named
            .into_iter()
            .map(|(n, t)| Ok((n, self.get(&t)?)))
            .collect::<wasmtime::Result<Vec<_>>>()?;
        match weft_tensor::io::save(self.engine(), &named) {
            Ok(bytes) => Ok(Ok(bytes)),
            Err(e) => Ok(Err(error(e)?)),
        }
    }

    fn load(&mut self, data: Vec<u8>) -> R<Vec<(String, Resource<Tensor>)>> {
        let loaded = match weft_tensor::io::load(self.engine(), &data) {
            Ok(l) => l,
            Err(e) => return Ok(Err(error(e)?)),
        };
        let mut out = Vec::with_capacity(loaded.len());
        for (name, t) in loaded {
            out.push((name, self.table.push(t)?));
        }
        Ok(Ok(out))
    }

    fn backend(&mut self) -> wasmtime::Result<String> {
        Ok(self.engine().backend().name().to_string())
    }

    fn memory_used(&mut self) -> wasmtime::Result<u64> {
        Ok(self.tensors.as_ref().map_or(0, |e| e.used_bytes() as u64))
    }
}
