//! The provisioning doctor: turns a tenant's provisioning log and its current state (tokens,
//! profiles, mappings, regions, pending users) into findings, each with a severity, a stable
//! code, evidence and the fix, for the whole tenant or for one user.
//!
//! Gathering ([`facts`]) is the only part that reads the store; the checks ([`checks`]) are
//! plain functions over the gathered [`Facts`], so every rule is unit-tested without I/O.
//!
//! Severity rule: a cause that refused or held users within the look-back window, and has not
//! been settled since (a later accepted request for the same user, or the activation of a held
//! one), is an `error`; a predicted one (a token expiring, a profile at 90 %, an unhealthy region
//! nobody was refused for yet) a `warning`; a settled one, and plain state, `info`.

pub mod checks;
pub mod facts;
pub mod fix;
pub mod text;

#[cfg(test)]
mod tests;

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use serde_json::Value;
use time::OffsetDateTime;

pub use facts::Facts;

use crate::events::Idp;
use crate::tenant::Tenant;
use crate::{DomainError, Result, Service};

/// The look-back window when none is asked for, in days.
pub const DEFAULT_WINDOW_DAYS: u32 = 7;
/// The longest look-back window accepted, in days (events older than the log's retention are
/// gone anyway).
pub const MAX_WINDOW_DAYS: u32 = 365;
/// Most events of the window the doctor reads; a report says when it read that many.
pub const MAX_EVENTS: u32 = 10_000;

/// The stable finding codes. Like cause codes they are a contract: never renamed or reused.
pub mod codes {
    /// A named user: no request ever mentioned them and no such user exists (cause 1).
    pub const NEVER_HEARD_OF: &str = "never_heard_of";
    /// A named user exists: its state, profile and region.
    pub const USER_FOUND: &str = "user_found";
    /// A named user does not exist; the last request about them was refused.
    pub const USER_REFUSED: &str = "user_refused";
    /// A named user does not exist; requests looked them up, none tried to create them.
    pub const USER_NOT_CREATED: &str = "user_not_created";
    /// A named user does not exist any more: the last change about them was accepted (a purge).
    pub const USER_REMOVED: &str = "user_removed";
    /// The IdP used to call regularly and has gone quiet (cause 1, tenant-wide).
    pub const STALLED: &str = "stalled";
    /// No SCIM request has reached the tenant yet.
    pub const NO_REQUESTS_YET: &str = "no_requests_yet";
    /// Requests with the tenant's token aimed at a path that is no SCIM endpoint (cause 2).
    pub const WRONG_URL: &str = "wrong_url";
    /// An expired token is still presented (cause 3).
    pub const TOKEN_EXPIRED_IN_USE: &str = "token_expired_in_use";
    /// A revoked or replaced token is still presented (cause 3).
    pub const TOKEN_REVOKED_IN_USE: &str = "token_revoked_in_use";
    /// The tenant's last valid token expires within 30 days (cause 3, predicted).
    pub const TOKEN_EXPIRING: &str = "token_expiring";
    /// The tenant has no valid token (cause 3).
    pub const NO_VALID_TOKEN: &str = "no_valid_token";
    /// Users refused or held because no mapping matched them (cause 4).
    pub const NO_MAPPING_MATCHED: &str = "no_mapping_matched";
    /// No enabled catch-all mapping: a user matching no condition is refused (cause 4, predicted).
    pub const NO_CATCH_ALL: &str = "no_catch_all";
    /// Enabled mappings that run after an enabled catch-all, so never decide (cause 4).
    pub const UNREACHABLE_MAPPING: &str = "unreachable_mapping";
    /// Enabled mappings that point at an unhealthy region (cause 7, predicted).
    pub const MAPPING_REGION_UNHEALTHY: &str = "mapping_region_unhealthy";
    /// A profile that is full, or users refused or held because it was (cause 5).
    pub const PROFILE_FULL: &str = "profile_full";
    /// A profile at 90 % of its seats or more (cause 5, predicted).
    pub const PROFILE_NEARLY_FULL: &str = "profile_nearly_full";
    /// Users refused: another user of this tenant has the email (cause 6).
    pub const EMAIL_IN_USE_IN_TENANT: &str = "email_in_use_in_tenant";
    /// Users refused: a preserved user of this tenant holds the email (cause 6).
    pub const EMAIL_HELD_BY_PRESERVED_USER: &str = "email_held_by_preserved_user";
    /// Users refused: the email is in use elsewhere in the cloud (cause 6).
    pub const EMAIL_IN_USE_ELSEWHERE: &str = "email_in_use_elsewhere";
    /// Users refused or held because their storage region is not healthy (cause 7).
    pub const REGION_UNHEALTHY: &str = "region_unhealthy";

    /// Every code, for documentation.
    pub const ALL: [&str; 22] = [
        NEVER_HEARD_OF,
        USER_FOUND,
        USER_REFUSED,
        USER_NOT_CREATED,
        USER_REMOVED,
        STALLED,
        NO_REQUESTS_YET,
        WRONG_URL,
        TOKEN_EXPIRED_IN_USE,
        TOKEN_REVOKED_IN_USE,
        TOKEN_EXPIRING,
        NO_VALID_TOKEN,
        NO_MAPPING_MATCHED,
        NO_CATCH_ALL,
        UNREACHABLE_MAPPING,
        MAPPING_REGION_UNHEALTHY,
        PROFILE_FULL,
        PROFILE_NEARLY_FULL,
        EMAIL_IN_USE_IN_TENANT,
        EMAIL_HELD_BY_PRESERVED_USER,
        EMAIL_IN_USE_ELSEWHERE,
        REGION_UNHEALTHY,
    ];
}

/// How bad a finding is. Ordered: `Info < Warning < Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// State worth knowing; nothing to do.
    Info,
    /// A problem predicted (nobody refused yet), or one that may be intended.
    Warning,
    /// Users were refused or held, or cannot be provisioned at all.
    Error,
}

impl Severity {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One result of the doctor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// The stable code ([`codes`]).
    pub code: &'static str,
    /// One line for people.
    pub title: String,
    /// What it is based on: a JSON object of counts, first/last seen, example subjects, paths,
    /// token prefixes.
    pub evidence: Value,
    /// The fix, as concrete steps in order.
    pub fix: Vec<String>,
}

/// The doctor's report on one tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The tenant.
    pub tenant_id: String,
    /// Its name.
    pub tenant_name: String,
    /// When the report was made.
    pub generated_at: OffsetDateTime,
    /// The look-back window over the provisioning log, in days.
    pub window_days: u32,
    /// The IdP the tenant's requests came from, when any came.
    pub idp: Option<Idp>,
    /// The user asked about, if any.
    pub user: Option<String>,
    /// Events of the window read.
    pub events_examined: usize,
    /// Whether the window held more events than the doctor reads ([`MAX_EVENTS`]): counts are
    /// then lower bounds.
    pub events_truncated: bool,
    /// The findings: the named user's first, then errors, warnings and info.
    pub findings: Vec<Finding>,
}

impl Report {
    /// The worst severity found, `None` without findings.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    /// `healthy`, `warnings` or `errors`.
    pub fn status(&self) -> &'static str {
        match self.worst() {
            Some(Severity::Error) => "errors",
            Some(Severity::Warning) => "warnings",
            _ => "healthy",
        }
    }

    /// The exit status for scripts and monitoring: 0 healthy (info only), 1 warnings, 2 errors.
    pub fn exit_code(&self) -> u8 {
        match self.worst() {
            Some(Severity::Error) => 2,
            Some(Severity::Warning) => 1,
            _ => 0,
        }
    }

    /// How many findings have this severity.
    pub fn count(&self, severity: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == severity).count()
    }
}

impl Serialize for Report {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        // `status` and `exit_code` are derived, so they are written rather than stored: they can
        // never disagree with the findings.
        let mut s = serializer.serialize_struct("Report", 11)?;
        s.serialize_field("tenant_id", &self.tenant_id)?;
        s.serialize_field("tenant_name", &self.tenant_name)?;
        s.serialize_field("generated_at", &crate::clock::format_time(self.generated_at))?;
        s.serialize_field("window_days", &self.window_days)?;
        s.serialize_field("idp", &self.idp)?;
        s.serialize_field("user", &self.user)?;
        s.serialize_field("status", self.status())?;
        s.serialize_field("exit_code", &self.exit_code())?;
        s.serialize_field("events_examined", &self.events_examined)?;
        s.serialize_field("events_truncated", &self.events_truncated)?;
        s.serialize_field("findings", &self.findings)?;
        s.end()
    }
}

/// What to examine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoctorOptions {
    /// A user to explain, by userName, email or externalId.
    pub user: Option<String>,
    /// The look-back window over the provisioning log, in days (1 to [`MAX_WINDOW_DAYS`]).
    pub window_days: u32,
    /// The SCIM base URL the IdP should use (`https://host/scim/v2`), when the caller knows it.
    pub base_url: Option<String>,
}

impl Default for DoctorOptions {
    fn default() -> Self {
        DoctorOptions { user: None, window_days: DEFAULT_WINDOW_DAYS, base_url: None }
    }
}

/// Longest user name or email accepted in a question to the doctor.
const MAX_USER_QUERY: usize = 256;

impl Service {
    /// The doctor's report on a tenant (and on one user of it, when named) over the default
    /// look-back window.
    pub async fn doctor(&self, tenant: &Tenant, user: Option<&str>) -> Result<Report> {
        let options = DoctorOptions { user: user.map(str::to_owned), ..DoctorOptions::default() };
        self.doctor_with(tenant, options).await
    }

    /// The doctor's report with every option.
    pub async fn doctor_with(&self, tenant: &Tenant, mut options: DoctorOptions) -> Result<Report> {
        if !(1..=MAX_WINDOW_DAYS).contains(&options.window_days) {
            return Err(DomainError::Invalid(format!("days must be between 1 and {MAX_WINDOW_DAYS}")));
        }
        options.user = options.user.map(|u| u.trim().to_owned());
        if let Some(u) = &options.user
            && (u.is_empty() || u.chars().count() > MAX_USER_QUERY || u.chars().any(char::is_control))
        {
            return Err(DomainError::Invalid(format!(
                "user must be a userName, email or externalId of 1 to {MAX_USER_QUERY} printable characters"
            )));
        }
        let facts = self.gather_facts(tenant, &options).await?;
        Ok(diagnose(&facts))
    }
}

/// Runs every check over gathered facts.
pub fn diagnose(facts: &Facts) -> Report {
    let user_finding = checks::user(facts);
    let mut findings = checks::tenant(facts);
    // Errors first; within a severity, the order of the checks (stable sort).
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let findings = user_finding.into_iter().chain(findings).collect();
    Report {
        tenant_id: facts.tenant.id.clone(),
        tenant_name: facts.tenant.name.clone(),
        generated_at: facts.now,
        window_days: facts.window_days,
        idp: facts.idp,
        user: facts.user.as_ref().map(|u| u.query.clone()),
        events_examined: facts.events.len(),
        events_truncated: facts.events_truncated,
        findings,
    }
}
