//! The PipelineRun controller: a run is one runner Job executing `wasm-run pipeline run` on the
//! pipeline and run files (a ConfigMap), so its steps cost microseconds inside one pod instead
//! of a pod each. The runner's report (its termination message) becomes the run's status.

use crate::apply::{self, child_name, labels, owner};
use crate::conditions;
use crate::pods;
use crate::{Context, Error};
use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement,
    PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, EnvVar, EnvVarSource, PersistentVolumeClaimVolumeSource, Pod, PodSpec,
    PodTemplateSpec, SecretKeySelector, ServiceAccount, Volume,
};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::{Api, Resource, ResourceExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use weft_crd::{Pipeline, PipelineRun, PipelineRunStatus, RunnerStatus};
use weft_spec::report::RunReport;

pub const FINALIZER: &str = "weft.dev/pipelinerun";
/// The label that ties a runner Job (and its pods) to its run.
pub const RUN_LABEL: &str = "weft.dev/pipelinerun";
/// The label the runner puts on the Jobs of tasks in pods of their own (weft-task-pods).
pub const TASK_LABEL: &str = "weft.dev/task";
const CONTROLLER: &str = "pipelinerun";

/// Reconciles one PipelineRun (behind its finalizer).
pub async fn reconcile(run: Arc<PipelineRun>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let ns = run
        .namespace()
        .ok_or_else(|| Error::NoNamespace(run.name_any()))?;
    let runs: Api<PipelineRun> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&runs, FINALIZER, run, |event| async {
        match event {
            Finalizer::Apply(run) => apply_run(&run, &ctx, &ns).await,
            Finalizer::Cleanup(run) => cleanup(&run, &ctx, &ns).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// Requeues a failed reconcile with backoff (kube's controller adds jitter per object).
pub fn error_policy(_run: Arc<PipelineRun>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(%error, "pipelinerun reconcile failed");
    ctx.metrics.failure(CONTROLLER, error);
    Action::requeue(Duration::from_secs(15))
}

fn is_terminal(state: Option<&str>) -> bool {
    matches!(state, Some("SUCCEEDED" | "FAILED" | "CANCELLED"))
}

async fn apply_run(run: &PipelineRun, ctx: &Context, ns: &str) -> Result<Action, Error> {
    let name = run.name_any();
    let job_name = child_name(&name, "runner");
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    let current = run.status.clone().unwrap_or_default();
    if is_terminal(current.state.as_deref()) {
        return Ok(Action::await_change());
    }
    let mut next = current.clone();
    if run.spec.0.cancel {
        apply::delete(&jobs, &job_name).await?;
        stop_task_pods(&jobs, &name).await?;
        next.state = Some("CANCELLED".into());
        next.message = Some("cancelled by spec.cancel".into());
        next.completion_time = Some(now());
        return finish(run, ctx, ns, &current, next, Action::await_change()).await;
    }
    let action = match jobs.get_opt(&job_name).await? {
        None => match start(run, ctx, ns, &job_name).await? {
            Ok(()) => {
                next.state = Some("PENDING".into());
                next.message = None;
                next.start_time = next.start_time.or_else(|| Some(now()));
                next.runner = Some(RunnerStatus {
                    job: job_name.clone(),
                    log: format!("kubectl logs -n {ns} job/{job_name}"),
                });
                Action::requeue(Duration::from_secs(30))
            }
            Err(Refusal { state, message }) => {
                let terminal = state == "FAILED";
                next.state = Some(state.into());
                next.message = Some(message);
                if terminal {
                    next.completion_time = Some(now());
                    Action::await_change()
                } else {
                    Action::requeue(Duration::from_secs(10))
                }
            }
        },
        Some(job) => {
            let report = runner_report(ctx, ns, &job_name).await?;
            observe_job(&job, report, &mut next);
            if is_terminal(next.state.as_deref()) {
                Action::await_change()
            } else {
                Action::requeue(Duration::from_secs(30))
            }
        }
    };
    finish(run, ctx, ns, &current, next, action).await
}

/// Why a run cannot start (yet).
struct Refusal {
    state: &'static str,
    message: String,
}

/// Resolves and checks the pipeline, then applies the spec ConfigMap and the runner Job.
async fn start(
    run: &PipelineRun,
    ctx: &Context,
    ns: &str,
    job_name: &str,
) -> Result<Result<(), Refusal>, Error> {
    let pipeline_name = &run.spec.0.pipeline_ref;
    let pipelines: Api<Pipeline> = Api::namespaced(ctx.client.clone(), ns);
    let Some(pipeline) = pipelines.get_opt(pipeline_name).await? else {
        return Ok(Err(Refusal {
            state: "PENDING",
            message: format!("waiting for Pipeline `{pipeline_name}` in namespace `{ns}`"),
        }));
    };
    let files = match spec_files(run, &pipeline) {
        Ok(files) => files,
        Err(message) => {
            return Ok(Err(Refusal {
                state: "FAILED",
                message,
            }))
        }
    };
    let configmaps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let cm_name = child_name(&run.name_any(), "spec");
    let mut files = files;
    if let Some(template) = task_pod_template(&ctx.config, &cm_name) {
        files.insert(
            TASK_POD_FILE.into(),
            serde_json::to_string_pretty(&template).expect("a pod template serialises"),
        );
    }
    apply::apply(&configmaps, &cm_name, &spec_configmap(run, &cm_name, files)).await?;
    if ctx.config.runner_service_account.is_none() {
        runner_account(ctx, ns).await?;
    }
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    apply::apply(
        &jobs,
        job_name,
        &runner_job(run, &ctx.config, job_name, &cm_name),
    )
    .await?;
    Ok(Ok(()))
}

/// The namespace's `weft-runner` service account, bound to the runner ClusterRole: all a
/// runner may do is write its PipelineRun's status (live task states).
pub(crate) async fn runner_account(ctx: &Context, ns: &str) -> Result<(), Error> {
    let name = crate::context::RUNNER;
    let meta = ObjectMeta {
        name: Some(name.into()),
        namespace: Some(ns.into()),
        labels: Some(BTreeMap::from([(
            crate::MANAGED_BY.0.to_string(),
            crate::MANAGED_BY.1.to_string(),
        )])),
        ..Default::default()
    };
    let account = ServiceAccount {
        metadata: meta.clone(),
        ..Default::default()
    };
    apply::apply(&Api::namespaced(ctx.client.clone(), ns), name, &account).await?;
    let binding = RoleBinding {
        metadata: meta,
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: ctx.config.runner_cluster_role.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: name.into(),
            namespace: Some(ns.into()),
            ..Default::default()
        }]),
    };
    apply::apply(&Api::namespaced(ctx.client.clone(), ns), name, &binding).await?;
    Ok(())
}

/// `pipeline.yaml` and `run.yaml` for the runner, the pipeline checked as `wasm-run` checks it
/// (what CEL cannot see, such as cycles and type mismatches, fails the run with the message).
fn spec_files(run: &PipelineRun, pipeline: &Pipeline) -> Result<BTreeMap<String, String>, String> {
    let local = weft_spec::pipeline::Pipeline {
        api_version: weft_spec::pipeline::API_VERSION.into(),
        kind: "Pipeline".into(),
        metadata: weft_spec::pipeline::ObjectMeta {
            name: pipeline.name_any(),
            ..Default::default()
        },
        spec: pipeline.spec.0.clone(),
    };
    let pipeline_yaml = serde_saphyr::to_string(&local).map_err(|e| e.to_string())?;
    let doc = weft_spec::Document::<weft_spec::pipeline::Pipeline>::parse(
        "pipeline.yaml",
        &pipeline_yaml,
    )
    .map_err(|e| format!("invalid pipeline: {e}"))?;
    if let Err(errors) = weft_spec::validate::validate(&doc) {
        let all: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        return Err(format!(
            "invalid pipeline `{}`: {}",
            pipeline.name_any(),
            all.join("; ")
        ));
    }
    let mut spec = run.spec.0.clone();
    spec.pipeline_ref = "pipeline.yaml".into();
    let local_run = weft_spec::pipeline::PipelineRun {
        api_version: weft_spec::pipeline::API_VERSION.into(),
        kind: "PipelineRun".into(),
        metadata: weft_spec::pipeline::ObjectMeta {
            name: run.name_any(),
            ..Default::default()
        },
        spec,
    };
    let run_yaml = serde_saphyr::to_string(&local_run).map_err(|e| e.to_string())?;
    Ok(BTreeMap::from([
        ("pipeline.yaml".to_string(), pipeline_yaml),
        ("run.yaml".to_string(), run_yaml),
    ]))
}

fn spec_configmap(run: &PipelineRun, name: &str, files: BTreeMap<String, String>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: run.namespace(),
            labels: Some(labels(RUN_LABEL, &run.name_any())),
            owner_references: Some(vec![owner(run)]),
            ..Default::default()
        },
        data: Some(files),
        ..Default::default()
    }
}

/// The spec ConfigMap's file holding the task pod template (see [`task_pod_template`]).
pub const TASK_POD_FILE: &str = "task-pod.json";

/// The pod the runner makes Jobs from for tasks that ask for resources of their own and for
/// sharded parallelFors (`wasm-run pipeline run --task-pods`): the runner's image, store
/// settings, home and lock-down, without API access. Such pods meet the runner only in the
/// artifact store, so there is none without a shared one (an S3 store, or a home claim, which
/// must then be ReadWriteMany): such tasks then run in the runner's pod like the others.
pub fn task_pod_template(config: &crate::Config, cm: &str) -> Option<PodTemplateSpec> {
    if config.artifact_store.is_none() && config.home_pvc.is_none() {
        return None;
    }
    let container = pods::container(config, "task", pods::wasm_run_args(config, &[]));
    Some(PodTemplateSpec {
        metadata: None,
        spec: Some(pods::pod(container, cm, home_volume(config))),
    })
}

/// The runner's Weft home: the configured claim, else a scratch volume of the pod's own.
pub(crate) fn home_volume(config: &crate::Config) -> Volume {
    match &config.home_pvc {
        Some(claim) => Volume {
            name: "home".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.clone(),
                read_only: None,
            }),
            ..Default::default()
        },
        None => pods::scratch("home"),
    }
}

/// The runner Job: one pod running the whole DAG with `wasm-run`, non-root, read-only root
/// filesystem, no privilege; its report goes to the termination message.
pub fn runner_job(run: &PipelineRun, config: &crate::Config, name: &str, cm: &str) -> Job {
    let run_id = run.uid().unwrap_or_else(|| run.name_any());
    let run_file = format!("{}/run.yaml", pods::SPEC_DIR);
    let run_ref = format!("{}/{}", run.namespace().unwrap_or_default(), run.name_any());
    let task_pods = format!("{}/{TASK_POD_FILE}", pods::SPEC_DIR);
    let mut command = vec![
        "pipeline",
        "run",
        &run_file,
        "--run-id",
        &run_id,
        "--report",
        "/dev/termination-log",
        "--kube-status",
        &run_ref,
    ];
    if task_pod_template(config, cm).is_some() {
        command.extend(["--task-pods", task_pods.as_str()]);
    }
    runner_job_of(run, RUN_LABEL, config, name, cm, &command)
}

/// A runner Job owned by `owner` (labelled `kind_label: its name`) running `wasm-run` with
/// `command` over the spec ConfigMap `cm`: the runner pod of a PipelineRun or an Experiment.
pub(crate) fn runner_job_of<K: Resource<DynamicType = ()>>(
    owner_object: &K,
    kind_label: &str,
    config: &crate::Config,
    name: &str,
    cm: &str,
    command: &[&str],
) -> Job {
    let run_labels = labels(kind_label, &owner_object.name_any());
    let args = pods::wasm_run_args(config, command);
    let home = home_volume(config);
    let mut env = vec![EnvVar {
        name: "RUST_LOG".into(),
        value: Some("info".into()),
        ..Default::default()
    }];
    // Run metadata in PostgreSQL: shared by every runner, and a restarted runner resumes from
    // it even without a home volume.
    if let Some(secret) = &config.metadata_secret {
        env.push(EnvVar {
            name: "WEFT_METADATA".into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.clone(),
                    key: "url".into(),
                    optional: Some(false),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let container = Container {
        env: Some(env),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..pods::container(config, "runner", args)
    };
    Job {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: owner_object.meta().namespace.clone(),
            labels: Some(run_labels.clone()),
            owner_references: Some(vec![owner(owner_object)]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            // A runner that ends with the run's verdict (1 failed, 2 refused, 130 cancelled) ends
            // the Job: the executor already retried tasks. A runner that died otherwise (killed,
            // out of memory, node lost) or exited 3 (the host failed: the metadata database,
            // the artifact store, the disk; `wasm-run`'s exit codes) is started again with the
            // same run id, and resumes the run where the stores have it. Evictions do not count
            // against the retries.
            backoff_limit: Some(2),
            pod_failure_policy: Some(PodFailurePolicy {
                rules: vec![
                    PodFailurePolicyRule {
                        action: "FailJob".into(),
                        on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                            container_name: Some("runner".into()),
                            operator: "In".into(),
                            values: vec![1, 2, 130],
                        }),
                        on_pod_conditions: None,
                    },
                    ignore_disruptions(),
                ],
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(run_labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    service_account_name: Some(
                        config
                            .runner_service_account
                            .clone()
                            .unwrap_or_else(|| crate::context::RUNNER.into()),
                    ),
                    // The runner writes its status with the account's token.
                    automount_service_account_token: Some(true),
                    ..pods::pod(container, cm, home)
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The runner's report, from the termination message of its finished pod, if there is one.
async fn runner_report(ctx: &Context, ns: &str, job: &str) -> Result<Option<RunReport>, Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let list = pods
        .list(&ListParams::default().labels(&format!("job-name={job}")))
        .await?;
    Ok(list.items.iter().find_map(|pod| {
        let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
        let message = statuses
            .iter()
            .find(|c| c.name == "runner")?
            .state
            .as_ref()?
            .terminated
            .as_ref()?
            .message
            .as_ref()?;
        RunReport::from_json(message)
            .map_err(|e| tracing::warn!(job, error = %e, "ignoring the runner's report"))
            .ok()
    }))
}

/// The run's state from its Job and, when it has finished, the runner's report.
fn observe_job(job: &Job, report: Option<RunReport>, status: &mut PipelineRunStatus) {
    let js = job.status.clone().unwrap_or_default();
    let finished = js
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True");
    if let Some(report) = &report {
        status.tasks = report.tasks.clone();
    }
    match finished {
        Some(c) => {
            let state = match (&report, c.type_.as_str()) {
                (Some(r), _) => r.state.clone(),
                (None, "Complete") => "SUCCEEDED".into(),
                (None, _) => "FAILED".into(),
            };
            status.message = match (&report, state.as_str()) {
                (_, "SUCCEEDED") => None,
                (Some(r), _) => r
                    .tasks
                    .iter()
                    .find(|(_, t)| t.state == "FAILED")
                    .map(|(n, t)| {
                        format!(
                            "task `{n}` failed: {}",
                            t.message.clone().unwrap_or_default()
                        )
                    }),
                (None, _) => Some(format!(
                    "the runner failed without a report: {}",
                    c.message.clone().unwrap_or_default()
                )),
            };
            status.state = Some(state);
            status.completion_time = status
                .completion_time
                .clone()
                .or_else(|| c.last_transition_time.as_ref().map(|t| t.0.to_string()));
        }
        None if js.active.unwrap_or(0) > 0 => status.state = Some("RUNNING".into()),
        None => status.state = Some("PENDING".into()),
    }
}

/// Derives the conditions from the state, writes the status if it changed (with an event on
/// a state transition), and returns `action`.
async fn finish(
    run: &PipelineRun,
    ctx: &Context,
    ns: &str,
    current: &PipelineRunStatus,
    mut next: PipelineRunStatus,
    action: Action,
) -> Result<Action, Error> {
    let state = next.state.clone().unwrap_or_default();
    let message = next.message.clone().unwrap_or_default();
    let generation = run.meta().generation;
    let mut conds = Vec::new();
    for (type_, holds) in [
        ("Running", matches!(state.as_str(), "PENDING" | "RUNNING")),
        ("Succeeded", state == "SUCCEEDED"),
        ("Failed", matches!(state.as_str(), "FAILED" | "CANCELLED")),
    ] {
        let why = reason(&state);
        conditions::set(
            &mut conds,
            &current.conditions,
            type_,
            holds,
            &why,
            &message,
            generation,
        );
    }
    next.conditions = conds;
    next.observed_generation = generation;
    if !conditions::changed(current, &next) {
        return Ok(action);
    }
    if next.state != current.state {
        let event = Event {
            type_: if matches!(state.as_str(), "FAILED" | "CANCELLED") {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason(&state),
            note: Some(if message.is_empty() {
                format!("run is {state}")
            } else {
                format!("run is {state}: {message}")
            }),
            action: "Reconcile".into(),
            secondary: None,
        };
        ctx.recorder.publish(&event, &run.object_ref(&())).await?;
    }
    let runs: Api<PipelineRun> = Api::namespaced(ctx.client.clone(), ns);
    apply::status(&runs, &run.name_any(), &next).await?;
    Ok(action)
}

/// A condition reason (CamelCase) for a state.
pub(crate) fn reason(state: &str) -> String {
    state
        .split('_')
        .map(|w| {
            let lower = w.to_lowercase();
            let mut c = lower.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

pub(crate) fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

/// Deletes the Jobs the runner made for tasks of run `name` (they carry the run's label and a
/// task label): a stopped runner no longer waits for them, so they must not run on.
async fn stop_task_pods(jobs: &Api<Job>, name: &str) -> Result<(), Error> {
    apply::delete_selected(jobs, &format!("{RUN_LABEL}={name},{TASK_LABEL}")).await
}

/// On deletion: stop the runner (its Job, its tasks' Jobs, the spec ConfigMap), then let the
/// finalizer go.
async fn cleanup(run: &PipelineRun, ctx: &Context, ns: &str) -> Result<Action, Error> {
    let name = run.name_any();
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    apply::delete(&jobs, &child_name(&name, "runner")).await?;
    stop_task_pods(&jobs, &name).await?;
    let configmaps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    apply::delete(&configmaps, &child_name(&name, "spec")).await?;
    tracing::info!(run = %name, namespace = %ns, "pipeline run deleted: runner stopped");
    Ok(Action::await_change())
}

/// A Job's rule that evictions and preemptions (a pod's `DisruptionTarget`) do not count
/// against its retries.
pub(crate) fn ignore_disruptions() -> PodFailurePolicyRule {
    PodFailurePolicyRule {
        action: "Ignore".into(),
        on_exit_codes: None,
        on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
            type_: "DisruptionTarget".into(),
            status: "True".into(),
        }]),
    }
}
