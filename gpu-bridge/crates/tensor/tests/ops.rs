//! Every op against a plain reference, every gradient against finite differences, on the CPU
//! backend (the wgpu backend will run the same checks).

use rand::{RngExt, SeedableRng};
use weft_tensor::{Binary, Cpu, Engine, Tensor, TensorError, Unary};

type T = Tensor<Cpu>;

fn engine() -> Engine<Cpu> {
    Engine::new(Cpu, 64 << 20)
}

fn random(rng: &mut rand::rngs::StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "[{i}]: {x} vs {y}");
    }
}

#[test]
fn matmul_matches_a_naive_product_batched_and_not() {
    let e = engine();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    for (batch, m, k, n) in [(1, 3, 4, 5), (2, 7, 3, 2), (1, 64, 65, 33)] {
        let (a, b) = (
            random(&mut rng, batch * m * k),
            random(&mut rng, batch * k * n),
        );
        let shape = |r, c| {
            if batch == 1 {
                vec![r, c]
            } else {
                vec![batch, r, c]
            }
        };
        let ta = e.tensor(&a, &shape(m, k), false).unwrap();
        let tb = e.tensor(&b, &shape(k, n), false).unwrap();
        let got = e.to_vec(&e.matmul(&ta, &tb).unwrap()).unwrap();
        let mut want = vec![0.0; batch * m * n];
        for z in 0..batch {
            for i in 0..m {
                for j in 0..n {
                    want[z * m * n + i * n + j] = (0..k)
                        .map(|p| a[z * m * k + i * k + p] * b[z * k * n + p * n + j])
                        .sum();
                }
            }
        }
        close(&got, &want, 1e-5);
    }
    let (x, y) = (e.full(&[2, 3], 1.0).unwrap(), e.full(&[2, 3], 1.0).unwrap());
    assert!(matches!(e.matmul(&x, &y), Err(TensorError::Shape(_))));
}

#[test]
fn broadcasting_reductions_and_layout_ops_give_the_reference_values() {
    let e = engine();
    let a = e.tensor(&[1., 2., 3., 4., 5., 6.], &[2, 3], false).unwrap();
    let row = e.tensor(&[10., 20., 30.], &[3], false).unwrap();
    let col = e.tensor(&[100., 200.], &[2, 1], false).unwrap();
    assert_eq!(
        e.to_vec(&e.add(&a, &row).unwrap()).unwrap(),
        [11., 22., 33., 14., 25., 36.]
    );
    assert_eq!(
        e.to_vec(&e.mul(&a, &col).unwrap()).unwrap(),
        [100., 200., 300., 800., 1000., 1200.]
    );
    assert_eq!(
        e.to_vec(&e.sub(&col, &row).unwrap()).unwrap(),
        [90., 80., 70., 190., 180., 170.]
    );
    assert_eq!(e.to_vec(&e.sum(&a, 0).unwrap()).unwrap(), [5., 7., 9.]);
    assert_eq!(e.to_vec(&e.sum(&a, -1).unwrap()).unwrap(), [6., 15.]);
    assert_eq!(e.to_vec(&e.max(&a, 1).unwrap()).unwrap(), [3., 6.]);
    assert_eq!(e.to_vec(&e.mean(&a, 1).unwrap()).unwrap(), [2., 5.]);
    assert_eq!(
        e.to_vec(&e.transpose(&a, 0, 1).unwrap()).unwrap(),
        [1., 4., 2., 5., 3., 6.]
    );
    assert_eq!(e.transpose(&a, 0, 1).unwrap().shape(), [3, 2]);
    assert_eq!(e.reshape(&a, &[3, 2]).unwrap().shape(), [3, 2]);
    assert!(e.reshape(&a, &[4, 2]).is_err());
    assert!(e.add(&a, &e.full(&[2], 1.0).unwrap()).is_err());
    let sm = e.to_vec(&e.softmax(&a, -1).unwrap()).unwrap();
    let z: f32 = [1f32, 2., 3.].iter().map(|v| v.exp()).sum();
    close(
        &sm[..3],
        &[1f32.exp() / z, 2f32.exp() / z, 3f32.exp() / z],
        1e-6,
    );
    let big = e.tensor(&[1000., 1001.], &[1, 2], false).unwrap();
    let stable = e.to_vec(&e.softmax(&big, -1).unwrap()).unwrap();
    assert!(stable.iter().all(|v| v.is_finite()), "{stable:?}");
    let x = e.tensor(&[-1.0, 0.5, 2.0], &[3], false).unwrap();
    let want = |f: fn(f32) -> f32| [-1.0f32, 0.5, 2.0].map(f).to_vec();
    close(
        &e.to_vec(&e.relu(&x).unwrap()).unwrap(),
        &want(|v| v.max(0.0)),
        0.0,
    );
    close(
        &e.to_vec(&e.unary(Unary::Tanh, &x).unwrap()).unwrap(),
        &want(f32::tanh),
        1e-6,
    );
    close(
        &e.to_vec(&e.unary(Unary::Sigmoid, &x).unwrap()).unwrap(),
        &want(|v| 1.0 / (1.0 + (-v).exp())),
        1e-6,
    );
    close(
        &e.to_vec(&e.unary(Unary::Exp, &x).unwrap()).unwrap(),
        &want(f32::exp),
        1e-6,
    );
    // GELU (tanh form) at known points.
    close(
        &e.to_vec(&e.unary(Unary::Gelu, &x).unwrap()).unwrap(),
        &[-0.158_808, 0.345_714, 1.954_597],
        1e-4,
    );
}

/// Checks `f`'s gradient with respect to each input by central differences of
/// `sum(f(inputs) * r)` for a fixed random `r`.
fn grad_check(shapes: &[Vec<usize>], positive: bool, f: impl Fn(&Engine<Cpu>, &[T]) -> T) {
    let e = engine();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let values: Vec<Vec<f32>> = shapes
        .iter()
        .map(|s| {
            let v = random(&mut rng, s.iter().product());
            if positive {
                v.iter().map(|x| x.abs() + 0.5).collect()
            } else {
                v
            }
        })
        .collect();
    let inputs: Vec<T> = values
        .iter()
        .zip(shapes)
        .map(|(v, s)| e.tensor(v, s, true).unwrap())
        .collect();
    let out = f(&e, &inputs);
    let r = e
        .tensor(&random(&mut rng, out.numel()), out.shape(), false)
        .unwrap();
    let loss = e.sum_all(&e.mul(&out, &r).unwrap()).unwrap();
    let grads = e.backward(&loss).unwrap();
    let scalar = |vals: &[Vec<f32>]| -> f64 {
        let e2 = engine();
        let ts: Vec<T> = vals
            .iter()
            .zip(shapes)
            .map(|(v, s)| e2.tensor(v, s, false).unwrap())
            .collect();
        let o = f(&e2, &ts);
        let rr = e2.to_vec(&r).unwrap();
        e2.to_vec(&o)
            .unwrap()
            .iter()
            .zip(&rr)
            .map(|(a, b)| (*a as f64) * (*b as f64))
            .sum()
    };
    for (i, input) in inputs.iter().enumerate() {
        let analytic = e
            .to_vec(&grads.get(&e, input).unwrap().expect("a gradient"))
            .unwrap();
        for j in 0..values[i].len() {
            let h = 1e-2f32;
            let mut plus = values.clone();
            plus[i][j] += h;
            let mut minus = values.clone();
            minus[i][j] -= h;
            let numeric = ((scalar(&plus) - scalar(&minus)) / (2.0 * h as f64)) as f32;
            assert!(
                (analytic[j] - numeric).abs() <= 2e-2 * (1.0 + numeric.abs()),
                "input {i}[{j}]: analytic {} vs numeric {numeric}",
                analytic[j]
            );
        }
    }
}

#[test]
fn gradients_of_element_wise_ops_match_finite_differences() {
    let s = vec![vec![2, 3]];
    for op in [
        Unary::Neg,
        Unary::Tanh,
        Unary::Sigmoid,
        Unary::Exp,
        Unary::Gelu,
        Unary::Square,
    ] {
        grad_check(&s, false, |e, x| e.unary(op, &x[0]).unwrap());
    }
    for op in [Unary::Log, Unary::Recip, Unary::Sqrt, Unary::Relu] {
        grad_check(&s, true, |e, x| e.unary(op, &x[0]).unwrap());
    }
    grad_check(&s, false, |e, x| e.scale(&x[0], -2.5).unwrap());
}

#[test]
fn gradients_of_broadcasting_binary_ops_match_finite_differences() {
    let shapes = vec![vec![2, 3], vec![3]];
    for op in [Binary::Add, Binary::Sub, Binary::Mul] {
        grad_check(&shapes, false, |e, x| e.binary(op, &x[0], &x[1]).unwrap());
    }
    grad_check(&[vec![2, 1], vec![2, 3]], true, |e, x| {
        e.div(&x[0], &x[1]).unwrap()
    });
}

#[test]
fn gradients_of_matmul_reductions_and_layout_ops_match_finite_differences() {
    grad_check(&[vec![3, 4], vec![4, 2]], false, |e, x| {
        e.matmul(&x[0], &x[1]).unwrap()
    });
    grad_check(&[vec![2, 3, 4], vec![2, 4, 2]], false, |e, x| {
        e.matmul(&x[0], &x[1]).unwrap()
    });
    grad_check(&[vec![3, 4]], false, |e, x| e.sum(&x[0], 1).unwrap());
    grad_check(&[vec![3, 4]], false, |e, x| e.mean(&x[0], 0).unwrap());
    grad_check(&[vec![3, 4]], false, |e, x| e.max(&x[0], -1).unwrap());
    grad_check(&[vec![2, 3, 4]], false, |e, x| {
        e.transpose(&x[0], 0, 2).unwrap()
    });
    grad_check(&[vec![3, 4]], false, |e, x| {
        e.reshape(&x[0], &[2, 6]).unwrap()
    });
    grad_check(&[vec![3, 4]], false, |e, x| {
        e.log_softmax(&x[0], -1).unwrap()
    });
    grad_check(&[vec![3, 4]], false, |e, x| e.softmax(&x[0], 0).unwrap());
}

#[test]
fn gradients_of_the_losses_match_finite_differences() {
    grad_check(&[vec![4, 3]], false, |e, x| {
        let t = e.one_hot(&[0, 2, 1, 2], 3).unwrap();
        e.cross_entropy(&x[0], &t).unwrap()
    });
    grad_check(&[vec![4, 3], vec![4, 3]], false, |e, x| {
        e.mse(&x[0], &x[1]).unwrap()
    });
}

#[test]
fn a_value_used_twice_gets_both_gradients() {
    // d/dx (x*x + x) = 2x + 1
    let e = engine();
    let x = e.tensor(&[3.0], &[1], true).unwrap();
    let y = e.add(&e.mul(&x, &x).unwrap(), &x).unwrap();
    let g = e.backward(&y).unwrap();
    assert_eq!(e.to_vec(&g.get(&e, &x).unwrap().unwrap()).unwrap(), [7.0]);
    let c = e.tensor(&[2.0], &[1], false).unwrap();
    assert!(
        g.get(&e, &c).unwrap().is_none(),
        "constants get no gradient"
    );
    assert!(
        e.backward(&e.full(&[2], 1.0).unwrap()).is_err(),
        "backward needs a scalar"
    );
}

#[test]
fn slice_concat_gather_and_layer_norm_give_the_reference_values() {
    let e = engine();
    let a = e.tensor(&[1., 2., 3., 4., 5., 6.], &[2, 3], false).unwrap();
    assert_eq!(
        e.to_vec(&e.slice(&a, 1, 1, 2).unwrap()).unwrap(),
        [2., 3., 5., 6.]
    );
    assert_eq!(
        e.to_vec(&e.slice(&a, 0, 1, 1).unwrap()).unwrap(),
        [4., 5., 6.]
    );
    assert!(e.slice(&a, 1, 2, 2).is_err());
    let b = e.tensor(&[7., 8.], &[2, 1], false).unwrap();
    let c = e.concat(&[a.clone(), b.clone()], 1).unwrap();
    assert_eq!(c.shape(), [2, 4]);
    assert_eq!(e.to_vec(&c).unwrap(), [1., 2., 3., 7., 4., 5., 6., 8.]);
    assert!(
        e.concat(&[a.clone(), b], 0).is_err(),
        "other dims must match"
    );
    let emb = e.tensor(&[0., 0., 1., 1., 2., 2.], &[3, 2], false).unwrap();
    assert_eq!(
        e.to_vec(&e.gather(&emb, &[2, 0, 2]).unwrap()).unwrap(),
        [2., 2., 0., 0., 2., 2.]
    );
    assert!(e.gather(&emb, &[3]).is_err());
    let (g, bt) = (e.full(&[3], 1.0).unwrap(), e.full(&[3], 0.0).unwrap());
    let ln = e.to_vec(&e.layer_norm(&a, &g, &bt, 0.0).unwrap()).unwrap();
    let z = (2.0f32 / 3.0).sqrt();
    close(&ln, &[-1.0 / z, 0.0, 1.0 / z, -1.0 / z, 0.0, 1.0 / z], 1e-5);
}

#[test]
fn gradients_of_slice_concat_gather_and_layer_norm_match_finite_differences() {
    grad_check(&[vec![3, 4]], false, |e, x| {
        e.slice(&x[0], 1, 1, 2).unwrap()
    });
    grad_check(&[vec![2, 3], vec![2, 2]], false, |e, x| {
        e.concat(&[x[0].clone(), x[1].clone()], -1).unwrap()
    });
    grad_check(&[vec![4, 3]], false, |e, x| {
        e.gather(&x[0], &[3, 1, 3, 0]).unwrap()
    });
    grad_check(&[vec![3, 4], vec![4], vec![4]], false, |e, x| {
        e.layer_norm(&x[0], &x[1], &x[2], 1e-5).unwrap()
    });
}

/// Direct convolution, the textbook loops.
fn conv_reference(
    x: &[f32],
    (n, c, h, w): (usize, usize, usize, usize),
    k: &[f32],
    (o, kh, kw): (usize, usize, usize),
    stride: usize,
    pad: usize,
) -> Vec<f32> {
    let oh = (h + 2 * pad - kh) / stride + 1;
    let ow = (w + 2 * pad - kw) / stride + 1;
    let mut out = vec![0.0; n * o * oh * ow];
    for b in 0..n {
        for f in 0..o {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = 0.0;
                    for ch in 0..c {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let y = (oy * stride + ky) as isize - pad as isize;
                                let xx = (ox * stride + kx) as isize - pad as isize;
                                if y < 0 || xx < 0 || y >= h as isize || xx >= w as isize {
                                    continue;
                                }
                                acc += x[((b * c + ch) * h + y as usize) * w + xx as usize]
                                    * k[((f * c + ch) * kh + ky) * kw + kx];
                            }
                        }
                    }
                    out[((b * o + f) * oh + oy) * ow + ox] = acc;
                }
            }
        }
    }
    out
}

#[test]
fn conv2d_and_pooling_match_direct_loops() {
    let e = engine();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    for (stride, pad) in [(1, 0), (1, 1), (2, 1)] {
        let x = random(&mut rng, 2 * 3 * 5 * 6);
        let k = random(&mut rng, 4 * 3 * 3 * 3);
        let tx = e.tensor(&x, &[2, 3, 5, 6], false).unwrap();
        let tk = e.tensor(&k, &[4, 3, 3, 3], false).unwrap();
        let got = e.conv2d(&tx, &tk, None, stride, pad).unwrap();
        let want = conv_reference(&x, (2, 3, 5, 6), &k, (4, 3, 3), stride, pad);
        close(&e.to_vec(&got).unwrap(), &want, 1e-5);
    }
    let img = e
        .tensor(
            &(0..16).map(|v| v as f32).collect::<Vec<_>>(),
            &[1, 1, 4, 4],
            false,
        )
        .unwrap();
    assert_eq!(
        e.to_vec(&e.pool2d(&img, 2, 2, false).unwrap()).unwrap(),
        [5., 7., 13., 15.]
    );
    assert_eq!(
        e.to_vec(&e.pool2d(&img, 2, 2, true).unwrap()).unwrap(),
        [2.5, 4.5, 10.5, 12.5]
    );
    assert!(e
        .conv2d(&img, &e.full(&[1, 2, 3, 3], 1.0).unwrap(), None, 1, 0)
        .is_err());
}

#[test]
fn gradients_of_conv2d_and_pooling_match_finite_differences() {
    grad_check(
        &[vec![1, 2, 4, 5], vec![3, 2, 3, 3], vec![3]],
        false,
        |e, x| e.conv2d(&x[0], &x[1], Some(&x[2]), 1, 1).unwrap(),
    );
    grad_check(&[vec![1, 2, 4, 4]], false, |e, x| {
        e.pool2d(&x[0], 2, 2, false).unwrap()
    });
    grad_check(&[vec![1, 2, 4, 4]], false, |e, x| {
        e.pool2d(&x[0], 2, 1, true).unwrap()
    });
}
