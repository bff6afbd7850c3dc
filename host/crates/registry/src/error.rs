//! Errors as the API answers them: `{"code": "404", "message": "..."}` with that status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use weft_store::RegistryError;

/// A failed request: its status and what to tell the caller.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            RegistryError::NoParent(m) => ApiError::not_found(m),
            RegistryError::InUse(m) => ApiError::new(StatusCode::CONFLICT, m),
            RegistryError::Invalid(m) => ApiError::bad_request(m),
            other => {
                tracing::error!(error = %other, "model registry: store failed");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = crate::model::Error {
            code: self.status.as_u16().to_string(),
            message: self.message,
        };
        (self.status, axum::Json(body)).into_response()
    }
}
