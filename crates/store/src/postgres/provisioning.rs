//! Provisioning rules on PostgreSQL: regions, profiles, mappings, tenant settings, and the
//! provisioning transaction (seat, email claim, region health, then the write).

use scimd_domain::provisioning::{Health, Mapping, Profile, Region, TenantSettings};
use scimd_domain::resources::StoredResource;
use scimd_domain::store::{EmailHolder, ProvisionError, ResourceWrite, Step, StepRefusal, StoreError};
use time::OffsetDateTime;
use tokio_postgres::Row;

use super::rows::resource_from_row;
use super::{Tx, backend, conflict_or_backend, delete_row, get, insert_row, not_found_if_none, one, update_row};
use crate::columns::RESOURCE_COLUMNS;

pub(super) const REGION_COLUMNS: &str =
    "id, name, health, health_since, probe_url, probe_interval_seconds, last_probe_at, last_probe_result";
pub(super) const PROFILE_COLUMNS: &str = "id, tenant_id, name, max_users, active_users";
pub(super) const MAPPING_COLUMNS: &str = "id, tenant_id, name, priority, filter, profile_id, region_id, enabled";

fn to_u32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

pub(super) fn region_from_row(row: &Row) -> Result<Region, StoreError> {
    let interval: Option<i64> = get(row, 5)?;
    Ok(Region {
        id: get(row, 0)?,
        name: get(row, 1)?,
        health: Health::parse(&get::<String>(row, 2)?).unwrap_or(Health::Down),
        health_since: get(row, 3)?,
        probe_url: get(row, 4)?,
        probe_interval_seconds: interval.map(to_u32),
        last_probe_at: get(row, 6)?,
        last_probe_result: get(row, 7)?,
    })
}

pub(super) fn profile_from_row(row: &Row) -> Result<Profile, StoreError> {
    Ok(Profile {
        id: get(row, 0)?,
        tenant_id: get(row, 1)?,
        name: get(row, 2)?,
        max_users: to_u32(get(row, 3)?),
        active_users: to_u32(get(row, 4)?),
    })
}

pub(super) fn mapping_from_row(row: &Row) -> Result<Mapping, StoreError> {
    Ok(Mapping {
        id: get(row, 0)?,
        tenant_id: get(row, 1)?,
        name: get(row, 2)?,
        priority: get(row, 3)?,
        filter: get(row, 4)?,
        profile_id: get(row, 5)?,
        region_id: get(row, 6)?,
        enabled: get(row, 7)?,
    })
}

pub(super) async fn upsert_region(tx: &Tx<'_>, r: &Region, insert: bool) -> Result<(), StoreError> {
    let sql = if insert {
        "INSERT INTO regions (id, name, health, health_since, probe_url, probe_interval_seconds, last_probe_at,
             last_probe_result) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    } else {
        "UPDATE regions SET name = $2, health = $3, health_since = $4, probe_url = $5, probe_interval_seconds = $6,
             last_probe_at = $7, last_probe_result = $8 WHERE id = $1"
    };
    let interval = r.probe_interval_seconds.map(i64::from);
    let n = tx
        .execute(
            sql,
            &[
                &r.id,
                &r.name,
                &r.health.as_str(),
                &r.health_since,
                &r.probe_url,
                &interval,
                &r.last_probe_at,
                &r.last_probe_result,
            ],
        )
        .await
        .map_err(conflict_or_backend)?;
    not_found_if_none(n)
}

pub(super) async fn insert_profile(tx: &Tx<'_>, p: &Profile, now: OffsetDateTime) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO profiles (tenant_id, id, name, max_users, active_users, created_at) VALUES ($1, $2, $3, $4, 0, $5)",
        &[&p.tenant_id, &p.id, &p.name, &i64::from(p.max_users), &now],
    )
    .await
    .map_err(conflict_or_backend)?;
    Ok(())
}

pub(super) async fn update_profile(tx: &Tx<'_>, p: &Profile) -> Result<(), StoreError> {
    let n = tx
        .execute(
            "UPDATE profiles SET name = $3, max_users = $4 WHERE tenant_id = $1 AND id = $2",
            &[&p.tenant_id, &p.id, &p.name, &i64::from(p.max_users)],
        )
        .await
        .map_err(conflict_or_backend)?;
    not_found_if_none(n)
}

pub(super) async fn write_mapping(
    tx: &Tx<'_>,
    m: &Mapping,
    insert: bool,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let priority = m.priority;
    let n = if insert {
        tx.execute(
            "INSERT INTO mappings (tenant_id, id, name, priority, filter, profile_id, region_id, enabled, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[&m.tenant_id, &m.id, &m.name, &priority, &m.filter, &m.profile_id, &m.region_id, &m.enabled, &now],
        )
        .await
    } else {
        tx.execute(
            "UPDATE mappings SET name = $3, priority = $4, filter = $5, profile_id = $6, region_id = $7, enabled = $8
             WHERE tenant_id = $1 AND id = $2",
            &[&m.tenant_id, &m.id, &m.name, &priority, &m.filter, &m.profile_id, &m.region_id, &m.enabled],
        )
        .await
    }
    .map_err(conflict_or_backend)?;
    not_found_if_none(n)
}

pub(super) async fn settings(tx: &Tx<'_>, tenant: &str) -> Result<TenantSettings, StoreError> {
    let value: Option<serde_json::Value> =
        one(tx, "SELECT settings FROM tenants WHERE id = $1", &[&tenant], |r| get(r, 0)).await?;
    let value = value.ok_or(StoreError::NotFound)?;
    serde_json::from_value(value).map_err(|e| StoreError::Backend(format!("stored tenant settings: {e}")))
}

/// Runs one step; `Err(Refused)` rolls the whole transaction back.
async fn run_step(tx: &Tx<'_>, tenant: &str, step: &Step) -> Result<(), ProvisionError> {
    match step {
        Step::RecordEvent(event) => super::events::insert_event(tx, event).await?,
        Step::Outbox(entry) => {
            super::webhooks::insert_outbox(tx, entry).await?;
        }
        Step::TakeSeat { profile_id } => {
            // A conditional increment: exact under any concurrency, on any SQL database.
            let n = tx
                .execute(
                    "UPDATE profiles SET active_users = active_users + 1
                     WHERE tenant_id = $1 AND id = $2 AND (max_users = 0 OR active_users < max_users)",
                    &[&tenant, profile_id],
                )
                .await
                .map_err(backend)?;
            if n == 0 {
                let row = tx
                    .query_one(
                        "SELECT name, max_users FROM profiles WHERE tenant_id = $1 AND id = $2",
                        &[&tenant, profile_id],
                    )
                    .await
                    .map_err(backend)?;
                let (name, max_users) = (get(&row, 0)?, to_u32(get(&row, 1)?));
                return Err(ProvisionError::Refused(StepRefusal::ProfileFull { name, max_users }));
            }
        }
        Step::ReleaseSeat { profile_id } => {
            tx.execute(
                "UPDATE profiles SET active_users = GREATEST(active_users - 1, 0) WHERE tenant_id = $1 AND id = $2",
                &[&tenant, profile_id],
            )
            .await
            .map_err(backend)?;
        }
        Step::ClaimEmail { email, user_id } => {
            let n = tx
                .execute(
                    "INSERT INTO email_claims (email, tenant_id, user_id, claimed_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (email) DO NOTHING",
                    &[email, &tenant, user_id, &OffsetDateTime::now_utc()],
                )
                .await
                .map_err(backend)?;
            if n == 0 {
                let row = tx
                    .query_one("SELECT tenant_id, user_id FROM email_claims WHERE email = $1", &[email])
                    .await
                    .map_err(backend)?;
                let (holder_tenant, holder_user): (String, String) = (get(&row, 0)?, get(&row, 1)?);
                if holder_tenant != tenant {
                    return Err(refused_email(email, EmailHolder::OtherTenant));
                }
                if holder_user != *user_id {
                    let state: Option<String> = one(
                        tx,
                        "SELECT state FROM resources WHERE tenant_id = $1 AND id = $2",
                        &[&tenant, &holder_user],
                        |r| get(r, 0),
                    )
                    .await?
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
            tx.execute(
                "DELETE FROM email_claims WHERE email = $1 AND tenant_id = $2 AND user_id = $3",
                &[email, &tenant, user_id],
            )
            .await
            .map_err(backend)?;
        }
        Step::LeaveGroups { user_id, at } => {
            tx.execute(
                "UPDATE resources SET version = version + 1, modified = GREATEST(modified, $3)
                 WHERE tenant_id = $1 AND id IN (SELECT group_id FROM group_members WHERE tenant_id = $1 AND member_id = $2)",
                &[&tenant, user_id, at],
            )
            .await
            .map_err(backend)?;
            tx.execute("DELETE FROM group_members WHERE tenant_id = $1 AND member_id = $2", &[&tenant, user_id])
                .await
                .map_err(backend)?;
        }
        Step::RequireHealthy { region_id } => {
            let row =
                tx.query_one("SELECT name, health FROM regions WHERE id = $1", &[region_id]).await.map_err(backend)?;
            let name: String = get(&row, 0)?;
            let health = Health::parse(&get::<String>(&row, 1)?).unwrap_or(Health::Down);
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
pub(super) async fn provision(
    tx: &Tx<'_>,
    tenant: &str,
    steps: &[Step],
    write: &ResourceWrite,
) -> Result<(), ProvisionError> {
    for step in steps {
        Box::pin(run_step(tx, tenant, step)).await?;
    }
    match write {
        ResourceWrite::Insert(res) => insert_row(tx, tenant, res).await?,
        ResourceWrite::Update { res, expected_version } => update_row(tx, tenant, res, *expected_version).await?,
        ResourceWrite::Delete { kind, id, expected_version, at } => {
            delete_row(tx, tenant, *kind, id, *expected_version, *at).await?;
            // A purged user's claims go with it.
            tx.execute("DELETE FROM email_claims WHERE tenant_id = $1 AND user_id = $2", &[&tenant, id])
                .await
                .map_err(backend)?;
        }
    }
    Ok(())
}

/// The user with this userName, or holding this email claim, in any state.
pub(super) async fn find_user(
    tx: &Tx<'_>,
    tenant: &str,
    user_name_fold: &str,
    email: Option<&str>,
) -> Result<Option<StoredResource>, StoreError> {
    let by_name = format!(
        "SELECT {RESOURCE_COLUMNS} FROM resources r WHERE r.tenant_id = $1 AND r.kind = 'User' AND r.user_name_fold = $2"
    );
    if let Some(found) = one(tx, &by_name, &[&tenant, &user_name_fold], resource_from_row).await? {
        return Ok(Some(found));
    }
    let Some(email) = email else { return Ok(None) };
    let by_email = format!(
        "SELECT {RESOURCE_COLUMNS} FROM resources r JOIN email_claims e ON e.tenant_id = r.tenant_id AND e.user_id = r.id
         WHERE e.email = $1 AND e.tenant_id = $2"
    );
    one(tx, &by_email, &[&email, &tenant], resource_from_row).await
}
