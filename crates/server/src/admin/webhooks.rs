//! Outbound events for operators: a tenant's webhooks (add, list, delete, test-send, delivery
//! log) and its feed of lifecycle and warning events for consumers that poll.

use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use scimd_domain::access::audit::{Change, redacted};
use scimd_domain::clock::format_time;
use scimd_domain::tenant::Tenant;
use scimd_domain::webhooks::{Webhook, check_target};
use serde_json::{Value, json};

use super::input::{Reply, field, from_one_to, invalid, json_object, only_fields, required};
use super::{Caller, IdPath, ItemPath};
use crate::AppState;
use crate::edge::AdminFailure;

/// Page size of the feed and the delivery log when none is asked for.
const DEFAULT_LIMIT: u32 = 100;
/// Largest page.
const MAX_LIMIT: u32 = 1000;

async fn tenant_webhook(state: &AppState, caller: &Caller, path: ItemPath) -> Result<(Tenant, Webhook), AdminFailure> {
    let (tenant, webhook_id) = caller.tenant_item(state, path).await?;
    let webhook = state.service.webhook(&tenant, &webhook_id).await?;
    Ok((tenant, webhook))
}

/// A webhook as listed: never its secret (shown once, when generated).
fn webhook_json(w: &Webhook) -> Value {
    json!({ "id": w.id, "tenant_id": w.tenant_id, "url": w.url, "enabled": w.enabled, "created_at": format_time(w.created_at) })
}

/// Reads `cursor` and `limit` (and nothing else) from a query string.
fn paging(raw: Option<&str>, cursor_allowed: bool) -> Result<(i64, u32), AdminFailure> {
    let (mut cursor, mut limit) = (0, DEFAULT_LIMIT);
    for (name, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if value.is_empty() {
            continue;
        }
        match name.as_ref() {
            "cursor" if cursor_allowed => {
                cursor = value
                    .parse::<i64>()
                    .ok()
                    .filter(|c| *c >= 0)
                    .ok_or_else(|| invalid("\"cursor\" must be a next_cursor from a previous page"))?;
            }
            "limit" => {
                limit = from_one_to("limit", &value, MAX_LIMIT)?;
            }
            other => {
                let allowed = if cursor_allowed { "cursor, limit" } else { "limit" };
                return Err(invalid(format!("unknown parameter \"{other}\"; allowed: {allowed}")));
            }
        }
    }
    Ok((cursor, limit))
}

/// `GET /tenants/{id}/webhooks`.
pub async fn list(caller: Caller, State(state): State<AppState>, path: IdPath) -> Reply {
    let tenant = caller.tenant(&state, path).await?;
    let hooks: Vec<Value> = state.service.webhooks(&tenant).await?.iter().map(webhook_json).collect();
    Ok(Json(json!({ "webhooks": hooks })).into_response())
}

/// `POST /tenants/{id}/webhooks {url, secret?, enabled?}`: a generated secret is in this answer
/// only.
pub async fn create(
    caller: Caller,
    State(state): State<AppState>,
    path: IdPath,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let tenant = caller.tenant(&state, path).await?;
    let body = json_object(&state, &headers, body).await?;
    only_fields(&body, &["url", "secret", "enabled"])?;
    let url: String = required(&body, "url", "an http:// or https:// URL")?;
    let secret: Option<String> = field(&body, "secret", "a string of 16 to 256 characters")?;
    let enabled = field(&body, "enabled", "true or false")?.unwrap_or(true);
    let generated = secret.is_none();
    check_target(&caller.0, &url)?;
    let audit = caller.change(Some(&tenant), "webhook.create", &url);
    let webhook = state.service.audited(audit, state.service.create_webhook(&tenant, &url, secret, enabled)).await?;
    let mut out = webhook_json(&webhook);
    if generated {
        out["secret"] = Value::String(webhook.secret.clone());
    }
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// `DELETE /tenants/{id}/webhooks/{webhook_id}`.
pub async fn delete(caller: Caller, State(state): State<AppState>, path: ItemPath) -> Reply {
    let (tenant, webhook) = tenant_webhook(&state, &caller, path).await?;
    let audit =
        Change { before: Some(redacted(&webhook)), ..caller.change(Some(&tenant), "webhook.delete", &webhook.id) };
    state.service.audited(audit, state.service.delete_webhook(&tenant, &webhook.id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /tenants/{id}/webhooks/{webhook_id}/test`: sends a `test` event now and answers how it
/// went (200 either way: the receiver's failure is the result asked for, not an API error).
pub async fn test(caller: Caller, State(state): State<AppState>, path: ItemPath) -> Reply {
    let (_, webhook) = tenant_webhook(&state, &caller, path).await?;
    check_target(&caller.0, &webhook.url)?;
    let (entry, attempt) = crate::jobs::test_send(&state.service, &webhook).await?;
    Ok(Json(json!({
        "delivered": attempt.delivered(),
        "status": attempt.status,
        "error": attempt.error,
        "event": entry.body(),
    }))
    .into_response())
}

/// `GET /tenants/{id}/webhooks/{webhook_id}/deliveries?limit=`: the delivery log, newest first.
pub async fn deliveries(
    caller: Caller,
    State(state): State<AppState>,
    path: ItemPath,
    RawQuery(raw): RawQuery,
) -> Reply {
    let (tenant, webhook) = tenant_webhook(&state, &caller, path).await?;
    let (_, limit) = paging(raw.as_deref(), false)?;
    let log = state.service.webhook_deliveries(&tenant, &webhook.id, limit).await?;
    Ok(Json(json!({ "deliveries": log })).into_response())
}

/// `GET /tenants/{id}/feed?cursor=&limit=`: lifecycle and warning events after `cursor`, oldest
/// first; `next_cursor` continues (it stays put when nothing is new, so a poller keeps it).
pub async fn feed(caller: Caller, State(state): State<AppState>, path: IdPath, RawQuery(raw): RawQuery) -> Reply {
    let tenant = caller.tenant(&state, path).await?;
    let (cursor, limit) = paging(raw.as_deref(), true)?;
    let entries = state.service.feed(&tenant, cursor, limit).await?;
    let next = entries.last().map_or(cursor, |e| e.id);
    let events: Vec<Value> = entries.iter().map(|e| e.body()).collect();
    Ok(Json(json!({ "events": events, "next_cursor": next })).into_response())
}
