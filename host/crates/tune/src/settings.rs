//! Katib's algorithm settings: names known per algorithm, string values parsed and validated.

use crate::SettingsError;
use std::str::FromStr;

/// The settings each algorithm accepts, or `None` for an unknown algorithm.
pub(crate) fn known_settings(algorithm: &str) -> Option<&'static [&'static str]> {
    Some(match algorithm {
        "random" | "grid" | "sobol" => &["random_state"],
        // Katib's `tpe` runs hyperopt: its names are accepted, and Optuna's too.
        "tpe" => &[
            "random_state",
            "gamma",
            "prior_weight",
            "n_EI_candidates",
            "n_ei_candidates",
            "n_startup_trials",
        ],
        "multivariate-tpe" => &["random_state", "n_startup_trials", "n_ei_candidates"],
        "bayesianoptimization" => &[
            "base_estimator",
            "n_initial_points",
            "acq_func",
            "acq_optimizer",
            "random_state",
        ],
        "cmaes" => &["random_state", "sigma", "restart_strategy"],
        "hyperband" => &["r_l", "resource_name", "eta", "random_state"],
        "medianstop" => &["min_trials_required", "start_step"],
        "asha" => &[
            "min_resource",
            "reduction_factor",
            "min_early_stopping_rate",
        ],
        _ => return None,
    })
}

/// One algorithm's settings, checked against the names it knows.
pub(crate) struct Settings {
    pub algorithm: String,
    values: Vec<(String, String)>,
}

impl Settings {
    pub fn parse(
        algorithm: &str,
        known: &[&str],
        settings: &[crate::Setting],
    ) -> Result<Self, SettingsError> {
        let mut values: Vec<(String, String)> = Vec::new();
        for s in settings {
            if !known.contains(&s.name.as_str()) {
                return Err(SettingsError::UnknownSetting {
                    algorithm: algorithm.into(),
                    setting: s.name.clone(),
                    known: if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    },
                });
            }
            if values.iter().any(|(n, _)| *n == s.name) {
                return Err(SettingsError::Duplicate {
                    algorithm: algorithm.into(),
                    setting: s.name.clone(),
                });
            }
            values.push((s.name.clone(), s.value.trim().to_string()));
        }
        Ok(Settings {
            algorithm: algorithm.into(),
            values,
        })
    }

    /// The raw value of `name`, if given.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// An error naming this algorithm, `name` and its value.
    pub fn bad(&self, name: &str, reason: impl Into<String>) -> SettingsError {
        SettingsError::BadValue {
            algorithm: self.algorithm.clone(),
            setting: name.into(),
            value: self.raw(name).unwrap_or_default().into(),
            reason: reason.into(),
        }
    }

    /// `name` parsed and checked by `ok`, or `default` when absent.
    pub fn get<T: FromStr + Copy>(
        &self,
        name: &str,
        default: T,
        what: &str,
        ok: impl Fn(T) -> bool,
    ) -> Result<T, SettingsError> {
        match self.raw(name) {
            None => Ok(default),
            Some(raw) => match raw.parse::<T>() {
                Ok(v) if ok(v) => Ok(v),
                _ => Err(self.bad(name, format!("must be {what}"))),
            },
        }
    }

    /// A required setting.
    pub fn required<T: FromStr + Copy>(
        &self,
        name: &str,
        what: &str,
        ok: impl Fn(T) -> bool,
    ) -> Result<T, SettingsError> {
        let raw = self.raw(name).ok_or_else(|| self.missing(name))?;
        match raw.parse::<T>() {
            Ok(v) if ok(v) => Ok(v),
            _ => Err(self.bad(name, format!("must be {what}"))),
        }
    }

    pub fn missing(&self, name: &str) -> SettingsError {
        SettingsError::Missing {
            algorithm: self.algorithm.clone(),
            setting: name.into(),
        }
    }

    /// One of `choices` (compared case-sensitively, as Katib does), or `default`.
    pub fn choice(
        &self,
        name: &str,
        choices: &[&str],
        default: &'static str,
    ) -> Result<String, SettingsError> {
        match self.raw(name) {
            None => Ok(default.into()),
            Some(v) if choices.contains(&v) => Ok(v.into()),
            Some(_) => Err(self.bad(name, format!("must be one of {}", choices.join(", ")))),
        }
    }

    /// `random_state` (≥ 0), or a seed drawn from the process's hash keys when absent.
    pub fn seed(&self) -> Result<u64, SettingsError> {
        match self.raw("random_state") {
            Some(_) => self.get("random_state", 0u64, "an integer ≥ 0", |_| true),
            None => Ok(crate::rng::entropy()),
        }
    }

    /// An error about the search space for this algorithm.
    pub fn space_error(&self, reason: impl Into<String>) -> SettingsError {
        SettingsError::Space {
            algorithm: self.algorithm.clone(),
            reason: reason.into(),
        }
    }
}
