//! Per-tenant rate limits: a tenant over its bucket gets SCIM 429s with `Retry-After` while
//! other tenants go on; operators (only) give a tenant its own limit, 0 for none.

use scimd_domain::Limits;
use scimd_domain::events::Cause;
use scimd_domain::rate_limit::RateLimit;
use scimd_testkit::TestServer;
use serde_json::json;

use crate::support::assert_scim_error;

const SMALL: RateLimit = RateLimit { per_second: 1, burst: 10 };

#[tokio::test]
async fn a_tenant_over_its_limit_gets_429_with_retry_after_and_the_others_go_on() {
    let s = TestServer::start_with(Limits { rate: SMALL, ..Limits::default() }).await;
    let (_, token_b) = s.new_tenant("globex").await;
    let (a, b) = (s.scim(), s.scim_with(Some(&token_b)));
    for i in 0..10 {
        assert_eq!(a.get("/Users").await.status, 200, "request {i} is within the burst");
    }
    let refused = a.get("/Users").await;
    assert_scim_error(&refused, 429, None);
    let detail = refused.body["detail"].as_str().unwrap();
    assert!(detail.contains("too many requests") && detail.contains("rate limit"), "{detail}");
    let wait: u64 = refused.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=2).contains(&wait), "one request a second: retry within a second or two, not {wait}");
    // Another tenant's bucket is its own: tenant A's flood does not starve it.
    assert_eq!(b.get("/Users").await.status, 200);
    // Writes are refused the same way, and leave nothing.
    let create = a.post("/Users", &crate::support::user("flooded")).await;
    assert_scim_error(&create, 429, None);
    assert_eq!(b.get("/Users?filter=userName%20eq%20%22flooded%22").await.body["totalResults"], 0);

    // The provisioning log says why, so that the admin sees it.
    s.flush_events().await;
    let events = s.events().await;
    assert!(events.iter().any(|e| e.cause == Cause::RateLimited && e.status == 429), "a rate_limited event");
}

#[tokio::test]
async fn operators_set_a_tenants_own_limit_and_zero_disables_it() {
    let s = TestServer::start_with(Limits { rate: SMALL, ..Limits::default() }).await;
    let admin = s.admin();
    let path = format!("/tenants/{}/rate-limit", s.tenant.id);
    let shown = admin.get(&path).await;
    assert_eq!(shown.status, 200, "{}", shown.text);
    assert_eq!(shown.body, json!({ "per_second": 1, "burst": 10, "own": false }));

    let set = admin.put(&path, &json!({ "per_second": 0, "burst": 0 })).await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(set.body, json!({ "per_second": 0, "burst": 0, "own": true }));
    let a = s.scim();
    for i in 0..50 {
        assert_eq!(a.get("/Users").await.status, 200, "request {i}: the tenant has no limit now");
    }

    let tight = admin.put(&path, &json!({ "per_second": 1, "burst": 2 })).await;
    assert_eq!(tight.status, 200, "{}", tight.text);
    assert_eq!(a.get("/Users").await.status, 200);
    assert_eq!(a.get("/Users").await.status, 200);
    assert_eq!(a.get("/Users").await.status, 429, "the new limit applies at once");

    for bad in
        [json!({ "per_second": 5, "burst": 0 }), json!({ "per_second": -1, "burst": 5 }), json!({ "per_second": 5 })]
    {
        let r = admin.put(&path, &bad).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }

    // A tenant administrator sees its limit but cannot raise it.
    let tenant_admin = s.tenant_admin_api(&s.tenant).await;
    assert_eq!(tenant_admin.get(&path).await.status, 200);
    assert_eq!(tenant_admin.put(&path, &json!({ "per_second": 0, "burst": 0 })).await.status, 403);
    assert_eq!(tenant_admin.delete(&path).await.status, 403);

    let reset = admin.delete(&path).await;
    assert_eq!(reset.status, 200, "{}", reset.text);
    assert_eq!(reset.body, json!({ "per_second": 1, "burst": 10, "own": false }));
}
