//! The log store serves the newest entries from memory; whatever rewrites the log under it
//! (truncation, a reset after a snapshot) must make it read the log again.

mod common;

use common::{append, data_entry, value_of};
use openraft::EntryPayload;
use openraft::storage::{RaftLogReader, RaftLogStorage};
use strand_log::{Index, LogConfig, NewEntry, Offset, Payload, Term, build_batch};
use strand_raft::{Caching, LogStore, RecentBudget, log_id};

#[tokio::test]
async fn entries_read_back_are_the_log_s_after_truncation_and_rewrites() {
    let dir = tempfile::tempdir().unwrap();
    let mut store =
        LogStore::open(dir.path(), LogConfig::default(), 1, Default::default()).unwrap();
    append(
        &mut store,
        (0..5).map(|i| data_entry(1, i, b"first")).collect(),
    )
    .await;
    let read = store.try_get_log_entries(0..5).await.unwrap();
    assert_eq!(read.len(), 5);
    assert!(read.iter().all(|e| value_of(e) == b"first"));

    // A new leader's entries replace the uncommitted tail.
    store.truncate_after(Some(log_id(1, 2))).await.unwrap();
    append(
        &mut store,
        (3..5).map(|i| data_entry(2, i, b"second")).collect(),
    )
    .await;
    let read = store.try_get_log_entries(0..5).await.unwrap();
    let terms: Vec<u64> = read.iter().map(|e| e.log_id.leader_id.term).collect();
    assert_eq!(terms, [1, 1, 1, 2, 2]);
    assert_eq!(value_of(&read[4]), b"second");

    // Rewritten from outside the store (as installing a snapshot does) to the same length:
    // nothing stale is served.
    {
        let log = store.log();
        let mut log = log.write().unwrap();
        log.truncate_after(Some(Index(2))).unwrap();
        let batch = build_batch(&[(None, Some(&b"third"[..]), 1)]);
        let new: Vec<NewEntry<'_>> = (3..5)
            .map(|i| NewEntry {
                index: Index(i),
                term: Term(3),
                payload: Payload::Data(&batch),
            })
            .collect();
        log.append(&new, 0).unwrap();
    }
    let read = store.try_get_log_entries(3..5).await.unwrap();
    let terms: Vec<u64> = read.iter().map(|e| e.log_id.leader_id.term).collect();
    assert_eq!(terms, [3, 3]);
    assert_eq!(value_of(&read[1]), b"third");

    // And the store takes up the log where it now ends.
    store
        .log()
        .write()
        .unwrap()
        .reset(Index(10), Offset(10))
        .unwrap();
    assert!(store.try_get_log_entries(3..5).await.unwrap().is_empty());
    append(&mut store, vec![data_entry(4, 10, b"fourth")]).await;
    let read = store.try_get_log_entries(0..11).await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].log_id, log_id(4, 10));
    assert_eq!(value_of(&read[0]), b"fourth");
}

#[tokio::test]
async fn entries_kept_in_memory_expire() {
    let dir = tempfile::tempdir().unwrap();
    let mut store =
        LogStore::open(dir.path(), LogConfig::default(), 1, Default::default()).unwrap();
    append(&mut store, vec![data_entry(1, 0, b"kept a while")]).await;
    assert!(store.recent_bytes() > 0);
    store.trim_recent(std::time::Duration::from_secs(60));
    assert!(store.recent_bytes() > 0, "young entries stay");
    store.trim_recent(std::time::Duration::ZERO);
    assert_eq!(store.recent_bytes(), 0);
    // Read back from the log instead.
    let read = store.try_get_log_entries(0..1).await.unwrap();
    assert_eq!(value_of(&read[0]), b"kept a while");
}

#[tokio::test]
async fn groups_sharing_a_budget_keep_no_more_than_it_together() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let one_entry = data_entry(1, 0, &[7; 1000]);
    let entry_bytes = match &one_entry.payload {
        EntryPayload::Normal(batch) => batch.0.len(),
        _ => unreachable!(),
    };
    // Room for three entries of this size.
    let budget = RecentBudget::new(3 * entry_bytes);
    let open = |dir: &tempfile::TempDir| {
        let caching = Caching {
            recent: Some(budget.clone()),
            ..Caching::default()
        };
        LogStore::open(dir.path(), LogConfig::default(), 1, caching).unwrap()
    };
    let (mut a, mut b) = (open(&dirs[0]), open(&dirs[1]));
    append(
        &mut a,
        (0..2).map(|i| data_entry(1, i, &[7; 1000])).collect(),
    )
    .await;
    append(&mut b, vec![data_entry(1, 0, &[8; 1000])]).await;
    assert_eq!(budget.used(), 3 * entry_bytes);
    assert_eq!(a.recent_bytes() + b.recent_bytes(), budget.used());

    // Over the budget, the group that appends gives up its oldest entries.
    append(
        &mut b,
        (1..3).map(|i| data_entry(1, i, &[8; 1000])).collect(),
    )
    .await;
    assert!(budget.used() <= 3 * entry_bytes, "{} used", budget.used());
    assert_eq!(
        a.recent_bytes(),
        2 * entry_bytes,
        "the other group keeps its own"
    );
    assert_eq!(a.recent_bytes() + b.recent_bytes(), budget.used());
    // What left memory is read back from the log.
    let read = b.try_get_log_entries(0..3).await.unwrap();
    assert!(read.iter().all(|e| value_of(e) == [8; 1000]));

    // A group that goes away gives its share back (once its flusher task, which holds the
    // storage too, has seen the last handle go).
    drop(b);
    for _ in 0..100 {
        if budget.used() == 2 * entry_bytes {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(budget.used(), 2 * entry_bytes);
    a.trim_recent(std::time::Duration::ZERO);
    assert_eq!(budget.used(), 0);
}
