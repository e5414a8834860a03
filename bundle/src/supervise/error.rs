//! Errors of both supervise planes, and the one place they become JSON replies.

use bottle_protocol::control::ErrorReply;
use hyper::StatusCode;

/// A refused call: the status, a message for the caller, and for 405 the allowed method.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub allow: Option<&'static str>,
}

/// A successful reply body, or the error that replaces it.
pub type Reply = Result<(StatusCode, serde_json::Value), ApiError>;

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), allow: None }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    pub fn too_many(message: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, message)
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, format!("request body: larger than the limit of {limit} bytes"))
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    pub fn method(path: &str, allow: &'static str) -> Self {
        Self {
            allow: Some(allow),
            ..Self::new(StatusCode::METHOD_NOT_ALLOWED, format!("{path}: only {allow} is allowed"))
        }
    }

    /// The JSON body every error reply carries.
    pub fn into_pair(self) -> (StatusCode, serde_json::Value) {
        (self.status, serde_json::to_value(ErrorReply { error: self.message }).expect("error reply serializes"))
    }
}

/// Serializes a reply body; our bodies are plain structs, so this cannot fail.
pub fn ok<T: serde::Serialize>(status: StatusCode, body: &T) -> Reply {
    Ok((status, serde_json::to_value(body).expect("supervise reply serializes")))
}

/// Parses a JSON request body, naming what was wrong with it.
pub fn parse<T: serde::de::DeserializeOwned>(what: &str, body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("{what}: invalid JSON body: {e}")))
}
