//! `resource::prepare` and `check_immutable`: the canonical stored form of POST/PUT bodies as
//! Okta and Entra ID send them.

use scim_proto::resource::{check_immutable, prepare};
use scim_proto::schema::{ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER_SCHEMA};
use scim_proto::{ResourceKind, ScimError, ScimType};
use serde_json::{Value, json};

fn user(body: Value) -> Value {
    prepare(ResourceKind::User, body).unwrap_or_else(|e| panic!("{}", e.detail))
}

fn group(body: Value) -> Value {
    prepare(ResourceKind::Group, body).unwrap_or_else(|e| panic!("{}", e.detail))
}

#[track_caller]
fn user_err(body: Value) -> ScimError {
    match prepare(ResourceKind::User, body) {
        Ok(v) => panic!("expected an error, got {v}"),
        Err(e) => e,
    }
}

#[track_caller]
fn group_err(body: Value) -> ScimError {
    match prepare(ResourceKind::Group, body) {
        Ok(v) => panic!("expected an error, got {v}"),
        Err(e) => e,
    }
}

#[track_caller]
fn assert_invalid_value(e: &ScimError, mentions: &[&str]) {
    assert_eq!((e.status, e.scim_type), (400, Some(ScimType::InvalidValue)), "{}", e.detail);
    for m in mentions {
        assert!(e.detail.contains(m), "detail {:?} should mention {m:?}", e.detail);
    }
}

#[test]
fn okta_create_user_body() {
    let out = user(json!({
        "schemas": [USER_SCHEMA],
        "userName": "Test.User@Okta.local",
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
        "displayName": "Test User",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "1mz050nq",
        "active": true
    }));
    assert_eq!(
        out,
        json!({
            "schemas": [USER_SCHEMA],
            "userName": "Test.User@Okta.local",
            "name": {"givenName": "Test", "familyName": "User"},
            "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
            "displayName": "Test User",
            "locale": "en-US",
            "externalId": "00ujl29u0le5T6Aj10h7",
            "active": true
        })
    );
    // The canonical form is a fixed point.
    assert_eq!(user(out.clone()), out);
}

#[test]
fn entra_create_user_body() {
    let out = user(json!({
        "schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
        "externalId": "jyoung",
        "userName": "Test_User_ab6490ee@contoso.com",
        "active": "True",
        "emails": [{"primary": true, "type": "work", "value": "Test_User_ab6490ee@contoso.com"}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
        "roles": [],
        "addresses": null,
        "phoneNumbers": null,
        "title": null,
        "department": null,
        "manager": null,
        ENTERPRISE_USER_SCHEMA: {"department": "Sales", "manager": [{"value": "boss-id", "$ref": null}]}
    }));
    assert_eq!(
        out,
        json!({
            "schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
            "externalId": "jyoung",
            "userName": "Test_User_ab6490ee@contoso.com",
            "active": true,
            "emails": [{"primary": true, "type": "work", "value": "Test_User_ab6490ee@contoso.com"}],
            "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
            ENTERPRISE_USER_SCHEMA: {"department": "Sales", "manager": {"value": "boss-id"}}
        })
    );
}

#[test]
fn entra_group_create_with_vendor_schema_urn() {
    let out = group(json!({
        "schemas": [GROUP_SCHEMA, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
        "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
        "displayName": "Group1DisplayName",
        "meta": {"resourceType": "Group"}
    }));
    assert_eq!(
        out,
        json!({
            "schemas": [GROUP_SCHEMA],
            "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
            "displayName": "Group1DisplayName"
        })
    );
}

#[test]
fn attribute_names_are_canonicalised_values_kept() {
    let out = user(json!({
        "USERNAME": "BJensen",
        "Name": {"GIVENNAME": "Barbara", "familyname": " Jensen "},
        "EMAILS": [{"VALUE": "BJ@Example.com", "Type": "Work"}]
    }));
    assert_eq!(
        out,
        json!({
            "schemas": [USER_SCHEMA],
            "userName": "BJensen",
            "name": {"givenName": "Barbara", "familyName": " Jensen "},
            "emails": [{"value": "BJ@Example.com", "type": "Work"}]
        })
    );
}

#[test]
fn urn_qualified_and_dotted_keys_move_into_place() {
    let out = user(json!({
        "userName": "u",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "42",
        "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER": {"costCenter": "cc"},
        "urn:ietf:params:scim:schemas:core:2.0:User:displayName": "Babs",
        "name.givenName": "Barbara",
        "name": {"familyName": "Jensen"},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": {"value": "boss"}
    }));
    assert_eq!(
        out,
        json!({
            "schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
            "userName": "u",
            ENTERPRISE_USER_SCHEMA: {"employeeNumber": "42", "costCenter": "cc", "manager": {"value": "boss"}},
            "displayName": "Babs",
            "name": {"givenName": "Barbara", "familyName": "Jensen"}
        })
    );
}

#[test]
fn schemas_is_recomputed() {
    // Listed but without data: not listed. Data without listing: listed.
    let out = user(json!({"schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA], "userName": "u"}));
    assert_eq!(out["schemas"], json!([USER_SCHEMA]));
    let out = user(json!({"userName": "u", ENTERPRISE_USER_SCHEMA: {"division": "d"}}));
    assert_eq!(out["schemas"], json!([USER_SCHEMA, ENTERPRISE_USER_SCHEMA]));
    // An empty extension object is unassigned.
    let out = user(json!({"userName": "u", ENTERPRISE_USER_SCHEMA: {"division": null}}));
    assert_eq!(out, json!({"schemas": [USER_SCHEMA], "userName": "u"}));
}

#[test]
fn unknown_extension_data_is_kept_and_declared() {
    let ext = "urn:example:params:scim:schemas:extension:acme:2.0:User";
    let out = user(json!({
        "schemas": [USER_SCHEMA, ext],
        "userName": "u",
        ext: {"badge": 7, "Floor": "3"},
        "company": "Acme",
        "custom.dotted": true
    }));
    assert_eq!(
        out,
        json!({
            "schemas": [USER_SCHEMA, ext],
            "userName": "u",
            ext: {"badge": 7, "Floor": "3"},
            "company": "Acme",
            "custom.dotted": true
        })
    );
    // A URN-qualified key of an unknown schema joins that schema's object.
    let out = user(json!({"userName": "u", "urn:example:acme:2.0:User:badge": 7}));
    assert_eq!(out["urn:example:acme:2.0:User"], json!({"badge": 7}));
}

#[test]
fn schemas_of_another_resource_type_are_refused() {
    let e = user_err(json!({"schemas": [GROUP_SCHEMA], "userName": "u"}));
    assert_invalid_value(&e, &[GROUP_SCHEMA, "not a schema of User"]);
    let e = group_err(json!({"displayName": "g", ENTERPRISE_USER_SCHEMA: {"department": "x"}}));
    assert_eq!(e.status, 400, "{}", e.detail);
    let e = user_err(json!({"schemas": [42], "userName": "u"}));
    assert_invalid_value(&e, &["schemas", "number 42"]);
}

#[test]
fn body_must_be_an_object() {
    for body in [json!([]), json!("x"), json!(null), json!(3)] {
        let e = prepare(ResourceKind::User, body).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax), "{}", e.detail);
    }
}

#[test]
fn entra_boolean_strings_are_converted() {
    for (sent, stored) in [("True", true), ("False", false), ("false", false), ("TRUE", true)] {
        let out = user(json!({"userName": "u", "active": sent, "emails": [{"value": "a@b", "primary": sent}]}));
        assert_eq!(out["active"], json!(stored));
        assert_eq!(out["emails"][0]["primary"], json!(stored));
    }
    let e = user_err(json!({"userName": "u", "active": "yes"}));
    assert_invalid_value(&e, &["active", "boolean", "\"yes\""]);
    let e = user_err(json!({"userName": "u", "active": 1}));
    assert_invalid_value(&e, &["active", "number 1"]);
}

#[test]
fn type_errors_name_path_expectation_and_received() {
    let e = user_err(json!({"userName": 42}));
    assert_invalid_value(&e, &["userName", "a string", "the number 42"]);
    let e = user_err(json!({"userName": "u", "name": "Barbara"}));
    assert_invalid_value(&e, &["name", "object", "givenName", "\"Barbara\""]);
    let e = user_err(json!({"userName": "u", "emails": [{"value": "a"}, {"value": {"x": 1}}]}));
    assert_invalid_value(&e, &["emails[1].value", "a string", "an object"]);
    let e = user_err(json!({"userName": "u", "x509Certificates": [{"value": "not base64!"}]}));
    assert_invalid_value(&e, &["x509Certificates[0].value", "base64"]);
    let e = user_err(json!({"userName": "u", "profileUrl": true}));
    assert_invalid_value(&e, &["profileUrl", "reference"]);
    let e = user_err(json!({"userName": "u", "displayName": ["a", "b"]}));
    assert_invalid_value(&e, &["displayName", "single-valued", "array of 2"]);
}

#[test]
fn binary_accepts_base64_with_or_without_padding() {
    for ok in ["TUlJQ0lq", "TUlJQ0k=", "TUlJQ0", "", "ab+/"] {
        user(json!({"userName": "u", "x509Certificates": [{"value": ok}]}));
    }
    for bad in ["TUlJ Q0lq", "TUlJQ0k===", "T", "TUl=Q0k=", "ab-_"] {
        user_err(json!({"userName": "u", "x509Certificates": [{"value": bad}]}));
    }
}

#[test]
fn single_and_multi_valued_shapes_are_normalised() {
    let out = user(json!({
        "userName": "u",
        "emails": {"value": "a@b"},
        "phoneNumbers": ["+1 555"],
        "roles": [],
        ENTERPRISE_USER_SCHEMA: {"manager": [{"value": "m"}], "department": ["Sales"]}
    }));
    assert_eq!(out["emails"], json!([{"value": "a@b"}]));
    assert_eq!(out["phoneNumbers"], json!([{"value": "+1 555"}]));
    assert!(out.get("roles").is_none());
    assert_eq!(out[ENTERPRISE_USER_SCHEMA], json!({"manager": {"value": "m"}, "department": "Sales"}));
    // A bare string for a complex attribute with a value sub-attribute.
    let out = user(json!({"userName": "u", ENTERPRISE_USER_SCHEMA: {"manager": "m"}}));
    assert_eq!(out[ENTERPRISE_USER_SCHEMA]["manager"], json!({"value": "m"}));
}

#[test]
fn unassigned_values_are_removed() {
    let out = user(json!({
        "userName": "u",
        "nickName": null,
        "name": {"givenName": null},
        "emails": [null, {"value": null}, {}],
        "addresses": [{"type": "work", "primary": null}],
        "company": null
    }));
    assert_eq!(out, json!({"schemas": [USER_SCHEMA], "userName": "u", "addresses": [{"type": "work"}]}));
}

#[test]
fn read_only_attributes_are_ignored_and_password_is_not_stored() {
    let out = user(json!({
        "id": "client-chosen",
        "meta": {"created": "not even a date"},
        "userName": "u",
        "groups": [{"value": "g1", "display": "G"}],
        "password": "s3cret",
        ENTERPRISE_USER_SCHEMA: {"manager": {"value": "m", "displayName": "Boss"}}
    }));
    assert_eq!(
        out,
        json!({
            "schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
            "userName": "u",
            ENTERPRISE_USER_SCHEMA: {"manager": {"value": "m"}}
        })
    );
    // The password is still type-checked, and its value never appears in the error.
    let e = user_err(json!({"userName": "u", "password": 123456}));
    assert_invalid_value(&e, &["password", "a string", "a number"]);
    assert!(!e.detail.contains("123456"));
}

#[test]
fn required_attributes() {
    for body in [json!({}), json!({"userName": ""}), json!({"userName": "   "}), json!({"userName": null})] {
        let e = user_err(body);
        assert_invalid_value(&e, &["userName is required"]);
    }
    let e = group_err(json!({"members": []}));
    assert_invalid_value(&e, &["displayName is required"]);
}

#[test]
fn at_most_one_primary() {
    let e = user_err(json!({
        "userName": "u",
        "emails": [{"value": "a", "primary": true}, {"value": "b", "primary": "True"}]
    }));
    assert_invalid_value(&e, &["emails", "primary", "at most one"]);
    user(json!({"userName": "u", "emails": [{"value": "a", "primary": true}, {"value": "b", "primary": false}]}));
}

#[test]
fn canonical_values_are_not_enforced() {
    let out = user(json!({"userName": "u", "emails": [{"value": "a", "type": "corporate"}]}));
    assert_eq!(out["emails"][0]["type"], "corporate");
}

#[test]
fn duplicate_spellings_of_one_attribute_are_refused() {
    let e = user_err(json!({"userName": "a", "USERNAME": "b"}));
    assert_invalid_value(&e, &["userName", "more than once"]);
    let e = user_err(json!({"userName": "a", "name": {"givenName": "x"}, "name.givenName": "y"}));
    assert_invalid_value(&e, &["name.givenName", "more than once"]);
}

#[test]
fn group_members_are_checked_canonicalised_and_deduplicated() {
    let out = group(json!({
        "displayName": "Engineering",
        "members": [
            {"value": "u1", "display": "Ann", "type": "user"},
            {"value": "u2", "$ref": null},
            {"value": "u1", "display": "Ann again"},
            {"value": "g9", "TYPE": "GROUP"},
            "u3"
        ]
    }));
    assert_eq!(
        out["members"],
        json!([
            {"value": "u1", "display": "Ann", "type": "User"},
            {"value": "u2"},
            {"value": "g9", "type": "Group"},
            {"value": "u3"}
        ])
    );
    let e = group_err(json!({"displayName": "g", "members": [{"display": "no value"}]}));
    assert_invalid_value(&e, &["members[0].value is required"]);
    let e = group_err(json!({"displayName": "g", "members": [{"value": 12}]}));
    assert_invalid_value(&e, &["members[0].value", "a string", "number 12"]);
    let e = group_err(json!({"displayName": "g", "members": [{"value": "d", "type": "Device"}]}));
    assert_invalid_value(&e, &["members[0].type", "\"User\" or \"Group\"", "\"Device\""]);
}

#[test]
fn okta_put_echoes_read_only_attributes() {
    // Okta PUTs the whole object it fetched, id, meta and groups included.
    let out = user(json!({
        "schemas": [USER_SCHEMA],
        "id": "23a35c27-23d3-4c03-b4c5-6443c09e7173",
        "userName": "test.user@okta.local",
        "name": {"givenName": "Another", "familyName": "User"},
        "active": true,
        "groups": [],
        "meta": {"resourceType": "User", "created": "2024-01-01T00:00:00Z", "lastModified": "2024-01-01T00:00:00Z"}
    }));
    assert!(out.get("id").is_none() && out.get("meta").is_none());
}

#[test]
fn immutable_checks_compare_what_the_schema_marks_immutable() {
    // The built-in schemas mark no top-level attribute immutable (members' sub-attributes are,
    // but elements are compared by identity), so replacements pass.
    let old = group(json!({"displayName": "a", "members": [{"value": "u1", "display": "A"}]}));
    let new = group(json!({"displayName": "b", "members": [{"value": "u1", "display": "B"}]}));
    check_immutable(ResourceKind::Group, &old, &new).unwrap();
    check_immutable(ResourceKind::User, &json!({"userName": "a"}), &json!({})).unwrap();
}

#[test]
fn hostile_inputs_do_not_panic() {
    let long = "x".repeat(100_000);
    let bodies = [
        json!({long.clone(): 1, "userName": "u"}),
        json!({"userName": long.clone()}),
        json!({"userName": "u", "emails": [[[]]]}),
        json!({"userName": "u", "name": [[{"givenName": 1}]]}),
        json!({"userName": "u", "urn:": 1, "urn:x": {}, ":": 2, "": 3, "a..b": 4, "$ref": 5}),
        json!({"userName": "u", ENTERPRISE_USER_SCHEMA: [1, 2]}),
        json!({"userName": "u", ENTERPRISE_USER_SCHEMA: {"manager": {"value": ["a", "b"]}}}),
    ];
    for body in bodies {
        let _ = prepare(ResourceKind::User, body.clone());
        let _ = prepare(ResourceKind::Group, body);
    }
    // Long values are kept as long as the resource stays within MAX_RESOURCE_BYTES.
    let fits = "x".repeat(60_000);
    assert_eq!(user(json!({"userName": fits.clone()}))["userName"], json!(fits));
    assert_invalid_value(&user_err(json!({"userName": long})), &["65536", "MAX_RESOURCE_BYTES"]);
}
