//! One CMA-ES run's distribution: its constants, candidates and update (Hansen's tutorial
//! parameters), and the stopping tests of Optuna's `cmaes` library.

use crate::linalg::{sym_eigen, Mat};
use crate::rng;
use rand::RngExt;
use rand_distr::StandardNormal;

/// One run's distribution and its constants.
#[derive(Clone)]
pub(super) struct Cma {
    restart: u64,
    generation: u64,
    pub lambda: usize,
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
    pub fn new(restart: u64, mean: Vec<f64>, sigma: f64, lambda: usize) -> Cma {
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
    pub fn candidate(&self, seed: u64, j: usize) -> Vec<f64> {
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
    pub fn tell(&mut self, mut pop: Vec<(Vec<f64>, f64)>) {
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
    pub fn should_stop(&self) -> bool {
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
