//! The GPU bridge's figures for docs/PERFORMANCE.md, in one process, per backend: the same work
//! through a component (`components/tensor-bench`, over `weft:tensor`) and through the engine
//! called directly from Rust (the native baseline), printed with ratios.
//!
//! `cargo bench -p weft-runtime --bench tensor [--features wgpu,cuda]` (wgpu and CUDA rows when
//! such a device is present; on lavapipe, a software rasteriser, wgpu rows measure correctness,
//! not speed).
use std::path::Path;
use std::time::Instant;
use weft_runtime::{LoadedComponent, ParamValue, Runtime, RuntimeConfig, StepRequest};
use weft_tensor::optim::Adam;
use weft_tensor::{Backend, Choice, Engine, Tensor};

fn data<B: Backend>(shape: &[usize], grad: bool, e: &Engine<B>) -> Tensor<B> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 101) as f32 / 101.0 - 0.5)
        .collect();
    e.tensor(&v, shape, grad).unwrap()
}

/// Runs the bench component in `mode` and returns its metric `name`.
fn component(
    rt: &Runtime,
    loaded: &LoadedComponent,
    mode: &str,
    params: &[(&str, i64)],
    name: &str,
) -> f64 {
    let mut req = StepRequest::new("bench", "tensor-bench");
    req.params
        .push(("mode".into(), ParamValue::String(mode.into())));
    for (k, v) in params {
        req.params.push((k.to_string(), ParamValue::Int(*v)));
    }
    req.limits.timeout = std::time::Duration::from_secs(600);
    let outcome = rt.run(loaded, &req).unwrap();
    outcome
        .metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap()
        .value
}

/// Downloads one element: waits for queued device work (what the component's reads do too).
fn sync<B: Backend>(e: &Engine<B>, t: &Tensor<B>) {
    e.to_vec(
        &e.slice(&e.reshape(t, &[t.numel()]).unwrap(), 0, 0, 1)
            .unwrap(),
    )
    .unwrap();
}

fn figures<B: Backend>(backend: B, choice: Choice, sizes: &[usize], steps: i64) {
    let name = backend.name();
    let rt = Runtime::new(RuntimeConfig {
        tensor_backend: choice,
        ..Default::default()
    })
    .unwrap();
    let loaded = rt
        .load(Path::new(weft_test_programs::TENSOR_BENCH))
        .unwrap();
    let e = Engine::new(backend, 1 << 30);
    println!("-- backend {name}: component vs the same engine called from Rust");

    let n = 5_000;
    let x = data(&[1], false, &e);
    let start = Instant::now();
    for _ in 0..n {
        drop(e.scale(&x, 1.0).unwrap());
    }
    let native_ns = start.elapsed().as_nanos() as f64 / n as f64;
    let guest_ns = component(&rt, &loaded, "dispatch", &[("n", n as i64)], "ns_per_op");
    println!(
        "{:<36} native {:>8.0} ns/op   component {:>8.0} ns/op   boundary +{:.2} µs/op",
        "tiny op (scale a [1] tensor)",
        native_ns,
        guest_ns,
        (guest_ns - native_ns) / 1000.0
    );

    for &size in sizes {
        let reps = (2e9 / (2.0 * (size as f64).powi(3))).clamp(2.0, 200.0) as i64;
        let (a, b) = (
            data(&[size, size], false, &e),
            data(&[size, size], false, &e),
        );
        let start = Instant::now();
        let mut last = None;
        for _ in 0..reps {
            last = Some(e.matmul(&a, &b).unwrap());
        }
        sync(&e, &last.unwrap());
        let native = start.elapsed().as_secs_f64();
        let guest = component(
            &rt,
            &loaded,
            "matmul",
            &[("size", size as i64), ("reps", reps)],
            "seconds",
        );
        let gflops = |s: f64| 2.0 * (size as f64).powi(3) * reps as f64 / s / 1e9;
        println!(
            "{:<36} native {:>8.1} GFLOP/s  component {:>8.1} GFLOP/s  ratio {:.2}x",
            format!("matmul f32 {size}x{size}"),
            gflops(native),
            gflops(guest),
            gflops(guest) / gflops(native)
        );
    }

    let batch = 256;
    let x = data(&[batch, 32], false, &e);
    let labels: Vec<usize> = (0..batch).map(|i| i % 10).collect();
    let y = e.one_hot(&labels, 10).unwrap();
    let params = [
        data(&[32, 64], true, &e),
        data(&[64], true, &e),
        data(&[64, 10], true, &e),
        data(&[10], true, &e),
    ];
    let mut adam = Adam::new(0.01);
    let start = Instant::now();
    for _ in 0..steps {
        let h = e
            .relu(
                &e.add(&e.matmul(&x, &params[0]).unwrap(), &params[1])
                    .unwrap(),
            )
            .unwrap();
        let logits = e
            .add(&e.matmul(&h, &params[2]).unwrap(), &params[3])
            .unwrap();
        let loss = e.cross_entropy(&logits, &y).unwrap();
        let g = e.backward(&loss).unwrap();
        adam.step(&e, &params, &g).unwrap();
    }
    sync(&e, &params[0]);
    let native = steps as f64 / start.elapsed().as_secs_f64();
    let guest = steps as f64
        / component(
            &rt,
            &loaded,
            "train",
            &[("steps", steps), ("batch", batch as i64)],
            "seconds",
        );
    println!(
        "{:<36} native {:>8.0} steps/s  component {:>8.0} steps/s  ratio {:.2}x",
        "MLP train step (256x32 -> 64 -> 10)",
        native,
        guest,
        guest / native
    );
}

fn main() {
    println!("GPU bridge figures");
    figures(weft_tensor::Cpu, Choice::Cpu, &[128, 256, 512, 1024], 200);
    #[cfg(feature = "wgpu")]
    match weft_tensor::Wgpu::new() {
        Ok(w) => {
            println!("(wgpu adapter: {})", w.adapter());
            figures(w, Choice::Wgpu, &[64, 128, 256], 10)
        }
        Err(e) => println!("-- backend wgpu: not measured ({e})"),
    }
    #[cfg(feature = "cuda")]
    match weft_tensor::Cuda::new() {
        Ok(c) => {
            println!("(CUDA device: {})", c.device());
            figures(c, Choice::Cuda, &[256, 1024, 4096], 50)
        }
        Err(e) => println!("-- backend cuda: not measured ({e})"),
    }
}
