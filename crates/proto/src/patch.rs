//! PATCH (RFC 7644 §3.5.2): parsing PatchOp messages and applying them atomically.
//!
//! The dialects of the IdPs scimd serves are first-class (see `idp-behaviour.md` B.3 and D):
//!
//! - `op` is case-insensitive (Entra ID sends `Add`, `Replace`, `Remove`), and so are the keys
//!   `op` / `path` / `value` / `Operations`.
//! - Without `path`, `value` is an object whose keys are plain names, dotted sub-attribute paths
//!   (`name.givenName`), URN-qualified names
//!   (`urn:...:enterprise:2.0:User:employeeNumber`) or an extension URN holding an object.
//!   readOnly keys in it are ignored: `id` when it equals the resource's id (Okta renames groups
//!   with `{"id": ..., "displayName": ...}`; a different id is 400 mutability, since it means
//!   the client is patching the wrong resource), `meta` and User `groups` always (the server
//!   computes them; clients echo stale copies). `schemas` is checked and otherwise ignored: it
//!   is recomputed from the data.
//! - Values are checked and coerced exactly as in [`crate::resource::prepare`]: `"False"` for a
//!   boolean is `false`, a one-element array for a single-valued attribute is unwrapped.
//! - `add`/`replace` with a `null` value remove the target (RFC 7643 §2.5: null is unassigned).
//! - `add` to a multi-valued attribute appends, skipping values already present (Group members
//!   by `value`); `replace` of a whole multi-valued attribute replaces every value; `add` or
//!   `replace` on a single-valued complex attribute merges the given sub-attributes
//!   (RFC 7644 §3.5.2.3), a `null` sub-attribute clearing that one.
//! - A sub-attribute of a multi-valued attribute without filter (`emails.value`) applies to
//!   every value.
//! - Value filters (`emails[type eq "work"].value`, `members[value eq "id"]`): `add`/`replace`
//!   that match nothing create the value from the filter's `eq` comparisons (Entra ID expects
//!   this; the RFC would answer 400 noTarget), so several operations on sub-attributes of the
//!   same filtered value build ONE value. A filter that cannot describe a value (`co`, `or`,
//!   ...) and matches nothing is 400 noTarget. `replace` of a whole filtered value keeps the
//!   filter's `eq` sub-attributes when the new value omits them, so it still matches.
//! - `remove` of `members` with a `value` array removes only those members (Entra ID), by
//!   `value`; without `value` it removes all. `remove` with a filter that matches nothing
//!   succeeds and changes nothing: the state the client asked for already holds.
//! - Setting `primary: true` on a value demotes the previous primary value (RFC 7644 §3.5.2).
//! - Attributes no schema defines (`company`, an unknown extension) may be patched as untyped
//!   JSON, but not through value filters.
//! - The result is held to the size limits of [`crate::resource`] (400 invalidValue naming the
//!   limit); arrays and attribute counts are also checked as each operation applies, and the
//!   member values of all operations together may not exceed [`resource::MAX_MEMBERS`]. Every operation
//!   works in time about linear in the values it touches: values are compared through hash
//!   keys, never pairwise.
//!
//! Errors: readOnly targets, removing a required attribute and changing an immutable one are
//! 400 mutability; an unparsable or undefined path 400 invalidPath; `remove` without path 400
//! noTarget. Operations apply to a copy, in order, and the result is committed only when every
//! operation and the final validation succeed.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use crate::error::ScimError;
use crate::filter::{CompValue, CompareOp, Filter};
use crate::json::{self, get_ci};
use crate::path::{AttrPath, PatchPath, split_urn};
use crate::resource::{
    self, Container, KeyTarget, Target, add_declared, check_attribute_count, check_immutable, check_member_count,
    check_value_count, container_mut, describe, identity, locate, locate_in_extension, locate_key, normalise_attr,
    normalise_one, normalise_resource, read_schemas, top_level_def, value_key,
};
use crate::schema::{AttrType, AttributeDef, Mutability, PATCH_OP_SCHEMA, ResourceKind, Schema};

/// Most operations one PATCH request may carry, to bound the work one request can cause.
pub const MAX_OPERATIONS: usize = 1000;

/// The three PATCH operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchOpKind {
    /// `add`: adds values (appends to multi-valued attributes, merges complex ones).
    Add,
    /// `replace`: replaces values.
    Replace,
    /// `remove`: removes values.
    Remove,
}

impl PatchOpKind {
    /// The operation's keyword, lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            PatchOpKind::Add => "add",
            PatchOpKind::Replace => "replace",
            PatchOpKind::Remove => "remove",
        }
    }
}

/// One parsed operation.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOperation {
    /// The operation (`op`, case-insensitive on the wire).
    pub op: PatchOpKind,
    /// The target; `None` means the resource itself (then `value` is an object).
    pub path: Option<PatchPath>,
    /// The value as sent; `Some(Value::Null)` when the client sent `null`.
    pub value: Option<Value>,
}

/// A parsed PatchOp message (RFC 7644 §3.5.2).
#[derive(Debug, Clone, PartialEq)]
pub struct PatchRequest {
    operations: Vec<PatchOperation>,
}

impl PatchRequest {
    /// Parses a PatchOp body: `schemas` must include the PatchOp URN and `Operations` must be
    /// a non-empty array of at most [`MAX_OPERATIONS`] operations. Paths are parsed here;
    /// they are resolved against the schema when applied.
    pub fn parse(body: Value) -> Result<Self, ScimError> {
        let Value::Object(body) = body else {
            return Err(ScimError::invalid_syntax(format!(
                "a PATCH body must be a JSON object (a PatchOp message with schemas and Operations); received {}",
                describe(&body, false)
            )));
        };
        let lists_patch_op = match get_ci(&body, "schemas") {
            Some(Value::Array(items)) => {
                items.iter().any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(PATCH_OP_SCHEMA)))
            }
            Some(Value::String(s)) => s.eq_ignore_ascii_case(PATCH_OP_SCHEMA),
            _ => false,
        };
        if !lists_patch_op {
            return Err(ScimError::invalid_syntax(format!(
                "a PATCH body must list \"{PATCH_OP_SCHEMA}\" in schemas; received {}",
                get_ci(&body, "schemas").map_or_else(|| "no schemas".to_owned(), |v| describe(v, false))
            )));
        }
        let operations = match get_ci(&body, "Operations") {
            Some(Value::Array(ops)) if ops.is_empty() => {
                return Err(ScimError::invalid_value("Operations is empty: a PATCH needs at least one operation"));
            }
            Some(Value::Array(ops)) if ops.len() > MAX_OPERATIONS => {
                return Err(ScimError::invalid_value(format!(
                    "Operations has {} operations; the limit is {MAX_OPERATIONS} per request: split the change into \
                     several PATCH requests",
                    ops.len()
                )));
            }
            Some(Value::Array(ops)) => ops,
            Some(other) => {
                return Err(ScimError::invalid_syntax(format!(
                    "Operations must be an array of operations; received {}",
                    describe(other, false)
                )));
            }
            None => return Err(ScimError::invalid_syntax("a PATCH body needs an Operations array")),
        };
        let operations =
            operations.iter().enumerate().map(|(i, op)| parse_operation(i, op)).collect::<Result<Vec<_>, _>>()?;
        check_member_count(operations.iter().map(member_values).sum())?;
        Ok(PatchRequest { operations })
    }

    /// The operations, in order.
    pub fn operations(&self) -> &[PatchOperation] {
        &self.operations
    }

    /// Applies every operation to `resource` (the stored form: [`resource::prepare`]'s output
    /// plus `id`, and for Groups `members`), all or nothing: on error `resource` is unchanged.
    /// On success it is in canonical stored form again, with its readOnly attributes (`id`,
    /// `meta`, ...) as they were.
    pub fn apply(&self, resource: &mut Value, kind: ResourceKind) -> Result<(), ScimError> {
        let Value::Object(original) = &*resource else {
            return Err(ScimError::new(500, "the stored resource to patch is not a JSON object"));
        };
        let mut doc = original.clone();
        let mut declared: Vec<String> = match original.get("schemas") {
            Some(Value::Array(items)) => items.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect(),
            _ => Vec::new(),
        };
        for (i, op) in self.operations.iter().enumerate() {
            apply_operation(&mut doc, op, kind, &mut declared).map_err(|e| in_operation(e, i, op))?;
        }
        let patched = finish(kind, doc, resource, &declared)
            .map_err(|e| ScimError { detail: format!("the patched {} is invalid: {}", kind.name(), e.detail), ..e })?;
        *resource = patched;
        Ok(())
    }
}

/// How many `members` values an operation carries, for [`resource::MAX_MEMBERS`].
fn member_values(op: &PatchOperation) -> usize {
    let is_members = |name: &str| split_urn(name).1.eq_ignore_ascii_case("members");
    let count = |value: &Value| match value {
        Value::Array(items) => items.len(),
        Value::Null => 0,
        _ => 1,
    };
    match (&op.path, &op.value) {
        (Some(path), Some(value)) if path.attr.sub.is_none() && is_members(&path.attr.name) => count(value),
        (None, Some(Value::Object(entries))) => {
            entries.iter().filter(|(k, _)| is_members(k)).map(|(_, v)| count(v)).sum()
        }
        _ => 0,
    }
}

fn parse_operation(i: usize, op: &Value) -> Result<PatchOperation, ScimError> {
    let at = format!("Operations[{i}]");
    let Value::Object(op) = op else {
        return Err(ScimError::invalid_syntax(format!(
            "{at} must be an object with op, path and value; received {}",
            describe(op, false)
        )));
    };
    let kind = match get_ci(op, "op") {
        Some(Value::String(s)) if s.eq_ignore_ascii_case("add") => PatchOpKind::Add,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("replace") => PatchOpKind::Replace,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("remove") => PatchOpKind::Remove,
        other => {
            return Err(ScimError::invalid_syntax(format!(
                "{at}.op must be \"add\", \"replace\" or \"remove\"; received {}",
                other.map_or_else(|| "nothing".to_owned(), |v| describe(v, false))
            )));
        }
    };
    let path = match get_ci(op, "path") {
        None | Some(Value::Null) => None,
        // Some clients send `"path": ""` for a path-less operation.
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => {
            Some(PatchPath::parse(s).map_err(|e| ScimError { detail: format!("{at}.path: {}", e.detail), ..e })?)
        }
        Some(other) => {
            return Err(ScimError::invalid_path(format!(
                "{at}.path must be a string; received {}",
                describe(other, false)
            )));
        }
    };
    let value = get_ci(op, "value").cloned();
    match (kind, &path, &value) {
        (PatchOpKind::Remove, None, _) => {
            Err(ScimError::no_target(format!("{at} is a remove without a path: name the attribute to remove in path")))
        }
        (PatchOpKind::Add | PatchOpKind::Replace, _, None) => {
            Err(ScimError::invalid_value(format!("{at} ({}) has no value: give the value to set", kind.as_str())))
        }
        (PatchOpKind::Add | PatchOpKind::Replace, None, Some(v)) if !v.is_object() => {
            Err(ScimError::invalid_value(format!(
                "{at} ({}) has no path, so its value must be an object of attributes (e.g. {{\"active\": false}}); \
                 received {}",
                kind.as_str(),
                describe(v, false)
            )))
        }
        _ => Ok(PatchOperation { op: kind, path, value }),
    }
}

/// Prefixes an error with the operation it came from, so the IdP admin sees which one failed.
fn in_operation(e: ScimError, i: usize, op: &PatchOperation) -> ScimError {
    let what = match &op.path {
        Some(path) => format!("{} {path}", op.op.as_str()),
        None => format!("{} without path", op.op.as_str()),
    };
    ScimError { detail: format!("Operations[{i}] ({what}): {}", e.detail), ..e }
}

/// Normalises the patched document and restores the attributes only the server sets.
fn finish(
    kind: ResourceKind,
    doc: Map<String, Value>,
    original: &Value,
    declared: &[String],
) -> Result<Value, ScimError> {
    let rt = kind.resource_type();
    let mut normalised = Value::Object(normalise_resource(kind, doc, declared)?);
    check_immutable(kind, original, &normalised)?;
    let (Value::Object(original), Value::Object(normalised)) = (original, &mut normalised) else {
        return Err(ScimError::new(500, "normalisation did not produce an object"));
    };
    // readOnly attributes pass through unchanged: no operation may modify them, and
    // normalisation (built for client input) drops them.
    let server_owned: Vec<(&String, &Value)> = original
        .iter()
        .filter(|(k, _)| top_level_def(rt, k).is_some_and(|d| d.mutability == Mutability::ReadOnly))
        .collect();
    let mut result = Map::with_capacity(normalised.len() + server_owned.len());
    if let Some(schemas) = normalised.get("schemas") {
        result.insert("schemas".to_owned(), schemas.clone());
    }
    for (k, v) in server_owned.iter().filter(|(k, _)| k.as_str() == "id") {
        result.insert((*k).clone(), (*v).clone());
    }
    for (k, v) in std::mem::take(normalised) {
        if k != "schemas" {
            result.insert(k, v);
        }
    }
    for (k, v) in server_owned.into_iter().filter(|(k, _)| k.as_str() != "id") {
        result.insert(k.clone(), v.clone());
    }
    Ok(Value::Object(result))
}

fn apply_operation(
    doc: &mut Map<String, Value>,
    op: &PatchOperation,
    kind: ResourceKind,
    declared: &mut Vec<String>,
) -> Result<(), ScimError> {
    match &op.path {
        Some(path) => apply_path(doc, op.op, kind, path, op.value.clone()),
        None => {
            let Some(Value::Object(entries)) = &op.value else {
                return Err(ScimError::invalid_value("a path-less operation needs an object value"));
            };
            for (key, value) in entries {
                apply_value_entry(doc, op.op, kind, key, value.clone(), declared)?;
            }
            Ok(())
        }
    }
}

/// One key of a path-less operation's value object.
fn apply_value_entry(
    doc: &mut Map<String, Value>,
    op: PatchOpKind,
    kind: ResourceKind,
    key: &str,
    value: Value,
    declared: &mut Vec<String>,
) -> Result<(), ScimError> {
    match locate_key(kind, key, &value, declared)? {
        KeyTarget::Schemas => add_declared(declared, read_schemas(kind, &value)?),
        KeyTarget::Extension(ext) => apply_extension_object(doc, op, kind, ext, value),
        KeyTarget::Attr(target) => {
            if is_read_only(&target) {
                return check_ignored_read_only(doc, &target, &value);
            }
            apply_target(doc, op, kind, &target, None, Some(value))
        }
    }
}

/// `{"urn:...:enterprise:2.0:User": {...}}` as a path-less value key, or an extension URN as
/// the path.
fn apply_extension_object(
    doc: &mut Map<String, Value>,
    op: PatchOpKind,
    kind: ResourceKind,
    ext: &'static Schema,
    value: Value,
) -> Result<(), ScimError> {
    match value {
        Value::Null => {
            remove_key(doc, &ext.id);
            Ok(())
        }
        Value::Object(entries) => {
            for (k, v) in entries {
                let target = locate_in_extension(kind, ext, &k)?;
                if is_read_only(&target) {
                    continue;
                }
                apply_target(doc, op, kind, &target, None, Some(v))?;
            }
            Ok(())
        }
        other => Err(resource::extension_not_object(ext, &other)),
    }
}

fn is_read_only(target: &Target) -> bool {
    let ro = |d: Option<&AttributeDef>| d.is_some_and(|d| d.mutability == Mutability::ReadOnly);
    ro(target.def) || ro(target.sub_def)
}

/// A readOnly key in a path-less value: `id` must be the resource's own; the others (`meta`,
/// `groups`, `manager.displayName`) are the server's and ignored.
fn check_ignored_read_only(doc: &Map<String, Value>, target: &Target, value: &Value) -> Result<(), ScimError> {
    if target.container != Container::Top || target.name != "id" || target.sub.is_some() {
        return Ok(());
    }
    match doc.get("id") {
        Some(id) if id != value && !value.is_null() => Err(ScimError::mutability(format!(
            "id is readOnly: the value sets id to {} but this resource's id is {}; remove id from the value or \
             PATCH the resource it names",
            describe(value, false),
            describe(id, false)
        ))),
        _ => Ok(()),
    }
}

fn apply_path(
    doc: &mut Map<String, Value>,
    op: PatchOpKind,
    kind: ResourceKind,
    path: &PatchPath,
    value: Option<Value>,
) -> Result<(), ScimError> {
    let rt = kind.resource_type();
    // `urn:...:enterprise:2.0:User` parses as the attribute `User` of the schema
    // `urn:...:enterprise:2.0`; it names the whole extension.
    if path.filter.is_none()
        && path.sub.is_none()
        && path.attr.sub.is_none()
        && let Some(urn) = &path.attr.schema
        && let Some(ext) = rt.extension(&format!("{urn}:{}", path.attr.name))
    {
        return match op {
            PatchOpKind::Remove => {
                remove_key(doc, &ext.id);
                Ok(())
            }
            _ => apply_extension_object(doc, op, kind, ext, value.unwrap_or(Value::Null)),
        };
    }
    let mut target = locate(kind, &path.attr)?;
    if path.attr.name.eq_ignore_ascii_case("schemas") && target.def.is_none() && target.container == Container::Top {
        return Err(ScimError::mutability(
            "schemas cannot be patched: it is derived from the attributes the resource holds; patch those instead",
        ));
    }
    if let Some(filter) = &path.filter {
        let Some(def) = target.def else {
            return Err(ScimError::invalid_path(format!(
                "'{path}': no schema of {} resources defines '{}', so it cannot be filtered; value filters select \
                 values of a defined complex attribute such as emails[type eq \"work\"]",
                kind.name(),
                target.label()
            )));
        };
        Filter::ValuePath(path.attr.clone(), Box::new(filter.clone()))
            .validate(rt)
            .map_err(|e| ScimError::invalid_path(format!("'{path}': {}", e.detail)))?;
        if let Some(sub) = &path.sub {
            let sub_def = def.sub_attribute(sub);
            target.sub = Some(sub_def.map_or_else(|| sub.clone(), |d| d.name.clone()));
            target.sub_def = sub_def;
        }
    }
    if is_read_only(&target) {
        return Err(ScimError::mutability(format!(
            "{} is readOnly: the server sets it and a PATCH cannot {} it",
            target.label(),
            op.as_str()
        )));
    }
    let removes = op == PatchOpKind::Remove || value.as_ref().is_some_and(Value::is_null);
    let partial = path.filter.is_some()
        || target.sub.is_some()
        || (op == PatchOpKind::Remove && value.as_ref().is_some_and(|v| !v.is_null()));
    if removes && !partial && target.def.is_some_and(|d| d.required) {
        return Err(ScimError::mutability(format!(
            "{} is required and cannot be removed; replace it with a new value instead",
            target.label()
        )));
    }
    apply_target(doc, op, kind, &target, path.filter.as_ref(), value)
}

/// Applies one operation to a resolved target. `add`/`replace` with `null` remove.
fn apply_target(
    doc: &mut Map<String, Value>,
    op: PatchOpKind,
    kind: ResourceKind,
    target: &Target,
    filter: Option<&Filter>,
    value: Option<Value>,
) -> Result<(), ScimError> {
    let (op, value) = match (op, value) {
        (PatchOpKind::Add | PatchOpKind::Replace, None | Some(Value::Null)) => (PatchOpKind::Remove, None),
        (op, value) => (op, value),
    };
    let Some(def) = target.def else {
        return apply_undefined(doc, op, target, value);
    };
    match (filter, &target.sub) {
        (Some(filter), _) => apply_filtered(doc, op, kind, target, def, filter, value),
        (None, Some(_)) => apply_sub(doc, op, target, def, value),
        (None, None) => apply_whole(doc, op, target, def, value),
    }
}

/// The value of an add/replace: present, since null turned the operation into a remove.
fn required_value(value: Option<Value>) -> Result<Value, ScimError> {
    value.ok_or_else(|| ScimError::invalid_value("the operation has no value"))
}

/// The attribute itself: `members`, `active`, `name`, `urn:...:manager`.
fn apply_whole(
    doc: &mut Map<String, Value>,
    op: PatchOpKind,
    target: &Target,
    def: &'static AttributeDef,
    value: Option<Value>,
) -> Result<(), ScimError> {
    let label = target.label();
    let Some(container) = container_mut(doc, &target.container, op != PatchOpKind::Remove)? else {
        return Ok(());
    };
    match op {
        PatchOpKind::Remove => match value {
            Some(given) if def.multi_valued => remove_values(container, def, &target.name, given, &label),
            _ => {
                remove_key(container, &target.name);
                Ok(())
            }
        },
        PatchOpKind::Replace if def.multi_valued => {
            match normalise_attr(def, required_value(value)?, &label)? {
                Some(values) => {
                    check_items(def, values.as_array().map_or(1, Vec::len), &label)?;
                    set_key(container, &target.name, values);
                }
                None => remove_key(container, &target.name),
            }
            Ok(())
        }
        PatchOpKind::Add if def.multi_valued => {
            let Some(Value::Array(incoming)) = normalise_attr(def, required_value(value)?, &label)? else {
                return Ok(());
            };
            let mut items = take_items(container, &target.name);
            // `normalise_attr` dropped duplicates among the incoming values; drop those already
            // present. The keys of the present ones borrow from them (no copy per member).
            let fresh: Vec<bool> = {
                let present: HashSet<_> = items.iter().map(|v| identity(def, v)).collect();
                incoming.iter().map(|item| !present.contains(&identity(def, item))).collect()
            };
            let mut written = Vec::new();
            for (item, fresh) in incoming.into_iter().zip(fresh) {
                if fresh {
                    written.push(items.len());
                    items.push(item);
                }
            }
            demote_other_primaries(&mut items, &written);
            put_items(container, &target.name, def, items, &label)
        }
        PatchOpKind::Add | PatchOpKind::Replace if def.kind == AttrType::Complex => {
            merge_complex(container, def, &target.name, required_value(value)?, &label)
        }
        PatchOpKind::Add | PatchOpKind::Replace => {
            match normalise_attr(def, required_value(value)?, &label)? {
                Some(v) => set_key(container, &target.name, v),
                None => remove_key(container, &target.name),
            }
            Ok(())
        }
    }
}

/// `remove` of a multi-valued attribute with a `value`: removes the values that match one of
/// the given ones (Group members by `value`; complex values when every given sub-attribute
/// matches; simple values when equal).
fn remove_values(
    container: &mut Map<String, Value>,
    def: &AttributeDef,
    name: &str,
    given: Value,
    label: &str,
) -> Result<(), ScimError> {
    let given = match given {
        Value::Array(items) => items,
        single => vec![single],
    };
    let mut patterns = Vec::with_capacity(given.len());
    for (i, item) in given.into_iter().enumerate() {
        if let Some(pattern) = normalise_one(def, item, &format!("value[{i}]"))? {
            patterns.push(pattern);
        }
    }
    if patterns.is_empty() {
        return Err(ScimError::invalid_value(format!(
            "the value of a remove names the {label} values to remove; it names none (omit value to remove them all)"
        )));
    }
    let mut items = take_items(container, name);
    if resource::is_member_list(def) {
        let doomed: HashSet<String> = patterns.iter().map(|p| identity(def, p).into_owned()).collect();
        items.retain(|item| !doomed.contains(identity(def, item).as_ref()));
    } else {
        check_value_count(patterns.len(), &format!("the value of the remove of {label}"))?;
        let patterns = Patterns::new(def, &patterns);
        items.retain(|item| !patterns.matches(item));
    }
    put_items(container, name, def, items, label)
}

/// The values a `remove` names, indexed so that each stored value is checked in time
/// independent of their number. A stored value matches a pattern object when it has every
/// sub-attribute of the pattern with an equal value ([`resource::same_value`]); any other
/// pattern when it is equal to it. Pattern objects are grouped by their sub-attribute names,
/// and each group is a hash set of the values' keys ([`value_key`]).
struct Patterns<'d> {
    def: &'d AttributeDef,
    /// Keys of the patterns that are not objects.
    scalars: HashSet<String>,
    /// Sorted sub-attribute names, and the keys of the pattern objects that have exactly those.
    groups: Vec<(Vec<&'d str>, HashSet<String>)>,
}

impl<'d> Patterns<'d> {
    fn new(def: &'d AttributeDef, patterns: &'d [Value]) -> Self {
        let mut scalars = HashSet::new();
        let mut groups: Vec<(Vec<&str>, HashSet<String>)> = Vec::new();
        let mut group_of: HashMap<Vec<&str>, usize> = HashMap::new();
        for pattern in patterns {
            let Value::Object(map) = pattern else {
                scalars.insert(value_key(def, pattern));
                continue;
            };
            let mut names: Vec<&str> = map.keys().map(String::as_str).collect();
            names.sort_unstable();
            let key = Self::tuple_key(def, &names, |name| map.get(name));
            let index = *group_of.entry(names.clone()).or_insert_with(|| {
                groups.push((names, HashSet::new()));
                groups.len() - 1
            });
            if let Some(key) = key {
                groups[index].1.insert(key);
            }
        }
        Patterns { def, scalars, groups }
    }

    /// The key of the values of `names` as `get` finds them, or `None` when one is missing.
    fn tuple_key<'v>(def: &AttributeDef, names: &[&str], get: impl Fn(&str) -> Option<&'v Value>) -> Option<String> {
        let mut out = String::from("[");
        for (i, name) in names.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let v = get(name)?;
            match def.sub_attribute(name) {
                Some(sub) => out.push_str(&value_key(sub, v)),
                None => json::write_canonical(v, &mut out),
            }
        }
        out.push(']');
        Some(out)
    }

    fn matches(&self, item: &Value) -> bool {
        match item {
            Value::Object(map) => self.groups.iter().any(|(names, keys)| {
                Self::tuple_key(self.def, names, |name| get_ci(map, name)).is_some_and(|key| keys.contains(&key))
            }),
            other => self.scalars.contains(&value_key(self.def, other)),
        }
    }
}

/// `add`/`replace` on a single-valued complex attribute: merges the given sub-attributes.
fn merge_complex(
    container: &mut Map<String, Value>,
    def: &AttributeDef,
    name: &str,
    value: Value,
    label: &str,
) -> Result<(), ScimError> {
    let incoming = match value {
        // Entra ID sends `manager` as a one-element array.
        Value::Array(mut items) if items.len() == 1 => items.pop().unwrap_or(Value::Null),
        other => other,
    };
    let incoming = match incoming {
        Value::Object(map) => map,
        Value::String(s) if def.sub_attribute("value").is_some() => {
            let mut map = Map::new();
            map.insert("value".to_owned(), Value::String(s));
            map
        }
        Value::Null => {
            remove_key(container, name);
            return Ok(());
        }
        Value::Array(items) if items.is_empty() => {
            remove_key(container, name);
            return Ok(());
        }
        other => {
            // The shared check words the error (a wrong type, or an array of several values).
            let fallback = || {
                ScimError::invalid_value(format!(
                    "{label} must be an object with sub-attributes {}; received {}",
                    def.sub_attributes.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
                    describe(&other, false)
                ))
            };
            return Err(normalise_attr(def, other.clone(), label).err().unwrap_or_else(fallback));
        }
    };
    let mut merged = match container.get(name) {
        Some(Value::Object(existing)) => existing.clone(),
        _ => Map::new(),
    };
    merge_into(&mut merged, def, incoming, label)?;
    if merged.is_empty() {
        remove_key(container, name);
    } else {
        set_key(container, name, Value::Object(merged));
    }
    Ok(())
}

/// Merges sub-attributes into a complex value: `null` clears one, readOnly ones are ignored.
fn merge_into(
    existing: &mut Map<String, Value>,
    def: &AttributeDef,
    incoming: Map<String, Value>,
    label: &str,
) -> Result<(), ScimError> {
    let mut entries = Vec::with_capacity(incoming.len());
    for (key, value) in incoming {
        let sub = def.sub_attribute(&key);
        if sub.is_some_and(|s| s.mutability == Mutability::ReadOnly) {
            continue;
        }
        let name = sub.map_or_else(|| key.clone(), |s| s.name.clone());
        let normalised = match sub {
            Some(sub) => normalise_attr(sub, value, &format!("{label}.{name}"))?,
            None if value.is_null() => None,
            None => Some(value),
        };
        entries.push((name, normalised));
    }
    merge_entries(existing, entries);
    Ok(())
}

/// Sets keys of an object, in order, as if each one in turn removed the keys equal to it
/// ignoring case and then, unless its value is `None`, inserted itself: in one pass over the
/// object, not one per key.
fn merge_entries(existing: &mut Map<String, Value>, entries: Vec<(String, Option<Value>)>) {
    let mut last: HashMap<String, usize> = HashMap::with_capacity(entries.len());
    for (i, (key, _)) in entries.iter().enumerate() {
        last.insert(key.to_ascii_lowercase(), i);
    }
    existing.retain(|key, _| !last.contains_key(&key.to_ascii_lowercase()));
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if let Some(value) = value
            && last.get(&key.to_ascii_lowercase()) == Some(&i)
        {
            existing.insert(key, value);
        }
    }
}

/// A sub-attribute without filter: `name.givenName`; on a multi-valued attribute
/// (`emails.value`) it applies to every value, creating one if there is none.
fn apply_sub(
    doc: &mut Map<String, Value>,
    op: PatchOpKind,
    target: &Target,
    def: &'static AttributeDef,
    value: Option<Value>,
) -> Result<(), ScimError> {
    let label = target.label();
    let sub = target.sub.as_deref().unwrap_or_default();
    let Some(container) = container_mut(doc, &target.container, op != PatchOpKind::Remove)? else {
        return Ok(());
    };
    let mut items = take_items(container, &target.name);
    let written: Vec<usize> = match op {
        PatchOpKind::Remove => {
            for item in &mut items {
                if let Value::Object(map) = item {
                    remove_key_ci(map, sub);
                }
            }
            items.retain(|item| !is_empty_object(item));
            Vec::new()
        }
        PatchOpKind::Add | PatchOpKind::Replace => {
            let value = normalise_sub(target, required_value(value)?, &label)?;
            if items.is_empty() {
                items.push(Value::Object(Map::new()));
            }
            for item in &mut items {
                set_sub(item, sub, value.clone(), &label)?;
            }
            items.retain(|item| !is_empty_object(item));
            (0..items.len()).collect()
        }
    };
    demote_other_primaries(&mut items, &written);
    put_items(container, &target.name, def, items, &label)
}

/// A sub-attribute's new value, checked against its definition when it has one.
fn normalise_sub(target: &Target, value: Value, label: &str) -> Result<Option<Value>, ScimError> {
    match target.sub_def {
        Some(sub) => normalise_attr(sub, value, label),
        None => Ok(Some(value)),
    }
}

fn set_sub(item: &mut Value, sub: &str, value: Option<Value>, label: &str) -> Result<(), ScimError> {
    let Value::Object(map) = item else {
        return Err(ScimError::invalid_value(format!(
            "{label}: the value holds {}, not an object, so it has no sub-attributes to set",
            describe(item, false)
        )));
    };
    remove_key_ci(map, sub);
    if let Some(v) = value {
        map.insert(sub.to_owned(), v);
    }
    Ok(())
}

/// A value-filtered path: `emails[type eq "work"]`, `emails[type eq "work"].value`.
fn apply_filtered(
    doc: &mut Map<String, Value>,
    op: PatchOpKind,
    kind: ResourceKind,
    target: &Target,
    def: &'static AttributeDef,
    filter: &Filter,
    value: Option<Value>,
) -> Result<(), ScimError> {
    let label = target.label();
    let attr_label = target.parent().label();
    let Some(container) = container_mut(doc, &target.container, op != PatchOpKind::Remove)? else {
        return Ok(());
    };
    let mut items = take_items(container, &target.name);
    let mut matched = Vec::new();
    let probe = ValueProbe::new(kind, target, filter);
    for (i, item) in items.iter_mut().enumerate() {
        if probe.matches(item) {
            matched.push(i);
        }
    }
    let written = match op {
        PatchOpKind::Remove => {
            match &target.sub {
                None => {
                    let doomed: HashSet<usize> = matched.iter().copied().collect();
                    let mut index = 0;
                    items.retain(|_| {
                        let keep = !doomed.contains(&index);
                        index += 1;
                        keep
                    });
                }
                Some(sub) => {
                    for &i in &matched {
                        if let Value::Object(map) = &mut items[i] {
                            remove_key_ci(map, sub);
                        }
                    }
                    items.retain(|item| !is_empty_object(item));
                }
            }
            Vec::new()
        }
        PatchOpKind::Add | PatchOpKind::Replace => {
            let value = required_value(value)?;
            let template = template(def, filter);
            if matched.is_empty() {
                let Some(mut element) = template else {
                    return Err(ScimError::no_target(format!(
                        "no value of {attr_label} matches [{filter}], and the filter does not describe a value to \
                         create (only eq comparisons joined by and do, e.g. [type eq \"work\"])"
                    )));
                };
                match &target.sub {
                    Some(sub) => {
                        element.insert(sub.clone(), value);
                    }
                    None => merge_raw(&mut element, value, def, &label)?,
                }
                let index = items.len();
                match normalise_one(def, Value::Object(element), &format!("{attr_label}[{index}]"))? {
                    Some(element) => {
                        items.push(element);
                        vec![index]
                    }
                    None => Vec::new(),
                }
            } else {
                for &i in &matched {
                    let element_label = format!("{attr_label}[{i}]");
                    match &target.sub {
                        Some(sub) => {
                            let v = normalise_sub(target, value.clone(), &format!("{element_label}.{sub}"))?;
                            set_sub(&mut items[i], sub, v, &label)?;
                        }
                        None if op == PatchOpKind::Replace => {
                            // The new value replaces the matched one; the filter's eq
                            // sub-attributes stay unless given, so the value still matches.
                            let mut element = template.clone().unwrap_or_default();
                            merge_raw(&mut element, value.clone(), def, &label)?;
                            match normalise_one(def, Value::Object(element), &element_label)? {
                                Some(element) => items[i] = element,
                                None => items[i] = Value::Object(Map::new()),
                            }
                        }
                        None => {
                            let Value::Object(existing) = &mut items[i] else { continue };
                            let incoming = match value.clone() {
                                Value::Object(map) => map,
                                other => {
                                    return Err(ScimError::invalid_value(format!(
                                        "{label}: an add to a filtered value takes an object of sub-attributes; \
                                         received {}",
                                        describe(&other, false)
                                    )));
                                }
                            };
                            merge_into(existing, def, incoming, &element_label)?;
                        }
                    }
                }
                // A replaced value that became empty is gone; the indices of the others shift.
                if items.iter().any(is_empty_object) {
                    items.retain(|item| !is_empty_object(item));
                    Vec::new()
                } else {
                    matched
                }
            }
        }
    };
    demote_other_primaries(&mut items, &written);
    put_items(container, &target.name, def, items, &label)
}

/// Merges a raw object (or `value` shorthand) over `element`, keys canonicalised.
fn merge_raw(element: &mut Map<String, Value>, value: Value, def: &AttributeDef, label: &str) -> Result<(), ScimError> {
    let incoming = match value {
        Value::Object(map) => map,
        Value::String(s) if def.sub_attribute("value").is_some() => {
            let mut map = Map::new();
            map.insert("value".to_owned(), Value::String(s));
            map
        }
        other => {
            return Err(ScimError::invalid_value(format!(
                "{label} must be an object with sub-attributes {}; received {}",
                def.sub_attributes.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
                describe(&other, false)
            )));
        }
    };
    let entries = incoming
        .into_iter()
        .map(|(key, v)| (def.sub_attribute(&key).map_or(key, |s| s.name.clone()), Some(v)))
        .collect();
    merge_entries(element, entries);
    Ok(())
}

/// The value a filter describes, when it is `eq` comparisons of sub-attributes joined by
/// `and`: `type eq "work"` describes `{"type": "work"}`.
fn template(def: &AttributeDef, filter: &Filter) -> Option<Map<String, Value>> {
    fn collect(def: &AttributeDef, filter: &Filter, out: &mut Map<String, Value>) -> bool {
        match filter {
            Filter::And(a, b) => collect(def, a, out) && collect(def, b, out),
            Filter::Compare(path, CompareOp::Eq, value) if path.schema.is_none() && path.sub.is_none() => {
                let json = match value {
                    CompValue::Str(s) => Value::String(s.clone()),
                    CompValue::Bool(b) => Value::Bool(*b),
                    CompValue::Number(n) => Value::Number(n.clone()),
                    CompValue::Null => return false,
                };
                let name = def.sub_attribute(&path.name).map_or_else(|| path.name.clone(), |s| s.name.clone());
                match out.get(&name) {
                    Some(existing) => *existing == json,
                    None => {
                        out.insert(name, json);
                        true
                    }
                }
            }
            _ => false,
        }
    }
    let mut out = Map::new();
    collect(def, filter, &mut out).then_some(out)
}

/// Evaluates a value filter against one element at a time, through the filter evaluator, so
/// that matching (caseExact, boolean strings, dateTimes) is the same as in `GET ?filter=`.
struct ValueProbe {
    filter: Filter,
    container: Container,
    name: String,
    kind: ResourceKind,
    /// For `members[value eq "id"]`, the id: member values are caseExact strings, so plain
    /// equality is what the evaluator would decide, without building a probe per member.
    member_id: Option<String>,
}

impl ValueProbe {
    fn new(kind: ResourceKind, target: &Target, filter: &Filter) -> Self {
        let attr = AttrPath { schema: target.container.urn().map(str::to_owned), name: target.name.clone(), sub: None };
        let member_id = match (target.def, filter) {
            (Some(def), Filter::Compare(path, CompareOp::Eq, CompValue::Str(id)))
                if resource::is_member_list(def)
                    && path.schema.is_none()
                    && path.sub.is_none()
                    && path.name.eq_ignore_ascii_case("value")
                    && def.sub_attribute("value").is_some_and(|v| v.case_exact) =>
            {
                Some(id.clone())
            }
            _ => None,
        };
        ValueProbe {
            filter: Filter::ValuePath(attr, Box::new(filter.clone())),
            container: target.container.clone(),
            name: target.name.clone(),
            kind,
            member_id,
        }
    }

    /// Whether `element` matches. The element is moved into a one-element resource and back,
    /// so large member lists are not copied.
    fn matches(&self, element: &mut Value) -> bool {
        if let Some(id) = &self.member_id {
            return element.get("value").and_then(Value::as_str) == Some(id.as_str());
        }
        let mut attr = Map::new();
        attr.insert(self.name.clone(), Value::Array(vec![std::mem::take(element)]));
        let resource = match self.container.urn() {
            None => attr,
            Some(urn) => {
                let mut top = Map::new();
                top.insert(urn.to_owned(), Value::Object(attr));
                top
            }
        };
        let resource_value = Value::Object(resource);
        let matched = self.filter.matches(&resource_value, self.kind.resource_type());
        // Move the element back out of the probe.
        let Value::Object(mut resource) = resource_value else { return matched };
        let attr = match self.container.urn() {
            None => Some(resource),
            Some(urn) => match resource.remove(urn) {
                Some(Value::Object(attr)) => Some(attr),
                _ => None,
            },
        };
        if let Some(Value::Array(mut items)) = attr.and_then(|mut a| a.remove(&self.name))
            && let Some(original) = items.pop()
        {
            *element = original;
        }
        matched
    }
}

/// Attributes no schema defines, patched as untyped JSON.
fn apply_undefined(
    doc: &mut Map<String, Value>,
    op: PatchOpKind,
    target: &Target,
    value: Option<Value>,
) -> Result<(), ScimError> {
    let label = target.label();
    let Some(container) = container_mut(doc, &target.container, op != PatchOpKind::Remove)? else {
        return Ok(());
    };
    let key = if container.contains_key(&target.name) {
        target.name.clone()
    } else {
        container.keys().find(|k| k.eq_ignore_ascii_case(&target.name)).cloned().unwrap_or_else(|| target.name.clone())
    };
    if op != PatchOpKind::Remove && !container.contains_key(&key) {
        // Bounds the scans above: one per operation, over at most this many keys.
        let what = target.container.urn().map_or_else(|| "the resource".to_owned(), str::to_owned);
        check_attribute_count(container.len() + 1, &what)?;
    }
    match (&target.sub, op) {
        (None, PatchOpKind::Remove) => remove_key(container, &key),
        (None, _) => {
            let value = required_value(value)?;
            let merged = match (container.get_mut(&key), value) {
                (Some(Value::Array(existing)), Value::Array(incoming)) if op == PatchOpKind::Add => {
                    // Appends the values not already present (`==`), through hash keys.
                    let mut seen: HashSet<String> = existing.iter().map(json::canonical).collect();
                    for item in incoming {
                        if seen.insert(json::canonical(&item)) {
                            existing.push(item);
                        }
                    }
                    check_value_count(existing.len(), &label)?;
                    None
                }
                (Some(Value::Object(existing)), Value::Object(incoming)) => {
                    merge_entries(
                        existing,
                        incoming.into_iter().map(|(k, v)| (k, (!v.is_null()).then_some(v))).collect(),
                    );
                    None
                }
                (_, value) => Some(value),
            };
            if let Some(value) = merged {
                if let Value::Array(items) = &value {
                    check_value_count(items.len(), &label)?;
                }
                set_key(container, &key, value);
            }
        }
        (Some(sub), op) => {
            let slot = container.get_mut(&key);
            match (slot, op) {
                (Some(Value::Object(map)), PatchOpKind::Remove) => remove_key_ci(map, sub),
                (None | Some(Value::Null), PatchOpKind::Remove) => {}
                (Some(Value::Object(map)), _) => {
                    remove_key_ci(map, sub);
                    map.insert(sub.clone(), required_value(value)?);
                }
                (None | Some(Value::Null), _) => {
                    let mut map = Map::new();
                    map.insert(sub.clone(), required_value(value)?);
                    set_key(container, &key, Value::Object(map));
                }
                (Some(other), _) => {
                    return Err(ScimError::invalid_path(format!(
                        "{label}: {} holds {}, not an object, so it has no sub-attribute '{sub}'",
                        target.name,
                        describe(other, false)
                    )));
                }
            }
        }
    }
    if let Some(urn) = target.container.urn()
        && doc.get(urn).is_some_and(is_empty_object)
    {
        remove_key(doc, urn);
    }
    Ok(())
}

/// After a value was set primary, every other value stops being primary (RFC 7644 §3.5.2).
fn demote_other_primaries(items: &mut [Value], written: &[usize]) {
    let is_primary = |v: &Value| v.get("primary") == Some(&Value::Bool(true));
    if !written.iter().any(|&i| items.get(i).is_some_and(is_primary)) {
        return;
    }
    let written: HashSet<usize> = written.iter().copied().collect();
    for (i, item) in items.iter_mut().enumerate() {
        if !written.contains(&i)
            && is_primary(item)
            && let Value::Object(map) = item
        {
            map.insert("primary".to_owned(), Value::Bool(false));
        }
    }
}

/// The values of an attribute as a list (a single value is a list of one), taken out.
fn take_items(container: &mut Map<String, Value>, name: &str) -> Vec<Value> {
    match container.get_mut(name).map(Value::take) {
        Some(Value::Array(items)) => items,
        Some(Value::Null) | None => Vec::new(),
        Some(single) => vec![single],
    }
}

/// Puts values back: an array for multi-valued attributes, the value itself otherwise;
/// nothing when there are none. More than [`resource::MAX_VALUES`] (other than Group members)
/// are refused at once, so that later operations never work through more.
fn put_items(
    container: &mut Map<String, Value>,
    name: &str,
    def: &AttributeDef,
    mut items: Vec<Value>,
    label: &str,
) -> Result<(), ScimError> {
    check_items(def, items.len(), label)?;
    if items.is_empty() {
        remove_key(container, name);
    } else if def.multi_valued || items.len() > 1 {
        // More than one value for a single-valued attribute is reported by normalisation.
        set_key(container, name, Value::Array(items));
    } else if let Some(item) = items.pop() {
        set_key(container, name, item);
    }
    Ok(())
}

/// [`resource::MAX_VALUES`] for an attribute's values; Group members are bounded per request.
fn check_items(def: &AttributeDef, count: usize, label: &str) -> Result<(), ScimError> {
    if resource::is_member_list(def) { Ok(()) } else { check_value_count(count, label) }
}

fn is_empty_object(value: &Value) -> bool {
    matches!(value, Value::Object(map) if map.is_empty())
}

/// Sets a key in place (keeping its position) or appends it.
fn set_key(map: &mut Map<String, Value>, key: &str, value: Value) {
    match map.get_mut(key) {
        Some(slot) => *slot = value,
        None => {
            map.insert(key.to_owned(), value);
        }
    }
}

/// Removes a key, keeping the order of the others.
fn remove_key(map: &mut Map<String, Value>, key: &str) {
    map.shift_remove(key);
}

fn remove_key_ci(map: &mut Map<String, Value>, key: &str) {
    let keys: Vec<String> = map.keys().filter(|k| k.eq_ignore_ascii_case(key)).cloned().collect();
    for k in keys {
        map.shift_remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn template_from_eq_conjunction_only() {
        let def = ResourceKind::User.resource_type().core.attribute("emails").unwrap();
        let f = crate::filter::parse(r#"emails[TYPE eq "work" and primary eq true]"#).unwrap();
        let Filter::ValuePath(_, inner) = f else { panic!("not a value path") };
        assert_eq!(Value::Object(template(def, &inner).unwrap()), json!({"type": "work", "primary": true}));
        let f = crate::filter::parse(r#"emails[type eq "work" or type eq "home"]"#).unwrap();
        let Filter::ValuePath(_, inner) = f else { panic!("not a value path") };
        assert!(template(def, &inner).is_none());
    }
}
