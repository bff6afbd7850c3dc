//! A Gaussian process regressor for Bayesian optimisation, written here because `friedrich`
//! (0.6) fits its kernel under a wall-clock limit (chrono), so the fit and hence the suggestion
//! would depend on machine load, which breaks reproducibility; `egobox-gp` brings linfa and
//! ndarray for what is ~150 lines here.
//!
//! As scikit-optimize's default: Matérn 5/2 kernel with one length scale per dimension (inputs
//! in the unit cube), a constant amplitude and a small noise, targets standardised. Length
//! scales and noise maximise the marginal likelihood (amplitude profiled out in closed form)
//! by a deterministic search: an isotropic scan, then coordinate refinement.

use crate::linalg::{cholesky, solve_lower, solve_upper_t, Mat};

pub(crate) struct Gp {
    x: Vec<Vec<f64>>,
    ls: Vec<f64>,
    chol: Mat,
    alpha: Vec<f64>,
    amp: f64,
    y_mean: f64,
    y_std: f64,
}

/// Matérn 5/2 correlation.
fn matern52(a: &[f64], b: &[f64], ls: &[f64]) -> f64 {
    let r2: f64 = a
        .iter()
        .zip(b)
        .zip(ls)
        .map(|((x, y), l)| ((x - y) / l).powi(2))
        .sum();
    let r = (5.0 * r2).sqrt();
    (1.0 + r + 5.0 * r2 / 3.0) * (-r).exp()
}

struct Fit {
    nll: f64,
    chol: Mat,
    alpha: Vec<f64>,
    amp: f64,
}

/// The profiled negative log likelihood for length scales `ls` and relative noise `g`.
fn fit_with(x: &[Vec<f64>], y: &[f64], ls: &[f64], g: f64) -> Option<Fit> {
    let n = x.len();
    let k: Mat = (0..n)
        .map(|i| {
            (0..n)
                .map(|j| matern52(&x[i], &x[j], ls) + if i == j { g } else { 0.0 })
                .collect()
        })
        .collect();
    let chol = cholesky(&k)?;
    let alpha = solve_upper_t(&chol, &solve_lower(&chol, y));
    let quad: f64 = y
        .iter()
        .zip(&alpha)
        .map(|(a, b)| a * b)
        .sum::<f64>()
        .max(1e-12);
    let amp = quad / n as f64;
    let logdet: f64 = (0..n).map(|i| chol[i][i].ln()).sum();
    Some(Fit {
        nll: 0.5 * n as f64 * amp.ln() + logdet,
        chol,
        alpha,
        amp,
    })
}

const NOISES: [f64; 3] = [1e-6, 1e-4, 1e-2];
const SCALES: [f64; 9] = [0.03, 0.06, 0.1, 0.15, 0.25, 0.4, 0.7, 1.2, 2.5];
const FACTORS: [f64; 4] = [0.5, 0.75, 1.33, 2.0];

impl Gp {
    /// Fits `y` (losses) at the unit-cube points `x`.
    pub fn fit(x: Vec<Vec<f64>>, y: &[f64]) -> Option<Gp> {
        let d = x.first()?.len();
        let y_mean = y.iter().sum::<f64>() / y.len() as f64;
        let var = y.iter().map(|v| (v - y_mean).powi(2)).sum::<f64>() / y.len() as f64;
        let y_std = if var > 0.0 { var.sqrt() } else { 1.0 };
        let ys: Vec<f64> = y.iter().map(|v| (v - y_mean) / y_std).collect();
        let mut best: Option<(Fit, Vec<f64>, f64)> = None;
        let consider = |ls: Vec<f64>, g: f64, best: &mut Option<(Fit, Vec<f64>, f64)>| {
            if let Some(f) = fit_with(&x, &ys, &ls, g) {
                if best.as_ref().is_none_or(|(b, _, _)| f.nll < b.nll) {
                    *best = Some((f, ls, g));
                }
            }
        };
        for g in NOISES {
            for s in SCALES {
                consider(vec![s; d], g, &mut best);
            }
        }
        for _pass in 0..2 {
            for j in 0..d {
                let (ls0, g) = best.as_ref().map(|(_, ls, g)| (ls.clone(), *g))?;
                for f in FACTORS {
                    let mut ls = ls0.clone();
                    ls[j] = (ls[j] * f).clamp(0.01, 10.0);
                    consider(ls, g, &mut best);
                }
            }
        }
        let (fit, ls, _) = best?;
        Some(Gp {
            x,
            ls,
            chol: fit.chol,
            alpha: fit.alpha,
            amp: fit.amp,
            y_mean,
            y_std,
        })
    }

    /// Posterior mean and standard deviation at `p`, in the targets' units.
    pub fn predict(&self, p: &[f64]) -> (f64, f64) {
        let k: Vec<f64> = self.x.iter().map(|xi| matern52(xi, p, &self.ls)).collect();
        let mu: f64 = k.iter().zip(&self.alpha).map(|(a, b)| a * b).sum();
        let v = solve_lower(&self.chol, &k);
        let var = (1.0 - v.iter().map(|x| x * x).sum::<f64>()).max(1e-12) * self.amp;
        (self.y_mean + mu * self.y_std, var.sqrt() * self.y_std)
    }
}

/// Expected improvement below `best` (minimisation), with exploration margin `xi`.
pub(crate) fn expected_improvement(mu: f64, sigma: f64, best: f64, xi: f64) -> f64 {
    let imp = best - mu - xi;
    let z = imp / sigma;
    imp * crate::stats::norm_cdf(z) + sigma * crate::stats::norm_pdf(z)
}
