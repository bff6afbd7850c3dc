//! The axum server and its V2 handlers.

use crate::tensor;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use weft_runtime::predictor::{
    InferError, InferRequest, InferResponse, LoadedPredictor, ModelMetadata, PredictorInstance,
};
use weft_runtime::{InputArtifact, Limits, Runtime, StepError, StepRequest};

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
    pub models: Vec<ModelConfig>,
    /// Per request: memory, time (the request timeout), log.
    pub limits: Limits,
    pub max_body_bytes: usize,
    /// Requests running at once; the rest wait.
    pub concurrency: usize,
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

struct Version {
    config: ModelConfig,
    predictor: LoadedPredictor,
    /// What each fresh instance is granted: a snapshotted model starts loaded and is granted
    /// nothing (nor pays for opening its directory on every request).
    grants: StepRequest,
    metadata: ModelMetadata,
    warm: std::sync::Mutex<Vec<PredictorInstance>>,
}

struct Model {
    versions: BTreeMap<String, Version>,
    routing: crate::routing::Routing,
}

struct AppState {
    pool: usize,
    metrics: crate::metrics::Metrics,
    runtime: Arc<Runtime>,
    /// The models named on the command line: known (404 otherwise) even while loading.
    declared: std::collections::BTreeSet<String>,
    /// Set once every model has loaded; until then the server is live but not ready (503).
    models: std::sync::OnceLock<BTreeMap<String, Model>>,
    slots: Arc<tokio::sync::Semaphore>,
}

/// A V2 error: `{"error": "..."}` with a status code.
#[derive(Debug)]
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

type ApiResult = Result<Json<Value>, ApiError>;
type InferResult = Result<Response, ApiError>;

/// The binary tensor extension's header: the length of the JSON part of the body.
const HEADER_LENGTH: &str = "inference-header-content-length";

/// The grants of one instance of `model`: its artifact read-only, nothing else.
fn grants(model: &ModelConfig, limits: &Limits) -> StepRequest {
    let mut req = StepRequest::new("serve", model.name.clone());
    req.limits = limits.clone();
    if let Some(dir) = &model.model_dir {
        req.inputs.push(InputArtifact {
            name: "model".into(),
            path: dir.clone(),
        });
    }
    req
}

fn guest_model_dir(model: &ModelConfig) -> Option<&'static str> {
    model.model_dir.as_ref().map(|_| "/inputs/model")
}

/// Binds `addr`, reports the bound address on stderr, loads every model (compiling, linking, and
/// loading one instance to read its metadata) while already answering liveness, and serves until
/// Ctrl-C, draining requests in flight before it returns. Until every model has loaded, readiness
/// and model requests answer 503, as KServe does, so a Kubernetes readiness probe holds traffic
/// back; a model that fails to load stops the server with its error.
pub async fn serve(config: ServerConfig, runtime: Arc<Runtime>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    serve_on(listener, config, runtime).await
}

/// [`serve`] on a listener the caller bound (tests and benchmarks bind port 0 themselves).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    config: ServerConfig,
    runtime: Arc<Runtime>,
) -> anyhow::Result<()> {
    let state = Arc::new(AppState {
        pool: config.pool,
        metrics: crate::metrics::Metrics::new(config.models.iter().map(|m| m.name.as_str())),
        runtime,
        declared: config.models.iter().map(|m| m.name.clone()).collect(),
        models: std::sync::OnceLock::new(),
        slots: Arc::new(tokio::sync::Semaphore::new(config.concurrency.max(1))),
    });
    let app = Router::new()
        .route("/v2", get(server_metadata))
        .route(
            "/v2/health/live",
            get(|| async { Json(json!({"live": true})) }),
        )
        .route("/v2/health/ready", get(server_ready))
        .route("/v2/models", get(list_models))
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/infer", post(infer))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(model_metadata_v),
        )
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(model_ready_v),
        )
        .route("/v2/models/{name}/versions/{version}/infer", post(infer_v))
        .route("/metrics", get(metrics))
        .route(
            "/admin/models/{name}/traffic",
            get(get_traffic).put(set_traffic),
        )
        .route("/v2/repository/{*rest}", any(unsupported_repository))
        .route(
            "/v2/systemsharedmemory/{*rest}",
            any(unsupported_shared_memory),
        )
        .route(
            "/v2/cudasharedmemory/{*rest}",
            any(unsupported_shared_memory),
        )
        .route("/admin/models/{name}/promote", post(promote))
        .route("/admin/models/{name}/rollback", post(rollback))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(axum::middleware::from_fn(access_log))
        .with_state(state.clone());
    eprintln!("listening on http://{}", listener.local_addr()?);
    // Loading runs wasm (and blocking WASI calls): keep it off the async workers.
    let loading = tokio::task::spawn_blocking(move || {
        let models = load_models(&config, &state.runtime, &tokio::runtime::Handle::current())?;
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
        }
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
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
        SHARED_MEMORY_UNSUPPORTED.into(),
    )
}

const SHARED_MEMORY_UNSUPPORTED: &str =
    "the shared-memory extension is not supported: send tensors in the body (JSON or binary)";

/// The model's component, snapshotted after `load` when asked and possible.
fn load_predictor(
    runtime: &Runtime,
    m: &ModelConfig,
    config: &ServerConfig,
) -> Result<LoadedPredictor, StepError> {
    if !config.snapshot {
        return runtime.load_predictor(&m.component);
    }
    let grants = grants(m, &config.limits);
    match runtime.preload_predictor(&m.component, &grants, guest_model_dir(m)) {
        Err(e @ StepError::Snapshot { .. }) => {
            tracing::warn!(model = %m.name, version = %m.version, error = %e, "loading the model in every instance instead");
            runtime.load_predictor(&m.component)
        }
        other => other,
    }
}

/// Compiles and links every model version and loads one instance of each to read its metadata,
/// so a model that cannot load is an error at start-up, not on the first request.
fn load_models(
    config: &ServerConfig,
    runtime: &Runtime,
    tokio: &tokio::runtime::Handle,
) -> anyhow::Result<BTreeMap<String, Model>> {
    let mut versions: BTreeMap<String, BTreeMap<String, Version>> = BTreeMap::new();
    for m in &config.models {
        let what = format!("model `{}` version `{}`", m.name, m.version);
        let predictor =
            load_predictor(runtime, m, config).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
        let mut grants = grants(m, &config.limits);
        if predictor.preloaded {
            grants.inputs.clear();
        }
        // This runs on a blocking thread, where a model computing in host calls is called.
        let first = if predictor.host_work {
            runtime
                .instantiate_predictor_blocking(&predictor, &grants, guest_model_dir(m))
                .and_then(|mut instance| {
                    let metadata = instance.metadata_blocking()?;
                    Ok((instance, metadata))
                })
        } else {
            tokio.block_on(async {
                let mut instance = runtime
                    .instantiate_predictor(&predictor, &grants, guest_model_dir(m))
                    .await?;
                let metadata = instance.metadata().await?;
                Ok::<_, StepError>((instance, metadata))
            })
        };
        let (instance, metadata) = first.map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
        forward_model_log(&m.name, &m.version, &instance);
        tracing::info!(model = %m.name, version = %m.version, digest = %predictor.digest, "model ready");
        // The instance that answered the metadata is the first warm one.
        let warm = std::sync::Mutex::new(if config.pool > 0 {
            vec![instance]
        } else {
            Vec::new()
        });
        let v = Version {
            config: m.clone(),
            predictor,
            grants,
            metadata,
            warm,
        };
        if versions
            .entry(m.name.clone())
            .or_default()
            .insert(m.version.clone(), v)
            .is_some()
        {
            anyhow::bail!("{what} is given twice");
        }
    }
    let mut models = BTreeMap::new();
    for (name, versions) in versions {
        let split = match config.splits.get(&name) {
            Some(split) => split.clone(),
            None => {
                let last = config
                    .models
                    .iter()
                    .rev()
                    .find(|m| m.name == name)
                    .map(|m| m.version.clone())
                    .unwrap_or_default();
                vec![(last, 100)]
            }
        };
        let names: Vec<&str> = versions.keys().map(String::as_str).collect();
        crate::routing::check(&split, &names)
            .map_err(|e| anyhow::anyhow!("traffic split of model `{name}`: {e}"))?;
        models.insert(
            name,
            Model {
                versions,
                routing: crate::routing::Routing::new(split),
            },
        );
    }
    for name in config.splits.keys() {
        if !models.contains_key(name) {
            anyhow::bail!("a traffic split names model `{name}`, which is not served");
        }
    }
    Ok(models)
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
fn loaded<'a>(state: &'a AppState, name: &str) -> Result<&'a Model, ApiError> {
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
fn model<'a>(
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

fn traffic_json(name: &str, m: &Model) -> Json<Value> {
    Json(json!({"name": name, "traffic": m.routing.current()}))
}

async fn get_traffic(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> ApiResult {
    Ok(traffic_json(&name, loaded(&state, &name)?))
}

/// `PUT {"traffic": {"1": 90, "2": 10}}`: a new split, effective for requests arriving after it.
async fn set_traffic(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    let m = loaded(&state, &name)?;
    let split: crate::routing::Split = body["traffic"]
        .as_object()
        .ok_or_else(|| bad("the body needs a `traffic` object of version → percent"))?
        .iter()
        .map(|(v, w)| {
            w.as_u64().map(|w| (v.clone(), w as u32)).ok_or_else(|| {
                bad(format!(
                    "version `{v}`: the percentage must be a whole number"
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    apply_split(&name, m, split)
}

/// Checks `split` against the model's versions and makes it the one new requests follow.
fn apply_split(name: &str, m: &Model, split: crate::routing::Split) -> ApiResult {
    let versions: Vec<&str> = m.versions.keys().map(String::as_str).collect();
    crate::routing::check(&split, &versions).map_err(bad)?;
    m.routing.set(split);
    tracing::info!(model = %name, traffic = ?m.routing.current(), "traffic split changed");
    Ok(traffic_json(name, m))
}

/// `POST {"version": "2"}`: all traffic to that version.
async fn promote(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    let m = loaded(&state, &name)?;
    let v = body["version"]
        .as_str()
        .ok_or_else(|| bad("the body needs a `version`"))?
        .to_string();
    apply_split(&name, m, vec![(v, 100)])
}

/// Back to the split before the last change.
async fn rollback(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> ApiResult {
    let m = loaded(&state, &name)?;
    m.routing.rollback().map_err(bad)?;
    tracing::info!(model = %name, traffic = ?m.routing.current(), "traffic rolled back");
    Ok(traffic_json(&name, m))
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

async fn infer(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> InferResult {
    timed(state, name, None, headers, body).await
}

/// Runs an inference and counts it, whatever its outcome.
async fn timed(
    state: Arc<AppState>,
    name: String,
    version: Option<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> InferResult {
    let started = std::time::Instant::now();
    let _in_flight = state.metrics.in_flight();
    let result = run_infer(state.clone(), name.clone(), version, headers, body).await;
    let code = match &result {
        Ok(_) => 200,
        Err(ApiError(code, _)) => code.as_u16(),
    };
    state.metrics.observe(&name, code, started.elapsed());
    result
}

async fn infer_v(
    State(state): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> InferResult {
    timed(state, name, Some(version), headers, body).await
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

/// 501 for a request that asks for a protocol extension this server does not implement,
/// rather than ignoring the parameter and answering something else than was asked.
fn unsupported_extensions(req: &Value) -> Result<(), ApiError> {
    let tensors = ["inputs", "outputs"]
        .iter()
        .flat_map(|list| req[*list].as_array().into_iter().flatten());
    for t in tensors {
        let parameters = &t["parameters"];
        if parameters.get("shared_memory_region").is_some() {
            return Err(ApiError(
                StatusCode::NOT_IMPLEMENTED,
                format!("tensor {}: {SHARED_MEMORY_UNSUPPORTED}", t["name"]),
            ));
        }
        if parameters.get("classification").is_some() {
            return Err(ApiError(
                StatusCode::NOT_IMPLEMENTED,
                format!(
                    "output {}: the classification extension is not supported",
                    t["name"]
                ),
            ));
        }
    }
    Ok(())
}

async fn run_infer(
    state: Arc<AppState>,
    name: String,
    version: Option<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> InferResult {
    // An unversioned request takes the version the traffic split picks, once, here.
    let chosen = match version {
        Some(v) => v,
        None => loaded(&state, &name)?.routing.pick(),
    };
    model(&state, &name, Some(&chosen))?;
    // With the binary extension the body is JSON, then the tensors' raw bytes.
    let (json_part, mut blob) = match headers.get(HEADER_LENGTH) {
        None => (&body[..], &[][..]),
        Some(v) => {
            let n: usize = v
                .to_str()
                .ok()
                .and_then(|v| v.parse().ok())
                .filter(|n| *n <= body.len())
                .ok_or_else(|| {
                    bad(format!(
                        "{HEADER_LENGTH} must be a length within the body ({} bytes)",
                        body.len()
                    ))
                })?;
            body.split_at(n)
        }
    };
    let req: Value =
        serde_json::from_slice(json_part).map_err(|e| bad(format!("malformed JSON body: {e}")))?;
    unsupported_extensions(&req)?;
    let specs = req["inputs"]
        .as_array()
        .ok_or_else(|| bad("the request has no `inputs` list"))?;
    let mut inputs = Vec::with_capacity(specs.len());
    for spec in specs {
        let tensor = match spec["parameters"]["binary_data_size"].as_u64() {
            Some(size) => {
                let size = size as usize;
                if size > blob.len() {
                    return Err(bad(format!(
                        "input {}: binary_data_size {size} runs past the body",
                        spec["name"]
                    )));
                }
                let (raw, rest) = blob.split_at(size);
                blob = rest;
                tensor::from_binary(spec, raw)
            }
            None => tensor::from_json(spec),
        };
        inputs.push(tensor.map_err(bad)?);
    }
    if !blob.is_empty() {
        return Err(bad(format!(
            "{} bytes of binary data follow the inputs unclaimed",
            blob.len()
        )));
    }
    let all_binary = req["parameters"]["binary_data_output"]
        .as_bool()
        .unwrap_or(false);
    let binary_outputs: Vec<String> = req["outputs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["parameters"]["binary_data"].as_bool() == Some(true))
        .filter_map(|o| o["name"].as_str().map(str::to_string))
        .collect();
    let id = req.get("id").and_then(Value::as_str).map(str::to_string);
    let outputs: Vec<String> = match req.get("outputs") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .map(|o| {
                o["name"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad("each requested output needs a `name`"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad("`outputs` must be a list")),
    };
    let parameters = match req.get("parameters") {
        None | Some(Value::Null) => "{}".to_string(),
        Some(p @ Value::Object(_)) => p.to_string(),
        Some(_) => return Err(bad("`parameters` must be an object")),
    };
    let request = InferRequest {
        id: id.clone(),
        inputs,
        outputs: outputs.clone(),
        parameters,
    };

    let slot = state
        .slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into()))?;
    // A fresh instance in its own Store (or a warm one from the pool); after a trap or limit it
    // is dropped with everything it did.
    let m = &loaded(&state, &name)
        .expect("checked before the request was queued")
        .versions[&chosen];
    let result = if m.predictor.host_work {
        infer_on_blocking_thread(&state, &name, &chosen, request, slot).await?
    } else {
        // It runs here, on this task: wasm yields to the executor at every epoch tick, so a
        // long request does not hold a worker thread.
        let _slot = slot;
        async {
            let pooled = m.warm.lock().unwrap().pop();
            let mut instance = match pooled {
                Some(i) => i,
                None => {
                    state
                        .runtime
                        .instantiate_predictor(&m.predictor, &m.grants, guest_model_dir(&m.config))
                        .await?
                }
            };
            let result = instance.infer(&request).await;
            forward_model_log(&name, &chosen, &instance);
            if result.is_ok() {
                keep_warm(&state, m, instance);
            }
            result
        }
        .await
    };
    let response = match result {
        Ok(Ok(r)) => r,
        Ok(Err(InferError::InvalidInput(m))) => return Err(bad(m)),
        Ok(Err(InferError::Failed(m))) => {
            return Err(ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("model failed: {m}"),
            ))
        }
        Err(e) => {
            tracing::warn!(model = %name, error = %e, "request failed in the sandbox");
            return Err(ApiError(StatusCode::INTERNAL_SERVER_ERROR, model_fault(&e)));
        }
    };
    for o in &outputs {
        if !response.outputs.iter().any(|t| &t.name == o) {
            return Err(bad(format!("model `{name}` has no output `{o}`")));
        }
    }
    let answered: usize = response.outputs.iter().map(|t| t.data.len()).sum();
    let limit = m.grants.limits.max_output_bytes;
    if answered as u64 > limit {
        return Err(ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("model failed: output limit exceeded: the model answered {answered} bytes of output tensors, limit {limit} bytes (raise --max-output)"),
        ));
    }
    let mut outs = Vec::new();
    let mut out_blob: Vec<u8> = Vec::new();
    for t in &response.outputs {
        if all_binary || binary_outputs.contains(&t.name) {
            tensor::check_raw(&format!("output {}", t.name), t.datatype, &t.shape, &t.data)
                .map_err(|e| {
                    ApiError(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("model returned a bad tensor: {e}"),
                    )
                })?;
            outs.push(json!({
                "name": t.name,
                "datatype": tensor::datatype_name(t.datatype),
                "shape": t.shape,
                "parameters": {"binary_data_size": t.data.len()},
            }));
            out_blob.extend_from_slice(&t.data);
        } else {
            let j = tensor::to_json(t).map_err(|e| match t.datatype {
                weft_runtime::predictor::Datatype::Fp16
                | weft_runtime::predictor::Datatype::Bf16 => bad(e),
                _ => ApiError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("model returned a bad tensor: {e}"),
                ),
            })?;
            outs.push(j);
        }
    }
    let mut body = json!({"model_name": name, "model_version": chosen, "outputs": outs});
    if let Some(id) = id {
        body["id"] = json!(id);
    }
    if let Ok(p @ Value::Object(_)) = serde_json::from_str::<Value>(&response.parameters) {
        if p.as_object().is_some_and(|o| !o.is_empty()) {
            body["parameters"] = p;
        }
    }
    if out_blob.is_empty() && !all_binary && binary_outputs.is_empty() {
        return Ok(Json(body).into_response());
    }
    let mut bytes = serde_json::to_vec(&body).expect("a JSON value serialises");
    let header_len = bytes.len();
    bytes.extend_from_slice(&out_blob);
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/octet-stream".to_string(),
            ),
            (
                axum::http::HeaderName::from_static(HEADER_LENGTH),
                header_len.to_string(),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// The one-line cause of a request that died in the sandbox.
/// What a model wrote to stdout and stderr, into the server's log, a line per event
/// (`RUST_LOG=weft::model=info`), as a container's output would reach `kubectl logs`.
fn forward_model_log(model: &str, version: &str, instance: &PredictorInstance) {
    let text = instance.take_log();
    for line in text.lines().filter(|l| !l.is_empty()) {
        tracing::info!(target: "weft::model", model, version, "{line}");
    }
}

/// Returns a good instance to its version's warm pool, if the pool has room.
fn keep_warm(state: &AppState, m: &Version, instance: PredictorInstance) {
    let mut warm = m.warm.lock().unwrap();
    if warm.len() < state.pool {
        warm.push(instance);
    }
}

/// How long past its time limit a request to a model computing in host calls is answered: a
/// little more than an epoch tick, so a limit tripped in wasm is reported the usual way.
const HOST_CALL_GRACE: std::time::Duration = std::time::Duration::from_millis(50);

/// A request to a model that computes in host calls (`LoadedPredictor::host_work`), run on a
/// blocking thread so a long call holds no async worker. Wasm past its limit is interrupted at
/// its next epoch check, a host call is not: the request is answered at its limit anyway and the
/// instance discarded when the call returns. Its slot stays taken until then, so such work
/// never piles up beyond `--concurrency`.
async fn infer_on_blocking_thread(
    state: &Arc<AppState>,
    name: &str,
    version: &str,
    request: InferRequest,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> Result<Result<Result<InferResponse, InferError>, StepError>, ApiError> {
    let limit = loaded(state, name)?.versions[version].grants.limits.timeout;
    let (state, name, version) = (state.clone(), name.to_string(), version.to_string());
    let work = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let m = &loaded(&state, &name)
            .expect("checked before the request was queued")
            .versions[&version];
        let pooled = m.warm.lock().unwrap().pop();
        let mut instance = match pooled {
            Some(i) => i,
            None => state.runtime.instantiate_predictor_blocking(
                &m.predictor,
                &m.grants,
                guest_model_dir(&m.config),
            )?,
        };
        let result = instance.infer_blocking(&request);
        forward_model_log(&name, &version, &instance);
        if result.is_ok() {
            keep_warm(&state, m, instance);
        }
        result
    });
    match tokio::time::timeout(limit + HOST_CALL_GRACE, work).await {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(e)) => Err(ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("model failed: {e}"),
        )),
        Err(_) => Err(ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "model failed: time limit exceeded: the request ran past {:.3}s inside a host call; it is answered now and its instance discarded when the call returns (raise --timeout)",
                limit.as_secs_f64()
            ),
        )),
    }
}

fn model_fault(e: &StepError) -> String {
    format!("model failed: {}", e.one_line())
}
