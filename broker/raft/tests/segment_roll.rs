//! The log store hands the partition log its clock's time on every append, so `segment.ms`
//! closes the active segment on the Raft append path as it does on a bare log.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{append, data_entry, value_of};
use openraft::storage::RaftLogReader;
use strand_log::{Index, LogConfig, ManualClock};
use strand_raft::{Caching, LogStore};

/// `segment.ms` of the logs under test.
const SEGMENT_MS: Duration = Duration::from_secs(60);
/// Some wall-clock time, far from the zero a store without a clock would pass.
const START_MS: i64 = 1_700_000_000_000;

/// The segment files of the group stored in `dir`.
fn segment_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("log"))
        .expect("log directory")
        .filter(|item| {
            item.as_ref()
                .expect("directory entry")
                .path()
                .extension()
                .is_some_and(|ext| ext == "log")
        })
        .count()
}

fn config(segment_age_max: Duration) -> LogConfig {
    LogConfig {
        segment_age_max,
        ..LogConfig::default()
    }
}

#[tokio::test]
async fn segment_ms_rolls_a_segment_on_the_raft_append_path() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS);
    let mut store = LogStore::open_with_clock(
        dir.path(),
        config(SEGMENT_MS),
        1,
        Caching::default(),
        Arc::new(clock.clone()),
    )
    .unwrap();
    append(&mut store, (0..3).map(|i| data_entry(1, i, b"a")).collect()).await;
    assert_eq!(segment_files(dir.path()), 1);

    // Short of segment.ms the active segment keeps taking entries.
    clock.advance(SEGMENT_MS - Duration::from_millis(1));
    append(&mut store, vec![data_entry(1, 3, b"b")]).await;
    assert_eq!(
        segment_files(dir.path()),
        1,
        "no roll before segment.ms has passed"
    );

    // Once segment.ms has passed since the segment's first entry, the next append rolls.
    clock.advance(Duration::from_millis(1));
    append(&mut store, vec![data_entry(1, 4, b"c")]).await;
    assert_eq!(segment_files(dir.path()), 2, "segment.ms rolls the segment");
    let segments = store.log().read().unwrap().segments();
    assert_eq!(segments.len(), 2);
    assert!(segments[0].closed);
    assert_eq!(segments[0].next_index, Index(4));
    assert_eq!(segments[1].base_index, Index(4));

    // The new segment's age counts from its own first entry: with the clock standing still,
    // appends stay in it.
    append(&mut store, (5..8).map(|i| data_entry(1, i, b"d")).collect()).await;
    assert_eq!(
        segment_files(dir.path()),
        2,
        "no roll while the clock stands still"
    );

    // Every entry reads back, across the roll.
    store.trim_recent(Duration::ZERO);
    let read = store.try_get_log_entries(0..8).await.unwrap();
    let values: Vec<Vec<u8>> = read.iter().map(value_of).collect();
    let expected: Vec<Vec<u8>> = b"aaabcddd".iter().map(|v| vec![*v]).collect();
    assert_eq!(values, expected);
}

#[tokio::test]
async fn segment_ms_rolls_a_segment_by_the_system_clock_when_the_store_is_given_none() {
    let dir = tempfile::tempdir().unwrap();
    let age = Duration::from_millis(20);
    let mut store = LogStore::open(dir.path(), config(age), 1, Caching::default()).unwrap();
    append(&mut store, vec![data_entry(1, 0, b"a")]).await;
    tokio::time::sleep(age * 3).await;
    append(&mut store, vec![data_entry(1, 1, b"b")]).await;
    assert_eq!(
        segment_files(dir.path()),
        2,
        "segment.ms rolls the segment by wall-clock time"
    );
}
