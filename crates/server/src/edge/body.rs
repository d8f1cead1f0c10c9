//! Reading JSON request bodies: media type, size limit and syntax, each with a precise error.

use axum::body::Body;
use axum::http::{HeaderMap, header};
use serde_json::Value;

/// Why a body could not be read as JSON.
#[derive(Debug)]
pub enum BodyError {
    /// Over the limit (bytes).
    TooLarge { limit: usize },
    /// A media type that is not JSON.
    UnsupportedMediaType(String),
    /// Not valid JSON; the message names line and column.
    Invalid(String),
    /// Empty body where one is required.
    Empty,
    /// The client stopped sending before the body was complete.
    Interrupted,
    /// The body did not arrive within the request timeout.
    TimedOut,
}

/// Media types accepted for request bodies: SCIM's, plain JSON (Okta and some validators send it),
/// or none at all (Entra sends some requests without a Content-Type).
fn acceptable(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    matches!(essence.as_str(), "application/scim+json" | "application/json" | "")
}

/// Reads and parses a JSON body of at most `limit` bytes.
pub async fn read_json(headers: &HeaderMap, body: Body, limit: usize) -> Result<Value, BodyError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("?");
        if !acceptable(ct) {
            return Err(BodyError::UnsupportedMediaType(ct.to_owned()));
        }
    }
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        let cause = e.into_inner();
        if cause.is::<http_body_util::LengthLimitError>() {
            BodyError::TooLarge { limit }
        } else if caused_by_timeout(cause.as_ref()) {
            BodyError::TimedOut
        } else {
            BodyError::Interrupted
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(BodyError::Empty);
    }
    serde_json::from_slice(&bytes).map_err(|e| BodyError::Invalid(e.to_string()))
}

/// Whether the request timeout's deadline (wrapped in the body's own errors) cut the body off.
fn caused_by_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(error), |e| e.source()).any(|e| e.is::<tower_http::timeout::TimeoutError>())
}
