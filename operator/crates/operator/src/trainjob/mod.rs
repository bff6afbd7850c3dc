//! The TrainJob controller. A job on one node is one runner Job executing `wasm-run train` on
//! the job file (a ConfigMap), its workers instances on threads of that pod, which requests
//! the job's `resourcesPerNode`. A job whose ranks span pods (engine mpi or nccl, or more
//! than one node) is an MPI gang ([`gang`]): worker pods running sshd, and the runner Job as
//! the launcher whose mpirun starts the ranks on them. Either way the runner's pod restarting (the Job's
//! own retries) resumes the run, whose gang restarts from its latest checkpoint.
//!
//! Conditions are set on every path (Trainer's pain point: a JobSet that could not be created
//! left no condition at all): `Created` False with the API server's words when a child is
//! refused, `Created` with the workers' readiness while a gang waits for them, `Failed` with
//! `EngineUnavailable` for what this operator is not set up to run and `GangTimeout` for a
//! gang whose workers were not all ready in time after `backoffLimit` more tries (`Created`
//! with `GangTimeout` and the next try's time between them), `Suspended` while `runPolicy.suspend`
//! holds (the runner and workers are stopped; unsuspending resumes the run), then `Complete`
//! or `Failed` from the runner's Job.

mod gang;

pub use gang::{spans_pods, ROLE_LABEL};

use crate::apply::{self, child_name, labels, owner};
use crate::conditions;
use crate::experiment::{in_cluster, last_lines, runner_exit, Exit};
use crate::pipelinerun::{now, runner_account, runner_job_of};
use crate::pods;
use crate::{Context, Error};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::{Api, Resource, ResourceExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use weft_crd::{RunnerStatus, TrainJob, TrainJobStatus};

pub const FINALIZER: &str = "weft.dev/trainjob";
/// The label that ties a runner Job (and its pod) to its training job.
pub const TRAINJOB_LABEL: &str = "weft.dev/trainjob";
const CONTROLLER: &str = "trainjob";
/// The job file in the spec ConfigMap (and so under `/etc/weft` in the runner).
pub const TRAINJOB_FILE: &str = "trainjob.yaml";

pub async fn reconcile(tj: Arc<TrainJob>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let ns = tj
        .namespace()
        .ok_or_else(|| Error::NoNamespace(tj.name_any()))?;
    let api: Api<TrainJob> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, tj, |event| async {
        match event {
            Finalizer::Apply(tj) => apply_trainjob(&tj, &ctx, &ns).await,
            // The runner Job and the ConfigMap are owned: garbage-collected with the job.
            Finalizer::Cleanup(_) => Ok(Action::await_change()),
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

pub fn error_policy(_tj: Arc<TrainJob>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(%error, "trainjob reconcile failed");
    ctx.metrics.failure(CONTROLLER, error);
    Action::requeue(Duration::from_secs(15))
}

fn is_terminal(state: Option<&str>) -> bool {
    matches!(state, Some("Complete" | "Failed"))
}

async fn apply_trainjob(tj: &TrainJob, ctx: &Context, ns: &str) -> Result<Action, Error> {
    let current = tj.status.clone().unwrap_or_default();
    if is_terminal(current.state.as_deref()) {
        return Ok(Action::await_change());
    }
    let job_name = child_name(&tj.name_any(), "runner");
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    let mut next = current.clone();
    let action = if tj.spec.0.run_policy.suspend {
        apply::delete(&jobs, &job_name).await?;
        if gang::spans_pods(tj) {
            gang::release(tj, ctx, ns).await?;
        }
        next.state = Some("Suspended".into());
        next.message = Some("Suspended: runPolicy.suspend is set; the runner is stopped".into());
        Action::await_change()
    } else {
        match jobs.get_opt(&job_name).await? {
            None => match start(tj, ctx, ns, &job_name).await {
                Ok(Started::Runner) => {
                    next.state = Some("Created".into());
                    next.message = None;
                    next.start_time = next.start_time.or_else(|| Some(now()));
                    next.runner = Some(RunnerStatus {
                        job: job_name.clone(),
                        log: format!("kubectl logs -n {ns} job/{job_name}"),
                    });
                    Action::requeue(Duration::from_secs(30))
                }
                Ok(Started::Waiting(message)) => {
                    next.state = Some("Created".into());
                    next.message = Some(message);
                    next.start_time = next.start_time.or_else(|| Some(now()));
                    Action::requeue(Duration::from_secs(5))
                }
                // Workers not all ready in time were released: tried again after a while
                // (a busy cluster is not a verdict), up to backoffLimit times.
                Ok(Started::TimedOut(message)) => {
                    let tries = next.schedule_attempts.unwrap_or(0).saturating_add(1);
                    next.schedule_attempts = Some(tries);
                    let limit = tj.spec.0.run_policy.backoff_limit;
                    if tries > limit {
                        next.state = Some("Failed".into());
                        next.message = Some(format!(
                            "{message}; {tries} tries (runPolicy.backoffLimit {limit})"
                        ));
                        next.completion_time = Some(now());
                        Action::await_change()
                    } else {
                        let pause = Duration::from_secs(30 * u64::from(tries.min(10)));
                        next.state = Some("Created".into());
                        next.message = Some(format!(
                            "{message}; trying again in {}s (try {tries} of {})",
                            pause.as_secs(),
                            limit.saturating_add(1)
                        ));
                        Action::requeue(pause)
                    }
                }
                Ok(Started::Refused(message)) => {
                    next.state = Some("Failed".into());
                    next.message = Some(message);
                    next.completion_time = Some(now());
                    Action::await_change()
                }
                // A child the API server refused (quota, admission, RBAC): said in the status,
                // tried again.
                Err(e) => {
                    next.state = Some("Created".into());
                    next.message = Some(format!("ChildCreateFailed: {e}"));
                    Action::requeue(Duration::from_secs(15))
                }
            },
            Some(job) => {
                let exit = runner_exit(ctx, ns, &job_name).await?;
                observe_job(&job, exit, &mut next);
                match is_terminal(next.state.as_deref()) {
                    true => {
                        if gang::spans_pods(tj) {
                            gang::release(tj, ctx, ns).await?;
                        }
                        Action::await_change()
                    }
                    false => {
                        if gang::spans_pods(tj) {
                            gang::keep(tj, ctx, ns).await?;
                        }
                        Action::requeue(Duration::from_secs(30))
                    }
                }
            }
        }
    };
    finish(tj, ctx, ns, &current, next).await?;
    Ok(action)
}

/// How far starting a job got.
enum Started {
    /// The runner (or the gang's launcher) is made.
    Runner,
    /// A gang waits for its workers: why, in words.
    Waiting(String),
    /// The job cannot run here: it fails with this message.
    Refused(String),
    /// The gang's workers were not all ready in time and were released.
    TimedOut(String),
}

/// Checks the job as this operator can run it, then applies the spec ConfigMap and the
/// runner Job; for a gang, first its workers, the launcher only once they are all ready.
/// `Err`: the API server refused a child.
async fn start(tj: &TrainJob, ctx: &Context, ns: &str, job_name: &str) -> Result<Started, Error> {
    let gang_image = match gang::spans_pods(tj).then(|| gang::check(tj, &ctx.config)) {
        Some(Err(message)) => return Ok(Started::Refused(message)),
        Some(Ok(image)) => Some(image),
        None => None,
    };
    let mut files = match spec_file(tj) {
        Ok(f) => BTreeMap::from([(TRAINJOB_FILE.to_string(), f)]),
        Err(message) => return Ok(Started::Refused(message)),
    };
    if gang_image.is_some() {
        files.extend(gang::spec_files(tj));
    }
    let cm_name = child_name(&tj.name_any(), "spec");
    let configmaps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    apply::apply(&configmaps, &cm_name, &spec_configmap(tj, &cm_name, files)).await?;
    if ctx.config.runner_service_account.is_none() {
        runner_account(ctx, ns).await?;
    }
    let mut job = runner_job(tj, &ctx.config, job_name, &cm_name);
    if let Some(image) = &gang_image {
        match gang::workers(tj, ctx, ns, image, &cm_name).await? {
            gang::Workers::Ready => {}
            gang::Workers::Waiting(why) => return Ok(Started::Waiting(why)),
            gang::Workers::TimedOut(why) => {
                gang::release(tj, ctx, ns).await?;
                return Ok(Started::TimedOut(why));
            }
        }
        job = gang::launcher(job, tj, image);
    }
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    apply::apply(&jobs, job_name, &job).await?;
    Ok(Started::Runner)
}

/// The run's id in the runner's metadata store: stable per job (name and uid), so a restarted
/// runner resumes the run rather than starting another.
pub fn run_id(tj: &TrainJob) -> String {
    format!("trainjob-{}-{}", tj.name_any(), uid8(tj))
}

/// The first 8 hex digits of the job's uid: what tells its children from those of an
/// earlier job of the same name.
fn uid8(tj: &TrainJob) -> String {
    let uid = tj.uid().unwrap_or_default();
    uid.chars().filter(|c| *c != '-').take(8).collect()
}

/// `trainjob.yaml` for the runner, checked as `wasm-run train` checks it, and for what a pod
/// can run: its component and inputs in the cluster.
fn spec_file(tj: &TrainJob) -> Result<String, String> {
    use weft_spec::train_job as spec;
    let s = &tj.spec.0;
    let t = &s.trainer;
    in_cluster("trainer.component", &t.component)?;
    if let Some(init) = &s.initializer {
        for (what, r) in [("dataset", &init.dataset), ("model", &init.model)] {
            if let Some(p) = r.as_ref().and_then(|r| r.path.as_ref()) {
                in_cluster(&format!("initializer.{what}.path"), p)?;
            }
        }
    }
    let local = spec::TrainJob {
        api_version: weft_spec::pipeline::API_VERSION.into(),
        kind: "TrainJob".into(),
        metadata: weft_spec::pipeline::ObjectMeta {
            name: tj.name_any(),
            ..Default::default()
        },
        spec: s.clone(),
    };
    let yaml = serde_saphyr::to_string(&local).map_err(|e| e.to_string())?;
    let doc = weft_spec::Document::<spec::TrainJob>::parse(TRAINJOB_FILE, &yaml)
        .map_err(|e| format!("InvalidSpec: {e}"))?;
    if let Err(errors) = weft_spec::validate::validate_train_job(&doc) {
        let all: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        return Err(format!("InvalidSpec: {}", all.join("; ")));
    }
    Ok(yaml)
}

fn spec_configmap(tj: &TrainJob, name: &str, files: BTreeMap<String, String>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: tj.namespace(),
            labels: Some(labels(TRAINJOB_LABEL, &tj.name_any())),
            owner_references: Some(vec![owner(tj)]),
            ..Default::default()
        },
        data: Some(files),
        ..Default::default()
    }
}

/// The runner Job: `wasm-run train` on the job file as the job's run (resumed by a restarted
/// pod), in a pod requesting `resourcesPerNode` (unless it is a gang's launcher, whose ranks
/// run on the workers), writing `trainerStatus` as it goes.
pub fn runner_job(tj: &TrainJob, config: &crate::Config, name: &str, cm: &str) -> Job {
    let file = format!("{}/{TRAINJOB_FILE}", pods::SPEC_DIR);
    let run = run_id(tj);
    let at = format!("{}/{}", tj.namespace().unwrap_or_default(), tj.name_any());
    let command = ["train", &file, "--run-id", &run, "--kube-status", &at];
    let mut job = runner_job_of(tj, TRAINJOB_LABEL, config, name, cm, &command);
    let resources = tj.spec.0.trainer.resources_per_node.as_ref();
    let pod = job.spec.as_mut().and_then(|s| s.template.spec.as_mut());
    if let (Some(pod), Some(r), false) = (pod, resources, gang::spans_pods(tj)) {
        weft_crd::resources::request_resources(pod, r);
    }
    job
}

/// The job's state from its runner Job and, when it failed, the runner's exit.
fn observe_job(job: &Job, exit: Option<Exit>, status: &mut TrainJobStatus) {
    let js = job.status.clone().unwrap_or_default();
    let finished = js
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True");
    match finished {
        Some(c) if c.type_ == "Complete" => {
            status.state = Some("Complete".into());
            status.message = Some("Complete: the workers finished training".into());
            status.completion_time = Some(now());
        }
        Some(c) => {
            status.state = Some("Failed".into());
            let why = match &exit {
                Some(e) => {
                    let lines: Vec<&str> = e
                        .message
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .collect();
                    let reason = if e.code == 2 {
                        "InvalidSpec"
                    } else {
                        "TrainingFailed"
                    };
                    format!(
                        "{reason}: the runner exited {}: {}",
                        e.code,
                        last_lines(&lines)
                    )
                }
                None => format!("RunnerFailed: {}", c.message.clone().unwrap_or_default()),
            };
            status.message = Some(why);
            status.completion_time = Some(now());
        }
        None if js.active.unwrap_or(0) > 0 => {
            status.state = Some("Running".into());
            status.message = None;
        }
        None => status.state = Some("Created".into()),
    }
}

/// Trainer's conditions from the state and message, the status written if it changed.
async fn finish(
    tj: &TrainJob,
    ctx: &Context,
    ns: &str,
    current: &TrainJobStatus,
    mut next: TrainJobStatus,
) -> Result<(), Error> {
    let state = next.state.clone().unwrap_or_default();
    let message = next.message.clone().unwrap_or_default();
    let lead = message.split(':').next().unwrap_or_default().to_string();
    let generation = tj.meta().generation;
    let refused = lead == "ChildCreateFailed";
    let mut conds = Vec::new();
    for (type_, holds, reason) in [
        (
            "Created",
            !refused,
            if refused { lead.as_str() } else { "Created" },
        ),
        (
            "Suspended",
            state == "Suspended",
            if state == "Suspended" {
                "Suspended"
            } else {
                "Resumed"
            },
        ),
        ("Complete", state == "Complete", "Complete"),
        (
            "Failed",
            state == "Failed",
            if state == "Failed" {
                lead.as_str()
            } else {
                "Failed"
            },
        ),
    ] {
        let text = if holds || refused {
            message.as_str()
        } else {
            ""
        };
        conditions::set(
            &mut conds,
            &current.conditions,
            type_,
            holds,
            reason,
            text,
            generation,
        );
    }
    next.conditions = conds;
    next.observed_generation = generation;
    if !conditions::changed(current, &next) {
        return Ok(());
    }
    // The runner owns trainerStatus (its own field manager): not sent back from here.
    next.trainer_status = None;
    let api: Api<TrainJob> = Api::namespaced(ctx.client.clone(), ns);
    apply::status(&api, &tj.name_any(), &next).await
}
