//! Prometheus metrics, named as KServe names them so existing dashboards read them:
//! `request_predict_seconds` (latency histogram per model) and `weft_requests` (count per model
//! and status code); `weft_requests_in_flight`, the gauge an autoscaler follows for the
//! `concurrency` scaling metric; and `weft_requests_queued`, those of them waiting for a slot.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

type Labels = Vec<(String, String)>;

pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    in_flight: Gauge,
    queued: Gauge,
    /// Each declared model's series, found once: counting a request then builds no label sets.
    models: HashMap<String, ModelSeries>,
}

/// One model's series: its latency histogram and its counters by status code.
struct ModelSeries {
    predict_seconds: Histogram,
    by_code: RwLock<Vec<(u16, Counter)>>,
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
    /// Metrics for the declared `models`; requests for other names are not counted (a client
    /// could otherwise grow the series without bound).
    pub(crate) fn new<'a>(models: impl IntoIterator<Item = &'a str>) -> Self {
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
        let queued = Gauge::default();
        registry.register(
            "weft_requests_queued",
            "Inference requests waiting for a slot of their model version",
            queued.clone(),
        );
        let models = models
            .into_iter()
            .map(|model| {
                let labels = vec![("model_name".to_string(), model.to_string())];
                let series = ModelSeries {
                    predict_seconds: predict_seconds.get_or_create(&labels).clone(),
                    by_code: RwLock::default(),
                };
                (model.to_string(), series)
            })
            .collect();
        Metrics {
            registry,
            requests,
            in_flight,
            queued,
            models,
        }
    }

    pub(crate) fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// The gauge of requests waiting for a slot, which every version's slots move.
    pub(crate) fn queued(&self) -> Gauge {
        self.queued.clone()
    }

    /// Counts one request to `model` answered with `code`, if `model` is a declared one.
    pub(crate) fn observe(&self, model: &str, code: u16, elapsed: Duration) {
        let Some(series) = self.models.get(model) else {
            return;
        };
        series.predict_seconds.observe(elapsed.as_secs_f64());
        let known = series
            .by_code
            .read()
            .unwrap()
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, counter)| counter.clone());
        let counter = known.unwrap_or_else(|| {
            let labels = vec![
                ("model_name".to_string(), model.to_string()),
                ("code".to_string(), code.to_string()),
            ];
            let counter = self.requests.get_or_create(&labels).clone();
            let mut by_code = series.by_code.write().unwrap();
            if !by_code.iter().any(|(c, _)| *c == code) {
                by_code.push((code, counter.clone()));
            }
            counter
        });
        counter.inc();
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
