//! scimd's HTTP side: the SCIM 2.0 service provider at `/scim/v2`, the admin API at
//! `/admin/api/v1`, the admin console at `/console`, `/healthz` / `/readyz`, and Prometheus metrics at `/metrics`. Handlers are
//! thin: they parse what HTTP carries, call the domain's [`Service`], and render; every error
//! becomes a response in [`edge`].

#![warn(missing_docs)]

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use scimd_domain::Service;

mod admin;
mod console;
mod edge;
pub mod events;
mod health;
pub mod jobs;
pub mod metrics;
mod scim;
mod serve;

pub use events::EventRecorder;
pub use metrics::{Metrics, WebhookResult};
pub use serve::serve;

/// The log filter every scimd process uses: `configured` (from `RUST_LOG`), except that the
/// PostgreSQL client never logs below info. At debug level it logs each statement's parameters,
/// and those hold webhook secrets and users' personal data.
pub fn secret_safe_log_filter(configured: tracing_subscriber::EnvFilter) -> tracing_subscriber::EnvFilter {
    configured.add_directive("tokio_postgres=info".parse().expect("a constant, valid directive"))
}

/// Settings of the HTTP side that are not part of the domain.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long provisioning log events are kept (default 30 days).
    pub event_retention: time::Duration,
    /// The longest a client may take to send a request's headers, and then its whole body
    /// (default 30 s): a slow or stalled client cannot hold a connection and its memory forever.
    pub request_timeout: std::time::Duration,
}

/// The default of [`Settings::request_timeout`], in seconds.
pub const DEFAULT_REQUEST_TIMEOUT_SECONDS: u64 = 30;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            event_retention: time::Duration::days(i64::from(events::DEFAULT_EVENT_RETENTION_DAYS)),
            request_timeout: std::time::Duration::from_secs(DEFAULT_REQUEST_TIMEOUT_SECONDS),
        }
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
    /// See [`Settings::request_timeout`].
    pub request_timeout: std::time::Duration,
}

impl AppState {
    /// The state of a server, with the provisioning log's writer started on the current Tokio
    /// runtime (so this must be called from within one).
    pub fn new(service: Service, public_url: Option<String>, settings: Settings) -> Self {
        let recorder = EventRecorder::start(service.clone(), settings.event_retention);
        let metrics = Metrics::new();
        jobs::start(service.clone(), metrics.clone());
        AppState {
            service,
            public_url: public_url.map(Into::into),
            recorder,
            metrics,
            sign_in_limiter: Arc::default(),
            request_timeout: settings.request_timeout,
        }
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
