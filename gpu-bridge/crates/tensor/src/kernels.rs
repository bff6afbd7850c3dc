//! GPU backends as kernels over a table of `u32` parameters. A device (wgpu, CUDA) compiles
//! the same eleven kernels in its own language and runs one given its parameters; turning each
//! primitive into a kernel and its parameters (broadcast strides, matmul strides, window
//! geometry) is written once, here, for every such device.

use crate::backend::{Backend, Binary, DeviceResult, Reduce, Unary, Window};
use crate::shape::{broadcast_strides, strides};

/// The kernels every GPU backend provides, each one thread per output element. Their
/// parameters (`p`), by kernel:
/// - `Unary`: n, op (see [`unary_code`])
/// - `Binary`: n, op (add, sub, mul, div, eq), rank, out_shape, a_strides, b_strides
/// - `Affine`: n, alpha bits, beta bits
/// - `MatMul`: batch, m, k, n, a_cs, a_rs, b_cs, b_rs
/// - `Reduce`: outer, len, inner, op (0 sum, 1 max)
/// - `StridedRead`: n, rank, src_base, shape, src_strides
/// - `StridedWrite` (into zeros): n, rank, dst_base, shape, dst_strides
/// - `Gather`: n_out, cols, indices...
/// - `ScatterAdd`: rows * cols, cols, n_indices, indices...
/// - `Unfold`, `Fold`: total, n, c, h, w, kh, kw, stride, pad, oh, ow
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    Unary,
    Binary,
    Affine,
    MatMul,
    Reduce,
    StridedRead,
    StridedWrite,
    Gather,
    ScatterAdd,
    Unfold,
    Fold,
}

/// A device running [`Kernel`]s; it is a [`Backend`] through the impl below.
pub trait KernelDevice: Send + Sync + 'static {
    type Buf: Clone + Send + Sync + 'static;

    fn name(&self) -> &'static str;
    fn max_elements(&self) -> usize;
    /// Elements in `buf`.
    fn len(&self, buf: &Self::Buf) -> usize;
    fn upload(&self, data: &[f32]) -> DeviceResult<Self::Buf>;
    fn download(&self, buf: &Self::Buf) -> DeviceResult<Vec<f32>>;
    /// Runs `kernel` over `threads` threads with `params`, reading `a` (and `b`), into a fresh
    /// zeroed buffer of `out_len` elements.
    fn run(
        &self,
        kernel: Kernel,
        params: &[u32],
        a: &Self::Buf,
        b: Option<&Self::Buf>,
        out_len: usize,
        threads: usize,
    ) -> DeviceResult<Self::Buf>;
    /// The vendor's matmul (cuBLAS), where the device has one; None runs the `MatMul` kernel.
    #[allow(clippy::too_many_arguments)]
    fn vendor_matmul(
        &self,
        _a: &Self::Buf,
        _b: &Self::Buf,
        _batch: usize,
        _m: usize,
        _k: usize,
        _n: usize,
        _trans_a: bool,
        _trans_b: bool,
    ) -> DeviceResult<Option<Self::Buf>> {
        Ok(None)
    }
}

/// The `Unary` kernel's op codes.
pub fn unary_code(op: Unary) -> u32 {
    match op {
        Unary::Neg => 0,
        Unary::Relu => 1,
        Unary::Step => 2,
        Unary::Gelu => 3,
        Unary::GeluGrad => 4,
        Unary::Tanh => 5,
        Unary::Sigmoid => 6,
        Unary::Exp => 7,
        Unary::Log => 8,
        Unary::Recip => 9,
        Unary::Sqrt => 10,
        Unary::Square => 11,
    }
}

fn u32s(v: &[usize]) -> impl Iterator<Item = u32> + '_ {
    v.iter().map(|&x| x as u32)
}

fn window_params(total: usize, w: Window) -> Vec<u32> {
    let values = [
        total,
        w.n,
        w.c,
        w.h,
        w.w,
        w.kh,
        w.kw,
        w.stride,
        w.pad,
        w.out_h(),
        w.out_w(),
    ];
    u32s(&values).collect()
}

fn strided_read<D: KernelDevice>(
    d: &D,
    x: &D::Buf,
    out_shape: &[usize],
    src_strides: &[usize],
    base: usize,
) -> DeviceResult<D::Buf> {
    let n: usize = out_shape.iter().product();
    let mut p = vec![n as u32, out_shape.len() as u32, base as u32];
    p.extend(u32s(out_shape));
    p.extend(u32s(src_strides));
    d.run(Kernel::StridedRead, &p, x, None, n, n)
}

impl<D: KernelDevice> Backend for D {
    type Buf = D::Buf;

    fn name(&self) -> &'static str {
        KernelDevice::name(self)
    }

    fn max_elements(&self) -> usize {
        KernelDevice::max_elements(self)
    }

    fn upload(&self, data: &[f32]) -> DeviceResult<D::Buf> {
        KernelDevice::upload(self, data)
    }

    fn download(&self, buf: &D::Buf) -> DeviceResult<Vec<f32>> {
        KernelDevice::download(self, buf)
    }

    fn full(&self, len: usize, value: f32) -> DeviceResult<D::Buf> {
        KernelDevice::upload(self, &vec![value; len])
    }

    fn unary(&self, op: Unary, x: &D::Buf) -> DeviceResult<D::Buf> {
        let n = self.len(x);
        self.run(Kernel::Unary, &[n as u32, unary_code(op)], x, None, n, n)
    }

    fn binary(
        &self,
        op: Binary,
        a: &D::Buf,
        a_shape: &[usize],
        b: &D::Buf,
        b_shape: &[usize],
        out_shape: &[usize],
    ) -> DeviceResult<D::Buf> {
        let n: usize = out_shape.iter().product();
        let code = match op {
            Binary::Add => 0,
            Binary::Sub => 1,
            Binary::Mul => 2,
            Binary::Div => 3,
            Binary::Eq => 4,
        };
        let mut p = vec![n as u32, code, out_shape.len() as u32];
        p.extend(u32s(out_shape));
        p.extend(u32s(&broadcast_strides(a_shape, out_shape)));
        p.extend(u32s(&broadcast_strides(b_shape, out_shape)));
        self.run(Kernel::Binary, &p, a, Some(b), n, n)
    }

    fn affine(&self, x: &D::Buf, alpha: f32, beta: f32) -> DeviceResult<D::Buf> {
        let n = self.len(x);
        let p = [n as u32, alpha.to_bits(), beta.to_bits()];
        self.run(Kernel::Affine, &p, x, None, n, n)
    }

    fn matmul(
        &self,
        a: &D::Buf,
        b: &D::Buf,
        batch: usize,
        m: usize,
        k: usize,
        n: usize,
        trans_a: bool,
        trans_b: bool,
    ) -> DeviceResult<D::Buf> {
        if let Some(c) = self.vendor_matmul(a, b, batch, m, k, n, trans_a, trans_b)? {
            return Ok(c);
        }
        let (a_cs, a_rs) = if trans_a { (m, 1) } else { (1, k) };
        let (b_cs, b_rs) = if trans_b { (k, 1) } else { (1, n) };
        let p: Vec<u32> = u32s(&[batch, m, k, n, a_cs, a_rs, b_cs, b_rs]).collect();
        self.run(Kernel::MatMul, &p, a, Some(b), batch * m * n, batch * m * n)
    }

    fn reduce(&self, op: Reduce, x: &D::Buf, shape: &[usize], axis: usize) -> DeviceResult<D::Buf> {
        let outer: usize = shape[..axis].iter().product();
        let inner: usize = shape[axis + 1..].iter().product();
        let code = match op {
            Reduce::Sum => 0,
            Reduce::Max => 1,
        };
        let p: Vec<u32> = u32s(&[outer, shape[axis], inner, code]).collect();
        self.run(Kernel::Reduce, &p, x, None, outer * inner, outer * inner)
    }

    fn transpose(&self, x: &D::Buf, shape: &[usize], a0: usize, a1: usize) -> DeviceResult<D::Buf> {
        let mut out_shape = shape.to_vec();
        out_shape.swap(a0, a1);
        let mut src = strides(shape);
        src.swap(a0, a1);
        strided_read(self, x, &out_shape, &src, 0)
    }

    fn slice(
        &self,
        x: &D::Buf,
        shape: &[usize],
        axis: usize,
        start: usize,
        len: usize,
    ) -> DeviceResult<D::Buf> {
        let src = strides(shape);
        let mut out_shape = shape.to_vec();
        out_shape[axis] = len;
        strided_read(self, x, &out_shape, &src, start * src[axis])
    }

    fn pad(
        &self,
        x: &D::Buf,
        shape: &[usize],
        axis: usize,
        start: usize,
        total: usize,
    ) -> DeviceResult<D::Buf> {
        let mut out_shape = shape.to_vec();
        out_shape[axis] = total;
        let dst = strides(&out_shape);
        let n: usize = shape.iter().product();
        let mut p = vec![n as u32, shape.len() as u32, (start * dst[axis]) as u32];
        p.extend(u32s(shape));
        p.extend(u32s(&dst));
        let out_len = out_shape.iter().product();
        self.run(Kernel::StridedWrite, &p, x, None, out_len, n)
    }

    fn gather_rows(&self, x: &D::Buf, cols: usize, indices: &[usize]) -> DeviceResult<D::Buf> {
        let n = indices.len() * cols;
        let mut p = vec![n as u32, cols as u32];
        p.extend(u32s(indices));
        self.run(Kernel::Gather, &p, x, None, n, n)
    }

    fn scatter_add_rows(
        &self,
        g: &D::Buf,
        rows: usize,
        cols: usize,
        indices: &[usize],
    ) -> DeviceResult<D::Buf> {
        let n = rows * cols;
        let mut p = vec![n as u32, cols as u32, indices.len() as u32];
        p.extend(u32s(indices));
        self.run(Kernel::ScatterAdd, &p, g, None, n, n)
    }

    fn unfold(&self, x: &D::Buf, win: Window) -> DeviceResult<D::Buf> {
        let total = win.n * win.out_h() * win.out_w() * win.c * win.kh * win.kw;
        self.run(
            Kernel::Unfold,
            &window_params(total, win),
            x,
            None,
            total,
            total,
        )
    }

    fn fold(&self, cols: &D::Buf, win: Window) -> DeviceResult<D::Buf> {
        let total = win.n * win.c * win.h * win.w;
        self.run(
            Kernel::Fold,
            &window_params(total, win),
            cols,
            None,
            total,
            total,
        )
    }
}
