//! A TrainJob whose ranks span pods (engine mpi or nccl, or numNodes > 1), as Kubeflow's
//! MPIJob v2 and Trainer v2's MPI runtime run one: `numNodes` worker pods (an Indexed Job, so
//! each has a stable hostname) running sshd, found through a headless Service that publishes
//! them before they are ready; and a launcher (the runner Job) running `wasm-run train
//! --hostfile`, whose mpirun starts `numProcPerNode` ranks on each worker over ssh.
//!
//! The job's ssh keys are a Secret made once per job: the launcher's client key, and the
//! workers' host key, which the launcher checks (MPIJob turns host checking off). All start
//! or none: the launcher is made only once every worker pod is ready, and workers that are
//! not all ready within `scheduleTimeoutSeconds` are released rather than holding nodes for a
//! gang that cannot run, then tried again later (the job fails after `backoffLimit` more). Workers go when the job ends or is suspended;
//! everything is owned by the job, so deleting it deletes them.

use crate::apply::{self, child_name, labels, owner};
use crate::pods;
use crate::{Config, Context, Error};
use k8s_openapi::api::batch::v1::{Job, JobSpec, PodFailurePolicy};
use k8s_openapi::api::core::v1::{
    ContainerPort, EmptyDirVolumeSource, EnvVar, KeyToPath, Pod, PodTemplateSpec, Probe,
    SecretVolumeSource, Service, ServicePort, ServiceSpec, TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};
use std::collections::BTreeMap;
use weft_crd::TrainJob;
use weft_mpi_ssh as ssh;
use weft_spec::train_job::{CollectiveEngine, DEFAULT_SCHEDULE_TIMEOUT_SECONDS};

/// The label telling a job's worker pods from its launcher's.
pub const ROLE_LABEL: &str = "weft.dev/role";
/// Where launcher and workers find the job's ssh keys (the Secret).
pub const KEYS_DIR: &str = "/etc/weft-ssh";

/// Whether the job's ranks span pods: the engines that run ranks as MPI processes, or
/// workers on several nodes.
pub fn spans_pods(tj: &TrainJob) -> bool {
    let t = &tj.spec.0.trainer;
    t.num_nodes > 1 || matches!(t.engine, CollectiveEngine::Mpi | CollectiveEngine::Nccl)
}

/// The names of a job's gang children.
pub struct Names {
    pub workers: String,
    pub service: String,
    pub keys: String,
}

impl Names {
    pub fn of(tj: &TrainJob) -> Names {
        let name = tj.name_any();
        // A worker pod's hostname is `<workers>-<index>`, a DNS label: 63 characters at most.
        let digits = tj
            .spec
            .0
            .trainer
            .num_nodes
            .saturating_sub(1)
            .to_string()
            .len();
        let keep = 63 - "-node".len() - 1 - digits;
        let base = name.get(..keep).unwrap_or(&name);
        // The keys carry the job's uid: a Secret left by an earlier job of the same name
        // (awaiting garbage collection) is never taken for this one's.
        let uid = super::uid8(tj);
        Names {
            workers: child_name(base, "node"),
            service: child_name(&name, "workers"),
            keys: child_name(&name, &format!("ssh-{uid}")),
        }
    }
}

/// Whether `name` can name the workers' Service and hostnames: a DNS label (RFC 1035).
fn dns_label(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// What this operator needs for a gang, or why it cannot run one (the job fails saying so).
pub fn check(tj: &TrainJob, config: &Config) -> Result<String, String> {
    let t = &tj.spec.0.trainer;
    let what = format!("numNodes {} with engine {}", t.num_nodes, t.engine.as_str());
    let name = tj.name_any();
    if !dns_label(&name) {
        return Err(format!("InvalidSpec: metadata.name `{name}`: a TrainJob whose ranks span pods names its workers' Service and hostnames after itself, so its name must be a DNS label (a-z, 0-9 and '-', starting with a letter)"));
    }
    if config.artifact_store.is_none() {
        return Err(format!("EngineUnavailable: {what}: ranks in several pods share only the artifact store, and this operator has none (--artifact-store; the chart's artifactStore)"));
    }
    config.mpi_image.clone().ok_or_else(|| format!("EngineUnavailable: {what}: this operator has no image for the MPI engine's launcher and workers (--mpi-image; the chart's mpi.image, the Dockerfile's `mpi` target)"))
}

/// The spec ConfigMap's files beside the job file: OpenMPI's hostfile (each worker's DNS name
/// with `numProcPerNode` slots), the workers' sshd config and the launcher's ssh config.
pub fn spec_files(tj: &TrainJob) -> BTreeMap<String, String> {
    let names = Names::of(tj);
    let t = &tj.spec.0.trainer;
    let hosts = (0..t.num_nodes).map(|i| ssh::worker_host(&names.workers, &names.service, i));
    BTreeMap::from([
        (
            ssh::HOSTFILE.to_string(),
            ssh::hostfile(hosts, t.num_proc_per_node),
        ),
        (
            ssh::SSHD_CONFIG.to_string(),
            ssh::sshd_config(KEYS_DIR, ssh::PORT),
        ),
        (
            ssh::SSH_CONFIG.to_string(),
            ssh::ssh_config(KEYS_DIR, ssh::PORT),
        ),
    ])
}

/// Where a gang stands before its launcher may start.
pub enum Workers {
    /// Every worker pod is ready.
    Ready,
    /// Not yet: why, in words.
    Waiting(String),
    /// Not within the schedule timeout: why (the workers are released; tried again later).
    TimedOut(String),
}

/// Makes (or keeps) the job's keys, Service and workers, and says whether they are all ready.
pub async fn workers(
    tj: &TrainJob,
    ctx: &Context,
    ns: &str,
    image: &str,
    cm: &str,
) -> Result<Workers, Error> {
    let names = Names::of(tj);
    keys(tj, ctx, ns, &names.keys).await?;
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), ns);
    apply::apply(&services, &names.service, &service(tj, &names)).await?;
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    let workers = match jobs.get_opt(&names.workers).await? {
        // Made once: its pod template is immutable, and these are the pods the gang waits on.
        Some(job) => job,
        None => {
            let job = workers_job(tj, &ctx.config, image, cm, &names);
            apply::apply(&jobs, &names.workers, &job).await?
        }
    };
    let ours = workers
        .owner_references()
        .iter()
        .any(|o| Some(&o.uid) == tj.uid().as_ref());
    if workers.metadata.deletion_timestamp.is_some() {
        return Ok(Workers::Waiting(format!(
            "WaitingForWorkers: the workers Job {} of an earlier job of this name is still being deleted",
            names.workers
        )));
    }
    if !ours {
        return Ok(Workers::Waiting(format!(
            "WaitingForWorkers: a Job {} that is not this TrainJob's is in the way (left by an earlier job of this name, or someone else's): delete it, or rename the TrainJob",
            names.workers
        )));
    }
    // This Job's pods alone: not those of an earlier one still being deleted.
    let mut selector = worker_selector(tj);
    if let Some(uid) = &workers.metadata.uid {
        selector += &format!(",batch.kubernetes.io/controller-uid={uid}");
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let listed = pods.list(&ListParams::default().labels(&selector)).await?;
    let want = tj.spec.0.trainer.num_nodes as usize;
    let (ready, waiting) = readiness(&listed.items);
    if ready >= want {
        return Ok(Workers::Ready);
    }
    let mut why = format!("{ready} of {want} worker pods ready");
    if !waiting.is_empty() {
        why += &format!(" ({})", waiting.join("; "));
    }
    let limit = tj
        .spec
        .0
        .run_policy
        .schedule_timeout_seconds
        .unwrap_or(DEFAULT_SCHEDULE_TIMEOUT_SECONDS);
    let waited = workers
        .metadata
        .creation_timestamp
        .map(|t| {
            k8s_openapi::jiff::Timestamp::now()
                .duration_since(t.0)
                .as_secs()
        })
        .unwrap_or(0);
    if waited >= 0 && waited as u64 >= limit {
        return Ok(Workers::TimedOut(format!(
            "GangTimeout: {why} after {waited}s (runPolicy.scheduleTimeoutSeconds {limit}): all workers start or none, so the ones that started were released"
        )));
    }
    Ok(Workers::Waiting(format!("WaitingForWorkers: {why}")))
}

/// Ready pods, and for the others why not (their scheduling condition or container state).
fn readiness(items: &[Pod]) -> (usize, Vec<String>) {
    let mut ready = 0;
    let mut waiting = Vec::new();
    for p in items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let status = p.status.clone().unwrap_or_default();
        let conds = status.conditions.unwrap_or_default();
        if conds
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
        {
            ready += 1;
            continue;
        }
        let unscheduled = conds
            .iter()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")
            .map(|c| {
                format!(
                    "{}: {}",
                    c.reason.clone().unwrap_or_default(),
                    c.message.clone().unwrap_or_default()
                )
            });
        let container = status
            .container_statuses
            .iter()
            .flatten()
            .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
            .next();
        if let Some(why) = unscheduled.or(container) {
            waiting.push(format!("{}: {why}", p.name_any()));
        }
    }
    (ready, waiting)
}

/// Keeps a running gang's workers: a worker Job deleted or failed while the launcher runs is
/// made again (its pods keep their names), so the launcher's retry finds its hosts.
pub async fn keep(tj: &TrainJob, ctx: &Context, ns: &str) -> Result<(), Error> {
    let Some(image) = ctx.config.mpi_image.as_deref() else {
        return Ok(());
    };
    let names = Names::of(tj);
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), ns);
    apply::apply(&services, &names.service, &service(tj, &names)).await?;
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    let failed = |j: &Job| {
        let conds = j.status.as_ref().and_then(|s| s.conditions.as_ref());
        conds
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Failed" && c.status == "True")
    };
    match jobs.get_opt(&names.workers).await? {
        Some(j) if !failed(&j) => return Ok(()),
        Some(_) => apply::delete(&jobs, &names.workers).await?,
        None => {}
    }
    let cm = child_name(&tj.name_any(), "spec");
    let job = workers_job(tj, &ctx.config, image, &cm, &names);
    apply::apply(&jobs, &names.workers, &job).await.map(|_| ())
}

/// Releases the workers and their Service (the job ended, was suspended, or its gang timed
/// out). The keys stay with the job.
pub async fn release(tj: &TrainJob, ctx: &Context, ns: &str) -> Result<(), Error> {
    let names = Names::of(tj);
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    apply::delete(&jobs, &names.workers).await?;
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), ns);
    apply::delete(&services, &names.service).await
}

/// The job's Secret of ssh keys, made once: fresh keys each reconcile would lock the launcher
/// out of workers that read the old ones. Only created, never read (the operator may create
/// Secrets but not read any): one that exists already is the job's.
async fn keys(tj: &TrainJob, ctx: &Context, ns: &str, name: &str) -> Result<(), Error> {
    use k8s_openapi::api::core::v1::Secret;
    let keys = ssh::Keys::generate().map_err(|e| Error::Serialise("ssh keys", e.to_string()))?;
    let secret = Secret {
        metadata: child_meta(tj, name, None),
        string_data: Some(keys.files().clone()),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    match secrets.create(&PostParams::default(), &secret).await {
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        other => other.map(|_| ()).map_err(Error::from),
    }
}

fn worker_labels(tj: &TrainJob) -> BTreeMap<String, String> {
    let mut l = labels(super::TRAINJOB_LABEL, &tj.name_any());
    l.insert(ROLE_LABEL.into(), "worker".into());
    l
}

fn worker_selector(tj: &TrainJob) -> String {
    format!(
        "{}={},{ROLE_LABEL}=worker",
        super::TRAINJOB_LABEL,
        tj.name_any()
    )
}

fn child_meta(tj: &TrainJob, name: &str, role: Option<&str>) -> ObjectMeta {
    let mut l = labels(super::TRAINJOB_LABEL, &tj.name_any());
    if let Some(r) = role {
        l.insert(ROLE_LABEL.into(), r.into());
    }
    ObjectMeta {
        name: Some(name.into()),
        namespace: tj.namespace(),
        labels: Some(l),
        owner_references: Some(vec![owner(tj)]),
        ..Default::default()
    }
}

/// The headless Service giving each worker pod a DNS name, published before the pods are
/// ready, so each has its name as soon as it has an address.
fn service(tj: &TrainJob, names: &Names) -> Service {
    Service {
        metadata: child_meta(tj, &names.service, None),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(worker_labels(tj)),
            publish_not_ready_addresses: Some(true),
            ports: Some(vec![ServicePort {
                name: Some("ssh".into()),
                port: i32::from(ssh::PORT),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The keys Secret as a volume of `files` (each role gets its own: the workers never see the
/// launcher's key, nor the launcher the workers' host key): root-owned files the pod's group
/// (fsGroup) may read.
fn keys_volume(name: &str, files: &[&str]) -> Volume {
    let items = files
        .iter()
        .map(|f| KeyToPath {
            key: f.to_string(),
            path: f.to_string(),
            mode: None,
        })
        .collect();
    Volume {
        name: "ssh".into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(name.into()),
            default_mode: Some(0o440),
            items: Some(items),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn keys_mount() -> VolumeMount {
    VolumeMount {
        name: "ssh".into(),
        mount_path: KEYS_DIR.into(),
        read_only: Some(true),
        ..Default::default()
    }
}

/// The workers: an Indexed Job of `numNodes` pods (hostnames `<job>-node-<i>`, in the
/// Service's subdomain), each sshd in the foreground as the pod's user, ready when it
/// listens, asking for the node's resources. A crashed sshd restarts in its pod, keeping its
/// name.
fn workers_job(tj: &TrainJob, config: &Config, image: &str, cm: &str, names: &Names) -> Job {
    let nodes = i32::try_from(tj.spec.0.trainer.num_nodes).unwrap_or(i32::MAX);
    let sshd_config = format!("{}/{}", pods::SPEC_DIR, ssh::SSHD_CONFIG);
    let mut container = pods::container(config, "worker", Vec::new());
    container.image = Some(image.into());
    container.args = None;
    container.command = Some(
        ["/usr/sbin/sshd", "-D", "-e", "-f", &sshd_config]
            .map(String::from)
            .to_vec(),
    );
    container.ports = Some(vec![ContainerPort {
        name: Some("ssh".into()),
        container_port: i32::from(ssh::PORT),
        ..Default::default()
    }]);
    container.readiness_probe = Some(Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(i32::from(ssh::PORT)),
            ..Default::default()
        }),
        period_seconds: Some(2),
        ..Default::default()
    });
    // OpenMPI's shared-memory transport and NCCL between a node's ranks want more than the
    // container runtime's 64 MiB /dev/shm: memory-backed, counted in the pod's memory.
    container
        .volume_mounts
        .get_or_insert_with(Vec::new)
        .extend([
            keys_mount(),
            VolumeMount {
                name: "shm".into(),
                mount_path: "/dev/shm".into(),
                ..Default::default()
            },
        ]);
    // Each worker's own home: its ranks share only the artifact store with the launcher.
    let mut pod = pods::pod(container, cm, pods::scratch("home"));
    pod.volumes.get_or_insert_with(Vec::new).extend([
        keys_volume(&names.keys, &[ssh::HOST_KEY, ssh::AUTHORIZED_KEYS]),
        Volume {
            name: "shm".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
    ]);
    pod.subdomain = Some(names.service.clone());
    // A worker that dies is replaced by a pod of the same index, so of the same name.
    pod.restart_policy = Some("Never".into());
    if let Some(r) = &tj.spec.0.trainer.resources_per_node {
        weft_crd::resources::request_resources(&mut pod, r);
    }
    Job {
        metadata: child_meta(tj, &names.workers, Some("worker")),
        spec: Some(JobSpec {
            completion_mode: Some("Indexed".into()),
            completions: Some(nodes),
            parallelism: Some(nodes),
            backoff_limit: Some(nodes.saturating_mul(10)),
            // Evictions and preemptions do not count against the replacements.
            pod_failure_policy: Some(PodFailurePolicy {
                rules: vec![crate::pipelinerun::ignore_disruptions()],
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(worker_labels(tj)),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The runner Job as the gang's launcher: the MPI image, `--hostfile`, ssh through the job's
/// config and keys. Its ranks run on the workers, so it asks for no node's resources.
pub fn launcher(mut job: Job, tj: &TrainJob, image: &str) -> Job {
    let names = Names::of(tj);
    let Some(pod) = job.spec.as_mut().and_then(|s| s.template.spec.as_mut()) else {
        return job;
    };
    pod.volumes.get_or_insert_with(Vec::new).push(keys_volume(
        &names.keys,
        &[ssh::CLIENT_KEY, ssh::KNOWN_HOSTS],
    ));
    if let Some(c) = pod.containers.first_mut() {
        c.image = Some(image.into());
        let args = c.args.get_or_insert_with(Vec::new);
        args.extend([
            "--hostfile".to_string(),
            format!("{}/{}", pods::SPEC_DIR, ssh::HOSTFILE),
        ]);
        c.env.get_or_insert_with(Vec::new).push(EnvVar {
            name: "OMPI_MCA_plm_rsh_args".into(),
            value: Some(ssh::rsh_args(&format!(
                "{}/{}",
                pods::SPEC_DIR,
                ssh::SSH_CONFIG
            ))),
            ..Default::default()
        });
        c.volume_mounts
            .get_or_insert_with(Vec::new)
            .push(keys_mount());
    }
    if let Some(meta) = job.spec.as_mut().and_then(|s| s.template.metadata.as_mut()) {
        meta.labels
            .get_or_insert_with(Default::default)
            .insert(ROLE_LABEL.into(), "launcher".into());
    }
    job
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str, nodes: u32) -> TrainJob {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "weft.dev/v1alpha1", "kind": "TrainJob",
            "metadata": {"name": name, "uid": "0123abcd-ef"},
            "spec": {"trainer": {"component": "sha256:00", "numNodes": nodes, "engine": "mpi"}},
        }))
        .unwrap()
    }

    /// Every worker's hostname (`<workers>-<index>`) is a DNS label however long the job's
    /// name and however many its nodes.
    #[test]
    fn worker_hostnames_fit_a_dns_label() {
        for (len, nodes) in [(5, 2), (55, 9), (63, 10), (63, 1000), (40, 4096)] {
            let name = "a".repeat(len);
            let names = Names::of(&job(&name, nodes));
            let last = format!("{}-{}", names.workers, nodes - 1);
            assert!(last.len() <= 63 && dns_label(&last), "{last}");
            assert!(names.service.len() <= 63 && dns_label(&names.service));
        }
        let names = Names::of(&job("iris", 2));
        assert_eq!(
            (names.workers.as_str(), names.keys.as_str()),
            ("iris-node", "iris-ssh-0123abcd")
        );
    }

    #[test]
    fn only_dns_labels_name_a_gang() {
        for good in ["iris", "iris-2", "a"] {
            assert!(dns_label(good), "{good}");
        }
        for bad in ["iris.v2", "2iris", "Iris", "", "iris_2"] {
            assert!(!dns_label(bad), "{bad}");
        }
    }
}
