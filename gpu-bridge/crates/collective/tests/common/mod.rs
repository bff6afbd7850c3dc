//! What the MPI and NCCL engines' tests share: every collective on one rank checked against a
//! direct computation, and this test binary started under mpirun.
#![allow(dead_code)]

use std::process::Command;
use std::time::Duration;
use weft_collective::{Communicator, ReduceOp, Wait};

/// Rank r's data: 8 values that differ by rank and position.
fn data(rank: usize) -> Vec<f32> {
    (0..8)
        .map(|i| (rank * 10 + i) as f32 * if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect()
}

fn direct(world: usize, f: fn(&[f32]) -> f32) -> Vec<f32> {
    (0..8)
        .map(|i| f(&(0..world).map(|r| data(r)[i]).collect::<Vec<_>>()))
        .collect()
}

/// Every collective on rank `c`, each result against a direct computation: what differs.
pub fn check_every_collective(c: &dyn Communicator) -> Vec<String> {
    let (rank, world) = (c.rank(), c.world_size());
    let wait = Wait::at_most(Duration::from_secs(60));
    let mut failures = Vec::new();
    let mut check = |what: &str, got: Vec<f32>, want: Vec<f32>| {
        if got != want {
            failures.push(format!("rank {rank}: {what}: {got:?} != {want:?}"));
        }
    };
    for (name, op, f) in [
        (
            "sum",
            ReduceOp::Sum,
            (|xs: &[f32]| xs.iter().sum()) as fn(&[f32]) -> f32,
        ),
        ("mean", ReduceOp::Mean, |xs| {
            xs.iter().sum::<f32>() / xs.len() as f32
        }),
        ("max", ReduceOp::Max, |xs| {
            xs.iter().cloned().fold(f32::MIN, f32::max)
        }),
        ("min", ReduceOp::Min, |xs| {
            xs.iter().cloned().fold(f32::MAX, f32::min)
        }),
    ] {
        let mut d = data(rank);
        c.all_reduce(&mut d, op, &wait).unwrap();
        check(&format!("all-reduce {name}"), d, direct(world, f));
    }
    let mut d = data(rank);
    c.broadcast(&mut d, world - 1, &wait).unwrap();
    check("broadcast", d, data(world - 1));
    let all: Vec<f32> = (0..world).flat_map(data).collect();
    check(
        "all-gather",
        c.all_gather(&data(rank), &wait).unwrap(),
        all.clone(),
    );
    // Every rank reduce-scatters the gathered vector: rank r's part is world × its own data.
    let part = c.reduce_scatter(&all, ReduceOp::Sum, &wait).unwrap();
    check(
        "reduce-scatter",
        part,
        data(rank).iter().map(|v| v * world as f32).collect(),
    );
    c.barrier(&wait).unwrap();
    failures
}

/// Whether this process is a rank that mpirun started.
pub fn under_mpirun() -> bool {
    std::env::var_os("OMPI_COMM_WORLD_SIZE").is_some()
}

/// `mpirun -np NP` of this binary's `child` test, under `timeout` (exit 124 or 137: it hung):
/// its exit code and output; None where there is no mpirun (outside CI).
pub fn mpirun(np: usize, child: &str, env: &[(&str, &str)]) -> Option<(Option<i32>, String)> {
    let Ok(mpirun) = which("mpirun") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI: mpirun not found (cargo xtask test installs openmpi-bin)"
        );
        eprintln!("mpirun not found: not run");
        return None;
    };
    let me = std::env::current_exe().unwrap();
    let out = Command::new("timeout")
        .args(["-k", "5", "120"])
        .arg(mpirun)
        .args(["-np", &np.to_string(), "--oversubscribe"])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .envs(env.iter().copied())
        .arg(&me)
        .args(["--exact", child, "--nocapture", "--test-threads", "1"])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    Some((out.status.code(), text))
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .ok_or(())
}
