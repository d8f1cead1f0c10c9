//! Bulk requests (RFC 7644 §3.7): parsing and planning, free of I/O.
//!
//! [`BulkRequest::parse`] checks a request and finds each operation's `bulkId` references once;
//! [`BulkRequest::plan`] orders the operations so that every referenced resource is created
//! before it is used (Kahn's algorithm, O(operations + references)); [`substitute`] writes the
//! created ids into an operation's data; [`Target::resolve`] does the same for its path.
//!
//! A reference is a JSON string exactly `bulkId:<x>`, and only where RFC 7644 §3.7.2 puts one:
//! the path (`/Groups/bulkId:x`), the `value` of each element of `members`, and the `value` of
//! the enterprise extension's `manager` — in a resource body, or in a PATCH operation that sets
//! those attributes. Any other string is data: a `displayName` of `"bulkId:x"` is kept as sent.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::error::{ScimError, ScimType};
use crate::json::get_ci;
use crate::schema::{BULK_REQUEST_SCHEMA, ENTERPRISE_USER_SCHEMA, ResourceKind};

/// What turns a bulkId into a reference: `bulkId:user1`.
pub const REFERENCE_PREFIX: &str = "bulkId:";

/// How many bulkIds an error detail names before it says "and N more" (a cycle can be long).
const NAMED_IN_DETAIL: usize = 10;

/// The method of one bulk operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkMethod {
    /// Create a resource in a collection.
    Post,
    /// Replace a resource.
    Put,
    /// Modify a resource with a PatchOp.
    Patch,
    /// Delete a resource.
    Delete,
}

impl BulkMethod {
    /// The method as it appears on the wire (`POST`).
    pub fn name(self) -> &'static str {
        match self {
            BulkMethod::Post => "POST",
            BulkMethod::Put => "PUT",
            BulkMethod::Patch => "PATCH",
            BulkMethod::Delete => "DELETE",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [BulkMethod::Post, BulkMethod::Put, BulkMethod::Patch, BulkMethod::Delete]
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(text))
    }
}

/// The resource an operation's path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An existing resource's id (`/Users/2819c223`).
    Id(String),
    /// The resource another operation of the request creates (`/Users/bulkId:u1`).
    BulkId(String),
}

impl Target {
    /// The resource id, given the ids created so far by bulkId; `None` for a bulkId not created.
    pub fn resolve<'a>(&'a self, ids: &'a HashMap<String, String>) -> Option<&'a str> {
        match self {
            Target::Id(id) => Some(id),
            Target::BulkId(bulk_id) => ids.get(bulk_id).map(String::as_str),
        }
    }
}

/// An operation's parsed path: a collection, or one resource in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The resource type (`/Users` or `/Groups`).
    pub kind: ResourceKind,
    /// The resource within it; `None` for the collection itself (POST).
    pub target: Option<Target>,
}

/// One operation of a bulk request.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkOperation {
    /// The method.
    pub method: BulkMethod,
    /// The client's name for the operation's resource, which other operations reference.
    pub bulk_id: Option<String>,
    /// The `version` (an ETag), checked like `If-Match`.
    pub version: Option<String>,
    /// The path as sent.
    pub path: String,
    /// The parsed path, or why it fails this operation. A bad path fails only its operation,
    /// not the request: RFC 7644 §3.7.3 reports errors per operation.
    pub endpoint: Result<Endpoint, ScimError>,
    /// The body: a resource for POST and PUT, a PatchOp for PATCH, none for DELETE.
    pub data: Option<Value>,
    /// The bulkIds this operation references (path first, then data), each once.
    pub references: Vec<String>,
}

/// A parsed bulk request.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkRequest {
    /// Stop after this many failed operations (`failOnErrors`); `None` runs them all.
    pub fail_on_errors: Option<usize>,
    /// The operations, in request order.
    pub operations: Vec<BulkOperation>,
}

/// Why an operation cannot run, found before anything runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocked {
    /// It references these bulkIds, which no operation of the request has.
    Unknown(Vec<String>),
    /// It is in a reference cycle among the operations with these bulkIds (request order).
    Cycle(Arc<[String]>),
    /// It references this bulkId, whose operation cannot run because of a reference cycle.
    AfterCycle(String),
}

impl Blocked {
    /// The per-operation error: 409 `invalidValue`, naming the references at fault.
    pub fn to_error(&self) -> ScimError {
        let detail = match self {
            Blocked::Unknown(ids) if ids.len() == 1 => {
                format!("{} is not the bulkId of any operation in this request", name_references(ids))
            }
            Blocked::Unknown(ids) => {
                format!("{} are not bulkIds of any operation in this request", name_references(ids))
            }
            Blocked::Cycle(ids) if ids.len() == 1 => format!(
                "this operation references its own bulkId ({}), so it cannot run; use the resource's id \
                 in a later operation instead",
                name_references(ids)
            ),
            Blocked::Cycle(ids) => format!(
                "the operations with {} reference each other in a cycle, so none of them can run first; \
                 create the resources without these references, then add them with PATCH",
                name_references(ids)
            ),
            Blocked::AfterCycle(id) => format!(
                "{REFERENCE_PREFIX}{id} refers to an operation that cannot run because its bulkId references \
                 form a cycle"
            ),
        };
        ScimError { status: 409, scim_type: Some(ScimType::InvalidValue), detail }
    }
}

/// `bulkId:a, bulkId:b and 3 more`.
fn name_references(ids: &[String]) -> String {
    let mut out =
        ids.iter().take(NAMED_IN_DETAIL).map(|id| format!("{REFERENCE_PREFIX}{id}")).collect::<Vec<_>>().join(", ");
    if ids.len() > NAMED_IN_DETAIL {
        out.push_str(&format!(" and {} more", ids.len() - NAMED_IN_DETAIL));
    }
    out
}

/// The order to run a request's operations in, and which of them cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Every operation's index, once. Each comes after the operations it references; among
    /// operations free to run, request order. Operations held up by a cycle come last.
    pub order: Vec<usize>,
    /// Per operation (by request index): why it cannot run, or `None`.
    pub blocked: Vec<Option<Blocked>>,
}

impl Plan {
    /// The blocked operations with their reasons, in request order.
    pub fn problems(&self) -> impl Iterator<Item = (usize, &Blocked)> {
        self.blocked.iter().enumerate().filter_map(|(i, b)| b.as_ref().map(|b| (i, b)))
    }
}

impl BulkRequest {
    /// Parses a BulkRequest body. Errors that make the whole request unusable (wrong shape, too
    /// many operations, a POST without bulkId, a bulkId used twice) are returned; a path that
    /// names no endpoint only fails its operation (see [`BulkOperation::endpoint`]).
    pub fn parse(body: &Value, max_operations: usize) -> Result<BulkRequest, ScimError> {
        let obj = body.as_object().ok_or_else(|| ScimError::invalid_syntax("a bulk request must be a JSON object"))?;
        let names_schema = get_ci(obj, "schemas").and_then(Value::as_array).is_some_and(|schemas| {
            schemas.iter().any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(BULK_REQUEST_SCHEMA)))
        });
        if !names_schema {
            return Err(ScimError::invalid_syntax(format!(
                "a bulk request must list \"{BULK_REQUEST_SCHEMA}\" in \"schemas\""
            )));
        }
        let fail_on_errors = match get_ci(obj, "failOnErrors") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                // Beyond usize (32-bit targets) it is unreachable anyway: saturate.
                Some(n) if n >= 1 => Some(usize::try_from(n).unwrap_or(usize::MAX)),
                _ => return Err(ScimError::invalid_value("failOnErrors must be an integer of at least 1")),
            },
        };
        let ops = get_ci(obj, "Operations")
            .and_then(Value::as_array)
            .ok_or_else(|| ScimError::invalid_syntax("a bulk request needs an \"Operations\" array"))?;
        if ops.len() > max_operations {
            return Err(ScimError {
                status: 413,
                scim_type: Some(ScimType::TooMany),
                detail: format!(
                    "the bulk request has {} operations; maxOperations is {max_operations}: split it into smaller \
                     requests",
                    ops.len()
                ),
            });
        }
        let operations: Vec<BulkOperation> =
            ops.iter().enumerate().map(|(i, op)| parse_operation(i, op)).collect::<Result<_, _>>()?;
        let mut seen: HashMap<&str, usize> = HashMap::with_capacity(operations.len());
        for (i, op) in operations.iter().enumerate() {
            if let Some(b) = &op.bulk_id
                && let Some(first) = seen.insert(b, i)
            {
                return Err(ScimError::invalid_value(format!(
                    "bulkId \"{b}\" is used by more than one operation (Operations[{first}] and Operations[{i}]); \
                     bulkIds must be unique within a request"
                )));
            }
        }
        Ok(BulkRequest { fail_on_errors, operations })
    }

    /// Orders the operations so that each runs after those whose bulkIds it references
    /// (Kahn's algorithm; among free operations, request order), and finds the operations that
    /// cannot run: unknown references, reference cycles, and operations that depend on a cycle.
    pub fn plan(&self) -> Plan {
        let n = self.operations.len();
        let by_bulk_id: HashMap<&str, usize> =
            self.operations.iter().enumerate().filter_map(|(i, op)| Some((op.bulk_id.as_deref()?, i))).collect();
        let mut blocked: Vec<Option<Blocked>> = vec![None; n];
        // deps[i]: operations i waits for; dependents[j]: operations waiting for j.
        let mut deps: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, op) in self.operations.iter().enumerate() {
            let mut unknown = Vec::new();
            for r in &op.references {
                match by_bulk_id.get(r.as_str()) {
                    Some(&j) => {
                        deps[i].push(j);
                        dependents[j].push(i);
                    }
                    None => unknown.push(r.clone()),
                }
            }
            if !unknown.is_empty() {
                blocked[i] = Some(Blocked::Unknown(unknown));
            }
        }

        let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
        let mut ready: BinaryHeap<Reverse<usize>> = (0..n).filter(|&i| waiting[i] == 0).map(Reverse).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(Reverse(i)) = ready.pop() {
            order.push(i);
            for &d in &dependents[i] {
                waiting[d] -= 1;
                if waiting[d] == 0 {
                    ready.push(Reverse(d));
                }
            }
        }

        if order.len() < n {
            // What is left waits on a cycle: either it is in one, or it depends on one.
            let left: Vec<usize> = (0..n).filter(|&i| waiting[i] > 0).collect();
            let mut in_left = vec![false; n];
            for &i in &left {
                in_left[i] = true;
            }
            let component = strongly_connected(&left, &deps, &in_left);
            let mut members: HashMap<usize, Vec<usize>> = HashMap::new();
            for &i in &left {
                members.entry(component[i]).or_default().push(i);
            }
            // One shared list per cycle: a copy per member would be quadratic in the cycle's length.
            let cycles: HashMap<usize, Arc<[String]>> = members
                .iter()
                .filter(|(_, group)| group.len() > 1 || group.iter().any(|i| deps[*i].contains(i)))
                // Every operation in a cycle is referenced, so each has a bulkId.
                .map(|(&c, group)| (c, group.iter().filter_map(|&j| self.operations[j].bulk_id.clone()).collect()))
                .collect();
            for &i in &left {
                let reason = if let Some(cycle) = cycles.get(&component[i]) {
                    Blocked::Cycle(Arc::clone(cycle))
                } else {
                    let stuck = deps[i].iter().find(|&&j| in_left[j]).and_then(|&j| self.operations[j].bulk_id.clone());
                    Blocked::AfterCycle(stuck.unwrap_or_default())
                };
                blocked[i].get_or_insert(reason);
            }
            order.extend(left);
        }
        Plan { order, blocked }
    }
}

/// Tarjan's strongly connected components over the nodes in `nodes` (edges restricted to
/// `in_set`), iteratively so that a long chain cannot overflow the stack. Returns a component
/// number per node index (meaningless outside `nodes`).
fn strongly_connected(nodes: &[usize], edges: &[Vec<usize>], in_set: &[bool]) -> Vec<usize> {
    const UNSEEN: usize = usize::MAX;
    let n = edges.len();
    let (mut index, mut low, mut component) = (vec![UNSEEN; n], vec![0; n], vec![UNSEEN; n]);
    let mut on_stack = vec![false; n];
    let (mut stack, mut calls) = (Vec::new(), Vec::<(usize, usize)>::new());
    let (mut next_index, mut next_component) = (0, 0);
    for &root in nodes {
        if index[root] != UNSEEN {
            continue;
        }
        index[root] = next_index;
        low[root] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root] = true;
        calls.push((root, 0));
        while let Some(&(v, edge)) = calls.last() {
            if let Some(&w) = edges[v].get(edge) {
                if let Some(top) = calls.last_mut() {
                    top.1 += 1;
                }
                if !in_set[w] {
                    continue;
                }
                if index[w] == UNSEEN {
                    index[w] = next_index;
                    low[w] = next_index;
                    next_index += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    calls.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(parent, _)) = calls.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component[w] = next_component;
                    if w == v {
                        break;
                    }
                }
                next_component += 1;
            }
        }
    }
    component
}

fn parse_operation(index: usize, op: &Value) -> Result<BulkOperation, ScimError> {
    let at = |what: &str| ScimError::invalid_syntax(format!("Operations[{index}]: {what}"));
    let obj = op.as_object().ok_or_else(|| at("must be an object"))?;
    let method = get_ci(obj, "method")
        .and_then(Value::as_str)
        .and_then(BulkMethod::parse)
        .ok_or_else(|| at("\"method\" must be POST, PUT, PATCH or DELETE"))?;
    let text = |key: &str| -> Result<Option<String>, ScimError> {
        match get_ci(obj, key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(at(&format!("\"{key}\" must be a string"))),
        }
    };
    // An empty bulkId could never be referenced (`bulkId:` names nothing): treat it as absent.
    let bulk_id = text("bulkId")?.filter(|b| !b.is_empty());
    if method == BulkMethod::Post && bulk_id.is_none() {
        return Err(at("a POST operation needs a \"bulkId\""));
    }
    let path = text("path")?.ok_or_else(|| at("\"path\" is required (e.g. \"/Users\" or \"/Users/{id}\")"))?;
    let mut data = get_ci(obj, "data").filter(|d| !d.is_null()).cloned();
    if data.is_none() && method != BulkMethod::Delete {
        return Err(at(&format!("a {} operation needs \"data\"", method.name())));
    }
    let version = text("version")?;
    let endpoint = parse_path(&path).and_then(|e| match (method, &e.target) {
        (BulkMethod::Post, Some(_)) => {
            Err(ScimError::invalid_path("POST paths name a collection (/Users or /Groups), not a resource"))
        }
        (BulkMethod::Post, None) | (_, Some(_)) => Ok(e),
        (_, None) => Err(ScimError::invalid_path(format!(
            "{} needs a resource in \"path\" (\"/Users/{{id}}\" or \"/Users/bulkId:{{bulkId}}\")",
            method.name()
        ))),
    });

    let mut references = Vec::new();
    let mut seen = HashSet::new();
    let mut note = |bulk_id: &str| {
        if seen.insert(bulk_id.to_owned()) {
            references.push(bulk_id.to_owned());
        }
    };
    if let Ok(Endpoint { target: Some(Target::BulkId(b)), .. }) = &endpoint {
        note(b);
    }
    if let Some(data) = &mut data {
        // The walk needs `&mut` because substitution shares it; here it only reads.
        reference_slots(data, &mut |s: &mut String| {
            if let Some(b) = s.strip_prefix(REFERENCE_PREFIX) {
                note(b);
            }
        });
    }
    Ok(BulkOperation { method, bulk_id, version, path, endpoint, data, references })
}

/// `/Users`, `/Groups`, `/Users/{id}`, `/Users/bulkId:{x}` (and the same for Groups); the
/// endpoint name is case-insensitive and stray leading or trailing slashes are tolerated.
fn parse_path(path: &str) -> Result<Endpoint, ScimError> {
    let bad = || {
        ScimError::invalid_path(format!(
            "bulk path \"{path}\" must be /Users, /Groups, /Users/{{id}} or /Groups/{{id}} (an id may be \
             bulkId:{{bulkId}})"
        ))
    };
    let trimmed = path.trim_matches('/');
    let (name, rest) = match trimmed.split_once('/') {
        Some((name, rest)) => (name, Some(rest)),
        None => (trimmed, None),
    };
    let kind = if name.eq_ignore_ascii_case("Users") {
        ResourceKind::User
    } else if name.eq_ignore_ascii_case("Groups") {
        ResourceKind::Group
    } else {
        return Err(bad());
    };
    let target = match rest {
        None => None,
        Some(rest) if rest.is_empty() || rest.contains('/') => return Err(bad()),
        Some(rest) => Some(match rest.strip_prefix(REFERENCE_PREFIX) {
            Some(b) => Target::BulkId(b.to_owned()),
            None => Target::Id(rest.to_owned()),
        }),
    };
    Ok(Endpoint { kind, target })
}

/// Replaces each `bulkId:<x>` at a reference position of `data` (see the module docs) whose
/// `<x>` is in `ids` by the id created for it. Other strings, and references not in `ids`, are
/// left as they are.
pub fn substitute(data: &mut Value, ids: &HashMap<String, String>) {
    reference_slots(data, &mut |s: &mut String| {
        if let Some(id) = s.strip_prefix(REFERENCE_PREFIX).and_then(|b| ids.get(b)) {
            *s = id.clone();
        }
    });
}

/// Calls `f` with every string at a reference position of an operation's data. Collection and
/// substitution share this walk, so they cannot disagree about what a reference is.
fn reference_slots(data: &mut Value, f: &mut dyn FnMut(&mut String)) {
    let Value::Object(obj) = data else { return };
    // PATCH data is a PatchOp (an `Operations` list); any other data is a resource.
    if let Some(Value::Array(ops)) = get_ci_mut(obj, "Operations") {
        for op in ops {
            patch_operation_slots(op, f);
        }
    } else {
        resource_slots(obj, f);
    }
}

/// A resource (or a path-less PATCH value): `members[].value`, the enterprise `manager.value`
/// under the extension's key or as a URN-qualified key.
fn resource_slots(obj: &mut Map<String, Value>, f: &mut dyn FnMut(&mut String)) {
    for (key, value) in obj.iter_mut() {
        if key.eq_ignore_ascii_case("members") {
            value_members(value, f);
        } else if key.eq_ignore_ascii_case(ENTERPRISE_USER_SCHEMA) {
            if let Value::Object(ext) = value {
                for (k, v) in ext.iter_mut() {
                    if k.eq_ignore_ascii_case("manager") {
                        value_members(v, f);
                    }
                }
            }
        } else if enterprise_attribute(key).is_some_and(|a| a.eq_ignore_ascii_case("manager")) {
            value_members(value, f);
        }
    }
}

/// One PATCH operation: a path-less value is a partial resource; a value for `members` or
/// `manager` holds `value` members; a value for `manager.value` is the reference itself.
fn patch_operation_slots(op: &mut Value, f: &mut dyn FnMut(&mut String)) {
    let Value::Object(op) = op else { return };
    let path = get_ci(op, "path").and_then(Value::as_str).map(str::to_owned);
    let Some(value) = get_ci_mut(op, "value") else { return };
    let Some(path) = path else {
        if let Value::Object(partial) = value {
            resource_slots(partial, f);
        }
        return;
    };
    // `manager` is only in the enterprise extension, so the unqualified name means it too.
    let (qualified, attr) = match enterprise_attribute(&path) {
        Some(attr) => (true, attr),
        None => (false, path.as_str()),
    };
    if (!qualified && attr.eq_ignore_ascii_case("members")) || attr.eq_ignore_ascii_case("manager") {
        value_members(value, f);
    } else if attr.eq_ignore_ascii_case("manager.value")
        && let Value::String(s) = value
    {
        f(s);
    }
}

/// The `value` string of a complex value, or of each element of a list of them.
fn value_members(value: &mut Value, f: &mut dyn FnMut(&mut String)) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(|item| value_members_one(item, f)),
        one => value_members_one(one, f),
    }
}

fn value_members_one(item: &mut Value, f: &mut dyn FnMut(&mut String)) {
    let Value::Object(obj) = item else { return };
    for (k, v) in obj.iter_mut() {
        if k.eq_ignore_ascii_case("value")
            && let Value::String(s) = v
        {
            f(s);
        }
    }
}

/// `manager` from `urn:...:enterprise:2.0:User:manager` (the URN compared case-insensitively).
fn enterprise_attribute(key: &str) -> Option<&str> {
    let prefix = key.get(..ENTERPRISE_USER_SCHEMA.len())?;
    if !prefix.eq_ignore_ascii_case(ENTERPRISE_USER_SCHEMA) {
        return None;
    }
    key.get(ENTERPRISE_USER_SCHEMA.len()..)?.strip_prefix(':')
}

fn get_ci_mut<'v>(map: &'v mut Map<String, Value>, key: &str) -> Option<&'v mut Value> {
    map.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
}
