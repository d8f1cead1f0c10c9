//! Whether the IdP reaches the tenant: cause 1 tenant-wide (stalled, no requests yet) and
//! cause 2 (a wrong SCIM base URL).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use super::{
    MAX_EXAMPLES, STALL_BURST, STALL_MIN_GAPS, STALL_MIN_REQUESTS, STALL_MIN_SILENCE, at, human, plural, seen,
};
use crate::clock::format_time;
use crate::doctor::facts::Facts;
use crate::doctor::fix::Wording;
use crate::doctor::{Finding, Severity, codes};
use crate::events::{Cause, Outcome};

/// Cause 1, tenant-wide: the IdP used to call regularly and has gone quiet; or never called.
///
/// Stalled: at least [`STALL_MIN_REQUESTS`] accepted requests in the window, and a silence since
/// the last request longer than max(3 × the median gap, [`STALL_MIN_SILENCE`]). Gaps are measured
/// between contacts (requests [`STALL_BURST`] apart or more); [`STALL_MIN_GAPS`] regular gaps at
/// least are needed: one sync that pushed fifty users is no rhythm, and IdPs that push only
/// changes (Okta) would otherwise look stalled hours after every burst.
pub fn traffic(f: &Facts) -> Option<Finding> {
    let w = Wording::new(f.idp);
    let mut times: Vec<OffsetDateTime> = f.idp_events().map(|e| e.at).collect();
    times.sort();
    let Some(&last) = times.last() else {
        // Nothing in the window: quiet since before it, or never called at all.
        return Some(match f.tokens.iter().filter_map(|t| t.last_used_at).max() {
            // Quiet is not broken: an IdP that pushes only changes (Okta, Entra's incremental
            // cycles) sends nothing while nothing changes. Worth knowing, not a warning.
            Some(used) => Finding {
                severity: Severity::Info,
                code: codes::STALLED,
                title: format!(
                    "The identity provider has gone quiet: no request in the last {} days (the last one arrived {})",
                    f.window_days,
                    format_time(used)
                ),
                evidence: json!({ "last_request_at": at(used), "silent_for": human(f.now - used),
                                  "requests_in_window": 0 }),
                fix: w.quiet(&format_time(used)),
            },
            None => Finding {
                severity: Severity::Info,
                code: codes::NO_REQUESTS_YET,
                title: "No SCIM request has reached this tenant yet".into(),
                evidence: json!({ "requests_in_window": 0, "tokens": f.tokens.len() }),
                fix: vec![
                    w.base_url(&f.scim_base()),
                    format!(
                        "Authenticate with a token of this tenant (scimd token new --tenant {}); {}",
                        f.tenant.name,
                        w.paste_token()
                    ),
                ],
            },
        });
    };
    let accepted = f.idp_events().filter(|e| e.outcome == Outcome::Accepted).count();
    let mut gaps: Vec<Duration> = times.windows(2).map(|p| p[1] - p[0]).filter(|g| *g >= STALL_BURST).collect();
    if accepted < STALL_MIN_REQUESTS || gaps.len() < STALL_MIN_GAPS {
        return None;
    }
    gaps.sort();
    let median = gaps[gaps.len() / 2];
    // Only a rhythm makes silence suspicious: contacts at regular intervals (a polling IdP such as
    // Entra's 40-minute cycle), not a handful of changes pushed now and then.
    let p80 = gaps[gaps.len() * 4 / 5];
    if p80 > median * 3 {
        return None;
    }
    let threshold: Duration = std::cmp::max(median * 3, STALL_MIN_SILENCE);
    let silent = f.now - last;
    if silent <= threshold {
        return None;
    }
    Some(Finding {
        severity: Severity::Warning,
        code: codes::STALLED,
        title: format!(
            "The identity provider has gone quiet: no request for {}, while it usually calls every {}",
            human(silent),
            human(median)
        ),
        evidence: json!({
            "requests_in_window": times.len(),
            "accepted_in_window": accepted,
            "contacts": gaps.len() + 1,
            "usual_interval": human(median),
            "usual_interval_seconds": median.whole_seconds(),
            "last_request_at": at(last),
            "silent_for": human(silent),
            "silent_for_seconds": silent.whole_seconds(),
            "threshold_seconds": threshold.whole_seconds(),
        }),
        fix: w.quiet(&format_time(last)),
    })
}

/// What a wrong path most likely means.
fn path_hint(path: &str) -> &'static str {
    if path.starts_with("/scim/v2/") {
        "an endpoint that does not exist under the right base URL (a typo, or a resource scimd does not serve)"
    } else if path.starts_with("/scim/") || path == "/scim" {
        "the base URL is missing /v2"
    } else {
        "the base URL is not /scim/v2"
    }
}

/// Cause 2: requests with the tenant's token aimed at a path that is no SCIM endpoint.
pub fn wrong_url(f: &Facts) -> Option<Finding> {
    let events = f.with_cause(Cause::UnknownPath);
    let last = events.first()?;
    let mut paths: BTreeMap<&str, (usize, OffsetDateTime)> = BTreeMap::new();
    for e in &events {
        let entry = paths.entry(e.path.as_str()).or_insert((0, e.at));
        entry.0 += 1;
        entry.1 = entry.1.max(e.at);
    }
    let mut by_count: Vec<_> = paths.iter().collect();
    by_count.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
    let shown: Vec<Value> = by_count
        .iter()
        .take(MAX_EXAMPLES)
        .map(|(p, (n, last))| json!({ "path": p, "requests": n, "last_seen": at(*last), "hint": path_hint(p) }))
        .collect();
    // A wrong base URL fails every request: once one is accepted after the last wrong one, the
    // IdP was fixed. A wrong endpoint under the right base URL can coexist with accepted
    // requests, so it stands for the window.
    let base_wrong = paths.keys().all(|p| !p.starts_with("/scim/v2/"));
    let fixed = base_wrong && f.accepted_after(last);
    let mut evidence = seen(&events);
    evidence.insert("distinct_paths".into(), json!(paths.len()));
    evidence.insert("paths".into(), Value::Array(shown));
    evidence.insert("correct_base_path".into(), json!("/scim/v2"));
    evidence.insert("correct_base_url".into(), json!(f.scim_base()));
    evidence.insert("fixed_since_last_seen".into(), json!(fixed));
    let w = Wording::new(f.idp);
    let first_path = by_count.first().map(|(p, _)| **p).unwrap_or_default();
    Some(Finding {
        severity: if fixed { Severity::Info } else { Severity::Error },
        code: codes::WRONG_URL,
        title: if fixed {
            format!(
                "The identity provider used a wrong SCIM URL ({first_path}) until {}; requests since then are accepted",
                format_time(last.at)
            )
        } else {
            format!(
                "The identity provider calls a wrong SCIM URL: {} to {} that {} no SCIM endpoint (e.g. {first_path}); \
                 the SCIM base URL is {}",
                plural(events.len(), "request", "requests"),
                plural(paths.len(), "path", "paths"),
                if paths.len() == 1 { "is" } else { "are" },
                f.scim_base()
            )
        },
        evidence: Value::Object(evidence),
        fix: vec![
            w.base_url(&f.scim_base()),
            "The base URL is the same for every tenant; the token selects the tenant. Do not add /Users or a \
             tenant id to it"
                .into(),
            w.retry(),
        ],
    })
}
