//! One step execution: request in, outcome or error out.

use crate::bindings::weft::pipeline::types as wit;
use crate::engine::{Calls, LoadedComponent, Runtime};
use crate::error::{LimitExceeded, StepError};
use crate::limits::{self, Limiter, Limits};
use crate::log_sink::{LogSink, LogSummary};
use crate::output_quota::OutputQuota;
use crate::state::StepState;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap, UpdateDeadline, WasmBacktrace};
use weft_spec::ParamValue;

/// The export every step must have.
pub const TASK_EXPORT: &str = "weft:pipeline/task@0.1.0";

/// Where this execution sits in its run.
#[derive(Clone, Debug, Serialize)]
pub struct StepContext {
    pub run_id: String,
    pub task_name: String,
    pub attempt: u32,
}

/// A file or directory granted read-only as input `name`.
#[derive(Clone, Debug)]
pub struct InputArtifact {
    pub name: String,
    pub path: PathBuf,
}

/// Everything a step is granted. What is not named here, the step does not get.
#[derive(Clone, Debug)]
pub struct StepRequest {
    pub context: StepContext,
    pub params: Vec<(String, ParamValue)>,
    pub inputs: Vec<InputArtifact>,
    /// Preopened read-write at `/outputs`; `None` grants no writable directory at all.
    pub output_dir: Option<PathBuf>,
    /// Named output artifacts: directories created as `<output_dir>/<name>`.
    pub outputs: Vec<String>,
    /// The only environment variables the step sees.
    pub env: Vec<(String, String)>,
    /// Grants TCP/UDP sockets and name lookup.
    pub allow_network: bool,
    /// Virtualised clocks and random from this seed: identical inputs, identical outputs.
    pub hermetic_seed: Option<u64>,
    pub limits: Limits,
    /// The task log; `None` keeps it in memory (returned in the outcome).
    pub log_path: Option<PathBuf>,
    /// Set to stop the step at the next epoch tick (it fails with [`StepError::Cancelled`]).
    pub cancel: Option<Arc<AtomicBool>>,
    /// Sees every metric as it is reported and may stop the step there and then (a tuner's
    /// early stopping: it fails with [`StepError::EarlyStopped`], its later metrics never
    /// arrive).
    pub metric_watch: Option<Arc<dyn MetricWatch>>,
    /// This step's place in a training job's gang (`weft:tensor/collective`); `None`: not a
    /// worker of one, and collectives say so.
    pub collective: Option<Arc<dyn weft_collective::Communicator>>,
    /// Where a training job's worker saves and finds its checkpoints
    /// (`weft:tensor/checkpoint`); `None` outside a job.
    pub checkpoints: Option<Arc<dyn Checkpoints>>,
}

/// A training job's checkpoints, as the job keeps them (the artifact store, a pointer to the
/// latest that survives a crash).
pub trait Checkpoints: Send + Sync + std::fmt::Debug {
    /// Steps between checkpoints the job asks for (0: never).
    fn every(&self) -> u32;
    /// Keeps `bytes` (a [`weft_tensor::io::Checkpoint`]) as the latest, reached after `step`.
    fn save(&self, step: u64, bytes: Vec<u8>) -> Result<(), String>;
    /// The latest checkpoint's bytes, if there is one.
    fn latest(&self) -> Result<Option<Vec<u8>>, String>;
}

/// What a [`MetricWatch`] decides of a reported metric.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Continue,
    /// Stop the step now, for this reason.
    Stop(String),
}

/// Watches a step's metrics as they are reported (in the `metrics.report` host call, so a
/// decision needs no sidecar and no polling).
pub trait MetricWatch: Send + Sync + std::fmt::Debug {
    fn observe(&self, context: &StepContext, metric: &Metric) -> Verdict;
}

/// Watches registered per run id: a tuner watches its trials' runs without the pipeline
/// executor carrying the watch through to each step.
#[derive(Default)]
pub(crate) struct Watches(Mutex<HashMap<String, Arc<dyn MetricWatch>>>);

impl Watches {
    fn get(&self, run_id: &str) -> Option<Arc<dyn MetricWatch>> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(run_id)
            .cloned()
    }
}

/// While held, the steps of run `run_id` have their metrics watched (see
/// [`Runtime::watch_run`]); dropping it ends that.
pub struct WatchGuard<'a> {
    watches: &'a Watches,
    run_id: String,
}

impl Drop for WatchGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.watches.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&self.run_id);
    }
}

impl Runtime {
    /// Watches the metrics of every step of run `run_id` that has no watch of its own, until
    /// the guard is dropped.
    pub fn watch_run(&self, run_id: &str, watch: Arc<dyn MetricWatch>) -> WatchGuard<'_> {
        let mut map = self.watches.0.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(run_id.to_string(), watch);
        WatchGuard {
            watches: &self.watches,
            run_id: run_id.to_string(),
        }
    }

    /// The watch registered for run `run_id`, if any: for metrics that reach this process
    /// another way than a step's `metrics.report` call (a gang's workers in processes of their
    /// own, whose reports come back as lines).
    pub fn run_watch(&self, run_id: &str) -> Option<Arc<dyn MetricWatch>> {
        self.watches.get(run_id)
    }
}

/// The trap payload of a step stopped by its [`MetricWatch`].
#[derive(Debug)]
pub(crate) struct EarlyStopped(pub(crate) String);

impl std::fmt::Display for EarlyStopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "early stopped: {}", self.0)
    }
}

impl std::error::Error for EarlyStopped {}

/// The trap payload of a cancelled step.
#[derive(Debug)]
pub(crate) struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cancelled")
    }
}

impl std::error::Error for Cancelled {}

impl StepRequest {
    /// A request with no grants at all, default limits.
    pub fn new(run_id: impl Into<String>, task_name: impl Into<String>) -> Self {
        StepRequest {
            context: StepContext {
                run_id: run_id.into(),
                task_name: task_name.into(),
                attempt: 1,
            },
            params: Vec::new(),
            inputs: Vec::new(),
            output_dir: None,
            outputs: Vec::new(),
            env: Vec::new(),
            allow_network: false,
            hermetic_seed: None,
            limits: Limits::default(),
            log_path: None,
            cancel: None,
            metric_watch: None,
            collective: None,
            checkpoints: None,
        }
    }
}

/// A scalar metric the step reported.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metric {
    pub name: String,
    /// As reported; in JSON (`run --json`) non-finite values are `"NaN"`, `"Infinity"`, ...
    #[serde(serialize_with = "weft_spec::float::serialize")]
    pub value: f64,
    pub step: Option<u64>,
}

/// A file the step left in its output directory.
#[derive(Clone, Debug, Serialize)]
pub struct ArtifactFile {
    /// Path relative to the output directory, `/`-separated.
    pub path: String,
    pub bytes: u64,
    /// `sha256:<hex>` of the content.
    pub digest: String,
}

/// What a successful step produced.
#[derive(Clone, Debug, Serialize)]
pub struct StepOutcome {
    pub params: Vec<(String, ParamValue)>,
    pub metrics: Vec<Metric>,
    pub artifacts: Vec<ArtifactFile>,
    pub log: LogSummary,
    pub component_digest: String,
    #[serde(with = "duration_secs")]
    pub elapsed: Duration,
}

mod duration_secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

impl Runtime {
    /// A fresh Store sandboxed by `req`: its WASI grants, limiter, output quota, task log, and
    /// an epoch callback enforcing the time limit (`StepState::deadline`) and cancellation.
    pub(crate) fn new_store(
        &self,
        req: &StepRequest,
        calls: Calls,
    ) -> Result<(Store<StepState>, crate::sandbox::Granted, LogSink), StepError> {
        let limits = &req.limits;
        if limits.memory_bytes > crate::engine::MAX_MEMORY_BYTES {
            return Err(StepError::Grant(format!(
                "memory limit {} bytes is above the maximum {} bytes",
                limits.memory_bytes,
                crate::engine::MAX_MEMORY_BYTES
            )));
        }
        if limits.max_table_elements > crate::engine::MAX_TABLE_ELEMENTS {
            return Err(StepError::Grant(format!(
                "table limit {} elements is above the maximum {} (--max-table-elements)",
                limits.max_table_elements,
                crate::engine::MAX_TABLE_ELEMENTS
            )));
        }
        let log = LogSink::create(req.log_path.as_deref(), limits.max_log_bytes).map_err(|e| {
            StepError::Grant(format!(
                "log file {}: {e}",
                req.log_path.as_deref().unwrap_or(Path::new("")).display()
            ))
        })?;
        // Only file inputs are staged (alone in a fresh directory); directories are granted as is.
        let stage = if req.inputs.iter().all(|i| i.path.is_dir()) {
            None
        } else {
            Some(tempfile::tempdir().map_err(anyhow::Error::from)?)
        };
        let (wasi, granted) = crate::sandbox::build(
            req,
            stage.as_ref().map(|s| s.path()).unwrap_or(Path::new("")),
            &log,
        )?;
        let state = StepState {
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter::new(limits.clone()),
            quota: Arc::new(OutputQuota::new(
                limits.max_output_bytes,
                limits.max_output_entries,
            )),
            log: log.clone(),
            metrics: Vec::new(),
            max_metrics: limits.max_metrics,
            metrics_tripped: false,
            host_bytes: 0,
            max_host_bytes: limits.max_host_bytes,
            forward: Default::default(),
            task: req.context.task_name.clone(),
            deadline: Instant::now() + limits.timeout,
            cancel: req.cancel.clone(),
            watch: req
                .metric_watch
                .clone()
                .or_else(|| self.watches.get(&req.context.run_id))
                .map(|w| (w, req.context.clone())),
            hermetic_fs: req.hermetic_seed.map(|_| Default::default()),
            _stage: stage,
            tensors: None,
            device_memory_bytes: limits.device_memory_bytes,
            tensor_device: self.tensor_device.clone(),
            collective: req.collective.clone(),
            checkpoints: req.checkpoints.clone(),
            #[cfg(feature = "onnx")]
            nn: None,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        // Checked on every epoch tick: the time limit, and cancellation from outside (Ctrl-C).
        let cancel = req.cancel.clone();
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |ctx| {
            if cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) {
                return Err(Cancelled.into());
            }
            if Instant::now() >= ctx.data().deadline {
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(match calls {
                Calls::Blocking => UpdateDeadline::Continue(1),
                // Let the executor run other requests between ticks of a long call.
                Calls::Async => UpdateDeadline::Yield(1),
            })
        });
        Ok((store, granted, log))
    }

    /// Runs one step in a fresh Store. The step's failure is an `Err`; the runtime stays usable.
    pub fn run(
        &self,
        component: &LoadedComponent,
        req: &StepRequest,
    ) -> Result<StepOutcome, StepError> {
        let started = Instant::now();
        let limits = &req.limits;
        let (mut store, granted, log) = self.new_store(req, Calls::Blocking)?;

        let input = wit::StepInput {
            context: wit::StepContext {
                run_id: req.context.run_id.clone(),
                task_name: req.context.task_name.clone(),
                attempt: req.context.attempt,
            },
            params: req
                .params
                .iter()
                .map(|(n, v)| wit::Param {
                    name: n.clone(),
                    value: to_wit(v),
                })
                .collect(),
            inputs: artifacts(granted.inputs),
            outputs: artifacts(granted.outputs),
        };
        let result = component
            .pre
            .instantiate(&mut store)
            .and_then(|step| step.weft_pipeline_task().call_run(&mut store, &input));
        let result = match result {
            Ok(Ok(out)) => check_held(out, store.data()),
            Ok(Err(message)) => Err(guest_failure(
                &weft_spec::text::truncate(&message, MAX_ERROR_BYTES),
                store.data(),
            )),
            Err(e) => Err(classify(e, store.data(), limits, &log)),
        };
        let state = store.into_data();
        let log = log
            .finish()
            .map_err(|e| StepError::Host(anyhow::anyhow!("writing the task log: {e}")))?;
        let out = result?;
        let params = out
            .params
            .into_iter()
            .map(|p| Ok((p.name.clone(), from_wit(&p.name, p.value)?)))
            .collect::<Result<Vec<_>, StepError>>()?;
        let artifacts = match &req.output_dir {
            Some(dir) => list_artifacts(dir, &req.limits)?,
            None => Vec::new(),
        };
        Ok(StepOutcome {
            params,
            metrics: state.metrics,
            artifacts,
            log,
            component_digest: component.digest.clone(),
            elapsed: started.elapsed(),
        })
    }
}

/// The longest error string of a failed step kept as its cause (the rest is cut, with a note):
/// the cause is printed and stored with the run.
pub const MAX_ERROR_BYTES: usize = 4096;

/// Refuses output parameters that would make the host hold more than the step's share.
fn check_held(out: wit::StepOutput, state: &StepState) -> Result<wit::StepOutput, StepError> {
    let params: u64 = out
        .params
        .iter()
        .map(|p| (p.name.len() + param_len(&p.value)) as u64)
        .sum();
    if state.host_bytes.saturating_add(params) > state.max_host_bytes {
        return Err(LimitExceeded::HostBytes {
            what: format!("output parameters ({params} bytes)"),
            limit: state.max_host_bytes,
        }
        .into());
    }
    Ok(out)
}

fn param_len(v: &wit::ParamValue) -> usize {
    match v {
        wit::ParamValue::Str(s) | wit::ParamValue::Json(s) => s.len(),
        _ => 8,
    }
}

fn artifacts(list: Vec<(String, String)>) -> Vec<wit::Artifact> {
    list.into_iter()
        .map(|(name, path)| wit::Artifact { name, path })
        .collect()
}

/// Says which limit or fault ended the step: a limit the limiter or quota recorded wins over the
/// trap it caused (a guest aborting on a refused allocation traps with `unreachable`).
/// A failure the guest reported itself. A guest whose runtime survives a refused memory growth
/// (Python raises `MemoryError`, JS a `RangeError`) reports that instead of trapping: the limit
/// it ran into is named with it, so the cause says which limit to raise.
pub(crate) fn guest_failure(message: &str, state: &StepState) -> StepError {
    let message = match &state.limiter.tripped {
        Some(limit) => format!("{message} ({limit})"),
        None => message.to_string(),
    };
    StepError::Failed { message }
}

pub(crate) fn classify(
    err: wasmtime::Error,
    state: &StepState,
    limits: &Limits,
    log: &LogSink,
) -> StepError {
    if err.downcast_ref::<Cancelled>().is_some() {
        return StepError::Cancelled;
    }
    if let Some(stopped) = err.downcast_ref::<EarlyStopped>() {
        return StepError::EarlyStopped {
            reason: stopped.0.clone(),
        };
    }
    if let Some(limit) = err.downcast_ref::<LimitExceeded>() {
        return limit.clone().into();
    }
    if let Some(limit) = state.quota.tripped() {
        return limit.into();
    }
    if state.metrics_tripped {
        return LimitExceeded::Metrics {
            limit: limits.max_metrics,
        }
        .into();
    }
    if let Some(limit) = state.limiter.tripped.clone() {
        return limit.into();
    }
    if err.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return LimitExceeded::Timeout {
            limit: limits.timeout,
        }
        .into();
    }
    if limits::is_count_limit_error(&err) {
        return LimitExceeded::Instances {
            limit: limits.max_instances,
        }
        .into();
    }
    if let Some(plain) = plain_cause(&err) {
        return plain;
    }
    let bt = err.downcast_ref::<WasmBacktrace>();
    let backtrace = bt
        .map(|bt| bt.to_string())
        .unwrap_or_else(|| "(none)".into());
    let mut message = match err.downcast_ref::<Trap>() {
        Some(Trap::StackOverflow) => STACK_OVERFLOW.to_string(),
        Some(Trap::MemoryOutOfBounds) if bt.is_some_and(is_runaway_recursion) => {
            format!("out of bounds memory access, most likely the guest's own stack overflowed ({STACK_OVERFLOW})")
        }
        Some(trap) => trap.to_string(),
        // The causes on one line, without wasmtime's backtrace context (its first line alone
        // said only "error while executing at wasm backtrace:").
        None => err
            .chain()
            .map(|e| e.to_string())
            .filter(|m| !m.starts_with("error while executing at wasm backtrace"))
            .collect::<Vec<_>>()
            .join(": "),
    };
    // A snapshot keeps memories and globals, not host handles: what libc remembers of files
    // opened in `load` names handles the fresh instance does not have.
    if message.contains("unknown handle index") {
        message = format!(
            "the model used a file or stream handle from before its snapshot ({message}); a \
             snapshotted model keeps only its memory: read its files inside `load`, or serve it \
             with --no-snapshot"
        );
    }
    if let Some(panic) = panic_message(&log.tail()) {
        message = format!("{message}; guest {panic}");
    }
    StepError::Trap { message, backtrace }
}

const STACK_OVERFLOW: &str = "stack overflow: the guest recursed too deeply (or without end); \
    rewrite the recursion as a loop, or give the guest a bigger stack when building it \
    (Rust: -C link-arg=-zstack-size=BYTES)";

/// Whether a trap's backtrace is one function calling itself: the captured frames (at most 64)
/// are full and one function holds most of them. A Rust or C guest keeps its stack in linear
/// memory, so its overflow traps as an out-of-bounds access, not as wasm's stack exhaustion.
fn is_runaway_recursion(bt: &WasmBacktrace) -> bool {
    let frames = bt.frames();
    if frames.len() < 64 {
        return false;
    }
    let mut counts = std::collections::HashMap::new();
    for f in frames {
        *counts.entry(f.func_index()).or_insert(0usize) += 1;
    }
    counts.values().any(|&n| n * 2 > frames.len())
}

/// Causes that are not traps of the guest's code, each said in one line with what to change.
fn plain_cause(err: &wasmtime::Error) -> Option<StepError> {
    if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return Some(StepError::Failed {
            message: format!(
                "the step called exit({}) inside `run`: a step returns ok or err instead of exiting",
                exit.0
            ),
        });
    }
    let pool_full = err
        .chain()
        .any(|e| e.is::<wasmtime::PoolConcurrencyLimitError>());
    pool_full.then(|| {
        StepError::Busy(
            "the runtime's instance pool is full: as many steps (or served requests) as it has \
             slots are already running in this process; lower --parallelism (pipelines) or --concurrency (serve), \
             or retry"
                .into(),
        )
    })
}

/// The Rust-style panic report in the log's tail (`panicked at FILE:LINE:COL:` + the message), on
/// one line; other languages' guests print their own and leave it in the log.
fn panic_message(tail: &str) -> Option<String> {
    let lines: Vec<&str> = tail.lines().collect();
    let at = lines.iter().rposition(|l| l.contains("panicked at"))?;
    let header = lines[at];
    let header = &header[header.find("panicked at")?..];
    Some(match lines.get(at + 1) {
        Some(msg) if !msg.trim().is_empty() => format!("{} {}", header, msg.trim()),
        _ => header.to_string(),
    })
}

fn to_wit(v: &ParamValue) -> wit::ParamValue {
    match v {
        ParamValue::String(s) => wit::ParamValue::Str(s.clone()),
        ParamValue::Int(i) => wit::ParamValue::Int(*i),
        ParamValue::Float(f) => wit::ParamValue::Float(*f),
        ParamValue::Bool(b) => wit::ParamValue::Boolean(*b),
        ParamValue::Json(j) => wit::ParamValue::Json(j.to_string()),
    }
}

fn from_wit(name: &str, v: wit::ParamValue) -> Result<ParamValue, StepError> {
    Ok(match v {
        wit::ParamValue::Str(s) => ParamValue::String(s),
        wit::ParamValue::Int(i) => ParamValue::Int(i),
        wit::ParamValue::Float(f) => ParamValue::Float(f),
        wit::ParamValue::Boolean(b) => ParamValue::Bool(b),
        wit::ParamValue::Json(text) => {
            ParamValue::Json(serde_json::from_str(&text).map_err(|e| StepError::Failed {
                message: format!(
                    "output parameter `{name}` is declared JSON but does not parse: {e}"
                ),
            })?)
        }
    })
}

/// Every regular file under `dir`, sorted by path, with size and digest: read by handle,
/// links never followed, refused (naming the path) when the step left a link, a special or
/// hard-linked file, or a tree past the output limits.
fn list_artifacts(dir: &Path, limits: &Limits) -> Result<Vec<ArtifactFile>, StepError> {
    let tree = weft_tree::Limits {
        max_depth: limits.max_output_depth,
        max_entries: limits.max_output_entries,
    };
    let files = weft_tree::digest::files(dir, tree).map_err(|e| match e.is_refusal() {
        true => StepError::Output(e.to_string()),
        false => StepError::Host(anyhow::anyhow!("listing {}: {e}", dir.display())),
    })?;
    Ok(files
        .into_iter()
        .map(|f| ArtifactFile {
            path: f.path,
            bytes: f.bytes,
            digest: f.digest,
        })
        .collect())
}
