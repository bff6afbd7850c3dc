//! Sub-pipelines used as tasks, inlined at plan time.
//!
//! A component whose `source` is a pipeline file is a sub-pipeline: its declared interface is
//! the sub-pipeline's parameters, artifacts and `spec.outputs`. Each task using it is replaced by
//! the sub-pipeline's tasks, named `<task>/<subtask>`, wired to what the task was given, and the
//! parent's references to the task's outputs are redirected to the sub-task that produces them.
//! The executor then sees one flat DAG: caching, retries, resume and replay apply unchanged.

use crate::plan::PlanError;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use weft_spec::pipeline::{
    ArtifactSource, ComponentDecl, Condition, ParamSource, Pipeline, PipelineSpec, TaskSpec,
};
use weft_spec::validate::{is_pipeline_source, validate};
use weft_spec::Document;

/// Deeper nesting is taken for a cycle of files.
const MAX_DEPTH: usize = 8;

/// Inlines every sub-pipeline of `pipeline` (whose file sits in `base`), recursively.
pub(crate) fn inline(pipeline: &mut Pipeline, base: &Path, depth: usize) -> Result<(), PlanError> {
    let subs: BTreeMap<String, ComponentDecl> = pipeline
        .spec
        .components
        .iter()
        .filter(|(_, c)| is_pipeline_source(&c.source))
        .map(|(n, c)| (n.clone(), c.clone()))
        .collect();
    if subs.is_empty() {
        return Ok(());
    }
    if depth >= MAX_DEPTH {
        return Err(PlanError::Args(format!(
            "sub-pipelines nest deeper than {MAX_DEPTH}: is there a cycle of pipeline files?"
        )));
    }
    let users: Vec<String> = pipeline
        .spec
        .tasks
        .iter()
        .filter(|(_, t)| subs.contains_key(&t.component))
        .map(|(n, _)| n.clone())
        .collect();
    for name in users {
        let task = pipeline.spec.tasks.remove(&name).expect("listed above");
        let decl = &subs[&task.component];
        inline_task(pipeline, &name, &task, decl, base, depth)?;
    }
    for name in subs.keys() {
        if !pipeline.spec.tasks.values().any(|t| &t.component == name) {
            pipeline.spec.components.remove(name);
        }
    }
    Ok(())
}

/// Replaces task `name` (already taken out of `pipeline`), which uses the sub-pipeline
/// component `decl`, by the sub-pipeline's tasks and components, and points the parent's
/// uses of the task's outputs at the sub-tasks that make them.
fn inline_task(
    pipeline: &mut Pipeline,
    name: &str,
    task: &TaskSpec,
    decl: &ComponentDecl,
    base: &Path,
    depth: usize,
) -> Result<(), PlanError> {
    let file = base.join(&decl.source);
    let mut sub = load(&file)?;
    inline(&mut sub, file.parent().unwrap_or(Path::new(".")), depth + 1)?;
    check_interface(&task.component, decl, &sub, &file)?;
    let scope = Scope {
        prefix: name.to_string(),
        task,
        sub: &sub,
    };

    let mut inlined = Vec::new();
    for (sub_name, sub_task) in &sub.spec.tasks {
        let t = scope.task(sub_task)?;
        let full = format!("{name}/{sub_name}");
        inlined.push(full.clone());
        pipeline.spec.tasks.insert(full, t);
    }
    add_components(pipeline, name, &sub, &file)?;

    // Whoever used the task's outputs now uses the sub-tasks that make them.
    let redirect = Redirect {
        task: name,
        scope: &scope,
        inlined: &inlined,
    };
    redirect.uses(&mut pipeline.spec)
}

/// Adds the components of `sub` (the sub-pipeline in `file`) to `pipeline` as
/// `<task>/<component>`; paths in the sub-pipeline are relative to its own file: they are made
/// absolute.
fn add_components(
    pipeline: &mut Pipeline,
    name: &str,
    sub: &Pipeline,
    file: &Path,
) -> Result<(), PlanError> {
    let sub_dir = std::path::absolute(file.parent().unwrap_or(Path::new(".")))
        .map_err(|e| PlanError::Args(format!("{}: {e}", file.display())))?;
    for (cname, c) in &sub.spec.components {
        let mut c = c.clone();
        if !c.source.starts_with("sha256:") {
            c.source = sub_dir.join(&c.source).display().to_string();
        }
        pipeline
            .spec
            .components
            .insert(format!("{name}/{cname}"), c);
    }
    Ok(())
}

fn load(file: &Path) -> Result<Pipeline, PlanError> {
    let shown = file.display().to_string();
    let text = weft_tree::read_regular_text(file, weft_tree::MAX_DOCUMENT_BYTES)
        .map_err(|e| PlanError::Args(format!("sub-pipeline {e}")))?;
    let doc = Document::<Pipeline>::parse(&shown, &text)?;
    validate(&doc).map_err(PlanError::Invalid)?;
    if doc.value.spec.exit_handler.is_some() {
        return Err(doc
            .error_at(
                &["spec", "exitHandler"],
                "a sub-pipeline cannot have an exit handler; give it to the outer pipeline",
            )
            .into());
    }
    Ok(doc.value)
}

/// The component's declared interface must be what the sub-pipeline takes and gives.
fn check_interface(
    name: &str,
    decl: &ComponentDecl,
    sub: &Pipeline,
    file: &Path,
) -> Result<(), PlanError> {
    let err =
        |what: String| PlanError::Args(format!("component `{name}` ({}): {what}", file.display()));
    for (p, d) in &decl.inputs.params {
        match sub.spec.params.get(p) {
            None => {
                return Err(err(format!(
                    "declares input parameter `{p}`, which the sub-pipeline does not take"
                )))
            }
            Some(sd) if sd.ty != d.ty => {
                return Err(err(format!(
                    "input parameter `{p}` is {} here but {} in the sub-pipeline",
                    d.ty.name(),
                    sd.ty.name()
                )))
            }
            _ => {}
        }
    }
    for (p, sd) in &sub.spec.params {
        if sd.default.is_none() && !decl.inputs.params.contains_key(p) {
            return Err(err(format!(
                "the sub-pipeline needs parameter `{p}` ({}), which the component does not declare",
                sd.ty.name()
            )));
        }
    }
    for (a, ty) in &decl.inputs.artifacts {
        match sub.spec.artifacts.get(a) {
            None => {
                return Err(err(format!(
                    "declares input artifact `{a}`, which the sub-pipeline does not take"
                )))
            }
            Some(sa) if sa.ty != *ty => {
                return Err(err(format!(
                    "input artifact `{a}` is {ty:?} here but {:?} in the sub-pipeline",
                    sa.ty
                )))
            }
            _ => {}
        }
    }
    for o in decl.outputs.params.keys() {
        if !sub.spec.outputs.params.contains_key(o) {
            return Err(err(format!(
                "declares output parameter `{o}`, which the sub-pipeline's spec.outputs lacks"
            )));
        }
    }
    for o in decl.outputs.artifacts.keys() {
        if !sub.spec.outputs.artifacts.contains_key(o) {
            return Err(err(format!(
                "declares output artifact `{o}`, which the sub-pipeline's spec.outputs lacks"
            )));
        }
    }
    Ok(())
}

/// Maps references inside a sub-pipeline to the parent's names.
struct Scope<'a> {
    prefix: String,
    /// The parent task being replaced: what it was given.
    task: &'a TaskSpec,
    sub: &'a Pipeline,
}

impl Scope<'_> {
    /// Sub-task `sub_task` as a task of the parent: its component and sources renamed into
    /// the parent, after what it was after and what the replaced task was after, and run only
    /// when both its own condition and the replaced task's hold.
    fn task(&self, sub_task: &TaskSpec) -> Result<TaskSpec, PlanError> {
        let name = &self.prefix;
        let mut t = sub_task.clone();
        t.component = format!("{name}/{}", sub_task.component);
        t.params = sub_task
            .params
            .iter()
            .map(|(k, v)| Ok((k.clone(), self.param(v)?)))
            .collect::<Result<_, PlanError>>()?;
        t.artifacts = sub_task
            .artifacts
            .iter()
            .map(|(k, v)| Ok((k.clone(), self.artifact(v)?)))
            .collect::<Result<_, PlanError>>()?;
        t.after = sub_task
            .after
            .iter()
            .map(|a| format!("{name}/{a}"))
            .chain(self.task.after.iter().cloned())
            .collect();
        let inner = sub_task
            .when
            .as_ref()
            .map(|c| self.condition(c))
            .transpose()?;
        t.when = match (inner, self.task.when.clone()) {
            (Some(a), Some(b)) => Some(Condition {
                all: Some(vec![a, b]),
                ..Default::default()
            }),
            (a, b) => a.or(b),
        };
        if let Some(pf) = &mut t.parallel_for {
            pf.items = self.param(&pf.items)?;
        }
        Ok(t)
    }

    fn param(&self, src: &ParamSource) -> Result<ParamSource, PlanError> {
        if let Some(p) = &src.param {
            if let Some(given) = self.task.params.get(p) {
                return Ok(given.clone());
            }
            let default = self.sub.spec.params.get(p).and_then(|d| d.default.clone());
            return match default {
                Some(v) => Ok(ParamSource {
                    value: Some(v),
                    ..Default::default()
                }),
                None => Err(PlanError::Args(format!(
                    "task `{}` gives the sub-pipeline no parameter `{p}`",
                    self.prefix
                ))),
            };
        }
        if let Some(t) = &src.task {
            return Ok(ParamSource {
                task: Some(format!("{}/{t}", self.prefix)),
                ..src.clone()
            });
        }
        Ok(src.clone())
    }

    fn artifact(&self, src: &ArtifactSource) -> Result<ArtifactSource, PlanError> {
        if let Some(a) = &src.artifact {
            return self.task.artifacts.get(a).cloned().ok_or_else(|| {
                PlanError::Args(format!(
                    "task `{}` gives the sub-pipeline no artifact `{a}`",
                    self.prefix
                ))
            });
        }
        if let Some(t) = &src.task {
            return Ok(ArtifactSource {
                task: Some(format!("{}/{t}", self.prefix)),
                ..src.clone()
            });
        }
        Ok(src.clone())
    }

    fn condition(&self, c: &Condition) -> Result<Condition, PlanError> {
        let list = |l: &Option<Vec<Condition>>| -> Result<Option<Vec<Condition>>, PlanError> {
            l.as_ref()
                .map(|v| v.iter().map(|c| self.condition(c)).collect())
                .transpose()
        };
        Ok(Condition {
            input: c.input.as_ref().map(|i| self.param(i)).transpose()?,
            op: c.op,
            value: c.value.clone(),
            all: list(&c.all)?,
            any: list(&c.any)?,
            not: c
                .not
                .as_ref()
                .map(|n| self.condition(n).map(Box::new))
                .transpose()?,
        })
    }
}

/// Rewrites the parent's references to a replaced task.
struct Redirect<'a> {
    task: &'a str,
    scope: &'a Scope<'a>,
    inlined: &'a [String],
}

impl Redirect<'_> {
    /// Rewrites every use of the replaced task's outputs in `spec`: in its tasks, its exit
    /// handler and its own outputs.
    fn uses(&self, spec: &mut PipelineSpec) -> Result<(), PlanError> {
        for t in spec.tasks.values_mut() {
            self.task(t)?;
        }
        if let Some(h) = spec.exit_handler.as_mut() {
            self.task(h)?;
        }
        let outputs = &mut spec.outputs;
        for src in outputs.params.values_mut() {
            *src = self.param(src)?;
        }
        for src in outputs.artifacts.values_mut() {
            *src = self.artifact(src)?;
        }
        Ok(())
    }

    fn param(&self, src: &ParamSource) -> Result<ParamSource, PlanError> {
        match (&src.task, &src.output) {
            (Some(t), Some(o)) if t == self.task => {
                let inner = self.scope.sub.spec.outputs.params.get(o).ok_or_else(|| {
                    PlanError::Args(format!(
                        "the sub-pipeline of task `{t}` has no output parameter `{o}`"
                    ))
                })?;
                self.scope.param(inner)
            }
            _ => Ok(src.clone()),
        }
    }

    fn artifact(&self, src: &ArtifactSource) -> Result<ArtifactSource, PlanError> {
        match (&src.task, &src.output) {
            (Some(t), Some(o)) if t == self.task => {
                let inner = self
                    .scope
                    .sub
                    .spec
                    .outputs
                    .artifacts
                    .get(o)
                    .ok_or_else(|| {
                        PlanError::Args(format!(
                            "the sub-pipeline of task `{t}` has no output artifact `{o}`"
                        ))
                    })?;
                self.scope.artifact(inner)
            }
            _ => Ok(src.clone()),
        }
    }

    fn condition(&self, c: &mut Condition) -> Result<(), PlanError> {
        if let Some(i) = c.input.as_mut() {
            *i = self.param(i)?;
        }
        for inner in c.all.iter_mut().chain(c.any.iter_mut()).flatten() {
            self.condition(inner)?;
        }
        if let Some(n) = c.not.as_mut() {
            self.condition(n)?;
        }
        Ok(())
    }

    fn task(&self, t: &mut TaskSpec) -> Result<(), PlanError> {
        for src in t.params.values_mut() {
            *src = self.param(src)?;
        }
        for src in t.artifacts.values_mut() {
            *src = self.artifact(src)?;
        }
        if let Some(c) = t.when.as_mut() {
            self.condition(c)?;
        }
        if let Some(pf) = t.parallel_for.as_mut() {
            pf.items = self.param(&pf.items)?;
        }
        if t.after.iter().any(|a| a == self.task) {
            let mut after: BTreeSet<String> = t
                .after
                .iter()
                .filter(|a| *a != self.task)
                .cloned()
                .collect();
            after.extend(self.inlined.iter().cloned());
            t.after = after.into_iter().collect();
        }
        Ok(())
    }
}
