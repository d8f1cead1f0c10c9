//! PATCH as Okta and Entra ID send it (idp-behaviour.md A.5, A.6, B.2, B.3, D.1–D.7), plus the
//! RFC 7644 §3.5.2 rules they rely on.

use scim_proto::patch::{MAX_OPERATIONS, PatchOpKind, PatchRequest};
use scim_proto::resource::prepare;
use scim_proto::schema::{ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, PATCH_OP_SCHEMA, USER_SCHEMA};
use scim_proto::{ResourceKind, ScimError, ScimType};
use serde_json::{Value, json};

const USER_ID: &str = "2819c223-7f76-453a-919d-413861904646";
const GROUP_ID: &str = "e9e30dba-f08f-4109-8486-d5c6a331660a";

/// A stored User: `prepare`'s output plus what the server adds.
fn stored_user() -> Value {
    let mut user = prepare(
        ResourceKind::User,
        json!({
            "schemas": [USER_SCHEMA],
            "userName": "bjensen@example.com",
            "externalId": "bjensen",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "displayName": "Babs Jensen",
            "active": true,
            "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}]
        }),
    )
    .unwrap();
    let map = user.as_object_mut().unwrap();
    map.insert("id".into(), json!(USER_ID));
    map.insert("meta".into(), json!({"resourceType": "User", "version": "W/\"1\""}));
    user
}

fn stored_group(members: &[&str]) -> Value {
    let members: Vec<Value> = members.iter().map(|m| json!({"value": m, "display": format!("user {m}")})).collect();
    let mut group = prepare(ResourceKind::Group, json!({"displayName": "Tour Guides", "members": members})).unwrap();
    group.as_object_mut().unwrap().insert("id".into(), json!(GROUP_ID));
    group
}

fn body(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops})
}

#[track_caller]
fn patch(kind: ResourceKind, resource: &Value, ops: Value) -> Value {
    let request = PatchRequest::parse(body(ops)).unwrap_or_else(|e| panic!("parse: {}", e.detail));
    let mut patched = resource.clone();
    request.apply(&mut patched, kind).unwrap_or_else(|e| panic!("apply: {}", e.detail));
    patched
}

#[track_caller]
fn patch_user(ops: Value) -> Value {
    patch(ResourceKind::User, &stored_user(), ops)
}

/// Applies, expects an error, and checks the resource was left untouched.
#[track_caller]
fn patch_err(kind: ResourceKind, resource: &Value, ops: Value) -> ScimError {
    let request = PatchRequest::parse(body(ops)).unwrap_or_else(|e| panic!("parse: {}", e.detail));
    let mut patched = resource.clone();
    let e = match request.apply(&mut patched, kind) {
        Ok(()) => panic!("expected an error, got {patched}"),
        Err(e) => e,
    };
    assert_eq!(&patched, resource, "a failed PATCH must leave the resource unchanged");
    e
}

#[track_caller]
fn parse_err(body: Value) -> ScimError {
    match PatchRequest::parse(body) {
        Ok(r) => panic!("expected a parse error, got {r:?}"),
        Err(e) => e,
    }
}

#[track_caller]
fn assert_error(e: &ScimError, scim_type: ScimType, mentions: &[&str]) {
    assert_eq!((e.status, e.scim_type), (400, Some(scim_type)), "{}", e.detail);
    for m in mentions {
        assert!(e.detail.contains(m), "detail {:?} should mention {m:?}", e.detail);
    }
}

// ------------------------------------------------------------------------------------------
// Okta
// ------------------------------------------------------------------------------------------

#[test]
fn okta_deactivate_pathless() {
    let out = patch_user(json!([{"op": "replace", "value": {"active": false}}]));
    assert_eq!(out["active"], false);
    let out = patch(ResourceKind::User, &out, json!([{"op": "replace", "value": {"active": true}}]));
    assert_eq!(out, stored_user());
}

#[test]
fn okta_group_rename_with_id() {
    let group = stored_group(&["u1"]);
    let out = patch(
        ResourceKind::Group,
        &group,
        json!([{"op": "replace", "value": {"id": GROUP_ID, "displayName": "Tour Guides 2"}}]),
    );
    assert_eq!(out["displayName"], "Tour Guides 2");
    assert_eq!(out["id"], GROUP_ID);
    assert_eq!(out["members"], group["members"]);
    // Another resource's id is a client bug, not something to ignore.
    let e = patch_err(
        ResourceKind::Group,
        &group,
        json!([{"op": "replace", "value": {"id": "someone-else", "displayName": "x"}}]),
    );
    assert_error(&e, ScimType::Mutability, &["id is readOnly", "someone-else", GROUP_ID, "Operations[0]"]);
}

#[test]
fn okta_mixed_member_ops() {
    let group = stored_group(&["89bb1940", "u2"]);
    let out = patch(
        ResourceKind::Group,
        &group,
        json!([
            {"op": "remove", "path": "members[value eq \"89bb1940\"]"},
            {"op": "add", "path": "members", "value": [{"value": "23a35c27", "display": "test.user@okta.local"}]}
        ]),
    );
    assert_eq!(
        out["members"],
        json!([{"value": "u2", "display": "user u2"}, {"value": "23a35c27", "display": "test.user@okta.local"}])
    );
}

#[test]
fn okta_full_member_push_with_replace() {
    let group = stored_group(&["a", "b"]);
    let out = patch(
        ResourceKind::Group,
        &group,
        json!([{"op": "replace", "path": "members", "value": [{"value": "c"}, {"value": "c"}, {"value": "d"}]}]),
    );
    assert_eq!(out["members"], json!([{"value": "c"}, {"value": "d"}]));
    let out = patch(ResourceKind::Group, &group, json!([{"op": "replace", "path": "members", "value": []}]));
    assert!(out.get("members").is_none());
}

#[test]
fn okta_password_sync_is_accepted_and_not_stored() {
    let out = patch_user(json!([{"op": "replace", "value": {"password": "n3w-secret"}}]));
    assert_eq!(out, stored_user());
    let out = patch_user(json!([{"op": "replace", "path": "password", "value": "n3w-secret"}]));
    assert_eq!(out, stored_user());
}

// ------------------------------------------------------------------------------------------
// Entra ID
// ------------------------------------------------------------------------------------------

#[test]
fn entra_capitalised_ops() {
    let out = patch_user(json!([
        {"Op": "Replace", "Path": "displayName", "Value": "Barbara J"},
        {"op": "Add", "path": "nickName", "value": "Babs"},
        {"op": "REMOVE", "path": "externalId"}
    ]));
    assert_eq!(out["displayName"], "Barbara J");
    assert_eq!(out["nickName"], "Babs");
    assert!(out.get("externalId").is_none());
    let request = PatchRequest::parse(
        json!({"schemas": [PATCH_OP_SCHEMA], "operations": [{"op": "Add", "path": "title", "value": "x"}]}),
    )
    .unwrap();
    assert_eq!(request.operations()[0].op, PatchOpKind::Add);
}

#[test]
fn entra_boolean_strings() {
    for (sent, want) in [("False", false), ("false", false), ("True", true)] {
        let out = patch_user(json!([{"op": "Replace", "path": "active", "value": sent}]));
        assert_eq!(out["active"], want, "{sent}");
    }
    // Deprovisioning has also been seen as an Add.
    let out = patch_user(json!([{"op": "Add", "path": "active", "value": "False"}]));
    assert_eq!(out["active"], false);
    let e =
        patch_err(ResourceKind::User, &stored_user(), json!([{"op": "Replace", "path": "active", "value": "nope"}]));
    assert_error(&e, ScimType::InvalidValue, &["active", "boolean", "\"nope\""]);
}

#[test]
fn entra_dotted_and_urn_keys_pathless() {
    let out = patch_user(json!([
        {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "babs@example.com"},
        {"op": "replace", "value": {
            "displayName": "Babs",
            "name.givenName": "Barbara J",
            "name.familyName": "Jensen-Smith",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "701984",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": "boss-id",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Tours"
        }},
        {"op": "add", "value": {
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": {"$ref": "../Users/boss-id"}
        }}
    ]));
    assert_eq!(out["emails"], json!([{"value": "babs@example.com", "type": "work", "primary": true}]));
    assert_eq!(out["displayName"], "Babs");
    assert_eq!(out["name"], json!({"givenName": "Barbara J", "familyName": "Jensen-Smith"}));
    assert_eq!(
        out[ENTERPRISE_USER_SCHEMA],
        json!({"employeeNumber": "701984", "manager": {"value": "boss-id", "$ref": "../Users/boss-id"}, "department": "Tours"})
    );
    assert_eq!(out["schemas"], json!([USER_SCHEMA, ENTERPRISE_USER_SCHEMA]));
}

#[test]
fn entra_default_dialect_one_replace_per_path() {
    let out = patch_user(json!([
        {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "new@example.com"},
        {"op": "Replace", "path": "name.givenName", "value": "B"},
        {"op": "Replace", "path": "externalId", "value": "bj2"},
        {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "7"},
        {"op": "Replace", "path": "userName", "value": "New.Name@Example.com"}
    ]));
    assert_eq!(out["emails"][0]["value"], "new@example.com");
    assert_eq!(out["name"]["givenName"], "B");
    assert_eq!(out["externalId"], "bj2");
    assert_eq!(out[ENTERPRISE_USER_SCHEMA]["employeeNumber"], "7");
    assert_eq!(out["userName"], "New.Name@Example.com");
}

#[test]
fn entra_pathless_extension_object() {
    let out = patch_user(json!([{"op": "add", "value": {
        ENTERPRISE_USER_SCHEMA: {"department": "Tour Operations", "Manager": {"value": "m1"}}
    }}]));
    assert_eq!(out[ENTERPRISE_USER_SCHEMA], json!({"department": "Tour Operations", "manager": {"value": "m1"}}));
    // The extension URN as the path.
    let out = patch(
        ResourceKind::User,
        &out,
        json!([{"op": "replace", "path": ENTERPRISE_USER_SCHEMA, "value": {"department": "Sales"}}]),
    );
    assert_eq!(out[ENTERPRISE_USER_SCHEMA], json!({"department": "Sales", "manager": {"value": "m1"}}));
    let out = patch(ResourceKind::User, &out, json!([{"op": "remove", "path": ENTERPRISE_USER_SCHEMA}]));
    assert!(out.get(ENTERPRISE_USER_SCHEMA).is_none());
    assert_eq!(out["schemas"], json!([USER_SCHEMA]));
}

#[test]
fn entra_manager_as_array_and_removal() {
    let out =
        patch_user(json!([{"op": "Add", "path": "manager", "value": [{"$ref": "https://x/Users/m1", "value": "m1"}]}]));
    assert_eq!(out[ENTERPRISE_USER_SCHEMA]["manager"], json!({"$ref": "https://x/Users/m1", "value": "m1"}));
    // A null $ref clears the stale one when the manager changes.
    let out = patch(
        ResourceKind::User,
        &out,
        json!([{"op": "Replace", "path": "manager", "value": [{"$ref": null, "value": "m2"}]}]),
    );
    assert_eq!(out[ENTERPRISE_USER_SCHEMA]["manager"], json!({"value": "m2"}));
    let out = patch(
        ResourceKind::User,
        &out,
        json!([{"op": "Remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": [{"value": "m2"}]}]),
    );
    assert!(out.get(ENTERPRISE_USER_SCHEMA).is_none());
}

#[test]
fn entra_add_filtered_path_creates_element() {
    let mut user = stored_user();
    user.as_object_mut().unwrap().remove("emails");
    let out = patch(
        ResourceKind::User,
        &user,
        json!([{"op": "Add", "path": "emails[type eq \"work\"].value", "value": "bjensen@example.com"}]),
    );
    assert_eq!(out["emails"], json!([{"type": "work", "value": "bjensen@example.com"}]));
    // Replace creates too, next to non-matching values.
    let out = patch(
        ResourceKind::User,
        &out,
        json!([{"op": "Replace", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0100"}]),
    );
    assert_eq!(out["phoneNumbers"], json!([{"type": "mobile", "value": "+1 555 0100"}]));
    // A filter that describes no value cannot create one.
    let e = patch_err(
        ResourceKind::User,
        &out,
        json!([{"op": "Replace", "path": "emails[value co \"nothing\"].type", "value": "home"}]),
    );
    assert_error(&e, ScimType::NoTarget, &["emails", "value co \"nothing\""]);
}

#[test]
fn entra_multiple_subattribute_adds_merge() {
    let out = patch_user(json!([
        {"op": "Add", "path": "addresses[type eq \"work\"].formatted", "value": "1 Main St, Springfield"},
        {"op": "Add", "path": "addresses[type eq \"work\"].locality", "value": "Springfield"},
        {"op": "Add", "path": "addresses[type eq \"work\"].region", "value": "IL"},
        {"op": "Add", "path": "addresses[type eq \"home\"].locality", "value": "Shelbyville"}
    ]));
    assert_eq!(
        out["addresses"],
        json!([
            {"type": "work", "formatted": "1 Main St, Springfield", "locality": "Springfield", "region": "IL"},
            {"type": "home", "locality": "Shelbyville"}
        ])
    );
}

#[test]
fn entra_remove_members_value_array() {
    let group = stored_group(&["u1", "u2", "u3"]);
    let out = patch(
        ResourceKind::Group,
        &group,
        json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": "u1"}, {"value": "u3"}]}]),
    );
    assert_eq!(out["members"], json!([{"value": "u2", "display": "user u2"}]));
    // Removing a member that is not there changes nothing and succeeds.
    let again =
        patch(ResourceKind::Group, &out, json!([{"op": "Remove", "path": "members", "value": [{"value": "u1"}]}]));
    assert_eq!(again, out);
    // Without value, all members go.
    let out = patch(ResourceKind::Group, &group, json!([{"op": "Remove", "path": "members"}]));
    assert!(out.get("members").is_none());
    assert_eq!(out["displayName"], "Tour Guides");
}

#[test]
fn entra_add_members_skips_existing() {
    let group = stored_group(&["u1"]);
    let out = patch(
        ResourceKind::Group,
        &group,
        json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": "u1"}, {"$ref": null, "value": "u2"}]}]),
    );
    assert_eq!(out["members"], json!([{"value": "u1", "display": "user u1"}, {"value": "u2"}]));
    // The aadOptscim062020 form of removal.
    let out = patch(ResourceKind::Group, &out, json!([{"op": "remove", "path": "members[value eq \"u2\"]"}]));
    assert_eq!(out["members"], json!([{"value": "u1", "display": "user u1"}]));
}

#[test]
fn entra_group_rename_and_external_id() {
    let group = stored_group(&[]);
    let out = patch(
        ResourceKind::Group,
        &group,
        json!([
            {"op": "Replace", "path": "displayName", "value": "Renamed"},
            {"op": "Replace", "path": "externalId", "value": "8aa1a0c0"}
        ]),
    );
    assert_eq!(out["displayName"], "Renamed");
    assert_eq!(out["externalId"], "8aa1a0c0");
}

// ------------------------------------------------------------------------------------------
// RFC 7644 §3.5.2 rules
// ------------------------------------------------------------------------------------------

#[test]
fn add_multi_valued_appends_and_skips_duplicates() {
    let out = patch_user(json!([{"op": "add", "path": "emails", "value": [
        {"value": "bjensen@example.com", "type": "work", "primary": true},
        {"value": "babs@jensen.org", "type": "home"}
    ]}]));
    assert_eq!(
        out["emails"],
        json!([
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ])
    );
}

#[test]
fn setting_primary_demotes_the_previous_primary() {
    let out = patch_user(
        json!([{"op": "add", "path": "emails", "value": [{"value": "new@x", "type": "home", "primary": true}]}]),
    );
    assert_eq!(
        out["emails"],
        json!([
            {"value": "bjensen@example.com", "type": "work", "primary": false},
            {"value": "new@x", "type": "home", "primary": true}
        ])
    );
    let out = patch(
        ResourceKind::User,
        &out,
        json!([{"op": "replace", "path": "emails[type eq \"work\"].primary", "value": "True"}]),
    );
    assert_eq!(out["emails"][0]["primary"], true);
    assert_eq!(out["emails"][1]["primary"], false);
    // Two primaries in one value are the client's error.
    let e = patch_err(
        ResourceKind::User,
        &stored_user(),
        json!([{"op": "replace", "path": "emails", "value": [{"value": "a", "primary": true}, {"value": "b", "primary": true}]}]),
    );
    assert_error(&e, ScimType::InvalidValue, &["primary", "at most one"]);
}

#[test]
fn replace_of_complex_merges_sub_attributes() {
    let out =
        patch_user(json!([{"op": "replace", "path": "name", "value": {"familyName": "Smith", "middleName": null}}]));
    assert_eq!(out["name"], json!({"givenName": "Barbara", "familyName": "Smith"}));
    let out = patch_user(json!([{"op": "replace", "value": {"name": {"FAMILYNAME": "Smith"}}}]));
    assert_eq!(out["name"], json!({"givenName": "Barbara", "familyName": "Smith"}));
}

#[test]
fn sub_attribute_without_filter_applies_to_every_value() {
    let user = patch_user(json!([{"op": "add", "path": "emails", "value": [{"value": "h@x", "type": "home"}]}]));
    let out = patch(ResourceKind::User, &user, json!([{"op": "replace", "path": "emails.display", "value": "Mail"}]));
    assert!(out["emails"].as_array().unwrap().iter().all(|e| e["display"] == "Mail"));
    let out = patch(ResourceKind::User, &out, json!([{"op": "remove", "path": "emails.display"}]));
    assert_eq!(out["emails"], user["emails"]);
}

#[test]
fn replace_filtered_value_keeps_filter_attributes() {
    let out = patch_user(json!([{"op": "replace", "path": "emails[type eq \"work\"]", "value": {"value": "w@x"}}]));
    assert_eq!(out["emails"], json!([{"type": "work", "value": "w@x"}]));
    let out = patch_user(json!([{"op": "add", "path": "emails[type eq \"work\"]", "value": {"display": "Work"}}]));
    assert_eq!(
        out["emails"],
        json!([{"value": "bjensen@example.com", "type": "work", "primary": true, "display": "Work"}])
    );
}

#[test]
fn remove_with_filter() {
    let user = patch_user(json!([{"op": "add", "path": "emails", "value": [{"value": "h@x", "type": "home"}]}]));
    let out = patch(ResourceKind::User, &user, json!([{"op": "remove", "path": "emails[type eq \"HOME\"]"}]));
    assert_eq!(out["emails"], stored_user()["emails"]);
    // No match: nothing to do, success.
    let out2 = patch(ResourceKind::User, &out, json!([{"op": "remove", "path": "emails[type eq \"other\"]"}]));
    assert_eq!(out2, out);
    let out = patch(ResourceKind::User, &user, json!([{"op": "remove", "path": "emails[type eq \"home\"].type"}]));
    assert_eq!(out["emails"][1], json!({"value": "h@x"}));
    // Filters compare with the attribute's caseExact: member values are ids.
    let group = stored_group(&["AbC"]);
    let out = patch(ResourceKind::Group, &group, json!([{"op": "remove", "path": "members[value eq \"abc\"]"}]));
    assert_eq!(out, group);
}

#[test]
fn null_value_removes() {
    let out = patch_user(json!([{"op": "replace", "path": "displayName", "value": null}]));
    assert!(out.get("displayName").is_none());
    let out = patch_user(json!([{"op": "replace", "value": {"displayName": null, "name": null}}]));
    assert!(out.get("displayName").is_none() && out.get("name").is_none());
}

#[test]
fn undefined_attributes_are_patched_as_json() {
    let out = patch_user(json!([
        {"op": "add", "path": "company", "value": "Acme"},
        {"op": "add", "value": {"urn:example:acme:2.0:User:badge": 7}},
        {"op": "add", "path": "urn:example:acme:2.0:User:floor", "value": 3}
    ]));
    assert_eq!(out["company"], "Acme");
    assert_eq!(out["urn:example:acme:2.0:User"], json!({"badge": 7, "floor": 3}));
    let out = patch(
        ResourceKind::User,
        &out,
        json!([
            {"op": "remove", "path": "COMPANY"},
            {"op": "remove", "path": "urn:example:acme:2.0:User:badge"},
            {"op": "remove", "path": "urn:example:acme:2.0:User:floor"}
        ]),
    );
    assert_eq!(out, stored_user());
    let e = patch_err(
        ResourceKind::User,
        &stored_user(),
        json!([{"op": "add", "path": "company[type eq \"x\"].value", "value": "y"}]),
    );
    assert_error(&e, ScimType::InvalidPath, &["company"]);
}

#[test]
fn read_only_targets_are_refused() {
    for path in ["id", "meta", "meta.lastModified", "groups", "manager.displayName"] {
        let e = patch_err(ResourceKind::User, &stored_user(), json!([{"op": "replace", "path": path, "value": "x"}]));
        assert_error(&e, ScimType::Mutability, &["readOnly"]);
    }
    let e = patch_err(ResourceKind::User, &stored_user(), json!([{"op": "replace", "path": "schemas", "value": []}]));
    assert_error(&e, ScimType::Mutability, &["schemas"]);
}

#[test]
fn read_only_keys_in_pathless_values_are_ignored() {
    let out = patch_user(json!([{"op": "replace", "value": {
        "schemas": [USER_SCHEMA],
        "id": USER_ID,
        "meta": {"version": "W/\"stale\""},
        "groups": [{"value": "g1"}],
        "displayName": "B"
    }}]));
    assert_eq!(out["displayName"], "B");
    assert_eq!(out["meta"], stored_user()["meta"]);
    assert!(out.get("groups").is_none());
    let e =
        patch_err(ResourceKind::User, &stored_user(), json!([{"op": "replace", "value": {"schemas": [GROUP_SCHEMA]}}]));
    assert_error(&e, ScimType::InvalidValue, &[GROUP_SCHEMA]);
}

#[test]
fn required_attributes_cannot_be_removed() {
    let e = patch_err(ResourceKind::User, &stored_user(), json!([{"op": "remove", "path": "userName"}]));
    assert_error(&e, ScimType::Mutability, &["userName is required"]);
    let e = patch_err(ResourceKind::User, &stored_user(), json!([{"op": "replace", "path": "userName", "value": ""}]));
    assert_error(&e, ScimType::InvalidValue, &["userName is required", "the patched User is invalid"]);
    let e =
        patch_err(ResourceKind::Group, &stored_group(&[]), json!([{"op": "replace", "value": {"displayName": null}}]));
    assert_error(&e, ScimType::InvalidValue, &["displayName is required"]);
}

#[test]
fn operations_are_all_or_nothing() {
    let e = patch_err(
        ResourceKind::User,
        &stored_user(),
        json!([
            {"op": "replace", "path": "displayName", "value": "changed"},
            {"op": "replace", "path": "active", "value": "maybe"}
        ]),
    );
    assert_error(&e, ScimType::InvalidValue, &["Operations[1] (replace active)"]);
}

#[test]
fn invalid_paths() {
    for (path, mentions) in [
        ("name.givenName.x", "not a valid"),
        ("emails[type eq]", "path"),
        ("userName.sub", "no sub-attributes"),
        ("emails[nosuch eq \"x\"].value", "nosuch"),
        ("active[value eq true]", "active"),
        ("urn:ietf:params:scim:schemas:core:2.0:Group:displayName", "not a schema of User"),
    ] {
        let e = match PatchRequest::parse(body(json!([{"op": "replace", "path": path, "value": "x"}]))) {
            Err(e) => e,
            Ok(request) => {
                let mut user = stored_user();
                let e = request.apply(&mut user, ResourceKind::User).expect_err(path);
                assert_eq!(user, stored_user());
                e
            }
        };
        assert_error(&e, ScimType::InvalidPath, &[mentions]);
    }
}

#[test]
fn parse_errors() {
    let e = parse_err(json!({"Operations": [{"op": "add", "path": "title", "value": "x"}]}));
    assert_error(&e, ScimType::InvalidSyntax, &[PATCH_OP_SCHEMA]);
    let e = parse_err(json!({"schemas": [PATCH_OP_SCHEMA], "Operations": []}));
    assert_error(&e, ScimType::InvalidValue, &["at least one"]);
    let e = parse_err(json!({"schemas": [PATCH_OP_SCHEMA]}));
    assert_error(&e, ScimType::InvalidSyntax, &["Operations"]);
    let e = parse_err(body(json!([{"op": "move", "path": "title"}])));
    assert_error(&e, ScimType::InvalidSyntax, &["Operations[0].op", "\"move\""]);
    let e = parse_err(body(json!([{"op": "remove"}])));
    assert_error(&e, ScimType::NoTarget, &["remove without a path"]);
    let e = parse_err(body(json!([{"op": "add", "path": "title"}])));
    assert_error(&e, ScimType::InvalidValue, &["no value"]);
    let e = parse_err(body(json!([{"op": "replace", "value": false}])));
    assert_error(&e, ScimType::InvalidValue, &["object"]);
    let e = parse_err(body(json!([{"op": "add", "path": 5, "value": 1}])));
    assert_error(&e, ScimType::InvalidPath, &["path must be a string"]);
    let e = parse_err(json!("not an object"));
    assert_error(&e, ScimType::InvalidSyntax, &["JSON object"]);
    let too_many: Vec<Value> =
        (0..=MAX_OPERATIONS).map(|_| json!({"op": "add", "path": "title", "value": "x"})).collect();
    let e = parse_err(body(Value::Array(too_many)));
    assert_error(&e, ScimType::InvalidValue, &["limit"]);
    // An empty path is a path-less operation.
    let r = PatchRequest::parse(body(json!([{"op": "replace", "path": "", "value": {"active": false}}]))).unwrap();
    assert!(r.operations()[0].path.is_none());
}

#[test]
fn many_operations_on_large_member_lists_stay_correct() {
    let ids: Vec<String> = (0..2000).map(|i| format!("u{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let group = stored_group(&refs);
    let ops: Vec<Value> =
        (0..500).map(|i| json!({"op": "remove", "path": format!("members[value eq \"u{}\"]", i * 2)})).collect();
    let out = patch(ResourceKind::Group, &group, Value::Array(ops));
    assert_eq!(out["members"].as_array().unwrap().len(), 1500);
}
