//! The primitive op set a device must provide. Everything else (softmax, losses, gradients,
//! optimizers) is composed from these in [`crate::Engine`], so a new backend (wgpu, CUDA)
//! implements this trait and nothing more.
//!
//! Every op returns a [`DeviceResult`]: a device that cannot allocate or run something says so
//! to its caller (and so to the component that asked), never by panicking the host.

/// Element-wise functions of one tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unary {
    Neg,
    Relu,
    /// 1 where x > 0, else 0 (ReLU's derivative).
    Step,
    /// GELU, tanh approximation.
    Gelu,
    /// d GELU / dx, same approximation.
    GeluGrad,
    Tanh,
    Sigmoid,
    Exp,
    Log,
    Recip,
    Sqrt,
    Square,
}

/// Element-wise functions of two tensors, broadcasting NumPy-style.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    /// 1 where a == b, else 0.
    Eq,
}

/// Reductions along one axis (kept, with length 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduce {
    Sum,
    Max,
}

/// The geometry of a 2-D sliding window over `[n, c, h, w]` images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
}

impl Window {
    pub fn out_h(&self) -> usize {
        (self.h + 2 * self.pad - self.kh) / self.stride + 1
    }
    pub fn out_w(&self) -> usize {
        (self.w + 2 * self.pad - self.kw) / self.stride + 1
    }
}

/// Why a device could not do what was asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// An allocation the device refused: its memory is taken (by this process or others).
    #[error("the device is out of memory: {0}")]
    OutOfMemory(String),
    /// Any other failure: a copy, a kernel launch, a lost device.
    #[error("the device failed: {0}")]
    Failed(String),
}

/// What a device op gives: its result, or why the device could not.
pub type DeviceResult<T> = Result<T, DeviceError>;

/// A device: buffers of f32 and the primitive ops on them. Shapes are row-major.
pub trait Backend: Send + Sync + 'static {
    /// A buffer on the device.
    type Buf: Clone + Send + Sync + 'static;

    /// `cpu`, `wgpu`, `cuda`.
    fn name(&self) -> &'static str;
    /// The most elements one buffer may hold on this device.
    fn max_elements(&self) -> usize {
        usize::MAX / 4
    }
    fn upload(&self, data: &[f32]) -> DeviceResult<Self::Buf>;
    fn download(&self, buf: &Self::Buf) -> DeviceResult<Vec<f32>>;
    fn full(&self, len: usize, value: f32) -> DeviceResult<Self::Buf>;
    fn unary(&self, op: Unary, x: &Self::Buf) -> DeviceResult<Self::Buf>;
    /// `out_shape` is the broadcast of `a_shape` and `b_shape`.
    fn binary(
        &self,
        op: Binary,
        a: &Self::Buf,
        a_shape: &[usize],
        b: &Self::Buf,
        b_shape: &[usize],
        out_shape: &[usize],
    ) -> DeviceResult<Self::Buf>;
    /// `x * alpha + beta`.
    fn affine(&self, x: &Self::Buf, alpha: f32, beta: f32) -> DeviceResult<Self::Buf>;
    /// `batch` products of `[m, k] x [k, n]`; `trans_a` means `a` holds `[k, m]`, `trans_b`
    /// that `b` holds `[n, k]`.
    #[allow(clippy::too_many_arguments)]
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
    ) -> DeviceResult<Self::Buf>;
    fn reduce(
        &self,
        op: Reduce,
        x: &Self::Buf,
        shape: &[usize],
        axis: usize,
    ) -> DeviceResult<Self::Buf>;
    /// Swaps axes `a0` and `a1` (a copy).
    fn transpose(
        &self,
        x: &Self::Buf,
        shape: &[usize],
        a0: usize,
        a1: usize,
    ) -> DeviceResult<Self::Buf>;
    /// Elements `start..start + len` along `axis`.
    fn slice(
        &self,
        x: &Self::Buf,
        shape: &[usize],
        axis: usize,
        start: usize,
        len: usize,
    ) -> DeviceResult<Self::Buf>;
    /// `x` placed at `start` along `axis` in zeros that are `total` long there (the inverse of
    /// `slice`, for its gradient and for concatenation).
    fn pad(
        &self,
        x: &Self::Buf,
        shape: &[usize],
        axis: usize,
        start: usize,
        total: usize,
    ) -> DeviceResult<Self::Buf>;
    /// Rows `indices` of a `[rows, cols]` matrix.
    fn gather_rows(&self, x: &Self::Buf, cols: usize, indices: &[usize])
        -> DeviceResult<Self::Buf>;
    /// A `[rows, cols]` matrix of zeros with row `i` of `g` added to row `indices[i]` (the
    /// gradient of `gather_rows`).
    fn scatter_add_rows(
        &self,
        g: &Self::Buf,
        rows: usize,
        cols: usize,
        indices: &[usize],
    ) -> DeviceResult<Self::Buf>;
    /// Image patches (im2col): `[n, c, h, w]` → `[n, out_h * out_w, c * kh * kw]`, zeros
    /// outside the image. Convolution and pooling are built on it.
    fn unfold(&self, x: &Self::Buf, win: Window) -> DeviceResult<Self::Buf>;
    /// The adjoint of `unfold` (col2im): patches summed back into `[n, c, h, w]`.
    fn fold(&self, cols: &Self::Buf, win: Window) -> DeviceResult<Self::Buf>;
}
