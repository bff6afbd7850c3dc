//! The NCCL engine. Everywhere: built, and starting it where there is no GPU (or no NCCL
//! library) is a clear error, not the loader's panic, both asked directly and from a rank of
//! an MPI job. Where a GPU is (the device suite; `WEFT_REQUIRE_NCCL` makes its absence a
//! failure): each collective against a direct computation, one rank per GPU under mpirun.

use std::time::Duration;
use weft_collective::mpi::MpiRank;
use weft_collective::nccl::{available, NcclError, NcclRank};
use weft_collective::{Communicator, Wait};

mod common;

/// Under mpirun: NCCL over this job's ranks, every collective checked; a wrong result exits 3.
/// Where NCCL cannot start, the rank prints why and exits 4.
#[test]
fn nccl_rank_checks() {
    if !common::under_mpirun() {
        return;
    }
    let mpi = MpiRank::world().unwrap();
    let c = match NcclRank::over(mpi, &Wait::at_most(Duration::from_secs(60))) {
        Ok(c) => c,
        Err(e) => {
            println!("nccl did not start: {e}");
            weft_collective::mpi::finalize();
            std::process::exit(4);
        }
    };
    let (rank, world) = (c.rank(), c.world_size());
    let failures = common::check_every_collective(&c);
    let device = c.device();
    drop(c);
    weft_collective::mpi::finalize();
    if !failures.is_empty() {
        eprintln!("{}", failures.join("\n"));
        std::process::exit(3);
    }
    println!("rank {rank} of {world} on GPU {device}: every collective agrees");
}

/// The messages a machine without NCCL may give; each names what is missing.
fn is_clear(e: &NcclError) -> bool {
    let text = e.to_string();
    match e {
        NcclError::NoDriver => text.contains("no CUDA driver (libcuda.so)"),
        NcclError::NoLibrary => text.contains("libnccl.so"),
        NcclError::NoDevice => text.contains("sees no GPU"),
        NcclError::Start(_) => false,
    }
}

#[test]
fn without_a_gpu_starting_nccl_is_a_clear_error() {
    if common::under_mpirun() {
        return;
    }
    let Err(e) = available() else {
        eprintln!("NCCL is available here: the device test covers it");
        return;
    };
    assert!(
        std::env::var_os("WEFT_REQUIRE_NCCL").is_none(),
        "WEFT_REQUIRE_NCCL is set but NCCL cannot start: {e}"
    );
    assert!(is_clear(&e), "{e:?}: {e}");
    // A rank of an MPI job asking for it gets the same error, and the job ends.
    let Some((code, text)) = common::mpirun(1, "nccl_rank_checks", &[]) else {
        return;
    };
    assert_eq!(code, Some(4), "{text}");
    assert!(text.contains(&format!("nccl did not start: {e}")), "{text}");
}

/// The device suite's smoke test: one rank per GPU (at most 4), every collective on NCCL.
#[test]
fn every_collective_on_nccl_matches_a_direct_computation() {
    if common::under_mpirun() {
        return;
    }
    let gpus = match available() {
        Ok(n) => n,
        Err(e) if std::env::var_os("WEFT_REQUIRE_NCCL").is_some() => {
            panic!("WEFT_REQUIRE_NCCL: {e}")
        }
        Err(e) => {
            eprintln!("not run on a GPU: {e}");
            return;
        }
    };
    let np = gpus.min(4);
    let Some((code, text)) = common::mpirun(np, "nccl_rank_checks", &[]) else {
        assert!(
            std::env::var_os("WEFT_REQUIRE_NCCL").is_none(),
            "WEFT_REQUIRE_NCCL: a GPU but no mpirun to start the ranks (openmpi-bin)"
        );
        return;
    };
    assert_eq!(code, Some(0), "{text}");
    for rank in 0..np {
        assert!(
            text.contains(&format!(
                "rank {rank} of {np} on GPU {rank}: every collective agrees"
            )),
            "{text}"
        );
    }
}
