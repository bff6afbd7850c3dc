//! Early stopping: `medianstop` (Katib's median stopping rule) and `asha` (asynchronous
//! successive halving, as Optuna's SuccessiveHalvingPruner). Both are stateless: they read the
//! trial's series and the finished trials on each call.

use crate::settings::{known_settings, Settings};
use crate::stats::median;
use crate::{Decision, Direction, EarlyStopper, Setting, SettingsError, Trial, TrialState};

pub(crate) fn early_stopper(
    algorithm: &str,
    settings: &[Setting],
) -> Result<Box<dyn EarlyStopper>, SettingsError> {
    let known = match algorithm {
        "medianstop" | "asha" => known_settings(algorithm).expect("known"),
        _ => {
            return Err(SettingsError::UnknownAlgorithm {
                kind: "early stopping",
                algorithm: algorithm.into(),
                known: crate::EARLY_STOPPING_ALGORITHMS.join(", "),
            })
        }
    };
    let s = Settings::parse(algorithm, known, settings)?;
    Ok(match algorithm {
        "medianstop" => Box::new(MedianStop {
            min_trials_required: s
                .get("min_trials_required", 3u64, "an integer ≥ 1", |v| v >= 1)?,
            start_step: s.get("start_step", 4u64, "an integer ≥ 1", |v| v >= 1)?,
        }),
        _ => Box::new(Asha {
            min_resource: match s.raw("min_resource") {
                None | Some("auto") => None,
                Some(_) => Some(s.get(
                    "min_resource",
                    1u64,
                    "`auto` or an integer ≥ 1",
                    |v| v >= 1,
                )?),
            },
            reduction_factor: s.get("reduction_factor", 4u64, "an integer ≥ 2", |v| v >= 2)?,
            min_early_stopping_rate: s.get(
                "min_early_stopping_rate",
                0u32,
                "an integer ≥ 0",
                |v| v < 63,
            )?,
        }),
    })
}

/// Katib's median stopping rule: once `min_trials_required` trials have succeeded and the
/// trial has reported `start_step` values (Katib: "number of reported intermediate results
/// before stopping"), it is stopped when its best value so far is worse than the median of the
/// succeeded trials' values at its current step (each one's last value at or before that step).
/// A trial whose values so far are all NaN is stopped too; NaNs are left out of the median.
pub(crate) struct MedianStop {
    pub min_trials_required: u64,
    pub start_step: u64,
}

/// The last value of `series` at or before `step`.
fn value_at(series: &[(u64, f64)], step: u64) -> Option<f64> {
    series
        .iter()
        .filter(|(s, v)| *s <= step && !v.is_nan())
        .max_by_key(|(s, _)| *s)
        .map(|(_, v)| *v)
}

impl EarlyStopper for MedianStop {
    fn decide(&self, series: &[(u64, f64)], finished: &[Trial], direction: Direction) -> Decision {
        let done: Vec<&Trial> = finished
            .iter()
            .filter(|t| t.state == TrialState::Succeeded)
            .collect();
        if (done.len() as u64) < self.min_trials_required || (series.len() as u64) < self.start_step
        {
            return Decision::Continue;
        }
        let Some(&(step, _)) = series.iter().max_by_key(|(s, _)| *s) else {
            return Decision::Continue;
        };
        let Some(best) = series
            .iter()
            .map(|&(_, v)| direction.loss(v))
            .filter(|v| !v.is_nan())
            .reduce(f64::min)
        else {
            return Decision::Stop;
        };
        let mut others: Vec<f64> = done
            .iter()
            .filter_map(|t| value_at(&t.series, step))
            .map(|v| direction.loss(v))
            .collect();
        match median(&mut others) {
            Some(m) if best > m => Decision::Stop,
            _ => Decision::Continue,
        }
    }
}

/// Asynchronous successive halving. Rung `k` sits at step
/// `min_resource · reduction_factor^(min_early_stopping_rate + k)`; when a trial first reports
/// at or past a rung, its value there is ranked with the finished trials' values at that rung
/// (each one's first value at or past it), and it goes on only if it is in the top
/// `1 / reduction_factor` (or the best, while fewer than `reduction_factor` compete).
/// `min_resource` `auto` (the default) is Optuna's: a hundredth of the largest step a finished
/// trial reported (at least 1), and nothing is stopped before a trial has finished.
pub(crate) struct Asha {
    pub min_resource: Option<u64>,
    pub reduction_factor: u64,
    pub min_early_stopping_rate: u32,
}

/// The first value of `series` at or after `step`.
fn first_from(series: &[(u64, f64)], step: u64) -> Option<f64> {
    series
        .iter()
        .filter(|(s, _)| *s >= step)
        .min_by_key(|(s, _)| *s)
        .map(|(_, v)| *v)
}

impl Asha {
    fn min_resource(&self, finished: &[Trial]) -> Option<u64> {
        self.min_resource.or_else(|| {
            let last = finished
                .iter()
                .filter(|t| t.state == TrialState::Succeeded)
                .flat_map(|t| &t.series)
                .map(|(s, _)| *s)
                .max()?;
            Some((last / 100).max(1))
        })
    }

    /// The step of rung `k`.
    fn rung(&self, min_resource: u64, k: u32) -> u64 {
        let exp = self.min_early_stopping_rate.saturating_add(k);
        min_resource.saturating_mul(self.reduction_factor.saturating_pow(exp))
    }
}

impl EarlyStopper for Asha {
    fn decide(&self, series: &[(u64, f64)], finished: &[Trial], direction: Direction) -> Decision {
        let (Some(r0), Some(&(last, _))) = (
            self.min_resource(finished),
            series.iter().max_by_key(|(s, _)| *s),
        ) else {
            return Decision::Continue;
        };
        let before = series.iter().map(|(s, _)| *s).filter(|&s| s < last).max();
        // The rungs reached by this report that the previous report had not reached.
        let mut k = 0;
        while self.rung(r0, k) <= last {
            let step = self.rung(r0, k);
            if before.is_none_or(|b| b < step) {
                let value = direction.loss(first_from(series, step).expect("last ≥ step"));
                let mut rivals: Vec<f64> = finished
                    .iter()
                    .filter_map(|t| first_from(&t.series, step))
                    .map(|v| direction.loss(v))
                    .filter(|v| !v.is_nan())
                    .collect();
                if value.is_nan() || !promotable(value, &mut rivals, self.reduction_factor) {
                    return Decision::Stop;
                }
            }
            if self.rung(r0, k + 1) == step {
                break;
            }
            k += 1;
        }
        Decision::Continue
    }
}

/// Whether `value` (a loss) is in the top `1/eta` of itself and `rivals`.
fn promotable(value: f64, rivals: &mut Vec<f64>, eta: u64) -> bool {
    rivals.push(value);
    rivals.sort_by(f64::total_cmp);
    let idx = (rivals.len() / eta as usize).saturating_sub(1);
    value <= rivals[idx]
}
