//! Accounts, sessions, API keys and the audit log on PostgreSQL.

use async_trait::async_trait;
use scimd_domain::access::accounts::{Account, Session};
use scimd_domain::access::api_keys::ApiKey;
use scimd_domain::access::audit::{AuditEntry, AuditQuery};
use scimd_domain::access::{AccessStore, Role};
use scimd_domain::store::StoreError;
use time::OffsetDateTime;
use tokio_postgres::Row;

use super::{PostgresStore, Tx, backend, conflict_or_backend, get};

const ACCOUNT_COLUMNS: &str = "a.id, a.email, a.password_hash, a.role, a.tenant_id, a.created_at, a.last_sign_in_at";
const KEY_COLUMNS: &str = "k.id, k.prefix, k.hash, k.name, k.account_id, k.created_at, k.last_used_at, k.revoked_at";

/// An account from `ACCOUNT_COLUMNS` starting at column `at`.
fn account_from_row(row: &Row, at: usize) -> Result<Account, StoreError> {
    let name: &str = get(row, at + 3)?;
    let role = Role::from_parts(name, get(row, at + 4)?)
        .ok_or_else(|| StoreError::Backend(format!("PostgreSQL column {}: role {name}", at + 3)))?;
    Ok(Account {
        id: get(row, at)?,
        email: get(row, at + 1)?,
        password_hash: get(row, at + 2)?,
        role,
        created_at: get(row, at + 5)?,
        last_sign_in_at: get(row, at + 6)?,
    })
}

/// An API key from `KEY_COLUMNS` starting at column `at`.
fn key_from_row(row: &Row, at: usize) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: get(row, at)?,
        prefix: get(row, at + 1)?,
        hash: get(row, at + 2)?,
        name: get(row, at + 3)?,
        account_id: get(row, at + 4)?,
        created_at: get(row, at + 5)?,
        last_used_at: get(row, at + 6)?,
        revoked_at: get(row, at + 7)?,
    })
}

/// A `json` column selected as text; as on SQLite, a value that does not parse reads as none.
fn json_column(row: &Row, at: usize) -> Result<Option<serde_json::Value>, StoreError> {
    Ok(get::<Option<&str>>(row, at)?.and_then(|t| serde_json::from_str(t).ok()))
}

fn audit_from_row(row: &Row) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        id: get(row, 0)?,
        at: get(row, 1)?,
        actor: get(row, 2)?,
        tenant_id: get(row, 3)?,
        action: get(row, 4)?,
        target: get(row, 5)?,
        before: json_column(row, 6)?,
        after: json_column(row, 7)?,
    })
}

async fn insert_account(tx: &Tx<'_>, a: &Account) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO accounts (id, email, password_hash, role, tenant_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        &[&a.id, &a.email, &a.password_hash, &a.role.as_str(), &a.role.tenant_id(), &a.created_at],
    )
    .await
    .map_err(conflict_or_backend)?;
    Ok(())
}

#[async_trait]
impl AccessStore for PostgresStore {
    async fn insert_account(&self, account: &Account) -> Result<(), StoreError> {
        pg_write!(self, |tx| insert_account(tx, account).await)
    }

    async fn create_first_operator(
        &self,
        account: &Account,
        setup_key: &str,
        code_hash: &str,
    ) -> Result<bool, StoreError> {
        pg_write!(self, |tx| {
            let spent = tx
                .execute(
                    "UPDATE settings SET value = '' WHERE key = $1 AND value = $2 AND value <> ''
                     AND NOT EXISTS (SELECT 1 FROM accounts WHERE role = 'operator')",
                    &[&setup_key, &code_hash],
                )
                .await
                .map_err(backend)?;
            if spent == 0 {
                return Ok(false);
            }
            insert_account(tx, account).await?;
            Ok(true)
        })
    }

    async fn account_by_email(&self, email: &str) -> Result<Option<Account>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.email = $1");
        pg_read!(self, |tx| {
            let row = tx.query_opt(&sql, &[&email]).await.map_err(backend)?;
            row.as_ref().map(|r| account_from_row(r, 0)).transpose()
        })
    }

    async fn account(&self, id: &str) -> Result<Option<Account>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.id = $1");
        pg_read!(self, |tx| {
            let row = tx.query_opt(&sql, &[&id]).await.map_err(backend)?;
            row.as_ref().map(|r| account_from_row(r, 0)).transpose()
        })
    }

    async fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts a ORDER BY a.email COLLATE \"C\"");
        pg_read!(self, |tx| {
            let rows = tx.query(&sql, &[]).await.map_err(backend)?;
            rows.iter().map(|r| account_from_row(r, 0)).collect()
        })
    }

    async fn has_operator_account(&self) -> Result<bool, StoreError> {
        pg_read!(self, |tx| {
            let row =
                tx.query_opt("SELECT 1 FROM accounts WHERE role = 'operator' LIMIT 1", &[]).await.map_err(backend)?;
            Ok(row.is_some())
        })
    }

    async fn touch_account(&self, id: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        pg_write!(self, |tx| {
            tx.execute("UPDATE accounts SET last_sign_in_at = $2 WHERE id = $1", &[&id, &at]).await.map_err(backend)?;
            Ok(())
        })
    }

    async fn delete_account(&self, id: &str) -> Result<(), StoreError> {
        pg_write!(self, |tx| {
            match tx.execute("DELETE FROM accounts WHERE id = $1", &[&id]).await.map_err(backend)? {
                0 => Err(StoreError::NotFound),
                _ => Ok(()),
            }
        })
    }

    async fn insert_session(&self, session: &Session) -> Result<(), StoreError> {
        let s = session;
        pg_write!(self, |tx| {
            tx.execute(
                "INSERT INTO sessions (hash, account_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
                &[&s.hash, &s.account_id, &s.csrf, &s.created_at, &s.expires_at],
            )
            .await
            .map_err(backend)?;
            Ok(())
        })
    }

    async fn session(&self, hash: &str) -> Result<Option<(Session, Account)>, StoreError> {
        let sql = format!(
            "SELECT s.hash, s.account_id, s.csrf, s.created_at, s.expires_at, {ACCOUNT_COLUMNS}
             FROM sessions s JOIN accounts a ON a.id = s.account_id WHERE s.hash = $1"
        );
        pg_read!(self, |tx| {
            let row = tx.query_opt(&sql, &[&hash]).await.map_err(backend)?;
            row.as_ref()
                .map(|r| {
                    let session = Session {
                        hash: get(r, 0)?,
                        account_id: get(r, 1)?,
                        csrf: get(r, 2)?,
                        created_at: get(r, 3)?,
                        expires_at: get(r, 4)?,
                    };
                    Ok((session, account_from_row(r, 5)?))
                })
                .transpose()
        })
    }

    async fn delete_session(&self, hash: &str) -> Result<(), StoreError> {
        pg_write!(self, |tx| {
            tx.execute("DELETE FROM sessions WHERE hash = $1", &[&hash]).await.map_err(backend)?;
            Ok(())
        })
    }

    async fn prune_sessions(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        self.delete_in_chunks(
            "DELETE FROM sessions WHERE hash IN (SELECT hash FROM sessions WHERE expires_at < $1 LIMIT $2)",
            before,
        )
        .await
    }

    async fn insert_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let k = key;
        pg_write!(self, |tx| {
            tx.execute(
                "INSERT INTO api_keys (id, prefix, hash, name, account_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&k.id, &k.prefix, &k.hash, &k.name, &k.account_id, &k.created_at],
            )
            .await
            .map_err(conflict_or_backend)?;
            Ok(())
        })
    }

    async fn api_key_by_prefix(&self, prefix: &str) -> Result<Option<(ApiKey, Account)>, StoreError> {
        let sql = format!(
            "SELECT {KEY_COLUMNS}, {ACCOUNT_COLUMNS} FROM api_keys k JOIN accounts a ON a.id = k.account_id
             WHERE k.prefix = $1"
        );
        pg_read!(self, |tx| {
            let row = tx.query_opt(&sql, &[&prefix]).await.map_err(backend)?;
            row.as_ref().map(|r| Ok((key_from_row(r, 0)?, account_from_row(r, 8)?))).transpose()
        })
    }

    async fn api_keys(&self, account_id: &str) -> Result<Vec<ApiKey>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.account_id = $1 ORDER BY k.created_at DESC");
        pg_read!(self, |tx| {
            let rows = tx.query(&sql, &[&account_id]).await.map_err(backend)?;
            rows.iter().map(|r| key_from_row(r, 0)).collect()
        })
    }

    async fn revoke_api_key(&self, account_id: &str, id: &str, at: OffsetDateTime) -> Result<ApiKey, StoreError> {
        let sql = format!(
            "UPDATE api_keys k SET revoked_at = COALESCE(k.revoked_at, $3) WHERE k.id = $1 AND k.account_id = $2
             RETURNING {KEY_COLUMNS}"
        );
        pg_write!(self, |tx| {
            let row = tx.query_opt(&sql, &[&id, &account_id, &at]).await.map_err(backend)?;
            row.as_ref().map(|r| key_from_row(r, 0)).transpose()?.ok_or(StoreError::NotFound)
        })
    }

    async fn touch_api_key(&self, id: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        pg_write!(self, |tx| {
            tx.execute("UPDATE api_keys SET last_used_at = $2 WHERE id = $1", &[&id, &at]).await.map_err(backend)?;
            Ok(())
        })
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let e = entry;
        let text = |v: &Option<serde_json::Value>| v.as_ref().map(serde_json::Value::to_string);
        let (before, after) = (text(&e.before), text(&e.after));
        pg_write!(self, |tx| {
            tx.execute(
                "INSERT INTO audit_log (at, actor, tenant_id, action, target, before, after)
                 VALUES ($1, $2, $3, $4, $5, $6::text::json, $7::text::json)",
                &[&e.at, &e.actor, &e.tenant_id, &e.action, &e.target, &before, &after],
            )
            .await
            .map_err(backend)?;
            Ok(())
        })
    }

    async fn audit_log(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let q = query;
        let limit = i64::from(q.limit);
        pg_read!(self, |tx| {
            let rows = tx
                .query(
                    "SELECT id, at, actor, tenant_id, action, target, before::text, after::text FROM audit_log
                     WHERE ($1::text IS NULL OR tenant_id = $1) AND ($2::bigint IS NULL OR id < $2)
                     ORDER BY id DESC LIMIT $3",
                    &[&q.tenant_id, &q.before_id, &limit],
                )
                .await
                .map_err(backend)?;
            rows.iter().map(audit_from_row).collect()
        })
    }
}
