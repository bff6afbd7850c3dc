//! `pipeline run --register-model TASK.OUTPUT=NAME[:VERSION]`: an output artifact of the run
//! registered in the model registry as a new version once the run succeeds, with its lineage
//! (run, pipeline, task, output, digest). Checked before the run starts, so a long run does
//! not end in a refusal it could have had at once.

use crate::home::Home;
use crate::models::register::{self, NewVersion, Source};
use crate::models::Client;
use anyhow::{bail, Result};
use std::path::PathBuf;
use weft_pipeline::{Plan, RunSummary};

/// One `--register-model`.
#[derive(Clone, Debug)]
pub struct Registration {
    task: String,
    output: String,
    model: String,
    /// None: the run's id.
    version: Option<String>,
}

pub fn parse(s: &str) -> Result<Registration, String> {
    let usage = || format!("`{s}`: write TASK.OUTPUT=NAME[:VERSION]");
    let (from, to) = s.split_once('=').ok_or_else(usage)?;
    let (task, output) = from.rsplit_once('.').ok_or_else(usage)?;
    let (model, version) = match to.split_once(':') {
        Some((m, v)) => (m, Some(v.to_string())),
        None => (to, None),
    };
    if task.is_empty() || output.is_empty() || model.is_empty() || version == Some(String::new()) {
        return Err(usage());
    }
    Ok(Registration {
        task: task.into(),
        output: output.into(),
        model: model.into(),
        version,
    })
}

/// What to register after the run: the registrations, and the predictor component's digest.
pub struct Pending {
    registrations: Vec<Registration>,
    component: Option<String>,
}

/// Checks each registration against the plan (the task exists and declares the output
/// artifact) and the registry (the version is free; `run_id`'s when none is named), and
/// stores the component. Nothing is registered yet.
pub fn prepare(
    home: &Home,
    plan: Option<&Plan>,
    registrations: Vec<Registration>,
    component: Option<PathBuf>,
    run_id: &str,
) -> Result<Option<Pending>> {
    if registrations.is_empty() {
        return Ok(None);
    }
    if let Some(plan) = plan {
        for r in &registrations {
            check_output(plan, r)?;
        }
    }
    let client = Client::open(home, weft_registry::namespace::DEFAULT_NAMESPACE)?;
    for r in &registrations {
        let version = r.version.as_deref().unwrap_or(run_id);
        register::check_new(&client, &r.model, version)
            .map_err(|e| e.context(format!("--register-model {}.{}", r.task, r.output)))?;
    }
    let component = match component {
        Some(file) => {
            crate::models::check_component(&file)?;
            let artifacts = home.open_artifacts()?;
            Some(crate::models::store(
                &artifacts,
                &file,
                "--register-component",
            )?)
        }
        None => None,
    };
    Ok(Some(Pending {
        registrations,
        component,
    }))
}

fn check_output(plan: &Plan, r: &Registration) -> Result<()> {
    let spec = &plan.pipeline.spec;
    let Some(task) = spec.tasks.get(&r.task) else {
        let names: Vec<_> = spec.tasks.keys().map(String::as_str).collect();
        bail!(
            "--register-model {}.{}: the pipeline has no task `{}` (its tasks: {})",
            r.task,
            r.output,
            r.task,
            names.join(", ")
        );
    };
    let outputs = spec
        .components
        .get(&task.component)
        .map(|c| &c.outputs.artifacts);
    if !outputs.is_some_and(|o| o.contains_key(&r.output)) {
        let names: Vec<_> = outputs
            .into_iter()
            .flat_map(|o| o.keys().map(String::as_str))
            .collect();
        bail!(
            "--register-model {0}.{1}: task `{0}` has no output artifact `{1}` (its output artifacts: {2})",
            r.task,
            r.output,
            if names.is_empty() { "none".into() } else { names.join(", ") }
        );
    }
    Ok(())
}

/// Registers each output the finished run made, said on stderr (stdout may be the run's JSON);
/// when the run did not succeed, or a task made no such output (a condition skipped it),
/// says so and registers nothing for it.
pub fn finish(home: &Home, pending: Pending, summary: &RunSummary) -> Result<()> {
    if summary.state != weft_store::RUN_SUCCEEDED {
        eprintln!(
            "models not registered: the run {}",
            summary.state.to_lowercase()
        );
        return Ok(());
    }
    let meta = home.open_metadata()?;
    let pipeline = meta.run(&summary.run_id)?.pipeline;
    let events = meta.events(Some(&summary.run_id))?;
    let client = Client::open(home, weft_registry::namespace::DEFAULT_NAMESPACE)?;
    for r in pending.registrations {
        let made = events
            .iter()
            .find(|e| e.direction == "output" && e.task == r.task && e.name == r.output);
        let Some(made) = made else {
            let state = summary.tasks.iter().find(|t| t.name == r.task);
            let state = state.map_or("not run", |t| t.state.as_str());
            eprintln!(
                "model {} not registered: task `{}` made no output `{}` ({state})",
                r.model, r.task, r.output
            );
            continue;
        };
        let version = r.version.unwrap_or_else(|| summary.run_id.clone());
        let new = NewVersion {
            model: r.model.clone(),
            version: version.clone(),
            uri: Some(made.digest.clone()),
            component: pending.component.clone(),
            source: Some(Source {
                run_id: summary.run_id.clone(),
                pipeline: pipeline.clone(),
                task: r.task.clone(),
                output: r.output.clone(),
                digest: made.digest.clone(),
            }),
            ..Default::default()
        };
        register::register(&client, &new)?;
        eprintln!(
            "registered {}.{} ({}) as model {}, version {version}: {}{}/{version}",
            r.task,
            r.output,
            made.digest,
            r.model,
            crate::models::resolve::SCHEME,
            r.model
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn registrations_are_parsed() {
        let r = super::parse("publish.published=iris:v2").unwrap();
        assert_eq!(
            (r.task.as_str(), r.output.as_str(), r.model.as_str()),
            ("publish", "published", "iris")
        );
        assert_eq!(r.version.as_deref(), Some("v2"));
        assert_eq!(super::parse("a/b.out=m").unwrap().task, "a/b");
        assert_eq!(super::parse("t.o=m").unwrap().version, None);
        for bad in [
            "publish=iris",
            "publish.published",
            ".x=m",
            "t.=m",
            "t.o=",
            "t.o=m:",
        ] {
            assert!(
                super::parse(bad).unwrap_err().contains("TASK.OUTPUT"),
                "{bad}"
            );
        }
    }
}
