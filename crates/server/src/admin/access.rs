//! Who is calling and what they may do: `/me`, the caller's API keys, console accounts (operators
//! only), the audit log, and the cloud-wide email claims (operators only).

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use scimd_domain::access::Role;
use scimd_domain::access::audit::{AuditQuery, Change, redacted};
use serde_json::{Value, json};

use super::input::{Reply, field, from_one_to, invalid, json_object, only_fields, required};
use super::{Caller, IdPath};
use crate::AppState;

/// `GET /me`: who the key belongs to and what it reaches.
pub async fn me(caller: Caller) -> Reply {
    let p = &caller.0;
    Ok(Json(json!({ "actor": p.actor, "role": p.role.as_str(), "tenant_id": p.role.tenant_id() })).into_response())
}

/// `GET /me/api-keys`: the caller's account's keys (never their secrets).
pub async fn list_api_keys(caller: Caller, State(state): State<AppState>) -> Reply {
    Ok(Json(json!({ "api_keys": state.service.api_keys(&caller.0).await? })).into_response())
}

/// `POST /me/api-keys {name}`: a key scoped like the caller's account; the only answer that
/// carries its secret.
pub async fn create_api_key(caller: Caller, State(state): State<AppState>, headers: HeaderMap, body: Body) -> Reply {
    let body = json_object(&state, &headers, body).await?;
    only_fields(&body, &["name"])?;
    let name: String = required(&body, "name", "a string")?;
    let mut secret = None;
    let op = async {
        let issued = state.service.create_api_key(&caller.0, &name).await?;
        secret = Some(issued.secret);
        Ok(issued.key)
    };
    let key = state.service.audited(caller.change(None, "api_key.create", &name), op).await?;
    let mut out = serde_json::to_value(&key).unwrap_or(Value::Null);
    out["key"] = json!(secret);
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// `DELETE /me/api-keys/{key_id}`: the key stops working at once.
pub async fn revoke_api_key(caller: Caller, State(state): State<AppState>, path: IdPath) -> Reply {
    let Path(id) = path?;
    let change = caller.change(None, "api_key.revoke", &id);
    state.service.audited(change, state.service.revoke_api_key(&caller.0, &id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /accounts`: every console account (operators only).
pub async fn list_accounts(caller: Caller, State(state): State<AppState>) -> Reply {
    caller.operator()?;
    Ok(Json(json!({ "accounts": state.service.accounts().await? })).into_response())
}

/// `POST /accounts {email, password, role: operator | tenant_admin, tenant_id?}` (operators only).
pub async fn create_account(caller: Caller, State(state): State<AppState>, headers: HeaderMap, body: Body) -> Reply {
    caller.operator()?;
    let body = json_object(&state, &headers, body).await?;
    only_fields(&body, &["email", "password", "role", "tenant_id"])?;
    let email: String = required(&body, "email", "an email address")?;
    let password: String = required(&body, "password", "a string of at least 12 characters")?;
    let role_name: String = required(&body, "role", "operator or tenant_admin")?;
    let tenant_id: Option<String> = field(&body, "tenant_id", "a tenant id")?;
    let role = match (role_name.as_str(), tenant_id) {
        ("operator", None) => Role::Operator,
        ("tenant_admin", Some(t)) => Role::TenantAdmin(t),
        ("operator", Some(_)) => return Err(invalid("an operator reaches every tenant: leave out \"tenant_id\"")),
        ("tenant_admin", None) => return Err(invalid("a tenant admin needs \"tenant_id\"")),
        _ => return Err(invalid("\"role\" must be operator or tenant_admin")),
    };
    let tenant = match role.tenant_id() {
        Some(id) => Some(state.service.tenant(id).await.map_err(super::input::reference("tenant_id"))?),
        None => None,
    };
    let change = caller.change(tenant.as_ref(), "account.create", &email);
    let account = state.service.audited(change, state.service.create_account(&email, &password, role)).await?;
    Ok((StatusCode::CREATED, Json(account)).into_response())
}

/// `DELETE /accounts/{account_id}`: with its sessions and API keys (operators only).
pub async fn delete_account(caller: Caller, State(state): State<AppState>, path: IdPath) -> Reply {
    caller.operator()?;
    let Path(id) = path?;
    let account = state.service.account(&id).await?;
    let tenant = match account.role.tenant_id() {
        Some(t) => Some(state.service.tenant(t).await?),
        None => None,
    };
    let change = Change { before: Some(redacted(&account)), ..caller.change(tenant.as_ref(), "account.delete", &id) };
    state.service.audited(change, state.service.delete_account(&caller.0, &id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Reads `before` and `limit` of an audit log page.
fn audit_query(raw: Option<&str>) -> Result<AuditQuery, super::AdminFailure> {
    let mut query = AuditQuery { limit: 100, ..AuditQuery::default() };
    for (name, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match name.as_ref() {
            "before" => query.before_id = Some(value.parse().map_err(|_| invalid("\"before\" must be an entry id"))?),
            "limit" => query.limit = from_one_to("limit", &value, 500)?,
            other => return Err(invalid(format!("unknown parameter \"{other}\"; allowed: before, limit"))),
        }
    }
    Ok(query)
}

/// `GET /audit?before=&limit=`: every admin change, newest first (operators only).
pub async fn audit_log(caller: Caller, State(state): State<AppState>, RawQuery(raw): RawQuery) -> Reply {
    caller.operator()?;
    let entries = state.service.audit_log(audit_query(raw.as_deref())?).await?;
    Ok(Json(json!({ "entries": entries })).into_response())
}

/// `GET /tenants/{id}/audit?before=&limit=`: the changes made to one tenant.
pub async fn tenant_audit_log(
    caller: Caller,
    State(state): State<AppState>,
    path: IdPath,
    RawQuery(raw): RawQuery,
) -> Reply {
    let tenant = caller.tenant(&state, path).await?;
    let query = AuditQuery { tenant_id: Some(tenant.id), ..audit_query(raw.as_deref())? };
    Ok(Json(json!({ "entries": state.service.audit_log(query).await? })).into_response())
}

/// `GET /claims/{email}`: who holds an email cloud-wide, and whether the claim is stale.
pub async fn get_claim(
    caller: Caller,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Reply {
    let Path(email) = path?;
    match state.service.lookup_email_claim(&caller.0, &email).await? {
        Some(lookup) => Ok(Json(lookup).into_response()),
        None => Err(super::AdminFailure::new(StatusCode::NOT_FOUND, "not_found", format!("nobody holds {email}"))),
    }
}

/// `DELETE /claims/{email}`: releases a stale claim (409 while its user still holds it).
pub async fn release_claim(
    caller: Caller,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Reply {
    let Path(email) = path?;
    let change = caller.change(None, "email_claim.release", &email);
    let claim = state.service.audited(change, state.service.release_stale_claim(&caller.0, &email)).await?;
    Ok(Json(json!({ "released": claim })).into_response())
}
