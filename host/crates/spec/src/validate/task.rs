//! The checks of one task: its component's inputs given and typed, its `after`, parallelFor,
//! resources, condition, retry policy and limits.

use super::*;

/// The path of field `rest` of the task at `base`.
fn at<'a>(base: &[&'a str], rest: &[&'a str]) -> Vec<&'a str> {
    base.iter().chain(rest).copied().collect()
}

impl Validator<'_> {
    /// Checks task `name` (at `base` in the file); adds the tasks it waits for to `deps`.
    pub(super) fn check_task(
        &mut self,
        base: &[&str],
        name: &str,
        task: &TaskSpec,
        deps: &mut BTreeSet<String>,
    ) {
        self.check_name(base, "task", name);
        let Some(component) = self.spec().components.get(&task.component).cloned() else {
            let known: Vec<&String> = self.spec().components.keys().collect();
            let msg = format!("task `{name}` uses component `{}`, which spec.components does not declare (declared: {known:?})", task.component);
            self.err(&at(base, &["component"]), msg);
            return;
        };
        self.check_task_params(base, name, task, &component, deps);
        self.check_task_artifacts(base, name, task, &component, deps);
        for (i, after) in task.after.iter().enumerate() {
            let i = i.to_string();
            self.task_ref(&at(base, &["after", &i]), name, after, deps);
        }
        if let Some(pf) = &task.parallel_for {
            self.check_parallel_for(base, name, task, pf, deps);
        }
        if let Some(r) = &task.resources {
            self.check_resources(base, r);
        }
        if let Some(cond) = &task.when {
            self.condition(&at(base, &["when"]), cond, name, deps);
        }
        self.check_retry_and_limits(base, task);
        if let Some(g) = &task.gang {
            self.check_gang(base, task, g);
        }
    }

    /// A gang has workers (not more than a job may), checkpoints at a positive period, and
    /// runs in one process: not fanned out, not in a pod of its own.
    fn check_gang(&mut self, base: &[&str], task: &TaskSpec, g: &Gang) {
        let max = super::MAX_WORKERS;
        if g.workers == 0 || u64::from(g.workers) > max {
            self.err(
                &at(base, &["gang", "workers"]),
                format!("a gang has 1 to {max} workers, not {}", g.workers),
            );
        }
        if g.checkpoint_every == Some(0) {
            self.err(
                &at(base, &["gang", "checkpointEvery"]),
                "checkpointEvery must be at least 1",
            );
        }
        if g.deadline_seconds == Some(0) {
            self.err(
                &at(base, &["gang", "deadlineSeconds"]),
                "deadlineSeconds must be at least 1",
            );
        }
        if task.parallel_for.is_some() {
            self.err(
                &at(base, &["gang"]),
                "a gang cannot also be a parallelFor: its workers are one job",
            );
        }
        if task.resources.is_some() {
            self.err(
                &at(base, &["gang"]),
                "a gang runs its workers in one process; resources (a pod of its own) are not supported for it yet",
            );
        }
    }

    /// Each parameter the task gives is one the component takes, from a source of its type;
    /// each the component takes without a default is given.
    fn check_task_params(
        &mut self,
        base: &[&str],
        name: &str,
        task: &TaskSpec,
        component: &ComponentDecl,
        deps: &mut BTreeSet<String>,
    ) {
        for (input, src) in &task.params {
            let p = at(base, &["params", input]);
            match component.inputs.params.get(input) {
                None => self.err(&p, format!("task `{name}`: component `{}` has no input parameter `{input}` (inputs: {:?})", task.component, component.inputs.params.keys().collect::<Vec<_>>())),
                Some(decl) => {
                    self.param_source(&p, src, Some(decl.ty), Some(name), deps);
                }
            }
        }
        for (input, decl) in &component.inputs.params {
            if decl.default.is_none() && !task.params.contains_key(input) {
                self.err(
                    &at(base, &["component"]),
                    format!(
                        "task `{name}`: missing input parameter `{input}` ({}) of component `{}`",
                        decl.ty.name(),
                        task.component
                    ),
                );
            }
        }
    }

    /// Each artifact the task gives is one the component takes, from a source of its type;
    /// each the component takes is given.
    fn check_task_artifacts(
        &mut self,
        base: &[&str],
        name: &str,
        task: &TaskSpec,
        component: &ComponentDecl,
        deps: &mut BTreeSet<String>,
    ) {
        for (input, src) in &task.artifacts {
            let p = at(base, &["artifacts", input]);
            match component.inputs.artifacts.get(input) {
                None => self.err(
                    &p,
                    format!(
                        "task `{name}`: component `{}` has no input artifact `{input}`",
                        task.component
                    ),
                ),
                Some(ty) => self.artifact_source(&p, src, Some(*ty), Some(name), deps),
            }
        }
        for input in component.inputs.artifacts.keys() {
            if !task.artifacts.contains_key(input) {
                self.err(
                    &at(base, &["component"]),
                    format!(
                        "task `{name}`: missing input artifact `{input}` of component `{}`",
                        task.component
                    ),
                );
            }
        }
    }

    /// A parallelFor's items are a list, or a reference that can give one (whose items, when
    /// the file fixes them, have the fields the task's `loopItem`s name); its bounds are at
    /// least 1.
    fn check_parallel_for(
        &mut self,
        base: &[&str],
        name: &str,
        task: &TaskSpec,
        pf: &ParallelFor,
        deps: &mut BTreeSet<String>,
    ) {
        let p = at(base, &["parallelFor", "items"]);
        let items = &pf.items;
        if items.loop_item.is_some() {
            self.err(&p, "the items of a parallelFor cannot be a loop item");
        } else if let Some(v) = &items.value {
            if !v.is_array() {
                self.err(&p, format!("parallelFor items must be a list, got {v}"));
            }
        } else {
            self.param_source(&p, items, Some(ParamType::Json), Some(name), deps);
        }
        if let Some(list) = self.static_items(&p, items) {
            self.check_loop_fields(base, task, &list);
        }
        if pf.parallelism == Some(0) {
            self.err(
                &at(base, &["parallelFor", "parallelism"]),
                "parallelism must be at least 1",
            );
        }
        if pf.pods == Some(0) {
            self.err(
                &at(base, &["parallelFor", "pods"]),
                "pods must be at least 1",
            );
        }
    }

    /// The task's own cpu and memory are Kubernetes quantities.
    fn check_resources(&mut self, base: &[&str], r: &TaskResources) {
        for (field, value) in [("cpu", &r.cpu), ("memory", &r.memory)] {
            if value.as_deref().is_some_and(|q| !is_quantity(q)) {
                self.err(
                    &at(base, &["resources", field]),
                    format!(
                        "`{}` is not a Kubernetes quantity (e.g. 2, 500m, 4Gi)",
                        value.as_deref().unwrap_or_default()
                    ),
                );
            }
        }
    }

    /// The retry backoff and the timeout are durations, the backoff factor at least 1, the
    /// memory a size.
    fn check_retry_and_limits(&mut self, base: &[&str], task: &TaskSpec) {
        if let Some(retry) = &task.retry {
            if let Some(b) = &retry.backoff {
                if humantime::parse_duration(b).is_err() {
                    self.err(
                        &at(base, &["retry", "backoff"]),
                        format!("`{b}` is not a duration (e.g. 500ms, 2s)"),
                    );
                }
            }
            if retry
                .factor
                .is_some_and(|f| f.partial_cmp(&1.0).is_none_or(|o| o.is_lt()))
            {
                self.err(
                    &at(base, &["retry", "factor"]),
                    "backoff factor must be at least 1",
                );
            }
        }
        if let Some(t) = &task.timeout {
            if humantime::parse_duration(t).is_err() {
                self.err(
                    &at(base, &["timeout"]),
                    format!("`{t}` is not a duration (e.g. 30s, 5m)"),
                );
            }
        }
        if let Some(m) = &task.memory {
            if m.parse::<bytesize::ByteSize>().is_err() {
                self.err(
                    &at(base, &["memory"]),
                    format!("`{m}` is not a size (e.g. 256MiB)"),
                );
            }
        }
    }

    /// The items of a parallelFor when the file fixes them (a literal, or a parameter's
    /// default); a parameter default that is not a list is an error here rather than mid-run.
    fn static_items(
        &mut self,
        path: &[&str],
        items: &ParamSource,
    ) -> Option<Vec<serde_json::Value>> {
        if let Some(v) = &items.value {
            return v.as_array().cloned();
        }
        let param = items.param.as_ref()?;
        let default = self.spec().params.get(param)?.default.clone()?;
        match default {
            serde_json::Value::Array(list) => Some(list),
            other => {
                self.err(
                    path,
                    format!("parallelFor items: the default of parameter `{param}` is {other}, not a list"),
                );
                None
            }
        }
    }

    /// Every `loopItem: FIELD` of the task names a field each item has.
    fn check_loop_fields(&mut self, base: &[&str], task: &TaskSpec, list: &[serde_json::Value]) {
        for (param, src) in &task.params {
            let Some(field) = src.loop_item.as_deref().filter(|f| *f != ".") else {
                continue;
            };
            if let Some((i, item)) = list
                .iter()
                .enumerate()
                .find(|(_, it)| it.get(field).is_none())
            {
                let mut p = base.to_vec();
                p.extend(["params", param.as_str(), "loopItem"]);
                self.err(
                    &p,
                    format!("item {i} of the parallelFor list, {item}, has no field `{field}`"),
                );
            }
        }
    }
}

/// A Kubernetes resource quantity: a decimal number with an optional SI or binary suffix.
fn is_quantity(q: &str) -> bool {
    const SUFFIXES: [&str; 14] = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P",
    ];
    let number = SUFFIXES.iter().find_map(|s| q.strip_suffix(s)).unwrap_or(q);
    !number.is_empty()
        && number.chars().all(|c| c.is_ascii_digit() || c == '.')
        && number.parse::<f64>().is_ok_and(|v| v >= 0.0)
}
