//! Bounds a step's host-side waits by its time limit.
//!
//! Epoch interruption stops wasm code, but a guest blocked in a host call (`sleep` is
//! `subscribe-duration` + `poll`) does not run wasm until the call returns, so a long sleep would
//! outlive `--timeout`. The two monotonic-clock subscriptions are shadowed to wait at most until
//! the step's deadline (plus one tick); the guest then runs wasm again, past the deadline, and is
//! interrupted there.

use crate::state::StepState;
use std::time::Instant;
use wasmtime::component::{Linker, Resource};
use wasmtime::StoreContextMut;
use wasmtime_wasi::clocks::WasiClocksView;
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock::Host as MonotonicClock;
use wasmtime_wasi::p2::DynPollable;

/// The monotonic clock interface as wasmtime-wasi 48 registers it.
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
