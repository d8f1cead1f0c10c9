//! scimd's HTTP side: the SCIM 2.0 service provider at `/scim/v2`, the admin API at
//! `/admin/api/v1`, the admin console at `/console`, `/healthz` / `/readyz`, and Prometheus metrics at `/metrics`. Handlers are
//! thin: they parse what HTTP carries, call the domain's [`Service`], and render; every error
//! becomes a response in [`edge`].

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
mod console;
mod edge;
pub mod events;
mod health;
pub mod jobs;
pub mod metrics;
mod scim;

pub use events::EventRecorder;
pub use metrics::{Metrics, WebhookResult};

/// Settings of the HTTP side that are not part of the domain.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long provisioning log events are kept (default 30 days).
    pub event_retention: time::Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { event_retention: time::Duration::days(i64::from(events::DEFAULT_EVENT_RETENTION_DAYS)) }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The domain service every request goes through.
    pub service: Service,
    /// The externally visible URL of this server (`https://scim.example.com`), when configured;
    /// otherwise URLs are built from the request's `Host`.
    pub public_url: Option<Arc<str>>,
    /// Where each SCIM request's event goes (written in the background, pruned past the retention).
    pub recorder: EventRecorder,
    /// This server's metrics (its own registry: servers in one process do not share counts).
    pub metrics: Metrics,
    /// Failed console sign-ins, per email and per client address.
    pub sign_in_limiter: Arc<console::SignInLimiter>,
}

impl AppState {
    /// The state of a server, with the provisioning log's writer started on the current Tokio
    /// runtime (so this must be called from within one).
    pub fn new(service: Service, public_url: Option<String>, settings: Settings) -> Self {
        let recorder = EventRecorder::start(service.clone(), settings.event_retention);
        let metrics = Metrics::new();
        jobs::start(service.clone(), metrics.clone());
        AppState { service, public_url: public_url.map(Into::into), recorder, metrics, sign_in_limiter: Arc::default() }
    }
}

/// The whole application as one router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::scrape))
        .nest("/scim/v2", scim::router())
        .nest("/admin/api/v1", admin::router())
        .nest("/console", console::router(state.clone()))
        .route("/console/", get(|| async { axum::response::Redirect::to("/console") }))
        .fallback(edge::not_found)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(edge::panic_response))
        // Outermost, so that a panic's 500 and every fallback are recorded too.
        .layer(axum::middleware::from_fn_with_state(state.clone(), edge::record_events))
        .with_state(state)
}

/// Serves the application on `listener` until `shutdown` completes, then lets in-flight requests
/// finish and writes every event they recorded before returning.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Trailing slashes (`/scim/v2/Users/`) are common in IdP configurations; treat them as absent.
    let recorder = state.recorder.clone();
    let app = NormalizePathLayer::trim_trailing_slash().layer(router(state));
    let app = axum::ServiceExt::<Request>::into_make_service_with_connect_info::<std::net::SocketAddr>(app);
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    // Every finished request recorded its event; write them all before the process may exit.
    recorder.flush().await;
    served
}
