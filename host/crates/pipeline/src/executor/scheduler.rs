//! What the run loop may do next, decided from task states alone: no I/O, no clock, so every
//! rule is unit-tested here. The loop applies the verdicts (records, emits, launches) and
//! evaluates `when` conditions, which need outputs.

use std::collections::{BTreeMap, BTreeSet};
use weft_store::TaskState;

/// What a pending task whose upstream tasks have all ended is to become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Ends without running, in this state, for this reason.
    End(TaskState, String),
    /// May run (its `when` condition, if any, still to be evaluated).
    Run,
}

/// The pending tasks that can be decided now, in plan order, with their verdicts: a task is
/// ready once every upstream task has ended. A cancelled run cancels it; an upstream that
/// failed or was cancelled cancels it; an upstream not triggered leaves it not triggered.
pub(super) fn ready<'a>(
    order: &'a [String],
    upstream: &BTreeMap<String, BTreeSet<String>>,
    states: &BTreeMap<String, TaskState>,
    cancelled: bool,
) -> Vec<(&'a str, Verdict)> {
    let state = |t: &str| states.get(t).copied().unwrap_or(TaskState::Pending);
    order
        .iter()
        .filter(|name| state(name) == TaskState::Pending)
        .filter_map(|name| {
            let ups = upstream.get(name.as_str())?;
            if ups.iter().any(|u| !state(u).is_terminal()) {
                return None;
            }
            let verdict = if cancelled {
                Verdict::End(TaskState::Cancelled, "run cancelled".into())
            } else if let Some(u) = ups
                .iter()
                .find(|u| matches!(state(u), TaskState::Failed | TaskState::Cancelled))
            {
                Verdict::End(
                    TaskState::Cancelled,
                    format!("upstream task `{u}` did not succeed"),
                )
            } else if let Some(u) = ups.iter().find(|u| state(u) == TaskState::NotTriggered) {
                Verdict::End(
                    TaskState::NotTriggered,
                    format!("upstream task `{u}` was not triggered"),
                )
            } else {
                Verdict::Run
            };
            Some((name.as_str(), verdict))
        })
        .collect()
}

/// The run's end state from its tasks' states, and the failed tasks.
pub(super) fn outcome(
    states: &BTreeMap<String, TaskState>,
    cancelled: bool,
) -> (&'static str, Vec<&str>) {
    let failed: Vec<&str> = states
        .iter()
        .filter(|(_, s)| **s == TaskState::Failed)
        .map(|(n, _)| n.as_str())
        .collect();
    let state = if cancelled {
        weft_store::RUN_CANCELLED
    } else if !failed.is_empty() {
        weft_store::RUN_FAILED
    } else {
        weft_store::RUN_SUCCEEDED
    };
    (state, failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskState::*;

    /// a -> b -> d, a -> c -> d
    fn diamond() -> (Vec<String>, BTreeMap<String, BTreeSet<String>>) {
        let order = ["a", "b", "c", "d"].map(String::from).to_vec();
        let up = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let upstream = BTreeMap::from([
            ("a".to_string(), up(&[])),
            ("b".to_string(), up(&["a"])),
            ("c".to_string(), up(&["a"])),
            ("d".to_string(), up(&["b", "c"])),
        ]);
        (order, upstream)
    }

    fn states(pairs: &[(&str, TaskState)]) -> BTreeMap<String, TaskState> {
        pairs.iter().map(|(n, s)| (n.to_string(), *s)).collect()
    }

    #[test]
    fn a_task_is_ready_when_all_its_upstream_tasks_ended() {
        let (order, upstream) = diamond();
        let all_pending = states(&[
            ("a", Pending),
            ("b", Pending),
            ("c", Pending),
            ("d", Pending),
        ]);
        assert_eq!(
            ready(&order, &upstream, &all_pending, false),
            vec![("a", Verdict::Run)]
        );
        let half = states(&[
            ("a", Succeeded),
            ("b", Running),
            ("c", Pending),
            ("d", Pending),
        ]);
        assert_eq!(
            ready(&order, &upstream, &half, false),
            vec![("c", Verdict::Run)]
        );
        let cached = states(&[
            ("a", Skipped),
            ("b", Succeeded),
            ("c", Skipped),
            ("d", Pending),
        ]);
        assert_eq!(
            ready(&order, &upstream, &cached, false),
            vec![("d", Verdict::Run)]
        );
    }

    #[test]
    fn failure_cancels_downstream_and_not_triggered_propagates() {
        let (order, upstream) = diamond();
        let failed = states(&[
            ("a", Succeeded),
            ("b", Failed),
            ("c", Succeeded),
            ("d", Pending),
        ]);
        assert_eq!(
            ready(&order, &upstream, &failed, false),
            vec![(
                "d",
                Verdict::End(Cancelled, "upstream task `b` did not succeed".into())
            )]
        );
        let skipped = states(&[
            ("a", Succeeded),
            ("b", NotTriggered),
            ("c", Succeeded),
            ("d", Pending),
        ]);
        assert_eq!(
            ready(&order, &upstream, &skipped, false),
            vec![(
                "d",
                Verdict::End(NotTriggered, "upstream task `b` was not triggered".into())
            )]
        );
        // A failure wins over not-triggered.
        let both = states(&[
            ("a", Succeeded),
            ("b", NotTriggered),
            ("c", Cancelled),
            ("d", Pending),
        ]);
        assert!(matches!(
            ready(&order, &upstream, &both, false)[0].1,
            Verdict::End(Cancelled, _)
        ));
    }

    #[test]
    fn a_cancelled_run_cancels_whatever_is_ready() {
        let (order, upstream) = diamond();
        let s = states(&[
            ("a", Succeeded),
            ("b", Pending),
            ("c", Pending),
            ("d", Pending),
        ]);
        let r = ready(&order, &upstream, &s, true);
        assert_eq!(r.len(), 2);
        assert!(r
            .iter()
            .all(|(_, v)| *v == Verdict::End(Cancelled, "run cancelled".into())));
    }

    #[test]
    fn the_run_ends_in_the_state_its_tasks_say() {
        let s = states(&[("a", Succeeded), ("b", Failed), ("c", Skipped)]);
        assert_eq!(outcome(&s, false), (weft_store::RUN_FAILED, vec!["b"]));
        assert_eq!(outcome(&s, true).0, weft_store::RUN_CANCELLED);
        let ok = states(&[("a", Succeeded), ("b", NotTriggered), ("c", Skipped)]);
        assert_eq!(outcome(&ok, false), (weft_store::RUN_SUCCEEDED, vec![]));
    }
}
