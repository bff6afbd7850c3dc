//! What a trial runs: a pipeline file. A `pipeline` template names one; a `component`
//! template becomes a one-task pipeline written beside the experiment's state (absolute
//! paths, so it plans from anywhere), whose parameters are the trial's and the fixed ones.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use weft_spec::experiment::{ComponentTrial, Experiment, ParameterType};
use weft_spec::one_task::{fixed_param, OneTask};
use weft_spec::pipeline::*;
use weft_spec::ParamValue;

/// The task a component trial runs as, in its run.
pub const TRIAL_TASK: &str = "trial";

/// The pipeline file each trial runs, and the parameters every trial passes besides its own.
pub struct TrialPipeline {
    pub file: PathBuf,
    pub fixed: Vec<(String, ParamValue)>,
}

/// Resolves the template of `e` (read from a file in `base`); a component template is
/// written as `<state_dir>/trial-pipeline.yaml`.
pub fn prepare(e: &Experiment, base: &Path, state_dir: &Path) -> Result<TrialPipeline> {
    let t = &e.spec.trial_template;
    if let Some(p) = &t.pipeline {
        let fixed = p
            .params
            .iter()
            .map(|(k, v)| (k.clone(), ParamValue::infer_json(v)))
            .collect();
        return Ok(TrialPipeline {
            file: base.join(&p.pipeline_ref),
            fixed,
        });
    }
    let c = t
        .component
        .as_ref()
        .context("trialTemplate has neither component nor pipeline")?;
    let pipeline = component_pipeline(e, c, base);
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
    let file = state_dir.join("trial-pipeline.yaml");
    // JSON is YAML: the planner reads it as any pipeline file.
    let text = serde_json::to_string_pretty(&pipeline)?;
    std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
    Ok(TrialPipeline {
        file,
        fixed: Vec::new(),
    })
}

fn component_pipeline(e: &Experiment, c: &ComponentTrial, base: &Path) -> Pipeline {
    let mut params = BTreeMap::new();
    for (name, p) in e.spec.trial_bindings() {
        let ty = match p.parameter_type {
            ParameterType::Discrete if p.is_whole_discrete() => ParamType::Int,
            ParameterType::Double | ParameterType::Discrete => ParamType::Float,
            ParameterType::Int => ParamType::Int,
            ParameterType::Categorical => ParamType::String,
        };
        params.insert(name.to_string(), decl(ty, None));
    }
    for (name, v) in &c.params {
        params.insert(name.clone(), fixed_param(v));
    }
    OneTask {
        name: &trial_pipeline_name(&e.metadata.name),
        description: format!("One trial of experiment {}", e.metadata.name),
        task: TRIAL_TASK,
        source: &c.source,
        params,
        inputs: c.inputs.clone(),
        outputs: c.outputs.clone(),
        settings: TaskSpec {
            timeout: c.timeout.clone(),
            memory: c.memory.clone(),
            ..Default::default()
        },
    }
    .pipeline(base)
}

/// `<experiment>-trial`, within the 63 characters a name may have (names are ASCII).
fn trial_pipeline_name(experiment: &str) -> String {
    let mut name = format!("{experiment}-trial");
    name.truncate(63);
    name
}

fn decl(ty: ParamType, default: Option<serde_json::Value>) -> ParamDecl {
    ParamDecl {
        ty,
        default,
        description: None,
    }
}
