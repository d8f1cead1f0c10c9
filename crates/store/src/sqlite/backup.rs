//! Backup and restore of the embedded database.
//!
//! A backup is `VACUUM INTO` a new file: one read transaction, so the copy is the database as
//! of one moment (every write acknowledged before the backup began is in it), taken while the
//! server goes on serving (in WAL mode a reader holds up no writer). The copy is checked, flushed
//! and renamed into place, so a file at the backup's path is always a whole backup.
//!
//! A restore needs the database to itself: every process that opens the store holds a shared
//! lock on `scimd.lock` in the data directory, and a restore takes it exclusively, so it refuses
//! to run beside a server (or any other command). The database it replaces is kept beside it.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use scimd_domain::store::StoreError;

use super::{DB_FILE, MIGRATIONS, backend};

/// The lock file every process using the data directory holds shared, and a restore exclusively.
const LOCK_FILE: &str = "scimd.lock";

/// What a backup or restore holds, for its report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    /// The file written or read.
    pub file: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Tenants in it.
    pub tenants: i64,
    /// Users in it (every state).
    pub users: i64,
    /// Groups in it.
    pub groups: i64,
}

fn failed(what: &str, path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("{what} {}: {e}", path.display()))
}

/// Opens (creating it) the lock file of the data directory.
fn lock_file(data_dir: &Path) -> Result<File, StoreError> {
    let path = data_dir.join(LOCK_FILE);
    OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| failed("cannot open", &path, e))
}

/// Takes the shared lock a process holds on the data directory while it uses the database.
pub(super) fn lock_shared(data_dir: &Path) -> Result<File, StoreError> {
    let file = lock_file(data_dir)?;
    file.lock_shared().map_err(|e| failed("cannot lock", &data_dir.join(LOCK_FILE), e))?;
    Ok(file)
}

/// Writes a consistent copy of the database in `data_dir` to `to`, which must not exist.
pub fn backup(data_dir: &Path, to: &Path) -> Result<BackupSummary, StoreError> {
    let db = data_dir.join(DB_FILE);
    if !db.exists() {
        return Err(failed("there is no database to back up at", &db, "no such file"));
    }
    if to.exists() {
        return Err(failed("will not overwrite", to, "the file exists; name a new file"));
    }
    let partial = with_suffix(to, ".partial");
    let _ = std::fs::remove_file(&partial);
    let source = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| failed("cannot open", &db, e))?;
    source.busy_timeout(std::time::Duration::from_secs(30)).map_err(backend)?;
    let target = partial.to_str().ok_or_else(|| failed("cannot write", &partial, "the path is not UTF-8"))?;
    source.execute("VACUUM INTO ?1", [target]).map_err(|e| failed("cannot write the backup to", &partial, e))?;
    drop(source);
    let summary = check(&partial).inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })?;
    File::open(&partial).and_then(|f| f.sync_all()).map_err(|e| failed("cannot flush", &partial, e))?;
    std::fs::rename(&partial, to).map_err(|e| failed("cannot rename the backup to", to, e))?;
    sync_dir(to)?;
    Ok(BackupSummary { file: to.to_owned(), ..summary })
}

/// Replaces the database in `data_dir` with the backup `from`; refused while any process uses it. The
/// database it replaces is kept as `scimd.db.before-restore-<unix time>`; its path is returned.
pub fn restore(data_dir: &Path, from: &Path) -> Result<(BackupSummary, Option<PathBuf>), StoreError> {
    let summary = check(from)?;
    std::fs::create_dir_all(data_dir).map_err(|e| failed("cannot create", data_dir, e))?;
    let lock = lock_file(data_dir)?;
    lock.try_lock().map_err(|_| {
        StoreError::Backend(format!(
            "the database in {} is in use (a scimd serve or another command holds it): stop every scimd \
             process using it, then restore",
            data_dir.display()
        ))
    })?;
    let db = data_dir.join(DB_FILE);
    let incoming = with_suffix(&db, ".restoring");
    std::fs::copy(from, &incoming).map_err(|e| failed("cannot copy the backup to", &incoming, e))?;
    File::open(&incoming).and_then(|f| f.sync_all()).map_err(|e| failed("cannot flush", &incoming, e))?;
    let kept = if db.exists() {
        let stamp =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let kept = with_suffix(&db, &format!(".before-restore-{stamp}"));
        // The old database's log and index go with it: its last writes may be only in the log.
        for suffix in ["", "-wal", "-shm"] {
            let (file, aside) = (with_suffix(&db, suffix), with_suffix(&kept, suffix));
            if file.exists() {
                std::fs::rename(&file, &aside).map_err(|e| failed("cannot move aside", &file, e))?;
            }
        }
        Some(kept)
    } else {
        None
    };
    std::fs::rename(&incoming, &db).map_err(|e| failed("cannot move the backup to", &db, e))?;
    sync_dir(&db)?;
    drop(lock);
    Ok((BackupSummary { file: from.to_owned(), ..summary }, kept))
}

/// Checks that `file` is a whole scimd database this version can open, and counts what it holds.
fn check(file: &Path) -> Result<BackupSummary, StoreError> {
    let bytes = std::fs::metadata(file).map_err(|e| failed("cannot read", file, e))?.len();
    let conn = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| failed("cannot open", file, e))?;
    let not_a_backup = |e: rusqlite::Error| failed("is not a scimd database:", file, e);
    let verdict: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(not_a_backup)?;
    if verdict != "ok" {
        return Err(failed("is damaged:", file, verdict));
    }
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(not_a_backup)?;
    if version == 0 || version > MIGRATIONS.len() as i64 {
        return Err(failed(
            "is not a scimd database this version can open:",
            file,
            format!("schema version {version}, this scimd knows 1 to {}", MIGRATIONS.len()),
        ));
    }
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).map_err(not_a_backup);
    Ok(BackupSummary {
        file: file.to_owned(),
        bytes,
        tenants: count("SELECT COUNT(*) FROM tenants")?,
        users: count("SELECT COUNT(*) FROM resources WHERE kind = 'User'")?,
        groups: count("SELECT COUNT(*) FROM resources WHERE kind = 'Group'")?,
    })
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Flushes the directory holding `file`, so that a rename into it survives a crash.
fn sync_dir(file: &Path) -> Result<(), StoreError> {
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| failed("cannot flush", dir, e))
}
