//! All-reduce bandwidth of the in-process group against its floor in the same process: one
//! thread summing the ranks' vectors and copying the result out to each (what any in-memory
//! all-reduce must read and write). The ratio is the group's overhead: rounds, locks, copies.
//!
//! `cargo bench -p weft-collective --bench allreduce` (figures in docs/PERFORMANCE.md).

use std::hint::black_box;
use std::time::{Duration, Instant};
use weft_collective::{reduce, Communicator, LocalGroup, ReduceOp, Wait};

/// Seconds per all-reduce of `n` floats on `world` ranks (threads), best of a few batches.
fn group(world: usize, n: usize, reps: usize) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let ranks = LocalGroup::ranks(world);
        let started = Instant::now();
        std::thread::scope(|s| {
            for rank in ranks {
                s.spawn(move || {
                    let mut data = vec![rank.rank() as f32; n];
                    let wait = Wait::at_most(Duration::from_secs(60));
                    for _ in 0..reps {
                        rank.all_reduce(&mut data, ReduceOp::Sum, &wait).unwrap();
                    }
                    black_box(&data);
                });
            }
        });
        best = best.min(started.elapsed().as_secs_f64() / reps as f64);
    }
    best
}

/// The floor: one thread reduces the ranks' vectors and copies the result to each.
fn floor(world: usize, n: usize, reps: usize) -> f64 {
    let inputs: Vec<Vec<f32>> = (0..world).map(|r| vec![r as f32; n]).collect();
    let mut outputs: Vec<Vec<f32>> = vec![vec![0.0; n]; world];
    let mut best = f64::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        for _ in 0..reps {
            let views: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
            let sum = reduce(&views, ReduceOp::Sum);
            for out in outputs.iter_mut() {
                out.copy_from_slice(&sum);
            }
            black_box(&outputs);
        }
        best = best.min(started.elapsed().as_secs_f64() / reps as f64);
    }
    best
}

fn main() {
    println!(
        "| ranks | message | in-process all-reduce | floor (1 thread) | ratio | bus bandwidth |"
    );
    println!("|---|---|---|---|---|---|");
    for world in [2, 4] {
        for bytes in [1usize << 10, 64 << 10, 1 << 20, 16 << 20] {
            let n = bytes / 4;
            let reps = ((64 << 20) / bytes).clamp(5, 2000);
            let t = group(world, n, reps);
            let f = floor(world, n, reps);
            // nccl-tests' bus bandwidth: the bytes each rank must move, 2(w-1)/w of the message.
            let bus = bytes as f64 * 2.0 * (world - 1) as f64 / world as f64 / t / 1e9;
            println!(
                "| {world} | {} KiB | {:.1} µs | {:.1} µs | {:.2}× | {bus:.2} GB/s |",
                bytes >> 10,
                t * 1e6,
                f * 1e6,
                t / f
            );
        }
    }
}
