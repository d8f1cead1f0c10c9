//! Cause 1 for a named user: never heard of, refused, looked up but never created, removed,
//! or found (its state, profile and region, and why it is not active when it is not).

use serde_json::{Value, json};

use super::{MAX_EXAMPLES, api, at, plural, profile_json, region_json};
use crate::clock::{format_date, format_time};
use crate::doctor::facts::{Facts, UserFacts, UserSummary, is_write};
use crate::doctor::fix::{Wording, for_cause};
use crate::doctor::{Finding, Severity, codes};
use crate::events::{Cause, Event, Outcome};
use crate::provisioning::{Actor, UserState};

/// Cause 1 for a named user: never heard of, refused, or found (with its state).
pub fn user(f: &Facts) -> Option<Finding> {
    let u = f.user.as_ref()?;
    let w = Wording::new(f.idp);
    Some(match &u.found {
        Some(found) => user_found(f, u, found, w),
        None => match u.events.iter().find(|e| is_write(&e.operation)) {
            None if u.events.is_empty() => never_heard_of(f, u, w),
            None => user_not_created(u, w),
            Some(last) if last.outcome == Outcome::Accepted => user_removed(u, last),
            Some(last) => user_refused(f, u, last, w),
        },
    })
}

fn recent_requests(events: &[Event]) -> Value {
    events
        .iter()
        .take(MAX_EXAMPLES)
        .map(|e| {
            json!({ "at": at(e.at), "operation": e.operation, "outcome": e.outcome.as_str(),
                    "cause": e.cause.as_str(), "status": e.status })
        })
        .collect()
}

fn never_heard_of(f: &Facts, u: &UserFacts, w: Wording) -> Finding {
    Finding {
        severity: Severity::Error,
        code: codes::NEVER_HEARD_OF,
        title: format!(
            "No request for {} has reached this tenant: the user is most likely not assigned to the SCIM app in \
             your identity provider",
            u.query
        ),
        evidence: json!({
            "user": u.query,
            "searched": "users of this tenant by userName, email and externalId (in any state), and every \
                         request in the provisioning log (its whole retention, not only the window)",
            "requests_in_window_from_idp": f.idp_events().count(),
        }),
        fix: vec![
            w.assign(&u.query),
            "If the user is assigned, make sure the identity provider can reach scimd: the other errors of this \
             report (wrong URL, token) stop every request"
                .into(),
            format!("Run the doctor again for {} once the identity provider has pushed the user", u.query),
        ],
    }
}

fn user_not_created(u: &UserFacts, w: Wording) -> Finding {
    let last = &u.events[0];
    Finding {
        severity: Severity::Warning,
        code: codes::USER_NOT_CREATED,
        title: format!(
            "The identity provider looked {} up ({}, last on {}) but never sent a create",
            u.query,
            plural(u.events.len(), "request", "requests"),
            format_date(last.at)
        ),
        evidence: json!({ "user": u.query, "recent_requests": recent_requests(&u.events) }),
        fix: vec![w.assign(&u.query), w.not_created()],
    }
}

fn user_removed(u: &UserFacts, last: &Event) -> Finding {
    Finding {
        severity: Severity::Info,
        code: codes::USER_REMOVED,
        title: format!(
            "{} is not in this tenant any more: the last change ({} on {}) was accepted",
            u.query,
            last.operation,
            format_date(last.at)
        ),
        evidence: json!({ "user": u.query, "recent_requests": recent_requests(&u.events) }),
        fix: vec!["If the user should exist, assign it to the SCIM app in the identity provider again".into()],
    }
}

fn user_refused(f: &Facts, u: &UserFacts, last: &Event, w: Wording) -> Finding {
    Finding {
        severity: Severity::Error,
        code: codes::USER_REFUSED,
        title: format!(
            "{} is not provisioned: the last request ({} on {}) was refused: {}",
            u.query,
            last.operation,
            format_time(last.at),
            last.cause.as_str()
        ),
        evidence: json!({
            "user": u.query,
            "cause": last.cause.as_str(),
            "status": last.status,
            "detail": last.detail,
            "recent_requests": recent_requests(&u.events),
        }),
        fix: for_cause(last.cause, w, &f.scim_base(), &f.tenant.id),
    }
}

fn user_found(f: &Facts, u: &UserFacts, found: &UserSummary, w: Wording) -> Finding {
    let p = found.placement.as_ref();
    let profile = p.and_then(|p| p.profile_id.as_deref()).and_then(|id| f.profile(id));
    let region = p.and_then(|p| p.region_id.as_deref()).and_then(|id| f.region(id));
    let state = found.state();
    let mut evidence = json!({
        "user": { "id": found.id, "userName": found.user_name, "externalId": found.external_id },
        "state": state.as_str(),
        "since": p.map(|p| at(p.since)),
        "profile": profile.map(profile_json),
        "region": region.map(region_json),
        "managed_by": p.map(|p| p.managed_by),
        "claimed_email": p.and_then(|p| p.claimed_email.clone()),
        "recent_requests": recent_requests(&u.events),
    });
    let since = p.map(|p| p.since);
    // A refusal later than the user's current state explains why it is not in the state asked for.
    let refused = u
        .events
        .iter()
        .find(|e| is_write(&e.operation))
        .filter(|e| matches!(e.outcome, Outcome::Refused) && since.is_none_or(|s| e.at >= s));
    let where_ = match (profile, region) {
        (Some(p), Some(r)) => format!(" in profile \"{}\", region \"{}\" ({})", p.name, r.name, r.health.as_str()),
        (Some(p), None) => format!(" in profile \"{}\"", p.name),
        _ => String::new(),
    };
    let (title, fix) = match (state, p.and_then(|p| p.pending_cause), refused) {
        (UserState::Pending, cause, _) => {
            evidence["pending_cause"] = json!(cause.map(Cause::as_str));
            let since = since.map(format_time).unwrap_or_default();
            match cause {
                Some(cause) => (
                    format!(
                        "{} is pending since {since}: held until {} clears; scimd activates it by itself then",
                        found.user_name,
                        cause.as_str()
                    ),
                    // No retry step: a held user needs none.
                    for_cause(cause, w, &f.scim_base(), &f.tenant.id).into_iter().filter(|s| *s != w.retry()).collect(),
                ),
                None => (format!("{} is pending since {since}", found.user_name), Vec::new()),
            }
        }
        (_, _, Some(e)) => {
            evidence["refused"] =
                json!({ "at": at(e.at), "operation": e.operation, "cause": e.cause.as_str(), "detail": e.detail });
            (
                format!(
                    "{} is {}{}; the last change ({} on {}) was refused: {}",
                    found.user_name,
                    state.as_str(),
                    where_,
                    e.operation,
                    format_time(e.at),
                    e.cause.as_str()
                ),
                for_cause(e.cause, w, &f.scim_base(), &f.tenant.id),
            )
        }
        (UserState::Preserved | UserState::Deleted, _, None) => {
            let by_admin = p.and_then(|p| p.preserved_by) == Some(Actor::Admin);
            let how =
                if state == UserState::Deleted { "deleted (data preserved)" } else { "deactivated (data preserved)" };
            let fix = if by_admin {
                vec![format!(
                    "An administrator preserved it: restore it first (POST {}/users/{}/restore)",
                    api(f),
                    found.id
                )]
            } else {
                vec![w.assign(&found.user_name), "The identity provider re-activates it (same id, same data)".into()]
            };
            (
                format!(
                    "{} is {}{} since {}",
                    found.user_name,
                    how,
                    where_,
                    since.map(format_time).unwrap_or_default()
                ),
                fix,
            )
        }
        (UserState::Active, _, None) => (format!("{} is active{}", found.user_name, where_), Vec::new()),
    };
    Finding { severity: Severity::Info, code: codes::USER_FOUND, title, evidence, fix }
}
