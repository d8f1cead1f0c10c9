//! Outbound events: webhooks against a real HTTP receiver started by the test (signature,
//! retries with backoff, order, idempotency keys), warnings that fire once per condition, the
//! feed's cursor paging, and tenant isolation. Time moves only through the injected clock.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{KeyInit, Mac};
use scimd_domain::provisioning::admin::MappingChange;
use scimd_domain::provisioning::{Health, HoldSettings, TenantSettings};
use scimd_domain::token::TokenRequest;
use scimd_server::jobs::{deliver_now, warnings_now};
use scimd_testkit::{Client, TestServer};
use serde_json::{Value, json};

use crate::support::{create_group, create_user};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: String,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }
}

#[derive(Default)]
struct Inbox {
    received: Vec<Received>,
    /// Statuses to answer first, in order; 200 after them.
    script: VecDeque<u16>,
}

/// A webhook receiver on 127.0.0.1 that records every request.
#[derive(Clone)]
struct Receiver {
    url: String,
    inbox: Arc<Mutex<Inbox>>,
}

impl Receiver {
    async fn start(script: &[u16]) -> Self {
        let inbox = Arc::new(Mutex::new(Inbox { received: Vec::new(), script: script.iter().copied().collect() }));
        async fn hook(State(inbox): State<Arc<Mutex<Inbox>>>, headers: HeaderMap, body: Bytes) -> StatusCode {
            let mut inbox = inbox.lock().unwrap();
            inbox.received.push(Received { headers, body: String::from_utf8_lossy(&body).into_owned() });
            let status = inbox.script.pop_front().unwrap_or(200);
            StatusCode::from_u16(status).unwrap()
        }
        let app = Router::new().route("/hook", post(hook)).with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, inbox }
    }

    fn received(&self) -> Vec<Received> {
        self.inbox.lock().unwrap().received.clone()
    }

    /// The event types delivered (each request once, retries included).
    fn types(&self) -> Vec<String> {
        self.received().iter().map(|r| r.json()["type"].as_str().unwrap_or_default().to_owned()).collect()
    }
}

/// Registers a webhook through the admin API; returns its id and (generated) secret.
async fn add_webhook(admin: &Client, tenant_id: &str, url: &str) -> (String, String) {
    let r = admin.post(&format!("/tenants/{tenant_id}/webhooks"), &json!({ "url": url })).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let secret = r.body["secret"].as_str().expect("a generated secret, shown once").to_owned();
    (r.body["id"].as_str().unwrap().to_owned(), secret)
}

fn verify(secret: &str, received: &Received) -> bool {
    // What a receiver does: HMAC over "<X-Scimd-Timestamp>.<raw body>".
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(received.header("x-scimd-timestamp").as_bytes());
    mac.update(b".");
    mac.update(received.body.as_bytes());
    received.header("x-scimd-signature") == format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn patch_active(active: bool) -> Value {
    json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{ "op": "replace", "path": "active", "value": active }] })
}

/// Every feed entry of a tenant, oldest first.
async fn feed(s: &TestServer, tenant_id: &str) -> Vec<Value> {
    let r = s.admin().get(&format!("/tenants/{tenant_id}/feed?limit=1000")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["events"].as_array().unwrap().clone()
}

fn types_of(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn lifecycle_events_arrive_signed_in_order_with_unique_idempotency_keys() {
    let s = TestServer::start().await;
    let receiver = Receiver::start(&[]).await;
    let (_, secret) = add_webhook(&s.admin(), &s.tenant.id, &receiver.url).await;
    let c = s.scim();
    let id = create_user(&c, "alice").await;
    let r = c
        .patch(
            &format!("/Users/{id}"),
            &json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "replace", "path": "displayName", "value": "Alice A." }] }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(c.patch(&format!("/Users/{id}"), &patch_active(false)).await.status, 200);
    assert_eq!(c.patch(&format!("/Users/{id}"), &patch_active(true)).await.status, 200);
    assert_eq!(c.delete(&format!("/Users/{id}")).await.status, 204);

    deliver_now(&s.service).await.unwrap();
    let expected = ["user.created", "user.updated", "user.preserved", "user.reactivated", "user.deleted"];
    assert_eq!(receiver.types(), expected);
    let received = receiver.received();
    let mut keys = HashSet::new();
    let mut last_id = 0;
    for r in &received {
        assert!(verify(&secret, r), "the signature verifies with the secret: {r:?}");
        assert!(!verify("another secret of some length", r));
        let body = r.json();
        assert_eq!(r.header("x-scimd-event"), body["type"].as_str().unwrap());
        assert!(!r.header("x-scimd-delivery").is_empty());
        assert_eq!(body["tenant_id"], s.tenant.id.as_str());
        assert_eq!(body["subject_id"], id.as_str());
        assert_eq!(body["data"]["id"], id.as_str());
        assert!(body["occurred_at"].is_string());
        let key = body["idempotency_key"].as_str().unwrap().to_owned();
        assert!(key.starts_with(&format!("{}:{id}:", s.tenant.id)), "{key}");
        assert!(keys.insert(key), "idempotency keys are unique");
        let outbox_id = body["id"].as_i64().unwrap();
        assert!(outbox_id > last_id, "in outbox order");
        last_id = outbox_id;
    }
    assert_eq!(received[2].json()["data"]["state"], "preserved");
    // Delivered rows are not sent again.
    deliver_now(&s.service).await.unwrap();
    assert_eq!(receiver.received().len(), 5);
    // The feed holds the same events.
    assert_eq!(types_of(&feed(&s, &s.tenant.id).await), expected);
}

#[tokio::test]
async fn group_changes_and_pending_users_are_events_too() {
    let s = TestServer::start().await;
    let c = s.scim();
    let alice = create_user(&c, "alice").await;
    let group = create_group(&c, "admins", &[]).await;
    let add = json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "add", "path": "members", "value": [{ "value": alice }] }] });
    assert_eq!(c.patch(&format!("/Groups/{group}"), &add).await.status, 200);
    assert_eq!(c.delete(&format!("/Groups/{group}")).await.status, 204);
    let events = feed(&s, &s.tenant.id).await;
    assert_eq!(types_of(&events), ["user.created", "group.created", "group.updated", "group.deleted"]);
    assert_eq!(events[2]["data"]["resource"]["members"][0]["value"], alice.as_str());
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_backoff_and_hold_later_events_back() {
    let s = TestServer::start().await;
    let receiver = Receiver::start(&[500, 500]).await;
    let (hook, secret) = add_webhook(&s.admin(), &s.tenant.id, &receiver.url).await;
    let c = s.scim();
    create_user(&c, "alice").await;
    deliver_now(&s.service).await.unwrap();
    assert_eq!(receiver.types(), ["user.created"], "first attempt, answered 500");
    // A later event waits behind the failed one; nothing is due before the backoff ends.
    create_user(&c, "bob").await;
    deliver_now(&s.service).await.unwrap();
    assert_eq!(receiver.received().len(), 1);
    s.clock.advance(time::Duration::seconds(11));
    deliver_now(&s.service).await.unwrap();
    assert_eq!(receiver.types(), ["user.created", "user.created"], "second attempt after 10 s, answered 500");
    s.clock.advance(time::Duration::seconds(11));
    deliver_now(&s.service).await.unwrap();
    assert_eq!(receiver.received().len(), 2, "the third attempt waits 20 s");
    s.clock.advance(time::Duration::seconds(10));
    deliver_now(&s.service).await.unwrap();
    let received = receiver.received();
    assert_eq!(received.len(), 4, "third attempt delivered, then bob's event");
    assert_eq!(received[2].body, received[0].body, "a retry sends the same body");
    assert_eq!(received[3].json()["data"]["resource"]["userName"], "bob");
    assert!(received.iter().all(|r| verify(&secret, r)));

    let log = s.admin().get(&format!("/tenants/{}/webhooks/{hook}/deliveries", s.tenant.id)).await;
    assert_eq!(log.status, 200, "{}", log.text);
    let entries = log.body["deliveries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{}", log.text);
    // Newest first: bob's, then alice's with its three attempts.
    assert_eq!((entries[1]["attempts"].as_u64(), entries[1]["last_status"].as_u64()), (Some(3), Some(200)));
    assert!(entries[1]["delivered_at"].is_string() && entries[1]["next_attempt_at"].is_null());
    assert_eq!(entries[0]["attempts"], 1);
}

#[tokio::test]
async fn a_test_send_answers_the_result_and_stays_out_of_the_feed() {
    let s = TestServer::start().await;
    let receiver = Receiver::start(&[503]).await;
    let admin = s.admin();
    let (hook, secret) = add_webhook(&admin, &s.tenant.id, &receiver.url).await;
    let path = format!("/tenants/{}/webhooks/{hook}", s.tenant.id);
    let r = admin.post(&format!("{path}/test"), &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!((r.body["delivered"].as_bool(), r.body["status"].as_u64()), (Some(false), Some(503)), "{}", r.text);
    let r = admin.post(&format!("{path}/test"), &json!({})).await;
    assert_eq!(r.body["delivered"], true, "{}", r.text);
    assert_eq!(receiver.types(), ["test", "test"]);
    assert!(verify(&secret, &receiver.received()[1]));
    assert!(feed(&s, &s.tenant.id).await.is_empty(), "test events are not in the feed");
    let log = admin.get(&format!("{path}/deliveries")).await;
    assert_eq!(log.body["deliveries"].as_array().unwrap().len(), 2, "{}", log.text);
    // Listing never shows the secret; deleting removes the webhook.
    let list = admin.get(&format!("/tenants/{}/webhooks", s.tenant.id)).await;
    assert_eq!(list.body["webhooks"][0]["id"], hook.as_str());
    assert!(!list.text.contains(&secret));
    assert_eq!(admin.delete(&path).await.status, 204);
    assert_eq!(admin.delete(&path).await.status, 404);
    // Bad input is refused with a reason.
    let bad = admin.post(&format!("/tenants/{}/webhooks", s.tenant.id), &json!({ "url": "ftp://x" })).await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    let bad = admin.post(&format!("/tenants/{}/webhooks", s.tenant.id), &json!({ "url": receiver.url, "x": 1 })).await;
    assert_eq!(bad.status, 400, "{}", bad.text);
}

#[tokio::test]
async fn a_warning_fires_once_per_condition_and_rearms_after_it_clears() {
    let s = TestServer::start().await;
    let receiver = Receiver::start(&[]).await;
    add_webhook(&s.admin(), &s.tenant.id, &receiver.url).await;
    let expiring = TokenRequest { lifetime_days: Some(10), ..Default::default() };
    s.service.issue_token(&s.tenant.id, expiring.clone()).await.unwrap();
    for _ in 0..3 {
        warnings_now(&s.service).await.unwrap();
    }
    let warnings = |events: Vec<Value>| -> Vec<Value> {
        events.into_iter().filter(|e| e["type"] == "warning.token_expiring_30d").collect()
    };
    let fired = warnings(feed(&s, &s.tenant.id).await);
    assert_eq!(fired.len(), 1, "fires once over repeated evaluations: {fired:#?}");
    assert_eq!(fired[0]["kind"], "warning");
    assert_eq!(fired[0]["data"]["details"]["code"], "token_expiring");
    assert!(fired[0]["data"]["details"]["fix"].as_array().is_some_and(|f| !f.is_empty()));
    deliver_now(&s.service).await.unwrap();
    assert_eq!(receiver.types(), ["warning.token_expiring_30d"]);

    // A long-lived token clears the condition; a short-lived one again fires it again.
    let long = TokenRequest { lifetime_days: Some(365), ..Default::default() };
    s.service.issue_token(&s.tenant.id, long).await.unwrap();
    warnings_now(&s.service).await.unwrap();
    assert_eq!(warnings(feed(&s, &s.tenant.id).await).len(), 1);
    s.service.issue_token(&s.tenant.id, expiring).await.unwrap();
    warnings_now(&s.service).await.unwrap();
    warnings_now(&s.service).await.unwrap();
    assert_eq!(warnings(feed(&s, &s.tenant.id).await).len(), 2, "re-armed after it cleared");
}

#[tokio::test]
async fn the_feed_pages_by_cursor() {
    let s = TestServer::start().await;
    let c = s.scim();
    for name in ["u1", "u2", "u3", "u4", "u5"] {
        create_user(&c, name).await;
    }
    let admin = s.admin();
    let (mut cursor, mut seen) = (0i64, Vec::new());
    for expected in [2, 2, 1, 0] {
        let r = admin.get(&format!("/tenants/{}/feed?cursor={cursor}&limit=2", s.tenant.id)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let events = r.body["events"].as_array().unwrap();
        assert_eq!(events.len(), expected, "{}", r.text);
        seen.extend(events.iter().map(|e| e["data"]["resource"]["userName"].as_str().unwrap().to_owned()));
        let next = r.body["next_cursor"].as_i64().unwrap();
        assert!(next >= cursor);
        cursor = next;
    }
    assert_eq!(seen, ["u1", "u2", "u3", "u4", "u5"]);
    // The last cursor is where a poller waits: a new event appears after it.
    create_user(&c, "u6").await;
    let r = admin.get(&format!("/tenants/{}/feed?cursor={cursor}", s.tenant.id)).await;
    assert_eq!(r.body["events"][0]["data"]["resource"]["userName"], "u6");
    for bad in ["cursor=-1", "limit=0", "limit=5000", "since=x"] {
        let r = admin.get(&format!("/tenants/{}/feed?{bad}", s.tenant.id)).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
}

#[tokio::test]
async fn a_tenants_webhooks_and_feed_never_see_another_tenants_events() {
    let s = TestServer::start().await;
    let (other, other_token) = s.new_tenant("globex").await;
    let mine = Receiver::start(&[]).await;
    let theirs = Receiver::start(&[]).await;
    let admin = s.admin();
    let (my_hook, _) = add_webhook(&admin, &s.tenant.id, &mine.url).await;
    add_webhook(&admin, &other.id, &theirs.url).await;
    create_user(&s.scim(), "alice").await;
    create_user(&s.scim_with(Some(&other_token)), "bob").await;
    deliver_now(&s.service).await.unwrap();
    let names = |r: &Receiver| -> Vec<String> {
        r.received().iter().map(|x| x.json()["data"]["resource"]["userName"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(names(&mine), ["alice"]);
    assert_eq!(names(&theirs), ["bob"]);
    assert!(mine.received().iter().all(|r| r.json()["tenant_id"] == s.tenant.id.as_str()));
    let other_feed = feed(&s, &other.id).await;
    assert_eq!(other_feed.len(), 1);
    assert_eq!(other_feed[0]["tenant_id"], other.id.as_str());
    // Another tenant's path does not reach this tenant's webhook.
    let r = admin.get(&format!("/tenants/{}/webhooks/{my_hook}/deliveries", other.id)).await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(admin.delete(&format!("/tenants/{}/webhooks/{my_hook}", other.id)).await.status, 404);
    assert_eq!(admin.post(&format!("/tenants/{}/webhooks/{my_hook}/test", other.id), &json!({})).await.status, 404);
}

#[tokio::test]
async fn held_users_are_pending_then_activated_and_a_full_profile_warns_once() {
    let s = TestServer::start().await;
    let profile = s.service.create_profile(&s.tenant, "Limited", 1).await.unwrap();
    let change = MappingChange {
        name: Some("everyone limited".into()),
        priority: Some(1),
        profile_id: Some(profile.id.clone()),
        ..Default::default()
    };
    s.service.create_mapping(&s.tenant, change).await.unwrap();
    let hold = HoldSettings { profile_full: true, ..Default::default() };
    s.service.set_settings(&s.tenant, TenantSettings { hold, ..Default::default() }).await.unwrap();
    let c = s.scim();
    create_user(&c, "u0").await;
    let held = create_user(&c, "u1").await;
    warnings_now(&s.service).await.unwrap();
    warnings_now(&s.service).await.unwrap();
    s.service.update_profile(&s.tenant, &profile.id, None, Some(2)).await.unwrap();
    // Full again (2 of 2, u1 activated): still the same firing, never cleared in between.
    s.flush_events().await;
    warnings_now(&s.service).await.unwrap();
    s.service.update_profile(&s.tenant, &profile.id, None, Some(20)).await.unwrap();
    warnings_now(&s.service).await.unwrap();
    let events = feed(&s, &s.tenant.id).await;
    assert_eq!(
        types_of(&events),
        ["user.created", "user.pending", "warning.profile_full", "user.activated"],
        "{events:#?}"
    );
    assert_eq!(events[1]["subject_id"], held.as_str());
    assert_eq!(events[1]["data"]["pending_cause"], "profile_full");
    assert_eq!(events[3]["subject_id"], held.as_str());
    assert_eq!(s.service.store.fired_warnings(&s.tenant.id).await.unwrap(), Vec::<String>::new(), "re-armed");
}

#[tokio::test]
async fn an_unhealthy_region_warns_once_and_its_recovery_is_announced() {
    let s = TestServer::start().await;
    let (other, _) = s.new_tenant("globex").await;
    let region = s.service.create_region("eu-2", Health::Healthy).await.unwrap();
    let profile = s.service.create_profile(&s.tenant, "EU", 0).await.unwrap();
    let change = MappingChange {
        name: Some("eu".into()),
        priority: Some(1),
        profile_id: Some(profile.id),
        region_id: Some(region.id.clone()),
        ..Default::default()
    };
    s.service.create_mapping(&s.tenant, change).await.unwrap();
    warnings_now(&s.service).await.unwrap();
    s.service.set_region_health(&region.id, Health::Down).await.unwrap();
    warnings_now(&s.service).await.unwrap();
    warnings_now(&s.service).await.unwrap();
    s.service.set_region_health(&region.id, Health::Healthy).await.unwrap();
    warnings_now(&s.service).await.unwrap();
    warnings_now(&s.service).await.unwrap();
    let events = feed(&s, &s.tenant.id).await;
    assert_eq!(types_of(&events), ["warning.region_unhealthy", "warning.region_recovered"], "{events:#?}");
    assert_eq!(events[0]["subject_id"], region.id.as_str());
    assert_eq!(events[0]["data"]["details"]["health"], "down");
    assert!(feed(&s, &other.id).await.is_empty(), "a tenant that does not use the region is not told");
}

#[tokio::test]
async fn seat_churn_at_the_limit_does_not_announce_full_again() {
    let s = TestServer::start().await;
    let profile = s.service.create_profile(&s.tenant, "Twenty", 20).await.unwrap();
    let change = MappingChange {
        name: Some("all".into()),
        priority: Some(1),
        profile_id: Some(profile.id.clone()),
        ..Default::default()
    };
    s.service.create_mapping(&s.tenant, change).await.unwrap();
    let c = s.scim();
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(create_user(&c, &format!("seat{i}")).await);
    }
    warnings_now(&s.service).await.unwrap();
    // One leaves (19 of 20, 95 %) and another joins (20 of 20): the same condition, still fired.
    let off = json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                      "Operations": [{ "op": "replace", "path": "active", "value": false }] });
    assert_eq!(c.patch(&format!("/Users/{}", ids[0]), &off).await.status, 200);
    warnings_now(&s.service).await.unwrap();
    create_user(&c, "seat20").await;
    warnings_now(&s.service).await.unwrap();
    let warnings: Vec<String> = types_of(&feed(&s, &s.tenant.id).await)
        .into_iter()
        .filter(|t| t.starts_with("warning."))
        .map(str::to_owned)
        .collect();
    // Straight to full: "full" once, no "nearly full" as well, and no second "full" after the churn.
    assert_eq!(warnings, ["warning.profile_full"]);
}

#[tokio::test]
async fn a_row_the_receiver_refuses_for_good_is_given_up_after_five_attempts() {
    let s = TestServer::start().await;
    // 413 five times (the body is "too large" for it), then it takes everything.
    let receiver = Receiver::start(&[413, 413, 413, 413, 413]).await;
    let (hook, _) = add_webhook(&s.admin(), &s.tenant.id, &receiver.url).await;
    let c = s.scim();
    create_user(&c, "huge").await;
    create_user(&c, "next").await;
    for _ in 0..6 {
        deliver_now(&s.service).await.unwrap();
        s.clock.advance(time::Duration::hours(1));
    }
    let received = receiver.received();
    assert_eq!(
        received.len(),
        6,
        "five refused attempts of the first row, then the second row: {:?}",
        receiver.types()
    );
    assert_eq!(received[5].json()["data"]["resource"]["userName"], "next", "the given-up row no longer blocks");
    let log = s.admin().get(&format!("/tenants/{}/webhooks/{hook}/deliveries", s.tenant.id)).await;
    let entries = log.body["deliveries"].as_array().unwrap();
    let given_up = &entries[1];
    assert_eq!(given_up["attempts"], 5, "{}", log.text);
    assert!(given_up["delivered_at"].is_null() && given_up["next_attempt_at"].is_null(), "{}", log.text);
    assert!(given_up["last_error"].as_str().unwrap().starts_with("gave up after 5 attempts"), "{}", log.text);
}
