//! Cause 3: expired or revoked tokens still presented, no valid token, a token about to expire.

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{TOKEN_WARNING, api, at, human, plural, seen};
use crate::clock::{format_date, format_time};
use crate::doctor::facts::{Facts, after};
use crate::doctor::fix::Wording;
use crate::doctor::{Finding, Severity, codes};
use crate::events::{Cause, Event, Outcome};
use crate::token::{RevokeReason, TokenRecord, TokenState};

/// When a token stopped working, and why.
fn token_end(t: &TokenRecord, now: OffsetDateTime) -> (OffsetDateTime, &'static str) {
    match (t.state_at(now), t.revoked_at) {
        (TokenState::Revoked, Some(r)) if t.revoke_reason == Some(RevokeReason::Rotated) => (r, "replaced"),
        (TokenState::Revoked, Some(r)) => (r, "revoked"),
        _ => (t.expires_at, "expired"),
    }
}

/// The newest token that authenticates now.
fn current_token(f: &Facts) -> Option<&TokenRecord> {
    f.tokens.iter().filter(|t| t.state_at(f.now) == TokenState::Active).max_by_key(|t| t.created_at)
}

/// Cause 3: an expired (or a revoked) token still being presented.
pub fn token_in_use(f: &Facts, cause: Cause) -> Option<Finding> {
    let events = f.with_cause(cause);
    if events.is_empty() {
        return None;
    }
    // Per token, newest first.
    let mut groups: Vec<(Option<&str>, Vec<&Event>)> = Vec::new();
    for e in &events {
        match groups.iter_mut().find(|(id, _)| *id == e.token_id.as_deref()) {
            Some((_, list)) => list.push(e),
            None => groups.push((e.token_id.as_deref(), vec![e])),
        }
    }
    let mut standing_tokens = 0;
    let mut tokens = Vec::new();
    let mut names = Vec::new();
    for (id, list) in &groups {
        let record = id.and_then(|id| f.token(id));
        // Another token accepted after the last refusal: the IdP has been given a working one.
        let replaced =
            f.idp_events().any(|e| e.outcome == Outcome::Accepted && after(e, list[0]) && e.token_id.as_deref() != *id);
        if !replaced {
            standing_tokens += 1;
        }
        let prefix = record.map_or("unknown token".to_owned(), |t| t.prefix.clone());
        let mut entry = seen(list);
        entry.insert("prefix".into(), json!(prefix));
        if let Some(t) = record {
            let (end, how) = token_end(t, f.now);
            entry.insert(format!("{how}_at"), at(end));
            names.push(format!("{prefix} ({how} on {})", format_date(end)));
        } else {
            names.push(prefix);
        }
        entry.insert("still_presented".into(), json!(!replaced));
        tokens.push(Value::Object(entry));
    }
    let (code, word) = match cause {
        Cause::TokenExpired => (codes::TOKEN_EXPIRED_IN_USE, "expired"),
        _ => (codes::TOKEN_REVOKED_IN_USE, "revoked or replaced"),
    };
    let mut evidence = seen(&events);
    evidence.insert("tokens".into(), Value::Array(tokens));
    let current = current_token(f);
    evidence.insert(
        "current_token".into(),
        current.map_or(Value::Null, |t| json!({ "prefix": t.prefix, "expires_at": at(t.expires_at) })),
    );
    let w = Wording::new(f.idp);
    let first_seen = events.last().map_or(f.now, |e| e.at);
    let mut fix = vec![match current {
        Some(t) => format!(
            "Use the tenant's current SCIM token ({}…, expires {}); scimd shows a token only when it is issued, so \
             if nobody kept it, issue a new one: scimd token new --tenant {} (or Deployment settings > New Token, or \
             POST {}/tokens)",
            t.prefix,
            format_date(t.expires_at),
            f.tenant.name,
            api(f)
        ),
        None => format!(
            "Issue a new SCIM token: scimd token new --tenant {} (or Deployment settings > New Token, or POST {}/tokens)",
            f.tenant.name,
            api(f)
        ),
    }];
    fix.push(w.paste_token());
    fix.push(format!(
        "Next time rotate without an outage: issue the new token with an overlap (scimd token new --tenant {} \
         --keep-old-for 7d), paste it, and let the old one lapse",
        f.tenant.name
    ));
    fix.push(w.retry());
    Some(Finding {
        severity: if standing_tokens > 0 { Severity::Error } else { Severity::Info },
        code,
        title: if standing_tokens > 0 {
            format!(
                "The identity provider still sends the {word} SCIM token {}: {} refused with 401 since {}",
                names.join(", "),
                plural(events.len(), "request", "requests"),
                format_time(first_seen)
            )
        } else {
            format!(
                "The identity provider sent the {word} SCIM token {} until {}; a valid token is used since",
                names.join(", "),
                format_time(events[0].at)
            )
        },
        evidence: Value::Object(evidence),
        fix,
    })
}

/// Cause 3, from state: no valid token at all, or the last one expiring within 30 days.
pub fn token_validity(f: &Facts) -> Option<Finding> {
    let active: Vec<&TokenRecord> = f.tokens.iter().filter(|t| t.state_at(f.now) == TokenState::Active).collect();
    let w = Wording::new(f.idp);
    let new_token = format!(
        "Issue a new SCIM token with an overlap so that nothing breaks: scimd token new --tenant {} --keep-old-for 7d \
         (or Deployment settings > New Token, or POST {}/tokens)",
        f.tenant.name,
        api(f)
    );
    // A token in a rotation overlap stops at its revocation, before its expiry.
    let end = |t: &TokenRecord| t.revoked_at.map_or(t.expires_at, |r| r.min(t.expires_at));
    let Some(best) = active.iter().copied().max_by_key(|t| end(t)) else {
        let listed: Vec<Value> = f
            .tokens
            .iter()
            .take(3)
            .map(|t| {
                let (end, how) = token_end(t, f.now);
                json!({ "prefix": t.prefix, "state": how, "since": at(end) })
            })
            .collect();
        return Some(Finding {
            severity: Severity::Error,
            code: codes::NO_VALID_TOKEN,
            title: if f.tokens.is_empty() {
                "The tenant has no SCIM token: the identity provider cannot authenticate".into()
            } else {
                "The tenant has no valid SCIM token: every request from the identity provider is refused with 401"
                    .into()
            },
            evidence: json!({ "tokens": f.tokens.len(), "latest": listed }),
            fix: vec![
                format!(
                    "Issue a SCIM token: scimd token new --tenant {} (or Deployment settings > New Token, or POST {}/tokens)",
                    f.tenant.name,
                    api(f)
                ),
                w.paste_token(),
                w.retry(),
            ],
        });
    };
    let left = end(best) - f.now;
    if left > TOKEN_WARNING {
        return None;
    }
    // Rounded to the nearest day: stored times lose sub-microseconds, and "10 days" is what an
    // admin who issued a 10-day token expects to read.
    let days_left = (left.whole_seconds() + 43_200) / 86_400;
    let when = if days_left >= 1 { plural(days_left as usize, "day", "days") } else { human(left) };
    Some(Finding {
        severity: Severity::Warning,
        code: codes::TOKEN_EXPIRING,
        title: format!(
            "The SCIM token {} stops working in {when} ({}); provisioning stops then unless the identity provider gets a new token",
            best.prefix,
            format_date(end(best))
        ),
        evidence: json!({
            "prefix": best.prefix,
            "expires_at": at(end(best)),
            "days_left": days_left,
            "last_used_at": best.last_used_at.map(at),
            "active_tokens": active.len(),
        }),
        fix: vec![new_token, w.paste_token(), "The old token keeps working until the overlap ends".into()],
    })
}
