//! The MPI engine's all-reduce against OpenMPI's own `MPI_Allreduce` called natively on the
//! same communicator, in the same processes: the ratio is what Weft's boundary costs (the
//! non-blocking call polled against the step's deadline, the copy of the send buffer).
//!
//! `cargo bench -p weft-collective --features mpi --bench allreduce_mpi` launches itself
//! under `mpirun -np 2` and `-np 4`; rank 0 prints the rows (figures in docs/PERFORMANCE.md).

use mpi::collective::{CommunicatorCollectives as _, SystemOperation};
use mpi::topology::SimpleCommunicator;
use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};
use weft_collective::mpi::MpiRank;
use weft_collective::{Communicator, ReduceOp, Wait};

const SIZES: [usize; 4] = [1 << 10, 64 << 10, 1 << 20, 16 << 20];

/// Seconds per call of `f`, best of three batches of `reps`, the ranks lined up before each.
fn time(world: &SimpleCommunicator, reps: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..3 {
        world.barrier();
        let started = Instant::now();
        for _ in 0..reps {
            f();
        }
        best = best.min(started.elapsed().as_secs_f64() / reps as f64);
    }
    best
}

fn rank_main() {
    let weft = MpiRank::world().expect("MPI");
    let world = SimpleCommunicator::world();
    let (rank, size) = (weft.rank(), weft.world_size());
    let wait = Wait::at_most(Duration::from_secs(600));
    for bytes in SIZES {
        let n = bytes / 4;
        let reps = ((64 << 20) / bytes).clamp(5, 2000);
        let mut data = vec![rank as f32; n];
        let ours = time(&world, reps, || {
            weft.all_reduce(&mut data, ReduceOp::Sum, &wait).unwrap();
            black_box(&data);
        });
        let send = vec![rank as f32; n];
        let mut recv = vec![0.0f32; n];
        let native = time(&world, reps, || {
            world.all_reduce_into(&send[..], &mut recv[..], SystemOperation::sum());
            black_box(&recv);
        });
        if rank == 0 {
            // nccl-tests' bus bandwidth: the bytes each rank must move, 2(w-1)/w of the message.
            let bus = bytes as f64 * 2.0 * (size - 1) as f64 / size as f64 / ours / 1e9;
            println!(
                "| {size} | {} KiB | {:.1} µs | {:.1} µs | {:.2}× | {bus:.2} GB/s |",
                bytes >> 10,
                ours * 1e6,
                native * 1e6,
                ours / native
            );
        }
    }
    drop(weft);
    weft_collective::mpi::finalize();
}

fn main() {
    if std::env::var_os("OMPI_COMM_WORLD_SIZE").is_some() {
        return rank_main();
    }
    // `cargo bench` passes `--bench`; under mpirun the ranks take no arguments.
    let me = std::env::current_exe().expect("this bench");
    println!("| ranks | message | Weft's MPI all-reduce | native MPI_Allreduce | ratio | bus bandwidth |");
    println!("|---|---|---|---|---|---|");
    for np in ["2", "4"] {
        let status = Command::new("mpirun")
            .args(["-np", np, "--oversubscribe", "--bind-to", "none"])
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .arg(&me)
            .status()
            .expect("mpirun (OpenMPI's openmpi-bin) on the PATH");
        assert!(status.success(), "mpirun -np {np}: {status}");
    }
}
