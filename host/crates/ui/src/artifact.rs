//! An artifact: who made it and who used it (lineage), its files, and previews of the ones a
//! person reads: CSV as a table, metrics, a confusion matrix, ROC curves, Markdown, HTML (in
//! a sandboxed frame, scripts off). Straight from the artifact store: no object-store proxy.

use crate::format;
use crate::layout::{path_part, run_href, shell};
use crate::{blocking, plot, State, UiError};
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, PreEscaped};
use serde::Deserialize;
use std::io::Read;
use std::path::{Component, PathBuf};
use weft_store::ArtifactEvent;

/// Files listed, and files previewed, per artifact; bytes read per preview.
const MAX_FILES: usize = 500;
const MAX_PREVIEWS: usize = 12;
const PREVIEW_BYTES: u64 = 256 * 1024;
const CSV_ROWS: usize = 50;

struct File {
    rel: String,
    bytes: u64,
    /// The first [`PREVIEW_BYTES`], for the first [`MAX_PREVIEWS`] files.
    head: Option<Vec<u8>>,
}

fn local(ui: &crate::Ui, digest: &str) -> Result<PathBuf, UiError> {
    weft_store::parse_digest(digest).map_err(|e| UiError::BadRequest(e.to_string()))?;
    ui.artifacts
        .checked_local(digest)
        .map_err(|e| UiError::NotFound(format!("artifact {digest}: {e}")))
}

fn files(dir: &std::path::Path) -> Result<(Vec<File>, bool), UiError> {
    let mut out = Vec::new();
    let mut more = false;
    for entry in walkdir::WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| UiError::Internal(e.to_string()))?;
        if !entry.file_type().is_file() {
            continue;
        }
        if out.len() == MAX_FILES {
            more = true;
            break;
        }
        let rel = entry
            .path()
            .strip_prefix(dir)
            .unwrap_or(entry.path())
            .to_string_lossy()
            .into_owned();
        let bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
        let head = (out.len() < MAX_PREVIEWS)
            .then(|| -> std::io::Result<Vec<u8>> {
                let mut buf = Vec::new();
                std::fs::File::open(entry.path())?
                    .take(PREVIEW_BYTES)
                    .read_to_end(&mut buf)?;
                Ok(buf)
            })
            .transpose()
            .map_err(|e| UiError::Internal(format!("{}: {e}", entry.path().display())))?;
        out.push(File { rel, bytes, head });
    }
    Ok((out, more))
}

pub async fn page(state: State, Path(digest): Path<String>) -> Result<Markup, UiError> {
    let ui = state.0.clone();
    let d = digest.clone();
    let (lineage, (files, more)) = blocking(move || {
        let dir = local(&ui, &d)?;
        Ok((ui.metadata.lineage(&d)?, files(&dir)?))
    })
    .await?;
    let kind = lineage
        .first()
        .map(|e| e.artifact_type.clone())
        .unwrap_or_default();
    Ok(shell(
        "Artifact",
        html! {
            h1 { "Artifact" }
            p { code.digest { (digest) } @if !kind.is_empty() { " · " (kind) } }
            (lineage_table(&lineage))
            h2 { "Files" }
            ul.files { @for f in &files {
                li { a href=(format!("/artifacts/{}/files/{}", path_part(&digest), f.rel.split('/').map(path_part).collect::<Vec<_>>().join("/"))) download { (f.rel) } " (" (format::bytes(f.bytes)) ")" }
            } }
            @if more { p { "Only the first " (MAX_FILES) " files are listed." } }
            @for f in files.iter().filter(|f| f.head.is_some()) {
                section.preview aria-label=(format!("Preview of {}", f.rel)) {
                    h2 { (f.rel) }
                    (preview(f))
                }
            }
        },
    ))
}

fn lineage_table(events: &[ArtifactEvent]) -> Markup {
    html! {
        h2 { "Lineage" }
        @if events.is_empty() { p.empty { "No run recorded this artifact." } } @else {
            table.lineage { thead { tr { th scope="col" { "Run" } th scope="col" { "Task" } th scope="col" { "As" } } }
                tbody { @for e in events { tr {
                    td { a href=(run_href(&e.run_id)) { (e.run_id) } }
                    td { (e.task) }
                    td { (if e.direction == "output" { "output " } else { "input " }) code { (e.name) } }
                } } } }
        }
    }
}

fn preview(f: &File) -> Markup {
    let head = f.head.as_deref().unwrap_or_default();
    let cut = f.bytes > head.len() as u64;
    let name = f
        .rel
        .rsplit('/')
        .next()
        .unwrap_or(&f.rel)
        .to_ascii_lowercase();
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    let Ok(text) = std::str::from_utf8(head) else {
        return html! { p { "Binary, " (format::bytes(f.bytes)) "." } };
    };
    let shown = match (name.as_str(), ext) {
        ("confusion_matrix.json", _) if !cut => confusion(text),
        ("roc.json", _) if !cut => roc(text),
        (_, "csv") => Some(csv_table(text, b',')),
        (_, "tsv") => Some(csv_table(text, b'\t')),
        (_, "md" | "markdown") => Some(markdown(text)),
        (_, "json") if !cut => json_preview(text),
        (_, "html" | "htm") => Some(
            html! { iframe.html sandbox="" srcdoc=(text) title=(format!("HTML artifact {}", f.rel)) {} },
        ),
        _ => None,
    };
    html! {
        @if let Some(m) = shown { (m) } @else { pre.text tabindex="0" { (text) } }
        @if cut { p.note { "The first " (format::bytes(head.len() as u64)) " of " (format::bytes(f.bytes)) " are shown." } }
    }
}

fn csv_table(text: &str, delimiter: u8) -> Markup {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .has_headers(true)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map(|h| h.iter().map(str::to_string).collect())
        .unwrap_or_default();
    let rows: Vec<Vec<String>> = reader
        .records()
        .take(CSV_ROWS)
        .filter_map(Result::ok)
        .map(|r| r.iter().map(str::to_string).collect())
        .collect();
    html! {
        table.csv { thead { tr { @for h in &header { th scope="col" { (h) } } } }
            tbody { @for r in &rows { tr { @for c in r { td { (c) } } } } } }
        @if rows.len() == CSV_ROWS { p.note { "The first " (CSV_ROWS) " rows are shown." } }
    }
}

/// Markdown with any raw HTML in it shown as text: an artifact is data, not the page's code.
fn markdown(text: &str) -> Markup {
    use pulldown_cmark::{Event, Options, Parser};
    let events =
        Parser::new_ext(text, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH).map(|e| {
            match e {
                Event::Html(h) | Event::InlineHtml(h) => Event::Text(h),
                other => other,
            }
        });
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, events);
    html! { div.markdown { (PreEscaped(out)) } }
}

/// JSON: an object of numbers (a metrics file) as a table; anything else pretty-printed.
fn json_preview(text: &str) -> Option<Markup> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    if let Some(metrics) = value
        .as_object()
        .filter(|o| !o.is_empty() && o.values().all(|v| v.is_number()))
    {
        return Some(html! {
            table.metrics { thead { tr { th scope="col" { "Metric" } th scope="col" { "Value" } } }
                tbody { @for (k, v) in metrics { tr { th scope="row" { (k) } td.num { (v.as_f64().map(format::number).unwrap_or_default()) } } } } }
        });
    }
    Some(html! { pre.text tabindex="0" { (serde_json::to_string_pretty(&value).ok()?) } })
}

#[derive(Deserialize)]
struct Confusion {
    classes: Vec<serde_json::Value>,
    matrix: Vec<Vec<u64>>,
}

fn confusion(text: &str) -> Option<Markup> {
    let c: Confusion = serde_json::from_str(text).ok()?;
    let classes: Vec<String> = c.classes.iter().map(crate::run::short_value).collect();
    Some(plot::confusion(&classes, &c.matrix))
}

#[derive(Deserialize)]
struct Curve {
    class: serde_json::Value,
    auc: Option<f64>,
    points: Vec<RocPoint>,
}

#[derive(Deserialize)]
struct RocPoint {
    fpr: f64,
    tpr: f64,
}

fn roc(text: &str) -> Option<Markup> {
    let curves: Vec<Curve> = serde_json::from_str(text).ok()?;
    let series: Vec<(String, plot::Series)> = curves
        .iter()
        .map(|c| {
            let name = format!(
                "{} (AUC {})",
                crate::run::short_value(&c.class),
                c.auc.map(format::number).unwrap_or_else(|| "?".into())
            );
            (name, c.points.iter().map(|p| (p.fpr, p.tpr)).collect())
        })
        .collect();
    Some(plot::roc(&series))
}

/// One file of an artifact, as a download: never rendered by the browser as a page of ours.
pub async fn file(
    state: State,
    Path((digest, rel)): Path<(String, String)>,
) -> Result<Response, UiError> {
    let rel_path = std::path::Path::new(&rel);
    if rel.is_empty()
        || !rel_path
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(UiError::BadRequest(format!(
            "`{rel}` is not a path inside an artifact"
        )));
    }
    let ui = state.0.clone();
    let (d, r) = (digest.clone(), rel.clone());
    let file = blocking(move || {
        let path = local(&ui, &d)?.join(&r);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => {
                std::fs::File::open(&path).map_err(|e| UiError::Internal(e.to_string()))
            }
            _ => Err(UiError::NotFound(format!("artifact {d} has no file `{r}`"))),
        }
    })
    .await?;
    // Streamed: a model file can be gigabytes.
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(
        tokio::fs::File::from_std(file),
    ));
    let name = rel.rsplit('/').next().unwrap_or("file").replace('"', "");
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
            (header::CONTENT_SECURITY_POLICY, "sandbox".to_string()),
        ],
        body,
    )
        .into_response())
}
