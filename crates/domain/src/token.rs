//! SCIM tokens and the operator token: issue, rotate, revoke, authenticate.
//!
//! A token is `scimd_<prefix>_<secret>`. The prefix is public (it names the token in lists, logs
//! and error messages); the store keeps only the SHA-256 of the whole token, and the presented
//! token's hash is compared in constant time.

use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime};

use crate::clock::{format_date, format_time};
use crate::tenant::{Tenant, TenantId};
use crate::{DomainError, Result, Service};

/// Every scimd SCIM token starts with this.
pub const TOKEN_PREFIX: &str = "scimd_";
/// The operator token starts with this.
pub const OPERATOR_TOKEN_PREFIX: &str = "scimdop_";
pub(crate) const PREFIX_LEN: usize = 8;
pub(crate) const SECRET_LEN: usize = 40;
const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Longest rotation overlap accepted.
pub const MAX_KEEP_OLD_FOR: Duration = Duration::days(30);
/// Longest token lifetime accepted.
pub const MAX_LIFETIME_DAYS: u32 = 3650;

/// Why a token stopped working before its expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeReason {
    /// Revoked explicitly by an admin or operator.
    Revoked,
    /// Superseded by a newer token of the same tenant.
    Rotated,
}

impl RevokeReason {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Revoked => "revoked",
            RevokeReason::Rotated => "rotated",
        }
    }

    /// Parses the stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "revoked" => Some(RevokeReason::Revoked),
            "rotated" => Some(RevokeReason::Rotated),
            _ => None,
        }
    }
}

/// A stored SCIM token (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    /// The token's id (not secret).
    pub id: String,
    /// The tenant it authenticates.
    pub tenant_id: TenantId,
    /// The public part, e.g. `scimd_ab12cd34`.
    pub prefix: String,
    /// SHA-256 of the whole token, hex.
    #[serde(skip)]
    pub hash: String,
    /// When it was issued.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it stops working.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// When the token stops (or stopped) working before expiry; may lie in the future during a
    /// rotation overlap.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// Why it was revoked.
    pub revoke_reason: Option<RevokeReason>,
    /// When it last authenticated a request (recorded at most every few seconds).
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// The User-Agent of that request.
    pub last_used_agent: Option<String>,
}

impl TokenRecord {
    /// Whether the token authenticates at `now`.
    pub fn state_at(&self, now: OffsetDateTime) -> TokenState {
        match self.revoked_at {
            Some(at) if at <= now => TokenState::Revoked,
            _ if self.expires_at <= now => TokenState::Expired,
            _ => TokenState::Active,
        }
    }
}

/// A token's state at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenState {
    /// Authenticates.
    Active,
    /// Past its expiry.
    Expired,
    /// Revoked or superseded.
    Revoked,
}

/// A freshly issued token: the only time its secret exists outside the caller's hands.
#[derive(Clone)]
pub struct IssuedToken {
    /// What is stored.
    pub record: TokenRecord,
    /// The whole token, to show once.
    pub secret: String,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret, not even in a debug log.
        f.debug_struct("IssuedToken").field("record", &self.record).field("secret", &"<redacted>").finish()
    }
}

/// How long a new token lives and what happens to the old ones.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    /// Lifetime in days; the tenant's setting when neither this nor `expires_at` is given.
    pub lifetime_days: Option<u32>,
    /// An explicit expiry; any future moment.
    pub expires_at: Option<OffsetDateTime>,
    /// Keep the tenant's previous tokens working this long (rotation overlap); default: revoke now.
    pub keep_old_for: Option<Duration>,
}

/// Why a request could not be authenticated. Each says exactly what is wrong and what to do, and
/// nothing about any tenant other than the one the presented token belongs to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(
        "the Authorization header is missing: send 'Authorization: Bearer <SCIM token>'. Create a \
         token in the admin console (Deployment settings > New Token) or with 'scimd token new'"
    )]
    /// No `Authorization` header.
    MissingHeader,
    #[error(
        "the Authorization header is malformed: expected 'Bearer <SCIM token>' (the bearer scheme \
         followed by one space and the token); configure your identity provider to send the token \
         as an HTTP header bearer token"
    )]
    /// Not `Bearer <token>`.
    MalformedHeader,
    #[error(
        "the bearer token is not a valid scimd token: it is unknown, mistyped or incomplete. Copy \
         the tenant's current SCIM token (it starts with 'scimd_') into your identity provider, or \
         issue a new one in Deployment settings > New Token"
    )]
    /// No such token.
    UnknownToken,
    #[error(
        "the SCIM token {prefix}… expired on {} ({at}). Generate a new token (Deployment settings > \
         New Token, or 'scimd token new') and paste it into your identity provider's provisioning \
         settings", format_date(*.at)
    )]
    /// The token expired.
    Expired {
        /// The token's public prefix.
        prefix: String,
        /// When it expired.
        at: OffsetDateTime,
    },
    #[error(
        "the SCIM token {prefix}… was {} on {} ({at}). Paste the tenant's current SCIM token into \
         your identity provider's provisioning settings, or issue a new one in Deployment settings \
         > New Token",
        if *.reason == RevokeReason::Rotated { "replaced by a newer token" } else { "revoked" },
        format_date(*.at)
    )]
    /// The token was revoked or replaced.
    Revoked {
        /// The token's public prefix.
        prefix: String,
        /// When it stopped working.
        at: OffsetDateTime,
        /// Revoked or rotated.
        reason: RevokeReason,
    },
}

/// The caller a SCIM token identified.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The token's tenant.
    pub tenant: Tenant,
    /// The token.
    pub token: TokenRecord,
}

/// SHA-256 of a token, hex-encoded: what the store keeps.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two token hashes in constant time.
pub fn hashes_match(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Extracts the token from an `Authorization` header value.
pub fn bearer_token(header: Option<&str>) -> Result<&str, AuthError> {
    let header = header.ok_or(AuthError::MissingHeader)?;
    let (scheme, token) = header.trim().split_once(' ').ok_or(AuthError::MalformedHeader)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(AuthError::MalformedHeader);
    }
    Ok(token)
}

/// The public prefix of a well-formed SCIM token (`scimd_<8 chars>`), or `None`.
pub fn token_prefix(token: &str) -> Option<&str> {
    public_prefix(token, TOKEN_PREFIX)
}

/// The public part (`<kind><8 chars>`) of a well-formed `<kind><8 chars>_<40 chars>` secret.
pub(crate) fn public_prefix<'a>(token: &'a str, kind: &str) -> Option<&'a str> {
    let rest = token.strip_prefix(kind)?;
    let (prefix, secret) = rest.split_once('_')?;
    let well_formed = prefix.len() == PREFIX_LEN
        && secret.len() == SECRET_LEN
        && prefix.bytes().chain(secret.bytes()).all(|b| b.is_ascii_alphanumeric());
    well_formed.then(|| &token[..kind.len() + PREFIX_LEN])
}

impl Service {
    pub(crate) fn random_string(&self, len: usize) -> String {
        let mut bytes = vec![0u8; len];
        self.random.fill(&mut bytes);
        // 62 does not divide 256: reject the top values so every character is equally likely.
        let mut out = String::with_capacity(len);
        while out.len() < len {
            for &b in &bytes {
                if out.len() == len {
                    break;
                }
                if (b as usize) < ALPHABET.len() * 4 {
                    out.push(ALPHABET[b as usize % ALPHABET.len()] as char);
                }
            }
            self.random.fill(&mut bytes);
        }
        out
    }

    /// Issues a SCIM token for a tenant; the tenant's other tokens stop working now, or after
    /// `keep_old_for` when a rotation overlap is asked for.
    pub async fn issue_token(&self, tenant_id: &str, req: TokenRequest) -> Result<IssuedToken> {
        let tenant = self.tenant(tenant_id).await?;
        let now = self.clock.now();
        let expires_at = match (req.lifetime_days, req.expires_at) {
            (Some(_), Some(_)) => {
                return Err(DomainError::Invalid("give either lifetime_days or expires_at, not both".into()));
            }
            (_, Some(at)) if at <= now => {
                return Err(DomainError::Invalid(format!(
                    "expires_at must lie in the future (now is {})",
                    format_time(now)
                )));
            }
            (_, Some(at)) => at,
            (days, None) => {
                let days = days.unwrap_or(tenant.token_lifetime_days);
                if days == 0 || days > MAX_LIFETIME_DAYS {
                    return Err(DomainError::Invalid(format!(
                        "lifetime_days must be between 1 and {MAX_LIFETIME_DAYS}"
                    )));
                }
                now + Duration::days(i64::from(days))
            }
        };
        let keep_old_for = req.keep_old_for.unwrap_or(Duration::ZERO);
        if keep_old_for.is_negative() || keep_old_for > MAX_KEEP_OLD_FOR {
            return Err(DomainError::Invalid(format!(
                "keep_old_for must be between 0 and {} days",
                MAX_KEEP_OLD_FOR.whole_days()
            )));
        }
        // The public prefix is random too; on the rare collision with an existing one, draw again.
        for _ in 0..5 {
            let prefix = format!("{TOKEN_PREFIX}{}", self.random_string(PREFIX_LEN).to_lowercase());
            let secret = format!("{prefix}_{}", self.random_string(SECRET_LEN));
            let record = TokenRecord {
                id: self.new_id(),
                tenant_id: tenant.id.clone(),
                prefix,
                hash: hash_token(&secret),
                created_at: now,
                expires_at,
                revoked_at: None,
                revoke_reason: None,
                last_used_at: None,
                last_used_agent: None,
            };
            let inserted = self.store.insert_token(&record, now + keep_old_for).await;
            // The tenant's other tokens now stop at a new time.
            self.tokens.forget_tenant(&tenant.id);
            match inserted {
                Ok(()) => return Ok(IssuedToken { record, secret }),
                Err(crate::store::StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(DomainError::Conflict("could not draw an unused token prefix; try again".into()))
    }

    /// The tenant's tokens, newest first (no secrets).
    pub async fn tokens(&self, tenant_id: &str) -> Result<Vec<TokenRecord>> {
        let tenant = self.tenant(tenant_id).await?;
        Ok(self.store.tokens(&tenant.id).await?)
    }

    /// Revokes one token of a tenant at once.
    pub async fn revoke_token(&self, tenant_id: &str, token_id: &str) -> Result<TokenRecord> {
        let tenant = self.tenant(tenant_id).await?;
        let now = self.clock.now();
        let revoked = self.store.revoke_token(&tenant.id, token_id, now).await;
        self.tokens.forget_tenant(&tenant.id);
        revoked?.ok_or_else(|| DomainError::NotFound(format!("tenant {} has no token {token_id}", tenant.id)))
    }

    /// Authenticates a SCIM request from its `Authorization` header and records the token's use. A
    /// token read less than [`crate::token_cache::TOKEN_CACHE_TTL`] ago is not read again.
    pub async fn authenticate(&self, header: Option<&str>, user_agent: Option<&str>) -> Result<Authenticated> {
        let token = bearer_token(header)?;
        let prefix = token_prefix(token).ok_or(AuthError::UnknownToken)?;
        let (record, tenant) = match self.tokens.get(prefix) {
            Some(cached) => cached,
            None => {
                let read_from = self.tokens.before_read();
                let record = self.store.token_by_prefix(prefix).await?.ok_or(AuthError::UnknownToken)?;
                let tenant = self.tenant(&record.tenant_id).await?;
                self.tokens.put(record.clone(), tenant.clone(), read_from);
                (record, tenant)
            }
        };
        if !hashes_match(&record.hash, &hash_token(token)) {
            return Err(AuthError::UnknownToken.into());
        }
        let now = self.clock.now();
        match record.state_at(now) {
            TokenState::Active => {}
            TokenState::Expired => {
                return Err(AuthError::Expired { prefix: record.prefix, at: record.expires_at }.into());
            }
            TokenState::Revoked => {
                return Err(AuthError::Revoked {
                    prefix: record.prefix,
                    at: record.revoked_at.unwrap_or(now),
                    reason: record.revoke_reason.unwrap_or(RevokeReason::Revoked),
                }
                .into());
            }
        }
        let agent = user_agent.map(|a| a.chars().take(200).collect::<String>());
        // Record use (with the agent of that moment) at most every few seconds per token: a write
        // per request would cost more than the request itself.
        let stale =
            record.last_used_at.is_none_or(|at| now - at > LAST_USED_RESOLUTION) || record.last_used_agent != agent;
        if stale {
            self.store.touch_token(&record.id, now, agent.as_deref()).await?;
            self.tokens.touched(&record.prefix, now, agent);
        }
        Ok(Authenticated { tenant, token: record })
    }

    /// The token an `Authorization` header carries, whatever its state (expired, revoked): for
    /// the provisioning log, so that a refused request still names its tenant. Never use it to
    /// authorize anything; [`Service::authenticate`] does that. A store failure reads as `None`
    /// (the event then has no tenant), since the log must not fail the request.
    pub async fn identify_token(&self, authorization_header: Option<&str>) -> Option<TokenRecord> {
        let token = bearer_token(authorization_header).ok()?;
        let prefix = token_prefix(token)?;
        let record = match self.tokens.get(prefix) {
            Some((record, _)) => record,
            None => self.store.token_by_prefix(prefix).await.ok().flatten()?,
        };
        hashes_match(&record.hash, &hash_token(token)).then_some(record)
    }

    /// Sets the operator token to a given secret (from `SCIMD_OPERATOR_TOKEN`), or creates one;
    /// returns the secret when it was created now, so that it can be shown once.
    pub async fn ensure_operator_token(&self, given: Option<&str>) -> Result<Option<String>> {
        if let Some(secret) = given {
            if secret.len() < 16 {
                return Err(DomainError::Invalid("SCIMD_OPERATOR_TOKEN must be at least 16 characters".into()));
            }
            let hash = hash_token(secret);
            // Unchanged on most starts: no write then (a start is not a change of the database).
            if self.store.setting(OPERATOR_TOKEN_SETTING).await?.as_deref() != Some(hash.as_str()) {
                self.store.set_setting(OPERATOR_TOKEN_SETTING, &hash).await?;
            }
            return Ok(None);
        }
        if self.store.setting(OPERATOR_TOKEN_SETTING).await?.is_some() {
            return Ok(None);
        }
        let secret = format!("{OPERATOR_TOKEN_PREFIX}{}", self.random_string(SECRET_LEN));
        // Several nodes may start at once on one database: only the one whose token is kept
        // shows it.
        let kept = self.store.set_setting_once(OPERATOR_TOKEN_SETTING, &hash_token(&secret)).await?;
        Ok(kept.then_some(secret))
    }

    /// Whether an `Authorization` header carries the operator token.
    pub async fn is_operator(&self, header: Option<&str>) -> Result<bool> {
        let Ok(token) = bearer_token(header) else { return Ok(false) };
        let Some(stored) = self.store.setting(OPERATOR_TOKEN_SETTING).await? else {
            return Ok(false);
        };
        Ok(hashes_match(&stored, &hash_token(token)))
    }
}

/// How often a token's `last used` is written at most.
pub const LAST_USED_RESOLUTION: Duration = Duration::seconds(5);
const OPERATOR_TOKEN_SETTING: &str = "operator_token_sha256";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_forms() {
        assert_eq!(bearer_token(None), Err(AuthError::MissingHeader));
        assert_eq!(bearer_token(Some("non-token")), Err(AuthError::MalformedHeader));
        assert_eq!(bearer_token(Some("Basic abc")), Err(AuthError::MalformedHeader));
        assert_eq!(bearer_token(Some("Bearer ")), Err(AuthError::MalformedHeader));
        assert_eq!(bearer_token(Some("bearer abc")), Ok("abc"));
    }

    #[test]
    fn prefix_only_for_well_formed_tokens() {
        let t = format!("scimd_abcd1234_{}", "x".repeat(SECRET_LEN));
        assert_eq!(token_prefix(&t), Some("scimd_abcd1234"));
        assert_eq!(token_prefix("scimd_abcd1234_short"), None);
        assert_eq!(token_prefix("other"), None);
    }
}
