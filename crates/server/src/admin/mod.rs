//! The admin API (`/admin/api/v1`): JSON for operators and tenant admins, with the same powers as
//! the console, authenticated by API keys (or the operator token) and described by the OpenAPI
//! document at `/admin/api/v1/openapi.json`.

mod access;
pub(crate) mod doctor;
mod events;
mod input;
pub(crate) mod provisioning;
mod tenants;
mod webhooks;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};

use scimd_domain::DomainError;
use scimd_domain::access::Principal;
use scimd_domain::access::audit::Change;
use scimd_domain::tenant::Tenant;

use crate::AppState;
pub(crate) use crate::edge::AdminFailure;

/// The `/admin/api/v1` router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/tenants", get(tenants::list).post(tenants::create))
        .route("/tenants/{id}", get(tenants::get))
        .route("/tenants/{id}/tokens", get(tenants::list_tokens).post(tenants::create_token))
        .route("/tenants/{id}/tokens/{token_id}", delete(tenants::revoke_token))
        .route(
            "/tenants/{id}/rate-limit",
            get(tenants::get_rate_limit).put(tenants::put_rate_limit).delete(tenants::delete_rate_limit),
        )
        .route("/tenants/{id}/events", get(events::tenant_events))
        .route("/tenants/{id}/doctor", get(doctor::tenant_doctor))
        .route("/tenants/{id}/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/tenants/{id}/webhooks/{webhook_id}", delete(webhooks::delete))
        .route("/tenants/{id}/webhooks/{webhook_id}/test", post(webhooks::test))
        .route("/tenants/{id}/webhooks/{webhook_id}/deliveries", get(webhooks::deliveries))
        .route("/tenants/{id}/feed", get(webhooks::feed))
        .route("/tenants/{id}/profiles", get(provisioning::list_profiles).post(provisioning::create_profile))
        .route(
            "/tenants/{id}/profiles/{profile_id}",
            get(provisioning::get_profile).patch(provisioning::update_profile).delete(provisioning::delete_profile),
        )
        .route("/tenants/{id}/mappings", get(provisioning::list_mappings).post(provisioning::create_mapping))
        .route("/tenants/{id}/mappings/dry-run", post(provisioning::dry_run))
        .route(
            "/tenants/{id}/mappings/{mapping_id}",
            get(provisioning::get_mapping).patch(provisioning::update_mapping).delete(provisioning::delete_mapping),
        )
        .route("/tenants/{id}/settings", get(provisioning::get_settings).put(provisioning::put_settings))
        .route("/tenants/{id}/users", get(provisioning::search_users).post(provisioning::create_user))
        .route("/tenants/{id}/activity", get(provisioning::activity))
        .route("/tenants/{id}/users/pending", get(provisioning::pending_users))
        .route("/tenants/{id}/users/{user_id}", get(provisioning::get_user).delete(provisioning::purge_user))
        .route("/tenants/{id}/regions", get(provisioning::tenant_regions).put(provisioning::restrict_tenant_regions))
        .route("/tenants/{id}/users/{user_id}/preserve", post(provisioning::preserve_user))
        .route("/tenants/{id}/users/{user_id}/restore", post(provisioning::restore_user))
        .route("/regions", get(provisioning::list_regions).post(provisioning::create_region))
        // A fixed segment, matched before the id below (region ids are UUIDs, never "default").
        .route("/regions/default", get(provisioning::get_default_region).put(provisioning::set_default_region))
        .route("/regions/{region_id}", get(provisioning::get_region).patch(provisioning::update_region))
        .route("/events", get(events::all_events))
        .route("/me", get(access::me))
        .route("/me/api-keys", get(access::list_api_keys).post(access::create_api_key))
        .route("/me/api-keys/{key_id}", delete(access::revoke_api_key))
        .route("/accounts", get(access::list_accounts).post(access::create_account))
        .route("/accounts/{account_id}", delete(access::delete_account))
        .route("/audit", get(access::audit_log))
        .route("/tenants/{id}/audit", get(access::tenant_audit_log))
        .route("/claims/{email}", get(access::get_claim).delete(access::release_claim))
        .fallback(|axum::extract::OriginalUri(uri): axum::extract::OriginalUri| async move {
            AdminFailure::new(StatusCode::NOT_FOUND, "not_found", format!("no admin API endpoint at {}", uri.path()))
        })
        .method_not_allowed_fallback(
            |method: axum::http::Method, axum::extract::OriginalUri(uri): axum::extract::OriginalUri| async move {
                AdminFailure::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    format!("{method} is not allowed on {}", uri.path()),
                )
            },
        )
}

/// The OpenAPI 3.1 description of this API.
async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], include_str!("openapi.json")).into_response()
}

/// Path of a tenant-scoped endpoint: the tenant id.
pub type IdPath = Result<Path<String>, PathRejection>;
/// Path of an item below a tenant: the tenant id and the item's id.
pub type ItemPath = Result<Path<(String, String)>, PathRejection>;

/// Who called the admin API: the operator token, or an account's API key (scoped like the
/// account). Every handler asks it for the tenant it works on, so a tenant admin's key is
/// refused (403, the same for every other tenant, existing or not) outside its tenant.
pub struct Caller(pub Principal);

impl Caller {
    /// The path's tenant, if the caller may work on it.
    pub async fn tenant(&self, state: &AppState, path: IdPath) -> Result<Tenant, AdminFailure> {
        let Path(id) = path?;
        Ok(state.service.tenant_for(&self.0, &id).await?)
    }

    /// The path's tenant (checked as above) and the id of the item below it.
    pub async fn tenant_item(&self, state: &AppState, path: ItemPath) -> Result<(Tenant, String), AdminFailure> {
        let Path((id, item)) = path?;
        Ok((state.service.tenant_for(&self.0, &id).await?, item))
    }

    /// Refuses anyone but an operator.
    pub fn operator(&self) -> Result<(), AdminFailure> {
        Ok(self.0.require_operator()?)
    }

    /// An audit record of a change this caller makes.
    pub fn change<'a>(&'a self, tenant: Option<&'a Tenant>, action: &'static str, target: &'a str) -> Change<'a> {
        Change { principal: &self.0, tenant_id: tenant.map(|t| t.id.as_str()), action, target, before: None }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AdminFailure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or(""));
        match state.service.admin_principal(header).await {
            Ok(principal) => Ok(Caller(principal)),
            Err(DomainError::Auth(_)) => Err(AdminFailure::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the admin API needs 'Authorization: Bearer <key>': an API key made in the console (or with \
                 POST /admin/api/v1/me/api-keys), or the operator token, which was printed when scimd first \
                 started or is the value of SCIMD_OPERATOR_TOKEN",
            )),
            Err(other) => Err(other.into()),
        }
    }
}
