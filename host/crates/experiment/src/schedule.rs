//! What a new trial's suggestion may see, so that a seeded experiment is reproducible at any
//! `parallelTrialCount`.
//!
//! With trials running side by side, which of them has finished when the next one is
//! suggested depends on timing, and a model-based algorithm (TPE, GP, CMA-ES) suggests from
//! what has finished: two runs of the same seeded experiment would part ways. So when the
//! algorithm has a `random_state`, trial k (with parallelism p) is suggested from a history
//! fixed in advance: trials 0..=k−p as they ended, and the p−1 trials just before k as
//! running, whatever their real state. Trial k waits for trial k−p to finish (a slot may idle
//! behind a slow trial: the price of reproducibility), and its early stopper compares it with
//! those same finished trials only. Optuna and Katib make no such promise in parallel; an
//! unseeded experiment keeps the greedy schedule (every finished trial seen at once).

use weft_tune::{Trial, TrialState};

#[derive(Clone, Copy, Debug)]
pub(crate) struct Schedule {
    pub parallel: usize,
    /// The algorithm is seeded: suggestions see the fixed history above.
    pub seeded: bool,
}

impl Schedule {
    /// How many of the trials before trial `k` its suggestion and stopper see as ended: all of
    /// them when unseeded, else those before the p−1 trials just before `k`.
    pub fn settled(&self, k: usize) -> usize {
        if self.seeded {
            k.saturating_sub(self.parallel.max(1) - 1)
        } else {
            k
        }
    }

    /// The history the suggestion of the next trial (`history.len()`) sees, or None while it
    /// must wait for a trial it should see ended. `history` holds every trial so far as it is.
    pub fn view(&self, mut history: Vec<Trial>) -> Option<Vec<Trial>> {
        if !self.seeded {
            return Some(history);
        }
        let settled = self.settled(history.len());
        if history[..settled]
            .iter()
            .any(|t| t.state == TrialState::Running)
        {
            return None;
        }
        for t in &mut history[settled..] {
            t.state = TrialState::Running;
            t.objective = None;
            t.series.clear();
        }
        Some(history)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(state: TrialState, objective: Option<f64>) -> Trial {
        Trial {
            assignment: Default::default(),
            state,
            objective,
            series: vec![(1, 1.0)],
        }
    }

    fn states(h: &[Trial]) -> Vec<TrialState> {
        h.iter().map(|t| t.state).collect()
    }

    #[test]
    fn a_seeded_trial_sees_the_trials_p_before_it_as_ended_and_the_rest_as_running() {
        use TrialState::*;
        let s = Schedule {
            parallel: 3,
            seeded: true,
        };
        // Trial 4 sees trials 0 and 1 as they ended, 2 and 3 as running though 3 is done.
        let h = vec![
            trial(Succeeded, Some(1.0)),
            trial(Failed, None),
            trial(Running, None),
            trial(Succeeded, Some(2.0)),
        ];
        let v = s.view(h.clone()).unwrap();
        assert_eq!(states(&v), [Succeeded, Failed, Running, Running]);
        assert_eq!((v[3].objective, v[3].series.len()), (None, 0));
        assert_eq!(v[0], h[0]);
        // Trial 5 must wait until trial 2 has ended.
        let mut h = h;
        h.push(trial(Running, None));
        assert!(s.view(h.clone()).is_none());
        h[2] = trial(EarlyStopped, Some(5.0));
        assert_eq!(
            states(&s.view(h).unwrap()),
            [Succeeded, Failed, EarlyStopped, Running, Running]
        );
        // The first p trials start at once, each seeing the ones before as running.
        assert_eq!(s.view(vec![trial(Running, None)]).unwrap().len(), 1);
        assert_eq!(s.settled(2), 0);
    }

    #[test]
    fn one_at_a_time_or_unseeded_sees_everything_as_it_is() {
        use TrialState::*;
        let h = vec![trial(Succeeded, Some(1.0)), trial(Running, None)];
        let unseeded = Schedule {
            parallel: 3,
            seeded: false,
        };
        assert_eq!(unseeded.view(h.clone()).unwrap(), h);
        let sequential = Schedule {
            parallel: 1,
            seeded: true,
        };
        assert!(sequential.view(h.clone()).is_none());
        assert_eq!(sequential.settled(2), 2);
    }
}
