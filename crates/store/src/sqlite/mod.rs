//! The SQLite store: one file in the data directory, in WAL mode. A write is acknowledged only
//! once it is on disk and survives a crash or power loss; concurrent writes share that flush
//! (group commit, see [`writer`]). One writer connection (SQLite has one writer anyway) and a
//! small pool of readers that run alongside it.

mod access;
mod backup;
mod events;
mod functions;
mod list;
mod provisioning;
mod rows;
mod webhooks;
mod writer;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use scim_proto::ResourceKind;
use scimd_domain::clock::format_time;
use scimd_domain::provisioning::claims::EmailClaim;
use scimd_domain::provisioning::{Mapping, Profile, Region, TenantSettings, UserSearch};
use scimd_domain::query::{ListQuery, Page};
use scimd_domain::resources::StoredResource;
use scimd_domain::store::{ProvisionError, ResourceWrite, Step, Store, StoreError};
use scimd_domain::tenant::Tenant;
use scimd_domain::token::TokenRecord;
use time::OffsetDateTime;
use tokio::sync::Semaphore;

use crate::columns::{IndexedColumns, Member, PlacementColumns, RESOURCE_COLUMNS, VISIBLE, WRITTEN};
use rows::{resource_from_row, tenant_from_row, token_from_row};

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_provisioning.sql"),
    include_str!("../../migrations/sqlite/0003_webhooks.sql"),
    include_str!("../../migrations/sqlite/0004_access.sql"),
    include_str!("../../migrations/sqlite/0005_job_leases.sql"),
    include_str!("../../migrations/sqlite/0006_visible_index.sql"),
    include_str!("../../migrations/sqlite/0007_resource_counts.sql"),
];
const READERS: usize = 4;
/// Each connection's page cache, in KiB. With SQLite's default (2 MiB) lookups read most of
/// their pages from the kernel (`pread`) on every request: get 0.309 -> 0.336 × `/healthz` at
/// 10 000 users with this. Five connections (four readers and the writer) at this size stay
/// within the memory budget at a million users.
const PAGE_CACHE_KIB: u32 = 16 * 1024;
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 256;
/// The database file in the data directory.
pub(crate) const DB_FILE: &str = "scimd.db";

/// The store on an embedded SQLite database.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

pub use backup::{BackupSummary, backup, restore};

struct Inner {
    /// The shared lock on the data directory, held while this store is open: a restore waits
    /// for every holder to be gone.
    _in_use: std::fs::File,
    writer: writer::Writer,
    readers: Mutex<Vec<Connection>>,
    reader_slots: Arc<Semaphore>,
    path: std::path::PathBuf,
}

fn backend(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        // Another process held the database past the busy timeout.
        Some(rusqlite::ErrorCode::DatabaseBusy) => StoreError::Busy(e.to_string()),
        _ => StoreError::Backend(e.to_string()),
    }
}

impl SqliteStore {
    /// The schema version this build writes (`PRAGMA user_version` after its migrations).
    pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

    /// Opens (creating if needed) the database in `data_dir` and runs its migrations.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Backend(format!("cannot create data directory {}: {e}", data_dir.display())))?;
        let in_use = backup::lock_shared(data_dir)?;
        let path = data_dir.join(DB_FILE);
        let mut writer = open_connection(&path)?;
        migrate(&mut writer)?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                _in_use: in_use,
                writer: writer::Writer::start(writer, &path)?,
                readers: Mutex::new(Vec::new()),
                reader_slots: Arc::new(Semaphore::new(READERS)),
                path,
            }),
        })
    }

    /// Runs `f` on a reader connection, off the async runtime, in one read transaction so that
    /// everything it reads (a count and its page, a resource and its relations) is one snapshot.
    /// For reads whose cost grows with the data (lists, scans); a lookup goes to [`Self::lookup`].
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        // The permit travels with the blocking work: a client that disconnects does not free the
        // slot while its query still runs.
        let slot =
            self.inner.reader_slots.clone().acquire_owned().await.map_err(|e| StoreError::Backend(e.to_string()))?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            inner.with_reader(f)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("reader task failed: {e}")))?
    }

    /// Runs `f` like [`Self::read`], but here on the async worker: for lookups through an index
    /// that take a few microseconds, where handing the work to another thread and back cost more
    /// than the work (a fifth of a `GET /Users/{id}`). A reader in WAL mode does not wait for the
    /// writer, so the worker is not held.
    async fn lookup<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError>,
    {
        self.inner.with_reader(f)
    }

    /// Runs a `DELETE … LIMIT ?2` (with `?1` the cutoff time) until it deletes less than a chunk:
    /// each chunk its own short transaction, so that pruning a month of rows never holds the one
    /// writer (and every SCIM write behind it) for long. Returns how many rows went.
    pub(super) async fn delete_in_chunks(&self, sql: &'static str, before: OffsetDateTime) -> Result<u64, StoreError> {
        const CHUNK: i64 = 5000;
        let before = format_time(before);
        let mut total = 0u64;
        loop {
            let cutoff = before.clone();
            let n = self.write(move |tx| tx.exec(sql, params![cutoff, CHUNK]).map_err(backend)).await?;
            total += n as u64;
            if (n as i64) < CHUNK {
                return Ok(total);
            }
        }
    }

    /// Runs `f` in one immediate transaction on the writer connection, off the async runtime,
    /// and returns once it is durable; an `Err` from `f` rolls the transaction back.
    async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        self.inner.writer.write(f).await
    }
}

impl Inner {
    /// Runs `f` in a read transaction on a pooled reader connection (opened when none is free),
    /// on the calling thread.
    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let pooled = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => open_connection(&self.path)?,
        };
        let result = read_snapshot(&conn, f);
        self.readers.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
        result
    }
}

/// Runs `f` in one read transaction. `BEGIN` and `COMMIT` are cached statements: parsing them
/// anew cost more than a lookup by id.
fn read_snapshot<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
    conn.prepare_cached("BEGIN").and_then(|mut s| s.execute([])).map_err(backend)?;
    let result = f(conn);
    if let Err(e) = conn.prepare_cached("COMMIT").and_then(|mut s| s.execute([])) {
        // Nothing was written; only the snapshot must go before the connection is reused.
        let _ = conn.execute_batch("ROLLBACK");
        return result.and(Err(backend(e)));
    }
    result
}

/// `execute` and `query_row` through the connection's statement cache: rusqlite's own parse the
/// SQL on every call, which cost a write more than running it did.
pub(super) trait CachedSql {
    /// Runs a statement; the number of rows it changed.
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    /// Runs a query for its first row.
    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
}

impl CachedSql for Connection {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// Runs a query and collects its rows.
fn all<T, P: rusqlite::Params>(
    c: &Connection,
    sql: &str,
    params: P,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = c.prepare_cached(sql).map_err(backend)?;
    let rows = stmt.query_map(params, row).map_err(backend)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(backend)
}

/// Runs a query for at most one row.
fn one<T, P: rusqlite::Params>(
    c: &Connection,
    sql: &str,
    params: P,
    row: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>, StoreError> {
    c.prepare_cached(sql).and_then(|mut s| s.query_row(params, row).optional()).map_err(backend)
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(backend)?;
    // Every statement is parsed once per connection; the cache is least-recently-used, so the
    // shapes arbitrary filters compile to only push each other out.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.execute_batch(&format!("PRAGMA cache_size = -{PAGE_CACHE_KIB}")).map_err(backend)?;
    // A plan must not depend on the values bound: otherwise SQLite prepares such a statement
    // again on every new binding, which was half the time of a lookup by userName.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true).map_err(backend)?;
    // No memory map: in WAL mode every commit makes each reader drop its cache and (with a map)
    // unmap and fault its pages in again, which measured no faster than reading them, and the
    // mapped file counted in the process's memory (2 GiB resident at a million users).
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;",
    )
    .map_err(backend)?;
    functions::register(&conn).map_err(backend)?;
    Ok(conn)
}

/// Applies the migrations not yet applied, tracked by `PRAGMA user_version`. The immediate
/// transaction makes two processes starting at once apply each migration exactly once.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(backend)?;
    let applied: i64 = tx.row("PRAGMA user_version", [], |r| r.get(0)).map_err(backend)?;
    let applied = usize::try_from(applied).unwrap_or(usize::MAX);
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Backend(format!(
            "the database has schema version {applied}, newer than this scimd ({}); upgrade scimd",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        tx.execute_batch(sql).map_err(backend)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1)).map_err(backend)?;
    }
    tx.commit().map_err(backend)
}

/// Maps a unique-constraint failure to the attribute it protects.
fn conflict_or_backend(e: rusqlite::Error) -> StoreError {
    let rusqlite::Error::SqliteFailure(err, Some(msg)) = &e else { return backend(e) };
    if err.code != rusqlite::ErrorCode::ConstraintViolation {
        return backend(e);
    }
    let attribute = if msg.contains("user_name_fold") {
        "userName"
    } else if msg.contains("tenants.name") {
        "name"
    } else if msg.contains("resources.id") {
        "id"
    } else if msg.contains("tokens.prefix") || msg.contains("api_keys.prefix") {
        "prefix"
    } else if msg.contains("accounts.email") {
        "email"
    } else if msg.contains("FOREIGN KEY") {
        // Only group_members refers to resources: a member vanished during the write.
        "members"
    } else {
        return backend(e);
    };
    StoreError::Conflict { attribute: attribute.into() }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.writer.failure()?;
        self.read(|c| c.row("SELECT 1", [], |_| Ok(())).map_err(backend)).await
    }

    async fn load_relations(&self, tenant: &str, res: &mut StoredResource) -> Result<(), StoreError> {
        let kind = res.kind;
        self.lookup(|c| rows::load_relations(c, tenant, kind, std::slice::from_mut(res))).await
    }

    async fn sync(&self) -> Result<(), StoreError> {
        self.inner.writer.sync().await
    }

    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_owned();
        self.lookup(move |c| {
            c.row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0)).optional().map_err(backend)
        })
        .await
    }

    async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.write(move |tx| {
            tx.exec(
                "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn set_setting_once(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.write(move |tx| {
            let n = tx
                .exec("INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING", [key, value])
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn hold_lease(&self, job: &str, holder: &str, term: std::time::Duration) -> Result<bool, StoreError> {
        let (job, holder) = (job.to_owned(), holder.to_owned());
        let now = OffsetDateTime::now_utc();
        let until = format_time(now + term);
        let now = format_time(now);
        self.write(move |tx| {
            let n = tx
                .exec(
                    "INSERT INTO job_leases (job, holder, expires_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
                     WHERE job_leases.holder = excluded.holder OR job_leases.expires_at < ?4",
                    params![job, holder, until, now],
                )
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn insert_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        let t = tenant.clone();
        self.write(move |tx| {
            tx.exec(
                "INSERT INTO tenants (id, name, token_lifetime_days, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![t.id, t.name, t.token_lifetime_days, format_time(t.created_at)],
            )
            .map_err(conflict_or_backend)?;
            Ok(())
        })
        .await
    }

    async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        self.read(|c| {
            all(
                c,
                "SELECT id, name, token_lifetime_days, created_at FROM tenants ORDER BY created_at, id",
                [],
                tenant_from_row,
            )
        })
        .await
    }

    async fn tenant(&self, id: &str) -> Result<Option<Tenant>, StoreError> {
        let id = id.to_owned();
        self.lookup(move |c| {
            one(c, "SELECT id, name, token_lifetime_days, created_at FROM tenants WHERE id = ?1", [id], tenant_from_row)
        })
        .await
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>, StoreError> {
        let name = name.to_owned();
        self.lookup(move |c| {
            one(
                c,
                "SELECT id, name, token_lifetime_days, created_at FROM tenants WHERE name = ?1",
                [name],
                tenant_from_row,
            )
        })
        .await
    }

    async fn insert_token(&self, token: &TokenRecord, retire_others_at: OffsetDateTime) -> Result<(), StoreError> {
        let t = token.clone();
        self.write(move |tx| {
            let retire = format_time(retire_others_at);
            tx.exec(
                "UPDATE tokens SET revoked_at = ?2, revoke_reason = 'rotated'
                 WHERE tenant_id = ?1 AND (revoked_at IS NULL OR revoked_at > ?2) AND expires_at > ?2",
                params![t.tenant_id, retire],
            )
            .map_err(backend)?;
            tx.exec(
                "INSERT INTO tokens (id, tenant_id, prefix, hash, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![t.id, t.tenant_id, t.prefix, t.hash, format_time(t.created_at), format_time(t.expires_at)],
            )
            .map_err(conflict_or_backend)?;
            Ok(())
        })
        .await
    }

    async fn token_by_prefix(&self, prefix: &str) -> Result<Option<TokenRecord>, StoreError> {
        let prefix = prefix.to_owned();
        self.lookup(move |c| {
            one(c, &format!("SELECT {} FROM tokens WHERE prefix = ?1", rows::TOKEN_COLUMNS), [prefix], token_from_row)
        })
        .await
    }

    async fn tokens(&self, tenant: &str) -> Result<Vec<TokenRecord>, StoreError> {
        let tenant = tenant.to_owned();
        let sql = format!(
            "SELECT {} FROM tokens WHERE tenant_id = ?1 ORDER BY created_at DESC, id DESC",
            rows::TOKEN_COLUMNS
        );
        self.read(move |c| all(c, &sql, [tenant], token_from_row)).await
    }

    async fn revoke_token(
        &self,
        tenant: &str,
        token_id: &str,
        at: OffsetDateTime,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let (tenant, token_id) = (tenant.to_owned(), token_id.to_owned());
        self.write(move |tx| {
            tx.exec(
                "UPDATE tokens SET revoked_at = ?3, revoke_reason = 'revoked'
                 WHERE tenant_id = ?1 AND id = ?2 AND (revoked_at IS NULL OR revoked_at > ?3)",
                params![tenant, token_id, format_time(at)],
            )
            .map_err(backend)?;
            tx.row(
                &format!("SELECT {} FROM tokens WHERE tenant_id = ?1 AND id = ?2", rows::TOKEN_COLUMNS),
                params![tenant, token_id],
                token_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn touch_token(&self, token_id: &str, at: OffsetDateTime, agent: Option<&str>) -> Result<(), StoreError> {
        let (token_id, agent) = (token_id.to_owned(), agent.map(str::to_owned));
        self.write(move |tx| {
            tx.exec(
                "UPDATE tokens SET last_used_at = ?2, last_used_agent = ?3 WHERE id = ?1",
                params![token_id, format_time(at), agent],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn insert_resource(&self, tenant: &str, res: &StoredResource) -> Result<(), StoreError> {
        let (tenant, res) = (tenant.to_owned(), res.clone());
        self.write(move |tx| insert_row(tx, &tenant, &res)).await
    }

    async fn resource(
        &self,
        tenant: &str,
        kind: ResourceKind,
        id: &str,
        relations: bool,
    ) -> Result<Option<StoredResource>, StoreError> {
        let (tenant, id) = (tenant.to_owned(), id.to_owned());
        self.lookup(move |c| {
            let res = c
                .prepare_cached(&format!(
                    "SELECT {} FROM resources r WHERE r.tenant_id = ?1 AND r.id = ?2 AND r.kind = ?3 AND {VISIBLE}",
                    RESOURCE_COLUMNS
                ))
                .and_then(|mut s| {
                    s.query_row(params![tenant, id, ResourceKind::name(kind)], resource_from_row).optional()
                })
                .map_err(backend)?;
            let Some(res) = res.transpose()? else { return Ok(None) };
            let mut list = vec![res];
            if relations {
                rows::load_relations(c, &tenant, kind, &mut list)?;
            }
            Ok(list.pop())
        })
        .await
    }

    async fn update_resource(
        &self,
        tenant: &str,
        res: &StoredResource,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let (tenant, res) = (tenant.to_owned(), res.clone());
        self.write(move |tx| update_row(tx, &tenant, &res, expected_version)).await
    }

    async fn delete_resource(
        &self,
        tenant: &str,
        kind: ResourceKind,
        id: &str,
        expected_version: Option<u64>,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let (tenant, id) = (tenant.to_owned(), id.to_owned());
        self.write(move |tx| delete_row(tx, &tenant, kind, &id, expected_version, at)).await
    }

    async fn query(
        &self,
        tenant: &str,
        kind: ResourceKind,
        query: &ListQuery,
        relations: bool,
    ) -> Result<Page, StoreError> {
        if query.filter.as_ref().is_some_and(|f| crate::filter_sql::is_lookup(f, kind)) {
            return self.lookup(|c| list::run_query(c, tenant, kind, query, relations)).await;
        }
        let (tenant, query) = (tenant.to_owned(), query.clone());
        self.read(move |c| list::run_query(c, &tenant, kind, &query, relations)).await
    }

    async fn resource_kinds(&self, tenant: &str, ids: &[String]) -> Result<HashMap<String, ResourceKind>, StoreError> {
        let (tenant, ids) = (tenant.to_owned(), ids.to_vec());
        self.read(move |c| {
            let mut found = HashMap::new();
            // Batches keep each statement under SQLite's parameter limit.
            for chunk in ids.chunks(500) {
                let sql = format!(
                    "SELECT id, kind FROM resources r WHERE tenant_id = ? AND {VISIBLE} AND id IN ({})",
                    vec!["?"; chunk.len()].join(", ")
                );
                let mut stmt = c.prepare(&sql).map_err(backend)?;
                let args = std::iter::once(&tenant).chain(chunk.iter());
                let rows = stmt
                    .query_map(rusqlite::params_from_iter(args), |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                    })
                    .map_err(backend)?;
                for row in rows {
                    let (id, kind) = row.map_err(backend)?;
                    if let Some(kind) = ResourceKind::from_name(&kind) {
                        found.insert(id, kind);
                    }
                }
            }
            Ok(found)
        })
        .await
    }

    async fn provision(&self, tenant: &str, steps: &[Step], write: &ResourceWrite) -> Result<(), ProvisionError> {
        let (tenant, steps, write) = (tenant.to_owned(), steps.to_vec(), write.clone());
        self.write(move |tx| provisioning::provision(tx, &tenant, &steps, &write)).await
    }

    async fn find_user(
        &self,
        tenant: &str,
        user_name: &str,
        email: Option<&str>,
    ) -> Result<Option<StoredResource>, StoreError> {
        let (tenant, name, email) = (tenant.to_owned(), crate::columns::fold(user_name), email.map(str::to_owned));
        self.lookup(move |c| provisioning::find_user(c, &tenant, &name, email.as_deref())).await
    }

    async fn any_user(&self, tenant: &str, id: &str) -> Result<Option<StoredResource>, StoreError> {
        let (tenant, id) = (tenant.to_owned(), id.to_owned());
        self.lookup(move |c| {
            let res = c
                .prepare_cached(&format!(
                    "SELECT {} FROM resources r WHERE r.tenant_id = ?1 AND r.id = ?2 AND r.kind = 'User'",
                    RESOURCE_COLUMNS
                ))
                .and_then(|mut s| s.query_row(params![tenant, id], resource_from_row).optional())
                .map_err(backend)?;
            res.transpose()
        })
        .await
    }

    async fn pending_users(&self, tenant: &str, offset: u32, limit: u32) -> Result<Vec<StoredResource>, StoreError> {
        let tenant = tenant.to_owned();
        self.lookup(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {} FROM resources r WHERE r.tenant_id = ?1 AND r.state = 'pending'
                     ORDER BY r.state_since, r.seq LIMIT ?2 OFFSET ?3",
                    RESOURCE_COLUMNS
                ))
                .map_err(backend)?;
            let rows = stmt.query_map(params![tenant, limit, offset], resource_from_row).map_err(backend)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(row.map_err(backend)??);
            }
            Ok(out)
        })
        .await
    }

    async fn tenants_with_pending(&self) -> Result<Vec<String>, StoreError> {
        self.read(|c| all(c, "SELECT DISTINCT tenant_id FROM resources WHERE state = 'pending'", [], |r| r.get(0)))
            .await
    }

    async fn search_users(&self, tenant: &str, search: &UserSearch) -> Result<(u64, Vec<StoredResource>), StoreError> {
        let tenant = tenant.to_owned();
        let s = search.clone();
        self.read(move |c| {
            let text = s
                .text
                .as_ref()
                .map(|t| format!("%{}%", t.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")));
            let state = s.state.map(|st| st.as_str());
            let filter = "r.tenant_id = ?1 AND r.kind = 'User'
                 AND (?2 IS NULL OR r.user_name_fold LIKE ?2 ESCAPE '\\' OR r.display_name_fold LIKE ?2 ESCAPE '\\'
                      OR lower(r.external_id) LIKE ?2 ESCAPE '\\' OR r.id = ?3)
                 AND (?4 IS NULL OR r.state = ?4) AND (?5 IS NULL OR r.profile_id = ?5)
                 AND (?6 IS NULL OR r.region_id = ?6)";
            let args = params![tenant, text, s.text, state, s.profile_id, s.region_id];
            let total: i64 = c
                .prepare_cached(&format!("SELECT count(*) FROM resources r WHERE {filter}"))
                .and_then(|mut st| st.query_row(args, |r| r.get(0)))
                .map_err(backend)?;
            let sql = format!(
                "SELECT {} FROM resources r WHERE {filter} ORDER BY r.seq DESC LIMIT ?7 OFFSET ?8",
                RESOURCE_COLUMNS
            );
            let page = all(
                c,
                &sql,
                params![tenant, text, s.text, state, s.profile_id, s.region_id, s.limit, s.offset],
                resource_from_row,
            )?;
            Ok((total.max(0) as u64, page.into_iter().collect::<Result<Vec<_>, _>>()?))
        })
        .await
    }

    async fn email_claim(&self, email: &str) -> Result<Option<EmailClaim>, StoreError> {
        let email = email.to_owned();
        self.lookup(move |c| {
            one(c, "SELECT email, tenant_id, user_id, claimed_at FROM email_claims WHERE email = ?1", [email], |r| {
                Ok(EmailClaim {
                    email: r.get(0)?,
                    tenant_id: r.get(1)?,
                    user_id: r.get(2)?,
                    claimed_at: rows::time_column(r, 3)?,
                })
            })
        })
        .await
    }

    async fn release_email_claim(&self, claim: &EmailClaim) -> Result<bool, StoreError> {
        let c = claim.clone();
        self.write(move |tx| {
            let n = tx
                .exec(
                    "DELETE FROM email_claims WHERE email = ?1 AND tenant_id = ?2 AND user_id = ?3
                     AND NOT EXISTS (SELECT 1 FROM resources WHERE tenant_id = ?2 AND id = ?3 AND claimed_email = ?1)",
                    params![c.email, c.tenant_id, c.user_id],
                )
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn insert_region(&self, region: &Region) -> Result<(), StoreError> {
        let r = region.clone();
        self.write(move |tx| provisioning::upsert_region(tx, &r, true)).await
    }

    async fn update_region(&self, region: &Region) -> Result<(), StoreError> {
        let r = region.clone();
        self.write(move |tx| provisioning::upsert_region(tx, &r, false)).await
    }

    async fn regions(&self) -> Result<Vec<Region>, StoreError> {
        let sql = format!("SELECT {} FROM regions ORDER BY name", provisioning::REGION_COLUMNS);
        self.lookup(move |c| all(c, &sql, [], provisioning::region_from_row)).await
    }

    async fn region(&self, id: &str) -> Result<Option<Region>, StoreError> {
        let id = id.to_owned();
        let sql = format!("SELECT {} FROM regions WHERE id = ?1", provisioning::REGION_COLUMNS);
        self.lookup(move |c| one(c, &sql, [id], provisioning::region_from_row)).await
    }

    async fn tenant_regions(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        let tenant = tenant.to_owned();
        self.lookup(move |c| {
            all(c, "SELECT region_id FROM tenant_regions WHERE tenant_id = ?1 ORDER BY region_id", [tenant], |r| {
                r.get(0)
            })
        })
        .await
    }

    async fn set_tenant_regions(&self, tenant: &str, region_ids: &[String]) -> Result<(), StoreError> {
        let (tenant, ids) = (tenant.to_owned(), region_ids.to_vec());
        self.write(move |tx| {
            tx.exec("DELETE FROM tenant_regions WHERE tenant_id = ?1", [&tenant]).map_err(backend)?;
            for id in &ids {
                tx.exec(
                    "INSERT OR IGNORE INTO tenant_regions (tenant_id, region_id) VALUES (?1, ?2)",
                    params![tenant, id],
                )
                .map_err(conflict_or_backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn tenant_settings(&self, tenant: &str) -> Result<TenantSettings, StoreError> {
        let tenant = tenant.to_owned();
        self.lookup(move |c| provisioning::settings(c, &tenant)).await
    }

    async fn set_tenant_settings(&self, tenant: &str, settings: &TenantSettings) -> Result<(), StoreError> {
        let tenant = tenant.to_owned();
        let text = serde_json::to_string(settings).map_err(|e| StoreError::Backend(e.to_string()))?;
        self.write(move |tx| {
            let n =
                tx.exec("UPDATE tenants SET settings = ?2 WHERE id = ?1", params![tenant, text]).map_err(backend)?;
            if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
        })
        .await
    }

    async fn insert_profile(&self, profile: &Profile) -> Result<(), StoreError> {
        let p = profile.clone();
        self.write(move |tx| provisioning::insert_profile(tx, &p, OffsetDateTime::now_utc())).await
    }

    async fn update_profile(&self, profile: &Profile) -> Result<(), StoreError> {
        let p = profile.clone();
        self.write(move |tx| provisioning::update_profile(tx, &p)).await
    }

    async fn delete_profile(&self, tenant: &str, id: &str) -> Result<(), StoreError> {
        let (tenant, id) = (tenant.to_owned(), id.to_owned());
        self.write(move |tx| {
            let used = |sql: &str| -> Result<bool, StoreError> {
                tx.row(sql, params![tenant, id], |_| Ok(())).optional().map(|r| r.is_some()).map_err(backend)
            };
            if used("SELECT 1 FROM mappings WHERE tenant_id = ?1 AND profile_id = ?2 LIMIT 1")? {
                return Err(StoreError::Conflict { attribute: "mappings".into() });
            }
            if used("SELECT 1 FROM resources WHERE tenant_id = ?1 AND profile_id = ?2 LIMIT 1")? {
                return Err(StoreError::Conflict { attribute: "users".into() });
            }
            let n = tx
                .exec("DELETE FROM profiles WHERE tenant_id = ?1 AND id = ?2", params![tenant, id])
                .map_err(backend)?;
            if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
        })
        .await
    }

    async fn profiles(&self, tenant: &str) -> Result<Vec<Profile>, StoreError> {
        let tenant = tenant.to_owned();
        let sql = format!("SELECT {} FROM profiles WHERE tenant_id = ?1 ORDER BY name", provisioning::PROFILE_COLUMNS);
        self.lookup(move |c| all(c, &sql, [tenant], provisioning::profile_from_row)).await
    }

    async fn profile(&self, tenant: &str, id: &str) -> Result<Option<Profile>, StoreError> {
        let (tenant, id) = (tenant.to_owned(), id.to_owned());
        let sql = format!("SELECT {} FROM profiles WHERE tenant_id = ?1 AND id = ?2", provisioning::PROFILE_COLUMNS);
        self.lookup(move |c| one(c, &sql, params![tenant, id], provisioning::profile_from_row)).await
    }

    async fn insert_mapping(&self, mapping: &Mapping) -> Result<(), StoreError> {
        let m = mapping.clone();
        self.write(move |tx| provisioning::write_mapping(tx, &m, true, OffsetDateTime::now_utc())).await
    }

    async fn update_mapping(&self, mapping: &Mapping) -> Result<(), StoreError> {
        let m = mapping.clone();
        self.write(move |tx| provisioning::write_mapping(tx, &m, false, OffsetDateTime::now_utc())).await
    }

    async fn delete_mapping(&self, tenant: &str, id: &str) -> Result<(), StoreError> {
        let (tenant, id) = (tenant.to_owned(), id.to_owned());
        self.write(move |tx| {
            let n = tx
                .exec("DELETE FROM mappings WHERE tenant_id = ?1 AND id = ?2", params![tenant, id])
                .map_err(backend)?;
            if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
        })
        .await
    }

    async fn mappings(&self, tenant: &str) -> Result<Vec<Mapping>, StoreError> {
        let tenant = tenant.to_owned();
        let sql = format!(
            "SELECT {} FROM mappings WHERE tenant_id = ?1 ORDER BY priority, created_at, id",
            provisioning::MAPPING_COLUMNS
        );
        self.lookup(move |c| all(c, &sql, [tenant], provisioning::mapping_from_row)).await
    }
}

/// The values of [`WRITTEN`] for a resource.
fn written_values(res: &StoredResource, cols: &IndexedColumns) -> Vec<SqlValue> {
    let p = PlacementColumns::of(res.placement.as_ref());
    let text = |v: &Option<String>| v.clone().map_or(SqlValue::Null, SqlValue::Text);
    vec![
        text(&cols.user_name),
        text(&cols.user_name_fold),
        text(&cols.external_id),
        text(&cols.display_name),
        text(&cols.display_name_fold),
        cols.active.map_or(SqlValue::Null, |a| SqlValue::Integer(i64::from(a))),
        SqlValue::Text(format_time(res.modified)),
        SqlValue::Integer(res.version as i64),
        SqlValue::Text(cols.doc.clone()),
        text(&p.state),
        text(&p.since.map(format_time)),
        text(&p.profile_id),
        text(&p.region_id),
        text(&p.pending_cause),
        text(&p.preserved_by),
        text(&p.managed_by),
        text(&p.claimed_email),
    ]
}

/// Inserts a resource row with its emails and memberships.
fn insert_row(tx: &Connection, tenant: &str, res: &StoredResource) -> Result<(), StoreError> {
    let cols = IndexedColumns::of(res);
    let sql = format!(
        "INSERT INTO resources (tenant_id, kind, id, created, {}) VALUES (?, ?, ?, ?{})",
        WRITTEN.join(", "),
        ", ?".repeat(WRITTEN.len())
    );
    let key = [
        SqlValue::Text(tenant.to_owned()),
        SqlValue::Text(res.kind.name().to_owned()),
        SqlValue::Text(res.id.clone()),
        SqlValue::Text(format_time(res.created)),
    ];
    let values = key.into_iter().chain(written_values(res, &cols));
    tx.prepare_cached(&sql)
        .and_then(|mut stmt| stmt.execute(rusqlite::params_from_iter(values)))
        .map_err(conflict_or_backend)?;
    write_relations(tx, tenant, tx.last_insert_rowid(), res, &cols, false)
}

/// Replaces a resource row whose version is `expected_version`.
fn update_row(tx: &Connection, tenant: &str, res: &StoredResource, expected_version: u64) -> Result<(), StoreError> {
    let cols = IndexedColumns::of(res);
    let current: Option<(i64, i64)> = tx
        .row(
            "SELECT seq, version FROM resources WHERE tenant_id = ?1 AND id = ?2 AND kind = ?3",
            params![tenant, res.id, res.kind.name()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(backend)?;
    let Some((seq, version)) = current else { return Err(StoreError::NotFound) };
    if version as u64 != expected_version {
        return Err(StoreError::VersionMismatch);
    }
    let sets: Vec<String> = WRITTEN.iter().map(|c| format!("{c} = ?")).collect();
    let sql = format!("UPDATE resources SET {} WHERE seq = ?", sets.join(", "));
    let values = written_values(res, &cols).into_iter().chain([SqlValue::Integer(seq)]);
    tx.prepare_cached(&sql)
        .and_then(|mut stmt| stmt.execute(rusqlite::params_from_iter(values)))
        .map_err(conflict_or_backend)?;
    write_relations(tx, tenant, seq, res, &cols, true)
}

/// Writes what a resource row carries in tables of their own: a User's emails, a Group's members.
fn write_relations(
    tx: &Connection,
    tenant: &str,
    seq: i64,
    res: &StoredResource,
    cols: &IndexedColumns,
    replace: bool,
) -> Result<(), StoreError> {
    write_emails(tx, tenant, seq, cols, replace)?;
    if res.kind == ResourceKind::Group {
        write_members(tx, tenant, &res.id, &cols.members, replace, res.modified)?;
    }
    Ok(())
}

/// Deletes a resource row; groups that held it and users it held change with it.
fn delete_row(
    tx: &Connection,
    tenant: &str,
    kind: ResourceKind,
    id: &str,
    expected_version: Option<u64>,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    let version: Option<i64> = tx
        .row(
            "SELECT version FROM resources WHERE tenant_id = ?1 AND id = ?2 AND kind = ?3",
            params![tenant, id, kind.name()],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?;
    let Some(version) = version else { return Err(StoreError::NotFound) };
    if expected_version.is_some_and(|v| v != version as u64) {
        return Err(StoreError::VersionMismatch);
    }
    // The groups it was a member of lose a member, and the users in it (if a group) lose a
    // group: each of them changes, so that their ETags do.
    tx.exec(
        "UPDATE resources SET version = version + 1, modified = MAX(modified, ?3)
         WHERE tenant_id = ?1 AND id IN (
             SELECT group_id FROM group_members WHERE tenant_id = ?1 AND member_id = ?2
             UNION SELECT member_id FROM group_members
                   WHERE tenant_id = ?1 AND group_id = ?2 AND member_kind = 'User')",
        params![tenant, id, format_time(at)],
    )
    .map_err(backend)?;
    // Memberships on either side go with it (ON DELETE CASCADE).
    tx.exec("DELETE FROM resources WHERE tenant_id = ?1 AND id = ?2", params![tenant, id]).map_err(backend)?;
    Ok(())
}

fn write_emails(
    tx: &Connection,
    tenant: &str,
    seq: i64,
    cols: &IndexedColumns,
    replace: bool,
) -> Result<(), StoreError> {
    if replace {
        tx.exec("DELETE FROM resource_emails WHERE resource_seq = ?1", [seq]).map_err(backend)?;
    }
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO resource_emails (tenant_id, resource_seq, value_fold, type_fold, is_primary)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(backend)?;
    for e in &cols.emails {
        stmt.execute(params![tenant, seq, e.value_fold, e.type_fold, e.primary]).map_err(backend)?;
    }
    Ok(())
}

/// Writes a group's membership; on replace, only the difference, so that adding one member to a
/// large group costs one row, not the whole list.
fn write_members(
    tx: &Connection,
    tenant: &str,
    group_id: &str,
    members: &[Member],
    replace: bool,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    // Each current member with the display a reader sees: the one stored, else the member's name.
    let mut existing: HashMap<String, Option<String>> = HashMap::new();
    if replace {
        let mut stmt = tx
            .prepare_cached(
                "SELECT m.member_id, COALESCE(m.display, r.display_name, r.user_name)
                 FROM group_members m LEFT JOIN resources r ON r.tenant_id = m.tenant_id AND r.id = m.member_id
                 WHERE m.tenant_id = ?1 AND m.group_id = ?2",
            )
            .map_err(backend)?;
        let rows = stmt.query_map(params![tenant, group_id], |r| Ok((r.get(0)?, r.get(1)?))).map_err(backend)?;
        for row in rows {
            let (id, display) = row.map_err(backend)?;
            existing.insert(id, display);
        }
    }
    let wanted: HashSet<&str> = members.iter().map(|m| m.id.as_str()).collect();
    let mut delete = tx
        .prepare_cached("DELETE FROM group_members WHERE tenant_id = ?1 AND group_id = ?2 AND member_id = ?3")
        .map_err(backend)?;
    // A user's `groups` is part of the user: joining or leaving changes its version.
    let mut touch = tx
        .prepare_cached(
            "UPDATE resources SET version = version + 1, modified = MAX(modified, ?3)
             WHERE tenant_id = ?1 AND id = ?2 AND kind = 'User'",
        )
        .map_err(backend)?;
    let at = format_time(at);
    for gone in existing.keys().filter(|id| !wanted.contains(id.as_str())) {
        delete.execute(params![tenant, group_id, gone]).map_err(backend)?;
        touch.execute(params![tenant, gone, at]).map_err(backend)?;
    }
    let mut upsert = tx
        .prepare_cached(
            "INSERT INTO group_members (tenant_id, group_id, member_id, member_kind, display) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (tenant_id, group_id, member_id) DO UPDATE SET display = excluded.display",
        )
        .map_err(backend)?;
    for m in members {
        // A member read back with its display and written unchanged is left alone, so that a
        // derived display stays derived and one PATCH touches only the members it changes; a
        // member written without a display gets the derived one again.
        let unchanged = existing.get(&m.id) == Some(&m.display);
        if !unchanged {
            upsert
                .execute(params![tenant, group_id, m.id, ResourceKind::name(m.kind), m.display])
                .map_err(conflict_or_backend)?;
            if !existing.contains_key(&m.id) {
                touch.execute(params![tenant, m.id, at]).map_err(backend)?;
            }
        }
    }
    Ok(())
}
