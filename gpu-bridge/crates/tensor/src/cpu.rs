//! The CPU backend: matmul on the `gemm` crate (the fastest measured here, see
//! `shared/toolchain/gpu.md`), the rest as plain loops the compiler vectorises.

use crate::backend::{Backend, Binary, DeviceResult, Reduce, Unary, Window};
use crate::shape::{broadcast_strides, numel, strides};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu;

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_C: f32 = 0.044_715;

fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + GELU_C * x * x * x)).tanh())
}

fn gelu_grad(x: f32) -> f32 {
    let u = SQRT_2_OVER_PI * (x + GELU_C * x * x * x);
    let t = u.tanh();
    let du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * x * x);
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du
}

fn apply_binary(op: Binary, a: f32, b: f32) -> f32 {
    match op {
        Binary::Add => a + b,
        Binary::Sub => a - b,
        Binary::Mul => a * b,
        Binary::Div => a / b,
        Binary::Eq => f32::from(u8::from(a == b)),
    }
}

impl Backend for Cpu {
    type Buf = Arc<Vec<f32>>;

    fn name(&self) -> &'static str {
        "cpu"
    }

    fn upload(&self, data: &[f32]) -> DeviceResult<Self::Buf> {
        Ok(Arc::new(data.to_vec()))
    }

    fn download(&self, buf: &Self::Buf) -> DeviceResult<Vec<f32>> {
        Ok(buf.as_ref().clone())
    }

    fn full(&self, len: usize, value: f32) -> DeviceResult<Self::Buf> {
        Ok(Arc::new(vec![value; len]))
    }

    fn unary(&self, op: Unary, x: &Self::Buf) -> DeviceResult<Self::Buf> {
        let f: fn(f32) -> f32 = match op {
            Unary::Neg => |v| -v,
            Unary::Relu => |v| v.max(0.0),
            Unary::Step => |v| f32::from(u8::from(v > 0.0)),
            Unary::Gelu => gelu,
            Unary::GeluGrad => gelu_grad,
            Unary::Tanh => f32::tanh,
            Unary::Sigmoid => |v| 1.0 / (1.0 + (-v).exp()),
            Unary::Exp => f32::exp,
            Unary::Log => f32::ln,
            Unary::Recip => |v| 1.0 / v,
            Unary::Sqrt => f32::sqrt,
            Unary::Square => |v| v * v,
        };
        Ok(Arc::new(x.iter().map(|&v| f(v)).collect()))
    }

    fn binary(
        &self,
        op: Binary,
        a: &Self::Buf,
        a_shape: &[usize],
        b: &Self::Buf,
        b_shape: &[usize],
        out_shape: &[usize],
    ) -> DeviceResult<Self::Buf> {
        if a_shape == b_shape {
            return Ok(Arc::new(
                a.iter()
                    .zip(b.iter())
                    .map(|(&x, &y)| apply_binary(op, x, y))
                    .collect(),
            ));
        }
        let n = numel(out_shape);
        if b.len() == 1 {
            let y = b[0];
            return Ok(Arc::new(
                a.iter().map(|&x| apply_binary(op, x, y)).collect(),
            ));
        }
        let (sa, sb) = (
            broadcast_strides(a_shape, out_shape),
            broadcast_strides(b_shape, out_shape),
        );
        let mut out = Vec::with_capacity(n);
        let mut index = vec![0usize; out_shape.len()];
        let (mut ia, mut ib) = (0usize, 0usize);
        for _ in 0..n {
            out.push(apply_binary(op, a[ia], b[ib]));
            // Advance the multi-index like an odometer, keeping both offsets in step.
            for d in (0..out_shape.len()).rev() {
                index[d] += 1;
                ia += sa[d];
                ib += sb[d];
                if index[d] < out_shape[d] {
                    break;
                }
                ia -= sa[d] * out_shape[d];
                ib -= sb[d] * out_shape[d];
                index[d] = 0;
            }
        }
        Ok(Arc::new(out))
    }

    fn affine(&self, x: &Self::Buf, alpha: f32, beta: f32) -> DeviceResult<Self::Buf> {
        Ok(Arc::new(x.iter().map(|&v| v * alpha + beta).collect()))
    }

    fn matmul(
        &self,
        a: &Self::Buf,
        b: &Self::Buf,
        batch: usize,
        m: usize,
        k: usize,
        n: usize,
        trans_a: bool,
        trans_b: bool,
    ) -> DeviceResult<Self::Buf> {
        let mut out = vec![0.0f32; batch * m * n];
        let (a_cs, a_rs) = if trans_a { (m, 1) } else { (1, k) };
        let (b_cs, b_rs) = if trans_b { (k, 1) } else { (1, n) };
        let parallelism = if m * n * k >= 1 << 18 {
            gemm::Parallelism::Rayon(0)
        } else {
            gemm::Parallelism::None
        };
        for i in 0..batch {
            // SAFETY: every pointer spans its whole matrix (lengths checked by the engine's
            // shape rules), strides describe row-major storage, and `out` is not aliased.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    out.as_mut_ptr().add(i * m * n),
                    1,
                    n as isize,
                    false,
                    a.as_ptr().add(i * m * k),
                    a_cs as isize,
                    a_rs as isize,
                    b.as_ptr().add(i * k * n),
                    b_cs as isize,
                    b_rs as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    parallelism,
                );
            }
        }
        Ok(Arc::new(out))
    }

    fn reduce(
        &self,
        op: Reduce,
        x: &Self::Buf,
        shape: &[usize],
        axis: usize,
    ) -> DeviceResult<Self::Buf> {
        let outer: usize = shape[..axis].iter().product();
        let len = shape[axis];
        let inner: usize = shape[axis + 1..].iter().product();
        let mut out = vec![
            match op {
                Reduce::Sum => 0.0,
                Reduce::Max => f32::NEG_INFINITY,
            };
            outer * inner
        ];
        for o in 0..outer {
            for l in 0..len {
                let row = &x[(o * len + l) * inner..][..inner];
                let acc = &mut out[o * inner..][..inner];
                match op {
                    Reduce::Sum => acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v),
                    Reduce::Max => acc.iter_mut().zip(row).for_each(|(a, &v)| *a = a.max(v)),
                }
            }
        }
        Ok(Arc::new(out))
    }

    fn transpose(
        &self,
        x: &Self::Buf,
        shape: &[usize],
        a0: usize,
        a1: usize,
    ) -> DeviceResult<Self::Buf> {
        let mut out_shape = shape.to_vec();
        out_shape.swap(a0, a1);
        let mut src = strides(shape);
        src.swap(a0, a1);
        let n = numel(shape);
        let mut out = Vec::with_capacity(n);
        let mut index = vec![0usize; shape.len()];
        let mut offset = 0usize;
        for _ in 0..n {
            out.push(x[offset]);
            for d in (0..out_shape.len()).rev() {
                index[d] += 1;
                offset += src[d];
                if index[d] < out_shape[d] {
                    break;
                }
                offset -= src[d] * out_shape[d];
                index[d] = 0;
            }
        }
        Ok(Arc::new(out))
    }

    fn slice(
        &self,
        x: &Self::Buf,
        shape: &[usize],
        axis: usize,
        start: usize,
        len: usize,
    ) -> DeviceResult<Self::Buf> {
        let outer: usize = shape[..axis].iter().product();
        let inner: usize = shape[axis + 1..].iter().product();
        let mut out = Vec::with_capacity(outer * len * inner);
        for o in 0..outer {
            let from = (o * shape[axis] + start) * inner;
            out.extend_from_slice(&x[from..from + len * inner]);
        }
        Ok(Arc::new(out))
    }

    fn pad(
        &self,
        x: &Self::Buf,
        shape: &[usize],
        axis: usize,
        start: usize,
        total: usize,
    ) -> DeviceResult<Self::Buf> {
        let outer: usize = shape[..axis].iter().product();
        let inner: usize = shape[axis + 1..].iter().product();
        let len = shape[axis];
        let mut out = vec![0.0; outer * total * inner];
        for o in 0..outer {
            let to = (o * total + start) * inner;
            out[to..to + len * inner].copy_from_slice(&x[o * len * inner..(o + 1) * len * inner]);
        }
        Ok(Arc::new(out))
    }

    fn gather_rows(
        &self,
        x: &Self::Buf,
        cols: usize,
        indices: &[usize],
    ) -> DeviceResult<Self::Buf> {
        let mut out = Vec::with_capacity(indices.len() * cols);
        for &i in indices {
            out.extend_from_slice(&x[i * cols..(i + 1) * cols]);
        }
        Ok(Arc::new(out))
    }

    fn scatter_add_rows(
        &self,
        g: &Self::Buf,
        rows: usize,
        cols: usize,
        indices: &[usize],
    ) -> DeviceResult<Self::Buf> {
        let mut out = vec![0.0; rows * cols];
        for (r, &i) in indices.iter().enumerate() {
            out[i * cols..(i + 1) * cols]
                .iter_mut()
                .zip(&g[r * cols..(r + 1) * cols])
                .for_each(|(o, v)| *o += v);
        }
        Ok(Arc::new(out))
    }

    fn unfold(&self, x: &Self::Buf, win: Window) -> DeviceResult<Self::Buf> {
        let (oh, ow) = (win.out_h(), win.out_w());
        let patch = win.c * win.kh * win.kw;
        let mut out = vec![0.0; win.n * oh * ow * patch];
        for_each_tap(win, |dst, src| out[dst] = x[src]);
        Ok(Arc::new(out))
    }

    fn fold(&self, cols: &Self::Buf, win: Window) -> DeviceResult<Self::Buf> {
        let mut out = vec![0.0; win.n * win.c * win.h * win.w];
        for_each_tap(win, |dst, src| out[src] += cols[dst]);
        Ok(Arc::new(out))
    }
}

/// Calls `f(patch_index, image_index)` for every window tap that falls inside the image.
fn for_each_tap(win: Window, mut f: impl FnMut(usize, usize)) {
    let (oh, ow) = (win.out_h(), win.out_w());
    let patch = win.c * win.kh * win.kw;
    for n in 0..win.n {
        for oy in 0..oh {
            for ox in 0..ow {
                let row = (n * oh + oy) * ow + ox;
                for c in 0..win.c {
                    for ky in 0..win.kh {
                        let y = (oy * win.stride + ky) as isize - win.pad as isize;
                        if y < 0 || y >= win.h as isize {
                            continue;
                        }
                        for kx in 0..win.kw {
                            let x = (ox * win.stride + kx) as isize - win.pad as isize;
                            if x < 0 || x >= win.w as isize {
                                continue;
                            }
                            let dst = row * patch + (c * win.kh + ky) * win.kw + kx;
                            let src = ((n * win.c + c) * win.h + y as usize) * win.w + x as usize;
                            f(dst, src);
                        }
                    }
                }
            }
        }
    }
}
