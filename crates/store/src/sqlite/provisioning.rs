//! Provisioning rules on SQLite: regions, profiles, mappings, tenant settings, and the
//! provisioning transaction (seat, email claim, region health, then the write).

use rusqlite::{Connection, OptionalExtension, Row, params};
use scimd_domain::clock::{format_time, parse_time};
use scimd_domain::provisioning::{Health, Mapping, Profile, Region, TenantSettings};
use scimd_domain::resources::StoredResource;
use scimd_domain::store::{EmailHolder, ProvisionError, ResourceWrite, Step, StepRefusal, StoreError};
use time::OffsetDateTime;

use super::CachedSql;
use super::rows::resource_from_row;
use super::{backend, conflict_or_backend, delete_row, insert_row, update_row};
use crate::columns::RESOURCE_COLUMNS;

pub(super) const REGION_COLUMNS: &str =
    "id, name, health, health_since, probe_url, probe_interval_seconds, last_probe_at, last_probe_result";
pub(super) const PROFILE_COLUMNS: &str = "id, tenant_id, name, max_users, active_users";
pub(super) const MAPPING_COLUMNS: &str = "id, tenant_id, name, priority, filter, profile_id, region_id, enabled";

pub(super) fn region_from_row(row: &Row<'_>) -> rusqlite::Result<Region> {
    let time = |idx: usize| -> rusqlite::Result<Option<OffsetDateTime>> {
        Ok(row.get::<_, Option<String>>(idx)?.as_deref().and_then(parse_time))
    };
    Ok(Region {
        id: row.get(0)?,
        name: row.get(1)?,
        health: Health::parse(&row.get::<_, String>(2)?).unwrap_or(Health::Down),
        health_since: time(3)?.unwrap_or(OffsetDateTime::UNIX_EPOCH),
        probe_url: row.get(4)?,
        probe_interval_seconds: row.get(5)?,
        last_probe_at: time(6)?,
        last_probe_result: row.get(7)?,
    })
}

pub(super) fn profile_from_row(row: &Row<'_>) -> rusqlite::Result<Profile> {
    Ok(Profile {
        id: row.get(0)?,
        tenant_id: row.get(1)?,
        name: row.get(2)?,
        max_users: row.get(3)?,
        active_users: row.get(4)?,
    })
}

pub(super) fn mapping_from_row(row: &Row<'_>) -> rusqlite::Result<Mapping> {
    Ok(Mapping {
        id: row.get(0)?,
        tenant_id: row.get(1)?,
        name: row.get(2)?,
        priority: row.get(3)?,
        filter: row.get(4)?,
        profile_id: row.get(5)?,
        region_id: row.get(6)?,
        enabled: row.get(7)?,
    })
}

pub(super) fn upsert_region(tx: &Connection, r: &Region, insert: bool) -> Result<(), StoreError> {
    let sql = if insert {
        "INSERT INTO regions (id, name, health, health_since, probe_url, probe_interval_seconds, last_probe_at,
             last_probe_result) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    } else {
        "UPDATE regions SET name = ?2, health = ?3, health_since = ?4, probe_url = ?5, probe_interval_seconds = ?6,
             last_probe_at = ?7, last_probe_result = ?8 WHERE id = ?1"
    };
    let n = tx
        .exec(
            sql,
            params![
                r.id,
                r.name,
                r.health.as_str(),
                format_time(r.health_since),
                r.probe_url,
                r.probe_interval_seconds,
                r.last_probe_at.map(format_time),
                r.last_probe_result,
            ],
        )
        .map_err(|e| conflict_in(e, "regions.name"))?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// A uniqueness failure on `column` as a `Conflict { attribute: "name" }`.
fn conflict_in(e: rusqlite::Error, column: &str) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(err, Some(msg))
            if err.code == rusqlite::ErrorCode::ConstraintViolation && msg.contains(column) =>
        {
            StoreError::Conflict { attribute: "name".into() }
        }
        _ => conflict_or_backend(e),
    }
}

pub(super) fn insert_profile(tx: &Connection, p: &Profile, now: OffsetDateTime) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO profiles (tenant_id, id, name, max_users, active_users, created_at) VALUES (?1, ?2, ?3, ?4, 0, ?5)",
        params![p.tenant_id, p.id, p.name, p.max_users, format_time(now)],
    )
    .map_err(|e| conflict_in(e, "profiles.tenant_id, profiles.name"))?;
    Ok(())
}

pub(super) fn update_profile(tx: &Connection, p: &Profile) -> Result<(), StoreError> {
    let n = tx
        .exec(
            "UPDATE profiles SET name = ?3, max_users = ?4 WHERE tenant_id = ?1 AND id = ?2",
            params![p.tenant_id, p.id, p.name, p.max_users],
        )
        .map_err(|e| conflict_in(e, "profiles.tenant_id, profiles.name"))?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(super) fn write_mapping(tx: &Connection, m: &Mapping, insert: bool, now: OffsetDateTime) -> Result<(), StoreError> {
    let n = if insert {
        tx.exec(
            "INSERT INTO mappings (tenant_id, id, name, priority, filter, profile_id, region_id, enabled, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                m.tenant_id,
                m.id,
                m.name,
                m.priority,
                m.filter,
                m.profile_id,
                m.region_id,
                m.enabled,
                format_time(now)
            ],
        )
    } else {
        tx.exec(
            "UPDATE mappings SET name = ?3, priority = ?4, filter = ?5, profile_id = ?6, region_id = ?7, enabled = ?8
             WHERE tenant_id = ?1 AND id = ?2",
            params![m.tenant_id, m.id, m.name, m.priority, m.filter, m.profile_id, m.region_id, m.enabled],
        )
    }
    .map_err(conflict_or_backend)?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(super) fn settings(c: &Connection, tenant: &str) -> Result<TenantSettings, StoreError> {
    let text: Option<String> =
        c.row("SELECT settings FROM tenants WHERE id = ?1", [tenant], |r| r.get(0)).optional().map_err(backend)?;
    let text = text.ok_or(StoreError::NotFound)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Backend(format!("stored tenant settings: {e}")))
}

/// Runs one step; `Err(Refused)` rolls the whole transaction back.
fn run_step(tx: &Connection, tenant: &str, step: &Step) -> Result<(), ProvisionError> {
    match step {
        Step::RecordEvent(event) => super::events::insert_event(tx, event)?,
        Step::Outbox(entry) => {
            super::webhooks::insert_outbox(tx, entry)?;
        }
        Step::TakeSeat { profile_id } => {
            // A conditional increment: exact under any concurrency, on any SQL database.
            let n = tx
                .exec(
                    "UPDATE profiles SET active_users = active_users + 1
                     WHERE tenant_id = ?1 AND id = ?2 AND (max_users = 0 OR active_users < max_users)",
                    params![tenant, profile_id],
                )
                .map_err(backend)?;
            if n == 0 {
                let (name, max_users): (String, u32) = tx
                    .row(
                        "SELECT name, max_users FROM profiles WHERE tenant_id = ?1 AND id = ?2",
                        params![tenant, profile_id],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .map_err(backend)?;
                return Err(ProvisionError::Refused(StepRefusal::ProfileFull { name, max_users }));
            }
        }
        Step::ReleaseSeat { profile_id } => {
            tx.exec(
                "UPDATE profiles SET active_users = MAX(active_users - 1, 0) WHERE tenant_id = ?1 AND id = ?2",
                params![tenant, profile_id],
            )
            .map_err(backend)?;
        }
        Step::ClaimEmail { email, user_id } => {
            let n = tx
                .exec(
                    "INSERT INTO email_claims (email, tenant_id, user_id, claimed_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (email) DO NOTHING",
                    params![email, tenant, user_id, format_time(OffsetDateTime::now_utc())],
                )
                .map_err(backend)?;
            if n == 0 {
                let (holder_tenant, holder_user): (String, String) = tx
                    .row("SELECT tenant_id, user_id FROM email_claims WHERE email = ?1", [email], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .map_err(backend)?;
                if holder_tenant != tenant {
                    return Err(refused_email(email, EmailHolder::OtherTenant));
                }
                if holder_user != *user_id {
                    let state: Option<String> = tx
                        .row(
                            "SELECT state FROM resources WHERE tenant_id = ?1 AND id = ?2",
                            params![tenant, holder_user],
                            |r| r.get(0),
                        )
                        .optional()
                        .map_err(backend)?
                        .flatten();
                    let holder = match state.as_deref() {
                        Some("preserved" | "deleted") => EmailHolder::PreservedInThisTenant,
                        _ => EmailHolder::ThisTenant,
                    };
                    return Err(refused_email(email, holder));
                }
            }
        }
        Step::ReleaseEmail { email, user_id } => {
            tx.exec(
                "DELETE FROM email_claims WHERE email = ?1 AND tenant_id = ?2 AND user_id = ?3",
                params![email, tenant, user_id],
            )
            .map_err(backend)?;
        }
        Step::LeaveGroups { user_id, at } => {
            tx.exec(
                "UPDATE resources SET version = version + 1, modified = MAX(modified, ?3)
                 WHERE tenant_id = ?1 AND id IN (SELECT group_id FROM group_members WHERE tenant_id = ?1 AND member_id = ?2)",
                params![tenant, user_id, format_time(*at)],
            )
            .map_err(backend)?;
            tx.exec("DELETE FROM group_members WHERE tenant_id = ?1 AND member_id = ?2", params![tenant, user_id])
                .map_err(backend)?;
        }
        Step::RequireHealthy { region_id } => {
            let (name, health): (String, String) = tx
                .row("SELECT name, health FROM regions WHERE id = ?1", [region_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(backend)?;
            let health = Health::parse(&health).unwrap_or(Health::Down);
            if health != Health::Healthy {
                return Err(ProvisionError::Refused(StepRefusal::RegionUnhealthy { name, health }));
            }
        }
    }
    Ok(())
}

fn refused_email(email: &str, holder: EmailHolder) -> ProvisionError {
    ProvisionError::Refused(StepRefusal::EmailTaken { email: email.to_owned(), holder })
}

/// The provisioning transaction: steps in order, then the write.
pub(super) fn provision(
    tx: &Connection,
    tenant: &str,
    steps: &[Step],
    write: &ResourceWrite,
) -> Result<(), ProvisionError> {
    for step in steps {
        run_step(tx, tenant, step)?;
    }
    match write {
        ResourceWrite::Insert(res) => insert_row(tx, tenant, res)?,
        ResourceWrite::Update { res, expected_version } => update_row(tx, tenant, res, *expected_version)?,
        ResourceWrite::Delete { kind, id, expected_version, at } => {
            delete_row(tx, tenant, *kind, id, *expected_version, *at)?;
            // A purged user's claims go with it.
            tx.exec("DELETE FROM email_claims WHERE tenant_id = ?1 AND user_id = ?2", params![tenant, id])
                .map_err(backend)?;
        }
    }
    Ok(())
}

/// The user with this userName, or holding this email claim, in any state.
pub(super) fn find_user(
    c: &Connection,
    tenant: &str,
    user_name_fold: &str,
    email: Option<&str>,
) -> Result<Option<StoredResource>, StoreError> {
    let by_name = c
        .prepare_cached(&format!(
            "SELECT {RESOURCE_COLUMNS} FROM resources r WHERE r.tenant_id = ?1 AND r.kind = 'User' AND r.user_name_fold = ?2"
        ))
        .and_then(|mut s| s.query_row(params![tenant, user_name_fold], resource_from_row).optional())
        .map_err(backend)?;
    if let Some(found) = by_name {
        return found.map(Some);
    }
    let Some(email) = email else { return Ok(None) };
    let by_email = c
        .prepare_cached(&format!(
            "SELECT {RESOURCE_COLUMNS} FROM resources r JOIN email_claims e ON e.tenant_id = r.tenant_id AND e.user_id = r.id
             WHERE e.email = ?1 AND e.tenant_id = ?2"
        ))
        .and_then(|mut s| s.query_row(params![email, tenant], resource_from_row).optional())
        .map_err(backend)?;
    by_email.transpose()
}
