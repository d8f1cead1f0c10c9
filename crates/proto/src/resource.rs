//! Incoming resources: validation and canonical form (RFC 7643 §2), and projection (RFC 7644 §3.9).
//!
//! # The canonical stored form
//!
//! [`prepare`] turns a POST/PUT body into the form scimd stores, and PATCH ends with the same
//! normalisation, so every stored resource has these properties:
//!
//! - `schemas` comes first and lists the core schema, then each extension that holds data, then
//!   each URN the client declared in `schemas` whose key holds data scimd does not define.
//! - Attribute and sub-attribute names are spelled as the schema spells them (`USERNAME` is
//!   stored as `userName`). Extension attributes live under their schema URN key; URN-qualified
//!   top-level keys (`"urn:...:enterprise:2.0:User:employeeNumber"`) and dotted keys
//!   (`"name.givenName"`, as Entra ID sends in path-less PATCH values) are moved there.
//! - Multi-valued attributes are arrays (a single value is wrapped), single-valued ones are not
//!   (a one-element array, as Entra ID sends `manager`, is unwrapped). A complex attribute with
//!   a `value` sub-attribute given a bare string takes it as `{"value": ...}`.
//! - Unassigned attributes are absent: `null`, `[]` and `{}` are removed (RFC 7643 §2.5).
//!   Elements that are exact duplicates collapse; Group members collapse by `value`.
//! - Values are the client's, unchanged (no trimming, no case folding: `userName` keeps the case
//!   it was sent in) except for type coercions: `"True"`/`"false"` for a boolean become booleans.
//! - readOnly attributes (`id`, `meta`, User `groups`, `manager.displayName`) are not stored:
//!   RFC 7643 §2.2 says clients' values for them are ignored. writeOnly attributes (`password`)
//!   are type-checked and then dropped: scimd never stores a password.
//! - Attributes no schema defines (`company`, an unknown extension's object) are kept as sent.
//!   `canonicalValues` are not enforced (IdPs send their own `type` values); the one exception
//!   is Group `members.type`, which must be `User` or `Group` because the server resolves
//!   members by it.
//!
//! # Size limits
//!
//! One request must not be able to store, or make the server work through, an unbounded
//! document. [`prepare`] and PATCH refuse (400 invalidValue, naming the limit) a resource whose
//! compact JSON, without a Group's `members`, exceeds [`MAX_RESOURCE_BYTES`]; an array other
//! than Group `members` with more than [`MAX_VALUES`] values; more than [`MAX_MEMBERS`] members
//! in one request; a value of an attribute no schema defines nested more than
//! [`MAX_CUSTOM_DEPTH`] deep; more than [`MAX_ATTRIBUTES`] attributes at the top level or in one
//! extension object; and more than [`MAX_SCHEMAS`] different URNs in `schemas`.

use std::borrow::Cow;
use std::collections::HashSet;

use serde_json::{Map, Number, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::ScimError;
use crate::json::{self, get_ci};
use crate::path::AttrPath;
use crate::schema::{self, AttrType, AttributeDef, Mutability, ResourceKind, ResourceType, Returned, Schema};

/// Largest resource accepted: its compact JSON in bytes, not counting a Group's `members`
/// (bounded by [`MAX_MEMBERS`] instead).
pub const MAX_RESOURCE_BYTES: usize = 64 * 1024;
/// Most values an array may hold: a multi-valued attribute other than Group `members`
/// (`emails`, ...) or an array anywhere in an attribute no schema defines.
pub const MAX_VALUES: usize = 1000;
/// Most Group `members` one request may carry: a POST/PUT body's `members`, or the member
/// values of all a PATCH's operations together.
pub const MAX_MEMBERS: usize = 100_000;
/// Deepest nesting of arrays and objects in the value of an attribute (or sub-attribute) no
/// schema defines: `{"a": [1]}` is 2 deep.
pub const MAX_CUSTOM_DEPTH: usize = 16;
/// Most attributes a resource may hold at its top level, or in one extension (or unknown
/// schema URN) object.
pub const MAX_ATTRIBUTES: usize = 1000;
/// Most different schema URNs a resource's `schemas` may list.
pub const MAX_SCHEMAS: usize = 100;

/// Validates an incoming body for POST/PUT and returns its canonical form (no id, no meta).
///
/// Errors are 400: `invalidSyntax` when the body is not an object, `invalidValue` naming the
/// attribute, what was expected and what was received otherwise, or the limit exceeded (see
/// the module's size limits).
pub fn prepare(kind: ResourceKind, body: Value) -> Result<Value, ScimError> {
    let Value::Object(body) = body else {
        return Err(ScimError::invalid_syntax(format!(
            "the request body must be a JSON object (a {}); received {}",
            kind.name(),
            describe(&body, false)
        )));
    };
    check_attribute_count(body.len(), &format!("the {}", kind.name()))?;
    let mut declared = Vec::new();
    let assembled = assemble(kind, body, &mut declared)?;
    if kind == ResourceKind::Group
        && let Some(Value::Array(members)) = assembled.get("members")
    {
        check_member_count(members.len())?;
    }
    Ok(Value::Object(normalise_resource(kind, assembled, &declared)?))
}

/// Refuses more than [`MAX_ATTRIBUTES`] attributes in one object (`what` names it).
pub(crate) fn check_attribute_count(count: usize, what: &str) -> Result<(), ScimError> {
    if count > MAX_ATTRIBUTES {
        return Err(ScimError::invalid_value(format!(
            "{what} has {count} attributes; the limit is {MAX_ATTRIBUTES} (MAX_ATTRIBUTES)"
        )));
    }
    Ok(())
}

/// Refuses more than [`MAX_MEMBERS`] members in one request.
pub(crate) fn check_member_count(count: usize) -> Result<(), ScimError> {
    if count > MAX_MEMBERS {
        return Err(ScimError::invalid_value(format!(
            "the request carries {count} members; the limit is {MAX_MEMBERS} members per request (MAX_MEMBERS): \
             send the rest in further PATCH requests"
        )));
    }
    Ok(())
}

/// Refuses an array of more than [`MAX_VALUES`] values at `label`.
pub(crate) fn check_value_count(count: usize, label: &str) -> Result<(), ScimError> {
    if count > MAX_VALUES {
        return Err(ScimError::invalid_value(format!(
            "{label} has {count} values; the limit is {MAX_VALUES} values per attribute (MAX_VALUES)"
        )));
    }
    Ok(())
}

/// Checks that a replacement does not change immutable attributes of `old` (400 mutability).
///
/// An immutable attribute may be set when it was unassigned, but once set a replacement must
/// carry the same value (RFC 7644 §3.5.1); strings that are not `caseExact` compare ignoring
/// case. Top-level attributes and the sub-attributes of single-valued complex attributes are
/// checked. Sub-attributes of multi-valued elements (Group `members.value`, `.display`, ...)
/// are not: an element is identified by its content, so a changed element is a removed one plus
/// an added one, which is how Okta's full-list `PUT /Groups` and `replace members` work.
pub fn check_immutable(kind: ResourceKind, old: &Value, new: &Value) -> Result<(), ScimError> {
    let rt = kind.resource_type();
    let containers = std::iter::once((None, schema::common_attributes()))
        .chain(std::iter::once((None, rt.core.attributes.as_slice())))
        .chain(rt.extensions.iter().map(|(s, _)| (Some(s.id.as_str()), s.attributes.as_slice())));
    for (urn, defs) in containers {
        let old_c = container_of(old, urn);
        let new_c = container_of(new, urn);
        for def in defs {
            let before = old_c.and_then(|m| m.get(&def.name)).filter(|v| !v.is_null());
            let after = new_c.and_then(|m| m.get(&def.name)).filter(|v| !v.is_null());
            let label = qualified(urn, &def.name);
            if def.mutability == Mutability::Immutable {
                check_unchanged(def, &label, before, after)?;
            } else if def.kind == AttrType::Complex && !def.multi_valued {
                for sub in def.sub_attributes.iter().filter(|s| s.mutability == Mutability::Immutable) {
                    let b = before.and_then(|v| v.get(&sub.name)).filter(|v| !v.is_null());
                    let a = after.and_then(|v| v.get(&sub.name)).filter(|v| !v.is_null());
                    check_unchanged(sub, &format!("{label}.{}", sub.name), b, a)?;
                }
            }
        }
    }
    Ok(())
}

fn container_of<'v>(resource: &'v Value, urn: Option<&str>) -> Option<&'v Map<String, Value>> {
    let top = resource.as_object()?;
    match urn {
        None => Some(top),
        Some(urn) => get_ci(top, urn)?.as_object(),
    }
}

fn check_unchanged(
    def: &AttributeDef,
    label: &str,
    before: Option<&Value>,
    after: Option<&Value>,
) -> Result<(), ScimError> {
    let Some(before) = before else { return Ok(()) };
    match after {
        Some(after) if same_value(def, before, after) => Ok(()),
        Some(after) => Err(ScimError::mutability(format!(
            "{label} is immutable: it is {} and cannot be changed to {}",
            describe(before, is_sensitive(def)),
            describe(after, is_sensitive(def))
        ))),
        None => Err(ScimError::mutability(format!(
            "{label} is immutable: it is {} and cannot be removed",
            describe(before, is_sensitive(def))
        ))),
    }
}

/// Equality as the attribute defines it: strings that are not `caseExact` ignore case.
/// [`value_key`] is the matching hash key.
pub(crate) fn same_value(def: &AttributeDef, a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) if !def.case_exact && def.kind != AttrType::Complex => {
            x.eq_ignore_ascii_case(y) || x.to_lowercase() == y.to_lowercase()
        }
        (Value::Object(x), Value::Object(y)) if def.kind == AttrType::Complex => {
            x.len() == y.len()
                && x.iter().all(|(k, xv)| {
                    y.get(k).is_some_and(|yv| match def.sub_attribute(k) {
                        Some(sub) => same_value(sub, xv, yv),
                        None => xv == yv,
                    })
                })
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(xv, yv)| same_value(def, xv, yv))
        }
        _ => a == b,
    }
}

/// A string that is equal for two values exactly when [`same_value`] says they are equal, so
/// that values can be compared through a hash set instead of pairwise.
pub(crate) fn value_key(def: &AttributeDef, value: &Value) -> String {
    let mut out = String::new();
    write_value_key(def, value, &mut out);
    out
}

fn write_value_key(def: &AttributeDef, value: &Value, out: &mut String) {
    match value {
        // `same_value`'s ASCII-or-Unicode case-insensitive comparison is exactly equality of
        // the lower-cased strings.
        Value::String(s) if !def.case_exact && def.kind != AttrType::Complex => {
            json::write_canonical(&Value::String(s.to_lowercase()), out);
        }
        Value::Object(map) if def.kind == AttrType::Complex => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json::write_canonical(&Value::String(k.clone()), out);
                out.push(':');
                match def.sub_attribute(k) {
                    Some(sub) => write_value_key(sub, v, out),
                    None => json::write_canonical(v, out),
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value_key(def, item, out);
            }
            out.push(']');
        }
        other => json::write_canonical(other, out),
    }
}

// ---------------------------------------------------------------------------------------------
// Locating attributes
// ---------------------------------------------------------------------------------------------

/// Where an attribute lives in the stored form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Container {
    /// The top level: common, core and unknown unqualified attributes.
    Top,
    /// Under the URN key of one of the resource type's extensions (its canonical id).
    Extension(&'static str),
    /// Under the key of a URN no schema of scimd defines, spelled as the client spelled it.
    Foreign(String),
}

impl Container {
    /// The URN key the container lives under, if any.
    pub(crate) fn urn(&self) -> Option<&str> {
        match self {
            Container::Top => None,
            Container::Extension(urn) => Some(urn),
            Container::Foreign(urn) => Some(urn),
        }
    }
}

/// An attribute (and optionally a sub-attribute) resolved against a resource type.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub container: Container,
    /// Canonical name when a schema defines the attribute, otherwise as sent.
    pub name: String,
    pub def: Option<&'static AttributeDef>,
    /// Canonical sub-attribute name when defined, otherwise as sent.
    pub sub: Option<String>,
    pub sub_def: Option<&'static AttributeDef>,
}

impl Target {
    /// The attribute path as a client would write it, for messages.
    pub(crate) fn label(&self) -> String {
        let base = qualified(self.container.urn(), &self.name);
        match &self.sub {
            Some(sub) => format!("{base}.{sub}"),
            None => base,
        }
    }

    /// The same target without its sub-attribute.
    pub(crate) fn parent(&self) -> Target {
        Target { sub: None, sub_def: None, ..self.clone() }
    }
}

fn qualified(urn: Option<&str>, name: &str) -> String {
    match urn {
        Some(urn) => format!("{urn}:{name}"),
        None => name.to_owned(),
    }
}

/// The schema a URN names in another resource type, e.g. the Group schema on a User.
fn foreign_known_schema(kind: ResourceKind, urn: &str) -> Option<&'static Schema> {
    let rt = kind.resource_type();
    if rt.schema(urn).is_some() {
        return None;
    }
    schema::all_schemas().find(|s| s.id.eq_ignore_ascii_case(urn))
}

fn wrong_type_error(kind: ResourceKind, schema: &Schema, what: &str) -> ScimError {
    ScimError::invalid_path(format!(
        "{what} belongs to the {} schema ({}), which is not a schema of {} resources",
        schema.name,
        schema.id,
        kind.name()
    ))
}

/// Resolves a path. Attributes no schema defines resolve to a target without definitions.
pub(crate) fn locate(kind: ResourceKind, path: &AttrPath) -> Result<Target, ScimError> {
    let rt: &'static ResourceType = kind.resource_type();
    let bare = AttrPath { schema: path.schema.clone(), name: path.name.clone(), sub: None };
    let (container, def) = match rt.resolve(&bare) {
        Some(r) if r.in_extension => (Container::Extension(r.schema.id.as_str()), Some(r.attr)),
        Some(r) => (Container::Top, Some(r.attr)),
        None => match path.schema.as_deref() {
            None => (Container::Top, None),
            Some(urn) if urn.eq_ignore_ascii_case(&rt.core.id) => (Container::Top, None),
            Some(urn) => match rt.extension(urn) {
                Some(ext) => (Container::Extension(ext.id.as_str()), None),
                None => match foreign_known_schema(kind, urn) {
                    Some(schema) => return Err(wrong_type_error(kind, schema, &format!("'{path}'"))),
                    None => (Container::Foreign(urn.to_owned()), None),
                },
            },
        },
    };
    let name = def.map_or_else(|| path.name.clone(), |d| d.name.clone());
    let (sub, sub_def) = match (&path.sub, def) {
        (None, _) => (None, None),
        (Some(sub), Some(def)) if def.kind != AttrType::Complex => {
            return Err(ScimError::invalid_path(format!(
                "'{path}' names a sub-attribute '{sub}' of {}, which is a {} and has no sub-attributes",
                qualified(container.urn(), &name),
                type_name(def.kind)
            )));
        }
        (Some(sub), Some(def)) => match def.sub_attribute(sub) {
            Some(sd) => (Some(sd.name.clone()), Some(sd)),
            None => (Some(sub.clone()), None),
        },
        (Some(sub), None) => (Some(sub.clone()), None),
    };
    Ok(Target { container, name, def, sub, sub_def })
}

/// What a key of a resource body or of a path-less PATCH value names.
#[derive(Debug)]
pub(crate) enum KeyTarget {
    /// The `schemas` list.
    Schemas,
    /// A whole extension: the key is the extension's URN and the value holds its attributes.
    Extension(&'static Schema),
    /// An attribute, possibly without definitions (then kept as sent).
    Attr(Target),
}

/// Interprets a key of a body. Plain names, URN-qualified names and dotted names are resolved
/// like paths when a schema defines them; keys no schema defines stay literal, except that a
/// URN-qualified key of an unknown schema moves under its URN key, like a known extension's.
pub(crate) fn locate_key(
    kind: ResourceKind,
    key: &str,
    value: &Value,
    declared: &[String],
) -> Result<KeyTarget, ScimError> {
    let rt = kind.resource_type();
    if key.eq_ignore_ascii_case("schemas") {
        return Ok(KeyTarget::Schemas);
    }
    if let Some(ext) = rt.extension(key) {
        return Ok(KeyTarget::Extension(ext));
    }
    if let Some(schema) = foreign_known_schema(kind, key) {
        let e = wrong_type_error(kind, schema, &format!("the key '{key}'"));
        return Err(ScimError::invalid_value(e.detail));
    }
    let literal = || Target { container: Container::Top, name: key.to_owned(), def: None, sub: None, sub_def: None };
    let Ok(path) = AttrPath::parse(key) else { return Ok(KeyTarget::Attr(literal())) };
    let target = locate(kind, &path)?;
    let keep = match &target.container {
        _ if target.def.is_some() => true,
        // An unknown attribute of a known extension lives in that extension's object.
        Container::Extension(_) => true,
        // `urn:x:Ext` holding an object, or declared in `schemas`, is an unknown extension's
        // whole data: it stays under its own key. Otherwise `urn:x:Ext:attr` is one of its
        // attributes and joins that object.
        Container::Foreign(_) => !(value.is_object() || declared.iter().any(|d| d.eq_ignore_ascii_case(key))),
        // Unknown plain names stay as sent; so do unknown dotted ones (`custom.dotted`).
        Container::Top => path.schema.is_some() || path.sub.is_none(),
    };
    Ok(KeyTarget::Attr(if keep { target } else { literal() }))
}

/// Interprets a key inside an extension's object (`{"urn:...:User": {"manager": ...}}`).
pub(crate) fn locate_in_extension(kind: ResourceKind, ext: &'static Schema, key: &str) -> Result<Target, ScimError> {
    let unknown = || Target {
        container: Container::Extension(ext.id.as_str()),
        name: key.to_owned(),
        def: None,
        sub: None,
        sub_def: None,
    };
    match AttrPath::parse(key) {
        Ok(path) if path.schema.is_none() => {
            let qualified = AttrPath { schema: Some(ext.id.clone()), ..path };
            let target = locate(kind, &qualified)?;
            Ok(if target.def.is_some() { target } else { unknown() })
        }
        _ => Ok(unknown()),
    }
}

/// Reads a `schemas` value: an array of strings (a lone string is accepted). URNs of another
/// resource type's schemas are refused; URNs scimd does not know are tolerated, because Entra
/// ID lists its own (`http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group`)
/// when it creates groups, and the list is recomputed from the data anyway.
/// Repeated URNs (in any case) are listed once; more than [`MAX_SCHEMAS`] different ones are
/// refused.
pub(crate) fn read_schemas(kind: ResourceKind, value: &Value) -> Result<Vec<String>, ScimError> {
    let items: Vec<&Value> = match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items.iter().collect(),
        single => vec![single],
    };
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for item in items {
        let Value::String(urn) = item else {
            return Err(ScimError::invalid_value(format!(
                "schemas must be an array of schema URNs (strings); it contains {}",
                describe(item, false)
            )));
        };
        if let Some(schema) = foreign_known_schema(kind, urn) {
            return Err(ScimError::invalid_value(format!(
                "schemas lists {} (the {} schema), which is not a schema of {} resources; a {} uses {}",
                schema.id,
                schema.name,
                kind.name(),
                kind.name(),
                kind.resource_type().schemas().map(|s| s.id.as_str()).collect::<Vec<_>>().join(" and ")
            )));
        }
        if seen.insert(urn.to_ascii_lowercase()) {
            out.push(urn.clone());
            check_schema_count(out.len())?;
        }
    }
    Ok(out)
}

/// Adds URNs read by [`read_schemas`] to those declared so far, skipping repeats (in any case).
pub(crate) fn add_declared(declared: &mut Vec<String>, urns: Vec<String>) -> Result<(), ScimError> {
    for urn in urns {
        if !declared.iter().any(|d| d.eq_ignore_ascii_case(&urn)) {
            declared.push(urn);
            check_schema_count(declared.len())?;
        }
    }
    Ok(())
}

fn check_schema_count(count: usize) -> Result<(), ScimError> {
    if count > MAX_SCHEMAS {
        return Err(ScimError::invalid_value(format!(
            "schemas lists more than {MAX_SCHEMAS} different schema URNs; the limit is {MAX_SCHEMAS} (MAX_SCHEMAS)"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Assembling a body into canonical structure
// ---------------------------------------------------------------------------------------------

/// Moves every key of `body` to its canonical place, without checking values yet.
fn assemble(
    kind: ResourceKind,
    body: Map<String, Value>,
    declared: &mut Vec<String>,
) -> Result<Map<String, Value>, ScimError> {
    if let Some((_, schemas)) = body.iter().find(|(k, _)| k.eq_ignore_ascii_case("schemas")) {
        add_declared(declared, read_schemas(kind, schemas)?)?;
    }
    let mut out = Map::new();
    for (key, value) in body {
        match locate_key(kind, &key, &value, declared)? {
            KeyTarget::Schemas => {}
            KeyTarget::Extension(ext) => match value {
                Value::Null => {}
                Value::Object(inner) => {
                    check_attribute_count(inner.len(), &ext.id)?;
                    for (k, v) in inner {
                        let target = locate_in_extension(kind, ext, &k)?;
                        place(&mut out, &target, v)?;
                    }
                }
                other => return Err(extension_not_object(ext, &other)),
            },
            KeyTarget::Attr(target) => place(&mut out, &target, value)?,
        }
    }
    Ok(out)
}

pub(crate) fn extension_not_object(ext: &Schema, value: &Value) -> ScimError {
    ScimError::invalid_value(format!(
        "{} must be an object holding {} attributes (e.g. {{\"{}\": ...}}); received {}",
        ext.id,
        ext.name,
        ext.attributes.first().map_or("attribute", |a| a.name.as_str()),
        describe(value, false)
    ))
}

/// Puts a raw value at `target` in the map being assembled.
fn place(out: &mut Map<String, Value>, target: &Target, value: Value) -> Result<(), ScimError> {
    let container = container_mut(out, &target.container, true)?
        .ok_or_else(|| ScimError::invalid_value(format!("cannot place {}", target.label())))?;
    match &target.sub {
        None => insert_once(container, &target.name, value, &target.label()),
        Some(sub) => {
            let slot = container.entry(target.name.clone()).or_insert_with(|| Value::Object(Map::new()));
            if slot.is_null() {
                *slot = Value::Object(Map::new());
            }
            match slot {
                Value::Object(inner) => insert_once(inner, sub, value, &target.label()),
                _ => Err(given_twice(&target.label())),
            }
        }
    }
}

/// Inserts, merging objects when an attribute arrives in two spellings (`name` and
/// `name.givenName`), and refusing two values for the same attribute.
fn insert_once(map: &mut Map<String, Value>, key: &str, value: Value, label: &str) -> Result<(), ScimError> {
    match map.get_mut(key) {
        None => {
            map.insert(key.to_owned(), value);
            Ok(())
        }
        Some(existing) if existing.is_null() => {
            *existing = value;
            Ok(())
        }
        Some(_) if value.is_null() => Ok(()),
        Some(Value::Object(existing)) => match value {
            Value::Object(incoming) => {
                for (k, v) in incoming {
                    let label = format!("{label}.{k}");
                    insert_once(existing, &k, v, &label)?;
                }
                Ok(())
            }
            _ => Err(given_twice(label)),
        },
        Some(_) => Err(given_twice(label)),
    }
}

fn given_twice(label: &str) -> ScimError {
    ScimError::invalid_value(format!(
        "{label} is given more than once (under keys that differ only in case or qualification); give it once"
    ))
}

/// The object a container lives in, created when `create` is set. `Ok(None)` when absent.
/// Creating one in a map that already holds [`MAX_ATTRIBUTES`] keys is refused.
pub(crate) fn container_mut<'m>(
    map: &'m mut Map<String, Value>,
    container: &Container,
    create: bool,
) -> Result<Option<&'m mut Map<String, Value>>, ScimError> {
    let urn = match container {
        Container::Top => return Ok(Some(map)),
        Container::Extension(urn) => *urn,
        Container::Foreign(urn) => urn.as_str(),
    };
    // The exact spelling is the norm (extensions are stored under their canonical URN).
    let key = if map.contains_key(urn) {
        Some(urn.to_owned())
    } else {
        map.keys().find(|k| k.eq_ignore_ascii_case(urn)).cloned()
    };
    let key = match key {
        Some(key) => key,
        None if create => {
            check_attribute_count(map.len() + 1, "the resource")?;
            map.insert(urn.to_owned(), Value::Object(Map::new()));
            urn.to_owned()
        }
        None => return Ok(None),
    };
    let slot = map.get_mut(&key).ok_or_else(|| ScimError::new(500, "container vanished"))?;
    if slot.is_null() && create {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(inner) => Ok(Some(inner)),
        Value::Null => Ok(None),
        other => Err(ScimError::invalid_path(format!(
            "{key} holds {}, not an object of attributes, so attributes cannot be addressed under it",
            describe(other, false)
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Normalising values
// ---------------------------------------------------------------------------------------------

/// The definition of a top-level (common or core) attribute, by canonical or any-case name.
pub(crate) fn top_level_def(rt: &'static ResourceType, name: &str) -> Option<&'static AttributeDef> {
    schema::common_attributes().iter().find(|a| a.name.eq_ignore_ascii_case(name)).or_else(|| rt.core.attribute(name))
}

/// Normalises an assembled map into the canonical stored form: checks and coerces values,
/// drops readOnly, writeOnly and unassigned attributes, checks required attributes and
/// recomputes `schemas`. `declared` is what the client listed in `schemas`.
pub(crate) fn normalise_resource(
    kind: ResourceKind,
    map: Map<String, Value>,
    declared: &[String],
) -> Result<Map<String, Value>, ScimError> {
    let rt = kind.resource_type();
    let mut out = Map::new();
    let mut present: Vec<&'static Schema> = Vec::new();
    for (key, value) in map {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if let Some(ext) = rt.extension(&key) {
            let inner = match value {
                Value::Null => continue,
                Value::Object(inner) => inner,
                other => return Err(extension_not_object(ext, &other)),
            };
            let mut kept = Map::new();
            for (k, v) in inner {
                match ext.attribute(&k) {
                    Some(def) => {
                        let label = qualified(Some(&ext.id), &def.name);
                        if let Some(v) = normalise_top(def, v, &label)? {
                            insert_normalised(&mut kept, &def.name, v, &label)?;
                        }
                    }
                    None if v.is_null() => {}
                    None => {
                        kept.insert(k, v);
                    }
                }
            }
            if !kept.is_empty() {
                out.insert(ext.id.clone(), Value::Object(kept));
                present.push(ext);
            }
            continue;
        }
        match top_level_def(rt, &key) {
            Some(def) => {
                if let Some(v) = normalise_top(def, value, &def.name)? {
                    insert_normalised(&mut out, &def.name, v, &def.name)?;
                }
            }
            None if value.is_null() => {}
            None => {
                out.insert(key, value);
            }
        }
    }
    check_required(kind, &out, &present)?;

    let mut schemas = vec![Value::String(rt.core.id.clone())];
    for (ext, _) in &rt.extensions {
        if present.iter().any(|p| p.id == ext.id) {
            schemas.push(Value::String(ext.id.clone()));
        }
    }
    let mut seen_foreign: Vec<&str> = Vec::new();
    for urn in declared {
        let known = rt.schema(urn).is_some();
        let holds_data = out.keys().any(|k| k.eq_ignore_ascii_case(urn));
        if !known && holds_data && !seen_foreign.iter().any(|s| s.eq_ignore_ascii_case(urn)) {
            seen_foreign.push(urn);
            schemas.push(Value::String(urn.clone()));
        }
    }
    let mut result = Map::with_capacity(out.len() + 1);
    result.insert("schemas".to_owned(), Value::Array(schemas));
    result.extend(out);
    check_limits(kind, &result)?;
    Ok(result)
}

/// Checks a normalised resource against the size limits: [`MAX_RESOURCE_BYTES`] (without a
/// Group's `members`), [`MAX_VALUES`] per array (Group `members` excepted: they are bounded per
/// request, by [`MAX_MEMBERS`]), [`MAX_CUSTOM_DEPTH`] inside attributes no schema defines, and
/// [`MAX_ATTRIBUTES`] per extension object.
fn check_limits(kind: ResourceKind, map: &Map<String, Value>) -> Result<(), ScimError> {
    let rt = kind.resource_type();
    let is_members = |key: &str| kind == ResourceKind::Group && key == "members";
    check_attribute_count(map.len(), &format!("the {}", kind.name()))?;
    let size = json_size(map.iter().filter(|(k, _)| !is_members(k)));
    if size > MAX_RESOURCE_BYTES {
        let without = if kind == ResourceKind::Group { " without its members" } else { "" };
        return Err(ScimError::invalid_value(format!(
            "the {} is {size} bytes of JSON{without}; the limit is {MAX_RESOURCE_BYTES} bytes (MAX_RESOURCE_BYTES): \
             store less data in it",
            kind.name()
        )));
    }
    for (key, value) in map {
        if key == "schemas" {
            continue;
        }
        if let Some(ext) = rt.extension(key) {
            if let Value::Object(inner) = value {
                check_attribute_count(inner.len(), &ext.id)?;
                for (k, v) in inner {
                    check_attr_limits(ext.attribute(k), v, &|| qualified(Some(&ext.id), k), false)?;
                }
            }
            continue;
        }
        match top_level_def(rt, key) {
            Some(def) => check_attr_limits(Some(def), value, &|| key.clone(), is_members(key))?,
            // An unknown schema's object holds its attributes, like an extension's.
            None if is_urn(key) && value.is_object() => {
                if let Value::Object(inner) = value {
                    check_attribute_count(inner.len(), key)?;
                    for (k, v) in inner {
                        check_attr_limits(None, v, &|| qualified(Some(key), k), false)?;
                    }
                }
            }
            None => check_attr_limits(None, value, &|| key.clone(), false)?,
        }
    }
    Ok(())
}

/// The limits on one attribute's value; `label` names it in errors (built only then).
fn check_attr_limits(
    def: Option<&AttributeDef>,
    value: &Value,
    label: &dyn Fn() -> String,
    unbounded_count: bool,
) -> Result<(), ScimError> {
    let Some(def) = def else {
        return check_untyped(value, 0).map_err(|problem| problem.error(&label()));
    };
    let elements = match value {
        Value::Array(items) => {
            if !unbounded_count {
                check_value_count(items.len(), &label())?;
            }
            items.as_slice()
        }
        single => std::slice::from_ref(single),
    };
    for element in elements {
        if let Value::Object(map) = element {
            for (k, v) in map {
                let sub_label = || format!("{}.{k}", label());
                check_attr_limits(def.sub_attribute(k), v, &sub_label, false)?;
            }
        }
    }
    Ok(())
}

/// Why a value of an attribute no schema defines is refused.
enum Untyped {
    TooDeep,
    TooMany(usize),
}

impl Untyped {
    fn error(self, label: &str) -> ScimError {
        match self {
            Untyped::TooDeep => ScimError::invalid_value(format!(
                "{label} nests arrays and objects more than {MAX_CUSTOM_DEPTH} levels deep; the limit for attributes \
                 no schema defines is {MAX_CUSTOM_DEPTH} (MAX_CUSTOM_DEPTH)"
            )),
            Untyped::TooMany(count) => ScimError::invalid_value(format!(
                "{label} holds an array of {count} values; the limit is {MAX_VALUES} values per array (MAX_VALUES)"
            )),
        }
    }
}

/// Checks nesting and array lengths of an untyped value nested `depth` levels deep already.
fn check_untyped(value: &Value, depth: usize) -> Result<(), Untyped> {
    let children: Box<dyn Iterator<Item = &Value>> = match value {
        Value::Array(items) => {
            if items.len() > MAX_VALUES {
                return Err(Untyped::TooMany(items.len()));
            }
            Box::new(items.iter())
        }
        Value::Object(map) => Box::new(map.values()),
        _ => return Ok(()),
    };
    if depth >= MAX_CUSTOM_DEPTH {
        return Err(Untyped::TooDeep);
    }
    for child in children {
        check_untyped(child, depth + 1)?;
    }
    Ok(())
}

/// The size of the compact JSON object made of `entries`, in bytes.
fn json_size<'a>(entries: impl Iterator<Item = (&'a String, &'a Value)>) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    let mut punctuation = 2; // `{` and `}`
    for (i, (key, value)) in entries.enumerate() {
        punctuation += if i > 0 { 2 } else { 1 }; // `,` and `:`
        // Writing to a counter cannot fail.
        let _ = serde_json::to_writer(&mut counter, key);
        let _ = serde_json::to_writer(&mut counter, value);
    }
    counter.0 + punctuation
}

/// Normalises a top-level or extension attribute: readOnly ones are ignored (RFC 7643 §2.2),
/// writeOnly ones are checked and not kept.
fn normalise_top(def: &AttributeDef, value: Value, label: &str) -> Result<Option<Value>, ScimError> {
    if def.mutability == Mutability::ReadOnly {
        return Ok(None);
    }
    let normalised = normalise_attr(def, value, label)?;
    Ok(if def.mutability == Mutability::WriteOnly { None } else { normalised })
}

fn insert_normalised(map: &mut Map<String, Value>, key: &str, value: Value, label: &str) -> Result<(), ScimError> {
    if map.insert(key.to_owned(), value).is_some() {
        return Err(given_twice(label));
    }
    Ok(())
}

fn check_required(kind: ResourceKind, out: &Map<String, Value>, present: &[&'static Schema]) -> Result<(), ScimError> {
    let rt = kind.resource_type();
    let core = schema::common_attributes().iter().chain(&rt.core.attributes).map(|d| (None, d));
    let exts = present.iter().flat_map(|s| s.attributes.iter().map(move |d| (Some(s.id.as_str()), d)));
    for (urn, def) in core.chain(exts) {
        // readOnly attributes (`id`) are the server's to assign.
        if !def.required || def.mutability == Mutability::ReadOnly {
            continue;
        }
        let value = match urn {
            None => out.get(&def.name),
            Some(urn) => out.get(urn).and_then(|e| e.get(&def.name)),
        };
        if value.is_none_or(is_blank) {
            let label = qualified(urn, &def.name);
            let received = match value {
                Some(v) => describe(v, false),
                None => "nothing".to_owned(),
            };
            return Err(ScimError::invalid_value(format!(
                "{label} is required: a {} must have a non-empty {label}; received {received}",
                kind.name()
            )));
        }
    }
    for (ext, required) in &rt.extensions {
        if *required && !present.iter().any(|p| p.id == ext.id) {
            return Err(ScimError::invalid_value(format!(
                "the {} extension ({}) is required for {} resources",
                ext.name,
                ext.id,
                kind.name()
            )));
        }
    }
    Ok(())
}

fn is_blank(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Normalises one attribute's value against its definition. `Ok(None)` means unassigned.
pub(crate) fn normalise_attr(def: &AttributeDef, value: Value, label: &str) -> Result<Option<Value>, ScimError> {
    if !def.multi_valued {
        let value = match value {
            Value::Array(mut items) if items.len() <= 1 => match items.pop() {
                Some(item) => item,
                None => return Ok(None),
            },
            Value::Array(items) => {
                return Err(ScimError::invalid_value(format!(
                    "{label} is single-valued: expected {}; received an array of {} values",
                    expected(def),
                    items.len()
                )));
            }
            value => value,
        };
        return normalise_one(def, value, label);
    }
    let items = match value {
        Value::Null => return Ok(None),
        Value::Array(items) => items,
        single => vec![single],
    };
    let mut out = Vec::with_capacity(items.len());
    let mut seen = HashSet::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        if let Some(v) = normalise_one(def, item, &format!("{label}[{i}]"))?
            && seen.insert(identity(def, &v).into_owned())
        {
            out.push(v);
        }
    }
    check_primary(def, &out, label)?;
    Ok((!out.is_empty()).then_some(Value::Array(out)))
}

/// What makes two elements of a multi-valued attribute "the same": Group members are the same
/// member when their `value` is; other elements when they are equal (`==`, so key order does
/// not matter). A hash key: borrowed for members, which can be many.
pub(crate) fn identity<'v>(def: &AttributeDef, element: &'v Value) -> Cow<'v, str> {
    if is_member_list(def)
        && let Some(Value::String(value)) = element.get("value")
    {
        return Cow::Borrowed(value);
    }
    Cow::Owned(json::canonical(element))
}

/// Group `members`: references to other resources, identified by `value` and typed.
pub(crate) fn is_member_list(def: &AttributeDef) -> bool {
    def.name == "members" && def.multi_valued && def.kind == AttrType::Complex
}

/// At most one element may be primary (RFC 7643 §2.4).
fn check_primary(def: &AttributeDef, items: &[Value], label: &str) -> Result<(), ScimError> {
    if def.kind != AttrType::Complex || def.sub_attribute("primary").is_none() {
        return Ok(());
    }
    let primaries = items.iter().filter(|v| v.get("primary") == Some(&Value::Bool(true))).count();
    if primaries > 1 {
        return Err(ScimError::invalid_value(format!(
            "{label} has {primaries} values with \"primary\": true; at most one value may be primary"
        )));
    }
    Ok(())
}

/// Normalises one (non-array) value: a complex value or a scalar.
pub(crate) fn normalise_one(def: &AttributeDef, value: Value, label: &str) -> Result<Option<Value>, ScimError> {
    match (def.kind, value) {
        (_, Value::Null) => Ok(None),
        (AttrType::Complex, Value::Object(map)) => normalise_complex(def, map, label),
        // `"manager": "42"` and `"members": ["42"]` are shorthand for `{"value": "42"}`.
        (AttrType::Complex, Value::String(s)) if def.sub_attribute("value").is_some() => {
            let mut map = Map::new();
            map.insert("value".to_owned(), Value::String(s));
            normalise_complex(def, map, label)
        }
        (AttrType::Complex, other) => Err(type_error(def, label, &other)),
        (_, value) => check_scalar(def, value, label).map(Some),
    }
}

/// Normalises a complex value: canonical sub-attribute names, checked sub-values, readOnly
/// sub-attributes ignored, unknown ones kept, required ones enforced.
pub(crate) fn normalise_complex(
    def: &AttributeDef,
    map: Map<String, Value>,
    label: &str,
) -> Result<Option<Value>, ScimError> {
    let mut out = Map::new();
    for (key, value) in map {
        match def.sub_attribute(&key) {
            Some(sub) => {
                if sub.mutability == Mutability::ReadOnly {
                    continue;
                }
                let sub_label = format!("{label}.{}", sub.name);
                let Some(v) = normalise_attr(sub, value, &sub_label)? else { continue };
                if sub.mutability == Mutability::WriteOnly {
                    continue;
                }
                let v = if is_member_list(def) && sub.name == "type" { member_type(v, &sub_label)? } else { v };
                insert_normalised(&mut out, &sub.name, v, &sub_label)?;
            }
            None if value.is_null() => {}
            None => {
                out.insert(key, value);
            }
        }
    }
    if out.is_empty() {
        return Ok(None);
    }
    for sub in def.sub_attributes.iter().filter(|s| s.required) {
        if out.get(&sub.name).is_none_or(is_blank) {
            return Err(ScimError::invalid_value(format!(
                "{label}.{name} is required: every {attr} value needs a non-empty {name} ({expected}); received {received}",
                name = sub.name,
                attr = def.name,
                expected = expected(sub),
                received = describe(&Value::Object(out), false),
            )));
        }
    }
    Ok(Some(Value::Object(out)))
}

/// Group member `type`: `User` or `Group` in any case, stored in the schema's case.
fn member_type(value: Value, label: &str) -> Result<Value, ScimError> {
    if let Value::String(s) = &value {
        for canonical in ["User", "Group"] {
            if s.eq_ignore_ascii_case(canonical) {
                return Ok(Value::String(canonical.to_owned()));
            }
        }
    }
    Err(ScimError::invalid_value(format!(
        "{label} must be \"User\" or \"Group\"; received {}",
        describe(&value, false)
    )))
}

/// Checks (and where IdPs need it, coerces) a scalar against the attribute's type.
fn check_scalar(def: &AttributeDef, value: Value, label: &str) -> Result<Value, ScimError> {
    let ok = match (def.kind, &value) {
        (AttrType::String | AttrType::Reference, Value::String(_)) => true,
        (AttrType::Boolean, Value::Bool(_)) => true,
        // Entra ID sends `"active": "False"` (idp-behaviour B.3).
        (AttrType::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("true") => return Ok(Value::Bool(true)),
        (AttrType::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("false") => return Ok(Value::Bool(false)),
        (AttrType::Decimal, Value::Number(_)) => true,
        (AttrType::Integer, Value::Number(n)) => {
            if n.is_i64() || n.is_u64() {
                true
            } else {
                // 3.0 is an integer written as a decimal; store it as one.
                match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                        return Ok(Value::Number(Number::from(f as i64)));
                    }
                    _ => false,
                }
            }
        }
        (AttrType::DateTime, Value::String(s)) => OffsetDateTime::parse(s, &Rfc3339).is_ok(),
        (AttrType::Binary, Value::String(s)) => is_base64(s),
        _ => false,
    };
    if ok { Ok(value) } else { Err(type_error(def, label, &value)) }
}

fn type_error(def: &AttributeDef, label: &str, value: &Value) -> ScimError {
    ScimError::invalid_value(format!(
        "{label} must be {}; received {}",
        expected(def),
        describe(value, is_sensitive(def))
    ))
}

/// What a value of the attribute looks like, for messages.
fn expected(def: &AttributeDef) -> String {
    match def.kind {
        AttrType::String => "a string".to_owned(),
        AttrType::Boolean => "a boolean (true or false)".to_owned(),
        AttrType::Decimal => "a number".to_owned(),
        AttrType::Integer => "an integer".to_owned(),
        AttrType::DateTime => "a dateTime string in RFC 3339 form, e.g. \"2024-05-01T12:00:00Z\"".to_owned(),
        AttrType::Binary => "a base64-encoded string (RFC 4648 alphabet, no whitespace)".to_owned(),
        AttrType::Reference => "a reference (a URI string)".to_owned(),
        AttrType::Complex => {
            let subs: Vec<&str> = def.sub_attributes.iter().map(|s| s.name.as_str()).collect();
            format!("an object with sub-attributes {}", subs.join(", "))
        }
    }
}

fn type_name(kind: AttrType) -> &'static str {
    match kind {
        AttrType::String => "string",
        AttrType::Boolean => "boolean",
        AttrType::Decimal => "decimal",
        AttrType::Integer => "integer",
        AttrType::DateTime => "dateTime",
        AttrType::Binary => "binary",
        AttrType::Reference => "reference",
        AttrType::Complex => "complex attribute",
    }
}

/// Values of writeOnly / never-returned attributes (passwords) are not echoed in errors.
fn is_sensitive(def: &AttributeDef) -> bool {
    def.mutability == Mutability::WriteOnly || def.returned == Returned::Never
}

/// A short description of a received value, for error details.
pub(crate) fn describe(value: &Value, sensitive: bool) -> String {
    const MAX: usize = 64;
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(_) if sensitive => "a boolean".to_owned(),
        Value::Number(_) if sensitive => "a number".to_owned(),
        Value::String(_) if sensitive => "a string".to_owned(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.chars().count() > MAX => {
            format!("the string \"{}…\"", s.chars().take(MAX).collect::<String>())
        }
        Value::String(s) => format!("the string {}", Value::String(s.clone())),
        Value::Array(items) if items.len() == 1 => "an array of 1 value".to_owned(),
        Value::Array(items) => format!("an array of {} values", items.len()),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// RFC 4648 §4 base64: the standard alphabet, padding optional but well-formed.
fn is_base64(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    let padding = s.len() - body.len();
    let alphabet = body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    alphabet && padding <= 2 && if padding > 0 { s.len().is_multiple_of(4) } else { body.len() % 4 != 1 }
}

// ---------------------------------------------------------------------------------------------
// Projection
// ---------------------------------------------------------------------------------------------

/// Most paths one `attributes` / `excludedAttributes` parameter may list.
pub const MAX_PROJECTION_PATHS: usize = 200;

/// Which attributes a response carries (RFC 7644 §3.9), honouring each attribute's `returned`.
///
/// - default: every attribute except `returned: never` and `returned: request` ones;
/// - `attributes=a,b`: those (whole, or only the named sub-attributes) plus `returned: always`
///   ones (`id`; `schemas` is always kept); `request` attributes only when named;
/// - `excludedAttributes=a,b`: the default set minus those, but never minus `always` ones.
///
/// Giving both parameters is refused (400 invalidValue): RFC 7644 defines them as
/// alternatives, and silently preferring one would hide a client bug.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projection {
    mode: Mode,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    Default,
    Only(Vec<Selector>),
    Except(Vec<Selector>),
}

/// One listed path, resolved to where its attribute lives.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Selector {
    container: Container,
    /// `None` selects a whole schema (the path was a schema URN).
    name: Option<String>,
    sub: Option<String>,
    /// The path as given, lower-cased: matches a top-level key spelled that way.
    raw: String,
}

impl Selector {
    fn hits(&self, container: &Container, name: &str) -> bool {
        self.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name)) && same_container(&self.container, container)
    }

    fn hits_schema(&self, container: &Container) -> bool {
        self.name.is_none() && same_container(&self.container, container)
    }
}

fn same_container(a: &Container, b: &Container) -> bool {
    match (a, b) {
        (Container::Top, Container::Top) => true,
        (Container::Extension(x), Container::Extension(y)) => x == y,
        (Container::Foreign(x), Container::Foreign(y)) => x.eq_ignore_ascii_case(y),
        _ => false,
    }
}

impl Projection {
    /// Parses the `attributes` / `excludedAttributes` query parameters: comma-separated
    /// attribute paths, optionally URN-qualified, optionally with a sub-attribute, or a schema
    /// URN for a whole extension. Empty parameters count as absent; paths no schema defines
    /// are allowed (they select custom attributes). Both given → 400 invalidValue.
    pub fn parse(attributes: Option<&str>, excluded: Option<&str>, kind: ResourceKind) -> Result<Self, ScimError> {
        let attributes = attributes.filter(|s| !s.trim().is_empty());
        let excluded = excluded.filter(|s| !s.trim().is_empty());
        let mode = match (attributes, excluded) {
            (Some(_), Some(_)) => {
                return Err(ScimError::invalid_value(
                    "give either attributes or excludedAttributes, not both: attributes lists what to return, \
                     excludedAttributes what to leave out of the default set",
                ));
            }
            (Some(list), None) => Mode::Only(parse_list(list, kind, "attributes")?),
            (None, Some(list)) => Mode::Except(parse_list(list, kind, "excludedAttributes")?),
            (None, None) => Mode::Default,
        };
        Ok(Projection { mode })
    }

    /// The default projection: every attribute whose `returned` is `always` or `default`.
    pub fn all() -> Self {
        Projection { mode: Mode::Default }
    }

    /// The resource as the response carries it. Takes the resource by value: what is kept is
    /// moved, not copied (a list projects a hundred resources per request).
    pub fn apply(&self, resource: Value, kind: ResourceKind) -> Value {
        let Value::Object(map) = resource else { return resource };
        let rt = kind.resource_type();
        let mut out = Map::with_capacity(map.len());
        for (key, value) in map {
            if key == "schemas" {
                out.insert(key, value);
                continue;
            }
            let ext = rt.extension(&key);
            let container = match (ext, &value) {
                (Some(ext), Value::Object(_)) => Some(Container::Extension(ext.id.as_str())),
                (None, Value::Object(_)) if top_level_def(rt, &key).is_none() && is_urn(&key) => {
                    Some(Container::Foreign(key.clone()))
                }
                _ => None,
            };
            // Only an object is a container, so `value` is one below.
            let Some(container) = container else {
                let def = top_level_def(rt, &key);
                let whole = self.selects_key(&key) || self.selects_schema(&Container::Top);
                if let Some(v) = self.project(&Container::Top, &key, def, value, whole) {
                    out.insert(key, v);
                }
                continue;
            };
            let whole = self.selects_key(&key) || self.selects_schema(&container);
            let mut kept = Map::new();
            let Value::Object(inner) = value else { continue };
            for (k, v) in inner {
                let def = ext.and_then(|e| e.attribute(&k));
                if let Some(v) = self.project(&container, &k, def, v, whole) {
                    kept.insert(k, v);
                }
            }
            if !kept.is_empty() {
                out.insert(key, Value::Object(kept));
            }
        }
        // `schemas` names what the response carries: an extension projected away goes too.
        if let Some(Value::Array(schemas)) = out.get("schemas") {
            let kept: Vec<Value> = schemas
                .iter()
                .filter(|s| s.as_str().is_none_or(|urn| urn.eq_ignore_ascii_case(&rt.core.id) || out.contains_key(urn)))
                .cloned()
                .collect();
            out.insert("schemas".into(), Value::Array(kept));
        }
        Value::Object(out)
    }

    /// Whether the response would carry the attribute (or sub-attribute) at `path` if the
    /// resource has it; the server asks this before loading expensive attributes (`members`).
    pub fn includes(&self, path: &AttrPath, kind: ResourceKind) -> bool {
        if path.name.eq_ignore_ascii_case("schemas") && path.schema.is_none() {
            return true;
        }
        let Ok(target) = locate(kind, path) else { return false };
        // Probe with a stand-in value carrying every sub-attribute (or just the one asked for).
        let probe_object = |names: &mut dyn Iterator<Item = &str>| {
            Value::Object(names.map(|n| (n.to_owned(), Value::Bool(true))).collect())
        };
        let probe = match (&target.sub, target.def) {
            (Some(sub), _) => probe_object(&mut std::iter::once(sub.as_str())),
            (None, Some(def)) if def.kind == AttrType::Complex => {
                probe_object(&mut def.sub_attributes.iter().map(|s| s.name.as_str()))
            }
            (None, _) => Value::Bool(true),
        };
        let probe = match target.def {
            Some(def) if def.multi_valued => Value::Array(vec![probe]),
            _ => probe,
        };
        let key = match &target.container {
            Container::Top => target.name.clone(),
            other => other.urn().unwrap_or_default().to_owned(),
        };
        let whole = self.selects_key(&key) || self.selects_schema(&target.container);
        let Some(projected) = self.project(&target.container, &target.name, target.def, probe, whole) else {
            return false;
        };
        match &target.sub {
            None => true,
            Some(sub) => {
                let first = match &projected {
                    Value::Array(items) => items.first().cloned().unwrap_or(Value::Null),
                    other => other.clone(),
                };
                first.get(sub).is_some()
            }
        }
    }

    fn selectors(&self) -> &[Selector] {
        match &self.mode {
            Mode::Default => &[],
            Mode::Only(s) | Mode::Except(s) => s,
        }
    }

    fn selects_key(&self, key: &str) -> bool {
        self.selectors().iter().any(|s| s.raw.eq_ignore_ascii_case(key) && s.sub.is_none())
    }

    fn selects_schema(&self, container: &Container) -> bool {
        self.selectors().iter().any(|s| s.hits_schema(container))
    }

    /// One attribute's projected value, or `None` when the response leaves it out. `whole`
    /// is set when the attribute's schema or key was listed as a whole.
    fn project(
        &self,
        container: &Container,
        name: &str,
        def: Option<&AttributeDef>,
        value: Value,
        whole: bool,
    ) -> Option<Value> {
        let returned = def.map_or(Returned::Default, |d| d.returned);
        if returned == Returned::Never {
            return None;
        }
        let named = |sels: &[Selector]| sels.iter().any(|s| s.hits(container, name) && s.sub.is_none());
        let named_subs = |sels: &[Selector]| -> Vec<String> {
            sels.iter().filter(|s| s.hits(container, name)).filter_map(|s| s.sub.clone()).collect()
        };
        match &self.mode {
            Mode::Default => {
                if returned == Returned::Request {
                    return None;
                }
                filter_subs(def, value, |_, sub| default_sub(sub))
            }
            Mode::Only(sels) => {
                let subs = named_subs(sels);
                let explicitly = named(sels);
                let keep_sub = |key: &str, sub: Option<&AttributeDef>| {
                    sub.is_some_and(|s| s.returned == Returned::Always)
                        || subs.iter().any(|n| n.eq_ignore_ascii_case(key))
                            && sub.is_none_or(|s| s.returned != Returned::Never)
                };
                // Naming a whole schema (an extension URN) asks for everything in it, `request` ones too.
                if explicitly || whole || returned == Returned::Always {
                    filter_subs(def, value, |key, sub| default_sub(sub) || keep_sub(key, sub))
                } else if !subs.is_empty() {
                    filter_subs(def, value, keep_sub)
                } else {
                    None
                }
            }
            Mode::Except(sels) => {
                if returned == Returned::Always {
                    return filter_subs(def, value, |_, sub| default_sub(sub));
                }
                if returned == Returned::Request || named(sels) || whole {
                    return None;
                }
                let subs = named_subs(sels);
                filter_subs(def, value, |key, sub| {
                    default_sub(sub)
                        && (sub.is_some_and(|s| s.returned == Returned::Always)
                            || !subs.iter().any(|n| n.eq_ignore_ascii_case(key)))
                })
            }
        }
    }
}

/// Sub-attributes returned by default: all but `never` and `request` ones.
fn default_sub(sub: Option<&AttributeDef>) -> bool {
    sub.is_none_or(|s| !matches!(s.returned, Returned::Never | Returned::Request))
}

/// Keeps the sub-attributes `keep` accepts, in an object or in each element of an array of
/// objects; elements left empty are dropped, and an attribute left empty is left out.
fn filter_subs(
    def: Option<&AttributeDef>,
    value: Value,
    keep: impl Fn(&str, Option<&AttributeDef>) -> bool,
) -> Option<Value> {
    let filter_object = |map: Map<String, Value>| -> Option<Value> {
        let kept: Map<String, Value> =
            map.into_iter().filter(|(k, _)| keep(k, def.and_then(|d| d.sub_attribute(k)))).collect();
        (!kept.is_empty()).then_some(Value::Object(kept))
    };
    match value {
        Value::Object(map) => filter_object(map),
        Value::Array(items) if items.iter().any(Value::is_object) => {
            let kept: Vec<Value> = items
                .into_iter()
                .filter_map(|item| match item {
                    Value::Object(map) => filter_object(map),
                    other => Some(other),
                })
                .collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        other => Some(other),
    }
}

fn is_urn(key: &str) -> bool {
    // `get`, not slicing: the fourth byte may fall inside a multi-byte character.
    key.len() > 4 && key.get(..4).is_some_and(|prefix| prefix.eq_ignore_ascii_case("urn:"))
}

fn parse_list(list: &str, kind: ResourceKind, param: &str) -> Result<Vec<Selector>, ScimError> {
    let entries: Vec<&str> = list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    if entries.len() > MAX_PROJECTION_PATHS {
        return Err(ScimError::invalid_value(format!(
            "{param} lists {} paths; the limit is {MAX_PROJECTION_PATHS}",
            entries.len()
        )));
    }
    entries.into_iter().map(|entry| parse_selector(entry, kind, param)).collect()
}

fn parse_selector(entry: &str, kind: ResourceKind, param: &str) -> Result<Selector, ScimError> {
    let rt = kind.resource_type();
    let raw = entry.to_ascii_lowercase();
    if entry.eq_ignore_ascii_case(&rt.core.id) {
        return Ok(Selector { container: Container::Top, name: None, sub: None, raw });
    }
    if let Some(ext) = rt.extension(entry) {
        return Ok(Selector { container: Container::Extension(ext.id.as_str()), name: None, sub: None, raw });
    }
    let in_param = |e: ScimError| ScimError::invalid_value(format!("{param}: {}", e.detail));
    if let Some(schema) = foreign_known_schema(kind, entry) {
        return Err(in_param(wrong_type_error(kind, schema, &format!("'{entry}'"))));
    }
    let path = AttrPath::parse(entry).map_err(in_param)?;
    let target = locate(kind, &path).map_err(in_param)?;
    Ok(Selector { container: target.container, name: Some(target.name), sub: target.sub, raw })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn def(kind: &str) -> AttributeDef {
        serde_json::from_value(json!({
            "name": "x", "type": kind, "multiValued": false, "required": false,
            "mutability": "readWrite", "returned": "default"
        }))
        .unwrap()
    }

    #[test]
    fn scalar_types() {
        let dt = def("dateTime");
        assert!(check_scalar(&dt, json!("2024-05-01T12:00:00Z"), "x").is_ok());
        assert!(check_scalar(&dt, json!("2024-05-01T12:00:00.123+02:00"), "x").is_ok());
        let e = check_scalar(&dt, json!("2024-05-01"), "x").unwrap_err();
        assert!(e.detail.contains("RFC 3339") && e.detail.contains("\"2024-05-01\""), "{}", e.detail);
        let int = def("integer");
        assert_eq!(check_scalar(&int, json!(7), "x").unwrap(), json!(7));
        assert_eq!(check_scalar(&int, json!(7.0), "x").unwrap(), json!(7));
        assert!(check_scalar(&int, json!(7.5), "x").is_err());
        assert!(check_scalar(&int, json!("7"), "x").is_err());
        let dec = def("decimal");
        assert!(check_scalar(&dec, json!(7.5), "x").is_ok());
        assert!(check_scalar(&dec, json!("7.5"), "x").is_err());
    }

    #[test]
    fn immutable_values_may_be_set_once() {
        let mut d = def("string");
        d.mutability = Mutability::Immutable;
        assert!(check_unchanged(&d, "x", None, Some(&json!("a"))).is_ok());
        assert!(check_unchanged(&d, "x", Some(&json!("a")), Some(&json!("A"))).is_ok());
        d.case_exact = true;
        let e = check_unchanged(&d, "x", Some(&json!("a")), Some(&json!("A"))).unwrap_err();
        assert_eq!(e.scim_type, Some(crate::ScimType::Mutability));
        assert!(e.detail.contains("x is immutable"), "{}", e.detail);
        let e = check_unchanged(&d, "x", Some(&json!("a")), None).unwrap_err();
        assert!(e.detail.contains("cannot be removed"), "{}", e.detail);
    }

    #[test]
    fn value_keys_agree_with_same_value() {
        let user = ResourceKind::User.resource_type();
        let emails = user.core.attribute("emails").unwrap();
        let user_name = user.core.attribute("userName").unwrap();
        let mut exact = def("string");
        exact.case_exact = true;
        let values = [
            json!("Bjensen"),
            json!("bjensen"),
            json!("BJENSEN"),
            json!("Émile"),
            json!("émile"),
            json!(1),
            json!(1.0),
            json!(null),
            json!(["A", "b"]),
            json!(["a", "B"]),
            json!({"value": "A@x", "type": "work"}),
            json!({"type": "WORK", "value": "a@x"}),
            json!({"value": "a@x", "type": "work", "custom": "Q"}),
            json!({"value": "a@x", "type": "work", "custom": "q"}),
            json!({"value": "a@x", "type": "work", "custom": {"m": 1, "n": 2}}),
            json!({"type": "work", "custom": {"n": 2, "m": 1}, "value": "a@x"}),
        ];
        for d in [emails, user_name, &exact] {
            for a in &values {
                for b in &values {
                    assert_eq!(same_value(d, a, b), value_key(d, a) == value_key(d, b), "{} {a} {b}", d.name);
                }
            }
        }
    }

    #[test]
    fn describe_truncates_and_hides_sensitive_values() {
        let long = "y".repeat(500);
        assert!(describe(&json!(long), false).len() < 100);
        assert_eq!(describe(&json!("pw"), true), "a string");
        assert_eq!(describe(&json!([1]), false), "an array of 1 value");
    }
}
