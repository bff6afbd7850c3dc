//! Checks a parsed pipeline before anything runs: every reference resolves, types agree between
//! producer and consumer, and the task graph has no cycle. Errors name the file, line and column.

use crate::pipeline::*;
use crate::yaml::{Document, SpecError};
use std::collections::{BTreeMap, BTreeSet};

/// The task graph of a valid pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    /// For each task, the tasks it waits for (data references, conditions and `after`).
    pub upstream: BTreeMap<String, BTreeSet<String>>,
    /// A topological order (ties broken by name).
    pub order: Vec<String>,
}

/// The name the exit handler's task is recorded under.
pub const EXIT_HANDLER: &str = "exit-handler";

/// Validates `doc`; returns the graph, or every error found, in file order.
pub fn validate(doc: &Document<Pipeline>) -> Result<Graph, Vec<SpecError>> {
    let mut v = Validator {
        doc,
        errors: Vec::new(),
    };
    let graph = v.run();
    if v.errors.is_empty() {
        Ok(graph)
    } else {
        let mut errors = v.errors;
        errors.sort_by_key(|e| (e.line, e.column));
        errors.dedup();
        Err(errors)
    }
}

struct Validator<'a> {
    doc: &'a Document<Pipeline>,
    errors: Vec<SpecError>,
}

/// Whether a component source is a sub-pipeline file rather than a component.
pub fn is_pipeline_source(source: &str) -> bool {
    source.ends_with(".yaml") || source.ends_with(".yml")
}

/// The task graph implied by a spec's references, `after` and conditions, without checking them
/// (for specs made by the planner, such as a pipeline with its sub-pipelines inlined).
pub fn dependencies(spec: &PipelineSpec) -> Graph {
    fn param(src: &ParamSource, deps: &mut BTreeSet<String>) {
        if let Some(t) = &src.task {
            deps.insert(t.clone());
        }
    }
    fn cond(c: &Condition, deps: &mut BTreeSet<String>) {
        if let Some(i) = &c.input {
            param(i, deps);
        }
        for inner in c.all.iter().chain(c.any.iter()).flatten() {
            cond(inner, deps);
        }
        if let Some(n) = &c.not {
            cond(n, deps);
        }
    }
    let mut upstream = BTreeMap::new();
    for (name, t) in &spec.tasks {
        let mut deps: BTreeSet<String> = t.after.iter().cloned().collect();
        t.params.values().for_each(|p| param(p, &mut deps));
        for a in t.artifacts.values() {
            if let Some(t) = &a.task {
                deps.insert(t.clone());
            }
        }
        if let Some(c) = &t.when {
            cond(c, &mut deps);
        }
        if let Some(pf) = &t.parallel_for {
            param(&pf.items, &mut deps);
        }
        deps.remove(name);
        upstream.insert(name.clone(), deps);
    }
    let mut remaining: BTreeMap<&String, usize> =
        upstream.iter().map(|(t, d)| (t, d.len())).collect();
    let mut order = Vec::new();
    while let Some(next) = remaining
        .iter()
        .find(|(_, n)| **n == 0)
        .map(|(t, _)| (*t).clone())
    {
        remaining.remove(&next);
        for (other, deps) in &upstream {
            if deps.contains(&next) {
                if let Some(n) = remaining.get_mut(other) {
                    *n -= 1;
                }
            }
        }
        order.push(next);
    }
    Graph { upstream, order }
}

/// A name used as a path component and in references.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn valid_digest(s: &str) -> bool {
    crate::digest::parse(s).is_ok()
}

/// What a reference resolves to, for type checks.
enum Produced {
    Param(ParamType),
    Unknown,
}

impl Validator<'_> {
    fn err(&mut self, path: &[&str], message: impl Into<String>) {
        let e = self.doc.error_at(path, message);
        self.errors.push(e);
    }

    fn spec(&self) -> &PipelineSpec {
        &self.doc.value.spec
    }

    fn run(&mut self) -> Graph {
        let p = &self.doc.value;
        if p.api_version != API_VERSION {
            self.err(
                &["apiVersion"],
                format!(
                    "apiVersion must be `{API_VERSION}`, not `{}`",
                    p.api_version
                ),
            );
        }
        if p.kind != "Pipeline" {
            self.err(
                &["kind"],
                format!("kind must be `Pipeline`, not `{}`", p.kind),
            );
        }
        if !valid_name(&p.metadata.name) {
            self.err(
                &["metadata", "name"],
                format!(
                    "pipeline name `{}`: use letters, digits, `-` and `_`",
                    p.metadata.name
                ),
            );
        }
        let spec = self.spec().clone();
        for (name, decl) in &spec.params {
            self.check_name(&["spec", "params", name], "parameter", name);
            if let Some(d) = &decl.default {
                let got = ParamType::of_literal(d);
                if !decl.ty.accepts(got) {
                    self.err(
                        &["spec", "params", name, "default"],
                        format!(
                            "parameter `{name}` is {} but its default is {}",
                            decl.ty.name(),
                            got.name()
                        ),
                    );
                }
            }
        }
        for (name, c) in &spec.components {
            self.check_name(&["spec", "components", name], "component", name);
            if c.source.starts_with("sha256:") && !valid_digest(&c.source) {
                self.err(
                    &["spec", "components", name, "source"],
                    format!(
                        "`{}` is not a sha256 digest (sha256: and 64 lowercase hex digits)",
                        c.source
                    ),
                );
            } else if !c.source.starts_with("sha256:")
                && !c.source.ends_with(".wasm")
                && !is_pipeline_source(&c.source)
            {
                self.err(
                    &["spec", "components", name, "source"],
                    format!(
                        "component source `{}` must be a .wasm path, a sha256: digest, or a pipeline .yaml",
                        c.source
                    ),
                );
            }
        }
        if spec.tasks.is_empty() {
            self.err(&["spec", "tasks"], "a pipeline needs at least one task");
        }
        let mut upstream: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (name, task) in &spec.tasks {
            let mut deps = BTreeSet::new();
            self.check_task(&["spec", "tasks", name], name, task, &mut deps);
            upstream.insert(name.clone(), deps);
        }
        if let Some(handler) = &spec.exit_handler {
            if spec.tasks.contains_key(EXIT_HANDLER) {
                self.err(
                    &["spec", "tasks", EXIT_HANDLER],
                    format!("`{EXIT_HANDLER}` is the exit handler's name; rename this task"),
                );
            }
            let mut deps = BTreeSet::new();
            self.check_task(&["spec", "exitHandler"], EXIT_HANDLER, handler, &mut deps);
            if !deps.is_empty() || !handler.after.is_empty() {
                self.err(&["spec", "exitHandler"], "the exit handler runs after every task and may not refer to tasks; use `runStatus` and pipeline parameters");
            }
        }
        for (out, src) in &spec.outputs.params {
            self.param_source(
                &["spec", "outputs", "params", out],
                src,
                None,
                None,
                &mut BTreeSet::new(),
            );
        }
        for (out, src) in &spec.outputs.artifacts {
            self.artifact_source(
                &["spec", "outputs", "artifacts", out],
                src,
                None,
                None,
                &mut BTreeSet::new(),
            );
        }
        let order = self.order(&upstream);
        Graph { upstream, order }
    }

    fn check_name(&mut self, path: &[&str], what: &str, name: &str) {
        if !valid_name(name) {
            self.err(
                path,
                format!(
                    "{what} name `{}`: use letters, digits, `-` and `_` (at most 63)",
                    crate::text::truncate(name, 64)
                ),
            );
        }
    }

    fn check_task(
        &mut self,
        base: &[&str],
        name: &str,
        task: &TaskSpec,
        deps: &mut BTreeSet<String>,
    ) {
        let at = |rest: &[&'static str]| -> Vec<String> {
            let mut p: Vec<String> = base.iter().map(|s| s.to_string()).collect();
            p.extend(rest.iter().map(|s| s.to_string()));
            p
        };
        self.check_name(&strs(&at(&[])), "task", name);
        let Some(component) = self.spec().components.get(&task.component).cloned() else {
            let known: Vec<&String> = self.spec().components.keys().collect();
            let msg = format!("task `{name}` uses component `{}`, which spec.components does not declare (declared: {known:?})", task.component);
            self.err(&strs(&at(&["component"])), msg);
            return;
        };
        for (input, src) in &task.params {
            let mut p = at(&["params"]);
            p.push(input.clone());
            match component.inputs.params.get(input) {
                None => self.err(&strs(&p), format!("task `{name}`: component `{}` has no input parameter `{input}` (inputs: {:?})", task.component, component.inputs.params.keys().collect::<Vec<_>>())),
                Some(decl) => {
                    self.param_source(&strs(&p), src, Some(decl.ty), Some(name), deps);
                }
            }
        }
        for (input, decl) in &component.inputs.params {
            if decl.default.is_none() && !task.params.contains_key(input) {
                self.err(
                    &strs(&at(&["component"])),
                    format!(
                        "task `{name}`: missing input parameter `{input}` ({}) of component `{}`",
                        decl.ty.name(),
                        task.component
                    ),
                );
            }
        }
        for (input, src) in &task.artifacts {
            let mut p = at(&["artifacts"]);
            p.push(input.clone());
            match component.inputs.artifacts.get(input) {
                None => self.err(
                    &strs(&p),
                    format!(
                        "task `{name}`: component `{}` has no input artifact `{input}`",
                        task.component
                    ),
                ),
                Some(ty) => self.artifact_source(&strs(&p), src, Some(*ty), Some(name), deps),
            }
        }
        for input in component.inputs.artifacts.keys() {
            if !task.artifacts.contains_key(input) {
                self.err(
                    &strs(&at(&["component"])),
                    format!(
                        "task `{name}`: missing input artifact `{input}` of component `{}`",
                        task.component
                    ),
                );
            }
        }
        for (i, after) in task.after.iter().enumerate() {
            let mut p = at(&["after"]);
            p.push(i.to_string());
            self.task_ref(&strs(&p), name, after, deps);
        }
        if let Some(pf) = &task.parallel_for {
            let p = at(&["parallelFor", "items"]);
            let items = &pf.items;
            if items.loop_item.is_some() {
                self.err(
                    &strs(&p),
                    "the items of a parallelFor cannot be a loop item",
                );
            } else if let Some(v) = &items.value {
                if !v.is_array() {
                    self.err(
                        &strs(&p),
                        format!("parallelFor items must be a list, got {v}"),
                    );
                }
            } else {
                self.param_source(&strs(&p), items, Some(ParamType::Json), Some(name), deps);
            }
            if let Some(list) = self.static_items(&strs(&p), items) {
                self.check_loop_fields(base, task, &list);
            }
            if pf.parallelism == Some(0) {
                self.err(
                    &strs(&at(&["parallelFor", "parallelism"])),
                    "parallelism must be at least 1",
                );
            }
            if pf.pods == Some(0) {
                self.err(
                    &strs(&at(&["parallelFor", "pods"])),
                    "pods must be at least 1",
                );
            }
        }
        if let Some(r) = &task.resources {
            for (field, value) in [("cpu", &r.cpu), ("memory", &r.memory)] {
                if value.as_deref().is_some_and(|q| !is_quantity(q)) {
                    self.err(
                        &strs(&at(&["resources", field])),
                        format!(
                            "`{}` is not a Kubernetes quantity (e.g. 2, 500m, 4Gi)",
                            value.as_deref().unwrap_or_default()
                        ),
                    );
                }
            }
        }
        if let Some(cond) = &task.when {
            self.condition(&strs(&at(&["when"])), cond, name, deps);
        }
        if let Some(retry) = &task.retry {
            if let Some(b) = &retry.backoff {
                if humantime::parse_duration(b).is_err() {
                    self.err(
                        &strs(&at(&["retry", "backoff"])),
                        format!("`{b}` is not a duration (e.g. 500ms, 2s)"),
                    );
                }
            }
            if retry
                .factor
                .is_some_and(|f| f.partial_cmp(&1.0).is_none_or(|o| o.is_lt()))
            {
                self.err(
                    &strs(&at(&["retry", "factor"])),
                    "backoff factor must be at least 1",
                );
            }
        }
        if let Some(t) = &task.timeout {
            if humantime::parse_duration(t).is_err() {
                self.err(
                    &strs(&at(&["timeout"])),
                    format!("`{t}` is not a duration (e.g. 30s, 5m)"),
                );
            }
        }
        if let Some(m) = &task.memory {
            if m.parse::<bytesize::ByteSize>().is_err() {
                self.err(
                    &strs(&at(&["memory"])),
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

    fn task_ref(
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
    fn param_source(
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
            if task != Some(EXIT_HANDLER) {
                self.err(path, "`runStatus` is only available to the exit handler");
            } else if field != "state" && field != "error" {
                self.err(
                    path,
                    format!("`runStatus: {field}`: use `state` or `error`"),
                );
            }
            return Produced::Param(ParamType::String);
        }
        if src.loop_item.is_some() {
            let in_loop = task
                .and_then(|t| self.spec().tasks.get(t))
                .is_some_and(|t| t.parallel_for.is_some());
            if !in_loop {
                self.err(
                    path,
                    "`loopItem` is only meaningful in a task with `parallelFor`",
                );
            }
            // An item's type is known only when the list is: checked at run time.
            return Produced::Unknown;
        }
        let (produced, what) = if let Some(v) = &src.value {
            (ParamType::of_literal(v), format!("the literal {v}"))
        } else if let Some(p) = &src.param {
            match self.spec().params.get(p) {
                Some(d) => (d.ty, format!("pipeline parameter `{p}`")),
                None => {
                    self.err(
                        path,
                        format!("pipeline parameter `{p}` is not declared in spec.params"),
                    );
                    return Produced::Unknown;
                }
            }
        } else {
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
                return Produced::Unknown;
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
                return Produced::Unknown;
            };
            if self.spec().tasks[t].parallel_for.is_some() {
                // Fan-in: the iterations' values, as a JSON list.
                (
                    ParamType::Json,
                    format!("task `{t}` output `{out}` (a list: `{t}` is a parallelFor)"),
                )
            } else {
                (ty, format!("task `{t}` output `{out}`"))
            }
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

    fn artifact_source(
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

    fn condition(&mut self, path: &[&str], c: &Condition, task: &str, deps: &mut BTreeSet<String>) {
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
                let numeric = |t: ParamType| matches!(t, ParamType::Int | ParamType::Float);
                let lit = ParamType::of_literal(value);
                if matches!(op, Op::Lt | Op::Le | Op::Gt | Op::Ge) && !(numeric(ty) && numeric(lit))
                {
                    self.err(
                        &strs(&sub("op", None)),
                        format!(
                            "`{op:?}` compares numbers, but the input is {} and the value {}",
                            ty.name(),
                            lit.name()
                        ),
                    );
                } else if !ty.accepts(lit) && !lit.accepts(ty) && !(numeric(ty) && numeric(lit)) {
                    self.err(
                        &strs(&sub("value", None)),
                        format!(
                            "type mismatch: the input is {} but the value is {}",
                            ty.name(),
                            lit.name()
                        ),
                    );
                }
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

    /// Kahn's algorithm; on a cycle, names it.
    fn order(&mut self, upstream: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
        let mut remaining: BTreeMap<&str, usize> = upstream
            .iter()
            .map(|(t, d)| (t.as_str(), d.len()))
            .collect();
        let mut order = Vec::new();
        loop {
            let ready: Vec<&str> = remaining
                .iter()
                .filter(|(_, n)| **n == 0)
                .map(|(t, _)| *t)
                .collect();
            if ready.is_empty() {
                break;
            }
            for t in ready {
                remaining.remove(t);
                order.push(t.to_string());
                for (other, deps) in upstream {
                    if deps.contains(t) {
                        if let Some(n) = remaining.get_mut(other.as_str()) {
                            *n -= 1;
                        }
                    }
                }
            }
        }
        if let Some(start) = remaining.keys().next().map(|s| s.to_string()) {
            let cycle = find_cycle(upstream, &start);
            self.err(
                &["spec", "tasks", &cycle[0]],
                format!("the tasks form a cycle: {}", cycle.join(" -> ")),
            );
        }
        order
    }
}

/// Walks upstream edges from a task left over by the topological sort until a task repeats.
fn find_cycle(upstream: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Vec<String> {
    let mut path = vec![start.to_string()];
    let mut current = start.to_string();
    loop {
        let next = upstream[&current]
            .iter()
            .find(|d| !path_is_done(upstream, d))
            .cloned()
            .unwrap_or_else(|| upstream[&current].iter().next().unwrap().clone());
        if let Some(pos) = path.iter().position(|p| *p == next) {
            let mut cycle: Vec<String> = path[pos..].to_vec();
            cycle.reverse();
            cycle.push(cycle[0].clone());
            return cycle;
        }
        path.push(next.clone());
        current = next;
    }
}

/// Whether `task` can finish (has no cycle upstream of it).
fn path_is_done(upstream: &BTreeMap<String, BTreeSet<String>>, task: &str) -> bool {
    fn visit<'a>(
        u: &'a BTreeMap<String, BTreeSet<String>>,
        t: &'a str,
        stack: &mut Vec<&'a str>,
    ) -> bool {
        if stack.contains(&t) {
            return false;
        }
        stack.push(t);
        let ok = u
            .get(t)
            .map(|ds| ds.iter().all(|d| visit(u, d, stack)))
            .unwrap_or(true);
        stack.pop();
        ok
    }
    visit(upstream, task, &mut Vec::new())
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"apiVersion: weft.dev/v1alpha1
kind: Pipeline
metadata:
  name: demo
spec:
  params:
    threshold: {type: float, default: 0.5}
  artifacts:
    data: {type: Dataset, path: data.csv}
  components:
    prep:
      source: prep.wasm
      inputs:
        artifacts: {data: Dataset}
      outputs:
        params: {rows: int}
        artifacts: {clean: Dataset}
    train:
      source: train.wasm
      inputs:
        params: {rate: {type: float}}
        artifacts: {train: Dataset}
      outputs:
        params: {accuracy: float}
        artifacts: {model: Model}
  tasks:
    prep:
      component: prep
      artifacts: {data: {artifact: data}}
    train:
      component: train
      params: {rate: {param: threshold}}
      artifacts: {train: {task: prep, output: clean}}
    publish:
      component: train
      params: {rate: {value: 1}}
      artifacts: {train: {task: prep, output: clean}}
      after: [train]
      when: {input: {task: train, output: accuracy}, op: ">=", value: 0.9}
"#;

    fn check(text: &str) -> Result<Graph, Vec<SpecError>> {
        let doc = Document::<Pipeline>::parse("p.yaml", text).map_err(|e| vec![e])?;
        validate(&doc)
    }

    fn one_error(text: &str) -> SpecError {
        let errs = check(text).expect_err("expected an error");
        assert_eq!(errs.len(), 1, "{errs:#?}");
        errs.into_iter().next().unwrap()
    }

    #[test]
    fn a_good_pipeline_orders_its_tasks() {
        let g = check(GOOD).unwrap();
        assert_eq!(g.order, ["prep", "train", "publish"]);
        assert_eq!(
            g.upstream["publish"],
            BTreeSet::from(["prep".to_string(), "train".to_string()])
        );
    }

    #[test]
    fn task_resources_must_be_kubernetes_quantities() {
        let ok = GOOD.replace(
            "      artifacts: {data: {artifact: data}}",
            "      artifacts: {data: {artifact: data}}\n      resources: {cpu: 500m, memory: 4Gi, gpu: 1, nodeSelector: {accelerator: h100}}",
        );
        check(&ok).unwrap();
        let bad = ok.replace("memory: 4Gi", "memory: lots");
        let e = one_error(&bad);
        assert!(
            e.message.contains("`lots` is not a Kubernetes quantity"),
            "{e}"
        );
        assert_eq!((e.line, e.column), (30, 38), "located at the field: {e}");
    }

    #[test]
    fn parallel_for_lists_known_from_the_file_are_checked() {
        let pipeline = |params: &str, items: &str, item_param: &str| {
            format!(
                "apiVersion: weft.dev/v1alpha1
kind: Pipeline
metadata: {{name: p}}
spec:
  params: {{{params}}}
  components:
    c:
      source: c.wasm
      inputs: {{params: {{x: {{type: int}}}}}}
  tasks:
    t:
      component: c
      parallelFor: {{items: {items}}}
      params: {{x: {{loopItem: {item_param}}}}}
"
            )
        };
        let e = one_error(&pipeline(
            "xs: {type: json, default: 3}",
            "{param: xs}",
            ".",
        ));
        assert!(
            e.message
                .contains("default of parameter `xs` is 3, not a list"),
            "{e}"
        );
        let e = one_error(&pipeline("", "{value: [{a: 1}, {b: 2}]}", "a"));
        assert!(
            e.message.contains("item 1") && e.message.contains("no field `a`"),
            "{e}"
        );
        let e = one_error(&pipeline(
            "xs: {type: json, default: [{a: 1}, 2]}",
            "{param: xs}",
            "a",
        ));
        assert!(
            e.message.contains("item 1") && e.message.contains("no field `a`"),
            "{e}"
        );
        check(&pipeline(
            "xs: {type: json, default: [{a: 1}]}",
            "{param: xs}",
            "a",
        ))
        .unwrap();
        check(&pipeline("", "{value: [1, 2]}", ".")).unwrap();
    }

    #[test]
    fn an_unknown_yaml_tag_is_an_error() {
        let text = "apiVersion: weft.dev/v1alpha1\nkind: !custom Pipeline\nmetadata: {name: p}\nspec: {components: {}, tasks: {}}\n";
        let Err(e) = crate::Document::<Pipeline>::parse("p.yaml", text) else {
            panic!("a tag the spec does not define was accepted");
        };
        assert_eq!(e.line, 2, "{e}");
        assert!(
            e.message.contains("custom") || e.message.contains("tag"),
            "{e}"
        );
    }

    #[test]
    fn a_cycle_is_named_and_located() {
        let text = GOOD.replace(
            "      artifacts: {data: {artifact: data}}",
            "      artifacts: {data: {artifact: data}}\n      after: [publish]",
        );
        let e = one_error(&text);
        // The whole loop, named (the `||` that used to sit here let a fragment pass).
        assert!(e.message.contains("cycle"), "{e}");
        assert!(
            // publish reads prep's output directly, and prep now runs after publish.
            ["publish -> prep -> publish", "prep -> publish -> prep"]
                .iter()
                .any(|cycle| e.message.contains(cycle)),
            "{e}"
        );
        assert!(e.line > 1, "{e}");
    }

    #[test]
    fn a_type_mismatch_names_producer_and_consumer() {
        let text = GOOD.replace(
            "params: {rate: {param: threshold}}",
            "params: {rate: {task: prep, output: rows}}",
        );
        // int widens to float: fine.
        check(&text).unwrap();
        let text = GOOD
            .replace(
                "artifacts: {train: {task: prep, output: clean}}\n    publish",
                "artifacts: {train: {artifact: data}}\n    publish",
            )
            .replace(
                "data: {type: Dataset, path: data.csv}",
                "data: {type: Model, path: data.csv}",
            );
        let errs = check(&text).unwrap_err();
        assert!(
            errs.iter().any(|e| e
                .message
                .contains("expects Dataset, but pipeline artifact `data` is Model")),
            "{errs:#?}"
        );
        let text = GOOD.replace(
            "params: {rate: {value: 1}}",
            "params: {rate: {value: fast}}",
        );
        let e = one_error(&text);
        assert!(
            e.message
                .contains("expects float, but the literal \"fast\" is string"),
            "{e}"
        );
        assert_eq!(e.line, 36, "{e}");
    }

    #[test]
    fn missing_and_unknown_inputs_and_tasks_are_reported() {
        let e = one_error(&GOOD.replace("      params: {rate: {param: threshold}}\n", ""));
        assert!(e.message.contains("missing input parameter `rate`"), "{e}");
        let e = one_error(&GOOD.replace("after: [train]", "after: [trian]"));
        assert!(
            e.message.contains("task `trian`, which does not exist"),
            "{e}"
        );
        assert_eq!(e.line, 38);
        let e = one_error(&GOOD.replace("{param: threshold}", "{param: treshold}"));
        assert!(e.message.contains("`treshold` is not declared"), "{e}");
        let e = one_error(&GOOD.replace("output: accuracy}", "output: acc}"));
        assert!(e.message.contains("no output parameter `acc`"), "{e}");
        let e = one_error(&GOOD.replace("op: \">=\"", "op: \"~\""));
        assert_eq!(e.line, 39, "{e}");
    }
}
