//! Background work, run by one node at a time (the holder of its lease): region health probes,
//! the activation of pending users whose
//! cause may have cleared without anyone touching scimd (a probe, a missed trigger), webhook
//! deliveries and the evaluation of proactive warnings.

use std::time::Duration;

use scimd_domain::Service;
use scimd_domain::webhooks::{Attempt, OutboxEntry, Webhook, signature};

use crate::WebhookResult;

/// How often the jobs look for work.
const TICK: Duration = Duration::from_secs(5);
/// The background jobs' lease: renewed every tick by the node that runs them; another node
/// takes them over within this long after that node stops.
pub const LEASE_TERM: Duration = Duration::from_secs(20);
/// How often pending users are tried again regardless of triggers.
const ACTIVATION_EVERY: u32 = 12;
/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often warning conditions are evaluated (in ticks: once a minute).
const WARNINGS_EVERY: u32 = 12;
/// How long one webhook delivery may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Rows fetched per delivery round (each webhook has at most one due row per round).
const DELIVERY_BATCH: u32 = 100;
/// Rounds of one delivery pass, so that one pass ends even under a steady stream of events.
const DELIVERY_ROUNDS: u32 = 50;

/// Serialises delivery passes of this process (the background job and `deliver_now`), so that
/// two passes never send the same row at once. Across nodes delivery stays at-least-once, which
/// the idempotency key makes safe for consumers.
static DELIVERING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Starts the jobs on the current Tokio runtime; they run until the runtime stops.
pub fn start(service: Service, metrics: crate::Metrics) {
    tokio::spawn(async move {
        let client = probe_client();
        let webhook_client = delivery_client();
        let mut ticks = 0u32;
        let mut leading = false;
        let mut interval = tokio::time::interval(TICK);
        loop {
            interval.tick().await;
            // Nodes sharing a database take turns by lease: one runs the jobs, the others wait.
            let leads = match service.lead("background", LEASE_TERM).await {
                Ok(leads) => leads,
                Err(e) => {
                    // A database hiccup is no change of leader: skip this tick, keep the state.
                    tracing::warn!(error = %e, "cannot take the background jobs' lease");
                    continue;
                }
            };
            if leads != leading {
                tracing::info!(
                    node = service.node(),
                    leads,
                    "background jobs' lease {}",
                    if leads { "taken" } else { "lost" }
                );
                metrics.background_leader(leads);
            }
            // A node that has just taken the jobs over (at start, or from a node that died in the
            // middle of them) finishes what may have been left half done now, not a minute later.
            let took_over = leads && !leading;
            leading = leads;
            if !leads {
                continue;
            }
            if let Err(e) = probe_due(&service, &client).await {
                tracing::warn!(error = %e, "region probes failed");
            }
            ticks = ticks.wrapping_add(1);
            if (took_over || ticks.is_multiple_of(ACTIVATION_EVERY))
                && let Err(e) = service.activate_pending_everywhere().await
            {
                tracing::warn!(error = %e, "activating pending users failed");
            }
            if ticks.is_multiple_of(WARNINGS_EVERY)
                && let Err(e) = service.evaluate_warnings().await
            {
                tracing::warn!(error = %e, "evaluating warnings failed");
            }
            if let Err(e) = deliver_due(&service, &webhook_client, Some(&metrics)).await {
                tracing::warn!(error = %e, "webhook deliveries failed");
            }
        }
    });
}

fn probe_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(PROBE_TIMEOUT).build().unwrap_or_default()
}

/// Probes every region whose probe is due: a 2xx answer is healthy, anything else (another
/// status, a timeout, a refused connection) is down.
pub async fn probe_due(service: &Service, client: &reqwest::Client) -> scimd_domain::Result<u32> {
    let mut probed = 0;
    for region in service.regions_due_for_probe().await? {
        let Some(url) = &region.probe_url else { continue };
        let (healthy, result) = match client.get(url).send().await {
            Ok(resp) => (resp.status().is_success(), resp.status().to_string()),
            Err(e) => (false, if e.is_timeout() { "timed out".to_owned() } else { e.without_url().to_string() }),
        };
        if healthy != (region.health == scimd_domain::provisioning::Health::Healthy) {
            tracing::info!(region = %region.name, healthy, result = %result, "region health changed by its probe");
        }
        service.record_probe(&region.id, healthy, result).await?;
        probed += 1;
    }
    Ok(probed)
}

/// Runs the probes that are due once, now (for tests and operators).
pub async fn probe_now(service: &Service) -> scimd_domain::Result<u32> {
    probe_due(service, &probe_client()).await
}

fn delivery_client() -> reqwest::Client {
    // Redirects are not followed: a receiver answers where it was registered, and a redirect
    // must not carry the signed body somewhere else.
    reqwest::Client::builder()
        .timeout(DELIVERY_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("scimd-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// POSTs one outbox row to one webhook, signed with its secret. Never fails: a refused
/// connection or a timeout is an attempt that did not deliver.
pub async fn send(client: &reqwest::Client, webhook: &Webhook, entry: &OutboxEntry, now: i64) -> Attempt {
    let body = entry.body().to_string();
    let sent = client
        .post(&webhook.url)
        .header("Content-Type", "application/json")
        .header("X-Scimd-Timestamp", now.to_string())
        .header("X-Scimd-Signature", signature(&webhook.secret, now, body.as_bytes()))
        .header("X-Scimd-Event", &entry.event_type)
        // Stable across retries of the same row to the same webhook.
        .header("X-Scimd-Delivery", format!("{}:{}", webhook.id, entry.id))
        .header("X-Scimd-Idempotency-Key", &entry.idempotency_key)
        .body(body)
        .send()
        .await;
    match sent {
        Ok(resp) if resp.status().is_success() => Attempt { status: Some(resp.status().as_u16()), error: None },
        Ok(resp) => Attempt { status: Some(resp.status().as_u16()), error: Some(format!("HTTP {}", resp.status())) },
        Err(e) => {
            // Without the URL: a receiver's URL may carry a key in its query string.
            Attempt {
                status: None,
                error: Some(if e.is_timeout() { "timed out".into() } else { e.without_url().to_string() }),
            }
        }
    }
}

/// Delivers every row that is due: each enabled webhook gets its rows in outbox order; a row
/// that fails is retried with backoff and holds back the webhook's later rows meanwhile.
/// Returns how many rows were delivered.
pub async fn deliver_due(
    service: &Service,
    client: &reqwest::Client,
    metrics: Option<&crate::Metrics>,
) -> scimd_domain::Result<u32> {
    let _pass = DELIVERING.lock().await;
    let mut delivered = 0;
    for _ in 0..DELIVERY_ROUNDS {
        // A failed row is not due again until its backoff ends, and a delivered one moves its
        // webhook on: every round makes progress or ends the pass.
        let due = service.store.due_deliveries(service.now(), DELIVERY_BATCH).await?;
        if due.is_empty() {
            break;
        }
        for d in due {
            let attempt = send(client, &d.webhook, &d.entry, service.now().unix_timestamp()).await;
            if let Some(m) = metrics {
                let result = if attempt.delivered() {
                    WebhookResult::Delivered
                } else if attempt.permanent_failure() && d.attempts + 1 >= scimd_domain::webhooks::GIVE_UP_AFTER {
                    WebhookResult::GaveUp
                } else {
                    WebhookResult::Failed
                };
                m.webhook_delivery(result);
            }
            if attempt.delivered() {
                delivered += 1;
            } else {
                tracing::info!(webhook = %d.webhook.id, outbox_id = d.entry.id, error = ?attempt.error, "webhook delivery failed");
            }
            service.record_attempt(&d.webhook.id, &d.entry, d.attempts, &attempt).await?;
        }
    }
    Ok(delivered)
}

/// Runs one delivery pass now (for tests and operators).
pub async fn deliver_now(service: &Service) -> scimd_domain::Result<u32> {
    deliver_due(service, &delivery_client(), None).await
}

/// Sends a `test` event to one webhook now and records it in its delivery log.
pub async fn test_send(service: &Service, webhook: &Webhook) -> scimd_domain::Result<(OutboxEntry, Attempt)> {
    let entry = service.test_entry(webhook).await?;
    let attempt = send(&delivery_client(), webhook, &entry, service.now().unix_timestamp()).await;
    service.record_attempt(&webhook.id, &entry, 0, &attempt).await?;
    Ok((entry, attempt))
}

/// Evaluates every tenant's warning conditions now (for tests and operators); returns how many
/// warnings fired.
pub async fn warnings_now(service: &Service) -> scimd_domain::Result<u32> {
    service.evaluate_warnings().await
}
