//! ETags (RFC 7644 §3.14): `meta.version` as a weak ETag, conditional reads and writes.

use reqwest::Method;
use scimd_testkit::{Client, Response, TestServer};
use serde_json::json;

use crate::support::{assert_scim_error, create_group, create_user, group, patch_op, user};

#[track_caller]
fn etag(r: &Response) -> String {
    let header = r.header("etag").unwrap_or_else(|| panic!("an ETag header: {:?}", r.headers)).to_owned();
    assert_eq!(Some(header.as_str()), r.body["meta"]["version"].as_str(), "ETag equals meta.version: {}", r.text);
    assert!(header.starts_with("W/\"") && header.ends_with('"'), "a weak entity tag: {header}");
    header
}

async fn with(c: &Client, method: Method, path: &str, body: Option<&serde_json::Value>, h: (&str, &str)) -> Response {
    c.send(method, path, body, &[h]).await
}

#[tokio::test]
async fn etag_header_equals_meta_version_on_every_response() {
    let s = TestServer::start().await;
    let c = s.scim();
    let created = c.post("/Users", &user("alice")).await;
    let v1 = etag(&created);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let u = format!("/Users/{id}");
    assert_eq!(etag(&c.get(&u).await), v1);
    let v2 = etag(&c.put(&u, &user("alice")).await);
    let v3 = etag(&c.patch(&u, &patch_op(json!([{ "op": "add", "path": "title", "value": "T" }]))).await);
    let all = [v1.clone(), v2.clone(), v3.clone()];
    assert_eq!(all.iter().collect::<std::collections::HashSet<_>>().len(), 3, "a new version per write: {all:?}");
    assert_eq!(etag(&c.get(&u).await), v3);
    // In lists, each resource carries its version.
    let list = c.get("/Users").await;
    assert_eq!(list.body["Resources"][0]["meta"]["version"], v3.as_str());

    let g = c.post("/Groups", &group("G", &[&id])).await;
    let gv1 = etag(&g);
    let gid = g.body["id"].as_str().unwrap();
    let gv2 =
        etag(&c.patch(&format!("/Groups/{gid}"), &patch_op(json!([{ "op": "remove", "path": "members" }]))).await);
    assert_ne!(gv1, gv2);
    assert_eq!(etag(&c.get(&format!("/Groups/{gid}")).await), gv2);
}

#[tokio::test]
async fn version_changes_on_every_write_and_only_then() {
    let s = TestServer::start().await;
    let c = s.scim();
    let id = create_user(&c, "alice").await;
    let u = format!("/Users/{id}");
    let mut seen = vec![etag(&c.get(&u).await)];
    for op in [
        json!([{ "op": "replace", "path": "title", "value": "A" }]),
        json!([{ "op": "replace", "path": "title", "value": "B" }]),
        json!([{ "op": "replace", "value": { "active": false } }]),
    ] {
        let r = c.patch(&u, &patch_op(op)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let v = etag(&r);
        assert!(!seen.contains(&v), "{v} is new: {seen:?}");
        seen.push(v);
    }
    let r = c.put(&u, &user("alice")).await;
    let v = etag(&r);
    assert!(!seen.contains(&v));
    // Reads do not change it.
    assert_eq!(etag(&c.get(&u).await), v);
    assert_eq!(etag(&c.get(&u).await), v);
    // Membership changes are writes of the group, not of the member.
    let g = create_group(&c, "G", &[]).await;
    let r = c
        .patch(
            &format!("/Groups/{g}"),
            &patch_op(json!([{ "op": "add", "path": "members", "value": [{ "value": id }] }])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(etag(&r), "W/\"2\"");
}

#[tokio::test]
async fn if_none_match_on_get_is_304() {
    let s = TestServer::start().await;
    let c = s.scim();
    let id = create_user(&c, "alice").await;
    let u = format!("/Users/{id}");
    let v = etag(&c.get(&u).await);
    let r = with(&c, Method::GET, &u, None, ("If-None-Match", &v)).await;
    assert_eq!(r.status, 304, "{}", r.text);
    assert!(r.text.is_empty(), "no body on 304");
    assert_eq!(r.header("etag"), Some(v.as_str()));
    // Several tags, one of which matches; and the strong form of the same tag (weak comparison).
    let r = with(&c, Method::GET, &u, None, ("If-None-Match", &format!("W/\"99\", {v}"))).await;
    assert_eq!(r.status, 304);
    let r = with(&c, Method::GET, &u, None, ("If-None-Match", v.trim_start_matches("W/"))).await;
    assert_eq!(r.status, 304);
    let r = with(&c, Method::GET, &u, None, ("If-None-Match", "*")).await;
    assert_eq!(r.status, 304);
    // After a change the old tag no longer matches.
    c.patch(&u, &patch_op(json!([{ "op": "add", "path": "title", "value": "T" }]))).await;
    let r = with(&c, Method::GET, &u, None, ("If-None-Match", &v)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["title"], "T");
    assert_ne!(etag(&r), v);
    // A missing resource is still a 404.
    let r = with(&c, Method::GET, "/Users/missing", None, ("If-None-Match", "*")).await;
    assert_scim_error(&r, 404, None);
}

#[tokio::test]
async fn if_match_mismatch_is_412_and_changes_nothing() {
    let s = TestServer::start().await;
    let c = s.scim();
    let id = create_user(&c, "alice").await;
    let u = format!("/Users/{id}");
    let stale = "W/\"7\"";
    let r = with(&c, Method::PUT, &u, Some(&user("renamed")), ("If-Match", stale)).await;
    assert_scim_error(&r, 412, None);
    assert!(r.body["detail"].as_str().unwrap().contains("W/\"1\""), "names the current version: {}", r.text);
    let body = patch_op(json!([{ "op": "add", "path": "title", "value": "T" }]));
    let r = with(&c, Method::PATCH, &u, Some(&body), ("If-Match", stale)).await;
    assert_scim_error(&r, 412, None);
    let r = with(&c, Method::DELETE, &u, None, ("If-Match", stale)).await;
    assert_scim_error(&r, 412, None);
    let got = c.get(&u).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["userName"], "alice");
    assert!(got.body.get("title").is_none());
    assert_eq!(etag(&got), "W/\"1\"");

    // Groups the same way.
    let g = create_group(&c, "G", &[&id]).await;
    let r = with(
        &c,
        Method::PATCH,
        &format!("/Groups/{g}"),
        Some(&patch_op(json!([{ "op": "remove", "path": "members" }]))),
        ("If-Match", stale),
    )
    .await;
    assert_scim_error(&r, 412, None);
    assert_eq!(c.get(&format!("/Groups/{g}")).await.body["members"][0]["value"], id.as_str());
}

#[tokio::test]
async fn if_match_with_the_current_version_succeeds() {
    let s = TestServer::start().await;
    let c = s.scim();
    let id = create_user(&c, "alice").await;
    let u = format!("/Users/{id}");
    let v1 = etag(&c.get(&u).await);
    let r = with(&c, Method::PUT, &u, Some(&user("alice")), ("If-Match", &v1)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v2 = etag(&r);
    // The old version is stale now.
    let body = patch_op(json!([{ "op": "add", "path": "title", "value": "T" }]));
    assert_scim_error(&with(&c, Method::PATCH, &u, Some(&body), ("If-Match", &v1)).await, 412, None);
    let r = with(&c, Method::PATCH, &u, Some(&body), ("If-Match", &v2)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v3 = etag(&r);
    // `*` and lists of tags.
    let r = with(
        &c,
        Method::PATCH,
        &u,
        Some(&patch_op(json!([{ "op": "add", "path": "title", "value": "U" }]))),
        ("If-Match", "*"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v4 = etag(&r);
    assert_ne!(v3, v4);
    let r = with(&c, Method::DELETE, &u, None, ("If-Match", &format!("{v1}, {v4}"))).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_scim_error(&c.get(&u).await, 404, None);
}

#[tokio::test]
async fn service_provider_config_advertises_etag() {
    let s = TestServer::start().await;
    let r = s.scim().get("/ServiceProviderConfig").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["etag"]["supported"], true);
}

#[tokio::test]
async fn joining_or_leaving_a_group_changes_the_users_version() {
    let s = TestServer::start().await;
    let c = s.scim();
    let uid = create_user(&c, "member").await;
    let v0 = c.get(&format!("/Users/{uid}")).await.header("etag").unwrap().to_owned();
    let gid = create_group(&c, "team", &[&uid]).await;
    let joined = c.get(&format!("/Users/{uid}")).await;
    let v1 = joined.header("etag").unwrap().to_owned();
    assert_ne!(v0, v1, "joining a group changes the user's ETag");
    assert_eq!(joined.body["groups"][0]["value"], gid);
    let r = c.send(Method::GET, &format!("/Users/{uid}"), None, &[("If-None-Match", &v0)]).await;
    assert_eq!(r.status, 200, "the old ETag no longer matches");
    assert_eq!(c.delete(&format!("/Groups/{gid}")).await.status, 204);
    let left = c.get(&format!("/Users/{uid}")).await;
    assert_ne!(left.header("etag").unwrap(), v1, "losing a group changes the user's ETag");
    assert!(left.body.get("groups").is_none());
}
