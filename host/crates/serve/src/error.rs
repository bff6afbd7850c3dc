//! The server's one error answer: `{"error": "..."}` with a status code, the message cut to
//! [`MAX_ERROR_BYTES`] (a model's error string, or a client's names quoted back, never make an
//! error body larger than that).

use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Longest error message sent; a longer one is cut and says how much was cut.
pub const MAX_ERROR_BYTES: usize = 4096;

/// A V2 error: `{"error": "..."}` with a status code.
#[derive(Debug)]
pub(crate) struct ApiError(pub StatusCode, pub String);

impl ApiError {
    pub(crate) fn bad(msg: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, msg.into())
    }

    pub(crate) fn internal(msg: impl Into<String>) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, msg.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": cut(self.1, MAX_ERROR_BYTES)}))).into_response()
    }
}

/// `msg` cut to at most `max` bytes (on a character boundary), marked with what was cut.
pub(crate) fn cut(mut msg: String, max: usize) -> String {
    if msg.len() <= max {
        return msg;
    }
    let total = msg.len();
    // Room for the marker; its digits are at most 20.
    let mut end = max.saturating_sub(48);
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    msg.truncate(end);
    msg.push_str(&format!("… ({} more bytes cut)", total - end));
    msg
}

/// A body axum could not read: too large (413) or broken, answered as every other error.
impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        ApiError(r.status(), body_message(r.status(), r.body_text()))
    }
}

/// A body that is not the JSON an admin endpoint takes.
impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        ApiError(r.status(), body_message(r.status(), r.body_text()))
    }
}

fn body_message(status: StatusCode, text: String) -> String {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        "the request body is over the server's limit (--max-body)".into()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_character_boundary_and_say_so() {
        assert_eq!(cut("short".into(), 100), "short");
        let long = "é".repeat(5000);
        let c = cut(long, MAX_ERROR_BYTES);
        assert!(c.len() <= MAX_ERROR_BYTES, "{}", c.len());
        assert!(c.ends_with("more bytes cut)"), "{c}");
    }
}
