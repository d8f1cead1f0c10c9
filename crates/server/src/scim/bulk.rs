//! `POST /Bulk` (RFC 7644 §3.7): many operations in one request, with `bulkId` references
//! between them, `failOnErrors`, and the advertised limits enforced.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use scim_proto::schema::{BULK_REQUEST_SCHEMA, BULK_RESPONSE_SCHEMA};
use scim_proto::{ResourceKind, ScimError, ScimType};
use scimd_domain::DomainError;
use scimd_domain::resources::EtagCondition;
use serde_json::{Map, Value, json};

use super::ScimCaller;
use crate::AppState;
use crate::edge::{BodyError, ScimFailure, ScimJson, read_json, scim_error};

/// One operation of a bulk request, after parsing.
struct Operation {
    method: Method,
    bulk_id: Option<String>,
    version: Option<String>,
    path: String,
    data: Option<Value>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

fn get_ci<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
}

fn parse_operation(index: usize, op: &Value) -> Result<Operation, ScimError> {
    let at = |what: &str| ScimError::invalid_syntax(format!("Operations[{index}]: {what}"));
    let obj = op.as_object().ok_or_else(|| at("must be an object"))?;
    let method = match get_ci(obj, "method").and_then(Value::as_str).map(str::to_ascii_uppercase).as_deref() {
        Some("POST") => Method::Post,
        Some("PUT") => Method::Put,
        Some("PATCH") => Method::Patch,
        Some("DELETE") => Method::Delete,
        _ => return Err(at("\"method\" must be POST, PUT, PATCH or DELETE")),
    };
    let text = |key: &str| -> Result<Option<String>, ScimError> {
        match get_ci(obj, key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(at(&format!("\"{key}\" must be a string"))),
        }
    };
    let bulk_id = text("bulkId")?;
    if method == Method::Post && bulk_id.as_deref().is_none_or(str::is_empty) {
        return Err(at("a POST operation needs a \"bulkId\""));
    }
    let path = text("path")?.ok_or_else(|| at("\"path\" is required (e.g. \"/Users\" or \"/Users/{id}\")"))?;
    let data = get_ci(obj, "data").filter(|d| !d.is_null()).cloned();
    if data.is_none() && method != Method::Delete {
        return Err(at(&format!("a {} operation needs \"data\"", method.name())));
    }
    Ok(Operation { method, bulk_id, version: text("version")?, path, data })
}

/// Every `bulkId:x` reference in a string of `value`, or in `text`.
fn references(text: &str, out: &mut Vec<String>) {
    if let Some(id) = text.strip_prefix("bulkId:") {
        out.push(id.to_owned());
    } else if let Some((_, rest)) = text.rsplit_once("/bulkId:") {
        out.push(rest.to_owned());
    }
}

fn value_references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => references(s, out),
        Value::Array(items) => items.iter().for_each(|v| value_references(v, out)),
        Value::Object(map) => map.values().for_each(|v| value_references(v, out)),
        _ => {}
    }
}

fn substitute(value: &mut Value, ids: &HashMap<String, String>) {
    match value {
        Value::String(s) => {
            if let Some(id) = s.strip_prefix("bulkId:").and_then(|b| ids.get(b)) {
                *s = id.clone();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| substitute(v, ids)),
        Value::Object(map) => map.values_mut().for_each(|v| substitute(v, ids)),
        _ => {}
    }
}

/// `/Users`, `/Users/{id}`, `/Groups`, `/Groups/{id}` with `bulkId:` references resolved.
fn parse_path(path: &str, ids: &HashMap<String, String>) -> Result<(ResourceKind, Option<String>), ScimError> {
    let trimmed = path.trim_end_matches('/');
    let (endpoint, id) = match trimmed.trim_start_matches('/').split_once('/') {
        Some((e, id)) => (e, Some(id)),
        None => (trimmed.trim_start_matches('/'), None),
    };
    let kind = match endpoint.to_ascii_lowercase().as_str() {
        "users" => ResourceKind::User,
        "groups" => ResourceKind::Group,
        _ => return Err(ScimError::invalid_path(format!("bulk path \"{path}\" must start with /Users or /Groups"))),
    };
    let id = id.map(|id| match id.strip_prefix("bulkId:") {
        Some(b) => ids.get(b).cloned().unwrap_or_else(|| id.to_owned()),
        None => id.to_owned(),
    });
    Ok((kind, id))
}

/// Runs one operation; returns (status, location, version) on success.
async fn execute(
    state: &AppState,
    caller: &ScimCaller,
    op: &Operation,
    ids: &HashMap<String, String>,
) -> Result<(u16, Option<String>, Option<String>), DomainError> {
    let (kind, id) = parse_path(&op.path, ids)?;
    let mut data = op.data.clone().unwrap_or(Value::Null);
    substitute(&mut data, ids);
    let service = &state.service;
    let if_match = op.version.as_deref().map(EtagCondition::parse);
    let location = |id: &str| format!("{}{}/{id}", caller.base_url, kind.endpoint());
    let need_id = || {
        id.clone()
            .ok_or_else(|| ScimError::invalid_path(format!("{} needs a resource id in \"path\"", op.method.name())))
    };
    match op.method {
        Method::Post => {
            if id.is_some() {
                return Err(ScimError::invalid_path(
                    "POST paths name a collection (/Users or /Groups), not a resource",
                )
                .into());
            }
            let res = service.create_resource(&caller.tenant, kind, data).await?;
            Ok((201, Some(location(&res.id)), Some(res.etag())))
        }
        Method::Put => {
            let res = service.replace_resource(&caller.tenant, kind, &need_id()?, data, if_match.as_ref()).await?;
            Ok((200, Some(location(&res.id)), Some(res.etag())))
        }
        Method::Patch => {
            let res = service.patch_resource(&caller.tenant, kind, &need_id()?, data, if_match.as_ref()).await?;
            Ok((200, Some(location(&res.id)), Some(res.etag())))
        }
        Method::Delete => {
            let id = need_id()?;
            service.delete_resource(&caller.tenant, kind, &id, if_match.as_ref()).await?;
            Ok((204, Some(location(&id)), None))
        }
    }
}

/// `POST /Bulk`.
pub async fn bulk(
    State(state): State<AppState>,
    caller: ScimCaller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ScimFailure> {
    let limits = state.service.limits;
    let body = read_json(&headers, body, limits.max_bulk_payload).await.map_err(|e| match e {
        BodyError::TooLarge { limit } => ScimError::new(
            413,
            format!("the bulk request is larger than maxPayloadSize ({limit} bytes); split it into smaller requests"),
        ),
        other => ScimError::from(other),
    })?;
    let obj = body.as_object().ok_or_else(|| ScimError::invalid_syntax("a bulk request must be a JSON object"))?;
    let names_schema = get_ci(obj, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(BULK_REQUEST_SCHEMA))));
    if !names_schema {
        return Err(ScimError::invalid_syntax(format!(
            "a bulk request must list \"{BULK_REQUEST_SCHEMA}\" in \"schemas\""
        ))
        .into());
    }
    let fail_on_errors = match get_ci(obj, "failOnErrors") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => Some(n as usize),
            _ => return Err(ScimError::invalid_value("failOnErrors must be an integer of at least 1").into()),
        },
    };
    let ops = get_ci(obj, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("a bulk request needs an \"Operations\" array"))?;
    if ops.len() > limits.max_bulk_operations {
        return Err(ScimError {
            status: 413,
            scim_type: Some(ScimType::TooMany),
            detail: format!(
                "the bulk request has {} operations; maxOperations is {}: split it into smaller requests",
                ops.len(),
                limits.max_bulk_operations
            ),
        }
        .into());
    }
    let ops: Vec<Operation> = ops.iter().enumerate().map(|(i, op)| parse_operation(i, op)).collect::<Result<_, _>>()?;
    let mut seen = std::collections::HashSet::new();
    for op in &ops {
        if let Some(b) = &op.bulk_id
            && !seen.insert(b.as_str())
        {
            return Err(ScimError::invalid_value(format!("bulkId \"{b}\" is used by more than one operation")).into());
        }
    }

    let mut results: Vec<Option<Value>> = vec![None; ops.len()];
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut failed_bulk_ids = std::collections::HashSet::new();
    let mut errors = 0usize;
    let mut pending: Vec<usize> = (0..ops.len()).collect();
    // Operations run in order; one that refers to a bulkId not created yet waits for a later pass
    // (RFC 7644 §3.7.1 allows forward references).
    'passes: while !pending.is_empty() {
        let mut progressed = false;
        let mut waiting = Vec::new();
        for index in pending {
            let op = &ops[index];
            let mut refs = Vec::new();
            references(&op.path, &mut refs);
            if let Some(d) = &op.data {
                value_references(d, &mut refs);
            }
            let outcome =
                if let Some(dead) = refs.iter().find(|r| failed_bulk_ids.contains(*r) || !seen.contains(r.as_str())) {
                    Err(DomainError::from(ScimError {
                        status: 409,
                        scim_type: Some(ScimType::InvalidValue),
                        detail: if seen.contains(dead.as_str()) {
                            format!("bulkId:{dead} refers to an operation that failed")
                        } else {
                            format!("bulkId:{dead} is not the bulkId of any operation in this request")
                        },
                    }))
                } else if refs.iter().any(|r| !ids.contains_key(r)) {
                    waiting.push(index);
                    continue;
                } else {
                    execute(&state, &caller, op, &ids).await
                };
            progressed = true;
            results[index] = Some(match outcome {
                Ok((status, location, version)) => {
                    if let (Some(b), Some(loc)) = (&op.bulk_id, &location)
                        && let Some(id) = loc.rsplit('/').next()
                    {
                        ids.insert(b.clone(), id.to_owned());
                    }
                    operation_result(op, status, location, version, None)
                }
                Err(e) => {
                    errors += 1;
                    if let Some(b) = &op.bulk_id {
                        failed_bulk_ids.insert(b.clone());
                    }
                    let err = scim_error(&e);
                    operation_result(op, err.status, None, None, Some(err.to_json()))
                }
            });
            if fail_on_errors.is_some_and(|limit| errors >= limit) {
                break 'passes;
            }
        }
        if !progressed {
            // What is left refers in a circle.
            for index in waiting {
                errors += 1;
                let err = ScimError {
                    status: 409,
                    scim_type: Some(ScimType::InvalidValue),
                    detail: "this operation's bulkId references form a cycle and cannot be resolved".into(),
                };
                results[index] = Some(operation_result(&ops[index], err.status, None, None, Some(err.to_json())));
                if fail_on_errors.is_some_and(|limit| errors >= limit) {
                    break;
                }
            }
            break;
        }
        pending = waiting;
    }
    Ok(ScimJson::ok(json!({
        "schemas": [BULK_RESPONSE_SCHEMA],
        "Operations": results.into_iter().flatten().collect::<Vec<_>>(),
    }))
    .into_response())
}

fn operation_result(
    op: &Operation,
    status: u16,
    location: Option<String>,
    version: Option<String>,
    response: Option<Value>,
) -> Value {
    let mut out = json!({ "method": op.method.name(), "status": status.to_string() });
    if let Some(b) = &op.bulk_id {
        out["bulkId"] = Value::String(b.clone());
    }
    if let Some(l) = location {
        out["location"] = Value::String(l);
    }
    if let Some(v) = version {
        out["version"] = Value::String(v);
    }
    if let Some(r) = response {
        out["response"] = r;
    }
    out
}
