//! Property tests of the filter language: printing and parsing are inverse, parsing never
//! panics, and evaluation obeys the laws of logic.

use proptest::prelude::*;
use scim_proto::filter::{self, CompValue, CompareOp, Filter};
use scim_proto::path::{AttrPath, PatchPath};
use scim_proto::schema::{ENTERPRISE_USER_SCHEMA, ResourceKind, USER_SCHEMA};
use serde_json::{Value, json};

fn config() -> ProptestConfig {
    ProptestConfig { cases: 256, ..ProptestConfig::default() }
}

/// An attribute name the grammar can express: not one of the keywords `and`, `or`, `not`.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        9 => "[a-zA-Z][a-zA-Z0-9_-]{0,8}",
        1 => Just("$ref".to_owned()),
    ]
    .prop_filter("keyword", |n| !["and", "or", "not"].iter().any(|k| n.eq_ignore_ascii_case(k)))
}

fn schema() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        6 => Just(None),
        1 => Just(Some(USER_SCHEMA.to_owned())),
        1 => Just(Some(ENTERPRISE_USER_SCHEMA.to_owned())),
        1 => Just(Some("urn:example:params:custom:1.0:Thing".to_owned())),
    ]
}

fn path() -> impl Strategy<Value = AttrPath> {
    (schema(), name(), prop::option::of(name())).prop_map(|(schema, name, sub)| AttrPath { schema, name, sub })
}

fn op() -> impl Strategy<Value = CompareOp> {
    prop::sample::select(CompareOp::ALL.to_vec())
}

fn value() -> impl Strategy<Value = CompValue> {
    prop_oneof![
        Just(CompValue::Null),
        any::<bool>().prop_map(CompValue::Bool),
        any::<i64>().prop_map(|n| CompValue::Number(n.into())),
        any::<u64>().prop_map(|n| CompValue::Number(n.into())),
        any::<f64>().prop_filter_map("finite", serde_json::Number::from_f64).prop_map(CompValue::Number),
        any::<String>().prop_map(CompValue::Str),
        r#"[a-z"\\/ \]\[()]{0,12}"#.prop_map(CompValue::Str),
    ]
}

fn combine(inner: BoxedStrategy<Filter>) -> impl Strategy<Value = Filter> {
    prop_oneof![
        (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
        (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
        inner.prop_map(|a| Filter::Not(Box::new(a))),
    ]
}

/// A filter inside a value path: relative, plain names and no nested value paths.
fn element_filter() -> impl Strategy<Value = Filter> {
    let leaf = prop_oneof![
        name().prop_map(|n| Filter::Present(AttrPath::simple(&n))),
        (name(), op(), value()).prop_map(|(n, op, v)| Filter::Compare(AttrPath::simple(&n), op, v)),
    ];
    leaf.prop_recursive(3, 8, 2, |inner| combine(inner.boxed()))
}

/// Any filter the grammar can express.
fn any_filter() -> impl Strategy<Value = Filter> {
    let value_path = (schema(), name(), element_filter())
        .prop_map(|(schema, name, inner)| Filter::ValuePath(AttrPath { schema, name, sub: None }, Box::new(inner)));
    let leaf = prop_oneof![
        3 => path().prop_map(Filter::Present),
        6 => (path(), op(), value()).prop_map(|(p, op, v)| Filter::Compare(p, op, v)),
        1 => value_path,
    ];
    leaf.prop_recursive(4, 24, 2, |inner| combine(inner.boxed()))
}

/// Filter-like token soup, more likely than random text to get deep into the parser.
fn soup() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        prop::sample::select(vec![
            "(", ")", "[", "]", " and ", " or ", "not", " not ", "\"", "\\", "\\u", "d83d", "\\ude00", "emails",
            "type", ".value", ".", " eq ", " pr", " gt ", "1", "-1.5e3", "true", "null", " ", "urn:a:b:", "é",
        ])
        .prop_map(str::to_owned),
        "[a-z]{1,3}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(token, 0..40).prop_map(|tokens| tokens.concat())
}

/// Users with the attributes [`user_filter`] talks about, each sometimes absent.
fn user() -> impl Strategy<Value = Value> {
    let word = || prop::sample::select(vec!["alice", "Bob", "CAROL", "", "work", "home", "a@x.org"]);
    let email = (word(), prop::sample::select(vec!["work", "home", "WORK"]), any::<bool>())
        .prop_map(|(value, kind, primary)| json!({"value": value, "type": kind, "primary": primary}));
    (
        prop::option::of(word()),
        prop::option::of(any::<bool>()),
        prop::option::of(prop::collection::vec(email, 0..3)),
        prop::option::of(word()),
        prop::option::of(0..4i64),
        prop::option::of(prop::sample::select(vec!["2020-01-01T00:00:00Z", "2021-06-01T12:00:00+02:00"])),
        prop::option::of(word()),
    )
        .prop_map(|(user_name, active, emails, title, logins, modified, department)| {
            let mut user = json!({"schemas": [USER_SCHEMA]});
            let fields = [
                ("userName", user_name.map(Value::from)),
                ("active", active.map(Value::from)),
                ("emails", emails.map(Value::from)),
                ("title", title.map(Value::from)),
                ("loginCount", logins.map(Value::from)),
                ("meta", modified.map(|m| json!({"lastModified": m}))),
                (ENTERPRISE_USER_SCHEMA, department.map(|d| json!({"department": d}))),
            ];
            for (key, value) in fields {
                if let Some(value) = value {
                    user[key] = value;
                }
            }
            user
        })
}

/// Single-valued attributes of [`user`], for the `ne`/`not eq` law.
const SINGLE_VALUED: [&str; 6] = ["userName", "active", "title", "loginCount", "meta.lastModified", "department"];

fn user_value() -> impl Strategy<Value = CompValue> {
    prop_oneof![
        prop::sample::select(vec!["alice", "ALICE", "bob", "", "work", "a@", "2020-06-01T00:00:00Z", "true"])
            .prop_map(|s| CompValue::Str(s.to_owned())),
        (0..4i64).prop_map(|n| CompValue::Number(n.into())),
        any::<bool>().prop_map(CompValue::Bool),
        Just(CompValue::Null),
    ]
}

/// Filters over [`user`]'s attributes, so that they match some users and not others.
fn user_filter() -> impl Strategy<Value = Filter> {
    let paths = prop::sample::select(vec![
        "userName",
        "active",
        "title",
        "emails",
        "emails.value",
        "emails.type",
        "loginCount",
        "meta.lastModified",
        "department",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        "nosuch",
    ])
    .prop_map(|p| AttrPath::parse(p).unwrap_or_else(|e| panic!("{p}: {}", e.detail)));
    let element = prop_oneof![
        prop::sample::select(vec!["value", "type", "primary"]).prop_map(|n| Filter::Present(AttrPath::simple(n))),
        (prop::sample::select(vec!["value", "type", "primary"]), op(), user_value())
            .prop_map(|(n, op, v)| Filter::Compare(AttrPath::simple(n), op, v)),
    ];
    let leaf = prop_oneof![
        2 => paths.clone().prop_map(Filter::Present),
        6 => (paths, op(), user_value()).prop_map(|(p, op, v)| Filter::Compare(p, op, v)),
        2 => element.prop_map(|f| Filter::ValuePath(AttrPath::simple("emails"), Box::new(f))),
    ];
    leaf.prop_recursive(3, 12, 2, |inner| combine(inner.boxed()))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn print_then_parse_is_identity(f in any_filter()) {
        let text = f.to_string();
        let parsed = filter::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {}", e.detail)))?;
        prop_assert_eq!(&parsed, &f, "{}", text);
        prop_assert_eq!(parsed.to_string(), text);
    }

    #[test]
    fn parse_never_panics_on_text(text in any::<String>()) {
        if let Ok(f) = filter::parse(&text) {
            prop_assert_eq!(filter::parse(&f.to_string()), Ok(f));
        }
        let _ = PatchPath::parse(&text);
    }

    #[test]
    fn parse_never_panics_on_token_soup(text in soup()) {
        let rt = ResourceKind::User.resource_type();
        match filter::parse(&text) {
            Ok(f) => {
                // Whatever parses prints canonically, and evaluates and validates without panicking.
                prop_assert_eq!(filter::parse(&f.to_string()), Ok(f.clone()));
                let _ = f.matches(&json!({"emails": [{"type": "work", "value": 1}]}), rt);
                let _ = f.validate(rt);
            }
            Err(e) => prop_assert!(e.detail.starts_with("invalid filter"), "{}", e.detail),
        }
        if let Ok(path) = PatchPath::parse(&text) {
            prop_assert_eq!(PatchPath::parse(&path.to_string()), Ok(path));
        }
        let emails = format!("emails[{text}]");
        if let Ok(path) = PatchPath::parse(&emails) {
            prop_assert_eq!(PatchPath::parse(&path.to_string()), Ok(path));
        }
    }

    #[test]
    fn not_negates(u in user(), f in user_filter()) {
        let rt = ResourceKind::User.resource_type();
        let matched = f.matches(&u, rt);
        prop_assert_eq!(Filter::Not(Box::new(f.clone())).matches(&u, rt), !matched);
        // Printing does not change the meaning.
        let reparsed = filter::parse(&f.to_string()).map_err(|e| TestCaseError::fail(e.detail))?;
        prop_assert_eq!(reparsed.matches(&u, rt), matched);
    }

    #[test]
    fn de_morgan(u in user(), a in user_filter(), b in user_filter()) {
        let rt = ResourceKind::User.resource_type();
        let not = |f: Filter| Filter::Not(Box::new(f));
        let and = Filter::And(Box::new(a.clone()), Box::new(b.clone()));
        let or_of_nots = Filter::Or(Box::new(not(a.clone())), Box::new(not(b.clone())));
        prop_assert_eq!(not(and.clone()).matches(&u, rt), or_of_nots.matches(&u, rt));
        prop_assert_eq!(and.matches(&u, rt), a.matches(&u, rt) && b.matches(&u, rt));
    }

    #[test]
    fn ne_is_not_eq_on_single_valued_attributes(
        u in user(),
        attr in prop::sample::select(SINGLE_VALUED.to_vec()),
        v in user_value(),
    ) {
        let rt = ResourceKind::User.resource_type();
        let path = AttrPath::parse(attr).map_err(|e| TestCaseError::fail(e.detail))?;
        let eq = Filter::Compare(path.clone(), CompareOp::Eq, v.clone());
        let ne = Filter::Compare(path, CompareOp::Ne, v);
        prop_assert_eq!(ne.matches(&u, rt), !eq.matches(&u, rt));
    }
}
