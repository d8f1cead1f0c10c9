//! The admin API (`/admin/api/v1`): JSON for operators (and, later, the console), authenticated by
//! the operator token and described by the OpenAPI document at `/admin/api/v1/openapi.json`.

mod doctor;
mod events;
mod input;
mod provisioning;
mod tenants;
mod webhooks;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};

use crate::AppState;
use crate::edge::AdminFailure;

/// The `/admin/api/v1` router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/tenants", get(tenants::list).post(tenants::create))
        .route("/tenants/{id}", get(tenants::get))
        .route("/tenants/{id}/tokens", get(tenants::list_tokens).post(tenants::create_token))
        .route("/tenants/{id}/tokens/{token_id}", delete(tenants::revoke_token))
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
        .route("/tenants/{id}/users", post(provisioning::create_user))
        .route("/tenants/{id}/users/pending", get(provisioning::pending_users))
        .route("/tenants/{id}/users/{user_id}", delete(provisioning::purge_user))
        .route("/tenants/{id}/regions", get(provisioning::tenant_regions).put(provisioning::restrict_tenant_regions))
        .route("/tenants/{id}/users/{user_id}/preserve", post(provisioning::preserve_user))
        .route("/tenants/{id}/users/{user_id}/restore", post(provisioning::restore_user))
        .route("/regions", get(provisioning::list_regions).post(provisioning::create_region))
        // A fixed segment, matched before the id below (region ids are UUIDs, never "default").
        .route("/regions/default", get(provisioning::get_default_region).put(provisioning::set_default_region))
        .route("/regions/{region_id}", get(provisioning::get_region).patch(provisioning::update_region))
        .route("/events", get(events::all_events))
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

/// A request that presented the operator token.
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = AdminFailure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or(""));
        if state.service.is_operator(header).await? {
            Ok(Operator)
        } else {
            Err(AdminFailure::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the admin API needs 'Authorization: Bearer <operator token>'; the operator token was \
                 printed when scimd first started, or is the value of SCIMD_OPERATOR_TOKEN",
            ))
        }
    }
}
