//! The provisioning log on PostgreSQL: appended in batches, read newest first with a cursor.

use async_trait::async_trait;
use scimd_domain::events::{Cause, DayActivity, Event, EventQuery, EventStore, Idp, Outcome};
use scimd_domain::store::StoreError;
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{PostgresStore, Tx, backend, get};
use crate::columns::EVENT_COLUMNS;

fn event_from_row(row: &Row) -> Result<Event, StoreError> {
    let status: i64 = get(row, 12)?;
    let duration_ms: i64 = get(row, 14)?;
    Ok(Event {
        id: get(row, 0)?,
        at: get(row, 1)?,
        tenant_id: get(row, 2)?,
        token_id: get(row, 3)?,
        request_id: get(row, 4)?,
        idp: Idp::parse(get(row, 5)?),
        method: get(row, 6)?,
        path: get(row, 7)?,
        operation: get(row, 8)?,
        subject: get(row, 9)?,
        outcome: Outcome::parse(get(row, 10)?).unwrap_or(Outcome::Failed),
        cause: Cause::parse(get(row, 11)?).unwrap_or(Cause::InternalError),
        status: u16::try_from(status).unwrap_or(u16::MAX),
        detail: get(row, 13)?,
        duration_ms: u32::try_from(duration_ms).unwrap_or(u32::MAX),
        mentions: get::<Option<&str>>(row, 15)?
            .map(|m| m.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
    })
}

/// Appends one event inside a write transaction.
pub(super) async fn insert_event(tx: &Tx<'_>, e: &Event) -> Result<(), StoreError> {
    // Space-enclosed, so that a whole identifier is found with strpos(' x ').
    let mentions = (!e.mentions.is_empty()).then(|| format!(" {} ", e.mentions.join(" ")));
    tx.execute(
        "INSERT INTO events (at, tenant_id, token_id, request_id, idp, method, path, operation, subject,
             outcome, cause, status, detail, duration_ms, mentions)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        &[
            &e.at,
            &e.tenant_id,
            &e.token_id,
            &e.request_id,
            &e.idp.as_str(),
            &e.method,
            &e.path,
            &e.operation,
            &e.subject,
            &e.outcome.as_str(),
            &e.cause.as_str(),
            &i64::from(e.status),
            &e.detail,
            &i64::from(e.duration_ms),
            &mentions,
        ],
    )
    .await
    .map_err(backend)?;
    Ok(())
}

/// Adds `value` to the arguments of a statement being built; its placeholder (`$n`).
fn param<'a>(args: &mut Vec<&'a (dyn ToSql + Sync)>, value: &'a (dyn ToSql + Sync)) -> String {
    args.push(value);
    format!("${}", args.len())
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn insert_events(&self, events: &[Event]) -> Result<(), StoreError> {
        pg_write!(self, |tx| {
            for e in events {
                insert_event(tx, e).await?;
            }
            Ok(())
        })
    }

    async fn events(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError> {
        let q = query;
        let outcome = q.outcome.map(Outcome::as_str);
        let cause = q.cause.map(Cause::as_str);
        let subject = q.subject.as_deref().map(str::to_lowercase);
        let mention = subject.as_deref().map(|s| format!(" {s} "));
        let limit = i64::from(q.limit);
        let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE true");
        let mut args: Vec<&(dyn ToSql + Sync)> = Vec::new();
        if let Some(t) = &q.tenant_id {
            let p = param(&mut args, t);
            sql.push_str(&format!(" AND tenant_id = {p}"));
        }
        if let Some(o) = &outcome {
            let p = param(&mut args, o);
            sql.push_str(&format!(" AND outcome = {p}"));
        }
        if let Some(c) = &cause {
            let p = param(&mut args, c);
            sql.push_str(&format!(" AND cause = {p}"));
        }
        if let (Some(s), Some(m)) = (&subject, &mention) {
            let (s, m) = (param(&mut args, s), param(&mut args, m));
            sql.push_str(&format!(" AND (strpos(lower(subject), {s}) > 0 OR strpos(mentions, {m}) > 0)"));
        }
        if let Some(t) = &q.since {
            let p = param(&mut args, t);
            sql.push_str(&format!(" AND at >= {p}"));
        }
        if let Some(t) = &q.until {
            let p = param(&mut args, t);
            sql.push_str(&format!(" AND at < {p}"));
        }
        if let Some(id) = &q.before_id {
            let p = param(&mut args, id);
            sql.push_str(&format!(" AND id < {p}"));
        }
        let p = param(&mut args, &limit);
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {p}"));
        pg_read!(self, |tx| {
            let rows = tx.query(&sql, &args).await.map_err(backend)?;
            rows.iter().map(event_from_row).collect()
        })
    }

    async fn activity(&self, tenant: &str, since: OffsetDateTime) -> Result<Vec<DayActivity>, StoreError> {
        pg_read!(self, |tx| {
            // The UTC day as `YYYY-MM-DD`, as SQLite's `substr(at, 1, 10)` of a stored UTC time.
            let rows = tx
                .query(
                    "SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, outcome, count(*) FROM events
                     WHERE tenant_id = $1 AND at >= $2 GROUP BY 1, 2 ORDER BY 1, 2",
                    &[&tenant, &since],
                )
                .await
                .map_err(backend)?;
            rows.iter()
                .map(|r| {
                    Ok(DayActivity {
                        day: get(r, 0)?,
                        outcome: Outcome::parse(get(r, 1)?).unwrap_or(Outcome::Failed),
                        count: u64::try_from(get::<i64>(r, 2)?).unwrap_or(0),
                    })
                })
                .collect()
        })
    }

    async fn prune_events(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        self.delete_in_chunks(
            "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE at < $1 ORDER BY id LIMIT $2)",
            before,
        )
        .await
    }
}
