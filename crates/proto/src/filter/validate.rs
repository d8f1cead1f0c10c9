//! Filter validation against a resource type: every path names a defined attribute and every
//! comparison makes sense for the attribute's type (RFC 7644 §3.4.2.2), so that a client learns
//! about a typo with a `400 invalidFilter` instead of an empty result.

use super::eval::parse_bool;
use super::{CompValue, CompareOp, Filter};
use crate::error::ScimError;
use crate::path::AttrPath;
use crate::schema::{AttrType, AttributeDef, ResourceType};

impl Filter {
    /// Checks the filter against `rt`: attributes exist (names are case-insensitive, extension
    /// attributes may be URN-qualified or unique bare names), sub-attributes only follow complex
    /// attributes, value paths only follow complex attributes and name their sub-attributes,
    /// `gt`/`ge`/`lt`/`le` are not used on booleans or complex attributes, and values have the
    /// attribute's type (a boolean also accepts the strings `"true"`/`"false"`).
    ///
    /// Errors are `400 invalidFilter`. [`Filter::matches`] does not need this: it evaluates
    /// undefined (custom) attributes too.
    pub fn validate(&self, rt: &ResourceType) -> Result<(), ScimError> {
        check(self, rt, None)
    }
}

/// A value path's attribute and its definition, while checking the element filter.
type Parent<'p, 'a> = Option<(&'p AttrPath, &'a AttributeDef)>;

fn check<'a>(filter: &Filter, rt: &'a ResourceType, parent: Parent<'_, 'a>) -> Result<(), ScimError> {
    match filter {
        Filter::And(a, b) | Filter::Or(a, b) => {
            check(a, rt, parent)?;
            check(b, rt, parent)
        }
        Filter::Not(inner) => check(inner, rt, parent),
        Filter::Present(path) => resolve(rt, parent, path).map(drop),
        Filter::Compare(path, op, value) => check_comparison(path, resolve(rt, parent, path)?, *op, value),
        Filter::ValuePath(path, inner) => {
            if let Some((outer, _)) = parent {
                return Err(ScimError::invalid_filter(format!(
                    "value filters cannot be nested: '{path}[...]' appears inside '{outer}[...]'"
                )));
            }
            if path.sub.is_some() {
                return Err(ScimError::invalid_filter(format!(
                    "a value filter '[...]' follows a multi-valued attribute, not the sub-attribute '{path}'"
                )));
            }
            let def = resolve(rt, None, path)?;
            if def.kind != AttrType::Complex {
                return Err(ScimError::invalid_filter(format!(
                    "'{path}' is a {} attribute: a value filter '[...]' selects elements of a complex \
                     attribute such as emails[type eq \"work\"]",
                    kind_name(def.kind)
                )));
            }
            check(inner, rt, Some((path, def)))
        }
    }
}

/// The definition `path` names, or an error that says why there is none.
fn resolve<'a>(rt: &'a ResourceType, parent: Parent<'_, 'a>, path: &AttrPath) -> Result<&'a AttributeDef, ScimError> {
    if let Some((outer, def)) = parent {
        if path.schema.is_some() || path.sub.is_some() {
            return Err(ScimError::invalid_filter(format!(
                "inside '{outer}[...]' paths are relative to '{outer}': name its sub-attribute alone \
                 (e.g. 'value'), without a schema URN or '.'; found '{path}'"
            )));
        }
        return def.sub_attribute(&path.name).ok_or_else(|| unknown_sub_attribute(outer, def, &path.name));
    }
    if let Some(urn) = &path.schema
        && rt.schema(urn).is_none()
    {
        let known: Vec<&str> = rt.schemas().map(|s| s.id.as_str()).collect();
        return Err(ScimError::invalid_filter(format!(
            "unknown schema '{urn}' in filter: {} resources use {}",
            rt.kind.name(),
            known.join(", ")
        )));
    }
    let top_path = path.parent();
    let Some(top) = rt.resolve(&top_path).map(|r| r.attr) else {
        return Err(ScimError::invalid_filter(format!(
            "unknown attribute '{top_path}' in filter: {} has no such attribute (attribute names are \
             case-insensitive; extension attributes need their schema URN or a unique name)",
            rt.kind.name()
        )));
    };
    let Some(sub) = &path.sub else { return Ok(top) };
    if top.kind != AttrType::Complex {
        return Err(ScimError::invalid_filter(format!(
            "'{top_path}' is a {} attribute and has no sub-attributes, so '{path}' names nothing",
            kind_name(top.kind)
        )));
    }
    top.sub_attribute(sub).ok_or_else(|| unknown_sub_attribute(&top_path, top, sub))
}

fn unknown_sub_attribute(parent: &AttrPath, def: &AttributeDef, name: &str) -> ScimError {
    ScimError::invalid_filter(format!(
        "unknown attribute '{name}' in filter: '{parent}' has no such sub-attribute (it has {})",
        sub_attribute_names(def)
    ))
}

fn sub_attribute_names(def: &AttributeDef) -> String {
    def.sub_attributes.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// Checks `path op value` where `path` is defined by `def`.
fn check_comparison(path: &AttrPath, def: &AttributeDef, op: CompareOp, value: &CompValue) -> Result<(), ScimError> {
    let fail = |why: String| Err(ScimError::invalid_filter(why));
    if def.kind == AttrType::Complex && op.is_ordering() {
        return fail(format!(
            "'{path}' is complex: '{op}' orders simple values only (RFC 7644 §3.4.2.2); compare one of its \
             sub-attributes ({})",
            sub_attribute_names(def)
        ));
    }
    if *value == CompValue::Null {
        // `eq null` / `ne null` ask for absence / presence; nothing else compares with null.
        return match op {
            CompareOp::Eq | CompareOp::Ne => Ok(()),
            _ => fail(format!("'{path} {op} null' compares nothing: null works with eq and ne only (or use pr)")),
        };
    }
    // A complex attribute compared directly compares its `value` sub-attribute.
    let leaf = match def.kind {
        AttrType::Complex => match def.sub_attribute("value") {
            Some(value_def) if value_def.kind != AttrType::Complex => value_def,
            _ => {
                return fail(format!(
                    "'{path}' is complex: compare one of its sub-attributes ({})",
                    sub_attribute_names(def)
                ));
            }
        },
        _ => def,
    };
    match leaf.kind {
        AttrType::Boolean => {
            if op.is_ordering() {
                return fail(format!(
                    "'{path}' is boolean: '{op}' does not apply to booleans (RFC 7644 §3.4.2.2); use eq or ne"
                ));
            }
            if op.is_substring() {
                return fail(format!("'{path}' is boolean: '{op}' applies to strings; use eq or ne"));
            }
            match value {
                CompValue::Bool(_) => Ok(()),
                CompValue::Str(s) if parse_bool(s).is_some() => Ok(()),
                _ => fail(format!("'{path}' is boolean: compare it with true or false, not {value}")),
            }
        }
        AttrType::Integer | AttrType::Decimal => match value {
            CompValue::Number(_) if op.is_substring() => {
                fail(format!("'{path}' is a number: '{op}' applies to strings; use eq, ne, gt, ge, lt or le"))
            }
            CompValue::Number(_) => Ok(()),
            _ => fail(format!("'{path}' is a number: compare it with an unquoted number such as 42, not {value}")),
        },
        AttrType::String | AttrType::Reference | AttrType::Binary | AttrType::DateTime => match value {
            CompValue::Str(_) => Ok(()),
            _ => fail(format!("'{path}' is a {} attribute: quote the value, e.g. \"{value}\"", kind_name(leaf.kind))),
        },
        AttrType::Complex => fail(format!("'{path}' is complex: compare one of its sub-attributes")),
    }
}

/// The RFC 7643 name of a type, for messages.
fn kind_name(kind: AttrType) -> &'static str {
    match kind {
        AttrType::String => "string",
        AttrType::Boolean => "boolean",
        AttrType::Decimal => "decimal",
        AttrType::Integer => "integer",
        AttrType::DateTime => "dateTime",
        AttrType::Binary => "binary",
        AttrType::Reference => "reference",
        AttrType::Complex => "complex",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::parse;
    use crate::schema::{ENTERPRISE_USER_SCHEMA, ResourceKind};

    fn user(text: &str) -> Result<(), ScimError> {
        parse(text).unwrap_or_else(|e| panic!("{text}: {}", e.detail)).validate(ResourceKind::User.resource_type())
    }

    fn group(text: &str) -> Result<(), ScimError> {
        parse(text).unwrap_or_else(|e| panic!("{text}: {}", e.detail)).validate(ResourceKind::Group.resource_type())
    }

    #[track_caller]
    fn rejected(result: Result<(), ScimError>, needle: &str) {
        match result {
            Ok(()) => panic!("accepted; expected an error containing {needle:?}"),
            Err(e) => {
                assert_eq!(e.scim_type, Some(crate::ScimType::InvalidFilter));
                assert!(e.detail.contains(needle), "{:?} lacks {needle:?}", e.detail);
            }
        }
    }

    #[test]
    fn accepts_defined_attributes() {
        let urn = ENTERPRISE_USER_SCHEMA;
        for text in [
            r#"userName eq "bjensen""#.to_owned(),
            r#"USERNAME sw "b" and name.GIVENNAME co "a""#.to_owned(),
            r#"id eq "1" or externalId eq "x""#.to_owned(),
            r#"meta.created gt "2020-01-01T00:00:00Z" and meta.lastModified le "2021-01-01T00:00:00Z""#.to_owned(),
            r#"meta.resourceType eq "User" and meta.location pr and meta.version eq "W/\"1\"""#.to_owned(),
            r#"active eq true and active ne "False""#.to_owned(),
            "title eq null or name ne null".to_owned(),
            r#"emails[type eq "work" and value co "@corp"]"#.to_owned(),
            r#"emails[type eq "work"].value eq "x""#.to_owned(),
            r#"emails eq "x" and emails co "@corp""#.to_owned(),
            r#"emails[primary eq true]"#.to_owned(),
            format!(r#"{urn}:department eq "Finance""#),
            format!(r#"{urn}:manager.value eq "x""#),
            r#"employeeNumber eq "701984" and manager.displayName pr"#.to_owned(),
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName pr"#.to_owned(),
            r#"not (emails[not (type eq "home")])"#.to_owned(),
        ] {
            user(&text).unwrap_or_else(|e| panic!("{text}: {}", e.detail));
        }
        group(r#"displayName eq "Admins" and members[value eq "1"] and members.display pr"#).unwrap();
        group(r#"id eq "1" and meta.lastModified gt "2020-01-01T00:00:00Z""#).unwrap();
    }

    #[test]
    fn rejects_unknown_attributes() {
        rejected(
            user("foo eq 1"),
            "unknown attribute 'foo' in filter: User has no such attribute (attribute names are case-insensitive; \
             extension attributes need their schema URN or a unique name)",
        );
        rejected(user(r#"company eq "Acme""#), "unknown attribute 'company'");
        rejected(user(r#"name.middle eq "x""#), "'name' has no such sub-attribute (it has formatted, familyName");
        rejected(user(r#"userName.value eq "x""#), "'userName' is a string attribute and has no sub-attributes");
        rejected(
            user(r#"emails[kind eq "x"]"#),
            "unknown attribute 'kind' in filter: 'emails' has no such sub-attribute",
        );
        rejected(user("urn:example:foo:bar pr"), "unknown schema 'urn:example:foo'");
        rejected(user(&format!("{ENTERPRISE_USER_SCHEMA}:userName pr")), "unknown attribute");
        rejected(group("userName pr"), "Group has no such attribute");
        rejected(group("employeeNumber pr"), "Group has no such attribute");
    }

    #[test]
    fn rejects_misused_value_paths() {
        rejected(user("userName[value pr]"), "'userName' is a string attribute: a value filter");
        let nested = Filter::ValuePath(
            AttrPath::simple("emails"),
            Box::new(Filter::ValuePath(AttrPath::simple("value"), Box::new(Filter::Present(AttrPath::simple("x"))))),
        );
        rejected(nested.validate(ResourceKind::User.resource_type()), "cannot be nested");
        let qualified = Filter::ValuePath(
            AttrPath::simple("emails"),
            Box::new(Filter::Present(AttrPath::with_sub("emails", "type"))),
        );
        rejected(qualified.validate(ResourceKind::User.resource_type()), "relative to 'emails'");
        let on_sub = Filter::ValuePath(
            AttrPath::with_sub("name", "givenName"),
            Box::new(Filter::Present(AttrPath::simple("x"))),
        );
        rejected(on_sub.validate(ResourceKind::User.resource_type()), "not the sub-attribute");
    }

    #[test]
    fn rejects_type_mismatches() {
        rejected(user("active gt true"), "'active' is boolean: 'gt' does not apply");
        rejected(user(r#"active co "t""#), "'active' is boolean: 'co' applies to strings");
        rejected(user(r#"active eq "yes""#), "compare it with true or false, not \"yes\"");
        rejected(user("active eq 1"), "compare it with true or false, not 1");
        rejected(user(r#"emails[primary eq "x"]"#), "'primary' is boolean");
        rejected(user(r#"name gt "a""#), "'name' is complex: 'gt' orders simple values only");
        rejected(user(r#"emails lt "a""#), "'emails' is complex");
        rejected(user(r#"name eq "a""#), "'name' is complex: compare one of its sub-attributes (formatted");
        rejected(user("employeeNumber eq 701984"), "quote the value, e.g. \"701984\"");
        rejected(user("userName eq true"), "'userName' is a string attribute: quote the value");
        rejected(user("userName gt null"), "'userName gt null' compares nothing");
        rejected(user("title co null"), "compares nothing");
    }
}
