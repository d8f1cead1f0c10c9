//! The provisioning log: one event per SCIM request that reaches scimd, with a stable cause code.
//!
//! The doctor, the console's log, metrics and webhooks all read events; nothing else records why a
//! request was refused. Cause codes are part of the product's contract: never rename one.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Why a request ended as it did. Stable names, documented in docs/causes.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// Accepted as asked.
    Ok,
    /// No `Authorization` header.
    MissingToken,
    /// An `Authorization` header that is not `Bearer <token>`.
    MalformedAuthorization,
    /// A bearer token scimd does not know.
    UnknownToken,
    /// A token past its expiry.
    TokenExpired,
    /// A revoked or superseded token.
    TokenRevoked,
    /// A path that is no SCIM endpoint (wrong base URL in the IdP).
    UnknownPath,
    /// A method the endpoint does not allow.
    MethodNotAllowed,
    /// The resource does not exist (in this tenant).
    NotFound,
    /// No enabled mapping matched the user.
    NoMappingMatched,
    /// The mapped profile has no free seat.
    ProfileFull,
    /// The email belongs to another active user of this tenant.
    EmailInUseInTenant,
    /// The email belongs to a preserved (deactivated or deleted) user of this tenant.
    EmailHeldByPreservedUser,
    /// The email belongs to a user of another tenant of the cloud.
    EmailInUseElsewhere,
    /// The mapped storage region is not healthy.
    RegionUnhealthy,
    /// An administrator preserved the user; the IdP may not re-activate it.
    AdminPreserved,
    /// The userName belongs to another user of this tenant.
    UserNameTaken,
    /// `If-Match` named another version.
    PreconditionFailed,
    /// The request is malformed or breaks a protocol rule (the SCIM error's scimType tells which).
    InvalidRequest,
    /// The body is larger than allowed.
    PayloadTooLarge,
    /// The body is not JSON.
    UnsupportedMediaType,
    /// Concurrent writes kept the request from completing; retrying succeeds.
    Busy,
    /// The tenant sent more requests than its rate limit allows.
    RateLimited,
    /// scimd failed.
    InternalError,
}

impl Cause {
    /// The stable name (`profile_full`).
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Ok => "ok",
            Cause::MissingToken => "missing_token",
            Cause::MalformedAuthorization => "malformed_authorization",
            Cause::UnknownToken => "unknown_token",
            Cause::TokenExpired => "token_expired",
            Cause::TokenRevoked => "token_revoked",
            Cause::UnknownPath => "unknown_path",
            Cause::MethodNotAllowed => "method_not_allowed",
            Cause::NotFound => "not_found",
            Cause::NoMappingMatched => "no_mapping_matched",
            Cause::ProfileFull => "profile_full",
            Cause::EmailInUseInTenant => "email_in_use_in_tenant",
            Cause::EmailHeldByPreservedUser => "email_held_by_preserved_user",
            Cause::EmailInUseElsewhere => "email_in_use_elsewhere",
            Cause::RegionUnhealthy => "region_unhealthy",
            Cause::AdminPreserved => "admin_preserved",
            Cause::UserNameTaken => "user_name_taken",
            Cause::PreconditionFailed => "precondition_failed",
            Cause::InvalidRequest => "invalid_request",
            Cause::PayloadTooLarge => "payload_too_large",
            Cause::UnsupportedMediaType => "unsupported_media_type",
            Cause::Busy => "busy",
            Cause::RateLimited => "rate_limited",
            Cause::InternalError => "internal_error",
        }
    }

    /// Every cause, for documentation and validation of filters.
    pub const ALL: [Cause; 24] = [
        Cause::Ok,
        Cause::MissingToken,
        Cause::MalformedAuthorization,
        Cause::UnknownToken,
        Cause::TokenExpired,
        Cause::TokenRevoked,
        Cause::UnknownPath,
        Cause::MethodNotAllowed,
        Cause::NotFound,
        Cause::NoMappingMatched,
        Cause::ProfileFull,
        Cause::EmailInUseInTenant,
        Cause::EmailHeldByPreservedUser,
        Cause::EmailInUseElsewhere,
        Cause::RegionUnhealthy,
        Cause::AdminPreserved,
        Cause::UserNameTaken,
        Cause::PreconditionFailed,
        Cause::InvalidRequest,
        Cause::PayloadTooLarge,
        Cause::UnsupportedMediaType,
        Cause::Busy,
        Cause::RateLimited,
        Cause::InternalError,
    ];

    /// Parses a stable name.
    pub fn parse(name: &str) -> Option<Cause> {
        Cause::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done as asked.
    Accepted,
    /// Accepted, but the user is pending until its cause clears.
    Held,
    /// Refused by a provisioning rule or the protocol.
    Refused,
    /// No valid token.
    Unauthenticated,
    /// scimd failed.
    Failed,
}

impl Outcome {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Held => "held",
            Outcome::Refused => "refused",
            Outcome::Unauthenticated => "unauthenticated",
            Outcome::Failed => "failed",
        }
    }

    /// Parses a stable name.
    pub fn parse(name: &str) -> Option<Outcome> {
        [Outcome::Accepted, Outcome::Held, Outcome::Refused, Outcome::Unauthenticated, Outcome::Failed]
            .into_iter()
            .find(|o| o.as_str() == name)
    }
}

/// The identity provider a request came from, told by its User-Agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Idp {
    /// Okta.
    Okta,
    /// Microsoft Entra ID (formerly Azure AD).
    EntraId,
    /// OneLogin.
    OneLogin,
    /// Any other SCIM client.
    Other,
}

impl Idp {
    /// Recognises the IdP from a User-Agent (Okta: `Okta SCIM Client`; Entra ID:
    /// `Azure AD SCIM Client` / `Microsoft Entra`; OneLogin: `OneLogin`).
    pub fn from_user_agent(agent: Option<&str>) -> Idp {
        let agent = agent.unwrap_or("").to_ascii_lowercase();
        if agent.contains("okta") {
            Idp::Okta
        } else if agent.contains("azure") || agent.contains("entra") || agent.contains("microsoft") {
            Idp::EntraId
        } else if agent.contains("onelogin") {
            Idp::OneLogin
        } else {
            Idp::Other
        }
    }

    /// The IdP of a stable name; a name this version does not know is `Other`.
    pub fn parse(name: &str) -> Idp {
        [Idp::Okta, Idp::EntraId, Idp::OneLogin].into_iter().find(|i| i.as_str() == name).unwrap_or(Idp::Other)
    }

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Idp::Okta => "okta",
            Idp::EntraId => "entra_id",
            Idp::OneLogin => "onelogin",
            Idp::Other => "other",
        }
    }
}

/// One record of the provisioning log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Store-assigned, increasing: the cursor for paging.
    pub id: i64,
    /// When the request arrived.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The tenant a token identified, even when the token was expired or the path wrong.
    pub tenant_id: Option<String>,
    /// The token that identified the tenant.
    pub token_id: Option<String>,
    /// The request's id (also in the `X-Request-Id` response header).
    pub request_id: String,
    /// The IdP, from the User-Agent.
    pub idp: Idp,
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// What was asked, e.g. `create User`, `patch Group`, `list Users`.
    pub operation: String,
    /// Whom it was about: userName, externalId, email or resource id, as known.
    pub subject: Option<String>,
    /// Other identifiers the request carried for its subject (externalId, emails), lower case,
    /// so that the doctor finds a user by whichever one an admin asks about.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Why.
    pub cause: Cause,
    /// HTTP status answered.
    pub status: u16,
    /// The error detail answered (or a note for accepted requests).
    pub detail: Option<String>,
    /// Time spent, in milliseconds.
    pub duration_ms: u32,
}

/// Which events to read, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Only this tenant's events (the admin API always sets it; the operator may not).
    pub tenant_id: Option<String>,
    /// Only this outcome.
    pub outcome: Option<Outcome>,
    /// Only this cause.
    pub cause: Option<Cause>,
    /// Only events whose subject contains this (case-insensitive).
    pub subject: Option<String>,
    /// Only events at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only events before this time.
    pub until: Option<OffsetDateTime>,
    /// Cursor: only events with a smaller id.
    pub before_id: Option<i64>,
    /// Page size.
    pub limit: u32,
}

impl crate::Service {
    /// Reads the provisioning log, newest first.
    pub async fn events(&self, query: &EventQuery) -> crate::Result<Vec<Event>> {
        Ok(self.store.events(query).await?)
    }

    /// One event of a tenant's log by id.
    pub async fn event(&self, tenant: &crate::tenant::Tenant, id: i64) -> crate::Result<Event> {
        let query = EventQuery {
            tenant_id: Some(tenant.id.clone()),
            before_id: id.checked_add(1),
            limit: 1,
            ..EventQuery::default()
        };
        let found = self.store.events(&query).await?.into_iter().next().filter(|e| e.id == id);
        found.ok_or_else(|| crate::DomainError::NotFound(format!("the provisioning log has no entry {id}")))
    }

    /// The tenant's events of the last `days` days (today included), per UTC day and outcome.
    pub async fn activity(&self, tenant: &crate::tenant::Tenant, days: i64) -> crate::Result<Vec<DayActivity>> {
        let today = self.clock.now().replace_time(time::Time::MIDNIGHT);
        Ok(self.store.activity(&tenant.id, today - time::Duration::days(days - 1)).await?)
    }
}

/// Where events are kept. Part of every [`Store`](crate::store::Store).
#[async_trait::async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends events (their `id` is ignored and assigned by the store), in one transaction.
    async fn insert_events(&self, events: &[Event]) -> Result<(), crate::store::StoreError>;
    /// Reads events, newest first.
    async fn events(&self, query: &EventQuery) -> Result<Vec<Event>, crate::store::StoreError>;
    /// Deletes events older than `before`; returns how many.
    async fn prune_events(&self, before: OffsetDateTime) -> Result<u64, crate::store::StoreError>;
    /// How many of a tenant's events each UTC day since `since` had, per outcome.
    async fn activity(&self, tenant: &str, since: OffsetDateTime)
    -> Result<Vec<DayActivity>, crate::store::StoreError>;
}

/// One day's count of events with one outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayActivity {
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// The outcome counted.
    pub outcome: Outcome,
    /// How many.
    pub count: u64,
}
