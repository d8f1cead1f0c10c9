//! The store trait: everything scimd keeps, with the tenant as a required argument of every
//! resource call. Implemented for SQLite (and, later, PostgreSQL) in the `scimd-store` crate.

use std::collections::HashMap;

use async_trait::async_trait;
use scim_proto::ResourceKind;
use time::OffsetDateTime;

use crate::access::AccessStore;
use crate::events::EventStore;
use crate::provisioning::UserSearch;
use crate::provisioning::claims::EmailClaim;
use crate::provisioning::{Health, Mapping, Profile, Region, TenantSettings};
use crate::query::{ListQuery, Page};
use crate::resources::StoredResource;
use crate::tenant::Tenant;
use crate::token::TokenRecord;
use crate::webhooks::WebhookStore;

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
    /// Concurrent writes to the same rows kept aborting this one for longer than the store
    /// retries it: nothing was written, and the client should try again in a moment.
    #[error("the database is busy with conflicting writes ({0})")]
    Busy(String),
    /// The database failed. For logs only.
    #[error("{0}")]
    Backend(String),
}

/// One condition or side effect of a provisioning write, run in order inside its transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Append an event to the provisioning log with the write (work nobody's request carries,
    /// such as an activation, is logged atomically with it).
    RecordEvent(Box<crate::events::Event>),
    /// Append a row to the tenant's outbox (a lifecycle event of the write), unless its
    /// idempotency key is already there: the event exists exactly when the change does.
    Outbox(Box<crate::webhooks::OutboxEntry>),
    /// Take a seat of the profile, or refuse with `ProfileFull`.
    TakeSeat {
        /// The profile.
        profile_id: String,
    },
    /// Give a seat of the profile back.
    ReleaseSeat {
        /// The profile.
        profile_id: String,
    },
    /// Claim a normalised email cloud-wide for a user, or refuse with `EmailTaken`; a claim the
    /// user already holds is kept.
    ClaimEmail {
        /// The normalised email.
        email: String,
        /// The claiming user.
        user_id: String,
    },
    /// Release a user's claim of an email.
    ReleaseEmail {
        /// The normalised email.
        email: String,
        /// The user holding it.
        user_id: String,
    },
    /// Remove a user from every group (each group changes at `at`): a user deleted under the
    /// preserve policy is kept but belongs to no group any more.
    LeaveGroups {
        /// The user.
        user_id: String,
        /// When.
        at: OffsetDateTime,
    },
    /// Refuse with `RegionUnhealthy` unless the region is healthy.
    RequireHealthy {
        /// The region.
        region_id: String,
    },
}

/// Who holds an email another user wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailHolder {
    /// An active (or pending) user of the same tenant.
    ThisTenant,
    /// A preserved or deleted-but-preserved user of the same tenant.
    PreservedInThisTenant,
    /// A user of another tenant (nothing more may be said).
    OtherTenant,
}

/// Why a provisioning step refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepRefusal {
    /// The profile has no free seat.
    ProfileFull {
        /// Its name.
        name: String,
        /// Its limit.
        max_users: u32,
    },
    /// The email is claimed by another user.
    EmailTaken {
        /// The email.
        email: String,
        /// Who holds it.
        holder: EmailHolder,
    },
    /// The region is not healthy.
    RegionUnhealthy {
        /// Its name.
        name: String,
        /// Its health.
        health: Health,
    },
}

/// The resource write a provisioning transaction ends with.
#[derive(Debug, Clone)]
pub enum ResourceWrite {
    /// Add a resource.
    Insert(StoredResource),
    /// Replace a resource whose stored version is `expected_version`.
    Update {
        /// The new state.
        res: StoredResource,
        /// The version it replaces.
        expected_version: u64,
    },
    /// Remove a resource (and its memberships).
    Delete {
        /// User or Group.
        kind: ResourceKind,
        /// Its id.
        id: String,
        /// The version it must have, if any.
        expected_version: Option<u64>,
        /// When (groups that lose it as a member change at this time).
        at: OffsetDateTime,
    },
}

/// Why a provisioning write did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProvisionError {
    /// A step refused; nothing was written.
    #[error("refused: {0:?}")]
    Refused(StepRefusal),
    /// The write itself failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

tokio::task_local! {
    /// Set while a bulk request runs (see [`deferring_flush`]).
    static DEFERRED_FLUSH: ();
}

/// Runs `work` with its writes answered as soon as they commit, not once they are durable: a
/// bulk request's operations run one after another, and waiting for the disk after each would
/// bound a request to one operation per flush. Whoever runs this must call [`Store::sync`]
/// before telling a client that any of these writes succeeded.
pub async fn deferring_flush<F: Future>(work: F) -> F::Output {
    DEFERRED_FLUSH.scope((), work).await
}

/// Whether the current task's writes may answer at commit (inside [`deferring_flush`]).
pub fn flush_deferred() -> bool {
    DEFERRED_FLUSH.try_with(|_| ()).is_ok()
}

/// Persistent state. Every method is one transaction.
#[async_trait]
pub trait Store: EventStore + WebhookStore + AccessStore + Send + Sync + 'static {
    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Returns once every write committed before the call is durable: after writes made inside
    /// [`deferring_flush`]. A store whose commits are durable when they return has nothing to do.
    async fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Reads a cloud-wide setting.
    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Writes a cloud-wide setting.
    async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError>;
    /// Writes a cloud-wide setting unless it is already set; `false` when it was (another node
    /// starting at the same moment got there first).
    async fn set_setting_once(&self, key: &str, value: &str) -> Result<bool, StoreError>;

    /// Takes or renews the lease of background job `job` for `holder` for `term`, unless another
    /// holder's lease is still running; `true` while `holder` holds it. Time is the database's,
    /// so that nodes need not agree on the clock.
    async fn hold_lease(&self, job: &str, holder: &str, term: std::time::Duration) -> Result<bool, StoreError>;

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
    /// Adds `members` (Group) or `groups` (User) to a resource's document, as `resource` does.
    async fn load_relations(&self, tenant: &str, res: &mut StoredResource) -> Result<(), StoreError>;
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

    /// Runs `steps` in order and then `write`, in one transaction: all of it or nothing.
    async fn provision(&self, tenant: &str, steps: &[Step], write: &ResourceWrite) -> Result<(), ProvisionError>;
    /// The user of a tenant with this userName (compared case-insensitively) or, failing that,
    /// holding this email claim, in any state (also deleted-but-preserved).
    async fn find_user(
        &self,
        tenant: &str,
        user_name: &str,
        email: Option<&str>,
    ) -> Result<Option<StoredResource>, StoreError>;
    /// A user by id in any state, also one SCIM no longer sees (deleted under the preserve policy).
    async fn any_user(&self, tenant: &str, id: &str) -> Result<Option<StoredResource>, StoreError>;
    /// A page of a tenant's pending users, oldest first, skipping the first `offset`.
    async fn pending_users(&self, tenant: &str, offset: u32, limit: u32) -> Result<Vec<StoredResource>, StoreError>;
    /// Tenants with at least one pending user.
    async fn tenants_with_pending(&self) -> Result<Vec<String>, StoreError>;
    /// A page of a tenant's users matching a search, in every state, newest first; with the
    /// total that match.
    async fn search_users(&self, tenant: &str, search: &UserSearch) -> Result<(u64, Vec<StoredResource>), StoreError>;
    /// The cloud-wide claim of a (normalised) email.
    async fn email_claim(&self, email: &str) -> Result<Option<EmailClaim>, StoreError>;
    /// Deletes a claim if it still belongs to this tenant's user; whether it did.
    async fn release_email_claim(&self, claim: &EmailClaim) -> Result<bool, StoreError>;

    /// Adds a region; `Conflict { attribute: "name" }` when the name is taken.
    async fn insert_region(&self, region: &Region) -> Result<(), StoreError>;
    /// Replaces a region's fields.
    async fn update_region(&self, region: &Region) -> Result<(), StoreError>;
    /// Every region, by name.
    async fn regions(&self) -> Result<Vec<Region>, StoreError>;
    /// A region by id.
    async fn region(&self, id: &str) -> Result<Option<Region>, StoreError>;

    /// The regions a tenant is restricted to; empty: every region.
    async fn tenant_regions(&self, tenant: &str) -> Result<Vec<String>, StoreError>;
    /// Restricts a tenant to these regions (empty: lifts the restriction).
    async fn set_tenant_regions(&self, tenant: &str, region_ids: &[String]) -> Result<(), StoreError>;

    /// A tenant's settings (defaults when never set).
    async fn tenant_settings(&self, tenant: &str) -> Result<TenantSettings, StoreError>;
    /// Replaces a tenant's settings.
    async fn set_tenant_settings(&self, tenant: &str, settings: &TenantSettings) -> Result<(), StoreError>;

    /// Adds a profile; `Conflict { attribute: "name" }` when the name is taken in the tenant.
    async fn insert_profile(&self, profile: &Profile) -> Result<(), StoreError>;
    /// Renames a profile or changes its limit (seats taken are the store's, never overwritten).
    async fn update_profile(&self, profile: &Profile) -> Result<(), StoreError>;
    /// Deletes a profile no mapping and no user (in any state) refers to; else
    /// `Conflict { attribute: "mappings" | "users" }`.
    async fn delete_profile(&self, tenant: &str, id: &str) -> Result<(), StoreError>;
    /// A tenant's profiles, by name.
    async fn profiles(&self, tenant: &str) -> Result<Vec<Profile>, StoreError>;
    /// A profile by id.
    async fn profile(&self, tenant: &str, id: &str) -> Result<Option<Profile>, StoreError>;

    /// Adds a mapping.
    async fn insert_mapping(&self, mapping: &Mapping) -> Result<(), StoreError>;
    /// Replaces a mapping.
    async fn update_mapping(&self, mapping: &Mapping) -> Result<(), StoreError>;
    /// Deletes a mapping.
    async fn delete_mapping(&self, tenant: &str, id: &str) -> Result<(), StoreError>;
    /// A tenant's mappings in priority order.
    async fn mappings(&self, tenant: &str) -> Result<Vec<Mapping>, StoreError>;
}
