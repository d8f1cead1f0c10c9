//! Cause 6: refusals for an email someone else holds, one finding per kind of holder.

use serde_json::{Value, json};

use super::{MAX_EXAMPLES, api, distinct_subjects, examples, plural, seen, standing, user_json};
use crate::doctor::facts::{Facts, quoted_after};
use crate::doctor::fix::Wording;
use crate::doctor::{Finding, Severity, codes};
use crate::events::Cause;

/// Cause 6: refusals for an email held by someone else, one finding per kind of holder.
pub fn email_conflict(f: &Facts, cause: Cause) -> Option<Finding> {
    let events = f.with_cause(cause);
    let latest = events.first()?;
    let outstanding = f.outstanding(&events);
    let severity = standing(outstanding.len(), 0);
    let relevant = if outstanding.is_empty() { &events } else { &outstanding };
    let mut emails: Vec<String> = Vec::new();
    for e in relevant.iter() {
        if let Some(m) = e.detail.as_deref().and_then(|d| quoted_after(d, "the email \""))
            && !emails.iter().any(|x| x == m)
            && emails.len() < MAX_EXAMPLES
        {
            emails.push(m.to_owned());
        }
    }
    let mut evidence = seen(&events);
    evidence.insert("example_subjects".into(), json!(examples(relevant.iter().copied())));
    let w = Wording::new(f.idp);
    let users = distinct_subjects(relevant);
    let settled = if severity == Severity::Info { "; each was provisioned since" } else { "" };
    let (code, title, fix) = match cause {
        Cause::EmailInUseInTenant => {
            let holders: Vec<Value> = emails
                .iter()
                .map(|m| {
                    let holder = f.email_holders.iter().find(|h| h.email == *m).map(|h| user_json(&h.user));
                    json!({ "email": m, "held_by": holder })
                })
                .collect();
            evidence.insert("emails".into(), Value::Array(holders));
            (
                codes::EMAIL_IN_USE_IN_TENANT,
                format!(
                    "{} refused: another user of this tenant already has the email{settled}",
                    plural(users, "user was", "users were")
                ),
                vec![
                    "If it is the same person, the identity provider should update the existing user (link it, e.g. by \
                     matching userName) instead of creating a second one"
                        .into(),
                    "If they are different people, give the new user a different email in the identity provider".into(),
                    w.retry(),
                ],
            )
        }
        Cause::EmailHeldByPreservedUser => {
            let holders: Vec<Value> = emails
                .iter()
                .map(|m| {
                    let holder = f.email_holders.iter().find(|h| h.email == *m);
                    let mut v = json!({ "email": m, "held_by": holder.map(|h| user_json(&h.user)) });
                    if let Some(h) = holder {
                        v["restore"] = json!(format!("POST {}/users/{}/restore", api(f), h.user.id));
                        v["purge"] = json!(format!("DELETE {}/users/{}", api(f), h.user.id));
                    }
                    v
                })
                .collect();
            evidence.insert("emails".into(), Value::Array(holders));
            (
                codes::EMAIL_HELD_BY_PRESERVED_USER,
                format!(
                    "{} refused: a preserved (deactivated or deleted) user of this tenant holds the email{settled}",
                    plural(users, "user was", "users were")
                ),
                vec![
                    "If it is the same person coming back, have the identity provider send the preserved user's \
                     userName: scimd re-activates that user with its data (a re-hire)"
                        .into(),
                    "Or restore the preserved user (its restore link is in the evidence), which hands it back to the \
                     identity provider"
                        .into(),
                    "Or purge the preserved user to release the email (its purge link is in the evidence; its backups \
                     are deleted)"
                        .into(),
                    w.retry(),
                ],
            )
        }
        _ => {
            // Nothing about the other tenant is known here, and nothing may be: only this tenant's
            // own requests and emails are shown.
            evidence.insert("emails".into(), json!(emails));
            (
                codes::EMAIL_IN_USE_ELSEWHERE,
                format!(
                    "{} refused: the email is already in use elsewhere in the cloud (emails are unique across all \
                     customers){settled}",
                    plural(users, "user was", "users were")
                ),
                vec![
                    "Use a different email for this user in the identity provider".into(),
                    "If the email belongs to your organisation (for example a former trial account), ask the cloud \
                     operator to release the stale claim; who holds it is never shown to other customers"
                        .into(),
                    w.retry(),
                ],
            )
        }
    };
    evidence.insert("last_detail".into(), json!(latest.detail));
    Some(Finding { severity, code, title, evidence: Value::Object(evidence), fix })
}
