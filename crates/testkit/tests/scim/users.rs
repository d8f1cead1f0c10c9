//! User CRUD over HTTP.

use scimd_testkit::TestServer;
use serde_json::json;

use crate::support::{assert_scim_error, create_user, enc, user};

#[tokio::test]
async fn create_read_replace_delete() {
    let s = TestServer::start().await;
    let c = s.scim();
    let r = c.post("/Users", &user("Alice.Smith")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/scim+json"));
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["userName"], "Alice.Smith", "userName echoed in the case it was sent");
    assert_eq!(r.body["meta"]["resourceType"], "User");
    assert_eq!(r.body["meta"]["location"], format!("{}/Users/{id}", s.scim_url()));
    assert_eq!(r.header("location"), Some(format!("{}/Users/{id}", s.scim_url()).as_str()));
    assert_eq!(r.header("etag"), r.body["meta"]["version"].as_str());

    let got = c.get(&format!("/Users/{id}")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["name"]["givenName"], "Test");
    assert_eq!(got.body["emails"][0]["value"], "Alice.Smith@example.com");

    let mut replacement = user("alice.smith");
    replacement["displayName"] = json!("Alice");
    replacement.as_object_mut().unwrap().remove("active");
    let put = c.put(&format!("/Users/{id}"), &replacement).await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.body["displayName"], "Alice");
    assert_eq!(put.body["userName"], "alice.smith");
    assert_eq!(put.body["active"], true, "a PUT without active leaves it unchanged");
    assert_ne!(put.body["meta"]["version"], got.body["meta"]["version"]);

    assert_eq!(c.delete(&format!("/Users/{id}")).await.status, 204);
    assert_scim_error(&c.get(&format!("/Users/{id}")).await, 404, None);
    assert_scim_error(&c.delete(&format!("/Users/{id}")).await, 404, None);
}

#[tokio::test]
async fn user_name_is_unique_case_insensitively() {
    let s = TestServer::start().await;
    let c = s.scim();
    create_user(&c, "Bob").await;
    let r = c.post("/Users", &user("bOB")).await;
    assert_scim_error(&r, 409, Some("uniqueness"));
    let found = c.get(&format!("/Users?filter={}", enc("userName eq \"BOB\""))).await;
    assert_eq!(found.body["totalResults"], 1);
    assert_eq!(found.body["Resources"][0]["userName"], "Bob");
}

#[tokio::test]
async fn custom_attributes_are_kept_and_password_never_returned() {
    let s = TestServer::start().await;
    let c = s.scim();
    let mut body = user("carol");
    body["company"] = json!("Acme");
    body["password"] = json!("t0p-secret");
    body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] =
        json!({ "department": "Finance", "employeeNumber": "42" });
    let r = c.post("/Users", &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap();
    let got = c.get(&format!("/Users/{id}")).await;
    assert_eq!(got.body["company"], "Acme");
    assert!(got.body.get("password").is_none());
    assert!(!got.text.contains("t0p-secret"));
    assert_eq!(got.body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"], "Finance");
    let schemas = got.body["schemas"].as_array().unwrap();
    assert!(schemas.iter().any(|s| s == "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"));
}

#[tokio::test]
async fn deactivated_users_stay_readable_and_findable() {
    let s = TestServer::start().await;
    let c = s.scim();
    let id = create_user(&c, "dave").await;
    let r = c
        .patch(
            &format!("/Users/{id}"),
            &json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{ "op": "replace", "value": { "active": false } }]
            }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["active"], false);
    assert_eq!(c.get(&format!("/Users/{id}")).await.body["active"], false);
    let found = c.get(&format!("/Users?filter={}", enc("userName eq \"dave\""))).await;
    assert_eq!(found.body["Resources"][0]["active"], false);
}

#[tokio::test]
async fn missing_user_name_is_refused_clearly() {
    let s = TestServer::start().await;
    let r = s.scim().post("/Users", &json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"] })).await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    assert!(r.body["detail"].as_str().unwrap().contains("userName"));
}
