//! Served models: what each `wasm-run serve` the UI was pointed at (`--serving URL`) serves
//! now, with each model's versions and traffic split, read from its `/v2/models`; and the
//! registry's inference services (which version is meant to be deployed where).

use crate::layout::{badge, path_part, shell};
use crate::{blocking, State, UiError};
use maud::{html, Markup};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

/// A server's answer is read up to this much, within this time: a slow or huge answer from a
/// server the UI was pointed at never holds the page up.
const MAX_ANSWER: u64 = 1 << 20;
const TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Deserialize, Default)]
struct Models {
    #[serde(default)]
    models: Vec<Served>,
}

#[derive(Deserialize)]
struct Served {
    name: String,
    #[serde(default)]
    versions: Vec<String>,
    #[serde(default)]
    traffic: BTreeMap<String, u32>,
    #[serde(default)]
    ready: bool,
}

/// What one server serves, or why it could not say.
fn ask(base: &str) -> Result<Vec<Served>, String> {
    let agent = ureq::AgentBuilder::new()
        .timeout(TIMEOUT)
        .redirects(0)
        .build();
    let resp = agent
        .get(&format!("{}/v2/models", base.trim_end_matches('/')))
        .call()
        .map_err(|e| e.to_string())?;
    let mut text = String::new();
    resp.into_reader()
        .take(MAX_ANSWER)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    serde_json::from_str::<Models>(&text)
        .map(|m| m.models)
        .map_err(|e| format!("not a Weft /v2/models answer: {e}"))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Services {
    #[serde(default)]
    items: Vec<Service>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Service {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    registered_model_id: String,
    #[serde(default)]
    model_version_id: Option<String>,
    #[serde(default)]
    desired_state: Option<String>,
    #[serde(default)]
    runtime: Option<String>,
}

pub async fn page(state: State) -> Result<Markup, UiError> {
    let ui = state.0.clone();
    let servers = ui.serving.clone();
    let answers = blocking(move || {
        Ok(servers
            .iter()
            .map(|s| (s.clone(), ask(s)))
            .collect::<Vec<_>>())
    })
    .await?;
    let ns = ui.namespaces.default_namespace().to_string();
    let services: Services =
        crate::models::api(&ui, &ns, "/inference_services?pageSize=100").await?;
    Ok(shell(
        "Serving",
        html! {
            h1 { "Serving" }
            @if answers.is_empty() {
                p.empty { "No model server given. Start the UI with " code { "--serving http://HOST:PORT" } " for each " code { "wasm-run serve" } " to show." }
            }
            @for (server, answer) in &answers {
                section.server aria-label=(format!("Models served by {server}")) {
                    h2 { code { (server) } }
                    @match answer {
                        Err(e) => p.error role="alert" { "Unreachable: " (e) },
                        Ok(models) => (models_table(models)),
                    }
                }
            }
            h2 { "Inference services in the registry" }
            @if services.items.is_empty() { p.empty { "None registered." } } @else {
                table.services { thead { tr { th scope="col" { "Service" } th scope="col" { "Model" } th scope="col" { "Version" } th scope="col" { "Runtime" } th scope="col" { "Desired state" } } }
                    tbody { @for s in &services.items { tr {
                        th scope="row" { (s.name.as_deref().unwrap_or("")) }
                        td { a href=(format!("/models/{}", path_part(&s.registered_model_id))) { (s.registered_model_id) } }
                        td { @if let Some(v) = &s.model_version_id { a href=(format!("/models/{}/versions/{}", path_part(&s.registered_model_id), path_part(v))) { (v) } } @else { "latest" } }
                        td { (s.runtime.as_deref().unwrap_or("")) }
                        td { (badge(s.desired_state.as_deref().unwrap_or("DEPLOYED"))) }
                    } } } }
            }
        },
    ))
}

fn models_table(models: &[Served]) -> Markup {
    html! {
        table.served { thead { tr { th scope="col" { "Model" } th scope="col" { "Ready" } th scope="col" { "Versions" } th scope="col" { "Traffic" } } }
            tbody { @for m in models { tr data-model=(m.name) {
                th scope="row" { (m.name) }
                td { (if m.ready { "yes" } else { "loading" }) }
                td { (m.versions.join(", ")) }
                td { (split(&m.traffic)) }
            } } } }
    }
}

/// A split as a bar of proportional segments, each labelled with its version and share.
fn split(traffic: &BTreeMap<String, u32>) -> Markup {
    html! {
        div.split role="list" aria-label="Traffic split" {
            @for (i, (v, pct)) in traffic.iter().enumerate() {
                span.segment role="listitem" data-version=(v) data-percent=(pct)
                    style=(format!("flex-grow:{pct};background:{}", crate::plot::COLOURS[i % crate::plot::COLOURS.len()])) {
                    "v" (v) " " (pct) "%"
                }
            }
        }
    }
}
