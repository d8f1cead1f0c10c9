//! API keys: bearer secrets for automation against the admin API, made by an account and scoped
//! like it (an operator's key reaches every tenant, a tenant admin's only theirs). Shown once,
//! stored as SHA-256, compared in constant time, revocable.

use serde::Serialize;
use time::OffsetDateTime;

use super::Principal;
use crate::store::StoreError;
use crate::token::{PREFIX_LEN, SECRET_LEN, bearer_token, hash_token, hashes_match, public_prefix};
use crate::{DomainError, Result, Service};

/// Every API key starts with this.
pub const API_KEY_PREFIX: &str = "scimdk_";

/// A stored API key (never its secret).
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    /// The key's id.
    pub id: String,
    /// The public part, e.g. `scimdk_ab12cd34`.
    pub prefix: String,
    /// SHA-256 of the whole key; never serialized.
    #[serde(skip)]
    pub hash: String,
    /// What the key is for, in its maker's words.
    pub name: String,
    /// The account that made it; the key has that account's role.
    pub account_id: String,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last authenticated a request.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// When it was revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("prefix", &self.prefix)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A key just made: its secret is shown once.
pub struct IssuedApiKey {
    /// What is stored.
    pub key: ApiKey,
    /// The whole key.
    pub secret: String,
}

fn account_of(principal: &Principal) -> Result<&str> {
    principal.account_id.as_deref().ok_or_else(|| {
        DomainError::Invalid("API keys belong to an account; sign in to the console or use an account's key".into())
    })
}

impl Service {
    /// Makes an API key for the principal's account.
    pub async fn create_api_key(&self, principal: &Principal, name: &str) -> Result<IssuedApiKey> {
        let account_id = account_of(principal)?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(DomainError::Invalid("an API key needs a name of 1 to 100 characters".into()));
        }
        let prefix = format!("{API_KEY_PREFIX}{}", self.random_string(PREFIX_LEN).to_lowercase());
        let secret = format!("{prefix}_{}", self.random_string(SECRET_LEN));
        let key = ApiKey {
            id: self.new_id(),
            prefix,
            hash: hash_token(&secret),
            name: name.to_owned(),
            account_id: account_id.to_owned(),
            created_at: self.clock.now(),
            last_used_at: None,
            revoked_at: None,
        };
        self.store.insert_api_key(&key).await?;
        Ok(IssuedApiKey { key, secret })
    }

    /// The principal's API keys.
    pub async fn api_keys(&self, principal: &Principal) -> Result<Vec<ApiKey>> {
        Ok(self.store.api_keys(account_of(principal)?).await?)
    }

    /// Revokes one of the principal's API keys.
    pub async fn revoke_api_key(&self, principal: &Principal, id: &str) -> Result<ApiKey> {
        let account = account_of(principal)?;
        self.store.revoke_api_key(account, id, self.clock.now()).await.map_err(|e| match e {
            StoreError::NotFound => DomainError::NotFound(format!("you have no API key with the id {id}")),
            other => other.into(),
        })
    }

    /// The principal an admin API `Authorization` header carries: the operator token or a live
    /// API key. `Forbidden` for a revoked key; `Auth` for anything unknown.
    pub async fn admin_principal(&self, header: Option<&str>) -> Result<Principal> {
        if self.is_operator(header).await? {
            return Ok(Principal::operator_token());
        }
        let token = bearer_token(header)?;
        let unknown = || DomainError::Auth(crate::token::AuthError::UnknownToken);
        let prefix = public_prefix(token, API_KEY_PREFIX).ok_or_else(unknown)?;
        let (key, account) = self.store.api_key_by_prefix(prefix).await?.ok_or_else(unknown)?;
        if !hashes_match(&key.hash, &hash_token(token)) {
            return Err(unknown());
        }
        if key.revoked_at.is_some() {
            return Err(unknown());
        }
        let now = self.clock.now();
        if key.last_used_at.is_none_or(|at| now - at >= crate::token::LAST_USED_RESOLUTION) {
            self.store.touch_api_key(&key.id, now).await?;
        }
        Ok(Principal {
            actor: format!("api key {} ({})", key.prefix, account.email),
            role: account.role,
            account_id: Some(account.id),
        })
    }
}
