//! Katib's suggestion algorithms and early-stopping rules, for the experiment runner.
//!
//! The runner calls [`Suggester::suggest`] between trials with the whole history (running trials
//! included) and [`EarlyStopper::decide`] on each metric a trial reports.
//!
//! **Determinism.** Every suggester is a pure function of its seed (`random_state`), the history
//! and the count: what it keeps between calls is a cache (CMA-ES keeps its evolved state and
//! checks that the history extends what it saw, rebuilding otherwise), never an input, so an
//! experiment with a seed is reproducible and a resumed one (history rebuilt from the store)
//! continues exactly where it was. The
//! history must be in the order the trials were created. The `k`-th new suggestion depends
//! only on the seed, the history and its position `history.len() + k`, so batching does not
//! change what is suggested (TPE and Bayesian optimisation treat the earlier suggestions of the
//! same call as running trials). Random streams are PCG64, which is value-stable.
//!
//! **Fewer suggestions than asked.** `suggest` may return fewer than `count`: grid when the grid
//! is used up, hyperband while a rung waits for its running trials. When it returns fewer and no
//! trial is running, the search is finished.

mod bo;
mod cmaes;
mod error;
mod gp;
mod grid;
mod hyperband;
mod linalg;
mod random;
mod rng;
mod settings;
mod sobol;
mod space;
mod stats;
mod stopping;
mod tpe;

use std::collections::BTreeMap;

pub use error::{SettingsError, TuneError};

/// How values of a numeric parameter are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Distribution {
    #[default]
    Uniform,
    LogUniform,
    /// Katib's `normal`: mean at the middle of `[min, max]`, σ a sixth of the range, kept inside.
    Normal,
    /// Katib's `logNormal`: the same in log space.
    LogNormal,
}

/// A parameter's feasible space.
#[derive(Clone, Debug, PartialEq)]
pub enum Domain {
    Double {
        min: f64,
        max: f64,
        step: Option<f64>,
        distribution: Distribution,
    },
    Int {
        min: i64,
        max: i64,
        step: Option<i64>,
        distribution: Distribution,
    },
    /// Katib's `discrete`: numbers from a list. Whole numbers come back as [`Value::Int`] when
    /// every number of the list is whole, else as [`Value::Double`].
    Discrete {
        values: Vec<f64>,
    },
    Categorical {
        choices: Vec<String>,
    },
}

/// A named parameter of the search space.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: String,
    pub domain: Domain,
}

/// A parameter's value in a trial.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Value {
    Int(i64),
    Double(f64),
    Str(String),
}

/// One trial's parameters, by name.
pub type Assignment = BTreeMap<String, Value>;

/// Whether the objective is minimised or maximised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Minimize,
    Maximize,
}

impl Direction {
    /// The objective as a loss (smaller is better).
    pub fn loss(self, value: f64) -> f64 {
        match self {
            Direction::Minimize => value,
            Direction::Maximize => -value,
        }
    }
}

/// A trial's state, as the suggesters see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrialState {
    Running,
    Succeeded,
    Failed,
    EarlyStopped,
}

/// One trial of the history.
#[derive(Clone, Debug, PartialEq)]
pub struct Trial {
    pub assignment: Assignment,
    pub state: TrialState,
    pub objective: Option<f64>,
    /// the objective's reported series: (step, value)
    pub series: Vec<(u64, f64)>,
}

impl Trial {
    /// Suggests `count` assignments one at a time with `one`, each seeing the ones before it
    /// as running trials (the constant liar), so a batch spreads out as sequential calls would.
    pub(crate) fn batch(
        history: &[Trial],
        count: usize,
        mut one: impl FnMut(&[Trial]) -> Assignment,
    ) -> Vec<Assignment> {
        let mut h = history.to_vec();
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let a = one(&h);
            h.push(Trial {
                assignment: a.clone(),
                state: TrialState::Running,
                objective: None,
                series: vec![],
            });
            out.push(a);
        }
        out
    }

    /// The trial's objective as a loss, when it succeeded with a number.
    pub(crate) fn loss(&self, direction: Direction) -> Option<f64> {
        match (self.state, self.objective) {
            (TrialState::Succeeded, Some(v)) if !v.is_nan() => Some(direction.loss(v)),
            _ => None,
        }
    }
}

/// An algorithm setting; Katib keeps every value as a string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub name: String,
    pub value: String,
}

impl Setting {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Setting {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// Suggests the next trials' assignments from the history.
pub trait Suggester: Send {
    /// Up to `count` new assignments; see the crate documentation for determinism and for
    /// returning fewer.
    fn suggest(&mut self, history: &[Trial], count: usize) -> Result<Vec<Assignment>, TuneError>;

    /// The seed in use (`random_state`, or the one drawn when none was given), for the runner
    /// to record so that a resumed experiment keeps it.
    fn seed(&self) -> u64;
}

/// The suggestion algorithms, by Katib's names.
pub const ALGORITHMS: &[&str] = &[
    "random",
    "grid",
    "sobol",
    "tpe",
    "multivariate-tpe",
    "bayesianoptimization",
    "cmaes",
    "hyperband",
];

/// The early-stopping algorithms.
pub const EARLY_STOPPING_ALGORITHMS: &[&str] = &["medianstop", "asha"];

/// The suggester for `algorithm` over `space`, its settings validated as Katib validates them.
pub fn suggester(
    algorithm: &str,
    settings: &[Setting],
    space: &[Param],
    direction: Direction,
    max_trials: Option<u32>,
) -> Result<Box<dyn Suggester>, SettingsError> {
    let known =
        settings::known_settings(algorithm).ok_or_else(|| SettingsError::UnknownAlgorithm {
            kind: "suggestion",
            algorithm: algorithm.to_string(),
            known: ALGORITHMS.join(", "),
        })?;
    let parsed = settings::Settings::parse(algorithm, known, settings)?;
    let space = space::Space::new(algorithm, space)?;
    Ok(match algorithm {
        "random" => Box::new(random::Random::new(&parsed, space)?),
        "grid" => Box::new(grid::Grid::new(&parsed, space, max_trials)?),
        "sobol" => Box::new(sobol::Sobol::new(&parsed, space)?),
        "tpe" => Box::new(tpe::Tpe::new(&parsed, space, direction, false)?),
        "multivariate-tpe" => Box::new(tpe::Tpe::new(&parsed, space, direction, true)?),
        "bayesianoptimization" => Box::new(bo::Bayes::new(&parsed, space, direction)?),
        "cmaes" => Box::new(cmaes::CmaEs::new(&parsed, space, direction)?),
        "hyperband" => Box::new(hyperband::Hyperband::new(&parsed, space, direction)?),
        _ => unreachable!("known_settings knows every algorithm"),
    })
}

/// An early-stopping decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Continue,
    Stop,
}

/// Decides, on each value a trial reports, whether it goes on.
pub trait EarlyStopper: Send + Sync {
    /// `trial_series` is the running trial's series so far (the newest last); `finished` are
    /// the experiment's finished trials.
    fn decide(
        &self,
        trial_series: &[(u64, f64)],
        finished: &[Trial],
        direction: Direction,
    ) -> Decision;
}

/// The early stopper for `algorithm`, its settings validated.
pub fn early_stopper(
    algorithm: &str,
    settings: &[Setting],
) -> Result<Box<dyn EarlyStopper>, SettingsError> {
    stopping::early_stopper(algorithm, settings)
}
