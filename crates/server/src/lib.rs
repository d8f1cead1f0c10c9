//! scimd's HTTP side: the SCIM 2.0 service provider at `/scim/v2`, the admin API at
//! `/admin/api/v1`, and `/healthz` / `/readyz`. Handlers are thin: they parse what HTTP carries,
//! call the domain's [`Service`], and render; every error becomes a response in [`edge`].

#![warn(missing_docs)]

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::routing::get;
use scimd_domain::Service;
use tokio::net::TcpListener;
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;

mod admin;
mod edge;
mod health;
mod scim;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The domain service every request goes through.
    pub service: Service,
    /// The externally visible URL of this server (`https://scim.example.com`), when configured;
    /// otherwise URLs are built from the request's `Host`.
    pub public_url: Option<Arc<str>>,
}

/// The whole application as one router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .nest("/scim/v2", scim::router())
        .nest("/admin/api/v1", admin::router())
        .fallback(edge::not_found)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(edge::panic_response))
        .with_state(state)
}

/// Serves the application on `listener` until `shutdown` completes, then lets in-flight requests
/// finish before returning.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Trailing slashes (`/scim/v2/Users/`) are common in IdP configurations; treat them as absent.
    let app = NormalizePathLayer::trim_trailing_slash().layer(router(state));
    let app = axum::ServiceExt::<Request>::into_make_service_with_connect_info::<std::net::SocketAddr>(app);
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
