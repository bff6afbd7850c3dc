//! Data-parallel training on this machine (docs/PERFORMANCE.md, "Training"): the iris MLP
//! (`components/train-mlp`, full batch of 150 rows, SGD) for a fixed number of epochs on 1, 2
//! and 4 workers, each an instance on a thread with its rank of an in-process group. Steps a
//! second, the wall time to a training loss under 0.1 (every worker count takes the same steps
//! to it: the gradients are the one worker's), and the speed-up over one worker.
//!
//! With `--features mpi` the same on 1, 2 and 4 ranks of an MPI job, each a process of its own
//! (this bench started again under `mpirun -np N`), as `wasm-run train` runs engine mpi.
//!
//! `cargo bench -p weft-runtime --bench train [--features mpi]`
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use weft_collective::{Communicator, LocalGroup};
use weft_runtime::{InputArtifact, ParamValue, Runtime, RuntimeConfig, StepOutcome, StepRequest};

const EPOCHS: i64 = 400;

/// Worker `r`'s training request on `data`, its model written under `out`.
fn request(r: usize, data: &Path, out: &Path, rank: Arc<dyn Communicator>) -> StepRequest {
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
    let dir = out.join(r.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    req.output_dir = Some(dir);
    req.outputs = vec!["model".into()];
    req.collective = Some(rank);
    req
}

/// The first epoch whose loss was under 0.1.
fn under_target(outcome: &StepOutcome) -> Option<u64> {
    outcome
        .metrics
        .iter()
        .find(|m| m.name == "loss" && m.value < 0.1)
        .and_then(|m| m.step)
}

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
                let req = request(r, data, out.path(), Arc::new(rank));
                let (rt, c) = (&rt, &c);
                s.spawn(move || rt.run(c, &req).unwrap())
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    (started.elapsed().as_secs_f64(), under_target(&outcomes[0]))
}

/// One row of the table, from the best of the runs' (seconds, epoch under target).
fn row(world: usize, engine: &str, best: (f64, Option<u64>), one: &mut Option<f64>) {
    let (took, under) = best;
    let rate = EPOCHS as f64 / took;
    let to_target = under
        .map(|e| format!("{:.1} ms (epoch {e})", e as f64 / rate * 1e3))
        .unwrap_or_else(|| "not reached".into());
    let base = *one.get_or_insert(took);
    println!(
        "| {world} | {engine} | {rate:.0} | {to_target} | {:.2}× |",
        base / took
    );
}

/// A rank of `mpirun -np N` of this bench: trains four times (the first warms up), the ranks
/// lined up before each; rank 0 prints its best.
#[cfg(feature = "mpi")]
fn rank_main(data: &Path) {
    let mpi = Arc::new(weft_collective::mpi::MpiRank::world().expect("MPI"));
    let wait = weft_collective::Wait::at_most(std::time::Duration::from_secs(600));
    let rt = Runtime::new(RuntimeConfig::default()).unwrap();
    let c = rt.load(weft_test_programs::TRAIN_MLP.as_ref()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut best = (f64::MAX, None);
    for i in 0..4 {
        mpi.barrier(&wait).unwrap();
        let req = request(mpi.rank(), data, out.path(), mpi.clone());
        let started = Instant::now();
        let outcome = rt.run(&c, &req).unwrap();
        let took = started.elapsed().as_secs_f64();
        if i > 0 && took < best.0 {
            best = (took, under_target(&outcome));
        }
    }
    if mpi.rank() == 0 {
        println!("mpi-best {} {}", best.0, best.1.map_or(-1, |e| e as i64));
    }
    drop(mpi);
    weft_collective::mpi::finalize();
}

/// The MPI rows: this bench under `mpirun -np 1, 2, 4`.
#[cfg(feature = "mpi")]
fn mpi_rows() {
    let me = std::env::current_exe().expect("this bench");
    let mut one = None;
    for np in [1, 2, 4] {
        let out = std::process::Command::new("mpirun")
            .args([
                "-np",
                &np.to_string(),
                "--oversubscribe",
                "--bind-to",
                "none",
            ])
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .arg(&me)
            .output()
            .expect("mpirun (OpenMPI's openmpi-bin) on the PATH");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "mpirun -np {np}: {}{text}",
            out.status
        );
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("mpi-best "))
            .expect("rank 0's line");
        let (took, under) = line.split_once(' ').unwrap();
        let under: i64 = under.parse().unwrap();
        let best = (took.parse().unwrap(), u64::try_from(under).ok());
        row(np, "MPI (processes)", best, &mut one);
    }
}

fn main() {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../examples/data/iris.csv");
    #[cfg(feature = "mpi")]
    if std::env::var_os("OMPI_COMM_WORLD_SIZE").is_some() {
        return rank_main(&data);
    }
    let rt = Runtime::new(RuntimeConfig::default()).unwrap();
    train(&rt, 1, &data); // compile once, outside the timings
    println!("| workers | engine | steps/s | time to loss < 0.1 | vs 1 worker |");
    println!("|---|---|---|---|---|");
    let mut one = None;
    for world in [1, 2, 4] {
        let best = (0..3)
            .map(|_| train(&rt, world, &data))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap();
        row(world, "local (threads)", best, &mut one);
    }
    #[cfg(feature = "mpi")]
    mpi_rows();
}
