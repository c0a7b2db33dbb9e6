//! Appends: checks before writing, segment rolls, flush policies.

mod common;

use std::time::Duration;

use common::*;
use strand_log::{
    BatchError, FlushPolicy, Index, Log, LogConfig, LogError, NewEntry, Offset, Payload, Term,
};

#[test]
fn an_append_with_one_bad_entry_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    let good = keyed_batch(0, 2, 10, 1);
    let bad = vec![0u8; 20];
    let entries = [
        NewEntry {
            index: Index(0),
            term: Term(1),
            payload: Payload::Data(&good),
        },
        NewEntry {
            index: Index(1),
            term: Term(1),
            payload: Payload::Data(&bad),
        },
    ];
    let err = log.append(&entries, 0).unwrap_err();
    assert!(
        matches!(err, LogError::InvalidBatch(BatchError::TooShort(20))),
        "{err}"
    );
    let gap = [
        NewEntry {
            index: Index(0),
            term: Term(1),
            payload: Payload::Data(&good),
        },
        NewEntry {
            index: Index(2),
            term: Term(1),
            payload: Payload::Blank,
        },
    ];
    let err = log.append(&gap, 0).unwrap_err();
    assert!(matches!(
        err,
        LogError::NonContiguousIndex {
            expected: Index(1),
            got: Index(2)
        }
    ));
    let huge = keyed_batch(0, 5, 1000, 1);
    let err = log.append(
        &[NewEntry {
            index: Index(0),
            term: Term(1),
            payload: Payload::Data(&huge),
        }],
        0,
    );
    assert!(matches!(err, Err(LogError::EntryTooLarge { .. })));
    assert_eq!(log.next_index(), Index(0));
    assert_eq!(log.size_bytes(), strand_log::SEGMENT_HEADER_LEN as u64);
    log.append(&entries[..1], 0).unwrap();
    assert_eq!(log.next_offset(), Offset(2));
}

#[test]
fn segments_roll_by_size_and_every_entry_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    for i in 0..30 {
        append_batch(&mut log, &keyed_batch(i, 1, 300, 1), 0);
    }
    let segments = log.segments();
    assert!(segments.len() > 3);
    assert!(segments.iter().all(|s| s.size_bytes <= 4096));
    for pair in segments.windows(2) {
        assert_eq!(pair[0].next_index, pair[1].base_index);
        assert_eq!(pair[0].next_offset, pair[1].base_offset);
    }
    assert_eq!(log.entries(Index(0)..Index(30)).unwrap().len(), 30);
}

#[test]
fn flush_policies_report_what_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let batch = keyed_batch(0, 1, 10, 1);
    let entry = |i: u64| NewEntry {
        index: Index(i),
        term: Term(1),
        payload: Payload::Data(&batch),
    };

    let mut every = Log::open(&dir.path().join("every"), small_config()).unwrap();
    assert!(every.append(&[entry(0), entry(1)], 0).unwrap().flushed);
    assert_eq!(every.flushed_next_index(), Index(2));

    let config = LogConfig {
        flush: FlushPolicy::Never,
        ..small_config()
    };
    let mut never = Log::open(&dir.path().join("never"), config).unwrap();
    assert!(!never.append(&[entry(0)], 0).unwrap().flushed);
    assert_eq!(never.flushed_next_index(), Index(0));
    never.flush(0).unwrap();
    assert_eq!(never.flushed_next_index(), Index(1));

    let config = LogConfig {
        flush: FlushPolicy::Interval(Duration::from_millis(100)),
        ..small_config()
    };
    let mut interval = Log::open(&dir.path().join("interval"), config).unwrap();
    assert!(interval.append(&[entry(0)], 1_000).unwrap().flushed);
    assert!(!interval.append(&[entry(1)], 1_050).unwrap().flushed);
    assert!(!interval.flush_if_due(1_099).unwrap());
    assert!(interval.flush_if_due(1_100).unwrap());
    assert_eq!(interval.flushed_next_index(), Index(2));
}

#[test]
fn reset_starts_an_empty_log_where_a_snapshot_ends() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    for i in 0..20 {
        append_batch(&mut log, &keyed_batch(i, 1, 300, 1), 0);
    }
    log.reset(Index(100), Offset(5000)).unwrap();
    assert_eq!(
        (log.first_index(), log.next_index()),
        (Index(100), Index(100))
    );
    assert_eq!(
        (log.log_start_offset(), log.next_offset()),
        (Offset(5000), Offset(5000))
    );
    append_batch(&mut log, &keyed_batch(0, 3, 10, 1), 0);
    drop(log);
    let log = open(dir.path(), small_config());
    assert_eq!(log.segments().len(), 1);
    assert_eq!(log.next_offset(), Offset(5003));
    assert_eq!(
        log.entries(Index(100)..Index(101)).unwrap()[0].first_offset,
        Offset(5000)
    );
}
