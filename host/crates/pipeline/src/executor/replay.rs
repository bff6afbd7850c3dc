//! `pipeline replay`: a hermetic run executed again from its stored plan, every output
//! compared with the original's.

use super::*;
use weft_store::ArtifactEvent;

/// One output of a replayed run, next to the original.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReplayedOutput {
    pub task: String,
    pub output: String,
    /// `artifact` (compared by digest) or `param` (compared by value).
    pub kind: &'static str,
    pub original: String,
    pub replayed: Option<String>,
}

impl ReplayedOutput {
    pub fn matches(&self) -> bool {
        self.replayed.as_deref() == Some(self.original.as_str())
    }
}

/// The reproducibility proof of a run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReplayReport {
    pub original: String,
    pub replay: RunSummary,
    /// In the original run's task order.
    pub outputs: Vec<ReplayedOutput>,
    /// The first task (in dependency order) whose outputs differ: where to look first, since
    /// tasks after it consumed what it made.
    pub first_divergence: Option<String>,
    /// Original outputs whose stored copy no longer matched its digest before the replay
    /// (damaged on disk, not produced that way): the replay, producing them again, replaced
    /// them.
    pub damaged_originals: Vec<String>,
}

impl ReplayReport {
    pub fn reproduced(&self) -> bool {
        self.replay.state == RUN_SUCCEEDED && self.outputs.iter().all(ReplayedOutput::matches)
    }
}

impl Executor {
    /// Re-executes a hermetic run from its stored plan, cache off, and compares every output
    /// (artifact digests and parameter values) with the original's.
    pub async fn replay(&self, run_id: &str, opts: &RunOptions) -> Result<ReplayReport> {
        let record = self.stores.meta.run(run_id)?;
        let plan = replay_plan(&record.plan_json, run_id)?;
        let replay_id = self.next_replay_id(run_id)?;
        let order = plan.order.clone();
        let original_tasks = self.stores.meta.tasks(run_id)?;
        let original_events = self.stores.meta.events(Some(run_id))?;
        // Checked before the replay, which repairs what it produces again: the report says so.
        let damaged_originals = self.damaged_outputs(&original_events)?;
        let summary = self.start(plan, Some(replay_id.clone()), opts).await?;

        let replay_events = self.stores.meta.events(Some(&replay_id))?;
        let mut outputs = Vec::new();
        for t in &original_tasks {
            if !t.state.has_outputs() {
                continue;
            }
            outputs.extend(artifact_outputs(t, &original_events, &replay_events));
            outputs.extend(param_outputs(t, &summary)?);
        }
        sort_in_dependency_order(&mut outputs, &order);
        let first_divergence = outputs
            .iter()
            .find(|o| !o.matches())
            .map(|o| o.task.clone());
        Ok(ReplayReport {
            original: run_id.to_string(),
            replay: summary,
            outputs,
            first_divergence,
            damaged_originals,
        })
    }

    /// The id of the next replay of `run_id`: `<run>-replay-<n>`, counting the replays so far.
    fn next_replay_id(&self, run_id: &str) -> Result<String> {
        let n = self
            .stores
            .meta
            .runs(usize::MAX)?
            .iter()
            .filter(|r| r.id.starts_with(&format!("{run_id}-replay-")))
            .count();
        Ok(format!("{run_id}-replay-{}", n + 1))
    }

    /// The digests of the original outputs whose stored copy no longer matches its digest,
    /// each once.
    fn damaged_outputs(&self, events: &[ArtifactEvent]) -> Result<Vec<String>> {
        let mut damaged = Vec::new();
        for e in events.iter().filter(|e| e.direction == "output") {
            if !damaged.contains(&e.digest) && !self.stores.artifacts.verify(&e.digest)? {
                damaged.push(e.digest.clone());
            }
        }
        Ok(damaged)
    }
}

/// The stored plan of `run_id`, to be run again: refused unless the run was hermetic; cache
/// off, and naming the run it replays (the first one, for a replay of a replay).
fn replay_plan(plan_json: &str, run_id: &str) -> Result<Plan> {
    let mut plan: Plan = serde_json::from_str(plan_json).context("reading the stored plan")?;
    if plan.hermetic_seed.is_none() {
        anyhow::bail!("run {run_id} was not hermetic, so its outputs may depend on time and randomness; start runs with --hermetic-seed N to replay them");
    }
    plan.cache = false;
    plan.replay_of = Some(plan.replay_of.clone().unwrap_or_else(|| run_id.to_string()));
    Ok(plan)
}

/// Task `t`'s output artifacts, the original's digest next to the replay's.
fn artifact_outputs(
    t: &TaskRecord,
    original_events: &[ArtifactEvent],
    replay_events: &[ArtifactEvent],
) -> Vec<ReplayedOutput> {
    original_events
        .iter()
        .filter(|e| e.task == t.name && e.direction == "output")
        .map(|e| {
            let replayed = replay_events
                .iter()
                .find(|r| r.task == e.task && r.name == e.name && r.direction == "output");
            ReplayedOutput {
                task: t.name.clone(),
                output: e.name.clone(),
                kind: "artifact",
                original: e.digest.clone(),
                replayed: replayed.map(|r| r.digest.clone()),
            }
        })
        .collect()
}

/// Task `t`'s output parameters, the original's value next to the replay's.
fn param_outputs(t: &TaskRecord, summary: &RunSummary) -> Result<Vec<ReplayedOutput>> {
    let replayed_task = summary.tasks.iter().find(|r| r.name == t.name);
    let original_params: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(t.outputs_json.as_deref().unwrap_or("{}"))
            .with_context(|| format!("the recorded outputs of task `{}`", t.name))?;
    let replayed_params: BTreeMap<String, serde_json::Value> = replayed_task
        .and_then(|r| r.outputs_json.as_deref())
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default();
    Ok(original_params
        .into_iter()
        .map(|(name, value)| ReplayedOutput {
            task: t.name.clone(),
            output: name.clone(),
            kind: "param",
            original: value.to_string(),
            replayed: replayed_params.get(&name).map(|v| v.to_string()),
        })
        .collect())
}

/// Sorts outputs by their tasks in dependency order (iterations after their loop, in their
/// recorded order: the sort is stable).
fn sort_in_dependency_order(outputs: &mut [ReplayedOutput], order: &[String]) {
    let rank = |task: &str| {
        let base = task.split('[').next().unwrap_or(task);
        order.iter().position(|t| t == base).unwrap_or(usize::MAX)
    };
    outputs.sort_by_key(|o| rank(&o.task));
}
