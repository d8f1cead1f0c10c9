//! The SCIM error (RFC 7644 §3.12): the one error type of the protocol layer.

use serde_json::{Value, json};

/// URN of the SCIM error message schema.
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// The `scimType` keywords of RFC 7644 §3.12, table 9, and RFC 9865's `invalidCursor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimType {
    /// `invalidFilter`: the filter syntax is invalid or names an unknown attribute.
    InvalidFilter,
    /// `tooMany`: the request would return or touch too many resources.
    TooMany,
    /// `uniqueness`: a value that must be unique is already taken.
    Uniqueness,
    /// `mutability`: the request writes a readOnly or immutable attribute.
    Mutability,
    /// `invalidSyntax`: the request body is not valid SCIM (not an object, missing schemas, ...).
    InvalidSyntax,
    /// `invalidPath`: an attribute path is malformed or names nothing.
    InvalidPath,
    /// `noTarget`: a PATCH path matches nothing it could act on.
    NoTarget,
    /// `invalidValue`: a value is missing, of the wrong type or out of bounds.
    InvalidValue,
    /// `invalidVers`: the requested protocol version is not supported.
    InvalidVers,
    /// `sensitive`: the request carries sensitive data in the URI.
    Sensitive,
    /// `invalidCursor` (RFC 9865): the `cursor` is not one this service gave out.
    InvalidCursor,
}

impl ScimType {
    /// The keyword as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::TooMany => "tooMany",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::InvalidValue => "invalidValue",
            ScimType::InvalidVers => "invalidVers",
            ScimType::Sensitive => "sensitive",
            ScimType::InvalidCursor => "invalidCursor",
        }
    }
}

/// A protocol error: an HTTP status, an optional `scimType` and an actionable `detail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {}: {detail}", scim_type.map(ScimType::as_str).unwrap_or("-"))]
pub struct ScimError {
    /// The HTTP status code (400, 404, 409, ...).
    pub status: u16,
    /// The `scimType` keyword, for the 400 and 409 errors that have one.
    pub scim_type: Option<ScimType>,
    /// What went wrong and how to fix it, for the client's administrator.
    pub detail: String,
}

impl ScimError {
    /// An error with a status and detail and no `scimType`.
    pub fn new(status: u16, detail: impl Into<String>) -> Self {
        ScimError { status, scim_type: None, detail: detail.into() }
    }

    /// A 400 with the given `scimType`.
    pub fn bad_request(scim_type: ScimType, detail: impl Into<String>) -> Self {
        ScimError { status: 400, scim_type: Some(scim_type), detail: detail.into() }
    }

    /// 400 `invalidFilter`.
    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::InvalidFilter, detail)
    }

    /// 400 `invalidSyntax`.
    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::InvalidSyntax, detail)
    }

    /// 400 `invalidValue`.
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::InvalidValue, detail)
    }

    /// 400 `invalidPath`.
    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::InvalidPath, detail)
    }

    /// 400 `noTarget`.
    pub fn no_target(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::NoTarget, detail)
    }

    /// 400 `mutability`.
    pub fn mutability(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::Mutability, detail)
    }

    /// 409 `uniqueness`.
    pub fn uniqueness(detail: impl Into<String>) -> Self {
        ScimError { status: 409, scim_type: Some(ScimType::Uniqueness), detail: detail.into() }
    }

    /// 404 for a resource that does not exist (or is not visible to the caller).
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, detail)
    }

    /// 412 for a failed `If-Match` / `If-None-Match` precondition.
    pub fn precondition_failed(detail: impl Into<String>) -> Self {
        Self::new(412, detail)
    }

    /// The RFC 7644 §3.12 JSON body (`status` is a string).
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = Value::String(t.as_str().to_owned());
        }
        body
    }
}
