//! List queries on PostgreSQL. The indexed part of a filter runs in SQL; when a part cannot
//! (an attribute without a column, which the protocol core evaluates) or the sort key has no
//! column, the SQL selects the candidates and the whole filter and sort run here, with exactly
//! the evaluator and sort keys SQLite runs inside its queries.

use scim_proto::{Filter, ResourceKind};
use scimd_domain::query::{CursorPage, ListQuery, Page};
use scimd_domain::resources::StoredResource;
use scimd_domain::store::StoreError;
use tokio_postgres::types::ToSql;

use super::rows::{load_relations, resource_from_row};
use super::{Tx, Values, all, all_built, backend, get, refs};
use crate::columns::{RESOURCE_COLUMNS, sort_key};
use crate::filter_sql::{self, Dialect, Param, Sql};

/// The parameters of `sql` as PostgreSQL binds them.
fn values(sql: &Sql) -> Values {
    sql.params
        .iter()
        .map(|p| -> Box<dyn ToSql + Sync + Send> {
            match p {
                Param::Text(s) => Box::new(s.clone()),
                Param::Int(i) => Box::new(*i),
                Param::Bool(b) => Box::new(*b),
                Param::Time(t) => Box::new(*t),
            }
        })
        .collect()
}

/// Runs a list query: the exact total, then the page.
pub(super) async fn run_query(
    tx: &Tx<'_>,
    tenant: &str,
    kind: ResourceKind,
    query: &ListQuery,
    relations: bool,
) -> Result<Page, StoreError> {
    let filter = filter_sql::list_from(Dialect::Postgres, tenant, kind, query)?;
    let offset = query.offset();
    let count_sql = format!("SELECT count(*){}", filter.text);
    let mut page = Sql { text: format!("SELECT {RESOURCE_COLUMNS}{}", filter.text), ..filter };
    if page.residual {
        // The position is applied after the filter, in memory: the total counts every match.
        filter_sql::order_by(query, kind, &mut page)?;
        return in_memory(tx, tenant, kind, query, relations, page).await;
    }
    let counted = values(&page);
    if let Some(CursorPage::After(at)) = &query.cursor {
        filter_sql::after_cursor(at, &mut page);
    }
    let sorted_in_sql = filter_sql::order_by(query, kind, &mut page)?;
    if !sorted_in_sql {
        return in_memory(tx, tenant, kind, query, relations, page).await;
    }
    // A lookup by one identifier (an IdP's `userName eq …`) has a handful of shapes: its
    // statements stay prepared on the connection, a round trip less each. Other filters are
    // parsed per request, so that arbitrary filters cannot grow the statement cache.
    let cached = matches!(&query.filter, Some(f @ Filter::Compare(..)) if filter_sql::is_lookup(f, kind));
    let count = if cached {
        tx.query_one(&count_sql, &refs(&counted)).await
    } else {
        tx.uncached().query_one(&count_sql, &refs(&counted)).await
    };
    let total: i64 = get(&count.map_err(backend)?, 0)?;
    let total = total.max(0) as u64;
    if query.count == 0 || offset >= total {
        return Ok(Page::indexed(total, Vec::new()));
    }
    let limit = query.rows_to_read();
    page.push(" LIMIT ");
    page.param(Param::Int(limit.min(i64::MAX as u64) as i64));
    page.push(" OFFSET ");
    page.param(Param::Int(offset.min(i64::MAX as u64) as i64));
    let args = values(&page);
    let resources = if cached {
        all(tx, &page.text, &refs(&args), resource_from_row).await?
    } else {
        all_built(tx, &page.text, &refs(&args), resource_from_row).await?
    };
    let mut page = Page::of(query, total, resources);
    if relations {
        load_relations(tx, tenant, kind, &mut page.resources).await?;
    }
    Ok(page)
}

/// Evaluates the filter and the sort on the candidates the SQL selected, then pages.
async fn in_memory(
    tx: &Tx<'_>,
    tenant: &str,
    kind: ResourceKind,
    query: &ListQuery,
    relations: bool,
    candidates: Sql,
) -> Result<Page, StoreError> {
    let args = values(&candidates);
    let mut rows = all_built(tx, &candidates.text, &refs(&args), resource_from_row).await?;
    let rt = kind.resource_type();
    if let Some(filter) = query.filter.as_ref().filter(|_| candidates.residual) {
        // Memberships are part of what a filter may test (`members.value`, `groups.value`).
        load_relations(tx, tenant, kind, &mut rows).await?;
        rows.retain(|r| filter.matches(&r.doc, rt));
    }
    if let Some(path) = &query.sort_by {
        let key = |r: &StoredResource| sort_key(&r.doc, kind, path);
        // Stable: rows arrive in insertion order, which breaks ties. No value sorts last
        // ascending and first descending.
        rows.sort_by(|a, b| {
            let order = match (key(a), key(b)) {
                (Some(x), Some(y)) => x.compare(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            };
            if query.descending { order.reverse() } else { order }
        });
    }
    let total = rows.len() as u64;
    // Under cursor paging the rows come in cursor order (bytes of the id, as Rust compares
    // them): the page starts past the position.
    let offset = match &query.cursor {
        Some(CursorPage::After(at)) => {
            rows.iter().take_while(|r| (r.created, r.id.as_str()) <= (at.created, at.id.as_str())).count() as u64
        }
        _ => query.offset(),
    };
    let count = query.rows_to_read();
    let offset = usize::try_from(offset).unwrap_or(usize::MAX);
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    let mut resources: Vec<StoredResource> = rows.into_iter().skip(offset).take(count).collect();
    let loaded = candidates.residual && query.filter.is_some();
    if relations && !loaded {
        load_relations(tx, tenant, kind, &mut resources).await?;
    }
    if !relations && loaded {
        let key = if kind == ResourceKind::Group { "members" } else { "groups" };
        for r in &mut resources {
            if let Some(obj) = r.doc.as_object_mut() {
                obj.remove(key);
            }
        }
    }
    Ok(Page::of(query, total, resources))
}
