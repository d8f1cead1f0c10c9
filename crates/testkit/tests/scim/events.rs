//! The provisioning log: exactly one event per request under `/scim` (accepted, refused,
//! unauthenticated, unknown path), its fields, `X-Request-Id`, the admin API over events, tenant
//! isolation, pruning, and no event lost under a burst or at shutdown.

use std::sync::Arc;

use reqwest::Method;
use scimd_domain::clock::{Clock, format_time};
use scimd_domain::events::{Cause, Event, EventQuery, Idp, Outcome};
use scimd_domain::token::TokenRequest;
use scimd_testkit::{Client, Response, TestServer};
use serde_json::{Value, json};
use time::Duration;

use crate::support::{BULK_REQUEST, assert_scim_error, create_user, enc, the_new_event, user};

const ENTRA_AGENT: &str = "Azure AD SCIM Client";

/// Asserts the fields every event of an authenticated request has.
fn assert_ours(s: &TestServer, e: &Event) {
    assert_eq!(e.tenant_id.as_deref(), Some(s.tenant.id.as_str()), "{e:#?}");
    assert!(e.token_id.is_some(), "{e:#?}");
    assert!(!e.request_id.is_empty());
    // Stored with microseconds; the clock has nanoseconds.
    assert!((s.clock.now() - e.at).abs() < Duration::milliseconds(1), "{e:#?}");
}

#[tokio::test]
async fn an_accepted_create_is_one_event() {
    let s = TestServer::start().await;
    let r = s.scim().post("/Users", &user("alice")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let e = the_new_event(&s, 0).await;
    assert_ours(&s, &e);
    let token_id = s.service.tokens(&s.tenant.id).await.unwrap()[0].id.clone();
    assert_eq!(e.token_id.as_deref(), Some(token_id.as_str()));
    assert_eq!((e.method.as_str(), e.path.as_str(), e.operation.as_str()), ("POST", "/scim/v2/Users", "create User"));
    assert_eq!(e.subject.as_deref(), Some("alice"));
    assert_eq!((e.outcome, e.cause, e.status), (Outcome::Accepted, Cause::Ok, 201));
    assert_eq!(e.detail, None);
    assert_eq!(e.idp, Idp::Other);
    assert_eq!(r.header("x-request-id"), Some(e.request_id.as_str()));
}

#[tokio::test]
async fn a_refused_create_records_the_cause_and_the_detail_sent() {
    let s = TestServer::start().await;
    let mut body = user("bob");
    body["name"] = json!("not an object");
    let r = s.scim().post("/Users", &body).await;
    assert_scim_error(&r, 400, None);
    let e = the_new_event(&s, 0).await;
    assert_ours(&s, &e);
    assert_eq!((e.outcome, e.cause, e.status), (Outcome::Refused, Cause::InvalidRequest, 400));
    assert_eq!(e.subject.as_deref(), Some("bob"));
    assert_eq!(e.detail.as_deref(), r.body["detail"].as_str());

    // A body that is no JSON at all: still one event, without a subject.
    let r = s.scim().send_raw(Method::POST, "/Users", b"{\"userName\":".to_vec(), &[]).await;
    assert_scim_error(&r, 400, Some("invalidSyntax"));
    let e = the_new_event(&s, 1).await;
    assert_eq!((e.cause, e.subject), (Cause::InvalidRequest, None));
    assert!(e.detail.unwrap_or_default().contains("not valid JSON"));
}

#[tokio::test]
async fn each_401_is_one_event_with_its_cause() {
    let s = TestServer::start().await;
    let check = |e: &Event, cause: Cause| {
        assert_eq!((e.outcome, e.cause, e.status), (Outcome::Unauthenticated, cause, 401), "{e:#?}");
        assert_eq!(e.operation, "list Users");
        assert!(e.detail.as_deref().is_some_and(|d| d.len() > 20), "{e:#?}");
    };
    // No token, a malformed header, an unknown token: no tenant can be named.
    let r = s.scim_with(None).get("/Users").await;
    assert_eq!(r.status, 401);
    let e = the_new_event(&s, 0).await;
    check(&e, Cause::MissingToken);
    assert_eq!((e.tenant_id, e.token_id), (None, None));
    assert_eq!(e.detail.as_deref(), r.body["detail"].as_str());

    s.scim_with(None).send(Method::GET, "/Users", None, &[("Authorization", "Basic dXNlcjpwYXNz")]).await;
    let e = the_new_event(&s, 1).await;
    check(&e, Cause::MalformedAuthorization);
    assert_eq!(e.tenant_id, None);

    let forged = format!("{}_{}", &s.token[..14], "A".repeat(40));
    s.scim_with(Some(&forged)).get("/Users").await;
    let e = the_new_event(&s, 2).await;
    check(&e, Cause::UnknownToken);
    assert_eq!(e.tenant_id, None, "a right prefix with a wrong secret identifies nobody");

    // An expired token still names its tenant and itself.
    let expiring = s
        .service
        .issue_token(
            &s.tenant.id,
            TokenRequest {
                expires_at: Some(s.clock.now() + Duration::seconds(30)),
                keep_old_for: Some(Duration::days(1)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    s.clock.advance(Duration::seconds(31));
    s.scim_with(Some(&expiring.secret)).get("/Users").await;
    let e = the_new_event(&s, 3).await;
    check(&e, Cause::TokenExpired);
    assert_eq!(e.tenant_id.as_deref(), Some(s.tenant.id.as_str()));
    assert_eq!(e.token_id.as_deref(), Some(expiring.record.id.as_str()));

    // So does a revoked one.
    s.service.revoke_token(&s.tenant.id, &expiring.record.id).await.unwrap();
    let original = s.service.tokens(&s.tenant.id).await.unwrap().into_iter().find(|t| t.id != expiring.record.id);
    let original = original.expect("the first token");
    s.service.revoke_token(&s.tenant.id, &original.id).await.unwrap();
    s.scim().get("/Users").await;
    let e = the_new_event(&s, 4).await;
    check(&e, Cause::TokenRevoked);
    assert_eq!(e.tenant_id.as_deref(), Some(s.tenant.id.as_str()));
    assert_eq!(e.token_id.as_deref(), Some(original.id.as_str()));
}

#[tokio::test]
async fn a_wrong_path_with_a_valid_token_is_recorded_against_the_tenant() {
    let s = TestServer::start().await;
    let without_v2 = Client::new(&format!("{}/scim", s.base), Some(&s.token));
    let v2 = s.scim();
    for (client, path, full) in [(&without_v2, "/Users", "/scim/Users"), (&v2, "/Userz", "/scim/v2/Userz")] {
        let before = s.events().await.len();
        let r = client.post(path, &user("carol")).await;
        assert_scim_error(&r, 404, None);
        let e = the_new_event(&s, before).await;
        assert_ours(&s, &e);
        assert_eq!((e.outcome, e.cause, e.status), (Outcome::Refused, Cause::UnknownPath, 404), "{e:#?}");
        assert_eq!((e.method.as_str(), e.path.as_str(), e.operation.as_str()), ("POST", full, "unknown"));
        assert!(e.detail.unwrap_or_default().contains("/scim/v2"));
    }
    // Without a token the event has no tenant, and is still recorded.
    let before = s.events().await.len();
    Client::new(&format!("{}/scim", s.base), None).get("/Users").await;
    let e = the_new_event(&s, before).await;
    assert_eq!((e.cause, e.tenant_id), (Cause::UnknownPath, None));
}

#[tokio::test]
async fn other_refusals_before_any_handler_are_recorded() {
    let s = TestServer::start().await;
    // 405 on a known path: the token names the tenant although nothing authenticated it.
    let r = s.scim().send(Method::PUT, "/ServiceProviderConfig", Some(&json!({})), &[]).await;
    assert_scim_error(&r, 405, None);
    let e = the_new_event(&s, 0).await;
    assert_eq!((e.outcome, e.cause, e.status), (Outcome::Refused, Cause::MethodNotAllowed, 405));
    assert_eq!(e.tenant_id.as_deref(), Some(s.tenant.id.as_str()));

    // A resource that does not exist: not_found, with the path's id as the subject.
    let r = s.scim().get("/Users/no-such-id").await;
    assert_scim_error(&r, 404, None);
    let e = the_new_event(&s, 1).await;
    assert_ours(&s, &e);
    assert_eq!(
        (e.cause, e.operation.as_str(), e.subject.as_deref()),
        (Cause::NotFound, "get User", Some("no-such-id"))
    );

    // Discovery needs no token, but one that is sent names the tenant.
    assert_eq!(s.scim().get("/ServiceProviderConfig").await.status, 200);
    let e = the_new_event(&s, 2).await;
    assert_ours(&s, &e);
    assert_eq!((e.operation.as_str(), e.cause, e.status), ("get ServiceProviderConfig", Cause::Ok, 200));
}

#[tokio::test]
async fn subjects_come_from_bodies_paths_and_lookup_filters() {
    let s = TestServer::start().await;
    let c = s.scim();
    let id = create_user(&c, "dave").await;
    let r = c.get(&format!("/Users?filter={}", enc("userName eq \"erin\""))).await;
    assert_eq!(r.status, 200);
    let e = the_new_event(&s, 1).await;
    assert_eq!((e.operation.as_str(), e.subject.as_deref()), ("list Users", Some("erin")));

    let patch = json!({ "schemas": [crate::support::PATCH_OP], "Operations": [{ "op": "replace", "value": { "active": false } }] });
    assert_eq!(c.patch(&format!("/Users/{id}"), &patch).await.status, 200);
    let e = the_new_event(&s, 2).await;
    assert_eq!((e.operation.as_str(), e.subject.as_deref()), ("patch User", Some(id.as_str())));

    assert_eq!(c.put(&format!("/Users/{id}"), &user("dave")).await.status, 200);
    let e = the_new_event(&s, 3).await;
    assert_eq!((e.operation.as_str(), e.subject.as_deref()), ("replace User", Some("dave")));

    let g = c.post("/Groups", &crate::support::group("Finance", &[&id])).await;
    assert_eq!(g.status, 201);
    let e = the_new_event(&s, 4).await;
    assert_eq!((e.operation.as_str(), e.subject.as_deref()), ("create Group", Some("Finance")));

    assert_eq!(c.delete(&format!("/Users/{id}")).await.status, 204);
    let e = the_new_event(&s, 5).await;
    assert_eq!((e.operation.as_str(), e.subject.as_deref(), e.status), ("delete User", Some(id.as_str()), 204));
}

#[tokio::test]
async fn a_bulk_request_is_one_event() {
    let s = TestServer::start().await;
    let c = s.scim();
    let ok = json!({ "schemas": [BULK_REQUEST], "Operations": [
        { "method": "POST", "path": "/Users", "bulkId": "a", "data": user("frank") },
        { "method": "POST", "path": "/Users", "bulkId": "b", "data": user("grace") },
    ] });
    assert_eq!(c.post("/Bulk", &ok).await.status, 200);
    let e = the_new_event(&s, 0).await;
    assert_ours(&s, &e);
    assert_eq!((e.operation.as_str(), e.subject.as_deref()), ("bulk", Some("2 operations")));
    assert_eq!((e.outcome, e.cause, e.status, e.detail), (Outcome::Accepted, Cause::Ok, 200, None));

    // One operation fails: the event is refused with that operation's cause.
    let mixed = json!({ "schemas": [BULK_REQUEST], "Operations": [
        { "method": "POST", "path": "/Users", "bulkId": "c", "data": user("heidi") },
        { "method": "DELETE", "path": "/Users/no-such-id" },
        { "method": "POST", "path": "/Users", "bulkId": "d", "data": user("ivan") },
    ] });
    let r = c.post("/Bulk", &mixed).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let e = the_new_event(&s, 1).await;
    assert_eq!(e.subject.as_deref(), Some("3 operations"));
    assert_eq!((e.outcome, e.cause, e.status), (Outcome::Refused, Cause::NotFound, 200));
    let detail = e.detail.unwrap_or_default();
    assert!(detail.starts_with("1 of 3 operations failed; the first, operation 2 (DELETE)"), "{detail}");
}

#[tokio::test]
async fn the_idp_is_told_by_the_user_agent() {
    let s = TestServer::start().await;
    for (i, (agent, idp)) in [
        (Some("Okta SCIM Client 1.0.0"), Idp::Okta),
        (Some(ENTRA_AGENT), Idp::EntraId),
        (Some("OneLogin SCIM"), Idp::OneLogin),
        (Some("curl/8.0"), Idp::Other),
        (None, Idp::Other),
    ]
    .into_iter()
    .enumerate()
    {
        let headers: Vec<(&str, &str)> = agent.map(|a| ("User-Agent", a)).into_iter().collect();
        assert_eq!(s.scim().send(Method::GET, "/Users", None, &headers).await.status, 200);
        assert_eq!(the_new_event(&s, i).await.idp, idp, "{agent:?}");
    }
}

#[tokio::test]
async fn the_request_id_is_echoed_and_recorded() {
    let s = TestServer::start().await;
    let c = s.scim();
    let r = c.send(Method::GET, "/Users", None, &[("X-Request-Id", "okta-req-42")]).await;
    assert_eq!(r.header("x-request-id"), Some("okta-req-42"));
    assert_eq!(the_new_event(&s, 0).await.request_id, "okta-req-42");

    // Generated when absent, or when unusable (too long, not visible ASCII).
    let too_long = "x".repeat(65);
    for (i, headers) in
        [vec![], vec![("X-Request-Id", too_long.as_str())], vec![("X-Request-Id", "a b")]].into_iter().enumerate()
    {
        let r = c.send(Method::GET, "/Users", None, &headers).await;
        let id = r.header("x-request-id").expect("a request id").to_owned();
        assert_eq!(id.len(), 36, "a UUID: {id}");
        assert_eq!(the_new_event(&s, i + 1).await.request_id, id);
    }
    // Refusals carry one too, and non-SCIM responses (which are not recorded) as well.
    let r = s.scim_with(None).get("/Users").await;
    assert_eq!(the_new_event(&s, 4).await.request_id, r.header("x-request-id").unwrap());
    assert!(s.admin().get("/tenants").await.header("x-request-id").is_some());
    assert_eq!(s.events().await.len(), 5, "admin requests are not SCIM events");
}

/// Sends `GET path` to the admin API and asserts 200.
async fn admin_get(s: &TestServer, path: &str) -> Response {
    let r = s.admin().get(path).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text);
    r
}

fn ids_of(r: &Response) -> Vec<i64> {
    r.body["events"].as_array().expect("events").iter().map(|e| e["id"].as_i64().expect("id")).collect()
}

#[tokio::test]
async fn the_admin_api_filters_and_pages_events() {
    let s = TestServer::start().await;
    let c = s.scim();
    create_user(&c, "alice").await;
    create_user(&c, "bob").await;
    let mut bad = user("mallory");
    bad["name"] = json!(1);
    assert_eq!(c.post("/Users", &bad).await.status, 400);
    s.scim_with(None).get("/Users").await;
    s.clock.advance(Duration::hours(1));
    let since = s.clock.now();
    create_user(&c, "alicia").await;
    s.flush_events().await;
    let t = format!("/tenants/{}/events", s.tenant.id);

    let all = admin_get(&s, &t).await;
    assert_eq!(ids_of(&all).len(), 4, "the 401 had no tenant: {}", all.text);
    assert_eq!(all.body["next_cursor"], Value::Null);
    let newest = &all.body["events"][0];
    assert_eq!(newest["subject"], "alicia");
    assert_eq!(newest["outcome"], "accepted");
    assert_eq!(newest["cause"], "ok");
    assert_eq!(newest["operation"], "create User");
    assert_eq!(newest["status"], 201);
    assert_eq!(newest["tenant_id"], s.tenant.id.as_str());
    assert!(newest["at"].as_str().is_some_and(|a| a.ends_with('Z')));
    assert!(newest["request_id"].is_string() && newest["duration_ms"].is_u64() && newest["idp"] == "other");

    let refused = admin_get(&s, &format!("{t}?outcome=refused")).await;
    assert_eq!(refused.body["events"].as_array().unwrap().len(), 1);
    assert_eq!(refused.body["events"][0]["subject"], "mallory");
    assert!(refused.body["events"][0]["detail"].as_str().is_some_and(|d| !d.is_empty()));
    let by_cause = admin_get(&s, &format!("{t}?cause=invalid_request")).await;
    assert_eq!(ids_of(&by_cause), ids_of(&refused));
    let by_subject = admin_get(&s, &format!("{t}?subject=ALI")).await;
    let subjects: Vec<&str> =
        by_subject.body["events"].as_array().unwrap().iter().filter_map(|e| e["subject"].as_str()).collect();
    assert_eq!(subjects, ["alicia", "alice"]);
    let recent = admin_get(&s, &format!("{t}?since={}", enc(&format_time(since)))).await;
    assert_eq!(recent.body["events"].as_array().unwrap().len(), 1);
    let older = admin_get(&s, &format!("{t}?until={}&outcome=accepted", enc(&format_time(since)))).await;
    assert_eq!(older.body["events"].as_array().unwrap().len(), 2);

    // Paging: newest first, each page continuing where the last stopped, the last saying so.
    let mut seen = Vec::new();
    let mut cursor: Option<i64> = None;
    let mut pages = 0;
    loop {
        let page = match cursor {
            Some(c) => admin_get(&s, &format!("{t}?limit=3&cursor={c}")).await,
            None => admin_get(&s, &format!("{t}?limit=3")).await,
        };
        pages += 1;
        seen.extend(ids_of(&page));
        match page.body["next_cursor"].as_i64() {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!((pages, seen), (2, ids_of(&all)));
    let exact = admin_get(&s, &format!("{t}?limit=4")).await;
    assert_eq!(exact.body["next_cursor"], Value::Null, "a full last page says there is no next one");

    // The operator sees every event, also those without a tenant.
    let everything = admin_get(&s, "/events").await;
    assert_eq!(everything.body["events"].as_array().unwrap().len(), 5);
    let unauthenticated = admin_get(&s, "/events?outcome=unauthenticated").await;
    assert_eq!(unauthenticated.body["events"][0]["tenant_id"], Value::Null);
    assert_eq!(unauthenticated.body["events"][0]["cause"], "missing_token");
    let mine = admin_get(&s, &format!("/events?tenant={}", s.tenant.id)).await;
    assert_eq!(ids_of(&mine), ids_of(&all));
}

#[tokio::test]
async fn the_admin_api_refuses_bad_filters() {
    let s = TestServer::start().await;
    let a = s.admin();
    let t = format!("/tenants/{}/events", s.tenant.id);
    let r = a.get(&format!("{t}?outcome=rejected")).await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (400, Some("invalid_request")));
    assert!(r.body["error"]["message"].as_str().unwrap().contains("accepted, held, refused, unauthenticated, failed"));
    let r = a.get(&format!("{t}?cause=full")).await;
    assert_eq!(r.status, 400);
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(Cause::ALL.iter().all(|c| message.contains(c.as_str())), "{message}");
    for bad in ["limit=0", "limit=1001", "since=yesterday", "cursor=abc", "tenant=x", "outcomes=refused"] {
        let r = a.get(&format!("{t}?{bad}")).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
    assert_eq!(a.get("/tenants/no-such-tenant/events").await.status, 404);
    assert_eq!(a.get("/events?tenant=no-such-tenant").await.status, 400);
    assert_eq!(s.scim_with(None).get("/Users").await.status, 401);
    assert_eq!(Client::new(&format!("{}/admin/api/v1", s.base), Some(&s.token)).get(&t).await.status, 401);
    assert_eq!(Client::new(&format!("{}/admin/api/v1", s.base), None).get("/events").await.status, 401);
}

#[tokio::test]
async fn one_tenants_events_never_show_in_anothers_log() {
    let s = TestServer::start().await;
    let (b, b_token) = s.new_tenant("globex").await;
    let bc = s.scim_with(Some(&b_token));
    create_user(&s.scim(), "alice").await;
    create_user(&bc, "bob").await;
    // B's token on a wrong path, and B's expired-to-be token: still B's.
    Client::new(&format!("{}/scim", s.base), Some(&b_token)).get("/Users").await;
    s.flush_events().await;
    let a_events = admin_get(&s, &format!("/tenants/{}/events?limit=1000", s.tenant.id)).await;
    let b_events = admin_get(&s, &format!("/tenants/{}/events?limit=1000", b.id)).await;
    assert!(a_events.body["events"].as_array().unwrap().iter().all(|e| e["tenant_id"] == s.tenant.id.as_str()));
    assert!(!a_events.text.contains("bob") && !a_events.text.contains(&b.id), "{}", a_events.text);
    assert_eq!(b_events.body["events"].as_array().unwrap().len(), 2);
    assert!(!b_events.text.contains("alice") && !b_events.text.contains(&s.tenant.id), "{}", b_events.text);
    // Filters never widen a tenant's view.
    let probe = admin_get(&s, &format!("/tenants/{}/events?subject=bob", s.tenant.id)).await;
    assert_eq!(probe.body["events"], json!([]));
}

#[tokio::test]
async fn events_past_the_retention_are_pruned() {
    let s = TestServer::start().await;
    let c = s.scim();
    create_user(&c, "old").await;
    s.clock.advance(Duration::days(29));
    create_user(&c, "recent").await;
    s.flush_events().await;
    assert_eq!(s.recorder.retention(), Duration::days(30));
    assert_eq!(s.recorder.prune_now().await.unwrap(), 0, "nothing is older than 30 days yet");
    s.clock.advance(Duration::days(1) + Duration::seconds(1));
    assert_eq!(s.recorder.prune_now().await.unwrap(), 1);
    let left = s.events().await;
    assert_eq!(left.iter().map(|e| e.subject.as_deref()).collect::<Vec<_>>(), [Some("recent")]);
}

#[tokio::test]
async fn a_burst_of_requests_loses_no_event() {
    let s = TestServer::start().await;
    let c = s.scim();
    let permits = Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..2000 {
        let (c, permits) = (c.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("semaphore");
            // Alternating accepted and refused requests.
            let path = if i % 2 == 0 { "/ServiceProviderConfig" } else { "/Users/none" };
            c.get(path).await.status
        });
    }
    let mut statuses = Vec::new();
    while let Some(status) = tasks.join_next().await {
        statuses.push(status.expect("request task"));
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1000);
    let events = s.events().await;
    assert_eq!(events.len(), 2000);
    assert_eq!(events.iter().filter(|e| e.cause == Cause::NotFound).count(), 1000);
    assert_eq!(s.recorder.dropped(), 0);
    let mut request_ids: Vec<&str> = events.iter().map(|e| e.request_id.as_str()).collect();
    request_ids.sort_unstable();
    request_ids.dedup();
    assert_eq!(request_ids.len(), 2000, "every request has its own id");
}

#[tokio::test]
async fn a_graceful_stop_writes_every_recorded_event() {
    let mut s = TestServer::start().await;
    for i in 0..20 {
        assert_eq!(s.scim().post("/Users", &user(&format!("user{i}"))).await.status, 201);
    }
    s.shut_down().await;
    let events = s.service.store.events(&EventQuery { limit: 100, ..Default::default() }).await.unwrap();
    assert_eq!(events.len(), 20);
}

#[tokio::test]
async fn every_cause_is_documented_and_described_in_openapi() {
    let docs = include_str!("../../../../docs/causes.md");
    for cause in Cause::ALL {
        assert!(docs.contains(&format!("| `{}` |", cause.as_str())), "{} in docs/causes.md", cause.as_str());
    }
    let s = TestServer::start().await;
    let r = Client::new(&format!("{}/admin/api/v1", s.base), None).get("/openapi.json").await;
    assert_eq!(r.status, 200);
    for path in ["/tenants/{id}/events", "/events"] {
        assert!(r.body["paths"][path]["get"].is_object(), "{path} documented");
    }
    let names: Vec<&str> = Cause::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(r.body["components"]["schemas"]["Cause"]["enum"], json!(names));
}

#[tokio::test]
async fn a_request_whose_client_goes_away_is_still_one_event() {
    use std::io::Write;
    let s = TestServer::start().await;
    let host = s.base.trim_start_matches("http://").to_owned();
    let token = s.token.clone();
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&host).expect("connect");
        let head = format!(
            "POST /scim/v2/Users HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/scim+json\r\nContent-Length: 1000\r\n\r\n{{\"userName\":"
        );
        stream.write_all(head.as_bytes()).expect("write");
        // Gone before the body is complete.
    })
    .await
    .expect("client");
    let mut events = Vec::new();
    for _ in 0..100 {
        events = s.events().await;
        if !events.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(events.len(), 1, "{events:#?}");
    let e = &events[0];
    assert_eq!(e.tenant_id.as_deref(), Some(s.tenant.id.as_str()));
    // Either the body read failed (400) or the server dropped the handler (499): never silence.
    assert!(
        (e.status, e.cause) == (400, Cause::InvalidRequest) || (e.status, e.cause) == (499, Cause::InternalError),
        "{e:#?}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(s.events().await.len(), 1, "exactly one");
}
