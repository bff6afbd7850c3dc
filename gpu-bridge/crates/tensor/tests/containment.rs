//! What a component, through the engine, must not be able to do to the host: overflow its
//! stack with a deep tape, hold host memory its quota does not see, or crash it through a
//! device that fails.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use weft_tensor::backend::Window;
use weft_tensor::optim::Sgd;
use weft_tensor::{
    Backend, Binary, Cpu, DeviceError, DeviceResult, Engine, Reduce, TensorError, Unary,
};

/// A tape a million ops deep, the way a guest builds one: only the last handle kept.
fn chain<B: Backend>(e: &Engine<B>, ops: usize) -> weft_tensor::Tensor<B> {
    let shared = e.tensor(&[1.0], &[1], true).unwrap();
    let mut t = shared.clone();
    for i in 0..ops {
        // Mostly a plain chain; now and then an input shared by many nodes, which must
        // outlive every one of them.
        t = if i % 1000 == 0 {
            e.add(&t, &shared).unwrap()
        } else {
            e.scale(&t, 1.0).unwrap()
        };
    }
    t
}

#[test]
fn a_tape_a_million_ops_deep_drops_on_a_small_stack() {
    // Dropping a tape took it apart recursively, a few frames per op: a million ops deep it
    // overflowed any thread's stack, here a 256 KiB one.
    let small_stack = std::thread::Builder::new().stack_size(256 << 10);
    let done = small_stack
        .spawn(|| {
            let e = Engine::new(Cpu, usize::MAX);
            let t = chain(&e, 1_000_000);
            assert!(e.used_bytes() > 0);
            drop(t);
            // Every node given back, the shared one included.
            e.used_bytes()
        })
        .unwrap()
        .join()
        .expect("the thread dropping the tape did not overflow its stack");
    assert_eq!(done, 0);
}

#[test]
fn a_million_tiny_tensors_do_not_fit_in_a_quota_their_values_would() {
    // A million one-element tensors hold 4 MB of values but far more host memory in their
    // nodes; 8 MiB must not hold them.
    let e = Engine::new(Cpu, 8 << 20);
    let x = e.tensor(&[1.0], &[1], true).unwrap();
    let mut held = Vec::new();
    let err = loop {
        match e.scale(&x, 1.0) {
            Ok(t) => held.push(t),
            Err(err) => break err,
        }
        assert!(
            held.len() < 1_000_000,
            "a million tensors held in 8 MiB: their bookkeeping is not charged"
        );
    };
    assert!(matches!(err, TensorError::Quota { .. }), "{err}");
    assert!(err.to_string().contains("device memory quota exceeded"));
    assert!(held.len() < 100_000, "{} tensors", held.len());
    drop(held);
    drop(x);
    assert_eq!(e.used_bytes(), 0);
}

#[test]
fn shapes_and_gather_indices_are_charged_as_well_as_values() {
    let e = Engine::new(Cpu, 1 << 30);
    let word = std::mem::size_of::<usize>();
    // One element with ten thousand dimensions: the shape is what costs.
    let tall = e.full(&[1; 10_000], 0.0).unwrap();
    assert!(e.used_bytes() >= 10_000 * word, "{}", e.used_bytes());
    drop(tall);
    // A gather that needs its indices for the gradient keeps them.
    let table = e.tensor(&[1.0, 2.0], &[2, 1], true).unwrap();
    let before = e.used_bytes();
    let rows = e.gather(&table, &vec![1; 100_000]).unwrap();
    assert!(
        e.used_bytes() - before >= 100_000 * (4 + word),
        "{}",
        e.used_bytes() - before
    );
    drop(rows);
    assert_eq!(e.used_bytes(), before);
}

#[test]
fn gradients_are_charged_while_they_are_held() {
    let e = Engine::new(Cpu, 1 << 20);
    let w = e.full(&[1000], 1.0).unwrap();
    let w = e.scale(&w, 1.0).unwrap(); // no gradient
    let p = e.tensor(&[0.5; 1000], &[1000], true).unwrap();
    let loss = e.sum_all(&e.mul(&p, &w).unwrap()).unwrap();
    let before = e.used_bytes();
    let grads = e.backward(&loss).unwrap();
    assert!(e.used_bytes() >= before + 4000, "{}", e.used_bytes());
    let copy = grads.clone();
    drop(grads);
    assert!(e.used_bytes() >= before + 4000, "a clone shares the charge");
    drop(copy);
    assert_eq!(e.used_bytes(), before);
    // And a quota that holds the tape but not its gradients refuses them.
    let tape = |e: &Engine<Cpu>| {
        let p = e.tensor(&[0.5; 1000], &[1000], true).unwrap();
        e.sum_all(&p).unwrap()
    };
    let probe = Engine::new(Cpu, 1 << 20);
    let _loss = tape(&probe);
    let e = Engine::new(Cpu, probe.used_bytes());
    let loss = tape(&e);
    assert!(matches!(e.backward(&loss), Err(TensorError::Quota { .. })));
}

/// The CPU backend on a device with `left` bytes of memory, never given back (others hold
/// the rest); `broken` fails every op as a lost device would.
struct Scarce {
    left: AtomicUsize,
    broken: AtomicBool,
}

type Buf = Arc<Vec<f32>>;

impl Scarce {
    fn new(left: usize) -> Self {
        Scarce {
            left: AtomicUsize::new(left),
            broken: AtomicBool::new(false),
        }
    }

    fn check(&self) -> DeviceResult<()> {
        if self.broken.load(Ordering::Relaxed) {
            return Err(DeviceError::Failed("scarce: the device was lost".into()));
        }
        Ok(())
    }

    fn alloc(&self, made: DeviceResult<Buf>) -> DeviceResult<Buf> {
        self.check()?;
        let buf = made?;
        let bytes = buf.len() * 4;
        self.left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| {
                l.checked_sub(bytes)
            })
            .map_err(|l| DeviceError::OutOfMemory(format!("scarce: {bytes} bytes, {l} left")))?;
        Ok(buf)
    }
}

impl Backend for Scarce {
    type Buf = Buf;

    fn name(&self) -> &'static str {
        "scarce"
    }
    fn upload(&self, data: &[f32]) -> DeviceResult<Buf> {
        self.alloc(Cpu.upload(data))
    }
    fn download(&self, buf: &Buf) -> DeviceResult<Vec<f32>> {
        self.check()?;
        Cpu.download(buf)
    }
    fn full(&self, len: usize, value: f32) -> DeviceResult<Buf> {
        self.alloc(Cpu.full(len, value))
    }
    fn unary(&self, op: Unary, x: &Buf) -> DeviceResult<Buf> {
        self.alloc(Cpu.unary(op, x))
    }
    fn binary(
        &self,
        op: Binary,
        a: &Buf,
        sa: &[usize],
        b: &Buf,
        sb: &[usize],
        out: &[usize],
    ) -> DeviceResult<Buf> {
        self.alloc(Cpu.binary(op, a, sa, b, sb, out))
    }
    fn affine(&self, x: &Buf, alpha: f32, beta: f32) -> DeviceResult<Buf> {
        self.alloc(Cpu.affine(x, alpha, beta))
    }
    #[allow(clippy::too_many_arguments)]
    fn matmul(
        &self,
        a: &Buf,
        b: &Buf,
        batch: usize,
        m: usize,
        k: usize,
        n: usize,
        ta: bool,
        tb: bool,
    ) -> DeviceResult<Buf> {
        self.alloc(Cpu.matmul(a, b, batch, m, k, n, ta, tb))
    }
    fn reduce(&self, op: Reduce, x: &Buf, shape: &[usize], axis: usize) -> DeviceResult<Buf> {
        self.alloc(Cpu.reduce(op, x, shape, axis))
    }
    fn transpose(&self, x: &Buf, shape: &[usize], a0: usize, a1: usize) -> DeviceResult<Buf> {
        self.alloc(Cpu.transpose(x, shape, a0, a1))
    }
    fn slice(
        &self,
        x: &Buf,
        s: &[usize],
        axis: usize,
        start: usize,
        len: usize,
    ) -> DeviceResult<Buf> {
        self.alloc(Cpu.slice(x, s, axis, start, len))
    }
    fn pad(
        &self,
        x: &Buf,
        s: &[usize],
        axis: usize,
        start: usize,
        total: usize,
    ) -> DeviceResult<Buf> {
        self.alloc(Cpu.pad(x, s, axis, start, total))
    }
    fn gather_rows(&self, x: &Buf, cols: usize, indices: &[usize]) -> DeviceResult<Buf> {
        self.alloc(Cpu.gather_rows(x, cols, indices))
    }
    fn scatter_add_rows(
        &self,
        g: &Buf,
        rows: usize,
        cols: usize,
        idx: &[usize],
    ) -> DeviceResult<Buf> {
        self.alloc(Cpu.scatter_add_rows(g, rows, cols, idx))
    }
    fn unfold(&self, x: &Buf, win: Window) -> DeviceResult<Buf> {
        self.alloc(Cpu.unfold(x, win))
    }
    fn fold(&self, cols: &Buf, win: Window) -> DeviceResult<Buf> {
        self.alloc(Cpu.fold(cols, win))
    }
}

fn out_of_memory(r: Result<impl std::fmt::Debug, TensorError>) -> String {
    match r {
        Err(TensorError::Device(DeviceError::OutOfMemory(m))) => m,
        other => panic!("expected the device's out-of-memory error, got {other:?}"),
    }
}

#[test]
fn an_op_the_device_cannot_allocate_for_is_an_error_that_charges_nothing() {
    let e = Engine::new(Scarce::new(4096), 1 << 20);
    let a = e.full(&[512], 1.0).unwrap(); // 2 KiB of the device's 4
    let used = e.used_bytes();
    let b = e.scale(&a, 2.0).unwrap(); // 2 KiB more: the device is full
    let message = out_of_memory(e.scale(&b, 2.0));
    assert!(message.contains("2048 bytes"), "{message}");
    let err = e.add(&a, &b).unwrap_err();
    assert!(
        err.to_string().contains("the device is out of memory"),
        "{err}"
    );
    drop(b);
    assert_eq!(e.used_bytes(), used, "the refused ops charged nothing");
}

#[test]
fn backward_and_an_optimizer_step_on_a_full_device_are_errors() {
    // Enough device memory for the forward pass, not for the gradients.
    let e = Engine::new(Scarce::new(3 * 4 * 64 + 4), 1 << 20);
    let p = e.tensor(&[0.5; 64], &[64], true).unwrap();
    let sq = e.unary(Unary::Square, &p).unwrap();
    let loss = e.sum(&sq, 0).unwrap();
    out_of_memory(e.backward(&loss).map(|_| ()));
    // With room for the gradients but not for the update.
    let e = Engine::new(Scarce::new(usize::MAX), 1 << 20);
    let p = e.tensor(&[0.5; 64], &[64], true).unwrap();
    let loss = e.sum(&e.unary(Unary::Square, &p).unwrap(), 0).unwrap();
    let grads = e.backward(&loss).unwrap();
    e.backend().left.store(0, Ordering::Relaxed);
    let mut sgd = Sgd::new(0.1, 0.9);
    out_of_memory(sgd.step(&e, std::slice::from_ref(&p), &grads));
}

#[test]
fn a_device_that_fails_fails_the_call_not_the_host() {
    let e = Engine::new(Scarce::new(usize::MAX), 1 << 20);
    let a = e.full(&[4], 1.0).unwrap();
    e.backend().broken.store(true, Ordering::Relaxed);
    for r in [
        e.to_vec(&a).map(|_| ()),
        e.scale(&a, 2.0).map(|_| ()),
        weft_tensor::io::save(&e, &[("a".into(), a.clone())]).map(|_| ()),
    ] {
        match r {
            Err(TensorError::Device(DeviceError::Failed(m))) => {
                assert!(m.contains("lost"), "{m}")
            }
            other => panic!("expected the device's failure, got {other:?}"),
        }
    }
}

#[test]
fn optimizer_state_is_charged_before_it_is_made() {
    use weft_tensor::optim::Adam;
    let setup = |limit| {
        let e = Engine::new(Cpu, limit);
        let p = e.tensor(&[0.5; 1000], &[1000], true).unwrap();
        let loss = e.sum_all(&p).unwrap();
        let grads = e.backward(&loss).unwrap();
        (e, p, grads)
    };
    let (e, p, grads) = setup(1 << 20);
    let before = e.used_bytes();
    let mut adam = Adam::new(0.1);
    adam.step(&e, std::slice::from_ref(&p), &grads).unwrap();
    // Two moments of a thousand elements.
    assert_eq!(e.used_bytes(), before + 8000);
    adam.step(&e, std::slice::from_ref(&p), &grads).unwrap();
    assert_eq!(
        e.used_bytes(),
        before + 8000,
        "the same state, charged once"
    );
    drop(adam);
    assert_eq!(e.used_bytes(), before);
    // A quota without room for the moments refuses the step before it changes anything.
    let (e, p, grads) = setup(before + 7999);
    let mut adam = Adam::new(0.1);
    let err = adam.step(&e, std::slice::from_ref(&p), &grads).unwrap_err();
    assert!(matches!(err, TensorError::Quota { .. }), "{err}");
    assert_eq!(e.to_vec(&p).unwrap(), vec![0.5; 1000]);
    let mut sgd = Sgd::new(0.1, 0.9);
    assert!(sgd.step(&e, std::slice::from_ref(&p), &grads).is_ok());
}
