//! The checks: each a small function over [`Facts`] that returns its findings. No I/O, so each
//! is unit-tested with facts built by hand. Shared helpers (evidence, wording of counts) live
//! here; each cause's checks in their own module.

mod capacity;
mod email;
mod mappings;
mod tokens;
mod traffic;
mod user;

pub use capacity::{profiles, regions};
pub use email::email_conflict;
pub use mappings::{no_catch_all, no_mapping_matched, unreachable_mappings};
pub use tokens::{token_in_use, token_validity};
pub use traffic::{traffic, wrong_url};
pub use user::user;

use serde_json::{Map, Value, json};
use time::{Duration, OffsetDateTime};

use super::facts::{Facts, PendingUser, UserSummary};
use super::{Finding, Severity, codes};
use crate::clock::format_time;
use crate::events::{Cause, Event};
use crate::provisioning::{Mapping, Profile, Region};

/// Example subjects shown per finding.
const MAX_EXAMPLES: usize = 5;
/// Accepted requests in the window before a silence can count as a stall.
pub const STALL_MIN_REQUESTS: usize = 5;
/// Requests closer together than this are one contact (one sync); gaps are measured between
/// contacts, so that a burst does not make the usual interval look like milliseconds.
pub const STALL_BURST: Duration = Duration::seconds(60);
/// Regular gaps between contacts needed before silence counts as a stall.
pub const STALL_MIN_GAPS: usize = 8;
/// A silence shorter than this is never a stall.
pub const STALL_MIN_SILENCE: Duration = Duration::hours(2);
/// A token expiring within this is warned about.
pub const TOKEN_WARNING: Duration = Duration::days(30);
/// A profile this full (in per mille of its seats) is warned about.
const NEARLY_FULL_PER_MILLE: u64 = 900;

// ---- helpers -------------------------------------------------------------------------------

fn at(t: OffsetDateTime) -> Value {
    Value::String(format_time(t))
}

/// Distinct subjects of events, newest first, at most [`MAX_EXAMPLES`].
fn examples<'e>(events: impl IntoIterator<Item = &'e Event>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in events.into_iter().filter_map(|e| e.subject.as_deref()) {
        if !out.iter().any(|o| o.eq_ignore_ascii_case(s)) && out.len() < MAX_EXAMPLES {
            out.push(s.to_owned());
        }
    }
    out
}

/// How many distinct subjects (events without one count one each).
fn distinct_subjects(events: &[&Event]) -> usize {
    let mut seen: Vec<String> = Vec::new();
    let mut anonymous = 0;
    for e in events {
        match &e.subject {
            Some(s) if !seen.contains(&s.to_lowercase()) => seen.push(s.to_lowercase()),
            Some(_) => {}
            None => anonymous += 1,
        }
    }
    seen.len() + anonymous
}

/// Count, first and last seen and example subjects of events (newest first).
fn seen(events: &[&Event]) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("requests".into(), json!(events.len()));
    if let (Some(last), Some(first)) = (events.first(), events.last()) {
        m.insert("first_seen".into(), at(first.at));
        m.insert("last_seen".into(), at(last.at));
    }
    m
}

/// A duration for people: `45 min`, `3 h 5 min`, `2 days 4 h`.
pub fn human(d: Duration) -> String {
    let minutes = d.whole_minutes().max(0);
    let (days, hours, mins) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (days, hours, mins) {
        (0, 0, m) => format!("{m} min"),
        (0, h, 0) => format!("{h} h"),
        (0, h, m) => format!("{h} h {m} min"),
        (1, 0, _) => "1 day".into(),
        (d, 0, _) => format!("{d} days"),
        (1, h, _) => format!("1 day {h} h"),
        (d, h, _) => format!("{d} days {h} h"),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn user_json(u: &UserSummary) -> Value {
    json!({ "id": u.id, "userName": u.user_name, "state": u.state().as_str() })
}

fn pending_json(pending: &[&PendingUser]) -> Value {
    let examples: Vec<Value> = pending
        .iter()
        .take(MAX_EXAMPLES)
        .map(|p| json!({ "id": p.id, "userName": p.user_name, "since": at(p.since) }))
        .collect();
    json!({ "count": pending.len(), "examples": examples })
}

fn region_json(r: &Region) -> Value {
    let mut v = json!({ "id": r.id, "name": r.name, "health": r.health.as_str(), "health_since": at(r.health_since) });
    if let Some(result) = &r.last_probe_result {
        v["last_probe_result"] = json!(result);
    }
    v
}

fn profile_json(p: &Profile) -> Value {
    json!({ "id": p.id, "name": p.name, "max_users": p.max_users, "active_users": p.active_users })
}

fn mapping_json(m: &Mapping) -> Value {
    json!({ "id": m.id, "name": m.name, "priority": m.priority, "enabled": m.enabled, "condition": m.filter })
}

fn api(f: &Facts) -> String {
    format!("/admin/api/v1/tenants/{}", f.tenant.id)
}

/// An event-based finding's severity: error while a refusal or hold stands, info once settled.
fn standing(outstanding: usize, pending: usize) -> Severity {
    if outstanding + pending > 0 { Severity::Error } else { Severity::Info }
}

// ---- the checks ----------------------------------------------------------------------------

/// Every tenant-wide check, in a fixed order.
pub fn tenant(f: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    out.extend(traffic(f));
    out.extend(wrong_url(f));
    out.extend(token_in_use(f, Cause::TokenExpired));
    out.extend(token_in_use(f, Cause::TokenRevoked));
    out.extend(token_validity(f));
    out.extend(no_mapping_matched(f));
    out.extend(no_catch_all(f));
    out.extend(unreachable_mappings(f));
    out.extend(profiles(f));
    for cause in [Cause::EmailInUseInTenant, Cause::EmailHeldByPreservedUser, Cause::EmailInUseElsewhere] {
        out.extend(email_conflict(f, cause));
    }
    out.extend(regions(f));
    out
}
