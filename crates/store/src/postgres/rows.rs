//! PostgreSQL rows to domain values, and relation loading.

use scim_proto::ResourceKind;
use scimd_domain::resources::StoredResource;
use scimd_domain::store::StoreError;
use scimd_domain::tenant::Tenant;
use scimd_domain::token::{RevokeReason, TokenRecord};
use tokio_postgres::Row;

use super::{Tx, all, get};
use crate::columns::{PlacementColumns, RelationRow, attach_relations, relations_sql};

pub(super) const TOKEN_COLUMNS: &str =
    "id, tenant_id, prefix, hash, created_at, expires_at, revoked_at, revoke_reason, last_used_at, last_used_agent";

pub(super) fn tenant_from_row(row: &Row) -> Result<Tenant, StoreError> {
    let days: i64 = get(row, 2)?;
    Ok(Tenant {
        id: get(row, 0)?,
        name: get(row, 1)?,
        token_lifetime_days: u32::try_from(days).unwrap_or(u32::MAX),
        created_at: get(row, 3)?,
    })
}

pub(super) fn token_from_row(row: &Row) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        id: get(row, 0)?,
        tenant_id: get(row, 1)?,
        prefix: get(row, 2)?,
        hash: get(row, 3)?,
        created_at: get(row, 4)?,
        expires_at: get(row, 5)?,
        revoked_at: get(row, 6)?,
        revoke_reason: get::<Option<String>>(row, 7)?.as_deref().and_then(RevokeReason::parse),
        last_used_at: get(row, 8)?,
        last_used_agent: get(row, 9)?,
    })
}

/// Reads a resource row selected with [`RESOURCE_COLUMNS`](crate::columns::RESOURCE_COLUMNS).
pub(super) fn resource_from_row(row: &Row) -> Result<StoredResource, StoreError> {
    let kind: String = get(row, 1)?;
    let kind =
        ResourceKind::from_name(&kind).ok_or_else(|| StoreError::Backend(format!("unknown resource kind {kind}")))?;
    let version: i64 = get(row, 5)?;
    Ok(StoredResource {
        id: get(row, 0)?,
        kind,
        doc: get(row, 2)?,
        created: get(row, 3)?,
        modified: get(row, 4)?,
        version: version as u64,
        placement: PlacementColumns {
            state: get(row, 6)?,
            since: get(row, 7)?,
            profile_id: get(row, 8)?,
            region_id: get(row, 9)?,
            pending_cause: get(row, 10)?,
            preserved_by: get(row, 11)?,
            managed_by: get(row, 12)?,
            claimed_email: get(row, 13)?,
        }
        .placement(),
    })
}

/// Adds `members` to Groups or `groups` to Users, for a page of resources in one query.
pub(super) async fn load_relations(
    tx: &Tx<'_>,
    tenant: &str,
    kind: ResourceKind,
    list: &mut [StoredResource],
) -> Result<(), StoreError> {
    if list.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = list.iter().map(|r| r.id.as_str()).collect();
    let rows = all(tx, &owners_relations_sql(kind), &[&tenant, &ids], relation_from_row).await?;
    attach_relations(kind, list, rows);
    Ok(())
}

/// The relations of the resources whose ids are in the array `$2`, in tenant `$1`.
pub(super) fn owners_relations_sql(kind: ResourceKind) -> String {
    relations_sql(kind, "$1", "= ANY($2)")
}

/// A row of [`owners_relations_sql`].
pub(super) fn relation_from_row(r: &Row) -> Result<RelationRow, StoreError> {
    Ok((get(r, 0)?, get(r, 1)?, get(r, 2)?, get(r, 3)?))
}
