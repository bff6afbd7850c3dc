//! The Experiment controller: an experiment is one runner Job executing `wasm-run tune` on the
//! experiment file (a ConfigMap, with the trial pipeline when the template is one), so its
//! trials are sandboxed instances inside one pod instead of a pod each. The Job is owned by the
//! experiment: deleting the experiment stops the runner, and with it every trial (cancel is
//! delete, as in Katib). The Job's outcome, and the runner's last words when it failed, become
//! the experiment's state.

use crate::apply::{self, child_name, labels, owner};
use crate::conditions;
use crate::pipelinerun::{now, runner_account, runner_job_of};
use crate::pods;
use crate::{Context, Error};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::{Api, Resource, ResourceExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use weft_crd::{Experiment, ExperimentStatus, Pipeline, RunnerStatus};

pub const FINALIZER: &str = "weft.dev/experiment";
/// The label that ties a runner Job (and its pod) to its experiment.
pub const EXPERIMENT_LABEL: &str = "weft.dev/experiment";
const CONTROLLER: &str = "experiment";
/// The experiment file in the spec ConfigMap (and so under `/etc/weft` in the runner).
pub const EXPERIMENT_FILE: &str = "experiment.yaml";
/// A pipeline template's pipeline, beside the experiment file.
pub const PIPELINE_FILE: &str = "pipeline.yaml";

/// Reconciles one Experiment (behind its finalizer).
pub async fn reconcile(exp: Arc<Experiment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let ns = exp
        .namespace()
        .ok_or_else(|| Error::NoNamespace(exp.name_any()))?;
    let api: Api<Experiment> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, exp, |event| async {
        match event {
            Finalizer::Apply(exp) => apply_experiment(&exp, &ctx, &ns).await,
            Finalizer::Cleanup(exp) => cleanup(&exp, &ctx, &ns).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// Requeues a failed reconcile with backoff.
pub fn error_policy(_exp: Arc<Experiment>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(%error, "experiment reconcile failed");
    ctx.metrics.failure(CONTROLLER, error);
    Action::requeue(Duration::from_secs(15))
}

fn is_terminal(state: Option<&str>) -> bool {
    matches!(state, Some("Succeeded" | "Failed"))
}

async fn apply_experiment(exp: &Experiment, ctx: &Context, ns: &str) -> Result<Action, Error> {
    let name = exp.name_any();
    let job_name = child_name(&name, "runner");
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    let current = exp.status.clone().unwrap_or_default();
    if is_terminal(current.state.as_deref()) {
        return Ok(Action::await_change());
    }
    let mut next = current.clone();
    let action = match jobs.get_opt(&job_name).await? {
        None => match start(exp, ctx, ns, &job_name).await? {
            Ok(()) => {
                next.state = Some("Created".into());
                next.message = None;
                next.start_time = next.start_time.or_else(|| Some(now()));
                next.runner = Some(RunnerStatus {
                    job: job_name.clone(),
                    log: format!("kubectl logs -n {ns} job/{job_name}"),
                });
                Action::requeue(Duration::from_secs(30))
            }
            Err(Refusal { failed, message }) => {
                next.message = Some(message);
                if failed {
                    next.state = Some("Failed".into());
                    next.completion_time = Some(now());
                    Action::await_change()
                } else {
                    next.state = Some("Created".into());
                    Action::requeue(Duration::from_secs(10))
                }
            }
        },
        Some(job) => {
            let last = runner_exit(ctx, ns, &job_name).await?;
            observe_job(&job, last, &mut next);
            if is_terminal(next.state.as_deref()) {
                Action::await_change()
            } else {
                Action::requeue(Duration::from_secs(30))
            }
        }
    };
    finish(exp, ctx, ns, &current, next, action).await
}

/// Why an experiment cannot start (yet): `failed` ends it, otherwise it waits.
struct Refusal {
    failed: bool,
    message: String,
}

/// Resolves the trial pipeline (if the template is one), checks the experiment as `wasm-run`
/// does, then applies the spec ConfigMap and the runner Job.
async fn start(
    exp: &Experiment,
    ctx: &Context,
    ns: &str,
    job_name: &str,
) -> Result<Result<(), Refusal>, Error> {
    let pipeline = match &exp.spec.0.trial_template.pipeline {
        Some(p) => {
            let pipelines: Api<Pipeline> = Api::namespaced(ctx.client.clone(), ns);
            match pipelines.get_opt(&p.pipeline_ref).await? {
                Some(pipeline) => Some(pipeline),
                None => {
                    return Ok(Err(Refusal {
                        failed: false,
                        message: format!(
                            "waiting for Pipeline `{}` in namespace `{ns}` (the trial template)",
                            p.pipeline_ref
                        ),
                    }))
                }
            }
        }
        None => None,
    };
    let files = match spec_files(exp, pipeline.as_ref()) {
        Ok(files) => files,
        Err(message) => {
            return Ok(Err(Refusal {
                failed: true,
                message,
            }))
        }
    };
    let cm_name = child_name(&exp.name_any(), "spec");
    let configmaps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    apply::apply(&configmaps, &cm_name, &spec_configmap(exp, &cm_name, files)).await?;
    if ctx.config.runner_service_account.is_none() {
        runner_account(ctx, ns).await?;
    }
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    apply::apply(
        &jobs,
        job_name,
        &runner_job(exp, &ctx.config, job_name, &cm_name),
    )
    .await?;
    Ok(Ok(()))
}

/// The experiment's name in the runner's metadata store: the resource's name made a Weft name
/// (letters, digits, `-`, `_`) with the start of its uid, so that experiments of the same name in
/// other namespaces, or deleted and made again, never meet in a shared (PostgreSQL) store.
pub fn local_name(exp: &Experiment) -> String {
    let base: String = exp
        .name_any()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    match exp.uid() {
        Some(uid) => {
            let short: String = uid.chars().filter(|c| *c != '-').take(8).collect();
            let base = &base[..base.len().min(63 - short.len() - 1)];
            format!("{}-{short}", base.trim_end_matches('-'))
        }
        None => base[..base.len().min(63)].to_string(),
    }
}

/// `experiment.yaml` (and `pipeline.yaml` for a pipeline template) for the runner, checked as
/// `wasm-run tune` checks the spec; what only the runner can judge (algorithm settings) fails
/// the experiment when it starts.
fn spec_files(
    exp: &Experiment,
    pipeline: Option<&Pipeline>,
) -> Result<BTreeMap<String, String>, String> {
    use weft_spec::experiment as spec;
    let mut files = BTreeMap::new();
    let mut local_spec = exp.spec.0.clone();
    if let Some(c) = &local_spec.trial_template.component {
        in_cluster("trialTemplate.component.source", &c.source)?;
        for (name, path) in &c.inputs {
            in_cluster(&format!("trialTemplate.component.inputs.{name}"), path)?;
        }
    }
    if let (Some(p), Some(pipeline)) = (&mut local_spec.trial_template.pipeline, pipeline) {
        for (name, c) in &pipeline.spec.0.components {
            in_cluster(
                &format!("Pipeline `{}`: components.{name}.source", p.pipeline_ref),
                &c.source,
            )?;
        }
        let local = weft_spec::pipeline::Pipeline {
            api_version: weft_spec::pipeline::API_VERSION.into(),
            kind: "Pipeline".into(),
            metadata: weft_spec::pipeline::ObjectMeta {
                name: pipeline.name_any(),
                ..Default::default()
            },
            spec: pipeline.spec.0.clone(),
        };
        let yaml = serde_saphyr::to_string(&local).map_err(|e| e.to_string())?;
        let doc = weft_spec::Document::<weft_spec::pipeline::Pipeline>::parse(PIPELINE_FILE, &yaml)
            .map_err(|e| format!("InvalidSpec: invalid pipeline: {e}"))?;
        if let Err(errors) = weft_spec::validate::validate(&doc) {
            let all: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            return Err(format!(
                "InvalidSpec: invalid pipeline `{}`: {}",
                pipeline.name_any(),
                all.join("; ")
            ));
        }
        files.insert(PIPELINE_FILE.to_string(), yaml);
        p.pipeline_ref = PIPELINE_FILE.into();
    }
    let local = spec::Experiment {
        api_version: weft_spec::pipeline::API_VERSION.into(),
        kind: "Experiment".into(),
        metadata: weft_spec::pipeline::ObjectMeta {
            name: local_name(exp),
            ..Default::default()
        },
        spec: local_spec,
    };
    let yaml = serde_saphyr::to_string(&local).map_err(|e| e.to_string())?;
    let doc = weft_spec::Document::<spec::Experiment>::parse(EXPERIMENT_FILE, &yaml)
        .map_err(|e| format!("InvalidSpec: invalid experiment: {e}"))?;
    if let Err(errors) = weft_spec::validate::validate_experiment(&doc) {
        let all: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        return Err(format!(
            "InvalidSpec: invalid experiment `{}`: {}",
            exp.name_any(),
            all.join("; ")
        ));
    }
    files.insert(EXPERIMENT_FILE.to_string(), yaml);
    Ok(files)
}

/// A component or input in the cluster: a digest in the artifact store, or an absolute path
/// (in the runner's image or home); a path relative to a file on someone's disk means nothing
/// in the runner's pod.
pub(crate) fn in_cluster(what: &str, source: &str) -> Result<(), String> {
    if weft_spec::digest::parse(source).is_ok() || source.starts_with('/') {
        return Ok(());
    }
    Err(format!(
        "InvalidSpec: {what} is `{source}`: in a cluster a component or input is a `sha256:` \
         digest in the artifact store (`wasm-run --artifact-store URL artifacts put FILE`) or an \
         absolute path the runner's image has"
    ))
}

fn spec_configmap(exp: &Experiment, name: &str, files: BTreeMap<String, String>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: exp.namespace(),
            labels: Some(labels(EXPERIMENT_LABEL, &exp.name_any())),
            owner_references: Some(vec![owner(exp)]),
            ..Default::default()
        },
        data: Some(files),
        ..Default::default()
    }
}

/// The runner Job: one pod running every trial with `wasm-run tune`, locked down as the
/// PipelineRun runner is; exit 1 (the experiment failed), 2 (bad spec) and 130 end it, a runner
/// that died otherwise or exited 3 (the host failed) is started again and resumes the
/// experiment from the metadata store. The runner writes its share of the status (trial
/// counters, the best trial: `--kube-status`) as trials start and finish.
pub fn runner_job(exp: &Experiment, config: &crate::Config, name: &str, cm: &str) -> Job {
    let file = format!("{}/{EXPERIMENT_FILE}", pods::SPEC_DIR);
    let exp_ref = format!("{}/{}", exp.namespace().unwrap_or_default(), exp.name_any());
    let command = ["tune", &file, "--kube-status", &exp_ref];
    runner_job_of(exp, EXPERIMENT_LABEL, config, name, cm, &command)
}

/// How the runner's last container ended: exit code and termination message (its log's tail
/// when it failed).
#[derive(Debug, Default)]
pub(crate) struct Exit {
    pub(crate) code: i32,
    pub(crate) message: String,
}

/// The runner's exit, from its pods: a verdict (1, 2, 130) first, else any that ended.
pub(crate) async fn runner_exit(ctx: &Context, ns: &str, job: &str) -> Result<Option<Exit>, Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let list = pods
        .list(&ListParams::default().labels(&format!("job-name={job}")))
        .await?;
    let exits: Vec<Exit> = list
        .items
        .iter()
        .filter_map(|pod| {
            let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
            let t = statuses
                .iter()
                .find(|c| c.name == "runner")?
                .state
                .as_ref()?
                .terminated
                .as_ref()?;
            Some(Exit {
                code: t.exit_code,
                message: t.message.clone().unwrap_or_default(),
            })
        })
        .collect();
    let verdict = exits
        .iter()
        .position(|e| matches!(e.code, 1 | 2 | 130))
        .or((!exits.is_empty()).then_some(0));
    Ok(verdict.map(|i| exits.into_iter().nth(i).expect("an index of exits")))
}

/// The experiment's state from its Job and, when it failed, the runner's exit.
fn observe_job(job: &Job, exit: Option<Exit>, status: &mut ExperimentStatus) {
    let js = job.status.clone().unwrap_or_default();
    let finished = js
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True");
    match finished {
        Some(c) => {
            let succeeded = c.type_ == "Complete";
            status.state = Some(if succeeded { "Succeeded" } else { "Failed" }.into());
            if succeeded {
                // The runner's own report (`--kube-status`) names why; without it, this.
                if status.message.is_none() {
                    status.message = Some("Succeeded: the runner ended the experiment".into());
                }
            } else {
                status.message = Some(failure_message(exit.as_ref(), c.message.as_deref()));
            }
            status.completion_time = status
                .completion_time
                .clone()
                .or_else(|| c.last_transition_time.as_ref().map(|t| t.0.to_string()));
        }
        None if js.active.unwrap_or(0) > 0 => status.state = Some("Running".into()),
        None => status.state = Some("Created".into()),
    }
}

/// Why the runner failed, as `Reason: detail`, from its exit code and log tail: 1 is the
/// experiment's own verdict (`experiment NAME: Failed` then the reason, as `wasm-run tune`
/// prints it), 2 a spec the runner refused, anything else a runner that kept dying.
fn failure_message(exit: Option<&Exit>, job_message: Option<&str>) -> String {
    let Some(exit) = exit else {
        return format!(
            "RunnerFailed: the runner failed without ending the experiment: {}",
            job_message.unwrap_or_default()
        );
    };
    let lines: Vec<&str> = exit
        .message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    match exit.code {
        1 => {
            let verdict = lines
                .iter()
                .rposition(|l| l.starts_with("experiment ") && l.ends_with(": Failed"));
            match verdict.and_then(|i| lines.get(i + 1)) {
                Some(reason) if reason.contains(':') => reason.to_string(),
                _ => format!("ExperimentFailed: {}", last_lines(&lines)),
            }
        }
        2 => {
            let errors: Vec<&str> = lines
                .iter()
                .skip_while(|l| !l.starts_with("error:"))
                .copied()
                .collect();
            let text = if errors.is_empty() {
                last_lines(&lines)
            } else {
                errors.join("; ")
            };
            format!(
                "BadInput: the runner refused the experiment: {}",
                text.trim_start_matches("error: ")
            )
        }
        code => format!(
            "RunnerFailed: the runner failed (exit {code}) without ending the experiment: {}",
            last_lines(&lines)
        ),
    }
}

pub(crate) fn last_lines(lines: &[&str]) -> String {
    lines[lines.len().saturating_sub(3)..].join("; ")
}

/// Katib's condition reason for a state and message: `Experiment` and the message's leading
/// reason (`GoalReached: ...` is `ExperimentGoalReached`), else `Experiment` and the state.
fn reason(state: &str, message: &str) -> String {
    let lead = message.split(':').next().unwrap_or_default();
    let is_reason = !lead.is_empty()
        && lead.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && lead.chars().all(|c| c.is_ascii_alphanumeric());
    if matches!(state, "Succeeded" | "Failed") && is_reason {
        format!("Experiment{lead}")
    } else {
        format!("Experiment{state}")
    }
}

/// Derives Katib's conditions from the state, writes the status if it changed (with an event
/// on a state transition), and returns `action`.
async fn finish(
    exp: &Experiment,
    ctx: &Context,
    ns: &str,
    current: &ExperimentStatus,
    next: ExperimentStatus,
    action: Action,
) -> Result<Action, Error> {
    // Only the operator's share is compared and written: what the runner reports (counters,
    // a running experiment's message) never makes the operator write.
    let current = &operator_share(current.clone());
    let mut next = operator_share(next);
    let state = next.state.clone().unwrap_or_default();
    let message = next.message.clone().unwrap_or_default();
    let why = reason(&state, &message);
    let generation = exp.meta().generation;
    let mut conds = Vec::new();
    for (type_, holds) in [
        ("Created", true),
        ("Running", state == "Running"),
        ("Succeeded", state == "Succeeded"),
        ("Failed", state == "Failed"),
    ] {
        let type_reason = if type_ == "Created" {
            "ExperimentCreated".to_string()
        } else {
            why.clone()
        };
        conditions::set(
            &mut conds,
            &current.conditions,
            type_,
            holds,
            &type_reason,
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
            type_: if state == "Failed" {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: why.clone(),
            note: Some(if message.is_empty() {
                format!("experiment is {state}")
            } else {
                format!("experiment is {state}: {message}")
            }),
            action: "Reconcile".into(),
            secondary: None,
        };
        ctx.recorder.publish(&event, &exp.object_ref(&())).await?;
    }
    let api: Api<Experiment> = Api::namespaced(ctx.client.clone(), ns);
    apply::status(&api, &exp.name_any(), &next).await?;
    Ok(action)
}

/// The fields of the status this controller owns (server-side apply sends only these). The
/// runner owns the trial counters and the best trial (`--kube-status`, its own field
/// manager): were they sent back here from the copy read at the start of the reconcile, a
/// runner's newer counts could be overwritten with older ones. The message is the runner's
/// while it runs. Once the runner's Job has ended nothing else writes, and `trialsRunning`
/// is set to 0 here (a killed runner leaves it counting trials that no longer run).
fn operator_share(s: ExperimentStatus) -> ExperimentStatus {
    let ended = is_terminal(s.state.as_deref());
    let running = s.state.as_deref() == Some("Running");
    ExperimentStatus {
        state: s.state,
        conditions: s.conditions,
        message: if running { None } else { s.message },
        start_time: s.start_time,
        completion_time: s.completion_time,
        runner: s.runner,
        observed_generation: s.observed_generation,
        trials_running: ended.then_some(0),
        ..ExperimentStatus::default()
    }
}

/// On deletion: stop the runner (its Job, and so every trial in it) and remove the spec
/// ConfigMap, then let the finalizer go. The experiment's record stays in the metadata store
/// (`wasm-run experiments delete` forgets it).
async fn cleanup(exp: &Experiment, ctx: &Context, ns: &str) -> Result<Action, Error> {
    let name = exp.name_any();
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    apply::delete(&jobs, &child_name(&name, "runner")).await?;
    let configmaps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    apply::delete(&configmaps, &child_name(&name, "spec")).await?;
    tracing::info!(experiment = %name, namespace = %ns, "experiment deleted: runner stopped");
    Ok(Action::await_change())
}
