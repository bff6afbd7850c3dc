//! Checks a parsed pipeline before anything runs: every reference resolves, types agree between
//! producer and consumer, and the task graph has no cycle. Errors name the file, line and column.

use crate::pipeline::*;
use crate::yaml::{Document, SpecError};
use std::collections::{BTreeMap, BTreeSet};

mod experiment;
mod sources;
mod task;
mod train_job;

pub use experiment::validate_experiment;
pub use train_job::{validate_train_job, MAX_WORKERS};

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

impl Validator<'_> {
    fn err(&mut self, path: &[&str], message: impl Into<String>) {
        let e = self.doc.error_at(path, message);
        self.errors.push(e);
    }

    fn spec(&self) -> &PipelineSpec {
        &self.doc.value.spec
    }

    /// Checks the whole pipeline; returns its task graph (complete or not: the errors say).
    fn run(&mut self) -> Graph {
        self.check_header();
        let spec = self.spec().clone();
        self.check_params(&spec);
        self.check_components(&spec);
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
            self.check_exit_handler(&spec, handler);
        }
        self.check_outputs(&spec);
        let order = self.order(&upstream);
        Graph { upstream, order }
    }

    /// `apiVersion`, `kind` and the pipeline's name.
    fn check_header(&mut self) {
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
    }

    /// Each parameter's name, and its default of its type.
    fn check_params(&mut self, spec: &PipelineSpec) {
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
    }

    /// Each component's name, and its source: a .wasm path, a strict digest, or a pipeline file.
    fn check_components(&mut self, spec: &PipelineSpec) {
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
    }

    /// The exit handler is checked as a task, under a name no task may take, and refers to no
    /// task.
    fn check_exit_handler(&mut self, spec: &PipelineSpec, handler: &TaskSpec) {
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

    /// The pipeline's outputs refer to what exists.
    fn check_outputs(&mut self, spec: &PipelineSpec) {
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
