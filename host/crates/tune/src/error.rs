//! Errors: bad settings (named by algorithm, setting and value) and failures while suggesting.

/// A setting, an algorithm name or the search space refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SettingsError {
    #[error("unknown {kind} algorithm `{algorithm}`; known: {known}")]
    UnknownAlgorithm {
        kind: &'static str,
        algorithm: String,
        known: String,
    },
    #[error("algorithm `{algorithm}` has no setting `{setting}`; its settings: {known}")]
    UnknownSetting {
        algorithm: String,
        setting: String,
        known: String,
    },
    #[error("algorithm `{algorithm}`: setting `{setting}` = `{value}`: {reason}")]
    BadValue {
        algorithm: String,
        setting: String,
        value: String,
        reason: String,
    },
    #[error("algorithm `{algorithm}`: setting `{setting}` is given more than once")]
    Duplicate { algorithm: String, setting: String },
    #[error("algorithm `{algorithm}` requires the setting `{setting}`")]
    Missing { algorithm: String, setting: String },
    #[error("algorithm `{algorithm}`: {reason}")]
    Space { algorithm: String, reason: String },
}

/// A suggestion that could not be made.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TuneError {
    #[error("{algorithm}: {reason}")]
    Exhausted {
        algorithm: &'static str,
        reason: String,
    },
}
