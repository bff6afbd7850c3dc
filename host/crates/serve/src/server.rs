//! The axum server: configuration, the data and admin listeners, start-up and shutdown, and the
//! V2 metadata and health handlers.

use crate::error::ApiError;
use crate::slots::Slots;
use crate::tensor;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use weft_runtime::predictor::{LoadedPredictor, ModelMetadata, PredictorInstance};
use weft_runtime::{Limits, Runtime, StepRequest};

/// One version of a served model.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    pub name: String,
    /// Several configs with one name are versions of one model (default "1").
    pub version: String,
    pub component: PathBuf,
    /// The model artifact, granted read-only to every instance.
    pub model_dir: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub addr: SocketAddr,
    /// Where the admin endpoints (traffic, promote, rollback) listen, never on `addr`; `None`
    /// serves them nowhere. [`serve`] refuses an address other than loopback without a token.
    pub admin_addr: Option<SocketAddr>,
    /// With a token, every admin request needs `Authorization: Bearer TOKEN`.
    pub admin_token: Option<String>,
    pub models: Vec<ModelConfig>,
    /// Per request: memory, time (the request timeout), log, and the largest response body
    /// (`max_output_bytes`: tensors, names, shapes, parameters, all of it).
    pub limits: Limits,
    pub max_body_bytes: usize,
    /// Requests running at once, per model version.
    pub concurrency: usize,
    /// Requests waiting for a slot, per model version; one more is answered 503 at once.
    pub queue: usize,
    /// Warm instances kept per model (0: a fresh instance for every request, the default). A
    /// pooled instance is reused across requests, so the model loads once; one that traps or
    /// hits a limit is discarded, never reused.
    pub pool: usize,
    /// Start every instance from a snapshot taken once after the model's `load` (the default),
    /// rather than loading the model in each fresh instance. A component the snapshot cannot
    /// handle falls back to loading per instance, with a warning.
    pub snapshot: bool,
    /// Initial traffic splits: model → [(version, percent)]. A model without one sends all
    /// traffic to its last version.
    pub splits: BTreeMap<String, Vec<(String, u32)>>,
}

pub(crate) struct Version {
    pub config: ModelConfig,
    pub predictor: LoadedPredictor,
    /// What each fresh instance is granted: a snapshotted model starts loaded and is granted
    /// nothing (nor pays for opening its directory on every request).
    pub grants: StepRequest,
    pub metadata: ModelMetadata,
    pub warm: std::sync::Mutex<Vec<PredictorInstance>>,
    /// This version's own slots and queue: a busy version holds up no other.
    pub slots: Slots,
}

pub(crate) struct Model {
    pub versions: BTreeMap<String, Version>,
    pub routing: crate::routing::Routing,
}

pub(crate) struct AppState {
    pub pool: usize,
    pub metrics: crate::metrics::Metrics,
    pub runtime: Arc<Runtime>,
    /// The models named on the command line: known (404 otherwise) even while loading.
    pub declared: std::collections::BTreeSet<String>,
    /// Set once every model has loaded; until then the server is live but not ready (503).
    pub models: std::sync::OnceLock<BTreeMap<String, Model>>,
}

type ApiResult = Result<Json<Value>, ApiError>;

/// The sockets a server answers on: the data port (V2, metrics) and the admin one.
pub struct Listeners {
    pub data: TcpListener,
    pub admin: Option<TcpListener>,
}

/// Binds `addr` (and `admin_addr`), reports the bound addresses on stderr, loads every model
/// (compiling, linking, and loading one instance to read its metadata) while already answering
/// liveness, and serves until Ctrl-C, draining requests in flight before it returns. Until every
/// model has loaded, readiness and model requests answer 503, as KServe does, so a Kubernetes
/// readiness probe holds traffic back; a model that fails to load stops the server with its
/// error.
pub async fn serve(config: ServerConfig, runtime: Arc<Runtime>) -> anyhow::Result<()> {
    let admin = match config.admin_addr {
        Some(addr) => {
            if !addr.ip().is_loopback() && config.admin_token.is_none() {
                anyhow::bail!("the admin listener {addr} is not on loopback: set an admin token (WEFT_ADMIN_TOKEN) so that only its holders can change traffic");
            }
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("the admin listener {addr}: {e}"))?;
            Some(listener)
        }
        None => None,
    };
    let data = TcpListener::bind(config.addr)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", config.addr))?;
    serve_on(Listeners { data, admin }, config, runtime).await
}

/// The data port's routes: V2, metrics. No admin endpoint answers here.
fn router(state: Arc<AppState>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v2", get(server_metadata))
        .route(
            "/v2/health/live",
            get(|| async { Json(json!({"live": true})) }),
        )
        .route("/v2/health/ready", get(server_ready))
        .route("/v2/models", get(list_models))
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/infer", post(crate::infer::infer))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(model_metadata_v),
        )
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(model_ready_v),
        )
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(crate::infer::infer_v),
        )
        .route("/metrics", get(metrics))
        .route("/v2/repository/{*rest}", any(unsupported_repository))
        .route(
            "/v2/systemsharedmemory/{*rest}",
            any(unsupported_shared_memory),
        )
        .route(
            "/v2/cudasharedmemory/{*rest}",
            any(unsupported_shared_memory),
        )
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// 404 for any path no route takes, as JSON like every other error.
pub(crate) async fn not_found(uri: Uri) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!("no endpoint `{}` here", uri.path()),
    )
}

/// [`serve`] on listeners the caller bound (tests and benchmarks bind port 0 themselves).
pub async fn serve_on(
    listeners: Listeners,
    config: ServerConfig,
    runtime: Arc<Runtime>,
) -> anyhow::Result<()> {
    let state = Arc::new(AppState {
        pool: config.pool,
        metrics: crate::metrics::Metrics::new(config.models.iter().map(|m| m.name.as_str())),
        runtime,
        declared: config.models.iter().map(|m| m.name.clone()).collect(),
        models: std::sync::OnceLock::new(),
    });
    let logged = axum::middleware::from_fn(access_log);
    let app = router(state.clone(), config.max_body_bytes).layer(logged.clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // The admin address first: who waits for "listening on" has both by then.
    let admin = match listeners.admin {
        Some(listener) => {
            eprintln!("admin on http://{}", listener.local_addr()?);
            let admin = crate::admin::router(state.clone(), config.admin_token.clone())
                .layer(DefaultBodyLimit::max(config.max_body_bytes))
                .layer(logged);
            let mut stopped = stopped.clone();
            let until_stopped = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            Some(tokio::spawn(async move {
                axum::serve(listener, admin)
                    .with_graceful_shutdown(until_stopped)
                    .await
            }))
        }
        None => None,
    };
    eprintln!("listening on http://{}", listeners.data.local_addr()?);
    // Loading runs wasm (and blocking WASI calls): keep it off the async workers.
    let loading = tokio::task::spawn_blocking(move || {
        let tokio = tokio::runtime::Handle::current();
        let queued = state.metrics.queued();
        let models = crate::load::load_models(&config, &state.runtime, &tokio, &queued)?;
        let _ = state.models.set(models);
        eprintln!("ready: {} model(s) loaded", state.declared.len());
        anyhow::Ok(())
    });
    let failed = Arc::new(std::sync::Mutex::new(None));
    let shutdown = {
        let failed = failed.clone();
        async move {
            let load_failure = async {
                match loading.await {
                    Ok(Ok(())) => std::future::pending().await,
                    Ok(Err(e)) => e,
                    Err(e) => anyhow::anyhow!("loading the models: {e}"),
                }
            };
            tokio::select! {
                signal = shutdown_signal() => {
                    eprintln!("shutting down ({signal}): draining requests in flight");
                }
                e = load_failure => *failed.lock().unwrap() = Some(e),
            }
            let _ = stop.send(true);
        }
    };
    axum::serve(listeners.data, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    if let Some(admin) = admin {
        admin.await??;
    }
    let failure = failed.lock().unwrap().take();
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Waits for Ctrl-C or SIGTERM (what Kubernetes sends a pod it stops) and names it.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "interrupt",
                _ = term.recv() => "terminate",
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch for SIGTERM; Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
                "interrupt"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "interrupt"
    }
}

/// KServe's model repository extension (load and unload at run time): 501, as KServe answers
/// what it does not implement.
async fn unsupported_repository() -> ApiError {
    ApiError(
        StatusCode::NOT_IMPLEMENTED,
        "the model repository extension is not supported: this server serves the models given \
         to it at start (--model, or an InferenceService)"
            .into(),
    )
}

/// Triton's shared-memory extensions: 501 (a sandboxed model sees no host memory).
async fn unsupported_shared_memory() -> ApiError {
    ApiError(
        StatusCode::NOT_IMPLEMENTED,
        crate::v2::SHARED_MEMORY_UNSUPPORTED.into(),
    )
}

async fn server_metadata() -> Json<Value> {
    Json(
        json!({"name": "weft", "version": env!("CARGO_PKG_VERSION"), "extensions": ["binary_tensor_data"]}),
    )
}

/// `/v2/health/ready`: 503 until every model has loaded.
async fn server_ready(State(state): State<Arc<AppState>>) -> Response {
    let ready = state.models.get().is_some();
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(json!({"ready": ready}))).into_response()
}

/// A served model: 404 if no such model was named, 503 while the models are still loading.
pub(crate) fn loaded<'a>(state: &'a AppState, name: &str) -> Result<&'a Model, ApiError> {
    if !state.declared.contains(name) {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("unknown model `{name}`"),
        ));
    }
    let models = state.models.get().ok_or_else(|| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("model `{name}` is not ready: it is still loading"),
        )
    })?;
    Ok(&models[name])
}

/// The model `name`, and the version asked for (or, for unversioned metadata, its primary).
pub(crate) fn model<'a>(
    state: &'a AppState,
    name: &str,
    version: Option<&str>,
) -> Result<(&'a Model, &'a Version), ApiError> {
    let m = loaded(state, name)?;
    let v = match version {
        Some(v) => v.to_string(),
        None => m.routing.primary(),
    };
    let found = m.versions.get(&v).ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!(
                "model `{name}` has no version `{v}` (versions: {:?})",
                m.versions.keys().collect::<Vec<_>>()
            ),
        )
    })?;
    Ok((m, found))
}

fn spec_json(specs: &[weft_runtime::predictor::TensorSpec]) -> Vec<Value> {
    specs.iter().map(|s| json!({"name": s.name, "datatype": tensor::datatype_name(s.datatype), "shape": s.shape})).collect()
}

fn metadata_json((m, v): (&Model, &Version)) -> Value {
    json!({
        "name": v.config.name,
        "versions": m.versions.keys().collect::<Vec<_>>(),
        "platform": v.metadata.platform,
        "inputs": spec_json(&v.metadata.inputs),
        "outputs": spec_json(&v.metadata.outputs),
    })
}

async fn list_models(State(state): State<Arc<AppState>>) -> Json<Value> {
    let models: Vec<Value> = match state.models.get() {
        Some(models) => models
            .iter()
            .map(|(name, m)| {
                json!({"name": name, "versions": m.versions.keys().collect::<Vec<_>>(), "traffic": m.routing.current(), "ready": true})
            })
            .collect(),
        None => state
            .declared
            .iter()
            .map(|name| json!({"name": name, "ready": false}))
            .collect(),
    };
    Json(json!({"models": models}))
}

async fn model_metadata(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> ApiResult {
    Ok(Json(metadata_json(model(&state, &name, None)?)))
}

async fn model_metadata_v(
    State(state): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult {
    Ok(Json(metadata_json(model(&state, &name, Some(&version))?)))
}

async fn model_ready(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> ApiResult {
    model(&state, &name, None)?;
    Ok(Json(json!({"name": name, "ready": true})))
}

async fn model_ready_v(
    State(state): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult {
    model(&state, &name, Some(&version))?;
    Ok(Json(json!({"name": name, "ready": true})))
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    (
        [(axum::http::header::CONTENT_TYPE, content_type)],
        state.metrics.render(),
    )
}

/// One structured line per request (`RUST_LOG=weft::access=info`).
async fn access_log(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    // Nothing to copy or time when the access log is off (the default).
    if !tracing::enabled!(target: "weft::access", tracing::Level::INFO) {
        return next.run(req).await;
    }
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1e3;
    tracing::info!(target: "weft::access", %method, %uri, status = response.status().as_u16(), latency_ms, "request");
    response
}
