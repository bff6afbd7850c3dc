//! The one wasmtime Engine of a process, its linker, and the loaded components.

use crate::bindings::{Step, StepPre};
use crate::cache::{ComponentCache, LoadSource};
use crate::state::StepState;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use weft_tensor::Backend as _;

/// How often the epoch advances: the granularity of `--timeout` and of cancellation.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);
/// The largest linear memory any step may be granted (wasm32's whole address space).
pub const MAX_MEMORY_BYTES: u64 = 4 << 30;
/// Elements a table may hold: what each pool slot reserves. The default table limit is this,
/// and a higher one is refused up front: past the pool's size a growth failed with a bare
/// `unreachable` trap before the limit could say anything.
pub const MAX_TABLE_ELEMENTS: u64 = 100_000;

/// Bytes of each linear-memory slot reset in place rather than released.
const KEEP_RESIDENT: usize = 16 << 20;

/// Process-wide settings.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Where compiled components are cached; `None` keeps them in memory only.
    pub cache_dir: Option<PathBuf>,
    /// Steps that may run at once (slots in the pooling allocator).
    pub max_concurrent_steps: u32,
    /// The device `weft:tensor` computes on, opened once for the process.
    pub tensor_backend: weft_tensor::Choice,
    /// The most bytes `cache_dir` may hold; least recently used entries are evicted past it.
    /// `None`: no cap.
    pub cache_max_bytes: Option<u64>,
}

/// The compiled cache's default cap: room for some fifty Python or JavaScript components.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 2 << 30;

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: None,
            max_concurrent_steps: 64,
            tensor_backend: weft_tensor::Choice::Auto,
            cache_max_bytes: Some(DEFAULT_CACHE_MAX_BYTES),
        }
    }
}

/// A component compiled, type-checked as a step, and linked, ready to instantiate quickly.
pub struct LoadedComponent {
    /// `sha256:` of the component's bytes.
    pub digest: String,
    /// Where it was loaded from.
    pub path: PathBuf,
    /// How it was obtained this time.
    pub source: LoadSource,
    /// How long compiling it took, when it was compiled this time.
    pub compile_time: Option<Duration>,
    pub(crate) pre: StepPre<StepState>,
}

/// Runs steps. Cheap to share across threads (`&Runtime` is `Sync`).
pub struct Runtime {
    pub(crate) engine: Engine,
    /// Imports for components called from a thread that may block (steps).
    pub(crate) linker: Linker<StepState>,
    /// The same imports for components called from async tasks (served models): WASI's async
    /// bindings, so a request runs on the task that parsed it instead of a blocking thread.
    pub(crate) async_linker: Linker<StepState>,
    pub(crate) cache: ComponentCache,
    pub(crate) loaded: Mutex<HashMap<String, Arc<LoadedComponent>>>,
    /// One lock per component digest, held while it compiles: see `Runtime::load_with`.
    pub(crate) compiling: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    pub(crate) tensor_device: weft_tensor::AnyBackend,
    /// Metric watches by run id, for the steps of runs that did not bring their own (see
    /// [`Runtime::watch_run`]).
    pub(crate) watches: crate::step::Watches,
}

impl Runtime {
    /// Builds the engine ([`engine_config`]), the sandbox's linkers and the compiled cache, and
    /// opens the tensor device.
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Self> {
        let engine = Engine::new(&engine_config(config.max_concurrent_steps))?;
        start_epoch_ticker(&engine);

        let linker = sandbox_linker(&engine, Calls::Blocking)?;
        let async_linker = sandbox_linker(&engine, Calls::Async)?;
        let cache = ComponentCache::new(&engine, config.cache_dir, config.cache_max_bytes);
        let tensor_device =
            weft_tensor::AnyBackend::open(config.tensor_backend).map_err(anyhow::Error::msg)?;
        tracing::debug!(backend = tensor_device.name(), "tensor device");
        Ok(Runtime {
            engine,
            linker,
            async_linker,
            cache,
            loaded: Mutex::new(HashMap::new()),
            compiling: Mutex::new(HashMap::new()),
            watches: Default::default(),
            tensor_device,
        })
    }
}

/// The engine's settings: pooling allocator with `slots` steps at once, copy-on-write memory
/// images for microsecond instantiation, epoch interruption for timeouts, guest backtraces.
fn engine_config(slots: u32) -> Config {
    let slots = slots.max(1);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(slots)
        .total_core_instances(slots * 16)
        .total_memories(slots * 4)
        .total_tables(slots * 16)
        .max_memory_size(MAX_MEMORY_BYTES as usize)
        .max_core_instances_per_component(128)
        .max_memories_per_component(16)
        .max_tables_per_component(128)
        .table_elements(MAX_TABLE_ELEMENTS as usize)
        // Reset a freed slot's memory in place (memset of its first KEEP_RESIDENT bytes)
        // rather than with madvise: guests then reuse resident pages instead of faulting them
        // in again (a copy-on-write fault shoots down TLBs on every core) at each instance's
        // start and end. Not with PAGEMAP_SCAN: since wasmtime 50 the scan reports written
        // pages whether present or not (so pages swapped out are reset too) and, measured
        // here, far more pages than a no-op guest dirties: the walk plus the memset of what
        // it reports cost more than the memset alone. A warm no-op step: 26 µs with the
        // scan, 13 µs without (docs/PERFORMANCE.md, "wasmtime 48 → 50").
        .pagemap_scan(wasmtime::Enabled::No)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(64 << 10);
    let mut cfg = Config::new();
    cfg.wasm_component_model(true)
        .epoch_interruption(true)
        .wasm_backtrace_max_frames(std::num::NonZeroUsize::new(64))
        .memory_init_cow(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    cfg
}

/// The key of the engine settings compiled components are cached under (part of each entry's
/// name): `wasm-run cache list` tells entries this build can load from others'.
pub fn cache_engine_key() -> anyhow::Result<String> {
    Ok(crate::cache::engine_key(&Engine::new(&engine_config(1))?))
}

/// How a component's functions will be called, which decides the WASI bindings it links to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Calls {
    /// Synchronously, from a thread that may block (steps, start-up work).
    Blocking,
    /// With `call_async` from an async task; wasm yields to the executor at every epoch tick.
    Async,
}

/// The sandbox's imports: WASI p2 (its grants decided per Store), the output quota and wait
/// caps shadowing parts of it, the step's host interface and the GPU bridge.
fn sandbox_linker(engine: &Engine, calls: Calls) -> wasmtime::Result<Linker<StepState>> {
    let mut linker = Linker::new(engine);
    match calls {
        Calls::Blocking => wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?,
        Calls::Async => wasmtime_wasi::p2::add_to_linker_async(&mut linker)?,
    }
    crate::wait_cap::add_to_linker(&mut linker)?;
    // Steps only: the shadows call wasmtime-wasi's synchronous filesystem host, which cannot
    // run inside the async calls of served models; those are granted no writable directory
    // (no output quota to keep) and are never hermetic.
    if calls == Calls::Blocking {
        crate::output_quota::add_to_linker(&mut linker)?;
        crate::hermetic_fs::add_to_linker(&mut linker)?;
        crate::wait_cap::add_blocking_io(&mut linker)?;
    }
    Step::add_to_linker::<StepState, HasSelf<StepState>>(&mut linker, |s| s)?;
    // The GPU bridge: any component may import `weft:tensor/ops`.
    crate::tensor_host::bindings::TensorHost::add_to_linker::<StepState, HasSelf<StepState>>(
        &mut linker,
        |s| s,
    )?;
    // Models trained elsewhere: the standard `wasi:nn` for ONNX (built with `onnx`).
    #[cfg(feature = "onnx")]
    weft_nn::add_to_linker(&mut linker, crate::state::nn_view)?;
    Ok(linker)
}

/// Advances the engine's epoch every tick until the engine is dropped.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("weft-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(EPOCH_TICK);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => return,
            }
        })
        .expect("spawning the epoch thread");
}
