//! Data-parallel training on this machine (docs/PERFORMANCE.md, "Training"): the iris MLP
//! (`components/train-mlp`, full batch of 150 rows, SGD) for a fixed number of epochs on 1, 2
//! and 4 workers, each an instance on a thread with its rank of an in-process group. Steps a
//! second, the wall time to a training loss under 0.1 (every worker count takes the same steps
//! to it: the gradients are the one worker's), and the speed-up over one worker.
//!
//! `cargo bench -p weft-runtime --bench train`
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use weft_collective::LocalGroup;
use weft_runtime::{InputArtifact, ParamValue, Runtime, RuntimeConfig, StepRequest};

const EPOCHS: i64 = 400;

/// Seconds for `EPOCHS` epochs on `world` workers, and the first epoch whose loss was under 0.1.
fn train(rt: &Runtime, world: usize, data: &Path) -> (f64, Option<u64>) {
    let c = rt.load(weft_test_programs::TRAIN_MLP.as_ref()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let outcomes: Vec<_> = std::thread::scope(|s| {
        let workers: Vec<_> = LocalGroup::ranks(world)
            .into_iter()
            .enumerate()
            .map(|(r, rank)| {
                let mut req = StepRequest::new("bench", format!("worker-{r}"));
                for (k, v) in [
                    ("label", ParamValue::String("species".into())),
                    ("epochs", ParamValue::Int(EPOCHS)),
                    ("optimizer", ParamValue::String("sgd".into())),
                    ("learning_rate", ParamValue::Float(0.05)),
                ] {
                    req.params.push((k.into(), v));
                }
                req.inputs.push(InputArtifact {
                    name: "train".into(),
                    path: data.to_path_buf(),
                });
                let dir = out.path().join(r.to_string());
                std::fs::create_dir_all(&dir).unwrap();
                req.output_dir = Some(dir);
                req.outputs = vec!["model".into()];
                req.collective = Some(Arc::new(rank));
                let (rt, c) = (&rt, &c);
                s.spawn(move || rt.run(c, &req).unwrap())
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let took = started.elapsed().as_secs_f64();
    let under = outcomes[0]
        .metrics
        .iter()
        .find(|m| m.name == "loss" && m.value < 0.1)
        .and_then(|m| m.step);
    (took, under)
}

fn main() {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../examples/data/iris.csv");
    let rt = Runtime::new(RuntimeConfig::default()).unwrap();
    train(&rt, 1, &data); // compile once, outside the timings
    println!("| workers | steps/s | time to loss < 0.1 | vs 1 worker |");
    println!("|---|---|---|---|");
    let mut one = None;
    for world in [1, 2, 4] {
        let best = (0..3)
            .map(|_| train(&rt, world, &data))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap();
        let (took, under) = best;
        let rate = EPOCHS as f64 / took;
        let to_target = under
            .map(|e| format!("{:.1} ms (epoch {e})", e as f64 / rate * 1e3))
            .unwrap_or_else(|| "not reached".into());
        let base = *one.get_or_insert(took);
        println!(
            "| {world} | {rate:.0} | {to_target} | {:.2}× |",
            base / took
        );
    }
}
