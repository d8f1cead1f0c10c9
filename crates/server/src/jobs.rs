//! Background work of a node: region health probes and the activation of pending users whose
//! cause may have cleared without anyone touching scimd (a probe, a missed trigger).

use std::time::Duration;

use scimd_domain::Service;

/// How often the jobs look for work.
const TICK: Duration = Duration::from_secs(5);
/// How often pending users are tried again regardless of triggers.
const ACTIVATION_EVERY: u32 = 12;
/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the jobs on the current Tokio runtime; they run until the runtime stops.
pub fn start(service: Service) {
    tokio::spawn(async move {
        let client = probe_client();
        let mut ticks = 0u32;
        let mut interval = tokio::time::interval(TICK);
        loop {
            interval.tick().await;
            if let Err(e) = probe_due(&service, &client).await {
                tracing::warn!(error = %e, "region probes failed");
            }
            ticks = ticks.wrapping_add(1);
            if ticks.is_multiple_of(ACTIVATION_EVERY)
                && let Err(e) = service.activate_pending_everywhere().await
            {
                tracing::warn!(error = %e, "activating pending users failed");
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
            Err(e) => (false, if e.is_timeout() { "timed out".to_owned() } else { e.to_string() }),
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
