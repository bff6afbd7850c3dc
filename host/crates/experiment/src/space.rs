//! The Experiment spec in weft-tune's terms: the search space, the algorithms with their
//! settings checked (errors located in the file), and trial assignments as step parameters.

use weft_spec::experiment::{
    AlgorithmSpec, Distribution, Experiment, ObjectiveType, ParameterSpec, ParameterType,
};
use weft_spec::{Document, ParamValue, SpecError};
use weft_tune::{Assignment, Direction, Domain, Param, Setting, Value};

/// The search space of a validated experiment.
pub fn search_space(spec: &[ParameterSpec]) -> Vec<Param> {
    spec.iter()
        .map(|p| Param {
            name: p.name.clone(),
            domain: domain(p),
        })
        .collect()
}

fn domain(p: &ParameterSpec) -> Domain {
    let fs = &p.feasible_space;
    let num = |v: &Option<weft_spec::experiment::Scalar>| {
        v.as_ref().and_then(|s| s.number()).unwrap_or(0.0)
    };
    let distribution = match fs.distribution {
        None | Some(Distribution::Uniform) => weft_tune::Distribution::Uniform,
        Some(Distribution::LogUniform) => weft_tune::Distribution::LogUniform,
        Some(Distribution::Normal) => weft_tune::Distribution::Normal,
        Some(Distribution::LogNormal) => weft_tune::Distribution::LogNormal,
    };
    match p.parameter_type {
        ParameterType::Double => Domain::Double {
            min: num(&fs.min),
            max: num(&fs.max),
            step: fs.step.as_ref().and_then(|s| s.number()),
            distribution,
        },
        ParameterType::Int => Domain::Int {
            min: num(&fs.min) as i64,
            max: num(&fs.max) as i64,
            step: fs.step.as_ref().and_then(|s| s.number()).map(|s| s as i64),
            distribution,
        },
        ParameterType::Discrete => Domain::Discrete {
            values: fs.list.iter().filter_map(|v| v.number()).collect(),
        },
        ParameterType::Categorical => Domain::Categorical {
            choices: fs.list.iter().map(|v| v.text()).collect(),
        },
    }
}

pub fn direction(e: &Experiment) -> Direction {
    match e.spec.objective.direction {
        ObjectiveType::Minimize => Direction::Minimize,
        ObjectiveType::Maximize => Direction::Maximize,
    }
}

pub fn settings(a: &AlgorithmSpec) -> Vec<Setting> {
    a.algorithm_settings
        .iter()
        .map(|s| Setting::new(&s.name, s.value.text()))
        .collect()
}

/// Builds the suggester, as a check (at validate time) and for the run; a bad algorithm or
/// setting is located at the setting it names, else at the algorithm's name.
pub fn suggester(doc: &Document<Experiment>) -> Result<Box<dyn weft_tune::Suggester>, SpecError> {
    let spec = &doc.value.spec;
    weft_tune::suggester(
        &spec.algorithm.algorithm_name,
        &settings(&spec.algorithm),
        &search_space(&spec.parameters),
        direction(&doc.value),
        spec.max_trial_count,
    )
    .map_err(|e| locate(doc, "algorithm", &spec.algorithm, &e))
}

/// The early stopper, if the experiment has one; errors located as for [`suggester`].
pub fn early_stopper(
    doc: &Document<Experiment>,
) -> Result<Option<Box<dyn weft_tune::EarlyStopper>>, SpecError> {
    let Some(es) = &doc.value.spec.early_stopping else {
        return Ok(None);
    };
    weft_tune::early_stopper(&es.algorithm_name, &settings(es))
        .map(Some)
        .map_err(|e| locate(doc, "earlyStopping", es, &e))
}

fn locate(
    doc: &Document<Experiment>,
    field: &str,
    a: &AlgorithmSpec,
    e: &weft_tune::SettingsError,
) -> SpecError {
    use weft_tune::SettingsError as E;
    let setting = match e {
        E::UnknownSetting { setting, .. }
        | E::BadValue { setting, .. }
        | E::Duplicate { setting, .. } => Some(setting),
        _ => None,
    };
    let index = setting.and_then(|s| a.algorithm_settings.iter().rposition(|x| &x.name == s));
    match index {
        Some(i) => {
            let i = i.to_string();
            doc.error_at(&["spec", field, "algorithmSettings", &i], e.to_string())
        }
        None => doc.error_at(&["spec", field, "algorithmName"], e.to_string()),
    }
}

/// A trial's step or pipeline parameters: each bound parameter's value under the name the
/// template gives it.
pub fn trial_params(e: &Experiment, assignment: &Assignment) -> Vec<(String, ParamValue)> {
    e.spec
        .trial_bindings()
        .into_iter()
        .filter_map(|(name, p)| {
            let v = assignment.get(&p.name)?;
            Some((name.to_string(), param_value(v)))
        })
        .collect()
}

pub fn param_value(v: &Value) -> ParamValue {
    match v {
        Value::Int(i) => ParamValue::Int(*i),
        Value::Double(f) => ParamValue::Float(*f),
        Value::Str(s) => ParamValue::String(s.clone()),
    }
}
