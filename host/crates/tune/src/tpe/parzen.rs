//! Optuna's Parzen estimator: a weighted mixture of one kernel per observation plus a prior
//! kernel; per parameter a truncated normal (discretised for stepped linear numbers) or a
//! categorical distribution. Bandwidths: Scott's rule when multivariate, the larger gap to a
//! neighbour when univariate; clipped by the "magic clip"; `consider_endpoints` off.

use crate::space::{Dim, Kind};
use crate::stats::{trunc_log_mass, trunc_log_pdf, trunc_normal};
use rand::RngExt;
use rand_pcg::Pcg64;

/// One parameter's kernels.
enum Kernels {
    Num {
        mus: Vec<f64>,
        sigmas: Vec<f64>,
        lo: f64,
        hi: f64,
        min: f64,
        step: Option<f64>,
    },
    Cat {
        probs: Vec<Vec<f64>>,
    },
}

pub(crate) struct Parzen {
    log_weights: Vec<f64>,
    weights: Vec<f64>,
    kernels: Vec<Kernels>,
}

/// Optuna's default weights: ones below 25 observations, else a ramp from 1/n for the oldest.
pub(crate) fn default_weights(n: usize) -> Vec<f64> {
    if n < 25 {
        return vec![1.0; n];
    }
    let ramp = n - 25;
    let mut w: Vec<f64> = (0..ramp)
        .map(|i| {
            if ramp == 1 {
                1.0 / n as f64
            } else {
                1.0 / n as f64 + (1.0 - 1.0 / n as f64) * i as f64 / (ramp - 1) as f64
            }
        })
        .collect();
    w.extend(std::iter::repeat_n(1.0, 25));
    w
}

impl Parzen {
    /// The estimator of `obs` (one row per observation, one internal value per dimension, in
    /// trial order) over `dims`.
    pub fn new(dims: &[&Dim], obs: &[Vec<f64>], prior_weight: f64, multivariate: bool) -> Parzen {
        let mut weights = default_weights(obs.len());
        weights.push(prior_weight);
        let total: f64 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= total);
        let kernels = dims
            .iter()
            .enumerate()
            .map(|(j, d)| {
                let col: Vec<f64> = obs.iter().map(|o| o[j]).collect();
                kernels(d, &col, prior_weight, multivariate, dims.len())
            })
            .collect();
        Parzen {
            log_weights: weights.iter().map(|w| w.ln()).collect(),
            weights,
            kernels,
        }
    }

    /// A point drawn from the mixture (internal values).
    pub fn sample(&self, rng: &mut Pcg64) -> Vec<f64> {
        let mut u: f64 = rng.random();
        let mut k = self.weights.len() - 1;
        for (i, w) in self.weights.iter().enumerate() {
            if u < *w {
                k = i;
                break;
            }
            u -= w;
        }
        self.kernels
            .iter()
            .map(|ks| sample_kernel(ks, k, rng))
            .collect()
    }

    /// ln of the mixture's density (mass, for discrete parameters) at `x`.
    pub fn log_pdf(&self, x: &[f64]) -> f64 {
        let terms: Vec<f64> = (0..self.weights.len())
            .map(|k| {
                self.log_weights[k]
                    + self
                        .kernels
                        .iter()
                        .zip(x)
                        .map(|(ks, &xi)| log_kernel(ks, k, xi))
                        .sum::<f64>()
            })
            .collect();
        let m = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if m == f64::NEG_INFINITY {
            return m;
        }
        m + terms.iter().map(|t| (t - m).exp()).sum::<f64>().ln()
    }
}

fn kernels(d: &Dim, col: &[f64], prior_weight: f64, multivariate: bool, n_dims: usize) -> Kernels {
    match &d.kind {
        Kind::Numeric(n) => {
            let (lo, hi) = (n.lo, n.hi);
            let mut sigmas = if multivariate {
                let s =
                    0.2 * (col.len().max(1) as f64).powf(-1.0 / (n_dims as f64 + 4.0)) * (hi - lo);
                vec![s; col.len()]
            } else {
                neighbour_sigmas(col, lo, hi)
            };
            let min_sigma = (hi - lo) / (100.0f64).min(1.0 + col.len() as f64 + 1.0);
            sigmas
                .iter_mut()
                .for_each(|s| *s = s.clamp(min_sigma, hi - lo));
            let mut mus = col.to_vec();
            mus.push((lo + hi) / 2.0);
            sigmas.push(hi - lo);
            let step = if n.log { None } else { n.step };
            Kernels::Num {
                mus,
                sigmas,
                lo,
                hi,
                min: n.min,
                step,
            }
        }
        Kind::Choice(values) => {
            let c = values.len();
            let n_kernels = col.len() + 1;
            let mut probs = vec![vec![prior_weight / n_kernels as f64; c]; n_kernels];
            for (row, &i) in probs.iter_mut().zip(col) {
                row[i as usize] += 1.0;
            }
            for row in &mut probs {
                let s: f64 = row.iter().sum();
                row.iter_mut().for_each(|p| *p /= s);
            }
            Kernels::Cat { probs }
        }
    }
}

/// Univariate bandwidths: each observation's larger gap to its sorted neighbours, with the
/// bounds as outer neighbours, except that the outermost use their inner gap.
fn neighbour_sigmas(col: &[f64], lo: f64, hi: f64) -> Vec<f64> {
    let n = col.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| col[a].total_cmp(&col[b]));
    let mut ext = vec![lo];
    ext.extend(order.iter().map(|&i| col[i]));
    ext.push(hi);
    let mut sorted: Vec<f64> = (1..=n)
        .map(|i| (ext[i] - ext[i - 1]).max(ext[i + 1] - ext[i]))
        .collect();
    if ext.len() >= 4 {
        sorted[0] = ext[2] - ext[1];
        sorted[n - 1] = ext[n] - ext[n - 1];
    }
    let mut sigmas = vec![0.0; n];
    for (rank, &i) in order.iter().enumerate() {
        sigmas[i] = sorted[rank];
    }
    sigmas
}

fn sample_kernel(ks: &Kernels, k: usize, rng: &mut Pcg64) -> f64 {
    match ks {
        Kernels::Num {
            mus,
            sigmas,
            lo,
            hi,
            min,
            step,
        } => {
            let x = trunc_normal(rng, mus[k], sigmas[k], *lo, *hi);
            match step {
                Some(s) => min + ((x - min) / s).round() * s,
                None => x,
            }
        }
        Kernels::Cat { probs } => {
            let mut u: f64 = rng.random();
            for (i, p) in probs[k].iter().enumerate() {
                if u < *p {
                    return i as f64;
                }
                u -= p;
            }
            (probs[k].len() - 1) as f64
        }
    }
}

fn log_kernel(ks: &Kernels, k: usize, x: f64) -> f64 {
    match ks {
        Kernels::Num {
            mus,
            sigmas,
            lo,
            hi,
            step,
            ..
        } => match step {
            Some(s) => trunc_log_mass(x, s / 2.0, mus[k], sigmas[k], *lo, *hi),
            None => trunc_log_pdf(x, mus[k], sigmas[k], *lo, *hi),
        },
        Kernels::Cat { probs } => probs[k][x as usize].ln(),
    }
}
