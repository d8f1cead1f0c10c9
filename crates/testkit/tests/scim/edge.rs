//! The edge: media types, malformed and oversized bodies, wrong types, unknown paths and
//! methods, trailing slashes, health endpoints — and no input that makes a 500.

use reqwest::Method;
use scimd_domain::Limits;
use scimd_testkit::{Client, Response, TestServer};
use serde_json::{Value, json};

use crate::support::{
    BULK_REQUEST, SEARCH_REQUEST, assert_scim_error, chunked_post, create_user, enc, patch_op, raw_http, user,
};

const SCIM: &str = "application/scim+json";

async fn post_raw(c: &Client, path: &str, body: &str, content_type: Option<&str>) -> Response {
    let headers: Vec<(&str, &str)> = content_type.map(|ct| ("Content-Type", ct)).into_iter().collect();
    c.send_raw(Method::POST, path, body.as_bytes().to_vec(), &headers).await
}

#[tokio::test]
async fn every_response_is_scim_json() {
    let s = TestServer::start_with(Limits { max_body: 2000, ..Limits::default() }).await;
    let c = s.scim();
    let id = create_user(&c, "alice").await;
    let big = "x".repeat(3000);
    let mut responses = vec![
        c.get("/Users").await,
        c.get(&format!("/Users/{id}")).await,
        c.get("/Users/missing").await,
        c.post("/Users", &user("bob")).await,
        c.post("/Users", &user("bob")).await,
        c.put(&format!("/Users/{id}"), &user("alice")).await,
        c.patch(&format!("/Users/{id}"), &patch_op(json!([{ "op": "add", "path": "title", "value": "T" }]))).await,
        c.patch(&format!("/Users/{id}"), &patch_op(json!([{ "op": "add", "path": "id", "value": "T" }]))).await,
        c.get(&format!("/Users?filter={}", enc("userName eq"))).await,
        c.post("/.search", &json!({ "schemas": [SEARCH_REQUEST] })).await,
        c.post("/Bulk", &json!({ "schemas": [BULK_REQUEST], "Operations": [] })).await,
        c.get("/ServiceProviderConfig").await,
        c.get("/Schemas").await,
        c.get("/ResourceTypes").await,
        c.get("/Nope").await,
        c.send(Method::DELETE, "/Users", None, &[]).await,
        s.scim_with(None).get("/Users").await,
        s.scim_with(Some("bogus")).get("/Users").await,
        post_raw(&c, "/Users", "{", Some(SCIM)).await,
        post_raw(&c, "/Users", "{}", Some("text/plain")).await,
        post_raw(&c, "/Users", &format!("{{\"userName\":\"{big}\"}}"), Some(SCIM)).await,
        c.get("/Users/%FF%FE").await,
        Client::new(&format!("{}/scim", s.base), Some(&s.token)).get("/Users").await,
    ];
    responses.push(c.send(Method::GET, &format!("/Users/{id}"), None, &[("If-Match", "W/\"1\"")]).await);
    for r in &responses {
        assert_eq!(r.header("content-type"), Some(SCIM), "{} {}", r.status, r.text);
        assert!(r.body.is_object(), "a JSON object: {}", r.text);
        assert!(r.status < 500, "{}", r.text);
    }
}

#[tokio::test]
async fn accepted_request_media_types() {
    let s = TestServer::start().await;
    let c = s.scim();
    for (i, ct) in [
        Some("application/scim+json"),
        Some("application/scim+json; charset=utf-8"),
        Some("Application/SCIM+JSON;charset=UTF-8"),
        Some("application/json"),
        Some("application/json; charset=utf-8"),
        None,
    ]
    .into_iter()
    .enumerate()
    {
        let r = post_raw(&c, "/Users", &user(&format!("u{i}")).to_string(), ct).await;
        assert_eq!(r.status, 201, "{ct:?}: {}", r.text);
        assert_eq!(r.header("content-type"), Some(SCIM), "responses are SCIM whatever was sent");
    }
    // PATCH and .search without a Content-Type (Entra sends some requests without one).
    let id = create_user(&c, "patchme").await;
    let body = patch_op(json!([{ "op": "Replace", "path": "active", "value": "False" }])).to_string();
    let r = c.send_raw(Method::PATCH, &format!("/Users/{id}"), body.into_bytes(), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["active"], false);
    let r = post_raw(&c, "/Users/.search", &json!({ "schemas": [SEARCH_REQUEST] }).to_string(), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn other_media_types_are_415() {
    let s = TestServer::start().await;
    let c = s.scim();
    let body = user("alice").to_string();
    for ct in ["text/plain", "application/xml", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
    {
        let r = post_raw(&c, "/Users", &body, Some(ct)).await;
        assert_scim_error(&r, 415, None);
        assert!(r.body["detail"].as_str().unwrap().contains("application/scim+json"), "{}", r.text);
    }
    let id = create_user(&c, "bob").await;
    let r = c
        .send_raw(
            Method::PATCH,
            &format!("/Users/{id}"),
            patch_op(json!([{ "op": "add", "path": "title", "value": "T" }])).to_string().into_bytes(),
            &[("Content-Type", "text/plain")],
        )
        .await;
    assert_scim_error(&r, 415, None);
    assert_eq!(c.get("/Users").await.body["totalResults"], 1, "nothing was created");
}

#[tokio::test]
async fn invalid_json_names_line_and_column() {
    let s = TestServer::start().await;
    let c = s.scim();
    let r = post_raw(&c, "/Users", "{\n  \"userName\": \"alice\",\n  \"active\": yes\n}", Some(SCIM)).await;
    assert_scim_error(&r, 400, Some("invalidSyntax"));
    let detail = r.body["detail"].as_str().unwrap();
    assert!(detail.contains("line 3 column 13"), "{detail}");
    for body in ["{", "", "   ", "{\"userName\": \"a\",}", "nul", "\u{feff}{}", "{\"a\":1}{\"b\":2}"] {
        let r = post_raw(&c, "/Users", body, Some(SCIM)).await;
        assert_scim_error(&r, 400, Some("invalidSyntax"));
    }
    let r = c.send_raw(Method::POST, "/Users", vec![b'{', 0xff, 0xfe, b'}'], &[("Content-Type", SCIM)]).await;
    assert_scim_error(&r, 400, Some("invalidSyntax"));
}

#[tokio::test]
async fn non_object_bodies_are_400() {
    let s = TestServer::start().await;
    let c = s.scim();
    let id = create_user(&c, "alice").await;
    for body in [json!([user("bob")]), json!("userName"), json!(42), json!(null)] {
        let r = c.post("/Users", &body).await;
        assert_scim_error(&r, 400, None);
        let r = c.put(&format!("/Users/{id}"), &body).await;
        assert_scim_error(&r, 400, None);
        let r = c.patch(&format!("/Users/{id}"), &body).await;
        assert_scim_error(&r, 400, None);
        let r = c.post("/Groups", &body).await;
        assert_scim_error(&r, 400, None);
    }
    let r = c.post("/Users", &json!([user("bob")])).await;
    assert_eq!(r.body["scimType"], "invalidSyntax", "{}", r.text);
    assert_eq!(c.get("/Users").await.body["totalResults"], 1);
}

#[tokio::test]
async fn wrong_types_name_the_attribute() {
    let s = TestServer::start().await;
    let c = s.scim();
    for (attr, value) in [
        ("active", json!("maybe")),
        ("emails", json!(5)),
        ("name", json!("x")),
        ("userName", json!(42)),
        ("displayName", json!({ "a": 1 })),
        ("phoneNumbers", json!([{ "value": 1 }])),
        ("emails", json!([{ "value": "a@b.c", "primary": "often" }])),
    ] {
        let mut body = user("typed");
        body[attr] = value.clone();
        let r = c.post("/Users", &body).await;
        assert_scim_error(&r, 400, Some("invalidValue"));
        assert!(r.body["detail"].as_str().unwrap().contains(attr), "{attr} = {value}: {}", r.text);
    }
    let mut body = user("typed");
    body[ENTERPRISE_KEY] = json!({ "department": ["a", "b"] });
    let r = c.post("/Users", &body).await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    assert!(r.body["detail"].as_str().unwrap().contains("department"), "{}", r.text);
    let r = c.post("/Groups", &json!({ "displayName": "G", "members": "everyone" })).await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    assert!(r.body["detail"].as_str().unwrap().contains("members"), "{}", r.text);
    assert_eq!(c.get("/Users").await.body["totalResults"], 0);
}

const ENTERPRISE_KEY: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

#[tokio::test]
async fn too_large_bodies_are_413() {
    let s = TestServer::start_with(Limits { max_body: 1024, ..Limits::default() }).await;
    let c = s.scim();
    let mut body = user("big");
    body["title"] = json!("x".repeat(2000));
    let r = c.post("/Users", &body).await;
    assert_scim_error(&r, 413, None);
    let id = create_user(&c, "small").await;
    let r = c.put(&format!("/Users/{id}"), &body).await;
    assert_scim_error(&r, 413, None);
    let r = c
        .patch(&format!("/Users/{id}"), &patch_op(json!([{ "op": "add", "path": "title", "value": "x".repeat(2000) }])))
        .await;
    assert_scim_error(&r, 413, None);
    let r = c
        .post(
            "/Users/.search",
            &json!({ "schemas": [SEARCH_REQUEST], "filter": format!("title eq \"{}\"", "x".repeat(2000)) }),
        )
        .await;
    assert_scim_error(&r, 413, None);
    // Chunked, without a Content-Length.
    let (status, text) =
        raw_http(&s.base, chunked_post(&s.base, "/scim/v2/Users", &s.token, body.to_string().as_bytes())).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.to_ascii_lowercase().contains("content-type: application/scim+json"), "{text}");
    assert_eq!(c.get("/Users").await.body["totalResults"], 1);
    assert!(c.get(&format!("/Users/{id}")).await.body.get("title").is_none());
}

#[tokio::test]
async fn unknown_paths_are_scim_404s() {
    let s = TestServer::start().await;
    let c = s.scim();
    for path in ["/Usres", "/Users/abc/extra", "/v2/Users", "/Me", "/Groups/x/members"] {
        let r = c.get(path).await;
        assert_scim_error(&r, 404, None);
        assert!(!r.text.contains("<html"), "{}", r.text);
    }
    let root = Client::new(&s.base, Some(&s.token));
    for path in ["/scim", "/scim/Users", "/scim/v1/Users", "/scim/v2x/Users", "/scim/v3"] {
        let r = root.get(path).await;
        assert_scim_error(&r, 404, None);
        assert!(r.body["detail"].as_str().unwrap().contains("/scim/v2"), "points to the right base URL: {}", r.text);
    }
    // Outside /scim: JSON, not HTML.
    let r = root.get("/nothing-here").await;
    assert_eq!(r.status, 404);
    assert!(r.body.is_object(), "{}", r.text);
    assert!(!r.text.contains("<html"));
}

#[tokio::test]
async fn wrong_methods_are_scim_405s() {
    let s = TestServer::start().await;
    let c = s.scim();
    let id = create_user(&c, "alice").await;
    let body = user("x");
    for (method, path) in [
        (Method::DELETE, "/Users".to_owned()),
        (Method::PUT, "/Users".to_owned()),
        (Method::PATCH, "/Users".to_owned()),
        (Method::POST, format!("/Users/{id}")),
        (Method::DELETE, "/Groups".to_owned()),
        (Method::GET, "/Bulk".to_owned()),
        (Method::PUT, "/.search".to_owned()),
    ] {
        let r = c.send(method.clone(), &path, Some(&body), &[]).await;
        assert_scim_error(&r, 405, None);
        assert!(r.body["detail"].as_str().unwrap().contains(method.as_str()), "{}", r.text);
    }
    assert_eq!(c.get("/Users").await.body["totalResults"], 1);
}

#[tokio::test]
async fn trailing_slashes_work() {
    let s = TestServer::start().await;
    let c = s.scim();
    let r = c.post("/Users/", &user("alice")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let r = c.get("/Users/").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["totalResults"], 1);
    let r = c.get(&format!("/Users/?filter={}", enc("userName eq \"alice\""))).await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.text);
    assert_eq!(c.get(&format!("/Users/{id}/")).await.status, 200);
    let r = c.patch(&format!("/Users/{id}/"), &patch_op(json!([{ "op": "add", "path": "title", "value": "T" }]))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(c.get("/ServiceProviderConfig/").await.status, 200);
    // The base URL with a trailing slash and Entra's flag appended.
    let r = Client::new(&format!("{}/scim/v2/", s.base), Some(&s.token)).get("Users?aadOptscim062020").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(c.delete(&format!("/Users/{id}/")).await.status, 204);
}

#[tokio::test]
async fn health_endpoints_answer_json() {
    let s = TestServer::start().await;
    let root = Client::new(&s.base, None);
    for path in ["/healthz", "/readyz"] {
        let r = root.get(path).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.header("content-type").is_some_and(|ct| ct.starts_with("application/json")), "{:?}", r.headers);
        assert!(r.body["status"].is_string(), "{}", r.text);
    }
}

/// Hostile and odd inputs: each must get a 4xx (or a success), never a 500 or a dropped
/// connection.
#[tokio::test]
async fn no_input_gives_a_500() {
    let s = TestServer::start().await;
    let c = s.scim();
    let id = create_user(&c, "alice").await;
    let u = format!("/Users/{id}");
    let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    let deep_filter = format!("{}userName pr{}", "(".repeat(2000), ")".repeat(2000));
    let not_chain = format!("{}userName pr", "not ".repeat(500));
    let long_or = vec!["userName eq \"x\""; 300].join(" or ");
    let mut checks: Vec<Response> = Vec::new();
    for q in [
        format!("filter={}", enc(&deep_filter)),
        format!("filter={}", enc(&not_chain)),
        format!("filter={}", enc(&long_or)),
        format!("filter={}", enc("userName eq \"\\u0000\"")),
        format!("filter={}", enc("emails[value eq \"a\"].value[type eq \"b\"]")),
        format!("filter={}", enc("meta.created gt \"9999-99-99T99:99:99Z\"")),
        format!("filter={}", enc("meta.version eq \"1\"")),
        format!("filter={}", enc("members.display eq \"x\"")),
        format!("filter={}", enc("userName eq 1e999999")),
        format!("filter={}", enc("userName eq \"\u{1F600}\" and title co \"\u{0301}\"")),
        "filter=%ZZ".to_owned(),
        "filter".to_owned(),
        "filter=&filter=userName+pr".to_owned(),
        "startIndex=-9223372036854775808&count=9223372036854775807".to_owned(),
        "startIndex=18446744073709551616&count=1".to_owned(),
        "count=1.5".to_owned(),
        "sortBy=emails&sortOrder=descending".to_owned(),
        "sortBy=meta".to_owned(),
        "sortBy=urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager".to_owned(),
        "sortBy=name..x".to_owned(),
        format!("attributes={}", enc(&"a,".repeat(5000))),
        "attributes=urn:nope:x,emails[type%20eq%20%22work%22]".to_owned(),
        "excludedAttributes=,,,".to_owned(),
    ] {
        checks.push(c.get(&format!("/Users?{q}")).await);
        checks.push(c.get(&format!("/Groups?{q}")).await);
    }
    for body in [
        deep.clone(),
        format!("{{\"userName\": \"a\", \"name\": {deep}}}"),
        "{\"userName\": \"a\", \"userName\": \"b\"}".to_owned(),
        "{\"userName\": \"\\ud800\"}".to_owned(),
        "{\"userName\": \"\"}".to_owned(),
        "{\"userName\": \"   \"}".to_owned(),
        "{\"userName\": \"a\", \"emails\": [{\"value\": \"a\", \"primary\": true}, {\"value\": \"b\", \"primary\": true}]}"
            .to_owned(),
        "{\"userName\": \"a\", \"id\": {\"x\": 1}, \"meta\": 5, \"schemas\": 7}".to_owned(),
        "{\"userName\": \"a\", \"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\": 5}".to_owned(),
        "{\"userName\": \"a\", \"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager\": [[1]]}".to_owned(),
        "{\"userName\": \"a\", \"x509Certificates\": [{\"value\": \"not base64!\"}]}".to_owned(),
        "{\"userName\": \"a\", \"active\": 1e400}".to_owned(),
        "{\"userName\": \"a\", \"schemas\": [\"urn:ietf:params:scim:schemas:core:2.0:Group\"]}".to_owned(),
        format!("{{\"userName\": \"{}\"}}", "é".repeat(100_000)),
    ] {
        checks.push(post_raw(&c, "/Users", &body, Some(SCIM)).await);
        checks.push(post_raw(&c, "/Groups", &body, Some(SCIM)).await);
        checks.push(c.send_raw(Method::PUT, &u, body.clone().into_bytes(), &[]).await);
        checks.push(post_raw(&c, "/Bulk", &body, Some(SCIM)).await);
        checks.push(post_raw(&c, "/.search", &body, Some(SCIM)).await);
    }
    for ops in [
        json!([{ "op": "add", "path": "emails[type eq \"work\"].value[x eq 1]", "value": "a" }]),
        json!([{ "op": "add", "path": "members[value eq \"x\"].display", "value": "a" }]),
        json!([{ "op": "replace", "path": "emails[value co \"x\"].value", "value": "a" }]),
        json!([{ "op": "replace", "path": "name", "value": [1, 2] }]),
        json!([{ "op": "add", "value": [1, 2] }]),
        json!([{ "op": "add", "value": "string" }]),
        json!([{ "op": "add", "path": "", "value": "x" }]),
        json!([{ "op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "value": 5 }]),
        json!([{ "op": "remove", "path": "emails[type eq \"work\"]" }, { "op": "remove", "path": "emails" }]),
        json!([{ "op": "add", "path": "groups[value eq \"x\"]", "value": {} }]),
        json!([{ "op": 5, "path": 6, "value": 7 }]),
        json!([null]),
        json!("not an array"),
    ] {
        checks.push(c.patch(&u, &patch_op(ops)).await);
    }
    let bulk = |ops: Value| json!({ "schemas": [BULK_REQUEST], "Operations": ops });
    for ops in [
        json!([{ "method": "POST", "path": "/Users", "bulkId": "a", "data": "x" }]),
        json!([{ "method": "POST", "path": "/Users", "bulkId": "a", "data": { "userName": "bulkId:a" } }]),
        json!([{ "method": "PATCH", "path": "/Users/bulkId:zzz", "data": patch_op(json!([])) }]),
        json!([{ "method": "DELETE", "path": "/" }]),
        json!([{ "method": "DELETE", "path": "" }]),
        json!([{ "method": "PUT", "path": "/Users", "data": {} }]),
        json!([{ "method": "POST", "path": "/Users/x", "bulkId": "b", "data": {} }]),
        json!([{ "method": "POST", "path": "/Groups", "bulkId": "g", "data": { "displayName": "G", "members": [{ "value": "bulkId:g" }] } }]),
    ] {
        checks.push(c.post("/Bulk", &bulk(ops)).await);
    }
    for path in [
        "/Users/%00".to_owned(),
        "/Users/%FF".to_owned(),
        format!("/Users/{}", "a".repeat(5000)),
        "/Users/..%2F..%2Fadmin".to_owned(),
        "/Groups/'%20OR%201=1--".to_owned(),
        "/Schemas/%E2%82".to_owned(),
    ] {
        checks.push(c.get(&path).await);
        checks.push(c.delete(&path).await);
    }
    for (i, r) in checks.iter().enumerate() {
        assert!(r.status < 500, "check {i}: {} {}", r.status, r.text);
        assert!(r.status != 0);
        assert_eq!(r.header("content-type"), Some(SCIM), "check {i}: {}", r.text);
    }
    // The server is still there and the user intact.
    let got = c.get(&u).await;
    assert_eq!(got.status, 200);
    // Malformed HTTP framing closes cleanly too.
    let (status, text) = raw_http(
        &s.base,
        b"POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
            .to_vec(),
    )
    .await;
    assert!(status == 0 || (400..500).contains(&status), "{text}");
    assert_eq!(c.get("/Users").await.status, 200);
}

/// Without `--public-url`, links follow the request's `Host` only when it is a plain
/// `host[:port]`: a `Host` that would bend them (a path, a user, a query) gives `localhost`.
#[tokio::test]
async fn a_host_header_cannot_bend_the_links() {
    let s = TestServer::start().await;
    let c = s.scim();
    let id = crate::support::create_user(&c, "linked").await;
    let location = |r: &Response| r.body["meta"]["location"].as_str().unwrap().to_owned();
    let plain = c.send(Method::GET, &format!("/Users/{id}"), None, &[("host", "scim.example.com:8443")]).await;
    assert_eq!(location(&plain), format!("http://scim.example.com:8443/scim/v2/Users/{id}"));
    for host in ["evil.example/phish?", "user@evil.example", "evil.example#x", "a b", "évil.example"] {
        let r = c.send(Method::GET, &format!("/Users/{id}"), None, &[("host", host)]).await;
        assert_eq!(r.status, 200, "{host}: {}", r.text);
        assert_eq!(location(&r), format!("http://localhost/scim/v2/Users/{id}"), "Host {host:?}");
    }
}
