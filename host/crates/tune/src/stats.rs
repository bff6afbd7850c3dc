//! The normal distribution's density and CDF (erfc from `libm`), and truncated normals.

use rand::RngExt;
use rand_distr::StandardNormal;
use rand_pcg::Pcg64;

pub(crate) const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// Φ(z), accurate in both tails.
pub(crate) fn norm_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z / std::f64::consts::SQRT_2)
}

/// φ(z).
pub(crate) fn norm_pdf(z: f64) -> f64 {
    (-0.5 * z * z - LN_SQRT_2PI).exp()
}

/// ln φ(z).
pub(crate) fn norm_log_pdf(z: f64) -> f64 {
    -0.5 * z * z - LN_SQRT_2PI
}

/// Mass of N(mu, sigma) in [a, b], floored away from zero.
pub(crate) fn mass(mu: f64, sigma: f64, a: f64, b: f64) -> f64 {
    let (za, zb) = ((a - mu) / sigma, (b - mu) / sigma);
    // Use the upper tail when both bounds are above the mean, for precision.
    let m = if za > 0.0 {
        norm_cdf(-za) - norm_cdf(-zb)
    } else {
        norm_cdf(zb) - norm_cdf(za)
    };
    m.max(1e-300)
}

/// A draw of N(mu, sigma) truncated to [lo, hi]. `mu` lies inside [lo, hi] here (observations
/// and the prior's middle), so rejection needs few draws; after many it falls back to uniform.
pub(crate) fn trunc_normal(rng: &mut Pcg64, mu: f64, sigma: f64, lo: f64, hi: f64) -> f64 {
    for _ in 0..1000 {
        let z: f64 = rng.sample(StandardNormal);
        let x = mu + sigma * z;
        if (lo..=hi).contains(&x) {
            return x;
        }
    }
    lo + rng.random::<f64>() * (hi - lo)
}

/// ln of the density of N(mu, sigma) truncated to [lo, hi] at x.
pub(crate) fn trunc_log_pdf(x: f64, mu: f64, sigma: f64, lo: f64, hi: f64) -> f64 {
    norm_log_pdf((x - mu) / sigma) - sigma.ln() - mass(mu, sigma, lo, hi).ln()
}

/// ln of the probability of the cell [x - h, x + h] under N(mu, sigma) truncated to [lo, hi].
pub(crate) fn trunc_log_mass(x: f64, h: f64, mu: f64, sigma: f64, lo: f64, hi: f64) -> f64 {
    mass(mu, sigma, x - h, x + h).ln() - mass(mu, sigma, lo, hi).ln()
}

/// The median of finite values (`None` when there are none).
pub(crate) fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}
