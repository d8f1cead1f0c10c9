//! Tenants and their SCIM tokens.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use scimd_domain::access::audit::{Change, redacted};
use scimd_domain::clock::parse_time;
use scimd_domain::rate_limit::RateLimit;
use scimd_domain::tenant::Tenant;
use scimd_domain::token::{TokenRecord, TokenRequest};
use serde_json::{Map, Value, json};

use super::input::{Reply, invalid, json_object, only_fields, required};
use super::{Caller, IdPath, ItemPath};
use crate::AppState;

fn tenant_json(t: &Tenant) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

fn token_json(t: &TokenRecord, now: time::OffsetDateTime) -> Value {
    let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
    v["state"] = serde_json::to_value(t.state_at(now)).unwrap_or(Value::Null);
    v
}

/// `POST /tenants {name}`.
pub async fn create(caller: Caller, State(state): State<AppState>, headers: HeaderMap, body: Body) -> Reply {
    caller.operator()?;
    let body = json_object(&state, &headers, body).await?;
    only_fields(&body, &["name"])?;
    let name = body.get("name").and_then(Value::as_str).ok_or_else(|| invalid("\"name\" (a string) is required"))?;
    let tenant =
        state.service.audited(caller.change(None, "tenant.create", name), state.service.create_tenant(name)).await?;
    Ok((StatusCode::CREATED, Json(tenant_json(&tenant))).into_response())
}

/// `GET /tenants`: every tenant for an operator, its own for a tenant admin.
pub async fn list(caller: Caller, State(state): State<AppState>) -> Reply {
    let tenants = state.service.tenants_for(&caller.0).await?;
    Ok(Json(json!({ "tenants": tenants.iter().map(tenant_json).collect::<Vec<_>>() })).into_response())
}

/// `GET /tenants/{id}`.
pub async fn get(caller: Caller, State(state): State<AppState>, path: IdPath) -> Reply {
    let tenant = caller.tenant(&state, path).await?;
    Ok(Json(tenant_json(&tenant)).into_response())
}

/// `POST /tenants/{id}/tokens {lifetime_days? | expires_at?, keep_old_for_seconds?}`: the only
/// response that ever carries the token's secret.
pub async fn create_token(
    caller: Caller,
    State(state): State<AppState>,
    path: IdPath,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let tenant = caller.tenant(&state, path).await?;
    let body = if headers.get(axum::http::header::CONTENT_LENGTH).is_some_and(|l| l == "0") {
        Map::new()
    } else {
        json_object(&state, &headers, body).await?
    };
    only_fields(&body, &["lifetime_days", "expires_at", "keep_old_for_seconds"])?;
    let lifetime_days = match body.get("lifetime_days") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|d| u32::try_from(d).ok())
                .ok_or_else(|| invalid("\"lifetime_days\" must be a positive integer"))?,
        ),
    };
    let expires_at = match body.get("expires_at") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_str()
                .and_then(parse_time)
                .ok_or_else(|| invalid("\"expires_at\" must be an RFC 3339 date-time, e.g. 2027-01-31T12:00:00Z"))?,
        ),
    };
    let keep_old_for = match body.get("keep_old_for_seconds") {
        None | Some(Value::Null) => None,
        Some(v) => Some(time::Duration::seconds(
            v.as_i64().ok_or_else(|| invalid("\"keep_old_for_seconds\" must be an integer"))?,
        )),
    };
    let request = TokenRequest { lifetime_days, expires_at, keep_old_for };
    let audit = caller.change(Some(&tenant), "token.create", &tenant.id);
    // The record, not the issued token, is what the audit log keeps: the secret never enters it.
    let mut secret = None;
    let op = async {
        let issued = state.service.issue_token(&tenant.id, request).await?;
        secret = Some(issued.secret);
        Ok(issued.record)
    };
    let r = state.service.audited(audit, op).await?;
    let secret = secret.unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": r.id,
            "tenant_id": r.tenant_id,
            "token": secret,
            "prefix": r.prefix,
            "created_at": scimd_domain::clock::format_time(r.created_at),
            "expires_at": scimd_domain::clock::format_time(r.expires_at),
        })),
    )
        .into_response())
}

/// `GET /tenants/{id}/tokens`: no secrets.
pub async fn list_tokens(caller: Caller, State(state): State<AppState>, path: IdPath) -> Reply {
    let tenant = caller.tenant(&state, path).await?;
    let tokens = state.service.tokens(&tenant.id).await?;
    let now = state.service.now();
    Ok(Json(json!({ "tokens": tokens.iter().map(|t| token_json(t, now)).collect::<Vec<_>>() })).into_response())
}

/// `DELETE /tenants/{id}/tokens/{token_id}`: revokes at once.
pub async fn revoke_token(caller: Caller, State(state): State<AppState>, path: ItemPath) -> Reply {
    let (tenant, token_id) = caller.tenant_item(&state, path).await?;
    let before = state.service.tokens(&tenant.id).await?.into_iter().find(|t| t.id == token_id).map(|t| redacted(&t));
    let audit = Change { before, ..caller.change(Some(&tenant), "token.revoke", &token_id) };
    state.service.audited(audit, state.service.revoke_token(&tenant.id, &token_id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- rate limit ---------------------------------------------------------------------------

fn rate_limit_json((limit, own): (RateLimit, bool)) -> Value {
    json!({ "per_second": limit.per_second, "burst": limit.burst, "own": own })
}

/// `GET /tenants/{id}/rate-limit`: the tenant's SCIM request rate, and whether it is its own
/// (`own: false`: the cloud's default).
pub async fn get_rate_limit(caller: Caller, State(state): State<AppState>, path: IdPath) -> Reply {
    let tenant = caller.tenant(&state, path).await?;
    Ok(Json(rate_limit_json(state.service.tenant_rate_limit(&tenant.id).await?)).into_response())
}

/// `PUT /tenants/{id}/rate-limit {per_second, burst}` (operators only; `per_second: 0`
/// disables the limit): the tenant's own limit, applied by every node within 10 s.
pub async fn put_rate_limit(
    caller: Caller,
    State(state): State<AppState>,
    path: IdPath,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let tenant = caller.tenant(&state, path).await?;
    let body = json_object(&state, &headers, body).await?;
    only_fields(&body, &["per_second", "burst"])?;
    const COUNT: &str = "a whole number of requests; \"per_second\": 0 disables the limit";
    let limit =
        RateLimit { per_second: required(&body, "per_second", COUNT)?, burst: required(&body, "burst", COUNT)? };
    let before = Some(rate_limit_json(state.service.tenant_rate_limit(&tenant.id).await?));
    let audit = Change { before, ..caller.change(Some(&tenant), "rate_limit.update", &tenant.id) };
    let op = state.service.set_tenant_rate_limit(&caller.0, &tenant.id, Some(limit));
    Ok(Json(rate_limit_json(state.service.audited(audit, op).await?)).into_response())
}

/// `DELETE /tenants/{id}/rate-limit` (operators only): the tenant follows the cloud's default again.
pub async fn delete_rate_limit(caller: Caller, State(state): State<AppState>, path: IdPath) -> Reply {
    let tenant = caller.tenant(&state, path).await?;
    let audit = caller.change(Some(&tenant), "rate_limit.reset", &tenant.id);
    let op = state.service.set_tenant_rate_limit(&caller.0, &tenant.id, None);
    Ok(Json(rate_limit_json(state.service.audited(audit, op).await?)).into_response())
}
