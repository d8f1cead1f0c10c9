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

/// The PatchOp message URN.
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// The enterprise User extension URN.
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The SearchRequest message URN.
pub const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
/// The BulkRequest message URN.
pub const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

/// A PatchOp body with these operations.
pub fn patch_op(operations: Value) -> Value {
    json!({ "schemas": [PATCH_OP], "Operations": operations })
}

/// A Group body with members given by id.
pub fn group(name: &str, members: &[&str]) -> Value {
    let members: Vec<Value> = members.iter().map(|m| json!({ "value": m })).collect();
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": name,
        "members": members,
    })
}

/// Creates a resource from any body at `endpoint` and returns its id.
pub async fn create(client: &Client, endpoint: &str, body: &Value) -> String {
    let r = client.post(endpoint, body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["id"].as_str().expect("id").to_owned()
}

/// `GET endpoint?filter=...` (plus `extra` query text, e.g. `&count=5`), asserting 200.
pub async fn filtered(client: &Client, endpoint: &str, filter: &str, extra: &str) -> Response {
    let r = client.get(&format!("{endpoint}?filter={}{extra}", enc(filter))).await;
    assert_eq!(r.status, 200, "filter {filter:?}: {}", r.text);
    r
}

/// The ids matched by a filter on `endpoint`, sorted; checks that totalResults agrees.
pub async fn filter_ids(client: &Client, endpoint: &str, filter: &str) -> Vec<String> {
    let r = filtered(client, endpoint, filter, "").await;
    let mut found = ids(&r);
    assert_eq!(r.body["totalResults"], found.len(), "filter {filter:?}: {}", r.text);
    found.sort();
    found
}

/// The `value`s of a multi-valued reference attribute (`members`, `groups`), sorted.
pub fn values(attr: &Value) -> Vec<String> {
    let mut v: Vec<String> = attr
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["value"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Sends raw bytes over a fresh TCP connection to `base` (`http://host:port`) and returns the
/// status and the whole response text (headers and body), for requests the HTTP client will not
/// make: chunked bodies without Content-Length, malformed framing.
pub async fn raw_http(base: &str, request: Vec<u8>) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://").to_owned();
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
        stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
        stream.write_all(&request).expect("write");
        let mut out = Vec::new();
        // The server may answer before reading the whole body and close; read what it sent.
        let _ = stream.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, text)
    })
    .await
    .expect("raw request")
}

/// A chunked `POST` of `body` to `path` with a bearer token, without Content-Length.
pub fn chunked_post(base: &str, path: &str, token: &str, body: &[u8]) -> Vec<u8> {
    let host = base.trim_start_matches("http://");
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/scim+json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(256) {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    req
}

/// The one event recorded since the server held `before` events (asserting there is exactly one).
pub async fn the_new_event(s: &scimd_testkit::TestServer, before: usize) -> scimd_domain::events::Event {
    let mut events = s.events().await;
    assert_eq!(events.len(), before + 1, "exactly one new event, got {:#?}", events.get(before..));
    events.pop().expect("an event")
}
