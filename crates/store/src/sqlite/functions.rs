//! SQL functions that run the protocol core inside SQLite, so that filters on attributes without
//! a column of their own are evaluated by exactly the same code as in memory, row by row, without
//! loading a tenant into the application.

use std::sync::Arc;

use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::{Connection, Error};
use scim_proto::{AttrPath, Filter, ResourceKind};
use serde_json::Value;

use crate::columns::SortKey;

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

/// A sort key as SQLite orders it: text, integers and reals; no value is NULL.
fn sort_key(doc: &Value, kind: ResourceKind, path: &AttrPath) -> ToSqlOutput<'static> {
    ToSqlOutput::Owned(match crate::columns::sort_key(doc, kind, path) {
        Some(SortKey::Text(s)) => SqlValue::Text(s),
        Some(SortKey::Integer(i)) => SqlValue::Integer(i),
        Some(SortKey::Real(r)) => SqlValue::Real(r),
        None => SqlValue::Null,
    })
}
