//! Discovery (RFC 7644 §4): ServiceProviderConfig, ResourceTypes, Schemas.

use reqwest::Method;
use scimd_domain::Limits;
use scimd_testkit::TestServer;
use serde_json::{Value, json};

use crate::support::{ENTERPRISE, assert_scim_error};

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

fn attribute<'a>(schema: &'a Value, name: &str) -> &'a Value {
    schema["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == name))
        .unwrap_or_else(|| panic!("attribute {name} in {}", schema["id"]))
}

/// scimd's read-only provisioning extension of User.
const PROVISIONING: &str = "urn:scimd:params:scim:schemas:extension:provisioning:1.0:User";

#[tokio::test]
async fn service_provider_config_advertises_features_and_limits() {
    let limits = Limits {
        max_page_size: 250,
        default_page_size: 50,
        max_bulk_operations: 17,
        max_bulk_payload: 65_536,
        max_body: 100_000,
        rate: scimd_domain::rate_limit::RateLimit::UNLIMITED,
        filter: scim_proto::filter::FilterLimits::MAX,
    };
    let s = TestServer::start_with(limits).await;
    let r = s.scim().get("/ServiceProviderConfig").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/scim+json"));
    let b = &r.body;
    assert_eq!(b["schemas"], json!(["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]));
    assert_eq!(b["patch"]["supported"], true);
    assert_eq!(b["bulk"]["supported"], true);
    assert_eq!(b["bulk"]["maxOperations"], 17);
    assert_eq!(b["bulk"]["maxPayloadSize"], 65_536);
    assert_eq!(b["filter"]["supported"], true);
    assert_eq!(b["filter"]["maxResults"], 250);
    assert_eq!(b["sort"]["supported"], true);
    assert_eq!(b["etag"]["supported"], true);
    assert_eq!(b["changePassword"]["supported"], false);
    let schemes = b["authenticationSchemes"].as_array().unwrap();
    assert!(schemes.iter().any(|x| x["type"] == "oauthbearertoken"), "{}", r.text);
    assert_eq!(b["meta"]["resourceType"], "ServiceProviderConfig");
    assert_eq!(b["meta"]["location"], format!("{}/ServiceProviderConfig", s.scim_url()));
    // Readable before a token is configured (RFC 7644 §4 allows it), and the same.
    let anonymous = s.scim_with(None).get("/ServiceProviderConfig").await;
    assert_eq!(anonymous.status, 200);
    assert_eq!(anonymous.body, r.body);
}

#[tokio::test]
async fn resource_types_list_and_by_name() {
    let s = TestServer::start().await;
    let c = s.scim();
    let r = c.get("/ResourceTypes").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"]));
    assert_eq!(r.body["totalResults"], 2);
    assert_eq!(r.body["itemsPerPage"], 2);
    let list = r.body["Resources"].as_array().unwrap();
    let user = list.iter().find(|x| x["id"] == "User").expect("User");
    let group = list.iter().find(|x| x["id"] == "Group").expect("Group");
    assert_eq!(user["schemas"], json!(["urn:ietf:params:scim:schemas:core:2.0:ResourceType"]));
    assert_eq!(user["name"], "User");
    assert_eq!(user["endpoint"], "/Users");
    assert_eq!(user["schema"], USER_SCHEMA);
    // scimd's read-only provisioning extension is in /Schemas but not declared (returned on request).
    assert_eq!(user["schemaExtensions"], json!([{ "schema": ENTERPRISE, "required": false }]));
    assert_eq!(user["meta"]["location"], format!("{}/ResourceTypes/User", s.scim_url()));
    assert_eq!(user["meta"]["resourceType"], "ResourceType");
    assert_eq!(group["endpoint"], "/Groups");
    assert_eq!(group["schema"], GROUP_SCHEMA);

    let one = c.get("/ResourceTypes/User").await;
    assert_eq!(one.status, 200);
    assert_eq!(&one.body, user);
    assert_eq!(c.get("/ResourceTypes/Group").await.body, *group);
    assert_scim_error(&c.get("/ResourceTypes/Widget").await, 404, None);
}

#[tokio::test]
async fn schemas_list_and_by_urn() {
    let s = TestServer::start().await;
    let c = s.scim();
    let r = c.get("/Schemas").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["totalResults"], 4);
    let mut ids: Vec<&str> =
        r.body["Resources"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap()).collect();
    ids.sort();
    let mut expected = vec![USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE, PROVISIONING];
    expected.sort();
    assert_eq!(ids, expected);

    let user = c.get(&format!("/Schemas/{USER_SCHEMA}")).await;
    assert_eq!(user.status, 200, "{}", user.text);
    let u = &user.body;
    assert_eq!(u["schemas"], json!(["urn:ietf:params:scim:schemas:core:2.0:Schema"]));
    assert_eq!(u["id"], USER_SCHEMA);
    assert_eq!(u["name"], "User");
    assert_eq!(u["meta"]["location"], format!("{}/Schemas/{USER_SCHEMA}", s.scim_url()));
    // Every attribute carries its characteristics.
    for a in u["attributes"].as_array().unwrap() {
        for key in ["name", "type", "multiValued", "required", "mutability", "returned"] {
            assert!(a.get(key).is_some(), "{key} of {}", a["name"]);
        }
        if a["type"] == "string" {
            assert!(a["caseExact"].is_boolean() && a["uniqueness"].is_string(), "{a}");
        }
    }
    let user_name = attribute(u, "userName");
    assert_eq!(user_name["uniqueness"], "server");
    assert_eq!(user_name["caseExact"], false);
    assert_eq!(user_name["required"], true);
    assert_eq!(user_name["mutability"], "readWrite");
    let groups = attribute(u, "groups");
    assert_eq!(groups["mutability"], "readOnly");
    assert_eq!(groups["multiValued"], true);
    let password = attribute(u, "password");
    assert_eq!(password["mutability"], "writeOnly");
    assert_eq!(password["returned"], "never");
    let emails = attribute(u, "emails");
    assert_eq!(emails["type"], "complex");
    assert!(
        emails["subAttributes"].as_array().unwrap().iter().any(|x| x["name"] == "primary" && x["type"] == "boolean")
    );
    assert_eq!(attribute(u, "active")["type"], "boolean");

    let group = c.get(&format!("/Schemas/{GROUP_SCHEMA}")).await;
    let members = attribute(&group.body, "members");
    let value = members["subAttributes"].as_array().unwrap().iter().find(|x| x["name"] == "value").unwrap();
    assert_eq!(value["caseExact"], true);
    let enterprise = c.get(&format!("/Schemas/{ENTERPRISE}")).await;
    assert_eq!(enterprise.status, 200);
    assert_eq!(attribute(&enterprise.body, "department")["type"], "string");
    assert_eq!(attribute(&enterprise.body, "manager")["type"], "complex");

    // The same document in the list and by URN; and by URN in another case.
    let listed = r.body["Resources"].as_array().unwrap().iter().find(|x| x["id"] == USER_SCHEMA).unwrap();
    assert_eq!(listed, u);
    assert_eq!(c.get(&format!("/Schemas/{}", USER_SCHEMA.to_uppercase())).await.status, 200);
    assert_scim_error(&c.get("/Schemas/urn:example:nothing").await, 404, None);
}

#[tokio::test]
async fn discovery_endpoints_are_read_only() {
    let s = TestServer::start().await;
    let c = s.scim();
    let body = json!({ "schemas": [USER_SCHEMA] });
    for path in [
        "/ServiceProviderConfig",
        "/ResourceTypes",
        "/ResourceTypes/User",
        "/Schemas",
        &format!("/Schemas/{USER_SCHEMA}"),
    ] {
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            let r = c.send(method.clone(), path, Some(&body), &[]).await;
            assert_scim_error(&r, 405, None);
            assert!(r.body["detail"].as_str().unwrap().contains(method.as_str()), "{method} {path}: {}", r.text);
        }
    }
}
