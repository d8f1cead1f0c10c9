//! Provisioning rules for operators: storage regions (cloud-wide), and per tenant its profiles
//! (with usage), mappings (with reorder and dry run), settings, and the preserve / restore of a
//! user by an administrator. Handlers only read the request and call the domain.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use scimd_domain::DomainError;
use scimd_domain::access::audit::{Change, redacted};
use scimd_domain::provisioning::admin::{MappingChange, RegionChange};
use scimd_domain::provisioning::{Health, Profile, Region, TenantSettings, UserSearch};
use scimd_domain::resources::StoredResource;
use scimd_domain::store::StoreError;
use scimd_domain::tenant::Tenant;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::input::{Reply, field, from_one_to, invalid, json_object, only_fields, reference, required};
use super::{Caller, IdPath, ItemPath};
use crate::AppState;
use crate::edge::AdminFailure;

const HEALTH: &str = "one of healthy, degraded, down";
const NAME: &str = "a string";
const ID: &str = "an id (a string)";

fn region_json(r: &Region, default_id: &str) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    v["default"] = Value::Bool(r.id == default_id);
    v
}

/// A profile with its usage: `utilisation` is the fraction of seats taken, `null` when unlimited.
fn profile_json(p: &Profile) -> Value {
    let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
    v["utilisation"] = match p.max_users {
        0 => Value::Null,
        max => json!(f64::from(p.active_users) / f64::from(max)),
    };
    v
}

// ---- regions ------------------------------------------------------------------------------

/// `GET /regions`: every region, by name, each saying whether it is the cloud's default.
pub async fn list_regions(caller: Caller, State(state): State<AppState>) -> Reply {
    caller.operator()?;
    let default = state.service.default_region().await?;
    let regions = state.service.regions().await?;
    let regions: Vec<Value> = regions.iter().map(|r| region_json(r, &default.id)).collect();
    Ok(Json(json!({ "regions": regions, "default_region_id": default.id })).into_response())
}

/// `POST /regions {name, health?}` (health defaults to healthy).
pub async fn create_region(caller: Caller, State(state): State<AppState>, headers: HeaderMap, body: Body) -> Reply {
    caller.operator()?;
    let body = json_object(&state, &headers, body).await?;
    only_fields(&body, &["name", "health"])?;
    let name: String = required(&body, "name", NAME)?;
    let health = field(&body, "health", HEALTH)?.unwrap_or(Health::Healthy);
    let change = caller.change(None, "region.create", &name);
    let region = state.service.audited(change, state.service.create_region(&name, health)).await?;
    let default = state.service.default_region().await?;
    Ok((StatusCode::CREATED, Json(region_json(&region, &default.id))).into_response())
}

/// `GET /regions/{region_id}`.
pub async fn get_region(caller: Caller, State(state): State<AppState>, path: IdPath) -> Reply {
    caller.operator()?;
    let Path(id) = path?;
    let region = state.service.region(&id).await?;
    let default = state.service.default_region().await?;
    Ok(Json(region_json(&region, &default.id)).into_response())
}

/// `PATCH /regions/{region_id} {name?, health?, probe_url?, probe_interval_seconds?}`: one write,
/// nothing applied when any field is refused. `health: healthy` activates users held for it.
pub async fn update_region(
    caller: Caller,
    State(state): State<AppState>,
    path: IdPath,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    caller.operator()?;
    let Path(id) = path?;
    let body = json_object(&state, &headers, body).await?;
    only_fields(&body, &["name", "health", "probe_url", "probe_interval_seconds"])?;
    let change = RegionChange {
        name: field(&body, "name", NAME)?,
        health: field(&body, "health", HEALTH)?,
        probe_url: field(&body, "probe_url", "an http:// URL, or null to remove the probe")?,
        probe_interval_seconds: field(&body, "probe_interval_seconds", "a whole number of seconds")?,
    };
    let before = redacted(&state.service.region(&id).await?);
    let audit = Change { before: Some(before), ..caller.change(None, "region.update", &id) };
    let region = state.service.audited(audit, state.service.update_region(&id, change)).await?;
    let default = state.service.default_region().await?;
    Ok(Json(region_json(&region, &default.id)).into_response())
}

/// `GET /regions/default`: the region new tenants' catch-all mapping points to.
pub async fn get_default_region(caller: Caller, State(state): State<AppState>) -> Reply {
    caller.operator()?;
    let region = state.service.default_region().await?;
    Ok(Json(region_json(&region, &region.id)).into_response())
}

/// `PUT /regions/default {region_id}`: changes the cloud's default region (for tenants created
/// from now on; existing mappings keep their region).
pub async fn set_default_region(
    caller: Caller,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    caller.operator()?;
    let body = json_object(&state, &headers, body).await?;
    only_fields(&body, &["region_id"])?;
    let id: String = required(&body, "region_id", ID)?;
    let before = Some(json!({ "region_id": state.service.default_region().await?.id }));
    let audit = Change { before, ..caller.change(None, "region.set_default", &id) };
    let op = async { state.service.set_default_region(&id).await.map(|()| json!({ "region_id": id })) };
    state.service.audited(audit, op).await.map_err(reference("region_id"))?;
    let region = state.service.region(&id).await?;
    Ok(Json(region_json(&region, &region.id)).into_response())
}

// ---- profiles -----------------------------------------------------------------------------

const MAX_USERS: &str = "a whole number, 0 for unlimited";

/// `GET /tenants/{id}/profiles`: with `active_users` (seats taken) and `utilisation`.
pub async fn list_profiles(caller: Caller, State(state): State<AppState>, path: IdPath) -> Reply {
    let tenant = caller.tenant(&state, path).await?;
    let profiles = state.service.profiles(&tenant).await?;
    Ok(Json(json!({ "profiles": profiles.iter().map(profile_json).collect::<Vec<_>>() })).into_response())
}

/// `POST /tenants/{id}/profiles {name, max_users}`.
pub async fn create_profile(
    caller: Caller,
    State(state): State<AppState>,
    path: IdPath,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let tenant = caller.tenant(&state, path).await?;
    let body = json_object(&state, &headers, body).await?;
    only_fields(&body, &["name", "max_users"])?;
    let name: String = required(&body, "name", NAME)?;
    let max_users: u32 = required(&body, "max_users", MAX_USERS)?;
    let audit = caller.change(Some(&tenant), "profile.create", &name);
    let profile = state.service.audited(audit, state.service.create_profile(&tenant, &name, max_users)).await?;
    Ok((StatusCode::CREATED, Json(profile_json(&profile))).into_response())
}

/// `GET /tenants/{id}/profiles/{profile_id}`.
pub async fn get_profile(caller: Caller, State(state): State<AppState>, path: ItemPath) -> Reply {
    let (tenant, id) = caller.tenant_item(&state, path).await?;
    Ok(Json(profile_json(&state.service.profile(&tenant, &id).await?)).into_response())
}

/// `PATCH /tenants/{id}/profiles/{profile_id} {name?, max_users?}`: raising the limit activates
/// held users at once; lowering it below the seats taken removes nobody.
pub async fn update_profile(
    caller: Caller,
    State(state): State<AppState>,
    path: ItemPath,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let (tenant, id) = caller.tenant_item(&state, path).await?;
    let body = json_object(&state, &headers, body).await?;
    only_fields(&body, &["name", "max_users"])?;
    let name: Option<String> = field(&body, "name", NAME)?;
    let max_users: Option<u32> = field(&body, "max_users", MAX_USERS)?;
    let before = redacted(&state.service.profile(&tenant, &id).await?);
    let audit = Change { before: Some(before), ..caller.change(Some(&tenant), "profile.update", &id) };
    let op = state.service.update_profile(&tenant, &id, name.as_deref(), max_users);
    let profile = state.service.audited(audit, op).await?;
    Ok(Json(profile_json(&profile)).into_response())
}

/// `DELETE /tenants/{id}/profiles/{profile_id}`: only a profile nobody uses (no mapping targets
/// it, no user is in it) can go; otherwise 409 naming what still uses it.
pub async fn delete_profile(caller: Caller, State(state): State<AppState>, path: ItemPath) -> Reply {
    let (tenant, id) = caller.tenant_item(&state, path).await?;
    let before = redacted(&state.service.profile(&tenant, &id).await?);
    let audit = Change { before: Some(before), ..caller.change(Some(&tenant), "profile.delete", &id) };
    state.service.audited(audit, state.service.delete_profile(&tenant, &id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- mappings -----------------------------------------------------------------------------

const MAPPING_FIELDS: [&str; 6] = ["name", "priority", "filter", "profile_id", "region_id", "enabled"];
const FILTER: &str = "a SCIM filter (a string), or null for a catch-all";

/// The fields every mapping request may carry, except `region_id` (whose `null` differs).
fn mapping_change(body: &Map<String, Value>) -> Result<MappingChange, AdminFailure> {
    Ok(MappingChange {
        name: field(body, "name", NAME)?,
        priority: field(body, "priority", "an integer (lower runs first)")?,
        filter: field(body, "filter", FILTER)?,
        profile_id: field(body, "profile_id", ID)?,
        region_id: None,
        enabled: field(body, "enabled", "true or false")?,
    })
}

/// Ids named in the body must be the tenant's profile and an existing region: 400 otherwise.
async fn check_targets(state: &AppState, tenant: &Tenant, change: &MappingChange) -> Result<(), AdminFailure> {
    if let Some(id) = &change.profile_id {
        state.service.profile(tenant, id).await.map_err(reference("profile_id"))?;
    }
    if let Some(id) = &change.region_id {
        state.service.region(id).await.map_err(reference("region_id"))?;
    }
    Ok(())
}

/// `GET /tenants/{id}/mappings`: in the order they are tried.
pub async fn list_mappings(caller: Caller, State(state): State<AppState>, path: IdPath) -> Reply {
    let tenant = caller.tenant(&state, path).await?;
    Ok(Json(json!({ "mappings": state.service.mappings(&tenant).await? })).into_response())
}

/// `POST /tenants/{id}/mappings {name, priority?, filter?, profile_id, region_id?, enabled?}`:
/// priority defaults to 100, region to the cloud's default, enabled to true. A bad filter is
/// refused with the parser's position and reason.
pub async fn create_mapping(
    caller: Caller,
    State(state): State<AppState>,
    path: IdPath,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let tenant = caller.tenant(&state, path).await?;
    let body = json_object(&state, &headers, body).await?;
    only_fields(&body, &MAPPING_FIELDS)?;
    // Named here rather than by the domain, so the message names the field as sent.
    required::<String>(&body, "name", NAME)?;
    required::<String>(&body, "profile_id", ID)?;
    let mut change = mapping_change(&body)?;
    change.region_id = field::<Option<String>>(&body, "region_id", "a region id, or null for the default")?.flatten();
    check_targets(&state, &tenant, &change).await?;
    let name = change.name.clone().unwrap_or_default();
    let audit = caller.change(Some(&tenant), "mapping.create", &name);
    let mapping = state.service.audited(audit, state.service.create_mapping(&tenant, change)).await?;
    Ok((StatusCode::CREATED, Json(mapping)).into_response())
}

/// `GET /tenants/{id}/mappings/{mapping_id}`.
pub async fn get_mapping(caller: Caller, State(state): State<AppState>, path: ItemPath) -> Reply {
    let (tenant, id) = caller.tenant_item(&state, path).await?;
    Ok(Json(state.service.mapping(&tenant, &id).await?).into_response())
}

/// `PATCH /tenants/{id}/mappings/{mapping_id}`: any mapping field; reordering is a new `priority`.
pub async fn update_mapping(
    caller: Caller,
    State(state): State<AppState>,
    path: ItemPath,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let (tenant, id) = caller.tenant_item(&state, path).await?;
    let body = json_object(&state, &headers, body).await?;
    only_fields(&body, &MAPPING_FIELDS)?;
    let mut change = mapping_change(&body)?;
    change.region_id = field(&body, "region_id", "a region id")?;
    // The path's mapping first: a missing one is a 404, before the body's ids are judged.
    let before = redacted(&state.service.mapping(&tenant, &id).await?);
    check_targets(&state, &tenant, &change).await?;
    let audit = Change { before: Some(before), ..caller.change(Some(&tenant), "mapping.update", &id) };
    Ok(Json(state.service.audited(audit, state.service.update_mapping(&tenant, &id, change)).await?).into_response())
}

/// `DELETE /tenants/{id}/mappings/{mapping_id}`.
pub async fn delete_mapping(caller: Caller, State(state): State<AppState>, path: ItemPath) -> Reply {
    let (tenant, id) = caller.tenant_item(&state, path).await?;
    let before = redacted(&state.service.mapping(&tenant, &id).await?);
    let audit = Change { before: Some(before), ..caller.change(Some(&tenant), "mapping.delete", &id) };
    state.service.audited(audit, state.service.delete_mapping(&tenant, &id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /tenants/{id}/mappings/dry-run` with a SCIM User: where it would land, and how every
/// mapping fared. Nothing is written.
pub async fn dry_run(
    caller: Caller,
    State(state): State<AppState>,
    path: IdPath,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let tenant = caller.tenant(&state, path).await?;
    let user = json_object(&state, &headers, body).await?;
    let (mapping, trace) = state.service.dry_run(&tenant, Value::Object(user)).await?;
    let (profile_id, region_id) = match &mapping {
        Some(m) => (Some(m.profile_id.clone()), Some(m.region_id.clone())),
        None => (None, None),
    };
    Ok(Json(json!({ "mapping": mapping, "profile_id": profile_id, "region_id": region_id, "trace": trace }))
        .into_response())
}

// ---- settings -----------------------------------------------------------------------------

/// `GET /tenants/{id}/settings`.
pub async fn get_settings(caller: Caller, State(state): State<AppState>, path: IdPath) -> Reply {
    let tenant = caller.tenant(&state, path).await?;
    Ok(Json(state.service.settings(&tenant).await?).into_response())
}

/// `PUT /tenants/{id}/settings`: replaces the settings; omitted fields take their defaults and
/// unknown ones are refused.
pub async fn put_settings(
    caller: Caller,
    State(state): State<AppState>,
    path: IdPath,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let tenant = caller.tenant(&state, path).await?;
    let body = Value::Object(json_object(&state, &headers, body).await?);
    let settings =
        TenantSettings::deserialize(&body).map_err(|e| invalid(format!("the settings are not valid: {e}")))?;
    let before = redacted(&state.service.settings(&tenant).await?);
    let audit = Change { before: Some(before), ..caller.change(Some(&tenant), "settings.update", &tenant.id) };
    Ok(Json(state.service.audited(audit, state.service.set_settings(&tenant, settings)).await?).into_response())
}

// ---- users --------------------------------------------------------------------------------

/// What an administrator's preserve or restore left: the user's id, state and who preserved it.
pub(crate) fn placement_json(res: &StoredResource) -> Value {
    let placement = res.placement.as_ref();
    json!({
        "id": res.id,
        "user_name": res.doc.get("userName"),
        "state": placement.map(|p| p.state),
        "pending_cause": placement.and_then(|p| p.pending_cause),
        "preserved_by": placement.and_then(|p| p.preserved_by),
        "managed_by": placement.map(|p| p.managed_by),
        "profile_id": placement.and_then(|p| p.profile_id.clone()),
        "region_id": placement.and_then(|p| p.region_id.clone()),
    })
}

/// `POST /tenants/{id}/users` with a SCIM User body: a user created by hand, under the same rules
/// as a SCIM create (refusals carry the provisioning cause as their code). SCIM filters find it
/// and it becomes IdP-managed when the IdP first writes to it.
pub async fn create_user(
    caller: Caller,
    State(state): State<AppState>,
    path: IdPath,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let tenant = caller.tenant(&state, path).await?;
    let body = json_object(&state, &headers, body).await?;
    let user_name = body.get("userName").and_then(Value::as_str).unwrap_or_default().to_owned();
    let audit = caller.change(Some(&tenant), "user.create", &user_name);
    let op = async { state.service.admin_create_user(&tenant, Value::Object(body)).await.map(|r| placement_json(&r)) };
    let created = state.service.audited(audit, op).await.map_err(user_failure)?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// `DELETE /tenants/{id}/users/{user_id}`: purges a user whatever its state (also one the IdP
/// deleted under the preserve policy), releasing its seat and its email claim.
pub async fn purge_user(caller: Caller, State(state): State<AppState>, path: ItemPath) -> Reply {
    let (tenant, id) = caller.tenant_item(&state, path).await?;
    let before = state.service.any_user(&tenant, &id).await.ok().map(|u| placement_json(&u));
    let audit = Change { before, ..caller.change(Some(&tenant), "user.purge", &id) };
    state.service.audited(audit, state.service.purge_user(&tenant, &id)).await.map_err(user_failure)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /tenants/{id}/users?q=&state=&profile_id=&region_id=&offset=&limit=`: the tenant's users
/// in every state, newest first, with the total that match (the console's Users page).
pub async fn search_users(
    caller: Caller,
    State(state): State<AppState>,
    path: IdPath,
    RawQuery(raw): RawQuery,
) -> Reply {
    let tenant = caller.tenant(&state, path).await?;
    let mut search = UserSearch { limit: 50, ..UserSearch::default() };
    for (name, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let value = value.into_owned();
        match name.as_ref() {
            "q" => search.text = Some(value),
            "state" => {
                search.state = Some(
                    serde_json::from_value(Value::String(value))
                        .map_err(|_| invalid("\"state\" must be one of active, pending, preserved, deleted"))?,
                )
            }
            "profile_id" => search.profile_id = Some(value),
            "region_id" => search.region_id = Some(value),
            "offset" => search.offset = value.parse().map_err(|_| invalid("\"offset\" must be a whole number"))?,
            "limit" => search.limit = from_one_to("limit", &value, 200)?,
            other => {
                return Err(invalid(format!(
                    "unknown parameter \"{other}\"; allowed: q, state, profile_id, region_id, offset, limit"
                )));
            }
        }
    }
    let (total, users) = state.service.search_users(&tenant, search).await?;
    let users: Vec<Value> = users.iter().map(placement_json).collect();
    Ok(Json(json!({ "total": total, "users": users })).into_response())
}

/// `GET /tenants/{id}/users/{user_id}`: a user in any state, with its placement and SCIM document.
pub async fn get_user(caller: Caller, State(state): State<AppState>, path: ItemPath, headers: HeaderMap) -> Reply {
    let (tenant, id) = caller.tenant_item(&state, path).await?;
    let user = state.service.any_user(&tenant, &id).await.map_err(user_failure)?;
    let base = crate::scim::advertised_base(&state, &headers).unwrap_or_else(|| "/scim/v2".into());
    let mut out = placement_json(&user);
    out["claimed_email"] = json!(user.placement.as_ref().and_then(|p| p.claimed_email.clone()));
    out["scim"] = user.to_scim(&base);
    Ok(Json(out).into_response())
}

/// `GET /tenants/{id}/activity?days=7`: the log's request count per UTC day and outcome.
pub async fn activity(caller: Caller, State(state): State<AppState>, path: IdPath, RawQuery(raw): RawQuery) -> Reply {
    let tenant = caller.tenant(&state, path).await?;
    let mut days = 7i64;
    for (name, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "days" => days = from_one_to("days", &value, 90)?,
            other => return Err(invalid(format!("unknown parameter \"{other}\"; allowed: days"))),
        }
    }
    Ok(Json(json!({ "days": state.service.activity(&tenant, days).await? })).into_response())
}

/// `GET /tenants/{id}/users/pending`: the users held as pending, oldest first, with their cause.
pub async fn pending_users(caller: Caller, State(state): State<AppState>, path: IdPath) -> Reply {
    let tenant = caller.tenant(&state, path).await?;
    let users = state.service.pending_users(&tenant).await?;
    let users: Vec<Value> = users.iter().map(placement_json).collect();
    Ok(Json(json!({ "users": users })).into_response())
}

/// `GET /tenants/{id}/regions`: the regions the tenant may use (all unless restricted), and
/// whether it is restricted.
pub async fn tenant_regions(caller: Caller, State(state): State<AppState>, path: IdPath) -> Reply {
    let tenant = caller.tenant(&state, path).await?;
    let regions = state.service.tenant_regions(&tenant).await?;
    let restricted = regions.len() < state.service.regions().await?.len();
    let default = state.service.default_region().await?;
    let mut regions: Vec<Value> = regions.iter().map(|r| region_json(r, &default.id)).collect();
    if !caller.0.is_operator() {
        // Probes name the cloud's internal endpoints: a tenant sees health, not how it is measured.
        for r in regions.iter_mut().filter_map(Value::as_object_mut) {
            r.retain(|k, _| !k.starts_with("probe_") && !k.starts_with("last_probe"));
        }
    }
    Ok(Json(json!({ "restricted": restricted, "regions": regions })).into_response())
}

/// `PUT /tenants/{id}/regions {region_ids: [...]}` (operators): restricts the tenant to these
/// regions (an empty list lifts the restriction); refused while one of its mappings points elsewhere.
pub async fn restrict_tenant_regions(
    caller: Caller,
    State(state): State<AppState>,
    path: IdPath,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    caller.operator()?;
    let tenant = caller.tenant(&state, path).await?;
    let body = json_object(&state, &headers, body).await?;
    only_fields(&body, &["region_ids"])?;
    let ids: Vec<String> = required(&body, "region_ids", "an array of region ids")?;
    let before = Some(json!({ "region_ids": state.service.restricted_region_ids(&tenant).await? }));
    let audit = Change { before, ..caller.change(Some(&tenant), "tenant.restrict_regions", &tenant.id) };
    let op = state.service.restrict_tenant_regions(&tenant, &ids);
    let regions = state.service.audited(audit, op).await.map_err(reference("region_ids"))?;
    let default = state.service.default_region().await?;
    let regions: Vec<Value> = regions.iter().map(|r| region_json(r, &default.id)).collect();
    Ok(Json(json!({ "restricted": !ids.is_empty(), "regions": regions })).into_response())
}

/// The domain answers for users in SCIM terms; the admin API's codes say the same.
fn user_failure(e: DomainError) -> AdminFailure {
    match e {
        DomainError::Scim(s) if s.status == 404 => AdminFailure::new(StatusCode::NOT_FOUND, "not_found", s.detail),
        // The IdP wrote the user at the same moment; nothing was changed.
        DomainError::Store(StoreError::VersionMismatch) => AdminFailure::new(
            StatusCode::CONFLICT,
            "conflict",
            "the user changed while it was being updated; nothing was changed, retry",
        ),
        other => other.into(),
    }
}

/// `POST /tenants/{id}/users/{user_id}/preserve`: seat released, data kept, and the IdP can no
/// longer re-activate the user.
pub async fn preserve_user(caller: Caller, State(state): State<AppState>, path: ItemPath) -> Reply {
    let (tenant, id) = caller.tenant_item(&state, path).await?;
    let audit = caller.change(Some(&tenant), "user.preserve", &id);
    let op = async { state.service.admin_preserve_user(&tenant, &id).await.map(|r| placement_json(&r)) };
    Ok(Json(state.service.audited(audit, op).await.map_err(user_failure)?).into_response())
}

/// `POST /tenants/{id}/users/{user_id}/restore`: the user is re-activated (taking a seat, which
/// may be refused with the provisioning cause as the code) and the IdP manages it again.
pub async fn restore_user(caller: Caller, State(state): State<AppState>, path: ItemPath) -> Reply {
    let (tenant, id) = caller.tenant_item(&state, path).await?;
    let audit = caller.change(Some(&tenant), "user.restore", &id);
    let op = async { state.service.restore_user(&tenant, &id).await.map(|r| placement_json(&r)) };
    Ok(Json(state.service.audited(audit, op).await.map_err(user_failure)?).into_response())
}
