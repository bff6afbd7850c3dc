//! Timings of the tensor bridge from inside a component, for the benchmark
//! (`cargo bench -p weft-runtime --bench tensor`). Param `mode`:
//! - `dispatch`: `n` (default 10000) tiny ops (scale a `[1]` tensor) in a loop; metric
//!   `ns_per_op`.
//! - `matmul`: `reps` products of two `[size, size]` tensors; metric `seconds`.
//! - `train`: `steps` Adam steps of an MLP (`[batch, 32] -> 64 -> 10`, cross-entropy); metric
//!   `seconds`.
//! - `ops`: the layer ops on fixed inputs (those of `t` below), each result's values in the
//!   JSON output param `results`, for the binding test.
use std::time::Instant;
use weft_step::tensor::{self, BinaryOp, Dtype, Optimizer, Tensor, UnaryOp};
use weft_step::{out_param, report, Guest, ParamValue, StepInput, StepOutput};

struct Bench;

fn t(shape: &[u32], grad: bool) -> Tensor {
    let n: u32 = shape.iter().product();
    let bytes: Vec<u8> = (0..n).flat_map(|i| (((i * 7919) % 101) as f32 / 101.0 - 0.5).to_le_bytes()).collect();
    Tensor::from_bytes(&bytes, Dtype::F32, shape, grad).expect("a tensor")
}

impl Guest for Bench {
    fn run(input: StepInput) -> Result<StepOutput, String> {
        match input.str_param("mode")? {
            "dispatch" => {
                let n = input.int_param_or("n", 10_000)?;
                let x = t(&[1], false);
                let start = Instant::now();
                for _ in 0..n {
                    drop(tensor::scale(&x, 1.0).map_err(|e| format!("{e:?}"))?);
                }
                report("ns_per_op", start.elapsed().as_nanos() as f64 / n as f64, None);
            }
            "matmul" => {
                let size = input.int_param_or("size", 256)? as u32;
                let reps = input.int_param_or("reps", 10)?;
                let (a, b) = (t(&[size, size], false), t(&[size, size], false));
                let start = Instant::now();
                let mut last = None;
                for _ in 0..reps {
                    last = Some(tensor::matmul(&a, &b).map_err(|e| format!("{e:?}"))?);
                }
                // Reading the result waits for the device (a GPU queues work).
                let _ = last.map(|t| t.to_bytes());
                report("seconds", start.elapsed().as_secs_f64(), None);
            }
            "train" => {
                let steps = input.int_param_or("steps", 100)?;
                let batch = input.int_param_or("batch", 256)? as u32;
                let x = t(&[batch, 32], false);
                let labels: Vec<u32> = (0..batch).map(|i| i % 10).collect();
                let y = tensor::one_hot(&labels, 10).map_err(|e| format!("{e:?}"))?;
                let (w1, b1, w2, b2) = (t(&[32, 64], true), t(&[64], true), t(&[64, 10], true), t(&[10], true));
                let adam = Optimizer::adam(0.01, 0.0);
                let start = Instant::now();
                for _ in 0..steps {
                    let h = tensor::unary(UnaryOp::Relu, &tensor::binary(BinaryOp::Add, &tensor::matmul(&x, &w1).unwrap(), &b1).unwrap()).unwrap();
                    let logits = tensor::binary(BinaryOp::Add, &tensor::matmul(&h, &w2).unwrap(), &b2).unwrap();
                    let loss = tensor::cross_entropy(&logits, &y).unwrap();
                    let g = tensor::backward(&loss).unwrap();
                    adam.step(&[&w1, &b1, &w2, &b2], &g);
                }
                let _ = b2.to_bytes();
                report("seconds", start.elapsed().as_secs_f64(), None);
            }
            "ops" => return ops(),
            other => return Err(format!("unknown mode `{other}`")),
        }
        Ok(StepOutput { params: vec![] })
    }
}

weft_step::export!(Bench with_types_in weft_step::bindings);

fn ops() -> Result<StepOutput, String> {
    let e = |r: Result<Tensor, tensor::Error>| r.map_err(|e| format!("{e:?}"));
    let x = t(&[2, 3, 5, 6], true);
    let k = t(&[4, 3, 3, 3], true);
    let bias = t(&[4], true);
    let m = t(&[5, 4], true);
    let conv = e(tensor::conv2d(&x, &k, Some(&bias), 2, 1))?;
    let maxp = e(tensor::max_pool2d(&x, 2, 2))?;
    let avgp = e(tensor::avg_pool2d(&x, 3, 1))?;
    let sliced = e(tensor::slice(&m, 1, 1, 2))?;
    let joined = e(tensor::concat(&[&m, &sliced], -1))?;
    let rows = e(tensor::gather(&m, &[4, 0, 4]))?;
    let normed = e(tensor::layer_norm(&m, &t(&[4], false), &t(&[4], false), 1e-5))?;
    // A gradient through all of them, to the conv kernel.
    let mut loss: Option<Tensor> = None;
    for r in [&conv, &maxp, &avgp, &joined, &rows, &normed] {
        let flat = e(tensor::reshape(r, &[r.shape().iter().product()]))?;
        let s = e(tensor::sum(&flat, 0))?;
        loss = Some(match loss {
            None => s,
            Some(l) => e(tensor::binary(BinaryOp::Add, &l, &s))?,
        });
    }
    let loss = loss.expect("six results");
    let grads = tensor::backward(&loss).map_err(|e| format!("{e:?}"))?;
    let gk = grads.get(&k).map_err(|e| format!("{e:?}"))?.ok_or("no kernel gradient")?;
    let list = |r: &Tensor| {
        let v: Vec<String> = r.to_bytes().chunks_exact(4).map(|c| format!("{:?}", f32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect();
        format!("[{}]", v.join(","))
    };
    let json = format!(
        "{{\"conv\":{},\"maxpool\":{},\"avgpool\":{},\"concat\":{},\"gather\":{},\"layer_norm\":{},\"kernel_grad\":{}}}",
        list(&conv), list(&maxp), list(&avgp), list(&joined), list(&rows), list(&normed), list(&gk)
    );
    Ok(StepOutput { params: vec![out_param("results", ParamValue::Json(json))] })
}
