//! Outbound events: lifecycle events of users and groups and proactive warnings, kept in a
//! per-tenant *outbox* (readable as a feed) and pushed to the tenant's webhooks.
//!
//! - Lifecycle events are written by the provisioning transaction itself ([`Step::Outbox`]), so
//!   an event exists exactly when its change does, and the outbox id orders them as the changes
//!   were committed (per user, too).
//! - Warnings are derived from the doctor's facts and findings ([`Service::evaluate_warnings`]);
//!   each condition fires once and re-arms only after it cleared.
//! - Delivery (the HTTP part) lives in the server; the domain decides what is due, signs bodies
//!   and computes the backoff.
//!
//! Ordering contract of delivery: per webhook, strictly in outbox id order. A row that fails
//! blocks every later row of that webhook until it is delivered (at least once, in order: a
//! consumer never sees `user.deleted` before the `user.created` it follows).

use hmac::{KeyInit, Mac};
use serde::Serialize;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use crate::clock::format_time;
use crate::doctor::{DoctorOptions, Severity, codes};
use crate::events::Outcome;
use crate::provisioning::{Health, Placement, UserState};
use crate::resources::StoredResource;
use crate::store::{ProvisionError, ResourceWrite, Step, StoreError};
use crate::tenant::Tenant;
use crate::{DomainError, Result, Service};

/// First retry delay after a failed delivery; doubled per further failure.
pub const RETRY_BASE: Duration = Duration::seconds(10);
/// Longest delay between two attempts.
pub const RETRY_CAP: Duration = Duration::hours(1);
/// Refusals within [`SPIKE_WINDOW`] that make a refusal spike.
pub const SPIKE_THRESHOLD: usize = 20;
/// The window of a refusal spike.
pub const SPIKE_WINDOW: Duration = Duration::minutes(10);
/// How long a spike that fired must calm down before it clears.
pub const SPIKE_SETTLE: Duration = Duration::hours(1);

/// Whether a refused request counts toward a spike: refusals by provisioning rules and protocol
/// errors, not lookups of things that are gone or paths the doctor reports on their own.
fn counts_for_spike(e: &crate::events::Event) -> bool {
    e.outcome == Outcome::Refused
        && !matches!(
            e.cause,
            crate::events::Cause::NotFound
                | crate::events::Cause::PreconditionFailed
                | crate::events::Cause::UnknownPath
                | crate::events::Cause::MethodNotAllowed
        )
}
/// Longest webhook URL accepted.
const MAX_URL: usize = 2048;

/// What an outbox row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A user or group changed.
    Lifecycle,
    /// A proactive warning (or its recovery).
    Warning,
    /// A test-send to one webhook (never in the feed, never queued).
    Test,
}

impl EntryKind {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Lifecycle => "lifecycle",
            EntryKind::Warning => "warning",
            EntryKind::Test => "test",
        }
    }

    /// Parses a stable name.
    pub fn parse(name: &str) -> Option<Self> {
        [EntryKind::Lifecycle, EntryKind::Warning, EntryKind::Test].into_iter().find(|k| k.as_str() == name)
    }
}

/// One row of a tenant's outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// Store-assigned, increasing: the feed's cursor (ignored on insert).
    pub id: i64,
    /// The tenant.
    pub tenant_id: String,
    /// Lifecycle, warning or test.
    pub kind: EntryKind,
    /// The event type (`user.created`, `warning.token_expiring_30d`, ...).
    pub event_type: String,
    /// The user, group, token, profile or region it is about.
    pub subject_id: Option<String>,
    /// Stable across retries of the same change: consumers deduplicate on it.
    pub idempotency_key: String,
    /// The event's `data`.
    pub data: Value,
    /// When it happened.
    pub created_at: OffsetDateTime,
}

impl OutboxEntry {
    /// The JSON body delivered to webhooks and listed in the feed.
    pub fn body(&self) -> Value {
        json!({
            "id": self.id,
            "type": self.event_type,
            "kind": self.kind.as_str(),
            "idempotency_key": self.idempotency_key,
            "occurred_at": format_time(self.created_at),
            "tenant_id": self.tenant_id,
            "subject_id": self.subject_id,
            "data": self.data,
        })
    }
}

/// A tenant's webhook receiver; serializes without its secret.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Webhook {
    /// The tenant.
    pub tenant_id: String,
    /// Its id.
    pub id: String,
    /// Where events are POSTed (http or https).
    pub url: String,
    /// The HMAC-SHA256 key of `X-Scimd-Signature`.
    #[serde(skip)]
    pub secret: String,
    /// Whether it receives events.
    pub enabled: bool,
    /// When it was added.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret, not even in a debug log (as with issued tokens).
        f.debug_struct("Webhook")
            .field("tenant_id", &self.tenant_id)
            .field("id", &self.id)
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("enabled", &self.enabled)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// The delivery of one outbox row to one webhook: every attempt counted, the last one described.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// The outbox row.
    pub outbox_id: i64,
    /// The webhook.
    pub webhook_id: String,
    /// The row's event type.
    pub event_type: String,
    /// Attempts so far.
    pub attempts: u32,
    /// When it is tried again (none once delivered).
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    /// When it was delivered.
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
    /// When it was last tried.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_attempt_at: Option<OffsetDateTime>,
    /// The receiver's last HTTP status, if it answered.
    pub last_status: Option<u16>,
    /// Why the last attempt failed (status text, timeout, refused connection).
    pub last_error: Option<String>,
}

/// The next row a webhook should receive, due now.
#[derive(Debug, Clone, PartialEq)]
pub struct DueDelivery {
    /// The webhook.
    pub webhook: Webhook,
    /// Its next row in outbox order.
    pub entry: OutboxEntry,
    /// Attempts already made for this row.
    pub attempts: u32,
}

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The receiver's status, if it answered.
    pub status: Option<u16>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

impl Attempt {
    /// A 2xx answer.
    pub fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// An answer that retrying will not change: a 4xx other than 408 (timeout) and 429 (too many
    /// requests), e.g. a 413 for a body the receiver will never take.
    pub fn permanent_failure(&self) -> bool {
        self.status.is_some_and(|s| (400..500).contains(&s) && s != 408 && s != 429)
    }
}

/// Attempts after which a row the receiver refuses for good is given up, so that it stops
/// holding back the webhook's later rows.
pub const GIVE_UP_AFTER: u32 = 5;

/// Where outbound events and webhooks are kept. Part of every [`Store`](crate::store::Store).
#[async_trait::async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    /// Adds a webhook; it starts after the tenant's newest outbox row.
    async fn insert_webhook(&self, webhook: &Webhook) -> Result<(), StoreError>;
    /// A tenant's webhooks, oldest first.
    async fn webhooks(&self, tenant: &str) -> Result<Vec<Webhook>, StoreError>;
    /// Deletes a webhook and its delivery log; `NotFound` when the tenant has no such webhook.
    async fn delete_webhook(&self, tenant: &str, id: &str) -> Result<(), StoreError>;
    /// Appends a row unless one with its idempotency key exists; returns its id when appended.
    async fn append_outbox(&self, entry: &OutboxEntry) -> Result<Option<i64>, StoreError>;
    /// A tenant's lifecycle and warning rows with an id above `after`, oldest first.
    async fn feed(&self, tenant: &str, after: i64, limit: u32) -> Result<Vec<OutboxEntry>, StoreError>;
    /// For each enabled webhook of any tenant whose next row is due at `now`, that row.
    async fn due_deliveries(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<DueDelivery>, StoreError>;
    /// Records an attempt; a delivered row (not a test) advances the webhook past it.
    async fn record_attempt(
        &self,
        webhook_id: &str,
        outbox_id: i64,
        at: OffsetDateTime,
        attempt: &Attempt,
        next_attempt_at: Option<OffsetDateTime>,
        given_up: bool,
    ) -> Result<(), StoreError>;
    /// A webhook's delivery log, newest row first.
    async fn deliveries(&self, tenant: &str, webhook_id: &str, limit: u32) -> Result<Vec<Delivery>, StoreError>;
    /// The conditions of a tenant that fired and have not cleared.
    async fn fired_warnings(&self, tenant: &str) -> Result<Vec<String>, StoreError>;
    /// Marks a condition fired and, in the same transaction, appends its event (none: recorded
    /// silently); `false` when it had already fired (nothing written).
    async fn fire_warning(
        &self,
        tenant: &str,
        condition: &str,
        at: OffsetDateTime,
        entry: Option<&OutboxEntry>,
    ) -> Result<bool, StoreError>;
    /// Re-arms a condition that cleared, appending `entry` (a recovery) with it if any.
    /// Deletes outbox rows (and their delivery log) older than `before`; returns how many. A row
    /// still undelivered then is given up: the retention bounds how long consumers may lag.
    async fn prune_outbox(&self, before: OffsetDateTime) -> Result<u64, StoreError>;
    /// Clears a warning condition (and appends the "recovered" row, if any) in one transaction.
    async fn clear_warning(&self, tenant: &str, condition: &str, entry: Option<&OutboxEntry>)
    -> Result<(), StoreError>;
}

/// Whether a webhook URL points inside the cloud's network: a loopback, private, link-local or
/// unspecified address, a numeric host (HTTP clients read `http://2130706433/` as 127.0.0.1), or
/// a name reserved for local use. Tenant admins may not target these (nor learn how they answer
/// through a test send); operators may. A public name that resolves to an internal address is not
/// caught here.
pub fn is_internal_target(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host == "localhost" || [".localhost", ".local", ".internal", ".localdomain"].iter().any(|s| host.ends_with(s)) {
        return true;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => {
            ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || ip.octets()[0] == 100 && (ip.octets()[1] & 0xc0) == 64 // carrier-grade NAT
        }
        Ok(std::net::IpAddr::V6(ip)) => {
            let mapped = ip.to_ipv4_mapped().map(|v4| is_internal_target(&format!("http://{v4}/")));
            ip.is_loopback()
                || ip.is_unspecified()
                || (ip.segments()[0] & 0xfe00) == 0xfc00 // unique local
                || (ip.segments()[0] & 0xffc0) == 0xfe80 // link-local
                || mapped == Some(true)
        }
        // Dotted or bare numbers that are not a plain IPv4 address (octal, hex, a single integer).
        Err(_) => host
            .split('.')
            .all(|part| !part.is_empty() && (part.chars().all(|c| c.is_ascii_digit()) || part.starts_with("0x"))),
    }
}

/// Refuses an internal webhook target to anyone but an operator.
pub fn check_target(principal: &crate::access::Principal, url: &str) -> Result<()> {
    if principal.is_operator() || !is_internal_target(url) {
        return Ok(());
    }
    Err(DomainError::Invalid(
        "url must be a public address: webhooks to loopback, private or link-local hosts are for operators only".into(),
    ))
}

/// `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`, the value of `X-Scimd-Signature`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        // HMAC takes keys of any length; this cannot fail.
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    // The time is signed with the body, so a captured delivery cannot be replayed later: the
    // receiver rejects timestamps too far from its clock.
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// When to try again after `attempts` failed attempts: 10 s · 2^(attempts−1), at most 1 h.
pub fn backoff(attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(16);
    (RETRY_BASE * 2i32.pow(exp)).min(RETRY_CAP)
}

/// The lifecycle event of a provisioning write, from the user's placement before it (`None`:
/// new). The type says what happened to the user; `user.updated` when its state did not change.
pub fn lifecycle_type(previous: Option<&Placement>, write: &ResourceWrite) -> &'static str {
    use scim_proto::ResourceKind::Group;
    let before = previous.map(|p| p.state);
    match write {
        ResourceWrite::Insert(res) if res.kind == Group => "group.created",
        ResourceWrite::Update { res, .. } if res.kind == Group => "group.updated",
        ResourceWrite::Delete { kind: Group, .. } => "group.deleted",
        // A user the preserve policy kept is removed for good.
        ResourceWrite::Delete { .. } if before == Some(UserState::Deleted) => "user.purged",
        ResourceWrite::Delete { .. } => "user.deleted",
        ResourceWrite::Insert(res) => match res.placement.as_ref().map(|p| p.state) {
            Some(UserState::Pending) => "user.pending",
            _ => "user.created",
        },
        ResourceWrite::Update { res, .. } => {
            let after = res.placement.as_ref().map_or(UserState::Active, |p| p.state);
            match (before.unwrap_or(UserState::Active), after) {
                (UserState::Pending, UserState::Active) => "user.activated",
                (UserState::Pending, UserState::Pending) => "user.updated",
                (_, UserState::Pending) => "user.pending",
                (UserState::Preserved, UserState::Preserved) => "user.updated",
                (_, UserState::Preserved) => "user.preserved",
                (UserState::Deleted, UserState::Deleted) => "user.updated",
                (_, UserState::Deleted) => "user.deleted",
                (UserState::Preserved | UserState::Deleted, UserState::Active) => "user.reactivated",
                _ => "user.updated",
            }
        }
    }
}

/// What a lifecycle event carries about a resource: its id, version, state and document (a
/// deleted resource: only what identifies it).
fn lifecycle_data(write: &ResourceWrite, previous: Option<&Placement>) -> (String, Value) {
    let state = |res: &StoredResource| res.placement.as_ref().map(|p| p.state.as_str());
    match write {
        ResourceWrite::Insert(res) | ResourceWrite::Update { res, .. } => (
            res.id.clone(),
            json!({
                "resource_type": res.kind.name(),
                "id": res.id,
                "version": res.version,
                "state": state(res),
                "previous_state": previous.map(|p| p.state.as_str()),
                "profile_id": res.placement.as_ref().and_then(|p| p.profile_id.clone()),
                "region_id": res.placement.as_ref().and_then(|p| p.region_id.clone()),
                "pending_cause": res.placement.as_ref().and_then(|p| p.pending_cause).map(|c| c.as_str()),
                "resource": res.doc,
            }),
        ),
        ResourceWrite::Delete { kind, id, .. } => (
            id.clone(),
            json!({
                "resource_type": kind.name(),
                "id": id,
                "previous_state": previous.map(|p| p.state.as_str()),
            }),
        ),
    }
}

/// The version a write leaves behind, for the idempotency key; a delete without an expected
/// version is final (ids are never reused), so `end` is as stable.
fn written_version(write: &ResourceWrite) -> String {
    match write {
        ResourceWrite::Insert(res) | ResourceWrite::Update { res, .. } => res.version.to_string(),
        ResourceWrite::Delete { expected_version: Some(v), .. } => (v + 1).to_string(),
        ResourceWrite::Delete { expected_version: None, .. } => "end".into(),
    }
}

impl Service {
    /// Runs a provisioning transaction with its lifecycle event appended to the outbox in the
    /// same transaction: the one place every user and group change passes through.
    pub(crate) async fn provision_logged(
        &self,
        tenant: &Tenant,
        previous: Option<&Placement>,
        steps: &[Step],
        write: &ResourceWrite,
    ) -> std::result::Result<(), ProvisionError> {
        let event_type = lifecycle_type(previous, write);
        let (subject, data) = lifecycle_data(write, previous);
        let entry = OutboxEntry {
            id: 0,
            tenant_id: tenant.id.clone(),
            kind: EntryKind::Lifecycle,
            event_type: event_type.into(),
            idempotency_key: format!("{}:{subject}:{}:{event_type}", tenant.id, written_version(write)),
            subject_id: Some(subject),
            data,
            created_at: self.now(),
        };
        let mut all = steps.to_vec();
        all.push(Step::Outbox(Box::new(entry)));
        self.store.provision(&tenant.id, &all, write).await
    }

    /// Adds a webhook; without a secret one is generated (and shown only in this answer).
    pub async fn create_webhook(
        &self,
        tenant: &Tenant,
        url: &str,
        secret: Option<String>,
        enabled: bool,
    ) -> Result<Webhook> {
        let url = url.trim();
        let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
        let host_ok = url.split_once("://").is_some_and(|(_, rest)| !rest.is_empty() && !rest.starts_with('/'));
        if !scheme_ok || !host_ok || url.len() > MAX_URL || url.chars().any(char::is_whitespace) {
            return Err(DomainError::Invalid(format!(
                "url must be an http:// or https:// URL with a host, at most {MAX_URL} characters"
            )));
        }
        let secret = match secret {
            Some(s) if s.len() < 16 || s.len() > 256 => {
                return Err(DomainError::Invalid("secret must be 16 to 256 characters".into()));
            }
            Some(s) => s,
            None => {
                let mut bytes = [0u8; 32];
                self.random.fill(&mut bytes);
                format!("whsec_{}", hex::encode(bytes))
            }
        };
        let webhook = Webhook {
            tenant_id: tenant.id.clone(),
            id: self.new_id(),
            url: url.to_owned(),
            secret,
            enabled,
            created_at: self.now(),
        };
        self.store.insert_webhook(&webhook).await?;
        Ok(webhook)
    }

    /// A tenant's webhooks.
    pub async fn webhooks(&self, tenant: &Tenant) -> Result<Vec<Webhook>> {
        Ok(self.store.webhooks(&tenant.id).await?)
    }

    /// A tenant's webhook by id.
    pub async fn webhook(&self, tenant: &Tenant, id: &str) -> Result<Webhook> {
        self.webhooks(tenant)
            .await?
            .into_iter()
            .find(|w| w.id == id)
            .ok_or_else(|| DomainError::NotFound(format!("tenant {} has no webhook {id}", tenant.id)))
    }

    /// Deletes a tenant's webhook.
    pub async fn delete_webhook(&self, tenant: &Tenant, id: &str) -> Result<()> {
        match self.store.delete_webhook(&tenant.id, id).await {
            Err(StoreError::NotFound) => {
                Err(DomainError::NotFound(format!("tenant {} has no webhook {id}", tenant.id)))
            }
            other => Ok(other?),
        }
    }

    /// A webhook's delivery log, newest first.
    pub async fn webhook_deliveries(&self, tenant: &Tenant, id: &str, limit: u32) -> Result<Vec<Delivery>> {
        self.webhook(tenant, id).await?;
        Ok(self.store.deliveries(&tenant.id, id, limit).await?)
    }

    /// A page of the tenant's feed: rows after `cursor`, oldest first.
    pub async fn feed(&self, tenant: &Tenant, cursor: i64, limit: u32) -> Result<Vec<OutboxEntry>> {
        Ok(self.store.feed(&tenant.id, cursor, limit).await?)
    }

    /// A `test` event for one webhook, stored (for the delivery log) but never in the feed.
    pub async fn test_entry(&self, webhook: &Webhook) -> Result<OutboxEntry> {
        let mut entry = OutboxEntry {
            id: 0,
            tenant_id: webhook.tenant_id.clone(),
            kind: EntryKind::Test,
            event_type: "test".into(),
            subject_id: Some(webhook.id.clone()),
            idempotency_key: format!("{}:{}:test:{}", webhook.tenant_id, webhook.id, self.new_id()),
            data: json!({ "message": "a test event from scimd", "webhook_id": webhook.id }),
            created_at: self.now(),
        };
        entry.id = self
            .store
            .append_outbox(&entry)
            .await?
            .ok_or_else(|| DomainError::Conflict("the test event was not stored; retry".into()))?;
        Ok(entry)
    }

    /// Records one attempt of a delivery, scheduling the next one after a failure.
    pub async fn record_attempt(
        &self,
        webhook_id: &str,
        entry: &OutboxEntry,
        attempts_before: u32,
        attempt: &Attempt,
    ) -> Result<()> {
        let now = self.now();
        let given_up = attempt.permanent_failure() && attempts_before + 1 >= GIVE_UP_AFTER;
        // A test send is never retried: its result is the answer to whoever asked for it.
        let next = (!attempt.delivered() && !given_up && entry.kind != EntryKind::Test)
            .then(|| now + backoff(attempts_before + 1));
        let mut attempt = attempt.clone();
        if given_up {
            attempt.error = Some(format!(
                "gave up after {} attempts: {}",
                attempts_before + 1,
                attempt.error.as_deref().unwrap_or("refused")
            ));
        }
        Ok(self.store.record_attempt(webhook_id, entry.id, now, &attempt, next, given_up).await?)
    }

    /// Evaluates the warning conditions of every tenant; returns how many warnings fired.
    pub async fn evaluate_warnings(&self) -> Result<u32> {
        let mut fired = 0;
        for tenant in self.store.tenants().await? {
            fired += self.evaluate_tenant_warnings(&tenant).await?;
        }
        Ok(fired)
    }

    /// Evaluates one tenant's warning conditions: each that holds fires once; each that fired
    /// and no longer holds re-arms (a region that recovered says so).
    pub async fn evaluate_tenant_warnings(&self, tenant: &Tenant) -> Result<u32> {
        // The doctor's own window, so that a warning and `scimd doctor` agree.
        let options = DoctorOptions::default();
        let facts = self.gather_facts(tenant, &options).await?;
        let report = crate::doctor::diagnose(&facts);
        let now = self.now();
        let mut conditions: Vec<Condition> = Vec::new();
        let finding = |code: &str| report.findings.iter().find(|f| f.code == code && f.severity >= Severity::Warning);

        // Token expiry: three thresholds; the tightest one crossed is announced, the looser ones
        // are marked fired silently so they do not follow it with stale news.
        if let Some(f) = finding(codes::TOKEN_EXPIRING) {
            let days = f.evidence.get("days_left").and_then(Value::as_i64).unwrap_or(i64::MAX);
            let crossed: Vec<i64> = [1, 7, 30].into_iter().filter(|t| days <= *t).collect();
            for (i, threshold) in crossed.iter().enumerate() {
                conditions.push(Condition {
                    key: format!("token_expiring_{threshold}d"),
                    event_type: format!("warning.token_expiring_{threshold}d"),
                    subject: f.evidence.get("prefix").and_then(Value::as_str).map(str::to_owned),
                    data: finding_data(f),
                    silent: i > 0,
                });
            }
        }
        if let Some(f) = finding(codes::TOKEN_EXPIRED_IN_USE) {
            conditions.push(Condition::of(
                "token_expired_in_use",
                "warning.token_expired_in_use",
                None,
                finding_data(f),
            ));
        }
        // The provisioning log is written in the background: a token used moments ago may have
        // no event yet. Silence must also show in the token's last use before it is news.
        let last_use = facts.tokens.iter().filter_map(|t| t.last_used_at).max();
        let quiet = last_use.is_none_or(|used| now - used >= crate::doctor::checks::STALL_MIN_SILENCE);
        // Only a stall the doctor calls a warning (a broken rhythm), not a quiet spell.
        if let Some(f) = finding(codes::STALLED).filter(|f| quiet && f.severity != crate::doctor::Severity::Info) {
            conditions.push(Condition::of("stalled", "warning.provisioning_stalled", None, finding_data(f)));
        }
        // A condition that fired clears only well below where it fired (hysteresis), so that a
        // seat taken and released at the limit does not announce the same thing again and again.
        let fired: std::collections::HashSet<String> =
            self.store.fired_warnings(&tenant.id).await?.into_iter().collect();
        let at_least = |p: &crate::provisioning::Profile, percent: u64| {
            u64::from(p.active_users) * 100 >= u64::from(p.max_users) * percent
        };
        for p in facts.profiles.iter().filter(|p| p.max_users > 0) {
            let data =
                json!({ "profile_id": p.id, "name": p.name, "active_users": p.active_users, "max_users": p.max_users });
            let full = format!("profile_full:{}", p.id);
            if at_least(p, 100) || (fired.contains(&full) && at_least(p, 95)) {
                conditions.push(Condition::of(&full, "warning.profile_full", Some(&p.id), data.clone()));
            }
            let nearly = format!("profile_nearly_full:{}", p.id);
            if at_least(p, 90) || (fired.contains(&nearly) && at_least(p, 85)) {
                // A profile that went straight to full announces that, not "nearly" as well.
                let silent = at_least(p, 100) && !fired.contains(&nearly);
                let mut condition = Condition::of(&nearly, "warning.profile_nearly_full", Some(&p.id), data);
                condition.silent = silent;
                conditions.push(condition);
            }
        }
        // Regions this tenant's enabled mappings send users to.
        let used: std::collections::HashSet<&str> =
            facts.mappings.iter().filter(|m| m.enabled).map(|m| m.region_id.as_str()).collect();
        let mut recoveries = std::collections::HashMap::new();
        for r in facts.regions.iter().filter(|r| used.contains(r.id.as_str())) {
            let data = json!({ "region_id": r.id, "name": r.name, "health": r.health.as_str(), "since": format_time(r.health_since) });
            let key = format!("region_unhealthy:{}", r.id);
            if r.health == Health::Healthy {
                recoveries.insert(key, (r.id.clone(), data));
            } else {
                conditions.push(Condition::of(&key, "warning.region_unhealthy", Some(&r.id), data));
            }
        }
        let refusals = facts.events.iter().filter(|e| counts_for_spike(e) && e.at >= now - SPIKE_WINDOW).count();
        // Once fired, a spike lasts while refusals go on at half the rate over the last hour, so an
        // IdP retrying the same refused users every cycle announces it once.
        let recent = facts.events.iter().filter(|e| counts_for_spike(e) && e.at >= now - SPIKE_SETTLE).count();
        let refusals = if fired.contains("refusal_spike") && recent >= SPIKE_THRESHOLD / 2 {
            refusals.max(SPIKE_THRESHOLD)
        } else {
            refusals
        };
        if refusals >= SPIKE_THRESHOLD {
            let data = json!({ "refusals": refusals, "window_minutes": SPIKE_WINDOW.whole_minutes() });
            conditions.push(Condition::of("refusal_spike", "warning.refusal_spike", None, data));
        }

        let mut fired = 0;
        for c in &conditions {
            let entry = (!c.silent)
                .then(|| self.warning_entry(tenant, &c.key, &c.event_type, c.subject.clone(), c.data.clone()));
            if self.store.fire_warning(&tenant.id, &c.key, now, entry.as_ref()).await? && !c.silent {
                fired += 1;
            }
        }
        for key in self.store.fired_warnings(&tenant.id).await? {
            if conditions.iter().any(|c| c.key == key) {
                continue;
            }
            // Only a region that is healthy again is news; other conditions re-arm quietly.
            let recovered = recoveries.get(&key).map(|(id, data)| {
                self.warning_entry(tenant, &key, "warning.region_recovered", Some(id.clone()), data.clone())
            });
            self.store.clear_warning(&tenant.id, &key, recovered.as_ref()).await?;
        }
        Ok(fired)
    }

    fn warning_entry(
        &self,
        tenant: &Tenant,
        key: &str,
        event_type: &str,
        subject: Option<String>,
        data: Value,
    ) -> OutboxEntry {
        let now = self.now();
        OutboxEntry {
            id: 0,
            tenant_id: tenant.id.clone(),
            kind: EntryKind::Warning,
            event_type: event_type.into(),
            subject_id: subject,
            // One firing of one condition: a fresh id, since a condition may clear and fire again
            // within the same instant of the clock.
            idempotency_key: format!("{}:{key}:{}:{event_type}", tenant.id, self.new_id()),
            data: json!({ "condition": key, "details": data }),
            created_at: now,
        }
    }
}

/// A warning condition that holds now.
struct Condition {
    key: String,
    event_type: String,
    subject: Option<String>,
    data: Value,
    silent: bool,
}

impl Condition {
    fn of(key: &str, event_type: &str, subject: Option<&str>, data: Value) -> Self {
        Condition {
            key: key.into(),
            event_type: event_type.into(),
            subject: subject.map(str::to_owned),
            data,
            silent: false,
        }
    }
}

/// A doctor finding as warning data: the same title, evidence and fix the doctor shows.
fn finding_data(f: &crate::doctor::Finding) -> Value {
    json!({ "code": f.code, "severity": f.severity.as_str(), "title": f.title, "evidence": f.evidence, "fix": f.fix })
}

#[cfg(test)]
mod tests {

    #[test]
    fn internal_targets_are_recognised() {
        for url in [
            "http://127.0.0.1:9/x",
            "http://localhost/x",
            "https://LOCALHOST./x",
            "http://10.1.2.3/",
            "http://192.168.0.1:8080/",
            "http://172.16.0.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]:80/",
            "http://[fd00::1]/",
            "http://[::ffff:10.0.0.1]/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://user:pw@127.0.0.1/",
            "http://0.0.0.0/",
            "http://metadata.google.internal/",
            "http://100.64.0.1/",
        ] {
            assert!(is_internal_target(url), "{url}");
        }
        for url in [
            "https://hooks.example.com/scimd",
            "http://93.184.216.34/",
            "https://[2606:4700::1111]/",
            "https://a.b.c/x?y=127.0.0.1",
        ] {
            assert!(!is_internal_target(url), "{url}");
        }
    }
    use super::*;
    use crate::provisioning::{Manager, Placement};
    use scim_proto::ResourceKind;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // The key and text of RFC 4231's test case 2, signed as "<timestamp>.<body>"; the expected
        // value comes from Python's hmac module.
        assert_eq!(
            signature("Jefe", 1_700_000_000, b"what do ya want for nothing?"),
            "sha256=1cdd0650c8be1cb0974b1788d458b1e781206cfef59b85faafc582d2e182c57e"
        );
    }

    #[test]
    fn backoff_doubles_from_ten_seconds_up_to_an_hour() {
        let secs: Vec<i64> = (1..=12).map(|n| backoff(n).whole_seconds()).collect();
        assert_eq!(secs, [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600, 3600]);
        assert_eq!(backoff(u32::MAX), RETRY_CAP);
    }

    fn placed(state: UserState) -> Placement {
        Placement {
            state,
            since: OffsetDateTime::UNIX_EPOCH,
            profile_id: None,
            region_id: None,
            pending_cause: None,
            preserved_by: None,
            managed_by: Manager::Idp,
            claimed_email: None,
        }
    }

    fn update(state: UserState) -> ResourceWrite {
        let res = StoredResource {
            id: "u".into(),
            kind: ResourceKind::User,
            doc: json!({}),
            created: OffsetDateTime::UNIX_EPOCH,
            modified: OffsetDateTime::UNIX_EPOCH,
            version: 2,
            placement: Some(placed(state)),
        };
        ResourceWrite::Update { res, expected_version: 1 }
    }

    #[test]
    fn each_state_change_has_its_event_type() {
        use UserState::*;
        let t = |before: UserState, after: UserState| lifecycle_type(Some(&placed(before)), &update(after));
        assert_eq!(t(Active, Active), "user.updated");
        assert_eq!(t(Active, Preserved), "user.preserved");
        assert_eq!(t(Active, Deleted), "user.deleted");
        assert_eq!(t(Preserved, Deleted), "user.deleted");
        assert_eq!(t(Preserved, Active), "user.reactivated");
        assert_eq!(t(Deleted, Active), "user.reactivated");
        assert_eq!(t(Pending, Active), "user.activated");
        assert_eq!(t(Active, Pending), "user.pending");
        assert_eq!(t(Pending, Pending), "user.updated");
        let delete = |expected_version| ResourceWrite::Delete {
            kind: ResourceKind::User,
            id: "u".into(),
            expected_version,
            at: OffsetDateTime::UNIX_EPOCH,
        };
        assert_eq!(lifecycle_type(Some(&placed(Active)), &delete(Some(3))), "user.deleted");
        assert_eq!(lifecycle_type(Some(&placed(Deleted)), &delete(None)), "user.purged");
        assert_eq!(written_version(&delete(Some(3))), "4");
        assert_eq!(written_version(&delete(None)), "end");
    }
}
