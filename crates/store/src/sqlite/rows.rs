//! Rows to domain values and back: the columns a resource is indexed by, and relation loading.

use std::collections::HashMap;

use rusqlite::{Connection, Row, params_from_iter};
use scim_proto::ResourceKind;
use scimd_domain::clock::parse_time;
use scimd_domain::events::Cause;
use scimd_domain::provisioning::{Actor, Manager, Placement, UserState};
use scimd_domain::resources::StoredResource;
use scimd_domain::store::StoreError;
use scimd_domain::tenant::Tenant;
use scimd_domain::token::{RevokeReason, TokenRecord};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::backend;

pub(super) const TOKEN_COLUMNS: &str =
    "id, tenant_id, prefix, hash, created_at, expires_at, revoked_at, revoke_reason, last_used_at, last_used_agent";
pub(super) const RESOURCE_COLUMNS: &str = "r.id, r.kind, r.doc, r.created, r.modified, r.version, r.state, \
     r.state_since, r.profile_id, r.region_id, r.pending_cause, r.preserved_by, r.managed_by, r.claimed_email";

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

/// Reads a resource row selected with [`RESOURCE_COLUMNS`].
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
    let Some(state) = row.get::<_, Option<String>>(6)?.as_deref().and_then(UserState::parse) else {
        return Ok(None);
    };
    let actor = |name: Option<String>| match name.as_deref() {
        Some("admin") => Some(Actor::Admin),
        Some("idp") => Some(Actor::Idp),
        _ => None,
    };
    Ok(Some(Placement {
        state,
        since: optional_time(row, 7)?.unwrap_or(OffsetDateTime::UNIX_EPOCH),
        profile_id: row.get(8)?,
        region_id: row.get(9)?,
        pending_cause: row.get::<_, Option<String>>(10)?.as_deref().and_then(Cause::parse),
        preserved_by: actor(row.get(11)?),
        managed_by: match row.get::<_, Option<String>>(12)?.as_deref() {
            Some("admin") => Manager::Admin,
            _ => Manager::Idp,
        },
        claimed_email: row.get(13)?,
    }))
}

/// A placement as the text of its columns, in [`RESOURCE_COLUMNS`] order from `state`.
pub(super) struct PlacementColumns {
    pub state: Option<&'static str>,
    pub since: Option<String>,
    pub profile_id: Option<String>,
    pub region_id: Option<String>,
    pub pending_cause: Option<&'static str>,
    pub preserved_by: Option<&'static str>,
    pub managed_by: Option<&'static str>,
    pub claimed_email: Option<String>,
}

impl PlacementColumns {
    pub fn of(placement: Option<&Placement>) -> Self {
        let actor = |a: Actor| match a {
            Actor::Admin => "admin",
            Actor::Idp => "idp",
        };
        PlacementColumns {
            state: placement.map(|p| p.state.as_str()),
            since: placement.map(|p| scimd_domain::clock::format_time(p.since)),
            profile_id: placement.and_then(|p| p.profile_id.clone()),
            region_id: placement.and_then(|p| p.region_id.clone()),
            pending_cause: placement.and_then(|p| p.pending_cause.map(Cause::as_str)),
            preserved_by: placement.and_then(|p| p.preserved_by.map(actor)),
            managed_by: placement.map(|p| match p.managed_by {
                Manager::Admin => "admin",
                Manager::Idp => "idp",
            }),
            claimed_email: placement.and_then(|p| p.claimed_email.clone()),
        }
    }
}

/// One email of a User, as indexed.
pub(super) struct EmailRow {
    pub value_fold: Option<String>,
    pub type_fold: Option<String>,
    /// `None` when the element says nothing about `primary`.
    pub primary: Option<bool>,
}

/// One member of a Group, as stored.
pub(super) struct Member {
    pub id: String,
    pub kind: ResourceKind,
    /// The display name the client sent, if any.
    pub display: Option<String>,
}

/// The columns a resource is found by, and the document as stored.
pub(super) struct IndexedColumns {
    pub user_name: Option<String>,
    pub user_name_fold: Option<String>,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    pub display_name_fold: Option<String>,
    pub active: Option<bool>,
    pub emails: Vec<EmailRow>,
    /// A Group's members (kept in `group_members`, not in the document).
    pub members: Vec<Member>,
    pub doc: String,
}

/// Case folding for caseExact=false attributes; the filter evaluator folds the same way.
pub(super) fn fold(s: &str) -> String {
    s.to_lowercase()
}

impl IndexedColumns {
    pub fn of(res: &StoredResource) -> Self {
        let text = |key: &str| res.doc.get(key).and_then(Value::as_str).map(str::to_owned);
        let user_name = if res.kind == ResourceKind::User { text("userName") } else { None };
        let display_name = text("displayName");
        let emails = match res.doc.get("emails").and_then(Value::as_array) {
            Some(list) if res.kind == ResourceKind::User => list
                .iter()
                .filter(|e| e.is_object())
                .map(|e| EmailRow {
                    value_fold: e.get("value").and_then(Value::as_str).map(fold),
                    type_fold: e.get("type").and_then(Value::as_str).map(fold),
                    primary: e.get("primary").and_then(Value::as_bool),
                })
                .collect(),
            _ => Vec::new(),
        };
        let mut doc = res.doc.clone();
        let members = match doc.as_object_mut().and_then(|o| o.remove("members")) {
            Some(Value::Array(list)) if res.kind == ResourceKind::Group => list
                .iter()
                .filter_map(|m| {
                    let id = m.get("value")?.as_str()?.to_owned();
                    let kind = m
                        .get("type")
                        .and_then(Value::as_str)
                        .and_then(ResourceKind::from_name)
                        .unwrap_or(ResourceKind::User);
                    let display = m.get("display").and_then(Value::as_str).map(str::to_owned);
                    Some(Member { id, kind, display })
                })
                .collect(),
            _ => Vec::new(),
        };
        if let Some(obj) = doc.as_object_mut() {
            obj.remove("groups");
        }
        IndexedColumns {
            user_name_fold: user_name.as_deref().map(fold),
            user_name,
            external_id: text("externalId"),
            display_name_fold: display_name.as_deref().map(fold),
            display_name,
            active: if res.kind == ResourceKind::User { res.doc.get("active").and_then(Value::as_bool) } else { None },
            emails,
            members,
            doc: doc.to_string(),
        }
    }
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
    let placeholders = vec!["?"; list.len()].join(", ");
    let (sql, key) = match kind {
        ResourceKind::Group => (
            format!(
                "SELECT m.group_id, m.member_id, m.member_kind, COALESCE(m.display, r.display_name, r.user_name)
                 FROM group_members m
                 LEFT JOIN resources r ON r.tenant_id = m.tenant_id AND r.id = m.member_id
                 WHERE m.tenant_id = ? AND m.group_id IN ({placeholders})
                 ORDER BY m.group_id, r.seq"
            ),
            "members",
        ),
        ResourceKind::User => (
            format!(
                "SELECT m.member_id, g.id, 'direct', g.display_name
                 FROM group_members m
                 JOIN resources g ON g.tenant_id = m.tenant_id AND g.id = m.group_id
                 WHERE m.tenant_id = ? AND m.member_id IN ({placeholders})
                 ORDER BY m.member_id, g.seq"
            ),
            "groups",
        ),
    };
    let mut stmt = c.prepare(&sql).map_err(backend)?;
    let args = std::iter::once(tenant.to_owned()).chain(list.iter().map(|r| r.id.clone()));
    let rows = stmt
        .query_map(params_from_iter(args), |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, Option<String>>(3)?))
        })
        .map_err(backend)?;
    let mut by_owner: HashMap<String, Vec<Value>> = HashMap::new();
    for row in rows {
        let (owner, value, kind, display) = row.map_err(backend)?;
        let mut item = json!({ "value": value });
        if let Some(display) = display {
            item["display"] = Value::String(display);
        }
        item["type"] = Value::String(kind);
        by_owner.entry(owner).or_default().push(item);
    }
    for res in list.iter_mut() {
        if let (Some(items), Some(obj)) = (by_owner.remove(&res.id), res.doc.as_object_mut()) {
            obj.insert(key.into(), Value::Array(items));
        }
    }
    Ok(())
}
