//! Optimizers that update parameters where they live (on the device), from [`Gradients`].
//! Their state (velocities, moments) is device memory too: it is charged to the quota of the
//! engine an optimizer steps with, before it is made, and given back when the optimizer drops.

use crate::backend::{Backend, Binary, Unary};
use crate::engine::{Charge, Engine, Gradients, Tensor};
use crate::TensorError;
use std::collections::HashMap;

/// What an optimizer's state holds of its engine's quota.
#[derive(Default)]
struct StateCharge(Option<Charge>);

impl StateCharge {
    /// Charges, before a step makes it, the state it adds: `per_element` bytes for each element
    /// of the parameters with a gradient and no state yet.
    fn cover<B: Backend>(
        &mut self,
        engine: &Engine<B>,
        params: &[Tensor<B>],
        grads: &Gradients<B>,
        has_state: impl Fn(u64) -> bool,
        per_element: usize,
    ) -> Result<(), TensorError> {
        let bytes = params
            .iter()
            .filter(|p| grads.buf(p).is_some() && !has_state(p.id()))
            .map(|p| p.numel() * per_element)
            .sum();
        self.add(engine, bytes)
    }

    fn add<B: Backend>(&mut self, engine: &Engine<B>, bytes: usize) -> Result<(), TensorError> {
        match &mut self.0 {
            Some(charge) => charge.grow(bytes),
            None => {
                self.0 = Some(engine.charge(bytes)?);
                Ok(())
            }
        }
    }
}

/// One named vector of an optimizer's state, on the host (for a checkpoint).
pub type StateEntry = (String, Vec<f32>);

/// The state vector `key` for a parameter of `n` elements, or a format error naming it.
fn entry<'a>(
    state: &'a HashMap<String, Vec<f32>>,
    key: &str,
    n: usize,
) -> Result<Option<&'a [f32]>, TensorError> {
    match state.get(key) {
        None => Ok(None),
        Some(v) if v.len() == n => Ok(Some(v)),
        Some(v) => Err(TensorError::Format(format!(
            "optimizer state {key}: {} values for a parameter of {n}",
            v.len()
        ))),
    }
}

/// Stochastic gradient descent with momentum (PyTorch's form: v = μv + g; p -= lr·v).
pub struct Sgd<B: Backend> {
    pub lr: f32,
    pub momentum: f32,
    velocity: HashMap<u64, B::Buf>,
    charge: StateCharge,
}

impl<B: Backend> Sgd<B> {
    pub fn new(lr: f32, momentum: f32) -> Self {
        Sgd {
            lr,
            momentum,
            velocity: HashMap::new(),
            charge: StateCharge::default(),
        }
    }

    /// The velocities of `params` (by their names: `NAME.velocity`), for a checkpoint.
    pub fn export(
        &self,
        engine: &Engine<B>,
        params: &[(String, Tensor<B>)],
    ) -> Result<Vec<StateEntry>, TensorError> {
        let mut out = Vec::new();
        for (name, p) in params {
            if let Some(v) = self.velocity.get(&p.id()) {
                out.push((format!("{name}.velocity"), engine.backend().download(v)?));
            }
        }
        Ok(out)
    }

    /// Takes up the velocities `export` gave for `params` (named as then), charged to `engine`.
    pub fn import(
        &mut self,
        engine: &Engine<B>,
        params: &[(String, Tensor<B>)],
        state: &HashMap<String, Vec<f32>>,
    ) -> Result<(), TensorError> {
        for (name, p) in params {
            if let Some(v) = entry(state, &format!("{name}.velocity"), p.numel())? {
                self.charge.add(engine, v.len() * 4)?;
                self.velocity.insert(p.id(), engine.backend().upload(v)?);
            }
        }
        Ok(())
    }

    pub fn step(
        &mut self,
        engine: &Engine<B>,
        params: &[Tensor<B>],
        grads: &Gradients<B>,
    ) -> Result<(), TensorError> {
        let known = |id| self.velocity.contains_key(&id);
        self.charge.cover(engine, params, grads, known, 4)?;
        let b = engine.backend();
        for p in params {
            let Some(g) = grads.buf(p) else { continue };
            let s = p.shape();
            let v = match self.velocity.remove(&p.id()) {
                Some(v) if self.momentum != 0.0 => {
                    let mv = b.affine(&v, self.momentum, 0.0)?;
                    b.binary(Binary::Add, &mv, s, g, s, s)?
                }
                _ => g.clone(),
            };
            let step = b.affine(&v, -self.lr, 0.0)?;
            let updated = b.binary(Binary::Add, &engine.value(p), s, &step, s, s)?;
            engine.set(p, updated);
            self.velocity.insert(p.id(), v);
        }
        Ok(())
    }
}

/// Adam, or AdamW with a decoupled `weight_decay`.
pub struct Adam<B: Backend> {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    t: i32,
    moments: HashMap<u64, (B::Buf, B::Buf)>,
    charge: StateCharge,
}

impl<B: Backend> Adam<B> {
    pub fn new(lr: f32) -> Self {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            t: 0,
            moments: HashMap::new(),
            charge: StateCharge::default(),
        }
    }

    /// The step count (`step`) and the moments of `params` (`NAME.m`, `NAME.v`), for a
    /// checkpoint.
    pub fn export(
        &self,
        engine: &Engine<B>,
        params: &[(String, Tensor<B>)],
    ) -> Result<Vec<StateEntry>, TensorError> {
        let mut out = vec![("step".to_string(), vec![self.t as f32])];
        for (name, p) in params {
            if let Some((m, v)) = self.moments.get(&p.id()) {
                let b = engine.backend();
                out.push((format!("{name}.m"), b.download(m)?));
                out.push((format!("{name}.v"), b.download(v)?));
            }
        }
        Ok(out)
    }

    /// Takes up the state `export` gave for `params` (named as then), charged to `engine`.
    pub fn import(
        &mut self,
        engine: &Engine<B>,
        params: &[(String, Tensor<B>)],
        state: &HashMap<String, Vec<f32>>,
    ) -> Result<(), TensorError> {
        if let Some(t) = entry(state, "step", 1)? {
            self.t = t[0] as i32;
        }
        for (name, p) in params {
            let n = p.numel();
            let m = entry(state, &format!("{name}.m"), n)?;
            let v = entry(state, &format!("{name}.v"), n)?;
            if let (Some(m), Some(v)) = (m, v) {
                self.charge.add(engine, n * 8)?;
                let b = engine.backend();
                self.moments.insert(p.id(), (b.upload(m)?, b.upload(v)?));
            }
        }
        Ok(())
    }

    /// AdamW: weights shrink by `lr * weight_decay` each step, apart from the gradient.
    pub fn with_weight_decay(mut self, weight_decay: f32) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    pub fn step(
        &mut self,
        engine: &Engine<B>,
        params: &[Tensor<B>],
        grads: &Gradients<B>,
    ) -> Result<(), TensorError> {
        let known = |id| self.moments.contains_key(&id);
        self.charge.cover(engine, params, grads, known, 8)?;
        let b = engine.backend();
        self.t += 1;
        let c1 = 1.0 - self.beta1.powi(self.t);
        let c2 = 1.0 - self.beta2.powi(self.t);
        for p in params {
            let Some(g) = grads.buf(p) else { continue };
            let s = p.shape();
            let n = p.numel();
            let (m, v) = match self.moments.remove(&p.id()) {
                Some(mv) => mv,
                None => (b.full(n, 0.0)?, b.full(n, 0.0)?),
            };
            let add = |x: &B::Buf, y: &B::Buf| b.binary(Binary::Add, x, s, y, s, s);
            let m = add(
                &b.affine(&m, self.beta1, 0.0)?,
                &b.affine(g, 1.0 - self.beta1, 0.0)?,
            )?;
            let g2 = b.unary(Unary::Square, g)?;
            let v = add(
                &b.affine(&v, self.beta2, 0.0)?,
                &b.affine(&g2, 1.0 - self.beta2, 0.0)?,
            )?;
            let m_hat = b.affine(&m, 1.0 / c1, 0.0)?;
            let denom = b.affine(
                &b.unary(Unary::Sqrt, &b.affine(&v, 1.0 / c2, 0.0)?)?,
                1.0,
                self.eps,
            )?;
            let update = b.binary(Binary::Div, &m_hat, s, &denom, s, s)?;
            let mut value = engine.value(p);
            if self.weight_decay != 0.0 {
                value = b.affine(&value, 1.0 - self.lr * self.weight_decay, 0.0)?;
            }
            let updated = add(&value, &b.affine(&update, -self.lr, 0.0)?)?;
            engine.set(p, updated);
            self.moments.insert(p.id(), (m, v));
        }
        Ok(())
    }
}
