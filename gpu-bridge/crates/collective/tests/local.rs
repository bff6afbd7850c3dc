//! The in-process group: each collective against a direct computation across 1 to 5 ranks on
//! threads, and the gang's failures (disagreeing calls, a rank that leaves, a wait that runs
//! out, a cancel) reaching every rank instead of a hang.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weft_collective::{
    shard, CollectiveError, Communicator, LocalGroup, LocalRank, ReduceOp, Wait,
};

fn wait() -> Wait {
    Wait::at_most(Duration::from_secs(30))
}

/// Rank r's data: 8 values that differ by rank and position.
fn data(rank: usize) -> Vec<f32> {
    (0..8)
        .map(|i| (rank * 10 + i) as f32 * if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect()
}

/// Runs `f` on every rank of a `world`-rank group, each on its own thread.
fn on_ranks<T: Send + 'static>(
    world: usize,
    f: impl Fn(LocalRank) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let f = Arc::new(f);
    let threads: Vec<_> = LocalGroup::ranks(world)
        .into_iter()
        .map(|rank| {
            let f = f.clone();
            std::thread::spawn(move || f(rank))
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

fn direct(world: usize, op: ReduceOp) -> Vec<f32> {
    (0..8)
        .map(|i| {
            let xs = (0..world).map(|r| data(r)[i]);
            match op {
                ReduceOp::Sum => xs.sum(),
                ReduceOp::Mean => xs.sum::<f32>() / world as f32,
                ReduceOp::Max => xs.fold(f32::MIN, f32::max),
                ReduceOp::Min => xs.fold(f32::MAX, f32::min),
            }
        })
        .collect()
}

#[test]
fn every_collective_matches_a_direct_computation() {
    for world in 1..=5 {
        for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min] {
            let out = on_ranks(world, move |c| {
                let mut d = data(c.rank());
                c.all_reduce(&mut d, op, &wait()).unwrap();
                d
            });
            for got in out {
                assert_eq!(got, direct(world, op), "all-reduce {op:?}, world {world}");
            }
        }
        let root = world - 1;
        for got in on_ranks(world, move |c| {
            let mut d = data(c.rank());
            c.broadcast(&mut d, root, &wait()).unwrap();
            d
        }) {
            assert_eq!(got, data(root), "broadcast, world {world}");
        }
        let all: Vec<f32> = (0..world).flat_map(data).collect();
        for got in on_ranks(world, |c| c.all_gather(&data(c.rank()), &wait()).unwrap()) {
            assert_eq!(got, all, "all-gather, world {world}");
        }
        // Reduce-scatter: 8 * world elements, rank r gets the r-th eighth... of the sum.
        let long = move |rank: usize| -> Vec<f32> { (0..world).flat_map(|_| data(rank)).collect() };
        let out = on_ranks(world, move |c| {
            let part = c
                .reduce_scatter(&long(c.rank()), ReduceOp::Sum, &wait())
                .unwrap();
            (c.rank(), part)
        });
        for (rank, part) in out {
            assert_eq!(
                part,
                direct(world, ReduceOp::Sum),
                "reduce-scatter rank {rank}"
            );
        }
        on_ranks(world, |c| c.barrier(&wait()).unwrap());
        for (rank, c) in LocalGroup::ranks(world).iter().enumerate() {
            assert_eq!((c.rank(), c.world_size()), (rank, world));
            assert_eq!(
                shard(100, rank, world).len(),
                100 / world + usize::from(rank < 100 % world)
            );
        }
    }
}

/// Many rounds back to back: a fast rank never reads a round it has not finished.
#[test]
fn rounds_in_sequence_stay_in_step() {
    let out = on_ranks(4, |c| {
        let mut total = 0.0;
        for step in 0..500 {
            let mut d = vec![(c.rank() + step) as f32];
            c.all_reduce(&mut d, ReduceOp::Sum, &wait()).unwrap();
            total += d[0];
        }
        total
    });
    let want: f32 = (0..500)
        .map(|s| (0..4).map(|r| (r + s) as f32).sum::<f32>())
        .sum();
    assert!(out.iter().all(|&t| t == want), "{out:?} vs {want}");
}

#[test]
fn disagreeing_ranks_fail_every_rank_naming_the_calls() {
    let out = on_ranks(3, |c| {
        let mut d = vec![1.0; 4];
        if c.rank() == 2 {
            c.broadcast(&mut d, 0, &wait())
        } else {
            c.all_reduce(&mut d, ReduceOp::Sum, &wait())
        }
    });
    for r in &out {
        let Err(CollectiveError::Mismatch(m)) = r else {
            panic!("{r:?}")
        };
        assert!(
            m.contains("all-reduce(Sum)") && m.contains("rank 2 called broadcast(root 0)"),
            "{m}"
        );
    }
    let out = on_ranks(2, |c| c.all_gather(&vec![0.0; 2 + c.rank()], &wait()));
    assert!(out.iter().all(|r| matches!(r, Err(CollectiveError::Mismatch(m)) if m.contains("rank 0 gave 2 elements, rank 1 3"))), "{out:?}");
    let out = on_ranks(2, |c| c.broadcast(&mut [0.0], 7, &wait()));
    assert!(
        out.iter()
            .all(|r| matches!(r, Err(CollectiveError::Mismatch(m)) if m.contains("root 7"))),
        "{out:?}"
    );
    let out = on_ranks(3, |c| c.reduce_scatter(&[0.0; 4], ReduceOp::Sum, &wait()));
    assert!(out.iter().all(|r| matches!(r, Err(CollectiveError::Mismatch(m)) if m.contains("multiple of the world size"))), "{out:?}");
}

/// A rank that ends (its worker failed) fails the peers waiting on it, and their later calls.
#[test]
fn a_rank_that_leaves_fails_its_peers() {
    let out = on_ranks(3, |c| {
        if c.rank() == 1 {
            drop(c);
            return vec![];
        }
        let first = c.barrier(&wait());
        let later = c.barrier(&wait());
        vec![first, later]
    });
    for r in out.iter().flatten() {
        assert_eq!(r, &Err(CollectiveError::Peer("rank 1 left the job".into())));
    }
}

/// A wait that runs out, or a cancelled step, fails the gang rather than hanging it.
#[test]
fn a_wait_that_runs_out_or_is_cancelled_fails_the_gang() {
    let mut ranks = LocalGroup::ranks(2);
    let late = ranks.pop().unwrap();
    let c = ranks.pop().unwrap();
    let started = Instant::now();
    let e = c
        .barrier(&Wait::at_most(Duration::from_millis(200)))
        .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(
        e,
        CollectiveError::Peer("rank 0 ran out of time waiting for the other ranks".into())
    );
    assert_eq!(late.barrier(&wait()), Err(e));

    let cancel = Arc::new(AtomicBool::new(true));
    let mut ranks = LocalGroup::ranks(2);
    let _peer = ranks.pop().unwrap();
    let c = ranks.pop().unwrap();
    let w = Wait {
        deadline: Instant::now() + Duration::from_secs(30),
        cancel: Some(cancel),
    };
    assert_eq!(c.barrier(&w), Err(CollectiveError::Cancelled));
    assert_eq!(
        _peer.barrier(&wait()),
        Err(CollectiveError::Peer("rank 0 was cancelled".into()))
    );
}

/// Rank r's large message: enough elements that every rank reduces its slice, with values
/// whose sums depend on their order (so a different order would show in the bits).
fn large(rank: usize, len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919 + rank * 104_729) % 1000) as f32 * 1e-3 + rank as f32 * 1e5)
        .collect()
}

/// A large all-reduce, reduced by every rank at once (each its slice, lengths that do not
/// divide evenly included), gives the bits the serial reduction gives, for every op, round
/// after round.
#[test]
fn a_large_all_reduce_shared_by_the_ranks_is_the_serial_reduction_bit_for_bit() {
    for (world, len) in [(2, 100_003), (3, 65_536), (5, 70_001)] {
        for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min] {
            let inputs: Vec<Vec<f32>> = (0..world).map(|r| large(r, len)).collect();
            let slices: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
            let want = weft_collective::reduce(&slices, op);
            let out = on_ranks(world, move |c| {
                (0..3)
                    .map(|_| {
                        let mut d = large(c.rank(), len);
                        c.all_reduce(&mut d, op, &wait()).unwrap();
                        d
                    })
                    .collect::<Vec<_>>()
            });
            for (rank, rounds) in out.iter().enumerate() {
                for got in rounds {
                    let same = got.len() == want.len()
                        && got
                            .iter()
                            .zip(&want)
                            .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "world {world}, {op:?}: rank {rank} differs");
                }
            }
        }
    }
}
