//! The bounds on what one request can store or make the server work through: document size,
//! values per attribute, members per request, nesting of custom values, attributes per object,
//! schema URNs; PATCH work that stays about linear in the values; and `parse_trusted` for
//! filters the process printed itself.

use std::time::{Duration, Instant};

use scim_proto::filter::{self, MAX_FILTER_LEN, parse_trusted};
use scim_proto::patch::PatchRequest;
use scim_proto::resource::{
    MAX_ATTRIBUTES, MAX_CUSTOM_DEPTH, MAX_MEMBERS, MAX_RESOURCE_BYTES, MAX_SCHEMAS, MAX_VALUES, prepare,
};
use scim_proto::schema::{ENTERPRISE_USER_SCHEMA, PATCH_OP_SCHEMA, USER_SCHEMA};
use scim_proto::{ResourceKind, ScimError, ScimType};
use serde_json::{Map, Value, json};

/// Generous for a debug build on a busy machine; the quadratic versions took far longer.
const QUICK: Duration = Duration::from_secs(3);

#[track_caller]
fn assert_invalid_value(result: Result<impl std::fmt::Debug, ScimError>, mentions: &[&str]) -> ScimError {
    let e = result.expect_err("expected a 400 invalidValue");
    assert_eq!((e.status, e.scim_type), (400, Some(ScimType::InvalidValue)), "{}", e.detail);
    for m in mentions {
        assert!(e.detail.contains(m), "detail {:?} should mention {m:?}", e.detail);
    }
    e
}

fn user(extra: Value) -> Result<Value, ScimError> {
    let mut body = json!({"schemas": [USER_SCHEMA], "userName": "bjensen"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    prepare(ResourceKind::User, body)
}

fn stored_user(extra: Value) -> Value {
    let mut user = user(extra).unwrap_or_else(|e| panic!("{}", e.detail));
    user["id"] = json!("2819c223-7f76-453a-919d-413861904646");
    user
}

fn patch(resource: &mut Value, kind: ResourceKind, ops: Value) -> Result<(), ScimError> {
    PatchRequest::parse(json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops}))?.apply(resource, kind)
}

/// `{"a": {"a": ... 1 ...}}` with `levels` nested objects.
fn nested(levels: usize) -> Value {
    (0..levels).fold(json!(1), |inner, _| json!({"a": inner}))
}

#[test]
fn adding_many_custom_values_is_not_quadratic() {
    let mut resource = stored_user(json!({}));
    // 20 000 stored values (more than prepare would accept: the work must still be linear).
    let existing: Vec<Value> = (0..20_000).map(|i| json!({"n": i, "tag": "old"})).collect();
    resource["custom"] = Value::Array(existing);
    let incoming: Vec<Value> = (0..20_000).map(|i| json!({"tag": "new", "n": i})).collect();
    let before = resource.clone();
    let started = Instant::now();
    let result = patch(&mut resource, ResourceKind::User, json!([{"op": "add", "path": "custom", "value": incoming}]));
    assert!(started.elapsed() < QUICK, "took {:?}", started.elapsed());
    let e = assert_invalid_value(result, &["custom", "40000 values", &MAX_VALUES.to_string()]);
    assert!(e.detail.starts_with("Operations[0] (add custom)"), "{}", e.detail);
    assert_eq!(resource, before, "a refused PATCH changes nothing");
}

#[test]
fn adding_custom_values_skips_equal_ones_whatever_their_key_order() {
    let existing: Vec<Value> = (0..MAX_VALUES).map(|i| json!({"n": i, "tag": "x"})).collect();
    let mut resource = stored_user(json!({"custom": existing.clone()}));
    let incoming: Vec<Value> = (0..MAX_VALUES).rev().map(|i| json!({"tag": "x", "n": i})).collect();
    let started = Instant::now();
    patch(&mut resource, ResourceKind::User, json!([{"op": "add", "path": "custom", "value": incoming}])).unwrap();
    assert!(started.elapsed() < QUICK, "took {:?}", started.elapsed());
    assert_eq!(resource["custom"], Value::Array(existing));
}

#[test]
fn removing_many_values_is_linear_and_matches_as_before() {
    let emails: Vec<Value> =
        (0..MAX_VALUES).map(|i| json!({"value": format!("user{i}@example.com"), "type": "work"})).collect();
    let mut resource = stored_user(json!({"emails": emails}));
    // Every even address, in another case (emails.value is not caseExact), by value alone or
    // with its type, and some that match nothing.
    let mut doomed: Vec<Value> = (0..MAX_VALUES)
        .step_by(2)
        .map(|i| match i % 4 {
            0 => json!({"value": format!("USER{i}@example.com")}),
            _ => json!({"type": "WORK", "value": format!("user{i}@EXAMPLE.com")}),
        })
        .collect();
    doomed.truncate(MAX_VALUES - 2);
    doomed.push(json!({"value": "user1@example.com", "type": "home"}));
    doomed.push(json!({"value": "nobody@example.com"}));
    let started = Instant::now();
    patch(&mut resource, ResourceKind::User, json!([{"op": "remove", "path": "emails", "value": doomed}])).unwrap();
    assert!(started.elapsed() < QUICK, "took {:?}", started.elapsed());
    let left: Vec<&str> = resource["emails"].as_array().unwrap().iter().map(|e| e["value"].as_str().unwrap()).collect();
    assert_eq!(left.len(), MAX_VALUES / 2);
    assert!(
        left.iter().all(|v| v.trim_start_matches("user").split('@').next().unwrap().parse::<usize>().unwrap() % 2 == 1)
    );
}

#[test]
fn merging_many_custom_keys_is_linear() {
    let mut resource = stored_user(json!({"custom": {"Keep": 1, "A0": "old"}}));
    let incoming: Map<String, Value> = (0..50_000).map(|i| (format!("a{i}"), json!(i))).collect();
    let started = Instant::now();
    let result = patch(&mut resource, ResourceKind::User, json!([{"op": "add", "path": "custom", "value": incoming}]));
    assert!(started.elapsed() < QUICK, "took {:?}", started.elapsed());
    // 50 000 keys are far more than MAX_RESOURCE_BYTES allows.
    assert_invalid_value(result, &[&MAX_RESOURCE_BYTES.to_string()]);
    // A small merge replaces keys ignoring case and keeps the others.
    patch(
        &mut resource,
        ResourceKind::User,
        json!([{"op": "add", "path": "custom", "value": {"a0": "new", "b": null}}]),
    )
    .unwrap();
    assert_eq!(resource["custom"], json!({"Keep": 1, "a0": "new"}));
}

#[test]
fn resource_size_is_bounded_without_group_members() {
    let fits = "x".repeat(MAX_RESOURCE_BYTES - 1000);
    assert!(user(json!({"title": fits})).is_ok());
    let big = "x".repeat(MAX_RESOURCE_BYTES);
    let e = assert_invalid_value(user(json!({"title": big.clone()})), &["65536", "MAX_RESOURCE_BYTES"]);
    assert!(e.detail.starts_with("the User is "), "{}", e.detail);
    assert_invalid_value(user(json!({ENTERPRISE_USER_SCHEMA: {"custom": big.clone()}})), &["65536"]);

    // Members do not count: 5 000 members are far more than 64 KiB.
    let members: Vec<Value> = (0..5000)
        .map(|i| json!({"value": format!("2819c223-7f76-453a-919d-{i:012}"), "display": format!("User number {i}")}))
        .collect();
    let group = prepare(ResourceKind::Group, json!({"displayName": "Everyone", "members": members})).unwrap();
    assert!(group.to_string().len() > MAX_RESOURCE_BYTES);
    assert_eq!(group["members"].as_array().unwrap().len(), 5000);
    let e = assert_invalid_value(
        prepare(ResourceKind::Group, json!({"displayName": "Everyone", "members": members, "notes": big})),
        &["65536", "without its members"],
    );
    assert!(e.detail.starts_with("the Group is "), "{}", e.detail);

    // PATCH ends with the same check.
    let mut resource = stored_user(json!({}));
    let e = assert_invalid_value(
        patch(&mut resource, ResourceKind::User, json!([{"op": "add", "path": "title", "value": "x".repeat(70_000)}])),
        &["the patched User is invalid", "65536"],
    );
    assert!(!e.detail.contains("Operations["), "{}", e.detail);
}

#[test]
fn values_per_attribute_are_bounded() {
    let emails = |n: usize| -> Vec<Value> { (0..n).map(|i| json!({"value": format!("u{i}@example.com")})).collect() };
    assert!(user(json!({"emails": emails(MAX_VALUES)})).is_ok());
    assert_invalid_value(user(json!({"emails": emails(MAX_VALUES + 1)})), &["emails has 1001 values", "limit is 1000"]);
    let numbers = |n: usize| -> Vec<Value> { (0..n).map(|i| json!(i)).collect() };
    assert!(user(json!({"custom": numbers(MAX_VALUES)})).is_ok());
    assert_invalid_value(user(json!({"custom": numbers(MAX_VALUES + 1)})), &["custom", "1001 values", "1000"]);
    assert_invalid_value(user(json!({"custom": {"deep": [numbers(MAX_VALUES + 1)]}})), &["custom", "1000"]);
    assert_invalid_value(
        user(json!({"name": {"givenName": "B", "nicknames": numbers(MAX_VALUES + 1)}})),
        &["name.nicknames", "1000"],
    );

    // PATCH: refused by the operation that goes over, before later operations run.
    let mut resource = stored_user(json!({"emails": emails(MAX_VALUES)}));
    assert_invalid_value(
        patch(
            &mut resource,
            ResourceKind::User,
            json!([{"op": "add", "path": "emails", "value": {"value": "one-more@example.com"}}]),
        ),
        &["Operations[0]", "emails has 1001 values", "1000"],
    );
    assert_invalid_value(
        patch(
            &mut resource,
            ResourceKind::User,
            json!([{"op": "remove", "path": "emails", "value": emails(MAX_VALUES + 1)}]),
        ),
        &["the value of the remove of emails has 1001 values"],
    );
}

#[test]
fn members_are_bounded_per_request_not_in_total() {
    let members: Vec<Value> = (0..=MAX_MEMBERS).map(|i| json!({"value": format!("m{i}")})).collect();
    assert_invalid_value(
        prepare(ResourceKind::Group, json!({"displayName": "All", "members": members.clone()})),
        &["100001 members", "limit is 100000"],
    );
    let e = assert_invalid_value(
        PatchRequest::parse(json!({
            "schemas": [PATCH_OP_SCHEMA],
            "Operations": [
                {"op": "add", "path": "members", "value": members[..60_000]},
                {"op": "add", "value": {"members": members[60_000..]}},
            ]
        })),
        &["100001 members", "100000"],
    );
    assert!(e.detail.contains("MAX_MEMBERS"), "{}", e.detail);
    let mut group =
        prepare(ResourceKind::Group, json!({"displayName": "All", "members": members[..MAX_MEMBERS]})).unwrap();
    patch(&mut group, ResourceKind::Group, json!([{"op": "add", "path": "members", "value": members[MAX_MEMBERS..]}]))
        .unwrap();
    assert_eq!(group["members"].as_array().unwrap().len(), MAX_MEMBERS + 1);
}

#[test]
fn custom_values_nest_at_most_max_custom_depth() {
    assert_eq!(MAX_CUSTOM_DEPTH, 16);
    assert!(user(json!({"custom": nested(16)})).is_ok());
    assert_invalid_value(user(json!({"custom": nested(17)})), &["custom", "16 levels", "MAX_CUSTOM_DEPTH"]);
    assert_invalid_value(user(json!({"custom": [nested(16)]})), &["custom", "16"]);
    assert_invalid_value(user(json!({ENTERPRISE_USER_SCHEMA: {"x": nested(17)}})), &[ENTERPRISE_USER_SCHEMA, ":x"]);
    assert_invalid_value(user(json!({"urn:example:ext": {"x": nested(17)}})), &["urn:example:ext:x", "16"]);
    assert_invalid_value(
        user(json!({"emails": [{"value": "a@example.com", "extra": nested(17)}]})),
        &["emails.extra", "16"],
    );
    // Defined attributes' own structure does not count: an extension holding a complex
    // attribute with a custom sub-attribute 16 deep is fine.
    assert!(user(json!({ENTERPRISE_USER_SCHEMA: {"manager": {"value": "m", "x": nested(16)}}})).is_ok());

    let mut resource = stored_user(json!({}));
    assert_invalid_value(
        patch(&mut resource, ResourceKind::User, json!([{"op": "add", "path": "custom", "value": nested(17)}])),
        &["the patched User is invalid", "16"],
    );
    assert_invalid_value(
        patch(&mut resource, ResourceKind::User, json!([{"op": "add", "path": "custom.sub", "value": nested(16)}])),
        &["custom", "16"],
    );
}

#[test]
fn attributes_per_object_and_schema_urns_are_bounded() {
    let keys = |n: usize| -> Map<String, Value> { (0..n).map(|i| (format!("k{i}"), json!(1))).collect() };
    let mut body = keys(MAX_ATTRIBUTES + 1);
    body.insert("userName".into(), json!("u"));
    assert_invalid_value(prepare(ResourceKind::User, Value::Object(body)), &["1002 attributes", "limit is 1000"]);
    assert_invalid_value(
        user(json!({ENTERPRISE_USER_SCHEMA: keys(MAX_ATTRIBUTES + 1)})),
        &[ENTERPRISE_USER_SCHEMA, "limit is 1000"],
    );
    let mut resource = stored_user(json!({}));
    let started = Instant::now();
    assert_invalid_value(
        patch(&mut resource, ResourceKind::User, json!([{"op": "add", "value": keys(50_000)}])),
        &["the resource has 1001 attributes", "MAX_ATTRIBUTES"],
    );
    assert!(started.elapsed() < QUICK, "took {:?}", started.elapsed());

    let urns: Vec<String> = (0..=MAX_SCHEMAS).map(|i| format!("urn:example:{i}")).collect();
    let mut declared = vec![json!(USER_SCHEMA)];
    declared.extend(urns.iter().map(|u| json!(u)));
    assert_invalid_value(
        prepare(ResourceKind::User, json!({"schemas": declared, "userName": "u"})),
        &["more than 100 different schema URNs"],
    );
    // Repeats count once.
    let repeats: Vec<Value> =
        (0..5000).map(|i| json!(if i % 2 == 0 { USER_SCHEMA } else { "URN:example:X" })).collect();
    let out =
        prepare(ResourceKind::User, json!({"schemas": repeats, "userName": "u", "urn:example:x": {"a": 1}})).unwrap();
    assert_eq!(out["schemas"], json!([USER_SCHEMA, "URN:example:X"]));
}

#[test]
fn parse_trusted_reads_printed_filters_longer_than_the_limit() {
    // 200 comparisons (the most a filter may have) whose numbers print longer than written:
    // `1E15` prints as `1000000000000000.0`.
    let text = (0..filter::MAX_FILTER_TERMS).map(|i| format!("a{i} eq 1E15")).collect::<Vec<_>>().join(" or ");
    assert!(text.chars().count() <= MAX_FILTER_LEN);
    let parsed = filter::parse(&text).unwrap();
    let printed = parsed.to_string();
    assert!(printed.chars().count() > MAX_FILTER_LEN, "{} characters", printed.chars().count());
    assert_eq!(filter::parse(&printed).unwrap_err().scim_type, Some(ScimType::InvalidFilter));
    assert_eq!(parse_trusted(&printed).unwrap(), parsed);

    // The other limits still hold.
    let too_many = (0..=filter::MAX_FILTER_TERMS).map(|i| format!("a{i} pr")).collect::<Vec<_>>().join(" and ");
    assert!(parse_trusted(&too_many).unwrap_err().detail.contains("more than 200 comparisons"));
    let too_deep =
        format!("{}a pr{}", "(".repeat(filter::MAX_FILTER_DEPTH + 1), ")".repeat(filter::MAX_FILTER_DEPTH + 1));
    assert_eq!(parse_trusted(&too_deep).unwrap_err().scim_type, Some(ScimType::InvalidFilter));
    assert!(parse_trusted("a eq").is_err());
}
