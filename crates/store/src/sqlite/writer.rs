//! Group commit: the one writer connection lives on its own thread, and concurrent writes share
//! the flush that makes them durable.
//!
//! Each write is still its own `BEGIN IMMEDIATE … COMMIT` transaction, committed with
//! `synchronous = NORMAL`, so the commit appends its frames to the write-ahead log without
//! waiting for the disk. The writer thread runs every write that is queued and hands the batch to
//! a flusher thread, which calls `fdatasync` on the WAL file once for every batch that reached it
//! and only then answers their writes: an acknowledged write is on disk, as with
//! `synchronous = FULL`, but 32 concurrent writes cost one flush instead of 32, and the writer
//! goes on with the next writes while the disk works. Checkpoints stay SQLite's automatic ones,
//! on the writer at a commit: run from another connection under a steady stream of writes, they
//! never caught up with the last frame, the WAL never started over, and it grew to 20 GB while
//! a million users were imported.
//!
//! Why this is as durable as `FULL`: the WAL is appended in commit order and recovery replays
//! every frame up to the last commit whose checksums are intact, so a flush of the whole file
//! after a commit makes that commit and every earlier one survive a power loss. A checkpoint
//! cannot lose a commit in between: under `NORMAL` it syncs the WAL before copying it into the
//! database and the database after, and the WAL restarts only after a complete checkpoint.
//! The flusher checks that its descriptor still names the file at the WAL's path (its inode), so
//! that a WAL deleted and created anew by another process is the one flushed.
//!
//! Readers may see a commit in the moment between it and its flush; a crash in that moment loses
//! a write nobody was told had succeeded, as PostgreSQL's own group commit would.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use rusqlite::Connection;
use scimd_domain::store::StoreError;

use super::backend;

/// Most writes handed to the flusher at once: bounds the wait of the first write of a long queue.
const MAX_BATCH: usize = 128;

/// What a write leaves for the thread to do once the batch is flushed: answer its caller with
/// the flush's outcome.
type Answer = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// A write as the thread runs it: the transaction, then whether it committed and its answer.
type Job = Box<dyn FnOnce(&Connection) -> (bool, Answer) + Send>;

/// Writes run, waiting for the flush that makes them durable.
struct Batch {
    committed: bool,
    answers: Vec<Answer>,
}

/// The handle of the writer thread; the threads end when the handle is dropped.
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread, which owns `conn`, and the flusher thread; both on the database
    /// at `path`.
    pub(super) fn start(conn: Connection, path: &Path) -> Result<Self, StoreError> {
        conn.execute_batch("PRAGMA synchronous = NORMAL").map_err(backend)?;
        let (jobs, queue) = mpsc::channel::<Job>();
        let (batches, flushes) = mpsc::channel::<Batch>();
        let wal = WalFile { path: wal_path(path), file: None };
        let spawn = |name: &str, work: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(work)
                .map(|_| ())
                .map_err(|e| StoreError::Backend(format!("cannot start the SQLite {name} thread: {e}")))
        };
        spawn("scimd-sqlite-flush", Box::new(move || flush(flushes, wal)))?;
        spawn("scimd-sqlite-write", Box::new(move || run(conn, queue, batches)))?;
        Ok(Writer { jobs })
    }

    /// Runs `f` in one immediate transaction on the writer connection and answers once the
    /// commit is durable; an `Err` from `f` rolls the transaction back.
    pub(super) async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel::<Result<T, E>>();
        let job: Job = Box::new(move |conn: &Connection| {
            let result = transaction(conn, f);
            let committed = result.is_ok();
            let answer: Answer = Box::new(move |flushed: Result<(), StoreError>| {
                let result = match (result, flushed) {
                    (Ok(_), Err(e)) => Err(E::from(e)),
                    (result, _) => result,
                };
                // The caller may have gone (a client that disconnected): the write stands.
                let _ = answer.send(result);
            });
            (committed, answer)
        });
        self.jobs.send(job).map_err(|_| E::from(StoreError::Backend("the SQLite writer thread has stopped".into())))?;
        answered.await.map_err(|_| E::from(StoreError::Backend("a write failed inside the SQLite writer".into())))?
    }
}

/// Runs `f` between `BEGIN IMMEDIATE` and `COMMIT` (cached statements: parsing them anew was a
/// tenth of a create), rolling back when `f` or the commit fails.
fn transaction<T, E, F>(conn: &Connection, f: F) -> Result<T, E>
where
    E: From<StoreError>,
    F: FnOnce(&Connection) -> Result<T, E>,
{
    let run = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([])).map_err(backend);
    run("BEGIN IMMEDIATE")?;
    let result = f(conn).and_then(|value| run("COMMIT").map(|_| value).map_err(E::from));
    if result.is_err()
        && !conn.is_autocommit()
        && let Err(e) = run("ROLLBACK")
    {
        tracing::error!(error = %e, "rolling back a failed write failed");
    }
    result
}

/// The writer thread: runs what is queued and hands it to the flusher, without waiting for it.
fn run(conn: Connection, queue: mpsc::Receiver<Job>, batches: mpsc::Sender<Batch>) {
    while let Ok(first) = queue.recv() {
        let mut batch = Batch { committed: false, answers: Vec::with_capacity(MAX_BATCH) };
        let mut next = Some(first);
        while let Some(job) = next.take() {
            // A panic inside a write drops its answer (its caller sees a failed write) and its
            // transaction is rolled back here; the thread goes on with the others.
            match catch_unwind(AssertUnwindSafe(|| job(&conn))) {
                Ok((committed, answer)) => {
                    batch.committed |= committed;
                    batch.answers.push(answer);
                }
                Err(_) if !conn.is_autocommit() => {
                    if let Err(e) = conn.execute_batch("ROLLBACK") {
                        tracing::error!(error = %e, "rolling back a write that panicked failed");
                    }
                }
                Err(_) => {}
            }
            if batch.answers.len() < MAX_BATCH {
                next = queue.try_recv().ok();
            }
        }
        if batches.send(batch).is_err() {
            return;
        }
    }
}

/// The flusher thread: one flush for every batch that has arrived, then their answers. Even a
/// batch that committed nothing waits for the flush of those before it: its answer (a conflict,
/// say) may rest on them.
fn flush(flushes: mpsc::Receiver<Batch>, mut wal: WalFile) {
    while let Ok(first) = flushes.recv() {
        let mut committed = first.committed;
        let mut answers = first.answers;
        while let Ok(more) = flushes.try_recv() {
            committed |= more.committed;
            answers.extend(more.answers);
        }
        let flushed = if committed { wal.sync() } else { Ok(()) };
        if let Err(e) = &flushed {
            tracing::error!(error = %e, "flushing the SQLite write-ahead log failed: the writes of this batch are refused");
        }
        for answer in answers {
            answer(flushed.clone());
        }
    }
}

fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// The WAL file, opened on the first flush and again whenever the path names another file.
struct WalFile {
    path: PathBuf,
    file: Option<(File, u64)>,
}

impl WalFile {
    fn sync(&mut self) -> Result<(), StoreError> {
        let failed =
            |what: &str, e: std::io::Error| StoreError::Backend(format!("{what} {}: {e}", self.path.display()));
        let inode = std::fs::metadata(&self.path).map_err(|e| failed("cannot read", e))?.ino();
        if self.file.as_ref().is_none_or(|(_, known)| *known != inode) {
            let file = File::open(&self.path).map_err(|e| failed("cannot open", e))?;
            self.file = Some((file, inode));
        }
        match &self.file {
            Some((file, _)) => file.sync_data().map_err(|e| failed("cannot flush", e)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(dir: &Path) -> Writer {
        let path = dir.join("w.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER)").unwrap();
        Writer::start(conn, &path).unwrap()
    }

    async fn count(w: &Writer) -> i64 {
        w.write(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).map_err(backend)).await.unwrap()
    }

    #[tokio::test]
    async fn a_write_that_panics_is_rolled_back_and_the_next_ones_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let w = writer(dir.path());
        let panicked = w
            .write::<(), StoreError, _>(|c| {
                c.execute("INSERT INTO t VALUES (1)", []).map_err(backend)?;
                panic!("a bug inside a write");
            })
            .await;
        assert!(matches!(panicked, Err(StoreError::Backend(_))), "{panicked:?}");
        w.write(|c| c.execute("INSERT INTO t VALUES (2)", []).map_err(backend)).await.unwrap();
        assert_eq!(count(&w).await, 1);
    }

    #[tokio::test]
    async fn a_refused_write_leaves_nothing_and_concurrent_writes_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let w = std::sync::Arc::new(writer(dir.path()));
        let refused = w
            .write(|c| {
                c.execute("INSERT INTO t VALUES (1)", []).map_err(backend)?;
                Err::<(), _>(StoreError::Conflict { attribute: "v".into() })
            })
            .await;
        assert_eq!(refused, Err(StoreError::Conflict { attribute: "v".into() }));
        let writes: Vec<_> = (0..200)
            .map(|i| {
                let w = w.clone();
                tokio::spawn(async move {
                    w.write(move |c| c.execute("INSERT INTO t VALUES (?1)", [i]).map_err(backend)).await
                })
            })
            .collect();
        for write in writes {
            write.await.unwrap().unwrap();
        }
        assert_eq!(count(&w).await, 200);
    }
}
