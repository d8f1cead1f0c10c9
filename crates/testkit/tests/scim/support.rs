//! Helpers shared by the integration tests.

use scimd_testkit::{Client, Response};
use serde_json::{Value, json};

/// A core User body with a work email.
pub fn user(user_name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": { "givenName": "Test", "familyName": user_name },
        "emails": [{ "value": format!("{user_name}@example.com"), "type": "work", "primary": true }],
        "active": true,
    })
}

/// Creates a user and returns its id.
pub async fn create_user(client: &Client, user_name: &str) -> String {
    let r = client.post("/Users", &user(user_name)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["id"].as_str().expect("id").to_owned()
}

/// Creates a group with members and returns its id.
pub async fn create_group(client: &Client, name: &str, members: &[&str]) -> String {
    let members: Vec<Value> = members.iter().map(|m| json!({ "value": m })).collect();
    let r = client
        .post(
            "/Groups",
            &json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": name,
                "members": members,
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["id"].as_str().expect("id").to_owned()
}

/// Asserts that a response is an RFC 7644 §3.12 error with this status (and scimType, if given).
pub fn assert_scim_error(r: &Response, status: u16, scim_type: Option<&str>) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/scim+json"), "{}", r.text);
    assert_eq!(r.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error", "{}", r.text);
    assert_eq!(r.body["status"], status.to_string(), "status must be a string: {}", r.text);
    assert!(r.body["detail"].as_str().is_some_and(|d| d.len() > 10), "an actionable detail: {}", r.text);
    if let Some(t) = scim_type {
        assert_eq!(r.body["scimType"], t, "{}", r.text);
    }
}

/// The ids of a ListResponse, in order.
pub fn ids(r: &Response) -> Vec<String> {
    r.body["Resources"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["id"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// URL-encodes a query value.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
