//! Cross-tenant isolation: tenant A's token can neither read, find, change nor detect tenant B's
//! resources, by any route.

use reqwest::Method;
use scimd_testkit::{Client, Response, TestServer};
use serde_json::{Value, json};

use crate::support::{
    BULK_REQUEST, SEARCH_REQUEST, assert_scim_error, create, create_group, create_user, enc, group, ids, patch_op,
    user, values,
};

/// Tenant A (the server's own) and tenant B, each with a user and a group.
struct Two {
    /// The server, for the tests that also use its admin API or a third tenant.
    s: TestServer,
    a: Client,
    b: Client,
    a_user: String,
    b_user: String,
    b_group: String,
}

impl Two {
    async fn new() -> Self {
        let s = TestServer::start().await;
        let (_, token_b) = s.new_tenant("globex").await;
        let a = s.scim();
        let b = s.scim_with(Some(&token_b));
        let a_user = create_user(&a, "a.user").await;
        let b_user = create_user(&b, "b.user").await;
        let b_group = create_group(&b, "B Team", &[&b_user]).await;
        Two { s, a, b, a_user, b_user, b_group }
    }

    /// B's resources as B sees them, to check that nothing A did changed them.
    async fn b_state(&self) -> (Value, Value) {
        let u = self.b.get(&format!("/Users/{}", self.b_user)).await;
        let g = self.b.get(&format!("/Groups/{}", self.b_group)).await;
        assert_eq!(u.status, 200);
        assert_eq!(g.status, 200);
        (u.body, g.body)
    }
}

/// A 404 exactly like the one for an id that exists nowhere (the id itself aside).
#[track_caller]
fn assert_same_as_missing(r: &Response, id: &str, missing: &Response, missing_id: &str) {
    assert_scim_error(r, 404, None);
    assert_eq!(r.status, missing.status);
    assert_eq!(r.body["scimType"], missing.body["scimType"]);
    let detail = r.body["detail"].as_str().unwrap().replace(id, "<id>");
    let missing_detail = missing.body["detail"].as_str().unwrap().replace(missing_id, "<id>");
    assert_eq!(detail, missing_detail, "nothing tells another tenant's resource from a missing one");
}

const MISSING: &str = "01a22748-0000-7000-8000-000000000000";

#[tokio::test]
async fn cannot_read_by_id() {
    let t = Two::new().await;
    for (endpoint, id) in [("/Users", &t.b_user), ("/Groups", &t.b_group)] {
        let r = t.a.get(&format!("{endpoint}/{id}")).await;
        let missing = t.a.get(&format!("{endpoint}/{MISSING}")).await;
        assert_same_as_missing(&r, id, &missing, MISSING);
        assert!(!r.text.contains("b.user") && !r.text.contains("B Team"), "{}", r.text);
        // Conditional reads do not reveal it either.
        let r = t.a.send(Method::GET, &format!("{endpoint}/{id}"), None, &[("If-None-Match", "*")]).await;
        assert_same_as_missing(&r, id, &missing, MISSING);
    }
    // And the other way round.
    let r = t.b.get(&format!("/Users/{}", t.a_user)).await;
    assert_scim_error(&r, 404, None);
}

#[tokio::test]
async fn cannot_list_filter_or_search() {
    let t = Two::new().await;
    let c = &t.a;
    let list = c.get("/Users").await;
    assert_eq!(ids(&list), vec![t.a_user.clone()]);
    assert_eq!(list.body["totalResults"], 1);
    assert_eq!(c.get("/Groups").await.body["totalResults"], 0);
    for filter in [
        "userName eq \"b.user\"".to_owned(),
        "userName sw \"b\"".to_owned(),
        format!("id eq \"{}\"", t.b_user),
        "emails[value co \"b.user\"]".to_owned(),
        "name.familyName eq \"b.user\"".to_owned(),
        format!("groups.value eq \"{}\"", t.b_group),
    ] {
        let r = c.get(&format!("/Users?filter={}", enc(&filter))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["totalResults"], 0, "{filter}: {}", r.text);
    }
    for filter in [
        "displayName eq \"B Team\"".to_owned(),
        format!("members[value eq \"{}\"]", t.b_user),
        format!("id eq \"{}\"", t.b_group),
    ] {
        let r = c.get(&format!("/Groups?filter={}", enc(&filter))).await;
        assert_eq!(r.body["totalResults"], 0, "{filter}: {}", r.text);
    }
    let search = |filter: &str| json!({ "schemas": [SEARCH_REQUEST], "filter": filter });
    let r = c.post("/Users/.search", &search("userName pr")).await;
    assert_eq!(ids(&r), vec![t.a_user.clone()]);
    let r = c.post("/Groups/.search", &search("displayName pr")).await;
    assert_eq!(r.body["totalResults"], 0, "{}", r.text);
    let r = c.post("/.search", &json!({ "schemas": [SEARCH_REQUEST] })).await;
    assert_eq!(ids(&r), vec![t.a_user.clone()], "root search sees only A: {}", r.text);
    assert_eq!(r.body["totalResults"], 1);
    let r = c.post("/.search", &search("displayName eq \"B Team\" or userName eq \"b.user\"")).await;
    assert_eq!(r.body["totalResults"], 0, "{}", r.text);
    // B's view is B's.
    let r = t.b.post("/.search", &json!({ "schemas": [SEARCH_REQUEST] })).await;
    assert_eq!(r.body["totalResults"], 2);
}

#[tokio::test]
async fn cannot_write_or_delete() {
    let t = Two::new().await;
    let before = t.b_state().await;
    let c = &t.a;
    for (endpoint, id, body) in
        [("/Users", &t.b_user, user("hijacked")), ("/Groups", &t.b_group, group("Hijacked", &[]))]
    {
        let path = format!("{endpoint}/{id}");
        let missing_path = format!("{endpoint}/{MISSING}");
        let missing = c.put(&missing_path, &body).await;
        assert_same_as_missing(&c.put(&path, &body).await, id, &missing, MISSING);
        let p = patch_op(json!([{ "op": "replace", "path": "displayName", "value": "Hijacked" }]));
        let missing = c.patch(&missing_path, &p).await;
        assert_same_as_missing(&c.patch(&path, &p).await, id, &missing, MISSING);
        let missing = c.delete(&missing_path).await;
        assert_same_as_missing(&c.delete(&path).await, id, &missing, MISSING);
        // With If-Match, a 412 would tell that the resource exists: it must still be a 404.
        for method in [Method::PATCH, Method::DELETE] {
            let b = if method == Method::PATCH { Some(&p) } else { None };
            let r = c.send(method.clone(), &path, b, &[("If-Match", "W/\"999\"")]).await;
            let missing = c.send(method, &missing_path, b, &[("If-Match", "W/\"999\"")]).await;
            assert_same_as_missing(&r, id, &missing, MISSING);
        }
    }
    assert_eq!(t.b_state().await, before, "B's resources are untouched");
}

#[tokio::test]
async fn cannot_touch_through_bulk() {
    let t = Two::new().await;
    let before = t.b_state().await;
    let body = json!({
        "schemas": [BULK_REQUEST],
        "Operations": [
            { "method": "PATCH", "path": format!("/Users/{}", t.b_user), "data": patch_op(json!([{ "op": "replace", "value": { "active": false } }])) },
            { "method": "PUT", "path": format!("/Groups/{}", t.b_group), "data": group("Hijacked", &[]) },
            { "method": "DELETE", "path": format!("/Users/{}", t.b_user) },
            { "method": "DELETE", "path": format!("/Groups/{}", t.b_group) },
            { "method": "POST", "path": "/Groups", "bulkId": "g", "data": group("Mine", &[&t.b_user]) },
            { "method": "PATCH", "path": format!("/Users/{MISSING}"), "data": patch_op(json!([{ "op": "replace", "value": { "active": false } }])) },
        ],
    });
    let r = t.a.post("/Bulk", &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ops = r.body["Operations"].as_array().unwrap();
    assert_eq!(ops.len(), 6);
    for op in &ops[..4] {
        assert_eq!(op["status"], "404", "{}", r.text);
    }
    assert_eq!(ops[4]["status"], "400", "{}", r.text);
    assert_eq!(ops[4]["response"]["scimType"], "invalidValue");
    let detail = |o: &Value, id: &str| o["response"]["detail"].as_str().unwrap().replace(id, "<id>");
    assert_eq!(detail(&ops[0], &t.b_user), detail(&ops[5], MISSING), "the same 404 as for a missing id");
    assert!(!r.text.contains("b.user") && !r.text.contains("B Team"));
    assert_eq!(t.b_state().await, before, "B's resources are untouched");
    assert_eq!(t.a.get("/Groups").await.body["totalResults"], 0);
}

#[tokio::test]
async fn cannot_add_as_group_member() {
    let t = Two::new().await;
    let c = &t.a;
    // On create, replace and patch; neither B's user nor B's group.
    let r = c.post("/Groups", &group("Mine", &[&t.b_user])).await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    let missing = c.post("/Groups", &group("Mine", &[MISSING])).await;
    assert_eq!(
        r.body["detail"].as_str().unwrap().replace(&t.b_user, "<id>"),
        missing.body["detail"].as_str().unwrap().replace(MISSING, "<id>")
    );
    let g = create_group(c, "Mine", &[&t.a_user]).await;
    let r = c.put(&format!("/Groups/{g}"), &group("Mine", &[&t.a_user, &t.b_group])).await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    let r = c
        .patch(
            &format!("/Groups/{g}"),
            &patch_op(json!([{ "op": "add", "path": "members", "value": [{ "value": t.b_user }] }])),
        )
        .await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    assert_eq!(values(&c.get(&format!("/Groups/{g}")).await.body["members"]), vec![t.a_user.clone()]);
    // B's user shows no group of A's; B's group has no member of A's.
    let (bu, bg) = t.b_state().await;
    assert_eq!(values(&bu["groups"]), vec![t.b_group.clone()]);
    assert_eq!(values(&bg["members"]), vec![t.b_user.clone()]);
}

#[tokio::test]
async fn user_name_uniqueness_is_per_tenant() {
    let t = Two::new().await;
    // The same userName as B's, in A: created, no 409 that would reveal B's user. (Emails are
    // unique across the cloud, so this user has its own.)
    let mut namesake = user("b.user");
    namesake["emails"] = json!([{ "value": "namesake@a.example", "type": "work" }]);
    let r = t.a.post("/Users", &namesake).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let mine = r.body["id"].as_str().unwrap().to_owned();
    assert_ne!(mine, t.b_user);
    // And the other way round, in another case.
    let mut namesake = user("A.USER");
    namesake["emails"] = json!([{ "value": "namesake@b.example", "type": "work" }]);
    assert_eq!(t.b.post("/Users", &namesake).await.status, 201);
    // Each tenant finds only its own.
    let f = enc("userName eq \"b.user\"");
    assert_eq!(ids(&t.a.get(&format!("/Users?filter={f}")).await), vec![mine.clone()]);
    assert_eq!(ids(&t.b.get(&format!("/Users?filter={f}")).await), vec![t.b_user.clone()]);
    // Renaming into a name B uses is fine too; one A already uses is not.
    let p = patch_op(json!([{ "op": "replace", "path": "userName", "value": "b.user" }]));
    assert_scim_error(&t.a.patch(&format!("/Users/{}", t.a_user), &p).await, 409, Some("uniqueness"));
    let id = create(&t.a, "/Users", &user("third")).await;
    let p = patch_op(json!([{ "op": "replace", "path": "userName", "value": "A.User.Other" }]));
    assert_eq!(t.a.patch(&format!("/Users/{id}"), &p).await.status, 200);
    // Deleting in A leaves B's namesake alone.
    assert_eq!(t.a.delete(&format!("/Users/{mine}")).await.status, 204);
    assert_eq!(t.b.get(&format!("/Users/{}", t.b_user)).await.status, 200);
}

/// The headers of a refusal for another tenant's resource and for a missing one are the same
/// (no ETag, no Location, the same type and length once the ids are of equal length).
#[tokio::test]
async fn refusals_have_the_same_headers_for_foreign_and_missing_ids() {
    let t = Two::new().await;
    // A missing id of the same length as B's, so that even the body's length cannot differ.
    let missing_same_length: String = t.b_user.chars().rev().collect();
    for method in [Method::GET, Method::PUT, Method::PATCH, Method::DELETE] {
        let body = match method {
            Method::PUT => Some(user("hijacked")),
            Method::PATCH => Some(patch_op(json!([{ "op": "replace", "path": "active", "value": false }]))),
            _ => None,
        };
        let foreign = t.a.send(method.clone(), &format!("/Users/{}", t.b_user), body.as_ref(), &[]).await;
        let missing = t.a.send(method.clone(), &format!("/Users/{missing_same_length}"), body.as_ref(), &[]).await;
        assert_same_as_missing(&foreign, &t.b_user, &missing, &missing_same_length);
        for header in ["content-type", "content-length", "etag", "location", "retry-after", "www-authenticate"] {
            assert_eq!(foreign.header(header), missing.header(header), "{method} {header}");
        }
    }
}

/// An email another tenant's user holds is refused exactly as one a third tenant's user holds:
/// nothing names or distinguishes the holder.
#[tokio::test]
async fn an_email_held_elsewhere_reveals_nothing_of_its_holder() {
    let t = Two::new().await;
    let (_, token_c) = t.s.new_tenant("initech").await;
    let c = t.s.scim_with(Some(&token_c));
    create_user(&c, "c.user").await;
    let attempt = |email: &str| {
        let mut body = user("newcomer");
        body["emails"] = json!([{ "value": email, "type": "work", "primary": true }]);
        body
    };
    let held_by_b = t.a.post("/Users", &attempt("b.user@example.com")).await;
    let held_by_c = t.a.post("/Users", &attempt("c.user@example.com")).await;
    assert_scim_error(&held_by_b, 409, Some("uniqueness"));
    let scrub = |r: &Response, email: &str| r.body["detail"].as_str().unwrap().replace(email, "<email>");
    assert_eq!(scrub(&held_by_b, "b.user@example.com"), scrub(&held_by_c, "c.user@example.com"));
    assert_eq!(held_by_b.status, held_by_c.status);
    assert_eq!(held_by_b.body["scimType"], held_by_c.body["scimType"]);
    for r in [&held_by_b, &held_by_c] {
        for secret in ["globex", "initech", t.b_user.as_str(), "b.user\"", "c.user\""] {
            assert!(!r.text.contains(secret), "the refusal names {secret}: {}", r.text);
        }
    }
}

/// A tenant administrator's API key reaches its own tenant only: another tenant's endpoints
/// answer as a tenant that does not exist does, and B's user is not found under A's tenant.
#[tokio::test]
async fn a_tenant_admin_cannot_reach_another_tenant_through_the_admin_api() {
    let t = Two::new().await;
    let b_tenant = t.s.service.tenants().await.unwrap().into_iter().find(|x| x.name == "globex").unwrap();
    let admin_a = t.s.tenant_admin_api(&t.s.tenant).await;
    for suffix in [
        "",
        "/tokens",
        "/events",
        "/doctor",
        "/webhooks",
        "/profiles",
        "/mappings",
        "/settings",
        "/users",
        "/audit",
        "/rate-limit",
    ] {
        let foreign = admin_a.get(&format!("/tenants/{}{suffix}", b_tenant.id)).await;
        let missing = admin_a.get(&format!("/tenants/{MISSING}{suffix}")).await;
        assert!(foreign.status == 403 || foreign.status == 404, "{suffix}: {}", foreign.text);
        assert_eq!((foreign.status, &foreign.text), (missing.status, &missing.text), "{suffix}");
        assert!(!foreign.text.contains("globex") && !foreign.text.contains("b.user"), "{}", foreign.text);
    }
    let own = format!("/tenants/{}/users", t.s.tenant.id);
    let foreign = admin_a.get(&format!("{own}/{}", t.b_user)).await;
    let missing = admin_a.get(&format!("{own}/{MISSING}")).await;
    assert_eq!(foreign.status, 404, "{}", foreign.text);
    assert_eq!(foreign.text.replace(&t.b_user, "<id>"), missing.text.replace(MISSING, "<id>"));
    let purge = admin_a.delete(&format!("{own}/{}", t.b_user)).await;
    assert_eq!(purge.status, 404, "{}", purge.text);
    // A's provisioning log holds none of B's requests.
    let events = admin_a.get(&format!("/tenants/{}/events?limit=500", t.s.tenant.id)).await;
    assert_eq!(events.status, 200, "{}", events.text);
    assert!(!events.text.contains(&t.b_user) && !events.text.contains("b.user"), "{}", events.text);
    assert_eq!(t.b_state().await.0["active"], true);
}
