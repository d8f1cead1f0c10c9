//! List queries on SQLite: the filter compiles whole (with `scim_match` for what has no column),
//! so the database counts and pages.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use scim_proto::ResourceKind;
use scimd_domain::clock::format_time;
use scimd_domain::query::{CursorPage, ListQuery, Page};
use scimd_domain::store::StoreError;

use super::rows::{load_relations, resource_from_row};
use super::{CachedSql, backend};
use crate::columns::RESOURCE_COLUMNS;
use crate::filter_sql::{self, Dialect, Param, Sql};

/// A parameter as SQLite binds it.
fn value(param: &Param) -> SqlValue {
    match param {
        Param::Text(s) => SqlValue::Text(s.clone()),
        Param::Int(i) => SqlValue::Integer(*i),
        Param::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Param::Time(t) => SqlValue::Text(format_time(*t)),
    }
}

fn values(sql: &Sql) -> Vec<SqlValue> {
    sql.params.iter().map(value).collect()
}

/// Runs a list query: the exact total, then the page.
pub(super) fn run_query(
    c: &Connection,
    tenant: &str,
    kind: ResourceKind,
    query: &ListQuery,
    relations: bool,
) -> Result<Page, StoreError> {
    let filter = filter_sql::list_from(Dialect::Sqlite, tenant, kind, query)?;
    let total = match &query.filter {
        // Every visible resource of the kind: the count the triggers of migration 0007 keep.
        None => c
            .row(
                "SELECT visible FROM resource_counts WHERE tenant_id = ?1 AND kind = ?2",
                params![tenant, kind.name()],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map_err(backend)?
            .unwrap_or(0),
        Some(_) => c
            .prepare_cached(&format!("SELECT COUNT(*){}", filter.text))
            .and_then(|mut s| s.query_row(params_from_iter(values(&filter)), |r| r.get(0)))
            .map_err(sql_error)?,
    };
    let total = total.max(0) as u64;
    let offset = query.offset();
    if query.count == 0 || offset >= total {
        return Ok(Page::indexed(total, Vec::new()));
    }
    let mut page = Sql { text: format!("SELECT {RESOURCE_COLUMNS}{}", filter.text), ..filter };
    if let Some(CursorPage::After(at)) = &query.cursor {
        filter_sql::after_cursor(at, &mut page);
    }
    filter_sql::order_by(query, kind, &mut page)?;
    let limit = query.rows_to_read();
    page.push(" LIMIT ");
    page.param(Param::Int(limit.min(i64::MAX as u64) as i64));
    page.push(" OFFSET ");
    page.param(Param::Int(offset.min(i64::MAX as u64) as i64));
    let mut stmt = c.prepare_cached(&page.text).map_err(sql_error)?;
    let rows = stmt.query_map(params_from_iter(values(&page)), resource_from_row).map_err(sql_error)?;
    let mut resources = Vec::new();
    for row in rows {
        resources.push(row.map_err(sql_error)??);
    }
    let mut page = Page::of(query, total, resources);
    if relations {
        load_relations(c, tenant, kind, &mut page.resources)?;
    }
    Ok(page)
}

/// An error raised inside `scim_match` is the client's filter's fault; anything else is ours.
fn sql_error(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::UserFunctionError(inner) => StoreError::Unsupported(inner.to_string()),
        _ => backend(e),
    }
}
