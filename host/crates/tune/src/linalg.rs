//! The little dense linear algebra the GP and CMA-ES need, on row-major `Vec<Vec<f64>>`:
//! Cholesky with triangular solves, and Jacobi's method for symmetric eigendecomposition.
//! Matrices here are at most a few hundred wide (trials or parameters), so a linear-algebra
//! crate (nalgebra, ndarray) would add much build for little.

pub(crate) type Mat = Vec<Vec<f64>>;

/// The lower Cholesky factor of a symmetric positive-definite `a`, or `None`.
pub(crate) fn cholesky(a: &Mat) -> Option<Mat> {
    let n = a.len();
    let mut l = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = a[i][j] - (0..j).map(|k| l[i][k] * l[j][k]).sum::<f64>();
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return None;
                }
                l[i][i] = s.sqrt();
            } else {
                l[i][j] = s / l[j][j];
            }
        }
    }
    Some(l)
}

/// Solves L y = b.
pub(crate) fn solve_lower(l: &Mat, b: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; b.len()];
    for i in 0..b.len() {
        y[i] = (b[i] - (0..i).map(|k| l[i][k] * y[k]).sum::<f64>()) / l[i][i];
    }
    y
}

/// Solves Lᵀ x = y.
pub(crate) fn solve_upper_t(l: &Mat, y: &[f64]) -> Vec<f64> {
    let n = y.len();
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        x[i] = (y[i] - (i + 1..n).map(|k| l[k][i] * x[k]).sum::<f64>()) / l[i][i];
    }
    x
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
    fn eigen_reconstructs_and_cholesky_solves() {
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
        let l = cholesky(&a).unwrap();
        let b = [1.0, 2.0, 3.0];
        let x = solve_upper_t(&l, &solve_lower(&l, &b));
        for i in 0..3 {
            let r: f64 = (0..3).map(|k| a[i][k] * x[k]).sum();
            assert!((r - b[i]).abs() < 1e-12);
        }
    }
}
