//! Where a user lands: the first enabled mapping whose condition matches, with a trace of every
//! mapping for dry runs and refusals; and which of a user's emails is claimed cloud-wide.

use scim_proto::filter::{FailedClause, parse};
use scim_proto::schema::ResourceKind;
use serde::Serialize;
use serde_json::Value;

use super::model::{Mapping, normalise_email};

/// How one mapping fared against a user.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceEntry {
    /// The mapping's id.
    pub mapping_id: String,
    /// Its name.
    pub name: String,
    /// Its priority.
    pub priority: i64,
    /// `matched`, `failed`, `disabled`, `not_reached` (an earlier mapping matched) or `invalid`.
    pub result: &'static str,
    /// For `failed`: the clauses that failed, with the user's values.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<FailedClause>,
}

/// The mapping that decides (the first enabled one that matches), and the trace of all.
pub fn choose<'m>(mappings: &'m [Mapping], user: &Value) -> (Option<&'m Mapping>, Vec<TraceEntry>) {
    let rt = ResourceKind::User.resource_type();
    let mut chosen = None;
    let mut trace = Vec::with_capacity(mappings.len());
    for m in mappings {
        let entry = |result, failed| TraceEntry {
            mapping_id: m.id.clone(),
            name: m.name.clone(),
            priority: m.priority,
            result,
            failed,
        };
        if chosen.is_some() {
            trace.push(entry("not_reached", Vec::new()));
            continue;
        }
        if !m.enabled {
            trace.push(entry("disabled", Vec::new()));
            continue;
        }
        let Some(text) = &m.filter else {
            chosen = Some(m);
            trace.push(entry("matched", Vec::new()));
            continue;
        };
        // Conditions were validated when saved; one that no longer parses never matches.
        match parse(text) {
            Ok(filter) => {
                let explanation = filter.explain(user, rt);
                if explanation.matched {
                    chosen = Some(m);
                    trace.push(entry("matched", Vec::new()));
                } else {
                    trace.push(entry("failed", explanation.failed));
                }
            }
            Err(_) => trace.push(entry("invalid", Vec::new())),
        }
    }
    (chosen, trace)
}

/// A one-paragraph summary of a trace in which nothing matched, for the refusal's `detail`.
pub fn summarise(trace: &[TraceEntry]) -> String {
    if trace.is_empty() {
        return "the tenant has no SCIM mappings".into();
    }
    let parts: Vec<String> = trace
        .iter()
        .map(|t| match t.result {
            "failed" => {
                let clauses: Vec<String> = t
                    .failed
                    .iter()
                    .map(|c| {
                        let actual = match c.actual.as_slice() {
                            [] => "absent".to_owned(),
                            values => values.iter().map(Value::to_string).collect::<Vec<_>>().join(", "),
                        };
                        format!("{} (user has {actual})", c.clause)
                    })
                    .collect();
                format!("\"{}\": {}", t.name, clauses.join("; "))
            }
            other => format!("\"{}\": {other}", t.name),
        })
        .collect();
    parts.join(" | ")
}

/// The email a user claims cloud-wide, normalised: the primary email, else the work email, else
/// the first, else the userName when it is an email address.
pub fn claimable_email(user: &Value) -> Option<String> {
    let emails: &[Value] = user.get("emails").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    fn value(e: &Value) -> Option<&str> {
        e.get("value").and_then(Value::as_str).filter(|v| !v.trim().is_empty())
    }
    let is_work = |e: &Value| e.get("type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("work"));
    let pick = emails
        .iter()
        .find(|e| e.get("primary").and_then(Value::as_bool) == Some(true) && value(e).is_some())
        .or_else(|| emails.iter().find(|e| is_work(e) && value(e).is_some()))
        .or_else(|| emails.iter().find(|e| value(e).is_some()))
        .and_then(value);
    let chosen = pick.or_else(|| user.get("userName").and_then(Value::as_str).filter(|u| looks_like_email(u)))?;
    Some(normalise_email(chosen))
}

/// `local@domain` with something on each side: what userName-as-email looks like.
fn looks_like_email(text: &str) -> bool {
    matches!(text.trim().split_once('@'), Some((local, domain)) if !local.is_empty() && domain.contains('.') && !domain.contains('@'))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn mapping(name: &str, filter: Option<&str>, enabled: bool) -> Mapping {
        Mapping {
            id: name.into(),
            tenant_id: "t".into(),
            name: name.into(),
            priority: 0,
            filter: filter.map(Into::into),
            profile_id: "p".into(),
            region_id: "r".into(),
            enabled,
        }
    }

    #[test]
    fn first_enabled_match_decides_and_the_trace_says_why_others_did_not() {
        let user = json!({"userName": "a", "company": "Acme", "title": "Accountant"});
        let mappings = vec![
            mapping("engineers", Some("title co \"Engineer\""), true),
            mapping("off", None, false),
            mapping("acme", Some("company eq \"acme\""), true),
            mapping("everyone", None, true),
        ];
        let (chosen, trace) = choose(&mappings, &user);
        assert_eq!(chosen.map(|m| m.name.as_str()), Some("acme"));
        let results: Vec<_> = trace.iter().map(|t| t.result).collect();
        assert_eq!(results, ["failed", "disabled", "matched", "not_reached"]);
        assert_eq!(trace[0].failed[0].actual, vec![json!("Accountant")]);
        let (none, trace) = choose(&mappings[..1], &user);
        assert!(none.is_none());
        assert!(summarise(&trace).contains("title co \"Engineer\" (user has \"Accountant\")"));
    }

    #[test]
    fn claimed_email_order() {
        let u = json!({"userName": "x", "emails": [{"value": "Home@x.com", "type": "home"}, {"value": "Work@x.com", "type": "work"}]});
        assert_eq!(claimable_email(&u).as_deref(), Some("work@x.com"));
        let u = json!({"userName": "x", "emails": [{"value": "a@x.com", "type": "work"}, {"value": "P@x.com", "primary": true}]});
        assert_eq!(claimable_email(&u).as_deref(), Some("p@x.com"));
        let u = json!({"userName": "x", "emails": [{"value": "first@x.com"}]});
        assert_eq!(claimable_email(&u).as_deref(), Some("first@x.com"));
        assert_eq!(claimable_email(&json!({"userName": "Bob@Corp.com"})).as_deref(), Some("bob@corp.com"));
        assert_eq!(claimable_email(&json!({"userName": "bob"})), None);
    }
}
