//! What every admin handler needs to read a request: a JSON object body, its known fields with
//! their types, and the 400 that names what was wrong.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use scimd_domain::DomainError;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::AppState;
use crate::edge::{AdminFailure, read_json};

/// What an admin handler answers.
pub type Reply = Result<Response, AdminFailure>;

/// A 400 `invalid_request`.
pub fn invalid(message: impl Into<String>) -> AdminFailure {
    AdminFailure::new(StatusCode::BAD_REQUEST, "invalid_request", message)
}

/// The request body, which must be a JSON object.
pub async fn json_object(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Map<String, Value>, AdminFailure> {
    match read_json(headers, body, state.service.limits.max_body).await? {
        Value::Object(map) => Ok(map),
        _ => Err(invalid("the request body must be a JSON object")),
    }
}

/// A query parameter that must be a whole number from 1 to `max`.
pub fn from_one_to<T>(name: &str, value: &str, max: T) -> Result<T, AdminFailure>
where
    T: std::str::FromStr + PartialOrd + From<u8> + std::fmt::Display + Copy,
{
    value
        .parse::<T>()
        .ok()
        .filter(|n| *n >= T::from(1) && *n <= max)
        .ok_or_else(|| invalid(format!("\"{name}\" must be between 1 and {max}")))
}

/// Rejects fields this endpoint does not know, so that a typo is never silently ignored.
pub fn only_fields(body: &Map<String, Value>, allowed: &[&str]) -> Result<(), AdminFailure> {
    match body.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(invalid(format!("unknown field \"{k}\"; allowed: {}", allowed.join(", ")))),
        None => Ok(()),
    }
}

/// A field of the body as `T`, `None` when absent; `expected` says what it must be when it is
/// not. With `T = Option<U>`, `null` reads as `Some(None)` (a field to clear), so absent and
/// `null` stay distinct.
pub fn field<T: DeserializeOwned>(
    body: &Map<String, Value>,
    key: &str,
    expected: &str,
) -> Result<Option<T>, AdminFailure> {
    match body.get(key) {
        None => Ok(None),
        Some(v) => T::deserialize(v).map(Some).map_err(|_| invalid(format!("\"{key}\" must be {expected}"))),
    }
}

/// A field that must be present.
pub fn required<T: DeserializeOwned>(body: &Map<String, Value>, key: &str, expected: &str) -> Result<T, AdminFailure> {
    field(body, key, expected)?.ok_or_else(|| invalid(format!("\"{key}\" ({expected}) is required")))
}

/// For an id named in a request body (not in the path): a missing object is a bad request, not
/// a missing resource, so it answers 400 naming the field.
pub fn reference(key: &'static str) -> impl FnOnce(DomainError) -> AdminFailure {
    move |e| match e {
        DomainError::NotFound(m) => invalid(format!("\"{key}\": {m}")),
        other => other.into(),
    }
}
