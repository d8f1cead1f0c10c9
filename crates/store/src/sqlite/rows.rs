//! SQLite rows to domain values, and relation loading.

use rusqlite::{Connection, Row, params};
use scim_proto::ResourceKind;
use scimd_domain::clock::parse_time;
use scimd_domain::provisioning::Placement;
use scimd_domain::resources::StoredResource;
use scimd_domain::store::StoreError;
use scimd_domain::tenant::Tenant;
use scimd_domain::token::{RevokeReason, TokenRecord};
use time::OffsetDateTime;

use super::backend;
use crate::columns::{PlacementColumns, attach_relations, relations_sql};

pub(super) const TOKEN_COLUMNS: &str =
    "id, tenant_id, prefix, hash, created_at, expires_at, revoked_at, revoke_reason, last_used_at, last_used_agent";

pub(super) fn time_column(row: &Row<'_>, idx: usize) -> rusqlite::Result<OffsetDateTime> {
    let text: String = row.get(idx)?;
    parse_time(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, format!("bad time {text}").into())
    })
}

pub(super) fn optional_time(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<OffsetDateTime>> {
    let text: Option<String> = row.get(idx)?;
    Ok(text.as_deref().and_then(parse_time))
}

pub(super) fn tenant_from_row(row: &Row<'_>) -> rusqlite::Result<Tenant> {
    Ok(Tenant {
        id: row.get(0)?,
        name: row.get(1)?,
        token_lifetime_days: row.get(2)?,
        created_at: time_column(row, 3)?,
    })
}

pub(super) fn token_from_row(row: &Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        id: row.get(0)?,
        tenant_id: row.get(1)?,
        prefix: row.get(2)?,
        hash: row.get(3)?,
        created_at: time_column(row, 4)?,
        expires_at: time_column(row, 5)?,
        revoked_at: optional_time(row, 6)?,
        revoke_reason: row.get::<_, Option<String>>(7)?.as_deref().and_then(RevokeReason::parse),
        last_used_at: optional_time(row, 8)?,
        last_used_agent: row.get(9)?,
    })
}

/// Reads a resource row selected with [`RESOURCE_COLUMNS`](crate::columns::RESOURCE_COLUMNS).
pub(super) fn resource_from_row(row: &Row<'_>) -> rusqlite::Result<Result<StoredResource, StoreError>> {
    let kind: String = row.get(1)?;
    let doc: String = row.get(2)?;
    let Some(kind) = ResourceKind::from_name(&kind) else {
        return Ok(Err(StoreError::Backend(format!("unknown resource kind {kind}"))));
    };
    let doc = match serde_json::from_str(&doc) {
        Ok(doc) => doc,
        Err(e) => return Ok(Err(StoreError::Backend(format!("stored document is not JSON: {e}")))),
    };
    Ok(Ok(StoredResource {
        id: row.get(0)?,
        kind,
        doc,
        created: time_column(row, 3)?,
        modified: time_column(row, 4)?,
        version: row.get::<_, i64>(5)? as u64,
        placement: placement_from_row(row)?,
    }))
}

/// The placement columns (6..=13) of a resource row; `None` for Groups.
fn placement_from_row(row: &Row<'_>) -> rusqlite::Result<Option<Placement>> {
    Ok(PlacementColumns {
        state: row.get(6)?,
        since: optional_time(row, 7)?,
        profile_id: row.get(8)?,
        region_id: row.get(9)?,
        pending_cause: row.get(10)?,
        preserved_by: row.get(11)?,
        managed_by: row.get(12)?,
        claimed_email: row.get(13)?,
    }
    .placement())
}

/// Adds `members` to Groups or `groups` to Users, for a page of resources in one query.
pub(super) fn load_relations(
    c: &Connection,
    tenant: &str,
    kind: ResourceKind,
    list: &mut [StoredResource],
) -> Result<(), StoreError> {
    if list.is_empty() {
        return Ok(());
    }
    // The owners as one JSON array: one statement for any number of them, prepared once.
    let sql = relations_sql(kind, "?1", "IN (SELECT value FROM json_each(?2))");
    let mut stmt = c.prepare_cached(&sql).map_err(backend)?;
    let owners = serde_json::Value::from(list.iter().map(|r| r.id.as_str()).collect::<Vec<_>>()).to_string();
    let rows = stmt
        .query_map(params![tenant, owners], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, Option<String>>(3)?))
        })
        .map_err(backend)?;
    let rows = rows.collect::<Result<Vec<_>, _>>().map_err(backend)?;
    attach_relations(kind, list, rows);
    Ok(())
}
