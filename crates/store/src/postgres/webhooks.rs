//! Outbound events on PostgreSQL: the outbox (also the feed), webhooks, their delivery log, and
//! the state of warnings that fired.

use async_trait::async_trait;
use scimd_domain::store::StoreError;
use scimd_domain::webhooks::{Attempt, Delivery, DueDelivery, EntryKind, OutboxEntry, Webhook, WebhookStore};
use time::OffsetDateTime;
use tokio_postgres::Row;

use super::{PostgresStore, Tx, backend, conflict_or_backend, get};

const OUTBOX_COLUMNS: &str =
    "o.id, o.tenant_id, o.kind, o.type, o.subject_id, o.idempotency_key, o.payload::text, o.created_at";
const WEBHOOK_COLUMNS: &str = "w.tenant_id, w.id, w.url, w.secret, w.enabled, w.created_at";

/// A count column as the domain's `u32`.
fn u32_column(row: &Row, idx: usize) -> Result<u32, StoreError> {
    Ok(u32::try_from(get::<i64>(row, idx)?).unwrap_or(u32::MAX))
}

/// An outbox row from `OUTBOX_COLUMNS` starting at column `at`.
fn entry_from_row(row: &Row, at: usize) -> Result<OutboxEntry, StoreError> {
    let payload: &str = get(row, at + 6)?;
    Ok(OutboxEntry {
        id: get(row, at)?,
        tenant_id: get(row, at + 1)?,
        kind: EntryKind::parse(get(row, at + 2)?).unwrap_or(EntryKind::Lifecycle),
        event_type: get(row, at + 3)?,
        subject_id: get(row, at + 4)?,
        idempotency_key: get(row, at + 5)?,
        // As on SQLite, a payload that does not parse reads as null rather than failing the page.
        data: serde_json::from_str(payload).unwrap_or(serde_json::Value::Null),
        created_at: get(row, at + 7)?,
    })
}

/// A webhook from `WEBHOOK_COLUMNS` starting at column `at`.
fn webhook_from_row(row: &Row, at: usize) -> Result<Webhook, StoreError> {
    Ok(Webhook {
        tenant_id: get(row, at)?,
        id: get(row, at + 1)?,
        url: get(row, at + 2)?,
        secret: get(row, at + 3)?,
        enabled: get(row, at + 4)?,
        created_at: get(row, at + 5)?,
    })
}

/// Appends an outbox row inside a write transaction unless its idempotency key exists; its id
/// when appended.
pub(super) async fn insert_outbox(tx: &Tx<'_>, e: &OutboxEntry) -> Result<Option<i64>, StoreError> {
    let data = serde_json::to_string(&e.data).map_err(|err| StoreError::Backend(err.to_string()))?;
    // Identity values are handed out at insert but become visible at commit, so two nodes' rows
    // could commit out of id order and a feed reader past the higher id would never see the
    // lower one. Holding the tenant's outbox lock until commit makes its ids grow in commit order.
    let lock = "SELECT pg_advisory_xact_lock(hashtextextended('scimd.outbox:' || $1::text, 0))";
    tx.execute(lock, &[&e.tenant_id]).await.map_err(backend)?;
    let row = tx
        .query_opt(
            "INSERT INTO outbox (tenant_id, kind, type, subject_id, idempotency_key, payload, created_at)
             VALUES ($1, $2, $3, $4, $5, $6::text::json, $7) ON CONFLICT (idempotency_key) DO NOTHING
             RETURNING id",
            &[&e.tenant_id, &e.kind.as_str(), &e.event_type, &e.subject_id, &e.idempotency_key, &data, &e.created_at],
        )
        .await
        .map_err(backend)?;
    row.as_ref().map(|r| get(r, 0)).transpose()
}

#[async_trait]
impl WebhookStore for PostgresStore {
    async fn insert_webhook(&self, webhook: &Webhook) -> Result<(), StoreError> {
        let w = webhook;
        pg_write!(self, |tx| {
            tx.execute(
                "INSERT INTO webhooks (tenant_id, id, url, secret, enabled, created_at, cursor)
                 VALUES ($1, $2, $3, $4, $5, $6, (SELECT COALESCE(MAX(id), 0) FROM outbox WHERE tenant_id = $1))",
                &[&w.tenant_id, &w.id, &w.url, &w.secret, &w.enabled, &w.created_at],
            )
            .await
            .map_err(conflict_or_backend)?;
            Ok(())
        })
    }

    async fn webhooks(&self, tenant: &str) -> Result<Vec<Webhook>, StoreError> {
        let sql = format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks w WHERE w.tenant_id = $1 ORDER BY w.created_at, w.id COLLATE \"C\""
        );
        pg_read!(self, |tx| {
            let rows = tx.query(&sql, &[&tenant]).await.map_err(backend)?;
            rows.iter().map(|r| webhook_from_row(r, 0)).collect()
        })
    }

    async fn delete_webhook(&self, tenant: &str, id: &str) -> Result<(), StoreError> {
        pg_write!(self, |tx| {
            let n = tx
                .execute("DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2", &[&tenant, &id])
                .await
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            tx.execute("DELETE FROM deliveries WHERE webhook_id = $1", &[&id]).await.map_err(backend)?;
            Ok(())
        })
    }

    async fn append_outbox(&self, entry: &OutboxEntry) -> Result<Option<i64>, StoreError> {
        pg_write!(self, |tx| insert_outbox(tx, entry).await)
    }

    async fn feed(&self, tenant: &str, after: i64, limit: u32) -> Result<Vec<OutboxEntry>, StoreError> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox o WHERE o.tenant_id = $1 AND o.id > $2 AND o.kind <> 'test'
             ORDER BY o.id LIMIT $3"
        );
        let limit = i64::from(limit);
        pg_read!(self, |tx| {
            let rows = tx.query(&sql, &[&tenant, &after, &limit]).await.map_err(backend)?;
            rows.iter().map(|r| entry_from_row(r, 0)).collect()
        })
    }

    async fn due_deliveries(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<DueDelivery>, StoreError> {
        // Each enabled webhook's next row (the lowest id past its cursor), if its retry is due.
        let sql = format!(
            "SELECT {WEBHOOK_COLUMNS}, {OUTBOX_COLUMNS}, COALESCE(d.attempts, 0)
             FROM webhooks w
             JOIN outbox o ON o.id = (SELECT MIN(x.id) FROM outbox x
                                      WHERE x.tenant_id = w.tenant_id AND x.id > w.cursor AND x.kind <> 'test')
             LEFT JOIN deliveries d ON d.webhook_id = w.id AND d.outbox_id = o.id
             WHERE w.enabled AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= $1)
             ORDER BY o.id LIMIT $2"
        );
        let limit = i64::from(limit);
        pg_read!(self, |tx| {
            let rows = tx.query(&sql, &[&now, &limit]).await.map_err(backend)?;
            rows.iter()
                .map(|r| {
                    Ok(DueDelivery {
                        webhook: webhook_from_row(r, 0)?,
                        entry: entry_from_row(r, 6)?,
                        attempts: u32_column(r, 14)?,
                    })
                })
                .collect()
        })
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
        let delivered = attempt.delivered().then_some(at);
        let status = attempt.status.map(i64::from);
        pg_write!(self, |tx| {
            tx.execute(
                "INSERT INTO deliveries (webhook_id, outbox_id, attempts, next_attempt_at, delivered_at,
                     last_attempt_at, last_status, last_error)
                 VALUES ($1, $2, 1, $3, $4, $5, $6, $7)
                 ON CONFLICT (webhook_id, outbox_id) DO UPDATE SET attempts = deliveries.attempts + 1,
                     next_attempt_at = excluded.next_attempt_at, delivered_at = excluded.delivered_at,
                     last_attempt_at = excluded.last_attempt_at, last_status = excluded.last_status,
                     last_error = excluded.last_error",
                &[&webhook_id, &outbox_id, &next_attempt_at, &delivered, &at, &status, &attempt.error],
            )
            .await
            .map_err(backend)?;
            if attempt.delivered() || given_up {
                // A row delivered or given up no longer holds back the rows behind it. Test sends
                // are outside the order: they never move the cursor.
                tx.execute(
                    "UPDATE webhooks SET cursor = GREATEST(cursor, $2) WHERE id = $1
                     AND EXISTS (SELECT 1 FROM outbox WHERE id = $2 AND kind <> 'test')",
                    &[&webhook_id, &outbox_id],
                )
                .await
                .map_err(backend)?;
            }
            Ok(())
        })
    }

    async fn deliveries(&self, tenant: &str, webhook_id: &str, limit: u32) -> Result<Vec<Delivery>, StoreError> {
        let limit = i64::from(limit);
        pg_read!(self, |tx| {
            let rows = tx
                .query(
                    "SELECT d.outbox_id, d.webhook_id, o.type, d.attempts, d.next_attempt_at, d.delivered_at,
                            d.last_attempt_at, d.last_status, d.last_error
                     FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id JOIN outbox o ON o.id = d.outbox_id
                     WHERE w.tenant_id = $1 AND d.webhook_id = $2 ORDER BY d.outbox_id DESC LIMIT $3",
                    &[&tenant, &webhook_id, &limit],
                )
                .await
                .map_err(backend)?;
            rows.iter()
                .map(|r| {
                    Ok(Delivery {
                        outbox_id: get(r, 0)?,
                        webhook_id: get(r, 1)?,
                        event_type: get(r, 2)?,
                        attempts: u32_column(r, 3)?,
                        next_attempt_at: get(r, 4)?,
                        delivered_at: get(r, 5)?,
                        last_attempt_at: get(r, 6)?,
                        last_status: get::<Option<i64>>(r, 7)?.map(|s| u16::try_from(s).unwrap_or(u16::MAX)),
                        last_error: get(r, 8)?,
                    })
                })
                .collect()
        })
    }

    async fn fired_warnings(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        pg_read!(self, |tx| {
            let rows = tx
                .query(
                    "SELECT condition FROM warning_state WHERE tenant_id = $1 ORDER BY condition COLLATE \"C\"",
                    &[&tenant],
                )
                .await
                .map_err(backend)?;
            rows.iter().map(|r| get(r, 0)).collect()
        })
    }

    async fn fire_warning(
        &self,
        tenant: &str,
        condition: &str,
        at: OffsetDateTime,
        entry: Option<&OutboxEntry>,
    ) -> Result<bool, StoreError> {
        pg_write!(self, |tx| {
            let n = tx
                .execute(
                    "INSERT INTO warning_state (tenant_id, condition, fired_at) VALUES ($1, $2, $3)
                     ON CONFLICT (tenant_id, condition) DO NOTHING",
                    &[&tenant, &condition, &at],
                )
                .await
                .map_err(backend)?;
            if n == 0 {
                return Ok(false);
            }
            if let Some(e) = entry {
                insert_outbox(tx, e).await?;
            }
            Ok(true)
        })
    }

    async fn prune_outbox(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        self.delete_in_chunks(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE created_at < $1 ORDER BY id LIMIT $2)",
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
        pg_write!(self, |tx| {
            let n = tx
                .execute("DELETE FROM warning_state WHERE tenant_id = $1 AND condition = $2", &[&tenant, &condition])
                .await
                .map_err(backend)?;
            if n > 0
                && let Some(e) = entry
            {
                insert_outbox(tx, e).await?;
            }
            Ok(())
        })
    }
}
