//! The little dense linear algebra the GP and CMA-ES need: Cholesky with triangular solves and
//! the inverse, on flat row-major buffers (the GP's, up to a thousand or so wide, where cache
//! order matters), and Jacobi's method for symmetric eigendecomposition on `Vec<Vec<f64>>`.
//! Matrices here are at most a few hundred wide (trials or parameters), so a linear-algebra
//! crate (nalgebra, ndarray) would add much build for little.

pub(crate) type Mat = Vec<Vec<f64>>;

/// The dot product, in four lanes so that the compiler vectorises it (the order of the sums is
/// fixed, so the result is too).
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0; 4];
    for (x, y) in a.chunks_exact(4).zip(b.chunks_exact(4)) {
        for k in 0..4 {
            acc[k] += x[k] * y[k];
        }
    }
    let tail: f64 = (n - n % 4..n).map(|i| a[i] * b[i]).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// `y += a·x`.
fn axpy(y: &mut [f64], a: f64, x: &[f64]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += a * x);
}

/// A lower-triangular factor, row-major in an n×n buffer (the upper part is zero).
#[derive(Clone, Debug)]
pub(crate) struct Lower {
    pub n: usize,
    pub a: Vec<f64>,
}

impl Lower {
    pub fn row(&self, i: usize) -> &[f64] {
        &self.a[i * self.n..i * self.n + i + 1]
    }

    /// The Cholesky factor of the symmetric positive-definite n×n `a` (row-major; only the
    /// lower triangle is read), or `None`.
    pub fn cholesky(mut a: Vec<f64>, n: usize) -> Option<Lower> {
        for i in 0..n {
            for j in 0..=i {
                let (done, row_i) = a.split_at_mut(i * n);
                let lj = if j == i {
                    &row_i[..j]
                } else {
                    &done[j * n..j * n + j]
                };
                let s = row_i[j] - dot(&row_i[..j], lj);
                if j == i {
                    if s <= 0.0 || !s.is_finite() {
                        return None;
                    }
                    row_i[i] = s.sqrt();
                } else {
                    row_i[j] = s / done[j * n + j];
                }
            }
            a[i * n + i + 1..(i + 1) * n].fill(0.0);
        }
        Some(Lower { n, a })
    }

    /// Solves L y = b in place.
    pub fn solve(&self, b: &mut [f64]) {
        for i in 0..self.n {
            let r = self.row(i);
            b[i] = (b[i] - dot(&r[..i], &b[..i])) / r[i];
        }
    }

    /// Solves Lᵀ x = y in place.
    pub fn solve_t(&self, y: &mut [f64]) {
        for i in (0..self.n).rev() {
            let r = self.row(i);
            y[i] /= r[i];
            let xi = y[i];
            axpy(&mut y[..i], -xi, &r[..i]);
        }
    }

    /// A⁻¹ = L⁻ᵀ L⁻¹, full and row-major: n³/2 multiply-adds.
    pub fn inverse(&self) -> Vec<f64> {
        let n = self.n;
        // L⁻¹ row by row: row i = (e_i − Σ_{k<i} L_ik · row k) / L_ii.
        let mut inv = vec![0.0; n * n];
        for i in 0..n {
            let (done, row) = inv.split_at_mut(i * n);
            let li = self.row(i);
            row[i] = 1.0;
            for (k, &lik) in li[..i].iter().enumerate() {
                axpy(&mut row[..=k], -lik, &done[k * n..k * n + k + 1]);
            }
            row[..=i].iter_mut().for_each(|v| *v /= li[i]);
        }
        // (L⁻ᵀL⁻¹)_ab = Σ_k (L⁻¹)_ka (L⁻¹)_kb, accumulated row by row in the lower triangle.
        let mut out = vec![0.0; n * n];
        for k in 0..n {
            let r = &inv[k * n..k * n + k + 1];
            for (a, &ra) in r.iter().enumerate() {
                axpy(&mut out[a * n..a * n + a + 1], ra, &r[..=a]);
            }
        }
        for a in 0..n {
            for b in 0..a {
                out[b * n + a] = out[a * n + b];
            }
        }
        out
    }
}

/// Eigenvalues and eigenvectors (as columns of the returned matrix) of a symmetric `a`,
/// by cyclic Jacobi rotations.
pub(crate) fn sym_eigen(a: &Mat) -> (Vec<f64>, Mat) {
    let n = a.len();
    let mut a = a.clone();
    let mut v: Mat = (0..n)
        .map(|i| (0..n).map(|j| f64::from(u8::from(i == j))).collect())
        .collect();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        if off < 1e-30 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                if a[p][q].abs() > 1e-300 {
                    rotate(&mut a, &mut v, p, q);
                }
            }
        }
    }
    ((0..n).map(|i| a[i][i]).collect(), v)
}

/// One Jacobi rotation zeroing a[p][q].
fn rotate(a: &mut Mat, v: &mut Mat, p: usize, q: usize) {
    let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
    let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
    let t = if theta == 0.0 { 1.0 } else { t };
    let c = 1.0 / (t * t + 1.0).sqrt();
    let s = t * c;
    for row in a.iter_mut() {
        let (akp, akq) = (row[p], row[q]);
        row[p] = c * akp - s * akq;
        row[q] = s * akp + c * akq;
    }
    let (rp, rq) = (a[p].clone(), a[q].clone());
    for (k, (apk, aqk)) in rp.into_iter().zip(rq).enumerate() {
        a[p][k] = c * apk - s * aqk;
        a[q][k] = s * apk + c * aqk;
    }
    for row in v.iter_mut() {
        let (vp, vq) = (row[p], row[q]);
        row[p] = c * vp - s * vq;
        row[q] = s * vp + c * vq;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigen_reconstructs() {
        let a = vec![
            vec![4.0, 1.0, 0.5],
            vec![1.0, 3.0, 0.2],
            vec![0.5, 0.2, 2.0],
        ];
        let (w, v) = sym_eigen(&a);
        for i in 0..3 {
            for j in 0..3 {
                let r: f64 = (0..3).map(|k| v[i][k] * w[k] * v[j][k]).sum();
                assert!((r - a[i][j]).abs() < 1e-10, "{i},{j}: {r} vs {}", a[i][j]);
            }
        }
    }

    #[test]
    fn cholesky_solves_and_inverts() {
        // A 7×7 symmetric positive-definite matrix (odd, so the dot product has a tail).
        let n = 7;
        let a: Vec<f64> = (0..n * n)
            .map(|k| {
                let (i, j) = (k / n, k % n);
                1.0 / (1.0 + (i as f64 - j as f64).abs()) + if i == j { 1.0 } else { 0.0 }
            })
            .collect();
        let l = Lower::cholesky(a.clone(), n).unwrap();
        let b: Vec<f64> = (0..n).map(|i| i as f64 - 2.5).collect();
        let mut x = b.clone();
        l.solve(&mut x);
        l.solve_t(&mut x);
        let inv = l.inverse();
        for i in 0..n {
            let r = dot(&a[i * n..(i + 1) * n], &x);
            assert!((r - b[i]).abs() < 1e-12, "{i}: {r} vs {}", b[i]);
            for j in 0..n {
                let e = dot(
                    &a[i * n..(i + 1) * n],
                    &(0..n).map(|k| inv[k * n + j]).collect::<Vec<_>>(),
                );
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((e - want).abs() < 1e-12, "({i},{j}): {e}");
            }
        }
        assert!(Lower::cholesky(vec![1.0, 2.0, 2.0, 1.0], 2).is_none());
    }
}
