//! A run: its graph (live while it runs), tasks with states, durations, cache hits and logs,
//! parameters, output artifacts and metrics.

use crate::dag::{self, Node};
use crate::format;
use crate::layout::{badge, path_part, query, run_href, shell};
use crate::{blocking, plot, State, UiError};
use axum::extract::{Path, Query};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, SeekFrom};
use weft_store::{ArtifactEvent, MetricRecord, RunRecord, TaskRecord, RUN_RUNNING};

/// The part of a stored plan the pages read; the rest is the executor's business.
#[derive(Deserialize, Default)]
pub struct StoredPlan {
    #[serde(default)]
    pub upstream: BTreeMap<String, BTreeSet<String>>,
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
}

impl StoredPlan {
    pub fn of(run: &RunRecord) -> StoredPlan {
        serde_json::from_str(&run.plan_json).unwrap_or_default()
    }
}

/// Everything a run page shows.
pub struct RunView {
    pub run: RunRecord,
    pub plan: StoredPlan,
    pub tasks: Vec<TaskRecord>,
    pub events: Vec<ArtifactEvent>,
    pub metrics: Vec<MetricRecord>,
}

pub fn load(ui: &crate::Ui, id: &str) -> Result<RunView, UiError> {
    let run = ui.metadata.run(id)?;
    Ok(RunView {
        plan: StoredPlan::of(&run),
        tasks: ui.metadata.tasks(id)?,
        events: ui.metadata.events(Some(id))?,
        metrics: ui.metadata.metrics(id)?,
        run,
    })
}

/// The state a task shows: a cache hit says so.
fn shown_state(t: &TaskRecord) -> String {
    if t.cached_from.is_some() {
        "CACHED".into()
    } else {
        t.state.as_str().into()
    }
}

/// `name[3]` → `name`; a task outside any loop → `None`.
fn loop_of(task: &str) -> Option<&str> {
    task.split_once('[').map(|(l, _)| l)
}

pub async fn page(state: State, Path(id): Path<String>) -> Result<Markup, UiError> {
    let ui = state.0.clone();
    let v = blocking(move || load(&ui, &id)).await?;
    let run = &v.run;
    Ok(shell(
        &format!("Run {}", run.id),
        html! {
            h1 { "Run " (run.id) }
            dl.summary {
                dt { "Pipeline" } dd { a href=(format!("/runs?{}", query(&[("pipeline", &run.pipeline)]))) { (run.pipeline) } }
                dt { "State" } dd { (badge(&run.state)) }
                dt { "Started" } dd { (format::time(&run.created_at)) }
                dt { "Finished" } dd { (run.finished_at.as_deref().map(format::time).unwrap_or_else(|| "—".into())) }
                dt { "Duration" } dd { (format::span(&run.created_at, run.finished_at.as_deref()).map(format::duration).unwrap_or_default()) }
                dt { "File" } dd { code { (run.pipeline_file) } }
            }
            @if let Some(e) = &run.error { pre.error role="alert" { (e) } }
            p { a href=(format!("/compare?{}", query(&[("run", &run.id)]))) { "Compare with other runs" } }
            (live(&v))
            (params(&v.plan))
            (artifacts(&v.events))
            (metrics(&v.metrics))
        },
    ))
}

/// The live region alone, for the page's refresh while the run goes on.
pub async fn live_fragment(state: State, Path(id): Path<String>) -> Result<Markup, UiError> {
    let ui = state.0.clone();
    let v = blocking(move || load(&ui, &id)).await?;
    Ok(live(&v))
}

/// The graph and the tasks table; refreshed while the run is running.
fn live(v: &RunView) -> Markup {
    let running = v.run.state == RUN_RUNNING;
    let nodes = nodes(&v.tasks);
    html! {
        section #run-live data-live=(format!("{}/live", run_href(&v.run.id))) data-running=(running) data-state=(v.run.state) {
            h2 { "Graph" }
            div.graph { (dag::svg(&v.run.id, &v.plan.upstream, &nodes)) }
            h2 { "Tasks" }
            (tasks_table(&v.run.id, &v.tasks))
        }
    }
}

/// Each task of the plan as its node shows it; a loop's iterations folded into it.
fn nodes(tasks: &[TaskRecord]) -> BTreeMap<String, Node> {
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    let mut loops: BTreeMap<&str, BTreeMap<String, usize>> = BTreeMap::new();
    for t in tasks {
        match loop_of(&t.name) {
            Some(l) => {
                *loops
                    .entry(l)
                    .or_default()
                    .entry(shown_state(t))
                    .or_default() += 1
            }
            None => {
                let detail = match (&t.cached_from, t.duration_ms) {
                    (Some(_), _) => "cached".to_string(),
                    (None, Some(ms)) => format::millis(ms),
                    (None, None) => String::new(),
                };
                nodes.insert(
                    t.name.clone(),
                    Node {
                        state: shown_state(t),
                        detail,
                        iterations: None,
                    },
                );
            }
        }
    }
    for (l, counts) in loops {
        let total: usize = counts.values().sum();
        let node = nodes.entry(l.to_string()).or_default();
        if node.state.is_empty() {
            node.state = "RUNNING".into();
        }
        node.iterations = Some(total);
        node.detail = counts
            .iter()
            .map(|(s, n)| format!("{n} {}", s.to_lowercase()))
            .collect::<Vec<_>>()
            .join(", ");
    }
    nodes
}

fn tasks_table(run: &str, tasks: &[TaskRecord]) -> Markup {
    let mut loops: BTreeMap<&str, Vec<&TaskRecord>> = BTreeMap::new();
    for t in tasks {
        if let Some(l) = loop_of(&t.name) {
            loops.entry(l).or_default().push(t);
        }
    }
    html! {
        table.tasks {
            caption { "Tasks in the order they were recorded" }
            thead { tr { th scope="col" { "Task" } th scope="col" { "State" } th scope="col" { "Attempt" }
                th scope="col" { "Duration" } th scope="col" { "Log" } th scope="col" { "Outputs / error" } } }
            tbody {
                @for t in tasks.iter().filter(|t| loop_of(&t.name).is_none()) {
                    (task_row(run, t))
                    @if let Some(its) = loops.get(t.name.as_str()) { (iterations_row(run, &t.name, its)) }
                }
            }
        }
    }
}

fn task_row(run: &str, t: &TaskRecord) -> Markup {
    html! {
        tr id=(format!("task-{}", path_part(&t.name))) data-task=(t.name) {
            th scope="row" { (t.name) }
            td { (badge(&shown_state(t))) @if let Some(from) = &t.cached_from { " from " a href=(run_href(from)) { (from) } } }
            td.num { (t.attempt) }
            td.num { (t.duration_ms.map(format::millis).unwrap_or_default()) }
            td { @if t.log_path.is_some() { a href=(log_href(run, &t.name)) { "log" } } }
            td { @if let Some(e) = &t.error { span.error { (e.lines().next().unwrap_or_default()) } } @else { (outputs(t)) } }
        }
    }
}

fn log_href(run: &str, task: &str) -> String {
    format!("{}/tasks/{}/log", run_href(run), path_part(task))
}

/// A loop's iterations, folded: counts, the first few, and a link to all of them.
fn iterations_row(run: &str, name: &str, its: &[&TaskRecord]) -> Markup {
    html! {
        tr.iterations { td colspan="6" {
            details {
                summary { (its.len()) " iterations of " (name) }
                ul { @for t in its.iter().take(20) {
                    li { (t.name) " " (badge(&shown_state(t))) " "
                        @if t.log_path.is_some() { a href=(log_href(run, &t.name)) { "log" } } }
                } }
                a href=(format!("{}/tasks/{}/iterations", run_href(run), path_part(name))) { "All " (its.len()) " iterations" }
            }
        } }
    }
}

/// Output parameters as `name = value`.
fn outputs(t: &TaskRecord) -> Markup {
    let parsed: BTreeMap<String, serde_json::Value> = t
        .outputs_json
        .as_deref()
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default();
    html! { @for (k, v) in &parsed { code { (k) " = " (short_value(v.get("value").unwrap_or(v))) } " " } }
}

/// A JSON value shown inline: strings without quotes, long ones cut.
pub fn short_value(v: &serde_json::Value) -> String {
    let s = match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.chars().count() > 80 {
        s.chars().take(79).chain(['…']).collect()
    } else {
        s
    }
}

fn params(plan: &StoredPlan) -> Markup {
    html! {
        h2 { "Parameters" }
        @if plan.params.is_empty() { p.empty { "None." } } @else {
            table.params { thead { tr { th scope="col" { "Name" } th scope="col" { "Value" } } }
                tbody { @for (k, v) in &plan.params { tr { th scope="row" { (k) } td { code { (short_value(v)) } } } } } }
        }
    }
}

fn artifacts(events: &[ArtifactEvent]) -> Markup {
    let outputs: Vec<_> = events.iter().filter(|e| e.direction == "output").collect();
    html! {
        h2 { "Artifacts" }
        @if outputs.is_empty() { p.empty { "None yet." } } @else {
            table.artifacts { thead { tr { th scope="col" { "Task" } th scope="col" { "Output" } th scope="col" { "Type" } th scope="col" { "Digest" } } }
                tbody { @for e in outputs { tr {
                    td { (e.task) } td { a href=(format!("/artifacts/{}", path_part(&e.digest))) { (e.name) } }
                    td { (e.artifact_type) } td { code { (e.digest.chars().take(19).collect::<String>()) "…" } }
                } } } }
        }
    }
}

fn metrics(metrics: &[MetricRecord]) -> Markup {
    let series = plot::series_by_name(
        metrics
            .iter()
            .map(|m| (format!("{}/{}", m.task, m.name), m.step, m.value)),
    );
    html! {
        h2 { "Metrics" }
        @if metrics.is_empty() { p.empty { "None reported." } } @else {
            table.metrics { thead { tr { th scope="col" { "Metric" } th scope="col" { "Last value" } th scope="col" { "Reports" } } }
                tbody { @for (name, points) in &series { tr {
                    th scope="row" { (name) }
                    td.num { (points.last().map(|p| format::number(p.1)).unwrap_or_default()) }
                    td.num { (points.len()) }
                } } } }
            @for (name, points) in series.iter().filter(|(_, p)| p.len() > 1) {
                figure { (plot::lines(&[(name.clone(), points.clone())], "step", name)) figcaption { (name) } }
            }
        }
    }
}

#[derive(Deserialize, Default)]
pub struct LogQuery {
    #[serde(default)]
    raw: u8,
}

/// The last megabyte of a task's log: as a page, or `?raw=1` as plain text.
pub async fn log(
    state: State,
    Path((id, task)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Result<Response, UiError> {
    let ui = state.0.clone();
    let (id2, task2) = (id.clone(), task.clone());
    let text = blocking(move || read_log(&ui, &id2, &task2)).await?;
    if q.raw == 1 {
        return Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response());
    }
    Ok(shell(
        &format!("Log of {task}"),
        html! {
            p { a href=(run_href(&id)) { "← Run " (id) } }
            h1 { "Log of " (task) }
            p { a href=(format!("{}?raw=1", log_href(&id, &task))) { "Plain text" } }
            pre.log tabindex="0" aria-label=(format!("Log of {task}")) { (text) }
        },
    )
    .into_response())
}

/// Logs are read from the home's logs directory only, and at most the last [`LOG_TAIL`].
const LOG_TAIL: u64 = 1 << 20;

fn read_log(ui: &crate::Ui, run: &str, task: &str) -> Result<String, UiError> {
    let t = ui
        .metadata
        .tasks(run)?
        .into_iter()
        .find(|t| t.name == task)
        .ok_or_else(|| UiError::NotFound(format!("run `{run}` has no task `{task}`")))?;
    let path = t
        .log_path
        .ok_or_else(|| UiError::NotFound(format!("task `{task}` has no log")))?;
    let path = std::path::Path::new(&path);
    let inside = match (path.canonicalize(), ui.logs_dir.canonicalize()) {
        (Ok(p), Ok(dir)) => p.starts_with(dir),
        _ => return Err(UiError::NotFound(format!("the log of `{task}` is gone"))),
    };
    if !inside {
        return Err(UiError::NotFound(format!(
            "the log of `{task}` is outside the logs directory"
        )));
    }
    let mut f = std::fs::File::open(path)
        .map_err(|e| UiError::Internal(format!("{}: {e}", path.display())))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut text = String::new();
    if len > LOG_TAIL {
        f.seek(SeekFrom::Start(len - LOG_TAIL))
            .map_err(|e| UiError::Internal(e.to_string()))?;
        text.push_str(&format!(
            "[… the first {} are not shown]\n",
            format::bytes(len - LOG_TAIL)
        ));
    }
    let mut bytes = Vec::new();
    f.take(LOG_TAIL)
        .read_to_end(&mut bytes)
        .map_err(|e| UiError::Internal(e.to_string()))?;
    text.push_str(&String::from_utf8_lossy(&bytes));
    Ok(text)
}

#[derive(Deserialize, Default)]
pub struct IterationsQuery {
    #[serde(default)]
    offset: usize,
}

/// Iterations on a page of the iterations list.
const ITERATIONS_PAGE: usize = 100;

/// A loop's iterations, a hundred at a time, in iteration order.
pub async fn iterations(
    state: State,
    Path((id, task)): Path<(String, String)>,
    Query(q): Query<IterationsQuery>,
) -> Result<Markup, UiError> {
    let ui = state.0.clone();
    let id2 = id.clone();
    let tasks = blocking(move || Ok(ui.metadata.tasks(&id2)?)).await?;
    let index = |t: &TaskRecord| -> Option<usize> {
        let rest = t.name.strip_prefix(task.as_str())?.strip_prefix('[')?;
        rest.split(']').next()?.parse().ok()
    };
    let mut its: Vec<(usize, &TaskRecord)> =
        tasks.iter().filter_map(|t| Some((index(t)?, t))).collect();
    if its.is_empty() {
        return Err(UiError::NotFound(format!(
            "run `{id}` has no iterations of `{task}`"
        )));
    }
    its.sort_by_key(|(i, t)| (*i, t.name.clone()));
    let shown = its.iter().skip(q.offset).take(ITERATIONS_PAGE);
    let base = format!("{}/tasks/{}/iterations", run_href(&id), path_part(&task));
    Ok(shell(
        &format!("Iterations of {task}"),
        html! {
            p { a href=(run_href(&id)) { "← Run " (id) } }
            h1 { (its.len()) " iterations of " (task) }
            table.tasks { thead { tr { th scope="col" { "Iteration" } th scope="col" { "State" } th scope="col" { "Duration" } th scope="col" { "Log" } } }
                tbody { @for (_, t) in shown { tr {
                    th scope="row" { (t.name) } td { (badge(&shown_state(t))) }
                    td.num { (t.duration_ms.map(format::millis).unwrap_or_default()) }
                    td { @if t.log_path.is_some() { a href=(log_href(&id, &t.name)) { "log" } } }
                } } } }
            nav.pager aria-label="Pages" {
                @if q.offset > 0 { a rel="prev" href=(format!("{base}?offset={}", q.offset.saturating_sub(ITERATIONS_PAGE))) { "← Earlier" } " " }
                @if q.offset + ITERATIONS_PAGE < its.len() { a rel="next" href=(format!("{base}?offset={}", q.offset + ITERATIONS_PAGE)) { "Later →" } }
            }
        },
    ))
}
