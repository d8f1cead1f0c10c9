//! Every 401 variant, token lifetime, rotation and revocation.

use scimd_domain::clock::Clock;
use scimd_domain::token::TokenRequest;
use scimd_testkit::TestServer;
use time::Duration;

use crate::support::assert_scim_error;

fn assert_401(r: &scimd_testkit::Response, detail_has: &str) {
    assert_scim_error(r, 401, None);
    assert!(r.header("www-authenticate").is_some_and(|h| h.starts_with("Bearer")), "WWW-Authenticate: {:?}", r.headers);
    let detail = r.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(detail_has), "detail {detail:?} should mention {detail_has:?}");
}

#[tokio::test]
async fn missing_header_is_a_precise_401() {
    let s = TestServer::start().await;
    assert_401(&s.scim_with(None).get("/Users").await, "missing");
}

#[tokio::test]
async fn malformed_header_is_a_precise_401() {
    let s = TestServer::start().await;
    let c = s.scim_with(None);
    for value in ["non-token", "Basic dXNlcjpwYXNz", "Bearer", "Bearer a b"] {
        let r = c.send(reqwest::Method::GET, "/Users", None, &[("Authorization", value)]).await;
        assert_401(&r, "malformed");
    }
}

#[tokio::test]
async fn unknown_token_is_a_precise_401() {
    let s = TestServer::start().await;
    assert_401(&s.scim_with(Some("abc")).get("/Users").await, "not a valid scimd token");
    // Right prefix, wrong secret: still unknown, nothing revealed.
    let forged = format!("{}_{}", &s.token[..14], "A".repeat(40));
    assert_401(&s.scim_with(Some(&forged)).get("/Users").await, "not a valid scimd token");
}

#[tokio::test]
async fn expired_token_names_the_date_and_the_fix() {
    let s = TestServer::start().await;
    let issued = s
        .service
        .issue_token(
            &s.tenant.id,
            TokenRequest { expires_at: Some(s.clock.now() + Duration::seconds(30)), ..Default::default() },
        )
        .await
        .unwrap();
    let c = s.scim_with(Some(&issued.secret));
    assert_eq!(c.get("/Users").await.status, 200);
    s.clock.advance(Duration::seconds(31));
    let r = c.get("/Users").await;
    let date = scimd_domain::clock::format_date(issued.record.expires_at);
    assert_401(&r, &format!("expired on {date}"));
    assert!(r.body["detail"].as_str().unwrap().contains("New Token"));
    assert!(r.body["detail"].as_str().unwrap().contains(&issued.record.prefix));
}

#[tokio::test]
async fn default_lifetime_is_365_days() {
    let s = TestServer::start().await;
    let c = s.scim();
    s.clock.advance(Duration::days(364));
    assert_eq!(c.get("/Users").await.status, 200);
    s.clock.advance(Duration::days(1));
    assert_401(&c.get("/Users").await, "expired on");
}

#[tokio::test]
async fn a_new_token_revokes_the_old_one_at_once() {
    let s = TestServer::start().await;
    let old = s.scim();
    let new = s.service.issue_token(&s.tenant.id, TokenRequest::default()).await.unwrap();
    assert_401(&old.get("/Users").await, "replaced by a newer token");
    assert_eq!(s.scim_with(Some(&new.secret)).get("/Users").await.status, 200);
}

#[tokio::test]
async fn rotation_with_overlap_keeps_the_old_token_for_a_while() {
    let s = TestServer::start().await;
    let old = s.scim();
    let new = s
        .service
        .issue_token(&s.tenant.id, TokenRequest { keep_old_for: Some(Duration::hours(24)), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(old.get("/Users").await.status, 200);
    assert_eq!(s.scim_with(Some(&new.secret)).get("/Users").await.status, 200);
    s.clock.advance(Duration::hours(24) + Duration::seconds(1));
    assert_401(&old.get("/Users").await, "replaced by a newer token");
    assert_eq!(s.scim_with(Some(&new.secret)).get("/Users").await.status, 200);
}

#[tokio::test]
async fn revoked_token_says_revoked() {
    let s = TestServer::start().await;
    let tokens = s.service.tokens(&s.tenant.id).await.unwrap();
    s.service.revoke_token(&s.tenant.id, &tokens[0].id).await.unwrap();
    assert_401(&s.scim().get("/Users").await, "was revoked on");
}

#[tokio::test]
async fn last_use_is_recorded_with_the_user_agent() {
    let s = TestServer::start().await;
    let r = s.scim().send(reqwest::Method::GET, "/Users", None, &[("User-Agent", "Okta SCIM Client 1.0.0")]).await;
    assert_eq!(r.status, 200);
    let tokens = s.service.tokens(&s.tenant.id).await.unwrap();
    assert!(tokens[0].last_used_at.is_some());
    assert_eq!(tokens[0].last_used_agent.as_deref(), Some("Okta SCIM Client 1.0.0"));
}

#[tokio::test]
async fn tokens_are_stored_hashed() {
    let s = TestServer::start().await;
    let stored = s.service.store.token_by_prefix(&s.token[..14]).await.unwrap().unwrap();
    assert_ne!(stored.hash, s.token);
    assert_eq!(stored.hash, scimd_domain::token::hash_token(&s.token));
    assert_eq!(stored.hash.len(), 64);
}
