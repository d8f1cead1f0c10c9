//! In-memory filter evaluation against a JSON resource (RFC 7644 §3.4.2.2).
//!
//! Semantics, where the RFC leaves room:
//!
//! - Attribute names match JSON keys case-insensitively. A URN-qualified path reads under the
//!   JSON key equal to the URN (`{"urn:...:enterprise:2.0:User": {"department": "x"}}`); an
//!   unqualified name that is not at the top level is looked up in the extension that defines it.
//! - `caseExact` and the attribute type come from the resource type's schema; attributes no
//!   schema defines (custom attributes such as `company`) compare case-insensitively as plain
//!   JSON values.
//! - A multi-valued attribute matches if any of its values does. A complex value compared
//!   directly (`emails eq "x"`) is compared through its `value` sub-attribute.
//! - A missing attribute, `null` and `[]` are all "absent": `eq null` matches them, `ne` with a
//!   non-null value matches them (they are not equal to it), every other operator does not.
//! - `ne` is the negation of `eq` value by value, so on a multi-valued attribute `ne` matches
//!   when any value differs.
//! - `pr` means present: not null, not an empty string, not an empty array or object.
//! - Ordering compares numbers numerically, dateTimes as instants (when the attribute is a
//!   dateTime or both sides parse as RFC 3339) and other strings lexicographically after case
//!   folding; it never matches booleans, null or complex values. `co`/`sw`/`ew` apply to
//!   strings only.
//! - A stored boolean equals the strings `"true"`/`"false"` (any case), which IdPs send.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Number, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{CompValue, CompareOp, Filter};
use crate::json::get_ci;
use crate::path::AttrPath;
use crate::schema::{AttrType, AttributeDef, ResourceType};

impl Filter {
    /// True if `resource` (a resource's JSON) matches the filter, with attribute
    /// characteristics taken from `rt`. Never fails: what does not match is `false`.
    pub fn matches(&self, resource: &Value, rt: &ResourceType) -> bool {
        eval(self, resource, Scope::Root, rt)
    }
}

/// Every value a top-level `path` reaches in `resource`, read the way filters read it (arrays
/// flattened one level; empty when absent). For explaining why a filter did not match.
pub fn values_of<'v>(resource: &'v Value, rt: &ResourceType, path: &AttrPath) -> Vec<&'v Value> {
    values_at(resource, Scope::Root, rt, path)
}

/// Compares one attribute value with a filter's comparison value: the single comparison
/// routine, shared with the SQL store (through an SQLite function) so both agree.
///
/// `actual` is the stored value (`null` when the attribute is absent); an array matches if any
/// element does, and an object is compared through its `value` member. `case_exact` and `kind`
/// are the attribute's `caseExact` and type, if a schema defines it.
pub fn compare_values(
    op: CompareOp,
    actual: &Value,
    expected: &CompValue,
    case_exact: bool,
    kind: Option<AttrType>,
) -> bool {
    match actual {
        Value::Array(items) if !items.is_empty() => {
            items.iter().any(|item| compare_one(op, item, expected, case_exact, kind))
        }
        Value::Array(_) => compare_one(op, &Value::Null, expected, case_exact, kind),
        _ => compare_one(op, actual, expected, case_exact, kind),
    }
}

/// Compares a single (non-array) value.
fn compare_one(op: CompareOp, actual: &Value, expected: &CompValue, case_exact: bool, kind: Option<AttrType>) -> bool {
    if op == CompareOp::Ne {
        return !compare_one(CompareOp::Eq, actual, expected, case_exact, kind);
    }
    match (actual, expected) {
        (Value::Null, CompValue::Null) => op == CompareOp::Eq,
        (Value::Null, _) | (_, CompValue::Null) => false,
        // RFC 7644 §3.4.2.2: a complex value without a sub-attribute compares its `value`.
        (Value::Object(map), _) => match get_ci(map, "value") {
            Some(inner @ (Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null)) => {
                compare_one(op, inner, expected, case_exact, kind)
            }
            _ => false,
        },
        (Value::Bool(a), CompValue::Bool(b)) => op == CompareOp::Eq && a == b,
        (Value::Bool(a), CompValue::Str(s)) => op == CompareOp::Eq && parse_bool(s) == Some(*a),
        (Value::Number(a), CompValue::Number(b)) => !op.is_substring() && holds(op, compare_numbers(a, b)),
        (Value::String(a), CompValue::Str(b)) => compare_strings(op, a, b, case_exact, kind),
        _ => false,
    }
}

/// The boolean an IdP meant by `"true"` / `"False"`.
pub(super) fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Whether an ordering result satisfies `eq`, `gt`, `ge`, `lt` or `le`.
fn holds(op: CompareOp, ordering: Option<Ordering>) -> bool {
    let Some(ordering) = ordering else {
        return false;
    };
    match op {
        CompareOp::Eq => ordering.is_eq(),
        CompareOp::Ne => ordering.is_ne(),
        CompareOp::Gt => ordering.is_gt(),
        CompareOp::Ge => ordering.is_ge(),
        CompareOp::Lt => ordering.is_lt(),
        CompareOp::Le => ordering.is_le(),
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

/// Exact for integers (so large ids stay distinct), `f64` otherwise (so `1 eq 1.0`).
fn compare_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    let exact = |n: &Number| n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from));
    match (exact(a), exact(b)) {
        (Some(a), Some(b)) => Some(a.cmp(&b)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

fn compare_strings(op: CompareOp, actual: &str, expected: &str, case_exact: bool, kind: Option<AttrType>) -> bool {
    // Instants, not text: "2024-01-01T01:00:00+01:00" equals "2024-01-01T00:00:00Z".
    if (op.is_ordering() || (op == CompareOp::Eq && kind == Some(AttrType::DateTime)))
        && let (Ok(a), Ok(b)) = (OffsetDateTime::parse(actual, &Rfc3339), OffsetDateTime::parse(expected, &Rfc3339))
    {
        return holds(op, Some(a.cmp(&b)));
    }
    let (actual, expected) = if case_exact {
        (Cow::Borrowed(actual), Cow::Borrowed(expected))
    } else {
        (Cow::Owned(actual.to_lowercase()), Cow::Owned(expected.to_lowercase()))
    };
    match op {
        CompareOp::Co => actual.contains(&*expected),
        CompareOp::Sw => actual.starts_with(&*expected),
        CompareOp::Ew => actual.ends_with(&*expected),
        _ => holds(op, Some(actual.cmp(&expected))),
    }
}

/// Where relative paths are resolved: the resource itself, or an element of a value path's
/// attribute (whose definition, if known, gives the sub-attributes' characteristics).
#[derive(Clone, Copy)]
enum Scope<'a> {
    Root,
    Element(Option<&'a AttributeDef>),
}

fn eval(filter: &Filter, base: &Value, scope: Scope<'_>, rt: &ResourceType) -> bool {
    match filter {
        Filter::And(a, b) => eval(a, base, scope, rt) && eval(b, base, scope, rt),
        Filter::Or(a, b) => eval(a, base, scope, rt) || eval(b, base, scope, rt),
        Filter::Not(inner) => !eval(inner, base, scope, rt),
        Filter::Present(path) => values_at(base, scope, rt, path).iter().any(|v| is_present(v)),
        Filter::Compare(path, op, expected) => {
            let (case_exact, kind) = characteristics(definition(scope, rt, path));
            let values = values_at(base, scope, rt, path);
            if values.is_empty() {
                return compare_values(*op, &Value::Null, expected, case_exact, kind);
            }
            values.iter().any(|v| compare_values(*op, v, expected, case_exact, kind))
        }
        Filter::ValuePath(path, inner) => {
            let element_scope = Scope::Element(definition(scope, rt, path));
            values_at(base, scope, rt, path)
                .iter()
                .any(|element| element.is_object() && eval(inner, element, element_scope, rt))
        }
    }
}

/// The definition `path` leads to, if a schema defines it.
fn definition<'a>(scope: Scope<'a>, rt: &'a ResourceType, path: &AttrPath) -> Option<&'a AttributeDef> {
    match scope {
        Scope::Root => rt.resolve(path).map(|r| r.leaf()),
        Scope::Element(parent) => {
            let attr = parent?.sub_attribute(&path.name)?;
            match &path.sub {
                Some(sub) => attr.sub_attribute(sub),
                None => Some(attr),
            }
        }
    }
}

/// `caseExact` and type to compare with: a complex attribute compares through `value`;
/// undefined attributes compare case-insensitively.
fn characteristics(def: Option<&AttributeDef>) -> (bool, Option<AttrType>) {
    match def {
        Some(def) if def.kind == AttrType::Complex => match def.sub_attribute("value") {
            Some(value) => (value.case_exact, Some(value.kind)),
            None => (def.case_exact, Some(def.kind)),
        },
        Some(def) => (def.case_exact, Some(def.kind)),
        None => (false, None),
    }
}

/// Every value `path` reaches in `base`, with arrays flattened one level: `emails.value` on
/// two emails gives both values. Empty when the attribute is absent.
fn values_at<'v>(base: &'v Value, scope: Scope<'_>, rt: &ResourceType, path: &AttrPath) -> Vec<&'v Value> {
    let mut out = Vec::new();
    let Some(top) = attribute(base, scope, rt, path) else {
        return out;
    };
    match &path.sub {
        None => flatten_into(top, &mut out),
        Some(sub) => match top {
            Value::Array(items) => {
                for item in items {
                    if let Some(v) = item.as_object().and_then(|o| get_ci(o, sub)) {
                        flatten_into(v, &mut out);
                    }
                }
            }
            Value::Object(map) => {
                if let Some(v) = get_ci(map, sub) {
                    flatten_into(v, &mut out);
                }
            }
            _ => {}
        },
    }
    out
}

fn flatten_into<'v>(value: &'v Value, out: &mut Vec<&'v Value>) {
    match value {
        Value::Array(items) => out.extend(items),
        other => out.push(other),
    }
}

/// The JSON value of the top-level attribute (or element member) `path` names.
fn attribute<'v>(base: &'v Value, scope: Scope<'_>, rt: &ResourceType, path: &AttrPath) -> Option<&'v Value> {
    let object = base.as_object()?;
    if let Scope::Element(_) = scope {
        return get_ci(object, &path.name);
    }
    match &path.schema {
        Some(urn) if !urn.eq_ignore_ascii_case(&rt.core.id) => get_ci(get_ci(object, urn)?.as_object()?, &path.name),
        Some(_) => get_ci(object, &path.name),
        None => get_ci(object, &path.name).or_else(|| {
            // `employeeNumber` lives under the enterprise extension's URN key.
            let resolved = rt.resolve(&path.parent())?;
            if !resolved.in_extension {
                return None;
            }
            get_ci(get_ci(object, &resolved.schema.id)?.as_object()?, &path.name)
        }),
    }
}

/// `pr`: not null, not an empty string, not an empty array or object.
fn is_present(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::filter::parse;
    use crate::schema::{ENTERPRISE_USER_SCHEMA, ResourceKind};

    fn user() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_USER_SCHEMA],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "externalId": "Ext-42",
            "userName": "BJensen@example.com",
            "name": {"familyName": "Jensen", "givenName": "Barbara", "formatted": "Ms. Barbara J Jensen III"},
            "displayName": "Babs Jensen",
            "nickName": "",
            "title": null,
            "userType": "Employee",
            "active": true,
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "phoneNumbers": [],
            "groups": [{"value": "e9e30dba", "display": "Tour Guides"}],
            "company": "Acme Corp",
            "loginCount": 7,
            "score": 2.5,
            "meta": {
                "resourceType": "User",
                "created": "2010-01-23T04:56:22Z",
                "lastModified": "2011-05-13T04:42:34Z",
                "version": "W/\"3694e05e9dff590\""
            },
            ENTERPRISE_USER_SCHEMA: {
                "employeeNumber": "701984",
                "department": "Tour Operations",
                "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John Smith"}
            }
        })
    }

    #[track_caller]
    fn check(filter: &str, want: bool) {
        let rt = ResourceKind::User.resource_type();
        let f = parse(filter).unwrap_or_else(|e| panic!("{filter}: {}", e.detail));
        assert_eq!(f.matches(&user(), rt), want, "{filter}");
        assert_eq!(Filter::Not(Box::new(f)).matches(&user(), rt), !want, "not ({filter})");
    }

    #[test]
    fn eq_and_ne() {
        check(r#"userName eq "bjensen@example.com""#, true);
        check(r#"USERNAME EQ "BJENSEN@EXAMPLE.COM""#, true);
        check(r#"userName eq "bjensen""#, false);
        check(r#"userName ne "bjensen""#, true);
        check(r#"userName ne "bjensen@EXAMPLE.com""#, false);
        // id and externalId are caseExact.
        check(r#"externalId eq "Ext-42""#, true);
        check(r#"externalId eq "ext-42""#, false);
        check(r#"id eq "2819C223-7F76-453A-919D-413861904646""#, false);
        check(r#"id eq "2819c223-7f76-453a-919d-413861904646""#, true);
        check(r#"name.familyName eq "jensen""#, true);
        check(r#"meta.resourceType eq "User""#, true);
        check(r#"meta.resourceType eq "user""#, false);
    }

    #[test]
    fn substring_operators() {
        check(r#"userName co "JENSEN""#, true);
        check(r#"userName sw "bj""#, true);
        check(r#"userName ew "@EXAMPLE.COM""#, true);
        check(r#"userName sw "jensen""#, false);
        check(r#"userName ew "bj""#, false);
        check(r#"userName co """#, true);
        check(r#"externalId co "ext""#, false);
        check(r#"externalId co "Ext""#, true);
        // Not on numbers or booleans.
        check("loginCount co 7", false);
        check("active sw true", false);
    }

    #[test]
    fn ordering() {
        check(r#"userName gt "a""#, true);
        check(r#"userName gt "C""#, false);
        check(r#"userName lt "C""#, true);
        check(r#"userName ge "BJENSEN@example.com""#, true);
        check(r#"userName le "bjensen@example.com""#, true);
        check("loginCount gt 6", true);
        check("loginCount ge 7.0", true);
        check("loginCount lt 7", false);
        check("loginCount le 7", true);
        check("score gt 2", true);
        check("score lt 2.6", true);
        check("active gt false", false);
        check("name gt \"a\"", false);
        check("nosuch gt 1", false);
    }

    #[test]
    fn date_times_compare_as_instants() {
        check(r#"meta.lastModified gt "2011-05-13T04:42:33Z""#, true);
        check(r#"meta.lastModified gt "2011-05-13T04:42:34Z""#, false);
        check(r#"meta.lastModified ge "2011-05-13T04:42:34.000Z""#, true);
        check(r#"meta.lastModified eq "2011-05-13T06:42:34+02:00""#, true);
        check(r#"meta.lastModified lt "2011-05-13T06:42:35+02:00""#, true);
        check(r#"meta.created lt "2010-01-23T05:26:22+00:30""#, false);
        check(r#"meta.created le "2010-01-23T05:26:22+00:30""#, true);
        check(r#"meta.lastModified sw "2011-05""#, true);
    }

    #[test]
    fn numbers() {
        check("loginCount eq 7", true);
        check("loginCount eq 7.0", true);
        check("loginCount eq 7e0", true);
        check("loginCount ne 7", false);
        check("score eq 2.5", true);
        check("score eq 25e-1", true);
        check(r#"loginCount eq "7""#, false);
        assert!(compare_values(CompareOp::Gt, &json!(u64::MAX), &CompValue::Number((i64::MAX).into()), false, None));
        assert!(!compare_values(
            CompareOp::Eq,
            &json!(9007199254740993_i64),
            &CompValue::Number(9007199254740992_i64.into()),
            false,
            None
        ));
    }

    #[test]
    fn booleans() {
        check("active eq true", true);
        check("active eq false", false);
        check("active ne false", true);
        check(r#"active eq "True""#, true);
        check(r#"active eq "false""#, false);
        check(r#"active eq "yes""#, false);
        check("active eq 1", false);
        check("emails[primary eq true].value ew \"example.com\"", true);
    }

    #[test]
    fn null_missing_and_present() {
        check("title eq null", true);
        check("nosuch eq null", true);
        check("phoneNumbers eq null", true);
        check("userName eq null", false);
        check("userName ne null", true);
        check("title ne null", false);
        check(r#"title ne "x""#, true);
        check(r#"nosuch ne "x""#, true);
        check(r#"title eq "x""#, false);
        check(r#"nosuch co "x""#, false);
        check("nosuch gt 1", false);
        check("title pr", false);
        check("nickName pr", false);
        check("phoneNumbers pr", false);
        check("nosuch pr", false);
        check("userName pr", true);
        check("name pr", true);
        check("emails pr", true);
        check("emails.type pr", true);
        check("emails.display pr", false);
        check("active pr", true);
    }

    #[test]
    fn multi_valued() {
        check(r#"emails eq "babs@jensen.org""#, true);
        check(r#"emails co "@JENSEN""#, true);
        check(r#"emails.value eq "BJENSEN@example.com""#, true);
        check(r#"emails.type eq "home""#, true);
        check(r#"emails.type eq "other""#, false);
        // Any value that differs.
        check(r#"emails.type ne "home""#, true);
        check(r#"groups eq "e9e30dba""#, true);
        check(r#"schemas eq "URN:ietf:params:scim:schemas:core:2.0:User""#, true);
        check(r#"name eq "Jensen""#, false);
    }

    #[test]
    fn value_paths() {
        check(r#"emails[type eq "work" and value co "@example.com"]"#, true);
        check(r#"emails[type eq "home" and value co "@example.com"]"#, false);
        check(r#"emails[type eq "work"].value eq "bjensen@example.com""#, true);
        check(r#"emails[type eq "home"].value eq "bjensen@example.com""#, false);
        check(r#"emails[type eq "home"].primary pr"#, false);
        check(r#"emails[type eq "work"].primary pr"#, true);
        check(r#"emails[not (type eq "work")]"#, true);
        check(r#"emails[TYPE eq "WORK"]"#, true);
        check(r#"phoneNumbers[type pr]"#, false);
        check(r#"nosuch[type pr]"#, false);
        check(r#"name[givenName eq "barbara"]"#, true);
        check(r#"userName[value pr]"#, false);
        check(r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"] or title pr"#, true);
    }

    #[test]
    fn extension_attributes() {
        let urn = ENTERPRISE_USER_SCHEMA;
        check(&format!(r#"{urn}:department eq "tour operations""#), true);
        check(&format!(r#"{}:department eq "Tour Operations""#, urn.to_uppercase().replace("URN", "urn")), true);
        check(r#"department eq "Tour Operations""#, true);
        check(r#"employeeNumber eq "701984""#, true);
        check(&format!(r#"{urn}:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#), true);
        check(r#"manager.displayName sw "john""#, true);
        check(r#"manager eq "26118915-6090-4610-87e4-49d8ca9f808d""#, true);
        check(&format!(r#"{urn}:userName pr"#), false);
        check(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "bj""#, true);
        check(r#"urn:example:unknown:nothing pr"#, false);
    }

    #[test]
    fn custom_attributes_are_case_insensitive() {
        check(r#"company eq "acme corp""#, true);
        check(r#"COMPANY sw "ACME""#, true);
        check(r#"company ne "Other""#, true);
    }

    #[test]
    fn logic() {
        check(r#"userName sw "x" or userType eq "Employee" and active eq true"#, true);
        check(r#"(userName sw "x" or userType eq "Employee") and active eq false"#, false);
        check(r#"not (active eq true) or title pr"#, false);
    }

    #[test]
    fn non_object_resources_match_nothing() {
        let rt = ResourceKind::User.resource_type();
        for resource in [json!(null), json!([{"userName": "b"}]), json!("userName")] {
            assert!(!parse("userName pr or userName eq \"b\"").unwrap().matches(&resource, rt));
            assert!(parse("userName ne \"b\"").unwrap().matches(&resource, rt));
        }
    }

    #[test]
    fn longest_chains_evaluate_print_and_drop() {
        let rt = ResourceKind::User.resource_type();
        let terms = vec![r#"id eq "x""#; crate::filter::MAX_FILTER_TERMS];
        for joiner in [" or ", " and "] {
            let text = terms.join(joiner);
            let f = parse(&text).unwrap();
            assert!(!f.matches(&user(), rt));
            assert_eq!(f.to_string(), text);
            assert!(f.validate(rt).is_ok());
        }
    }

    #[test]
    fn compare_values_directly() {
        let s = |t: &str| CompValue::Str(t.to_owned());
        assert!(compare_values(CompareOp::Eq, &json!("ÉCOLE"), &s("école"), false, None));
        assert!(!compare_values(CompareOp::Eq, &json!("ÉCOLE"), &s("école"), true, None));
        assert!(compare_values(CompareOp::Eq, &json!(["a", "b"]), &s("B"), false, Some(AttrType::String)));
        assert!(compare_values(CompareOp::Eq, &json!([]), &CompValue::Null, false, None));
        assert!(compare_values(CompareOp::Ne, &json!([]), &s("x"), false, None));
        assert!(compare_values(CompareOp::Eq, &json!({"value": "x", "type": "work"}), &s("X"), false, None));
        assert!(!compare_values(CompareOp::Eq, &json!({"type": "work"}), &CompValue::Null, false, None));
        assert!(compare_values(CompareOp::Ne, &json!({"type": "work"}), &s("x"), false, None));
        assert!(!compare_values(CompareOp::Co, &json!(12), &CompValue::Number(1.into()), false, None));
        // Dates as text when the schema does not say dateTime and the operator is eq.
        let (a, b) = ("2024-01-01T00:00:00Z", "2024-01-01T01:00:00+01:00");
        assert!(!compare_values(CompareOp::Eq, &json!(a), &s(b), false, None));
        assert!(compare_values(CompareOp::Eq, &json!(a), &s(b), false, Some(AttrType::DateTime)));
        assert!(compare_values(CompareOp::Ge, &json!(a), &s(b), false, None));
        // A dateTime that does not parse falls back to text.
        assert!(compare_values(CompareOp::Gt, &json!("2024-02"), &s("2024-01"), false, Some(AttrType::DateTime)));
    }
}
