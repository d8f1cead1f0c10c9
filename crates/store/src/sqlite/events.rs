//! The provisioning log on SQLite: appended in batches, read newest first with a cursor.

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, Row, params, params_from_iter};
use scimd_domain::clock::{format_time, parse_time};
use scimd_domain::events::{Cause, DayActivity, Event, EventQuery, EventStore, Idp, Outcome};
use scimd_domain::store::StoreError;
use time::OffsetDateTime;

use super::{SqliteStore, backend};
use crate::columns::EVENT_COLUMNS;

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<Event> {
    let at: String = row.get(1)?;
    Ok(Event {
        id: row.get(0)?,
        at: parse_time(&at).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        tenant_id: row.get(2)?,
        token_id: row.get(3)?,
        request_id: row.get(4)?,
        idp: Idp::parse(&row.get::<_, String>(5)?),
        method: row.get(6)?,
        path: row.get(7)?,
        operation: row.get(8)?,
        subject: row.get(9)?,
        outcome: Outcome::parse(&row.get::<_, String>(10)?).unwrap_or(Outcome::Failed),
        cause: Cause::parse(&row.get::<_, String>(11)?).unwrap_or(Cause::InternalError),
        status: row.get(12)?,
        detail: row.get(13)?,
        duration_ms: row.get(14)?,
        mentions: row
            .get::<_, Option<String>>(15)?
            .map(|m| m.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
    })
}

/// Appends one event inside a write transaction.
pub(super) fn insert_event(tx: &Connection, e: &Event) -> Result<(), StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO events (at, tenant_id, token_id, request_id, idp, method, path, operation, subject,
                 outcome, cause, status, detail, duration_ms, mentions)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )
        .map_err(backend)?;
    stmt.execute(params![
        format_time(e.at),
        e.tenant_id,
        e.token_id,
        e.request_id,
        e.idp.as_str(),
        e.method,
        e.path,
        e.operation,
        e.subject,
        e.outcome.as_str(),
        e.cause.as_str(),
        e.status,
        e.detail,
        e.duration_ms,
        // Space-enclosed, so that a whole identifier is found with instr(' x ').
        (!e.mentions.is_empty()).then(|| format!(" {} ", e.mentions.join(" "))),
    ])
    .map_err(backend)?;
    Ok(())
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn insert_events(&self, events: &[Event]) -> Result<(), StoreError> {
        let events = events.to_vec();
        self.write(move |tx| {
            for e in &events {
                insert_event(tx, e)?;
            }
            Ok(())
        })
        .await
    }

    async fn events(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError> {
        let q = query.clone();
        self.read(move |c| {
            let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE 1 = 1");
            let mut args: Vec<SqlValue> = Vec::new();
            let mut add = |clause: &str, value: SqlValue| {
                sql.push_str(clause);
                args.push(value);
            };
            if let Some(t) = &q.tenant_id {
                add(" AND tenant_id = ?", SqlValue::Text(t.clone()));
            }
            if let Some(o) = q.outcome {
                add(" AND outcome = ?", SqlValue::Text(o.as_str().into()));
            }
            if let Some(cause) = q.cause {
                add(" AND cause = ?", SqlValue::Text(cause.as_str().into()));
            }
            if let Some(s) = &q.subject {
                add(" AND (instr(lower(subject), ?)", SqlValue::Text(s.to_lowercase()));
                add(" > 0 OR instr(mentions, ?) > 0)", SqlValue::Text(format!(" {} ", s.to_lowercase())));
            }
            if let Some(t) = q.since {
                add(" AND at >= ?", SqlValue::Text(format_time(t)));
            }
            if let Some(t) = q.until {
                add(" AND at < ?", SqlValue::Text(format_time(t)));
            }
            if let Some(id) = q.before_id {
                add(" AND id < ?", SqlValue::Integer(id));
            }
            add(" ORDER BY id DESC LIMIT ?", SqlValue::Integer(i64::from(q.limit)));
            let mut stmt = c.prepare(&sql).map_err(backend)?;
            let rows = stmt.query_map(params_from_iter(args.iter()), event_from_row).map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }

    async fn activity(&self, tenant: &str, since: OffsetDateTime) -> Result<Vec<DayActivity>, StoreError> {
        let (tenant, since) = (tenant.to_owned(), format_time(since));
        self.read(move |c| {
            super::all(
                c,
                "SELECT substr(at, 1, 10) AS day, outcome, count(*) FROM events
                 WHERE tenant_id = ?1 AND at >= ?2 GROUP BY day, outcome ORDER BY day",
                params![tenant, since],
                |r| {
                    Ok(DayActivity {
                        day: r.get(0)?,
                        outcome: Outcome::parse(&r.get::<_, String>(1)?).unwrap_or(Outcome::Failed),
                        count: r.get::<_, i64>(2)?.max(0) as u64,
                    })
                },
            )
        })
        .await
    }

    async fn prune_events(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        self.delete_in_chunks(
            "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE at < ?1 ORDER BY id LIMIT ?2)",
            before,
        )
        .await
    }
}
