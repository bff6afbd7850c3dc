//! `bayesianoptimization`: Gaussian-process BO with expected improvement, as Katib's skopt
//! service configures it (`base_estimator` GP, `n_initial_points` 10 random trials first,
//! `acq_func` EI with skopt's ξ = 0.01, in the objective's units). Parameters live in the unit cube (log
//! scale for log distributions; lists as equal cells). The acquisition is maximised over 2000
//! random points, then (`acq_optimizer` auto or lbfgs) refined by a shrinking local search
//! around the best few; `sampling` skips the refinement. Running trials, and the earlier
//! suggestions of the same call, are "constant liars" at the best loss seen (skopt's cl_min).

use crate::gp::{expected_improvement, Gp};
use crate::random::random_at;
use crate::settings::Settings;
use crate::space::Space;
use crate::{rng, Assignment, Direction, SettingsError, Suggester, Trial, TrialState, TuneError};
use rand::RngExt;
use rand_distr::StandardNormal;
use rand_pcg::Pcg64;

const CANDIDATES: usize = 2000;
const XI: f64 = 0.01;

pub(crate) struct Bayes {
    seed: u64,
    space: Space,
    direction: Direction,
    n_initial: usize,
    refine: bool,
}

impl Bayes {
    pub fn new(s: &Settings, space: Space, direction: Direction) -> Result<Self, SettingsError> {
        if let Some(e) = s.raw("base_estimator").filter(|e| *e != "GP") {
            let known = ["RF", "ET", "GBRT"].contains(&e);
            return Err(s.bad(
                "base_estimator",
                if known {
                    "only GP is supported here (RF, ET and GBRT are not)"
                } else {
                    "must be GP"
                },
            ));
        }
        if let Some(a) = s.raw("acq_func").filter(|a| *a != "EI") {
            let known = ["gp_hedge", "LCB", "PI", "EIps", "PIps"].contains(&a);
            return Err(s.bad(
                "acq_func",
                if known {
                    "only EI is supported here (gp_hedge, LCB, PI, EIps and PIps are not)"
                } else {
                    "must be EI"
                },
            ));
        }
        let opt = s.choice("acq_optimizer", &["auto", "sampling", "lbfgs"], "auto")?;
        Ok(Bayes {
            seed: s.seed()?,
            space,
            direction,
            n_initial: s.get("n_initial_points", 10usize, "an integer ≥ 0", |_| true)?,
            refine: opt != "sampling",
        })
    }

    fn one(&self, history: &[Trial]) -> Assignment {
        let n = history.len();
        let mut x = Vec::new();
        let mut y = Vec::new();
        let mut running = Vec::new();
        for t in history {
            let Some(u) = self.space.to_unit(&t.assignment) else {
                continue;
            };
            match (t.state, t.loss(self.direction)) {
                (TrialState::Succeeded, Some(l)) if l.is_finite() => {
                    x.push(u);
                    y.push(l);
                }
                (TrialState::Running, _) => running.push(u),
                _ => {}
            }
        }
        if y.len() < self.n_initial.max(1) {
            return random_at(&self.space, self.seed, n);
        }
        let best = y.iter().copied().fold(f64::INFINITY, f64::min);
        for u in running {
            x.push(u);
            y.push(best);
        }
        let Some(gp) = Gp::fit(x, &y) else {
            return random_at(&self.space, self.seed, n);
        };
        let mut rng = rng::stream(self.seed, &[rng::BO, n as u64]);
        let u = self.maximise(&gp, best, &mut rng);
        self.space.at_unit(&u)
    }

    fn maximise(&self, gp: &Gp, best: f64, rng: &mut Pcg64) -> Vec<f64> {
        let d = self.space.len();
        let score = |u: &[f64]| {
            let (mu, sigma) = gp.predict(u);
            expected_improvement(mu, sigma, best, XI)
        };
        let mut pts: Vec<(f64, Vec<f64>)> = (0..CANDIDATES)
            .map(|_| {
                let u: Vec<f64> = (0..d).map(|_| rng.random::<f64>()).collect();
                (score(&u), u)
            })
            .collect();
        pts.sort_by(|a, b| b.0.total_cmp(&a.0));
        if !self.refine {
            return pts.swap_remove(0).1;
        }
        pts.truncate(5);
        let refined = pts
            .into_iter()
            .map(|(s, u)| local_search(&score, s, u, rng));
        refined
            .fold(None, |acc: Option<(f64, Vec<f64>)>, (s, u)| match acc {
                Some((bs, bu)) if bs >= s => Some((bs, bu)),
                _ => Some((s, u)),
            })
            .expect("five starts")
            .1
    }
}

/// Gaussian steps that shrink from 0.1 to 0.001 of the cube, keeping improvements.
fn local_search(
    score: &dyn Fn(&[f64]) -> f64,
    mut s: f64,
    mut u: Vec<f64>,
    rng: &mut Pcg64,
) -> (f64, Vec<f64>) {
    let mut step = 0.1;
    for _ in 0..60 {
        let v: Vec<f64> = u
            .iter()
            .map(|x| (x + step * rng.sample::<f64, _>(StandardNormal)).clamp(0.0, 1.0))
            .collect();
        let sv = score(&v);
        if sv > s {
            (s, u) = (sv, v);
        } else {
            step = (step * 0.9).max(1e-3);
        }
    }
    (s, u)
}

impl Suggester for Bayes {
    fn suggest(&mut self, history: &[Trial], count: usize) -> Result<Vec<Assignment>, TuneError> {
        Ok(Trial::batch(history, count, |h| self.one(h)))
    }

    fn seed(&self) -> u64 {
        self.seed
    }
}
