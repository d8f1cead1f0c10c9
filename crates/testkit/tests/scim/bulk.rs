//! `POST /Bulk` (RFC 7644 §3.7): bulkId references, failOnErrors, limits, per-operation errors.

use scimd_domain::Limits;
use scimd_testkit::{Client, Response, TestServer};
use serde_json::{Value, json};

use crate::support::{BULK_REQUEST, assert_scim_error, chunked_post, create_user, patch_op, raw_http, user, values};

fn bulk(ops: Value) -> Value {
    json!({ "schemas": [BULK_REQUEST], "Operations": ops })
}

async fn send(c: &Client, body: &Value) -> Response {
    let r = c.post("/Bulk", body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/scim+json"));
    assert_eq!(r.body["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:BulkResponse"]), "{}", r.text);
    r
}

fn results(r: &Response) -> &Vec<Value> {
    r.body["Operations"].as_array().expect("Operations")
}

fn result_for<'a>(r: &'a Response, bulk_id: &str) -> &'a Value {
    results(r).iter().find(|o| o["bulkId"] == bulk_id).unwrap_or_else(|| panic!("a result for {bulk_id}: {}", r.text))
}

fn id_of(result: &Value) -> String {
    result["location"].as_str().expect("location").rsplit('/').next().unwrap().to_owned()
}

fn post_user(bulk_id: &str, name: &str) -> Value {
    json!({ "method": "POST", "path": "/Users", "bulkId": bulk_id, "data": user(name) })
}

#[tokio::test]
async fn user_and_group_with_bulk_id_references() {
    let s = TestServer::start().await;
    let c = s.scim();
    let r = send(
        &c,
        &bulk(json!([
            post_user("u1", "alice"),
            { "method": "POST", "path": "/Groups", "bulkId": "g1", "data": {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Team",
                "members": [{ "type": "User", "value": "bulkId:u1" }],
            } },
        ])),
    )
    .await;
    let u = result_for(&r, "u1");
    assert_eq!(u["status"], "201", "{}", r.text);
    assert_eq!(u["method"], "POST");
    assert!(u["location"].as_str().unwrap().starts_with(&format!("{}/Users/", s.scim_url())));
    assert_eq!(u["version"], "W/\"1\"");
    let g = result_for(&r, "g1");
    assert_eq!(g["status"], "201", "{}", r.text);
    let (uid, gid) = (id_of(u), id_of(g));
    let group = c.get(&format!("/Groups/{gid}")).await;
    assert_eq!(values(&group.body["members"]), vec![uid.clone()]);
    assert_eq!(c.get(&format!("/Users/{uid}")).await.body["groups"][0]["value"], gid.as_str());
    assert!(!group.text.contains("bulkId:"), "{}", group.text);
}

#[tokio::test]
async fn forward_references_are_resolved() {
    let s = TestServer::start().await;
    let c = s.scim();
    let r = send(
        &c,
        &bulk(json!([
            { "method": "POST", "path": "/Groups", "bulkId": "g1", "data": {
                "displayName": "Team", "members": [{ "value": "bulkId:u1" }, { "value": "bulkId:g2" }],
            } },
            { "method": "POST", "path": "/Groups", "bulkId": "g2", "data": { "displayName": "Inner", "members": [{ "value": "bulkId:u2" }] } },
            post_user("u1", "alice"),
            post_user("u2", "bob"),
        ])),
    )
    .await;
    assert_eq!(results(&r).len(), 4);
    for b in ["g1", "g2", "u1", "u2"] {
        assert_eq!(result_for(&r, b)["status"], "201", "{}", r.text);
    }
    let g1 = id_of(result_for(&r, "g1"));
    let mut expected = vec![id_of(result_for(&r, "u1")), id_of(result_for(&r, "g2"))];
    expected.sort();
    assert_eq!(values(&c.get(&format!("/Groups/{g1}")).await.body["members"]), expected);
    let g2 = id_of(result_for(&r, "g2"));
    assert_eq!(values(&c.get(&format!("/Groups/{g2}")).await.body["members"]), vec![id_of(result_for(&r, "u2"))]);
}

#[tokio::test]
async fn put_patch_delete_and_references_in_paths() {
    let s = TestServer::start().await;
    let c = s.scim();
    let existing = create_user(&c, "existing").await;
    let mut replacement = user("existing");
    replacement["title"] = json!("Replaced");
    let r = send(
        &c,
        &bulk(json!([
            post_user("n", "new"),
            { "method": "PATCH", "path": "/Users/bulkId:n", "data": patch_op(json!([{ "op": "replace", "value": { "active": false } }])) },
            { "method": "PUT", "path": format!("/Users/{existing}"), "version": "W/\"1\"", "data": replacement },
            { "method": "DELETE", "path": format!("/Users/{existing}"), "version": "W/\"1\"" },
        ])),
    )
    .await;
    let ops = results(&r);
    assert_eq!(ops.len(), 4, "{}", r.text);
    assert_eq!(ops[0]["status"], "201");
    assert_eq!(ops[1]["status"], "200", "{}", r.text);
    assert_eq!(ops[2]["status"], "200", "{}", r.text);
    assert_eq!(ops[2]["version"], "W/\"2\"");
    assert_eq!(ops[3]["status"], "412", "a stale version in a bulk DELETE: {}", r.text);
    assert_eq!(ops[3]["response"]["status"], "412");
    let new = id_of(&ops[0]);
    assert_eq!(c.get(&format!("/Users/{new}")).await.body["active"], false);
    assert_eq!(c.get(&format!("/Users/{existing}")).await.body["title"], "Replaced");

    let r = send(&c, &bulk(json!([{ "method": "DELETE", "path": format!("/Users/{existing}") }]))).await;
    assert_eq!(results(&r)[0]["status"], "204", "{}", r.text);
    assert_scim_error(&c.get(&format!("/Users/{existing}")).await, 404, None);
}

#[tokio::test]
async fn a_failed_operation_reports_its_scim_error() {
    let s = TestServer::start().await;
    let c = s.scim();
    create_user(&c, "taken").await;
    let r = send(
        &c,
        &bulk(json!([
            post_user("dup", "TAKEN"),
            { "method": "POST", "path": "/Users", "bulkId": "bad", "data": { "userName": "x", "active": "maybe" } },
            { "method": "PATCH", "path": "/Users/missing", "data": patch_op(json!([{ "op": "add", "path": "title", "value": "T" }])) },
            { "method": "POST", "path": "/Widgets", "bulkId": "w", "data": {} },
            post_user("ok", "fine"),
        ])),
    )
    .await;
    let ops = results(&r);
    assert_eq!(ops.len(), 5, "without failOnErrors every operation runs: {}", r.text);
    let dup = result_for(&r, "dup");
    assert_eq!(dup["status"], "409");
    assert_eq!(dup["response"]["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error");
    assert_eq!(dup["response"]["scimType"], "uniqueness");
    assert_eq!(dup["response"]["status"], "409");
    assert!(dup["response"]["detail"].as_str().unwrap().contains("userName"), "{dup}");
    assert!(dup.get("location").is_none());
    let bad = result_for(&r, "bad");
    assert_eq!(bad["status"], "400");
    assert_eq!(bad["response"]["scimType"], "invalidValue");
    assert!(bad["response"]["detail"].as_str().unwrap().contains("active"), "{bad}");
    assert_eq!(ops[2]["status"], "404", "{}", r.text);
    assert_eq!(ops[2]["response"]["status"], "404");
    assert_eq!(result_for(&r, "w")["status"], "400", "{}", r.text);
    assert_eq!(result_for(&r, "ok")["status"], "201");
    assert_eq!(c.get("/Users").await.body["totalResults"], 2);
}

#[tokio::test]
async fn fail_on_errors_stops_after_n_errors() {
    let s = TestServer::start().await;
    let c = s.scim();
    create_user(&c, "taken").await;
    let ops = json!([
        post_user("a", "taken"),
        post_user("b", "one"),
        post_user("c", "TAKEN"),
        post_user("d", "two"),
        post_user("e", "Taken"),
        post_user("f", "three"),
    ]);
    let mut body = bulk(ops.clone());
    body["failOnErrors"] = json!(1);
    let r = send(&c, &body).await;
    assert_eq!(results(&r).len(), 1, "stops at the first error: {}", r.text);
    assert_eq!(results(&r)[0]["status"], "409");
    assert_eq!(c.get("/Users").await.body["totalResults"], 1, "nothing after the error ran");

    let mut body = bulk(ops);
    body["failOnErrors"] = json!(2);
    let r = send(&c, &body).await;
    let statuses: Vec<&str> = results(&r).iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["409", "201", "409"], "{}", r.text);
    assert_eq!(c.get("/Users").await.body["totalResults"], 2);

    let mut body = bulk(json!([post_user("z", "z")]));
    body["failOnErrors"] = json!(0);
    assert_scim_error(&c.post("/Bulk", &body).await, 400, Some("invalidValue"));
}

#[tokio::test]
async fn references_to_a_failed_operation_fail() {
    let s = TestServer::start().await;
    let c = s.scim();
    create_user(&c, "taken").await;
    let r = send(
        &c,
        &bulk(json!([
            post_user("u1", "taken"),
            { "method": "POST", "path": "/Groups", "bulkId": "g1", "data": { "displayName": "G", "members": [{ "value": "bulkId:u1" }] } },
            { "method": "PATCH", "path": "/Users/bulkId:u1", "data": patch_op(json!([{ "op": "add", "path": "title", "value": "T" }])) },
            { "method": "POST", "path": "/Groups", "bulkId": "g2", "data": { "displayName": "H", "members": [{ "value": "bulkId:nope" }] } },
        ])),
    )
    .await;
    let ops = results(&r);
    assert_eq!(ops.len(), 4, "{}", r.text);
    assert_eq!(result_for(&r, "u1")["status"], "409");
    for failed in [result_for(&r, "g1"), &ops[2], result_for(&r, "g2")] {
        let status: u16 = failed["status"].as_str().unwrap().parse().unwrap();
        assert!((400..500).contains(&status), "{failed}");
        assert_eq!(failed["response"]["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error");
        assert!(failed["response"]["detail"].as_str().unwrap().contains("bulkId:"), "{failed}");
    }
    assert!(result_for(&r, "g1")["response"]["detail"].as_str().unwrap().contains("u1"));
    assert_eq!(c.get("/Groups").await.body["totalResults"], 0);
}

#[tokio::test]
async fn circular_references_fail_without_hanging() {
    let s = TestServer::start().await;
    let c = s.scim();
    let r = send(
        &c,
        &bulk(json!([
            { "method": "POST", "path": "/Groups", "bulkId": "a", "data": { "displayName": "A", "members": [{ "value": "bulkId:b" }] } },
            { "method": "POST", "path": "/Groups", "bulkId": "b", "data": { "displayName": "B", "members": [{ "value": "bulkId:a" }] } },
        ])),
    )
    .await;
    for b in ["a", "b"] {
        assert_eq!(result_for(&r, b)["status"], "409", "{}", r.text);
    }
    assert_eq!(c.get("/Groups").await.body["totalResults"], 0);
}

#[tokio::test]
async fn max_operations_exceeded_is_413() {
    let s = TestServer::start_with(Limits { max_bulk_operations: 2, ..Limits::default() }).await;
    let c = s.scim();
    let r = c.post("/Bulk", &bulk(json!([post_user("a", "a"), post_user("b", "b"), post_user("c", "c")]))).await;
    assert_scim_error(&r, 413, None);
    assert!(r.body["detail"].as_str().unwrap().contains("maxOperations"), "{}", r.text);
    assert_eq!(c.get("/Users").await.body["totalResults"], 0, "nothing ran");
    send(&c, &bulk(json!([post_user("a", "a"), post_user("b", "b")]))).await;
    assert_eq!(c.get("/Users").await.body["totalResults"], 2);
    let spc = c.get("/ServiceProviderConfig").await;
    assert_eq!(spc.body["bulk"]["maxOperations"], 2);
}

#[tokio::test]
async fn max_payload_size_exceeded_is_413() {
    let s = TestServer::start_with(Limits { max_bulk_payload: 1500, ..Limits::default() }).await;
    let c = s.scim();
    let small = bulk(json!([post_user("a", "a")]));
    assert!(small.to_string().len() < 1500);
    send(&c, &small).await;
    let large = bulk(json!([
        post_user("b", "b"),
        post_user("c", "c"),
        post_user("d", "d"),
        post_user("e", "e"),
        post_user("f", "f"),
        post_user("g", "g"),
        post_user("h", "h")
    ]));
    assert!(large.to_string().len() > 1500);
    let r = c.post("/Bulk", &large).await;
    assert_scim_error(&r, 413, None);
    assert!(r.body["detail"].as_str().unwrap().contains("maxPayloadSize"), "{}", r.text);
    assert_eq!(c.get("/Users").await.body["totalResults"], 1);
    // Also when the size is not declared up front (a chunked body).
    let req = chunked_post(&s.base, "/scim/v2/Bulk", &s.token, large.to_string().as_bytes());
    let (status, text) = raw_http(&s.base, req).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("maxPayloadSize") && text.contains("application/scim+json"), "{text}");
    assert_eq!(c.get("/Users").await.body["totalResults"], 1);
    let spc = c.get("/ServiceProviderConfig").await;
    assert_eq!(spc.body["bulk"]["maxPayloadSize"], 1500);
}

#[tokio::test]
async fn malformed_bulk_requests_are_refused() {
    let s = TestServer::start().await;
    let c = s.scim();
    let r = c.post("/Bulk", &json!({ "Operations": [post_user("a", "a")] })).await;
    assert_scim_error(&r, 400, Some("invalidSyntax"));
    let r = c.post("/Bulk", &json!({ "schemas": [BULK_REQUEST] })).await;
    assert_scim_error(&r, 400, Some("invalidSyntax"));
    let r = c.post("/Bulk", &bulk(json!([{ "method": "POST", "path": "/Users", "data": user("x") }]))).await;
    assert_scim_error(&r, 400, Some("invalidSyntax"));
    assert!(r.body["detail"].as_str().unwrap().contains("bulkId"), "{}", r.text);
    let r = c.post("/Bulk", &bulk(json!([post_user("a", "a"), post_user("a", "b")]))).await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    let r = c.post("/Bulk", &bulk(json!([{ "method": "GET", "path": "/Users" }]))).await;
    assert_scim_error(&r, 400, Some("invalidSyntax"));
    let r = c.post("/Bulk", &json!([1, 2])).await;
    assert_scim_error(&r, 400, Some("invalidSyntax"));
    assert_eq!(c.get("/Users").await.body["totalResults"], 0, "nothing ran");
}

#[tokio::test]
async fn a_reversed_chain_of_500_references_succeeds() {
    let s = TestServer::start().await;
    let c = s.scim();
    // Group i has group i + 1 as its member; the last operation is a user: every reference is
    // forward, so the operations must run in reverse.
    let n = 500;
    let mut ops: Vec<Value> = (0..n - 1)
        .map(|i| {
            json!({ "method": "POST", "path": "/Groups", "bulkId": format!("g{i}"), "data": {
                "displayName": format!("G{i}"), "members": [{ "value": format!("bulkId:g{}", i + 1) }],
            } })
        })
        .collect();
    ops.push(post_user(&format!("g{}", n - 1), "leaf"));
    let r = send(&c, &bulk(Value::Array(ops))).await;
    let results = results(&r);
    assert_eq!(results.len(), n);
    for (i, op) in results.iter().enumerate() {
        assert_eq!(op["bulkId"], format!("g{i}"), "results are in request order");
        assert_eq!(op["status"], "201", "{op}");
    }
    for i in [0, 250, n - 2] {
        let group = c.get(&format!("/Groups/{}", id_of(&results[i]))).await;
        assert_eq!(values(&group.body["members"]), vec![id_of(&results[i + 1])], "G{i}");
    }
}

#[tokio::test]
async fn bulk_id_text_outside_reference_positions_is_stored_literally() {
    let s = TestServer::start().await;
    let c = s.scim();
    let mut u = user("alice");
    u["displayName"] = json!("bulkId:x");
    let r = send(
        &c,
        &bulk(json!([
            { "method": "POST", "path": "/Users", "bulkId": "x", "data": u },
            { "method": "POST", "path": "/Groups", "bulkId": "g", "data": {
                "displayName": "bulkId:x", "members": [{ "value": "bulkId:x" }],
            } },
        ])),
    )
    .await;
    let (uid, gid) = (id_of(result_for(&r, "x")), id_of(result_for(&r, "g")));
    assert_eq!(c.get(&format!("/Users/{uid}")).await.body["displayName"], "bulkId:x");
    let group = c.get(&format!("/Groups/{gid}")).await;
    assert_eq!(group.body["displayName"], "bulkId:x", "{}", group.text);
    assert_eq!(values(&group.body["members"]), vec![uid]);
}

#[tokio::test]
async fn manager_and_patched_members_references_are_resolved() {
    let s = TestServer::start().await;
    let c = s.scim();
    let existing = crate::support::create_group(&c, "Existing", &[]).await;
    let mut report = user("report");
    report[crate::support::ENTERPRISE] = json!({ "manager": { "value": "bulkId:boss" } });
    let r = send(
        &c,
        &bulk(json!([
            { "method": "PATCH", "path": format!("/Groups/{existing}"), "data": patch_op(json!([
                { "op": "add", "path": "members", "value": [{ "value": "bulkId:report" }] },
            ])) },
            { "method": "POST", "path": "/Users", "bulkId": "report", "data": report },
            post_user("boss", "boss"),
        ])),
    )
    .await;
    let ops = results(&r);
    assert!(ops.iter().all(|o| o["status"] == "200" || o["status"] == "201"), "{}", r.text);
    let (boss, report) = (id_of(result_for(&r, "boss")), id_of(result_for(&r, "report")));
    let got = c.get(&format!("/Users/{report}")).await;
    assert_eq!(got.body[crate::support::ENTERPRISE]["manager"]["value"], boss.as_str(), "{}", got.text);
    assert_eq!(values(&c.get(&format!("/Groups/{existing}")).await.body["members"]), vec![report]);
}
