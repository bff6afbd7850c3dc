//! What can go wrong when running a step, worded for the person who has to fix it.

use std::time::Duration;

/// A sandbox limit a step ran into. Each says which limit and at what value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LimitExceeded {
    #[error("memory limit exceeded: the step asked for {requested} bytes of linear memory in all, limit {limit} bytes (raise --memory)")]
    Memory { limit: u64, requested: u64 },
    #[error("time limit exceeded: the step ran past {}; it was interrupted (raise --timeout)", humanize(*.limit))]
    Timeout { limit: Duration },
    #[error("output limit exceeded: the step wrote more than {limit} bytes to its output artifacts (raise --max-output)")]
    OutputBytes { limit: u64 },
    #[error("output entries limit exceeded: the step created more than {limit} files, directories and links in its outputs (raise --max-output-entries)")]
    OutputEntries { limit: usize },
    #[error("table limit exceeded: a table asked for {requested} elements, limit {limit}")]
    TableElements { limit: u64, requested: u64 },
    #[error("instance limit exceeded: the component needs more than {limit} core instances, tables or memories")]
    Instances { limit: usize },
    #[error("metrics limit exceeded: the step reported more than {limit} metric values")]
    Metrics { limit: usize },
    #[error("metric name limit exceeded: a metric name of {len} bytes is over the limit of {limit} bytes")]
    MetricName { len: usize, limit: usize },
    #[error("host memory limit exceeded: the step's {what} would make the host hold more than {limit} bytes (raise --max-host-bytes)")]
    HostBytes { what: String, limit: u64 },
}

fn humanize(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

/// Why a step did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The component ran and returned `err(message)`.
    #[error("step failed: {message}")]
    Failed { message: String },
    /// The guest trapped (panic, unreachable, out-of-bounds, ...).
    #[error("step trapped: {message}\nguest backtrace:\n{backtrace}")]
    Trap { message: String, backtrace: String },
    /// A sandbox limit stopped the step.
    #[error(transparent)]
    Limit(#[from] LimitExceeded),
    /// The component does not export `weft:pipeline/task@0.1.0`.
    #[error("{path}: not a Weft step: it does not export `{expected}`; it exports {}", list(.exports))]
    NotAStep {
        path: String,
        expected: &'static str,
        exports: Vec<String>,
    },
    /// The component imports something the host does not provide.
    #[error("{path}: cannot be linked: {reason}")]
    Link { path: String, reason: String },
    /// The file is not a loadable WebAssembly component.
    #[error("{path}: not a valid WebAssembly component: {reason}")]
    InvalidComponent { path: String, reason: String },
    /// The component could not be pre-initialised (snapshotted after its model's `load`);
    /// it can still be run the ordinary way.
    #[error("{path}: cannot be snapshotted after loading its model: {reason}")]
    Snapshot { path: String, reason: String },
    /// A grant in the request is unusable (missing input, unwritable output dir, bad env name).
    #[error("{0}")]
    Grant(String),
    /// The step's outputs hold what an artifact may not: a link, a special file, a hard-linked
    /// file, or a tree past the depth or entries limit (see weft-tree).
    #[error("outputs refused: {0}")]
    Output(String),
    /// The host had no room for the step right now (its instance pool is full): transient.
    #[error("{0}")]
    Busy(String),
    /// Stopped from outside (Ctrl-C, a cancelled run).
    #[error("step cancelled")]
    Cancelled,
    /// Stopped by its metric watch (a tuner's early stopping) in a `metrics.report` call.
    #[error("early stopped: {reason}")]
    EarlyStopped { reason: String },
    /// Host-side I/O or internal failure.
    #[error(transparent)]
    Host(#[from] anyhow::Error),
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "nothing".to_string()
    } else {
        items
            .iter()
            .map(|e| format!("`{e}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl StepError {
    /// What the host appends to a failed step's log: the kind in the tag, then the error once
    /// (`[weft failed] step failed: no rows`; a trap's guest backtrace follows on its lines).
    pub fn log_line(&self) -> String {
        format!("[weft {}] {self}", self.kind())
    }

    /// A short stable name for the kind of failure, for logs and JSON output.
    pub fn kind(&self) -> &'static str {
        match self {
            StepError::Failed { .. } => "failed",
            StepError::Trap { .. } => "trap",
            StepError::Limit(LimitExceeded::Memory { .. }) => "memory-limit",
            StepError::Limit(LimitExceeded::Timeout { .. }) => "timeout",
            StepError::Limit(LimitExceeded::OutputBytes { .. }) => "output-limit",
            StepError::Limit(LimitExceeded::OutputEntries { .. }) => "output-entries-limit",
            StepError::Limit(LimitExceeded::TableElements { .. }) => "table-limit",
            StepError::Limit(LimitExceeded::Instances { .. }) => "instance-limit",
            StepError::Limit(LimitExceeded::Metrics { .. }) => "metrics-limit",
            StepError::Limit(LimitExceeded::MetricName { .. }) => "metric-name-limit",
            StepError::Limit(LimitExceeded::HostBytes { .. }) => "host-memory-limit",
            StepError::NotAStep { .. } => "not-a-step",
            StepError::Link { .. } => "link",
            StepError::InvalidComponent { .. } => "invalid-component",
            StepError::Snapshot { .. } => "snapshot",
            StepError::Grant(_) => "grant",
            StepError::Output(_) => "output-refused",
            StepError::Busy(_) => "busy",
            StepError::Cancelled => "cancelled",
            StepError::EarlyStopped { .. } => "early-stopped",
            StepError::Host(_) => "host",
        }
    }

    /// The first line of the message: what `wasm-run` prints as the one-line cause.
    pub fn one_line(&self) -> String {
        self.to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_line_says_the_error_once_with_its_kind() {
        let e = StepError::Failed {
            message: "no rows".into(),
        };
        assert_eq!(e.log_line(), "[weft failed] step failed: no rows");
    }
}
