//! Run comparison: any number of runs (not two, not one pipeline version), their parameters
//! and every metric side by side, names qualified by task so two tasks' `accuracy` never
//! collapse into one (kubeflow/pipelines#13988), and metric series overlaid.

use crate::format;
use crate::layout::{badge, run_href, shell};
use crate::run::{load, short_value, RunView};
use crate::{blocking, plot, State, UiError};
use axum::extract::RawQuery;
use maud::{html, Markup};
use std::collections::{BTreeMap, BTreeSet};

/// At most this many runs side by side.
const MAX_RUNS: usize = 50;

pub async fn page(state: State, RawQuery(raw): RawQuery) -> Result<Markup, UiError> {
    let mut ids: Vec<String> = Vec::new();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "run" if !v.is_empty() && !ids.contains(&v.to_string()) => ids.push(v.into_owned()),
            "run" => {}
            other => {
                return Err(UiError::BadRequest(format!(
                    "unknown query parameter `{other}`: give runs as run=ID"
                )))
            }
        }
    }
    if ids.len() > MAX_RUNS {
        return Err(UiError::BadRequest(format!(
            "{} runs asked for; at most {MAX_RUNS} compare at once",
            ids.len()
        )));
    }
    let ui = state.0.clone();
    let views = blocking(move || {
        ids.iter()
            .map(|id| load(&ui, id))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    if views.is_empty() {
        return Ok(shell(
            "Compare runs",
            html! {
                h1 { "Compare runs" }
                p { "Pick runs on the " a href="/runs" { "runs page" } " and press " em { "Compare selected runs" } "." }
            },
        ));
    }
    Ok(shell(
        "Compare runs",
        html! {
            h1 { "Comparing " (views.len()) " runs" }
            (overview(&views))
            (params(&views))
            (metrics(&views))
        },
    ))
}

fn overview(views: &[RunView]) -> Markup {
    html! {
        table.overview { caption { "Runs" }
            thead { tr { th scope="col" { "Run" } th scope="col" { "Pipeline" } th scope="col" { "State" } th scope="col" { "Duration" } } }
            tbody { @for v in views { tr {
                th scope="row" { a href=(run_href(&v.run.id)) { (v.run.id) } }
                td { (v.run.pipeline) } td { (badge(&v.run.state)) }
                td { (format::span(&v.run.created_at, v.run.finished_at.as_deref()).map(format::duration).unwrap_or_default()) }
            } } }
        }
    }
}

/// A table with one row per name and one column per run; rows whose values differ marked.
fn side_by_side(
    caption: &str,
    views: &[RunView],
    rows: &BTreeMap<String, Vec<Option<String>>>,
) -> Markup {
    html! {
        table.compare { caption { (caption) }
            thead { tr { th scope="col" { "Name" } @for v in views { th scope="col" { (v.run.id) } } } }
            tbody { @for (name, values) in rows {
                @let differs = values.iter().collect::<BTreeSet<_>>().len() > 1;
                tr class=[differs.then_some("differs")] {
                    th scope="row" { (name) @if differs { span.visually-hidden { " (differs)" } } }
                    @for v in values { td.num { (v.as_deref().unwrap_or("—")) } }
                }
            } }
        }
    }
}

fn params(views: &[RunView]) -> Markup {
    let mut rows: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    for (i, v) in views.iter().enumerate() {
        for (k, val) in &v.plan.params {
            rows.entry(k.clone())
                .or_insert_with(|| vec![None; views.len()])[i] = Some(short_value(val));
        }
    }
    html! { h2 { "Parameters" } @if rows.is_empty() { p.empty { "No parameters." } } @else { (side_by_side("Parameters", views, &rows)) } }
}

fn metrics(views: &[RunView]) -> Markup {
    let per_run: Vec<BTreeMap<String, plot::Series>> = views
        .iter()
        .map(|v| {
            plot::series_by_name(
                v.metrics
                    .iter()
                    .map(|m| (format!("{}/{}", m.task, m.name), m.step, m.value)),
            )
        })
        .collect();
    let mut rows: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    for (i, series) in per_run.iter().enumerate() {
        for (name, points) in series {
            let last = points.last().map(|p| format::number(p.1));
            rows.entry(name.clone())
                .or_insert_with(|| vec![None; views.len()])[i] = last;
        }
    }
    let curves: Vec<&String> = rows
        .keys()
        .filter(|n| {
            per_run
                .iter()
                .any(|s| s.get(*n).is_some_and(|p| p.len() > 1))
        })
        .collect();
    html! {
        h2 { "Metrics" }
        @if rows.is_empty() { p.empty { "No metrics reported." } } @else { (side_by_side("Metrics (last reported value)", views, &rows)) }
        @for name in curves {
            @let series: Vec<(String, plot::Series)> = views.iter().zip(&per_run)
                .filter_map(|(v, s)| s.get(name).map(|p| (v.run.id.clone(), p.clone()))).collect();
            figure { (plot::lines(&series, "step", name)) figcaption { (name) ", every run" } }
        }
    }
}
