//! The checks of references: parameter and artifact sources, task references and `when`
//! conditions, with the types they give.

use super::*;

/// What a reference resolves to, for type checks.
pub(super) enum Produced {
    Param(ParamType),
    Unknown,
}

impl Validator<'_> {
    /// A reference from task `from` to task `to`: `to` exists and is not `from`; it becomes
    /// upstream of `from`.
    pub(super) fn task_ref(
        &mut self,
        path: &[&str],
        from: &str,
        to: &str,
        deps: &mut BTreeSet<String>,
    ) -> bool {
        if to == from {
            self.err(path, format!("task `{from}` refers to itself"));
            return false;
        }
        if !self.spec().tasks.contains_key(to) {
            self.err(
                path,
                format!("task `{from}` refers to task `{to}`, which does not exist"),
            );
            return false;
        }
        deps.insert(to.to_string());
        true
    }

    /// Checks a parameter reference; with `expected`, also its type.
    pub(super) fn param_source(
        &mut self,
        path: &[&str],
        src: &ParamSource,
        expected: Option<ParamType>,
        task: Option<&str>,
        deps: &mut BTreeSet<String>,
    ) -> Produced {
        let forms = [
            src.value.is_some(),
            src.param.is_some(),
            src.task.is_some(),
            src.loop_item.is_some(),
            src.run_status.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if forms != 1 || src.task.is_some() != src.output.is_some() {
            self.err(
                path,
                "give exactly one of `value`, `param`, `task` with `output`, `loopItem` or `runStatus`",
            );
            return Produced::Unknown;
        }
        if let Some(field) = &src.run_status {
            self.check_run_status(path, field, task);
            return Produced::Param(ParamType::String);
        }
        if src.loop_item.is_some() {
            self.check_loop_item(path, task);
            // An item's type is known only when the list is: checked at run time.
            return Produced::Unknown;
        }
        let Some((produced, what)) = self.produced_param(path, src, task, deps) else {
            return Produced::Unknown;
        };
        if let Some(want) = expected {
            if !want.accepts(produced) {
                self.err(
                    path,
                    format!(
                        "type mismatch: expects {}, but {what} is {}",
                        want.name(),
                        produced.name()
                    ),
                );
            }
        }
        Produced::Param(produced)
    }

    /// `runStatus` is the exit handler's only, and names `state` or `error`.
    fn check_run_status(&mut self, path: &[&str], field: &str, task: Option<&str>) {
        if task != Some(EXIT_HANDLER) {
            self.err(path, "`runStatus` is only available to the exit handler");
        } else if field != "state" && field != "error" {
            self.err(
                path,
                format!("`runStatus: {field}`: use `state` or `error`"),
            );
        }
    }

    /// `loopItem` is for a task with `parallelFor` only.
    fn check_loop_item(&mut self, path: &[&str], task: Option<&str>) {
        let in_loop = task
            .and_then(|t| self.spec().tasks.get(t))
            .is_some_and(|t| t.parallel_for.is_some());
        if !in_loop {
            self.err(
                path,
                "`loopItem` is only meaningful in a task with `parallelFor`",
            );
        }
    }

    /// The type a literal, a pipeline parameter or a task's output gives, and how a mismatch
    /// names it; None (the error reported) when the reference names nothing.
    fn produced_param(
        &mut self,
        path: &[&str],
        src: &ParamSource,
        task: Option<&str>,
        deps: &mut BTreeSet<String>,
    ) -> Option<(ParamType, String)> {
        if let Some(v) = &src.value {
            return Some((ParamType::of_literal(v), format!("the literal {v}")));
        }
        if let Some(p) = &src.param {
            return match self.spec().params.get(p) {
                Some(d) => Some((d.ty, format!("pipeline parameter `{p}`"))),
                None => {
                    self.err(
                        path,
                        format!("pipeline parameter `{p}` is not declared in spec.params"),
                    );
                    None
                }
            };
        }
        self.task_output_param(path, src, task, deps)
    }

    /// A task's output parameter: the task exists (and, referred to from a task, is upstream
    /// of it) and its component declares the output; a parallelFor's output is the JSON list
    /// of its iterations' values.
    fn task_output_param(
        &mut self,
        path: &[&str],
        src: &ParamSource,
        task: Option<&str>,
        deps: &mut BTreeSet<String>,
    ) -> Option<(ParamType, String)> {
        let (t, out) = (src.task.as_deref().unwrap(), src.output.as_deref().unwrap());
        let ok = match task {
            Some(from) => self.task_ref(path, from, t, deps),
            None => {
                self.spec().tasks.contains_key(t) || {
                    self.err(path, format!("task `{t}` does not exist"));
                    false
                }
            }
        };
        if !ok {
            return None;
        }
        let comp = &self.spec().tasks[t].component;
        let Some(ty) = self
            .spec()
            .components
            .get(comp)
            .and_then(|c| c.outputs.params.get(out))
            .copied()
        else {
            self.err(
                path,
                format!("task `{t}` (component `{comp}`) has no output parameter `{out}`"),
            );
            return None;
        };
        if self.spec().tasks[t].parallel_for.is_some() {
            // Fan-in: the iterations' values, as a JSON list.
            Some((
                ParamType::Json,
                format!("task `{t}` output `{out}` (a list: `{t}` is a parallelFor)"),
            ))
        } else {
            Some((ty, format!("task `{t}` output `{out}`")))
        }
    }

    /// Checks an artifact reference; with `expected`, also its type.
    pub(super) fn artifact_source(
        &mut self,
        path: &[&str],
        src: &ArtifactSource,
        expected: Option<ArtifactType>,
        task: Option<&str>,
        deps: &mut BTreeSet<String>,
    ) {
        let produced = match (&src.artifact, &src.task, &src.output) {
            (Some(a), None, None) => match self.spec().artifacts.get(a) {
                Some(d) => (d.ty, format!("pipeline artifact `{a}`")),
                None => {
                    return self.err(
                        path,
                        format!("pipeline artifact `{a}` is not declared in spec.artifacts"),
                    )
                }
            },
            (None, Some(t), Some(out)) => {
                let ok = match task {
                    Some(from) => self.task_ref(path, from, t, deps),
                    None => self.spec().tasks.contains_key(t),
                };
                if !ok {
                    return;
                }
                let comp = &self.spec().tasks[t].component;
                match self
                    .spec()
                    .components
                    .get(comp)
                    .and_then(|c| c.outputs.artifacts.get(out))
                {
                    Some(ty) => (*ty, format!("task `{t}` output `{out}`")),
                    None => {
                        return self.err(
                            path,
                            format!(
                                "task `{t}` (component `{comp}`) has no output artifact `{out}`"
                            ),
                        )
                    }
                }
            }
            _ => {
                return self.err(
                    path,
                    "give exactly one of `artifact`, or `task` with `output`",
                )
            }
        };
        if let Some(want) = expected {
            if !want.accepts(produced.0) {
                self.err(
                    path,
                    format!(
                        "type mismatch: expects {want:?}, but {} is {:?}",
                        produced.1, produced.0
                    ),
                );
            }
        }
    }

    /// Checks a `when` condition: its form, its input reference, and that its operator and
    /// value suit the input's type; then its inner conditions.
    pub(super) fn condition(
        &mut self,
        path: &[&str],
        c: &Condition,
        task: &str,
        deps: &mut BTreeSet<String>,
    ) {
        let forms = [
            c.input.is_some(),
            c.all.is_some(),
            c.any.is_some(),
            c.not.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if forms != 1 {
            return self.err(
                path,
                "a condition is one of: `input` with `op` and `value`, `all`, `any`, `not`",
            );
        }
        let owned: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        let sub = |key: &str, i: Option<usize>| -> Vec<String> {
            let mut p = owned.clone();
            p.push(key.to_string());
            if let Some(i) = i {
                p.push(i.to_string());
            }
            p
        };
        if let Some(input) = &c.input {
            let (Some(op), Some(value)) = (c.op, &c.value) else {
                return self.err(
                    path,
                    "a comparison needs `op` (==, !=, <, <=, >, >=) and `value`",
                );
            };
            let produced =
                self.param_source(&strs(&sub("input", None)), input, None, Some(task), deps);
            if let Produced::Param(ty) = produced {
                self.check_comparison(path, op, value, ty);
            }
        }
        for (key, list) in [("all", &c.all), ("any", &c.any)] {
            for (i, inner) in list.iter().flatten().enumerate() {
                self.condition(&strs(&sub(key, Some(i))), inner, task, deps);
            }
        }
        if let Some(inner) = &c.not {
            self.condition(&strs(&sub("not", None)), inner, task, deps);
        }
    }

    /// A comparison's operator and value suit its input's type `ty`: ordering compares
    /// numbers; otherwise the value and the input are of types one accepts from the other, or
    /// both numbers.
    fn check_comparison(
        &mut self,
        path: &[&str],
        op: Op,
        value: &serde_json::Value,
        ty: ParamType,
    ) {
        let numeric = |t: ParamType| matches!(t, ParamType::Int | ParamType::Float);
        let lit = ParamType::of_literal(value);
        if matches!(op, Op::Lt | Op::Le | Op::Gt | Op::Ge) && !(numeric(ty) && numeric(lit)) {
            self.err(
                &[path, &["op"]].concat(),
                format!(
                    "`{op:?}` compares numbers, but the input is {} and the value {}",
                    ty.name(),
                    lit.name()
                ),
            );
        } else if !ty.accepts(lit) && !lit.accepts(ty) && !(numeric(ty) && numeric(lit)) {
            self.err(
                &[path, &["value"]].concat(),
                format!(
                    "type mismatch: the input is {} but the value is {}",
                    ty.name(),
                    lit.name()
                ),
            );
        }
    }
}
