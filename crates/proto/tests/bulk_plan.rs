//! Bulk requests in the protocol core: parsing, reference discovery, planning, substitution.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use scim_proto::bulk::{Blocked, BulkMethod, BulkRequest, Endpoint, Target, substitute};
use scim_proto::{ResourceKind, ScimType};
use serde_json::{Value, json};

const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn request(ops: Value) -> Value {
    json!({ "schemas": [BULK_REQUEST], "Operations": ops })
}

fn parse(ops: Value) -> BulkRequest {
    BulkRequest::parse(&request(ops), usize::MAX).expect("a valid bulk request")
}

fn group(bulk_id: &str, members: &[&str]) -> Value {
    let members: Vec<Value> = members.iter().map(|m| json!({ "value": format!("bulkId:{m}") })).collect();
    json!({ "method": "POST", "path": "/Groups", "bulkId": bulk_id, "data": { "displayName": bulk_id, "members": members } })
}

fn user(bulk_id: &str) -> Value {
    json!({ "method": "POST", "path": "/Users", "bulkId": bulk_id, "data": { "userName": bulk_id } })
}

/// Op `i` is a group whose member is op `i + 1`; the last is a user: every reference is forward.
fn reversed_chain(n: usize) -> Value {
    let mut ops: Vec<Value> = (0..n - 1).map(|i| group(&format!("g{i}"), &[&format!("g{}", i + 1)])).collect();
    ops.push(user(&format!("g{}", n - 1)));
    Value::Array(ops)
}

#[test]
fn parses_methods_paths_and_fields() {
    let req = BulkRequest::parse(
        &json!({
            "SCHEMAS": [BULK_REQUEST],
            "failOnErrors": 2,
            "operations": [
                { "Method": "post", "Path": "/Users", "BulkId": "u", "Data": { "userName": "a" } },
                { "method": "Put", "path": "/Groups/42/", "version": "W/\"3\"", "data": {} },
                { "method": "patch", "path": "/users/bulkId:u", "data": { "Operations": [] } },
                { "method": "DELETE", "path": "/Groups/7" },
            ]
        }),
        4,
    )
    .unwrap();
    assert_eq!(req.fail_on_errors, Some(2));
    let methods: Vec<BulkMethod> = req.operations.iter().map(|o| o.method).collect();
    assert_eq!(methods, [BulkMethod::Post, BulkMethod::Put, BulkMethod::Patch, BulkMethod::Delete]);
    let ops = &req.operations;
    assert_eq!(ops[0].endpoint, Ok(Endpoint { kind: ResourceKind::User, target: None }));
    assert_eq!(ops[0].bulk_id.as_deref(), Some("u"));
    assert_eq!(ops[1].endpoint, Ok(Endpoint { kind: ResourceKind::Group, target: Some(Target::Id("42".into())) }));
    assert_eq!(ops[1].version.as_deref(), Some("W/\"3\""));
    assert_eq!(ops[2].endpoint, Ok(Endpoint { kind: ResourceKind::User, target: Some(Target::BulkId("u".into())) }));
    assert_eq!(ops[2].references, ["u"]);
    assert_eq!(ops[3].data, None);
}

#[test]
fn malformed_requests_are_refused_as_a_whole() {
    let cases = [
        (json!({ "Operations": [] }), ScimType::InvalidSyntax, "schemas"),
        (json!({ "schemas": [BULK_REQUEST] }), ScimType::InvalidSyntax, "Operations"),
        (json!([1]), ScimType::InvalidSyntax, "object"),
        (
            json!({ "schemas": [BULK_REQUEST], "failOnErrors": 0, "Operations": [] }),
            ScimType::InvalidValue,
            "failOnErrors",
        ),
        (request(json!([{ "method": "POST", "path": "/Users", "data": {} }])), ScimType::InvalidSyntax, "bulkId"),
        (request(json!([{ "method": "GET", "path": "/Users" }])), ScimType::InvalidSyntax, "method"),
        (request(json!([{ "method": "PUT", "path": "/Users/1" }])), ScimType::InvalidSyntax, "data"),
        (request(json!([{ "method": "DELETE" }])), ScimType::InvalidSyntax, "path"),
        (request(json!([user("a"), user("a")])), ScimType::InvalidValue, "more than one"),
    ];
    for (body, scim_type, words) in cases {
        let err = BulkRequest::parse(&body, 10).expect_err(&body.to_string());
        assert_eq!((err.status, err.scim_type), (400, Some(scim_type)), "{body}: {err}");
        assert!(err.detail.contains(words), "{body}: {err}");
    }
}

#[test]
fn too_many_operations_is_413_too_many() {
    let err = BulkRequest::parse(&request(json!([user("a"), user("b"), user("c")])), 2).unwrap_err();
    assert_eq!((err.status, err.scim_type), (413, Some(ScimType::TooMany)));
    assert!(err.detail.contains("maxOperations is 2") && err.detail.contains('3'), "{err}");
    assert!(BulkRequest::parse(&request(json!([user("a"), user("b")])), 2).is_ok());
}

#[test]
fn a_bad_path_fails_only_its_operation() {
    let req = parse(json!([
        { "method": "POST", "path": "/Widgets", "bulkId": "w", "data": {} },
        { "method": "POST", "path": "/Users/1", "bulkId": "p", "data": {} },
        { "method": "PATCH", "path": "/Users", "data": {} },
        { "method": "DELETE", "path": "/Users/1/2" },
        user("ok"),
    ]));
    for op in &req.operations[..4] {
        let err = op.endpoint.clone().expect_err(&op.path);
        assert_eq!((err.status, err.scim_type), (400, Some(ScimType::InvalidPath)), "{}", op.path);
    }
    assert!(req.operations[4].endpoint.is_ok());
}

#[test]
fn a_reversed_chain_of_1000_plans_in_reverse_and_fast() {
    let req = parse(reversed_chain(1000));
    let plan = req.plan();
    assert_eq!(plan.order, (0..1000).rev().collect::<Vec<_>>());
    assert_eq!(plan.problems().count(), 0);

    // Linear-ish: 50 times the operations plans in well under what quadratic work would take
    // (50,000² reference scans), even unoptimised.
    let req = parse(reversed_chain(50_000));
    let started = Instant::now();
    let plan = req.plan();
    assert!(started.elapsed() < Duration::from_secs(2), "planning took {:?}", started.elapsed());
    assert_eq!(plan.order.first(), Some(&49_999));
    assert_eq!(plan.order.last(), Some(&0));
}

#[test]
fn free_operations_keep_request_order() {
    let req = parse(json!([group("a", &["c"]), user("b"), user("c"), user("d")]));
    assert_eq!(req.plan().order, [1, 2, 0, 3]);
}

#[test]
fn cycles_and_what_depends_on_them_are_reported() {
    let req = parse(json!([
        group("a", &["b"]),
        group("b", &["a"]),
        group("c", &["a"]),
        group("self", &["self"]),
        user("free"),
        { "method": "PATCH", "path": "/Groups/bulkId:c", "data": { "Operations": [] } },
    ]));
    let plan = req.plan();
    assert_eq!(plan.order[0], 4, "the free operation runs first: {:?}", plan.order);
    let mut sorted = plan.order.clone();
    sorted.sort();
    assert_eq!(sorted, [0, 1, 2, 3, 4, 5], "every operation appears once");
    let cycle = Blocked::Cycle(vec!["a".to_owned(), "b".to_owned()].into());
    assert_eq!(plan.blocked[0].as_ref(), Some(&cycle));
    assert_eq!(plan.blocked[1].as_ref(), Some(&cycle));
    assert_eq!(plan.blocked[2], Some(Blocked::AfterCycle("a".into())));
    assert_eq!(plan.blocked[3], Some(Blocked::Cycle(vec!["self".to_owned()].into())));
    assert_eq!(plan.blocked[4], None);
    assert_eq!(plan.blocked[5], Some(Blocked::AfterCycle("c".into())));
    let err = cycle.to_error();
    assert_eq!((err.status, err.scim_type), (409, Some(ScimType::InvalidValue)));
    assert!(err.detail.contains("bulkId:a, bulkId:b") && err.detail.contains("cycle"), "{err}");
    assert!(plan.blocked[3].as_ref().unwrap().to_error().detail.contains("its own bulkId"));
}

#[test]
fn a_long_cycle_is_found_without_recursion_and_named_briefly() {
    let n = 20_000;
    let ops: Vec<Value> = (0..n).map(|i| group(&format!("g{i}"), &[&format!("g{}", (i + 1) % n)])).collect();
    let plan = parse(Value::Array(ops)).plan();
    assert_eq!(plan.problems().count(), n);
    let Some(Blocked::Cycle(ids)) = &plan.blocked[0] else { panic!("{:?}", plan.blocked[0]) };
    assert_eq!(ids.len(), n);
    let detail = plan.blocked[0].as_ref().unwrap().to_error().detail;
    assert!(detail.contains("and 19990 more") && detail.len() < 400, "{detail}");
}

#[test]
fn unknown_references_are_reported() {
    let req = parse(json!([
        group("g", &["nope", "u", "other"]),
        user("u"),
        { "method": "DELETE", "path": "/Users/bulkId:missing" },
    ]));
    let plan = req.plan();
    assert_eq!(plan.order, [1, 0, 2], "known references still order the operation");
    assert_eq!(plan.blocked[0], Some(Blocked::Unknown(vec!["nope".into(), "other".into()])));
    assert_eq!(plan.blocked[2], Some(Blocked::Unknown(vec!["missing".into()])));
    let err = plan.blocked[2].as_ref().unwrap().to_error();
    assert_eq!((err.status, err.scim_type), (409, Some(ScimType::InvalidValue)));
    assert_eq!(err.detail, "bulkId:missing is not the bulkId of any operation in this request");
}

#[test]
fn only_reference_positions_are_references() {
    let req = parse(json!([
        user("x"),
        { "method": "POST", "path": "/Groups", "bulkId": "g", "data": {
            "displayName": "bulkId:x",
            "externalId": "bulkId:x",
            "members": [{ "value": "bulkId:x", "display": "bulkId:x" }, { "value": "prefix bulkId:x" }],
            "custom": { "value": "bulkId:x" },
        } },
    ]));
    assert_eq!(req.operations[1].references, ["x"]);
    let ids = HashMap::from([("x".to_owned(), "id-1".to_owned())]);
    let mut data = req.operations[1].data.clone().unwrap();
    substitute(&mut data, &ids);
    assert_eq!(
        data,
        json!({
            "displayName": "bulkId:x",
            "externalId": "bulkId:x",
            "members": [{ "value": "id-1", "display": "bulkId:x" }, { "value": "prefix bulkId:x" }],
            "custom": { "value": "bulkId:x" },
        })
    );

    // A displayName alone is no reference: nothing to wait for, nothing unknown.
    let req = parse(json!([{ "method": "POST", "path": "/Users", "bulkId": "u", "data": {
        "userName": "u", "displayName": "bulkId:nobody"
    } }]));
    assert!(req.operations[0].references.is_empty());
    assert_eq!(req.plan().problems().count(), 0);
}

#[test]
fn manager_references_in_the_enterprise_extension() {
    let req = parse(json!([
        user("boss"),
        { "method": "POST", "path": "/Users", "bulkId": "a", "data": {
            "userName": "a", ENTERPRISE: { "manager": { "value": "bulkId:boss", "displayName": "bulkId:boss" } },
        } },
        { "method": "POST", "path": "/Users", "bulkId": "b", "data": {
            "userName": "b", format!("{ENTERPRISE}:manager"): { "value": "bulkId:a" },
        } },
    ]));
    assert_eq!(req.operations[1].references, ["boss"]);
    assert_eq!(req.operations[2].references, ["a"]);
    let ids = HashMap::from([("boss".to_owned(), "1".to_owned()), ("a".to_owned(), "2".to_owned())]);
    let mut data = req.operations[1].data.clone().unwrap();
    substitute(&mut data, &ids);
    assert_eq!(data[ENTERPRISE]["manager"], json!({ "value": "1", "displayName": "bulkId:boss" }));
    let mut data = req.operations[2].data.clone().unwrap();
    substitute(&mut data, &ids);
    assert_eq!(data[format!("{ENTERPRISE}:manager")]["value"], "2");
}

#[test]
fn patch_operations_that_set_members_or_manager() {
    let req = parse(json!([
        user("u"),
        user("m"),
        { "method": "PATCH", "path": "/Groups/42", "data": { "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            { "op": "add", "path": "members", "value": [{ "value": "bulkId:u" }] },
            { "op": "replace", "value": { "members": [{ "value": "bulkId:m" }], "displayName": "bulkId:u" } },
            { "op": "replace", "path": "displayName", "value": "bulkId:u" },
            { "op": "remove", "path": "members[value eq \"bulkId:u\"]" },
        ] } },
        { "method": "PATCH", "path": "/Users/bulkId:u", "data": { "Operations": [
            { "op": "replace", "path": format!("{ENTERPRISE}:manager"), "value": { "value": "bulkId:m" } },
            { "op": "replace", "path": format!("{ENTERPRISE}:manager.value"), "value": "bulkId:m" },
        ] } },
    ]));
    assert_eq!(req.operations[2].references, ["u", "m"]);
    assert_eq!(req.operations[3].references, ["u", "m"]);
    assert_eq!(req.plan().order, [0, 1, 2, 3]);
    let ids = HashMap::from([("u".to_owned(), "U".to_owned()), ("m".to_owned(), "M".to_owned())]);
    let mut data = req.operations[2].data.clone().unwrap();
    substitute(&mut data, &ids);
    let ops = &data["Operations"];
    assert_eq!(ops[0]["value"][0]["value"], "U");
    assert_eq!(ops[1]["value"], json!({ "members": [{ "value": "M" }], "displayName": "bulkId:u" }));
    assert_eq!(ops[2]["value"], "bulkId:u");
    assert_eq!(ops[3]["path"], "members[value eq \"bulkId:u\"]");
    let mut data = req.operations[3].data.clone().unwrap();
    substitute(&mut data, &ids);
    assert_eq!(data["Operations"][0]["value"]["value"], "M");
    assert_eq!(data["Operations"][1]["value"], "M");
}

#[test]
fn path_references_are_parsed_and_resolved() {
    let req = parse(json!([
        { "method": "PATCH", "path": "/Users/bulkId:u", "data": { "Operations": [] } },
        user("u"),
    ]));
    let op = &req.operations[0];
    let Ok(Endpoint { kind: ResourceKind::User, target: Some(target) }) = &op.endpoint else { panic!("{op:?}") };
    assert_eq!(target, &Target::BulkId("u".into()));
    assert_eq!(op.references, ["u"]);
    assert_eq!(req.plan().order, [1, 0], "the PATCH waits for the POST");
    let ids = HashMap::from([("u".to_owned(), "2819c223".to_owned())]);
    assert_eq!(target.resolve(&ids), Some("2819c223"));
    assert_eq!(target.resolve(&HashMap::new()), None);
    assert_eq!(Target::Id("7".into()).resolve(&HashMap::new()), Some("7"));
}
