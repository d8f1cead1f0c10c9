//! The SQLite store's group commit: concurrent writes are all kept, and the write-ahead log
//! starts over instead of growing with every write ever made.

use std::sync::Arc;

use scimd_domain::store::Store;
use scimd_store::SqliteStore;

/// 4 000 concurrent writes of 2 KB each, 64 at a time: every one is read back after a reopen,
/// and the WAL stays near SQLite's checkpoint size (1 000 pages, 4 MB) instead of holding them
/// all (over 16 MB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_are_kept_and_the_wal_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let value = "x".repeat(2048);
    let mut largest_wal = 0;
    for round in 0..64 {
        let writes: Vec<_> = (0..64)
            .map(|i| {
                let (store, value) = (store.clone(), value.clone());
                tokio::spawn(async move { store.set_setting(&format!("k{round}.{i}"), &value).await })
            })
            .collect();
        for w in writes {
            w.await.unwrap().unwrap();
        }
        let wal = std::fs::metadata(dir.path().join("scimd.db-wal")).map(|m| m.len()).unwrap_or(0);
        largest_wal = largest_wal.max(wal);
    }
    assert!(largest_wal < 12 << 20, "the WAL grew to {largest_wal} bytes");
    drop(store);
    let reopened = SqliteStore::open(dir.path()).unwrap();
    for round in [0, 31, 63] {
        for i in [0, 63] {
            assert_eq!(reopened.setting(&format!("k{round}.{i}")).await.unwrap().as_deref(), Some(value.as_str()));
        }
    }
}
