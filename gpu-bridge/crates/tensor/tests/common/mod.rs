//! One suite for every GPU backend: each primitive, then gradients and training through the
//! engine, against the CPU backend.

use rand::{RngExt, SeedableRng};
use weft_tensor::backend::Window;
use weft_tensor::{Backend, Binary, Cpu, Engine, Reduce, Unary};

pub fn random(rng: &mut rand::rngs::StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

pub fn close(what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "{what}[{i}]: device {x} vs cpu {y}"
        );
    }
}

/// Every primitive on `g` against the CPU backend, on random inputs.
pub fn every_primitive_matches_the_cpu_backend<G: Backend>(g: &G) {
    let c = Cpu;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let x = random(&mut rng, 2 * 3 * 5 * 6);
    let (gx, cx) = (g.upload(&x).unwrap(), c.upload(&x).unwrap());
    let pos: Vec<f32> = x.iter().map(|v| v.abs() + 0.1).collect();
    let (gp, cp) = (g.upload(&pos).unwrap(), c.upload(&pos).unwrap());
    for op in [
        Unary::Neg,
        Unary::Relu,
        Unary::Step,
        Unary::Gelu,
        Unary::GeluGrad,
        Unary::Tanh,
        Unary::Sigmoid,
        Unary::Exp,
        Unary::Square,
    ] {
        close(
            &format!("{op:?}"),
            &g.download(&g.unary(op, &gx).unwrap()).unwrap(),
            &c.unary(op, &cx).unwrap(),
            1e-5,
        );
    }
    for op in [Unary::Log, Unary::Recip, Unary::Sqrt] {
        close(
            &format!("{op:?}"),
            &g.download(&g.unary(op, &gp).unwrap()).unwrap(),
            &c.unary(op, &cp).unwrap(),
            1e-5,
        );
    }
    close(
        "affine",
        &g.download(&g.affine(&gx, -2.5, 0.5).unwrap()).unwrap(),
        &c.affine(&cx, -2.5, 0.5).unwrap(),
        1e-6,
    );
    let row = random(&mut rng, 6);
    let shape = [2usize, 3, 5, 6];
    for op in [
        Binary::Add,
        Binary::Sub,
        Binary::Mul,
        Binary::Div,
        Binary::Eq,
    ] {
        let (gr, cr) = (g.upload(&row).unwrap(), c.upload(&row).unwrap());
        let got = g
            .download(&g.binary(op, &gx, &shape, &gr, &[6], &shape).unwrap())
            .unwrap();
        close(
            &format!("{op:?}"),
            &got,
            &c.binary(op, &cx, &shape, &cr, &[6], &shape).unwrap(),
            1e-5,
        );
        let got = g
            .download(&g.binary(op, &gr, &[1, 6], &gx, &shape, &shape).unwrap())
            .unwrap();
        close(
            &format!("{op:?} left"),
            &got,
            &c.binary(op, &cr, &[1, 6], &cx, &shape, &shape).unwrap(),
            1e-5,
        );
    }
    for (batch, m, k, n, ta, tb) in [
        (1, 7, 5, 3, false, false),
        (2, 4, 6, 5, true, false),
        (3, 5, 4, 2, false, true),
    ] {
        let (a, b) = (
            random(&mut rng, batch * m * k),
            random(&mut rng, batch * k * n),
        );
        let got = g
            .download(
                &g.matmul(
                    &g.upload(&a).unwrap(),
                    &g.upload(&b).unwrap(),
                    batch,
                    m,
                    k,
                    n,
                    ta,
                    tb,
                )
                .unwrap(),
            )
            .unwrap();
        close(
            "matmul",
            &got,
            &c.matmul(
                &c.upload(&a).unwrap(),
                &c.upload(&b).unwrap(),
                batch,
                m,
                k,
                n,
                ta,
                tb,
            )
            .unwrap(),
            1e-4,
        );
    }
    for axis in 0..4 {
        for op in [Reduce::Sum, Reduce::Max] {
            close(
                &format!("{op:?} {axis}"),
                &g.download(&g.reduce(op, &gx, &shape, axis).unwrap())
                    .unwrap(),
                &c.reduce(op, &cx, &shape, axis).unwrap(),
                1e-5,
            );
        }
    }
    close(
        "transpose",
        &g.download(&g.transpose(&gx, &shape, 1, 3).unwrap())
            .unwrap(),
        &c.transpose(&cx, &shape, 1, 3).unwrap(),
        0.0,
    );
    close(
        "slice",
        &g.download(&g.slice(&gx, &shape, 2, 1, 3).unwrap()).unwrap(),
        &c.slice(&cx, &shape, 2, 1, 3).unwrap(),
        0.0,
    );
    close(
        "pad",
        &g.download(&g.pad(&gx, &shape, 1, 2, 7).unwrap()).unwrap(),
        &c.pad(&cx, &shape, 1, 2, 7).unwrap(),
        0.0,
    );
    let m = [4usize, 45];
    close(
        "gather",
        &g.download(&g.gather_rows(&gx, m[1], &[3, 0, 3, 2]).unwrap())
            .unwrap(),
        &c.gather_rows(&cx, m[1], &[3, 0, 3, 2]).unwrap(),
        0.0,
    );
    let rows = random(&mut rng, 4 * 5);
    close(
        "scatter",
        &g.download(
            &g.scatter_add_rows(&g.upload(&rows).unwrap(), 3, 5, &[2, 0, 2, 1])
                .unwrap(),
        )
        .unwrap(),
        &c.scatter_add_rows(&c.upload(&rows).unwrap(), 3, 5, &[2, 0, 2, 1])
            .unwrap(),
        1e-6,
    );
    for (stride, pad) in [(1, 0), (1, 1), (2, 1)] {
        let win = Window {
            n: 2,
            c: 3,
            h: 5,
            w: 6,
            kh: 3,
            kw: 3,
            stride,
            pad,
        };
        let gu = g.unfold(&gx, win).unwrap();
        close(
            "unfold",
            &g.download(&gu).unwrap(),
            &c.unfold(&cx, win).unwrap(),
            0.0,
        );
        close(
            "fold",
            &g.download(&g.fold(&gu, win).unwrap()).unwrap(),
            &c.fold(&c.unfold(&cx, win).unwrap(), win).unwrap(),
            1e-5,
        );
    }
}

/// Gradients through conv, pool, linear and cross-entropy, and training steps, on `g` and on
/// the CPU engine.
pub fn gradients_and_training_match_the_cpu_engine<G: Backend>(g: G) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let x = random(&mut rng, 2 * 3 * 6 * 6);
    let k = random(&mut rng, 4 * 3 * 3 * 3);
    let w = random(&mut rng, 4 * 9 * 3);
    /// conv → relu → pool → flatten → linear → cross-entropy; returns the loss and gradients.
    fn run<B: Backend>(
        e: &Engine<B>,
        x: &[f32],
        k: &[f32],
        w: &[f32],
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let x = e.tensor(x, &[2, 3, 6, 6], false).unwrap();
        let k = e.tensor(k, &[4, 3, 3, 3], true).unwrap();
        let w = e.tensor(w, &[36, 3], true).unwrap();
        let h = e.relu(&e.conv2d(&x, &k, None, 1, 1).unwrap()).unwrap();
        let pooled = e.pool2d(&h, 2, 2, false).unwrap();
        let flat = e.reshape(&pooled, &[2, 36]).unwrap();
        let logits = e.matmul(&flat, &w).unwrap();
        let loss = e
            .cross_entropy(&logits, &e.one_hot(&[0, 2], 3).unwrap())
            .unwrap();
        let grads = e.backward(&loss).unwrap();
        let gk = e.to_vec(&grads.get(e, &k).unwrap().unwrap()).unwrap();
        let gw = e.to_vec(&grads.get(e, &w).unwrap().unwrap()).unwrap();
        (e.to_vec(&loss).unwrap(), gk, gw)
    }
    let on_gpu = run(&Engine::new(g, 1 << 26), &x, &k, &w);
    let on_cpu = run(&Engine::new(Cpu, 1 << 26), &x, &k, &w);
    close("loss", &on_gpu.0, &on_cpu.0, 1e-4);
    close("kernel gradient", &on_gpu.1, &on_cpu.1, 1e-3);
    close("weight gradient", &on_gpu.2, &on_cpu.2, 1e-3);
}
