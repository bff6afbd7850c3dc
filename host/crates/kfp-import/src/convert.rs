//! KFP's nested DAGs → Weft's one flat DAG.
//!
//! KFP compiles `dsl.If`, `dsl.ParallelFor`, `dsl.ExitHandler` and sub-pipelines into DAG
//! components of their own, whose tasks see the enclosing values as the group's inputs
//! (`pipelinechannel--...`). Weft has one DAG per pipeline with `when` and `parallelFor` on each
//! task, so every executor task becomes one Weft task: its inputs are followed out through the
//! groups to a pipeline parameter, a literal, an upstream task's output or the loop item; the
//! conditions of the groups around it become its `when` (all of them), the loop around it its
//! `parallelFor`, and the groups' `dependentTasks` its `after`.
//!
//! Pass one gives every executor task its Weft name (KFP's task names are unique in a pipeline;
//! a sub-pipeline used twice gets its second copy's names prefixed) and notes the loop each lies
//! in; pass two converts, with a [`Scope`] per group.

use crate::executor::{self, PythonFunction};
use crate::ir;
use crate::{cel, PythonComponent, Reason, Refusal};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use weft_spec::pipeline::*;

/// How deep groups may nest before the IR is taken for a cycle.
const MAX_DEPTH: usize = 64;

pub(crate) struct Converter<'a> {
    ir: &'a ir::PipelineSpec,
    pub refusals: Vec<Refusal>,
    pub notes: Vec<String>,
    dags: Vec<Dag<'a>>,
    taken: BTreeSet<String>,
    /// A task's innermost enclosing loop (the index of its DAG).
    loop_of: BTreeMap<String, usize>,
    pub tasks: BTreeMap<String, TaskSpec>,
    pub exit_handler: Option<TaskSpec>,
    pub components: BTreeMap<String, ComponentDecl>,
    pub projects: Vec<PythonComponent>,
    /// IR component name → Weft component name (None: refused).
    converted: BTreeMap<String, Option<String>>,
}

/// One use of a DAG component: the root, a group, or a sub-pipeline.
struct Dag<'a> {
    /// Where its component is in the IR: `root` or `components.NAME`.
    path: String,
    dag: &'a ir::DagSpec,
    nodes: BTreeMap<String, Node>,
}

#[derive(Clone)]
enum Node {
    /// An executor task, by its Weft name.
    Task(String),
    /// A group: the index of its DAG.
    Group(usize),
}

/// What the tasks of one DAG see.
#[derive(Clone)]
struct Scope {
    dag: usize,
    /// The DAG's input parameters (None: refused already).
    params: BTreeMap<String, Option<ParamSource>>,
    artifacts: BTreeMap<String, Option<ArtifactSource>>,
    when: Vec<Condition>,
    looping: Option<Loop>,
    after: BTreeSet<String>,
}

#[derive(Clone)]
struct Loop {
    dag: usize,
    items: ParamSource,
    parallelism: Option<u32>,
}

fn unsupported(what: impl Into<String>, why: impl Into<String>) -> Reason {
    Reason::Unsupported {
        what: what.into(),
        why: why.into(),
    }
}

impl<'a> Converter<'a> {
    pub fn new(ir: &'a ir::PipelineSpec) -> Self {
        Converter {
            ir,
            refusals: Vec::new(),
            notes: Vec::new(),
            dags: Vec::new(),
            taken: BTreeSet::new(),
            loop_of: BTreeMap::new(),
            tasks: BTreeMap::new(),
            exit_handler: None,
            components: BTreeMap::new(),
            projects: Vec::new(),
            converted: BTreeMap::new(),
        }
    }

    fn refuse(&mut self, path: impl Into<String>, reason: Reason) {
        self.refusals.push(Refusal {
            path: path.into(),
            reason,
        });
    }

    /// Refuses the fields of a message the importer does not know.
    fn unknown(&mut self, path: &str, other: &ir::Unknown) {
        for field in other.keys() {
            self.refuse(
                format!("{path}.{field}"),
                unsupported(
                    format!("the IR field `{field}`"),
                    "the importer does not know what it means for the pipeline",
                ),
            );
        }
    }

    /// Converts the pipeline: its parameters and input artifacts, every task, its outputs.
    pub fn run(&mut self) -> PipelineSpec {
        let ir = self.ir;
        self.unknown("", &ir.other);
        self.unknown("root", &ir.root.other);
        let Some(root_dag) = &ir.root.dag else {
            self.refuse(
                "root.dag",
                unsupported("a pipeline without a DAG", "there are no tasks"),
            );
            return PipelineSpec::default();
        };
        let root = self.instantiate("root".into(), root_dag, None, None, 0);
        let mut params = BTreeMap::new();
        let mut scope = Scope {
            dag: root,
            params: BTreeMap::new(),
            artifacts: BTreeMap::new(),
            when: Vec::new(),
            looping: None,
            after: BTreeSet::new(),
        };
        for (name, p) in &ir.root.input_definitions.parameters {
            let at = format!("root.inputDefinitions.parameters.{name}");
            if let Some(decl) = self.param_decl(&at, p) {
                params.insert(name.clone(), decl);
            }
            let src = ParamSource {
                param: Some(name.clone()),
                ..Default::default()
            };
            scope.params.insert(name.clone(), Some(src));
        }
        let mut artifacts = BTreeMap::new();
        for (name, a) in &ir.root.input_definitions.artifacts {
            let at = format!("root.inputDefinitions.artifacts.{name}");
            let ty = self.artifact_type(&at, a, false);
            if let Some(ty) = ty {
                artifacts.insert(name.clone(), InputArtifactDecl { ty, path: None });
            }
            let src = ArtifactSource {
                artifact: Some(name.clone()),
                ..Default::default()
            };
            scope.artifacts.insert(name.clone(), Some(src));
        }
        let exit = self.exit_task(root);
        self.convert_dag(&scope, exit.as_deref());
        let outputs = self.outputs(root);
        PipelineSpec {
            description: ir.pipeline_info.description.clone(),
            params,
            artifacts,
            components: std::mem::take(&mut self.components),
            tasks: std::mem::take(&mut self.tasks),
            exit_handler: self.exit_handler.take().map(Box::new),
            outputs,
        }
    }

    /// Pass one: names the executor tasks under `dag` and records its groups.
    fn instantiate(
        &mut self,
        path: String,
        dag: &'a ir::DagSpec,
        prefix: Option<&str>,
        in_loop: Option<usize>,
        depth: usize,
    ) -> usize {
        let idx = self.dags.len();
        self.dags.push(Dag {
            path: path.clone(),
            dag,
            nodes: BTreeMap::new(),
        });
        for (name, task) in &dag.tasks {
            let at = format!("{path}.dag.tasks.{name}");
            let comp_name = &task.component_ref.name;
            let Some(comp) = self.ir.components.get(comp_name) else {
                self.refuse(
                    format!("{at}.componentRef.name"),
                    unsupported(
                        format!("a reference to component `{comp_name}`"),
                        "the IR's `components` does not define it",
                    ),
                );
                continue;
            };
            let node = match &comp.dag {
                Some(_) if depth >= MAX_DEPTH => {
                    self.refuse(
                        at,
                        unsupported(
                            "groups nested this deep",
                            "the IR's DAG components refer to each other in a cycle",
                        ),
                    );
                    continue;
                }
                Some(child) => {
                    let is_loop = task.parameter_iterator.is_some();
                    let next = self.dags.len();
                    Node::Group(self.instantiate(
                        format!("components.{comp_name}"),
                        child,
                        Some(name),
                        if is_loop { Some(next) } else { in_loop },
                        depth + 1,
                    ))
                }
                None => {
                    let flat = self.name_task(name, prefix);
                    if let Some(l) = in_loop {
                        self.loop_of.insert(flat.clone(), l);
                    }
                    Node::Task(flat)
                }
            };
            self.dags[idx].nodes.insert(name.clone(), node);
        }
        idx
    }

    /// A Weft task name for KFP task `name`: itself, or prefixed by its group when taken.
    fn name_task(&mut self, name: &str, prefix: Option<&str>) -> String {
        let base = crate::sanitize(name, 63);
        let mut candidates = vec![base.clone()];
        if let Some(p) = prefix {
            candidates.push(crate::sanitize(&format!("{p}-{name}"), 63));
        }
        let name = candidates
            .into_iter()
            .find(|c| !self.taken.contains(c))
            .unwrap_or_else(|| {
                (2..)
                    .map(|i| crate::sanitize(&format!("{base}-{i}"), 63))
                    .find(|c| !self.taken.contains(c))
                    .unwrap()
            });
        self.taken.insert(name.clone());
        name
    }

    /// Every executor task under node `name` of DAG `dag`.
    fn tasks_of(&self, dag: usize, name: &str) -> Option<Vec<String>> {
        Some(match self.dags[dag].nodes.get(name)? {
            Node::Task(t) => vec![t.clone()],
            Node::Group(g) => {
                let names: Vec<String> = self.dags[*g].nodes.keys().cloned().collect();
                names
                    .iter()
                    .filter_map(|n| self.tasks_of(*g, n))
                    .flatten()
                    .collect()
            }
        })
    }

    /// The root task that is the pipeline's exit handler (`dsl.ExitHandler`), when it is one
    /// Weft can hold: the handler's group covers every other task.
    fn exit_task(&self, root: usize) -> Option<String> {
        let dag = self.dags[root].dag;
        let exits: Vec<&String> = dag
            .tasks
            .iter()
            .filter(|(_, t)| {
                t.trigger_policy
                    .as_ref()
                    .and_then(|p| p.strategy.as_deref())
                    .is_some_and(|s| s == "ALL_UPSTREAM_TASKS_COMPLETED")
            })
            .map(|(n, _)| n)
            .collect();
        let first = exits.first()?;
        let task = &dag.tasks[*first];
        let group = match task.dependent_tasks.as_slice() {
            [g] => dag.tasks.get(g).map(|t| (g, t)),
            _ => None,
        };
        let covers_all = exits.len() == 1
            && dag.tasks.len() == 2
            && group.is_some_and(|(g, t)| {
                t.component_ref.name.starts_with("comp-exit-handler")
                    && matches!(self.dags[root].nodes.get(g), Some(Node::Group(_)))
            });
        covers_all.then(|| (*first).clone())
    }

    /// Pass two over one DAG.
    fn convert_dag(&mut self, scope: &Scope, exit: Option<&str>) {
        let dag = self.dags[scope.dag].dag;
        let path = self.dags[scope.dag].path.clone();
        self.unknown(&format!("{path}.dag"), &dag.other);
        for (name, task) in &dag.tasks {
            let at = format!("{path}.dag.tasks.{name}");
            self.unknown(&at, &task.other);
            match self.dags[scope.dag].nodes.get(name).cloned() {
                None => {}
                Some(Node::Group(g)) => self.convert_group(scope, &at, task, g),
                Some(Node::Task(flat)) => {
                    let is_exit = exit == Some(name.as_str());
                    if let Some(mut spec) = self.convert_task(scope, &at, &flat, task, is_exit) {
                        if is_exit {
                            spec.after.clear();
                            self.exit_handler = Some(spec);
                        } else {
                            self.tasks.insert(flat, spec);
                        }
                    }
                }
            }
        }
    }

    /// A group task: its inputs, condition, loop and dependencies make the scope of its DAG.
    fn convert_group(&mut self, parent: &Scope, at: &str, task: &'a ir::TaskSpec, g: usize) {
        let comp = &self.ir.components[&task.component_ref.name];
        let comp_path = self.dags[g].path.clone();
        self.unknown(&comp_path, &comp.other);
        let mut scope = Scope {
            dag: g,
            params: BTreeMap::new(),
            artifacts: BTreeMap::new(),
            when: parent.when.clone(),
            looping: parent.looping.clone(),
            after: parent.after.clone(),
        };
        self.unknown(&format!("{at}.inputs"), &task.inputs.other);
        for (name, input) in &task.inputs.parameters {
            let ty = comp
                .input_definitions
                .parameters
                .get(name)
                .and_then(|p| param_type(p.parameter_type));
            let src =
                self.param_input(parent, &format!("{at}.inputs.parameters.{name}"), input, ty);
            scope.params.insert(name.clone(), src);
        }
        for (name, input) in &task.inputs.artifacts {
            let src = self.artifact_input(parent, &format!("{at}.inputs.artifacts.{name}"), input);
            scope.artifacts.insert(name.clone(), src);
        }
        for (i, d) in task.dependent_tasks.iter().enumerate() {
            match self.tasks_of(parent.dag, d) {
                Some(tasks) => scope.after.extend(tasks),
                None => self.refuse(
                    format!("{at}.dependentTasks.{i}"),
                    unsupported(format!("a dependency on `{d}`"), "no such task in this DAG"),
                ),
            }
        }
        if task.artifact_iterator.is_some() {
            self.refuse(
                format!("{at}.artifactIterator"),
                unsupported(
                    "a ParallelFor over artifacts",
                    "Weft's parallelFor iterates over a list of parameter values",
                ),
            );
        }
        if let Some(it) = &task.parameter_iterator {
            self.enter_loop(&mut scope, parent, at, task, it);
        } else if task.iterator_policy.is_some() {
            self.refuse(
                format!("{at}.iteratorPolicy"),
                unsupported("an iterator policy without an iterator", "there is no loop"),
            );
        }
        if let Some(policy) = &task.trigger_policy {
            self.unknown(&format!("{at}.triggerPolicy"), &policy.other);
            if let Some(text) = &policy.condition {
                if let Some(c) =
                    self.condition(&scope, &format!("{at}.triggerPolicy.condition"), text)
                {
                    scope.when.push(c);
                }
            }
            match policy.strategy.as_deref() {
                None | Some("ALL_UPSTREAM_TASKS_SUCCEEDED") => {}
                Some(other) => self.refuse(
                    format!("{at}.triggerPolicy.strategy"),
                    unsupported(
                        format!("the trigger strategy {other} on a group"),
                        "Weft runs a task once its upstream tasks succeeded",
                    ),
                ),
            }
        }
        if task.retry_policy.is_some() {
            self.refuse(
                format!("{at}.retryPolicy"),
                unsupported(
                    "a retry policy on a group",
                    "Weft retries tasks, not groups",
                ),
            );
        }
        self.convert_dag(&scope, None);
    }

    fn enter_loop(
        &mut self,
        scope: &mut Scope,
        parent: &Scope,
        at: &str,
        task: &ir::TaskSpec,
        it: &ir::ParameterIterator,
    ) {
        if parent.looping.is_some() {
            self.refuse(
                format!("{at}.parameterIterator"),
                unsupported(
                    "a ParallelFor inside a ParallelFor",
                    "Weft's parallelFor fans one task out over one list",
                ),
            );
            scope.params.insert(it.item_input.clone(), None);
            return;
        }
        let items = match (&it.items.raw, &it.items.input_parameter) {
            (Some(raw), None) => match serde_json::from_str::<Value>(raw) {
                Ok(list @ Value::Array(_)) => Some(ParamSource {
                    value: Some(list),
                    ..Default::default()
                }),
                _ => {
                    self.refuse(
                        format!("{at}.parameterIterator.items.raw"),
                        unsupported(format!("the loop items {raw}"), "they are not a JSON list"),
                    );
                    None
                }
            },
            (None, Some(input)) => match scope.params.get(input).cloned().flatten() {
                Some(src) if src.loop_item.is_none() => Some(src),
                Some(_) => {
                    self.refuse(
                        format!("{at}.parameterIterator.items.inputParameter"),
                        unsupported(
                            "a ParallelFor over a field of an outer loop's item",
                            "Weft's parallelFor fans one task out over one list",
                        ),
                    );
                    None
                }
                None => {
                    if !scope.params.contains_key(input) {
                        self.refuse(
                            format!("{at}.parameterIterator.items.inputParameter"),
                            unsupported(
                                format!("loop items from `{input}`"),
                                "the group task has no such input",
                            ),
                        );
                    }
                    None
                }
            },
            _ => {
                self.refuse(
                    format!("{at}.parameterIterator.items"),
                    unsupported(
                        "loop items that are not one of `raw` or `inputParameter`",
                        "there is no list to iterate over",
                    ),
                );
                None
            }
        };
        scope.params.insert(
            it.item_input.clone(),
            Some(ParamSource {
                loop_item: Some(".".into()),
                ..Default::default()
            }),
        );
        let parallelism = task
            .iterator_policy
            .as_ref()
            .and_then(|p| p.parallelism_limit)
            .filter(|n| *n > 0);
        if let Some(items) = items {
            scope.looping = Some(Loop {
                dag: scope.dag,
                items,
                parallelism,
            });
        }
    }

    /// A `triggerPolicy.condition` as a Weft condition over the group's inputs.
    fn condition(&mut self, scope: &Scope, at: &str, text: &str) -> Option<Condition> {
        let expr = match cel::parse(text) {
            Ok(e) => e,
            Err(why) => {
                self.refuse(
                    at,
                    Reason::Condition {
                        condition: text.into(),
                        why,
                    },
                );
                return None;
            }
        };
        let mut problem = None;
        let c = self.condition_of(scope, &expr, &mut problem);
        if let Some(why) = problem {
            self.refuse(
                at,
                Reason::Condition {
                    condition: text.into(),
                    why,
                },
            );
            return None;
        }
        c
    }

    fn condition_of(
        &self,
        scope: &Scope,
        e: &cel::Expr,
        problem: &mut Option<String>,
    ) -> Option<Condition> {
        let all = |es: &[cel::Expr], problem: &mut Option<String>| -> Option<Vec<Condition>> {
            es.iter()
                .map(|e| self.condition_of(scope, e, problem))
                .collect()
        };
        Some(match e {
            cel::Expr::And(es) => Condition {
                all: Some(all(es, problem)?),
                ..Default::default()
            },
            cel::Expr::Or(es) => Condition {
                any: Some(all(es, problem)?),
                ..Default::default()
            },
            cel::Expr::Not(inner) => Condition {
                not: Some(Box::new(self.condition_of(scope, inner, problem)?)),
                ..Default::default()
            },
            cel::Expr::Cmp(l, op, r) => {
                let (input, op, value) = match (l, r) {
                    (cel::Operand::Input(i), cel::Operand::Literal(v)) => (i, *op, v),
                    (cel::Operand::Literal(v), cel::Operand::Input(i)) => (i, flip(*op), v),
                    (cel::Operand::Input(_), cel::Operand::Input(_)) => {
                        *problem = Some("it compares two values that are known only at run time; a Weft condition compares one with a literal".into());
                        return None;
                    }
                    _ => {
                        *problem = Some("it compares two literals".into());
                        return None;
                    }
                };
                let src = match scope.params.get(input) {
                    Some(Some(src)) => src.clone(),
                    Some(None) => return None,
                    None => {
                        *problem = Some(format!("`{input}` is not an input of the group"));
                        return None;
                    }
                };
                if src.loop_item.is_some() {
                    *problem = Some("it depends on the loop item; a Weft `when` holds for every iteration of a parallelFor or for none".into());
                    return None;
                }
                Condition {
                    input: Some(src),
                    op: Some(op),
                    value: Some(value.clone()),
                    ..Default::default()
                }
            }
        })
    }

    /// Where a parameter input comes from, as a Weft source (None: refused).
    fn param_input(
        &mut self,
        scope: &Scope,
        at: &str,
        input: &ir::ParamInput,
        ty: Option<ParamType>,
    ) -> Option<ParamSource> {
        self.unknown(at, &input.other);
        let forms = [
            input.component_input_parameter.is_some(),
            input.task_output_parameter.is_some(),
            input.runtime_value.is_some(),
            input.task_final_status.is_some(),
        ];
        if forms.iter().filter(|f| **f).count() != 1 {
            self.refuse(
                at,
                unsupported(
                    "a parameter input without exactly one source",
                    "it is not clear where its value comes from",
                ),
            );
            return None;
        }
        let src = if let Some(name) = &input.component_input_parameter {
            match scope.params.get(name) {
                Some(src) => src.clone()?,
                None => {
                    self.refuse(
                        at,
                        unsupported(
                            format!("the input `{name}`"),
                            "the enclosing DAG has no such input",
                        ),
                    );
                    return None;
                }
            }
        } else if let Some(out) = &input.task_output_parameter {
            self.output_param(scope.dag, &out.producer_task, &out.output_parameter_key, at)?
        } else if let Some(rv) = &input.runtime_value {
            self.unknown(&format!("{at}.runtimeValue"), &rv.other);
            let Some(v) = &rv.constant else {
                self.refuse(
                    at,
                    unsupported("a runtime value without a constant", "there is no value"),
                );
                return None;
            };
            let v = match ty {
                Some(ty) => match coerce(v, ty) {
                    Ok(v) => v,
                    Err(why) => {
                        self.refuse(
                            format!("{at}.runtimeValue.constant"),
                            unsupported(format!("the constant {v}"), why),
                        );
                        return None;
                    }
                },
                None => v.clone(),
            };
            ParamSource {
                value: Some(v),
                ..Default::default()
            }
        } else {
            self.refuse(
                format!("{at}.taskFinalStatus"),
                unsupported(
                    "a `dsl.PipelineTaskFinalStatus` parameter",
                    "Weft's exit handler takes the run's state and error as two string parameters (`runStatus: state|error`); the function would need to take those",
                ),
            );
            return None;
        };
        match &input.parameter_expression_selector {
            None => Some(src),
            Some(sel) => match (src.loop_item.as_deref(), item_field(sel)) {
                (Some("."), Some(field)) => Some(ParamSource {
                    loop_item: Some(field),
                    ..Default::default()
                }),
                _ => {
                    self.refuse(
                        format!("{at}.parameterExpressionSelector"),
                        unsupported(
                            format!("the selector `{sel}`"),
                            "Weft selects a field of a loop item (`loopItem: FIELD`), nothing else",
                        ),
                    );
                    None
                }
            },
        }
    }

    /// A producer's output parameter, followed through groups to the executor task that makes it.
    fn output_param(
        &mut self,
        dag: usize,
        producer: &str,
        key: &str,
        at: &str,
    ) -> Option<ParamSource> {
        match self.dags[dag].nodes.get(producer).cloned() {
            None => {
                self.refuse(
                    at,
                    unsupported(
                        format!("an output of `{producer}`"),
                        "no such task in this DAG",
                    ),
                );
                None
            }
            Some(Node::Task(t)) => Some(ParamSource {
                task: Some(t),
                output: Some(key.into()),
                ..Default::default()
            }),
            Some(Node::Group(g)) => {
                let out = self.dags[g].dag.outputs.parameters.get(key);
                match out {
                    Some(ir::DagOutputParam {
                        value_from_parameter: Some(from),
                        value_from_oneof: None,
                        ..
                    }) => {
                        self.output_param(g, &from.producer_subtask, &from.output_parameter_key, at)
                    }
                    Some(o) if o.value_from_oneof.is_some() => {
                        self.refuse(
                            at,
                            unsupported(
                                "`dsl.OneOf`",
                                "Weft has no output chosen among branches; give each branch's task its own consumer",
                            ),
                        );
                        None
                    }
                    _ => {
                        self.refuse(
                            at,
                            unsupported(
                                format!("the output `{key}` of group `{producer}`"),
                                "the group's DAG does not say which task produces it",
                            ),
                        );
                        None
                    }
                }
            }
        }
    }

    fn artifact_input(
        &mut self,
        scope: &Scope,
        at: &str,
        input: &ir::ArtifactInput,
    ) -> Option<ArtifactSource> {
        self.unknown(at, &input.other);
        match (&input.component_input_artifact, &input.task_output_artifact) {
            (Some(name), None) => match scope.artifacts.get(name) {
                Some(src) => src.clone(),
                None => {
                    self.refuse(
                        at,
                        unsupported(
                            format!("the input artifact `{name}`"),
                            "the enclosing DAG has no such input",
                        ),
                    );
                    None
                }
            },
            (None, Some(out)) => {
                self.output_artifact(scope.dag, &out.producer_task, &out.output_artifact_key, at)
            }
            _ => {
                self.refuse(
                    at,
                    unsupported(
                        "an artifact input without exactly one source",
                        "it is not clear where it comes from",
                    ),
                );
                None
            }
        }
    }

    fn output_artifact(
        &mut self,
        dag: usize,
        producer: &str,
        key: &str,
        at: &str,
    ) -> Option<ArtifactSource> {
        match self.dags[dag].nodes.get(producer).cloned() {
            None => {
                self.refuse(
                    at,
                    unsupported(
                        format!("an artifact of `{producer}`"),
                        "no such task in this DAG",
                    ),
                );
                None
            }
            Some(Node::Task(t)) => {
                let comp =
                    &self.ir.components[&self.dags[dag].dag.tasks[producer].component_ref.name];
                let title = comp
                    .output_definitions
                    .artifacts
                    .get(key)
                    .and_then(|a| a.artifact_type.schema_title.as_deref());
                if matches!(title, Some("system.Metrics")) {
                    self.refuse(
                        at,
                        unsupported(
                            format!("consuming the metrics `{key}` of `{producer}`"),
                            "Weft records a step's metrics with its run (`wasm-run runs show`), not as an artifact",
                        ),
                    );
                    return None;
                }
                Some(ArtifactSource {
                    task: Some(t),
                    output: Some(key.into()),
                    ..Default::default()
                })
            }
            Some(Node::Group(g)) => {
                let sel = self.dags[g]
                    .dag
                    .outputs
                    .artifacts
                    .get(key)
                    .map(|a| a.artifact_selectors.as_slice());
                match sel {
                    Some([one]) => {
                        self.output_artifact(g, &one.producer_subtask, &one.output_artifact_key, at)
                    }
                    Some([_, _, ..]) => {
                        self.refuse(
                            at,
                            unsupported(
                                "`dsl.OneOf` of artifacts",
                                "Weft has no output chosen among branches",
                            ),
                        );
                        None
                    }
                    _ => {
                        self.refuse(
                            at,
                            unsupported(
                                format!("the artifact `{key}` of group `{producer}`"),
                                "the group's DAG does not say which task produces it",
                            ),
                        );
                        None
                    }
                }
            }
        }
    }

    /// An executor task.
    fn convert_task(
        &mut self,
        scope: &Scope,
        at: &str,
        flat: &str,
        task: &'a ir::TaskSpec,
        is_exit: bool,
    ) -> Option<TaskSpec> {
        let comp_name = &task.component_ref.name;
        let comp = &self.ir.components[comp_name];
        let component = self.component(comp_name, comp);
        let mut spec = TaskSpec {
            component: component.clone().unwrap_or_default(),
            ..Default::default()
        };
        self.unknown(&format!("{at}.inputs"), &task.inputs.other);
        for (name, input) in &task.inputs.parameters {
            let ty = comp
                .input_definitions
                .parameters
                .get(name)
                .and_then(|p| param_type(p.parameter_type));
            let p = format!("{at}.inputs.parameters.{name}");
            if let Some(src) = self.param_input(scope, &p, input, ty) {
                spec.params.insert(name.clone(), src);
            }
        }
        for (name, input) in &task.inputs.artifacts {
            let p = format!("{at}.inputs.artifacts.{name}");
            if let Some(src) = self.artifact_input(scope, &p, input) {
                spec.artifacts.insert(name.clone(), src);
            }
        }
        for (name, a) in &comp.input_definitions.artifacts {
            if !task.inputs.artifacts.contains_key(name) && a.is_optional {
                self.refuse(
                    format!("{at}.inputs.artifacts"),
                    unsupported(
                        format!("leaving the optional input artifact `{name}` out"),
                        "a Weft step is given every artifact it declares",
                    ),
                );
            }
        }
        let mut after = scope.after.clone();
        for (i, d) in task.dependent_tasks.iter().enumerate() {
            match self.tasks_of(scope.dag, d) {
                Some(tasks) => after.extend(tasks),
                None => self.refuse(
                    format!("{at}.dependentTasks.{i}"),
                    unsupported(format!("a dependency on `{d}`"), "no such task in this DAG"),
                ),
            }
        }
        if !scope.when.is_empty() {
            spec.when = Some(if scope.when.len() == 1 {
                scope.when[0].clone()
            } else {
                Condition {
                    all: Some(scope.when.clone()),
                    ..Default::default()
                }
            });
        }
        if let Some(l) = &scope.looping {
            spec.parallel_for = Some(ParallelFor {
                items: l.items.clone(),
                parallelism: l.parallelism,
                pods: None,
            });
        }
        // Data references and conditions already order the task after their producers.
        let implied = referenced_tasks(&spec);
        if let Some(l) = &scope.looping {
            for t in implied.iter().chain(&after) {
                if self.loop_of.get(t) == Some(&l.dag) && t != flat {
                    self.refuse(
                        at,
                        unsupported(
                            format!("a ParallelFor body whose task `{flat}` waits for `{t}` in the same iteration"),
                            "a Weft parallelFor fans one task out; a chain of tasks per item does not convert",
                        ),
                    );
                }
            }
        }
        after.remove(flat);
        spec.after = after.into_iter().filter(|t| !implied.contains(t)).collect();
        if let Some(policy) = &task.trigger_policy {
            self.unknown(&format!("{at}.triggerPolicy"), &policy.other);
            if policy.condition.is_some() {
                self.refuse(
                    format!("{at}.triggerPolicy.condition"),
                    unsupported(
                        "a condition on an executor task",
                        "KFP puts conditions on groups; this IR was not written by the KFP compiler",
                    ),
                );
            }
            match policy.strategy.as_deref() {
                None | Some("ALL_UPSTREAM_TASKS_SUCCEEDED") => {}
                Some("ALL_UPSTREAM_TASKS_COMPLETED") if is_exit => {}
                Some("ALL_UPSTREAM_TASKS_COMPLETED") => self.refuse(
                    format!("{at}.triggerPolicy.strategy"),
                    unsupported(
                        "an exit task (ALL_UPSTREAM_TASKS_COMPLETED) that does not wrap the whole pipeline",
                        "Weft's exit handler runs once, after every other task: one `dsl.ExitHandler` around all of the pipeline's tasks converts",
                    ),
                ),
                Some(s) => self.refuse(
                    format!("{at}.triggerPolicy.strategy"),
                    unsupported(
                        format!("the trigger strategy {s}"),
                        "Weft runs a task once its upstream tasks succeeded",
                    ),
                ),
            }
        }
        if let Some(r) = &task.retry_policy {
            spec.retry = self.retry(&format!("{at}.retryPolicy"), r);
        }
        if let Some(c) = &task.caching_options {
            if !c.enable_cache {
                spec.cache = Some(false);
            }
            if c.cache_key.as_deref().is_some_and(|k| !k.is_empty()) {
                self.notes.push(format!(
                    "{at}.cachingOptions.cacheKey: ignored; Weft keys its cache by the component's digest and the task's inputs"
                ));
            }
        }
        self.container_settings(comp, &mut spec);
        component.map(|_| spec)
    }

    /// A task's environment variables and resources, from its executor's container.
    fn container_settings(&self, comp: &ir::ComponentSpec, spec: &mut TaskSpec) {
        let Some(c) = comp
            .executor_label
            .as_ref()
            .and_then(|l| self.ir.deployment_spec.executors.get(l))
            .and_then(|e| e.container.as_ref())
        else {
            return;
        };
        for e in &c.env {
            spec.env.insert(e.name.clone(), e.value.clone());
        }
        if let Some(r) = &c.resources {
            let cpu = r
                .resource_cpu_limit
                .clone()
                .or(r.resource_cpu_request.clone())
                .or(r.cpu_limit.or(r.cpu_request).map(|c| format!("{c}")));
            let memory = r
                .resource_memory_limit
                .clone()
                .or(r.resource_memory_request.clone())
                .or(r.memory_limit.or(r.memory_request).map(|m| format!("{m}G")));
            if cpu.is_some() || memory.is_some() {
                spec.resources = Some(TaskResources {
                    cpu,
                    memory,
                    ..Default::default()
                });
            }
        }
    }

    fn retry(&mut self, at: &str, r: &ir::RetryPolicy) -> Option<RetryPolicy> {
        self.unknown(at, &r.other);
        let limit = r.max_retry_count.unwrap_or(0);
        if limit == 0 {
            return None;
        }
        let backoff = match r.backoff_duration.as_deref().map(duration) {
            None => None,
            Some(Some(d)) => Some(d),
            Some(None) => {
                self.refuse(
                    format!("{at}.backoffDuration"),
                    unsupported(
                        format!(
                            "the duration {:?}",
                            r.backoff_duration.as_deref().unwrap_or("")
                        ),
                        "it is not a protobuf duration such as `30s`",
                    ),
                );
                None
            }
        };
        if let Some(max) = r.backoff_max_duration.as_deref() {
            if max != "3600s" {
                self.notes.push(format!(
                    "{at}.backoffMaxDuration: {max} ignored; Weft's backoff has no cap"
                ));
            }
        }
        Some(RetryPolicy {
            limit,
            backoff: Some(backoff.unwrap_or_else(|| "0s".into())),
            factor: r.backoff_factor.filter(|f| *f >= 1.0),
        })
    }

    /// The Weft component for an executor component: read once, shared by identical ones.
    fn component(&mut self, comp_name: &str, comp: &ir::ComponentSpec) -> Option<String> {
        if let Some(done) = self.converted.get(comp_name) {
            return done.clone();
        }
        let at = format!("components.{comp_name}");
        self.unknown(&at, &comp.other);
        let function = match &comp.executor_label {
            None => {
                self.refuse(
                    &at,
                    unsupported(
                        "a component with neither a DAG nor an executor",
                        "there is nothing to run",
                    ),
                );
                None
            }
            Some(label) => match self.ir.deployment_spec.executors.get(label) {
                None => {
                    self.refuse(
                        format!("{at}.executorLabel"),
                        unsupported(
                            format!("the executor `{label}`"),
                            "deploymentSpec.executors does not define it",
                        ),
                    );
                    None
                }
                Some(exec) => match executor::read(label, exec) {
                    Ok(f) => Some((label.clone(), f)),
                    Err(refusals) => {
                        self.refusals.extend(refusals);
                        None
                    }
                },
            },
        };
        let decl = self.interface(&at, comp);
        let name = match (function, decl) {
            (Some((label, function)), Some((inputs, outputs))) => {
                Some(self.add_component(&label, function, inputs, outputs))
            }
            _ => None,
        };
        self.converted.insert(comp_name.into(), name.clone());
        name
    }

    fn add_component(
        &mut self,
        label: &str,
        function: PythonFunction,
        inputs: Interface,
        outputs: OutputInterface,
    ) -> String {
        for p in &self.projects {
            let same = p.function.source == function.source
                && p.function.function == function.function
                && p.function.packages == function.packages
                && self.components[&p.name].inputs == inputs
                && self.components[&p.name].outputs == outputs;
            if same {
                return p.name.clone();
            }
        }
        if !function.image.starts_with("python:") {
            self.notes.push(format!(
                "deploymentSpec.executors.{label}.container.image: `{}` ignored; the component runs on componentize-py's CPython in WebAssembly, with only the packages it bundles",
                function.image
            ));
        }
        // `exec-say-2` is the second use of `say`: named `say` when that is free.
        let label_name = label.strip_prefix("exec-").unwrap_or(label);
        let unnumbered = label_name
            .rsplit_once('-')
            .filter(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .map_or(label_name, |(base, _)| base);
        let base = crate::sanitize(unnumbered, 60);
        let name = std::iter::once(base.clone())
            .chain((2..).map(|i| format!("{base}-{i}")))
            .find(|n| !self.components.contains_key(n))
            .unwrap();
        let project = PythonComponent {
            name: name.clone(),
            executor: label.into(),
            function,
        };
        self.components.insert(
            name.clone(),
            ComponentDecl {
                source: project.wasm_path(),
                inputs,
                outputs,
            },
        );
        self.projects.push(project);
        name
    }

    /// A component's typed interface, from its input and output definitions.
    fn interface(
        &mut self,
        at: &str,
        comp: &ir::ComponentSpec,
    ) -> Option<(Interface, OutputInterface)> {
        let before = self.refusals.len();
        let mut inputs = Interface::default();
        let mut outputs = OutputInterface::default();
        for (name, p) in &comp.input_definitions.parameters {
            let p_at = format!("{at}.inputDefinitions.parameters.{name}");
            if let Some(decl) = self.param_decl(&p_at, p) {
                inputs.params.insert(name.clone(), decl);
            }
        }
        for (name, a) in &comp.input_definitions.artifacts {
            let a_at = format!("{at}.inputDefinitions.artifacts.{name}");
            if let Some(ty) = self.artifact_type(&a_at, a, false) {
                inputs.artifacts.insert(name.clone(), ty);
            }
        }
        for (name, p) in &comp.output_definitions.parameters {
            let p_at = format!("{at}.outputDefinitions.parameters.{name}");
            self.unknown(&p_at, &p.other);
            match param_type(p.parameter_type) {
                Some(ty) => {
                    outputs.params.insert(name.clone(), ty);
                }
                None => self.refuse(
                    format!("{p_at}.parameterType"),
                    unsupported(
                        format!("the output type {:?}", p.parameter_type),
                        "Weft has no such parameter type",
                    ),
                ),
            }
        }
        for (name, a) in &comp.output_definitions.artifacts {
            let a_at = format!("{at}.outputDefinitions.artifacts.{name}");
            if name == "Output" {
                self.refuse(
                    a_at,
                    unsupported(
                        "returning an artifact (`-> Dataset`)",
                        "a Weft step writes artifacts through its `Output[...]` arguments; its return value holds parameters",
                    ),
                );
                continue;
            }
            if let Some(ty) = self.artifact_type(&a_at, a, true) {
                // Metrics are reported to the run as the step logs them, not written out.
                if ty != ArtifactType::Metrics {
                    outputs.artifacts.insert(name.clone(), ty);
                }
            }
        }
        (self.refusals.len() == before).then_some((inputs, outputs))
    }

    fn param_decl(&mut self, at: &str, p: &ir::InputParam) -> Option<ParamDecl> {
        self.unknown(at, &p.other);
        let Some(ty) = param_type(p.parameter_type) else {
            let why = if p.parameter_type == ir::ParameterType::TaskFinalStatus {
                "Weft's exit handler takes the run's state and error as string parameters (`runStatus: state|error`)"
            } else {
                "Weft has no such parameter type"
            };
            self.refuse(
                format!("{at}.parameterType"),
                unsupported(format!("the parameter type {:?}", p.parameter_type), why),
            );
            return None;
        };
        let default = match (&p.default_value, p.is_optional) {
            (Some(v), _) => match coerce(v, ty) {
                Ok(v) => Some(v),
                Err(why) => {
                    self.refuse(
                        format!("{at}.defaultValue"),
                        unsupported(format!("the default {v}"), why),
                    );
                    return None;
                }
            },
            (None, true) => {
                self.refuse(
                    at,
                    unsupported(
                        "an optional parameter without a default (`Optional[T] = None`)",
                        "a Weft parameter always has a value of its type",
                    ),
                );
                return None;
            }
            (None, false) => None,
        };
        Some(ParamDecl {
            ty,
            default,
            description: p.description.clone(),
        })
    }

    /// An artifact's Weft type; `output` says which side it is on (metrics may only be written).
    fn artifact_type(
        &mut self,
        at: &str,
        a: &ir::ArtifactSpec,
        output: bool,
    ) -> Option<ArtifactType> {
        if a.is_artifact_list {
            self.refuse(
                at,
                unsupported(
                    "a list of artifacts (`List[Dataset]`, `dsl.Collected` artifacts)",
                    "a Weft step takes and gives single artifacts",
                ),
            );
            return None;
        }
        let title = a.artifact_type.schema_title.as_deref().unwrap_or("");
        let ty = match title {
            "system.Artifact" => ArtifactType::Artifact,
            "system.Dataset" => ArtifactType::Dataset,
            "system.Model" => ArtifactType::Model,
            "system.HTML" => ArtifactType::HTML,
            "system.Markdown" => ArtifactType::Markdown,
            "system.Metrics" if output => ArtifactType::Metrics,
            "system.Metrics" => {
                self.refuse(
                    at,
                    unsupported(
                        "metrics as an input (`Input[Metrics]`)",
                        "Weft records a step's metrics with its run, not as an artifact",
                    ),
                );
                return None;
            }
            "system.ClassificationMetrics" | "system.SlicedClassificationMetrics" => {
                self.refuse(
                    at,
                    unsupported(
                        format!("the artifact type {title}"),
                        "Weft's metrics are scalars (`log_metric`); confusion matrices and ROC curves have no counterpart",
                    ),
                );
                return None;
            }
            other => {
                self.refuse(
                    format!("{at}.artifactType"),
                    unsupported(
                        format!("the artifact type `{other}`"),
                        "Weft knows system.Artifact, Dataset, Model, Metrics, HTML and Markdown",
                    ),
                );
                return None;
            }
        };
        Some(ty)
    }

    /// The pipeline's outputs (used when it is a sub-pipeline).
    fn outputs(&mut self, root: usize) -> PipelineOutputs {
        let mut outputs = PipelineOutputs::default();
        let dag = self.dags[root].dag;
        for (name, o) in &dag.outputs.parameters {
            let at = format!("root.dag.outputs.parameters.{name}");
            let src = match o {
                ir::DagOutputParam {
                    value_from_parameter: Some(from),
                    value_from_oneof: None,
                    ..
                } => self.output_param(
                    root,
                    &from.producer_subtask,
                    &from.output_parameter_key,
                    &at,
                ),
                _ => {
                    self.refuse(
                        at,
                        unsupported(
                            "a pipeline output chosen by `dsl.OneOf`",
                            "Weft has no output chosen among branches",
                        ),
                    );
                    None
                }
            };
            if let Some(src) = src {
                outputs.params.insert(name.clone(), src);
            }
        }
        for (name, o) in &dag.outputs.artifacts {
            let at = format!("root.dag.outputs.artifacts.{name}");
            let src = match o.artifact_selectors.as_slice() {
                [one] => {
                    self.output_artifact(root, &one.producer_subtask, &one.output_artifact_key, &at)
                }
                _ => {
                    self.refuse(
                        at,
                        unsupported(
                            "a pipeline output chosen by `dsl.OneOf`",
                            "Weft has no output chosen among branches",
                        ),
                    );
                    None
                }
            };
            if let Some(src) = src {
                outputs.artifacts.insert(name.clone(), src);
            }
        }
        outputs
    }
}

fn param_type(t: ir::ParameterType) -> Option<ParamType> {
    Some(match t {
        ir::ParameterType::String => ParamType::String,
        ir::ParameterType::NumberInteger => ParamType::Int,
        ir::ParameterType::NumberDouble => ParamType::Float,
        ir::ParameterType::Boolean => ParamType::Bool,
        ir::ParameterType::List | ir::ParameterType::Struct => ParamType::Json,
        ir::ParameterType::TaskFinalStatus | ir::ParameterType::Unspecified => return None,
    })
}

/// A protobuf `Value` as a value of `ty` (KFP writes integers as doubles: `5.0`).
fn coerce(v: &Value, ty: ParamType) -> Result<Value, String> {
    let bad = || Err(format!("it is not a value of type {}", ty.name()));
    match ty {
        ParamType::Int => match v.as_f64() {
            Some(_) if v.is_i64() || v.is_u64() => Ok(v.clone()),
            Some(f) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
                Ok(Value::from(f as i64))
            }
            _ => bad(),
        },
        ParamType::Float if v.is_number() => Ok(v.clone()),
        ParamType::String if v.is_string() => Ok(v.clone()),
        ParamType::Bool if v.is_boolean() => Ok(v.clone()),
        ParamType::Json => Ok(integral(v)),
        _ => bad(),
    }
}

/// A JSON value with its integral numbers as integers: protobuf has only doubles, and KFP's
/// backend hands `[1.0, 2.0]` to a step as `[1, 2]`.
fn integral(v: &Value) -> Value {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f)
                if !n.is_i64()
                    && !n.is_u64()
                    && f.fract() == 0.0
                    && f.abs() < 9_007_199_254_740_992.0 =>
            {
                Value::from(f as i64)
            }
            _ => v.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(integral).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), integral(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The field a loop item selector picks: `parseJson(string_value)["a"]` → `a`.
fn item_field(selector: &str) -> Option<String> {
    let inner = selector
        .trim()
        .strip_prefix("parseJson(string_value)[")?
        .strip_suffix(']')?;
    let field = inner
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))?;
    (!field.is_empty() && !field.contains(['"', '\'', '.'])).then(|| field.to_string())
}

fn flip(op: Op) -> Op {
    match op {
        Op::Lt => Op::Gt,
        Op::Le => Op::Ge,
        Op::Gt => Op::Lt,
        Op::Ge => Op::Le,
        same => same,
    }
}

/// The tasks a task's data references and condition name.
fn referenced_tasks(spec: &TaskSpec) -> BTreeSet<String> {
    fn cond(c: &Condition, out: &mut BTreeSet<String>) {
        if let Some(t) = c.input.as_ref().and_then(|i| i.task.clone()) {
            out.insert(t);
        }
        for inner in c.all.iter().chain(c.any.iter()).flatten() {
            cond(inner, out);
        }
        if let Some(n) = &c.not {
            cond(n, out);
        }
    }
    let mut out = BTreeSet::new();
    out.extend(spec.params.values().filter_map(|p| p.task.clone()));
    out.extend(spec.artifacts.values().filter_map(|a| a.task.clone()));
    if let Some(pf) = &spec.parallel_for {
        out.extend(pf.items.task.clone());
    }
    if let Some(c) = &spec.when {
        cond(c, &mut out);
    }
    out
}

/// A protobuf JSON duration (`30s`, `0.5s`) as a Weft duration (`30s`, `500ms`).
fn duration(d: &str) -> Option<String> {
    let secs: f64 = d.strip_suffix('s')?.parse().ok()?;
    if !(secs.is_finite() && secs >= 0.0) {
        return None;
    }
    Some(if secs.fract() == 0.0 {
        format!("{}s", secs as u64)
    } else {
        format!("{}ms", (secs * 1000.0).round() as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_take_their_declared_type() {
        assert_eq!(
            coerce(&serde_json::json!(5.0), ParamType::Int),
            Ok(serde_json::json!(5))
        );
        assert!(coerce(&serde_json::json!(5.5), ParamType::Int).is_err());
        assert_eq!(
            coerce(&serde_json::json!(1.5), ParamType::Float),
            Ok(serde_json::json!(1.5))
        );
        assert!(coerce(&serde_json::json!("x"), ParamType::Bool).is_err());
        assert_eq!(
            coerce(&serde_json::json!([{"x": 1.0}, 2.5, "3"]), ParamType::Json),
            Ok(serde_json::json!([{"x": 1}, 2.5, "3"]))
        );
        assert_eq!(
            item_field("parseJson(string_value)[\"lr\"]").as_deref(),
            Some("lr")
        );
        assert_eq!(item_field("parseJson(string_value)[0]"), None);
        assert_eq!(duration("1s").as_deref(), Some("1s"));
        assert_eq!(duration("0.25s").as_deref(), Some("250ms"));
        assert_eq!(duration("soon"), None);
    }
}
