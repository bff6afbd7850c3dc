//! The runs page: every run, newest first, a page at a time, filtered by state, pipeline or
//! tuning experiment, with each run's task progress and its two most common metrics (as KFP's
//! runs list shows). The first page refreshes itself, so new runs appear without a reload.

use crate::format;
use crate::layout::{badge, query, run_href, shell};
use crate::{blocking, State, UiError};
use axum::extract::Query;
use maud::{html, Markup};
use serde::Deserialize;
use std::collections::BTreeMap;
use weft_store::RUN_SUCCEEDED;
use weft_store::{MetadataStore, RunQuery, RunRecord, RUN_CANCELLED, RUN_FAILED, RUN_RUNNING};

/// Runs on a page.
pub const PAGE: u32 = 50;
const STATES: [&str; 4] = [RUN_RUNNING, RUN_SUCCEEDED, RUN_FAILED, RUN_CANCELLED];

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    pipeline: String,
    #[serde(default)]
    experiment: String,
    /// The (created_at, id) of the last run of the page before.
    #[serde(default)]
    before: String,
    #[serde(default)]
    before_id: String,
    /// `1`: only the live region, for the page's own refresh.
    #[serde(default)]
    fragment: u8,
}

impl RunsQuery {
    fn to_store(&self) -> Result<RunQuery, UiError> {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        if !self.state.is_empty() && !STATES.contains(&self.state.as_str()) {
            return Err(UiError::BadRequest(format!(
                "state `{}` is not one of {}",
                self.state,
                STATES.join(", ")
            )));
        }
        let before = match (some(&self.before), some(&self.before_id)) {
            (Some(t), Some(id)) => Some((t, id)),
            (None, None) => None,
            _ => {
                return Err(UiError::BadRequest(
                    "`before` and `before_id` go together".into(),
                ))
            }
        };
        Ok(RunQuery {
            state: some(&self.state),
            pipeline: some(&self.pipeline),
            experiment: some(&self.experiment),
            before,
            limit: PAGE,
        })
    }
}

/// One run as its row shows it.
struct Row {
    run: RunRecord,
    done: usize,
    total: usize,
    metrics: BTreeMap<String, f64>,
}

pub async fn page(
    state: State,
    q: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Markup, UiError> {
    let Query(q) = q.map_err(|e| UiError::BadRequest(e.body_text()))?;
    let store_q = q.to_store()?;
    let ui = state.0.clone();
    let rows = blocking(move || rows(&ui.metadata, &store_q)).await?;
    let live = live_region(&q, &rows);
    if q.fragment == 1 {
        return Ok(live);
    }
    Ok(shell(
        "Runs",
        html! {
            h1 { "Runs" }
            (filters(&q))
            form action="/compare" method="get" {
                (live)
                button type="submit" { "Compare selected runs" }
            }
        },
    ))
}

fn rows(metadata: &MetadataStore, q: &RunQuery) -> Result<Vec<Row>, UiError> {
    let runs = metadata.runs_page(q)?;
    runs.into_iter()
        .map(|run| {
            let tasks = metadata.tasks(&run.id)?;
            let top: Vec<_> = tasks.iter().filter(|t| !t.name.contains('[')).collect();
            let metrics = metadata
                .metrics(&run.id)?
                .into_iter()
                .map(|m| (format!("{}/{}", m.task, m.name), m.value))
                .collect();
            Ok(Row {
                done: top.iter().filter(|t| t.state.is_terminal()).count(),
                total: top.len(),
                metrics,
                run,
            })
        })
        .collect()
}

/// The two metric names most runs of the page have.
fn common_metrics(rows: &[Row]) -> Vec<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rows {
        for name in r.metrics.keys() {
            *counts.entry(name).or_default() += 1;
        }
    }
    let mut names: Vec<_> = counts.into_iter().collect();
    names.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    names
        .into_iter()
        .take(2)
        .map(|(n, _)| n.to_string())
        .collect()
}

fn filters(q: &RunsQuery) -> Markup {
    html! {
        form.filters action="/runs" method="get" aria-label="Filter runs" {
            label { "State "
                select name="state" {
                    option value="" selected[q.state.is_empty()] { "any" }
                    @for s in STATES { option value=(s) selected[q.state == s] { (s) } }
                }
            }
            label { "Pipeline " input name="pipeline" value=(q.pipeline) size="16"; }
            label { "Experiment " input name="experiment" value=(q.experiment) size="16"; }
            button type="submit" { "Filter" }
        }
    }
}

/// The table and the pager; refreshed while it is the first page.
fn live_region(q: &RunsQuery, rows: &[Row]) -> Markup {
    let first_page = q.before.is_empty();
    let filter = [
        ("state", q.state.as_str()),
        ("pipeline", q.pipeline.as_str()),
        ("experiment", q.experiment.as_str()),
    ];
    let mut live_q = filter.to_vec();
    live_q.push(("fragment", "1"));
    let metrics = common_metrics(rows);
    let next = rows
        .last()
        .filter(|_| rows.len() == PAGE as usize)
        .map(|last| {
            let mut next = filter.to_vec();
            next.push(("before", &last.run.created_at));
            next.push(("before_id", &last.run.id));
            format!("/runs?{}", query(&next))
        });
    html! {
        section #runs data-live=(format!("/runs?{}", query(&live_q))) data-running=(first_page) {
            @if rows.is_empty() {
                p.empty { "No runs match. Start one with " code { "wasm-run pipeline run FILE" } "." }
            } @else {
                table.runs {
                    caption { "Runs, newest first" }
                    thead { tr {
                        th scope="col" { span.visually-hidden { "Select" } }
                        th scope="col" { "Run" } th scope="col" { "Pipeline" } th scope="col" { "State" }
                        th scope="col" { "Tasks" } th scope="col" { "Started" } th scope="col" { "Duration" }
                        @for m in &metrics { th scope="col" { (m) } }
                    } }
                    tbody { @for r in rows { (row(r, &metrics)) } }
                }
            }
            @if let Some(next) = &next {
                nav.pager aria-label="Pages" {
                    @if !first_page { a href="/runs" { "Newest" } " " }
                    a rel="next" href=(next) { "Older runs →" }
                }
            }
        }
    }
}

fn row(r: &Row, metrics: &[String]) -> Markup {
    let run = &r.run;
    let took = format::span(&run.created_at, run.finished_at.as_deref());
    html! {
        tr data-run=(run.id) {
            td { input type="checkbox" name="run" value=(run.id) aria-label=(format!("Select run {}", run.id)); }
            td { a href=(run_href(&run.id)) { (run.id) } }
            td { a href=(format!("/runs?{}", query(&[("pipeline", &run.pipeline)]))) { (run.pipeline) } }
            td { (badge(&run.state)) }
            td { progress max=(r.total.max(1)) value=(r.done) aria-label="tasks done" {} " " (r.done) "/" (r.total) }
            td { (format::time(&run.created_at)) }
            td { (took.map(format::duration).unwrap_or_default()) }
            @for m in metrics {
                td.num { (r.metrics.get(m).map(|v| format::number(*v)).unwrap_or_default()) }
            }
        }
    }
}
