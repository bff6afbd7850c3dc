//! `grid`: every combination of the parameters' grid points (ints by step, doubles by their
//! `step`, lists whole), visited in an order shuffled by `random_state` as Optuna's
//! GridSampler does; points already in the history (running ones included) are skipped.

use crate::settings::Settings;
use crate::space::{index_of, Kind, Space};
use crate::{rng, Assignment, SettingsError, Suggester, Trial, TuneError, Value};
use rand::seq::SliceRandom;

/// The largest grid enumerated.
const MAX_GRID: f64 = 1.0e6;

pub(crate) struct Grid {
    seed: u64,
    space: Space,
    axes: Vec<Vec<Value>>,
    order: Vec<usize>,
}

impl Grid {
    pub fn new(
        settings: &Settings,
        space: Space,
        max_trials: Option<u32>,
    ) -> Result<Self, SettingsError> {
        let seed = settings.seed()?;
        let mut total = 1.0f64;
        for d in &space.dims {
            let len = match &d.kind {
                Kind::Numeric(n) => n.grid_len().ok_or_else(|| {
                    settings.space_error(format!(
                        "parameter `{}` is a double without `step`; grid needs a step for doubles",
                        d.name
                    ))
                })?,
                Kind::Choice(v) => v.len() as f64,
            };
            total *= len;
        }
        if total > MAX_GRID {
            return Err(
                settings.space_error(format!("the grid has {total} points, more than {MAX_GRID}"))
            );
        }
        if let Some(m) = max_trials {
            if f64::from(m) > total {
                return Err(settings.space_error(format!(
                    "maxTrialCount ({m}) is more than the number of grid points ({total})"
                )));
            }
        }
        let axes = space.dims.iter().map(axis).collect();
        let mut order: Vec<usize> = (0..total as usize).collect();
        order.shuffle(&mut rng::stream(seed, &[rng::GRID]));
        Ok(Grid {
            seed,
            space,
            axes,
            order,
        })
    }

    /// Grid point `id` (mixed radix, the first parameter fastest).
    fn point(&self, mut id: usize) -> Vec<usize> {
        self.axes
            .iter()
            .map(|a| {
                let i = id % a.len();
                id /= a.len();
                i
            })
            .collect()
    }

    fn id_of(&self, a: &Assignment) -> Option<usize> {
        let mut id = 0;
        for (d, axis) in self.space.dims.iter().zip(&self.axes).rev() {
            id = id * axis.len() + index_of(axis, a.get(&d.name)?)?;
        }
        Some(id)
    }
}

fn axis(d: &crate::space::Dim) -> Vec<Value> {
    match &d.kind {
        Kind::Numeric(n) => n.grid().expect("checked to have a step"),
        Kind::Choice(v) => v.clone(),
    }
}

impl Suggester for Grid {
    fn suggest(&mut self, history: &[Trial], count: usize) -> Result<Vec<Assignment>, TuneError> {
        let mut seen = vec![false; self.order.len()];
        for t in history {
            if let Some(id) = self.id_of(&t.assignment) {
                seen[id] = true;
            }
        }
        Ok(self
            .order
            .iter()
            .filter(|&&id| !seen[id])
            .take(count)
            .map(|&id| {
                let values = self
                    .point(id)
                    .into_iter()
                    .zip(&self.axes)
                    .map(|(i, a)| a[i].clone())
                    .collect();
                self.space.assignment(values)
            })
            .collect())
    }

    fn seed(&self) -> u64 {
        self.seed
    }
}
