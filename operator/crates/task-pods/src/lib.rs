//! Tasks in pods of their own. Most of a pipeline runs inside the runner's one pod, steps
//! microseconds apart; a task that asks for resources of its own (a GPU, more CPU or memory,
//! particular nodes) or a shard of a parallelFor runs as a Job instead. The operator gives the
//! runner a pod template (image, store settings, volumes, security context: what its own pod
//! has, without API access); the runner makes one Job per work order from it, adding the
//! task's requests and `wasm-run task exec ORDER`, waits for it, and reads the digest of the
//! results from the pod's termination message.
//!
//! Jobs are named from the run and the work order's digest: a runner that restarts and orders
//! the same work finds its Job already there and waits for it instead of starting it again.
//! They are owned by the PipelineRun, so deleting the run deletes them.

use anyhow::{anyhow, bail, Context, Result};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::Client;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use weft_pipeline::work_order::PodLauncher;
use weft_spec::pipeline::TaskResources;

/// The label naming the PipelineRun a task pod works for.
pub const RUN_LABEL: &str = "weft.dev/pipelinerun";
/// The label naming the task (or shard) a pod runs.
pub const TASK_LABEL: &str = "weft.dev/task";
/// Where the pod's results line goes: the container's termination message.
pub const TERMINATION_LOG: &str = "/dev/termination-log";

/// Runs work orders as Jobs in the runner's namespace.
pub struct KubePods {
    jobs: Api<Job>,
    pods: Api<Pod>,
    run: String,
    owner: Option<OwnerReference>,
    template: PodTemplateSpec,
    poll: Duration,
    tokio: tokio::runtime::Handle,
}

impl KubePods {
    /// A launcher for the PipelineRun `namespace/run` whose Jobs start from `template` (its
    /// first container runs `wasm-run`; its args are the global ones, `task exec` is added).
    /// Must be called inside a tokio runtime, whose handle the blocking [`PodLauncher::run`]
    /// uses.
    pub async fn new(
        client: Client,
        namespace: &str,
        run: &str,
        template: PodTemplateSpec,
    ) -> Result<Self> {
        let has_container = template
            .spec
            .as_ref()
            .is_some_and(|s| !s.containers.is_empty());
        if !has_container {
            bail!("the task pod template has no container to run `wasm-run task exec` in");
        }
        // Owned by the run: deleting it deletes its task pods. Without the run (a runner
        // started by hand) the Jobs are left unowned.
        let runs: Api<kube::api::DynamicObject> = Api::namespaced_with(
            client.clone(),
            namespace,
            &kube::api::ApiResource {
                group: "weft.dev".into(),
                version: "v1alpha1".into(),
                api_version: "weft.dev/v1alpha1".into(),
                kind: "PipelineRun".into(),
                plural: "pipelineruns".into(),
            },
        );
        let owner = match runs.get(run).await {
            Ok(r) => r.metadata.uid.map(|uid| OwnerReference {
                api_version: "weft.dev/v1alpha1".into(),
                kind: "PipelineRun".into(),
                name: run.into(),
                uid,
                controller: Some(false),
                block_owner_deletion: None,
            }),
            Err(e) => {
                tracing::warn!(run, error = %e, "task pods will not be owned by the run");
                None
            }
        };
        Ok(KubePods {
            jobs: Api::namespaced(client.clone(), namespace),
            pods: Api::namespaced(client, namespace),
            run: run.into(),
            owner,
            template,
            poll: Duration::from_secs(1),
            tokio: tokio::runtime::Handle::current(),
        })
    }

    /// How often the cancel flag is looked at while a Job is watched (default 1 s).
    pub fn poll_every(mut self, every: Duration) -> Self {
        self.poll = every;
        self
    }

    async fn run_async(
        &self,
        name: &str,
        order: &str,
        resources: &TaskResources,
        cancel: &AtomicBool,
    ) -> Result<String> {
        let job = task_job(
            &self.run,
            name,
            order,
            resources,
            &self.template,
            self.owner.clone(),
        )?;
        let job_name = job.metadata.name.clone().expect("task_job names its Job");
        match self.jobs.create(&PostParams::default(), &job).await {
            Ok(_) => tracing::info!(job = %job_name, task = name, "task pod started"),
            // This work was ordered before (the runner restarted): wait for that Job.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                tracing::info!(job = %job_name, task = name, "task pod exists: waiting for it")
            }
            Err(e) => return Err(e).with_context(|| format!("creating the Job of task {name}")),
        }
        let job = self.await_finished(&job_name, cancel).await?;
        let status = job.status.unwrap_or_default();
        if status.succeeded.unwrap_or(0) > 0 {
            let message = self.termination_message(&job_name).await?;
            return results_digest(&message)
                .with_context(|| format!("the report of Job {job_name}"));
        }
        let message = self
            .termination_message(&job_name)
            .await
            .unwrap_or_else(|e| format!("{e:#}"));
        bail!("the pod of task {name} (Job {job_name}) failed: {message}")
    }

    /// Waits for the Job to succeed or fail, watching it (kube's `await_condition`) rather
    /// than reading it over and over. A watch that breaks (an API server restart, a dropped
    /// connection) is watched again after a back-off, up to [`WATCH_RETRIES`] times in a row:
    /// a blip is not the task's failure. The cancel flag is looked at every `poll`; on cancel
    /// the Job is deleted.
    async fn await_finished(&self, job_name: &str, cancel: &AtomicBool) -> Result<Job> {
        let mut broken = 0;
        loop {
            let watch = await_condition(self.jobs.clone(), job_name, job_finished);
            let mut watch = std::pin::pin!(watch);
            let outcome = loop {
                tokio::select! {
                    outcome = &mut watch => break outcome,
                    _ = tokio::time::sleep(self.poll) => {
                        if cancel.load(Ordering::Relaxed) {
                            let _ = self.jobs.delete(job_name, &DeleteParams::background()).await;
                            bail!("cancelled: deleted Job {job_name}");
                        }
                    }
                }
            };
            match outcome {
                Ok(Some(job)) => return Ok(job),
                Ok(None) => bail!("Job {job_name} was deleted before its pod finished"),
                Err(e) if broken < WATCH_RETRIES => {
                    broken += 1;
                    tracing::warn!(job = job_name, error = %e, attempt = broken, "watching the Job failed; watching again");
                    tokio::time::sleep(Duration::from_millis(100 << broken)).await;
                }
                // kube's errors repeat their sources in their own message: name the root once.
                Err(e) => bail!(
                    "watching Job {job_name} failed {} times in a row; last: {}",
                    broken + 1,
                    root_cause(&e)
                ),
            }
        }
    }

    /// The termination message of the Job's finished pod.
    async fn termination_message(&self, job: &str) -> Result<String> {
        let pods = self
            .pods
            .list(&ListParams::default().labels(&format!("job-name={job}")))
            .await
            .with_context(|| format!("listing the pods of Job {job}"))?;
        pods.items
            .iter()
            .filter_map(|p| p.status.as_ref()?.container_statuses.as_ref())
            .flatten()
            .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.message.clone())
            .next_back()
            .ok_or_else(|| anyhow!("no pod of Job {job} left a termination message"))
    }
}

impl PodLauncher for KubePods {
    fn run(
        &self,
        name: &str,
        order: &str,
        resources: &TaskResources,
        cancel: &AtomicBool,
    ) -> Result<String> {
        self.tokio
            .block_on(self.run_async(name, order, resources, cancel))
    }
}

/// Times in a row a broken watch of a Job is started again before the wait gives up.
const WATCH_RETRIES: u32 = 5;

/// A Job is finished once a pod of it succeeded or failed (task Jobs have no retries of their
/// own: the runner's retry policy decides), or once it is gone.
fn job_finished(job: Option<&Job>) -> bool {
    let Some(status) = job.and_then(|j| j.status.as_ref()) else {
        return job.is_none();
    };
    status.succeeded.unwrap_or(0) > 0 || status.failed.unwrap_or(0) > 0
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    std::iter::successors(Some(e), |e| e.source())
        .last()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

/// Reads a pod template (a `PodTemplateSpec` as JSON) from `path`: what the operator writes
/// into the run's spec ConfigMap for its runner.
pub fn read_template(path: &std::path::Path) -> Result<PodTemplateSpec> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the task pod template {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{}: not a PodTemplateSpec", path.display()))
}

/// The digest in a `task exec` results line, `{"results": "sha256:..."}`.
fn results_digest(message: &str) -> Result<String> {
    let line: serde_json::Value = serde_json::from_str(message.trim())
        .with_context(|| format!("not a results line: {message}"))?;
    line["results"]
        .as_str()
        .filter(|d| d.starts_with("sha256:"))
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no results digest in {message}"))
}

/// The Job running work order `order` for task (or shard) `name` of run `run`: the template's
/// pod with the task's requests and node selector, `wasm-run task exec`, never restarted (the
/// runner retries a failed step itself, by the task's retry policy).
pub fn task_job(
    run: &str,
    name: &str,
    order: &str,
    resources: &TaskResources,
    template: &PodTemplateSpec,
    owner: Option<OwnerReference>,
) -> Result<Job> {
    let mut pod = template.clone();
    let spec = pod
        .spec
        .as_mut()
        .ok_or_else(|| anyhow!("the task pod template has no pod spec"))?;
    spec.restart_policy = Some("Never".into());
    let container = spec
        .containers
        .first_mut()
        .ok_or_else(|| anyhow!("the task pod template has no container"))?;
    container.args.get_or_insert_with(Vec::new).extend(
        ["task", "exec", order, "--report", TERMINATION_LOG]
            .iter()
            .map(|s| s.to_string()),
    );
    container.termination_message_policy = Some("FallbackToLogsOnError".into());
    weft_crd::resources::request_resources(spec, resources);
    let labels = BTreeMap::from([
        (RUN_LABEL.to_string(), label_value(run)),
        (TASK_LABEL.to_string(), label_value(name)),
    ]);
    pod.metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(Default::default)
        .extend(labels.clone());
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(job_name(run, name, order)),
            labels: Some(labels),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            template: pod,
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// `<run>-<task>-<order hash>`, a DNS label (≤ 63 characters, lower-case alphanumerics and
/// `-`): the same work order of the same run always names the same Job.
pub fn job_name(run: &str, name: &str, order: &str) -> String {
    let hash = hex::encode(&Sha256::digest(format!("{run}\n{name}\n{order}"))[..5]);
    let mut stem: String = format!("{run}-{name}")
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    stem.truncate(63 - hash.len() - 1);
    let stem = stem.trim_matches('-');
    format!("{stem}-{hash}")
}

/// A label value: ≤ 63 characters of alphanumerics, `-`, `_` and `.`, alphanumeric at both ends.
fn label_value(s: &str) -> String {
    let mut v: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    v.truncate(63);
    v.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    fn template() -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "task".into(),
                    image: Some("wasm-run:test".into()),
                    args: Some(vec!["--home".into(), "/var/lib/weft".into()]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_task_job_asks_for_the_tasks_resources_and_runs_its_order() {
        let resources = TaskResources {
            cpu: Some("2".into()),
            memory: Some("4Gi".into()),
            gpu: Some(1),
            node_selector: BTreeMap::from([("accelerator".into(), "h100".into())]),
        };
        let job = task_job("r", "train", "sha256:ab", &resources, &template(), None).unwrap();
        let spec = job.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(pod.node_selector.unwrap()["accelerator"], "h100");
        let c = &pod.containers[0];
        assert_eq!(
            c.args.as_ref().unwrap(),
            &[
                "--home",
                "/var/lib/weft",
                "task",
                "exec",
                "sha256:ab",
                "--report",
                "/dev/termination-log"
            ]
        );
        let r = c.resources.as_ref().unwrap();
        for amounts in [r.requests.as_ref().unwrap(), r.limits.as_ref().unwrap()] {
            assert_eq!(amounts["nvidia.com/gpu"].0, "1");
            assert_eq!(amounts["cpu"].0, "2");
            assert_eq!(amounts["memory"].0, "4Gi");
        }
        assert_eq!(job.metadata.labels.unwrap()[TASK_LABEL], "train");
    }

    #[test]
    fn job_names_are_dns_labels_and_stable_per_order() {
        let long = "a".repeat(80);
        let n = job_name(&long, "Sweep[3]", "sha256:1");
        assert!(n.len() <= 63, "{n}");
        assert!(n
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        assert_eq!(n, job_name(&long, "Sweep[3]", "sha256:1"));
        assert_ne!(n, job_name(&long, "Sweep[3]", "sha256:2"));
        assert_eq!(label_value("sweep[3]"), "sweep-3");
    }

    #[test]
    fn the_results_line_must_name_a_digest() {
        assert_eq!(
            results_digest("{\"results\": \"sha256:ff\"}\n").unwrap(),
            "sha256:ff"
        );
        assert!(results_digest("Error: out of memory").is_err());
        assert!(results_digest("{\"results\": \"x\"}").is_err());
    }
}
