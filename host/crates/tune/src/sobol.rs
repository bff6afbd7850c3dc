//! `sobol`: trial `n` is point `n` of the Owen-scrambled Sobol sequence seeded by
//! `random_state` (`sobol_burley`), mapped from the unit cube into the space (log scale for log
//! distributions, lists by equal cells). The sequence has 2^16 points of up to 256 dimensions.

use crate::settings::Settings;
use crate::space::Space;
use crate::{Assignment, SettingsError, Suggester, Trial, TuneError};

const MAX_POINTS: usize = 1 << 16;
const MAX_DIMS: usize = 256;

pub(crate) struct Sobol {
    seed: u64,
    space: Space,
}

impl Sobol {
    pub fn new(settings: &Settings, space: Space) -> Result<Self, SettingsError> {
        if space.len() > MAX_DIMS {
            return Err(settings.space_error(format!(
                "the Sobol sequence has at most {MAX_DIMS} dimensions; the space has {}",
                space.len()
            )));
        }
        Ok(Sobol {
            seed: settings.seed()?,
            space,
        })
    }
}

/// Point `n` of the sequence for `seed` in `dims` dimensions, in [0, 1).
pub(crate) fn sobol_point(n: u32, dims: usize, seed: u64) -> Vec<f64> {
    // sobol_burley seeds with 32 bits: fold the seed.
    let seed = (seed ^ (seed >> 32)) as u32;
    (0..dims as u32)
        .map(|d| f64::from(sobol_burley::sample(n, d, seed)))
        .collect()
}

impl Suggester for Sobol {
    fn suggest(&mut self, history: &[Trial], count: usize) -> Result<Vec<Assignment>, TuneError> {
        (history.len()..history.len() + count)
            .map(|n| {
                if n >= MAX_POINTS {
                    return Err(TuneError::Exhausted {
                        algorithm: "sobol",
                        reason: format!("the sequence has {MAX_POINTS} points"),
                    });
                }
                Ok(self
                    .space
                    .at_unit(&sobol_point(n as u32, self.space.len(), self.seed)))
            })
            .collect()
    }

    fn seed(&self) -> u64 {
        self.seed
    }
}
