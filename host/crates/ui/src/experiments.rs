//! Tuning experiments (Katib-like): the list, and one experiment's trials with the objective
//! of each and the best so far plotted, and parallel coordinates of parameters against the
//! objective.

use crate::format;
use crate::layout::{badge, path_part, query, run_href, shell};
use crate::plot::{self, Axis};
use crate::{blocking, State, UiError};
use axum::extract::Path;
use maud::{html, Markup};
use serde_json::Value;
use std::collections::BTreeMap;
use weft_spec::experiment::{Experiment, ObjectiveType};
use weft_store::{ExperimentRecord, TrialRecord};

pub async fn list(state: State) -> Result<Markup, UiError> {
    let ui = state.0.clone();
    let all = blocking(move || {
        ui.metadata
            .experiments()?
            .into_iter()
            .map(|e| Ok((ui.metadata.trials(&e.name)?, e)))
            .collect::<Result<Vec<_>, UiError>>()
    })
    .await?;
    Ok(shell(
        "Experiments",
        html! {
            h1 { "Experiments" }
            @if all.is_empty() { p.empty { "No tuning experiments yet. Start one with " code { "wasm-run tune FILE" } "." } } @else {
                table.experiments { caption { "Tuning experiments" }
                    thead { tr { th scope="col" { "Experiment" } th scope="col" { "State" } th scope="col" { "Algorithm" }
                        th scope="col" { "Trials" } th scope="col" { "Best objective" } th scope="col" { "Started" } } }
                    tbody { @for (trials, e) in &all {
                        @let spec = parse(e);
                        tr {
                            th scope="row" { a href=(format!("/experiments/{}", path_part(&e.name))) { (e.name) } }
                            td { (badge(&e.state)) }
                            td { (spec.as_ref().map(|s| s.spec.algorithm.algorithm_name.as_str()).unwrap_or("?")) }
                            td.num { (trials.len()) }
                            td.num { (best(trials, minimize(spec.as_ref())).map(|(_, v)| format::number(v)).unwrap_or_default()) }
                            td { (format::time(&e.created_at)) }
                        }
                    } }
                }
            }
        },
    ))
}

fn parse(e: &ExperimentRecord) -> Option<Experiment> {
    serde_json::from_str(&e.spec_json).ok()
}

fn minimize(spec: Option<&Experiment>) -> bool {
    spec.is_none_or(|s| s.spec.objective.direction == ObjectiveType::Minimize)
}

/// The index and objective of the best trial.
fn best(trials: &[TrialRecord], minimize: bool) -> Option<(usize, f64)> {
    trials
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.objective.filter(|v| v.is_finite()).map(|v| (i, v)))
        .reduce(|a, b| {
            if (minimize && b.1 < a.1) || (!minimize && b.1 > a.1) {
                b
            } else {
                a
            }
        })
}

pub async fn page(state: State, Path(name): Path<String>) -> Result<Markup, UiError> {
    let ui = state.0.clone();
    let n = name.clone();
    let (e, trials) = blocking(move || {
        let e = ui
            .metadata
            .experiment(&n)?
            .ok_or_else(|| UiError::NotFound(format!("no experiment `{n}`")))?;
        Ok((e, ui.metadata.trials(&n)?))
    })
    .await?;
    let spec = parse(&e);
    let min = minimize(spec.as_ref());
    let metric = spec
        .as_ref()
        .map(|s| s.spec.objective.objective_metric_name.clone())
        .unwrap_or_else(|| "objective".into());
    let assignments: Vec<BTreeMap<String, Value>> = trials
        .iter()
        .map(|t| serde_json::from_str(&t.assignment_json).unwrap_or_default())
        .collect();
    let names: Vec<String> = match &spec {
        Some(s) => s.spec.parameters.iter().map(|p| p.name.clone()).collect(),
        None => assignments
            .first()
            .map(|a| a.keys().cloned().collect())
            .unwrap_or_default(),
    };
    let best_trial = best(&trials, min);
    let points: Vec<(f64, f64)> = trials
        .iter()
        .map(|t| (t.seq as f64, t.objective.unwrap_or(f64::NAN)))
        .collect();
    Ok(shell(
        &format!("Experiment {}", e.name),
        html! {
            h1 { "Experiment " (e.name) }
            dl.summary {
                dt { "State" } dd { (badge(&e.state)) }
                dt { "Objective" } dd { (if min { "minimize " } else { "maximize " }) code { (metric) } }
                dt { "Trials" } dd { (trials.len()) " (" a href=(format!("/runs?{}", query(&[("experiment", &e.name)]))) { "their runs" } ")" }
                @if let Some((i, v)) = best_trial { dt { "Best" } dd { (trials[i].name) ": " (format::number(v)) } }
            }
            @if let Some(m) = &e.message { p { (m) } }
            figure { (plot::best_so_far(&points, min, &metric)) figcaption { "Each trial's " (metric) " and the best so far" } }
            figure { (plot::parallel(&axes(&names, &assignments, &trials, &metric), best_trial.map(|b| b.0)))
                figcaption { "Parameters and " (metric) " of every trial; the best in bold" } }
            (trials_table(&trials, &names, &assignments))
        },
    ))
}

fn trials_table(
    trials: &[TrialRecord],
    names: &[String],
    assignments: &[BTreeMap<String, Value>],
) -> Markup {
    html! {
        table.trials { caption { "Trials" }
            thead { tr { th scope="col" { "Trial" } th scope="col" { "State" } @for n in names { th scope="col" { (n) } } th scope="col" { "Objective" } } }
            tbody { @for (t, a) in trials.iter().zip(assignments) { tr {
                th scope="row" { a href=(run_href(&t.run_id)) { (t.name) } }
                td { (badge(&t.state)) }
                @for n in names { td.num { (a.get(n).map(crate::run::short_value).unwrap_or_default()) } }
                td.num { (t.objective.map(format::number).unwrap_or_default()) }
            } } }
        }
    }
}

/// One axis per parameter (numbers scaled to their range, anything else placed by its order
/// of first appearance) and one for the objective.
fn axes(
    names: &[String],
    assignments: &[BTreeMap<String, Value>],
    trials: &[TrialRecord],
    metric: &str,
) -> Vec<Axis> {
    let mut axes: Vec<Axis> = names
        .iter()
        .map(|n| axis(n, assignments.iter().map(|a| a.get(n)).collect()))
        .collect();
    let objective: Vec<Value> = trials
        .iter()
        .map(|t| {
            t.objective
                .filter(|v| v.is_finite())
                .map(Value::from)
                .unwrap_or(Value::Null)
        })
        .collect();
    axes.push(axis(
        metric,
        objective
            .iter()
            .map(|v| Some(v).filter(|v| !v.is_null()))
            .collect(),
    ));
    axes
}

fn axis(name: &str, values: Vec<Option<&Value>>) -> Axis {
    let numbers: Vec<Option<f64>> = values.iter().map(|v| v.and_then(Value::as_f64)).collect();
    if values.iter().flatten().all(|v| v.is_number()) {
        let (lo, hi) = numbers
            .iter()
            .flatten()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
                (l.min(*v), h.max(*v))
            });
        let span = if hi > lo { hi - lo } else { 1.0 };
        return Axis {
            name: name.to_string(),
            low: if lo.is_finite() {
                format::number(lo)
            } else {
                String::new()
            },
            high: if hi.is_finite() {
                format::number(hi)
            } else {
                String::new()
            },
            positions: numbers
                .iter()
                .map(|v| v.map(|v| if hi > lo { (v - lo) / span } else { 0.5 }))
                .collect(),
        };
    }
    let mut order: Vec<String> = Vec::new();
    for v in values.iter().flatten() {
        let s = crate::run::short_value(v);
        if !order.contains(&s) {
            order.push(s);
        }
    }
    let last = (order.len().max(2) - 1) as f64;
    Axis {
        name: name.to_string(),
        low: order.first().cloned().unwrap_or_default(),
        high: order.last().cloned().unwrap_or_default(),
        positions: values
            .iter()
            .map(|v| {
                v.map(|v| {
                    order
                        .iter()
                        .position(|o| *o == crate::run::short_value(v))
                        .unwrap_or(0) as f64
                        / last
                })
            })
            .collect(),
    }
}
