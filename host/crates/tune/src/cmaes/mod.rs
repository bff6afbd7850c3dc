//! `cmaes`: CMA-ES ((μ/μ_w, λ), Hansen's tutorial parameters) in the unit cube, with Optuna's
//! defaults (mean at the centre, σ0 = 1/6 of the normalised range, out-of-bounds draws
//! redrawn then clipped) and its IPOP/BIPOP restarts. Written here because the `cmaes` crate
//! (0.2.2) drives the objective itself (no ask/tell), so trials run by the runner cannot feed
//! it; it also pulls rand 0.8, nalgebra, rayon and statrs.
//!
//! The state is the fold of the history, in order: candidate `j` of a generation is drawn from
//! its own stream, so each trial is matched to the candidate it came from (the trial `k`-th
//! since the generation began is matched among its first `k + 1 + λ` candidates, which always
//! holds the one a suggestion of this generation gave it). A generation is told once the
//! shortest run of its trials (in history order) holding λ succeeded trials is all finished
//! (failed trials are skipped, so a generation with failures waits for extra candidates);
//! until then the generation keeps handing out further candidates, as Optuna samples more from
//! the current distribution while trials run. Trials matching no candidate (another
//! algorithm's, say) are ignored.
//!
//! **The fold is kept between calls** ([`State`]): the runner passes the whole history each
//! time, and replaying it all made a suggestion cost O(history) generations (116 ms at 1000
//! trials). What the told generations read of the history (each trial's assignment, and the
//! state and value of those matched to a candidate) is kept with the state; a call whose
//! history starts with exactly that goes on from there, any other (a resumed runner, another
//! experiment's history) starts the fold afresh. Each step of the fold depends only on the
//! trials before it, so the suggestions stay a pure function of the seed and the history,
//! whether the suggester is fresh or has seen earlier histories. (The replay before matched a
//! generation's trials among its first `history.len() - pos + λ` candidates, so whether an
//! earlier trial matched could change as the history grew, which no kept state can follow;
//! the two differ only where a trial shares its assignment with a far candidate, in a coarse
//! discrete space, and gave the same trials in the benches and tests.)

mod cma;
#[cfg(test)]
mod tests;

use crate::settings::Settings;
use crate::space::{Kind, Space};
use crate::{rng, Assignment, Direction, SettingsError, Suggester, Trial, TrialState, TuneError};
use crate::{TrialState::Running, TrialState::Succeeded, Value};
use cma::Cma;
use rand::RngExt;
use std::collections::{HashMap, VecDeque};

#[derive(Clone, Copy, PartialEq)]
enum Restart {
    None,
    Ipop,
    Bipop,
}

pub(crate) struct CmaEs {
    seed: u64,
    space: Space,
    direction: Direction,
    sigma0: f64,
    restart: Restart,
    /// The fold after the last call's told generations; `suggest` takes `&mut self`, so it is
    /// kept here as is (no lock), and it is `Send` as the trait requires.
    state: Option<State>,
}

impl CmaEs {
    pub fn new(s: &Settings, space: Space, direction: Direction) -> Result<Self, SettingsError> {
        if let Some(d) = space.dims.iter().find(|d| matches!(&d.kind, Kind::Choice(v) if v.iter().any(|v| matches!(v, crate::Value::Str(_))))) {
            return Err(s.space_error(format!(
                "parameter `{}` is categorical; CMA-ES does not support categorical parameters (use tpe)",
                d.name
            )));
        }
        let numeric = space
            .dims
            .iter()
            .filter(|d| matches!(d.kind, Kind::Numeric(_)))
            .count();
        if numeric < 2 {
            return Err(s.space_error(
                "CMA-ES only supports two or more dimensional continuous search space.",
            ));
        }
        let restart = match s
            .choice("restart_strategy", &["ipop", "bipop", "none"], "none")?
            .as_str()
        {
            "ipop" => Restart::Ipop,
            "bipop" => Restart::Bipop,
            _ => Restart::None,
        };
        Ok(CmaEs {
            seed: s.seed()?,
            space,
            direction,
            sigma0: s.get("sigma", 1.0 / 6.0, "a number > 0", |v: f64| {
                v > 0.0 && v.is_finite()
            })?,
            restart,
            state: None,
        })
    }
}

/// Restart bookkeeping (BIPOP's two budgets).
#[derive(Clone, Default)]
struct Restarts {
    count: u64,
    large: u32,
    small_evals: usize,
    large_evals: usize,
    small: bool,
}

/// An assignment as a key for matching trials to candidates (exact: Debug prints floats
/// round-trip).
fn key(a: &Assignment) -> String {
    format!("{a:?}")
}

/// Whether two assignments have the same key, by a cheaper test that implies it (a double
/// compares by its bits, so 0.0 and -0.0, whose keys differ, are different here too).
fn same(a: &Assignment, b: &Assignment) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|((ka, va), (kb, vb))| {
            ka == kb
                && match (va, vb) {
                    (Value::Double(x), Value::Double(y)) => x.to_bits() == y.to_bits(),
                    _ => va == vb,
                }
        })
}

/// What a told generation read of one trial of its run.
#[derive(Clone)]
struct Seen {
    assignment: Assignment,
    /// for a trial matched to a candidate, its state and loss (bits); unmatched trials are
    /// read for their assignment only, so they may finish later without changing anything
    outcome: Option<(TrialState, Option<u64>)>,
}

/// A candidate of the open generation: its point in the cube, assignment and key.
#[derive(Clone)]
struct Candidate {
    x: Vec<f64>,
    assignment: Assignment,
    key: String,
}

/// The fold of a history's told generations.
#[derive(Clone)]
struct State {
    /// the open generation's distribution
    cma: Cma,
    restarts: Restarts,
    /// what the told generations read of `history[..seen.len()]`, where the open one begins
    seen: Vec<Seen>,
    /// the open generation's candidates drawn so far (a function of `cma` and the seed)
    drawn: Vec<Candidate>,
}

impl CmaEs {
    fn lambda0(&self) -> usize {
        4 + (3.0 * (self.space.len() as f64).ln()).floor() as usize
    }

    /// The next run after `r.count` restarts: IPOP doubles the population; BIPOP alternates
    /// doubling it with small runs (random population and σ) while their budget is the smaller.
    fn restarted(&self, r: &mut Restarts) -> Cma {
        r.count += 1;
        let mut rng = rng::stream(self.seed, &[rng::CMA, r.count, u64::MAX]);
        let mean: Vec<f64> = (0..self.space.len()).map(|_| rng.random::<f64>()).collect();
        let l0 = self.lambda0();
        let (lambda, sigma) = if self.restart == Restart::Bipop && r.small_evals < r.large_evals {
            r.small = true;
            let mult = 2f64.powi(r.large as i32);
            let (u1, u2): (f64, f64) = (rng.random(), rng.random());
            (
                (l0 as f64 * mult.powf(u1 * u1)).floor() as usize,
                self.sigma0 * 10f64.powf(-2.0 * u2),
            )
        } else {
            r.small = false;
            r.large += 1;
            (l0 << r.large.min(20), self.sigma0)
        };
        Cma::new(r.count, mean, sigma, lambda.max(l0))
    }

    /// The fold of the empty history.
    fn initial(&self) -> State {
        State {
            cma: Cma::new(0, vec![0.5; self.space.len()], self.sigma0, self.lambda0()),
            restarts: Restarts::default(),
            seen: Vec::new(),
            drawn: Vec::new(),
        }
    }

    /// What the fold reads of a trial matched to a candidate.
    fn outcome(&self, t: &Trial) -> (TrialState, Option<u64>) {
        (t.state, t.loss(self.direction).map(f64::to_bits))
    }

    /// Whether `history` begins with what `state`'s told generations read.
    fn continues(&self, state: &State, history: &[Trial]) -> bool {
        state.seen.len() <= history.len()
            && state.seen.iter().zip(history).all(|(s, t)| {
                same(&s.assignment, &t.assignment) && s.outcome.is_none_or(|o| o == self.outcome(t))
            })
    }

    /// Candidate `j` of the open generation, drawing those before it first.
    fn candidate<'s>(&self, state: &'s mut State, j: usize) -> &'s Candidate {
        while state.drawn.len() <= j {
            let x = state.cma.candidate(self.seed, state.drawn.len());
            let assignment = self.space.at_unit(&x);
            let key = key(&assignment);
            state.drawn.push(Candidate { x, assignment, key });
        }
        &state.drawn[j]
    }

    /// Folds the rest of `history` into `state`: tells every generation that is complete, and
    /// returns which candidates of the open one trials already took.
    fn advance(&self, state: &mut State, history: &[Trial]) -> Vec<bool> {
        'generation: loop {
            let pos = state.seen.len();
            let lambda = state.cma.lambda;
            // the drawn candidates not yet matched, smallest index first, by key
            let mut free: HashMap<String, VecDeque<usize>> = HashMap::new();
            let mut offered = 0;
            let mut used = Vec::new();
            let mut matched = Vec::new();
            let mut pop = Vec::new();
            let mut open = true;
            for (k, t) in history[pos..].iter().enumerate() {
                while offered < k + 1 + lambda {
                    let key = self.candidate(state, offered).key.clone();
                    free.entry(key).or_default().push_back(offered);
                    offered += 1;
                }
                let j = free
                    .get_mut(&key(&t.assignment))
                    .and_then(VecDeque::pop_front);
                matched.push(j.is_some());
                let Some(j) = j else { continue };
                if used.len() <= j {
                    used.resize(j + 1, false);
                }
                used[j] = true;
                if !open {
                    continue;
                }
                match (t.state, t.loss(self.direction)) {
                    (Running, _) => open = false,
                    (Succeeded, Some(l)) => pop.push((state.drawn[j].x.clone(), l)),
                    _ => {}
                }
                if open && pop.len() == lambda {
                    let run = &history[pos..=pos + k];
                    state
                        .seen
                        .extend(run.iter().zip(&matched).map(|(t, &m)| Seen {
                            assignment: t.assignment.clone(),
                            outcome: m.then(|| self.outcome(t)),
                        }));
                    state.cma.tell(pop);
                    let r = &mut state.restarts;
                    if r.small {
                        r.small_evals += lambda;
                    } else {
                        r.large_evals += lambda;
                    }
                    if self.restart != Restart::None && state.cma.should_stop() {
                        state.cma = self.restarted(r);
                    }
                    state.drawn.clear();
                    continue 'generation;
                }
            }
            return used;
        }
    }
}

impl Suggester for CmaEs {
    fn suggest(&mut self, history: &[Trial], count: usize) -> Result<Vec<Assignment>, TuneError> {
        let mut state = match self.state.take() {
            Some(s) if self.continues(&s, history) => s,
            _ => self.initial(),
        };
        let used = self.advance(&mut state, history);
        let out = (0..)
            .filter(|&j| !used.get(j).copied().unwrap_or(false))
            .take(count)
            .map(|j| self.candidate(&mut state, j).assignment.clone())
            .collect();
        self.state = Some(state);
        Ok(out)
    }

    fn seed(&self) -> u64 {
        self.seed
    }
}
