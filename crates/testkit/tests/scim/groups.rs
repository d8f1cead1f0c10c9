//! Group CRUD, membership rules, and the User `groups` attribute.

use scimd_testkit::TestServer;
use serde_json::json;

use crate::support::{assert_scim_error, create, create_group, create_user, enc, group, ids, patch_op, user, values};

#[tokio::test]
async fn create_read_replace_delete() {
    let s = TestServer::start().await;
    let c = s.scim();
    let alice = create_user(&c, "alice").await;
    let r = c.post("/Groups", &group("Engineering", &[&alice])).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/scim+json"));
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["displayName"], "Engineering");
    assert_eq!(r.body["meta"]["resourceType"], "Group");
    assert_eq!(r.body["meta"]["location"], format!("{}/Groups/{id}", s.scim_url()));
    assert_eq!(r.header("location"), Some(format!("{}/Groups/{id}", s.scim_url()).as_str()));
    assert_eq!(r.body["members"][0]["value"], alice.as_str());
    assert_eq!(r.body["members"][0]["type"], "User", "the server records what the member is");
    assert_eq!(r.body["members"][0]["$ref"], format!("{}/Users/{alice}", s.scim_url()));

    let got = c.get(&format!("/Groups/{id}")).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.body["displayName"], "Engineering");
    assert_eq!(values(&got.body["members"]), vec![alice.clone()]);

    let put = c.put(&format!("/Groups/{id}"), &group("Platform", &[])).await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.body["displayName"], "Platform");
    assert!(put.body.get("members").is_none(), "PUT without members empties the group: {}", put.text);
    assert_ne!(put.body["meta"]["version"], got.body["meta"]["version"]);
    assert_eq!(c.get(&format!("/Groups/{id}")).await.body["displayName"], "Platform");

    assert_eq!(c.delete(&format!("/Groups/{id}")).await.status, 204);
    assert_scim_error(&c.get(&format!("/Groups/{id}")).await, 404, None);
    assert_scim_error(&c.delete(&format!("/Groups/{id}")).await, 404, None);
    // The member itself is untouched.
    let u = c.get(&format!("/Users/{alice}")).await;
    assert_eq!(u.status, 200);
    assert!(u.body.get("groups").is_none(), "{}", u.text);
}

#[tokio::test]
async fn group_without_display_name_is_refused() {
    let s = TestServer::start().await;
    let r = s.scim().post("/Groups", &json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"] })).await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    assert!(r.body["detail"].as_str().unwrap().contains("displayName"), "{}", r.text);
}

#[tokio::test]
async fn unknown_member_id_is_invalid_value() {
    let s = TestServer::start().await;
    let c = s.scim();
    let alice = create_user(&c, "alice").await;
    let r = c.post("/Groups", &group("G", &[&alice, "no-such-id"])).await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    assert!(r.body["detail"].as_str().unwrap().contains("no-such-id"), "{}", r.text);
    assert_eq!(c.get("/Groups").await.body["totalResults"], 0, "nothing was created");

    let gid = create_group(&c, "G", &[&alice]).await;
    let put = c.put(&format!("/Groups/{gid}"), &group("G", &["missing"])).await;
    assert_scim_error(&put, 400, Some("invalidValue"));
    let patch = c
        .patch(
            &format!("/Groups/{gid}"),
            &patch_op(json!([{ "op": "add", "path": "members", "value": [{ "value": "missing" }] }])),
        )
        .await;
    assert_scim_error(&patch, 400, Some("invalidValue"));
    let got = c.get(&format!("/Groups/{gid}")).await;
    assert_eq!(values(&got.body["members"]), vec![alice], "failed writes left the members alone");
    assert_eq!(got.body["meta"]["version"], "W/\"1\"");
}

#[tokio::test]
async fn a_member_of_another_tenant_is_unknown() {
    let s = TestServer::start().await;
    let (_, token_b) = s.new_tenant("globex").await;
    let b = s.scim_with(Some(&token_b));
    let bob = create_user(&b, "bob").await;
    let r = s.scim().post("/Groups", &group("G", &[&bob])).await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    assert!(r.body["detail"].as_str().unwrap().contains(&bob));
}

#[tokio::test]
async fn a_group_can_contain_a_group() {
    let s = TestServer::start().await;
    let c = s.scim();
    let alice = create_user(&c, "alice").await;
    let inner = create_group(&c, "Inner", &[&alice]).await;
    let r = c.post("/Groups", &group("Outer", &[&inner, &alice])).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let outer = r.body["id"].as_str().unwrap().to_owned();
    let got = c.get(&format!("/Groups/{outer}")).await;
    let members = got.body["members"].as_array().unwrap();
    assert_eq!(members.len(), 2, "{}", got.text);
    let nested = members.iter().find(|m| m["value"] == inner.as_str()).expect("inner group is a member");
    assert_eq!(nested["type"], "Group");
    assert_eq!(nested["$ref"], format!("{}/Groups/{inner}", s.scim_url()));
    let user = members.iter().find(|m| m["value"] == alice.as_str()).unwrap();
    assert_eq!(user["type"], "User");

    // The server records what a member is, whatever `type` the client claims.
    let r = c
        .post("/Groups", &json!({ "displayName": "Typed", "members": [{ "value": inner, "type": "User" }, { "value": alice, "type": "group" }] }))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let typed = r.body["members"].as_array().unwrap();
    assert_eq!(typed.iter().find(|m| m["value"] == inner.as_str()).unwrap()["type"], "Group", "{}", r.text);
    assert_eq!(typed.iter().find(|m| m["value"] == alice.as_str()).unwrap()["type"], "User", "{}", r.text);

    // A group cannot contain itself.
    let selfish = c.put(&format!("/Groups/{outer}"), &group("Outer", &[&outer])).await;
    assert_scim_error(&selfish, 400, Some("invalidValue"));

    // Deleting the inner group removes it from the outer one.
    assert_eq!(c.delete(&format!("/Groups/{inner}")).await.status, 204);
    let got = c.get(&format!("/Groups/{outer}")).await;
    assert_eq!(values(&got.body["members"]), vec![alice]);
}

#[tokio::test]
async fn deleting_a_user_removes_it_from_its_groups() {
    let s = TestServer::start().await;
    let c = s.scim();
    let alice = create_user(&c, "alice").await;
    let bob = create_user(&c, "bob").await;
    let g1 = create_group(&c, "G1", &[&alice, &bob]).await;
    let g2 = create_group(&c, "G2", &[&alice]).await;
    assert_eq!(c.delete(&format!("/Users/{alice}")).await.status, 204);
    assert_eq!(values(&c.get(&format!("/Groups/{g1}")).await.body["members"]), vec![bob.clone()]);
    let g2 = c.get(&format!("/Groups/{g2}")).await;
    assert_eq!(g2.status, 200, "the group stays, empty");
    assert!(g2.body.get("members").is_none(), "{}", g2.text);
    // Filters on membership agree.
    let r = c.get(&format!("/Groups?filter={}", enc(&format!("members[value eq \"{alice}\"]")))).await;
    assert_eq!(r.body["totalResults"], 0, "{}", r.text);
}

#[tokio::test]
async fn losing_a_member_by_deletion_is_a_change_of_the_group() {
    let s = TestServer::start().await;
    let c = s.scim();
    let alice = create_user(&c, "alice").await;
    let bob = create_user(&c, "bob").await;
    let inner = create_group(&c, "Inner", &[&bob]).await;
    let g = create_group(&c, "G", &[&alice, &inner]).await;
    let unrelated = create_group(&c, "Unrelated", &[&bob]).await;
    let before = c.get(&format!("/Groups/{g}")).await;
    let etag = before.header("etag").unwrap().to_owned();
    s.clock.advance(time::Duration::seconds(30));

    assert_eq!(c.delete(&format!("/Users/{alice}")).await.status, 204);
    let after = c.get(&format!("/Groups/{g}")).await;
    assert_ne!(after.body["meta"]["version"], before.body["meta"]["version"], "{}", after.text);
    assert!(after.body["meta"]["lastModified"].as_str() > before.body["meta"]["lastModified"].as_str());
    // A client holding the old representation learns that it changed.
    let r = c.send(reqwest::Method::GET, &format!("/Groups/{g}"), None, &[("If-None-Match", &etag)]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = c
        .send(
            reqwest::Method::PATCH,
            &format!("/Groups/{g}"),
            Some(&patch_op(json!([{ "op": "replace", "path": "displayName", "value": "H" }]))),
            &[("If-Match", &etag)],
        )
        .await;
    assert_scim_error(&r, 412, None);
    let since = before.body["meta"]["lastModified"].as_str().unwrap();
    let f = enc(&format!("meta.lastModified gt \"{since}\""));
    assert_eq!(ids(&c.get(&format!("/Groups?filter={f}")).await), vec![g.clone()]);

    // Deleting a nested group changes the group that contained it, and only that one.
    let unrelated_version = c.get(&format!("/Groups/{unrelated}")).await.body["meta"]["version"].clone();
    let v = after.body["meta"]["version"].clone();
    assert_eq!(c.delete(&format!("/Groups/{inner}")).await.status, 204);
    let last = c.get(&format!("/Groups/{g}")).await;
    assert_ne!(last.body["meta"]["version"], v);
    assert!(last.body.get("members").is_none(), "{}", last.text);
    assert_eq!(c.get(&format!("/Groups/{unrelated}")).await.body["meta"]["version"], unrelated_version);
}

#[tokio::test]
async fn user_groups_attribute_shows_memberships() {
    let s = TestServer::start().await;
    let c = s.scim();
    let alice = create_user(&c, "alice").await;
    let bob = create_user(&c, "bob").await;
    let eng = create_group(&c, "Engineering", &[&alice, &bob]).await;
    let ops = create_group(&c, "Ops", &[&alice]).await;

    let a = c.get(&format!("/Users/{alice}")).await;
    let groups = a.body["groups"].as_array().unwrap_or_else(|| panic!("groups shown: {}", a.text));
    assert_eq!(values(&a.body["groups"]), {
        let mut v = vec![eng.clone(), ops.clone()];
        v.sort();
        v
    });
    let e = groups.iter().find(|g| g["value"] == eng.as_str()).unwrap();
    assert_eq!(e["display"], "Engineering");
    assert_eq!(e["$ref"], format!("{}/Groups/{eng}", s.scim_url()));
    assert_eq!(values(&c.get(&format!("/Users/{bob}")).await.body["groups"]), vec![eng.clone()]);

    // In lists too.
    let list = c.get(&format!("/Users?filter={}", enc("userName eq \"alice\""))).await;
    assert_eq!(values(&list.body["Resources"][0]["groups"]).len(), 2, "{}", list.text);

    // Membership changes show at once.
    let r = c
        .patch(
            &format!("/Groups/{ops}"),
            &patch_op(json!([{ "op": "remove", "path": format!("members[value eq \"{alice}\"]") }])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(values(&c.get(&format!("/Users/{alice}")).await.body["groups"]), vec![eng.clone()]);
    // Renaming a group shows in its members' `groups`.
    let r = c
        .patch(
            &format!("/Groups/{eng}"),
            &patch_op(json!([{ "op": "replace", "path": "displayName", "value": "R&D" }])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(c.get(&format!("/Users/{bob}")).await.body["groups"][0]["display"], "R&D");
}

#[tokio::test]
async fn user_groups_is_read_only_and_ignored_on_post_and_put() {
    let s = TestServer::start().await;
    let c = s.scim();
    let bob = create_user(&c, "bob").await;
    let g = create_group(&c, "G", &[&bob]).await;
    let other = create_group(&c, "Other", &[]).await;

    // Okta sends `groups: []` on create; a client-sent membership is not one.
    let mut body = user("alice");
    body["groups"] = json!([{ "value": g, "display": "G" }]);
    let r = c.post("/Users", &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let alice = r.body["id"].as_str().unwrap().to_owned();
    assert!(r.body.get("groups").is_none(), "{}", r.text);
    assert_eq!(values(&c.get(&format!("/Groups/{g}")).await.body["members"]), vec![bob.clone()]);

    // Okta PUTs the whole object back, with a (stale) `groups`: memberships stay as they are.
    let mut body = user("bob");
    body["groups"] = json!([{ "value": other }]);
    let r = c.put(&format!("/Users/{bob}"), &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(values(&r.body["groups"]), vec![g.clone()], "{}", r.text);
    let mut body = user("bob");
    body["groups"] = json!([]);
    assert_eq!(c.put(&format!("/Users/{bob}"), &body).await.status, 200);
    assert_eq!(values(&c.get(&format!("/Users/{bob}")).await.body["groups"]), vec![g.clone()]);
    assert!(c.get(&format!("/Groups/{other}")).await.body.get("members").is_none());
    assert!(c.get(&format!("/Users/{alice}")).await.body.get("groups").is_none());

    // A path-less PATCH echoing a stale `groups` (as clients echo whole objects) ignores it.
    let r = c
        .patch(
            &format!("/Users/{bob}"),
            &patch_op(json!([{ "op": "replace", "value": { "title": "T", "groups": [{ "value": other }] } }])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["title"], "T");
    assert_eq!(values(&r.body["groups"]), vec![g.clone()], "{}", r.text);
    assert!(c.get(&format!("/Groups/{other}")).await.body.get("members").is_none());
}

#[tokio::test]
async fn excluded_members_on_get_and_list() {
    let s = TestServer::start().await;
    let c = s.scim();
    let alice = create_user(&c, "alice").await;
    let g = create_group(&c, "G", &[&alice]).await;

    let r = c.get(&format!("/Groups/{g}?excludedAttributes=members")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body.get("members").is_none(), "{}", r.text);
    assert_eq!(r.body["displayName"], "G");
    assert_eq!(r.body["id"], g.as_str());

    let r = c.get("/Groups?excludedAttributes=members").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ids(&r), vec![g.clone()]);
    assert!(r.body["Resources"][0].get("members").is_none(), "{}", r.text);
    assert_eq!(r.body["Resources"][0]["displayName"], "G");

    // Without the exclusion they are there.
    let r = c.get("/Groups").await;
    assert_eq!(values(&r.body["Resources"][0]["members"]), vec![alice.clone()]);
    // And `attributes=displayName` leaves them out too.
    let r = c.get(&format!("/Groups/{g}?attributes=displayName")).await;
    assert!(r.body.get("members").is_none(), "{}", r.text);
    // The same for a User's groups.
    let r = c.get(&format!("/Users/{alice}?excludedAttributes=groups")).await;
    assert!(r.body.get("groups").is_none(), "{}", r.text);
    assert_eq!(values(&c.get(&format!("/Users/{alice}")).await.body["groups"]), vec![g]);
}

#[tokio::test]
async fn group_put_replaces_membership() {
    let s = TestServer::start().await;
    let c = s.scim();
    let a = create_user(&c, "a").await;
    let b = create_user(&c, "b").await;
    let d = create_user(&c, "d").await;
    let g = create_group(&c, "G", &[&a, &b]).await;
    let r = c.put(&format!("/Groups/{g}"), &group("G", &[&b, &d])).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut expected = vec![b.clone(), d.clone()];
    expected.sort();
    assert_eq!(values(&r.body["members"]), expected, "the response shows the new members");
    assert_eq!(values(&c.get(&format!("/Groups/{g}")).await.body["members"]), expected);
    assert!(c.get(&format!("/Users/{a}")).await.body.get("groups").is_none());
    assert_eq!(values(&c.get(&format!("/Users/{d}")).await.body["groups"]), vec![g.clone()]);
    // Duplicate members collapse.
    let r = c.put(&format!("/Groups/{g}"), &group("G", &[&a, &a])).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(values(&r.body["members"]), vec![a.clone()]);
}

#[tokio::test]
async fn group_display_names_need_not_be_unique() {
    // The Group schema declares displayName with uniqueness "none".
    let s = TestServer::start().await;
    let c = s.scim();
    let first = create(&c, "/Groups", &group("Admins", &[])).await;
    let second = create(&c, "/Groups", &group("admins", &[])).await;
    assert_ne!(first, second);
    let r = c.get(&format!("/Groups?filter={}", enc("displayName eq \"ADMINS\""))).await;
    assert_eq!(r.body["totalResults"], 2, "{}", r.text);
}
