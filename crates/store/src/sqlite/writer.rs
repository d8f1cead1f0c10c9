//! Group commit: the one writer connection lives on its own thread, concurrent writes share one
//! transaction, and that transaction's flush makes them all durable.
//!
//! The writer thread takes every write that is queued (at most [`MAX_BATCH`]) and runs them in
//! one `BEGIN IMMEDIATE … COMMIT`, each inside a savepoint of its own: a write that fails or
//! panics rolls back to its savepoint and leaves the others alone, so every write is still
//! atomic and is seen by the next exactly as if it had committed alone. One commit for many
//! writes is what makes them cheap: the pages they share (index leaves, a profile's seat
//! counter, the outbox's tail) go to the write-ahead log once instead of once per write, and the
//! automatic checkpoint has that much less to copy. The commit uses `synchronous = NORMAL`, so
//! it appends to the WAL without waiting for the disk; the batch then goes to a flusher thread,
//! which calls `fdatasync` on the WAL once for every batch that reached it and only then answers
//! their writes. An acknowledged write is on disk, as with `synchronous = FULL`, and the writer
//! goes on with the next batch while the disk works. Checkpoints stay SQLite's automatic ones, on
//! the writer at a commit: run from another connection under a steady stream of writes, they
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
use std::sync::{Arc, OnceLock, mpsc};

use rusqlite::Connection;
use scimd_domain::store::StoreError;

use super::backend;

/// Most writes in one transaction: bounds the wait of the first write of a long queue.
const MAX_BATCH: usize = 128;

/// What a write leaves for the thread to do once its batch is committed and flushed: answer its
/// caller, failing a write that succeeded when the commit or the flush did not.
type Answer = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// A write as the thread runs it, inside its savepoint.
type Job = Box<dyn FnOnce(&Connection) -> Ran + Send>;

/// What running a write left.
struct Ran {
    /// It succeeded: its batch must commit, and be flushed.
    wrote: bool,
    /// Its answer may go at commit: its caller runs under
    /// [`deferring_flush`](scimd_domain::store::deferring_flush) and waits for a [`Writer::sync`].
    at_commit: bool,
    answer: Answer,
}

/// Writes committed together, waiting for the flush that makes them durable.
struct Batch {
    committed: bool,
    answers: Vec<Answer>,
}

/// The handle of the writer thread; the threads end when the handle is dropped.
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
    failed_flush: Arc<OnceLock<String>>,
}

impl Writer {
    /// Starts the writer thread, which owns `conn`, and the flusher thread; both on the database
    /// at `path`.
    pub(super) fn start(conn: Connection, path: &Path) -> Result<Self, StoreError> {
        // The savepoints' journal (the pages each write changed, for its rollback) in memory, not
        // in a temporary file: as a file it was a fifth of the writer's time, in `pwrite`.
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY").map_err(backend)?;
        let (jobs, queue) = mpsc::channel::<Job>();
        let (batches, flushes) = mpsc::channel::<Batch>();
        let wal = WalFile { path: wal_path(path), file: None };
        let failed_flush = Arc::new(OnceLock::new());
        let (flush_failed, write_failed) = (failed_flush.clone(), failed_flush.clone());
        let spawn = |name: &str, work: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(work)
                .map(|_| ())
                .map_err(|e| StoreError::Backend(format!("cannot start the SQLite {name} thread: {e}")))
        };
        spawn("scimd-sqlite-flush", Box::new(move || flush(flushes, wal, &flush_failed)))?;
        spawn("scimd-sqlite-write", Box::new(move || run(conn, queue, batches, &write_failed)))?;
        Ok(Writer { jobs, failed_flush })
    }

    /// Why writes are refused, once a flush of the WAL has failed: after a failed `fsync` the
    /// kernel may have dropped the pages it could not write and report the next `fsync` as a
    /// success, so no later write could be called durable. Only a restart, which reads the WAL
    /// back from the disk, is safe.
    pub(super) fn failure(&self) -> Result<(), StoreError> {
        match self.failed_flush.get() {
            Some(why) => Err(StoreError::Backend(why.clone())),
            None => Ok(()),
        }
    }

    /// Runs `f` on the writer connection, atomically (a savepoint inside the batch's
    /// transaction), and answers once its commit is durable; an `Err` from `f` rolls back what
    /// `f` wrote.
    pub(super) async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        self.submit(f, scimd_domain::store::flush_deferred()).await
    }

    /// Returns once every write committed before the call is durable: an empty write that
    /// waits for its flush (which the flusher does not skip), even inside `deferring_flush`.
    pub(super) async fn sync(&self) -> Result<(), StoreError> {
        self.submit(|_| Ok::<_, StoreError>(()), false).await
    }

    /// Queues a write; `at_commit` answers it at its commit instead of its flush.
    async fn submit<T, E, F>(&self, f: F, at_commit: bool) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        self.failure()?;
        let (answer, answered) = tokio::sync::oneshot::channel::<Result<T, E>>();
        let job: Job = Box::new(move |conn: &Connection| {
            let result = savepoint(conn, f);
            let wrote = result.is_ok();
            let answer: Answer = Box::new(move |durable: Result<(), StoreError>| {
                let result = match (result, durable) {
                    (Ok(_), Err(e)) => Err(E::from(e)),
                    (result, _) => result,
                };
                // The caller may have gone (a client that disconnected): the write stands.
                let _ = answer.send(result);
            });
            Ran { wrote, at_commit, answer }
        });
        self.jobs.send(job).map_err(|_| E::from(StoreError::Backend("the SQLite writer thread has stopped".into())))?;
        answered.await.map_err(|_| E::from(StoreError::Backend("a write failed inside the SQLite writer".into())))?
    }
}

/// Runs a cached statement that takes no parameters (parsing `BEGIN`, `SAVEPOINT` and the like
/// anew was a tenth of a create).
fn run_sql(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql).and_then(|mut s| s.execute([])).map(|_| ()).map_err(backend)
}

/// Runs `f` inside a savepoint of the batch's transaction, rolling back to it when `f` fails.
fn savepoint<T, E, F>(conn: &Connection, f: F) -> Result<T, E>
where
    E: From<StoreError>,
    F: FnOnce(&Connection) -> Result<T, E>,
{
    run_sql(conn, "SAVEPOINT write")?;
    match f(conn) {
        Ok(value) => run_sql(conn, "RELEASE write").map(|_| value).map_err(E::from),
        Err(e) => {
            undo_write(conn);
            Err(e)
        }
    }
}

/// Undoes the write in progress, keeping the batch's transaction and the writes before it.
/// Some errors (a full disk, an I/O error) make SQLite roll the whole transaction back itself:
/// then there is no savepoint left, and [`commit_together`] sees the transaction gone.
fn undo_write(conn: &Connection) {
    if conn.is_autocommit() {
        return;
    }
    if let Err(e) = run_sql(conn, "ROLLBACK TO write").and_then(|_| run_sql(conn, "RELEASE write")) {
        tracing::error!(error = %e, "rolling back a failed write failed");
    }
}

/// The writer thread: runs what is queued in one transaction, commits it and hands it to the
/// flusher, without waiting for the flush.
fn run(conn: Connection, queue: mpsc::Receiver<Job>, batches: mpsc::Sender<Batch>, failed_flush: &OnceLock<String>) {
    while let Ok(first) = queue.recv() {
        if failed_flush.get().is_some() {
            // Dropping the queue answers every waiting write with an error; `submit` refuses
            // the later ones with the cause.
            return;
        }
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH
            && let Ok(job) = queue.try_recv()
        {
            jobs.push(job);
        }
        if batches.send(commit_together(&conn, jobs)).is_err() {
            return;
        }
    }
}

/// Runs `jobs` in one transaction and commits it. A write that fails or panics is undone alone;
/// when the transaction itself is lost (it could not begin or commit, or SQLite rolled it back
/// on an I/O error), every write that had succeeded in it is answered with that error, and the
/// rest run in a new one. Writes that may answer at commit are answered here; the others go
/// with the batch to the flusher.
fn commit_together(conn: &Connection, jobs: Vec<Job>) -> Batch {
    let mut batch = Batch { committed: false, answers: Vec::with_capacity(jobs.len()) };
    // Writes that succeeded in the open transaction: their answers wait for its commit.
    let mut pending: Vec<Ran> = Vec::new();
    let mut open = false;
    for job in jobs {
        if !open {
            match run_sql(conn, "BEGIN IMMEDIATE") {
                Ok(()) => open = true,
                // The job still runs, and its own statements fail with the same cause.
                Err(e) => tracing::warn!(error = %e, "cannot begin a write transaction"),
            }
        }
        // A panic inside a write drops its answer (its caller sees a failed write) and its
        // savepoint is rolled back here; the thread goes on with the others.
        let ran = catch_unwind(AssertUnwindSafe(|| job(conn)));
        if ran.is_err() {
            undo_write(conn);
        }
        if open && conn.is_autocommit() {
            lost(&mut pending, "an error rolled back the transaction it shared with this write");
            open = false;
        }
        match ran {
            Ok(ran) if ran.wrote && open => pending.push(ran),
            Ok(ran) => {
                // Outside a transaction its savepoint was a transaction of its own, committed.
                batch.committed |= ran.wrote;
                batch.hand_over(ran);
            }
            Err(_) => {}
        }
    }
    if open {
        match run_sql(conn, "COMMIT") {
            Ok(()) => {
                batch.committed |= !pending.is_empty();
                for ran in pending {
                    batch.hand_over(ran);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "committing a batch of writes failed: its writes are refused");
                if !conn.is_autocommit() {
                    let _ = run_sql(conn, "ROLLBACK");
                }
                lost(&mut pending, &format!("the commit failed: {e}"));
            }
        }
    }
    batch
}

impl Batch {
    /// Answers a committed (or refused) write now if it may answer at commit, or keeps its
    /// answer for the flush.
    fn hand_over(&mut self, ran: Ran) {
        if ran.at_commit {
            (ran.answer)(Ok(()));
        } else {
            self.answers.push(ran.answer);
        }
    }
}

/// Answers writes whose transaction was rolled back: they did not happen.
fn lost(pending: &mut Vec<Ran>, why: &str) {
    for ran in pending.drain(..) {
        (ran.answer)(Err(StoreError::Backend(format!("the write was not saved: {why}"))));
    }
}

/// The flusher thread: one flush for every batch that has arrived, then their answers. Even a
/// batch that committed nothing waits for the flush of those before it: its answer (a conflict,
/// say) may rest on them.
/// After a failed flush, every later batch is refused too (see [`Writer::failure`]).
fn flush(flushes: mpsc::Receiver<Batch>, mut wal: WalFile, failed_flush: &OnceLock<String>) {
    while let Ok(first) = flushes.recv() {
        let mut committed = first.committed;
        let mut answers = first.answers;
        while let Ok(more) = flushes.try_recv() {
            committed |= more.committed;
            answers.extend(more.answers);
        }
        let flushed = match failed_flush.get() {
            Some(why) => Err(StoreError::Backend(why.clone())),
            None if committed => wal.sync(),
            None => Ok(()),
        };
        if let (Err(e), None) = (&flushed, failed_flush.get()) {
            tracing::error!(error = %e, "flushing the SQLite write-ahead log failed: every write is refused until scimd is restarted");
            let _ = failed_flush.set(format!(
                "writes are refused since flushing the database to disk failed ({e}); what was written since may \
                 not be on disk. Check the disk, then restart scimd: it reads back what the disk holds"
            ));
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

    /// A flush that fails (here: the WAL the flusher must flush cannot be found) refuses its
    /// writes and every later one, with the cause, and readiness reports it.
    #[tokio::test]
    async fn after_a_failed_flush_every_write_is_refused_until_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER)").unwrap();
        let w = Writer::start(conn, &dir.path().join("elsewhere.db")).unwrap();
        assert_eq!(w.failure(), Ok(()));
        let first = w.write(|c| c.execute("INSERT INTO t VALUES (1)", []).map_err(backend)).await;
        assert!(matches!(&first, Err(StoreError::Backend(e)) if e.contains("cannot read")), "{first:?}");
        let later = w.write(|c| c.execute("INSERT INTO t VALUES (2)", []).map_err(backend)).await;
        let Err(StoreError::Backend(why)) = later else { panic!("a later write was accepted: {later:?}") };
        assert!(why.contains("writes are refused since flushing the database to disk failed"), "{why}");
        assert!(why.contains("restart scimd"), "{why}");
        assert_eq!(w.failure(), Err(StoreError::Backend(why)));
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

    #[tokio::test]
    async fn writes_sharing_a_transaction_are_undone_alone() {
        let dir = tempfile::tempdir().unwrap();
        let w = std::sync::Arc::new(writer(dir.path()));
        // Queued together, so most share a transaction: each odd write inserts, then fails.
        let writes: Vec<_> = (0..300)
            .map(|i| {
                let w = w.clone();
                tokio::spawn(async move {
                    w.write(move |c| {
                        c.execute("INSERT INTO t VALUES (?1)", [i]).map_err(backend)?;
                        if i % 2 == 1 { Err(StoreError::Conflict { attribute: "v".into() }) } else { Ok(i) }
                    })
                    .await
                })
            })
            .collect();
        for (i, write) in writes.into_iter().enumerate() {
            let result = write.await.unwrap();
            if i % 2 == 1 {
                assert_eq!(result, Err(StoreError::Conflict { attribute: "v".into() }));
            } else {
                assert_eq!(result, Ok(i as i64));
            }
        }
        let odd: i64 = w
            .write(|c| c.query_row("SELECT count(*) FROM t WHERE v % 2 = 1", [], |r| r.get(0)).map_err(backend))
            .await
            .unwrap();
        assert_eq!((count(&w).await, odd), (150, 0));
    }

    #[tokio::test]
    async fn deferred_writes_answer_at_commit_and_sync_makes_them_durable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        {
            let w = writer(dir.path());
            scimd_domain::store::deferring_flush(async {
                for i in 0..50 {
                    w.write(move |c| c.execute("INSERT INTO t VALUES (?1)", [i]).map_err(backend)).await.unwrap();
                }
            })
            .await;
            w.sync().await.unwrap();
        }
        let reopened = Connection::open(&path).unwrap();
        let n: i64 = reopened.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 50);
    }
}
