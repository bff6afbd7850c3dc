//! The search space, validated, and its maps: to and from the unit cube (random, sobol,
//! cmaes, bayesianoptimization), to and from each parameter's internal numeric scale (TPE:
//! log scale for log distributions, indexes for lists), and its grid.

use crate::{Assignment, Distribution, Domain, Param, SettingsError, Value};
use rand::RngExt;
use rand_distr::StandardNormal;
use rand_pcg::Pcg64;

/// A numeric parameter's scale.
#[derive(Clone, Debug)]
pub(crate) struct Numeric {
    /// Bounds of the internal scale (log for log distributions); integers and stepped doubles
    /// extend half a step either side, as Optuna does, so every value has an equal share.
    pub lo: f64,
    pub hi: f64,
    pub log: bool,
    pub normal: bool,
    pub int: bool,
    pub min: f64,
    pub max: f64,
    pub step: Option<f64>,
}

#[derive(Clone, Debug)]
pub(crate) enum Kind {
    Numeric(Numeric),
    /// Discrete numbers or categories: an index into `values`.
    Choice(Vec<Value>),
}

#[derive(Clone, Debug)]
pub(crate) struct Dim {
    pub name: String,
    pub kind: Kind,
}

#[derive(Clone, Debug)]
pub(crate) struct Space {
    pub dims: Vec<Dim>,
}

fn fmt_num(x: f64) -> String {
    format!("{x}")
}

impl Space {
    pub fn new(algorithm: &str, params: &[Param]) -> Result<Space, SettingsError> {
        let err = |reason: String| SettingsError::Space {
            algorithm: algorithm.into(),
            reason,
        };
        if params.is_empty() {
            return Err(err("the search space has no parameters".into()));
        }
        let mut dims: Vec<Dim> = Vec::new();
        for p in params {
            if dims.iter().any(|d| d.name == p.name) {
                return Err(err(format!("parameter `{}` is defined twice", p.name)));
            }
            let kind =
                Dim::kind(&p.domain).map_err(|e| err(format!("parameter `{}`: {e}", p.name)))?;
            dims.push(Dim {
                name: p.name.clone(),
                kind,
            });
        }
        Ok(Space { dims })
    }

    pub fn len(&self) -> usize {
        self.dims.len()
    }

    /// An assignment from one value per dimension.
    pub fn assignment(&self, values: Vec<Value>) -> Assignment {
        self.dims
            .iter()
            .map(|d| d.name.clone())
            .zip(values)
            .collect()
    }

    /// The point of the unit cube `u` as an assignment.
    pub fn at_unit(&self, u: &[f64]) -> Assignment {
        self.assignment(
            self.dims
                .iter()
                .zip(u)
                .map(|(d, &x)| d.at_unit(x))
                .collect(),
        )
    }

    /// An assignment's position in the unit cube, or `None` when it lacks a value of the space.
    pub fn to_unit(&self, a: &Assignment) -> Option<Vec<f64>> {
        self.dims
            .iter()
            .map(|d| a.get(&d.name).and_then(|v| d.to_unit(v)))
            .collect()
    }

    /// Each dimension's number of choices: a list's length, 0 for a number range.
    pub fn choices(&self) -> Vec<usize> {
        self.dims
            .iter()
            .map(|d| match &d.kind {
                Kind::Choice(vals) => vals.len(),
                Kind::Numeric(_) => 0,
            })
            .collect()
    }

    /// An assignment drawn from each parameter's distribution.
    pub fn sample(&self, rng: &mut Pcg64) -> Assignment {
        self.assignment(self.dims.iter().map(|d| d.sample(rng)).collect())
    }
}

impl Dim {
    fn kind(domain: &Domain) -> Result<Kind, String> {
        Ok(match domain {
            Domain::Double {
                min,
                max,
                step,
                distribution,
            } => Kind::Numeric(numeric(*min, *max, *step, *distribution, false)?),
            Domain::Int {
                min,
                max,
                step,
                distribution,
            } => {
                if let Some(s) = step {
                    if *s <= 0 {
                        return Err(format!("step must be > 0, not {s}"));
                    }
                }
                let step = Some(step.unwrap_or(1) as f64);
                Kind::Numeric(numeric(
                    *min as f64,
                    *max as f64,
                    step,
                    *distribution,
                    true,
                )?)
            }
            Domain::Discrete { values } => {
                if values.is_empty() {
                    return Err("a discrete parameter needs a non-empty list".into());
                }
                if let Some(v) = values.iter().find(|v| !v.is_finite()) {
                    return Err(format!("discrete value {v} is not a finite number"));
                }
                let whole = values.iter().all(|v| v.fract() == 0.0 && v.abs() < 9.0e15);
                let vals = values
                    .iter()
                    .map(|&v| {
                        if whole {
                            Value::Int(v as i64)
                        } else {
                            Value::Double(v)
                        }
                    })
                    .collect();
                Kind::Choice(vals)
            }
            Domain::Categorical { choices } => {
                if choices.is_empty() {
                    return Err("a categorical parameter needs a non-empty list".into());
                }
                Kind::Choice(choices.iter().map(|c| Value::Str(c.clone())).collect())
            }
        })
    }

    /// The value at `u` ∈ [0, 1] of the cube.
    pub fn at_unit(&self, u: f64) -> Value {
        let u = u.clamp(0.0, 1.0);
        match &self.kind {
            Kind::Numeric(n) => n.value(n.lo + u * (n.hi - n.lo)),
            Kind::Choice(vals) => {
                vals[((u * vals.len() as f64) as usize).min(vals.len() - 1)].clone()
            }
        }
    }

    /// A value's position in the cube (the middle of its cell for lists).
    pub fn to_unit(&self, v: &Value) -> Option<f64> {
        match &self.kind {
            Kind::Numeric(n) => {
                let t = n.internal(v)?;
                Some(((t - n.lo) / (n.hi - n.lo)).clamp(0.0, 1.0))
            }
            Kind::Choice(vals) => {
                let i = index_of(vals, v)?;
                Some((i as f64 + 0.5) / vals.len() as f64)
            }
        }
    }

    /// A value drawn from the parameter's distribution.
    pub fn sample(&self, rng: &mut Pcg64) -> Value {
        match &self.kind {
            Kind::Numeric(n) if n.normal => {
                let (mu, sigma) = ((n.lo + n.hi) / 2.0, (n.hi - n.lo) / 6.0);
                let t = loop {
                    let z: f64 = rng.sample(StandardNormal);
                    let t = mu + sigma * z;
                    if (n.lo..=n.hi).contains(&t) {
                        break t;
                    }
                };
                n.value(t)
            }
            _ => self.at_unit(rng.random::<f64>()),
        }
    }
}

/// The index of `v` in a list, comparing numbers as numbers.
pub(crate) fn index_of(vals: &[Value], v: &Value) -> Option<usize> {
    vals.iter().position(|x| match (x, v) {
        (Value::Str(a), Value::Str(b)) => a == b,
        (Value::Str(_), _) | (_, Value::Str(_)) => false,
        _ => number(x) == number(v),
    })
}

/// A value as a number (strings that parse count, as Katib keeps everything as strings).
pub(crate) fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Double(d) => Some(*d),
        Value::Str(s) => s.trim().parse().ok(),
    }
}

fn numeric(
    min: f64,
    max: f64,
    step: Option<f64>,
    dist: Distribution,
    int: bool,
) -> Result<Numeric, String> {
    if !min.is_finite() || !max.is_finite() {
        return Err(format!("min ({min}) and max ({max}) must be finite"));
    }
    if min > max || (!int && min == max) {
        return Err(format!(
            "min ({}) must be less than max ({})",
            fmt_num(min),
            fmt_num(max)
        ));
    }
    if let Some(s) = step {
        if !(s > 0.0 && s.is_finite()) {
            return Err(format!("step must be > 0, not {s}"));
        }
    }
    let log = matches!(dist, Distribution::LogUniform | Distribution::LogNormal);
    let normal = matches!(dist, Distribution::Normal | Distribution::LogNormal);
    if log && min <= 0.0 {
        return Err(format!(
            "a log distribution needs min > 0{}",
            if int { " (≥ 1 for int)" } else { "" }
        ));
    }
    let half = step.map_or(0.0, |s| s / 2.0);
    // On a log scale the half step below min can reach 0 (min 0.001, step 0.01): the scale
    // then starts at min itself, and min keeps a smaller share rather than the space being
    // refused for a min that is > 0.
    let below = if log && min - half <= 0.0 {
        min
    } else {
        min - half
    };
    let (lo, hi) = if log {
        (below.ln(), (max + half).ln())
    } else {
        (below, max + half)
    };
    Ok(Numeric {
        lo,
        hi,
        log,
        normal,
        int,
        min,
        max,
        step,
    })
}

impl Numeric {
    /// The value at `t` of the internal scale: snapped to the step, kept inside [min, max].
    pub fn value(&self, t: f64) -> Value {
        let x = if self.log { t.exp() } else { t };
        let x = self.snap(x);
        if self.int {
            Value::Int(x.round() as i64)
        } else {
            Value::Double(x)
        }
    }

    /// `x` snapped to the step grid from `min`, inside [min, max].
    pub fn snap(&self, x: f64) -> f64 {
        let x = x.clamp(self.min, self.max);
        match self.step {
            None => x,
            Some(s) => {
                let k_max = ((self.max - self.min) / s + 1e-9).floor();
                let k = ((x - self.min) / s).round().clamp(0.0, k_max);
                (self.min + k * s).clamp(self.min, self.max)
            }
        }
    }

    /// A value on the internal scale.
    pub fn internal(&self, v: &Value) -> Option<f64> {
        let x = number(v)?;
        if !x.is_finite() || (self.log && x <= 0.0) {
            return None;
        }
        Some(if self.log { x.ln() } else { x })
    }

    /// Grid points: every step from min to max (doubles need a step).
    pub fn grid(&self) -> Option<Vec<Value>> {
        let s = self.step?;
        let n = ((self.max - self.min) / s + 1e-9).floor() as usize + 1;
        Some(
            (0..n)
                .map(|k| {
                    let x = (self.min + k as f64 * s).min(self.max);
                    if self.int {
                        Value::Int(x.round() as i64)
                    } else {
                        Value::Double(x)
                    }
                })
                .collect(),
        )
    }

    /// The number of grid points, if there is a step (without building them).
    pub fn grid_len(&self) -> Option<f64> {
        Some(((self.max - self.min) / self.step? + 1e-9).floor() + 1.0)
    }
}
