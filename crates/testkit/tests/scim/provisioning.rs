//! Provisioning rules over HTTP: mappings, profile seats, cloud-wide email uniqueness, region
//! health, the lifecycle (preserve, re-activate, delete, re-hire), hold mode, and their races.

use std::collections::HashSet;

use scimd_domain::events::{Cause, Event, Outcome};
use scimd_domain::provisioning::admin::MappingChange;
use scimd_domain::provisioning::{DeletePolicy, Health, HoldSettings, Region, TenantSettings};
use scimd_testkit::{Client, TestServer};
use serde_json::{Value, json};

use crate::support::{assert_scim_error, enc, user};

const PROVISIONING: &str = "urn:scimd:params:scim:schemas:extension:provisioning:1.0:User";
/// Asks for the provisioning extension, which is returned on request.
const WITH_STATE: &str = "?attributes=userName,active,urn:scimd:params:scim:schemas:extension:provisioning:1.0:User";

fn with_email(user_name: &str, email: &str) -> Value {
    let mut u = user(user_name);
    u["emails"] = json!([{ "value": email, "type": "work", "primary": true }]);
    u
}

fn deactivate() -> Value {
    json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{ "op": "replace", "value": { "active": false } }] })
}

fn reactivate() -> Value {
    json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{ "op": "replace", "path": "active", "value": true }] })
}

/// Asserts what the provisioning log recorded for the latest request.
async fn assert_logged(s: &TestServer, cause: Cause, outcome: Outcome, status: u16) -> Event {
    let event = s.events().await.pop().expect("an event");
    assert_eq!((event.cause, event.outcome, event.status), (cause, outcome, status), "{event:#?}");
    assert_eq!(event.tenant_id.as_deref(), Some(s.tenant.id.as_str()), "{event:#?}");
    event
}

async fn count_users(c: &Client) -> u64 {
    c.get("/Users?count=0").await.body["totalResults"].as_u64().unwrap()
}

/// A profile with `max` seats that every new user of the tenant lands in.
async fn only_profile(s: &TestServer, max: u32) -> String {
    let profile = s.service.create_profile(&s.tenant, "Limited", max).await.unwrap();
    let change = MappingChange {
        name: Some("everyone limited".into()),
        priority: Some(1),
        profile_id: Some(profile.id.clone()),
        ..Default::default()
    };
    s.service.create_mapping(&s.tenant, change).await.unwrap();
    profile.id
}

#[tokio::test]
async fn a_new_tenant_provisions_with_no_configuration() {
    let s = TestServer::start().await;
    let r = s.scim().post(&format!("/Users{WITH_STATE}"), &user("alice")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body[PROVISIONING]["state"], "active");
    let profiles = s.service.profiles(&s.tenant).await.unwrap();
    assert_eq!(profiles.len(), 1);
    assert_eq!(profiles[0].name, "Default");
    assert_eq!(profiles[0].max_users, 0);
    assert_eq!(profiles[0].active_users, 1);
    assert_eq!(r.body[PROVISIONING]["profileId"], profiles[0].id);
    let mappings = s.service.mappings(&s.tenant).await.unwrap();
    assert_eq!(mappings[0].name, "Allow any user");
    assert!(mappings[0].filter.is_none());
}

#[tokio::test]
async fn no_mapping_matched_is_refused_with_the_trace_and_nothing_written() {
    let s = TestServer::start().await;
    let catch_all = s.service.mappings(&s.tenant).await.unwrap().remove(0);
    s.service
        .update_mapping(&s.tenant, &catch_all.id, MappingChange { enabled: Some(false), ..Default::default() })
        .await
        .unwrap();
    let profile = s.service.profiles(&s.tenant).await.unwrap().remove(0);
    let change = MappingChange {
        name: Some("Acme engineers".into()),
        filter: Some(Some("company eq \"Acme\" and title co \"Engineer\"".into())),
        profile_id: Some(profile.id),
        ..Default::default()
    };
    s.service.create_mapping(&s.tenant, change).await.unwrap();
    let c = s.scim();
    let mut body = with_email("bob", "bob@acme.com");
    body["company"] = json!("Acme");
    body["title"] = json!("Accountant");
    let r = c.post("/Users", &body).await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    let detail = r.body["detail"].as_str().unwrap();
    assert!(detail.contains("none of the SCIM mappings matched"), "{detail}");
    assert!(detail.contains("Acme engineers"), "{detail}");
    assert!(detail.contains("title co \"Engineer\" (user has \"Accountant\")"), "{detail}");
    let event = assert_logged(&s, Cause::NoMappingMatched, Outcome::Refused, 400).await;
    assert_eq!(event.subject.as_deref(), Some("bob"));
    assert_eq!(event.detail.as_deref(), Some(detail));
    assert_eq!(count_users(&c).await, 0, "nothing written");
    // The same request succeeds once the cause is gone (so no stray email claim was left).
    body["title"] = json!("Senior Engineer");
    let r = c.post("/Users", &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn a_bad_mapping_condition_is_refused_when_saved() {
    let s = TestServer::start().await;
    let profile = s.service.profiles(&s.tenant).await.unwrap().remove(0);
    let change = MappingChange {
        name: Some("broken".into()),
        filter: Some(Some("department eq Finance".into())),
        profile_id: Some(profile.id),
        ..Default::default()
    };
    let e = s.service.create_mapping(&s.tenant, change).await.unwrap_err().to_string();
    assert!(e.contains("position") && e.contains("quoted"), "{e}");
}

#[tokio::test]
async fn profile_full_is_a_403_naming_the_profile_and_its_limit() {
    let s = TestServer::start().await;
    only_profile(&s, 1).await;
    let c = s.scim();
    assert_eq!(c.post("/Users", &user("one")).await.status, 201);
    let r = c.post("/Users", &user("two")).await;
    assert_scim_error(&r, 403, None);
    let detail = r.body["detail"].as_str().unwrap();
    assert!(detail.contains("\"Limited\"") && detail.contains("1 of 1"), "{detail}");
    assert_logged(&s, Cause::ProfileFull, Outcome::Refused, 403).await;
    assert_eq!(count_users(&c).await, 1, "nothing written");
}

#[tokio::test]
async fn email_in_use_in_this_tenant_is_a_409() {
    let s = TestServer::start().await;
    let c = s.scim();
    assert_eq!(c.post("/Users", &with_email("a", "same@corp.com")).await.status, 201);
    let r = c.post("/Users", &with_email("b", "SAME@corp.com")).await;
    assert_scim_error(&r, 409, Some("uniqueness"));
    assert!(r.body["detail"].as_str().unwrap().contains("another user of this tenant"));
    assert_logged(&s, Cause::EmailInUseInTenant, Outcome::Refused, 409).await;
    assert_eq!(count_users(&c).await, 1);
}

#[tokio::test]
async fn email_in_use_elsewhere_reveals_nothing_about_the_other_tenant() {
    let s = TestServer::start().await;
    let a = s.scim();
    let created = a.post("/Users", &with_email("Secret.Owner", "shared@corp.com")).await;
    assert_eq!(created.status, 201);
    let owner_id = created.body["id"].as_str().unwrap().to_owned();
    let (_, token_b) = s.new_tenant("beta").await;
    let b = s.scim_with(Some(&token_b));
    let r = b.post("/Users", &with_email("someone", "shared@corp.com")).await;
    assert_scim_error(&r, 409, Some("uniqueness"));
    assert!(r.body["detail"].as_str().unwrap().contains("elsewhere in the cloud"));
    let event = s.events().await.pop().unwrap();
    assert_eq!((event.cause, event.status), (Cause::EmailInUseElsewhere, 409));
    assert_ne!(event.tenant_id.as_deref(), Some(s.tenant.id.as_str()), "recorded against the requesting tenant");
    let everything = format!("{:?}{}", r.headers, r.text);
    for secret in [s.tenant.id.as_str(), s.tenant.name.as_str(), owner_id.as_str(), "Secret.Owner", "secret.owner"] {
        assert!(!everything.contains(secret), "the refusal leaks {secret}: {everything}");
    }
    // Same shape as any other uniqueness refusal: no header or field that differs by tenant.
    let keys: Vec<&String> = r.body.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert_eq!(count_users(&b).await, 0);
}

#[tokio::test]
async fn unhealthy_region_is_a_503_with_retry_after_and_succeeds_once_healthy() {
    let s = TestServer::start().await;
    let region = s.service.default_region().await.unwrap();
    s.service.set_region_health(&region.id, Health::Down).await.unwrap();
    let c = s.scim();
    let r = c.post("/Users", &user("carol")).await;
    assert_scim_error(&r, 503, None);
    assert!(r.header("retry-after").is_some_and(|v| v.parse::<u32>().is_ok()));
    assert!(r.body["detail"].as_str().unwrap().contains(&format!("\"{}\" is down", region.name)));
    assert_logged(&s, Cause::RegionUnhealthy, Outcome::Refused, 503).await;
    assert_eq!(count_users(&c).await, 0);
    s.service.set_region_health(&region.id, Health::Healthy).await.unwrap();
    assert_eq!(c.post("/Users", &user("carol")).await.status, 201);
}

#[tokio::test]
async fn deactivation_releases_the_seat_and_reactivation_needs_one() {
    let s = TestServer::start().await;
    let profile = only_profile(&s, 1).await;
    let c = s.scim();
    let first = c.post("/Users", &user("first")).await.body["id"].as_str().unwrap().to_owned();
    let r = c.patch(&format!("/Users/{first}{WITH_STATE}"), &deactivate()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body[PROVISIONING]["state"], "preserved");
    assert_eq!(s.service.profile(&s.tenant, &profile).await.unwrap().active_users, 0);
    let second = c.post("/Users", &user("second")).await;
    assert_eq!(second.status, 201, "the released seat is free");
    let r = c.patch(&format!("/Users/{first}"), &reactivate()).await;
    assert_scim_error(&r, 403, None);
    assert_eq!(c.get(&format!("/Users/{first}")).await.body["active"], false, "nothing changed");
    let second_id = second.body["id"].as_str().unwrap();
    assert_eq!(c.patch(&format!("/Users/{second_id}"), &deactivate()).await.status, 200);
    let r = c.patch(&format!("/Users/{first}{WITH_STATE}"), &reactivate()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body[PROVISIONING]["state"], "active");
}

#[tokio::test]
async fn delete_preserves_by_default_and_the_user_can_be_rehired() {
    let s = TestServer::start().await;
    let c = s.scim();
    let id = c.post("/Users", &with_email("dora", "dora@corp.com")).await.body["id"].as_str().unwrap().to_owned();
    let eve = c.post("/Users", &with_email("eve", "eve@corp.com")).await.body["id"].as_str().unwrap().to_owned();
    assert_eq!(c.delete(&format!("/Users/{id}")).await.status, 204);
    assert_scim_error(&c.get(&format!("/Users/{id}")).await, 404, None);
    assert_eq!(c.get(&format!("/Users?filter={}", enc("userName eq \"dora\""))).await.body["totalResults"], 0);
    // The preserved user still holds its email.
    let r = c.put(&format!("/Users/{eve}"), &with_email("eve", "dora@corp.com")).await;
    assert_scim_error(&r, 409, Some("uniqueness"));
    assert!(r.body["detail"].as_str().unwrap().contains("preserved"), "{}", r.text);
    assert_logged(&s, Cause::EmailHeldByPreservedUser, Outcome::Refused, 409).await;
    // Re-hire: a create that names the preserved user re-activates it instead of duplicating it.
    let rehired = c.post(&format!("/Users{WITH_STATE}"), &with_email("dora", "dora@corp.com")).await;
    assert_eq!(rehired.status, 201, "{}", rehired.text);
    assert_eq!(rehired.body["id"], id.as_str());
    assert_eq!(rehired.body["active"], true);
    assert_eq!(rehired.body[PROVISIONING]["state"], "active");
    // Also when only the email matches (a renamed account).
    assert_eq!(c.delete(&format!("/Users/{id}")).await.status, 204);
    let renamed = c.post("/Users", &with_email("dora.renamed", "dora@corp.com")).await;
    assert_eq!(renamed.status, 201, "{}", renamed.text);
    assert_eq!(renamed.body["id"], id.as_str());
    assert_eq!(renamed.body["userName"], "dora.renamed");
}

#[tokio::test]
async fn delete_under_purge_releases_the_email() {
    let s = TestServer::start().await;
    let settings = TenantSettings { delete_policy: DeletePolicy::Purge, ..Default::default() };
    s.service.set_settings(&s.tenant, settings).await.unwrap();
    let c = s.scim();
    let id = c.post("/Users", &with_email("erin", "erin@corp.com")).await.body["id"].as_str().unwrap().to_owned();
    assert_eq!(c.delete(&format!("/Users/{id}")).await.status, 204);
    let again = c.post("/Users", &with_email("erin2", "erin@corp.com")).await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_ne!(again.body["id"], id.as_str());
}

#[tokio::test]
async fn a_user_preserved_by_an_administrator_cannot_be_reactivated_by_the_idp() {
    let s = TestServer::start().await;
    let c = s.scim();
    let id = c.post("/Users", &user("frank")).await.body["id"].as_str().unwrap().to_owned();
    s.service.admin_preserve_user(&s.tenant, &id).await.unwrap();
    let r = c.patch(&format!("/Users/{id}"), &reactivate()).await;
    assert_scim_error(&r, 403, None);
    assert!(r.body["detail"].as_str().unwrap().contains("preserved by an administrator"));
    assert_logged(&s, Cause::AdminPreserved, Outcome::Refused, 403).await;
    s.service.restore_user(&s.tenant, &id).await.unwrap();
    assert_eq!(c.get(&format!("/Users/{id}")).await.body["active"], true);
}

#[tokio::test]
async fn changing_the_email_moves_the_claim() {
    let s = TestServer::start().await;
    let c = s.scim();
    let id = c.post("/Users", &with_email("gina", "old@corp.com")).await.body["id"].as_str().unwrap().to_owned();
    let r = c.put(&format!("/Users/{id}"), &with_email("gina", "new@corp.com")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(c.post("/Users", &with_email("other", "old@corp.com")).await.status, 201, "old email released");
    assert_scim_error(&c.post("/Users", &with_email("third", "new@corp.com")).await, 409, Some("uniqueness"));
    // Moving onto an email someone else holds is refused and changes nothing.
    let r = c.put(&format!("/Users/{id}"), &with_email("gina", "old@corp.com")).await;
    assert_scim_error(&r, 409, Some("uniqueness"));
    assert_eq!(c.get(&format!("/Users/{id}")).await.body["emails"][0]["value"], "new@corp.com");
}

#[tokio::test]
async fn held_users_are_pending_and_activate_in_order_within_capacity() {
    let s = TestServer::start().await;
    let profile = only_profile(&s, 1).await;
    let hold = HoldSettings { profile_full: true, ..Default::default() };
    s.service.set_settings(&s.tenant, TenantSettings { hold, ..Default::default() }).await.unwrap();
    let c = s.scim();
    assert_eq!(c.post("/Users", &user("u0")).await.status, 201);
    let mut pending = Vec::new();
    for i in 1..=3 {
        let r = c.post(&format!("/Users{WITH_STATE}"), &user(&format!("u{i}"))).await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.body[PROVISIONING]["state"], "pending");
        assert_eq!(r.body[PROVISIONING]["pendingCause"], "profile_full");
        assert_logged(&s, Cause::ProfileFull, Outcome::Held, 201).await;
        pending.push(r.body["id"].as_str().unwrap().to_owned());
    }
    s.service.update_profile(&s.tenant, &profile, None, Some(3)).await.unwrap();
    let states: Vec<Value> = futures_states(&c, &pending).await;
    assert_eq!(states, vec![json!("active"), json!("active"), json!("pending")], "arrival order, never above capacity");
    let activations: Vec<Event> = s.events().await.into_iter().filter(|e| e.operation == "activate User").collect();
    assert_eq!(activations.len(), 2, "one event per activation");
    assert_eq!(activations[0].subject.as_deref(), Some("u1"));
    assert!(activations[0].detail.as_deref().unwrap().contains("profile_full"));
    assert_eq!(s.service.profile(&s.tenant, &profile).await.unwrap().active_users, 3);
}

async fn futures_states(c: &Client, ids: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    for id in ids {
        out.push(c.get(&format!("/Users/{id}{WITH_STATE}")).await.body[PROVISIONING]["state"].clone());
    }
    out
}

#[tokio::test]
async fn dry_run_traces_every_mapping() {
    let s = TestServer::start().await;
    let profile = s.service.profiles(&s.tenant).await.unwrap().remove(0);
    let change = MappingChange {
        name: Some("finance".into()),
        priority: Some(1),
        filter: Some(Some(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq \"Finance\"".into(),
        )),
        profile_id: Some(profile.id),
        ..Default::default()
    };
    s.service.create_mapping(&s.tenant, change).await.unwrap();
    let mut u = user("hana");
    u["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] = json!({ "department": "Sales" });
    let (chosen, trace) = s.service.dry_run(&s.tenant, u).await.unwrap();
    assert_eq!(chosen.unwrap().name, "Allow any user");
    assert_eq!(trace[0].result, "failed");
    assert_eq!(trace[0].failed[0].actual, vec![json!("Sales")]);
    assert_eq!(trace[1].result, "matched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_profile_limit_holds_exactly_under_200_parallel_creates() {
    let s = TestServer::start().await;
    let profile = only_profile(&s, 50).await;
    let c = s.scim();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move { c.post("/Users", &user(&format!("racer{i}"))).await.status })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 50, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 403).count(), 150, "{statuses:?}");
    assert_eq!(s.service.profile(&s.tenant, &profile).await.unwrap().active_users, 50);
    assert_eq!(count_users(&c).await, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_tenants_racing_for_one_email_have_exactly_one_winner() {
    let s = TestServer::start().await;
    let mut clients = vec![s.scim()];
    for name in ["beta", "gamma", "delta"] {
        let (_, token) = s.new_tenant(name).await;
        clients.push(s.scim_with(Some(&token)));
    }
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let c = clients[i % clients.len()].clone();
            tokio::spawn(async move {
                c.post("/Users", &with_email(&format!("racer{i}"), "contested@corp.com")).await.status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 201 || *s == 409), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_email_change_racing_a_create_of_that_email_has_one_winner() {
    for round in 0..5 {
        let s = TestServer::start().await;
        let c = s.scim();
        let id =
            c.post("/Users", &with_email("mover", "before@corp.com")).await.body["id"].as_str().unwrap().to_owned();
        let target = format!("target{round}@corp.com");
        let (c1, c2, t1, t2) = (c.clone(), c.clone(), target.clone(), target.clone());
        let change =
            tokio::spawn(async move { c1.put(&format!("/Users/{id}"), &with_email("mover", &t1)).await.status });
        let create = tokio::spawn(async move { c2.post("/Users", &with_email("newcomer", &t2)).await.status });
        let results: HashSet<u16> = [change.await.unwrap(), create.await.unwrap()].into_iter().collect();
        assert!(results.contains(&409), "exactly one loses: {results:?}");
        assert!(results.contains(&200) || results.contains(&201), "exactly one wins: {results:?}");
        let holders = c.get(&format!("/Users?filter={}", enc(&format!("emails.value eq \"{target}\"")))).await;
        assert_eq!(holders.body["totalResults"], 1);
    }
}

/// The region once a probe newer than `after` is recorded (by the test or by the background
/// jobs, whichever ran it).
async fn probed_since(s: &TestServer, region: &str, after: Option<time::OffsetDateTime>) -> Region {
    for _ in 0..200 {
        let r = s.service.region(region).await.unwrap();
        if r.last_probe_at.is_some() && r.last_probe_at != after {
            return r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("region {region} was not probed within 5 s");
}

/// A tiny HTTP server answering 200 or 503 as `healthy` says; its URL.
async fn health_endpoint(healthy: std::sync::Arc<std::sync::atomic::AtomicBool>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/health", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
            let status =
                if healthy.load(std::sync::atomic::Ordering::SeqCst) { "200 OK" } else { "503 Service Unavailable" };
            let _ = socket
                .write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes())
                .await;
        }
    });
    url
}

#[tokio::test]
async fn a_region_probe_sets_health_and_recovery_activates_held_users() {
    let s = TestServer::start().await;
    let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let url = health_endpoint(healthy.clone()).await;
    let region = s.service.default_region().await.unwrap();
    s.service.set_region_probe(&region.id, Some(url), Some(time::Duration::seconds(5))).await.unwrap();
    // The server's background jobs probe what is due too: whichever probes first, the region is
    // probed once per interval.
    scimd_server::jobs::probe_now(&s.service).await.unwrap();
    let probed = probed_since(&s, &region.id, None).await;
    assert_eq!(probed.health, Health::Down);
    assert!(probed.last_probe_result.unwrap().contains("503"));
    assert!(probed.last_probe_at.is_some());
    let hold = HoldSettings { region_unhealthy: true, ..Default::default() };
    s.service.set_settings(&s.tenant, TenantSettings { hold, ..Default::default() }).await.unwrap();
    let c = s.scim();
    let r = c.post(&format!("/Users{WITH_STATE}"), &user("waiting")).await;
    assert_eq!(r.body[PROVISIONING]["pendingCause"], "region_unhealthy", "{}", r.text);
    // Not due again yet: nothing probed.
    assert_eq!(scimd_server::jobs::probe_now(&s.service).await.unwrap(), 0);
    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    s.clock.advance(time::Duration::seconds(6));
    scimd_server::jobs::probe_now(&s.service).await.unwrap();
    assert_eq!(probed_since(&s, &region.id, probed.last_probe_at).await.health, Health::Healthy);
    // The recovery activates the held user (right after recording the probe that saw it).
    let id = r.body["id"].as_str().unwrap();
    let mut state = Value::Null;
    for _ in 0..200 {
        state = c.get(&format!("/Users/{id}{WITH_STATE}")).await.body[PROVISIONING]["state"].clone();
        if state == "active" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(state, "active");
}

#[tokio::test]
async fn a_tenant_restricted_to_regions_cannot_map_elsewhere() {
    let s = TestServer::start().await;
    let eu = s.service.create_region("eu-west", Health::Healthy).await.unwrap();
    let us = s.service.create_region("us-east", Health::Healthy).await.unwrap();
    let catch_all = s.service.mappings(&s.tenant).await.unwrap().remove(0);
    // The catch-all points at the default region: restricting away from it is refused.
    let e = s.service.restrict_tenant_regions(&s.tenant, std::slice::from_ref(&eu.id)).await.unwrap_err().to_string();
    assert!(e.contains("Allow any user"), "{e}");
    s.service
        .update_mapping(
            &s.tenant,
            &catch_all.id,
            MappingChange { region_id: Some(eu.id.clone()), ..Default::default() },
        )
        .await
        .unwrap();
    let allowed = s.service.restrict_tenant_regions(&s.tenant, std::slice::from_ref(&eu.id)).await.unwrap();
    assert_eq!(allowed.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["eu-west"]);
    let e = s
        .service
        .update_mapping(
            &s.tenant,
            &catch_all.id,
            MappingChange { region_id: Some(us.id.clone()), ..Default::default() },
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("us-east"), "{e}");
    let r = s.scim().post(&format!("/Users{WITH_STATE}"), &user("eu.user")).await;
    assert_eq!(r.body[PROVISIONING]["regionId"], eu.id.as_str());
}

#[tokio::test]
async fn a_user_an_admin_created_is_found_and_adopted_by_the_idp_never_duplicated() {
    let s = TestServer::start().await;
    let manual = s.service.admin_create_user(&s.tenant, with_email("Ivan", "ivan@corp.com")).await.unwrap();
    let c = s.scim();
    let found = c.get(&format!("/Users?filter={}", enc("userName eq \"ivan\""))).await;
    assert_eq!(found.body["totalResults"], 1, "SCIM filters find users created by hand");
    let r = c.post("/Users", &with_email("ivan", "ivan@corp.com")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["id"], manual.id.as_str(), "adopted, not duplicated");
    assert_eq!(count_users(&c).await, 1);
    let placement = s.service.get_resource(&s.tenant, scim_proto::ResourceKind::User, &manual.id, false).await.unwrap();
    assert_eq!(placement.placement.unwrap().managed_by, scimd_domain::provisioning::Manager::Idp);
}

#[tokio::test]
async fn remapping_on_update_is_a_tenant_setting() {
    let s = TestServer::start().await;
    let finance = s.service.create_profile(&s.tenant, "Finance", 0).await.unwrap();
    let change = MappingChange {
        name: Some("finance".into()),
        priority: Some(1),
        filter: Some(Some(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq \"Finance\"".into(),
        )),
        profile_id: Some(finance.id.clone()),
        ..Default::default()
    };
    s.service.create_mapping(&s.tenant, change).await.unwrap();
    let c = s.scim();
    let id = c.post("/Users", &user("june")).await.body["id"].as_str().unwrap().to_owned();
    let mut moved = user("june");
    moved["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] = json!({ "department": "Finance" });
    let r = c.put(&format!("/Users/{id}{WITH_STATE}"), &moved).await;
    assert_ne!(r.body[PROVISIONING]["profileId"], finance.id.as_str(), "by default a user stays where it landed");
    let settings = TenantSettings { remap_on_update: true, ..Default::default() };
    s.service.set_settings(&s.tenant, settings).await.unwrap();
    moved["displayName"] = json!("June");
    let r = c.put(&format!("/Users/{id}{WITH_STATE}"), &moved).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body[PROVISIONING]["profileId"], finance.id.as_str());
    let profiles = s.service.profiles(&s.tenant).await.unwrap();
    let seats: Vec<(String, u32)> = profiles.into_iter().map(|p| (p.name, p.active_users)).collect();
    assert!(seats.contains(&("Finance".into(), 1)) && seats.contains(&("Default".into(), 0)), "{seats:?}");
}

#[tokio::test]
async fn deactivation_is_never_refused_by_a_mapping_and_updates_of_active_users_are_never_held() {
    let s = TestServer::start().await;
    let profile = only_profile(&s, 1).await;
    let hold = HoldSettings { no_mapping_matched: true, profile_full: true, region_unhealthy: true };
    s.service
        .set_settings(&s.tenant, TenantSettings { hold, remap_on_update: true, ..Default::default() })
        .await
        .unwrap();
    let c = s.scim();
    let id = c.post("/Users", &user("leaver")).await.body["id"].as_str().unwrap().to_owned();
    // Every mapping stops matching (the IdP clears the attribute it used), and the region goes down.
    for m in s.service.mappings(&s.tenant).await.unwrap() {
        s.service
            .update_mapping(&s.tenant, &m.id, MappingChange { enabled: Some(false), ..Default::default() })
            .await
            .unwrap();
    }
    let region = s.service.default_region().await.unwrap();
    s.service.set_region_health(&region.id, Health::Down).await.unwrap();
    // An update of the active user is refused as a whole, not turned into a pending user.
    let r = c.put(&format!("/Users/{id}{WITH_STATE}"), &user("leaver")).await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    // Offboarding still works: preserved, seat released.
    let r = c.patch(&format!("/Users/{id}{WITH_STATE}"), &deactivate()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body[PROVISIONING]["state"], "preserved");
    assert_eq!(s.service.profile(&s.tenant, &profile).await.unwrap().active_users, 0);
}

#[tokio::test]
async fn a_held_user_the_idp_then_deactivates_is_not_activated_later() {
    let s = TestServer::start().await;
    let profile = only_profile(&s, 1).await;
    let hold = HoldSettings { profile_full: true, ..Default::default() };
    s.service.set_settings(&s.tenant, TenantSettings { hold, ..Default::default() }).await.unwrap();
    let c = s.scim();
    assert_eq!(c.post("/Users", &user("seated")).await.status, 201);
    let held = c.post(&format!("/Users{WITH_STATE}"), &user("held")).await;
    assert_eq!(held.body[PROVISIONING]["state"], "pending");
    let id = held.body["id"].as_str().unwrap();
    let r = c.patch(&format!("/Users/{id}{WITH_STATE}"), &deactivate()).await;
    assert_eq!(r.body[PROVISIONING]["state"], "preserved", "{}", r.text);
    s.service.update_profile(&s.tenant, &profile, None, Some(5)).await.unwrap();
    let now = c.get(&format!("/Users/{id}{WITH_STATE}")).await;
    assert_eq!(now.body[PROVISIONING]["state"], "preserved");
    assert_eq!(s.service.profile(&s.tenant, &profile).await.unwrap().active_users, 1);
}

#[tokio::test]
async fn a_user_without_user_name_is_no_mapping_matched() {
    let s = TestServer::start().await;
    let r = s
        .scim()
        .post("/Users", &json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "displayName": "x" }))
        .await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    assert!(r.body["detail"].as_str().unwrap().contains("userName"), "{}", r.text);
    assert_logged(&s, Cause::NoMappingMatched, Outcome::Refused, 400).await;
}

#[tokio::test]
async fn a_wrong_base_url_outside_scim_is_logged_against_the_tenant() {
    let s = TestServer::start().await;
    let root = Client::new(&s.base, Some(&s.token));
    let r = root.get("/Users?filter=userName%20eq%20%22x%22").await;
    assert_scim_error(&r, 404, None);
    assert!(r.body["detail"].as_str().unwrap().contains("/scim/v2"), "{}", r.text);
    let event = assert_logged(&s, Cause::UnknownPath, Outcome::Refused, 404).await;
    assert_eq!(event.path, "/Users");
}
