//! Bounds the bytes and entries a step writes to its output artifacts.
//!
//! wasmtime-wasi writes files straight to the host filesystem, with no quota. So the WASI calls
//! that grow files are shadowed in the linker: `descriptor.write` is counted before it runs, the
//! streams from `write-via-stream`/`append-via-stream` are wrapped in a counting stream, and a
//! file's extension is charged whatever makes it: `set-size`, or a write past the end, pays for
//! the gap too (a sparse `set-size(100 GiB)` costs 100 GiB, though it writes no byte). Calls
//! that create entries (`create-directory-at`, `open-at` with `create`, `symlink-at`, `link-at`)
//! are counted against the entries limit: 50 000 empty directories cost real disk.
//! Past a limit the call traps with [`LimitExceeded`] before anything lands.

use crate::error::LimitExceeded;
use crate::state::StepState;
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use wasmtime::component::{Linker, Resource};
use wasmtime::StoreContextMut;
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::sync::filesystem::types::{self as fs, HostDescriptor};
use wasmtime_wasi::p2::{DynOutputStream, OutputStream, Pollable, StreamError, StreamResult};

/// The WASI filesystem interface as wasmtime-wasi 50 registers it.
pub(crate) const FILESYSTEM_TYPES: &str = "wasi:filesystem/types@0.2.12";

/// Bytes written and entries created so far against the limits, shared by all of one step's
/// file streams.
pub(crate) struct OutputQuota {
    limit: u64,
    used: AtomicU64,
    entries_limit: usize,
    entries: AtomicUsize,
    /// Which limit tripped first: 0 none, [`BYTES`] or [`ENTRIES`].
    tripped: AtomicU8,
}

const BYTES: u8 = 1;
const ENTRIES: u8 = 2;

impl OutputQuota {
    pub(crate) fn new(limit: u64, entries_limit: usize) -> Self {
        OutputQuota {
            limit,
            used: AtomicU64::new(0),
            entries_limit,
            entries: AtomicUsize::new(0),
            tripped: AtomicU8::new(0),
        }
    }

    /// Counts one new file, directory or link, or fails.
    fn charge_entry(&self) -> Result<(), LimitExceeded> {
        let before = self.entries.fetch_add(1, Ordering::Relaxed);
        if before >= self.entries_limit {
            let _ = self
                .tripped
                .compare_exchange(0, ENTRIES, Ordering::Relaxed, Ordering::Relaxed);
            return Err(self.entries_exceeded());
        }
        Ok(())
    }

    fn entries_exceeded(&self) -> LimitExceeded {
        LimitExceeded::OutputEntries {
            limit: self.entries_limit,
        }
    }

    /// Takes `n` bytes from the quota, or fails without taking any.
    fn charge(&self, n: u64) -> Result<(), LimitExceeded> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let new = used.saturating_add(n);
            if new > self.limit {
                let _ =
                    self.tripped
                        .compare_exchange(0, BYTES, Ordering::Relaxed, Ordering::Relaxed);
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
        match self.tripped.load(Ordering::Relaxed) {
            BYTES => Some(LimitExceeded::OutputBytes { limit: self.limit }),
            ENTRIES => Some(self.entries_exceeded()),
            _ => None,
        }
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
            charge_gap(state, &fd, offset)?;
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
            charge_gap(state, &fd, offset)?;
            state.quota.charge(buf.len() as u64)?;
            let r = HostDescriptor::write(&mut state.filesystem(), fd, buf, offset);
            finish(state, r)
        },
    )?;
    types.func_wrap(
        "[method]descriptor.set-size",
        |mut store: StoreContextMut<'_, StepState>, (fd, size): (Resource<Descriptor>, u64)| {
            let state = store.data_mut();
            charge_gap(state, &fd, size)?;
            let r = HostDescriptor::set_size(&mut state.filesystem(), fd, size);
            finish(state, r)
        },
    )?;
    add_entry_counting(&mut types)?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Charges the bytes between the end of `fd`'s file and `offset`, where a write or resize is
/// about to make the file reach: a sparse gap is disk the step could otherwise claim for free.
fn charge_gap(
    state: &mut StepState,
    fd: &Resource<Descriptor>,
    offset: u64,
) -> wasmtime::Result<()> {
    let borrowed = Resource::new_borrow(fd.rep());
    // When the size is unknown, the whole extent is charged.
    let size = HostDescriptor::stat(&mut state.filesystem(), borrowed).map_or(0, |s| s.size);
    state.quota.charge(offset.saturating_sub(size))?;
    Ok(())
}

type Types<'a> = wasmtime::component::LinkerInstance<'a, StepState>;

/// Shadows the calls that create directory entries with ones that count them first.
fn add_entry_counting(types: &mut Types<'_>) -> wasmtime::Result<()> {
    types.func_wrap(
        "[method]descriptor.create-directory-at",
        |mut store: StoreContextMut<'_, StepState>, (fd, path): (Resource<Descriptor>, String)| {
            let state = store.data_mut();
            state.quota.charge_entry()?;
            let r = HostDescriptor::create_directory_at(&mut state.filesystem(), fd, path);
            finish(state, r)
        },
    )?;
    types.func_wrap(
        "[method]descriptor.open-at",
        |mut store: StoreContextMut<'_, StepState>,
         (fd, path_flags, path, oflags, flags): (
            Resource<Descriptor>,
            fs::PathFlags,
            String,
            fs::OpenFlags,
            fs::DescriptorFlags,
        )| {
            let state = store.data_mut();
            if oflags.contains(fs::OpenFlags::CREATE) && !exists(state, &fd, &path) {
                state.quota.charge_entry()?;
            }
            let r = HostDescriptor::open_at(
                &mut state.filesystem(),
                fd,
                path_flags,
                path,
                oflags,
                flags,
            );
            finish(state, r)
        },
    )?;
    types.func_wrap(
        "[method]descriptor.symlink-at",
        |mut store: StoreContextMut<'_, StepState>,
         (fd, old, new): (Resource<Descriptor>, String, String)| {
            let state = store.data_mut();
            state.quota.charge_entry()?;
            let r = HostDescriptor::symlink_at(&mut state.filesystem(), fd, old, new);
            finish(state, r)
        },
    )?;
    types.func_wrap(
        "[method]descriptor.link-at",
        |mut store: StoreContextMut<'_, StepState>,
         (fd, flags, old, new_fd, new): (
            Resource<Descriptor>,
            fs::PathFlags,
            String,
            Resource<Descriptor>,
            String,
        )| {
            let state = store.data_mut();
            state.quota.charge_entry()?;
            let r = HostDescriptor::link_at(&mut state.filesystem(), fd, flags, old, new_fd, new);
            finish(state, r)
        },
    )?;
    Ok(())
}

/// Whether `path` under `fd` names something already (a link counts; it is not followed).
fn exists(state: &mut StepState, fd: &Resource<Descriptor>, path: &str) -> bool {
    let borrowed = Resource::new_borrow(fd.rep());
    HostDescriptor::stat_at(
        &mut state.filesystem(),
        borrowed,
        fs::PathFlags::empty(),
        path.to_string(),
    )
    .is_ok()
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
