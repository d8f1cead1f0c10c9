//! Properties of `prepare` and PATCH over generated input: no panic, canonical output is a
//! fixed point of `prepare`, and a failed PATCH leaves the resource untouched.

use proptest::prelude::*;
use scim_proto::ResourceKind;
use scim_proto::patch::PatchRequest;
use scim_proto::resource::prepare;
use scim_proto::schema::{ENTERPRISE_USER_SCHEMA, PATCH_OP_SCHEMA};
use serde_json::{Map, Value, json};

const KEYS: &[&str] = &[
    "userName",
    "USERNAME",
    "displayName",
    "name",
    "name.givenName",
    "givenName",
    "emails",
    "value",
    "type",
    "primary",
    "active",
    "members",
    "display",
    "$ref",
    "id",
    "meta",
    "schemas",
    "groups",
    "password",
    "manager",
    "x509Certificates",
    ENTERPRISE_USER_SCHEMA,
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
    "urn:ietf:params:scim:schemas:core:2.0:Group:displayName",
    "urn:example:acme:2.0:User",
    "urn:example:acme:2.0:User:badge",
    "company",
    "aé:x",
    "urn:é",
    "",
];

const PATHS: &[&str] = &[
    "userName",
    "displayName",
    "name",
    "name.givenName",
    "emails",
    "emails.value",
    "emails[type eq \"work\"]",
    "emails[type eq \"work\"].value",
    "emails[type eq \"work\" and primary eq true].display",
    "emails[value co \"@\"]",
    "addresses[type eq \"home\"].locality",
    "members",
    "members[value eq \"u1\"]",
    "members[value eq \"u1\"].display",
    "active",
    "manager",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
    ENTERPRISE_USER_SCHEMA,
    "company",
    "company.sub",
    "urn:example:acme:2.0:User:badge",
    "id",
    "meta.version",
    "schemas",
    "groups",
    "not a path",
    "abcé",
];

const STRINGS: &[&str] = &["work", "home", "True", "false", "a@b", "", "u1", "u2", "User", "group", "TUlJ"];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..300).prop_map(Value::from),
        prop::sample::select(STRINGS).prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..5)
                .prop_map(|entries| Value::Object(entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

fn operation() -> impl Strategy<Value = Value> {
    // Mostly well-formed operations, so that most requests get past parsing to `apply`.
    (
        prop::sample::select(&["add", "Replace", "remove", "REMOVE"][..]),
        prop::option::weighted(0.85, prop::sample::select(PATHS)),
        prop::sample::select(KEYS),
        json_value(),
        any::<bool>(),
    )
        .prop_map(|(op, path, key, value, with_value)| {
            let mut map = Map::new();
            map.insert("op".into(), json!(op));
            let removes = op.eq_ignore_ascii_case("remove");
            match path {
                Some(path) => {
                    map.insert("path".into(), json!(path));
                    if !removes || with_value {
                        map.insert("value".into(), value);
                    }
                }
                None if removes => {
                    map.insert("path".into(), json!(key));
                }
                None => {
                    map.insert("value".into(), json!({ key: value }));
                }
            }
            Value::Object(map)
        })
}

fn stored(kind: ResourceKind) -> Value {
    let body = match kind {
        ResourceKind::User => json!({
            "userName": "bjensen",
            "name": {"givenName": "Barbara"},
            "emails": [{"value": "b@x", "type": "work", "primary": true}, {"value": "h@x", "type": "home"}],
            ENTERPRISE_USER_SCHEMA: {"manager": {"value": "m1"}},
            "company": {"sub": 1}
        }),
        ResourceKind::Group => {
            json!({"displayName": "g", "members": [{"value": "u1"}, {"value": "u2", "type": "User"}]})
        }
    };
    let mut doc = prepare(kind, body).expect("fixture is valid");
    doc.as_object_mut().expect("object").insert("id".into(), json!("the-id"));
    doc
}

/// The stored form minus what the server owns, which `prepare` would drop.
fn client_part(doc: &Value) -> Value {
    let mut doc = doc.clone();
    if let Some(map) = doc.as_object_mut() {
        map.remove("id");
        map.remove("meta");
    }
    doc
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn prepare_is_total_and_idempotent(body in json_value(), group in any::<bool>()) {
        let kind = if group { ResourceKind::Group } else { ResourceKind::User };
        if let Ok(out) = prepare(kind, body) {
            prop_assert_eq!(prepare(kind, out.clone()).map_err(|e| e.detail), Ok(out));
        }
    }

    /// Bodies that carry the required attribute, so that most of them are accepted.
    #[test]
    fn prepare_is_idempotent_on_plausible_bodies(
        entries in prop::collection::vec((prop::sample::select(KEYS), json_value()), 0..8),
        group in any::<bool>(),
    ) {
        let kind = if group { ResourceKind::Group } else { ResourceKind::User };
        let mut body: Map<String, Value> = entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        body.insert(if group { "displayName" } else { "userName" }.into(), json!("required"));
        if let Ok(out) = prepare(kind, Value::Object(body)) {
            prop_assert_eq!(prepare(kind, out.clone()).map_err(|e| e.detail), Ok(out));
        }
    }

    #[test]
    fn patch_is_atomic_and_canonical(ops in prop::collection::vec(operation(), 1..5), group in any::<bool>()) {
        let kind = if group { ResourceKind::Group } else { ResourceKind::User };
        let Ok(request) = PatchRequest::parse(json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops})) else {
            return Ok(());
        };
        let original = stored(kind);
        let mut doc = original.clone();
        match request.apply(&mut doc, kind) {
            Err(e) => {
                prop_assert_eq!(&doc, &original);
                prop_assert_eq!(e.status, 400);
                prop_assert!(!e.detail.is_empty());
            }
            Ok(()) => {
                prop_assert_eq!(&doc["id"], &json!("the-id"));
                let client = client_part(&doc);
                prop_assert_eq!(prepare(kind, client.clone()).map_err(|e| e.detail), Ok(client));
            }
        }
    }
}
