//! Shared by the integration tests: Branin, spaces and a small sequential runner.
#![allow(dead_code)]

use weft_tune::{
    Assignment, Direction, Distribution, Domain, Param, Setting, Suggester, Trial, TrialState,
    Value,
};

/// Branin's global minimum.
pub const BRANIN_MIN: f64 = 0.397_887;

pub fn branin(x: f64, y: f64) -> f64 {
    use std::f64::consts::PI;
    let b = 5.1 / (4.0 * PI * PI);
    let c = 5.0 / PI;
    let t = 1.0 / (8.0 * PI);
    (y - b * x * x + c * x - 6.0).powi(2) + 10.0 * (1.0 - t) * x.cos() + 10.0
}

pub fn double(name: &str, min: f64, max: f64) -> Param {
    Param {
        name: name.into(),
        domain: Domain::Double {
            min,
            max,
            step: None,
            distribution: Distribution::Uniform,
        },
    }
}

pub fn branin_space() -> Vec<Param> {
    vec![double("x", -5.0, 10.0), double("y", 0.0, 15.0)]
}

pub fn num(a: &Assignment, name: &str) -> f64 {
    match &a[name] {
        Value::Double(d) => *d,
        Value::Int(i) => *i as f64,
        Value::Str(s) => panic!("{name} is a string {s}"),
    }
}

pub fn branin_of(a: &Assignment) -> f64 {
    branin(num(a, "x"), num(a, "y"))
}

pub fn seed(s: u64) -> Vec<Setting> {
    vec![Setting::new("random_state", s.to_string())]
}

/// Runs `n` trials, `batch` at a time (each batch suggested while the previous ones are done,
/// and asked one by one with the batch's earlier trials running, as a parallel runner does).
pub fn run(
    s: &mut dyn Suggester,
    f: &dyn Fn(&Assignment) -> f64,
    n: usize,
    batch: usize,
) -> Vec<Trial> {
    let mut history: Vec<Trial> = Vec::new();
    while history.len() < n {
        let start = history.len();
        for _ in 0..batch.min(n - start) {
            let a = s
                .suggest(&history, 1)
                .expect("suggest")
                .pop()
                .expect("a suggestion");
            history.push(Trial {
                assignment: a,
                state: TrialState::Running,
                objective: None,
                series: vec![],
            });
        }
        for t in &mut history[start..] {
            let v = f(&t.assignment);
            t.state = TrialState::Succeeded;
            t.objective = Some(v);
            t.series = vec![(1, v)];
        }
    }
    history
}

/// The first trial (1-based) whose objective is within `rel` of `target`, if any.
pub fn trials_to(history: &[Trial], target: f64, rel: f64) -> Option<usize> {
    history
        .iter()
        .position(|t| {
            t.objective
                .is_some_and(|v| v - target <= rel * target.abs())
        })
        .map(|i| i + 1)
}

pub fn best(history: &[Trial]) -> f64 {
    history
        .iter()
        .filter_map(|t| t.objective)
        .fold(f64::INFINITY, f64::min)
}

pub fn suggester(alg: &str, settings: &[Setting], space: &[Param]) -> Box<dyn Suggester> {
    weft_tune::suggester(alg, settings, space, Direction::Minimize, None).expect("valid settings")
}

pub fn succeeded(assignment: Assignment, value: f64) -> Trial {
    Trial {
        assignment,
        state: TrialState::Succeeded,
        objective: Some(value),
        series: vec![(1, value)],
    }
}

/// Every value an algorithm suggests lies in its parameter's domain (on its step, to 1e-6).
pub fn check_domain(params: &[Param], a: &Assignment) {
    assert_eq!(a.len(), params.len());
    for p in params {
        let v = &a[&p.name];
        match (&p.domain, v) {
            (Domain::Double { min, max, step, .. }, Value::Double(x)) => {
                assert!(min <= x && x <= max, "{}={x} outside {min}..{max}", p.name);
                if let Some(s) = step {
                    let k = (x - min) / s;
                    assert!(
                        (k - k.round()).abs() < 1e-6,
                        "{}={x} is off the step {s}",
                        p.name
                    );
                }
            }
            (Domain::Int { min, max, step, .. }, Value::Int(x)) => {
                assert!(min <= x && x <= max, "{}={x} outside {min}..{max}", p.name);
                assert_eq!(
                    (x - min) % step.unwrap_or(1),
                    0,
                    "{}={x} is off the step",
                    p.name
                );
            }
            (Domain::Discrete { values }, Value::Int(x)) => {
                assert!(values.contains(&(*x as f64)), "{}={x}", p.name)
            }
            (Domain::Discrete { values }, Value::Double(x)) => {
                assert!(values.contains(x), "{}={x}", p.name)
            }
            (Domain::Categorical { choices }, Value::Str(x)) => {
                assert!(choices.contains(x), "{}={x}", p.name)
            }
            (d, v) => panic!("{} = {v:?} does not fit {d:?}", p.name),
        }
    }
}
