//! The compact report a pipeline runner leaves behind (`wasm-run pipeline run --report`): on
//! Kubernetes the runner container's termination message, which the operator copies into the
//! `PipelineRun` status. Both sides use this type, so the format cannot drift.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Kubernetes keeps at most this much of a termination message.
pub const MAX_REPORT_BYTES: usize = 4096;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    pub run_id: String,
    /// SUCCEEDED, FAILED or CANCELLED.
    pub state: String,
    /// Top-level tasks (not `parallelFor` iterations), by name.
    #[serde(default)]
    pub tasks: BTreeMap<String, TaskReport>,
    /// Tasks left out to keep the report within [`MAX_REPORT_BYTES`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted: usize,
}

/// One task's outcome; also the `status.tasks` entries of a PipelineRun on Kubernetes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskReport {
    /// KFP's task states, CACHED for a cache hit.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<String>,
    /// The first line of the error, for a failed task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Output artifacts by name: their `sha256:` digests in the artifact store.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub artifacts: BTreeMap<String, String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl RunReport {
    /// Reads a report (a termination message, which the runner's container writes and so
    /// anything in the pod can forge), refusing artifact digests that are not strict.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let report: RunReport =
            serde_json::from_str(text).map_err(|e| format!("run report: {e}"))?;
        for (task, t) in &report.tasks {
            for (name, digest) in &t.artifacts {
                crate::digest::parse(digest)
                    .map_err(|e| format!("run report: task `{task}` artifact `{name}`: {e}"))?;
            }
        }
        Ok(report)
    }

    /// The report as JSON within [`MAX_REPORT_BYTES`]: messages are cut first, then times,
    /// then artifacts, then tasks (counted in `omitted`).
    pub fn to_bounded_json(&self) -> String {
        let mut report = self.clone();
        let fits = |r: &RunReport| serde_json::to_string(r).expect("a report serialises");
        let mut text = fits(&report);
        if text.len() <= MAX_REPORT_BYTES {
            return text;
        }
        for t in report.tasks.values_mut() {
            if let Some(m) = &mut t.message {
                m.truncate(m.floor_char_boundary(80));
            }
        }
        text = fits(&report);
        if text.len() <= MAX_REPORT_BYTES {
            return text;
        }
        for t in report.tasks.values_mut() {
            t.start_time = None;
            t.finish_time = None;
        }
        text = fits(&report);
        if text.len() <= MAX_REPORT_BYTES {
            return text;
        }
        for t in report.tasks.values_mut() {
            t.artifacts.clear();
        }
        text = fits(&report);
        while text.len() > MAX_REPORT_BYTES {
            let Some(last) = report.tasks.keys().next_back().cloned() else {
                break;
            };
            report.tasks.remove(&last);
            report.omitted += 1;
            text = fits(&report);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_with_a_bad_digest_is_refused() {
        let good = format!(
            r#"{{"runId":"r","state":"SUCCEEDED","tasks":{{"t":{{"state":"SUCCEEDED","artifacts":{{"out":"sha256:{}"}}}}}}}}"#,
            "a".repeat(64)
        );
        assert!(RunReport::from_json(&good).is_ok());
        let bad = good.replace(&"a".repeat(64), "../../etc");
        let err = RunReport::from_json(&bad).unwrap_err();
        assert!(
            err.contains("task `t` artifact `out`") && err.contains("not a digest"),
            "{err}"
        );
    }

    #[test]
    fn a_large_report_is_cut_to_the_termination_message_limit_and_says_so() {
        let mut report = RunReport {
            run_id: "r".into(),
            state: "FAILED".into(),
            ..Default::default()
        };
        for i in 0..200 {
            report.tasks.insert(
                format!("task-{i:03}"),
                TaskReport {
                    state: "FAILED".into(),
                    start_time: Some("2026-11-27T14:00:00Z".into()),
                    finish_time: Some("2026-11-27T14:00:01Z".into()),
                    message: Some("x".repeat(300)),
                    artifacts: [("out".to_string(), format!("sha256:{}", "a".repeat(64)))].into(),
                },
            );
        }
        let text = report.to_bounded_json();
        assert!(text.len() <= MAX_REPORT_BYTES);
        let back: RunReport = serde_json::from_str(&text).unwrap();
        assert_eq!(back.tasks.len() + back.omitted, 200);
        assert!(back.omitted > 0 && back.tasks.contains_key("task-000"));

        let small = RunReport {
            tasks: report.tasks.into_iter().take(2).collect(),
            ..back
        };
        let back: RunReport = serde_json::from_str(&small.to_bounded_json()).unwrap();
        assert_eq!(
            back.tasks["task-000"].message.as_deref().map(str::len),
            Some(300)
        );
    }
}
