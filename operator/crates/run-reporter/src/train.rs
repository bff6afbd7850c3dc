//! Live progress of a TrainJob: the runner (`wasm-run train FILE --kube-status NS/NAME`) follows
//! the steps its workers report and writes Trainer v2's `status.trainerStatus` (progress
//! percentage, estimated time left, the latest value of each metric) at most once per interval,
//! and once more at the end. The operator owns the rest of the status.

use crate::MANAGER;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;
use weft_crd::{TrainJob, TrainerMetric, TrainerStatus};

/// One metric a worker reported.
#[derive(Clone, Debug, PartialEq)]
pub struct StepMetric {
    pub name: String,
    pub value: f64,
    pub step: Option<u64>,
}

/// What the runner knows of the job's progress, and where to write it.
pub struct TrainReporter {
    api: Api<TrainJob>,
    name: String,
    /// The steps the job takes in all, when its trainer says (`epochs`).
    total: Option<u64>,
    /// The first step seen, and when: the rate the time left is estimated from.
    first: Option<(u64, Instant)>,
    step: Option<u64>,
    metrics: BTreeMap<String, f64>,
}

impl TrainReporter {
    pub fn new(client: Client, namespace: &str, name: &str, total: Option<u64>) -> Self {
        TrainReporter {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            total,
            first: None,
            step: None,
            metrics: BTreeMap::new(),
        }
    }

    /// Follows `metrics` to their end, writing at most once per `interval`, and a last time at
    /// the end. A failed write is logged, not fatal: training goes on.
    pub async fn follow(&mut self, mut metrics: UnboundedReceiver<StepMetric>, interval: Duration) {
        let mut dirty = false;
        let mut last_write: Option<Instant> = None;
        loop {
            let due = last_write.map(|t| t + interval);
            let next = match (dirty, due) {
                (true, Some(due)) => tokio::select! {
                    m = metrics.recv() => m.map(Some),
                    _ = tokio::time::sleep_until(due) => Some(None),
                },
                _ => metrics.recv().await.map(Some),
            };
            match next {
                None => break,
                Some(Some(m)) => dirty |= self.observe(m, Instant::now()),
                Some(None) => {}
            }
            if dirty && last_write.is_none_or(|t| t.elapsed() >= interval) {
                self.write().await;
                dirty = false;
                last_write = Some(Instant::now());
            }
        }
        if dirty {
            self.write().await;
        }
    }

    /// Folds in one metric seen at `now`; true when the status would change.
    pub fn observe(&mut self, m: StepMetric, now: Instant) -> bool {
        if let Some(step) = m.step {
            if self.step.is_some_and(|s| step < s) {
                return false;
            }
            self.first.get_or_insert((step, now));
            self.step = Some(step);
        }
        self.metrics.insert(m.name, m.value);
        true
    }

    /// Trainer's `trainerStatus` at `now`: the step over the total as a percentage, the time
    /// left at the rate since the first step seen (steps after a restart count from there).
    pub fn trainer_status(&self, now: Instant, wall_clock: String) -> TrainerStatus {
        let progress = match (self.step, self.total) {
            (Some(step), Some(total)) if total > 0 => {
                Some(((step + 1).min(total) * 100 / total) as u32)
            }
            _ => None,
        };
        let remaining = match (self.first, self.step, self.total) {
            (Some((s0, t0)), Some(step), Some(total)) if step > s0 => {
                let rate = (step - s0) as f64 / now.duration_since(t0).as_secs_f64().max(1e-9);
                Some((total.saturating_sub(step + 1) as f64 / rate).ceil() as u64)
            }
            _ => None,
        };
        TrainerStatus {
            progress_percentage: progress,
            estimated_remaining_seconds: remaining,
            metrics: self
                .metrics
                .iter()
                .map(|(name, v)| TrainerMetric {
                    name: name.clone(),
                    value: v.to_string(),
                })
                .collect(),
            last_updated_time: Some(wall_clock),
        }
    }

    async fn write(&self) {
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let patch = serde_json::json!({
            "apiVersion": "weft.dev/v1alpha1",
            "kind": "TrainJob",
            "status": {"trainerStatus": self.trainer_status(Instant::now(), now)},
        });
        let params = PatchParams::apply(MANAGER).force();
        if let Err(e) = self
            .api
            .patch_status(&self.name, &params, &Patch::Apply(&patch))
            .await
        {
            tracing::warn!(error = %e, trainjob = %self.name, "could not write the trainer status");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weft_kube_mock::{client, expect, Reply};

    const STATUS: &str = "/apis/weft.dev/v1alpha1/namespaces/ns/trainjobs/iris/status";

    fn loss(step: u64, value: f64) -> StepMetric {
        StepMetric {
            name: "loss".into(),
            value,
            step: Some(step),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn progress_time_left_and_the_latest_metrics_as_trainer_reports_them() {
        let (c, _server) = client(vec![]);
        let mut r = TrainReporter::new(c, "ns", "iris", Some(200));
        let t0 = Instant::now();
        r.observe(loss(0, 1.6), t0);
        r.observe(loss(50, 0.4), t0 + Duration::from_secs(10));
        // An older step arriving late (another rank) changes nothing.
        assert!(!r.observe(loss(40, 0.9), t0 + Duration::from_secs(11)));
        let s = r.trainer_status(t0 + Duration::from_secs(10), "2026-12-03T00:00:00Z".into());
        assert_eq!(s.progress_percentage, Some(25));
        // 5 steps a second, 149 steps to go.
        assert_eq!(s.estimated_remaining_seconds, Some(30));
        assert_eq!(
            s.metrics,
            [TrainerMetric {
                name: "loss".into(),
                value: "0.4".into()
            }]
        );
        r.observe(loss(199, 0.06), t0 + Duration::from_secs(40));
        let s = r.trainer_status(t0 + Duration::from_secs(40), String::new());
        assert_eq!(
            (s.progress_percentage, s.estimated_remaining_seconds),
            (Some(100), Some(0))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn writes_are_at_most_one_per_interval_and_one_at_the_end() {
        let object = json!({"apiVersion": "weft.dev/v1alpha1", "kind": "TrainJob",
                            "metadata": {"name": "iris", "namespace": "ns"}});
        let (c, server) = client(vec![
            expect("PATCH", STATUS, Reply::MergeInto(object.clone())),
            expect("PATCH", STATUS, Reply::MergeInto(object)),
        ]);
        let mut r = TrainReporter::new(c, "ns", "iris", Some(100));
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        for step in 0..50 {
            tx.send(loss(step, 1.0 / (step + 1) as f64)).unwrap();
        }
        drop(tx);
        r.follow(rx, Duration::from_secs(1)).await;
        let seen = server.finish().await;
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(
            seen[0].query.contains("fieldManager=weft-runner"),
            "{}",
            seen[0].query
        );
        let last = &seen[1].body["status"]["trainerStatus"];
        assert_eq!(last["progressPercentage"], 50);
        assert_eq!(last["metrics"][0]["value"], (1.0f64 / 50.0).to_string());
    }
}
