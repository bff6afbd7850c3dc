//! The runtime API: one engine survives every failure, and components are cached on disk.

use crate::support::*;
use std::time::Duration;
use weft_runtime::{
    LimitExceeded, LoadSource, ParamValue, Runtime, RuntimeConfig, StepError, StepRequest,
};

fn request(mode: &str) -> StepRequest {
    let mut req = StepRequest::new("run-1", mode);
    req.params
        .push(("mode".into(), ParamValue::String(mode.into())));
    req
}

#[test]
fn the_host_keeps_working_after_each_limit_and_trap() {
    let rt = Runtime::new(RuntimeConfig::default()).unwrap();
    let misbehave = rt.load(MISBEHAVE.as_ref()).unwrap();
    let noop = rt.load(NOOP.as_ref()).unwrap();
    let out = tempfile::tempdir().unwrap();

    let mut looping = request("loop");
    looping.limits.timeout = Duration::from_millis(100);
    let mut alloc = request("alloc");
    alloc.limits.memory_bytes = 16 << 20;
    let mut write = request("write");
    write
        .params
        .push(("bytes".into(), ParamValue::Int(1 << 20)));
    write.output_dir = Some(out.path().to_path_buf());
    write.outputs = vec!["out".into()];
    write.limits.max_output_bytes = 64 << 10;
    let trap = request("trap");

    let expect = |r: Result<_, StepError>, kind: &str| match r {
        Err(e) => assert_eq!(e.kind(), kind, "{e}"),
        Ok(_) => panic!("expected {kind}"),
    };
    expect(rt.run(&misbehave, &looping), "timeout");
    rt.run(&noop, &StepRequest::new("run-1", "after-timeout"))
        .unwrap();
    expect(rt.run(&misbehave, &alloc), "memory-limit");
    rt.run(&noop, &StepRequest::new("run-1", "after-oom"))
        .unwrap();
    expect(rt.run(&misbehave, &write), "output-limit");
    rt.run(&noop, &StepRequest::new("run-1", "after-output"))
        .unwrap();
    expect(rt.run(&misbehave, &trap), "trap");
    rt.run(&noop, &StepRequest::new("run-1", "after-trap"))
        .unwrap();
}

/// More steps at once than the pool has slots: the one without a slot is told so in one line
/// (transient, `busy`), not wasmtime's "maximum concurrent limit ... for memory stripe 0".
#[test]
fn a_full_instance_pool_is_said_plainly() {
    let rt = Runtime::new(RuntimeConfig {
        max_concurrent_steps: 1,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let misbehave = rt.load(MISBEHAVE.as_ref()).unwrap();
    let noop = rt.load(NOOP.as_ref()).unwrap();
    let started = std::sync::Barrier::new(2);
    std::thread::scope(|scope| {
        let sleeper = scope.spawn(|| {
            let mut req = request("sleep");
            req.params.push(("ms".into(), ParamValue::Int(3000)));
            started.wait();
            // The first probe below may hold the one slot for a moment: try again until in.
            loop {
                match rt.run(&misbehave, &req) {
                    Err(e) if e.kind() == "busy" => std::thread::yield_now(),
                    other => break other,
                }
            }
        });
        started.wait();
        // Until the sleeper holds its slot, a second step may still find it free.
        let err = (0..100)
            .find_map(|_| {
                let r = rt.run(&noop, &StepRequest::new("run-2", "noop")).err();
                r.is_none()
                    .then(|| std::thread::sleep(Duration::from_millis(20)));
                r
            })
            .expect("the second step never found the pool full");
        assert_eq!(err.kind(), "busy", "{err}");
        assert!(err.to_string().contains("instance pool is full"), "{err}");
        assert!(sleeper.join().unwrap().is_ok());
    });
}

#[test]
fn a_runaway_step_does_not_hold_up_steps_running_beside_it() {
    let rt = Runtime::new(RuntimeConfig::default()).unwrap();
    let misbehave = rt.load(MISBEHAVE.as_ref()).unwrap();
    let noop = rt.load(NOOP.as_ref()).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    std::thread::scope(|scope| {
        let spinner = scope.spawn(|| {
            let mut req = request("loop");
            req.cancel = Some(stop.clone());
            rt.run(&misbehave, &req)
        });
        for i in 0..50 {
            rt.run(&noop, &StepRequest::new("run-2", format!("noop-{i}")))
                .unwrap();
        }
        // The property: all fifty finished while the spinner was still spinning (it only
        // stops when told to, below), so none of them waited for it.
        assert!(
            !spinner.is_finished(),
            "the spinner stopped before the quick steps finished"
        );
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        match spinner.join().unwrap() {
            Err(StepError::Cancelled) => {}
            other => panic!(
                "expected the spinner cancelled, got {:?}",
                other.map(|_| ())
            ),
        }
    });
}

#[test]
fn compiled_components_are_cached_on_disk_and_a_corrupt_entry_is_recompiled() {
    let cache = tempfile::tempdir().unwrap();
    let config = RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..RuntimeConfig::default()
    };

    let first = Runtime::new(config.clone()).unwrap();
    assert_eq!(
        first.load(NOOP.as_ref()).unwrap().source,
        LoadSource::Compiled
    );
    assert_eq!(
        first.load(NOOP.as_ref()).unwrap().source,
        LoadSource::Memory
    );
    drop(first);

    let second = Runtime::new(config.clone()).unwrap();
    let loaded = second.load(NOOP.as_ref()).unwrap();
    assert_eq!(loaded.source, LoadSource::DiskCache);
    second
        .run(&loaded, &StepRequest::new("r", "cached"))
        .unwrap();

    for entry in std::fs::read_dir(cache.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    let third = Runtime::new(config).unwrap();
    let loaded = third.load(NOOP.as_ref()).unwrap();
    assert_eq!(loaded.source, LoadSource::Compiled);
    third
        .run(&loaded, &StepRequest::new("r", "recompiled"))
        .unwrap();
}

/// Bit rot in a cache entry's machine code (not its header, which wasmtime checks) used to
/// crash every run that loaded it (SIGSEGV) or trap in nonsense: each of these damages is found
/// before the code is loaded, the component compiled again, and the rewritten entry used after.
#[test]
fn a_cache_entry_with_damaged_code_is_recompiled_not_run() {
    let cache = tempfile::tempdir().unwrap();
    let config = RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..RuntimeConfig::default()
    };
    Runtime::new(config.clone())
        .unwrap()
        .load(NOOP.as_ref())
        .unwrap();
    let entry = std::fs::read_dir(cache.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let pristine = std::fs::read(&entry).unwrap();
    let len = pristine.len();
    type Damage = fn(&mut [u8]);
    let damages: [(&str, std::ops::Range<usize>, Damage); 3] = [
        ("one bit flipped mid-file", len / 2..len / 2 + 1, |b| {
            b[0] ^= 0x10
        }),
        ("a zeroed 4 KiB run", len / 3..len / 3 + 4096, |b| b.fill(0)),
        ("the last byte changed", len - 1..len, |b| b[0] ^= 0xff),
    ];
    for (what, range, damage) in damages {
        let mut bytes = pristine.clone();
        damage(&mut bytes[range]);
        std::fs::write(&entry, &bytes).unwrap();
        let rt = Runtime::new(config.clone()).unwrap();
        let loaded = rt.load(NOOP.as_ref()).unwrap();
        assert_eq!(loaded.source, LoadSource::Compiled, "{what}");
        rt.run(&loaded, &StepRequest::new("r", "after-damage"))
            .unwrap();
        let again = Runtime::new(config.clone())
            .unwrap()
            .load(NOOP.as_ref())
            .unwrap();
        assert_eq!(
            again.source,
            LoadSource::DiskCache,
            "{what}: entry rewritten"
        );
    }
}

/// A memory slot is reused by the next instance: nothing one step wrote (in its static data or
/// in pages it grew) is visible to the next, however the host resets slots (issue 12's move
/// off the page scan, docs/PERFORMANCE.md). One slot, so every run reuses the same memory.
#[test]
fn a_step_sees_nothing_the_previous_instance_left_in_memory() {
    let rt = Runtime::new(RuntimeConfig {
        max_concurrent_steps: 1,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let misbehave = rt.load(MISBEHAVE.as_ref()).unwrap();
    // Growing more than the slot keeps resident (16 MiB) covers the released part too.
    for pages in [16, 400, 16, 400] {
        let mut req = request("residue");
        req.params.push(("pages".into(), ParamValue::Int(pages)));
        let out = rt.run(&misbehave, &req).unwrap();
        let residue = out.params.iter().find(|(n, _)| n == "residue");
        assert!(
            matches!(residue, Some((_, ParamValue::Int(0)))),
            "run with {pages} pages found {residue:?}"
        );
    }
}

/// The metrics a step may report are bounded: one past the limit stops the step with the
/// limit named, and the host keeps only that many.
#[test]
fn reporting_past_the_metrics_limit_stops_the_step() {
    let rt = Runtime::new(RuntimeConfig::default()).unwrap();
    let misbehave = rt.load(MISBEHAVE.as_ref()).unwrap();
    let run = |count: i64| {
        let mut req = request("metric-name");
        req.params.push(("bytes".into(), ParamValue::Int(4)));
        req.params.push(("count".into(), ParamValue::Int(count)));
        req.limits.max_metrics = 50;
        rt.run(&misbehave, &req)
    };
    assert_eq!(
        run(50).unwrap().metrics.len(),
        50,
        "up to the limit is fine"
    );
    match run(51) {
        Err(StepError::Limit(LimitExceeded::Metrics { limit })) => assert_eq!(limit, 50),
        other => panic!(
            "expected the metrics limit, got {:?}",
            other.map(|o| o.metrics.len())
        ),
    }
}
