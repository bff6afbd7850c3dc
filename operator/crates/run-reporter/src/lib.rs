//! Live task status for a PipelineRun: the runner (`wasm-run pipeline run --kube-status NS/NAME`)
//! follows its executor's events and writes `status.tasks` of its PipelineRun as tasks start and
//! finish, at most once per interval, so `kubectl get pipelinerun -w` shows progress while the
//! run goes. The operator owns the rest of the status and writes the final report when the
//! runner ends. [`experiment`] does the same for an Experiment's trials (`wasm-run tune
//! --kube-status NS/NAME`), [`train`] for a TrainJob's progress (`wasm-run train
//! --kube-status NS/NAME`).

pub mod experiment;
pub mod train;

use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;
use weft_crd::PipelineRun;
use weft_pipeline::RunEvent;
use weft_spec::report::TaskReport;
use weft_store::TaskState;

/// The field manager of the runner's writes.
pub const MANAGER: &str = "weft-runner";

/// Follows `events` to their end, writing the task states to `namespace/name`'s status at most
/// once per `interval` (and once at the end). A failed write is logged, not fatal: the run
/// goes on and the operator still writes the final report.
pub async fn follow(
    client: Client,
    namespace: &str,
    name: &str,
    mut events: UnboundedReceiver<RunEvent>,
    interval: Duration,
) {
    let api: Api<PipelineRun> = Api::namespaced(client, namespace);
    let mut tasks: BTreeMap<String, TaskReport> = BTreeMap::new();
    let mut dirty = false;
    let mut last_write: Option<Instant> = None;
    loop {
        let due = last_write.map(|t| t + interval);
        let event = match (dirty, due) {
            (true, Some(due)) => tokio::select! {
                e = events.recv() => e.map(Some),
                _ = tokio::time::sleep_until(due) => Some(None),
            },
            _ => events.recv().await.map(Some),
        };
        match event {
            None => break,
            Some(Some(e)) => dirty |= apply(&mut tasks, e),
            Some(None) => {}
        }
        if dirty && last_write.is_none_or(|t| t.elapsed() >= interval) {
            write(&api, name, &tasks).await;
            dirty = false;
            last_write = Some(Instant::now());
        }
    }
    if dirty {
        write(&api, name, &tasks).await;
    }
}

/// Folds one event into the task states; true when they changed.
fn apply(tasks: &mut BTreeMap<String, TaskReport>, event: RunEvent) -> bool {
    let now = || Some(k8s_openapi::jiff::Timestamp::now().to_string());
    match event {
        RunEvent::TaskStarted { task, .. } if !task.contains('[') => {
            let t = tasks.entry(task).or_default();
            t.state = TaskState::Running.as_str().into();
            t.start_time = t.start_time.take().or_else(now);
            t.message = None;
            true
        }
        RunEvent::TaskRetrying {
            task,
            attempt,
            error,
            ..
        } if !task.contains('[') => {
            let t = tasks.entry(task).or_default();
            t.message = Some(format!("attempt {attempt} failed: {error}; retrying"));
            true
        }
        RunEvent::TaskFinished {
            task,
            state,
            detail,
            ..
        } if !task.contains('[') => {
            let t = tasks.entry(task).or_default();
            t.state = state.as_str().into();
            t.finish_time = now();
            t.message = detail.filter(|_| state == TaskState::Failed);
            true
        }
        _ => false,
    }
}

async fn write(api: &Api<PipelineRun>, name: &str, tasks: &BTreeMap<String, TaskReport>) {
    let patch = serde_json::json!({
        "apiVersion": "weft.dev/v1alpha1",
        "kind": "PipelineRun",
        "status": {"tasks": tasks},
    });
    let params = PatchParams::apply(MANAGER).force();
    if let Err(e) = api.patch_status(name, &params, &Patch::Apply(&patch)).await {
        tracing::warn!(error = %e, run = name, "could not write the task status");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weft_kube_mock::{client, expect, Reply};

    const STATUS: &str = "/apis/weft.dev/v1alpha1/namespaces/ns/pipelineruns/r/status";

    fn run() -> serde_json::Value {
        json!({"apiVersion": "weft.dev/v1alpha1", "kind": "PipelineRun",
               "metadata": {"name": "r", "namespace": "ns"}, "spec": {"pipelineRef": "p"}})
    }

    #[tokio::test(start_paused = true)]
    async fn transitions_are_written_as_they_happen_at_most_once_per_interval() {
        let (c, server) = client(vec![
            expect("PATCH", STATUS, Reply::MergeInto(run())),
            expect("PATCH", STATUS, Reply::MergeInto(run())),
            expect("PATCH", STATUS, Reply::MergeInto(run())),
        ]);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let follower = tokio::spawn(async move {
            follow(c, "ns", "r", rx, Duration::from_secs(1)).await;
        });
        let started = |t: &str| RunEvent::TaskStarted {
            task: t.into(),
            attempt: 1,
        };
        let finished = |t: &str, state| RunEvent::TaskFinished {
            task: t.into(),
            state,
            duration: None,
            detail: Some("step trapped".into()),
        };
        // The first transition is written at once.
        tx.send(started("load")).unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        // These three come within the interval: one write, when it has passed.
        tx.send(finished("load", TaskState::Succeeded)).unwrap();
        tx.send(started("train")).unwrap();
        tx.send(started("train[0]")).unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // The last, then the end of the run: written on close.
        tx.send(finished("train", TaskState::Failed)).unwrap();
        drop(tx);
        follower.await.unwrap();
        let seen = server.finish().await;
        assert!(seen[0].query.contains("fieldManager=weft-runner"));
        assert_eq!(seen[0].body["status"]["tasks"]["load"]["state"], "RUNNING");
        let second = &seen[1].body["status"]["tasks"];
        assert_eq!(second["load"]["state"], "SUCCEEDED");
        assert_eq!(second["train"]["state"], "RUNNING");
        assert!(
            second.get("train[0]").is_none(),
            "iterations are not listed"
        );
        let last = &seen[2].body["status"]["tasks"]["train"];
        assert_eq!(last["state"], "FAILED");
        assert_eq!(last["message"], "step trapped");
        assert!(last["startTime"].is_string() && last["finishTime"].is_string());
    }
}
