//! Checks of a `TrainJob` beyond its shape: counts, the engine against the topology, the
//! initializer's references, limits; every error located in the file.

use super::{valid_digest, valid_name};
use crate::pipeline::API_VERSION;
use crate::train_job::{ArtifactRef, CollectiveEngine, TrainJob, TrainJobSpec};
use crate::{Document, SpecError};

/// The most workers one job may have.
pub const MAX_WORKERS: u64 = 4096;

pub fn validate_train_job(doc: &Document<TrainJob>) -> Result<(), Vec<SpecError>> {
    let mut errors = Vec::new();
    let mut err = |path: &[&str], m: String| errors.push(doc.error_at(path, m));
    let job = &doc.value;
    if job.api_version != API_VERSION {
        err(
            &["apiVersion"],
            format!(
                "apiVersion must be `{API_VERSION}`, not `{}`",
                job.api_version
            ),
        );
    }
    if job.kind != "TrainJob" {
        err(
            &["kind"],
            format!("kind must be `TrainJob`, not `{}`", job.kind),
        );
    }
    if !valid_name(&job.metadata.name) {
        err(
            &["metadata", "name"],
            "train job name: use letters, digits, `-` and `_` (at most 63)".into(),
        );
    }
    check_trainer(&mut err, &job.spec);
    check_policies(&mut err, &job.spec);
    check_initializer(&mut err, &job.spec);
    match errors.is_empty() {
        true => Ok(()),
        false => {
            errors.sort_by_key(|e| (e.line, e.column));
            Err(errors)
        }
    }
}

/// The trainer: its component, its gang's size and engine, its limits and outputs.
fn check_trainer(err: &mut impl FnMut(&[&str], String), spec: &TrainJobSpec) {
    let t = &spec.trainer;
    let tr = |f: &'static str| ["spec", "trainer", f];
    if t.component.is_empty() {
        err(
            &tr("component"),
            "the trainer needs a component: a .wasm path or sha256:<hex>".into(),
        );
    } else if t.component.starts_with("sha256:") && !valid_digest(&t.component) {
        err(
            &tr("component"),
            format!("`{}` is not a sha256:<64 hex> digest", t.component),
        );
    }
    if t.num_nodes == 0 {
        err(&tr("numNodes"), "numNodes must be at least 1".into());
    }
    if t.num_proc_per_node == 0 {
        err(
            &tr("numProcPerNode"),
            "numProcPerNode must be at least 1".into(),
        );
    }
    if spec.world_size() > MAX_WORKERS {
        err(
            &tr("numNodes"),
            format!(
                "{} workers in all (numNodes × numProcPerNode): at most {MAX_WORKERS}",
                spec.world_size()
            ),
        );
    }
    let gpus = t
        .resources_per_node
        .as_ref()
        .and_then(|r| r.gpu)
        .unwrap_or(0);
    match t.engine {
        CollectiveEngine::Local if t.num_nodes > 1 => err(
            &tr("engine"),
            format!("engine local runs every worker in one process: numNodes must be 1, not {} (use mpi across nodes)", t.num_nodes),
        ),
        CollectiveEngine::Nccl if gpus == 0 => err(
            &tr("engine"),
            "engine nccl exchanges CUDA tensors: resourcesPerNode.gpu must be at least 1".into(),
        ),
        _ => {}
    }
    if let Some(d) = &t.timeout {
        if humantime::parse_duration(d).is_err() {
            err(
                &tr("timeout"),
                format!("`{d}` is not a duration (e.g. 30s, 5m)"),
            );
        }
    }
    if let Some(m) = &t.memory {
        if m.parse::<bytesize::ByteSize>().is_err() {
            err(&tr("memory"), format!("`{m}` is not a size (e.g. 256MiB)"));
        }
    }
    for name in t.outputs.keys() {
        if !valid_name(name) {
            err(
                &tr("outputs"),
                format!("output `{name}`: use letters, digits, `-` and `_`"),
            );
        }
    }
}

/// Checkpointing and the run policy.
fn check_policies(err: &mut impl FnMut(&[&str], String), spec: &TrainJobSpec) {
    if spec.checkpoint.as_ref().is_some_and(|c| c.every_steps == 0) {
        err(
            &["spec", "checkpoint", "everySteps"],
            "everySteps must be at least 1".into(),
        );
    }
    let policy = &spec.run_policy;
    for (field, value) in [
        ("activeDeadlineSeconds", policy.active_deadline_seconds),
        ("scheduleTimeoutSeconds", policy.schedule_timeout_seconds),
    ] {
        if value == Some(0) {
            err(
                &["spec", "runPolicy", field],
                format!("{field} must be at least 1"),
            );
        }
    }
}

/// The initializer's dataset and model: each one artifact, as distinct inputs.
fn check_initializer(err: &mut impl FnMut(&[&str], String), spec: &TrainJobSpec) {
    let Some(init) = &spec.initializer else {
        return;
    };
    let mut inputs = Vec::new();
    for (field, r, default) in [
        ("dataset", &init.dataset, "train"),
        ("model", &init.model, "model"),
    ] {
        if let Some(r) = r {
            check_ref(err, field, r);
            inputs.push((field, r.input.clone().unwrap_or_else(|| default.into())));
        }
    }
    if let [(_, a), (_, b)] = inputs.as_slice() {
        if a == b {
            err(
                &["spec", "initializer", "model", "input"],
                format!("the dataset and the model are both input `{a}`"),
            );
        }
    }
}

fn check_ref(err: &mut impl FnMut(&[&str], String), field: &str, r: &ArtifactRef) {
    let path = ["spec", "initializer", field];
    let given = [r.path.is_some(), r.digest.is_some(), r.run.is_some()];
    if given.iter().filter(|g| **g).count() != 1 {
        err(&path, format!("initializer.{field}: give exactly one of path, digest, or run (with task and output)"));
    }
    if let Some(d) = &r.digest {
        if !valid_digest(d) {
            err(
                &[&path[..], &["digest"]].concat(),
                format!("`{d}` is not a sha256:<64 hex> digest"),
            );
        }
    }
    if r.run.is_some() && (r.task.is_none() || r.output.is_none()) {
        err(
            &path,
            format!("initializer.{field}: a run's output needs task and output"),
        );
    }
    if r.run.is_none() && (r.task.is_some() || r.output.is_some()) {
        err(
            &path,
            format!("initializer.{field}: task and output name a run's output: give run too"),
        );
    }
    if let Some(i) = &r.input {
        if !valid_name(i) {
            err(
                &[&path[..], &["input"]].concat(),
                format!("input `{i}`: use letters, digits, `-` and `_`"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "apiVersion: weft.dev/v1alpha1
kind: TrainJob
metadata: {name: iris}
spec:
  trainer:
    component: train-mlp.wasm
    params: {label: species}
    numProcPerNode: 4
  initializer:
    dataset: {path: iris.csv}
  checkpoint: {everySteps: 20}
";

    fn check(text: &str) -> Result<(), String> {
        let doc = Document::<TrainJob>::parse("job.yaml", text).map_err(|e| e.to_string())?;
        validate_train_job(&doc).map_err(|es| {
            es.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    #[test]
    fn a_good_job_passes_with_trainers_defaults() {
        check(GOOD).unwrap();
        let doc = Document::<TrainJob>::parse("job.yaml", GOOD).unwrap();
        assert_eq!(doc.value.spec.world_size(), 4);
        assert_eq!(doc.value.spec.run_policy.backoff_limit, 3);
        assert!(doc.value.spec.outputs().contains_key("model"));
    }

    #[test]
    fn bad_jobs_fail_naming_the_field_and_line() {
        for (change, wanted) in [
            (
                ("numProcPerNode: 4", "numNodes: 0"),
                "job.yaml:8:15: numNodes must be at least 1",
            ),
            (
                ("numProcPerNode: 4", "numProcPerNode: 0"),
                "numProcPerNode must be at least 1",
            ),
            (("numProcPerNode: 4", "engine: gloo"), "gloo"),
            (
                ("numProcPerNode: 4", "numNodes: 2\n    engine: local"),
                "engine local runs every worker in one process",
            ),
            (
                ("numProcPerNode: 4", "engine: nccl"),
                "resourcesPerNode.gpu must be at least 1",
            ),
            (
                ("numProcPerNode: 4", "numNodes: 5000"),
                "5000 workers in all",
            ),
            (
                ("{everySteps: 20}", "{everySteps: 0}"),
                "everySteps must be at least 1",
            ),
            (
                (
                    "{everySteps: 20}",
                    "{everySteps: 20}\n  runPolicy: {scheduleTimeoutSeconds: 0}",
                ),
                "scheduleTimeoutSeconds must be at least 1",
            ),
            (
                ("{path: iris.csv}", "{path: a, digest: sha256:00}"),
                "give exactly one of path, digest, or run",
            ),
            (
                ("{path: iris.csv}", "{run: r1}"),
                "a run's output needs task and output",
            ),
            (
                ("{path: iris.csv}", "{digest: sha256:zz}"),
                "`sha256:zz` is not a sha256:<64 hex> digest",
            ),
            (
                ("kind: TrainJob", "kind: PyTorchJob"),
                "kind must be `TrainJob`",
            ),
        ] {
            let e = check(&GOOD.replace(change.0, change.1)).unwrap_err();
            assert!(e.contains(wanted), "{change:?}: {e}");
        }
    }
}
