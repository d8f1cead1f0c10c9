//! `resource::Projection`: `attributes` / `excludedAttributes` (RFC 7644 §3.9) with each
//! attribute's `returned` characteristic.

use scim_proto::resource::Projection;
use scim_proto::schema::{ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER_SCHEMA};
use scim_proto::{AttrPath, ResourceKind, ScimType};
use serde_json::{Value, json};

fn stored_user() -> Value {
    json!({
        "schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
        "id": "2819c223",
        "externalId": "bjensen",
        "userName": "bjensen@example.com",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "displayName": "Babs",
        "active": true,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "company": "Acme",
        "password": "must never leave",
        ENTERPRISE_USER_SCHEMA: {"employeeNumber": "701984", "manager": {"value": "26118915"}},
        "meta": {"resourceType": "User", "created": "2010-01-23T04:56:22Z"}
    })
}

fn stored_group() -> Value {
    json!({
        "schemas": [GROUP_SCHEMA],
        "id": "e9e30dba",
        "displayName": "Tour Guides",
        "members": [{"value": "2819c223", "display": "Babs", "type": "User"}],
        "meta": {"resourceType": "Group"}
    })
}

fn project(attributes: Option<&str>, excluded: Option<&str>, kind: ResourceKind, resource: &Value) -> Value {
    Projection::parse(attributes, excluded, kind)
        .unwrap_or_else(|e| panic!("{}", e.detail))
        .apply(resource.clone(), kind)
}

#[test]
fn default_returns_all_but_never() {
    let out = Projection::all().apply(stored_user(), ResourceKind::User);
    let mut want = stored_user();
    want.as_object_mut().unwrap().remove("password");
    assert_eq!(out, want);
    // Empty parameters are the default.
    assert_eq!(project(Some(""), Some(" "), ResourceKind::User, &stored_user()), want);
}

#[test]
fn attributes_returns_listed_plus_always() {
    let out = project(Some("displayName"), None, ResourceKind::User, &stored_user());
    assert_eq!(out, json!({"schemas": [USER_SCHEMA], "id": "2819c223", "displayName": "Babs"}));
    // `schemas` names only what the response carries. userName is returned "default" in RFC
    // 7643, so it is not added unless asked for.
    let out = project(Some("userName,password"), None, ResourceKind::User, &stored_user());
    assert_eq!(out, json!({"schemas": [USER_SCHEMA], "id": "2819c223", "userName": "bjensen@example.com"}));
}

#[test]
fn attributes_with_sub_attributes() {
    let out = project(Some("name.givenName, emails.value"), None, ResourceKind::User, &stored_user());
    assert_eq!(
        out,
        json!({
            "schemas": [USER_SCHEMA],
            "id": "2819c223",
            "name": {"givenName": "Barbara"},
            "emails": [{"value": "bjensen@example.com"}, {"value": "babs@jensen.org"}]
        })
    );
}

#[test]
fn attributes_are_case_insensitive_and_may_be_urn_qualified() {
    let out = project(
        Some("USERNAME,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager,COMPANY"),
        None,
        ResourceKind::User,
        &stored_user(),
    );
    assert_eq!(
        out,
        json!({
            "schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
            "id": "2819c223",
            "userName": "bjensen@example.com",
            "company": "Acme",
            ENTERPRISE_USER_SCHEMA: {"manager": {"value": "26118915"}}
        })
    );
    // Unqualified extension names resolve too; a whole extension by its URN.
    let out = project(Some("employeeNumber"), None, ResourceKind::User, &stored_user());
    assert_eq!(out[ENTERPRISE_USER_SCHEMA], json!({"employeeNumber": "701984"}));
    let out = project(Some(ENTERPRISE_USER_SCHEMA), None, ResourceKind::User, &stored_user());
    assert_eq!(out[ENTERPRISE_USER_SCHEMA], stored_user()[ENTERPRISE_USER_SCHEMA]);
    assert!(out.get("userName").is_none());
}

#[test]
fn excluded_attributes_keep_always() {
    let out = project(None, Some("id,emails,name.familyName,meta,password"), ResourceKind::User, &stored_user());
    assert_eq!(out["id"], "2819c223");
    assert!(out.get("emails").is_none() && out.get("meta").is_none() && out.get("password").is_none());
    assert_eq!(out["name"], json!({"givenName": "Barbara"}));
    assert_eq!(out["userName"], "bjensen@example.com");
    let out = project(None, Some(ENTERPRISE_USER_SCHEMA), ResourceKind::User, &stored_user());
    assert!(out.get(ENTERPRISE_USER_SCHEMA).is_none());
    let out = project(
        None,
        Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"),
        ResourceKind::User,
        &stored_user(),
    );
    assert_eq!(out[ENTERPRISE_USER_SCHEMA], json!({"employeeNumber": "701984"}));
}

#[test]
fn entra_excludes_members() {
    let projection = Projection::parse(None, Some("members"), ResourceKind::Group).unwrap();
    assert!(!projection.includes(&AttrPath::simple("members"), ResourceKind::Group));
    assert!(projection.includes(&AttrPath::simple("displayName"), ResourceKind::Group));
    let out = projection.apply(stored_group(), ResourceKind::Group);
    assert_eq!(
        out,
        json!({"schemas": [GROUP_SCHEMA], "id": "e9e30dba", "displayName": "Tour Guides", "meta": {"resourceType": "Group"}})
    );
}

#[test]
fn includes_answers_for_partial_and_default_projections() {
    let kind = ResourceKind::Group;
    let members = AttrPath::simple("members");
    assert!(Projection::all().includes(&members, kind));
    assert!(Projection::parse(Some("members.display"), None, kind).unwrap().includes(&members, kind));
    assert!(!Projection::parse(Some("displayName"), None, kind).unwrap().includes(&members, kind));
    assert!(Projection::parse(Some("displayName"), None, kind).unwrap().includes(&AttrPath::simple("id"), kind));
    let p = Projection::parse(None, Some("members.display"), kind).unwrap();
    assert!(p.includes(&members, kind));
    assert!(!p.includes(&AttrPath::with_sub("members", "display"), kind));
    assert!(p.includes(&AttrPath::with_sub("members", "value"), kind));
    let user = ResourceKind::User;
    assert!(!Projection::all().includes(&AttrPath::simple("password"), user));
    assert!(!Projection::parse(Some("password"), None, user).unwrap().includes(&AttrPath::simple("password"), user));
}

#[test]
fn both_parameters_are_refused() {
    let e = Projection::parse(Some("userName"), Some("emails"), ResourceKind::User).unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
    assert!(e.detail.contains("either attributes or excludedAttributes"), "{}", e.detail);
}

#[test]
fn invalid_paths_are_refused_with_the_parameter_named() {
    for bad in ["user name", "name.givenName.x", "userName.x"] {
        let e = Projection::parse(Some(bad), None, ResourceKind::User).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue), "{bad}");
        assert!(e.detail.starts_with("attributes:"), "{}", e.detail);
    }
    let e = Projection::parse(None, Some(GROUP_SCHEMA), ResourceKind::User).unwrap_err();
    assert!(e.detail.starts_with("excludedAttributes:"), "{}", e.detail);
    let many = vec!["a"; 500].join(",");
    assert!(Projection::parse(Some(&many), None, ResourceKind::User).is_err());
}

#[test]
fn non_object_resources_pass_through() {
    assert_eq!(Projection::all().apply(json!([1]), ResourceKind::User), json!([1]));
}
