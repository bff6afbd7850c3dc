//! Prometheus metrics of the controllers: reconciles, failures (by error), durations; notebooks
//! culled (Kubeflow's NotebookCullingCount and NotebookCullingTimestamp).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    controller: String,
    error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotebookLabels {
    namespace: String,
    name: String,
}

pub struct Metrics {
    registry: Registry,
    culls: Family<NotebookLabels, Counter>,
    last_cull: Family<NotebookLabels, Gauge<f64, AtomicU64>>,
    reconciles: Family<ControllerLabels, Counter>,
    failures: Family<ErrorLabels, Counter>,
    durations: Family<ControllerLabels, Histogram, fn() -> Histogram>,
}

fn duration_histogram() -> Histogram {
    Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0])
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("weft_operator");
        let reconciles = Family::<ControllerLabels, Counter>::default();
        let failures = Family::<ErrorLabels, Counter>::default();
        let durations =
            Family::<ControllerLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                duration_histogram,
            );
        registry.register("reconciles", "Reconciles started", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Reconciles that failed",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "How long reconciles took",
            durations.clone(),
        );
        let culls = Family::<NotebookLabels, Counter>::default();
        let last_cull = Family::<NotebookLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "notebook_culls",
            "Notebooks stopped by the idle culler",
            culls.clone(),
        );
        registry.register(
            "notebook_last_cull_timestamp_seconds",
            "When the culler last stopped the notebook (Unix time)",
            last_cull.clone(),
        );
        Metrics {
            registry,
            culls,
            last_cull,
            reconciles,
            failures,
            durations,
        }
    }
}

/// Observes a reconcile's duration when dropped.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    controller: &'static str,
    started: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .durations
            .get_or_create(&ControllerLabels {
                controller: self.controller.into(),
            })
            .observe(self.started.elapsed().as_secs_f64());
    }
}

impl Metrics {
    /// Counts a reconcile of `controller` and times it until the guard drops.
    pub fn reconcile(&self, controller: &'static str) -> ReconcileTimer<'_> {
        self.reconciles
            .get_or_create(&ControllerLabels {
                controller: controller.into(),
            })
            .inc();
        ReconcileTimer {
            metrics: self,
            controller,
            started: Instant::now(),
        }
    }

    pub fn failure(&self, controller: &'static str, error: &crate::Error) {
        self.failures
            .get_or_create(&ErrorLabels {
                controller: controller.into(),
                error: error.metric_label().into(),
            })
            .inc();
    }

    /// Counts a notebook the idle culler stopped at `at`.
    pub fn notebook_culled(&self, namespace: &str, name: &str, at: k8s_openapi::jiff::Timestamp) {
        let labels = NotebookLabels {
            namespace: namespace.into(),
            name: name.into(),
        };
        self.culls.get_or_create(&labels).inc();
        self.last_cull
            .get_or_create(&labels)
            .set(at.as_millisecond() as f64 / 1000.0);
    }

    /// The text exposition format, for `/metrics`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("metrics encode");
        out
    }
}
