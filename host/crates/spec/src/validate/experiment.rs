//! Checks a parsed `Experiment`: the search space is well formed (bounds numbers, min < max,
//! lists where a type needs one), the objective names its metrics, the template is one thing
//! and its trial parameters name parameters. Algorithm settings are the tuner's to check (it
//! knows the algorithms); it locates its errors with [`Document::error_at`].

use super::valid_name;
use crate::experiment::*;
use crate::pipeline::API_VERSION;
use crate::yaml::{Document, SpecError};
use std::collections::BTreeSet;

/// Validates `doc`; every error found, in file order.
pub fn validate_experiment(doc: &Document<Experiment>) -> Result<(), Vec<SpecError>> {
    let mut v = Checker {
        doc,
        errors: Vec::new(),
    };
    v.header();
    v.parameters();
    v.objective();
    v.counts();
    v.template();
    if v.errors.is_empty() {
        return Ok(());
    }
    let mut errors = v.errors;
    errors.sort_by_key(|e| (e.line, e.column));
    errors.dedup();
    Err(errors)
}

struct Checker<'a> {
    doc: &'a Document<Experiment>,
    errors: Vec<SpecError>,
}

impl<'a> Checker<'a> {
    fn err(&mut self, path: &[&str], message: impl Into<String>) {
        self.errors.push(self.doc.error_at(path, message));
    }

    fn spec(&self) -> &'a ExperimentSpec {
        &self.doc.value.spec
    }

    fn header(&mut self) {
        let e: &'a Experiment = &self.doc.value;
        if e.api_version != API_VERSION {
            let msg = format!(
                "apiVersion must be `{API_VERSION}`, not `{}`",
                e.api_version
            );
            self.err(&["apiVersion"], msg);
        }
        if e.kind != "Experiment" {
            self.err(
                &["kind"],
                format!("kind must be `Experiment`, not `{}`", e.kind),
            );
        }
        if !valid_name(&e.metadata.name) {
            self.err(
                &["metadata", "name"],
                "experiment name: use letters, digits, `-` and `_` (at most 63)",
            );
        }
    }

    fn parameters(&mut self) {
        if self.spec().parameters.is_empty() {
            self.err(&["spec", "parameters"], "an experiment needs parameters");
        }
        let mut seen = BTreeSet::new();
        for (i, p) in self.spec().parameters.iter().enumerate() {
            let i = i.to_string();
            let base = ["spec", "parameters", i.as_str()];
            if !valid_name(&p.name) {
                self.err(
                    &at(&base, "name"),
                    format!(
                        "parameter name `{}`: use letters, digits, `-` and `_` (at most 63)",
                        crate::text::truncate(&p.name, 64)
                    ),
                );
            }
            if !seen.insert(p.name.as_str()) {
                self.err(
                    &at(&base, "name"),
                    format!("parameter `{}` is declared twice", p.name),
                );
            }
            let space = at(&base, "feasibleSpace");
            match p.parameter_type {
                ParameterType::Double | ParameterType::Int => self.range(&space, p),
                ParameterType::Discrete | ParameterType::Categorical => self.list(&space, p),
            }
        }
    }

    /// `double` and `int`: numeric min < max, a positive step, no list, positive bounds for a
    /// log distribution; integers for `int`.
    fn range(&mut self, space: &[&str], p: &ParameterSpec) {
        let fs = &p.feasible_space;
        let int = p.parameter_type == ParameterType::Int;
        let bound = |field: &str, v: &Option<Scalar>, c: &mut Self| -> Option<f64> {
            let Some(v) = v else {
                c.err(
                    &at(space, field),
                    format!("parameter `{}` ({}) needs `{field}`", p.name, kind(p)),
                );
                return None;
            };
            let n = v.number();
            match n {
                None => c.err(&at(space, field), format!("`{}` is not a number", v.text())),
                Some(x) if int && x.fract() != 0.0 => c.err(
                    &at(space, field),
                    format!(
                        "`{}` is not an integer (parameter `{}` is int)",
                        v.text(),
                        p.name
                    ),
                ),
                _ => {}
            }
            n
        };
        let min = bound("min", &fs.min, self);
        let max = bound("max", &fs.max, self);
        if let (Some(lo), Some(hi)) = (min, max) {
            if lo >= hi {
                self.err(
                    &at(space, "min"),
                    format!("min {lo} must be less than max {hi}"),
                );
            }
            let log = matches!(
                fs.distribution,
                Some(Distribution::LogUniform | Distribution::LogNormal)
            );
            if log && lo <= 0.0 {
                self.err(
                    &at(space, "min"),
                    format!("a log distribution needs min > 0, not {lo}"),
                );
            }
        }
        if let Some(step) = &fs.step {
            match step.number() {
                Some(s) if s > 0.0 && !(int && s.fract() != 0.0) => {}
                _ => self.err(
                    &at(space, "step"),
                    format!(
                        "step `{}` must be a positive {}",
                        step.text(),
                        if int { "integer" } else { "number" }
                    ),
                ),
            }
        }
        if !fs.list.is_empty() {
            self.err(
                &at(space, "list"),
                format!(
                    "parameter `{}` ({}) takes min and max, not a list",
                    p.name,
                    kind(p)
                ),
            );
        }
    }

    /// `discrete` (numbers) and `categorical` (strings): a non-empty list without repeats.
    fn list(&mut self, space: &[&str], p: &ParameterSpec) {
        let fs = &p.feasible_space;
        if fs.list.is_empty() {
            self.err(
                space,
                format!(
                    "parameter `{}` ({}) needs a non-empty `list`",
                    p.name,
                    kind(p)
                ),
            );
        }
        for field in ["min", "max", "step"] {
            let set = match field {
                "min" => fs.min.is_some(),
                "max" => fs.max.is_some(),
                _ => fs.step.is_some(),
            };
            if set {
                self.err(
                    &at(space, field),
                    format!(
                        "parameter `{}` ({}) takes a list, not `{field}`",
                        p.name,
                        kind(p)
                    ),
                );
            }
        }
        let mut seen = BTreeSet::new();
        for (i, v) in fs.list.iter().enumerate() {
            let i = i.to_string();
            let path = [space, &["list", i.as_str()]].concat();
            if p.parameter_type == ParameterType::Discrete && v.number().is_none() {
                self.err(
                    &path,
                    format!(
                        "`{}` is not a number (parameter `{}` is discrete)",
                        v.text(),
                        p.name
                    ),
                );
            }
            if !seen.insert(v.text()) {
                self.err(&path, format!("`{}` is listed twice", v.text()));
            }
        }
    }

    fn objective(&mut self) {
        let o = &self.spec().objective;
        let base = ["spec", "objective"];
        if o.objective_metric_name.is_empty() {
            self.err(
                &at(&base, "objectiveMetricName"),
                "objectiveMetricName must name a metric",
            );
        }
        if let Some(goal) = o.goal {
            if !goal.is_finite() {
                self.err(&at(&base, "goal"), "goal must be a finite number");
            }
        }
        for (i, s) in o.metric_strategies.iter().enumerate() {
            let known =
                s.name == o.objective_metric_name || o.additional_metric_names.contains(&s.name);
            if !known {
                let i = i.to_string();
                self.err(
                    &["spec", "objective", "metricStrategies", i.as_str(), "name"],
                    format!(
                        "metric `{}` is neither the objective nor an additional metric",
                        s.name
                    ),
                );
            }
        }
    }

    fn counts(&mut self) {
        let s = self.spec();
        let (parallel, max, goal, policy) = (
            s.parallel_trial_count,
            s.max_trial_count,
            s.objective.goal,
            s.resume_policy,
        );
        if parallel == 0 {
            self.err(
                &["spec", "parallelTrialCount"],
                "parallelTrialCount must be at least 1",
            );
        }
        if max == Some(0) {
            self.err(
                &["spec", "maxTrialCount"],
                "maxTrialCount must be at least 1",
            );
        }
        if max.is_none() && goal.is_none() {
            self.err(
                &["spec"],
                "set maxTrialCount or objective.goal: without either the experiment never ends",
            );
        }
        if policy == ResumePolicy::FromVolume {
            let msg = "resumePolicy FromVolume is not supported: every experiment's state is \
                       in the metadata store; use LongRunning";
            self.err(&["spec", "resumePolicy"], msg);
        }
    }

    fn template(&mut self) {
        let t = &self.spec().trial_template;
        let base = ["spec", "trialTemplate"];
        match (&t.component, &t.pipeline) {
            (Some(_), Some(_)) => self.err(
                &base,
                "trialTemplate takes one of `component` and `pipeline`, not both",
            ),
            (None, None) => self.err(&base, "trialTemplate needs a `component` or a `pipeline`"),
            (Some(c), None) => self.component(c),
            (None, Some(p)) if p.pipeline_ref.is_empty() => self.err(
                &[&base[..], &["pipeline", "pipelineRef"]].concat(),
                "pipelineRef must name a pipeline file",
            ),
            _ => {}
        }
        let names: BTreeSet<&str> = self
            .spec()
            .parameters
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        let mut seen = BTreeSet::new();
        for (i, tp) in t.trial_parameters.iter().enumerate() {
            let i = i.to_string();
            let path = ["spec", "trialTemplate", "trialParameters", i.as_str()];
            if !names.contains(tp.reference.as_str()) {
                let known: Vec<&str> = names.iter().copied().collect();
                let msg = format!(
                    "trial parameter `{}` references `{}`, which is not a parameter \
                     (parameters: {})",
                    tp.name,
                    tp.reference,
                    known.join(", ")
                );
                self.err(&at(&path, "reference"), msg);
            }
            if !seen.insert(tp.name.as_str()) {
                self.err(
                    &at(&path, "name"),
                    format!("trial parameter `{}` is declared twice", tp.name),
                );
            }
        }
    }

    fn component(&mut self, c: &ComponentTrial) {
        let base = ["spec", "trialTemplate", "component"];
        if c.source.is_empty() {
            self.err(&at(&base, "source"), "source must name a component");
        }
        if let Some(t) = &c.timeout {
            if humantime::parse_duration(t).is_err() {
                self.err(
                    &at(&base, "timeout"),
                    format!("`{t}` is not a duration (e.g. 30s, 5m)"),
                );
            }
        }
        if let Some(m) = &c.memory {
            if m.parse::<bytesize::ByteSize>().is_err() {
                self.err(
                    &at(&base, "memory"),
                    format!("`{m}` is not a size (e.g. 256MiB)"),
                );
            }
        }
        let bound: BTreeSet<&str> = self
            .spec()
            .trial_bindings()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        for name in c.params.keys().filter(|n| bound.contains(n.as_str())) {
            self.err(
                &[&base[..], &["params", name.as_str()]].concat(),
                format!("param `{name}` is also a trial parameter: give it one or the other"),
            );
        }
    }
}

fn at<'a>(base: &[&'a str], field: &'a str) -> Vec<&'a str> {
    let mut p = base.to_vec();
    p.push(field);
    p
}

fn kind(p: &ParameterSpec) -> &'static str {
    match p.parameter_type {
        ParameterType::Double => "double",
        ParameterType::Int => "int",
        ParameterType::Discrete => "discrete",
        ParameterType::Categorical => "categorical",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"apiVersion: weft.dev/v1alpha1
kind: Experiment
metadata: {name: branin}
spec:
  objective: {type: minimize, objectiveMetricName: value, goal: 0.4}
  algorithm: {algorithmName: random, algorithmSettings: [{name: random_state, value: "7"}]}
  maxTrialCount: 20
  parameters:
    - name: x1
      parameterType: double
      feasibleSpace: {min: "-5", max: "10"}
    - name: x2
      parameterType: double
      feasibleSpace: {min: 0, max: 15, step: 0.5}
    - {name: act, parameterType: categorical, feasibleSpace: {list: [relu, tanh]}}
  trialTemplate:
    trialParameters: [{name: a, reference: x1}, {name: b, reference: x2}, {name: act, reference: act}]
    component: {source: branin.wasm, params: {noise: 0}, timeout: 10s}
"#;

    fn check(text: &str) -> Result<(), Vec<String>> {
        let doc = Document::<Experiment>::parse("e.yaml", text).map_err(|e| vec![e.to_string()])?;
        validate_experiment(&doc).map_err(|es| es.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn a_katib_shaped_experiment_is_valid() {
        check(OK).unwrap();
        let doc = Document::<Experiment>::parse("e.yaml", OK).unwrap();
        let spec = &doc.value.spec;
        assert_eq!(spec.parallel_trial_count, 3);
        assert_eq!(spec.resume_policy, ResumePolicy::Never);
        assert_eq!(
            spec.parameters[0]
                .feasible_space
                .min
                .as_ref()
                .unwrap()
                .number(),
            Some(-5.0)
        );
        let bound: Vec<_> = spec
            .trial_bindings()
            .iter()
            .map(|(n, p)| (*n, p.name.as_str()))
            .collect();
        assert_eq!(bound, [("a", "x1"), ("b", "x2"), ("act", "act")]);
        assert_eq!(spec.strategy("value"), StrategyValue::Min);
    }

    #[test]
    fn bad_spaces_are_located_and_named() {
        let cases = [
            (r#"{min: "-5", max: "10"}"#, r#"{min: "10", max: "-5"}"#, "e.yaml:11:28: min 10 must be less than max -5"),
            ("{list: [relu, tanh]}", "{list: []}", "e.yaml:15:62: parameter `act` (categorical) needs a non-empty `list`"),
            ("{list: [relu, tanh]}", "{list: [relu, relu]}", "`relu` is listed twice"),
            ("{list: [relu, tanh]}", "{min: 1, max: 2}", "parameter `act` (categorical) takes a list, not `min`"),
            ("min: 0, max: 15, step: 0.5", "min: 0, max: 15, step: -1", "step `-1` must be a positive number"),
            ("min: 0, max: 15, step: 0.5", "min: zero, max: 15", "`zero` is not a number"),
            ("parameterType: double\n      feasibleSpace: {min: 0", "parameterType: int\n      feasibleSpace: {min: 0.5", "`0.5` is not an integer (parameter `x2` is int)"),
            ("{min: \"-5\", max: \"10\"}", "{min: \"-5\", max: \"10\", distribution: logUniform}", "a log distribution needs min > 0, not -5"),
            ("reference: x2", "reference: x3", "trial parameter `b` references `x3`, which is not a parameter (parameters: act, x1, x2)"),
            ("params: {noise: 0}", "params: {a: 0}", "param `a` is also a trial parameter"),
            ("timeout: 10s", "timeout: soon", "`soon` is not a duration"),
            ("maxTrialCount: 20", "maxTrialCount: 20\n  resumePolicy: FromVolume", "resumePolicy FromVolume is not supported"),
            ("maxTrialCount: 20", "maxTrialCount: 20\n  parallelTrialCount: 0", "parallelTrialCount must be at least 1"),
            ("component: {source: branin.wasm, params: {noise: 0}, timeout: 10s}", "pipeline: {pipelineRef: p.yaml}\n    component: {source: c.wasm}", "one of `component` and `pipeline`, not both"),
            ("kind: Experiment", "kind: Pipeline", "kind must be `Experiment`, not `Pipeline`"),
        ];
        for (from, to, want) in cases {
            assert!(OK.contains(from), "{from}");
            let text = OK.replacen(from, to, 1);
            let errors = check(&text).expect_err(want);
            assert!(
                errors.iter().any(|e| e.contains(want)),
                "{to}: want {want}, got {errors:?}"
            );
        }
    }

    #[test]
    fn unknown_fields_and_types_are_refused_by_the_parser() {
        let typo = OK.replace("parameterType: double", "parameterTyp: double");
        assert!(check(&typo).unwrap_err()[0].contains("unknown field `parameterTyp`"));
        let bad = OK.replace("type: minimize", "type: smallest");
        assert!(check(&bad).unwrap_err()[0].contains("smallest"));
    }
}
