//! The admin API (`/admin/api/v1`): JSON for operators (and, later, the console), authenticated by
//! the operator token and described by the OpenAPI document at `/admin/api/v1/openapi.json`.

mod events;
mod tenants;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};

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
