//! Errors to responses, in one place: SCIM errors (RFC 7644 §3.12) for `/scim`, JSON errors with a
//! stable code for the admin API. Database text never reaches a client.

use std::any::Any;

use axum::extract::OriginalUri;
use axum::extract::rejection::PathRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use scim_proto::ScimError;
use scimd_domain::DomainError;
use scimd_domain::error::Refusal;
use scimd_domain::events::Cause;
use scimd_domain::store::StoreError;
use scimd_domain::token::AuthError;
use serde_json::json;

use super::{BodyError, EventNote, SCIM_CONTENT_TYPE, outcome_of};

/// What a client is told when its write lost to concurrent writes to the same data for too long.
const BUSY: &str = "scimd is busy with other writes to the same data right now (a profile's seats, a group's \
                    members) and did not make this change; retry in a moment";
/// Seconds a client should wait before retrying a write refused as busy.
const BUSY_RETRY_AFTER: HeaderValue = HeaderValue::from_static("1");

/// A failed SCIM request.
#[derive(Debug)]
pub struct ScimFailure(pub DomainError);

impl<E: Into<DomainError>> From<E> for ScimFailure {
    fn from(e: E) -> Self {
        ScimFailure(e.into())
    }
}

impl From<BodyError> for ScimError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge { limit } => ScimError::new(
                413,
                format!("the request body is larger than this server accepts ({limit} bytes); split the request"),
            ),
            BodyError::UnsupportedMediaType(ct) => ScimError::new(
                415,
                format!("Content-Type \"{ct}\" is not accepted: send application/scim+json or application/json"),
            ),
            BodyError::Invalid(msg) => ScimError::invalid_syntax(format!("the request body is not valid JSON: {msg}")),
            BodyError::Empty => ScimError::invalid_syntax("the request needs a JSON body, and it was empty"),
            BodyError::Interrupted => ScimError::invalid_syntax("the request body ended before it was complete"),
            BodyError::TimedOut => ScimError::new(
                408,
                "the request body did not arrive in time (the server's request timeout); send it whole, at once",
            ),
        }
    }
}

/// The SCIM error for a domain error; internal failures are logged and answered without detail.
pub fn scim_error(e: &DomainError) -> ScimError {
    match e {
        DomainError::Scim(e) => e.clone(),
        DomainError::Refused(r) => r.error.clone(),
        DomainError::Auth(e) => ScimError::new(401, e.to_string()),
        DomainError::NotFound(msg) => ScimError::not_found(msg.clone()),
        DomainError::Conflict(msg) => ScimError::uniqueness(msg.clone()),
        DomainError::Invalid(msg) => ScimError::invalid_value(msg.clone()),
        DomainError::Forbidden(msg) => ScimError::new(403, msg.clone()),
        DomainError::Store(StoreError::Unsupported(detail)) => ScimError::invalid_value(detail.clone()),
        DomainError::Store(StoreError::Busy(why)) => {
            tracing::warn!(error = %why, "write gave up on contention");
            ScimError::new(503, BUSY)
        }
        DomainError::Store(inner) => {
            tracing::error!(error = %inner, "store failure");
            ScimError::new(500, "scimd could not complete the request because of an internal error; retry later")
        }
    }
}

/// Renders a SCIM error with the SCIM media type.
pub fn scim_error_response(err: &ScimError) -> Response {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, err.to_json().to_string()).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_CONTENT_TYPE));
    resp
}

impl IntoResponse for ScimFailure {
    fn into_response(self) -> Response {
        let err = scim_error(&self.0);
        let mut resp = scim_error_response(&err);
        if matches!(self.0, DomainError::Store(StoreError::Busy(_))) {
            resp.headers_mut().insert(header::RETRY_AFTER, BUSY_RETRY_AFTER);
        }
        let outcome = outcome_of(&self.0, err.status);
        resp.extensions_mut()
            .insert(EventNote { outcome: Some(outcome), ..EventNote::failure(self.0.cause(), err.detail) });
        if let DomainError::Refused(Refusal { retry_after: Some(seconds), .. }) = &self.0 {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*seconds));
        }
        if let DomainError::Auth(auth) = &self.0 {
            let challenge = match auth {
                AuthError::MissingHeader | AuthError::MalformedHeader => "Bearer realm=\"scimd\"",
                _ => "Bearer realm=\"scimd\", error=\"invalid_token\"",
            };
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        resp
    }
}

/// A failed admin API request: `{"error": {"code", "message"}}`.
#[derive(Debug)]
pub struct AdminFailure {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl AdminFailure {
    /// A failure with a status, a stable code and a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        AdminFailure { status, code, message: message.into() }
    }
}

impl From<DomainError> for AdminFailure {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::NotFound(m) => AdminFailure::new(StatusCode::NOT_FOUND, "not_found", m),
            DomainError::Conflict(m) => AdminFailure::new(StatusCode::CONFLICT, "conflict", m),
            DomainError::Invalid(m) => AdminFailure::new(StatusCode::BAD_REQUEST, "invalid_request", m),
            DomainError::Forbidden(m) => AdminFailure::new(StatusCode::FORBIDDEN, "forbidden", m),
            DomainError::Auth(a) => AdminFailure::new(StatusCode::UNAUTHORIZED, "unauthorized", a.to_string()),
            DomainError::Refused(r) => AdminFailure::new(
                StatusCode::from_u16(r.error.status).unwrap_or(StatusCode::BAD_REQUEST),
                r.cause.as_str(),
                r.error.detail,
            ),
            DomainError::Scim(s) => AdminFailure::new(
                StatusCode::from_u16(s.status).unwrap_or(StatusCode::BAD_REQUEST),
                "invalid_request",
                s.detail,
            ),
            DomainError::Store(StoreError::Unsupported(detail)) => {
                AdminFailure::new(StatusCode::BAD_REQUEST, "invalid_request", detail.clone())
            }
            DomainError::Store(StoreError::Busy(why)) => {
                tracing::warn!(error = %why, "write gave up on contention");
                AdminFailure::new(StatusCode::SERVICE_UNAVAILABLE, "busy", BUSY)
            }
            DomainError::Store(inner) => {
                tracing::error!(error = %inner, "store failure");
                AdminFailure::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; retry later")
            }
        }
    }
}

impl From<PathRejection> for AdminFailure {
    fn from(e: PathRejection) -> Self {
        AdminFailure::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("nothing is found at this path: {}", e.body_text()),
        )
    }
}

impl From<BodyError> for AdminFailure {
    fn from(e: BodyError) -> Self {
        let err = ScimError::from(e);
        let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::BAD_REQUEST);
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            _ => "invalid_json",
        };
        AdminFailure::new(status, code, err.detail)
    }
}

impl IntoResponse for AdminFailure {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"scimd-admin\""));
        }
        if self.code == "busy" {
            resp.headers_mut().insert(header::RETRY_AFTER, BUSY_RETRY_AFTER);
        }
        resp
    }
}

/// Anything no route serves: a SCIM 404 under `/scim` (with the way to the right URL), a JSON 404
/// elsewhere. Never an HTML page.
pub async fn not_found(OriginalUri(uri): OriginalUri) -> Response {
    let path = uri.path();
    // Anything but the admin API is answered in SCIM terms: a wrong base URL in an IdP is the
    // likeliest reason to be here.
    if !path.starts_with("/admin") {
        let err = ScimError::not_found(format!(
            "no SCIM endpoint at {path}. The SCIM base URL is /scim/v2 (the same for every tenant; the \
             token selects the tenant), with /Users, /Groups, /Bulk, /.search, /ServiceProviderConfig, \
             /ResourceTypes and /Schemas below it: check the tenant URL configured in your identity provider"
        ));
        let mut resp = scim_error_response(&err);
        resp.extensions_mut().insert(EventNote::failure(Cause::UnknownPath, err.detail));
        return resp;
    }
    AdminFailure::new(StatusCode::NOT_FOUND, "not_found", format!("nothing is served at {path}")).into_response()
}

/// A panic in a handler becomes a SCIM 500, never a dropped connection or an HTML page.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = what, "handler panicked");
    let err = ScimError::new(500, "scimd hit an internal error; retry later");
    let mut resp = scim_error_response(&err);
    resp.extensions_mut().insert(EventNote::failure(Cause::InternalError, err.detail));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy() -> DomainError {
        DomainError::Store(StoreError::Busy("PostgreSQL: could not serialize access (40001)".into()))
    }

    #[test]
    fn a_write_that_lost_to_contention_is_a_503_to_retry_not_a_500() {
        let scim = ScimFailure(busy()).into_response();
        assert_eq!(scim.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(scim.headers()[header::RETRY_AFTER], "1");
        assert_eq!(scim_error(&busy()).detail, BUSY, "no database detail reaches the client");
        assert_eq!(busy().cause(), Cause::Busy);
        let admin = AdminFailure::from(busy()).into_response();
        assert_eq!(admin.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(admin.headers()[header::RETRY_AFTER], "1");
    }
}
