//! A replica that lost state it had made durable (its vote record, its directory, or entries
//! damaged in the middle of its log) is rejoining: it takes no part in elections until it has
//! caught up (`rejoin.rs`).

mod common;

use std::os::unix::fs::FileExt;

use common::{append, data_entry};
use openraft::storage::RaftLogStorage;
use strand_log::{LogConfig, SEGMENT_HEADER_LEN};
use strand_raft::LogStore;

fn open(dir: &std::path::Path) -> LogStore {
    LogStore::open(dir, LogConfig::default(), 1, Default::default()).unwrap()
}

#[tokio::test]
async fn a_replica_that_lost_its_vote_record_is_rejoining_until_it_holds_the_leaders_commit() {
    let dir = tempfile::tempdir().unwrap();
    let group = dir.path().join("group");
    let mut store = open(&group);
    assert!(!store.rejoining(), "a new replica takes part at once");
    store
        .save_vote(&strand_raft::Vote::new_committed(3, 2))
        .await
        .unwrap();
    append(
        &mut store,
        (0..4).map(|i| data_entry(3, i, b"kept")).collect(),
    )
    .await;
    drop(store);

    std::fs::remove_dir_all(&group).unwrap();
    let store = open(&group);
    assert!(store.rejoining(), "empty again, under the same identity");
    // Reopened before it caught up, it still is.
    drop(store);
    let mut store = open(&group);
    assert!(store.rejoining());
    // A leader that has not committed in its own term yet sets no target.
    store.heard_from_leader(4, Some((3, 3)));
    assert!(store.rejoining());
    store.heard_from_leader(4, Some((4, 5)));
    // Following the leader of term 4, as openraft does before it takes its entries.
    store
        .save_vote(&strand_raft::Vote::new_committed(4, 2))
        .await
        .unwrap();
    append(
        &mut store,
        (0..6).map(|i| data_entry(4, i, b"again")).collect(),
    )
    .await;
    assert!(store.rejoining(), "nothing heard since it holds the target");
    store.heard_from_leader(4, Some((4, 7)));
    assert!(!store.rejoining(), "holds the commit index it first heard");
    drop(store);
    assert!(!open(&group).rejoining(), "and says so after a restart");
}

#[tokio::test]
async fn a_replica_whose_log_lost_durable_entries_is_rejoining() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    store
        .save_vote(&strand_raft::Vote::new_committed(1, 1))
        .await
        .unwrap();
    append(
        &mut store,
        (0..8).map(|i| data_entry(1, i, b"durable")).collect(),
    )
    .await;
    {
        // Flushed by the append above; the mark the flusher writes within a second, now.
        let log = store.log();
        let log = log.read().unwrap();
        log.write_durable_mark(log.durable_point()).unwrap();
    }
    let active = store
        .log()
        .read()
        .unwrap()
        .segments()
        .last()
        .unwrap()
        .clone();
    drop(store);
    let middle = (SEGMENT_HEADER_LEN as u64 + active.size_bytes) / 2;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&active.path)
        .unwrap()
        .write_at(&[0xff], middle)
        .unwrap();
    let store = open(dir.path());
    assert!(
        store.rejoining(),
        "it lost entries it may have acknowledged"
    );
}
