//! Pre-initialised predictors: a model's component is run once up to the end of its `load`, and
//! its memories and globals at that point become the initial state of a new component (wizer's
//! snapshot), so every fresh per-request instance starts with the model already in memory
//! instead of reading and parsing it again through WASI.
//!
//! Only linear memories and globals are captured. Host resources the guest held after `load`
//! (open files, preopened directories) are not: a snapshot instance that touches them again gets
//! "unknown handle" and fails alone, like any other trap. A served model reads its files in
//! `load` and answers `infer` from memory, which is what the predictor world asks of it.

use crate::error::StepError;
use crate::state::StepState;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use wasmtime::component::{Instance, WasmList};
use wasmtime::Store;
use wasmtime_wizer::{ComponentInstanceState, Wizer};

/// Adds wizer's state-access exports to `component`, returning what the snapshot needs later.
pub(crate) fn instrument<'a>(
    path: &str,
    component: &'a [u8],
) -> Result<(wasmtime_wizer::ComponentContext<'a>, Vec<u8>), StepError> {
    Wizer::new()
        .instrument_component(component)
        .map_err(|e| StepError::Snapshot {
            path: path.to_string(),
            reason: format!("{e:#}"),
        })
}

/// The component rewritten so its initial state is `instance`'s present state.
pub(crate) fn snapshot(
    path: &str,
    cx: &wasmtime_wizer::ComponentContext<'_>,
    store: &mut Store<StepState>,
    instance: Instance,
) -> Result<Vec<u8>, StepError> {
    let wizer = Wizer::new();
    let mut access = Access { store, instance };
    ready(wizer.snapshot_component(cx, &mut access))
        .expect("reading an instance's state never waits")
        .map_err(|e| StepError::Snapshot {
            path: path.to_string(),
            reason: format!("{e:#}"),
        })
}

/// Reads the instrumented instance's memories and globals through its access exports. Every
/// call is a plain synchronous call into the instance, so each future is ready when polled.
struct Access<'a> {
    store: &'a mut Store<StepState>,
    instance: Instance,
}

impl Access<'_> {
    fn call<R: wasmtime::component::Lift + 'static>(&mut self, instance: &str, func: &str) -> R {
        let (_, parent) = self
            .instance
            .get_export(&mut *self.store, None, instance)
            .expect("wizer's access instance is exported");
        let (_, index) = self
            .instance
            .get_export(&mut *self.store, Some(&parent), func)
            .expect("wizer's access function is exported");
        let f = self
            .instance
            .get_typed_func::<(), (R,)>(&mut *self.store, index)
            .expect("wizer's access function has the type it declares");
        f.call(&mut *self.store, ())
            .expect("reading an instance's own state does not trap")
            .0
    }
}

impl ComponentInstanceState for Access<'_> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        let list: WasmList<u8> = self.call(instance, func);
        contents(list.as_le_slice(&*self.store));
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call(instance, func)
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call(instance, func)
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call::<f32>(instance, func).to_bits()
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call::<f64>(instance, func).to_bits()
    }
}

/// Drives a future that never waits (see [`Access`]) to its end, without an executor.
fn ready<F: Future>(f: F) -> Option<F::Output> {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}
