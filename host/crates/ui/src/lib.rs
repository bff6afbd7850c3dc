//! Weft's web UI: what a Kubeflow user looks at in the Pipelines UI and the Model Registry,
//! served by `wasm-run ui` beside the registry's REST API.
//!
//! Every page is rendered on the server (maud) from the metadata store, so lists and details
//! read fine with JavaScript disabled and a broken script cannot hide content. Pictures (the
//! run's graph, metric plots, ROC curves, confusion matrices, parallel coordinates) are SVG
//! drawn here too. The one script, `weft.js`, only refreshes regions marked `data-live` while
//! their run is going, so a run started while the page is open appears and progresses without
//! a reload. CSS and script are compiled into the binary: no CDN, works offline.
//!
//! Big stores stay fast by paging on the server (keyset, see `weft_store::RunQuery`); big runs
//! stay drawable by folding a `parallelFor`'s iterations into one counted node.

mod artifact;
mod compare;
mod dag;
mod error;
mod experiments;
mod format;
mod layout;
mod models;
mod plot;
mod run;
mod runs;
mod serving;

use axum::http::header;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use axum::Router;
use std::path::PathBuf;
use std::sync::Arc;
use weft_store::{ArtifactStore, MetadataStore, RegistryStore};

pub use error::UiError;

/// What the pages read.
pub struct Ui {
    pub metadata: MetadataStore,
    pub artifacts: ArtifactStore,
    /// The registry, which the model pages read through its own REST API (in-process).
    pub registry: Arc<RegistryStore>,
    /// Where task logs are; a log path outside it is never read.
    pub logs_dir: PathBuf,
    /// Model servers (`wasm-run serve` data ports, `http://HOST:PORT`) the serving page shows.
    pub serving: Vec<String>,
    /// The registry namespaces the model pages may show (`?namespace=`; the first when none).
    pub namespaces: weft_registry::Namespaces,
}

pub(crate) type State = axum::extract::State<Arc<Ui>>;

/// The UI's routes: pages at `/`, assets under `/static/`.
pub fn router(ui: Arc<Ui>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/runs") }))
        .route("/runs", get(runs::page))
        .route("/runs/{id}", get(run::page))
        .route("/runs/{id}/live", get(run::live_fragment))
        .route("/runs/{id}/tasks/{task}/log", get(run::log))
        .route("/runs/{id}/tasks/{task}/iterations", get(run::iterations))
        .route("/artifacts/{digest}", get(artifact::page))
        .route("/artifacts/{digest}/files/{*path}", get(artifact::file))
        .route("/compare", get(compare::page))
        .route("/experiments", get(experiments::list))
        .route("/experiments/{name}", get(experiments::page))
        .route("/models", get(models::list))
        .route("/models/{id}", get(models::model))
        .route("/models/{id}/versions/{version}", get(models::version))
        .route("/serving", get(serving::page))
        .route("/static/weft.css", get(css))
        .route("/static/weft.js", get(js))
        .fallback(|| async { UiError::NotFound("no such page".into()) })
        .layer(axum::middleware::map_response(harden))
        .with_state(ui)
}

/// The pages and, under `/api/model_registry/`, the registry's REST API over the same
/// registry: what `wasm-run ui` serves.
pub fn app(ui: Arc<Ui>) -> Router {
    // The registry's router keeps its own prefixes and JSON fallback: requests are sent to
    // it whole by their path (nesting would strip the prefix it expects).
    // A DELETE frees the artifacts its rows named that no run and no other row uses.
    let weak = Arc::downgrade(&ui);
    ui.registry.on_freed(Box::new(move |digests| {
        if let Some(ui) = weak.upgrade() {
            weft_store::collect_freed(&ui.metadata, &ui.artifacts, &ui.registry, digests);
        }
    }));
    let api = weft_registry::router(ui.registry.clone());
    let pages = router(ui);
    Router::new().fallback_service(tower::service_fn(move |req: axum::extract::Request| {
        let to = if req.uri().path().starts_with("/api/model_registry/") {
            api.clone()
        } else {
            pages.clone()
        };
        tower::ServiceExt::oneshot(to, req)
    }))
}

/// What a page may load and who may frame it: its own script and styles only (style
/// attributes carry plot colours), no plugins, never framed by another site. An artifact's
/// HTML is shown in a `sandbox` frame, which this also covers.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

async fn harden(mut resp: axum::response::Response) -> axum::response::Response {
    let headers = resp.headers_mut();
    // A download sets its own (stricter) policy.
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            header::HeaderValue::from_static(CSP),
        );
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("same-origin"),
    );
    resp
}

const CSS: &str = include_str!("../assets/weft.css");
const JS: &str = include_str!("../assets/weft.js");

/// The size of what a browser downloads besides the pages: the figure the docs quote.
pub fn bundle_bytes() -> usize {
    CSS.len() + JS.len()
}

async fn css() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS)
}

async fn js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        JS,
    )
}

/// Runs `f` on the blocking pool: the stores are synchronous (SQLite, files).
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, UiError> + Send + 'static,
) -> Result<T, UiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| UiError::Internal(format!("a page's work stopped: {e}")))?
}
