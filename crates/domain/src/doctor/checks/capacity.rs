//! Causes 5 and 7: profiles full or nearly so, and storage regions that are not healthy, with
//! the users they refused or hold.

use serde_json::{Value, json};

use super::{
    NEARLY_FULL_PER_MILLE, api, distinct_subjects, examples, pending_json, plural, profile_json, region_json, seen,
    standing,
};
use crate::clock::format_time;
use crate::doctor::facts::{Facts, PendingUser, quoted_after};
use crate::doctor::fix::Wording;
use crate::doctor::{Finding, Severity, codes};
use crate::events::{Cause, Event, Outcome};
use crate::provisioning::{Health, Mapping, Profile, Region};

/// Cause 5: profiles that are full or nearly so, and the users they refused or hold.
pub fn profiles(f: &Facts) -> Vec<Finding> {
    // Held users are counted from the pending list, which knows their profile (a held request's
    // event does not name it).
    let events: Vec<&Event> =
        f.with_cause(Cause::ProfileFull).into_iter().filter(|e| e.outcome == Outcome::Refused).collect();
    let pending = f.pending_for(Cause::ProfileFull);
    let name_of = |e: &Event| e.detail.as_deref().and_then(|d| quoted_after(d, "the profile \"")).map(str::to_owned);
    let w = Wording::new(f.idp);
    let mut out = Vec::new();
    for p in &f.profiles {
        let mine: Vec<&Event> =
            events.iter().copied().filter(|e| name_of(e).as_deref() == Some(p.name.as_str())).collect();
        let held: Vec<&PendingUser> =
            pending.iter().copied().filter(|u| u.profile_id.as_deref() == Some(p.id.as_str())).collect();
        out.extend(profile_finding(f, w, Some(p), &mine, &held));
    }
    // Refusals naming a profile that no longer exists under that name.
    let orphans: Vec<&Event> = events
        .iter()
        .copied()
        .filter(|e| !f.profiles.iter().any(|p| name_of(e).as_deref() == Some(p.name.as_str())))
        .collect();
    out.extend(profile_finding(f, w, None, &orphans, &[]));
    out
}

fn profile_finding(
    f: &Facts,
    w: Wording,
    p: Option<&Profile>,
    events: &[&Event],
    held: &[&PendingUser],
) -> Option<Finding> {
    let outstanding = f.outstanding(events);
    let (max, used) = p.map_or((0, 0), |p| (u64::from(p.max_users), u64::from(p.active_users)));
    let full = max > 0 && used >= max;
    let nearly = max > 0 && used * 1000 >= max * NEARLY_FULL_PER_MILLE;
    let severity = match standing(outstanding.len(), held.len()) {
        Severity::Error => Severity::Error,
        _ if full || nearly => Severity::Warning,
        _ if !events.is_empty() => Severity::Info,
        _ => return None,
    };
    let name = p.map_or("(renamed or deleted)".to_owned(), |p| format!("\"{}\"", p.name));
    let usage = format!("{used} of {max} seats");
    let users = distinct_subjects(&outstanding).max(held.len());
    let title = match severity {
        Severity::Error if full => {
            format!("Profile {name} is full ({usage}): {} refused or held", plural(users, "user was", "users were"))
        }
        Severity::Error => format!(
            "{} refused or held while profile {name} was full; it has room now ({usage}): retry them",
            plural(users, "user was", "users were")
        ),
        Severity::Warning if full => {
            format!("Profile {name} is full ({usage}): the next user mapped to it will be refused")
        }
        Severity::Warning => format!("Profile {name} is nearly full ({usage})"),
        Severity::Info => format!("Profile {name} refused users when it was full; each was provisioned since"),
    };
    let mut evidence = seen(events);
    if let Some(p) = p {
        evidence.insert("profile".into(), profile_json(p));
        if p.max_users > 0 {
            evidence.insert("utilisation_percent".into(), json!(used * 100 / max));
        }
    }
    evidence.insert(
        "example_subjects".into(),
        json!(examples(if outstanding.is_empty() { events } else { &outstanding }.iter().copied())),
    );
    evidence.insert("pending_users".into(), pending_json(held));
    let raise = match p {
        Some(p) => format!(
            "Raise Max users of profile \"{}\" (Profiles, or PATCH {}/profiles/{} with, for example, \
             {{\"max_users\": {}}}); held users are activated at once, oldest first",
            p.name,
            api(f),
            p.id,
            (max + 10).max(max * 5 / 4)
        ),
        None => format!(
            "Raise the Max users of the profile the refusals name (Profiles, or PATCH {}/profiles/{{profile_id}})",
            api(f)
        ),
    };
    let mut fix = vec![raise, w.unassign(), "Or map some of these users to another profile (SCIM Mappings)".into()];
    if !f.settings.hold.profile_full {
        fix.push(format!(
            "To have such users wait instead of being refused, turn on holding: PUT {}/settings with hold.profile_full = true",
            api(f)
        ));
    }
    if !outstanding.is_empty() {
        fix.push(w.retry());
    }
    let code = if full || severity != Severity::Warning { codes::PROFILE_FULL } else { codes::PROFILE_NEARLY_FULL };
    Some(Finding { severity, code, title, evidence: Value::Object(evidence), fix })
}

/// Cause 7: regions this tenant uses that are not healthy, and the users they refused or hold.
/// One finding per region: `region_unhealthy` when users were refused or are held for it (an
/// error while that stands), else `mapping_region_unhealthy` (predicted: a warning naming the
/// mappings that send users there).
pub fn regions(f: &Facts) -> Vec<Finding> {
    // Held users are counted from the pending list, as for profiles.
    let events: Vec<&Event> =
        f.with_cause(Cause::RegionUnhealthy).into_iter().filter(|e| e.outcome == Outcome::Refused).collect();
    let pending = f.pending_for(Cause::RegionUnhealthy);
    let name_of =
        |e: &Event| e.detail.as_deref().and_then(|d| quoted_after(d, "the storage region \"")).map(str::to_owned);
    let w = Wording::new(f.idp);
    let mut out = Vec::new();
    // The regions the tenant's enabled mappings send users to, those its held users wait for,
    // and those its refusals name, each once.
    let named: Vec<&str> = f
        .regions
        .iter()
        .filter(|r| events.iter().any(|e| name_of(e).as_deref() == Some(r.name.as_str())))
        .map(|r| r.id.as_str())
        .collect();
    let mut ids: Vec<&str> = Vec::new();
    let candidates = f
        .mappings
        .iter()
        .filter(|m| m.enabled)
        .map(|m| m.region_id.as_str())
        .chain(pending.iter().filter_map(|p| p.region_id.as_deref()))
        .chain(named);
    for id in candidates {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    for id in ids {
        let Some(region) = f.region(id) else { continue };
        let mine: Vec<&Event> =
            events.iter().copied().filter(|e| name_of(e).as_deref() == Some(region.name.as_str())).collect();
        let held: Vec<&PendingUser> =
            pending.iter().copied().filter(|p| p.region_id.as_deref() == Some(region.id.as_str())).collect();
        let mappings: Vec<&Mapping> = f.mappings.iter().filter(|m| m.enabled && m.region_id == region.id).collect();
        out.extend(region_finding(f, w, region, &mine, &held, &mappings));
    }
    out
}

fn region_finding(
    f: &Facts,
    w: Wording,
    region: &Region,
    events: &[&Event],
    held: &[&PendingUser],
    mappings: &[&Mapping],
) -> Option<Finding> {
    let outstanding = f.outstanding(events);
    let unhealthy = region.health != Health::Healthy;
    let mut evidence = seen(events);
    evidence.insert("region".into(), region_json(region));
    evidence.insert("mappings".into(), json!(mappings.iter().map(|m| m.name.clone()).collect::<Vec<_>>()));
    let retry_note = "Nothing to change in the identity provider: scimd answers 503 with Retry-After, and the \
                      retry succeeds once the region is healthy";
    let move_step = format!(
        "Or point the mappings that use it at a healthy region (PATCH {}/mappings/{{mapping_id}} {{\"region_id\": …}})",
        api(f)
    );
    if !outstanding.is_empty() || !held.is_empty() {
        let relevant = if outstanding.is_empty() { events.to_vec() } else { outstanding.clone() };
        evidence.insert("example_subjects".into(), json!(examples(relevant.iter().copied())));
        evidence.insert("pending_users".into(), pending_json(held));
        let users = distinct_subjects(&relevant).max(held.len());
        let title = if unhealthy {
            format!(
                "Storage region \"{}\" is {} since {}: {} refused or held",
                region.name,
                region.health.as_str(),
                format_time(region.health_since),
                plural(users, "user was", "users were")
            )
        } else {
            format!(
                "{} refused while storage region \"{}\" was unhealthy; it is healthy again: retry them",
                plural(users, "user was", "users were"),
                region.name
            )
        };
        let mut fix = Vec::new();
        if unhealthy {
            fix.push(format!(
                "The cloud operator restores the region (its health: scimd region list; its probe's last result is in the evidence). {retry_note}"
            ));
            fix.push(move_step);
            if held.is_empty() && !f.settings.hold.region_unhealthy {
                fix.push(format!(
                    "To accept such users now and activate them when the region recovers, turn on holding: PUT {}/settings with hold.region_unhealthy = true",
                    api(f)
                ));
            } else {
                fix.push("Held users are activated by themselves when the region is healthy again".into());
            }
        }
        fix.push(w.retry());
        return Some(Finding {
            severity: Severity::Error,
            code: super::codes::REGION_UNHEALTHY,
            title,
            evidence: Value::Object(evidence),
            fix,
        });
    }
    if unhealthy && !mappings.is_empty() {
        return Some(Finding {
            severity: Severity::Warning,
            code: codes::MAPPING_REGION_UNHEALTHY,
            title: format!(
                "{} {} users to storage region \"{}\", which is {}: new users mapped there will be refused",
                plural(mappings.len(), "mapping sends", "mappings send"),
                if mappings.len() == 1 { "its" } else { "their" },
                region.name,
                region.health.as_str()
            ),
            evidence: Value::Object(evidence),
            fix: vec![format!("The cloud operator restores the region. {retry_note}"), move_step],
        });
    }
    if !events.is_empty() {
        return Some(Finding {
            severity: Severity::Info,
            code: codes::REGION_UNHEALTHY,
            title: format!(
                "Storage region \"{}\" refused users while it was unhealthy; each was provisioned since",
                region.name
            ),
            evidence: Value::Object(evidence),
            fix: Vec::new(),
        });
    }
    None
}
