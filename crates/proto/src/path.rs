//! Attribute paths (RFC 7644 §3.10): `[URN ":"] ATTRNAME ["." subAttr]`.

use std::fmt;

use crate::error::ScimError;
use crate::filter::Filter;

/// A parsed attribute path such as `name.givenName` or
/// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`.
///
/// Names keep the case they were written in; comparison against schemas is case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrPath {
    /// The schema URN the path was qualified with, if any.
    pub schema: Option<String>,
    /// The attribute name.
    pub name: String,
    /// The sub-attribute name, if any.
    pub sub: Option<String>,
}

/// Longest attribute path accepted, so that hostile input stays cheap to reject.
pub const MAX_PATH_LEN: usize = 512;

impl AttrPath {
    /// A path to a top-level attribute of the core schema.
    pub fn simple(name: &str) -> Self {
        AttrPath { schema: None, name: name.to_owned(), sub: None }
    }

    /// A path to a sub-attribute of a top-level attribute.
    pub fn with_sub(name: &str, sub: &str) -> Self {
        AttrPath { schema: None, name: name.to_owned(), sub: Some(sub.to_owned()) }
    }

    /// Parses a complete attribute path; `text` must contain nothing else.
    pub fn parse(text: &str) -> Result<Self, ScimError> {
        if text.len() > MAX_PATH_LEN {
            return Err(ScimError::invalid_path(format!(
                "attribute path is {} characters long; the limit is {MAX_PATH_LEN}",
                text.len()
            )));
        }
        let (schema, rest) = split_urn(text);
        let (name, sub) = match rest.split_once('.') {
            Some((name, sub)) => (name, Some(sub)),
            None => (rest, None),
        };
        if !is_attr_name(name) || sub.is_some_and(|s| !is_attr_name(s)) {
            return Err(ScimError::invalid_path(format!(
                "'{text}' is not a valid attribute path: expected [schemaURN:]name[.subAttribute], \
                 names starting with a letter and made of letters, digits, '-', '_' or '$'"
            )));
        }
        Ok(AttrPath { schema: schema.map(str::to_owned), name: name.to_owned(), sub: sub.map(str::to_owned) })
    }

    /// The same path with its sub-attribute removed.
    pub fn parent(&self) -> AttrPath {
        AttrPath { schema: self.schema.clone(), name: self.name.clone(), sub: None }
    }
}

/// A PATCH operation's `path` (RFC 7644 §3.5.2): `PATH = attrPath / valuePath [subAttr]`.
///
/// `members`, `name.familyName`, `members[value eq "2819c223"]`,
/// `emails[type eq "work"].value`, `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    /// The attribute the operation targets (with its sub-attribute when there is no filter).
    pub attr: AttrPath,
    /// The value filter selecting elements of a multi-valued `attr`, with paths relative to
    /// the element (`type eq "work"`).
    pub filter: Option<Filter>,
    /// The sub-attribute of the selected elements (`value` in `emails[type eq "work"].value`).
    pub sub: Option<String>,
}

impl PatchPath {
    /// Parses a PATCH path; `text` must contain nothing else. Errors are `400 invalidPath`.
    pub fn parse(text: &str) -> Result<Self, ScimError> {
        let Some(open) = text.find('[') else {
            return Ok(PatchPath { attr: AttrPath::parse(text)?, filter: None, sub: None });
        };
        let attr = AttrPath::parse(&text[..open])?;
        if attr.sub.is_some() {
            return Err(ScimError::invalid_path(format!(
                "'{text}' is not a valid path: a value filter '[...]' follows a multi-valued attribute, \
                 not the sub-attribute '{attr}'"
            )));
        }
        let (filter, end) = crate::filter::value_filter(text, &attr, open)?;
        let rest = &text[end..];
        let sub = match rest.strip_prefix('.') {
            None if rest.is_empty() => None,
            Some(name) if is_attr_name(name) => Some(name.to_owned()),
            _ => {
                return Err(ScimError::invalid_path(format!(
                    "'{text}' is not a valid path: only '.subAttribute' may follow the value filter, found '{rest}'"
                )));
            }
        };
        Ok(PatchPath { attr, filter: Some(filter), sub })
    }
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attr)?;
        if let Some(filter) = &self.filter {
            write!(f, "[{filter}]")?;
        }
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// Splits `urn:...:Schema:attr.sub` into the URN and the rest. The URN is everything up to the
/// last `:`; attribute names contain no `:`.
pub(crate) fn split_urn(text: &str) -> (Option<&str>, &str) {
    // `get`, not slicing: the fourth byte may fall inside a multi-byte character.
    if text.len() > 4
        && text.get(..4).is_some_and(|prefix| prefix.eq_ignore_ascii_case("urn:"))
        && let Some(idx) = text.rfind(':')
    {
        return (Some(&text[..idx]), &text[idx + 1..]);
    }
    (None, text)
}

/// RFC 7643 §2.1 ATTRNAME, plus `$ref` (the reference sub-attribute).
pub fn is_attr_name(name: &str) -> bool {
    if name == "$ref" {
        return true;
    }
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(schema) = &self.schema {
            write!(f, "{schema}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urn_qualified_sub_attribute() {
        let p = AttrPath::parse("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value").unwrap();
        assert_eq!(p.schema.as_deref(), Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"));
        assert_eq!(p.name, "manager");
        assert_eq!(p.sub.as_deref(), Some("value"));
    }

    #[test]
    fn patch_paths() {
        use crate::filter::{CompValue, CompareOp};
        const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        let eq = |attr: &str, value: &str| {
            Filter::Compare(AttrPath::simple(attr), CompareOp::Eq, CompValue::Str(value.to_owned()))
        };
        let cases = [
            ("members", AttrPath::simple("members"), None, None),
            ("name.familyName", AttrPath::with_sub("name", "familyName"), None, None),
            ("members[value eq \"x\"]", AttrPath::simple("members"), Some(eq("value", "x")), None),
            ("emails[type eq \"work\"].value", AttrPath::simple("emails"), Some(eq("type", "work")), Some("value")),
            (
                "addresses[type eq \"work\" and primary eq true].streetAddress",
                AttrPath::simple("addresses"),
                Some(Filter::And(
                    Box::new(eq("type", "work")),
                    Box::new(Filter::Compare(AttrPath::simple("primary"), CompareOp::Eq, CompValue::Bool(true))),
                )),
                Some("streetAddress"),
            ),
        ];
        for (text, attr, filter, sub) in cases {
            let path = PatchPath::parse(text).unwrap();
            assert_eq!(path, PatchPath { attr, filter, sub: sub.map(str::to_owned) }, "{text}");
            assert_eq!(path.to_string(), text);
        }
        for (text, name) in
            [(format!("{ENTERPRISE}:manager"), "manager"), (format!("{ENTERPRISE}:employeeNumber"), "employeeNumber")]
        {
            let path = PatchPath::parse(&text).unwrap();
            assert_eq!(path.attr.schema.as_deref(), Some(ENTERPRISE));
            assert_eq!((path.attr.name.as_str(), path.filter, path.sub), (name, None, None));
        }
        let path = PatchPath::parse(&format!("{ENTERPRISE}:manager.value")).unwrap();
        assert_eq!(path.attr.sub.as_deref(), Some("value"));
        // A `]` inside a string does not end the filter.
        let path = PatchPath::parse("members[display eq \"a]b\"].value").unwrap();
        assert_eq!(path.filter, Some(eq("display", "a]b")));
    }

    #[test]
    fn invalid_patch_paths() {
        for (text, why) in [
            ("", "not a valid attribute path"),
            ("emails[", "position 8: expected an attribute path"),
            ("emails[type eq \"work\"", "to close the '[' at position 7"),
            ("emails[type eq work]", "string values must be quoted"),
            ("emails[type eq \"work\"]value", "only '.subAttribute' may follow the value filter, found 'value'"),
            ("emails[type eq \"work\"].", "found '.'"),
            ("emails[type eq \"work\"].value.x", "found '.value.x'"),
            ("emails[type eq \"work\"][value pr]", "found '[value pr]'"),
            ("emails[value[x pr]]", "cannot be nested"),
            ("name.givenName[x pr]", "not the sub-attribute 'name.givenName'"),
            ("emails [type pr]", "not a valid attribute path"),
            ("a b", "not a valid attribute path"),
        ] {
            let e = PatchPath::parse(text).unwrap_err();
            assert_eq!(e.scim_type, Some(crate::ScimType::InvalidPath), "{text}");
            assert!(e.detail.contains(why), "{text}: {}", e.detail);
        }
        let long = format!("members[value eq \"{}\"]", "x".repeat(5000));
        assert!(PatchPath::parse(&long).unwrap_err().detail.contains("limit is 4096"));
    }

    #[test]
    fn rejects_garbage() {
        // "ur\u{8b}..." has a multi-byte character across the fourth byte.
        for bad in ["ur\u{8b}:x", "é:a", "", "1abc", "a.b.c", "a b", "name.", ".x"] {
            assert!(AttrPath::parse(bad).is_err(), "{bad}");
        }
    }
}
