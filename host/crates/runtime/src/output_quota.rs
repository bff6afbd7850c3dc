//! Bounds the bytes a step writes to its output artifacts.
//!
//! wasmtime-wasi writes files straight through cap-std, with no quota. So the three WASI calls that
//! produce file writes are shadowed in the linker: `descriptor.write` is counted before it runs,
//! and the streams from `write-via-stream`/`append-via-stream` are wrapped in a counting stream.
//! Past the limit the write traps with [`LimitExceeded::OutputBytes`] before any byte lands.

use crate::error::LimitExceeded;
use crate::state::StepState;
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use wasmtime::component::{Linker, Resource};
use wasmtime::StoreContextMut;
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::sync::filesystem::types::{self as fs, HostDescriptor};
use wasmtime_wasi::p2::{DynOutputStream, OutputStream, Pollable, StreamError, StreamResult};

/// The WASI filesystem interface as wasmtime-wasi 50 registers it.
const FILESYSTEM_TYPES: &str = "wasi:filesystem/types@0.2.12";

/// Bytes written so far against the limit, shared by all of one step's file streams.
pub(crate) struct OutputQuota {
    limit: u64,
    used: AtomicU64,
    tripped: AtomicBool,
}

impl OutputQuota {
    pub(crate) fn new(limit: u64) -> Self {
        OutputQuota {
            limit,
            used: AtomicU64::new(0),
            tripped: AtomicBool::new(false),
        }
    }

    /// Takes `n` bytes from the quota, or fails without taking any.
    fn charge(&self, n: u64) -> Result<(), LimitExceeded> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let new = used.saturating_add(n);
            if new > self.limit {
                self.tripped.store(true, Ordering::Relaxed);
                return Err(LimitExceeded::OutputBytes { limit: self.limit });
            }
            match self
                .used
                .compare_exchange_weak(used, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(actual) => used = actual,
            }
        }
    }

    pub(crate) fn tripped(&self) -> Option<LimitExceeded> {
        self.tripped
            .load(Ordering::Relaxed)
            .then_some(LimitExceeded::OutputBytes { limit: self.limit })
    }
}

/// A file output stream that charges the quota before writing.
struct CountedStream {
    inner: DynOutputStream,
    quota: Arc<OutputQuota>,
}

#[async_trait::async_trait]
impl Pollable for CountedStream {
    async fn ready(&mut self) {
        self.inner.ready().await
    }
}

#[async_trait::async_trait]
impl OutputStream for CountedStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.quota
            .charge(bytes.len() as u64)
            .map_err(|e| StreamError::Trap(e.into()))?;
        self.inner.write(bytes)
    }
    fn flush(&mut self) -> StreamResult<()> {
        self.inner.flush()
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        self.inner.check_write()
    }
    fn write_zeroes(&mut self, nelem: usize) -> StreamResult<()> {
        self.quota
            .charge(nelem as u64)
            .map_err(|e| StreamError::Trap(e.into()))?;
        self.inner.write_zeroes(nelem)
    }
    async fn write_ready(&mut self) -> StreamResult<usize> {
        self.inner.write_ready().await
    }
    async fn cancel(&mut self) {
        self.inner.cancel().await
    }
}

type FsReturn<T> = wasmtime::Result<(Result<T, fs::ErrorCode>,)>;

/// Wraps a freshly created file stream in the table with a counting one.
fn count_stream(state: &mut StepState, stream: &Resource<DynOutputStream>) -> wasmtime::Result<()> {
    let quota = state.quota.clone();
    let slot: &mut DynOutputStream = state.table.get_mut(stream)?;
    let inner = std::mem::replace(slot, Box::new(Closed));
    *slot = Box::new(CountedStream { inner, quota });
    Ok(())
}

fn finish<T>(state: &mut StepState, r: Result<T, wasmtime_wasi::p2::FsError>) -> FsReturn<T> {
    match r {
        Ok(v) => Ok((Ok(v),)),
        Err(e) => Ok((Err(fs::Host::convert_error_code(
            &mut state.filesystem(),
            e,
        )?),)),
    }
}

/// Replaces the file-writing functions of `wasi:filesystem/types` with counting ones. Must run
/// after `wasmtime_wasi::p2::add_to_linker_sync`.
pub(crate) fn add_to_linker(linker: &mut Linker<StepState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut types = linker.instance(FILESYSTEM_TYPES)?;
    types.func_wrap(
        "[method]descriptor.write-via-stream",
        |mut store: StoreContextMut<'_, StepState>, (fd, offset): (Resource<Descriptor>, u64)| {
            let state = store.data_mut();
            let r = HostDescriptor::write_via_stream(&mut state.filesystem(), fd, offset);
            if let Ok(stream) = &r {
                count_stream(state, stream)?;
            }
            finish(state, r)
        },
    )?;
    types.func_wrap(
        "[method]descriptor.append-via-stream",
        |mut store: StoreContextMut<'_, StepState>, (fd,): (Resource<Descriptor>,)| {
            let state = store.data_mut();
            let r = HostDescriptor::append_via_stream(&mut state.filesystem(), fd);
            if let Ok(stream) = &r {
                count_stream(state, stream)?;
            }
            finish(state, r)
        },
    )?;
    types.func_wrap(
        "[method]descriptor.write",
        |mut store: StoreContextMut<'_, StepState>,
         (fd, buf, offset): (Resource<Descriptor>, Vec<u8>, u64)| {
            let state = store.data_mut();
            state.quota.charge(buf.len() as u64)?;
            let r = HostDescriptor::write(&mut state.filesystem(), fd, buf, offset);
            finish(state, r)
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Stands in for a stream for the instant it is being wrapped.
struct Closed;

#[async_trait::async_trait]
impl Pollable for Closed {
    async fn ready(&mut self) {}
}

impl OutputStream for Closed {
    fn write(&mut self, _: Bytes) -> StreamResult<()> {
        Err(StreamError::Closed)
    }
    fn flush(&mut self) -> StreamResult<()> {
        Err(StreamError::Closed)
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Err(StreamError::Closed)
    }
}
