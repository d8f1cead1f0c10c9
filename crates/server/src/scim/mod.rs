//! The SCIM 2.0 endpoints (RFC 7644) under `/scim/v2`.

mod auth;
mod bulk;
mod discovery;
mod resources;

use axum::Router;
use axum::extract::{FromRequestParts, OriginalUri, Path};
use axum::http::Method;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::{get, post};
use scim_proto::ScimError;

use crate::AppState;
use crate::edge::{NoteSlot, ScimFailure, not_found};

pub use auth::ScimCaller;
pub(crate) use auth::advertised_base;

/// The `/scim/v2` router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/Users", get(resources::list_users).post(resources::create_user))
        .route("/Users/.search", post(resources::search_users))
        .route(
            "/Users/{id}",
            get(resources::get_user)
                .put(resources::replace_user)
                .patch(resources::patch_user)
                .delete(resources::delete_user),
        )
        .route("/Groups", get(resources::list_groups).post(resources::create_group))
        .route("/Groups/.search", post(resources::search_groups))
        .route(
            "/Groups/{id}",
            get(resources::get_group)
                .put(resources::replace_group)
                .patch(resources::patch_group)
                .delete(resources::delete_group),
        )
        .route("/.search", post(resources::search_all))
        .route("/Bulk", post(bulk::bulk))
        .route("/ServiceProviderConfig", get(discovery::service_provider_config))
        .route("/ResourceTypes", get(discovery::resource_types))
        .route("/ResourceTypes/{name}", get(discovery::resource_type))
        .route("/Schemas", get(discovery::schemas))
        .route("/Schemas/{id}", get(discovery::schema))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> Response {
    use axum::response::IntoResponse;
    ScimFailure::from(ScimError::new(405, format!("{method} is not allowed on {}", uri.path()))).into_response()
}

/// The `{id}` / `{name}` segment of a path, percent-decoded. Unlike axum's `Path`, a segment that
/// does not decode (not UTF-8) is a SCIM 404, since no resource has such an id, never axum's
/// plain-text 400.
pub struct Segment(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Segment {
    type Rejection = ScimFailure;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(segment)) => {
                // The resource id is the subject unless the body names one.
                NoteSlot::of(&parts.extensions).subject_if_unknown(&segment);
                Ok(Segment(segment))
            }
            Err(e) => Err(ScimError::not_found(format!(
                "nothing is found at {}: {}; use the ids scimd returned",
                parts.uri.path(),
                e.body_text()
            ))
            .into()),
        }
    }
}
