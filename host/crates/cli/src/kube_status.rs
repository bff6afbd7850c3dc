//! `pipeline run --kube-status NS/NAME`: the executor's events go both to the progress display
//! and to weft-run-reporter, which writes them into the PipelineRun's status. `tune
//! --kube-status NS/NAME` does the same with an experiment's events and its Experiment.

use anyhow::Result;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;
use weft_pipeline::RunEvent;

/// Starts the reporter on a copy of `events`; returns the stream for the progress display and
/// the reporter's task (which ends once the events do and its last write is done).
#[cfg(feature = "kube")]
pub async fn follow(
    (namespace, name): (String, String),
    mut events: UnboundedReceiver<RunEvent>,
) -> Result<(UnboundedReceiver<RunEvent>, JoinHandle<()>)> {
    use anyhow::Context;
    use tokio::sync::mpsc::unbounded_channel;
    let client = kube::Client::try_default()
        .await
        .context("--kube-status: connecting to Kubernetes (in-cluster or kubeconfig)")?;
    let (display_tx, display_rx) = unbounded_channel();
    let (report_tx, report_rx) = unbounded_channel();
    tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            let _ = report_tx.send(e.clone());
            let _ = display_tx.send(e);
        }
    });
    let reporter = tokio::spawn(async move {
        let interval = std::time::Duration::from_secs(1);
        weft_run_reporter::follow(client, &namespace, &name, report_rx, interval).await;
    });
    Ok((display_rx, reporter))
}

#[cfg(not(feature = "kube"))]
pub async fn follow(
    _run: (String, String),
    _events: UnboundedReceiver<RunEvent>,
) -> Result<(UnboundedReceiver<RunEvent>, JoinHandle<()>)> {
    anyhow::bail!(
        "--kube-status: this wasm-run was built without Kubernetes support (cargo feature `kube`)"
    )
}

/// The launcher for tasks in pods of their own, for PipelineRun `namespace/name`, making Jobs
/// from the pod template in `template`.
#[cfg(feature = "kube")]
pub async fn pods(
    (namespace, name): (String, String),
    template: &std::path::Path,
) -> Result<weft_pipeline::work_order::Pods> {
    use anyhow::Context;
    let template = weft_task_pods::read_template(template)?;
    let client = kube::Client::try_default()
        .await
        .context("--task-pods: connecting to Kubernetes (in-cluster or kubeconfig)")?;
    let mut pods = weft_task_pods::KubePods::new(client, &namespace, &name, template).await?;
    if let Some(ms) = std::env::var("WEFT_TASK_POD_POLL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        pods = pods.poll_every(std::time::Duration::from_millis(ms));
    }
    Ok(std::sync::Arc::new(pods))
}

#[cfg(not(feature = "kube"))]
pub async fn pods(
    _run: (String, String),
    _template: &std::path::Path,
) -> Result<weft_pipeline::work_order::Pods> {
    anyhow::bail!(
        "--task-pods: this wasm-run was built without Kubernetes support (cargo feature `kube`)"
    )
}

/// The reporter of `tune --kube-status`, following the experiment's events until they end.
pub struct ExperimentReport {
    #[cfg(feature = "kube")]
    task: JoinHandle<weft_run_reporter::experiment::ExperimentReporter>,
}

impl ExperimentReport {
    /// Waits for the events to end, then writes the status a last time, from the
    /// experiment's summary (`trials`) when it has one.
    pub async fn finish(self, trials: Option<&[weft_store::TrialRecord]>) {
        #[cfg(feature = "kube")]
        if let Ok(reporter) = self.task.await {
            reporter.finish(trials).await;
        }
        #[cfg(not(feature = "kube"))]
        let _ = trials;
    }
}

/// Starts the reporter of Experiment `namespace/name` (running `spec`, with the trials
/// `stored` before it started) on a copy of `events`; returns the stream for the progress
/// display and the reporter.
#[cfg(feature = "kube")]
pub async fn follow_experiment(
    (namespace, name): (String, String),
    spec: weft_spec::experiment::ExperimentSpec,
    stored: Vec<weft_store::TrialRecord>,
    mut events: UnboundedReceiver<weft_experiment::ExperimentEvent>,
) -> Result<(
    UnboundedReceiver<weft_experiment::ExperimentEvent>,
    ExperimentReport,
)> {
    use anyhow::Context;
    use tokio::sync::mpsc::unbounded_channel;
    let client = kube::Client::try_default()
        .await
        .context("--kube-status: connecting to Kubernetes (in-cluster or kubeconfig)")?;
    let (display_tx, display_rx) = unbounded_channel();
    let (report_tx, report_rx) = unbounded_channel();
    tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            let _ = report_tx.send(e.clone());
            let _ = display_tx.send(e);
        }
    });
    let mut reporter = weft_run_reporter::experiment::ExperimentReporter::new(
        client, &namespace, &name, spec, &stored,
    );
    let task = tokio::spawn(async move {
        let interval = std::time::Duration::from_secs(1);
        reporter.follow(report_rx, interval).await;
        reporter
    });
    Ok((display_rx, ExperimentReport { task }))
}

#[cfg(not(feature = "kube"))]
pub async fn follow_experiment(
    _experiment: (String, String),
    _spec: weft_spec::experiment::ExperimentSpec,
    _stored: Vec<weft_store::TrialRecord>,
    _events: UnboundedReceiver<weft_experiment::ExperimentEvent>,
) -> Result<(
    UnboundedReceiver<weft_experiment::ExperimentEvent>,
    ExperimentReport,
)> {
    anyhow::bail!(
        "--kube-status: this wasm-run was built without Kubernetes support (cargo feature `kube`)"
    )
}

/// Where a runner's step metrics go to become its TrainJob's `trainerStatus` (`train
/// --kube-status NS/NAME`): cloned into the step watch; [`TrainReport::finish`] writes the
/// last of it.
#[derive(Clone)]
pub struct TrainSink {
    #[cfg(feature = "kube")]
    tx: tokio::sync::mpsc::UnboundedSender<weft_run_reporter::train::StepMetric>,
}

impl TrainSink {
    pub fn send(&self, name: &str, value: f64, step: Option<u64>) {
        #[cfg(feature = "kube")]
        let _ = self.tx.send(weft_run_reporter::train::StepMetric {
            name: name.to_string(),
            value,
            step,
        });
        #[cfg(not(feature = "kube"))]
        let _ = (name, value, step);
    }
}

/// The TrainJob reporter, on a thread of its own (the runtime's watches call in from worker
/// threads, outside any async runtime).
pub struct TrainReport {
    sink: TrainSink,
    #[cfg(feature = "kube")]
    thread: std::thread::JoinHandle<()>,
}

impl TrainReport {
    pub fn sink(&self) -> TrainSink {
        self.sink.clone()
    }

    /// Waits for the last write, once every other sink is dropped.
    pub fn finish(self) {
        #[cfg(feature = "kube")]
        {
            drop(self.sink.tx);
            let _ = self.thread.join();
        }
    }
}

/// Starts the reporter of TrainJob `namespace/name`, whose trainer takes `total` steps.
#[cfg(feature = "kube")]
pub fn follow_train(
    (namespace, name): (String, String),
    total: Option<u64>,
) -> Result<TrainReport> {
    use anyhow::Context;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = rt
        .block_on(kube::Client::try_default())
        .context("--kube-status: connecting to Kubernetes (in-cluster or kubeconfig)")?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let thread = std::thread::Builder::new()
        .name("trainjob status".into())
        .spawn(move || {
            rt.block_on(async move {
                let mut reporter =
                    weft_run_reporter::train::TrainReporter::new(client, &namespace, &name, total);
                reporter.follow(rx, std::time::Duration::from_secs(1)).await;
            })
        })?;
    Ok(TrainReport {
        sink: TrainSink { tx },
        thread,
    })
}

#[cfg(not(feature = "kube"))]
pub fn follow_train(_job: (String, String), _total: Option<u64>) -> Result<TrainReport> {
    anyhow::bail!(
        "--kube-status: this wasm-run was built without Kubernetes support (cargo feature `kube`)"
    )
}
