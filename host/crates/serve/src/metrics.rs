//! Prometheus metrics, named as KServe names them so existing dashboards read them:
//! `request_predict_seconds` (latency histogram per model) and `weft_requests` (count per model
//! and status code); and `weft_requests_in_flight`, the gauge an autoscaler follows for the
//! `concurrency` scaling metric.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::time::Duration;

type Labels = Vec<(String, String)>;

pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    predict_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    in_flight: Gauge,
}

/// Counts a request in flight until dropped.
pub(crate) struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn latency_histogram() -> Histogram {
    // 50 µs to ~1.6 s.
    Histogram::new(exponential_buckets(0.00005, 2.0, 16))
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<Labels, Counter>::default();
        let predict_seconds =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "weft_requests",
            "Inference requests by model and HTTP status code",
            requests.clone(),
        );
        registry.register(
            "request_predict_seconds",
            "Time to answer an inference request",
            predict_seconds.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "weft_requests_in_flight",
            "Inference requests being answered now",
            in_flight.clone(),
        );
        Metrics {
            registry,
            requests,
            predict_seconds,
            in_flight,
        }
    }

    pub(crate) fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    pub(crate) fn observe(&self, model: &str, code: u16, elapsed: Duration) {
        let labels = vec![
            ("model_name".to_string(), model.to_string()),
            ("code".to_string(), code.to_string()),
        ];
        self.requests.get_or_create(&labels).inc();
        let labels = vec![("model_name".to_string(), model.to_string())];
        self.predict_seconds
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
