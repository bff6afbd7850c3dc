//! Errors as pages: the status a browser and a test can check, and a sentence saying what.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// No such run, task, artifact, experiment or model.
    #[error("{0}")]
    NotFound(String),
    /// A query parameter or path that cannot mean anything.
    #[error("{0}")]
    BadRequest(String),
    /// A registry namespace this server does not serve.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Internal(String),
}

impl From<weft_store::StoreError> for UiError {
    fn from(e: weft_store::StoreError) -> Self {
        match e {
            weft_store::StoreError::NoRun(id) => UiError::NotFound(format!("no run `{id}`")),
            other => UiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let status = match self {
            UiError::NotFound(_) => StatusCode::NOT_FOUND,
            UiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            UiError::Forbidden(_) => StatusCode::FORBIDDEN,
            UiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::error!(error = %self, "ui page failed");
        }
        let title = status.canonical_reason().unwrap_or("Error");
        let body = crate::layout::shell(
            title,
            maud::html! { h1 { (title) } p.error role="alert" { (self.to_string()) } },
        );
        (status, body).into_response()
    }
}
