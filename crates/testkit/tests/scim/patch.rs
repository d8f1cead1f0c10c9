//! PATCH over HTTP (RFC 7644 §3.5.2) in every form, including the dialects of Okta and Entra ID
//! (idp-behaviour.md A.5, A.6, B.2, B.3, D.1–D.7), each named in the test name.

use scimd_testkit::{Client, Response, TestServer};
use serde_json::{Value, json};

use crate::support::{
    ENTERPRISE, PATCH_OP, assert_scim_error, create, create_group, create_user, filter_ids, patch_op, user, values,
};

async fn patch(c: &Client, path: &str, ops: Value) -> Response {
    let r = c.patch(path, &patch_op(ops)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/scim+json"));
    assert_eq!(r.header("etag"), r.body["meta"]["version"].as_str(), "{}", r.text);
    r
}

/// PATCHes, expects the response to be the resource, and checks a later GET agrees with it.
/// Group members are compared as a set of ids: their order carries no meaning, and a GET fills
/// in a `display` for members added without one, which the PATCH response does not.
async fn patch_and_check(c: &Client, path: &str, ops: Value) -> Value {
    let r = patch(c, path, ops).await;
    let got = c.get(path).await;
    let without_members = |v: &Value| {
        let mut v = v.clone();
        v.as_object_mut().unwrap().remove("members");
        v
    };
    assert_eq!(without_members(&got.body), without_members(&r.body), "GET after PATCH shows what PATCH returned");
    assert_eq!(values(&got.body["members"]), values(&r.body["members"]), "the same members");
    r.body
}

#[tokio::test]
async fn okta_deactivate_pathless() {
    let s = TestServer::start().await;
    let c = s.scim();
    let id = create_user(&c, "okta.user").await;
    let u = format!("/Users/{id}");
    let r = patch_and_check(&c, &u, json!([{ "op": "replace", "value": { "active": false } }])).await;
    assert_eq!(r["active"], false);
    assert_eq!(r["userName"], "okta.user", "nothing else changes");
    assert_eq!(r["emails"][0]["value"], "okta.user@example.com");
    assert_eq!(r["id"], id.as_str());
    assert_eq!(r["meta"]["version"], "W/\"2\"");
}

#[tokio::test]
async fn okta_reactivate() {
    let s = TestServer::start().await;
    let c = s.scim();
    let id = create_user(&c, "okta.user").await;
    let u = format!("/Users/{id}");
    patch(&c, &u, json!([{ "op": "replace", "value": { "active": false } }])).await;
    let r = patch_and_check(&c, &u, json!([{ "op": "replace", "value": { "active": true } }])).await;
    assert_eq!(r["active"], true);
    assert_eq!(filter_ids(&c, "/Users", "active eq true").await, vec![id]);
}

#[tokio::test]
async fn okta_group_rename_pathless_with_id() {
    let s = TestServer::start().await;
    let c = s.scim();
    let alice = create_user(&c, "alice").await;
    let g = create_group(&c, "Old name", &[&alice]).await;
    let path = format!("/Groups/{g}");
    let r =
        patch_and_check(&c, &path, json!([{ "op": "replace", "value": { "id": g, "displayName": "New name" } }])).await;
    assert_eq!(r["displayName"], "New name");
    assert_eq!(values(&r["members"]), vec![alice], "members untouched");
    // An id that is not this group's means the wrong resource: refused.
    let r = c
        .patch(&path, &patch_op(json!([{ "op": "replace", "value": { "id": "someone-else", "displayName": "X" } }])))
        .await;
    assert_scim_error(&r, 400, Some("mutability"));
    assert_eq!(c.get(&path).await.body["displayName"], "New name");
}

#[tokio::test]
async fn okta_mixed_member_remove_and_add() {
    let s = TestServer::start().await;
    let c = s.scim();
    let a = create_user(&c, "a").await;
    let b = create_user(&c, "b").await;
    let d = create_user(&c, "d").await;
    let g = create_group(&c, "G", &[&a, &b]).await;
    let r = patch_and_check(
        &c,
        &format!("/Groups/{g}"),
        json!([
            { "op": "remove", "path": format!("members[value eq \"{a}\"]") },
            { "op": "add", "path": "members", "value": [{ "value": d, "display": "d" }] },
        ]),
    )
    .await;
    let mut expected = vec![b.clone(), d.clone()];
    expected.sort();
    assert_eq!(values(&r["members"]), expected);
    assert!(c.get(&format!("/Users/{a}")).await.body.get("groups").is_none());
    assert_eq!(values(&c.get(&format!("/Users/{d}")).await.body["groups"]), vec![g]);
}

#[tokio::test]
async fn okta_replace_all_members() {
    let s = TestServer::start().await;
    let c = s.scim();
    let a = create_user(&c, "a").await;
    let b = create_user(&c, "b").await;
    let d = create_user(&c, "d").await;
    let g = create_group(&c, "G", &[&a, &b]).await;
    let r = patch_and_check(
        &c,
        &format!("/Groups/{g}"),
        json!([{ "op": "replace", "path": "members", "value": [{ "value": b, "display": "b" }, { "value": d, "display": "d" }] }]),
    )
    .await;
    let mut expected = vec![b.clone(), d.clone()];
    expected.sort();
    assert_eq!(values(&r["members"]), expected);
    // Replacing with an empty list empties the group.
    let r = patch_and_check(&c, &format!("/Groups/{g}"), json!([{ "op": "replace", "path": "members", "value": [] }]))
        .await;
    assert!(r.get("members").is_none(), "{r}");
}

#[tokio::test]
async fn entra_capitalised_ops() {
    let s = TestServer::start().await;
    let c = s.scim();
    let id = create_user(&c, "entra.user").await;
    let u = format!("/Users/{id}");
    let r = patch_and_check(
        &c,
        &u,
        json!([
            { "op": "Add", "path": "nickName", "value": "Babs" },
            { "op": "Replace", "path": "name.familyName", "value": "Jensen" },
            { "op": "Replace", "path": "emails[type eq \"work\"].value", "value": "babs@corp.example" },
            { "op": "Remove", "path": "name.givenName" },
        ]),
    )
    .await;
    assert_eq!(r["nickName"], "Babs");
    assert_eq!(r["name"], json!({ "familyName": "Jensen" }));
    assert_eq!(r["emails"], json!([{ "value": "babs@corp.example", "type": "work", "primary": true }]));
    // Keys of the message are case-insensitive too.
    let r = c
        .patch(
            &u,
            &json!({ "SCHEMAS": [PATCH_OP], "operations": [{ "OP": "REPLACE", "PATH": "title", "VALUE": "x" }] }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["title"], "x");
}

#[tokio::test]
async fn entra_boolean_string_false_deactivates() {
    let s = TestServer::start().await;
    let c = s.scim();
    let id = create_user(&c, "entra.user").await;
    let u = format!("/Users/{id}");
    let r = patch_and_check(&c, &u, json!([{ "op": "Replace", "path": "active", "value": "False" }])).await;
    assert_eq!(r["active"], false, "stored as a boolean");
    assert_eq!(filter_ids(&c, "/Users", "active eq false").await, vec![id.clone()]);
    let r = patch_and_check(&c, &u, json!([{ "op": "Replace", "path": "active", "value": "True" }])).await;
    assert_eq!(r["active"], true);
    // `Add` on active, as Entra sends it in some deprovisioning flows, and lower-case strings.
    let r = patch_and_check(&c, &u, json!([{ "op": "Add", "path": "active", "value": "false" }])).await;
    assert_eq!(r["active"], false);
    // Anything else is not a boolean.
    let r = c.patch(&u, &patch_op(json!([{ "op": "Replace", "path": "active", "value": "nope" }]))).await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    assert!(r.body["detail"].as_str().unwrap().contains("active"), "{}", r.text);
}

#[tokio::test]
async fn entra_pathless_dotted_and_urn_keys() {
    let s = TestServer::start().await;
    let c = s.scim();
    let id = create_user(&c, "entra.user").await;
    let u = format!("/Users/{id}");
    let r = patch_and_check(
        &c,
        &u,
        json!([
            { "op": "replace", "path": "emails[type eq \"work\"].value", "value": "e@corp.example" },
            { "op": "replace", "value": {
                "displayName": "Entra User",
                "name.givenName": "Ent",
                "name.familyName": "Ra",
                format!("{ENTERPRISE}:employeeNumber"): "4711",
                format!("{ENTERPRISE}:department"): "Finance",
            } },
        ]),
    )
    .await;
    assert_eq!(r["displayName"], "Entra User");
    assert_eq!(r["name"], json!({ "givenName": "Ent", "familyName": "Ra" }));
    assert_eq!(r[ENTERPRISE], json!({ "employeeNumber": "4711", "department": "Finance" }));
    assert!(r.get("name.givenName").is_none(), "no literal dotted keys: {r}");
    assert!(r.get(format!("{ENTERPRISE}:employeeNumber")).is_none(), "no literal URN keys: {r}");
    assert!(r["schemas"].as_array().unwrap().iter().any(|s| s == ENTERPRISE), "{r}");
    assert_eq!(filter_ids(&c, "/Users", &format!("{ENTERPRISE}:employeeNumber eq \"4711\"")).await, vec![id.clone()]);
    assert_eq!(filter_ids(&c, "/Users", "name.givenName eq \"ent\"").await, vec![id.clone()]);
    // An extension given as one object, path-less.
    let r = patch_and_check(&c, &u, json!([{ "op": "add", "value": { ENTERPRISE: { "costCenter": "CC1" } } }])).await;
    assert_eq!(r[ENTERPRISE]["costCenter"], "CC1");
    assert_eq!(r[ENTERPRISE]["employeeNumber"], "4711", "merged, not replaced");
}

#[tokio::test]
async fn entra_add_filtered_path_creates_email() {
    let s = TestServer::start().await;
    let c = s.scim();
    let id = create(&c, "/Users", &json!({ "userName": "no.email" })).await;
    let u = format!("/Users/{id}");
    let r = patch_and_check(
        &c,
        &u,
        json!([{ "op": "Add", "path": "emails[type eq \"work\"].value", "value": "no.email@corp.example" }]),
    )
    .await;
    assert_eq!(r["emails"], json!([{ "type": "work", "value": "no.email@corp.example" }]));
    assert_eq!(
        filter_ids(&c, "/Users", "emails[type eq \"work\"].value eq \"no.email@corp.example\"").await,
        vec![id.clone()]
    );
    // Replace on the same path now changes that element, not a new one.
    let r = patch_and_check(
        &c,
        &u,
        json!([{ "op": "Replace", "path": "emails[type eq \"work\"].value", "value": "new@corp.example" }]),
    )
    .await;
    assert_eq!(r["emails"], json!([{ "type": "work", "value": "new@corp.example" }]));
    // And a replace on a type that is not there creates one too.
    let r = patch_and_check(
        &c,
        &u,
        json!([{ "op": "Replace", "path": "emails[type eq \"home\"].value", "value": "me@home.example" }]),
    )
    .await;
    assert_eq!(r["emails"].as_array().unwrap().len(), 2, "{r}");
}

#[tokio::test]
async fn entra_multiple_subattribute_adds_merge_into_one_address() {
    let s = TestServer::start().await;
    let c = s.scim();
    let id = create_user(&c, "entra.user").await;
    let u = format!("/Users/{id}");
    let r = patch_and_check(
        &c,
        &u,
        json!([
            { "op": "Add", "path": "addresses[type eq \"work\"].streetAddress", "value": "1 Main St" },
            { "op": "Add", "path": "addresses[type eq \"work\"].locality", "value": "Springfield" },
            { "op": "Add", "path": "addresses[type eq \"work\"].postalCode", "value": "12345" },
            { "op": "Add", "path": "addresses[type eq \"work\"].country", "value": "US" },
        ]),
    )
    .await;
    assert_eq!(
        r["addresses"],
        json!([{ "type": "work", "streetAddress": "1 Main St", "locality": "Springfield", "postalCode": "12345", "country": "US" }])
    );
}

#[tokio::test]
async fn entra_remove_members_value_array_removes_only_those() {
    let s = TestServer::start().await;
    let c = s.scim();
    let a = create_user(&c, "a").await;
    let b = create_user(&c, "b").await;
    let d = create_user(&c, "d").await;
    let g = create_group(&c, "G", &[&a, &b, &d]).await;
    let path = format!("/Groups/{g}");
    let r = patch_and_check(
        &c,
        &path,
        json!([{ "op": "Remove", "path": "members", "value": [{ "$ref": null, "value": a }, { "value": d }] }]),
    )
    .await;
    assert_eq!(values(&r["members"]), vec![b.clone()], "only the listed members are removed");
    // Entra adds members the same way, with $ref null.
    let r = patch_and_check(
        &c,
        &path,
        json!([{ "op": "Add", "path": "members", "value": [{ "$ref": null, "value": a }] }]),
    )
    .await;
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort();
    assert_eq!(values(&r["members"]), expected);
    // Adding an existing member again does not duplicate it.
    let r = patch_and_check(&c, &path, json!([{ "op": "Add", "path": "members", "value": [{ "value": a }] }])).await;
    assert_eq!(r["members"].as_array().unwrap().len(), 2);
    // Removing a member that is not there changes nothing.
    let r = patch(&c, &path, json!([{ "op": "Remove", "path": "members", "value": [{ "value": d }] }])).await;
    assert_eq!(values(&r.body["members"]), expected);
    // An empty value array is refused rather than read as "remove everyone".
    let r = c.patch(&path, &patch_op(json!([{ "op": "Remove", "path": "members", "value": [] }]))).await;
    assert_scim_error(&r, 400, None);
    assert_eq!(values(&c.get(&path).await.body["members"]), expected);
}

#[tokio::test]
async fn entra_replace_external_id() {
    let s = TestServer::start().await;
    let c = s.scim();
    let mut body = user("entra.user");
    body["externalId"] = json!("old-ext");
    let id = create(&c, "/Users", &body).await;
    let r = patch_and_check(
        &c,
        &format!("/Users/{id}"),
        json!([{ "op": "Replace", "path": "externalId", "value": "New-Ext" }]),
    )
    .await;
    assert_eq!(r["externalId"], "New-Ext");
    assert_eq!(filter_ids(&c, "/Users", "externalId eq \"New-Ext\"").await, vec![id.clone()]);
    assert!(filter_ids(&c, "/Users", "externalId eq \"old-ext\"").await.is_empty());
    // Groups too (Entra maps objectId to externalId).
    let g = create_group(&c, "G", &[]).await;
    let r = patch_and_check(
        &c,
        &format!("/Groups/{g}"),
        json!([{ "op": "Replace", "path": "externalId", "value": "obj-1" }]),
    )
    .await;
    assert_eq!(r["externalId"], "obj-1");
    assert_eq!(filter_ids(&c, "/Groups", "externalId eq \"obj-1\"").await, vec![g]);
}

#[tokio::test]
async fn entra_manager_as_array() {
    let s = TestServer::start().await;
    let c = s.scim();
    let boss = create_user(&c, "boss").await;
    let id = create_user(&c, "worker").await;
    let u = format!("/Users/{id}");
    let r = patch_and_check(
        &c,
        &u,
        json!([{ "op": "Add", "path": "manager", "value": [{ "$ref": format!("{}/Users/{boss}", s.scim_url()), "value": boss }] }]),
    )
    .await;
    assert_eq!(r[ENTERPRISE]["manager"]["value"], boss.as_str(), "single-valued, unwrapped: {r}");
    assert!(!r[ENTERPRISE]["manager"].is_array());
    assert_eq!(filter_ids(&c, "/Users", &format!("{ENTERPRISE}:manager.value eq \"{boss}\"")).await, vec![id.clone()]);
    // The URN-qualified path, and removal.
    let r = patch_and_check(
        &c,
        &u,
        json!([{ "op": "Replace", "path": format!("{ENTERPRISE}:manager"), "value": [{ "value": "other" }] }]),
    )
    .await;
    assert_eq!(r[ENTERPRISE]["manager"]["value"], "other");
    let r = patch_and_check(&c, &u, json!([{ "op": "Remove", "path": format!("{ENTERPRISE}:manager") }])).await;
    assert!(r.get(ENTERPRISE).is_none_or(|e| e.get("manager").is_none()), "{r}");
}

#[tokio::test]
async fn remove_with_value_filter() {
    let s = TestServer::start().await;
    let c = s.scim();
    let mut body = user("multi");
    body["emails"] = json!([
        { "value": "w@corp.example", "type": "work", "primary": true },
        { "value": "h@home.example", "type": "home" },
        { "value": "o@other.example", "type": "other" },
    ]);
    body["phoneNumbers"] = json!([{ "value": "+1 555", "type": "work" }]);
    let id = create(&c, "/Users", &body).await;
    let u = format!("/Users/{id}");
    let r = patch_and_check(
        &c,
        &u,
        json!([{ "op": "remove", "path": "emails[type eq \"home\" or value ew \"other.example\"]" }]),
    )
    .await;
    assert_eq!(r["emails"], json!([{ "value": "w@corp.example", "type": "work", "primary": true }]));
    assert_eq!(r["phoneNumbers"][0]["value"], "+1 555");
    // A filter that matches nothing succeeds and changes nothing, not even the version.
    let r = patch(&c, &u, json!([{ "op": "remove", "path": "emails[type eq \"home\"]" }])).await;
    assert_eq!(r.body["meta"]["version"], "W/\"2\"");
    // Removing a sub-attribute of filtered elements.
    let r = patch_and_check(&c, &u, json!([{ "op": "remove", "path": "emails[type eq \"work\"].primary" }])).await;
    assert_eq!(r["emails"], json!([{ "value": "w@corp.example", "type": "work" }]));
    // Removing a whole attribute.
    let r = patch_and_check(&c, &u, json!([{ "op": "remove", "path": "phoneNumbers" }])).await;
    assert!(r.get("phoneNumbers").is_none());
}

#[tokio::test]
async fn replace_sub_attribute() {
    let s = TestServer::start().await;
    let c = s.scim();
    let id = create_user(&c, "sub").await;
    let u = format!("/Users/{id}");
    let r = patch_and_check(&c, &u, json!([{ "op": "replace", "path": "name.givenName", "value": "Given" }])).await;
    assert_eq!(r["name"], json!({ "givenName": "Given", "familyName": "sub" }));
    // Replace of a complex attribute merges its sub-attributes.
    let r = patch_and_check(&c, &u, json!([{ "op": "replace", "path": "name", "value": { "middleName": "M" } }])).await;
    assert_eq!(r["name"], json!({ "givenName": "Given", "familyName": "sub", "middleName": "M" }));
    // A sub-attribute of every element of a multi-valued attribute.
    let r = patch_and_check(&c, &u, json!([{ "op": "replace", "path": "emails.type", "value": "other" }])).await;
    assert_eq!(r["emails"][0]["type"], "other");
    // The URN-qualified form of a core attribute.
    let r = patch_and_check(
        &c,
        &u,
        json!([{ "op": "replace", "path": "urn:ietf:params:scim:schemas:core:2.0:User:name.familyName", "value": "Fam" }]),
    )
    .await;
    assert_eq!(r["name"]["familyName"], "Fam");
    // null removes.
    let r = patch_and_check(&c, &u, json!([{ "op": "replace", "path": "name.middleName", "value": null }])).await;
    assert!(r["name"].get("middleName").is_none(), "{r}");
}

#[tokio::test]
async fn add_to_multi_valued_merges() {
    let s = TestServer::start().await;
    let c = s.scim();
    let id = create_user(&c, "multi").await;
    let u = format!("/Users/{id}");
    let r = patch_and_check(
        &c,
        &u,
        json!([{ "op": "add", "path": "emails", "value": [{ "value": "second@example.com", "type": "home" }] }]),
    )
    .await;
    let emails = r["emails"].as_array().unwrap();
    assert_eq!(emails.len(), 2, "appended, not replaced: {r}");
    assert_eq!(emails[0]["value"], "multi@example.com");
    // The same value again is not duplicated.
    let r = patch_and_check(
        &c,
        &u,
        json!([{ "op": "add", "path": "emails", "value": [{ "value": "second@example.com", "type": "home" }] }]),
    )
    .await;
    assert_eq!(r["emails"].as_array().unwrap().len(), 2);
    // A new primary demotes the old one.
    let r = patch_and_check(
        &c,
        &u,
        json!([{ "op": "add", "path": "emails", "value": [{ "value": "third@example.com", "type": "other", "primary": true }] }]),
    )
    .await;
    let primaries: Vec<&Value> = r["emails"].as_array().unwrap().iter().filter(|e| e["primary"] == true).collect();
    assert_eq!(primaries.len(), 1, "{r}");
    assert_eq!(primaries[0]["value"], "third@example.com");
    // Path-less add merges multi-valued attributes too.
    let r = patch_and_check(&c, &u, json!([{ "op": "add", "value": { "phoneNumbers": [{ "value": "+1", "type": "work" }], "emails": [{ "value": "fourth@example.com" }] } }])).await;
    assert_eq!(r["emails"].as_array().unwrap().len(), 4, "{r}");
    assert_eq!(r["phoneNumbers"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn invalid_path_is_invalid_path() {
    let s = TestServer::start().await;
    let c = s.scim();
    let id = create_user(&c, "paths").await;
    let u = format!("/Users/{id}");
    for path in [
        "emails[type eq \"work\"",
        "emails[nosuch eq \"x\"].value",
        "emails..value",
        "name.givenName.first",
        "members[value eq \"x\"]",
        "title[value eq \"x\"]",
    ] {
        let r = c.patch(&u, &patch_op(json!([{ "op": "replace", "path": path, "value": "x" }]))).await;
        assert_scim_error(&r, 400, Some("invalidPath"));
    }
    assert_eq!(c.get(&u).await.body["meta"]["version"], "W/\"1\"");
    let r = c.patch(&u, &patch_op(json!([{ "op": "remove" }]))).await;
    assert_scim_error(&r, 400, Some("noTarget"));
    let r = c.patch(&u, &patch_op(json!([{ "op": "move", "path": "title", "value": "x" }]))).await;
    assert_scim_error(&r, 400, None);
    let r = c.patch(&u, &json!({ "Operations": [{ "op": "add", "path": "title", "value": "x" }] })).await;
    assert_scim_error(&r, 400, Some("invalidSyntax"));
}

#[tokio::test]
async fn read_only_attribute_is_mutability() {
    let s = TestServer::start().await;
    let c = s.scim();
    let id = create_user(&c, "ro").await;
    let u = format!("/Users/{id}");
    for (op, path) in
        [("replace", "id"), ("replace", "meta.created"), ("add", "groups"), ("remove", "meta"), ("replace", "userName")]
    {
        let value = if path == "userName" { Value::Null } else { json!("x") };
        let r = c.patch(&u, &patch_op(json!([{ "op": op, "path": path, "value": value }]))).await;
        assert_scim_error(&r, 400, Some("mutability"));
    }
    // Removing the required userName is a mutability error too.
    let r = c.patch(&u, &patch_op(json!([{ "op": "remove", "path": "userName" }]))).await;
    assert_scim_error(&r, 400, Some("mutability"));
    let got = c.get(&u).await;
    assert_eq!(got.body["userName"], "ro");
    assert_eq!(got.body["meta"]["version"], "W/\"1\"");
}

#[tokio::test]
async fn a_failing_operation_changes_nothing() {
    let s = TestServer::start().await;
    let c = s.scim();
    let id = create_user(&c, "atomic").await;
    let u = format!("/Users/{id}");
    let before = c.get(&u).await;
    let r = c
        .patch(
            &u,
            &patch_op(json!([
                { "op": "replace", "path": "title", "value": "Changed" },
                { "op": "replace", "path": "active", "value": "maybe" },
            ])),
        )
        .await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    let r = c
        .patch(
            &u,
            &patch_op(json!([
                { "op": "replace", "path": "displayName", "value": "Changed" },
                { "op": "replace", "path": "id", "value": "other" },
            ])),
        )
        .await;
    assert_scim_error(&r, 400, Some("mutability"));
    let after = c.get(&u).await;
    assert_eq!(after.body, before.body, "nothing changed");
    assert_eq!(after.header("etag"), Some("W/\"1\""));

    // Groups: a valid member removal followed by an unknown member keeps every member.
    let a = create_user(&c, "a").await;
    let g = create_group(&c, "G", &[&a, &id]).await;
    let r = c
        .patch(
            &format!("/Groups/{g}"),
            &patch_op(json!([
                { "op": "remove", "path": format!("members[value eq \"{a}\"]") },
                { "op": "add", "path": "members", "value": [{ "value": "nobody" }] },
            ])),
        )
        .await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    let got = c.get(&format!("/Groups/{g}")).await;
    assert_eq!(got.body["members"].as_array().unwrap().len(), 2, "{}", got.text);
    assert_eq!(got.body["meta"]["version"], "W/\"1\"");
}

#[tokio::test]
async fn patch_returns_200_with_the_resource() {
    let s = TestServer::start().await;
    let c = s.scim();
    let id = create_user(&c, "full").await;
    let g = create_group(&c, "G", &[&id]).await;
    let r = patch(&c, &format!("/Users/{id}"), json!([{ "op": "add", "path": "title", "value": "T" }])).await;
    assert_eq!(r.body["id"], id.as_str());
    assert_eq!(r.body["userName"], "full");
    assert_eq!(r.body["title"], "T");
    assert_eq!(r.body["meta"]["resourceType"], "User");
    assert_eq!(r.body["groups"][0]["value"], g.as_str(), "the User response shows its groups: {}", r.text);
    assert_eq!(r.header("location"), Some(format!("{}/Users/{id}", s.scim_url()).as_str()));
    let r = patch(&c, &format!("/Groups/{g}"), json!([{ "op": "replace", "path": "displayName", "value": "H" }])).await;
    assert_eq!(r.body["displayName"], "H");
    assert_eq!(r.body["members"][0]["value"], id.as_str());
    assert_eq!(r.body["members"][0]["$ref"], format!("{}/Users/{id}", s.scim_url()));
    // PATCH of a missing resource is a SCIM 404.
    let r = c.patch("/Users/missing", &patch_op(json!([{ "op": "add", "path": "title", "value": "T" }]))).await;
    assert_scim_error(&r, 404, None);
}

#[tokio::test]
async fn patch_keeps_user_name_unique() {
    let s = TestServer::start().await;
    let c = s.scim();
    create_user(&c, "taken").await;
    let id = create_user(&c, "free").await;
    let r = c
        .patch(&format!("/Users/{id}"), &patch_op(json!([{ "op": "replace", "path": "userName", "value": "TAKEN" }])))
        .await;
    assert_scim_error(&r, 409, Some("uniqueness"));
    assert_eq!(c.get(&format!("/Users/{id}")).await.body["userName"], "free");
    // Changing only the case of one's own userName is fine.
    let r = patch(&c, &format!("/Users/{id}"), json!([{ "op": "replace", "path": "userName", "value": "FREE" }])).await;
    assert_eq!(r.body["userName"], "FREE");
}
