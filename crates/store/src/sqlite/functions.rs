//! SQL functions that run the protocol core inside SQLite, so that filters on attributes without
//! a column of their own are evaluated by exactly the same code as in memory, row by row, without
//! loading a tenant into the application.

use std::sync::Arc;

use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::{Connection, Error};
use scim_proto::schema::AttrType;
use scim_proto::{AttrPath, Filter, ResourceKind};
use serde_json::Value;

use super::rows::fold;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

fn user_error(e: impl Into<BoxError>) -> Error {
    Error::UserFunctionError(e.into())
}

fn kind_arg(ctx: &Context<'_>, idx: usize) -> rusqlite::Result<ResourceKind> {
    let text = ctx.get_raw(idx).as_str().map_err(user_error)?;
    ResourceKind::from_name(text).ok_or_else(|| user_error(format!("unknown resource kind {text}")))
}

fn doc_arg(ctx: &Context<'_>, idx: usize) -> rusqlite::Result<Value> {
    let text = ctx.get_raw(idx).as_str().map_err(user_error)?;
    serde_json::from_str(text).map_err(user_error)
}

/// Registers `scim_match(kind, doc, filter)` and `scim_sort_key(kind, doc, path)`.
pub(super) fn register(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("scim_match", 3, flags, |ctx| {
        let kind = kind_arg(ctx, 0)?;
        // Parsed once per statement, not once per row. The text is what this process printed from
        // an already-checked filter, which may be longer than a client may send.
        let filter: Arc<Filter> = ctx.get_or_create_aux(2, |v: ValueRef<'_>| -> Result<Filter, BoxError> {
            Ok(scim_proto::filter::parse_trusted(v.as_str()?)?)
        })?;
        let doc = doc_arg(ctx, 1)?;
        Ok(filter.matches(&doc, kind.resource_type()))
    })?;
    conn.create_scalar_function("scim_sort_key", 3, flags, |ctx| {
        let kind = kind_arg(ctx, 0)?;
        let path: Arc<AttrPath> = ctx.get_or_create_aux(2, |v: ValueRef<'_>| -> Result<AttrPath, BoxError> {
            Ok(AttrPath::parse(v.as_str()?)?)
        })?;
        let doc = doc_arg(ctx, 1)?;
        Ok(sort_key(&doc, kind, &path))
    })?;
    Ok(())
}

/// The value a resource sorts by (RFC 7644 §3.4.2.3): a multi-valued attribute sorts by its
/// primary (else first) value; strings that are not caseExact sort case-insensitively.
fn sort_key(doc: &Value, kind: ResourceKind, path: &AttrPath) -> ToSqlOutput<'static> {
    let rt = kind.resource_type();
    let resolved = rt.resolve(path);
    let case_exact = resolved.is_some_and(|r| r.leaf().case_exact);
    let container = match resolved {
        Some(r) if r.in_extension => get_ci(doc, &r.schema.id),
        _ => Some(doc),
    };
    let mut value = container.and_then(|c| get_ci(c, &path.name));
    if let Some(Value::Array(items)) = value {
        value = items.iter().find(|i| i.get("primary").and_then(Value::as_bool) == Some(true)).or(items.first());
    }
    let sub = path.sub.as_deref().or(match resolved {
        Some(r) if r.attr.kind == AttrType::Complex && r.sub.is_none() => Some("value"),
        _ => None,
    });
    if let (Some(sub), Some(v @ Value::Object(_))) = (sub, value) {
        value = get_ci(v, sub);
    }
    let out = match value {
        Some(Value::String(s)) if case_exact => SqlValue::Text(s.clone()),
        Some(Value::String(s)) => SqlValue::Text(fold(s)),
        Some(Value::Bool(b)) => SqlValue::Integer(i64::from(*b)),
        Some(Value::Number(n)) => {
            n.as_i64().map(SqlValue::Integer).unwrap_or_else(|| SqlValue::Real(n.as_f64().unwrap_or(0.0)))
        }
        _ => SqlValue::Null,
    };
    ToSqlOutput::Owned(out)
}

/// Looks a key up case-insensitively (attribute names are case-insensitive).
fn get_ci<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    scim_proto::json::get_ci(obj.as_object()?, key)
}
