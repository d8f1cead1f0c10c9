//! The domain's error type: every refusal the domain can make, before it becomes HTTP.

use scim_proto::ScimError;

use crate::events::Cause;
use crate::store::StoreError;
use crate::token::AuthError;

/// Result with [`DomainError`].
pub type Result<T, E = DomainError> = std::result::Result<T, E>;

/// Why a domain operation did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The request broke a protocol rule; carries the SCIM error to send.
    #[error(transparent)]
    Scim(#[from] ScimError),
    /// A provisioning rule refused the request.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The caller could not be authenticated.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// An admin-level object (tenant, token) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// An admin-level request conflicts with existing state (e.g. a tenant name in use).
    #[error("{0}")]
    Conflict(String),
    /// An admin-level request is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The caller may not do this (e.g. a tenant admin reaching another tenant).
    #[error("{0}")]
    Forbidden(String),
    /// The store failed; the message is for logs only, never for clients.
    #[error("store failure: {0}")]
    Store(StoreError),
}

impl From<StoreError> for DomainError {
    fn from(e: StoreError) -> Self {
        DomainError::Store(e)
    }
}

/// A provisioning rule's refusal: the SCIM error the IdP sees, its stable cause, and when a retry
/// may succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct Refusal {
    /// The stable cause code recorded in the provisioning log.
    pub cause: Cause,
    /// What the client is told.
    pub error: ScimError,
    /// Seconds after which retrying may succeed (sent as `Retry-After`).
    pub retry_after: Option<u32>,
}

impl DomainError {
    /// The provisioning log's cause for this error.
    pub fn cause(&self) -> Cause {
        use crate::token::AuthError;
        match self {
            DomainError::Refused(r) => r.cause,
            DomainError::Auth(AuthError::MissingHeader) => Cause::MissingToken,
            DomainError::Auth(AuthError::MalformedHeader) => Cause::MalformedAuthorization,
            DomainError::Auth(AuthError::UnknownToken) => Cause::UnknownToken,
            DomainError::Auth(AuthError::Expired { .. }) => Cause::TokenExpired,
            DomainError::Auth(AuthError::Revoked { .. }) => Cause::TokenRevoked,
            DomainError::Scim(e) => match (e.status, e.scim_type) {
                (404, _) => Cause::NotFound,
                (409, Some(scim_proto::ScimType::Uniqueness)) => Cause::UserNameTaken,
                (409, _) => Cause::Busy,
                (412, _) => Cause::PreconditionFailed,
                (413, _) => Cause::PayloadTooLarge,
                (415, _) => Cause::UnsupportedMediaType,
                (405, _) => Cause::MethodNotAllowed,
                (500.., _) => Cause::InternalError,
                _ => Cause::InvalidRequest,
            },
            DomainError::NotFound(_) => Cause::NotFound,
            // Admin-side refusals; SCIM requests, which the log records, do not meet them.
            DomainError::Conflict(_) | DomainError::Invalid(_) | DomainError::Forbidden(_) => Cause::InvalidRequest,
            // Input the database cannot take (text with U+0000 on PostgreSQL) is the request's fault.
            DomainError::Store(StoreError::Unsupported(_)) => Cause::InvalidRequest,
            DomainError::Store(StoreError::Busy(_)) => Cause::Busy,
            DomainError::Store(_) => Cause::InternalError,
        }
    }
}
