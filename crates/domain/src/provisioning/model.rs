//! The provisioning model: regions, profiles, mappings, tenant settings and a user's state.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::events::Cause;

/// The health of a storage region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Takes new users.
    Healthy,
    /// Working with problems; takes no new users (only `healthy` does).
    Degraded,
    /// Not working.
    Down,
}

impl Health {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Down => "down",
        }
    }

    /// Parses a stable name.
    pub fn parse(text: &str) -> Option<Health> {
        match text {
            "healthy" => Some(Health::Healthy),
            "degraded" => Some(Health::Degraded),
            "down" => Some(Health::Down),
            _ => None,
        }
    }
}

/// A storage region: where users' backups live. Cloud-wide, managed by the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Region {
    /// The region's id.
    pub id: String,
    /// A unique name, e.g. `eu-west`.
    pub name: String,
    /// Current health.
    pub health: Health,
    /// An HTTP URL polled for health (2xx = healthy), if any.
    pub probe_url: Option<String>,
    /// Seconds between probes.
    pub probe_interval_seconds: Option<u32>,
    /// When the probe last ran.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_probe_at: Option<OffsetDateTime>,
    /// What the probe last saw (`200`, `connection refused`, ...).
    pub last_probe_result: Option<String>,
    /// When the health last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub health_since: OffsetDateTime,
}

/// A tenant's backup profile; active users take seats, up to `max_users` (0 = unlimited).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    /// The profile's id.
    pub id: String,
    /// The tenant it belongs to.
    pub tenant_id: String,
    /// A name unique in the tenant.
    pub name: String,
    /// Seats; 0 means unlimited.
    pub max_users: u32,
    /// Seats taken (active users in the profile).
    pub active_users: u32,
}

impl Profile {
    /// Whether one more user fits.
    pub fn has_seat(&self) -> bool {
        self.max_users == 0 || self.active_users < self.max_users
    }
}

/// A tenant's mapping: users matching `filter` land in `profile_id` and `region_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mapping {
    /// The mapping's id.
    pub id: String,
    /// The tenant it belongs to.
    pub tenant_id: String,
    /// A name for people.
    pub name: String,
    /// Lower runs first.
    pub priority: i64,
    /// A SCIM filter over the incoming user; `None` matches every user (a catch-all).
    pub filter: Option<String>,
    /// Where matching users go.
    pub profile_id: String,
    /// Where their backups are stored.
    pub region_id: String,
    /// Disabled mappings are skipped.
    pub enabled: bool,
}

/// What happens to a user whose provisioning a rule refuses: refused (the IdP sees an error) or
/// held as pending until the cause clears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HoldSettings {
    /// Hold users no mapping matches.
    pub no_mapping_matched: bool,
    /// Hold users whose profile is full.
    pub profile_full: bool,
    /// Hold users whose region is not healthy.
    pub region_unhealthy: bool,
}

impl HoldSettings {
    /// Whether users refused for `cause` are held instead.
    pub fn holds(&self, cause: Cause) -> bool {
        match cause {
            Cause::NoMappingMatched => self.no_mapping_matched,
            Cause::ProfileFull => self.profile_full,
            Cause::RegionUnhealthy => self.region_unhealthy,
            _ => false,
        }
    }
}

/// What DELETE from the IdP does to a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeletePolicy {
    /// Keep the user's data (preserved, hidden from SCIM); the email stays claimed.
    #[default]
    Preserve,
    /// Remove the user; the email claim is released.
    Purge,
}

/// A tenant's provisioning settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantSettings {
    /// Causes that hold users as pending instead of refusing them.
    pub hold: HoldSettings,
    /// What DELETE does.
    pub delete_policy: DeletePolicy,
    /// Whether an update that changes mapped attributes moves the user to the mapping's profile
    /// and region (default: no; the user stays where it first landed).
    pub remap_on_update: bool,
}

/// An admin's search of a tenant's users.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserSearch {
    /// Part of the userName, displayName or externalId, or the whole id (case-insensitive).
    pub text: Option<String>,
    /// Only users in this state.
    pub state: Option<UserState>,
    /// Only users of this profile.
    pub profile_id: Option<String>,
    /// Only users in this region.
    pub region_id: Option<String>,
    /// How many matching users to skip.
    pub offset: u32,
    /// Page size.
    pub limit: u32,
}

/// Where a user is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserState {
    /// Provisioned: takes a seat.
    Active,
    /// Accepted, held until its cause clears; takes no seat.
    Pending,
    /// Deactivated: data kept, seat released, readable over SCIM with `active: false`.
    Preserved,
    /// Deleted by the IdP under the preserve policy: data kept, hidden from SCIM.
    Deleted,
}

impl UserState {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            UserState::Active => "active",
            UserState::Pending => "pending",
            UserState::Preserved => "preserved",
            UserState::Deleted => "deleted",
        }
    }

    /// Parses a stable name.
    pub fn parse(text: &str) -> Option<UserState> {
        match text {
            "active" => Some(UserState::Active),
            "pending" => Some(UserState::Pending),
            "preserved" => Some(UserState::Preserved),
            "deleted" => Some(UserState::Deleted),
            _ => None,
        }
    }
}

/// Who manages a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Manager {
    /// The identity provider (SCIM).
    Idp,
    /// An administrator, by hand; becomes `Idp` when the IdP first writes to the user.
    Admin,
}

/// Who put a user in its current state, where it matters (preservation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// The identity provider.
    Idp,
    /// An administrator: the IdP cannot undo it.
    Admin,
}

/// A user's provisioning state, kept beside its SCIM document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placement {
    /// Where the user is in its life.
    pub state: UserState,
    /// Since when.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// Its profile, once a mapping placed it.
    pub profile_id: Option<String>,
    /// Its storage region, once a mapping placed it.
    pub region_id: Option<String>,
    /// Why it is pending.
    pub pending_cause: Option<Cause>,
    /// Who preserved it.
    pub preserved_by: Option<Actor>,
    /// Who manages it.
    pub managed_by: Manager,
    /// The normalised email it holds the cloud-wide claim of.
    pub claimed_email: Option<String>,
}

/// Normalises an email for the cloud-wide claim: trimmed, lower case.
pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}
