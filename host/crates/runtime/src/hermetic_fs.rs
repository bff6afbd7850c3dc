//! What `stat` tells a step in hermetic mode. File times and inode-derived ids are host values
//! (when the file was written, which inode the host filesystem picked), so a step that lists
//! them would differ between two runs with the same seed. In hermetic mode every timestamp reads
//! as the hermetic epoch, and `metadata-hash` (wasi-libc's `st_dev`/`st_ino`) reads as a small
//! id handed out in the order the step first asks about each file: the same on every run of
//! the same step. Outside hermetic mode the calls go straight through.

use crate::state::StepState;
use std::collections::HashMap;
use wasmtime::component::{Linker, Resource};
use wasmtime::StoreContextMut;
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::sync::filesystem::types::{
    self as fs, DescriptorStat, HostDescriptor, MetadataHashValue,
};

/// The ids handed out so far, by host metadata hash.
#[derive(Default)]
pub(crate) struct HermeticFs {
    ids: HashMap<(u64, u64), u64>,
}

impl HermeticFs {
    fn id(&mut self, host: MetadataHashValue) -> MetadataHashValue {
        let next = self.ids.len() as u64 + 1;
        let lower = *self.ids.entry((host.lower, host.upper)).or_insert(next);
        MetadataHashValue { lower, upper: 0 }
    }
}

fn epoch() -> Option<fs::Datetime> {
    Some(fs::Datetime {
        seconds: crate::hermetic::EPOCH_START.as_secs(),
        nanoseconds: 0,
    })
}

fn virtual_stat(state: &StepState, st: DescriptorStat) -> DescriptorStat {
    if state.hermetic_fs.is_none() {
        return st;
    }
    DescriptorStat {
        data_access_timestamp: epoch(),
        data_modification_timestamp: epoch(),
        status_change_timestamp: epoch(),
        ..st
    }
}

fn virtual_hash(state: &mut StepState, h: MetadataHashValue) -> MetadataHashValue {
    match &mut state.hermetic_fs {
        Some(ids) => ids.id(h),
        None => h,
    }
}

type FsReturn<T> = wasmtime::Result<(Result<T, fs::ErrorCode>,)>;

fn finish<T>(
    state: &mut StepState,
    r: Result<T, wasmtime_wasi::p2::FsError>,
    f: impl FnOnce(&mut StepState, T) -> T,
) -> FsReturn<T> {
    match r {
        Ok(v) => Ok((Ok(f(state, v)),)),
        Err(e) => Ok((Err(fs::Host::convert_error_code(
            &mut state.filesystem(),
            e,
        )?),)),
    }
}

/// Shadows `stat`, `stat-at`, `metadata-hash` and `metadata-hash-at` of
/// `wasi:filesystem/types`. Must run after wasmtime-wasi's own `add_to_linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<StepState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut types = linker.instance(crate::output_quota::FILESYSTEM_TYPES)?;
    types.func_wrap(
        "[method]descriptor.stat",
        |mut store: StoreContextMut<'_, StepState>, (fd,): (Resource<Descriptor>,)| {
            let state = store.data_mut();
            let r = HostDescriptor::stat(&mut state.filesystem(), fd);
            finish(state, r, |s, st| virtual_stat(s, st))
        },
    )?;
    types.func_wrap(
        "[method]descriptor.stat-at",
        |mut store: StoreContextMut<'_, StepState>,
         (fd, flags, path): (Resource<Descriptor>, fs::PathFlags, String)| {
            let state = store.data_mut();
            let r = HostDescriptor::stat_at(&mut state.filesystem(), fd, flags, path);
            finish(state, r, |s, st| virtual_stat(s, st))
        },
    )?;
    types.func_wrap(
        "[method]descriptor.metadata-hash",
        |mut store: StoreContextMut<'_, StepState>, (fd,): (Resource<Descriptor>,)| {
            let state = store.data_mut();
            let r = HostDescriptor::metadata_hash(&mut state.filesystem(), fd);
            finish(state, r, virtual_hash)
        },
    )?;
    types.func_wrap(
        "[method]descriptor.metadata-hash-at",
        |mut store: StoreContextMut<'_, StepState>,
         (fd, flags, path): (Resource<Descriptor>, fs::PathFlags, String)| {
            let state = store.data_mut();
            let r = HostDescriptor::metadata_hash_at(&mut state.filesystem(), fd, flags, path);
            finish(state, r, virtual_hash)
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
