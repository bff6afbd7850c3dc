//! `hyperband` as Katib's hyperband service runs it: `r_l` is the largest resource (budget),
//! `resource_name` the int or double parameter that carries it, `eta` (3) the reduction.
//! With s_max = ⌊log_eta r_l⌋, bracket s = s_max … 0 starts n = ⌈(s_max+1)/(s+1) · eta^s⌉
//! random configurations at resource r_l·eta^-s; rung i keeps the best ⌊n·eta^-i⌋ of the
//! previous rung and runs them again at resource r_l·eta^(i-s) (new trials, the resource
//! parameter set). When the last bracket ends, a new round of brackets begins. A rung waits for
//! the previous one to finish (suggest returns fewer, possibly none, meanwhile). The history
//! is read as consecutive rungs, so it must hold only this algorithm's trials, in order.

use crate::settings::Settings;
use crate::space::{Kind, Numeric, Space};
use crate::{
    rng, Assignment, Direction, SettingsError, Suggester, Trial, TrialState, TuneError, Value,
};

pub(crate) struct Hyperband {
    seed: u64,
    space: Space,
    direction: Direction,
    r_l: f64,
    eta: f64,
    s_max: u32,
    resource: usize,
}

impl Hyperband {
    pub fn new(s: &Settings, space: Space, direction: Direction) -> Result<Self, SettingsError> {
        let r_l: f64 = s.required("r_l", "a number > 0", |v: f64| v > 0.0 && v.is_finite())?;
        let name = s
            .raw("resource_name")
            .ok_or_else(|| s.missing("resource_name"))?;
        let resource = space
            .dims
            .iter()
            .position(|d| d.name == name && matches!(d.kind, Kind::Numeric(_)))
            .ok_or_else(|| {
                s.bad(
                    "resource_name",
                    "must name an int or double parameter of the search space",
                )
            })?;
        let eta: f64 = s.get("eta", 3.0, "a number > 1", |v: f64| {
            v > 1.0 && v.is_finite()
        })?;
        if let Kind::Numeric(n) = &space.dims[resource].kind {
            if r_l > n.max {
                return Err(s.bad(
                    "r_l",
                    format!(
                        "exceeds the max ({}) of the resource parameter `{name}`",
                        n.max
                    ),
                ));
            }
        }
        let s_max = ((r_l.ln() / eta.ln()) + 1e-9).floor().max(0.0) as u32;
        Ok(Hyperband {
            seed: s.seed()?,
            space,
            direction,
            r_l,
            eta,
            s_max,
            resource,
        })
    }

    /// The rungs of one round: (bracket s, rung i, configurations, resource).
    fn round(&self) -> Vec<(u32, u32, usize, f64)> {
        let mut rungs = Vec::new();
        for s in (0..=self.s_max).rev() {
            let n =
                ((f64::from(self.s_max + 1) / f64::from(s + 1)) * self.eta.powi(s as i32)).ceil();
            for i in 0..=s {
                let n_i = (n * self.eta.powi(-(i as i32)) + 1e-9).floor() as usize;
                if n_i == 0 {
                    break;
                }
                rungs.push((s, i, n_i, self.r_l * self.eta.powi(i as i32 - s as i32)));
            }
        }
        rungs
    }

    fn with_resource(&self, mut a: Assignment, r: f64) -> Assignment {
        let d = &self.space.dims[self.resource];
        if let Kind::Numeric(n) = &d.kind {
            a.insert(d.name.clone(), resource_value(n, r));
        }
        a
    }

    /// Rung configurations: random ones for a bracket's first rung, else the best of the last.
    fn configs(
        &self,
        round: u64,
        rung: (u32, u32, usize, f64),
        previous: &[Trial],
    ) -> Vec<Assignment> {
        let (s, i, n_i, r) = rung;
        if i == 0 {
            return (0..n_i)
                .map(|j| {
                    let mut g =
                        rng::stream(self.seed, &[rng::HYPERBAND, round, u64::from(s), j as u64]);
                    self.with_resource(self.space.sample(&mut g), r)
                })
                .collect();
        }
        let mut ranked: Vec<(f64, usize)> = previous
            .iter()
            .enumerate()
            .map(|(k, t)| (t.loss(self.direction).unwrap_or(f64::INFINITY), k))
            .collect();
        ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        ranked
            .iter()
            .take(n_i)
            .map(|&(_, k)| self.with_resource(previous[k].assignment.clone(), r))
            .collect()
    }
}

fn resource_value(n: &Numeric, r: f64) -> Value {
    let v = r.clamp(n.min, n.max);
    if n.int {
        Value::Int(v.round() as i64)
    } else {
        Value::Double(v)
    }
}

impl Suggester for Hyperband {
    fn suggest(&mut self, history: &[Trial], count: usize) -> Result<Vec<Assignment>, TuneError> {
        let rungs = self.round();
        let mut pos = 0;
        let mut previous: &[Trial] = &[];
        for round in 0u64.. {
            for &rung in &rungs {
                let n_i = rung.2;
                let have = history.len().saturating_sub(pos).min(n_i);
                let block = &history[pos..pos + have];
                if have < n_i {
                    let configs = self.configs(round, rung, previous);
                    return Ok(configs.into_iter().skip(have).take(count).collect());
                }
                if block.iter().any(|t| t.state == TrialState::Running) {
                    return Ok(Vec::new());
                }
                previous = block;
                pos += n_i;
            }
        }
        unreachable!("the rounds never end")
    }

    fn seed(&self) -> u64 {
        self.seed
    }
}
