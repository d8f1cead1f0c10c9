//! The provisioning log: a tenant's events, and every event (also those no token tied to a
//! tenant) for the operator. Newest first, filtered, paged with a cursor.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::response::IntoResponse;
use scimd_domain::clock::parse_time;
use scimd_domain::events::{Cause, EventQuery, Outcome};
use serde_json::json;

use super::Caller;
use super::input::{Reply, from_one_to, invalid, reference};
use crate::AppState;
use crate::edge::AdminFailure;

/// Page size when none is asked for.
pub const DEFAULT_LIMIT: u32 = 100;
/// Largest page.
pub const MAX_LIMIT: u32 = 1000;
const OUTCOMES: [Outcome; 5] =
    [Outcome::Accepted, Outcome::Held, Outcome::Refused, Outcome::Unauthenticated, Outcome::Failed];

fn names<T: Copy>(all: &[T], name: impl Fn(T) -> &'static str) -> String {
    all.iter().map(|x| name(*x)).collect::<Vec<_>>().join(", ")
}

/// Reads the filters of the query string. `tenant` is accepted only where the caller may choose
/// the tenant (the operator's `/events`); unknown parameters are refused so that a typo never
/// silently widens the result.
fn parse_query(raw: Option<&str>, tenant_allowed: bool) -> Result<EventQuery, AdminFailure> {
    let mut query = EventQuery { limit: DEFAULT_LIMIT, ..Default::default() };
    for (name, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        // An empty value is an unset filter (forms send them).
        if value.is_empty() {
            continue;
        }
        match name.as_ref() {
            "outcome" => {
                query.outcome = Some(Outcome::parse(&value).ok_or_else(|| {
                    invalid(format!("unknown outcome \"{value}\"; valid: {}", names(&OUTCOMES, Outcome::as_str)))
                })?);
            }
            "cause" => {
                query.cause = Some(Cause::parse(&value).ok_or_else(|| {
                    invalid(format!(
                        "unknown cause \"{value}\"; valid (see docs/causes.md): {}",
                        names(&Cause::ALL, Cause::as_str)
                    ))
                })?);
            }
            "subject" => query.subject = Some(value.into_owned()),
            "since" | "until" => {
                let at = parse_time(&value).ok_or_else(|| {
                    invalid(format!("\"{name}\" must be an RFC 3339 date-time, e.g. 2027-01-31T12:00:00Z"))
                })?;
                if name == "since" {
                    query.since = Some(at);
                } else {
                    query.until = Some(at);
                }
            }
            "cursor" => {
                let id = value.parse::<i64>().ok().filter(|id| *id > 0);
                query.before_id =
                    Some(id.ok_or_else(|| invalid("\"cursor\" must be a next_cursor from a previous page"))?);
            }
            "limit" => {
                query.limit = from_one_to("limit", &value, MAX_LIMIT)?;
            }
            "tenant" if tenant_allowed => query.tenant_id = Some(value.into_owned()),
            other => {
                let allowed = if tenant_allowed {
                    "outcome, cause, subject, since, until, cursor, limit, tenant"
                } else {
                    "outcome, cause, subject, since, until, cursor, limit"
                };
                return Err(invalid(format!("unknown parameter \"{other}\"; allowed: {allowed}")));
            }
        }
    }
    Ok(query)
}

/// One page, newest first, with the cursor of the next one (`null` on the last page).
async fn page(state: &AppState, mut query: EventQuery) -> Reply {
    let limit = query.limit as usize;
    // One more than asked tells whether another page exists, so the last page says so.
    query.limit += 1;
    let mut events = state.service.events(&query).await?;
    let next_cursor = if events.len() > limit {
        events.truncate(limit);
        events.last().map(|e| e.id)
    } else {
        None
    };
    Ok(Json(json!({ "events": events, "next_cursor": next_cursor })).into_response())
}

/// `GET /tenants/{id}/events?outcome=&cause=&subject=&since=&until=&cursor=&limit=`.
pub async fn tenant_events(
    caller: Caller,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Reply {
    let tenant = caller.tenant(&state, path).await?;
    let mut query = parse_query(raw.as_deref(), false)?;
    query.tenant_id = Some(tenant.id);
    page(&state, query).await
}

/// `GET /events?tenant=&outcome=&cause=&subject=&since=&until=&cursor=&limit=`: every tenant's
/// events and those of requests no token tied to a tenant.
pub async fn all_events(caller: Caller, State(state): State<AppState>, RawQuery(raw): RawQuery) -> Reply {
    caller.operator()?;
    let query = parse_query(raw.as_deref(), true)?;
    if let Some(id) = &query.tenant_id {
        // A mistyped tenant would otherwise read as "no events".
        state.service.tenant(id).await.map_err(reference("tenant"))?;
    }
    page(&state, query).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_refuse_what_they_do_not_know() {
        let q = parse_query(Some("outcome=refused&cause=profile_full&subject=al&limit=5&cursor=9"), false)
            .unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!(q.outcome, Some(Outcome::Refused));
        assert_eq!(q.cause, Some(Cause::ProfileFull));
        assert_eq!(q.subject.as_deref(), Some("al"));
        assert_eq!((q.limit, q.before_id), (5, Some(9)));
        assert_eq!(parse_query(None, false).map(|q| q.limit).ok(), Some(DEFAULT_LIMIT));
        let err = |raw: &str, tenant| parse_query(Some(raw), tenant).err().map(|e| e.message).unwrap_or_default();
        assert!(err("outcome=nope", false).contains("accepted, held, refused, unauthenticated, failed"));
        assert!(err("cause=nope", false).contains("profile_full"));
        assert!(err("limit=1001", false).contains("between 1 and 1000"));
        assert!(err("limit=0", false).contains("between"));
        assert!(err("since=yesterday", false).contains("RFC 3339"));
        assert!(err("cursor=-1", false).contains("cursor"));
        assert!(err("tenant=x", false).contains("unknown parameter"));
        assert_eq!(parse_query(Some("tenant=x"), true).ok().and_then(|q| q.tenant_id).as_deref(), Some("x"));
    }
}
