//! The admin API: tenants and tokens, operator authentication, errors, OpenAPI.

use scimd_domain::clock::Clock;
use scimd_testkit::{Client, TestServer};
use serde_json::json;

#[tokio::test]
async fn tenants_and_tokens_round_trip() {
    let s = TestServer::start().await;
    let a = s.admin();
    let r = a.post("/tenants", &json!({ "name": "globex" })).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(a.get(&format!("/tenants/{id}")).await.body["name"], "globex");
    let list = a.get("/tenants").await;
    assert_eq!(list.body["tenants"].as_array().unwrap().len(), 2);

    let dup = a.post("/tenants", &json!({ "name": "globex" })).await;
    assert_eq!(dup.status, 409);
    assert_eq!(dup.body["error"]["code"], "conflict");

    let t = a.post(&format!("/tenants/{id}/tokens"), &json!({ "lifetime_days": 30 })).await;
    assert_eq!(t.status, 201, "{}", t.text);
    let secret = t.body["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with(t.body["prefix"].as_str().unwrap()));
    let scim = Client::new(&s.scim_url(), Some(&secret));
    assert_eq!(scim.get("/Users").await.status, 200);

    let tokens = a.get(&format!("/tenants/{id}/tokens")).await;
    assert_eq!(tokens.status, 200);
    assert!(!tokens.text.contains(&secret), "secrets are never listed");
    assert_eq!(tokens.body["tokens"][0]["state"], "active");
    assert!(tokens.body["tokens"][0]["last_used_at"].is_string());

    let token_id = t.body["id"].as_str().unwrap();
    assert_eq!(a.delete(&format!("/tenants/{id}/tokens/{token_id}")).await.status, 204);
    assert_eq!(scim.get("/Users").await.status, 401);
    assert_eq!(a.delete(&format!("/tenants/{id}/tokens/nope")).await.status, 404);
}

#[tokio::test]
async fn explicit_expiry_may_be_seconds_ahead() {
    let s = TestServer::start().await;
    let a = s.admin();
    let at = scimd_domain::clock::format_time(s.clock.now() + time::Duration::seconds(5));
    let t = a.post(&format!("/tenants/{}/tokens", s.tenant.id), &json!({ "expires_at": at })).await;
    assert_eq!(t.status, 201, "{}", t.text);
    let past = scimd_domain::clock::format_time(s.clock.now() - time::Duration::seconds(5));
    let bad = a.post(&format!("/tenants/{}/tokens", s.tenant.id), &json!({ "expires_at": past })).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["error"]["code"], "invalid_request");
}

#[tokio::test]
async fn admin_api_needs_the_operator_token() {
    let s = TestServer::start().await;
    let r = Client::new(&format!("{}/admin/api/v1", s.base), Some(&s.token)).get("/tenants").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["error"]["code"], "unauthorized");
    let r = Client::new(&format!("{}/admin/api/v1", s.base), None).get("/tenants").await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn admin_errors_are_json_with_codes() {
    let s = TestServer::start().await;
    let a = s.admin();
    let r =
        a.send_raw(reqwest::Method::POST, "/tenants", b"{nope".to_vec(), &[("Content-Type", "application/json")]).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["code"], "invalid_json");
    let r = a.post("/tenants", &json!({ "name": "x", "nmae": "typo" })).await;
    assert_eq!(r.body["error"]["code"], "invalid_request");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("nmae"));
    assert_eq!(a.get("/tenants/unknown").await.body["error"]["code"], "not_found");
}

#[tokio::test]
async fn openapi_document_describes_every_route() {
    let s = TestServer::start().await;
    let r = Client::new(&format!("{}/admin/api/v1", s.base), None).get("/openapi.json").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["openapi"], "3.1.0");
    for path in [
        "/tenants",
        "/tenants/{id}",
        "/tenants/{id}/tokens",
        "/tenants/{id}/tokens/{token_id}",
        "/tenants/{id}/users",
        "/tenants/{id}/users/{user_id}",
        "/tenants/{id}/activity",
        "/tenants/{id}/audit",
        "/me",
        "/me/api-keys",
        "/me/api-keys/{key_id}",
        "/accounts",
        "/accounts/{account_id}",
        "/audit",
        "/claims/{email}",
    ] {
        assert!(r.body["paths"].get(path).is_some(), "{path} documented");
    }
    let schemes = &r.body["components"]["securitySchemes"];
    assert!(schemes.get("apiKey").is_some() && schemes.get("operatorToken").is_some());
}
