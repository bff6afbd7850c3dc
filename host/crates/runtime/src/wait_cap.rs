//! Bounds a step's host-side waits by its time limit.
//!
//! Epoch interruption stops wasm code, but a guest blocked in a host call (`sleep` is
//! `subscribe-duration` + `poll`) does not run wasm until the call returns, so a long sleep would
//! outlive `--timeout`. The two monotonic-clock subscriptions are shadowed to wait at most until
//! the step's deadline (plus one tick); the guest then runs wasm again, past the deadline, and is
//! interrupted there.

use crate::state::StepState;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Linker, Resource};
use wasmtime::StoreContextMut;
use wasmtime_wasi::clocks::WasiClocksView;
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock::Host as MonotonicClock;
use wasmtime_wasi::p2::bindings::io::poll;
use wasmtime_wasi::p2::bindings::io::streams::{self, HostInputStream, HostOutputStream};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable};

/// The monotonic clock interface as wasmtime-wasi 50 registers it.
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

fn capped(state: &StepState, nanos: u64) -> u64 {
    let remaining =
        state.deadline.saturating_duration_since(Instant::now()) + crate::engine::EPOCH_TICK;
    nanos.min(u64::try_from(remaining.as_nanos()).unwrap_or(u64::MAX))
}

pub(crate) fn add_to_linker(linker: &mut Linker<StepState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap(
        "subscribe-duration",
        |mut store: StoreContextMut<'_, StepState>, (nanos,): (u64,)| {
            let state = store.data_mut();
            let nanos = capped(state, nanos);
            Ok((MonotonicClock::subscribe_duration(
                &mut state.clocks(),
                nanos,
            )?,))
        },
    )?;
    clock.func_wrap(
        "subscribe-instant",
        |mut store: StoreContextMut<'_, StepState>, (when,): (u64,)| {
            let state = store.data_mut();
            let now = MonotonicClock::now(&mut state.clocks())?;
            let nanos = capped(state, when.saturating_sub(now));
            let pollable: Resource<DynPollable> =
                MonotonicClock::subscribe_duration(&mut state.clocks(), nanos)?;
            Ok((pollable,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// The I/O interfaces as wasmtime-wasi 50 registers them.
const STREAMS: &str = "wasi:io/streams@0.2.12";
const POLL: &str = "wasi:io/poll@0.2.12";

/// How often a bounded wait looks at the cancel flag (Ctrl-C) while it waits.
const CANCEL_CHECK: Duration = crate::engine::EPOCH_TICK;

/// Runs a blocking host wait (a socket read, a poll) on the step's behalf, but no longer than its
/// time limit: a guest blocked in the host runs no wasm, so epoch interruption cannot stop it.
/// At the deadline the step traps as interrupted (reported as its time limit); on cancellation,
/// as cancelled. The wait itself is dropped, which is how wasmtime-wasi cancels one.
fn bounded<F: Future>(
    deadline: Instant,
    cancel: Option<Arc<AtomicBool>>,
    wait: F,
) -> wasmtime::Result<F::Output> {
    wasmtime_wasi::runtime::in_tokio(async move {
        tokio::pin!(wait);
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(wasmtime::Trap::Interrupt.into());
            }
            if cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) {
                return Err(crate::step::Cancelled.into());
            }
            let slice = (deadline - now).min(CANCEL_CHECK);
            if let Ok(out) = tokio::time::timeout(slice, &mut wait).await {
                return Ok(out);
            }
        }
    })
}

/// A stream operation's result in the WIT's terms (`stream-error` as a resource).
fn stream_result<T>(
    state: &mut StepState,
    r: wasmtime_wasi::p2::StreamResult<T>,
) -> wasmtime::Result<(Result<T, streams::StreamError>,)> {
    Ok((match r {
        Ok(v) => Ok(v),
        Err(e) => Err(streams::Host::convert_stream_error(&mut state.table, e)?),
    },))
}

/// Shadows every blocking call of `wasi:io` (the ones sockets and pipes block in) with one bounded
/// by the step's deadline. Only for the blocking linker: async callers (served models) drop the
/// whole call at their own time limit.
pub(crate) fn add_blocking_io(linker: &mut Linker<StepState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut s = linker.instance(STREAMS)?;
    s.func_wrap(
        "[method]input-stream.blocking-read",
        |mut store: StoreContextMut<'_, StepState>, (st, len): (Resource<DynInputStream>, u64)| {
            let state = store.data_mut();
            let (deadline, cancel) = (state.deadline, state.cancel.clone());
            let r = bounded(deadline, cancel, state.table.blocking_read(st, len))?;
            stream_result(state, r)
        },
    )?;
    s.func_wrap(
        "[method]input-stream.blocking-skip",
        |mut store: StoreContextMut<'_, StepState>, (st, len): (Resource<DynInputStream>, u64)| {
            let state = store.data_mut();
            let (deadline, cancel) = (state.deadline, state.cancel.clone());
            let r = bounded(deadline, cancel, state.table.blocking_skip(st, len))?;
            stream_result(state, r)
        },
    )?;
    s.func_wrap(
        "[method]output-stream.blocking-write-and-flush",
        |mut store: StoreContextMut<'_, StepState>,
         (st, bytes): (Resource<DynOutputStream>, Vec<u8>)| {
            let state = store.data_mut();
            let (deadline, cancel) = (state.deadline, state.cancel.clone());
            let r = bounded(
                deadline,
                cancel,
                state.table.blocking_write_and_flush(st, bytes),
            )?;
            stream_result(state, r)
        },
    )?;
    s.func_wrap(
        "[method]output-stream.blocking-write-zeroes-and-flush",
        |mut store: StoreContextMut<'_, StepState>, (st, len): (Resource<DynOutputStream>, u64)| {
            let state = store.data_mut();
            let (deadline, cancel) = (state.deadline, state.cancel.clone());
            let r = bounded(
                deadline,
                cancel,
                state.table.blocking_write_zeroes_and_flush(st, len),
            )?;
            stream_result(state, r)
        },
    )?;
    s.func_wrap(
        "[method]output-stream.blocking-flush",
        |mut store: StoreContextMut<'_, StepState>, (st,): (Resource<DynOutputStream>,)| {
            let state = store.data_mut();
            let (deadline, cancel) = (state.deadline, state.cancel.clone());
            let r = bounded(deadline, cancel, state.table.blocking_flush(st))?;
            stream_result(state, r)
        },
    )?;
    s.func_wrap(
        "[method]output-stream.blocking-splice",
        |mut store: StoreContextMut<'_, StepState>,
         (dst, src, len): (Resource<DynOutputStream>, Resource<DynInputStream>, u64)| {
            let state = store.data_mut();
            let (deadline, cancel) = (state.deadline, state.cancel.clone());
            let r = bounded(deadline, cancel, state.table.blocking_splice(dst, src, len))?;
            stream_result(state, r)
        },
    )?;
    let mut p = linker.instance(POLL)?;
    p.func_wrap(
        "poll",
        |mut store: StoreContextMut<'_, StepState>, (list,): (Vec<Resource<DynPollable>>,)| {
            let state = store.data_mut();
            let (deadline, cancel) = (state.deadline, state.cancel.clone());
            Ok((bounded(
                deadline,
                cancel,
                poll::Host::poll(&mut state.table, list),
            )??,))
        },
    )?;
    p.func_wrap(
        "[method]pollable.block",
        |mut store: StoreContextMut<'_, StepState>, (one,): (Resource<DynPollable>,)| {
            let state = store.data_mut();
            let (deadline, cancel) = (state.deadline, state.cancel.clone());
            bounded(
                deadline,
                cancel,
                poll::HostPollable::block(&mut state.table, one),
            )?
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
