//! The MPI engine under `mpirun -np 4` on this machine: each collective against a direct
//! computation. The test launches this same binary under mpirun, running only `rank_checks`,
//! which is a no-op when not started by mpirun. With `CI` set, a missing mpirun fails.

use std::time::Duration;
use weft_collective::mpi::MpiRank;
use weft_collective::{Communicator, Wait};

mod common;

/// Under mpirun: every collective on this rank, checked; a wrong result exits 3 (a panic
/// would abort the job, which says less).
#[test]
fn rank_checks() {
    if !common::under_mpirun() {
        return;
    }
    let c = MpiRank::world().unwrap();
    let (rank, world) = (c.rank(), c.world_size());
    let failures = common::check_every_collective(&c);
    assert_eq!(c.local_rank(), rank, "one machine: local rank is the rank");
    drop(c);
    weft_collective::mpi::finalize();
    if !failures.is_empty() {
        eprintln!("{}", failures.join("\n"));
        std::process::exit(3);
    }
    println!("rank {rank} of {world}: every collective agrees");
}

#[test]
fn every_collective_under_mpirun_matches_a_direct_computation() {
    if common::under_mpirun() {
        return;
    }
    let Some((code, text)) = common::mpirun(4, "rank_checks", &[]) else {
        return;
    };
    assert_eq!(code, Some(0), "{text}");
    for rank in 0..4 {
        assert!(
            text.contains(&format!("rank {rank} of 4: every collective agrees")),
            "{text}"
        );
    }
}

/// Under mpirun: rank 2 panics while the others wait at a barrier.
#[test]
fn rank_panics() {
    if !common::under_mpirun() {
        return;
    }
    let c = MpiRank::world().unwrap();
    if c.rank() == 2 {
        panic!("rank 2 fails on purpose");
    }
    c.barrier(&Wait::at_most(Duration::from_secs(600))).unwrap();
}

/// A rank that panics aborts the job (the panic hook's MPI_Abort) instead of hanging its
/// peers in a barrier: mpirun ends, failed, rather than being killed by `timeout` (its
/// peers wait up to 600 s). OpenMPI's own "MPI_ABORT was invoked" text is not relied on: under
/// load its help printer sometimes fails to print it.
#[test]
fn a_panicking_rank_ends_the_job_instead_of_hanging_it() {
    if common::under_mpirun() {
        return;
    }
    let Some((code, text)) = common::mpirun(4, "rank_panics", &[]) else {
        return;
    };
    assert!(
        !matches!(code, Some(0 | 124 | 137) | None),
        "exit {code:?}: {text}"
    );
    assert!(text.contains("rank 2 fails on purpose"), "{text}");
}
