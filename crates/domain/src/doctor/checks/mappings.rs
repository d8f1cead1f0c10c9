//! Cause 4: users no mapping matched, and the static checks of the mappings themselves.

use serde_json::{Value, json};

use super::{api, distinct_subjects, examples, mapping_json, pending_json, plural, seen, standing};
use crate::clock::format_time;
use crate::doctor::facts::Facts;
use crate::doctor::fix::Wording;
use crate::doctor::{Finding, Severity, codes};
use crate::events::{Cause, Outcome};
use crate::provisioning::Mapping;

/// Cause 4: users refused or held because no mapping matched them.
pub fn no_mapping_matched(f: &Facts) -> Option<Finding> {
    let events = f.with_cause(Cause::NoMappingMatched);
    let pending = f.pending_for(Cause::NoMappingMatched);
    let latest = events.first()?;
    let outstanding = f.outstanding(&events);
    let severity = standing(outstanding.len(), pending.len());
    let mut evidence = seen(&events);
    evidence.insert("refused".into(), json!(events.iter().filter(|e| e.outcome == Outcome::Refused).count()));
    evidence.insert("held".into(), json!(events.iter().filter(|e| e.outcome == Outcome::Held).count()));
    evidence.insert(
        "example_subjects".into(),
        json!(examples(if outstanding.is_empty() { &events } else { &outstanding }.iter().copied())),
    );
    evidence.insert("pending_users".into(), pending_json(&pending));
    evidence.insert("detail".into(), json!(latest.detail));
    evidence.insert("mappings".into(), Value::Array(f.mappings.iter().map(mapping_json).collect()));
    let w = Wording::new(f.idp);
    let users = distinct_subjects(if outstanding.is_empty() { &events } else { &outstanding });
    let mut fix = vec![
        format!(
            "Read the detail: for each mapping it names the clause that failed and the user's value. Test a user \
             against the mappings with POST {}/mappings/dry-run",
            api(f)
        ),
        w.attributes(),
        "Or correct the mapping's condition, or add a catch-all mapping (no condition) for everyone else".into(),
    ];
    if pending.is_empty() {
        fix.push(w.retry());
    } else {
        fix.push("Held users are activated by themselves once a mapping matches them".into());
    }
    Some(Finding {
        severity,
        code: codes::NO_MAPPING_MATCHED,
        title: if severity == Severity::Error {
            format!(
                "{} refused or held because none of the SCIM mappings matched (last on {})",
                plural(users.max(pending.len()), "user was", "users were"),
                format_time(latest.at)
            )
        } else {
            format!(
                "{} refused because no SCIM mapping matched; each was provisioned since",
                plural(users, "user was", "users were")
            )
        },
        evidence: Value::Object(evidence),
        fix,
    })
}

/// Cause 4, predicted: no enabled catch-all mapping.
pub fn no_catch_all(f: &Facts) -> Option<Finding> {
    if f.mappings.iter().any(|m| m.enabled && m.filter.is_none()) {
        return None;
    }
    let disabled: Vec<&Mapping> = f.mappings.iter().filter(|m| m.filter.is_none()).collect();
    let mut fix = Vec::new();
    if let Some(m) = disabled.first() {
        fix.push(format!(
            "Enable the catch-all mapping \"{}\" again (PATCH {}/mappings/{} {{\"enabled\": true}})",
            m.name,
            api(f),
            m.id
        ));
    } else {
        fix.push(format!(
            "Add a catch-all mapping (no condition) that runs last: POST {}/mappings {{\"name\": \"Everyone else\", \
             \"priority\": 1000000, \"profile_id\": \"…\"}}",
            api(f)
        ));
    }
    fix.push(
        "If only users matching your mappings may be provisioned, this is intended: then make sure the identity \
         provider sends the attributes the conditions test"
            .into(),
    );
    let held = f.settings.hold.no_mapping_matched;
    Some(Finding {
        severity: Severity::Warning,
        code: codes::NO_CATCH_ALL,
        title: format!(
            "No enabled catch-all mapping: a user that matches none of the {} is {}",
            plural(f.mappings.iter().filter(|m| m.enabled).count(), "enabled mapping", "enabled mappings"),
            if held { "held as pending" } else { "refused" }
        ),
        evidence: json!({
            "mappings": f.mappings.iter().map(mapping_json).collect::<Vec<_>>(),
            "disabled_catch_alls": disabled.iter().map(|m| m.name.clone()).collect::<Vec<_>>(),
            "hold_no_mapping_matched": held,
        }),
        fix,
    })
}

/// Cause 4: enabled mappings tried after an enabled catch-all never decide anything.
pub fn unreachable_mappings(f: &Facts) -> Option<Finding> {
    let position = f.mappings.iter().position(|m| m.enabled && m.filter.is_none())?;
    let catch_all = &f.mappings[position];
    let behind: Vec<&Mapping> = f.mappings[position + 1..].iter().filter(|m| m.enabled).collect();
    let first = behind.first()?;
    Some(Finding {
        severity: Severity::Warning,
        code: codes::UNREACHABLE_MAPPING,
        title: if behind.len() == 1 {
            format!(
                "Mapping \"{}\" (priority {}) is never reached: the catch-all \"{}\" (priority {}) runs before it",
                first.name, first.priority, catch_all.name, catch_all.priority
            )
        } else {
            format!(
                "{} mappings are never reached: the catch-all \"{}\" (priority {}) runs before them",
                behind.len(),
                catch_all.name,
                catch_all.priority
            )
        },
        evidence: json!({
            "catch_all": mapping_json(catch_all),
            "unreachable": behind.iter().map(|m| mapping_json(m)).collect::<Vec<_>>(),
        }),
        fix: vec![
            format!(
                "Mappings run in priority order, lowest number first: give each a lower priority than {} (PATCH {}/mappings/{{mapping_id}} {{\"priority\": …}}), or raise the catch-all's priority so it runs last",
                catch_all.priority,
                api(f)
            ),
            "Or disable or delete the mappings if they are no longer needed".into(),
        ],
    })
}
