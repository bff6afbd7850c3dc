//! Tensors on a backend, the ops built from its primitives, and reverse-mode autodiff.
//!
//! A tensor is a node of a tape: its value (a device buffer), its shape, and the op and inputs
//! that made it. Nodes are reference-counted, so a tensor and everything it was computed from
//! live exactly as long as someone holds them; `backward` walks the tape from a scalar down to
//! the leaves that require gradients, and dropping a tape takes it apart node by node (both
//! iteratively: a tape can be millions of ops deep). Every byte a tensor holds, on the device
//! and in the node that records it, is charged to its engine's quota (one engine per component
//! instance), refused past it, and returned when it drops; so are the buffers of gradients.

use crate::backend::{Backend, Binary, DeviceResult, Reduce, Unary, Window};
use crate::shape::{broadcast, checked_numel, numel};
use crate::TensorError;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

/// Bytes held and allowed, shared by an engine and its tensors.
struct Account {
    used: AtomicUsize,
    limit: usize,
}

impl Account {
    /// Charges `bytes`, or refuses them (charging nothing) past the limit.
    fn charge(self: &Arc<Self>, bytes: usize) -> Result<Charge, TensorError> {
        let before = self.used.fetch_add(bytes, Ordering::Relaxed);
        if before.saturating_add(bytes) > self.limit {
            self.used.fetch_sub(bytes, Ordering::Relaxed);
            return Err(TensorError::Quota {
                limit: self.limit,
                requested: bytes,
                used: before,
            });
        }
        Ok(Charge {
            account: self.clone(),
            bytes,
        })
    }
}

/// Bytes charged to an account, given back when this drops.
pub(crate) struct Charge {
    account: Arc<Account>,
    bytes: usize,
}

impl Charge {
    /// Charges `bytes` more, or refuses them (charging nothing) past the limit.
    pub(crate) fn grow(&mut self, bytes: usize) -> Result<(), TensorError> {
        let mut more = self.account.charge(bytes)?;
        // Taken over by this charge: `more` gives back nothing when it drops.
        self.bytes += std::mem::take(&mut more.bytes);
        Ok(())
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.account.used.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// An allowance for what a node costs outside its struct and its values: its reference counts
/// and the headers of its buffer and of the guest's handle to it. ([`Node::cost`] adds a word
/// per dimension of its shape and per index a gather keeps.)
const NODE_ALLOWANCE: usize = 64;

/// Tensor compute on one backend, for one owner (a component instance): its tensors, its
/// quota.
pub struct Engine<B: Backend> {
    backend: Arc<B>,
    account: Arc<Account>,
    next_id: AtomicU64,
}

enum Op<B: Backend> {
    Leaf,
    Unary(Unary, Tensor<B>),
    Binary(Binary, Tensor<B>, Tensor<B>),
    Affine(Tensor<B>, f32),
    Slice(Tensor<B>, usize, usize),
    Pad(Tensor<B>, usize, usize),
    Gather(Tensor<B>, Arc<Vec<usize>>),
    Unfold(Tensor<B>, Window),
    MatMul(Tensor<B>, Tensor<B>),
    Reduce(Reduce, Tensor<B>),
    Reshape(Tensor<B>),
    Transpose(Tensor<B>, usize, usize),
    /// No gradient flows back (comparisons, masks, detached values).
    Constant,
}

impl<B: Backend> Op<B> {
    /// The inputs, moved out (the op becomes a constant).
    fn take_inputs(&mut self) -> Vec<Tensor<B>> {
        match std::mem::replace(self, Op::Constant) {
            Op::Leaf | Op::Constant => vec![],
            Op::Unary(_, x) | Op::Affine(x, _) | Op::Reduce(_, x) | Op::Reshape(x) => vec![x],
            Op::Transpose(x, ..)
            | Op::Slice(x, ..)
            | Op::Pad(x, ..)
            | Op::Gather(x, _)
            | Op::Unfold(x, _) => vec![x],
            Op::Binary(_, a, b) | Op::MatMul(a, b) => vec![a, b],
        }
    }
}

struct Node<B: Backend> {
    id: u64,
    shape: Vec<usize>,
    value: RwLock<B::Buf>,
    op: Op<B>,
    requires_grad: bool,
    /// The node's bytes (values and bookkeeping), charged to its engine's quota.
    _charge: Charge,
}

impl<B: Backend> Node<B> {
    /// What a node of `shape` made by `op` is charged: its values and its bookkeeping.
    fn cost(shape: &[usize], op: &Op<B>) -> usize {
        let words = shape.len()
            + match op {
                Op::Gather(_, indices) => indices.len(),
                _ => 0,
            };
        numel(shape) * 4
            + std::mem::size_of::<Self>()
            + NODE_ALLOWANCE
            + words * std::mem::size_of::<usize>()
    }
}

impl<B: Backend> Drop for Node<B> {
    /// Takes the tape below apart one node at a time: dropping the inputs in place would recurse
    /// once per op, and a tape a million ops deep would overflow the stack.
    fn drop(&mut self) {
        let mut pending = self.op.take_inputs();
        while let Some(t) = pending.pop() {
            // Only the last holder of a node takes it apart; the others just let go.
            if let Some(mut node) = Arc::into_inner(t.0) {
                pending.append(&mut node.op.take_inputs());
            }
        }
    }
}

/// A tensor: a cheap handle (clones share the node).
pub struct Tensor<B: Backend>(Arc<Node<B>>);

impl<B: Backend> Clone for Tensor<B> {
    fn clone(&self) -> Self {
        Tensor(self.0.clone())
    }
}

impl<B: Backend> std::fmt::Debug for Tensor<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tensor")
            .field("id", &self.0.id)
            .field("shape", &self.0.shape)
            .field("requires_grad", &self.0.requires_grad)
            .finish()
    }
}

impl<B: Backend> Tensor<B> {
    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }

    pub fn numel(&self) -> usize {
        numel(&self.0.shape)
    }

    /// A stable identity, for gradients and optimizer state.
    pub fn id(&self) -> u64 {
        self.0.id
    }

    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad
    }

    fn buf(&self) -> B::Buf {
        self.0.value.read().unwrap().clone()
    }
}

/// Gradients of a scalar with respect to the tensors that require them. Cloning shares the
/// device buffers (and their charge to the quota).
pub struct Gradients<B: Backend> {
    grads: HashMap<u64, (Vec<usize>, B::Buf)>,
    _charge: Arc<Charge>,
}

impl<B: Backend> Clone for Gradients<B> {
    fn clone(&self) -> Self {
        Gradients {
            grads: self.grads.clone(),
            _charge: self._charge.clone(),
        }
    }
}

impl<B: Backend> Gradients<B> {
    /// The gradient of `t`, as a tensor of `t`'s shape (None if the scalar does not depend on it).
    pub fn get(&self, engine: &Engine<B>, t: &Tensor<B>) -> Result<Option<Tensor<B>>, TensorError> {
        match self.grads.get(&t.id()) {
            Some((shape, buf)) => Ok(Some(engine.node(
                shape.clone(),
                buf.clone(),
                Op::Constant,
                false,
            )?)),
            None => Ok(None),
        }
    }

    pub(crate) fn buf(&self, t: &Tensor<B>) -> Option<&B::Buf> {
        self.grads.get(&t.id()).map(|(_, b)| b)
    }

    /// The gradients of `params`, in order, copied to the host as one vector (for one
    /// all-reduce of them all); a parameter without a gradient is a shape error naming it.
    pub fn flatten(
        &self,
        engine: &Engine<B>,
        params: &[Tensor<B>],
    ) -> Result<Vec<f32>, TensorError> {
        let mut out = Vec::new();
        for (i, p) in params.iter().enumerate() {
            let buf = self.buf(p).ok_or_else(|| {
                TensorError::Shape(format!(
                    "params[{i}] (shape {:?}) has no gradient: the loss does not depend on it",
                    p.shape()
                ))
            })?;
            out.extend(engine.backend.download(buf)?);
        }
        Ok(out)
    }

    /// Replaces the gradients of `params` by consecutive runs of `values` (as [`flatten`]
    /// laid them out), on the device.
    ///
    /// [`flatten`]: Gradients::flatten
    pub fn replace(
        &mut self,
        engine: &Engine<B>,
        params: &[Tensor<B>],
        values: &[f32],
    ) -> Result<(), TensorError> {
        let total: usize = params.iter().map(|p| p.numel()).sum();
        if total != values.len() {
            return Err(TensorError::Shape(format!(
                "{} values for gradients of {total} elements",
                values.len()
            )));
        }
        let mut at = 0;
        for p in params {
            let n = p.numel();
            let buf = engine.backend.upload(&values[at..at + n])?;
            if let Some(entry) = self.grads.get_mut(&p.id()) {
                entry.1 = buf;
            }
            at += n;
        }
        Ok(())
    }
}

impl<B: Backend> Engine<B> {
    /// An engine on `backend` that may hold at most `limit_bytes` of tensors at once.
    pub fn new(backend: B, limit_bytes: usize) -> Self {
        Engine {
            backend: Arc::new(backend),
            account: Arc::new(Account {
                used: AtomicUsize::new(0),
                limit: limit_bytes,
            }),
            next_id: AtomicU64::new(1),
        }
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Bytes of tensors held now.
    pub fn used_bytes(&self) -> usize {
        self.account.used.load(Ordering::Relaxed)
    }

    /// Charges `bytes` held outside tensors (an optimizer's state), until the charge drops.
    pub(crate) fn charge(&self, bytes: usize) -> Result<Charge, TensorError> {
        self.account.charge(bytes)
    }

    /// Bytes a tensor of `shape` made from data (or by `full`) is charged: its values and its
    /// bookkeeping.
    pub fn tensor_cost(&self, shape: &[usize]) -> usize {
        Node::<B>::cost(shape, &Op::Leaf)
    }

    /// Refuses a result of `shape` before anything is allocated for it: a size that does not
    /// fit, one larger than the device's largest buffer, or one past the quota.
    fn admit(&self, shape: &[usize]) -> Result<(), TensorError> {
        let n = checked_numel(shape).ok_or_else(|| {
            TensorError::Shape(format!(
                "shape {shape:?} has more elements than can be addressed"
            ))
        })?;
        if n > self.backend.max_elements() {
            return Err(TensorError::Shape(format!(
                "shape {shape:?} ({n} elements) is larger than the device's largest buffer ({} elements)",
                self.backend.max_elements()
            )));
        }
        let used = self.used_bytes();
        if used + n * 4 > self.account.limit {
            return Err(TensorError::Quota {
                limit: self.account.limit,
                requested: n * 4,
                used,
            });
        }
        Ok(())
    }

    fn node(
        &self,
        shape: Vec<usize>,
        value: B::Buf,
        op: Op<B>,
        requires_grad: bool,
    ) -> Result<Tensor<B>, TensorError> {
        let charge = self.account.charge(Node::cost(&shape, &op))?;
        Ok(Tensor(Arc::new(Node {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            shape,
            value: RwLock::new(value),
            op,
            requires_grad,
            _charge: charge,
        })))
    }

    /// A tensor from host data; `requires_grad` makes it a parameter that `backward` reaches.
    pub fn tensor(
        &self,
        data: &[f32],
        shape: &[usize],
        requires_grad: bool,
    ) -> Result<Tensor<B>, TensorError> {
        self.admit(shape)?;
        if numel(shape) != data.len() {
            return Err(TensorError::Shape(format!(
                "{} values do not fill shape {shape:?} ({} elements)",
                data.len(),
                numel(shape)
            )));
        }
        self.node(
            shape.to_vec(),
            self.backend.upload(data)?,
            Op::Leaf,
            requires_grad,
        )
    }

    pub fn full(&self, shape: &[usize], value: f32) -> Result<Tensor<B>, TensorError> {
        self.admit(shape)?;
        let buf = self.backend.full(numel(shape), value)?;
        self.node(shape.to_vec(), buf, Op::Leaf, false)
    }

    /// The values, copied to the host.
    pub fn to_vec(&self, t: &Tensor<B>) -> Result<Vec<f32>, TensorError> {
        Ok(self.backend.download(&t.buf())?)
    }

    fn derived(
        &self,
        shape: Vec<usize>,
        value: B::Buf,
        op: Op<B>,
    ) -> Result<Tensor<B>, TensorError> {
        let requires_grad = match &op {
            Op::Leaf | Op::Constant => false,
            Op::Unary(_, x) | Op::Affine(x, _) | Op::Reduce(_, x) | Op::Reshape(x) => {
                x.requires_grad()
            }
            Op::Transpose(x, ..)
            | Op::Slice(x, ..)
            | Op::Pad(x, ..)
            | Op::Gather(x, _)
            | Op::Unfold(x, _) => x.requires_grad(),
            Op::Binary(_, a, b) | Op::MatMul(a, b) => a.requires_grad() || b.requires_grad(),
        };
        let op = if requires_grad { op } else { Op::Constant };
        self.node(shape, value, op, requires_grad)
    }

    pub fn unary(&self, op: Unary, x: &Tensor<B>) -> Result<Tensor<B>, TensorError> {
        let v = self.backend.unary(op, &x.buf())?;
        let op = match op {
            Unary::Step | Unary::GeluGrad => Op::Constant,
            _ => Op::Unary(op, x.clone()),
        };
        self.derived(x.shape().to_vec(), v, op)
    }

    pub fn binary(
        &self,
        op: Binary,
        a: &Tensor<B>,
        b: &Tensor<B>,
    ) -> Result<Tensor<B>, TensorError> {
        let out = broadcast(a.shape(), b.shape())?;
        self.admit(&out)?;
        let v = self
            .backend
            .binary(op, &a.buf(), a.shape(), &b.buf(), b.shape(), &out)?;
        let op = match op {
            Binary::Eq => Op::Constant,
            _ => Op::Binary(op, a.clone(), b.clone()),
        };
        self.derived(out, v, op)
    }

    pub fn add(&self, a: &Tensor<B>, b: &Tensor<B>) -> Result<Tensor<B>, TensorError> {
        self.binary(Binary::Add, a, b)
    }
    pub fn sub(&self, a: &Tensor<B>, b: &Tensor<B>) -> Result<Tensor<B>, TensorError> {
        self.binary(Binary::Sub, a, b)
    }
    pub fn mul(&self, a: &Tensor<B>, b: &Tensor<B>) -> Result<Tensor<B>, TensorError> {
        self.binary(Binary::Mul, a, b)
    }
    pub fn div(&self, a: &Tensor<B>, b: &Tensor<B>) -> Result<Tensor<B>, TensorError> {
        self.binary(Binary::Div, a, b)
    }

    /// `x * alpha` (scaling by a constant).
    pub fn scale(&self, x: &Tensor<B>, alpha: f32) -> Result<Tensor<B>, TensorError> {
        let v = self.backend.affine(&x.buf(), alpha, 0.0)?;
        self.derived(x.shape().to_vec(), v, Op::Affine(x.clone(), alpha))
    }

    /// Matrix product of `[.., m, k]` and `[.., k, n]` (the same leading batch dims, or none on
    /// either side).
    pub fn matmul(&self, a: &Tensor<B>, b: &Tensor<B>) -> Result<Tensor<B>, TensorError> {
        let (sa, sb) = (a.shape(), b.shape());
        if sa.len() < 2 || sb.len() < 2 {
            return Err(TensorError::Shape(format!(
                "matmul needs matrices, got {sa:?} and {sb:?}"
            )));
        }
        let (m, k) = (sa[sa.len() - 2], sa[sa.len() - 1]);
        let (k2, n) = (sb[sb.len() - 2], sb[sb.len() - 1]);
        let (ba, bb) = (&sa[..sa.len() - 2], &sb[..sb.len() - 2]);
        if k != k2 || ba != bb {
            return Err(TensorError::Shape(format!(
                "matmul of {sa:?} and {sb:?}: inner dimensions or batch dimensions differ"
            )));
        }
        let batch = numel(ba);
        let mut out_shape = ba.to_vec();
        out_shape.extend([m, n]);
        self.admit(&out_shape)?;
        let v = self
            .backend
            .matmul(&a.buf(), &b.buf(), batch, m, k, n, false, false)?;
        let mut shape = ba.to_vec();
        shape.extend([m, n]);
        self.derived(shape, v, Op::MatMul(a.clone(), b.clone()))
    }

    fn axis(&self, x: &Tensor<B>, axis: i64) -> Result<usize, TensorError> {
        let rank = x.shape().len() as i64;
        let a = if axis < 0 { rank + axis } else { axis };
        if a < 0 || a >= rank {
            return Err(TensorError::Shape(format!(
                "axis {axis} is out of range for shape {:?}",
                x.shape()
            )));
        }
        Ok(a as usize)
    }

    /// Sum along `axis` (negative counts from the end), keeping it with length 1.
    pub fn sum(&self, x: &Tensor<B>, axis: i64) -> Result<Tensor<B>, TensorError> {
        self.reduce(Reduce::Sum, x, axis)
    }

    pub fn max(&self, x: &Tensor<B>, axis: i64) -> Result<Tensor<B>, TensorError> {
        self.reduce(Reduce::Max, x, axis)
    }

    pub fn mean(&self, x: &Tensor<B>, axis: i64) -> Result<Tensor<B>, TensorError> {
        let a = self.axis(x, axis)?;
        let n = x.shape()[a] as f32;
        self.scale(&self.sum(x, axis)?, 1.0 / n)
    }

    fn reduce(&self, op: Reduce, x: &Tensor<B>, axis: i64) -> Result<Tensor<B>, TensorError> {
        let a = self.axis(x, axis)?;
        let v = self.backend.reduce(op, &x.buf(), x.shape(), a)?;
        let mut shape = x.shape().to_vec();
        shape[a] = 1;
        self.derived(shape, v, Op::Reduce(op, x.clone()))
    }

    /// The sum of every element, as a `[1]` tensor.
    pub fn sum_all(&self, x: &Tensor<B>) -> Result<Tensor<B>, TensorError> {
        let flat = self.reshape(x, &[x.numel()])?;
        self.sum(&flat, 0)
    }

    pub fn reshape(&self, x: &Tensor<B>, shape: &[usize]) -> Result<Tensor<B>, TensorError> {
        if checked_numel(shape) != Some(x.numel()) {
            return Err(TensorError::Shape(format!(
                "cannot reshape {:?} to {shape:?}",
                x.shape()
            )));
        }
        self.derived(shape.to_vec(), x.buf(), Op::Reshape(x.clone()))
    }

    pub fn transpose(&self, x: &Tensor<B>, a0: i64, a1: i64) -> Result<Tensor<B>, TensorError> {
        let (a0, a1) = (self.axis(x, a0)?, self.axis(x, a1)?);
        let v = self.backend.transpose(&x.buf(), x.shape(), a0, a1)?;
        let mut shape = x.shape().to_vec();
        shape.swap(a0, a1);
        self.derived(shape, v, Op::Transpose(x.clone(), a0, a1))
    }

    /// Elements `start..start + len` along `axis`.
    pub fn slice(
        &self,
        x: &Tensor<B>,
        axis: i64,
        start: usize,
        len: usize,
    ) -> Result<Tensor<B>, TensorError> {
        let a = self.axis(x, axis)?;
        if start + len > x.shape()[a] || len == 0 {
            return Err(TensorError::Shape(format!(
                "slice {start}..{} of axis {a} (length {})",
                start + len,
                x.shape()[a]
            )));
        }
        let v = self.backend.slice(&x.buf(), x.shape(), a, start, len)?;
        let mut shape = x.shape().to_vec();
        shape[a] = len;
        self.derived(shape, v, Op::Slice(x.clone(), a, start))
    }

    fn pad(
        &self,
        x: &Tensor<B>,
        axis: usize,
        start: usize,
        total: usize,
    ) -> Result<Tensor<B>, TensorError> {
        let mut out_shape = x.shape().to_vec();
        out_shape[axis] = total;
        self.admit(&out_shape)?;
        let v = self.backend.pad(&x.buf(), x.shape(), axis, start, total)?;
        let mut shape = x.shape().to_vec();
        shape[axis] = total;
        self.derived(shape, v, Op::Pad(x.clone(), axis, start))
    }

    /// `xs` joined along `axis` (their other dimensions equal).
    pub fn concat(&self, xs: &[Tensor<B>], axis: i64) -> Result<Tensor<B>, TensorError> {
        let first = xs
            .first()
            .ok_or_else(|| TensorError::Shape("concat of no tensors".into()))?;
        let a = self.axis(first, axis)?;
        for x in xs {
            let (mut s0, mut s1) = (first.shape().to_vec(), x.shape().to_vec());
            if s0.len() != s1.len() {
                return Err(TensorError::Shape(format!(
                    "concat of {:?} and {:?}",
                    first.shape(),
                    x.shape()
                )));
            }
            s0[a] = 0;
            s1[a] = 0;
            if s0 != s1 {
                return Err(TensorError::Shape(format!(
                    "concat along axis {a} of {:?} and {:?}",
                    first.shape(),
                    x.shape()
                )));
            }
        }
        let total: usize = xs.iter().map(|x| x.shape()[a]).sum();
        let mut start = 0;
        let mut acc: Option<Tensor<B>> = None;
        for x in xs {
            let placed = self.pad(x, a, start, total)?;
            start += x.shape()[a];
            acc = Some(match acc {
                None => placed,
                Some(sum) => self.add(&sum, &placed)?,
            });
        }
        Ok(acc.expect("at least one tensor"))
    }

    /// Rows `indices` of a `[rows, cols]` matrix: an embedding lookup.
    pub fn gather(&self, x: &Tensor<B>, indices: &[usize]) -> Result<Tensor<B>, TensorError> {
        let [rows, cols] = x.shape() else {
            return Err(TensorError::Shape(format!(
                "gather needs a matrix, got {:?}",
                x.shape()
            )));
        };
        if let Some(bad) = indices.iter().find(|&&i| i >= *rows) {
            return Err(TensorError::Shape(format!(
                "row {bad} of a matrix with {rows} rows"
            )));
        }
        self.admit(&[indices.len(), *cols])?;
        let v = self.backend.gather_rows(&x.buf(), *cols, indices)?;
        self.derived(
            vec![indices.len(), *cols],
            v,
            Op::Gather(x.clone(), Arc::new(indices.to_vec())),
        )
    }

    /// Layer normalisation over the last axis, then `* gamma + beta` (both of the last axis's
    /// length).
    pub fn layer_norm(
        &self,
        x: &Tensor<B>,
        gamma: &Tensor<B>,
        beta: &Tensor<B>,
        eps: f32,
    ) -> Result<Tensor<B>, TensorError> {
        let mean = self.mean(x, -1)?;
        let centred = self.sub(x, &mean)?;
        let var = self.mean(&self.unary(Unary::Square, &centred)?, -1)?;
        let eps_t = self.full(&[1], eps)?;
        let std = self.unary(Unary::Sqrt, &self.add(&var, &eps_t)?)?;
        let normed = self.div(&centred, &std)?;
        self.add(&self.mul(&normed, gamma)?, beta)
    }

    /// Patches of `[n, c, h, w]` images: `[n, out_h * out_w, c * kh * kw]`.
    fn unfold(
        &self,
        x: &Tensor<B>,
        kh: usize,
        kw: usize,
        stride: usize,
        pad: usize,
    ) -> Result<(Tensor<B>, Window), TensorError> {
        let [n, c, h, w] = x.shape() else {
            return Err(TensorError::Shape(format!(
                "images must be [n, c, h, w], got {:?}",
                x.shape()
            )));
        };
        let win = Window {
            n: *n,
            c: *c,
            h: *h,
            w: *w,
            kh,
            kw,
            stride,
            pad,
        };
        if stride == 0 || kh == 0 || kw == 0 || h + 2 * pad < kh || w + 2 * pad < kw {
            return Err(TensorError::Shape(format!(
                "a {kh}x{kw} window with stride {stride} and padding {pad} does not fit {h}x{w} images"
            )));
        }
        let shape = vec![*n, win.out_h() * win.out_w(), c * kh * kw];
        self.admit(&[*n, win.out_h(), win.out_w(), *c, kh, kw])?;
        let v = self.backend.unfold(&x.buf(), win)?;
        Ok((self.derived(shape, v, Op::Unfold(x.clone(), win))?, win))
    }

    /// 2-D convolution of `x` `[n, c, h, w]` by `weight` `[o, c, kh, kw]` (+ `bias` `[o]`):
    /// `[n, o, out_h, out_w]`. Patches times the flattened kernels, one matmul.
    pub fn conv2d(
        &self,
        x: &Tensor<B>,
        weight: &Tensor<B>,
        bias: Option<&Tensor<B>>,
        stride: usize,
        pad: usize,
    ) -> Result<Tensor<B>, TensorError> {
        let [o, c, kh, kw] = weight.shape() else {
            return Err(TensorError::Shape(format!(
                "conv2d weight must be [o, c, kh, kw], got {:?}",
                weight.shape()
            )));
        };
        let (o, kh, kw) = (*o, *kh, *kw);
        if x.shape().get(1) != Some(c) {
            return Err(TensorError::Shape(format!(
                "conv2d of {:?} images by a {:?} kernel: channels differ",
                x.shape(),
                weight.shape()
            )));
        }
        let (cols, win) = self.unfold(x, kh, kw, stride, pad)?;
        let (n, pixels) = (win.n, win.out_h() * win.out_w());
        let flat = self.reshape(&cols, &[n * pixels, c * kh * kw])?;
        let kernels = self.transpose(&self.reshape(weight, &[o, c * kh * kw])?, 0, 1)?;
        let out = self.reshape(&self.matmul(&flat, &kernels)?, &[n, pixels, o])?;
        let out = self.reshape(
            &self.transpose(&out, 1, 2)?,
            &[n, o, win.out_h(), win.out_w()],
        )?;
        match bias {
            Some(b) => self.add(&out, &self.reshape(b, &[o, 1, 1])?),
            None => Ok(out),
        }
    }

    /// Max (or, with `average`, mean) pooling over `k x k` windows of `[n, c, h, w]` images.
    pub fn pool2d(
        &self,
        x: &Tensor<B>,
        k: usize,
        stride: usize,
        average: bool,
    ) -> Result<Tensor<B>, TensorError> {
        let [n, c, h, w] = x.shape() else {
            return Err(TensorError::Shape(format!(
                "images must be [n, c, h, w], got {:?}",
                x.shape()
            )));
        };
        let (n, c) = (*n, *c);
        let planes = self.reshape(x, &[n * c, 1, *h, *w])?;
        let (cols, win) = self.unfold(&planes, k, k, stride, 0)?;
        let pooled = if average {
            self.mean(&cols, -1)?
        } else {
            self.max(&cols, -1)?
        };
        self.reshape(&pooled, &[n, c, win.out_h(), win.out_w()])
    }

    pub fn relu(&self, x: &Tensor<B>) -> Result<Tensor<B>, TensorError> {
        self.unary(Unary::Relu, x)
    }

    /// `log(softmax(x))` along `axis`, stable (the max is subtracted first).
    pub fn log_softmax(&self, x: &Tensor<B>, axis: i64) -> Result<Tensor<B>, TensorError> {
        let m = self.detach(&self.max(x, axis)?)?;
        let shifted = self.sub(x, &m)?;
        let e = self.unary(Unary::Exp, &shifted)?;
        let lse = self.unary(Unary::Log, &self.sum(&e, axis)?)?;
        self.sub(&shifted, &lse)
    }

    pub fn softmax(&self, x: &Tensor<B>, axis: i64) -> Result<Tensor<B>, TensorError> {
        self.unary(Unary::Exp, &self.log_softmax(x, axis)?)
    }

    /// Mean cross-entropy of `logits` `[n, classes]` against one-hot (or soft) `targets` of the
    /// same shape.
    pub fn cross_entropy(
        &self,
        logits: &Tensor<B>,
        targets: &Tensor<B>,
    ) -> Result<Tensor<B>, TensorError> {
        if logits.shape().len() != 2 || targets.shape() != logits.shape() {
            return Err(TensorError::Shape(format!(
                "cross-entropy needs logits [n, classes] and targets of the same shape, got {:?} and {:?}",
                logits.shape(),
                targets.shape()
            )));
        }
        let lp = self.log_softmax(logits, -1)?;
        let per_row = self.sum(&self.mul(&lp, targets)?, -1)?;
        let n = logits.shape()[0] as f32;
        self.scale(&self.sum_all(&per_row)?, -1.0 / n)
    }

    /// Mean squared error.
    pub fn mse(&self, a: &Tensor<B>, b: &Tensor<B>) -> Result<Tensor<B>, TensorError> {
        let d = self.sub(a, b)?;
        let n = d.numel() as f32;
        self.scale(&self.sum_all(&self.unary(Unary::Square, &d)?)?, 1.0 / n)
    }

    /// The same values, cut from the tape: no gradient flows through it.
    pub fn detach(&self, x: &Tensor<B>) -> Result<Tensor<B>, TensorError> {
        self.node(x.shape().to_vec(), x.buf(), Op::Constant, false)
    }

    /// One-hot rows `[indices.len(), classes]`.
    pub fn one_hot(&self, indices: &[usize], classes: usize) -> Result<Tensor<B>, TensorError> {
        self.admit(&[indices.len(), classes])?;
        let mut data = vec![0.0; indices.len() * classes];
        for (row, &c) in indices.iter().enumerate() {
            if c >= classes {
                return Err(TensorError::Shape(format!(
                    "class {c} is out of range for {classes} classes"
                )));
            }
            data[row * classes + c] = 1.0;
        }
        self.tensor(&data, &[indices.len(), classes], false)
    }

    /// Sums `g` (of a broadcast result's shape) down to `shape`.
    fn reduce_to(&self, g: B::Buf, g_shape: &[usize], shape: &[usize]) -> DeviceResult<B::Buf> {
        if g_shape == shape {
            return Ok(g);
        }
        let pad = g_shape.len() - shape.len();
        let mut cur = g;
        let mut cur_shape = g_shape.to_vec();
        for axis in 0..g_shape.len() {
            let target = if axis < pad { 1 } else { shape[axis - pad] };
            if target == 1 && cur_shape[axis] != 1 {
                cur = self.backend.reduce(Reduce::Sum, &cur, &cur_shape, axis)?;
                cur_shape[axis] = 1;
            }
        }
        Ok(cur)
    }

    fn bin(
        &self,
        op: Binary,
        a: &B::Buf,
        sa: &[usize],
        b: &B::Buf,
        sb: &[usize],
    ) -> DeviceResult<B::Buf> {
        let out = broadcast(sa, sb).expect("shapes of a recorded op broadcast");
        self.backend.binary(op, a, sa, b, sb, &out)
    }

    /// Gradients of `loss` (a tensor of one element) with respect to every tensor it depends
    /// on that requires them.
    pub fn backward(&self, loss: &Tensor<B>) -> Result<Gradients<B>, TensorError> {
        if loss.numel() != 1 {
            return Err(TensorError::Shape(format!(
                "backward needs a scalar, got shape {:?}",
                loss.shape()
            )));
        }
        let order = topological(loss);
        let mut grads: HashMap<u64, (Vec<usize>, B::Buf)> = HashMap::new();
        grads.insert(
            loss.id(),
            (loss.shape().to_vec(), self.backend.full(1, 1.0)?),
        );
        for t in order.iter().rev() {
            let Some((_, g)) = grads.get(&t.id()).cloned() else {
                continue;
            };
            for (x, gx) in self.input_grads(t, g)? {
                self.accumulate(&mut grads, x, gx)?;
            }
        }
        let leaves: std::collections::HashSet<u64> = order
            .iter()
            .filter(|t| is_leaf(t))
            .map(|t| t.id())
            .collect();
        grads.retain(|id, _| leaves.contains(id));
        let bytes = grads.values().map(|(s, _)| numel(s) * 4).sum();
        let charge = self.account.charge(bytes)?;
        Ok(Gradients {
            grads,
            _charge: Arc::new(charge),
        })
    }

    /// Adds `gx` to the gradient held for `x` (if `x` needs one).
    fn accumulate(
        &self,
        grads: &mut HashMap<u64, (Vec<usize>, B::Buf)>,
        x: &Tensor<B>,
        gx: B::Buf,
    ) -> DeviceResult<()> {
        if !x.requires_grad() {
            return Ok(());
        }
        let (shape, sum) = match grads.remove(&x.id()) {
            Some((s, acc)) => {
                let sum = self.backend.binary(Binary::Add, &acc, &s, &gx, &s, &s)?;
                (s, sum)
            }
            None => (x.shape().to_vec(), gx),
        };
        grads.insert(x.id(), (shape, sum));
        Ok(())
    }

    /// The gradients of `t`'s inputs, given `g`, the gradient of `t`.
    fn input_grads<'t>(
        &self,
        t: &'t Tensor<B>,
        g: B::Buf,
    ) -> DeviceResult<Vec<(&'t Tensor<B>, B::Buf)>> {
        let (b, shape) = (&*self.backend, t.shape());
        Ok(match &t.0.op {
            Op::Leaf | Op::Constant => vec![],
            Op::Unary(op, x) => match self.unary_local(*op, x, t)? {
                Some(local) => vec![(x, b.binary(Binary::Mul, &g, shape, &local, shape, shape)?)],
                None => vec![],
            },
            Op::Affine(x, alpha) => vec![(x, b.affine(&g, *alpha, 0.0)?)],
            Op::Binary(op, x, y) => self.binary_grads(*op, t, x, y, g)?,
            Op::MatMul(x, y) => {
                let (sx, sy) = (x.shape(), y.shape());
                let (m, k, n) = (sx[sx.len() - 2], sx[sx.len() - 1], sy[sy.len() - 1]);
                let batch = numel(&sx[..sx.len() - 2]);
                // dX = G Yᵀ, dY = Xᵀ G
                vec![
                    (x, b.matmul(&g, &y.buf(), batch, m, n, k, false, true)?),
                    (y, b.matmul(&x.buf(), &g, batch, k, m, n, true, false)?),
                ]
            }
            Op::Reduce(op, x) => vec![(x, self.reduce_grad(*op, t, x, g)?)],
            Op::Reshape(x) => vec![(x, g)],
            Op::Transpose(x, a0, a1) => vec![(x, b.transpose(&g, shape, *a0, *a1)?)],
            Op::Slice(x, axis, start) => {
                vec![(x, b.pad(&g, shape, *axis, *start, x.shape()[*axis])?)]
            }
            Op::Pad(x, axis, start) => {
                vec![(x, b.slice(&g, shape, *axis, *start, x.shape()[*axis])?)]
            }
            Op::Unfold(x, win) => vec![(x, b.fold(&g, *win)?)],
            Op::Gather(x, indices) => {
                let (rows, cols) = (x.shape()[0], x.shape()[1]);
                vec![(x, b.scatter_add_rows(&g, rows, cols, indices)?)]
            }
        })
    }

    /// d y / d x of `y = op(x)`, element-wise (None where no gradient flows).
    fn unary_local(&self, op: Unary, x: &Tensor<B>, y: &Tensor<B>) -> DeviceResult<Option<B::Buf>> {
        let (b, shape) = (&*self.backend, y.shape());
        let (xv, yv) = (x.buf(), y.buf());
        Ok(Some(match op {
            Unary::Neg => b.full(x.numel(), -1.0)?,
            Unary::Relu => b.unary(Unary::Step, &xv)?,
            Unary::Gelu => b.unary(Unary::GeluGrad, &xv)?,
            Unary::Tanh => b.affine(&b.unary(Unary::Square, &yv)?, -1.0, 1.0)?,
            Unary::Sigmoid => {
                let one_minus = b.affine(&yv, -1.0, 1.0)?;
                b.binary(Binary::Mul, &yv, shape, &one_minus, shape, shape)?
            }
            Unary::Exp => yv,
            Unary::Log => b.unary(Unary::Recip, &xv)?,
            Unary::Recip => b.affine(&b.unary(Unary::Square, &yv)?, -1.0, 0.0)?,
            Unary::Sqrt => b.affine(&b.unary(Unary::Recip, &yv)?, 0.5, 0.0)?,
            Unary::Square => b.affine(&xv, 2.0, 0.0)?,
            Unary::Step | Unary::GeluGrad => return Ok(None),
        }))
    }

    /// The gradients of `x` and `y` for `t = x op y`, summed down to their own shapes.
    fn binary_grads<'t>(
        &self,
        op: Binary,
        t: &Tensor<B>,
        x: &'t Tensor<B>,
        y: &'t Tensor<B>,
        g: B::Buf,
    ) -> DeviceResult<Vec<(&'t Tensor<B>, B::Buf)>> {
        let (b, shape) = (&*self.backend, t.shape());
        let (sx, sy) = (x.shape(), y.shape());
        let (xv, yv) = (x.buf(), y.buf());
        let (gx, gy) = match op {
            Binary::Add => (g.clone(), g),
            Binary::Sub => (g.clone(), b.affine(&g, -1.0, 0.0)?),
            Binary::Mul => (
                self.bin(Binary::Mul, &g, shape, &yv, sy)?,
                self.bin(Binary::Mul, &g, shape, &xv, sx)?,
            ),
            Binary::Div => {
                let gx = self.bin(Binary::Div, &g, shape, &yv, sy)?;
                // d(x/y)/dy = -x / y² = -(x/y) / y
                let gq = b.binary(Binary::Mul, &g, shape, &t.buf(), shape, shape)?;
                let gy = b.affine(&self.bin(Binary::Div, &gq, shape, &yv, sy)?, -1.0, 0.0)?;
                (gx, gy)
            }
            Binary::Eq => return Ok(vec![]),
        };
        Ok(vec![
            (x, self.reduce_to(gx, shape, sx)?),
            (y, self.reduce_to(gy, shape, sy)?),
        ])
    }

    /// The gradient of `x` for `t = reduce(op, x)`: `g` spread back along the reduced axis
    /// (for a max, to the maxima only; ties share it).
    fn reduce_grad(
        &self,
        op: Reduce,
        t: &Tensor<B>,
        x: &Tensor<B>,
        g: B::Buf,
    ) -> DeviceResult<B::Buf> {
        let (b, shape, sx) = (&*self.backend, t.shape(), x.shape());
        let spread = self.bin(Binary::Add, &b.full(x.numel(), 0.0)?, sx, &g, shape)?;
        match op {
            Reduce::Sum => Ok(spread),
            Reduce::Max => {
                let mask = self.bin(Binary::Eq, &x.buf(), sx, &t.buf(), shape)?;
                b.binary(Binary::Mul, &spread, sx, &mask, sx, sx)
            }
        }
    }

    /// Overwrites a parameter's values (what optimizers do), keeping its identity.
    pub(crate) fn set(&self, t: &Tensor<B>, value: B::Buf) {
        *t.0.value.write().unwrap() = value;
    }

    pub(crate) fn value(&self, t: &Tensor<B>) -> B::Buf {
        t.buf()
    }
}

/// The tensors `loss` depends on that require gradients, every one after its inputs
/// (an iterative depth-first walk: tapes get deep).
fn topological<B: Backend>(loss: &Tensor<B>) -> Vec<Tensor<B>> {
    let mut order: Vec<Tensor<B>> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![(loss.clone(), false)];
    while let Some((t, expanded)) = stack.pop() {
        if expanded {
            order.push(t);
            continue;
        }
        if !t.requires_grad() || !seen.insert(t.id()) {
            continue;
        }
        stack.push((t.clone(), true));
        for input in inputs(&t.0.op) {
            stack.push((input.clone(), false));
        }
    }
    order
}

fn is_leaf<B: Backend>(t: &Tensor<B>) -> bool {
    matches!(t.0.op, Op::Leaf)
}

fn inputs<B: Backend>(op: &Op<B>) -> Vec<&Tensor<B>> {
    match op {
        Op::Leaf | Op::Constant => vec![],
        Op::Unary(_, x) | Op::Affine(x, _) | Op::Reduce(_, x) | Op::Reshape(x) => vec![x],
        Op::Transpose(x, ..)
        | Op::Slice(x, ..)
        | Op::Pad(x, ..)
        | Op::Gather(x, _)
        | Op::Unfold(x, _) => vec![x],
        Op::Binary(_, a, b) | Op::MatMul(a, b) => vec![a, b],
    }
}
