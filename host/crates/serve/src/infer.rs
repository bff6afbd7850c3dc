//! `POST /v2/models/NAME[/versions/V]/infer`: decode, wait for one of the version's slots, run
//! the model in a fresh (or warm) sandboxed instance, encode its answer within the output
//! limit.

use crate::error::ApiError;
use crate::load::guest_model_dir;
use crate::server::{loaded, model, AppState, Version};
use crate::slots::SlotError;
use crate::v2::{self, Answer, DecodeError, EncodeError};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;
use weft_runtime::predictor::{InferError, InferRequest, InferResponse, PredictorInstance};
use weft_runtime::StepError;

type InferResult = Result<Response, ApiError>;

/// What running a request in the sandbox gives: the model's answer or its own error, or the
/// sandbox's error (trap, limit).
type Outcome = Result<Result<InferResponse, InferError>, StepError>;

pub(crate) async fn infer(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> InferResult {
    timed(state, name, None, headers, body?).await
}

pub(crate) async fn infer_v(
    State(state): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> InferResult {
    timed(state, name, Some(version), headers, body?).await
}

/// Runs an inference and counts it, whatever its outcome.
async fn timed(
    state: Arc<AppState>,
    name: String,
    version: Option<String>,
    headers: HeaderMap,
    body: Bytes,
) -> InferResult {
    let started = std::time::Instant::now();
    let _in_flight = state.metrics.in_flight();
    let result = run_infer(&state, &name, version, &headers, &body).await;
    let code = match &result {
        Ok(_) => 200,
        Err(ApiError(code, _)) => code.as_u16(),
    };
    state.metrics.observe(&name, code, started.elapsed());
    result
}

async fn run_infer(
    state: &Arc<AppState>,
    name: &str,
    version: Option<String>,
    headers: &HeaderMap,
    body: &[u8],
) -> InferResult {
    // An unversioned request takes the version the traffic split picks, once, here.
    let chosen = match version {
        Some(v) => v,
        None => loaded(state, name)?.routing.pick(),
    };
    let (_, m) = model(state, name, Some(&chosen))?;
    let header_length = headers.get(v2::HEADER_LENGTH).map(|v| v.as_bytes());
    let decoded = v2::decode(header_length, body).map_err(|e| match e {
        DecodeError::Invalid(m) => ApiError::bad(m),
        DecodeError::Unsupported(m) => ApiError(StatusCode::NOT_IMPLEMENTED, m),
    })?;
    let slot = m.slots.acquire().await.map_err(|e| match e {
        SlotError::Full { .. } => ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("model `{name}` version `{chosen}` is busy: {e}"),
        ),
        SlotError::Closed => ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    })?;
    let outcome = if m.predictor.host_work {
        infer_on_blocking_thread(state, name, &chosen, decoded.request.clone(), slot).await?
    } else {
        // It runs here, on this task: wasm yields to the executor at every epoch tick, so a
        // long request does not hold a worker thread.
        let _slot = slot;
        infer_here(state, m, &decoded.request).await
    };
    let response = model_answer(name, outcome)?;
    let answer = Answer {
        model: name,
        version: &chosen,
        decoded: &decoded,
        response: &response,
    };
    let encoded = v2::encode(&answer, m.grants.limits.max_output_bytes).map_err(|e| match e {
        EncodeError::NoSuchOutput { .. } | EncodeError::NoJsonForm(_) => {
            ApiError::bad(e.to_string())
        }
        EncodeError::BadTensor(_) | EncodeError::TooLarge { .. } => {
            ApiError::internal(format!("model failed: {e}"))
        }
    })?;
    Ok(respond(encoded))
}

/// A request run on this task, in a warm instance or a fresh one.
async fn infer_here(state: &AppState, m: &Version, request: &InferRequest) -> Outcome {
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
    let result = instance.infer(request).await;
    forward_model_log(&m.config.name, &m.config.version, &instance);
    if result.is_ok() {
        keep_warm(state, m, instance);
    }
    result
}

/// The model's answer, or the error it or its sandbox ended the request with.
fn model_answer(name: &str, outcome: Outcome) -> Result<InferResponse, ApiError> {
    match outcome {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(InferError::InvalidInput(m))) => Err(ApiError::bad(m)),
        Ok(Err(InferError::Failed(m))) => Err(ApiError::internal(format!("model failed: {m}"))),
        Err(e) => {
            tracing::warn!(model = %name, error = %e, "request failed in the sandbox");
            Err(ApiError::internal(format!(
                "model failed: {}",
                e.one_line()
            )))
        }
    }
}

fn respond(encoded: v2::Encoded) -> Response {
    let content_type = match encoded.json_length {
        None => "application/json",
        Some(_) => "application/octet-stream",
    };
    let mut response = ([(header::CONTENT_TYPE, content_type)], encoded.body).into_response();
    if let Some(n) = encoded.json_length {
        response
            .headers_mut()
            .insert(HeaderName::from_static(v2::HEADER_LENGTH), n.into());
    }
    response
}

/// What a model wrote to stdout and stderr, into the server's log, a line per event
/// (`RUST_LOG=weft::model=info`), as a container's output would reach `kubectl logs`.
pub(crate) fn forward_model_log(model: &str, version: &str, instance: &PredictorInstance) {
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
/// never piles up beyond the version's `--concurrency`.
async fn infer_on_blocking_thread(
    state: &Arc<AppState>,
    name: &str,
    version: &str,
    request: InferRequest,
    slot: OwnedSemaphorePermit,
) -> Result<Outcome, ApiError> {
    let limit = model(state, name, Some(version))?.1.grants.limits.timeout;
    let (state, name, version) = (state.clone(), name.to_string(), version.to_string());
    let work = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let (_, m) = model(&state, &name, Some(&version)).expect("checked before it was queued");
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
        Ok(Err(e)) => Err(ApiError::internal(format!("model failed: {e}"))),
        Err(_) => Err(ApiError::internal(format!(
            "model failed: time limit exceeded: the request ran past {:.3}s inside a host call; it is answered now and its instance discarded when the call returns (raise --timeout)",
            limit.as_secs_f64()
        ))),
    }
}
