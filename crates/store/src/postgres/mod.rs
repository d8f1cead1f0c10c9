//! The PostgreSQL store: the deployment for several scimd nodes on one database. Every write is
//! one SERIALIZABLE transaction, re-run when PostgreSQL reports a serialization conflict, so
//! that the rules SQLite gets from its single writer (exact seats, one claim per email, versions
//! that never lose an update) hold across nodes too. Reads that take more than one statement
//! run in one REPEATABLE READ snapshot.

/// Runs the body in one read-only REPEATABLE READ transaction, with `tx` bound to it. The body
/// is an expression of type `Result<T, StoreError>`.
macro_rules! pg_read {
    ($store:expr, |$tx:ident| $body:expr) => {{
        async {
            let mut client = $store.client().await?;
            let transaction = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err($crate::postgres::backend)?;
            let $tx = &$crate::postgres::Tx::new(&transaction);
            let value = async {
                let result: Result<_, scimd_domain::store::StoreError> = $body;
                result
            }
            .await?;
            transaction.commit().await.map_err($crate::postgres::backend)?;
            Ok::<_, scimd_domain::store::StoreError>(value)
        }
        .await
    }};
}

/// Runs the body in one SERIALIZABLE transaction, with `tx` bound to it; an `Err` from the body
/// rolls it back. A transaction PostgreSQL aborts to keep the history serializable is run
/// again after a short jittered pause, for up to [`WRITE_RETRY_BUDGET`]; after that the write
/// fails as [`StoreError::Busy`]. (A macro rather than a
/// function taking an async closure: the compiler cannot yet prove such closures' futures `Send`.)
macro_rules! pg_write {
    ($store:expr, |$tx:ident| $body:expr) => {
        pg_write!($store, scimd_domain::store::StoreError, |$tx| $body)
    };
    ($store:expr, $err:ty, |$tx:ident| $body:expr) => {{
        let mut attempt = 0u32;
        let started = std::time::Instant::now();
        loop {
            attempt += 1;
            let result = async {
                let mut client = $store.client().await?;
                let transaction = client
                    .build_transaction()
                    .isolation_level(tokio_postgres::IsolationLevel::Serializable)
                    .start()
                    .await
                    .map_err($crate::postgres::backend)?;
                let $tx = &$crate::postgres::Tx::new(&transaction);
                let value = async {
                    let result: Result<_, $err> = $body;
                    result
                }
                .await?;
                transaction.commit().await.map_err($crate::postgres::backend)?;
                Ok::<_, $err>(value)
            }
            .await;
            match result {
                Err(e)
                    if started.elapsed() < $crate::postgres::WRITE_RETRY_BUDGET
                        && $crate::postgres::WriteError::is_retryable(&e) =>
                {
                    $crate::postgres::retry_pause(attempt).await
                }
                result => break result,
            }
        }
    }};
}

mod access;
mod events;
mod list;
mod provisioning;
mod rows;
mod webhooks;

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use scim_proto::ResourceKind;
use scimd_domain::provisioning::claims::EmailClaim;
use scimd_domain::provisioning::{Mapping, Profile, Region, TenantSettings, UserSearch};
use scimd_domain::query::{ListQuery, Page};
use scimd_domain::resources::StoredResource;
use scimd_domain::store::{ProvisionError, ResourceWrite, Step, Store, StoreError};
use scimd_domain::tenant::Tenant;
use scimd_domain::token::TokenRecord;
use time::OffsetDateTime;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{NoTls, Row};

use crate::columns::{IndexedColumns, Member, PlacementColumns, RESOURCE_COLUMNS, VISIBLE, WRITTEN, attach_relations};
use rows::{resource_from_row, tenant_from_row, token_from_row};

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/postgres/0001_schema.sql"),
    include_str!("../../migrations/postgres/0002_visible_index.sql"),
];
/// How long a write is run again while PostgreSQL keeps aborting it as a serialization conflict.
/// Writes to one hot row (a profile's seat counter during a tenant's initial sync) take turns
/// by conflict, so the budget is time rather than a count of attempts.
pub(crate) const WRITE_RETRY_BUDGET: Duration = Duration::from_secs(10);

/// A transaction on a pooled connection whose statements go through the connection's statement
/// cache: a statement's text is parsed and described once per connection, then only bound and
/// run, one round trip instead of two. Statements built from a request's filter, unbounded in
/// variety, bypass the cache ([`Tx::uncached`]).
pub(crate) struct Tx<'a> {
    inner: &'a deadpool_postgres::Transaction<'a>,
}

impl<'a> Tx<'a> {
    /// Wraps a transaction.
    pub(crate) fn new(inner: &'a deadpool_postgres::Transaction<'a>) -> Self {
        Tx { inner }
    }

    /// The transaction itself, for statements that must not be cached.
    pub(super) fn uncached(&self) -> &deadpool_postgres::Transaction<'a> {
        self.inner
    }

    pub(super) async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, PgError> {
        let statement = self.inner.prepare_cached(sql).await?;
        self.inner.query(&statement, params).await
    }

    pub(super) async fn query_one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row, PgError> {
        let statement = self.inner.prepare_cached(sql).await?;
        self.inner.query_one(&statement, params).await
    }

    pub(super) async fn query_opt(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>, PgError> {
        let statement = self.inner.prepare_cached(sql).await?;
        self.inner.query_opt(&statement, params).await
    }

    pub(super) async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, PgError> {
        let statement = self.inner.prepare_cached(sql).await?;
        self.inner.execute(&statement, params).await
    }
}

type PgError = tokio_postgres::Error;

/// The store on a PostgreSQL database, shared by every scimd node that points at it.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
}

/// Any database error, for logs; a server error ends with its SQLSTATE in parentheses. Text
/// PostgreSQL cannot hold (the NUL character) is the request's fault, not the database's.
pub(crate) fn backend(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) if *db.code() == SqlState::CHARACTER_NOT_IN_REPERTOIRE => StoreError::Unsupported(
            "text containing the NUL character (U+0000) can be neither stored nor searched; remove it".into(),
        ),
        Some(db) if [SqlState::T_R_SERIALIZATION_FAILURE, SqlState::T_R_DEADLOCK_DETECTED].contains(db.code()) => {
            StoreError::Busy(format!("PostgreSQL: {} ({})", db.message(), db.code().code()))
        }
        Some(db) => StoreError::Backend(format!("PostgreSQL: {} ({})", db.message(), db.code().code())),
        None => StoreError::Backend(format!("PostgreSQL: {e}")),
    }
}

/// Maps a unique or foreign-key violation to the attribute it protects; anything else is ours.
pub(super) fn conflict_or_backend(e: tokio_postgres::Error) -> StoreError {
    let Some(db) = e.as_db_error() else { return backend(e) };
    if *db.code() != SqlState::UNIQUE_VIOLATION && *db.code() != SqlState::FOREIGN_KEY_VIOLATION {
        return backend(e);
    }
    let attribute = match db.constraint().unwrap_or_default() {
        "resources_user_name_key" => "userName",
        "tenants_name_key" | "regions_name_key" | "profiles_name_key" => "name",
        "resources_id_key" => "id",
        "tokens_prefix_key" | "api_keys_prefix_key" => "prefix",
        "accounts_email_key" => "email",
        // Only group_members refers to resources: a member vanished during the write.
        "group_members_member_fkey" => "members",
        _ => return backend(e),
    };
    StoreError::Conflict { attribute: attribute.into() }
}

/// Reads column `idx` of a row.
pub(super) fn get<'a, T: FromSql<'a>>(row: &'a Row, idx: usize) -> Result<T, StoreError> {
    row.try_get(idx).map_err(|e| StoreError::Backend(format!("PostgreSQL column {idx}: {e}")))
}

/// An error a write transaction can end with.
pub(crate) trait WriteError: From<StoreError> {
    /// The store error inside it, if any.
    fn store_error(&self) -> Option<&StoreError>;

    /// Whether PostgreSQL aborted the transaction to keep the history serializable (or to break
    /// a deadlock): running it again may succeed.
    fn is_retryable(&self) -> bool {
        matches!(self.store_error(), Some(StoreError::Busy(_)))
    }
}

impl WriteError for StoreError {
    fn store_error(&self) -> Option<&StoreError> {
        Some(self)
    }
}

impl WriteError for ProvisionError {
    fn store_error(&self) -> Option<&StoreError> {
        match self {
            ProvisionError::Store(e) => Some(e),
            ProvisionError::Refused(_) => None,
        }
    }
}

/// The pause before attempt `attempt + 1`: growing, with jitter so that transactions that
/// conflicted do not run again in lockstep.
pub(crate) async fn retry_pause(attempt: u32) {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let millis = 2u64.pow(attempt.min(5)) + u64::from(nanos % 17);
    tokio::time::sleep(Duration::from_millis(millis)).await;
}

/// Creates `schema` in the database at `url` (if missing) and returns the URL whose connections
/// use it: one PostgreSQL database can hold several scimd deployments, or test runs, side by side.
pub async fn create_schema(url: &str, schema: &str) -> Result<String, StoreError> {
    check_schema_name(schema)?;
    execute_once(url, &format!("CREATE SCHEMA IF NOT EXISTS {schema}")).await?;
    let separator = if url.contains('?') { '&' } else { '?' };
    Ok(format!("{url}{separator}options=-csearch_path%3D{schema}"))
}

/// Drops `schema` and everything in it.
pub async fn drop_schema(url: &str, schema: &str) -> Result<(), StoreError> {
    check_schema_name(schema)?;
    execute_once(url, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await
}

/// Schema names go into statements unquoted: only letters, digits and `_`.
fn check_schema_name(schema: &str) -> Result<(), StoreError> {
    if schema.is_empty() || !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(StoreError::Backend(format!("schema name {schema:?}: use letters, digits and _")));
    }
    Ok(())
}

/// Runs `statements` on a connection of their own, outside any pool.
async fn execute_once(url: &str, statements: &str) -> Result<(), StoreError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(backend)?;
    let connection = tokio::spawn(connection);
    client.batch_execute(statements).await.map_err(backend)?;
    drop(client);
    let _ = connection.await;
    Ok(())
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/db`, with `?options=-csearch_path%3Dschema`
    /// to use a schema of its own) with at most `pool_size` connections, and migrates it.
    pub async fn connect(url: &str, pool_size: usize) -> Result<Self, StoreError> {
        let config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Backend(format!("the database URL is not valid: {e}")))?;
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Backend(format!("cannot build the connection pool: {e}")))?;
        let store = PostgresStore { pool };
        store.migrate().await?;
        store.warn_without_autovacuum().await;
        Ok(store)
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| StoreError::Backend(format!("PostgreSQL: no connection: {e}")))
    }

    /// Runs one read statement on a pooled connection, outside an explicit transaction (one
    /// statement is one snapshot), and reads at most one row with `row`.
    async fn read_one<T>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        row: impl Fn(&Row) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(backend)?;
        client.query_opt(&statement, params).await.map_err(backend)?.as_ref().map(row).transpose()
    }

    /// Runs one read statement as [`PostgresStore::read_one`] does, reading every row.
    async fn read_all<T>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        row: impl Fn(&Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(backend)?;
        client.query(&statement, params).await.map_err(backend)?.iter().map(row).collect()
    }

    /// Query plans rest on the statistics autovacuum keeps: without them, a lookup by id can
    /// drift to a scan of the tenant as tables grow. Said once, at start, where operators look.
    async fn warn_without_autovacuum(&self) {
        let Ok(client) = self.client().await else { return };
        if let Ok(row) = client.query_one("SHOW autovacuum", &[]).await
            && row.try_get::<_, &str>(0).is_ok_and(|v| v == "off")
        {
            tracing::warn!(
                "autovacuum is off on this PostgreSQL server: without fresh statistics, queries slow down as tables \
                 grow; turn it on (the default), or run ANALYZE after large imports"
            );
        }
    }

    /// Applies the migrations not yet applied. Nodes starting at once queue on an advisory lock
    /// held for the transaction, so each migration is applied exactly once.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute("SELECT pg_advisory_xact_lock(hashtextextended('scimd.migrate:' || current_schema(), 0))", &[])
            .await
            .map_err(backend)?;
        // Without the notice "already exists, skipping" on every start but the first.
        tx.batch_execute("SET LOCAL client_min_messages = warning").await.map_err(backend)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS scimd_migrations (version bigint PRIMARY KEY, applied_at timestamptz NOT NULL)",
        )
        .await
        .map_err(backend)?;
        let applied: i64 = get(
            &tx.query_one("SELECT COALESCE(max(version), 0) FROM scimd_migrations", &[]).await.map_err(backend)?,
            0,
        )?;
        let applied = usize::try_from(applied).unwrap_or(usize::MAX);
        if applied > MIGRATIONS.len() {
            return Err(StoreError::Backend(format!(
                "the database has schema version {applied}, newer than this scimd ({}); upgrade scimd",
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
            tx.batch_execute(sql).await.map_err(backend)?;
            tx.execute("INSERT INTO scimd_migrations (version, applied_at) VALUES ($1, now())", &[&(i as i64 + 1)])
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    /// Runs a `DELETE` of at most `$2` rows older than `$1` until it deletes less than a chunk:
    /// each chunk its own short transaction. Returns how many rows went.
    pub(super) async fn delete_in_chunks(&self, sql: &'static str, before: OffsetDateTime) -> Result<u64, StoreError> {
        const CHUNK: i64 = 5000;
        let mut total = 0u64;
        loop {
            let n = pg_write!(self, |tx| tx.execute(sql, &[&before, &CHUNK]).await.map_err(backend))?;
            total += n;
            if (n as i64) < CHUNK {
                return Ok(total);
            }
        }
    }
}

/// Runs a statement and reads its rows with `row`.
pub(super) async fn all<T>(
    tx: &Tx<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    row: impl Fn(&Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let rows = tx.query(sql, params).await.map_err(backend)?;
    rows.iter().map(row).collect()
}

/// Runs a statement built from a request (not cached) and reads its rows with `row`.
pub(super) async fn all_built<T>(
    tx: &Tx<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    row: impl Fn(&Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let rows = tx.uncached().query(sql, params).await.map_err(backend)?;
    rows.iter().map(row).collect()
}

/// Runs a statement for at most one row and reads it with `row`.
pub(super) async fn one<T>(
    tx: &Tx<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    row: impl Fn(&Row) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let found = tx.query_opt(sql, params).await.map_err(backend)?;
    found.as_ref().map(row).transpose()
}

/// `NotFound` when a statement changed no row.
pub(super) fn not_found_if_none(n: u64) -> Result<(), StoreError> {
    if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.client().await?.simple_query("SELECT 1").await.map_err(backend)?;
        Ok(())
    }

    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.read_one("SELECT value FROM settings WHERE key = $1", &[&key], |r| get(r, 0)).await
    }

    async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        pg_write!(self, |tx| {
            tx.execute(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&key, &value],
            )
            .await
            .map_err(backend)?;
            Ok(())
        })
    }

    async fn set_setting_once(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        pg_write!(self, |tx| {
            let n = tx
                .execute(
                    "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                    &[&key, &value],
                )
                .await
                .map_err(backend)?;
            Ok(n > 0)
        })
    }

    async fn hold_lease(&self, job: &str, holder: &str, term: Duration) -> Result<bool, StoreError> {
        let term = term.as_secs_f64();
        let n = self
            .client()
            .await?
            .execute(
                "INSERT INTO job_leases (job, holder, expires_at) VALUES ($1, $2, now() + make_interval(secs => $3))
                 ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
                 WHERE job_leases.holder = excluded.holder OR job_leases.expires_at < now()",
                &[&job, &holder, &term],
            )
            .await
            .map_err(backend)?;
        Ok(n > 0)
    }

    async fn insert_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        let t = tenant;
        pg_write!(self, |tx| {
            tx.execute(
                "INSERT INTO tenants (id, name, token_lifetime_days, created_at) VALUES ($1, $2, $3, $4)",
                &[&t.id, &t.name, &i64::from(t.token_lifetime_days), &t.created_at],
            )
            .await
            .map_err(conflict_or_backend)?;
            Ok(())
        })
    }

    async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        self.read_all(
            "SELECT id, name, token_lifetime_days, created_at FROM tenants ORDER BY created_at, id",
            &[],
            tenant_from_row,
        )
        .await
    }

    async fn tenant(&self, id: &str) -> Result<Option<Tenant>, StoreError> {
        self.read_one(
            "SELECT id, name, token_lifetime_days, created_at FROM tenants WHERE id = $1",
            &[&id],
            tenant_from_row,
        )
        .await
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>, StoreError> {
        self.read_one(
            "SELECT id, name, token_lifetime_days, created_at FROM tenants WHERE name = $1",
            &[&name],
            tenant_from_row,
        )
        .await
    }

    async fn insert_token(&self, token: &TokenRecord, retire_others_at: OffsetDateTime) -> Result<(), StoreError> {
        let t = token;
        pg_write!(self, |tx| {
            tx.execute(
                "UPDATE tokens SET revoked_at = $2, revoke_reason = 'rotated'
                 WHERE tenant_id = $1 AND (revoked_at IS NULL OR revoked_at > $2) AND expires_at > $2",
                &[&t.tenant_id, &retire_others_at],
            )
            .await
            .map_err(backend)?;
            tx.execute(
                "INSERT INTO tokens (id, tenant_id, prefix, hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&t.id, &t.tenant_id, &t.prefix, &t.hash, &t.created_at, &t.expires_at],
            )
            .await
            .map_err(conflict_or_backend)?;
            Ok(())
        })
    }

    async fn token_by_prefix(&self, prefix: &str) -> Result<Option<TokenRecord>, StoreError> {
        let sql = format!("SELECT {} FROM tokens WHERE prefix = $1", rows::TOKEN_COLUMNS);
        self.read_one(&sql, &[&prefix], token_from_row).await
    }

    async fn tokens(&self, tenant: &str) -> Result<Vec<TokenRecord>, StoreError> {
        let sql = format!(
            "SELECT {} FROM tokens WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC",
            rows::TOKEN_COLUMNS
        );
        self.read_all(&sql, &[&tenant], token_from_row).await
    }

    async fn revoke_token(
        &self,
        tenant: &str,
        token_id: &str,
        at: OffsetDateTime,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let sql = format!("SELECT {} FROM tokens WHERE tenant_id = $1 AND id = $2", rows::TOKEN_COLUMNS);
        pg_write!(self, |tx| {
            tx.execute(
                "UPDATE tokens SET revoked_at = $3, revoke_reason = 'revoked'
                 WHERE tenant_id = $1 AND id = $2 AND (revoked_at IS NULL OR revoked_at > $3)",
                &[&tenant, &token_id, &at],
            )
            .await
            .map_err(backend)?;
            one(tx, &sql, &[&tenant, &token_id], token_from_row).await
        })
    }

    async fn touch_token(&self, token_id: &str, at: OffsetDateTime, agent: Option<&str>) -> Result<(), StoreError> {
        // Only a note of when the token was last used: one statement, atomic on its own, and
        // serialized with nothing.
        self.client()
            .await?
            .execute(
                "UPDATE tokens SET last_used_at = $2, last_used_agent = $3 WHERE id = $1",
                &[&token_id, &at, &agent],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn insert_resource(&self, tenant: &str, res: &StoredResource) -> Result<(), StoreError> {
        pg_write!(self, |tx| insert_row(tx, tenant, res).await)
    }

    async fn resource(
        &self,
        tenant: &str,
        kind: ResourceKind,
        id: &str,
        relations: bool,
    ) -> Result<Option<StoredResource>, StoreError> {
        // Both statements go out together on one connection (pipelined), outside a transaction:
        // one round trip instead of four (`BEGIN`, two statements, `COMMIT`). They are two
        // snapshots, so a membership that changes between them shows as it is just after the
        // read, as it would a moment later; the resource's own columns are one snapshot.
        let sql = format!(
            "SELECT {RESOURCE_COLUMNS} FROM resources r WHERE r.tenant_id = $1 AND r.id = $2 AND r.kind = $3 AND {VISIBLE}"
        );
        let client = self.client().await?;
        let statement = client.prepare_cached(&sql).await.map_err(backend)?;
        let kind_name = kind.name();
        let params: [&(dyn ToSql + Sync); 3] = [&tenant, &id, &kind_name];
        let row = client.query_opt(&statement, &params);
        let owners = [id];
        let owners = owners.as_slice();
        let (row, relation_rows) = if relations {
            let statement = client.prepare_cached(&rows::owners_relations_sql(kind)).await.map_err(backend)?;
            let related_params: [&(dyn ToSql + Sync); 2] = [&tenant, &owners];
            let related = client.query(&statement, &related_params);
            tokio::try_join!(row, related).map_err(backend)?
        } else {
            (row.await.map_err(backend)?, Vec::new())
        };
        let Some(row) = row else { return Ok(None) };
        let mut list = [resource_from_row(&row)?];
        if relations {
            let rows = relation_rows.iter().map(rows::relation_from_row).collect::<Result<Vec<_>, _>>()?;
            attach_relations(kind, &mut list, rows);
        }
        let [res] = list;
        Ok(Some(res))
    }

    async fn load_relations(&self, tenant: &str, res: &mut StoredResource) -> Result<(), StoreError> {
        let kind = res.kind;
        pg_read!(self, |tx| rows::load_relations(tx, tenant, kind, std::slice::from_mut(res)).await)
    }

    async fn update_resource(
        &self,
        tenant: &str,
        res: &StoredResource,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        pg_write!(self, |tx| update_row(tx, tenant, res, expected_version).await)
    }

    async fn delete_resource(
        &self,
        tenant: &str,
        kind: ResourceKind,
        id: &str,
        expected_version: Option<u64>,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        pg_write!(self, |tx| delete_row(tx, tenant, kind, id, expected_version, at).await)
    }

    async fn query(
        &self,
        tenant: &str,
        kind: ResourceKind,
        query: &ListQuery,
        relations: bool,
    ) -> Result<Page, StoreError> {
        pg_read!(self, |tx| list::run_query(tx, tenant, kind, query, relations).await)
    }

    async fn resource_kinds(&self, tenant: &str, ids: &[String]) -> Result<HashMap<String, ResourceKind>, StoreError> {
        let sql =
            format!("SELECT r.id, r.kind FROM resources r WHERE r.tenant_id = $1 AND {VISIBLE} AND r.id = ANY($2)");
        pg_read!(self, |tx| {
            let rows = all(tx, &sql, &[&tenant, &ids], |r| Ok((get::<String>(r, 0)?, get::<String>(r, 1)?))).await?;
            Ok(rows.into_iter().filter_map(|(id, kind)| Some((id, ResourceKind::from_name(&kind)?))).collect())
        })
    }

    async fn provision(&self, tenant: &str, steps: &[Step], write: &ResourceWrite) -> Result<(), ProvisionError> {
        pg_write!(self, ProvisionError, |tx| provisioning::provision(tx, tenant, steps, write).await)
    }

    async fn find_user(
        &self,
        tenant: &str,
        user_name: &str,
        email: Option<&str>,
    ) -> Result<Option<StoredResource>, StoreError> {
        let name = crate::columns::fold(user_name);
        pg_read!(self, |tx| provisioning::find_user(tx, tenant, &name, email).await)
    }

    async fn any_user(&self, tenant: &str, id: &str) -> Result<Option<StoredResource>, StoreError> {
        let sql = format!(
            "SELECT {RESOURCE_COLUMNS} FROM resources r WHERE r.tenant_id = $1 AND r.id = $2 AND r.kind = 'User'"
        );
        self.read_one(&sql, &[&tenant, &id], resource_from_row).await
    }

    async fn pending_users(&self, tenant: &str, offset: u32, limit: u32) -> Result<Vec<StoredResource>, StoreError> {
        let sql = format!(
            "SELECT {RESOURCE_COLUMNS} FROM resources r WHERE r.tenant_id = $1 AND r.state = 'pending'
             ORDER BY r.state_since, r.seq LIMIT $2 OFFSET $3"
        );
        let (limit, offset) = (i64::from(limit), i64::from(offset));
        self.read_all(&sql, &[&tenant, &limit, &offset], resource_from_row).await
    }

    async fn tenants_with_pending(&self) -> Result<Vec<String>, StoreError> {
        self.read_all("SELECT DISTINCT tenant_id FROM resources WHERE state = 'pending'", &[], |r| get(r, 0)).await
    }

    async fn search_users(&self, tenant: &str, search: &UserSearch) -> Result<(u64, Vec<StoredResource>), StoreError> {
        let s = search;
        let text =
            s.text.as_ref().map(|t| format!("%{}%", t.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")));
        let state = s.state.map(|st| st.as_str());
        let filter = "r.tenant_id = $1 AND r.kind = 'User'
             AND ($2::text IS NULL OR r.user_name_fold LIKE $2 OR r.display_name_fold LIKE $2
                  OR lower(r.external_id) LIKE $2 OR r.id = $3)
             AND ($4::text IS NULL OR r.state = $4) AND ($5::text IS NULL OR r.profile_id = $5)
             AND ($6::text IS NULL OR r.region_id = $6)";
        let count_sql = format!("SELECT count(*) FROM resources r WHERE {filter}");
        let page_sql =
            format!("SELECT {RESOURCE_COLUMNS} FROM resources r WHERE {filter} ORDER BY r.seq DESC LIMIT $7 OFFSET $8");
        let (limit, offset) = (i64::from(s.limit), i64::from(s.offset));
        pg_read!(self, |tx| {
            let args: [&(dyn ToSql + Sync); 6] = [&tenant, &text, &s.text, &state, &s.profile_id, &s.region_id];
            let total: i64 = get(&tx.query_one(&count_sql, &args).await.map_err(backend)?, 0)?;
            let page = all(
                tx,
                &page_sql,
                &[&tenant, &text, &s.text, &state, &s.profile_id, &s.region_id, &limit, &offset],
                resource_from_row,
            )
            .await?;
            Ok((total.max(0) as u64, page))
        })
    }

    async fn email_claim(&self, email: &str) -> Result<Option<EmailClaim>, StoreError> {
        self.read_one(
            "SELECT email, tenant_id, user_id, claimed_at FROM email_claims WHERE email = $1",
            &[&email],
            |r| {
                Ok(EmailClaim { email: get(r, 0)?, tenant_id: get(r, 1)?, user_id: get(r, 2)?, claimed_at: get(r, 3)? })
            },
        )
        .await
    }

    async fn release_email_claim(&self, claim: &EmailClaim) -> Result<bool, StoreError> {
        let c = claim;
        pg_write!(self, |tx| {
            let n = tx
                .execute(
                    "DELETE FROM email_claims WHERE email = $1 AND tenant_id = $2 AND user_id = $3
                     AND NOT EXISTS (SELECT 1 FROM resources WHERE tenant_id = $2 AND id = $3 AND claimed_email = $1)",
                    &[&c.email, &c.tenant_id, &c.user_id],
                )
                .await
                .map_err(backend)?;
            Ok(n > 0)
        })
    }

    async fn insert_region(&self, region: &Region) -> Result<(), StoreError> {
        pg_write!(self, |tx| provisioning::upsert_region(tx, region, true).await)
    }

    async fn update_region(&self, region: &Region) -> Result<(), StoreError> {
        pg_write!(self, |tx| provisioning::upsert_region(tx, region, false).await)
    }

    async fn regions(&self) -> Result<Vec<Region>, StoreError> {
        let sql = format!("SELECT {} FROM regions ORDER BY name COLLATE \"C\"", provisioning::REGION_COLUMNS);
        self.read_all(&sql, &[], provisioning::region_from_row).await
    }

    async fn region(&self, id: &str) -> Result<Option<Region>, StoreError> {
        let sql = format!("SELECT {} FROM regions WHERE id = $1", provisioning::REGION_COLUMNS);
        self.read_one(&sql, &[&id], provisioning::region_from_row).await
    }

    async fn tenant_regions(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        self.read_all(
            "SELECT region_id FROM tenant_regions WHERE tenant_id = $1 ORDER BY region_id COLLATE \"C\"",
            &[&tenant],
            |r| get(r, 0),
        )
        .await
    }

    async fn set_tenant_regions(&self, tenant: &str, region_ids: &[String]) -> Result<(), StoreError> {
        pg_write!(self, |tx| {
            tx.execute("DELETE FROM tenant_regions WHERE tenant_id = $1", &[&tenant]).await.map_err(backend)?;
            for id in region_ids {
                tx.execute(
                    "INSERT INTO tenant_regions (tenant_id, region_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[&tenant, id],
                )
                .await
                .map_err(conflict_or_backend)?;
            }
            Ok(())
        })
    }

    async fn tenant_settings(&self, tenant: &str) -> Result<TenantSettings, StoreError> {
        pg_read!(self, |tx| provisioning::settings(tx, tenant).await)
    }

    async fn set_tenant_settings(&self, tenant: &str, settings: &TenantSettings) -> Result<(), StoreError> {
        let text = serde_json::to_string(settings).map_err(|e| StoreError::Backend(e.to_string()))?;
        pg_write!(self, |tx| {
            let n = tx
                .execute("UPDATE tenants SET settings = $2::text::json WHERE id = $1", &[&tenant, &text])
                .await
                .map_err(backend)?;
            not_found_if_none(n)
        })
    }

    async fn insert_profile(&self, profile: &Profile) -> Result<(), StoreError> {
        pg_write!(self, |tx| provisioning::insert_profile(tx, profile, OffsetDateTime::now_utc()).await)
    }

    async fn update_profile(&self, profile: &Profile) -> Result<(), StoreError> {
        pg_write!(self, |tx| provisioning::update_profile(tx, profile).await)
    }

    async fn delete_profile(&self, tenant: &str, id: &str) -> Result<(), StoreError> {
        pg_write!(self, |tx| {
            let in_use = [
                ("SELECT 1 FROM mappings WHERE tenant_id = $1 AND profile_id = $2 LIMIT 1", "mappings"),
                ("SELECT 1 FROM resources WHERE tenant_id = $1 AND profile_id = $2 LIMIT 1", "users"),
            ];
            for (sql, attribute) in in_use {
                if tx.query_opt(sql, &[&tenant, &id]).await.map_err(backend)?.is_some() {
                    return Err(StoreError::Conflict { attribute: attribute.into() });
                }
            }
            let n = tx
                .execute("DELETE FROM profiles WHERE tenant_id = $1 AND id = $2", &[&tenant, &id])
                .await
                .map_err(backend)?;
            not_found_if_none(n)
        })
    }

    async fn profiles(&self, tenant: &str) -> Result<Vec<Profile>, StoreError> {
        let sql = format!(
            "SELECT {} FROM profiles WHERE tenant_id = $1 ORDER BY name COLLATE \"C\"",
            provisioning::PROFILE_COLUMNS
        );
        self.read_all(&sql, &[&tenant], provisioning::profile_from_row).await
    }

    async fn profile(&self, tenant: &str, id: &str) -> Result<Option<Profile>, StoreError> {
        let sql = format!("SELECT {} FROM profiles WHERE tenant_id = $1 AND id = $2", provisioning::PROFILE_COLUMNS);
        self.read_one(&sql, &[&tenant, &id], provisioning::profile_from_row).await
    }

    async fn insert_mapping(&self, mapping: &Mapping) -> Result<(), StoreError> {
        pg_write!(self, |tx| provisioning::write_mapping(tx, mapping, true, OffsetDateTime::now_utc()).await)
    }

    async fn update_mapping(&self, mapping: &Mapping) -> Result<(), StoreError> {
        pg_write!(self, |tx| provisioning::write_mapping(tx, mapping, false, OffsetDateTime::now_utc()).await)
    }

    async fn delete_mapping(&self, tenant: &str, id: &str) -> Result<(), StoreError> {
        pg_write!(self, |tx| {
            let n = tx
                .execute("DELETE FROM mappings WHERE tenant_id = $1 AND id = $2", &[&tenant, &id])
                .await
                .map_err(backend)?;
            not_found_if_none(n)
        })
    }

    async fn mappings(&self, tenant: &str) -> Result<Vec<Mapping>, StoreError> {
        let sql = format!(
            "SELECT {} FROM mappings WHERE tenant_id = $1 ORDER BY priority, created_at, id COLLATE \"C\"",
            provisioning::MAPPING_COLUMNS
        );
        self.read_all(&sql, &[&tenant], provisioning::mapping_from_row).await
    }
}

/// Owned parameter values, bound by reference.
type Values = Vec<Box<dyn ToSql + Sync + Send>>;

/// The values of [`WRITTEN`] for a resource, as PostgreSQL binds them.
fn written_values(res: &StoredResource, cols: &IndexedColumns, p: PlacementColumns) -> Values {
    vec![
        Box::new(cols.user_name.clone()),
        Box::new(cols.user_name_fold.clone()),
        Box::new(cols.external_id.clone()),
        Box::new(cols.display_name.clone()),
        Box::new(cols.display_name_fold.clone()),
        Box::new(cols.active),
        Box::new(res.modified),
        Box::new(res.version as i64),
        Box::new(cols.doc.clone()),
        Box::new(p.state),
        Box::new(p.since),
        Box::new(p.profile_id),
        Box::new(p.region_id),
        Box::new(p.pending_cause),
        Box::new(p.preserved_by),
        Box::new(p.managed_by),
        Box::new(p.claimed_email),
    ]
}

/// The placeholder of a written column at position `n`: the document is sent as text.
fn written_placeholder(column: &str, n: usize) -> String {
    if column == "doc" { format!("${n}::text::json") } else { format!("${n}") }
}

/// The values as the parameter list a statement takes.
pub(super) fn refs(values: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v.as_ref() as &(dyn ToSql + Sync)).collect()
}

/// Inserts a resource row with its emails and memberships.
pub(super) async fn insert_row(tx: &Tx<'_>, tenant: &str, res: &StoredResource) -> Result<(), StoreError> {
    let cols = IndexedColumns::of(res);
    let placeholders: Vec<String> = WRITTEN.iter().enumerate().map(|(i, c)| written_placeholder(c, i + 5)).collect();
    let sql = format!(
        "INSERT INTO resources (tenant_id, kind, id, created, {}) VALUES ($1, $2, $3, $4, {}) RETURNING seq",
        WRITTEN.join(", "),
        placeholders.join(", ")
    );
    let mut values: Values = vec![
        Box::new(tenant.to_owned()),
        Box::new(res.kind.name().to_owned()),
        Box::new(res.id.clone()),
        Box::new(res.created),
    ];
    values.extend(written_values(res, &cols, PlacementColumns::of(res.placement.as_ref())));
    let row = tx.query_one(&sql, &refs(&values)).await.map_err(conflict_or_backend)?;
    let seq: i64 = get(&row, 0)?;
    write_relations(tx, tenant, seq, res, &cols, false).await
}

/// Replaces a resource row whose version is `expected_version`.
pub(super) async fn update_row(
    tx: &Tx<'_>,
    tenant: &str,
    res: &StoredResource,
    expected_version: u64,
) -> Result<(), StoreError> {
    let cols = IndexedColumns::of(res);
    let current = tx
        .query_opt(
            "SELECT seq, version FROM resources WHERE tenant_id = $1 AND id = $2 AND kind = $3",
            &[&tenant, &res.id, &res.kind.name()],
        )
        .await
        .map_err(backend)?;
    let Some(current) = current else { return Err(StoreError::NotFound) };
    let (seq, version): (i64, i64) = (get(&current, 0)?, get(&current, 1)?);
    if version as u64 != expected_version {
        return Err(StoreError::VersionMismatch);
    }
    let sets: Vec<String> =
        WRITTEN.iter().enumerate().map(|(i, c)| format!("{c} = {}", written_placeholder(c, i + 1))).collect();
    let sql = format!("UPDATE resources SET {} WHERE seq = ${}", sets.join(", "), WRITTEN.len() + 1);
    let mut values = written_values(res, &cols, PlacementColumns::of(res.placement.as_ref()));
    values.push(Box::new(seq));
    tx.execute(&sql, &refs(&values)).await.map_err(conflict_or_backend)?;
    write_relations(tx, tenant, seq, res, &cols, true).await
}

/// Writes what a resource row carries in tables of their own: a User's emails, a Group's members.
async fn write_relations(
    tx: &Tx<'_>,
    tenant: &str,
    seq: i64,
    res: &StoredResource,
    cols: &IndexedColumns,
    replace: bool,
) -> Result<(), StoreError> {
    if replace {
        tx.execute("DELETE FROM resource_emails WHERE resource_seq = $1", &[&seq]).await.map_err(backend)?;
    }
    for e in &cols.emails {
        tx.execute(
            "INSERT INTO resource_emails (tenant_id, resource_seq, value_fold, type_fold, is_primary)
             VALUES ($1, $2, $3, $4, $5)",
            &[&tenant, &seq, &e.value_fold, &e.type_fold, &e.primary],
        )
        .await
        .map_err(backend)?;
    }
    if res.kind == ResourceKind::Group {
        write_members(tx, tenant, &res.id, &cols.members, replace, res.modified).await?;
    }
    Ok(())
}

/// Deletes a resource row; groups that held it and users it held change with it.
pub(super) async fn delete_row(
    tx: &Tx<'_>,
    tenant: &str,
    kind: ResourceKind,
    id: &str,
    expected_version: Option<u64>,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    let version = tx
        .query_opt(
            "SELECT version FROM resources WHERE tenant_id = $1 AND id = $2 AND kind = $3",
            &[&tenant, &id, &kind.name()],
        )
        .await
        .map_err(backend)?;
    let Some(version) = version else { return Err(StoreError::NotFound) };
    let version: i64 = get(&version, 0)?;
    if expected_version.is_some_and(|v| v != version as u64) {
        return Err(StoreError::VersionMismatch);
    }
    // The groups it was a member of lose a member, and the users in it (if a group) lose a
    // group: each of them changes, so that their ETags do.
    tx.execute(
        "UPDATE resources SET version = version + 1, modified = GREATEST(modified, $3)
         WHERE tenant_id = $1 AND id IN (
             SELECT group_id FROM group_members WHERE tenant_id = $1 AND member_id = $2
             UNION SELECT member_id FROM group_members
                   WHERE tenant_id = $1 AND group_id = $2 AND member_kind = 'User')",
        &[&tenant, &id, &at],
    )
    .await
    .map_err(backend)?;
    // Memberships on either side go with it (ON DELETE CASCADE).
    tx.execute("DELETE FROM resources WHERE tenant_id = $1 AND id = $2", &[&tenant, &id]).await.map_err(backend)?;
    Ok(())
}

/// Writes a group's membership; on replace, only the difference, so that adding one member to a
/// large group costs one row, not the whole list.
async fn write_members(
    tx: &Tx<'_>,
    tenant: &str,
    group_id: &str,
    members: &[Member],
    replace: bool,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    // Each current member with the display a reader sees: the one stored, else the member's name.
    let mut existing: HashMap<String, Option<String>> = HashMap::new();
    if replace {
        let rows = tx
            .query(
                "SELECT m.member_id, COALESCE(m.display, r.display_name, r.user_name)
                 FROM group_members m LEFT JOIN resources r ON r.tenant_id = m.tenant_id AND r.id = m.member_id
                 WHERE m.tenant_id = $1 AND m.group_id = $2",
                &[&tenant, &group_id],
            )
            .await
            .map_err(backend)?;
        for row in &rows {
            existing.insert(get(row, 0)?, get(row, 1)?);
        }
    }
    let wanted: HashSet<&str> = members.iter().map(|m| m.id.as_str()).collect();
    // A user's `groups` is part of the user: joining or leaving changes its version.
    let touch = "UPDATE resources SET version = version + 1, modified = GREATEST(modified, $3)
                 WHERE tenant_id = $1 AND id = $2 AND kind = 'User'";
    for gone in existing.keys().filter(|id| !wanted.contains(id.as_str())) {
        tx.execute(
            "DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2 AND member_id = $3",
            &[&tenant, &group_id, gone],
        )
        .await
        .map_err(backend)?;
        tx.execute(touch, &[&tenant, gone, &at]).await.map_err(backend)?;
    }
    for m in members {
        // A member read back with its display and written unchanged is left alone, so that a
        // derived display stays derived and one PATCH touches only the members it changes.
        if existing.get(&m.id) == Some(&m.display) {
            continue;
        }
        tx.execute(
            "INSERT INTO group_members (tenant_id, group_id, member_id, member_kind, display) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tenant_id, group_id, member_id) DO UPDATE SET display = excluded.display",
            &[&tenant, &group_id, &m.id, &m.kind.name(), &m.display],
        )
        .await
        .map_err(conflict_or_backend)?;
        if !existing.contains_key(&m.id) {
            tx.execute(touch, &[&tenant, &m.id, &at]).await.map_err(backend)?;
        }
    }
    Ok(())
}
