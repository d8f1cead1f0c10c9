//! The store trait: everything scimd keeps, with the tenant as a required argument of every
//! resource call. Implemented for SQLite (and, later, PostgreSQL) in the `scimd-store` crate.

use std::collections::HashMap;

use async_trait::async_trait;
use scim_proto::ResourceKind;
use time::OffsetDateTime;

use crate::events::EventStore;
use crate::query::{ListQuery, Page};
use crate::resources::StoredResource;
use crate::tenant::Tenant;
use crate::token::TokenRecord;

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness constraint refused the write; names the attribute (`userName`, `name`).
    #[error("{attribute} is already in use")]
    Conflict {
        /// The attribute whose value is taken.
        attribute: String,
    },
    /// The row to change does not exist.
    #[error("not found")]
    NotFound,
    /// The row changed since it was read (optimistic concurrency).
    #[error("version mismatch")]
    VersionMismatch,
    /// The query cannot be run by this store (e.g. a filter on an attribute it cannot search).
    #[error("{0}")]
    Unsupported(String),
    /// The database failed. For logs only.
    #[error("{0}")]
    Backend(String),
}

/// Persistent state. Every method is one transaction.
#[async_trait]
pub trait Store: EventStore + Send + Sync + 'static {
    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Reads a cloud-wide setting.
    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Writes a cloud-wide setting.
    async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError>;

    /// Adds a tenant; `Conflict { attribute: "name" }` when the name is taken.
    async fn insert_tenant(&self, tenant: &Tenant) -> Result<(), StoreError>;
    /// Every tenant, oldest first.
    async fn tenants(&self) -> Result<Vec<Tenant>, StoreError>;
    /// A tenant by id.
    async fn tenant(&self, id: &str) -> Result<Option<Tenant>, StoreError>;
    /// A tenant by exact name.
    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>, StoreError>;

    /// Adds a token and, in the same transaction, schedules every other live token of its tenant
    /// to stop at `retire_others_at` (reason: rotated), unless already due earlier.
    async fn insert_token(&self, token: &TokenRecord, retire_others_at: OffsetDateTime) -> Result<(), StoreError>;
    /// A token by its public prefix.
    async fn token_by_prefix(&self, prefix: &str) -> Result<Option<TokenRecord>, StoreError>;
    /// A tenant's tokens, newest first.
    async fn tokens(&self, tenant: &str) -> Result<Vec<TokenRecord>, StoreError>;
    /// Revokes a tenant's token now (reason: revoked) unless already revoked; returns it.
    async fn revoke_token(
        &self,
        tenant: &str,
        token_id: &str,
        at: OffsetDateTime,
    ) -> Result<Option<TokenRecord>, StoreError>;
    /// Records a token's last use.
    async fn touch_token(&self, token_id: &str, at: OffsetDateTime, agent: Option<&str>) -> Result<(), StoreError>;

    /// Adds a resource (with a Group's `members` in its document).
    async fn insert_resource(&self, tenant: &str, res: &StoredResource) -> Result<(), StoreError>;
    /// A resource by id; `relations` adds `members` (Group) or `groups` (User) to the document.
    async fn resource(
        &self,
        tenant: &str,
        kind: ResourceKind,
        id: &str,
        relations: bool,
    ) -> Result<Option<StoredResource>, StoreError>;
    /// Replaces a resource whose stored version is `expected_version` (else `VersionMismatch`);
    /// a Group's membership is replaced by the `members` of the document.
    async fn update_resource(
        &self,
        tenant: &str,
        res: &StoredResource,
        expected_version: u64,
    ) -> Result<(), StoreError>;
    /// Deletes a resource (and its memberships); `expected_version` as for updates. Every Group
    /// that had it as a member changes with it: a new version, modified at `at`.
    async fn delete_resource(
        &self,
        tenant: &str,
        kind: ResourceKind,
        id: &str,
        expected_version: Option<u64>,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// One page of resources matching a query, with the exact total.
    async fn query(
        &self,
        tenant: &str,
        kind: ResourceKind,
        query: &ListQuery,
        relations: bool,
    ) -> Result<Page, StoreError>;
    /// Which of `ids` exist in the tenant, and as what.
    async fn resource_kinds(&self, tenant: &str, ids: &[String]) -> Result<HashMap<String, ResourceKind>, StoreError>;
}
