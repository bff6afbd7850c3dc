//! `pipeline run --report`: the run's summary as weft-spec's [`RunReport`].

use weft_pipeline::RunSummary;
use weft_spec::report::{RunReport, TaskReport};
use weft_store::ArtifactEvent;

/// The bounded JSON report of a finished run, with the output artifacts of `events`.
pub fn compact(summary: &RunSummary, events: &[ArtifactEvent]) -> String {
    let tasks = summary
        .tasks
        .iter()
        .filter(|t| !t.name.contains('['))
        .map(|t| {
            let state = if t.cached_from.is_some() {
                "CACHED"
            } else {
                t.state.as_str()
            };
            let report = TaskReport {
                state: state.to_string(),
                start_time: t.started_at.clone(),
                finish_time: t.finished_at.clone(),
                message: t
                    .error
                    .as_deref()
                    .and_then(|e| e.lines().next())
                    .map(str::to_string),
                artifacts: events
                    .iter()
                    .filter(|e| e.task == t.name && e.direction == "output")
                    .map(|e| (e.name.clone(), e.digest.clone()))
                    .collect(),
            };
            (t.name.clone(), report)
        })
        .collect();
    RunReport {
        run_id: summary.run_id.clone(),
        state: summary.state.clone(),
        tasks,
        omitted: 0,
    }
    .to_bounded_json()
}
