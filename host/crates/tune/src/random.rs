//! `random`: each parameter drawn from its distribution; trial `n` from its own stream.

use crate::settings::Settings;
use crate::space::Space;
use crate::{rng, Assignment, SettingsError, Suggester, Trial, TuneError};

pub(crate) struct Random {
    seed: u64,
    space: Space,
}

impl Random {
    pub fn new(settings: &Settings, space: Space) -> Result<Self, SettingsError> {
        Ok(Random {
            seed: settings.seed()?,
            space,
        })
    }
}

/// The random assignment for trial number `n`.
pub(crate) fn random_at(space: &Space, seed: u64, n: usize) -> Assignment {
    space.sample(&mut rng::stream(seed, &[rng::RANDOM, n as u64]))
}

impl Suggester for Random {
    fn suggest(&mut self, history: &[Trial], count: usize) -> Result<Vec<Assignment>, TuneError> {
        Ok((0..count)
            .map(|k| random_at(&self.space, self.seed, history.len() + k))
            .collect())
    }

    fn seed(&self) -> u64 {
        self.seed
    }
}
