//! Outbound events on SQLite: the outbox (also the feed), webhooks, their delivery log, and the
//! state of warnings that fired.

use async_trait::async_trait;
use rusqlite::{Connection, Row, params};
use scimd_domain::clock::{format_time, parse_time};
use scimd_domain::store::StoreError;
use scimd_domain::webhooks::{Attempt, Delivery, DueDelivery, EntryKind, OutboxEntry, Webhook, WebhookStore};
use time::OffsetDateTime;

use super::CachedSql;
use super::{SqliteStore, all, backend, conflict_or_backend};

const OUTBOX_COLUMNS: &str =
    "o.id, o.tenant_id, o.kind, o.type, o.subject_id, o.idempotency_key, o.payload, o.created_at";
const WEBHOOK_COLUMNS: &str = "w.tenant_id, w.id, w.url, w.secret, w.enabled, w.created_at";

fn time_at(text: Option<String>) -> Option<OffsetDateTime> {
    text.as_deref().and_then(parse_time)
}

/// An outbox row from `OUTBOX_COLUMNS` starting at column `at`.
fn entry_from_row(row: &Row<'_>, at: usize) -> rusqlite::Result<OutboxEntry> {
    let payload: String = row.get(at + 6)?;
    Ok(OutboxEntry {
        id: row.get(at)?,
        tenant_id: row.get(at + 1)?,
        kind: EntryKind::parse(&row.get::<_, String>(at + 2)?).unwrap_or(EntryKind::Lifecycle),
        event_type: row.get(at + 3)?,
        subject_id: row.get(at + 4)?,
        idempotency_key: row.get(at + 5)?,
        data: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
        created_at: time_at(row.get(at + 7)?).unwrap_or(OffsetDateTime::UNIX_EPOCH),
    })
}

/// A webhook from `WEBHOOK_COLUMNS` starting at column `at`.
fn webhook_from_row(row: &Row<'_>, at: usize) -> rusqlite::Result<Webhook> {
    Ok(Webhook {
        tenant_id: row.get(at)?,
        id: row.get(at + 1)?,
        url: row.get(at + 2)?,
        secret: row.get(at + 3)?,
        enabled: row.get(at + 4)?,
        created_at: time_at(row.get(at + 5)?).unwrap_or(OffsetDateTime::UNIX_EPOCH),
    })
}

/// Appends an outbox row inside a write transaction unless its idempotency key exists; its id
/// when appended.
pub(super) fn insert_outbox(tx: &Connection, e: &OutboxEntry) -> Result<Option<i64>, StoreError> {
    let data = serde_json::to_string(&e.data).map_err(|err| StoreError::Backend(err.to_string()))?;
    let n = tx
        .prepare_cached(
            "INSERT INTO outbox (tenant_id, kind, type, subject_id, idempotency_key, payload, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .and_then(|mut s| {
            s.execute(params![
                e.tenant_id,
                e.kind.as_str(),
                e.event_type,
                e.subject_id,
                e.idempotency_key,
                data,
                format_time(e.created_at)
            ])
        })
        .map_err(backend)?;
    Ok((n > 0).then(|| tx.last_insert_rowid()))
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn insert_webhook(&self, webhook: &Webhook) -> Result<(), StoreError> {
        let w = webhook.clone();
        self.write(move |tx| {
            tx.exec(
                "INSERT INTO webhooks (tenant_id, id, url, secret, enabled, created_at, cursor)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, (SELECT COALESCE(MAX(id), 0) FROM outbox WHERE tenant_id = ?1))",
                params![w.tenant_id, w.id, w.url, w.secret, w.enabled, format_time(w.created_at)],
            )
            .map_err(conflict_or_backend)?;
            Ok(())
        })
        .await
    }

    async fn webhooks(&self, tenant: &str) -> Result<Vec<Webhook>, StoreError> {
        let tenant = tenant.to_owned();
        let sql =
            format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks w WHERE w.tenant_id = ?1 ORDER BY w.created_at, w.id");
        self.read(move |c| all(c, &sql, [tenant], |r| webhook_from_row(r, 0))).await
    }

    async fn delete_webhook(&self, tenant: &str, id: &str) -> Result<(), StoreError> {
        let (tenant, id) = (tenant.to_owned(), id.to_owned());
        self.write(move |tx| {
            let n = tx
                .exec("DELETE FROM webhooks WHERE tenant_id = ?1 AND id = ?2", params![tenant, id])
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            tx.exec("DELETE FROM deliveries WHERE webhook_id = ?1", [id]).map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn append_outbox(&self, entry: &OutboxEntry) -> Result<Option<i64>, StoreError> {
        let e = entry.clone();
        self.write(move |tx| insert_outbox(tx, &e)).await
    }

    async fn feed(&self, tenant: &str, after: i64, limit: u32) -> Result<Vec<OutboxEntry>, StoreError> {
        let tenant = tenant.to_owned();
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox o WHERE o.tenant_id = ?1 AND o.id > ?2 AND o.kind <> 'test'
             ORDER BY o.id LIMIT ?3"
        );
        self.read(move |c| all(c, &sql, params![tenant, after, limit], |r| entry_from_row(r, 0))).await
    }

    async fn due_deliveries(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<DueDelivery>, StoreError> {
        // Each enabled webhook's next row (the lowest id past its cursor), if its retry is due.
        let sql = format!(
            "SELECT {WEBHOOK_COLUMNS}, {OUTBOX_COLUMNS}, COALESCE(d.attempts, 0)
             FROM webhooks w
             JOIN outbox o ON o.id = (SELECT MIN(x.id) FROM outbox x
                                      WHERE x.tenant_id = w.tenant_id AND x.id > w.cursor AND x.kind <> 'test')
             LEFT JOIN deliveries d ON d.webhook_id = w.id AND d.outbox_id = o.id
             WHERE w.enabled AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= ?1)
             ORDER BY o.id LIMIT ?2"
        );
        let now = format_time(now);
        self.read(move |c| {
            all(c, &sql, params![now, limit], |r| {
                Ok(DueDelivery { webhook: webhook_from_row(r, 0)?, entry: entry_from_row(r, 6)?, attempts: r.get(14)? })
            })
        })
        .await
    }

    async fn record_attempt(
        &self,
        webhook_id: &str,
        outbox_id: i64,
        at: OffsetDateTime,
        attempt: &Attempt,
        next_attempt_at: Option<OffsetDateTime>,
        given_up: bool,
    ) -> Result<(), StoreError> {
        let (webhook_id, attempt) = (webhook_id.to_owned(), attempt.clone());
        self.write(move |tx| {
            let at = format_time(at);
            let delivered = attempt.delivered().then(|| at.clone());
            tx.exec(
                "INSERT INTO deliveries (webhook_id, outbox_id, attempts, next_attempt_at, delivered_at,
                     last_attempt_at, last_status, last_error)
                 VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (webhook_id, outbox_id) DO UPDATE SET attempts = attempts + 1,
                     next_attempt_at = excluded.next_attempt_at, delivered_at = excluded.delivered_at,
                     last_attempt_at = excluded.last_attempt_at, last_status = excluded.last_status,
                     last_error = excluded.last_error",
                params![
                    webhook_id,
                    outbox_id,
                    next_attempt_at.map(format_time),
                    delivered,
                    at,
                    attempt.status,
                    attempt.error
                ],
            )
            .map_err(backend)?;
            if attempt.delivered() || given_up {
                // A row delivered or given up no longer holds back the rows behind it. Test sends
                // are outside the order: they never move the cursor.
                tx.exec(
                    "UPDATE webhooks SET cursor = MAX(cursor, ?2) WHERE id = ?1
                     AND EXISTS (SELECT 1 FROM outbox WHERE id = ?2 AND kind <> 'test')",
                    params![webhook_id, outbox_id],
                )
                .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn deliveries(&self, tenant: &str, webhook_id: &str, limit: u32) -> Result<Vec<Delivery>, StoreError> {
        let (tenant, webhook_id) = (tenant.to_owned(), webhook_id.to_owned());
        self.read(move |c| {
            all(
                c,
                "SELECT d.outbox_id, d.webhook_id, o.type, d.attempts, d.next_attempt_at, d.delivered_at,
                        d.last_attempt_at, d.last_status, d.last_error
                 FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id JOIN outbox o ON o.id = d.outbox_id
                 WHERE w.tenant_id = ?1 AND d.webhook_id = ?2 ORDER BY d.outbox_id DESC LIMIT ?3",
                params![tenant, webhook_id, limit],
                |r| {
                    Ok(Delivery {
                        outbox_id: r.get(0)?,
                        webhook_id: r.get(1)?,
                        event_type: r.get(2)?,
                        attempts: r.get(3)?,
                        next_attempt_at: time_at(r.get(4)?),
                        delivered_at: time_at(r.get(5)?),
                        last_attempt_at: time_at(r.get(6)?),
                        last_status: r.get(7)?,
                        last_error: r.get(8)?,
                    })
                },
            )
        })
        .await
    }

    async fn fired_warnings(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        let tenant = tenant.to_owned();
        self.read(move |c| {
            all(c, "SELECT condition FROM warning_state WHERE tenant_id = ?1 ORDER BY condition", [tenant], |r| {
                r.get(0)
            })
        })
        .await
    }

    async fn fire_warning(
        &self,
        tenant: &str,
        condition: &str,
        at: OffsetDateTime,
        entry: Option<&OutboxEntry>,
    ) -> Result<bool, StoreError> {
        let (tenant, condition, entry) = (tenant.to_owned(), condition.to_owned(), entry.cloned());
        self.write(move |tx| {
            let n = tx
                .exec(
                    "INSERT INTO warning_state (tenant_id, condition, fired_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (tenant_id, condition) DO NOTHING",
                    params![tenant, condition, format_time(at)],
                )
                .map_err(backend)?;
            if n == 0 {
                return Ok(false);
            }
            if let Some(e) = &entry {
                insert_outbox(tx, e)?;
            }
            Ok(true)
        })
        .await
    }

    async fn prune_outbox(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        self.delete_in_chunks(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE created_at < ?1 ORDER BY id LIMIT ?2)",
            before,
        )
        .await
    }

    async fn clear_warning(
        &self,
        tenant: &str,
        condition: &str,
        entry: Option<&OutboxEntry>,
    ) -> Result<(), StoreError> {
        let (tenant, condition, entry) = (tenant.to_owned(), condition.to_owned(), entry.cloned());
        self.write(move |tx| {
            let n = tx
                .exec("DELETE FROM warning_state WHERE tenant_id = ?1 AND condition = ?2", params![tenant, condition])
                .map_err(backend)?;
            if n > 0
                && let Some(e) = &entry
            {
                insert_outbox(tx, e)?;
            }
            Ok(())
        })
        .await
    }
}
