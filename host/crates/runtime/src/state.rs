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
    /// For the host's own structured logs.
    pub(crate) task: String,
    /// When the step's time limit runs out; host-side waits end by then.
    pub(crate) deadline: std::time::Instant,
    /// The staging directory of file inputs: lives as long as the Store that is granted it.
    pub(crate) _stage: Option<tempfile::TempDir>,
    /// The component's tensor engine (`weft:tensor`), made on first use with the step's
    /// device-memory quota; its tensors go with the Store.
    pub(crate) tensors: Option<weft_tensor::Engine<weft_tensor::AnyBackend>>,
    pub(crate) device_memory_bytes: u64,
    /// The process's tensor device, which the engine computes on.
    pub(crate) tensor_device: weft_tensor::AnyBackend,
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
        let report: weft_nn::Report = Arc::new(move |m: &str| log.record("error", m, &[]));
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

impl metrics::Host for StepState {
    fn report(&mut self, name: String, value: f64, step: Option<u64>) -> wasmtime::Result<()> {
        if self.metrics.len() >= self.max_metrics {
            self.metrics_tripped = true;
            return Err(LimitExceeded::Metrics {
                limit: self.max_metrics,
            }
            .into());
        }
        tracing::debug!(task = %self.task, metric = %name, value, step, "metric");
        self.metrics.push(Metric { name, value, step });
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
        let task = &self.task;
        match level {
            log::Level::Trace => tracing::trace!(target: "weft::guest", task, ?fields, "{message}"),
            log::Level::Debug => tracing::debug!(target: "weft::guest", task, ?fields, "{message}"),
            log::Level::Info => tracing::info!(target: "weft::guest", task, ?fields, "{message}"),
            log::Level::Warn => tracing::warn!(target: "weft::guest", task, ?fields, "{message}"),
            log::Level::Error => tracing::error!(target: "weft::guest", task, ?fields, "{message}"),
        }
        self.log.record(name, &message, &fields);
        Ok(())
    }
}
