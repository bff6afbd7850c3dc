//! `cmaes`: CMA-ES ((μ/μ_w, λ), Hansen's tutorial parameters) in the unit cube, with Optuna's
//! defaults (mean at the centre, σ0 = 1/6 of the normalised range, out-of-bounds draws
//! redrawn then clipped) and its IPOP/BIPOP restarts. Written here because the `cmaes` crate
//! (0.2.2) drives the objective itself (no ask/tell), so trials run by the runner cannot feed
//! it; it also pulls rand 0.8, nalgebra, rayon and statrs.
//!
//! Stateless like every suggester: the state is rebuilt by replaying the history. Candidate
//! `j` of a generation is drawn from its own stream, so each trial is matched to the candidate
//! it came from. A generation is told once the shortest run of its trials (in history order)
//! holding λ succeeded trials is all finished (failed trials are skipped, so a generation with
//! failures waits for extra candidates); until then the generation keeps handing out further
//! candidates, as Optuna samples more from the current distribution while trials run. Trials
//! matching no candidate (another algorithm's, say) are ignored.

use crate::linalg::{sym_eigen, Mat};
use crate::settings::Settings;
use crate::space::{Kind, Space};
use crate::{rng, Assignment, Direction, SettingsError, Suggester, Trial, TrialState, TuneError};
use rand::RngExt;
use rand_distr::StandardNormal;
use std::collections::HashMap;

#[derive(Clone, Copy, PartialEq)]
enum Restart {
    None,
    Ipop,
    Bipop,
}

pub(crate) struct CmaEs {
    seed: u64,
    space: Space,
    direction: Direction,
    sigma0: f64,
    restart: Restart,
}

impl CmaEs {
    pub fn new(s: &Settings, space: Space, direction: Direction) -> Result<Self, SettingsError> {
        if let Some(d) = space.dims.iter().find(|d| matches!(&d.kind, Kind::Choice(v) if v.iter().any(|v| matches!(v, crate::Value::Str(_))))) {
            return Err(s.space_error(format!(
                "parameter `{}` is categorical; CMA-ES does not support categorical parameters (use tpe)",
                d.name
            )));
        }
        let numeric = space
            .dims
            .iter()
            .filter(|d| matches!(d.kind, Kind::Numeric(_)))
            .count();
        if numeric < 2 {
            return Err(s.space_error(
                "CMA-ES only supports two or more dimensional continuous search space.",
            ));
        }
        let restart = match s
            .choice("restart_strategy", &["ipop", "bipop", "none"], "none")?
            .as_str()
        {
            "ipop" => Restart::Ipop,
            "bipop" => Restart::Bipop,
            _ => Restart::None,
        };
        Ok(CmaEs {
            seed: s.seed()?,
            space,
            direction,
            sigma0: s.get("sigma", 1.0 / 6.0, "a number > 0", |v: f64| {
                v > 0.0 && v.is_finite()
            })?,
            restart,
        })
    }
}

/// One run's distribution and its constants.
struct Cma {
    restart: u64,
    generation: u64,
    lambda: usize,
    weights: Vec<f64>,
    mu_eff: f64,
    cc: f64,
    cs: f64,
    c1: f64,
    cmu: f64,
    damps: f64,
    chi_n: f64,
    mean: Vec<f64>,
    sigma: f64,
    sigma0: f64,
    c: Mat,
    b: Mat,
    d: Vec<f64>,
    pc: Vec<f64>,
    ps: Vec<f64>,
    fun_hist: Vec<(f64, f64)>,
}

impl Cma {
    fn new(restart: u64, mean: Vec<f64>, sigma: f64, lambda: usize) -> Cma {
        let n = mean.len();
        let nf = n as f64;
        let mu = lambda / 2;
        let raw: Vec<f64> = (1..=mu)
            .map(|i| ((lambda as f64 + 1.0) / 2.0).ln() - (i as f64).ln())
            .collect();
        let sum: f64 = raw.iter().sum();
        let weights: Vec<f64> = raw.iter().map(|w| w / sum).collect();
        let mu_eff = 1.0 / weights.iter().map(|w| w * w).sum::<f64>();
        let cs = (mu_eff + 2.0) / (nf + mu_eff + 5.0);
        let c1 = 2.0 / ((nf + 1.3).powi(2) + mu_eff);
        let identity: Mat = (0..n)
            .map(|i| (0..n).map(|j| f64::from(u8::from(i == j))).collect())
            .collect();
        Cma {
            restart,
            generation: 0,
            lambda,
            cc: (4.0 + mu_eff / nf) / (nf + 4.0 + 2.0 * mu_eff / nf),
            cs,
            c1,
            cmu: (1.0 - c1)
                .min(2.0 * (mu_eff - 2.0 + 1.0 / mu_eff) / ((nf + 2.0).powi(2) + mu_eff)),
            damps: 1.0 + 2.0 * (((mu_eff - 1.0) / (nf + 1.0)).sqrt() - 1.0).max(0.0) + cs,
            chi_n: nf.sqrt() * (1.0 - 1.0 / (4.0 * nf) + 1.0 / (21.0 * nf * nf)),
            weights,
            mu_eff,
            mean,
            sigma,
            sigma0: sigma,
            c: identity.clone(),
            b: identity,
            d: vec![1.0; n],
            pc: vec![0.0; n],
            ps: vec![0.0; n],
            fun_hist: Vec::new(),
        }
    }

    /// Candidate `j`: m + σ B D z, redrawn while outside the cube (then clipped).
    fn candidate(&self, seed: u64, j: usize) -> Vec<f64> {
        let mut rng = rng::stream(seed, &[rng::CMA, self.restart, self.generation, j as u64]);
        let n = self.mean.len();
        let mut x = Vec::new();
        for _ in 0..100 {
            let z: Vec<f64> = (0..n)
                .map(|_| rng.sample::<f64, _>(StandardNormal) * 1.0)
                .collect();
            x = (0..n)
                .map(|i| {
                    self.mean[i]
                        + self.sigma * (0..n).map(|k| self.b[i][k] * self.d[k] * z[k]).sum::<f64>()
                })
                .collect();
            if x.iter().all(|v| (0.0..=1.0).contains(v)) {
                return x;
            }
        }
        x.iter().map(|v| v.clamp(0.0, 1.0)).collect()
    }

    /// The update from a generation's λ (point, loss) pairs.
    fn tell(&mut self, mut pop: Vec<(Vec<f64>, f64)>) {
        pop.sort_by(|a, b| a.1.total_cmp(&b.1));
        let n = self.mean.len();
        let old = self.mean.clone();
        let ys: Vec<Vec<f64>> = pop
            .iter()
            .take(self.weights.len())
            .map(|(x, _)| (0..n).map(|i| (x[i] - old[i]) / self.sigma).collect())
            .collect();
        let yw: Vec<f64> = (0..n)
            .map(|i| self.weights.iter().zip(&ys).map(|(w, y)| w * y[i]).sum())
            .collect();
        self.mean = (0..n).map(|i| old[i] + self.sigma * yw[i]).collect();
        // C^{-1/2} y_w = B D^{-1} Bᵀ y_w
        let bt_y: Vec<f64> = (0..n)
            .map(|k| (0..n).map(|i| self.b[i][k] * yw[i]).sum::<f64>() / self.d[k])
            .collect();
        let c_inv_sqrt_y: Vec<f64> = (0..n)
            .map(|i| (0..n).map(|k| self.b[i][k] * bt_y[k]).sum())
            .collect();
        let k_cs = (self.cs * (2.0 - self.cs) * self.mu_eff).sqrt();
        self.ps = (0..n)
            .map(|i| (1.0 - self.cs) * self.ps[i] + k_cs * c_inv_sqrt_y[i])
            .collect();
        let ps_norm = self.ps.iter().map(|v| v * v).sum::<f64>().sqrt();
        let g = (self.generation + 1) as f64;
        let hsig = ps_norm / (1.0 - (1.0 - self.cs).powf(2.0 * g)).sqrt() / self.chi_n
            < 1.4 + 2.0 / (n as f64 + 1.0);
        let hs = f64::from(u8::from(hsig));
        let k_cc = (self.cc * (2.0 - self.cc) * self.mu_eff).sqrt();
        self.pc = (0..n)
            .map(|i| (1.0 - self.cc) * self.pc[i] + hs * k_cc * yw[i])
            .collect();
        let keep = 1.0 - self.c1 - self.cmu + (1.0 - hs) * self.c1 * self.cc * (2.0 - self.cc);
        for i in 0..n {
            for j in 0..n {
                let rank_mu: f64 = self
                    .weights
                    .iter()
                    .zip(&ys)
                    .map(|(w, y)| w * y[i] * y[j])
                    .sum();
                self.c[i][j] =
                    keep * self.c[i][j] + self.c1 * self.pc[i] * self.pc[j] + self.cmu * rank_mu;
            }
        }
        self.sigma *= ((self.cs / self.damps) * (ps_norm / self.chi_n - 1.0))
            .min(1.0)
            .exp();
        let (w, b) = sym_eigen(&self.c);
        self.d = w.iter().map(|v| v.max(1e-30).sqrt()).collect();
        self.b = b;
        self.fun_hist.push((pop[0].1, pop[pop.len() - 1].1));
        self.generation += 1;
    }

    /// Optuna's (cmaes library's) stopping tests: flat function values, a collapsed
    /// distribution, or an ill-conditioned covariance.
    fn should_stop(&self) -> bool {
        let n = self.mean.len();
        let term = 10 + (30 * n).div_ceil(self.lambda);
        let recent = &self.fun_hist[self.fun_hist.len().saturating_sub(term)..];
        let flat = self.fun_hist.len() > term && {
            let hi = recent.iter().map(|r| r.1).fold(f64::NEG_INFINITY, f64::max);
            let lo = recent.iter().map(|r| r.0).fold(f64::INFINITY, f64::min);
            hi - lo < 1e-12
        };
        let tolx = 1e-12 * self.sigma0;
        let collapsed = (0..n).all(|i| {
            self.sigma * self.c[i][i].sqrt() < tolx && self.sigma * self.pc[i].abs() < tolx
        });
        let dmax = self.d.iter().copied().fold(0.0, f64::max);
        let dmin = self.d.iter().copied().fold(f64::INFINITY, f64::min);
        flat || collapsed || (dmax / dmin).powi(2) > 1e14
    }
}

/// Restart bookkeeping (BIPOP's two budgets).
struct Restarts {
    count: u64,
    large: u32,
    small_evals: usize,
    large_evals: usize,
    small: bool,
}

/// An assignment as a key for matching trials to candidates (exact: Debug prints floats
/// round-trip).
fn key(a: &Assignment) -> String {
    format!("{a:?}")
}

impl CmaEs {
    fn lambda0(&self) -> usize {
        4 + (3.0 * (self.space.len() as f64).ln()).floor() as usize
    }

    /// The next run after `r.count` restarts: IPOP doubles the population; BIPOP alternates
    /// doubling it with small runs (random population and σ) while their budget is the smaller.
    fn restarted(&self, r: &mut Restarts) -> Cma {
        r.count += 1;
        let mut rng = rng::stream(self.seed, &[rng::CMA, r.count, u64::MAX]);
        let mean: Vec<f64> = (0..self.space.len()).map(|_| rng.random::<f64>()).collect();
        let l0 = self.lambda0();
        let (lambda, sigma) = if self.restart == Restart::Bipop && r.small_evals < r.large_evals {
            r.small = true;
            let mult = 2f64.powi(r.large as i32);
            let (u1, u2): (f64, f64) = (rng.random(), rng.random());
            (
                (l0 as f64 * mult.powf(u1 * u1)).floor() as usize,
                self.sigma0 * 10f64.powf(-2.0 * u2),
            )
        } else {
            r.small = false;
            r.large += 1;
            (l0 << r.large.min(20), self.sigma0)
        };
        Cma::new(r.count, mean, sigma, lambda.max(l0))
    }

    /// The state after the history's told generations, and the candidates of the open
    /// generation that trials already took.
    fn replay(&self, history: &[Trial]) -> (Cma, Vec<bool>) {
        let mut cma = Cma::new(0, vec![0.5; self.space.len()], self.sigma0, self.lambda0());
        let mut r = Restarts {
            count: 0,
            large: 0,
            small_evals: 0,
            large_evals: 0,
            small: false,
        };
        let mut pos = 0;
        loop {
            let limit = history.len() - pos + cma.lambda;
            let cands: Vec<Vec<f64>> = (0..limit).map(|j| cma.candidate(self.seed, j)).collect();
            let mut free: HashMap<String, Vec<usize>> = HashMap::new();
            for (j, x) in cands.iter().enumerate().rev() {
                free.entry(key(&self.space.at_unit(x))).or_default().push(j);
            }
            let mut used = vec![false; limit];
            let mut told = None;
            let mut pop = Vec::new();
            let mut open = true;
            for (i, t) in history.iter().enumerate().skip(pos) {
                let Some(j) = free.get_mut(&key(&t.assignment)).and_then(Vec::pop) else {
                    continue;
                };
                used[j] = true;
                if !open {
                    continue;
                }
                match (t.state, t.loss(self.direction)) {
                    (TrialState::Running, _) => open = false,
                    (TrialState::Succeeded, Some(l)) => pop.push((cands[j].clone(), l)),
                    _ => {}
                }
                if open && pop.len() == cma.lambda {
                    told = Some(i);
                    open = false;
                }
            }
            let Some(last) = told else { return (cma, used) };
            let lambda = cma.lambda;
            cma.tell(pop);
            if r.small {
                r.small_evals += lambda;
            } else {
                r.large_evals += lambda;
            }
            if self.restart != Restart::None && cma.should_stop() {
                cma = self.restarted(&mut r);
            }
            pos = last + 1;
        }
    }
}

impl Suggester for CmaEs {
    fn suggest(&mut self, history: &[Trial], count: usize) -> Result<Vec<Assignment>, TuneError> {
        let (cma, used) = self.replay(history);
        Ok((0..)
            .filter(|&j| !used.get(j).copied().unwrap_or(false))
            .take(count)
            .map(|j| self.space.at_unit(&cma.candidate(self.seed, j)))
            .collect())
    }

    fn seed(&self) -> u64 {
        self.seed
    }
}
