//! The data of one step's Store: its WASI context, limiter, and what the step reported.

use crate::bindings::weft::pipeline::{log, metrics, types};
use crate::error::LimitExceeded;
use crate::limits::Limiter;
use crate::log_sink::LogSink;
use crate::output_quota::OutputQuota;
use crate::step::Metric;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub(crate) struct StepState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) quota: Arc<OutputQuota>,
    pub(crate) log: LogSink,
    pub(crate) metrics: Vec<Metric>,
    pub(crate) max_metrics: usize,
    pub(crate) metrics_tripped: bool,
    /// Bytes the host holds for the step (metric names so far), against `max_host_bytes`.
    pub(crate) host_bytes: u64,
    pub(crate) max_host_bytes: u64,
    /// What is left of the guest's share of the host's own log (see `log::Host::emit`).
    pub(crate) forward: ForwardBudget,
    /// For the host's own structured logs.
    pub(crate) task: String,
    /// When the step's time limit runs out; host-side waits end by then.
    pub(crate) deadline: std::time::Instant,
    /// Set from outside to stop the step (Ctrl-C); host-side waits watch it too.
    pub(crate) cancel: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// Sees each metric as reported and may stop the step (with the step's context).
    pub(crate) watch: Option<(Arc<dyn crate::step::MetricWatch>, crate::step::StepContext)>,
    /// In hermetic mode, the virtual file ids `stat` hands out (see `hermetic_fs`).
    pub(crate) hermetic_fs: Option<crate::hermetic_fs::HermeticFs>,
    /// The staging directory of file inputs: lives as long as the Store that is granted it.
    pub(crate) _stage: Option<tempfile::TempDir>,
    /// The component's tensor engine (`weft:tensor`), made on first use with the step's
    /// device-memory quota; its tensors go with the Store.
    pub(crate) tensors: Option<weft_tensor::Engine<weft_tensor::AnyBackend>>,
    pub(crate) device_memory_bytes: u64,
    /// The process's tensor device, which the engine computes on.
    pub(crate) tensor_device: weft_tensor::AnyBackend,
    /// The step's gang in a training job, if it is a worker of one.
    pub(crate) collective: Option<std::sync::Arc<dyn weft_collective::Communicator>>,
    /// Where the step's checkpoints go, if it is a worker of a training job.
    pub(crate) checkpoints: Option<std::sync::Arc<dyn crate::step::Checkpoints>>,
    /// The component's `wasi:nn` (ONNX models), made on first use with the same quota as its
    /// tensors; its graphs go with the Store.
    #[cfg(feature = "onnx")]
    pub(crate) nn: Option<weft_nn::WasiNnCtx>,
}

/// The `wasi:nn` host's view of a Store: its graphs and the Store's resource table.
#[cfg(feature = "onnx")]
pub(crate) fn nn_view(s: &mut StepState) -> weft_nn::WasiNnView<'_> {
    let quota = s.device_memory_bytes;
    let log = s.log.clone();
    let ctx = s.nn.get_or_insert_with(|| {
        // What went wrong, in the task's log: the guest gets only wasi:nn's error code.
        let report: weft_nn::Report = Arc::new(move |m: &str| {
            log.record("error", m, &[]);
        });
        weft_nn::context(quota, report)
    });
    weft_nn::WasiNnView::new(&mut s.table, ctx)
}

impl WasiView for StepState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for StepState {}

/// The longest metric name kept: names are labels (KFP shows them in a table), not payloads.
pub const MAX_METRIC_NAME_BYTES: usize = 1024;
/// Host bytes charged per metric beyond its name (value, step, bookkeeping).
const METRIC_OVERHEAD: u64 = 32;

/// Guest log records at warn and error also reach the host's own log (its stderr, a pod's log
/// on Kubernetes), where nothing else bounds them: each step gets this many records and bytes
/// there, then a single note; everything stays in the bounded task log.
pub(crate) struct ForwardBudget {
    records: u32,
    bytes: usize,
    noted: bool,
}

/// Records and bytes of a step's log that may reach the host's log.
const FORWARD_RECORDS: u32 = 100;
const FORWARD_BYTES: usize = 64 << 10;
/// The longest message forwarded; the task log has the whole record.
const FORWARD_MESSAGE_BYTES: usize = 1024;

impl Default for ForwardBudget {
    fn default() -> Self {
        ForwardBudget {
            records: FORWARD_RECORDS,
            bytes: FORWARD_BYTES,
            noted: false,
        }
    }
}

impl ForwardBudget {
    /// Takes one record of `len` bytes from the budget; false once it is spent.
    fn take(&mut self, len: usize) -> bool {
        let len = len.min(FORWARD_MESSAGE_BYTES);
        if self.records == 0 || self.bytes < len {
            self.records = 0;
            return false;
        }
        self.records -= 1;
        self.bytes -= len;
        true
    }
}

impl metrics::Host for StepState {
    fn report(&mut self, name: String, value: f64, step: Option<u64>) -> wasmtime::Result<()> {
        if name.len() > MAX_METRIC_NAME_BYTES {
            return Err(LimitExceeded::MetricName {
                len: name.len(),
                limit: MAX_METRIC_NAME_BYTES,
            }
            .into());
        }
        let held = self
            .host_bytes
            .saturating_add(name.len() as u64 + METRIC_OVERHEAD);
        if held > self.max_host_bytes {
            return Err(LimitExceeded::HostBytes {
                what: "metrics".into(),
                limit: self.max_host_bytes,
            }
            .into());
        }
        self.host_bytes = held;
        if self.metrics.len() >= self.max_metrics {
            self.metrics_tripped = true;
            return Err(LimitExceeded::Metrics {
                limit: self.max_metrics,
            }
            .into());
        }
        tracing::debug!(task = %self.task, metric = %name, value, step, "metric");
        let metric = Metric { name, value, step };
        let verdict = self.watch.as_ref().map(|(w, ctx)| w.observe(ctx, &metric));
        self.metrics.push(metric);
        if let Some(crate::step::Verdict::Stop(reason)) = verdict {
            tracing::info!(task = %self.task, %reason, "early stopped");
            return Err(crate::step::EarlyStopped(reason).into());
        }
        Ok(())
    }
}

impl log::Host for StepState {
    fn emit(
        &mut self,
        level: log::Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        let name = match level {
            log::Level::Trace => "TRACE",
            log::Level::Debug => "DEBUG",
            log::Level::Info => "INFO",
            log::Level::Warn => "WARN",
            log::Level::Error => "ERROR",
        };
        // The task log is bounded; the host's log gets only what fit there, within its budget.
        if self.log.record(name, &message, &fields) {
            self.forward(level, &message, &fields);
        }
        Ok(())
    }
}

impl StepState {
    /// Passes one guest record on to the host's log (`weft::guest`), escaped and cut short.
    fn forward(&mut self, level: log::Level, message: &str, fields: &[(String, String)]) {
        let task = &self.task;
        let fields_len: usize = fields.iter().map(|(k, v)| k.len() + v.len()).sum();
        if !self.forward.take(message.len() + fields_len) {
            if !std::mem::replace(&mut self.forward.noted, true) {
                tracing::warn!(target: "weft::guest", task, "further log records of this step are in its task log only");
            }
            return;
        }
        let cut = weft_spec::text::truncate(message, FORWARD_MESSAGE_BYTES);
        let message = weft_spec::text::escape_control(&cut);
        match level {
            log::Level::Trace => tracing::trace!(target: "weft::guest", task, ?fields, "{message}"),
            log::Level::Debug => tracing::debug!(target: "weft::guest", task, ?fields, "{message}"),
            log::Level::Info => tracing::info!(target: "weft::guest", task, ?fields, "{message}"),
            log::Level::Warn => tracing::warn!(target: "weft::guest", task, ?fields, "{message}"),
            log::Level::Error => tracing::error!(target: "weft::guest", task, ?fields, "{message}"),
        }
    }
}
