//! Prometheus metrics at `GET /metrics` (text exposition format). docs/operations.md lists every
//! metric and its labels.
//!
//! Request metrics are fed from the provisioning log's middleware, from the very event it records
//! (operation, outcome, cause), so the metrics and the log cannot disagree. State metrics (token
//! expiry, profile capacity, region health, pending users) are computed from the store at scrape
//! time rather than maintained on every write: nothing has to remember to update them.
//!
//! Label cardinality is bounded whatever the number of tenants: no metric has a tenant (or token,
//! user, path) label. `operation` comes from the fixed set the provisioning log uses (every
//! unknown path is `unknown`), and outcome, cause, health and the webhook result are closed enums.
//! Per-tenant detail lives in the provisioning log and the doctor.
//!
//! Each server owns its recorder (none is installed globally): two servers in one process, as in
//! the tests, keep separate counts.

use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, with_local_recorder};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use scimd_domain::Service;
use scimd_domain::events::Event;
use scimd_domain::provisioning::model::Health;
use scimd_domain::store::StoreError;
use scimd_domain::token::TokenState;

use crate::AppState;

/// Request durations' bucket bounds in seconds: from 1 ms (a cached read) to 10 s (a large bulk
/// request on a busy database); slower requests land in `+Inf`.
pub const DURATION_BUCKETS: [f64; 13] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The windows of `scimd_tokens_expiring`, as (label, days). Cumulative, like histogram buckets:
/// a token expiring tomorrow counts in all three.
const EXPIRY_WINDOWS: [(&str, i64); 3] = [("1d", 1), ("7d", 7), ("30d", 30)];

/// A profile this full (or fuller) counts as near capacity: the doctor's warning threshold.
const NEAR_CAPACITY: f64 = 0.9;

/// How often histogram samples are folded into their buckets when nobody scrapes; without it the
/// raw samples of an unscraped server would pile up.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Pending users counted per store call.
const PENDING_PAGE: u32 = 1000;

const REQUESTS: &str = "scimd_requests_total";
const DURATION: &str = "scimd_request_duration_seconds";
const DROPPED: &str = "scimd_events_dropped_total";
const WEBHOOKS: &str = "scimd_webhook_deliveries_total";
const EXPIRING: &str = "scimd_tokens_expiring";
const AT_CAPACITY: &str = "scimd_profiles_at_capacity";
const NEAR: &str = "scimd_profiles_near_capacity";
const UTILISATION: &str = "scimd_profile_utilisation_ratio_max";
const REGIONS: &str = "scimd_regions";
const PENDING: &str = "scimd_pending_users";
const SCRAPE_ERRORS: &str = "scimd_metrics_state_errors_total";
const LEADER: &str = "scimd_background_leader";

/// How one webhook delivery attempt ended; the `result` label of `scimd_webhook_deliveries_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookResult {
    /// The receiver answered 2xx.
    Delivered,
    /// The attempt failed and will be retried.
    Failed,
    /// The attempt failed and no retry is left.
    GaveUp,
}

impl WebhookResult {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookResult::Delivered => "delivered",
            WebhookResult::Failed => "failed",
            WebhookResult::GaveUp => "gave_up",
        }
    }
}

/// One server's metrics. Cheap to clone; clones share the counts.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// One scrape computes the state gauges at a time: concurrent scrapers wait for it rather than
    /// multiplying the store's work.
    scrape: tokio::sync::Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric described. Spawns the upkeep task when called within a
    /// Tokio runtime (it ends once every clone is dropped).
    pub fn new() -> Self {
        let builder = PrometheusBuilder::new();
        // Only fails on an empty bucket list, which DURATION_BUCKETS is not; should it ever, the
        // histogram renders as a summary rather than the server failing to start.
        let builder = match builder.set_buckets_for_metric(Matcher::Full(DURATION.into()), &DURATION_BUCKETS) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "metrics: could not set the duration buckets");
                PrometheusBuilder::new()
            }
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        with_local_recorder(&recorder, || {
            describe_counter!(REQUESTS, "SCIM requests by operation, outcome and cause (as in the provisioning log).");
            describe_histogram!(DURATION, metrics::Unit::Seconds, "SCIM request duration by operation.");
            describe_counter!(DROPPED, "Provisioning log events dropped because the writer could not keep up.");
            describe_counter!(WEBHOOKS, "Webhook delivery attempts by result.");
            describe_gauge!(EXPIRING, "Active SCIM tokens (not superseded) expiring within the window.");
            describe_gauge!(AT_CAPACITY, "Profiles with a seat limit and no free seat.");
            describe_gauge!(NEAR, "Profiles with a seat limit at 90 % or more (including full ones).");
            describe_gauge!(UTILISATION, "The fullest limited profile's seats taken / seats.");
            describe_gauge!(REGIONS, "Storage regions by health.");
            describe_gauge!(PENDING, "Users held as pending, all tenants.");
            describe_counter!(SCRAPE_ERRORS, "Scrapes whose state gauges could not be read from the store.");
            describe_gauge!(
                LEADER,
                "1 on the node that holds the background jobs' lease (probes, activation, webhooks)."
            );
            gauge!(LEADER).set(0.0);
            // Present from the start, so that rate() and absent() work before the first drop.
            counter!(DROPPED).absolute(0);
            for result in [WebhookResult::Delivered, WebhookResult::Failed, WebhookResult::GaveUp] {
                counter!(WEBHOOKS, "result" => result.as_str()).absolute(0);
            }
        });
        let inner = Arc::new(Inner { recorder, handle, scrape: tokio::sync::Mutex::new(()) });
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(upkeep(Arc::downgrade(&inner)));
        }
        Metrics { inner }
    }

    /// Counts a SCIM request from its provisioning log event; `duration` is the precise one (the
    /// event keeps whole milliseconds).
    pub fn request(&self, event: &Event, duration: Duration) {
        with_local_recorder(&self.inner.recorder, || {
            // `operation` is one of a fixed set (never a raw path), outcome and cause closed enums.
            counter!(
                REQUESTS,
                "operation" => event.operation.clone(),
                "outcome" => event.outcome.as_str(),
                "cause" => event.cause.as_str(),
            )
            .increment(1);
            histogram!(DURATION, "operation" => event.operation.clone()).record(duration.as_secs_f64());
        });
    }

    /// Counts one webhook delivery attempt. For the webhook sender.
    pub fn webhook_delivery(&self, result: WebhookResult) {
        with_local_recorder(&self.inner.recorder, || {
            counter!(WEBHOOKS, "result" => result.as_str()).increment(1);
        });
    }

    /// Whether this node now runs the background jobs. For the jobs loop.
    pub fn background_leader(&self, leading: bool) {
        with_local_recorder(&self.inner.recorder, || gauge!(LEADER).set(if leading { 1.0 } else { 0.0 }));
    }

    /// The exposition text: state gauges computed now from `service`'s store, `dropped` events
    /// as counted by the provisioning log's writer.
    pub async fn render(&self, service: &Service, dropped: u64) -> String {
        let _one_at_a_time = self.inner.scrape.lock().await;
        let state = StateGauges::read(service).await;
        with_local_recorder(&self.inner.recorder, || {
            counter!(DROPPED).absolute(dropped);
            match state {
                Ok(s) => s.set(),
                // The request counters are still worth serving; the gauges keep their last values.
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: could not read the state gauges");
                    counter!(SCRAPE_ERRORS).increment(1);
                }
            }
        });
        self.inner.handle.render()
    }
}

async fn upkeep(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(UPKEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        inner.handle.run_upkeep();
    }
}

/// What the state gauges show, read from the store in one pass over the tenants.
#[derive(Debug)]
struct StateGauges {
    expiring: [u64; EXPIRY_WINDOWS.len()],
    at_capacity: u64,
    near_capacity: u64,
    utilisation_max: f64,
    regions: [(Health, u64); 3],
    pending: u64,
}

impl StateGauges {
    /// Two store calls per tenant (tokens, profiles) plus the pending users of the tenants that
    /// have some: linear in the tenants, which is why docs/operations.md suggests a 30–60 s
    /// scrape interval for large clouds.
    async fn read(service: &Service) -> Result<StateGauges, StoreError> {
        let store = &service.store;
        let now = service.now();
        let mut g = StateGauges {
            expiring: [0; EXPIRY_WINDOWS.len()],
            at_capacity: 0,
            near_capacity: 0,
            utilisation_max: 0.0,
            regions: [(Health::Healthy, 0), (Health::Degraded, 0), (Health::Down, 0)],
            pending: 0,
        };
        for tenant in store.tenants().await? {
            for token in store.tokens(&tenant.id).await? {
                // A superseded token's overlap ending is a rotation working, not an expiry to act on.
                if token.revoked_at.is_some() || token.state_at(now) != TokenState::Active {
                    continue;
                }
                let left = token.expires_at - now;
                for (i, (_, days)) in EXPIRY_WINDOWS.iter().enumerate() {
                    if left <= time::Duration::days(*days) {
                        g.expiring[i] += 1;
                    }
                }
            }
            for profile in store.profiles(&tenant.id).await? {
                if profile.max_users == 0 {
                    continue;
                }
                let ratio = f64::from(profile.active_users) / f64::from(profile.max_users);
                g.at_capacity += u64::from(!profile.has_seat());
                g.near_capacity += u64::from(ratio >= NEAR_CAPACITY);
                g.utilisation_max = g.utilisation_max.max(ratio);
            }
        }
        for region in store.regions().await? {
            if let Some(slot) = g.regions.iter_mut().find(|(h, _)| *h == region.health) {
                slot.1 += 1;
            }
        }
        for tenant in store.tenants_with_pending().await? {
            let mut offset = 0u32;
            loop {
                let page = store.pending_users(&tenant, offset, PENDING_PAGE).await?;
                let n = u32::try_from(page.len()).unwrap_or(u32::MAX);
                g.pending += u64::from(n);
                if n < PENDING_PAGE {
                    break;
                }
                offset = offset.saturating_add(n);
            }
        }
        Ok(g)
    }

    /// Sets the gauges on the current (local) recorder. Every label value is set on every scrape,
    /// so a count that fell to zero shows zero rather than its last value.
    fn set(&self) {
        for ((label, _), n) in EXPIRY_WINDOWS.iter().zip(self.expiring) {
            gauge!(EXPIRING, "within" => *label).set(n as f64);
        }
        gauge!(AT_CAPACITY).set(self.at_capacity as f64);
        gauge!(NEAR).set(self.near_capacity as f64);
        gauge!(UTILISATION).set(self.utilisation_max);
        for (health, n) in self.regions {
            gauge!(REGIONS, "health" => health.as_str()).set(n as f64);
        }
        gauge!(PENDING).set(self.pending as f64);
    }
}

/// `GET /metrics`: unauthenticated, like the health endpoints (see docs/operations.md on keeping
/// it off the public internet). Not SCIM traffic, so never in the provisioning log.
pub async fn scrape(State(state): State<AppState>) -> Response {
    let text = state.metrics.render(&state.service, state.recorder.dropped()).await;
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}
