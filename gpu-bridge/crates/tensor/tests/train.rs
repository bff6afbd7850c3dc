//! Training through the engine: an MLP on iris learns, optimizers do what their papers say,
//! memory is bounded and returned, parameters round-trip through safetensors.

use std::path::Path;
use weft_tensor::optim::{Adam, Sgd};
use weft_tensor::{Cpu, Engine, Tensor, TensorError};

type T = Tensor<Cpu>;

/// Iris, standardised: features `[150, 4]` and class indices.
fn iris() -> (Vec<f32>, Vec<usize>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../examples/data/iris.csv");
    let text = std::fs::read_to_string(path).unwrap();
    let mut x = Vec::new();
    let mut y = Vec::new();
    let mut classes: Vec<String> = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        x.extend(f[..4].iter().map(|v| v.parse::<f32>().unwrap()));
        let c = f[4].to_string();
        let i = classes.iter().position(|k| *k == c).unwrap_or_else(|| {
            classes.push(c);
            classes.len() - 1
        });
        y.push(i);
    }
    let n = y.len();
    for j in 0..4 {
        let mean = (0..n).map(|i| x[i * 4 + j]).sum::<f32>() / n as f32;
        let sd = ((0..n).map(|i| (x[i * 4 + j] - mean).powi(2)).sum::<f32>() / n as f32).sqrt();
        (0..n).for_each(|i| x[i * 4 + j] = (x[i * 4 + j] - mean) / sd);
    }
    (x, y)
}

fn param(e: &Engine<Cpu>, shape: &[usize], seed: u32) -> T {
    // A fixed, small pseudo-random init (no RNG dependency in what is checked).
    let n: usize = shape.iter().product();
    let scale = (1.0 / shape[0] as f32).sqrt();
    let data: Vec<f32> = (0..n)
        .map(|i| {
            let h = (i as u32)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(seed.wrapping_mul(40_503));
            ((h >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 2.0 * scale
        })
        .collect();
    e.tensor(&data, shape, true).unwrap()
}

#[test]
fn an_mlp_learns_iris_and_its_loss_falls() {
    let e = Engine::new(Cpu, 16 << 20);
    let (xs, ys) = iris();
    let x = e.tensor(&xs, &[ys.len(), 4], false).unwrap();
    let t = e.one_hot(&ys, 3).unwrap();
    let (w1, b1) = (
        param(&e, &[4, 16], 1),
        e.tensor(&[0.0; 16], &[16], true).unwrap(),
    );
    let (w2, b2) = (
        param(&e, &[16, 3], 2),
        e.tensor(&[0.0; 3], &[3], true).unwrap(),
    );
    let params = [w1.clone(), b1.clone(), w2.clone(), b2.clone()];
    let forward = |e: &Engine<Cpu>| {
        let h = e
            .relu(&e.add(&e.matmul(&x, &w1).unwrap(), &b1).unwrap())
            .unwrap();
        e.add(&e.matmul(&h, &w2).unwrap(), &b2).unwrap()
    };
    let mut adam = Adam::new(0.05);
    let mut losses = Vec::new();
    let held_before = e.used_bytes();
    for _ in 0..150 {
        let loss = e.cross_entropy(&forward(&e), &t).unwrap();
        losses.push(e.to_vec(&loss).unwrap()[0]);
        let grads = e.backward(&loss).unwrap();
        adam.step(&e, &params, &grads).unwrap();
    }
    // Each step's tape is gone with its loss: only parameters, data and the optimizer's two
    // moments per parameter element stay.
    let moments: usize = params.iter().map(|p| 8 * p.numel()).sum();
    assert_eq!(e.used_bytes(), held_before + moments);
    let (first, last) = (losses[0], *losses.last().unwrap());
    assert!(last < first * 0.1, "loss {first} -> {last}");
    let logits = e.to_vec(&forward(&e)).unwrap();
    let correct = ys
        .iter()
        .enumerate()
        .filter(|(i, &y)| {
            let row = &logits[i * 3..i * 3 + 3];
            let best = (0..3).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
            best == y
        })
        .count();
    assert!(
        correct as f32 / ys.len() as f32 >= 0.95,
        "{correct}/{}",
        ys.len()
    );
}

#[test]
fn sgd_with_momentum_fits_a_line() {
    let e = Engine::new(Cpu, 1 << 20);
    let xs: Vec<f32> = (0..20).map(|i| i as f32 / 10.0 - 1.0).collect();
    let ys: Vec<f32> = xs.iter().map(|x| 3.0 * x - 2.0).collect();
    let (x, y) = (
        e.tensor(&xs, &[20, 1], false).unwrap(),
        e.tensor(&ys, &[20, 1], false).unwrap(),
    );
    let (w, b) = (
        e.tensor(&[0.0], &[1, 1], true).unwrap(),
        e.tensor(&[0.0], &[1], true).unwrap(),
    );
    let mut sgd = Sgd::new(0.1, 0.9);
    for _ in 0..300 {
        let pred = e.add(&e.matmul(&x, &w).unwrap(), &b).unwrap();
        let loss = e.mse(&pred, &y).unwrap();
        let g = e.backward(&loss).unwrap();
        sgd.step(&e, &[w.clone(), b.clone()], &g).unwrap();
    }
    let (w, b) = (e.to_vec(&w).unwrap()[0], e.to_vec(&b).unwrap()[0]);
    assert!(
        (w - 3.0).abs() < 1e-3 && (b + 2.0).abs() < 1e-3,
        "w {w}, b {b}"
    );
}

#[test]
fn adamw_takes_the_step_its_update_rule_gives() {
    // One step from p = 1 with gradient 0.5: m̂ = 0.5, v̂ = 0.25, so the Adam step is lr·1;
    // AdamW also shrinks p by lr·wd first: 1·(1 − 0.1·0.1) − 0.1 = 0.89.
    let e = Engine::new(Cpu, 1 << 20);
    let p = e.tensor(&[1.0], &[1], true).unwrap();
    let loss = e.scale(&p, 0.5).unwrap();
    let g = e.backward(&loss).unwrap();
    let mut adamw = Adam::new(0.1).with_weight_decay(0.1);
    adamw.step(&e, std::slice::from_ref(&p), &g).unwrap();
    assert!(
        (e.to_vec(&p).unwrap()[0] - 0.89).abs() < 1e-6,
        "{}",
        e.to_vec(&p).unwrap()[0]
    );
}

#[test]
fn the_quota_refuses_what_exceeds_it_and_dropped_tensors_give_it_back() {
    let cost = |n: usize| Engine::new(Cpu, 0).tensor_cost(&[n]);
    let limit = cost(200) + cost(100) - 1;
    let e = Engine::new(Cpu, limit);
    let a = e.full(&[200], 1.0).unwrap(); // 800 bytes and its bookkeeping
    assert_eq!(e.used_bytes(), cost(200));
    let err = e.full(&[100], 1.0).unwrap_err();
    assert_eq!(
        err,
        TensorError::Quota {
            limit,
            requested: cost(100),
            used: cost(200)
        }
    );
    assert!(err.to_string().contains("quota exceeded"));
    // Results count too: an op whose output would not fit fails the same way.
    assert!(matches!(e.add(&a, &a), Err(TensorError::Quota { .. })));
    drop(a);
    assert_eq!(e.used_bytes(), 0);
    let b = e.full(&[250], 2.0).unwrap();
    assert_eq!(e.used_bytes(), cost(250));
    drop(b);
    assert_eq!(e.used_bytes(), 0);
}

#[test]
fn parameters_round_trip_through_safetensors() {
    let e = Engine::new(Cpu, 1 << 20);
    let w = e
        .tensor(&[1.0, -2.5, 3.25, 0.0, 7.0, -1e-3], &[2, 3], true)
        .unwrap();
    let b = e.tensor(&[0.5, 0.25], &[2], true).unwrap();
    let bytes =
        weft_tensor::io::save(&e, &[("layer.w".into(), w.clone()), ("layer.b".into(), b)]).unwrap();
    let other = Engine::new(Cpu, 1 << 20);
    let loaded = weft_tensor::io::load(&other, &bytes).unwrap();
    let names: Vec<&str> = loaded.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["layer.b", "layer.w"]);
    assert_eq!(loaded[1].1.shape(), [2, 3]);
    assert_eq!(other.to_vec(&loaded[1].1).unwrap(), e.to_vec(&w).unwrap());
    assert!(loaded[1].1.requires_grad());
    let err = weft_tensor::io::load(&other, b"not safetensors").unwrap_err();
    assert!(err.to_string().contains("not a safetensors file"), "{err}");
}

#[test]
fn sizes_a_component_may_ask_for_are_refused_before_anything_is_allocated() {
    let e = Engine::new(Cpu, 1 << 30);
    let huge = u32::MAX as usize;
    // An element count that does not fit: refused, not wrapped around.
    assert!(matches!(
        e.full(&[huge, huge, huge], 1.0),
        Err(TensorError::Shape(_))
    ));
    // Whose wrapped product would be 0, matching no data: refused all the same.
    assert!(matches!(
        e.tensor(&[], &[huge, huge, huge, 0], false),
        Err(TensorError::Shape(_))
    ));
    let col = e.full(&[65_536, 1], 1.0).unwrap();
    let row = e.full(&[1, 65_536], 1.0).unwrap();
    // 2^32 elements (16 GiB) from two small tensors: the quota refuses it before computing.
    assert!(matches!(e.add(&col, &row), Err(TensorError::Quota { .. })));
    assert!(matches!(
        e.matmul(&col, &row),
        Err(TensorError::Quota { .. })
    ));
    assert!(matches!(
        e.one_hot(&[0; 1 << 16], 1 << 16),
        Err(TensorError::Quota { .. })
    ));
    assert!(e.reshape(&col, &[huge, huge, 1 << 32]).is_err());
    let scalar = e.tensor(&[1.0], &[], false).unwrap();
    assert!(matches!(
        e.cross_entropy(&scalar, &scalar),
        Err(TensorError::Shape(_))
    ));
    drop((col, row, scalar));
    assert_eq!(e.used_bytes(), 0);
}
