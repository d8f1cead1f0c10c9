//! Who may do what. People sign in to the console with an account: an *operator* (the whole
//! cloud) or a *tenant admin* (one tenant). Automation uses API keys scoped like the account that
//! made them, or the operator token. Every change an admin makes lands in the audit log.
//!
//! Every admin entry point turns its caller into a [`Principal`] and asks it for the tenant it
//! works on ([`Service::tenant_for`]), so the console and the admin API share one permission check.

pub mod accounts;
pub mod api_keys;
pub mod audit;

use async_trait::async_trait;
use serde::Serialize;
use time::OffsetDateTime;

use crate::store::StoreError;
use crate::tenant::{Tenant, TenantId};
use crate::{DomainError, Result, Service};
use accounts::{Account, Session};
use api_keys::ApiKey;
use audit::{AuditEntry, AuditQuery};

/// What a principal may reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "role", content = "tenant_id", rename_all = "snake_case")]
pub enum Role {
    /// Every tenant, the regions and the email claims.
    Operator,
    /// One tenant's pages and settings.
    TenantAdmin(TenantId),
}

impl Role {
    /// The stored name of the role.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::TenantAdmin(_) => "tenant_admin",
        }
    }

    /// The role from its stored name and tenant column.
    pub fn from_parts(name: &str, tenant_id: Option<String>) -> Option<Role> {
        match (name, tenant_id) {
            ("operator", _) => Some(Role::Operator),
            ("tenant_admin", Some(t)) => Some(Role::TenantAdmin(t)),
            _ => None,
        }
    }

    /// The tenant of a tenant admin.
    pub fn tenant_id(&self) -> Option<&str> {
        match self {
            Role::Operator => None,
            Role::TenantAdmin(t) => Some(t),
        }
    }
}

/// Who is making an admin request, and with which powers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// How the audit log names them: an account's email, `api key <prefix> (<email>)`, or
    /// `operator token`.
    pub actor: String,
    /// What they may reach.
    pub role: Role,
    /// The account behind them, when there is one.
    pub account_id: Option<String>,
}

impl Principal {
    /// The holder of the operator token.
    pub fn operator_token() -> Principal {
        Principal { actor: "operator token".into(), role: Role::Operator, account_id: None }
    }

    /// A signed-in account.
    pub fn account(account: &Account) -> Principal {
        Principal { actor: account.email.clone(), role: account.role.clone(), account_id: Some(account.id.clone()) }
    }

    /// Whether this principal is an operator.
    pub fn is_operator(&self) -> bool {
        self.role == Role::Operator
    }

    /// Refuses anyone but an operator.
    pub fn require_operator(&self) -> Result<()> {
        if self.is_operator() { Ok(()) } else { Err(forbidden()) }
    }
}

/// The one refusal for reaching beyond one's role. It never says whether the thing exists.
pub fn forbidden() -> DomainError {
    DomainError::Forbidden("this needs an operator, or an admin of the tenant named in the request".into())
}

impl Service {
    /// The tenant `id` if `principal` may work on it. A tenant admin asking for any other tenant
    /// is refused the same way whether that tenant exists or not, so nothing leaks.
    pub async fn tenant_for(&self, principal: &Principal, id: &str) -> Result<Tenant> {
        match &principal.role {
            Role::Operator => self.tenant(id).await,
            Role::TenantAdmin(own) if own == id => self.tenant(id).await,
            Role::TenantAdmin(_) => Err(forbidden()),
        }
    }

    /// The tenants `principal` may see: all for an operator, its own for a tenant admin.
    pub async fn tenants_for(&self, principal: &Principal) -> Result<Vec<Tenant>> {
        match &principal.role {
            Role::Operator => self.tenants().await,
            Role::TenantAdmin(own) => Ok(vec![self.tenant(own).await?]),
        }
    }
}

/// Persistent state of accounts, sessions, API keys and the audit log.
#[async_trait]
pub trait AccessStore: Send + Sync + 'static {
    /// Adds an account; `Conflict{email}` when the email is in use.
    async fn insert_account(&self, account: &Account) -> Result<(), StoreError>;
    /// The account with this (lower-case) email.
    async fn account_by_email(&self, email: &str) -> Result<Option<Account>, StoreError>;
    /// The account with this id.
    async fn account(&self, id: &str) -> Result<Option<Account>, StoreError>;
    /// Every account, by email.
    async fn accounts(&self) -> Result<Vec<Account>, StoreError>;
    /// Stores the first operator if the setting `setup_key` holds `code_hash` and no operator
    /// exists yet, and clears the setting, in one transaction; whether it did.
    async fn create_first_operator(
        &self,
        account: &Account,
        setup_key: &str,
        code_hash: &str,
    ) -> Result<bool, StoreError>;
    /// Whether any operator account exists.
    async fn has_operator_account(&self) -> Result<bool, StoreError>;
    /// Records a successful sign-in.
    async fn touch_account(&self, id: &str, at: OffsetDateTime) -> Result<(), StoreError>;
    /// Deletes an account with its sessions and API keys.
    async fn delete_account(&self, id: &str) -> Result<(), StoreError>;

    /// Adds a session.
    async fn insert_session(&self, session: &Session) -> Result<(), StoreError>;
    /// The session with this hash, with its account.
    async fn session(&self, hash: &str) -> Result<Option<(Session, Account)>, StoreError>;
    /// Ends a session.
    async fn delete_session(&self, hash: &str) -> Result<(), StoreError>;
    /// Deletes sessions that expired before `before`.
    async fn prune_sessions(&self, before: OffsetDateTime) -> Result<u64, StoreError>;

    /// Adds an API key.
    async fn insert_api_key(&self, key: &ApiKey) -> Result<(), StoreError>;
    /// The API key with this public prefix, with the account that made it.
    async fn api_key_by_prefix(&self, prefix: &str) -> Result<Option<(ApiKey, Account)>, StoreError>;
    /// The API keys an account made, newest first.
    async fn api_keys(&self, account_id: &str) -> Result<Vec<ApiKey>, StoreError>;
    /// Revokes an account's API key; `NotFound` when it has none with this id.
    async fn revoke_api_key(&self, account_id: &str, id: &str, at: OffsetDateTime) -> Result<ApiKey, StoreError>;
    /// Records that an API key was used.
    async fn touch_api_key(&self, id: &str, at: OffsetDateTime) -> Result<(), StoreError>;

    /// Appends to the audit log.
    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;
    /// Reads the audit log, newest first.
    async fn audit_log(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError>;
}
