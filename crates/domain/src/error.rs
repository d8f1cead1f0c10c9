//! The domain's error type: every refusal the domain can make, before it becomes HTTP.

use scim_proto::ScimError;

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
    /// The store failed; the message is for logs only, never for clients.
    #[error("store failure: {0}")]
    Store(StoreError),
}

impl From<StoreError> for DomainError {
    fn from(e: StoreError) -> Self {
        DomainError::Store(e)
    }
}
