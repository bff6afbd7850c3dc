//! The model registry's pages: models, a model's versions, a version's artifacts and its
//! lineage back to the run, task and artifact that produced it. They read the registry
//! through its own REST API, called in-process, so the pages show exactly what API clients
//! see.

use crate::layout::{badge, path_part, query, run_href, shell};
use crate::{format, State, UiError};
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::Request;
use maud::{html, Markup};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use tower::ServiceExt;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct List<T> {
    #[serde(default)]
    items: Vec<T>,
    #[serde(default)]
    next_page_token: String,
}

/// The fields the pages show of a model, a version or an artifact.
#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
struct Entity {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    author: Option<String>,
    #[serde(default)]
    uri: Option<String>,
    #[serde(default)]
    registered_model_id: Option<String>,
    #[serde(default)]
    model_format_name: Option<String>,
    #[serde(default)]
    create_time_since_epoch: Option<String>,
    #[serde(default)]
    custom_properties: BTreeMap<String, Value>,
}

/// GETs `path` of the registry API (v1alpha3) and reads the answer as `T`.
pub(crate) async fn api<T: DeserializeOwned>(
    ui: &crate::Ui,
    ns: &str,
    path: &str,
) -> Result<T, UiError> {
    let uri = format!("{}{path}", weft_registry::PREFIXES[0]);
    let req = Request::get(&uri)
        .header("X-Weft-Namespace", ns)
        .body(Body::empty())
        .map_err(|e| UiError::BadRequest(e.to_string()))?;
    let resp = weft_registry::router(ui.registry.clone())
        .oneshot(req)
        .await
        .map_err(|e| UiError::Internal(e.to_string()))?;
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 16 << 20)
        .await
        .map_err(|e| UiError::Internal(e.to_string()))?;
    if !status.is_success() {
        let message = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| status.to_string());
        return Err(if status.as_u16() == 404 {
            UiError::NotFound(message)
        } else {
            UiError::BadRequest(message)
        });
    }
    serde_json::from_slice(&body)
        .map_err(|e| UiError::Internal(format!("the registry's answer to {uri}: {e}")))
}

#[derive(Deserialize, Default)]
pub struct PageQuery {
    #[serde(default)]
    page: String,
    /// The registry namespace; the server's default when absent.
    #[serde(default)]
    namespace: String,
}

/// The namespace a page asks for, if this server serves it (`wasm-run ui --namespace`).
pub(crate) fn namespace(ui: &crate::Ui, asked: &str) -> Result<String, UiError> {
    let ns = if asked.is_empty() {
        ui.namespaces.default_namespace()
    } else {
        asked
    };
    if !ui.namespaces.accepts(ns) {
        return Err(UiError::Forbidden(format!(
            "namespace `{ns}` is not served here"
        )));
    }
    Ok(ns.to_string())
}

/// `base` with `?namespace=NS` when NS is not the server's default, so links stay in it.
fn in_ns(ui: &crate::Ui, base: &str, ns: &str) -> String {
    if ns == ui.namespaces.default_namespace() {
        return base.to_string();
    }
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{}", query(&[("namespace", ns)]))
}

fn millis_time(ms: &Option<String>) -> String {
    let Some(ms) = ms.as_deref().and_then(|m| m.parse::<u64>().ok()) else {
        return String::new();
    };
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    format::time(&humantime::format_rfc3339_seconds(t).to_string())
}

pub async fn list(state: State, Query(q): Query<PageQuery>) -> Result<Markup, UiError> {
    let ui = &state.0;
    let ns = namespace(ui, &q.namespace)?;
    let path = format!(
        "/registered_models?{}",
        query(&[
            ("pageSize", "50"),
            ("orderBy", "CREATE_TIME"),
            ("sortOrder", "DESC"),
            ("nextPageToken", &q.page)
        ])
    );
    let models: List<Entity> = api(ui, &ns, &path).await?;
    Ok(shell(
        "Models",
        html! {
            h1 { "Registered models" }
            @if models.items.is_empty() { p.empty { "No models yet. Register one with " code { "wasm-run models register" } " or the model-registry client." } } @else {
                table.models { caption { "Registered models, newest first" }
                    thead { tr { th scope="col" { "Model" } th scope="col" { "State" } th scope="col" { "Owner" } th scope="col" { "Description" } th scope="col" { "Registered" } } }
                    tbody { @for m in &models.items { tr {
                        th scope="row" { a href=(in_ns(ui, &format!("/models/{}", path_part(&m.id)), &ns)) { (m.name) } }
                        td { (badge(m.state.as_deref().unwrap_or("LIVE"))) }
                        td { (m.owner.as_deref().unwrap_or("")) }
                        td { (m.description.as_deref().unwrap_or("")) }
                        td { (millis_time(&m.create_time_since_epoch)) }
                    } } }
                }
            }
            @if !models.next_page_token.is_empty() {
                nav.pager aria-label="Pages" { a rel="next" href=(in_ns(ui, &format!("/models?{}", query(&[("page", &models.next_page_token)])), &ns)) { "More models →" } }
            }
        },
    ))
}

pub async fn model(
    state: State,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Markup, UiError> {
    let ui = &state.0;
    let ns = namespace(ui, &q.namespace)?;
    let m: Entity = api(ui, &ns, &format!("/registered_models/{}", path_part(&id))).await?;
    let path = format!(
        "/registered_models/{}/versions?{}",
        path_part(&id),
        query(&[
            ("pageSize", "50"),
            ("orderBy", "CREATE_TIME"),
            ("sortOrder", "DESC"),
            ("nextPageToken", &q.page)
        ])
    );
    let versions: List<Entity> = api(ui, &ns, &path).await?;
    Ok(shell(
        &format!("Model {}", m.name),
        html! {
            p { a href=(in_ns(ui, "/models", &ns)) { "← Models" } }
            h1 { "Model " (m.name) " " (badge(m.state.as_deref().unwrap_or("LIVE"))) }
            @if let Some(d) = &m.description { p { (d) } }
            (properties(&m.custom_properties))
            h2 { "Versions" }
            @if versions.items.is_empty() { p.empty { "No versions." } } @else {
                table.versions { caption { "Versions, newest first" }
                    thead { tr { th scope="col" { "Version" } th scope="col" { "State" } th scope="col" { "Author" } th scope="col" { "Registered" } } }
                    tbody { @for v in &versions.items { tr {
                        th scope="row" { a href=(in_ns(ui, &format!("/models/{}/versions/{}", path_part(&id), path_part(&v.id)), &ns)) { (v.name) } }
                        td { (badge(v.state.as_deref().unwrap_or("LIVE"))) }
                        td { (v.author.as_deref().unwrap_or("")) }
                        td { (millis_time(&v.create_time_since_epoch)) }
                    } } }
                }
            }
            @if !versions.next_page_token.is_empty() {
                nav.pager aria-label="Pages" { a rel="next" href=(in_ns(ui, &format!("/models/{}?{}", path_part(&id), query(&[("page", &versions.next_page_token)])), &ns)) { "More versions →" } }
            }
        },
    ))
}

pub async fn version(
    state: State,
    Path((model, version)): Path<(String, String)>,
    Query(q): Query<PageQuery>,
) -> Result<Markup, UiError> {
    let ns = namespace(&state.0, &q.namespace)?;
    let m: Entity = api(
        &state.0,
        &ns,
        &format!("/registered_models/{}", path_part(&model)),
    )
    .await?;
    let v: Entity = api(
        &state.0,
        &ns,
        &format!("/model_versions/{}", path_part(&version)),
    )
    .await?;
    if v.registered_model_id.as_deref().is_some_and(|p| p != m.id) {
        return Err(UiError::NotFound(format!(
            "model {} has no version {version}",
            m.name
        )));
    }
    let path = format!(
        "/model_versions/{}/artifacts?pageSize=100",
        path_part(&version)
    );
    let arts: List<Entity> = api(&state.0, &ns, &path).await?;
    let ui = state.0.clone();
    let mut texts: Vec<String> = strings(&v.custom_properties);
    for a in &arts.items {
        texts.extend(strings(&a.custom_properties));
        texts.extend(a.uri.clone());
    }
    let lineage = crate::blocking(move || Ok(lineage(&ui, &texts))).await?;
    let ui = &state.0;
    Ok(shell(
        &format!("{} {}", m.name, v.name),
        html! {
            p { a href=(in_ns(ui, &format!("/models/{}", path_part(&model)), &ns)) { "← " (m.name) } }
            h1 { (m.name) " version " (v.name) " " (badge(v.state.as_deref().unwrap_or("LIVE"))) }
            @if let Some(d) = &v.description { p { (d) } }
            (properties(&v.custom_properties))
            h2 { "Lineage" }
            @if lineage.is_empty() { p.empty { "No run of this store produced it." } } @else {
                ul.lineage { @for (label, href) in &lineage { li { a href=(href) { (label) } } } }
            }
            h2 { "Artifacts" }
            table.artifacts { thead { tr { th scope="col" { "Artifact" } th scope="col" { "URI" } th scope="col" { "Format" } th scope="col" { "State" } } }
                tbody { @for a in &arts.items { tr {
                    th scope="row" { (a.name) } td { code { (a.uri.as_deref().unwrap_or("")) } }
                    td { (a.model_format_name.as_deref().unwrap_or("")) } td { (a.state.as_deref().unwrap_or("")) }
                } } } }
        },
    ))
}

/// Every string a custom property holds.
fn strings(props: &BTreeMap<String, Value>) -> Vec<String> {
    props
        .values()
        .filter_map(|v| {
            v.get("string_value")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect()
}

/// Links to what the strings name in this store: runs by id, artifacts by digest (whose page
/// shows the run and task that made them).
fn lineage(ui: &crate::Ui, texts: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in texts {
        if let Some(d) = t.find("sha256:").map(|i| &t[i..]).and_then(|d| d.get(..71)) {
            if weft_store::parse_digest(d).is_ok() {
                for e in ui
                    .metadata
                    .lineage(d)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|e| e.direction == "output")
                {
                    out.push((
                        format!("run {} · task {} · output {}", e.run_id, e.task, e.name),
                        run_href(&e.run_id),
                    ));
                }
                out.push((format!("artifact {d}"), format!("/artifacts/{d}")));
                continue;
            }
        }
        if t.len() <= 128 && ui.metadata.run(t).is_ok() {
            out.push((format!("run {t}"), run_href(t)));
        }
    }
    out.dedup();
    out
}

fn properties(props: &BTreeMap<String, Value>) -> Markup {
    html! {
        @if !props.is_empty() {
            h2 { "Properties" }
            table.properties { tbody { @for (k, v) in props {
                @let shown = ["string_value", "double_value", "int_value", "bool_value"].iter()
                    .find_map(|f| v.get(*f)).map(crate::run::short_value).unwrap_or_else(|| v.to_string());
                tr { th scope="row" { (k) } td { (shown) } }
            } } }
        }
    }
}
