//! What the doctor knows about a tenant, read from the store once: the provisioning log of the
//! window and the current state. The checks only read this.

use std::collections::{HashMap, HashSet};

use scim_proto::ResourceKind;
use serde_json::Value;
use time::{Duration, OffsetDateTime};

use super::{DoctorOptions, MAX_EVENTS};
use crate::events::{Cause, Event, EventQuery, Idp, Outcome};
use crate::provisioning::{Mapping, Placement, Profile, Region, TenantSettings, UserState, normalise_email};
use crate::query::ListQuery;
use crate::resources::StoredResource;
use crate::tenant::Tenant;
use crate::token::TokenRecord;
use crate::{Result, Service};

/// Most pending users read (their count is reported as "at least" beyond it).
const MAX_PENDING: u32 = 1000;
/// Most events about a named user read.
const MAX_USER_EVENTS: u32 = 200;
/// Most emails whose holder in this tenant is looked up.
const MAX_HOLDER_LOOKUPS: usize = 10;

/// A user held as pending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUser {
    /// Its id.
    pub id: String,
    /// Its userName.
    pub user_name: String,
    /// Pending since.
    pub since: OffsetDateTime,
    /// What holds it.
    pub cause: Option<Cause>,
    /// The profile it waits for, if a mapping decided.
    pub profile_id: Option<String>,
    /// The region it waits for, if a mapping decided.
    pub region_id: Option<String>,
}

/// A user of the tenant, as the doctor describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct UserSummary {
    /// Its id.
    pub id: String,
    /// Its userName.
    pub user_name: String,
    /// Its externalId.
    pub external_id: Option<String>,
    /// Its provisioning state.
    pub placement: Option<Placement>,
}

impl UserSummary {
    fn of(res: &StoredResource) -> Self {
        let text = |key: &str| res.doc.get(key).and_then(Value::as_str).map(str::to_owned);
        UserSummary {
            id: res.id.clone(),
            user_name: text("userName").unwrap_or_default(),
            external_id: text("externalId"),
            placement: res.placement.clone(),
        }
    }

    /// Its state (`active` for a user stored before provisioning rules existed).
    pub fn state(&self) -> UserState {
        self.placement.as_ref().map_or(UserState::Active, |p| p.state)
    }
}

/// What is known about the user named in the question.
#[derive(Debug, Clone, PartialEq)]
pub struct UserFacts {
    /// The question: a userName, email or externalId.
    pub query: String,
    /// The user, when one matches.
    pub found: Option<UserSummary>,
    /// Retained events whose subject names them (any age, not only the window), newest first.
    pub events: Vec<Event>,
}

/// Who in this tenant holds an email another user was refused for.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailHolder {
    /// The normalised email.
    pub email: String,
    /// The holder.
    pub user: UserSummary,
}

/// Everything the checks read.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The tenant.
    pub tenant: Tenant,
    /// Now.
    pub now: OffsetDateTime,
    /// The window's length in days.
    pub window_days: u32,
    /// The window's start.
    pub since: OffsetDateTime,
    /// The SCIM base URL, when the caller knows it.
    pub base_url: Option<String>,
    /// The IdP the requests came from (the most frequent one that is recognised).
    pub idp: Option<Idp>,
    /// The tenant's events of the window, newest first (also activations of held users).
    pub events: Vec<Event>,
    /// Whether the window held more events than were read.
    pub events_truncated: bool,
    /// The tenant's tokens, newest first.
    pub tokens: Vec<TokenRecord>,
    /// Its profiles with their seats.
    pub profiles: Vec<Profile>,
    /// Its mappings in the order they are tried.
    pub mappings: Vec<Mapping>,
    /// Every region of the cloud.
    pub regions: Vec<Region>,
    /// Its settings.
    pub settings: TenantSettings,
    /// Its pending users, oldest first (at most [`MAX_PENDING`]).
    pub pending: Vec<PendingUser>,
    /// Holders in this tenant of the emails users were refused for (never of another tenant).
    pub email_holders: Vec<EmailHolder>,
    /// The user asked about.
    pub user: Option<UserFacts>,
}

/// Whether an event records a request from the IdP (not an activation scimd did by itself).
pub fn from_idp(e: &Event) -> bool {
    e.method != "-"
}

/// Whether `a` was recorded after `b`.
pub fn after(a: &Event, b: &Event) -> bool {
    (a.at, a.id) > (b.at, b.id)
}

/// Whether an operation changes a user or group (as opposed to reading).
pub fn is_write(operation: &str) -> bool {
    ["create", "replace", "patch", "delete", "activate", "bulk"].iter().any(|w| operation.starts_with(w))
}

/// The text between `prefix` and the next `"` in a detail: the quoted name scimd's refusals use
/// (`the profile "Sales" is full`, `the storage region "eu" is down`, `the email "a@b.c"`).
pub fn quoted_after<'d>(detail: &'d str, prefix: &str) -> Option<&'d str> {
    let start = detail.find(prefix)? + prefix.len();
    let rest = &detail[start..];
    rest.find('"').map(|end| &rest[..end])
}

impl Facts {
    /// The IdP's requests of the window, newest first.
    pub fn idp_events(&self) -> impl Iterator<Item = &Event> {
        self.events.iter().filter(|e| from_idp(e))
    }

    /// The window's events with this cause, newest first.
    pub fn with_cause(&self, cause: Cause) -> Vec<&Event> {
        self.events.iter().filter(|e| e.cause == cause).collect()
    }

    /// The refusals and holds among `events` not settled since. A held user is settled once it
    /// is no longer pending (activated, or gone); a refused one by a later accepted write about
    /// the same subject (the IdP's retry). A refusal without a subject (or of a bulk request) is
    /// settled by any later accepted write.
    pub fn outstanding<'e>(&self, events: &[&'e Event]) -> Vec<&'e Event> {
        // The latest accepted write per subject, and overall: one pass over the window, so that
        // thousands of refusals do not each scan thousands of events.
        let mut latest: HashMap<String, (OffsetDateTime, i64)> = HashMap::new();
        let mut any: Option<(OffsetDateTime, i64)> = None;
        for e in self.events.iter().filter(|e| e.outcome == Outcome::Accepted && is_write(&e.operation)) {
            let key = (e.at, e.id);
            any = any.max(Some(key));
            if let Some(s) = &e.subject {
                let slot = latest.entry(s.to_lowercase()).or_insert(key);
                *slot = (*slot).max(key);
            }
        }
        let pending: HashSet<String> = self.pending.iter().map(|p| p.user_name.to_lowercase()).collect();
        let settled = |refused: &Event| {
            let subject = refused.subject.as_deref().filter(|_| refused.operation != "bulk").map(str::to_lowercase);
            let key = (refused.at, refused.id);
            match (refused.outcome, subject) {
                // The pending list is the truth for held users: an activation's event may even be
                // stored before the event of the request that held the user.
                (Outcome::Held, Some(s)) => !pending.contains(&s),
                (_, Some(s)) => latest.get(&s).is_some_and(|l| *l > key),
                (_, None) => any.is_some_and(|l| l > key),
            }
        };
        events
            .iter()
            .copied()
            .filter(|e| matches!(e.outcome, Outcome::Refused | Outcome::Held) && !settled(e))
            .collect()
    }

    /// Whether the IdP got an accepted answer after `event` (by time, then by the log's order:
    /// requests within one clock tick keep their order).
    pub fn accepted_after(&self, event: &Event) -> bool {
        self.idp_events().any(|e| e.outcome == Outcome::Accepted && after(e, event))
    }

    /// A profile by id.
    pub fn profile(&self, id: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.id == id)
    }

    /// A region by id.
    pub fn region(&self, id: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.id == id)
    }

    /// A token by id.
    pub fn token(&self, id: &str) -> Option<&TokenRecord> {
        self.tokens.iter().find(|t| t.id == id)
    }

    /// The pending users held for `cause`.
    pub fn pending_for(&self, cause: Cause) -> Vec<&PendingUser> {
        self.pending.iter().filter(|p| p.cause == Some(cause)).collect()
    }

    /// The SCIM base URL to show: the known one, or its path on scimd's host.
    pub fn scim_base(&self) -> String {
        self.base_url.clone().unwrap_or_else(|| "https://<your scimd host>/scim/v2".into())
    }
}

/// The IdP most of the requests came from: the most frequent recognised one, else `other` when
/// requests came at all.
pub fn dominant_idp(events: &[Event]) -> Option<Idp> {
    let mut counts: HashMap<Idp, usize> = HashMap::new();
    for e in events.iter().filter(|e| from_idp(e)) {
        *counts.entry(e.idp).or_default() += 1;
    }
    let recognised = counts
        .iter()
        .filter(|(idp, _)| **idp != Idp::Other)
        // Ties go to the stable name, so a report never flips between runs.
        .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.as_str().cmp(a.0.as_str())))
        .map(|(idp, _)| *idp);
    recognised.or_else(|| (!counts.is_empty()).then_some(Idp::Other))
}

impl Service {
    /// Reads what the checks need.
    pub async fn gather_facts(&self, tenant: &Tenant, options: &DoctorOptions) -> Result<Facts> {
        let now = self.now();
        let since = now - Duration::days(i64::from(options.window_days));
        let store = &self.store;
        let query = EventQuery {
            tenant_id: Some(tenant.id.clone()),
            since: Some(since),
            limit: MAX_EVENTS,
            ..EventQuery::default()
        };
        let events = store.events(&query).await?;
        let events_truncated = events.len() >= MAX_EVENTS as usize;
        let pending = store
            .pending_users(&tenant.id, 0, MAX_PENDING)
            .await?
            .iter()
            .map(|res| {
                let summary = UserSummary::of(res);
                let p = summary.placement.clone();
                PendingUser {
                    id: summary.id,
                    user_name: summary.user_name,
                    since: p.as_ref().map_or(res.created, |p| p.since),
                    cause: p.as_ref().and_then(|p| p.pending_cause),
                    profile_id: p.as_ref().and_then(|p| p.profile_id.clone()),
                    region_id: p.and_then(|p| p.region_id),
                }
            })
            .collect();
        let email_holders = self.email_holders(tenant, &events).await?;
        let user = match &options.user {
            Some(q) => Some(self.user_facts(tenant, q).await?),
            None => None,
        };
        Ok(Facts {
            tenant: tenant.clone(),
            now,
            window_days: options.window_days,
            since,
            base_url: options.base_url.clone(),
            idp: dominant_idp(&events),
            events,
            events_truncated,
            tokens: store.tokens(&tenant.id).await?,
            profiles: store.profiles(&tenant.id).await?,
            mappings: store.mappings(&tenant.id).await?,
            regions: store.regions().await?,
            settings: store.tenant_settings(&tenant.id).await?,
            pending,
            email_holders,
            user,
        })
    }

    /// Who in this tenant holds the emails users were refused for as in use in this tenant or
    /// held by a preserved user. Emails held elsewhere are never looked up: nothing about
    /// another tenant may reach this report.
    async fn email_holders(&self, tenant: &Tenant, events: &[Event]) -> Result<Vec<EmailHolder>> {
        let mut emails: Vec<String> = Vec::new();
        for e in events {
            if !matches!(e.cause, Cause::EmailInUseInTenant | Cause::EmailHeldByPreservedUser) {
                continue;
            }
            if let Some(email) = e.detail.as_deref().and_then(|d| quoted_after(d, "the email \"")) {
                let email = normalise_email(email);
                if !emails.contains(&email) && emails.len() < MAX_HOLDER_LOOKUPS {
                    emails.push(email);
                }
            }
        }
        let mut holders = Vec::new();
        for email in emails {
            if let Some(res) = self.store.find_user(&tenant.id, &email, Some(&email)).await? {
                holders.push(EmailHolder { email, user: UserSummary::of(&res) });
            }
        }
        Ok(holders)
    }

    /// The user named `query` (by userName, email or externalId) and the retained events that
    /// mention them.
    async fn user_facts(&self, tenant: &Tenant, query: &str) -> Result<UserFacts> {
        let email = query.contains('@').then(|| normalise_email(query));
        let mut found = self.store.find_user(&tenant.id, query, email.as_deref()).await?;
        if found.is_none() {
            // externalId, or an email that is not the claimed one: what SCIM filters can find.
            let quoted = serde_json::to_string(query).unwrap_or_default();
            let text = format!("userName eq {quoted} or externalId eq {quoted} or emails.value eq {quoted}");
            if let Ok(filter) = scim_proto::filter::parse(&text) {
                let list = ListQuery {
                    filter: Some(filter),
                    sort_by: None,
                    descending: false,
                    start_index: 1,
                    count: 1,
                    cursor: None,
                };
                // A store that cannot run this filter only loses this fallback.
                if let Ok(page) = self.store.query(&tenant.id, ResourceKind::User, &list, false).await {
                    found = page.resources.into_iter().next();
                }
            }
        }
        let found = found.as_ref().map(UserSummary::of);
        let mut names: Vec<String> = vec![query.to_owned()];
        if let Some(u) = &found {
            names.push(u.id.clone());
            names.push(u.user_name.clone());
            names.extend(u.external_id.clone());
            names.extend(u.placement.as_ref().and_then(|p| p.claimed_email.clone()));
        }
        names.retain(|n| !n.is_empty());
        let mut distinct: Vec<String> = Vec::new();
        for n in names {
            if !distinct.iter().any(|d| d.eq_ignore_ascii_case(&n)) {
                distinct.push(n);
            }
        }
        let names = distinct;
        let mut seen = HashSet::new();
        let mut events = Vec::new();
        for name in &names {
            let q = EventQuery {
                tenant_id: Some(tenant.id.clone()),
                subject: Some(name.clone()),
                limit: MAX_USER_EVENTS,
                ..EventQuery::default()
            };
            // The store matches substrings; a mention is the whole subject.
            for e in self.store.events(&q).await? {
                let exact = e.subject.as_deref().is_some_and(|s| names.iter().any(|n| s.eq_ignore_ascii_case(n)))
                    || e.mentions.iter().any(|m| names.iter().any(|n| m.eq_ignore_ascii_case(n)));
                if exact && seen.insert(e.id) {
                    events.push(e);
                }
            }
        }
        events.sort_by_key(|e| std::cmp::Reverse(e.id));
        Ok(UserFacts { query: query.to_owned(), found, events })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_names_come_out_of_details() {
        let d = "cannot provision user \"bob\": the profile \"Sales EU\" is full (1 of 1 users).";
        assert_eq!(quoted_after(d, "the profile \""), Some("Sales EU"));
        assert_eq!(quoted_after(d, "the storage region \""), None);
        assert_eq!(quoted_after("the email \"a@b.c\" is", "the email \""), Some("a@b.c"));
    }

    #[test]
    fn writes_are_told_from_reads() {
        assert!(is_write("create User") && is_write("activate User") && is_write("patch Group"));
        assert!(!is_write("list Users") && !is_write("get User") && !is_write("search Users"));
    }
}
