//! Per-step resource limits and the wasmtime `ResourceLimiter` that enforces and records them.

use crate::error::LimitExceeded;
use std::time::Duration;

/// Bounds on one step. Every field has a test that trips it.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Linear memory of the whole Store, in bytes: all of a component's memories together (a
    /// component may define many; a bound per memory would let 16 of them take 16x the limit).
    pub memory_bytes: u64,
    /// Wall-clock time for instantiate + run, enforced by epoch interruption.
    pub timeout: Duration,
    /// Bytes the step may write to its output artifact directories, in total.
    pub max_output_bytes: u64,
    /// Files, directories and links the step may create in its outputs, in total.
    pub max_output_entries: usize,
    /// How deep the step's output directories may nest (checked when they are read).
    pub max_output_depth: usize,
    /// Bytes of stdout/stderr/log records kept in the task log; the rest is dropped and counted.
    pub max_log_bytes: u64,
    /// Core instances, tables and memories per step (each counted separately against this).
    pub max_instances: usize,
    /// Elements per table.
    pub max_table_elements: u64,
    /// Metric values a step may report.
    pub max_metrics: usize,
    /// Bytes the step may make the host hold on its behalf: metric names, output parameters
    /// (its log has its own bound, and what it copies in one host call is bounded by wasmtime's
    /// host-call fuel). Guest strings would otherwise grow the host, not the sandbox.
    pub max_host_bytes: u64,
    /// Bytes of tensors the component may hold on the device at once (`weft:tensor`).
    pub device_memory_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 256 << 20,
            timeout: Duration::from_secs(30),
            max_output_bytes: 1 << 30,
            max_output_entries: weft_tree::Limits::DEFAULT.max_entries,
            max_output_depth: weft_tree::Limits::DEFAULT.max_depth,
            max_log_bytes: 1 << 20,
            max_instances: 64,
            max_table_elements: 100_000,
            max_metrics: 100_000,
            max_host_bytes: 16 << 20,
            device_memory_bytes: 1 << 30,
        }
    }
}

/// The store's limiter: refuses growth past the limits and remembers the first refusal, so a trap
/// that follows (a guest aborting on a failed allocation) is reported as the limit it really is.
pub(crate) struct Limiter {
    limits: Limits,
    pub(crate) tripped: Option<LimitExceeded>,
    /// Bytes of linear memory the Store's memories hold together, as granted so far.
    memory_total: u64,
    /// The last growth granted, taken back if wasmtime then fails to perform it.
    last_growth: u64,
}

impl Limiter {
    pub(crate) fn new(limits: Limits) -> Self {
        Limiter {
            limits,
            tripped: None,
            memory_total: 0,
            last_growth: 0,
        }
    }

    fn trip(&mut self, limit: LimitExceeded) {
        tracing::debug!(%limit, "limit tripped");
        self.tripped.get_or_insert(limit);
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    /// Called for every memory's creation (`current` 0) and growth: the sum over all of the
    /// Store's memories is what is bounded.
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = (desired as u64).saturating_sub(current as u64);
        let total = self.memory_total.saturating_add(growth);
        if total > self.limits.memory_bytes {
            self.trip(LimitExceeded::Memory {
                limit: self.limits.memory_bytes,
                requested: total,
            });
            return Ok(false);
        }
        self.memory_total = total;
        self.last_growth = growth;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.memory_total = self.memory_total.saturating_sub(self.last_growth);
        self.last_growth = 0;
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.limits.max_table_elements {
            self.trip(LimitExceeded::TableElements {
                limit: self.limits.max_table_elements,
                requested: desired as u64,
            });
            return Ok(false);
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.limits.max_instances
    }

    fn tables(&self) -> usize {
        self.limits.max_instances
    }

    fn memories(&self) -> usize {
        self.limits.max_instances
    }
}

/// Wasmtime reports an exceeded instance/table/memory count only as an error message
/// ("resource limit exceeded: instance count too high at N"), not a type; this is the one place
/// that reads it. A test runs the real engine against it, so a wording change upstream fails CI.
pub(crate) fn is_count_limit_error(err: &wasmtime::Error) -> bool {
    err.chain().any(|e| {
        let msg = e.to_string();
        msg.contains("resource limit exceeded") && msg.contains("count too high")
    })
}
