//! The acquisition: log expected improvement under the GP's posterior, maximised as Optuna's
//! GPSampler does: 2048 scrambled-Sobol points of the cube, then L-BFGS from the best of them,
//! 8 more drawn by roulette (probability ∝ EI, without replacement) and the best trial so far,
//! in coordinates scaled by the length scales (x_j / ℓ_j, which equalises the curvature).

use super::lbfgs::{self, Options};
use crate::gp::Gp;
use crate::sobol::sobol_point;
use crate::stats::{norm_cdf, norm_pdf, LN_SQRT_2PI};
use rand::RngExt;
use rand_pcg::Pcg64;

const PRELIMINARY: usize = 2048;
const LOCAL_STARTS: usize = 10;
/// Optuna's tolerance; L-BFGS stops at a projected gradient of √tol.
const TOL: f64 = 1e-4;
/// Variance floor (standardised units), so σ never reaches 0.
const MIN_VAR: f64 = 1e-12;

/// ln E[max(0, z + ε)], ε ~ N(0, 1), and its derivative in z, stable for very negative z
/// (there, the asymptotic series of Mills' ratio replaces z·Φ(z) + φ(z), which cancels).
pub(crate) fn log_ei_std(z: f64) -> (f64, f64) {
    if z >= -25.0 {
        let cdf = norm_cdf(z);
        let ei = z * cdf + norm_pdf(z);
        (ei.ln(), cdf / ei)
    } else {
        let u = 1.0 / (z * z);
        // Φ(z) = φ(z)·m and EI = φ(z)·q, as series in u = 1/z².
        let m = -(1.0 - u * (1.0 - u * (3.0 - u * (15.0 - u * 105.0)))) / z;
        let q = u * (1.0 - u * (3.0 - u * (15.0 - u * (105.0 - u * 945.0))));
        (-0.5 * z * z - LN_SQRT_2PI + q.ln(), m / q)
    }
}

/// Log-EI below `best` (the smallest standardised loss) of a GP over standardised losses.
pub(crate) struct LogEi<'a> {
    pub gp: &'a Gp,
    pub best: f64,
}

impl LogEi<'_> {
    pub fn value(&self, x: &[f64]) -> f64 {
        let (mu, var) = self.gp.predict(x);
        let sigma = var.max(MIN_VAR).sqrt();
        log_ei_std((self.best - mu) / sigma).0 + sigma.ln()
    }

    /// The value and its gradient in `x`.
    pub fn value_grad(&self, x: &[f64]) -> (f64, Vec<f64>) {
        let (mu, var, dmu, dvar) = self.gp.predict_grad(x);
        let floored = var < MIN_VAR;
        let sigma = var.max(MIN_VAR).sqrt();
        let z = (self.best - mu) / sigma;
        let (v, dz) = log_ei_std(z);
        let grad = dmu
            .iter()
            .zip(&dvar)
            .map(|(dm, dv)| {
                // dσ/σ = dvar / (2 var)
                let ds = if floored { 0.0 } else { dv / (2.0 * var) };
                dz * (-dm / sigma - z * ds) + ds
            })
            .collect();
        (v + sigma.ln(), grad)
    }
}

/// The preliminary points and their values.
fn preliminary(acq: &LogEi, d: usize, rng: &mut Pcg64) -> Vec<(f64, Vec<f64>)> {
    let seed: u64 = rng.random();
    (0..PRELIMINARY)
        .map(|i| {
            let u = if d <= 256 {
                sobol_point(i as u32, d, seed)
            } else {
                (0..d).map(|_| rng.random::<f64>()).collect()
            };
            (acq.value(&u), u)
        })
        .collect()
}

/// The best point, then up to `k` others drawn with probability ∝ exp(value − best value)
/// without replacement (Efraimidis–Spirakis keys ln(u)/w).
fn roulette(pts: &[(f64, Vec<f64>)], k: usize, rng: &mut Pcg64) -> Vec<usize> {
    let top = (0..pts.len())
        .max_by(|&a, &b| pts[a].0.total_cmp(&pts[b].0).then(b.cmp(&a)))
        .expect("points");
    let fmax = pts[top].0;
    let mut keys: Vec<(f64, usize)> = pts
        .iter()
        .enumerate()
        .filter_map(|(i, (f, _))| {
            let u: f64 = 1.0 - rng.random::<f64>(); // in (0, 1]
            let w = (f - fmax).exp();
            (i != top && w > 0.0).then(|| (u.ln() / w, i))
        })
        .collect();
    keys.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    std::iter::once(top)
        .chain(keys.into_iter().take(k).map(|(_, i)| i))
        .collect()
}

/// L-BFGS on −log-EI from `x0`, in coordinates x_j / ℓ_j; the start itself when it is not
/// improved on.
fn local(acq: &LogEi, ls: &[f64], x0: &[f64], f0: f64) -> (f64, Vec<f64>) {
    let z0: Vec<f64> = x0.iter().zip(ls).map(|(x, l)| x / l).collect();
    let mut lo = vec![0.0; ls.len()];
    let mut hi: Vec<f64> = ls.iter().map(|l| 1.0 / l).collect();
    // A list's choice stays where it is (its distance has no gradient); [`sweep`] varies it.
    for (j, _) in acq.gp.cats().iter().enumerate().filter(|(_, &n)| n > 0) {
        (lo[j], hi[j]) = (z0[j], z0[j]);
    }
    let unscale = |z: &[f64]| -> Vec<f64> {
        z.iter()
            .zip(ls)
            .map(|(z, l)| (z * l).clamp(0.0, 1.0))
            .collect()
    };
    let opts = Options {
        pgtol: TOL.sqrt(),
        ..Options::default()
    };
    let m = lbfgs::minimize(
        |z| {
            let (v, g) = acq.value_grad(&unscale(z));
            (-v, g.iter().zip(ls).map(|(g, l)| -g * l).collect())
        },
        &z0,
        &lo,
        &hi,
        opts,
    );
    if m.iters > 0 && -m.f > f0 {
        (-m.f, unscale(&m.x))
    } else {
        (f0, x0.to_vec())
    }
}

/// The point of the cube that maximises the acquisition; `refine` false keeps the best
/// preliminary point (Katib's `acq_optimizer: sampling`).
pub(crate) fn maximise(acq: &LogEi, incumbent: &[f64], refine: bool, rng: &mut Pcg64) -> Vec<f64> {
    let d = incumbent.len();
    let pts = preliminary(acq, d, rng);
    let starts = roulette(&pts, LOCAL_STARTS - 2, rng);
    if !refine {
        return pts[starts[0]].1.clone();
    }
    let ls = acq.gp.length_scales();
    let from_incumbent = (acq.value(incumbent), incumbent.to_vec());
    starts
        .iter()
        .map(|&i| &pts[i])
        .chain(std::iter::once(&from_incumbent))
        .map(|(f, x)| local(acq, &ls, x, *f))
        .fold(None, |acc: Option<(f64, Vec<f64>)>, (f, x)| match acc {
            Some((bf, bx)) if bf >= f => Some((bf, bx)),
            _ => Some((f, x)),
        })
        .map(|(f, x)| sweep(acq, f, x))
        .expect("starts")
}

/// Each list dimension of `x` in turn set to each of its choices (the middle of its cell),
/// keeping any that raises the acquisition: the local search over categorical parameters
/// that L-BFGS cannot do.
fn sweep(acq: &LogEi, mut f: f64, mut x: Vec<f64>) -> Vec<f64> {
    for (j, &n) in acq.gp.cats().iter().enumerate() {
        for k in 0..n {
            let mut y = x.clone();
            y[j] = (k as f64 + 0.5) / n as f64;
            let v = acq.value(&y);
            if v > f {
                (f, x) = (v, y);
            }
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ei_is_continuous_and_its_derivative_right() {
        for z in [-40.0, -25.0001, -24.9999, -10.0, -1.0, 0.0, 0.5, 3.0] {
            let (v, d) = log_ei_std(z);
            let h = 1e-5;
            let fd = (log_ei_std(z + h).0 - log_ei_std(z - h).0) / (2.0 * h);
            assert!(
                (fd - d).abs() < 1e-4 * d.abs().max(1.0),
                "z {z}: {fd} vs {d}"
            );
            assert!(v.is_finite());
        }
        let (a, b) = (log_ei_std(-25.0 - 1e-12).0, log_ei_std(-25.0 + 1e-12).0);
        assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        // EI at 0 is φ(0).
        assert!((log_ei_std(0.0).0 - (-LN_SQRT_2PI)).abs() < 1e-12);
    }
}
