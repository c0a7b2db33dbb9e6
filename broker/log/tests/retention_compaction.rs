//! Retention by time and size, and compaction by key, with exact offsets and keys.

mod common;

use std::time::Duration;

use common::*;
use strand_log::{
    Clock, CompactionPolicy, Index, Log, LogConfig, ManualClock, NewEntry, Offset, Payload,
    RetentionPolicy, Term, build_batch, decode_records,
};

/// Offsets and keys of every record readable from the log, in order.
fn records(log: &Log) -> Vec<(i64, String, Option<String>)> {
    let batches = log
        .read(log.log_start_offset(), log.next_offset(), usize::MAX)
        .unwrap();
    let mut out = Vec::new();
    let mut rest = &batches.bytes[..];
    while !rest.is_empty() {
        let len = i32::from_be_bytes(rest[8..12].try_into().unwrap()) as usize + 12;
        for r in decode_records(&rest[..len]).unwrap() {
            let text = |b: Option<bytes::Bytes>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
            out.push((r.offset, text(r.key).unwrap(), text(r.value)));
        }
        rest = &rest[len..];
    }
    out
}

// The wall clock handed to appends; rolling moves it past `segment.ms`.
thread_local! {
    static CLOCK: ManualClock = ManualClock::new(0);
}
/// More than the default `segment.ms` of a week.
const EIGHT_DAYS: Duration = Duration::from_secs(8 * 24 * 3600);

/// The test's clock (a handle sharing its time).
fn clock() -> ManualClock {
    CLOCK.with(ManualClock::clone)
}

fn now() -> i64 {
    clock().now_ms()
}

fn append_records(log: &mut Log, records: &[(&str, Option<&str>, i64)]) {
    let records: Vec<strand_log::RecordSpec<'_>> = records
        .iter()
        .map(|(k, v, ts)| (Some(k.as_bytes()), v.map(str::as_bytes), *ts))
        .collect();
    let index = log.next_index();
    let batch = build_batch(&records);
    log.append(
        &[NewEntry {
            index,
            term: Term(2),
            payload: Payload::Data(&batch),
        }],
        now(),
    )
    .unwrap();
}

/// Ten segments of four single-record entries each: offsets 0..40, timestamp = 1000 + offset.
fn ten_segments(dir: &std::path::Path) -> Log {
    let mut log = Log::open(
        dir,
        LogConfig {
            segment_bytes_max: 1 << 20,
            ..small_config()
        },
    )
    .unwrap();
    for segment in 0..10 {
        for i in 0..4 {
            let offset = segment * 4 + i;
            append_records(
                &mut log,
                &[(&format!("k{offset}"), Some("v"), 1000 + offset as i64)],
            );
        }
        force_roll(&mut log);
    }
    log
}

/// Rolls by appending a blank entry with the clock moved past `segment.ms`.
fn force_roll(log: &mut Log) {
    let before = log.segments().len();
    clock().advance(EIGHT_DAYS);
    let index = log.next_index();
    log.append(
        &[NewEntry {
            index,
            term: Term(2),
            payload: Payload::Blank,
        }],
        now(),
    )
    .unwrap();
    assert_eq!(
        log.segments().len(),
        before + 1,
        "segment.ms rolls the segment"
    );
}

#[test]
fn retention_by_time_removes_whole_old_segments_and_moves_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = ten_segments(dir.path());
    assert_eq!(log.segments().len(), 11);
    // Records older than 1020 (offsets 0..20) are past retention at now = 1030, retention 10 ms.
    let policy = RetentionPolicy {
        retention_ms: Some(10),
        retention_bytes: None,
    };
    // What it would remove, said before: through the fifth segment.
    let end = log.retention_end(policy, log.next_index(), 1030);
    assert_eq!(end, log.segments()[4].next_index);
    let done = log.apply_retention(policy, log.next_index(), 1030).unwrap();
    // Segment 4 holds offsets 16..20 with max timestamp 1019: 1030 - 1019 = 11 > 10.
    assert_eq!(done.removed_segments.len(), 5);
    assert_eq!(log.first_index(), end);
    assert_eq!(log.retention_end(policy, log.next_index(), 1030), end);
    assert_eq!(done.log_start_offset, Offset(20));
    assert_eq!(log.log_start_offset(), Offset(20));
    assert_eq!(records(&log).first().unwrap().0, 20);
    assert!(matches!(
        log.read(Offset(19), log.next_offset(), 1024),
        Err(strand_log::LogError::OffsetOutOfRange { .. })
    ));
    // Nothing is removed at or above the given index, however old.
    let below = log.segments()[2].base_index;
    let done = log.apply_retention(policy, below, i64::MAX / 4).unwrap();
    assert_eq!(done.removed_segments.len(), 2);
    assert_eq!(log.log_start_offset(), Offset(28));
    // The active segment is never removed.
    let done = log
        .apply_retention(policy, log.next_index(), i64::MAX / 4)
        .unwrap();
    assert_eq!(done.log_start_offset, Offset(40));
    assert_eq!(log.segments().len(), 1);
    drop(log);
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.log_start_offset(), Offset(40));
    assert_eq!(log.next_offset(), Offset(40));
}

#[test]
fn retention_ms_removes_closed_segments_of_a_quiet_log_as_its_clock_passes_them() {
    const HOUR: Duration = Duration::from_secs(3600);
    const HOUR_MS: i64 = 3600 * 1000;
    let start_ms = 1_700_000_000_000;
    let clock = clock();
    clock.set(start_ms);
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes_max: 1 << 20,
        segment_age_max: HOUR,
        ..small_config()
    };
    let mut log = Log::open(dir.path(), config.clone()).unwrap();
    // Four hours of traffic, records stamped when they are produced; `segment.ms` of an hour
    // gives each hour its segment: offsets 2h and 2h + 1 at start + h hours.
    for hour in 0..4 {
        if hour > 0 {
            clock.advance(HOUR);
        }
        for i in 0..2 {
            let key = format!("k{}", hour * 2 + i);
            append_records(&mut log, &[(&key, Some("v"), clock.now_ms())]);
        }
    }
    let segments = log.segments();
    assert_eq!(segments.len(), 4);
    let expected: Vec<i64> = (0..4).map(|h| start_ms + h * HOUR_MS).collect();
    let stamps: Vec<i64> = segments.iter().map(|s| s.max_timestamp).collect();
    assert_eq!(stamps, expected);

    // From here on the log is quiet: only the clock moves.
    let policy = RetentionPolicy {
        retention_ms: Some(3 * HOUR_MS + HOUR_MS / 2),
        retention_bytes: None,
    };
    let retain = |log: &mut Log| {
        let below = log.next_index();
        log.apply_retention(policy, below, clock.now_ms()).unwrap()
    };
    let done = retain(&mut log);
    assert!(
        done.removed_segments.is_empty(),
        "nothing is old enough yet"
    );
    assert_eq!(done.log_start_offset, Offset(0));

    // The oldest segment's newest record is exactly retention.ms old: still kept.
    clock.set(start_ms + policy.retention_ms.unwrap());
    assert!(retain(&mut log).removed_segments.is_empty());
    // A millisecond later it is older and goes; the newer ones stay.
    clock.advance(Duration::from_millis(1));
    let done = retain(&mut log);
    assert_eq!(done.removed_segments, vec![segments[0].path.clone()]);
    assert_eq!(done.removed_bytes, segments[0].size_bytes);
    assert_eq!(log.log_start_offset(), Offset(2));
    assert_eq!(log.first_index(), segments[1].base_index);
    assert!(!segments[0].path.exists());
    assert!(segments[1..].iter().all(|s| s.path.exists()));

    // An hour later the next one goes.
    clock.advance(HOUR);
    let done = retain(&mut log);
    assert_eq!(done.removed_segments, vec![segments[1].path.clone()]);
    assert_eq!(log.log_start_offset(), Offset(4));

    // Much later every closed segment is gone, but the active segment stays, however old its
    // records: the log keeps its end and its newest records.
    clock.advance(100 * HOUR);
    let done = retain(&mut log);
    assert_eq!(done.removed_segments, vec![segments[2].path.clone()]);
    assert_eq!(log.log_start_offset(), Offset(6));
    assert_eq!(log.segments().len(), 1);
    assert_eq!(log.segments()[0].path, segments[3].path);
    assert_eq!(log.next_offset(), Offset(8));
    assert_eq!(log.next_index(), Index(8));
    assert!(retain(&mut log).removed_segments.is_empty());
    let offsets: Vec<i64> = records(&log).into_iter().map(|(o, _, _)| o).collect();
    assert_eq!(offsets, vec![6, 7]);

    drop(log);
    let log = Log::open(dir.path(), config).unwrap();
    assert_eq!(log.log_start_offset(), Offset(6));
    assert_eq!(log.next_offset(), Offset(8));
}

#[test]
fn retention_by_bytes_keeps_the_log_under_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = ten_segments(dir.path());
    let sizes: Vec<u64> = log.segments().iter().map(|s| s.size_bytes).collect();
    let limit = sizes[7..].iter().sum::<u64>();
    let policy = RetentionPolicy {
        retention_ms: None,
        retention_bytes: Some(limit),
    };
    let done = log.apply_retention(policy, log.next_index(), 0).unwrap();
    assert_eq!(done.removed_segments.len(), 7);
    assert_eq!(done.removed_bytes, sizes[..7].iter().sum::<u64>());
    assert_eq!(log.log_start_offset(), Offset(28));
    assert!(log.size_bytes() <= limit);
}

#[test]
fn compaction_keeps_the_latest_record_per_key_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes_max: 1 << 20,
        ..small_config()
    };
    let mut log = Log::open(dir.path(), config.clone()).unwrap();
    // offsets: 0 a=1, 1 b=1, 2 c=1 | 3 a=2, 4 b=tombstone(ts 10) | 5 c=2, 6 d=1 | active: 7 a=3
    append_records(
        &mut log,
        &[
            ("a", Some("1"), 10),
            ("b", Some("1"), 10),
            ("c", Some("1"), 10),
        ],
    );
    force_roll(&mut log);
    append_records(&mut log, &[("a", Some("2"), 20), ("b", None, 10)]);
    force_roll(&mut log);
    append_records(&mut log, &[("c", Some("2"), 30)]);
    append_records(&mut log, &[("d", Some("1"), 30)]);
    force_roll(&mut log);
    append_records(&mut log, &[("a", Some("3"), 40)]);
    let next = log.next_offset();

    // Tombstones younger than delete.retention.ms stay.
    let keep_tombstones = CompactionPolicy {
        delete_retention_ms: 1_000,
    };
    let done = log.compact(log.next_index(), keep_tombstones, 100).unwrap();
    assert_eq!(done.records_removed, 3);
    assert_eq!(done.segments_rewritten, 1);
    let s = |x: &str| Some(x.to_string());
    assert_eq!(
        records(&log),
        vec![
            (3, "a".into(), s("2")),
            (4, "b".into(), None),
            (5, "c".into(), s("2")),
            (6, "d".into(), s("1")),
            (7, "a".into(), s("3")),
        ]
    );
    // Old tombstones go; the active segment's newer "a" is not compacted against.
    let drop_tombstones = CompactionPolicy {
        delete_retention_ms: 5,
    };
    let done = log.compact(log.next_index(), drop_tombstones, 100).unwrap();
    assert_eq!(done.records_removed, 1);
    let after: Vec<(i64, String)> = records(&log).into_iter().map(|(o, k, _)| (o, k)).collect();
    assert_eq!(
        after,
        vec![
            (3, "a".into()),
            (5, "c".into()),
            (6, "d".into()),
            (7, "a".into())
        ]
    );
    assert_eq!(log.next_offset(), next);
    // Reads inside a gap move on to the next record; offsets stay where they were.
    assert_eq!(log.read(Offset(4), next, 1).unwrap().next_offset, Offset(6));
    // Compacted segments survive a reopen with every check on.
    drop(log);
    let log = Log::open(dir.path(), config).unwrap();
    let again: Vec<(i64, String)> = records(&log).into_iter().map(|(o, k, _)| (o, k)).collect();
    assert_eq!(again, after);
}

#[test]
fn compaction_only_touches_segments_below_the_given_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(
        dir.path(),
        LogConfig {
            segment_bytes_max: 1 << 20,
            ..small_config()
        },
    )
    .unwrap();
    append_records(&mut log, &[("a", Some("1"), 10), ("a", Some("2"), 10)]);
    force_roll(&mut log);
    append_records(&mut log, &[("a", Some("3"), 10), ("a", Some("4"), 10)]);
    force_roll(&mut log);
    let below = log.segments()[1].base_index;
    log.compact(below, CompactionPolicy::default(), 100)
        .unwrap();
    let offsets: Vec<i64> = records(&log).into_iter().map(|(o, _, _)| o).collect();
    assert_eq!(offsets, vec![1, 2, 3]);
}
