//! `tpe` and `multivariate-tpe`: Optuna's TPESampler, written here because the `tpe` crate
//! (0.3.1) is univariate only, splits by a fixed fraction, and has neither Optuna's gamma(n),
//! its weights, its prior nor the constant liar; those are what make Optuna's TPE what it is.
//!
//! As Optuna: random until `n_startup_trials` (10) trials have finished; then the finished
//! trials are split into the best `gamma(n) = min(ceil(0.1 n), 25)` ("below") and the rest
//! ("above"; running trials join them: the constant liar); a Parzen estimator is fitted to
//! each; of `n_ei_candidates` (24) draws from "below", the one maximising l(x)/g(x) wins.
//! `multivariate-tpe` models the parameters jointly (Scott's-rule bandwidths); `tpe` samples
//! each parameter on its own. Integers and stepped doubles are discretised truncated normals
//! (half a step beyond the bounds); log-scale parameters are modelled in log space; discrete
//! lists and categories are categorical kernels. Early-stopped trials count as Optuna's pruned
//! ones (below only when there are too few finished: the furthest-reaching first); failed
//! trials are ignored. Katib's hyperopt settings for `tpe`: `gamma` makes the split
//! hyperopt's `min(ceil(gamma √n), 25)`, `prior_weight`, `n_EI_candidates`.

mod parzen;

use crate::random::random_at;
use crate::settings::Settings;
use crate::space::{index_of, Dim, Kind, Space};
use crate::{
    rng, Assignment, Direction, SettingsError, Suggester, Trial, TrialState, TuneError, Value,
};
use parzen::Parzen;

#[derive(Clone, Copy)]
enum Gamma {
    /// Optuna: min(ceil(0.1 n), 25).
    Optuna,
    /// hyperopt: min(ceil(g √n), 25).
    Hyperopt(f64),
}

pub(crate) struct Tpe {
    seed: u64,
    space: Space,
    direction: Direction,
    multivariate: bool,
    n_startup: usize,
    n_ei: usize,
    gamma: Gamma,
    prior_weight: f64,
}

impl Tpe {
    pub fn new(
        s: &Settings,
        space: Space,
        direction: Direction,
        multivariate: bool,
    ) -> Result<Self, SettingsError> {
        let n_ei = match s.raw("n_EI_candidates") {
            Some(_) => s.get("n_EI_candidates", 24usize, "an integer > 0", |v| v > 0)?,
            None => s.get("n_ei_candidates", 24usize, "an integer > 0", |v| v > 0)?,
        };
        let gamma = match s.raw("gamma") {
            None => Gamma::Optuna,
            Some(_) => Gamma::Hyperopt(s.get("gamma", 0.25f64, "a number in (0, 1)", |g| {
                g > 0.0 && g < 1.0
            })?),
        };
        Ok(Tpe {
            seed: s.seed()?,
            space,
            direction,
            multivariate,
            n_startup: s.get("n_startup_trials", 10usize, "an integer ≥ 0", |_| true)?,
            n_ei,
            gamma,
            prior_weight: s.get("prior_weight", 1.0f64, "a number > 0", |w| {
                w > 0.0 && w.is_finite()
            })?,
        })
    }

    fn n_below(&self, n: usize) -> usize {
        let g = match self.gamma {
            Gamma::Optuna => (0.1 * n as f64).ceil(),
            Gamma::Hyperopt(g) => (g * (n as f64).sqrt()).ceil(),
        };
        (g as usize).min(25)
    }

    /// The suggestion for trial number `history.len()`.
    fn one(&self, history: &[Trial]) -> Assignment {
        let n = history.len();
        let obs = observations(&self.space, history, self.direction);
        let finished = obs.iter().filter(|o| o.rank.is_some()).count();
        if finished < self.n_startup.max(1) {
            return random_at(&self.space, self.seed, n);
        }
        let (below, above) = split(&obs, self.n_below(finished));
        let mut rng = rng::stream(self.seed, &[rng::TPE, n as u64]);
        let dims: Vec<&Dim> = self.space.dims.iter().collect();
        let groups: Vec<Vec<&Dim>> = if self.multivariate {
            vec![dims]
        } else {
            dims.into_iter().map(|d| vec![d]).collect()
        };
        let mut x = Vec::with_capacity(self.space.len());
        let mut offset = 0;
        for group in groups {
            let cols = offset..offset + group.len();
            let pick = |rows: &[&Obs]| {
                rows.iter()
                    .map(|o| o.x[cols.clone()].to_vec())
                    .collect::<Vec<_>>()
            };
            let l = Parzen::new(&group, &pick(&below), self.prior_weight, self.multivariate);
            let g = Parzen::new(&group, &pick(&above), self.prior_weight, self.multivariate);
            let best = (0..self.n_ei)
                .map(|_| l.sample(&mut rng))
                .map(|c| (l.log_pdf(&c) - g.log_pdf(&c), c))
                .fold(None, |acc: Option<(f64, Vec<f64>)>, (s, c)| match acc {
                    Some((bs, bc)) if bs >= s || s.is_nan() => Some((bs, bc)),
                    _ => Some((s, c)),
                })
                .expect("n_ei > 0")
                .1;
            x.extend(best);
            offset += group.len();
        }
        self.space.assignment(
            self.space
                .dims
                .iter()
                .zip(x)
                .map(|(d, t)| decode(d, t))
                .collect(),
        )
    }
}

/// A trial as TPE sees it: internal values, and its rank key when finished.
struct Obs {
    index: usize,
    x: Vec<f64>,
    /// (group, key…) sorting finished trials best first: complete (0, loss); pruned (1,
    /// -last step, loss there). `None` for running trials.
    rank: Option<(u8, f64, f64)>,
}

fn observations(space: &Space, history: &[Trial], direction: Direction) -> Vec<Obs> {
    history
        .iter()
        .enumerate()
        .filter_map(|(index, t)| {
            let x = space
                .dims
                .iter()
                .map(|d| encode(d, t.assignment.get(&d.name)?))
                .collect::<Option<Vec<_>>>()?;
            let rank = match t.state {
                TrialState::Running => None,
                TrialState::Failed => return None,
                TrialState::Succeeded => Some((0, t.loss(direction)?, 0.0)),
                TrialState::EarlyStopped => {
                    let &(step, v) = t
                        .series
                        .iter()
                        .filter(|(_, v)| !v.is_nan())
                        .max_by_key(|(s, _)| *s)?;
                    Some((1, -(step as f64), direction.loss(v)))
                }
            };
            Some(Obs { index, x, rank })
        })
        .collect()
}

/// The best `n_below` finished trials, and the rest with the running ones; each in trial order.
fn split(obs: &[Obs], n_below: usize) -> (Vec<&Obs>, Vec<&Obs>) {
    let mut finished: Vec<&Obs> = obs.iter().filter(|o| o.rank.is_some()).collect();
    finished.sort_by(|a, b| {
        let (ka, kb) = (a.rank.expect("finished"), b.rank.expect("finished"));
        ka.0.cmp(&kb.0)
            .then(ka.1.total_cmp(&kb.1))
            .then(ka.2.total_cmp(&kb.2))
            .then(a.index.cmp(&b.index))
    });
    let below_idx: Vec<usize> = finished.iter().take(n_below).map(|o| o.index).collect();
    let (below, above) = obs.iter().partition(|o| below_idx.contains(&o.index));
    (below, above)
}

/// A value on TPE's internal scale: numbers (log for log scales), list indexes.
fn encode(d: &Dim, v: &Value) -> Option<f64> {
    match &d.kind {
        Kind::Numeric(n) => n.internal(v).map(|t| t.clamp(n.lo, n.hi)),
        Kind::Choice(vals) => index_of(vals, v).map(|i| i as f64),
    }
}

fn decode(d: &Dim, t: f64) -> Value {
    match &d.kind {
        Kind::Numeric(n) => n.value(t),
        Kind::Choice(vals) => vals[(t.max(0.0) as usize).min(vals.len() - 1)].clone(),
    }
}

impl Suggester for Tpe {
    fn suggest(&mut self, history: &[Trial], count: usize) -> Result<Vec<Assignment>, TuneError> {
        Ok(Trial::batch(history, count, |h| self.one(h)))
    }

    fn seed(&self) -> u64 {
        self.seed
    }
}
