//! A small box-constrained L-BFGS (projected two-loop direction, backtracking Armijo line search
//! along the projected path), for the GP's kernel fit (log-parameters in wide bounds) and for
//! the acquisition's local search (the unit cube).
//!
//! Hand-written rather than a crate: `argmin`'s L-BFGS has no box constraints (the acquisition
//! needs the cube) and brings a second `rand`, `anyhow` and a timer; `lbfgsb` binds Fortran-
//! derived C through bindgen (libclang at build time). The method is the usual simplification
//! of L-BFGS-B: variables held at a bound by the gradient are frozen for the step, the others
//! follow the quasi-Newton direction, projected back into the box. Deterministic: no clock, no
//! randomness, the same arithmetic for the same inputs.

use std::collections::VecDeque;

/// Stopping rules, as scipy's L-BFGS-B names them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Options {
    /// stop when the projected gradient's largest component is at most this
    pub pgtol: f64,
    /// stop when an accepted step lowers f by at most `ftol · max(|f|, |f_new|, 1)`
    pub ftol: f64,
    pub max_iters: usize,
    /// how many (s, y) pairs the inverse Hessian approximation keeps
    pub memory: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pgtol: 1e-5,
            ftol: 2.2e-9,
            max_iters: 200,
            memory: 10,
        }
    }
}

/// The minimiser found, its value, and how many iterations moved it.
pub(crate) struct Minimum {
    pub x: Vec<f64>,
    pub f: f64,
    pub iters: usize,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn project(x: &mut [f64], lo: &[f64], hi: &[f64]) {
    for ((v, l), h) in x.iter_mut().zip(lo).zip(hi) {
        *v = v.clamp(*l, *h);
    }
}

/// Largest component of the projected gradient `P(x − g) − x`.
fn projected_gradient_norm(x: &[f64], g: &[f64], lo: &[f64], hi: &[f64]) -> f64 {
    (0..x.len())
        .map(|i| ((x[i] - g[i]).clamp(lo[i], hi[i]) - x[i]).abs())
        .fold(0.0, f64::max)
}

/// Whether variable `i` sits on a bound that the gradient pushes it against.
fn held(i: usize, x: &[f64], g: &[f64], lo: &[f64], hi: &[f64]) -> bool {
    (x[i] <= lo[i] && g[i] > 0.0) || (x[i] >= hi[i] && g[i] < 0.0)
}

/// The L-BFGS direction −H·g over the free variables (held ones get 0).
fn direction(g: &[f64], free: &[bool], mem: &VecDeque<(Vec<f64>, Vec<f64>, f64)>) -> Vec<f64> {
    let mut q: Vec<f64> = g
        .iter()
        .zip(free)
        .map(|(v, &f)| if f { *v } else { 0.0 })
        .collect();
    let mut a = vec![0.0; mem.len()];
    for (k, (s, y, rho)) in mem.iter().enumerate().rev() {
        a[k] = rho * dot(s, &q);
        q.iter_mut().zip(y).for_each(|(q, y)| *q -= a[k] * y);
    }
    let gamma = mem.back().map_or_else(
        || 1.0 / dot(&q, &q).sqrt().max(1e-300),
        |(s, y, _)| dot(s, y) / dot(y, y),
    );
    q.iter_mut().for_each(|v| *v *= gamma);
    for (k, (s, y, rho)) in mem.iter().enumerate() {
        let b = rho * dot(y, &q);
        q.iter_mut().zip(s).for_each(|(q, s)| *q += (a[k] - b) * s);
    }
    q.iter()
        .zip(free)
        .map(|(v, &f)| if f { -v } else { 0.0 })
        .collect()
}

/// Minimises `f` (value and gradient) over the box [lo, hi] from `x0`.
pub(crate) fn minimize(
    mut f: impl FnMut(&[f64]) -> (f64, Vec<f64>),
    x0: &[f64],
    lo: &[f64],
    hi: &[f64],
    opts: Options,
) -> Minimum {
    let mut x = x0.to_vec();
    project(&mut x, lo, hi);
    let (mut fx, mut g) = f(&x);
    let mut mem: VecDeque<(Vec<f64>, Vec<f64>, f64)> = VecDeque::new();
    let mut iters = 0;
    while iters < opts.max_iters && fx.is_finite() {
        if projected_gradient_norm(&x, &g, lo, hi) <= opts.pgtol {
            break;
        }
        let free: Vec<bool> = (0..x.len()).map(|i| !held(i, &x, &g, lo, hi)).collect();
        let mut d = direction(&g, &free, &mem);
        if dot(&d, &g) >= 0.0 {
            mem.clear();
            d = direction(&g, &free, &mem);
        }
        let Some((xn, fxn, gn)) = line_search(&mut f, &x, fx, &g, &d, lo, hi) else {
            break;
        };
        iters += 1;
        let s: Vec<f64> = xn.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = gn.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-10 * dot(&y, &y) {
            if mem.len() == opts.memory {
                mem.pop_front();
            }
            mem.push_back((s, y, 1.0 / sy));
        }
        let small = fx - fxn <= opts.ftol * fx.abs().max(fxn.abs()).max(1.0);
        (x, fx, g) = (xn, fxn, gn);
        if small {
            break;
        }
    }
    Minimum { x, f: fx, iters }
}

/// Backtracking along the projected path until the Armijo condition holds.
fn line_search(
    f: &mut impl FnMut(&[f64]) -> (f64, Vec<f64>),
    x: &[f64],
    fx: f64,
    g: &[f64],
    d: &[f64],
    lo: &[f64],
    hi: &[f64],
) -> Option<(Vec<f64>, f64, Vec<f64>)> {
    let mut t = 1.0;
    for _ in 0..40 {
        let mut xn: Vec<f64> = x.iter().zip(d).map(|(a, b)| a + t * b).collect();
        project(&mut xn, lo, hi);
        let step: Vec<f64> = xn.iter().zip(x).map(|(a, b)| a - b).collect();
        let decrease = dot(g, &step);
        if decrease >= 0.0 {
            return None;
        }
        let (fxn, gn) = f(&xn);
        if fxn.is_finite() && fxn <= fx + 1e-4 * decrease {
            return Some((xn, fxn, gn));
        }
        t *= 0.5;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rosenbrock(x: &[f64]) -> (f64, Vec<f64>) {
        let (a, b) = (x[0], x[1]);
        let f = (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2);
        let g = vec![
            -2.0 * (1.0 - a) - 400.0 * a * (b - a * a),
            200.0 * (b - a * a),
        ];
        (f, g)
    }

    #[test]
    fn finds_rosenbrocks_minimum() {
        let inf = f64::INFINITY;
        let m = minimize(
            rosenbrock,
            &[-1.2, 1.0],
            &[-inf, -inf],
            &[inf, inf],
            Options::default(),
        );
        assert!(
            (m.x[0] - 1.0).abs() < 1e-3 && (m.x[1] - 1.0).abs() < 1e-3,
            "{:?}",
            m.x
        );
    }

    #[test]
    fn stops_on_the_bound() {
        // The unconstrained minimum (1, 1) is outside; on the box it is at a = 0.5, b = 0.25.
        let m = minimize(
            rosenbrock,
            &[0.0, 0.0],
            &[-2.0, -2.0],
            &[0.5, 2.0],
            Options::default(),
        );
        assert!((m.x[0] - 0.5).abs() < 1e-9, "{:?}", m.x);
        assert!((m.x[1] - 0.25).abs() < 1e-3, "{:?}", m.x);
    }
}
