//! The edge: request bodies in, SCIM JSON out, the one place where errors become responses, and
//! the request id and provisioning-log event of every request.

mod body;
mod errors;
mod record;

pub use body::{BodyError, read_json};
pub use errors::{AdminFailure, ScimFailure, not_found, panic_response, scim_error};
pub use record::{EventNote, NoteSlot, filter_subject, outcome_of, record_events, subject_of};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// The SCIM media type, on every SCIM response.
pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";

/// A SCIM JSON response with optional `Location` and `ETag` headers.
pub struct ScimJson {
    pub status: StatusCode,
    pub body: Value,
    pub location: Option<String>,
    pub etag: Option<String>,
}

impl ScimJson {
    /// A 200 response.
    pub fn ok(body: Value) -> Self {
        ScimJson { status: StatusCode::OK, body, location: None, etag: None }
    }
}

impl IntoResponse for ScimJson {
    fn into_response(self) -> Response {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_CONTENT_TYPE));
        if let Some(v) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            headers.insert(header::LOCATION, v);
        }
        if let Some(v) = self.etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
            headers.insert(header::ETAG, v);
        }
        (self.status, headers, self.body.to_string()).into_response()
    }
}
