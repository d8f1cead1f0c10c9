//! `/metrics`: Prometheus text that parses, request counters fed from the provisioning log's
//! events, the duration histogram, state gauges computed at scrape time, no tenant label, and one
//! registry per server.

use std::collections::BTreeMap;

use scimd_domain::events::Outcome;
use scimd_domain::token::TokenRequest;
use scimd_server::WebhookResult;
use scimd_testkit::{Client, TestServer};
use time::Duration;

use crate::support::user;

/// One sample line: `name{label="value",...} value`.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the exposition text strictly: every line is a comment or a sample, or the test fails.
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|line| parse_line(line).unwrap_or_else(|| panic!("not a Prometheus sample line: {line:?}")))
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let name_ok = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !name_ok {
        return None;
    }
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        loop {
            let (start, c) = chars.next()?;
            if c == '}' {
                rest = &after[start + 1..];
                break;
            }
            if c == ',' {
                continue;
            }
            let eq = after[start..].find('=')? + start;
            let key = after[start..eq].to_owned();
            if after[eq + 1..].chars().next()? != '"' {
                return None;
            }
            // The value runs to the next unescaped quote.
            let mut value = String::new();
            let mut escaped = false;
            let mut end = None;
            for (i, ch) in after[eq + 2..].char_indices() {
                match (escaped, ch) {
                    (true, _) => {
                        value.push(ch);
                        escaped = false;
                    }
                    (false, '\\') => escaped = true,
                    (false, '"') => {
                        end = Some(eq + 2 + i);
                        break;
                    }
                    (false, _) => value.push(ch),
                }
            }
            let end = end?;
            labels.insert(key, value);
            while chars.peek().is_some_and(|(i, _)| *i <= end) {
                chars.next();
            }
        }
    }
    let value = rest.strip_prefix(' ')?.split(' ').next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample { name: name.to_owned(), labels, value })
}

async fn scrape(s: &TestServer) -> Vec<Sample> {
    let r = Client::new(&s.base, None).get("/metrics").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("text/plain; version=0.0.4")), "{:?}", r.headers);
    parse(&r.text)
}

/// The value of the one sample named `name` whose labels include `labels`; 0 when absent.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?} is ambiguous: {found:?}");
    found.first().map_or(0.0, |s| s.value)
}

fn requests(samples: &[Sample], operation: &str, outcome: &str, cause: &str) -> f64 {
    value(samples, "scimd_requests_total", &[("operation", operation), ("outcome", outcome), ("cause", cause)])
}

#[test]
fn the_parser_reads_labels_with_spaces_and_escapes() {
    let s = parse_line(r#"m_total{op="create User",x="a\"b,c}"} 3"#).expect("parses");
    assert_eq!((s.name.as_str(), s.value), ("m_total", 3.0));
    assert_eq!(s.labels["op"], "create User");
    assert_eq!(s.labels["x"], "a\"b,c}");
    assert_eq!(parse_line("up 1").map(|s| s.value), Some(1.0));
    assert_eq!(parse_line("b{le=\"+Inf\"} 2").map(|s| s.labels["le"].clone()), Some("+Inf".into()));
    assert!(parse_line("not a sample").is_none());
    assert!(parse_line("x{a=b} 1").is_none());
}

#[tokio::test]
async fn requests_are_counted_by_operation_outcome_and_cause() {
    let s = TestServer::start().await;
    let before = scrape(&s).await;
    assert_eq!(requests(&before, "create User", "accepted", "ok"), 0.0);

    assert_eq!(s.scim().post("/Users", &user("alice")).await.status, 201);
    assert_eq!(s.scim().post("/Users", &user("bob")).await.status, 201);
    assert_eq!(s.scim_with(Some("scimd_nope1234_wrong")).get("/Users").await.status, 401);
    assert_eq!(s.scim_with(None).get("/Users").await.status, 401);
    assert_eq!(Client::new(&s.base, Some(&s.token)).get("/Users/some-id-123").await.status, 404);
    // Neither the admin API nor /metrics itself is SCIM traffic.
    assert_eq!(s.admin().get("/tenants").await.status, 200);

    let after = scrape(&s).await;
    assert_eq!(requests(&after, "create User", "accepted", "ok"), 2.0);
    assert_eq!(requests(&after, "list Users", "unauthenticated", "unknown_token"), 1.0);
    assert_eq!(requests(&after, "list Users", "unauthenticated", "missing_token"), 1.0);
    assert_eq!(requests(&after, "unknown", "refused", "unknown_path"), 1.0);
    let total: f64 = after.iter().filter(|x| x.name == "scimd_requests_total").map(|x| x.value).sum();
    assert_eq!(total, 5.0, "exactly the SCIM requests: {after:#?}");

    // Metrics and the log agree, event for event.
    let events = s.events().await;
    assert_eq!(events.len(), 5);
    for e in &events {
        let n = requests(&after, &e.operation, e.outcome.as_str(), e.cause.as_str());
        let logged = events
            .iter()
            .filter(|x| (x.operation.as_str(), x.outcome, x.cause) == (e.operation.as_str(), e.outcome, e.cause))
            .count();
        assert_eq!(n, logged as f64, "{e:#?}");
    }
    assert!(events.iter().any(|e| e.outcome == Outcome::Unauthenticated));

    // Bounded labels: no tenant, token, path or id anywhere.
    for sample in &after {
        for key in sample.labels.keys() {
            assert!(
                ["operation", "outcome", "cause", "le", "within", "health", "result"].contains(&key.as_str()),
                "{sample:?}"
            );
        }
        assert!(!sample.labels.values().any(|v| v.contains(&s.tenant.id) || v.contains("some-id-123")), "{sample:?}");
    }

    // The histogram: cumulative buckets up to +Inf, with _sum and _count.
    let create = [("operation", "create User")];
    let count = value(&after, "scimd_request_duration_seconds_count", &create);
    assert_eq!(count, 2.0);
    assert!(value(&after, "scimd_request_duration_seconds_sum", &create) > 0.0);
    let buckets: Vec<&Sample> = after
        .iter()
        .filter(|x| x.name == "scimd_request_duration_seconds_bucket" && x.labels["operation"] == "create User")
        .collect();
    assert_eq!(buckets.len(), 14, "13 bounds and +Inf: {buckets:#?}");
    assert_eq!(buckets.iter().find(|b| b.labels["le"] == "+Inf").map(|b| b.value), Some(2.0));
    assert!(buckets.iter().any(|b| b.labels["le"] == "0.001") && buckets.iter().any(|b| b.labels["le"] == "10"));
    let mut cumulative: Vec<(f64, f64)> =
        buckets.iter().map(|b| (b.labels["le"].parse::<f64>().unwrap_or(f64::INFINITY), b.value)).collect();
    cumulative.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(cumulative.windows(2).all(|w| w[0].1 <= w[1].1), "{cumulative:?}");

    assert_eq!(value(&after, "scimd_events_dropped_total", &[]), 0.0);
    assert!(after.iter().any(|x| x.name == "scimd_events_dropped_total"));
    s.stop().await;
}

#[tokio::test]
async fn gauges_reflect_the_state_at_scrape_time() {
    let s = TestServer::start().await;
    let (other, _) = s.new_tenant("beta").await;
    let soon = TokenRequest { lifetime_days: Some(5), ..Default::default() };
    s.service.issue_token(&other.id, soon).await.expect("token");

    let m = scrape(&s).await;
    let expiring = |m: &[Sample], w: &str| value(m, "scimd_tokens_expiring", &[("within", w)]);
    assert!(expiring(&m, "7d") >= 1.0, "{m:#?}");
    assert!(expiring(&m, "30d") >= expiring(&m, "7d"));
    assert_eq!(expiring(&m, "1d"), 0.0);
    for health in ["healthy", "degraded", "down"] {
        assert!(m.iter().any(|x| x.name == "scimd_regions" && x.labels["health"] == health), "{health}");
    }
    for name in ["scimd_profiles_at_capacity", "scimd_profiles_near_capacity", "scimd_pending_users"] {
        assert_eq!(value(&m, name, &[]), 0.0, "{name}");
    }

    // Four and a half days on, the same token expires within a day: computed now, not cached.
    s.clock.advance(Duration::hours(108));
    let m = scrape(&s).await;
    assert!(expiring(&m, "1d") >= 1.0, "{m:#?}");
    s.stop().await;
}

#[tokio::test]
async fn two_servers_in_one_process_keep_their_own_counts() {
    let a = TestServer::start().await;
    let b = TestServer::start().await;
    assert_eq!(a.scim().post("/Users", &user("alice")).await.status, 201);
    assert_eq!(a.scim().post("/Users", &user("bob")).await.status, 201);
    assert_eq!(b.scim().post("/Users", &user("carol")).await.status, 201);
    a.metrics.webhook_delivery(WebhookResult::Failed);

    let (ma, mb) = (scrape(&a).await, scrape(&b).await);
    assert_eq!(requests(&ma, "create User", "accepted", "ok"), 2.0);
    assert_eq!(requests(&mb, "create User", "accepted", "ok"), 1.0);
    let webhooks = |m: &[Sample], r: &str| value(m, "scimd_webhook_deliveries_total", &[("result", r)]);
    assert_eq!((webhooks(&ma, "failed"), webhooks(&mb, "failed")), (1.0, 0.0));
    assert_eq!(webhooks(&mb, "delivered"), 0.0);
    assert!(mb.iter().any(|x| x.name == "scimd_webhook_deliveries_total"), "present before the first delivery");
    a.stop().await;
    b.stop().await;
}
