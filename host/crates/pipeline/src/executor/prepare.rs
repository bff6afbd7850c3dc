//! A ready task made into a [`Job`]: its parameters and input artifacts resolved from the
//! plan and the outputs of the tasks before it, its cache key, and a parallelFor's items.

use super::*;
use weft_spec::pipeline::{ComponentDecl, ParamType};
use weft_spec::train_job::CollectiveEngine;

/// The inputs of a parallelFor fed from each item: (input, field, type).
type LoopParams = Vec<(String, String, ParamType)>;

impl Executor {
    /// Resolves a ready task's inputs and cache key.
    pub(super) fn prepare(
        &self,
        run_id: &str,
        plan: &Arc<Plan>,
        name: &str,
        task: &TaskSpec,
        outputs: &BTreeMap<String, TaskOutputs>,
        status: Option<&RunStatus>,
    ) -> Result<Job> {
        let task = task.clone();
        let decl = plan.pipeline.spec.components[&task.component].clone();
        let (params, loop_params) = resolve_params(plan, &decl, &task, outputs, status)?;
        let (inputs, input_types) = resolve_inputs(plan, &decl, &task, outputs)?;
        let component = plan.components[&task.component].clone();
        let key = cache_key(&KeyParts {
            component: &component,
            params: &params,
            inputs: &inputs,
            outputs: &decl.outputs,
            env: &task.env,
            hermetic_seed: plan.hermetic_seed,
            workers: task.gang.as_ref().map(|g| g.workers),
            engine: task
                .gang
                .as_ref()
                .map(|g| g.engine)
                .filter(|e| !matches!(e, CollectiveEngine::Auto | CollectiveEngine::Local))
                .map(CollectiveEngine::as_str),
        });
        let items = loop_items(plan, &task, outputs)?;
        let loop_parallelism = task
            .parallel_for
            .as_ref()
            .and_then(|pf| pf.parallelism)
            .map(|p| p as usize)
            .unwrap_or(self.default_parallelism);
        Ok(Job {
            items,
            loop_params,
            loop_parallelism,
            run_id: run_id.to_string(),
            task: name.to_string(),
            spec: task.clone(),
            plan: plan.clone(),
            component,
            params,
            inputs,
            input_types,
            cache_key: key,
            use_cache: plan.cache && task.cache.unwrap_or(true),
            pods: None,
            gangs: None,
        })
    }
}

/// The task's input parameters, each from its source or else its default; those a
/// parallelFor feeds from its items are set aside, to be set per iteration.
fn resolve_params(
    plan: &Plan,
    decl: &ComponentDecl,
    task: &TaskSpec,
    outputs: &BTreeMap<String, TaskOutputs>,
    status: Option<&RunStatus>,
) -> Result<(BTreeMap<String, ParamValue>, LoopParams)> {
    let mut params = BTreeMap::new();
    let mut loop_params = Vec::new();
    for (input, d) in &decl.inputs.params {
        match task.params.get(input) {
            Some(src) if src.loop_item.is_some() => {
                loop_params.push((
                    input.clone(),
                    src.loop_item.clone().unwrap_or_default(),
                    d.ty,
                ));
            }
            Some(src) => {
                let value = resolve_param(plan, outputs, status, src).map_err(|e| anyhow!(e))?;
                // An int feeding a float input is widened, as validation allowed.
                let value = match (d.ty, value) {
                    (ParamType::Float, ParamValue::Int(i)) => ParamValue::Float(i as f64),
                    (_, v) => v,
                };
                params.insert(input.clone(), value);
            }
            None => {
                if let Some(v) = &d.default {
                    params.insert(input.clone(), from_json(d.ty, v.clone()));
                }
            }
        }
    }
    Ok((params, loop_params))
}

/// The task's input artifacts by digest, and their declared types as recorded.
fn resolve_inputs(
    plan: &Plan,
    decl: &ComponentDecl,
    task: &TaskSpec,
    outputs: &BTreeMap<String, TaskOutputs>,
) -> Result<(BTreeMap<String, String>, BTreeMap<String, String>)> {
    let mut inputs = BTreeMap::new();
    let mut input_types = BTreeMap::new();
    for (input, ty) in &decl.inputs.artifacts {
        let src = &task.artifacts[input];
        inputs.insert(
            input.clone(),
            resolve_artifact(plan, outputs, src).map_err(|e| anyhow!(e))?,
        );
        input_types.insert(input.clone(), format!("{ty:?}"));
    }
    Ok((inputs, input_types))
}

/// A parallelFor's items (written in the spec, or a parameter that must be a list); None
/// for a task that is no loop.
fn loop_items(
    plan: &Plan,
    task: &TaskSpec,
    outputs: &BTreeMap<String, TaskOutputs>,
) -> Result<Option<Vec<serde_json::Value>>> {
    let Some(pf) = &task.parallel_for else {
        return Ok(None);
    };
    let list = match &pf.items.value {
        Some(v) => v.clone(),
        None => crate::plan::to_json(
            &resolve_param(plan, outputs, None, &pf.items).map_err(|e| anyhow!(e))?,
        ),
    };
    match list {
        serde_json::Value::Array(items) => Ok(Some(items)),
        other => anyhow::bail!("parallelFor items must be a list, got {other}"),
    }
}

/// A parameter's value from its source: the run's status (the exit handler only), a literal,
/// a pipeline parameter, or an upstream task's output.
pub(super) fn resolve_param(
    plan: &Plan,
    outputs: &BTreeMap<String, TaskOutputs>,
    status: Option<&RunStatus>,
    src: &ParamSource,
) -> Result<ParamValue, String> {
    if let Some(field) = &src.run_status {
        let status = status.ok_or("`runStatus` is only available to the exit handler")?;
        let value = if field == "error" {
            &status.error
        } else {
            &status.state
        };
        return Ok(ParamValue::String(value.clone()));
    }
    if let Some(v) = &src.value {
        return Ok(ParamValue::infer_json(v));
    }
    if let Some(p) = &src.param {
        return plan
            .params
            .get(p)
            .cloned()
            .ok_or_else(|| format!("no pipeline parameter `{p}`"));
    }
    let (t, o) = (
        src.task.as_deref().unwrap_or(""),
        src.output.as_deref().unwrap_or(""),
    );
    outputs
        .get(t)
        .and_then(|out| out.params.get(o))
        .cloned()
        .ok_or_else(|| format!("task `{t}` produced no output parameter `{o}`"))
}

/// An input artifact's digest from its source: a pipeline artifact or an upstream task's output.
fn resolve_artifact(
    plan: &Plan,
    outputs: &BTreeMap<String, TaskOutputs>,
    src: &ArtifactSource,
) -> Result<String, String> {
    if let Some(a) = &src.artifact {
        return plan
            .input_artifacts
            .get(a)
            .map(|s| s.digest.clone())
            .ok_or_else(|| format!("no pipeline artifact `{a}`"));
    }
    let (t, o) = (
        src.task.as_deref().unwrap_or(""),
        src.output.as_deref().unwrap_or(""),
    );
    outputs
        .get(t)
        .and_then(|out| out.artifacts.get(o))
        .cloned()
        .ok_or_else(|| format!("task `{t}` produced no output artifact `{o}`"))
}
