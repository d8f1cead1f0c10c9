//! Accounts, sessions, API keys and the audit log on SQLite.

use async_trait::async_trait;
use rusqlite::{Connection, Row, params};
use scimd_domain::access::accounts::{Account, Session};
use scimd_domain::access::api_keys::ApiKey;
use scimd_domain::access::audit::{AuditEntry, AuditQuery};
use scimd_domain::access::{AccessStore, Role};
use scimd_domain::clock::format_time;
use scimd_domain::store::StoreError;
use time::OffsetDateTime;

use super::CachedSql;
use super::rows::{optional_time, time_column};
use super::{SqliteStore, all, backend, conflict_or_backend, one};

const ACCOUNT_COLUMNS: &str = "a.id, a.email, a.password_hash, a.role, a.tenant_id, a.created_at, a.last_sign_in_at";
const KEY_COLUMNS: &str = "k.id, k.prefix, k.hash, k.name, k.account_id, k.created_at, k.last_used_at, k.revoked_at";

/// An account from `ACCOUNT_COLUMNS` starting at column `at`.
fn account_from_row(row: &Row<'_>, at: usize) -> rusqlite::Result<Account> {
    let role: String = row.get(at + 3)?;
    let role = Role::from_parts(&role, row.get(at + 4)?).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(at + 3, rusqlite::types::Type::Text, format!("role {role}").into())
    })?;
    Ok(Account {
        id: row.get(at)?,
        email: row.get(at + 1)?,
        password_hash: row.get(at + 2)?,
        role,
        created_at: time_column(row, at + 5)?,
        last_sign_in_at: optional_time(row, at + 6)?,
    })
}

/// An API key from `KEY_COLUMNS` starting at column `at`.
fn key_from_row(row: &Row<'_>, at: usize) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey {
        id: row.get(at)?,
        prefix: row.get(at + 1)?,
        hash: row.get(at + 2)?,
        name: row.get(at + 3)?,
        account_id: row.get(at + 4)?,
        created_at: time_column(row, at + 5)?,
        last_used_at: optional_time(row, at + 6)?,
        revoked_at: optional_time(row, at + 7)?,
    })
}

fn json_column(row: &Row<'_>, at: usize) -> rusqlite::Result<Option<serde_json::Value>> {
    Ok(row.get::<_, Option<String>>(at)?.and_then(|t| serde_json::from_str(&t).ok()))
}

fn audit_from_row(row: &Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        id: row.get(0)?,
        at: time_column(row, 1)?,
        actor: row.get(2)?,
        tenant_id: row.get(3)?,
        action: row.get(4)?,
        target: row.get(5)?,
        before: json_column(row, 6)?,
        after: json_column(row, 7)?,
    })
}

fn insert_account(tx: &Connection, a: &Account) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO accounts (id, email, password_hash, role, tenant_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![a.id, a.email, a.password_hash, a.role.as_str(), a.role.tenant_id(), format_time(a.created_at)],
    )
    .map_err(conflict_or_backend)?;
    Ok(())
}

#[async_trait]
impl AccessStore for SqliteStore {
    async fn insert_account(&self, account: &Account) -> Result<(), StoreError> {
        let a = account.clone();
        self.write(move |tx| insert_account(tx, &a)).await
    }

    async fn create_first_operator(
        &self,
        account: &Account,
        setup_key: &str,
        code_hash: &str,
    ) -> Result<bool, StoreError> {
        let (a, key, hash) = (account.clone(), setup_key.to_owned(), code_hash.to_owned());
        self.write(move |tx| {
            let spent = tx
                .exec(
                    "UPDATE settings SET value = '' WHERE key = ?1 AND value = ?2 AND value <> ''
                     AND NOT EXISTS (SELECT 1 FROM accounts WHERE role = 'operator')",
                    params![key, hash],
                )
                .map_err(backend)?;
            if spent == 0 {
                return Ok(false);
            }
            insert_account(tx, &a)?;
            Ok(true)
        })
        .await
    }

    async fn account_by_email(&self, email: &str) -> Result<Option<Account>, StoreError> {
        let email = email.to_owned();
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.email = ?1");
        self.read(move |c| one(c, &sql, [email], |r| account_from_row(r, 0))).await
    }

    async fn account(&self, id: &str) -> Result<Option<Account>, StoreError> {
        let id = id.to_owned();
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.id = ?1");
        self.read(move |c| one(c, &sql, [id], |r| account_from_row(r, 0))).await
    }

    async fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts a ORDER BY a.email");
        self.read(move |c| all(c, &sql, [], |r| account_from_row(r, 0))).await
    }

    async fn has_operator_account(&self) -> Result<bool, StoreError> {
        self.read(|c| {
            one(c, "SELECT 1 FROM accounts WHERE role = 'operator' LIMIT 1", [], |r| r.get::<_, i64>(0))
                .map(|o| o.is_some())
        })
        .await
    }

    async fn touch_account(&self, id: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write(move |tx| {
            tx.exec("UPDATE accounts SET last_sign_in_at = ?2 WHERE id = ?1", params![id, format_time(at)])
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn delete_account(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write(move |tx| match tx.exec("DELETE FROM accounts WHERE id = ?1", [id]).map_err(backend)? {
            0 => Err(StoreError::NotFound),
            _ => Ok(()),
        })
        .await
    }

    async fn insert_session(&self, session: &Session) -> Result<(), StoreError> {
        let s = session.clone();
        self.write(move |tx| {
            tx.exec(
                "INSERT INTO sessions (hash, account_id, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![s.hash, s.account_id, s.csrf, format_time(s.created_at), format_time(s.expires_at)],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn session(&self, hash: &str) -> Result<Option<(Session, Account)>, StoreError> {
        let hash = hash.to_owned();
        let sql = format!(
            "SELECT s.hash, s.account_id, s.csrf, s.created_at, s.expires_at, {ACCOUNT_COLUMNS}
             FROM sessions s JOIN accounts a ON a.id = s.account_id WHERE s.hash = ?1"
        );
        self.read(move |c| {
            one(c, &sql, [hash], |r| {
                let session = Session {
                    hash: r.get(0)?,
                    account_id: r.get(1)?,
                    csrf: r.get(2)?,
                    created_at: time_column(r, 3)?,
                    expires_at: time_column(r, 4)?,
                };
                Ok((session, account_from_row(r, 5)?))
            })
        })
        .await
    }

    async fn delete_session(&self, hash: &str) -> Result<(), StoreError> {
        let hash = hash.to_owned();
        self.write(move |tx| {
            tx.exec("DELETE FROM sessions WHERE hash = ?1", [hash]).map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn prune_sessions(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        self.delete_in_chunks(
            "DELETE FROM sessions WHERE hash IN (SELECT hash FROM sessions WHERE expires_at < ?1 LIMIT ?2)",
            before,
        )
        .await
    }

    async fn insert_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let k = key.clone();
        self.write(move |tx| {
            tx.exec(
                "INSERT INTO api_keys (id, prefix, hash, name, account_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![k.id, k.prefix, k.hash, k.name, k.account_id, format_time(k.created_at)],
            )
            .map_err(conflict_or_backend)?;
            Ok(())
        })
        .await
    }

    async fn api_key_by_prefix(&self, prefix: &str) -> Result<Option<(ApiKey, Account)>, StoreError> {
        let prefix = prefix.to_owned();
        let sql = format!(
            "SELECT {KEY_COLUMNS}, {ACCOUNT_COLUMNS} FROM api_keys k JOIN accounts a ON a.id = k.account_id
             WHERE k.prefix = ?1"
        );
        self.read(move |c| one(c, &sql, [prefix], |r| Ok((key_from_row(r, 0)?, account_from_row(r, 8)?)))).await
    }

    async fn api_keys(&self, account_id: &str) -> Result<Vec<ApiKey>, StoreError> {
        let account_id = account_id.to_owned();
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.account_id = ?1 ORDER BY k.created_at DESC");
        self.read(move |c| all(c, &sql, [account_id], |r| key_from_row(r, 0))).await
    }

    async fn revoke_api_key(&self, account_id: &str, id: &str, at: OffsetDateTime) -> Result<ApiKey, StoreError> {
        let (account_id, id) = (account_id.to_owned(), id.to_owned());
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.id = ?1");
        self.write(move |tx| {
            let n = tx
                .exec(
                    "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?3) WHERE id = ?1 AND account_id = ?2",
                    params![id, account_id, format_time(at)],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            one(tx, &sql, [&id], |r| key_from_row(r, 0))?.ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn touch_api_key(&self, id: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write(move |tx| {
            tx.exec("UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1", params![id, format_time(at)])
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let e = entry.clone();
        let text = |v: &Option<serde_json::Value>| v.as_ref().map(serde_json::Value::to_string);
        let (before, after) = (text(&e.before), text(&e.after));
        self.write(move |tx| {
            tx.exec(
                "INSERT INTO audit_log (at, actor, tenant_id, action, target, before, after)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![format_time(e.at), e.actor, e.tenant_id, e.action, e.target, before, after],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn audit_log(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let q = query.clone();
        self.read(move |c| {
            all(
                c,
                "SELECT id, at, actor, tenant_id, action, target, before, after FROM audit_log
                 WHERE (?1 IS NULL OR tenant_id = ?1) AND (?2 IS NULL OR id < ?2)
                 ORDER BY id DESC LIMIT ?3",
                params![q.tenant_id, q.before_id, q.limit],
                audit_from_row,
            )
        })
        .await
    }
}
