//! Moving a deployment up from the embedded database to PostgreSQL: every table copied row for
//! row (ids, token and password hashes, timestamps, the provisioning log), in one PostgreSQL
//! transaction that also verifies the counts, so a copy is whole or absent.
//!
//! Safe to run again: into an empty database it copies; over a copy of its own that no scimd
//! node has written to since, it copies afresh (picking up what changed in the source); over
//! anything else it refuses, so that it can never overwrite writes a node acknowledged.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use bytes::BytesMut;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags};
use scimd_domain::clock::parse_time;
use time::OffsetDateTime;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use crate::postgres::PostgresStore;
use crate::sqlite::{DB_FILE, SqliteStore};

/// Every table of a deployment, parents before children. `job_leases` is left out on purpose:
/// it holds which live node runs which background job, not the deployment's data.
const TABLES: &[&str] = &[
    "settings",
    "tenants",
    "regions",
    "tokens",
    "tenant_regions",
    "profiles",
    "mappings",
    "resources",
    "resource_emails",
    "group_members",
    "email_claims",
    "events",
    "webhooks",
    "outbox",
    "deliveries",
    "warning_state",
    "accounts",
    "sessions",
    "api_keys",
    "audit_log",
];

/// Tables scimd keeps that are not copied (see [`TABLES`]): leases, and SQLite's counts of
/// visible resources (kept by its triggers; PostgreSQL counts instead).
const NOT_COPIED: &[&str] = &["job_leases", "resource_counts"];

/// Identity columns whose sequence must continue after the copied ids.
const IDENTITIES: &[(&str, &str)] = &[("resources", "seq"), ("events", "id"), ("outbox", "id"), ("audit_log", "id")];

/// The setting that marks a database as a copy made by this command, and what it held then.
const MARKER: &str = "migrate_data.copy";

/// Rows sent from the SQLite reader to the PostgreSQL writer at a time.
const BATCH: usize = 1000;

/// Why a copy did not happen; the target is unchanged in every case.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The source directory holds no scimd database, or it cannot be read.
    #[error("source: {0}")]
    Source(String),
    /// The target holds a deployment this command did not copy there.
    #[error(
        "the target database already holds a scimd deployment ({0}) that this command did not copy there; \
         copy into an empty database or schema (append ?options=-csearch_path%3D<schema> to the URL), \
         or drop what it holds first"
    )]
    TargetInUse(String),
    /// The target is an earlier copy, but a scimd node has written to it since.
    #[error(
        "the target database is an earlier copy of {0}, but it has been written to since ({1}), most likely by a \
         scimd node serving from it; copying again would overwrite those writes"
    )]
    TargetChanged(String, String),
    /// The two databases' tables do not match (one of them is of another scimd version).
    #[error("the schemas differ: {0}; run the same scimd version on both")]
    Schema(String),
    /// After the copy, a table held another number of rows than the source.
    #[error("verification failed: {table} has {in_target} rows in PostgreSQL but {in_source} in the source")]
    Mismatch {
        /// The table.
        table: String,
        /// Rows in the source.
        in_source: u64,
        /// Rows in the target.
        in_target: u64,
    },
    /// PostgreSQL or SQLite failed.
    #[error("{0}")]
    Backend(String),
}

/// How far the copy has come, for a progress bar.
#[derive(Debug, Clone)]
pub enum Progress {
    /// The source was read in one snapshot: this many rows will be copied.
    Counted {
        /// Rows in all tables.
        rows: u64,
    },
    /// A table's copy begins.
    Table {
        /// The table.
        name: &'static str,
        /// Its rows.
        rows: u64,
    },
    /// This many more rows were copied.
    Copied(u64),
}

/// What a finished copy holds.
#[derive(Debug, Clone)]
pub struct Report {
    /// Each table with its row count, the same in the source and the target.
    pub tables: Vec<(&'static str, u64)>,
    /// Whether an earlier, unused copy was replaced.
    pub replaced_earlier_copy: bool,
}

/// Copies the deployment in `data_dir` to the PostgreSQL database at `to_url` (migrating both
/// to this version's schema first) and verifies every table's count, reporting through
/// `progress`. The source is read in one snapshot, so the copy is consistent even while a
/// server still writes to it; writes after that snapshot are not in it.
pub async fn migrate_data(
    data_dir: &Path,
    to_url: &str,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Report, MigrateError> {
    let db_file = data_dir.join(DB_FILE);
    if !db_file.is_file() {
        return Err(MigrateError::Source(format!("no scimd database at {}", db_file.display())));
    }
    let source_name = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_owned()).display().to_string();
    let target = PostgresStore::connect(to_url, 1).await.map_err(|e| MigrateError::Backend(e.to_string()))?;
    let mut client = target.client().await.map_err(|e| MigrateError::Backend(e.to_string()))?;

    let tx = client.transaction().await.map_err(pg)?;
    // A large copy may outlast a statement timeout the server or the role sets.
    tx.batch_execute("SET LOCAL statement_timeout = 0").await.map_err(pg)?;
    // Nodes serving from the target wait until the copy commits (or fail after the timeout):
    // what the emptiness check below sees stays true until then.
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = '10s'; LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
        TABLES.join(", ")
    ))
    .await
    .map_err(|e| MigrateError::Backend(format!("cannot lock the target's tables (is a scimd node using it?): {e}")))?;
    let columns = target_columns(&tx).await?;
    let mut reader = SourceReader::start(db_file, columns.iter().map(|(t, c)| (*t, c.names.clone())).collect())?;

    let replaced_earlier_copy = prepare_target(&tx).await?;
    let source_counts = reader.counts().await?;
    progress(Progress::Counted { rows: source_counts.iter().sum() });

    for ((table, columns), &rows) in columns.iter().zip(&source_counts) {
        progress(Progress::Table { name: table, rows });
        copy_table(&tx, table, columns, &mut reader, progress).await?;
    }
    let sequences = reader.finish().await?;
    continue_identities(&tx, &sequences).await?;

    let target_counts = table_counts(&tx).await?;
    for ((table, &source), &target) in TABLES.iter().zip(&source_counts).zip(&target_counts) {
        if source != target {
            return Err(MigrateError::Mismatch { table: (*table).to_owned(), in_source: source, in_target: target });
        }
    }
    mark_copy(&tx, &source_name, &target_counts).await?;
    tx.commit().await.map_err(pg)?;
    Ok(Report { tables: TABLES.iter().copied().zip(source_counts).collect(), replaced_earlier_copy })
}

fn pg(e: tokio_postgres::Error) -> MigrateError {
    MigrateError::Backend(format!("PostgreSQL: {e}"))
}

fn sqlite(e: rusqlite::Error) -> MigrateError {
    MigrateError::Source(e.to_string())
}

/// A target table's columns, in its order, with their PostgreSQL types.
struct Columns {
    names: Vec<String>,
    types: Vec<Type>,
}

async fn target_columns(tx: &tokio_postgres::Transaction<'_>) -> Result<Vec<(&'static str, Columns)>, MigrateError> {
    let mut all = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let statement = tx.prepare(&format!("SELECT * FROM {table} LIMIT 0")).await.map_err(pg)?;
        let names = statement.columns().iter().map(|c| c.name().to_owned()).collect();
        let types = statement.columns().iter().map(|c| c.type_().clone()).collect();
        all.push((*table, Columns { names, types }));
    }
    Ok(all)
}

async fn table_counts(tx: &tokio_postgres::Transaction<'_>) -> Result<Vec<u64>, MigrateError> {
    let mut counts = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let n: i64 = tx.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.map_err(pg)?.get(0);
        counts.push(n.unsigned_abs());
    }
    Ok(counts)
}

/// What [`MARKER`] records: the source, the transaction that wrote the copy (every row it
/// wrote carries that transaction id as `xmin`) and the counts it left.
#[derive(serde::Serialize, serde::Deserialize)]
struct Marker {
    source: String,
    transaction: String,
    at: String,
    counts: BTreeMap<String, u64>,
}

/// Empties the target if it holds nothing but an unused copy of ours; returns whether it did.
async fn prepare_target(tx: &tokio_postgres::Transaction<'_>) -> Result<bool, MigrateError> {
    let counts = table_counts(tx).await?;
    if counts.iter().all(|n| *n == 0) {
        return Ok(false);
    }
    let marker = tx
        .query_opt("SELECT value FROM settings WHERE key = $1", &[&MARKER])
        .await
        .map_err(pg)?
        .and_then(|row| serde_json::from_str::<Marker>(row.get(0)).ok());
    let Some(marker) = marker else {
        let held: Vec<String> =
            TABLES.iter().zip(&counts).filter(|(_, n)| **n > 0).map(|(t, n)| format!("{t}: {n} rows")).collect();
        return Err(MigrateError::TargetInUse(held.join(", ")));
    };
    let mut changes = Vec::new();
    for (table, now) in TABLES.iter().zip(&counts) {
        let then = marker.counts.get(*table).copied().unwrap_or(0);
        if then != *now {
            changes.push(format!("{table}: {then} rows then, {now} now"));
            continue;
        }
        let sql = format!("SELECT count(*) FROM {table} WHERE xmin::text <> $1");
        let rewritten: i64 = tx.query_one(&sql, &[&marker.transaction]).await.map_err(pg)?.get(0);
        if rewritten > 0 {
            changes.push(format!("{table}: {rewritten} rows written since"));
        }
    }
    if !changes.is_empty() {
        let copy = format!("{} made {}", marker.source, marker.at);
        return Err(MigrateError::TargetChanged(copy, changes.join("; ")));
    }
    tx.batch_execute(&format!("TRUNCATE {} RESTART IDENTITY", TABLES.join(", "))).await.map_err(pg)?;
    Ok(true)
}

async fn mark_copy(
    tx: &tokio_postgres::Transaction<'_>,
    source_name: &str,
    counts: &[u64],
) -> Result<(), MigrateError> {
    let transaction: String = tx.query_one("SELECT (txid_current() % 4294967296)::text", &[]).await.map_err(pg)?.get(0);
    let mut counts: BTreeMap<String, u64> =
        TABLES.iter().map(|t| (*t).to_owned()).zip(counts.iter().copied()).collect();
    // The marker is a settings row of its own.
    *counts.entry("settings".to_owned()).or_default() += 1;
    let at = scimd_domain::clock::format_time(OffsetDateTime::now_utc());
    let marker = Marker { source: source_name.to_owned(), transaction, at, counts };
    let value = serde_json::to_string(&marker).map_err(|e| MigrateError::Backend(e.to_string()))?;
    tx.execute("INSERT INTO settings (key, value) VALUES ($1, $2)", &[&MARKER, &value]).await.map_err(pg)?;
    Ok(())
}

async fn copy_table(
    tx: &tokio_postgres::Transaction<'_>,
    table: &'static str,
    columns: &Columns,
    reader: &mut SourceReader,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<(), MigrateError> {
    let sql = format!("COPY {table} ({}) FROM STDIN (FORMAT binary)", columns.names.join(", "));
    let sink = tx.copy_in(&sql).await.map_err(pg)?;
    let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &columns.types));
    while let Some(rows) = reader.next_batch().await? {
        for row in &rows {
            let cells = row
                .iter()
                .zip(&columns.types)
                .zip(&columns.names)
                .map(|((value, ty), column)| Cell::convert(value, ty).map_err(|e| where_(table, column, &e)))
                .collect::<Result<Vec<_>, _>>()?;
            let refs: Vec<&(dyn ToSql + Sync)> = cells.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
            writer.as_mut().write(&refs).await.map_err(|e| MigrateError::Backend(format!("copying {table}: {e}")))?;
        }
        progress(Progress::Copied(rows.len() as u64));
    }
    writer.finish().await.map_err(|e| MigrateError::Backend(format!("copying {table}: {e}")))?;
    Ok(())
}

fn where_(table: &str, column: &str, problem: &str) -> MigrateError {
    MigrateError::Source(format!("{table}.{column}: {problem}"))
}

/// Sets each identity's sequence past the highest id the source ever gave out (SQLite's
/// `AUTOINCREMENT` counter included), so ids a webhook consumer has seen are never reused.
async fn continue_identities(
    tx: &tokio_postgres::Transaction<'_>,
    sqlite_sequences: &BTreeMap<String, i64>,
) -> Result<(), MigrateError> {
    for (table, column) in IDENTITIES {
        let max: i64 =
            tx.query_one(&format!("SELECT COALESCE(max({column}), 0) FROM {table}"), &[]).await.map_err(pg)?.get(0);
        let last = max.max(sqlite_sequences.get(*table).copied().unwrap_or(0));
        let sql = "SELECT setval(pg_get_serial_sequence($1, $2), GREATEST($3::bigint, 1), $3::bigint > 0)";
        tx.query_one(sql, &[table, column, &last]).await.map_err(pg)?;
    }
    Ok(())
}

/// One value on its way into a binary `COPY`, converted from what SQLite stores (text times,
/// 0/1 booleans, JSON text) to the target column's type.
#[derive(Debug)]
enum Cell {
    Null,
    Text(String),
    Integer(i64),
    Boolean(bool),
    Time(OffsetDateTime),
    /// JSON text, copied as it is stored (key order and all).
    Json(String),
}

impl Cell {
    fn convert(value: &SqlValue, ty: &Type) -> Result<Cell, String> {
        if let SqlValue::Text(t) = value
            && t.contains('\0')
        {
            return Err(format!(
                "a value holds the NUL character (U+0000), which PostgreSQL cannot store: {t:?}; remove it and copy again"
            ));
        }
        let cell = match (value, ty) {
            (SqlValue::Null, _) => Cell::Null,
            (SqlValue::Text(t), &Type::TEXT) => Cell::Text(t.clone()),
            (SqlValue::Integer(i), &Type::INT8) => Cell::Integer(*i),
            (SqlValue::Integer(i @ (0 | 1)), &Type::BOOL) => Cell::Boolean(*i == 1),
            (SqlValue::Text(t), &Type::TIMESTAMPTZ) => {
                Cell::Time(parse_time(t).ok_or_else(|| format!("{t:?} is not an RFC 3339 time"))?)
            }
            (SqlValue::Text(t), &Type::JSON) => Cell::Json(t.clone()),
            (other, ty) => return Err(format!("holds {other:?}, which has no {ty} form")),
        };
        Ok(cell)
    }
}

impl ToSql for Cell {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Cell::Null => Ok(IsNull::Yes),
            Cell::Text(t) => t.to_sql(ty, out),
            Cell::Integer(i) => i.to_sql(ty, out),
            Cell::Boolean(b) => b.to_sql(ty, out),
            Cell::Time(t) => t.to_sql(ty, out),
            Cell::Json(text) => {
                out.extend_from_slice(text.as_bytes());
                Ok(IsNull::No)
            }
        }
    }

    fn accepts(_: &Type) -> bool {
        // Each cell was made for its column's type by `Cell::convert`.
        true
    }

    to_sql_checked!();
}

/// What the SQLite reader thread sends.
enum FromSource {
    Counts(Vec<u64>),
    Rows(Vec<Vec<SqlValue>>),
    TableEnd,
    Sequences(BTreeMap<String, i64>),
    Failed(MigrateError),
}

/// Reads the source in one snapshot on a thread of its own, a batch of rows at a time, while
/// PostgreSQL takes the previous batch.
struct SourceReader {
    rows: tokio::sync::mpsc::Receiver<FromSource>,
}

impl SourceReader {
    fn start(db_file: PathBuf, tables: Vec<(&'static str, Vec<String>)>) -> Result<Self, MigrateError> {
        // Read-only: copying never changes the source (not even its schema version).
        let conn = Connection::open_with_flags(&db_file, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(sqlite)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(sqlite)?;
        if usize::try_from(version).ok() != Some(SqliteStore::SCHEMA_VERSION) {
            return Err(MigrateError::Schema(format!(
                "the source database has schema version {version} and this scimd writes version {}; start this scimd \
                 once on it (`scimd serve --data-dir …` migrates it), stop it, then copy",
                SqliteStore::SCHEMA_VERSION
            )));
        }
        check_source_tables(&conn, &tables)?;
        let (send, rows) = tokio::sync::mpsc::channel(4);
        std::thread::spawn(move || {
            if let Err(e) = read_source(&conn, &tables, &send) {
                let _ = send.blocking_send(FromSource::Failed(e));
            }
        });
        Ok(SourceReader { rows })
    }

    async fn receive(&mut self) -> Result<FromSource, MigrateError> {
        match self.rows.recv().await {
            Some(FromSource::Failed(e)) => Err(e),
            Some(message) => Ok(message),
            None => Err(MigrateError::Source("the reader stopped early".into())),
        }
    }

    async fn counts(&mut self) -> Result<Vec<u64>, MigrateError> {
        match self.receive().await? {
            FromSource::Counts(counts) => Ok(counts),
            _ => Err(MigrateError::Source("the reader sent rows before counting".into())),
        }
    }

    /// The next batch of the current table's rows; `None` at its end.
    async fn next_batch(&mut self) -> Result<Option<Vec<Vec<SqlValue>>>, MigrateError> {
        match self.receive().await? {
            FromSource::Rows(rows) => Ok(Some(rows)),
            FromSource::TableEnd => Ok(None),
            _ => Err(MigrateError::Source("the reader sent out of order".into())),
        }
    }

    async fn finish(&mut self) -> Result<BTreeMap<String, i64>, MigrateError> {
        match self.receive().await? {
            FromSource::Sequences(sequences) => Ok(sequences),
            _ => Err(MigrateError::Source("the reader sent out of order".into())),
        }
    }
}

/// The source must hold exactly the tables and columns the target has: anything else would be
/// left behind (or missing) without a word.
fn check_source_tables(conn: &Connection, tables: &[(&'static str, Vec<String>)]) -> Result<(), MigrateError> {
    let mut statement = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")
        .map_err(sqlite)?;
    let present: BTreeSet<String> =
        statement.query_map([], |r| r.get(0)).map_err(sqlite)?.collect::<Result<_, _>>().map_err(sqlite)?;
    let known: BTreeSet<String> = TABLES.iter().chain(NOT_COPIED).map(|t| (*t).to_owned()).collect();
    if let Some(extra) = present.difference(&known).next() {
        return Err(MigrateError::Schema(format!("the source has a table {extra} that the copy does not know")));
    }
    for (table, target) in tables {
        let mut statement = conn.prepare(&format!("SELECT name FROM pragma_table_info('{table}')")).map_err(sqlite)?;
        let source: BTreeSet<String> =
            statement.query_map([], |r| r.get(0)).map_err(sqlite)?.collect::<Result<_, _>>().map_err(sqlite)?;
        let target: BTreeSet<String> = target.iter().cloned().collect();
        if source != target {
            let only =
                |a: &BTreeSet<String>, b: &BTreeSet<String>| a.difference(b).cloned().collect::<Vec<_>>().join(", ");
            return Err(MigrateError::Schema(format!(
                "table {table}: only in the source [{}], only in PostgreSQL [{}]",
                only(&source, &target),
                only(&target, &source)
            )));
        }
    }
    Ok(())
}

fn read_source(
    conn: &Connection,
    tables: &[(&'static str, Vec<String>)],
    send: &tokio::sync::mpsc::Sender<FromSource>,
) -> Result<(), MigrateError> {
    let deliver = |message| send.blocking_send(message).map_err(|_| MigrateError::Source("the copy stopped".into()));
    // One read transaction: the counts, every row and the counters are one snapshot.
    conn.execute_batch("BEGIN").map_err(sqlite)?;
    let mut counts = Vec::with_capacity(tables.len());
    for (table, _) in tables {
        let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).map_err(sqlite)?;
        counts.push(n.unsigned_abs());
    }
    let sequences: BTreeMap<String, i64> = {
        let mut statement = conn.prepare("SELECT name, seq FROM sqlite_sequence").map_err(sqlite)?;
        statement
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(sqlite)?
            .collect::<Result<_, _>>()
            .map_err(sqlite)?
    };
    deliver(FromSource::Counts(counts))?;
    for (table, columns) in tables {
        let mut statement = conn.prepare(&format!("SELECT {} FROM {table}", columns.join(", "))).map_err(sqlite)?;
        let mut rows = statement.query([]).map_err(sqlite)?;
        let mut batch = Vec::with_capacity(BATCH);
        while let Some(row) = rows.next().map_err(sqlite)? {
            let values = (0..columns.len()).map(|i| row.get::<_, SqlValue>(i)).collect::<Result<Vec<_>, _>>();
            batch.push(values.map_err(sqlite)?);
            if batch.len() == BATCH {
                deliver(FromSource::Rows(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))))?;
            }
        }
        if !batch.is_empty() {
            deliver(FromSource::Rows(batch))?;
        }
        deliver(FromSource::TableEnd)?;
    }
    conn.execute_batch("COMMIT").map_err(sqlite)?;
    deliver(FromSource::Sequences(sequences))
}
