//! Crash recovery and corruption detection at open.

mod common;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;

use common::*;
use strand_log::{ENTRY_HEADER_LEN, Index, Log, LogError, Offset, SEGMENT_HEADER_LEN};

#[test]
fn flipped_byte_in_a_closed_segment_fails_open_naming_file_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    for i in 0..40 {
        append_batch(&mut log, &keyed_batch(i, 2, 100, 1000), 0);
    }
    let victim = closed_segments(&log)[1].clone();
    let info = log
        .segments()
        .into_iter()
        .find(|s| s.path == victim)
        .unwrap();
    drop(log);
    // Flip a payload byte of the second entry of that segment.
    let first_entry_len = {
        let bytes = fs::read(&victim).unwrap();
        let len = u32::from_le_bytes(
            bytes[SEGMENT_HEADER_LEN + 4..SEGMENT_HEADER_LEN + 8]
                .try_into()
                .unwrap(),
        );
        ENTRY_HEADER_LEN + len as usize
    };
    let entry_at = (SEGMENT_HEADER_LEN + first_entry_len) as u64;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&victim)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, entry_at + 70).unwrap();
    file.write_all_at(&[byte[0] ^ 0x40], entry_at + 70).unwrap();
    drop(file);
    assert!(info.next_index.0 - info.base_index.0 > 2);

    let err = Log::open(dir.path(), small_config()).unwrap_err();
    match &err {
        LogError::Corrupt {
            path,
            position,
            reason,
        } => {
            assert_eq!(path, &victim);
            assert_eq!(*position, entry_at);
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected corruption error, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains(victim.file_name().unwrap().to_str().unwrap()),
        "{message}"
    );
    assert!(
        message.contains(&format!("at byte {entry_at}")),
        "{message}"
    );
}

#[test]
fn active_segment_cut_mid_entry_recovers_everything_before_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let config = strand_log::LogConfig {
        segment_bytes_max: 1 << 20,
        ..small_config()
    };
    let mut log = open(dir.path(), config.clone());
    let batches: Vec<Vec<u8>> = (0..10)
        .map(|i| keyed_batch(i * 3, 3, 50, 1000 + i as i64))
        .collect();
    for b in &batches {
        append_batch(&mut log, b, 0);
    }
    let before: Vec<_> = log.entries(idx(0)..idx(10)).unwrap();
    let active = log.segments().pop().unwrap().path;
    drop(log);
    // Cut in the middle of the 8th entry (index 7).
    let stored = |e: &strand_log::Entry| (ENTRY_HEADER_LEN + e.payload.len()) as u64;
    let entry_at = SEGMENT_HEADER_LEN as u64 + before[..7].iter().map(stored).sum::<u64>();
    let entry_len = stored(&before[7]);
    let cut = entry_at + entry_len / 2;
    OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap()
        .set_len(cut)
        .unwrap();

    let mut log = open(dir.path(), config.clone());
    let torn = log
        .recovery()
        .torn_tail
        .clone()
        .expect("torn tail reported");
    assert_eq!(torn.position, entry_at);
    assert_eq!(torn.bytes_removed, entry_len / 2);
    assert_eq!(log.next_index(), idx(7));
    assert_eq!(log.next_offset(), Offset(21));
    assert_eq!(log.entries(idx(0)..idx(7)).unwrap(), before[..7].to_vec());
    // The log continues where the cut left it.
    append_batch(&mut log, &batches[7], 0);
    assert_eq!(
        log.entries(idx(7)..idx(8)).unwrap()[0].first_offset,
        Offset(21)
    );
    drop(log);
    let log = open(dir.path(), config);
    assert!(log.recovery().torn_tail.is_none());
    assert_eq!(log.next_offset(), Offset(24));
}

#[test]
fn garbage_after_the_last_entry_is_cut_and_nothing_before_it_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    for i in 0..5 {
        append_batch(&mut log, &keyed_batch(i, 1, 10, 5), 0);
    }
    let before = log.entries(idx(0)..idx(5)).unwrap();
    let active = log.segments().pop().unwrap();
    drop(log);
    let file = OpenOptions::new().write(true).open(&active.path).unwrap();
    file.write_all_at(&[0xAB; 100], active.size_bytes).unwrap();
    drop(file);
    let log = open(dir.path(), small_config());
    assert_eq!(
        log.recovery().torn_tail.as_ref().unwrap().bytes_removed,
        100
    );
    assert_eq!(log.entries(idx(0)..idx(5)).unwrap(), before);
}

#[test]
fn missing_and_stale_indexes_are_rebuilt_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let config = strand_log::LogConfig {
        open_check: strand_log::OpenCheck::ActiveSegment,
        ..small_config()
    };
    let mut log = open(dir.path(), config.clone());
    for i in 0..40 {
        append_batch(&mut log, &keyed_batch(i, 2, 100, 1000 + i as i64), 0);
    }
    let expected = log.entries(idx(0)..idx(40)).unwrap();
    let closed = closed_segments(&log);
    drop(log);
    fs::remove_file(closed[0].with_extension("index")).unwrap();
    fs::write(closed[1].with_extension("timeindex"), b"stale").unwrap();
    let log = open(dir.path(), config.clone());
    assert_eq!(
        log.recovery().rebuilt_indexes,
        vec![closed[0].clone(), closed[1].clone()]
    );
    assert_eq!(log.entries(idx(0)..idx(40)).unwrap(), expected);
    assert_eq!(
        log.offset_for_timestamp(1020, log.next_offset()).unwrap(),
        Some((Offset(40), 1020))
    );
    drop(log);
    let log = open(dir.path(), config);
    assert!(log.recovery().rebuilt_indexes.is_empty());
}

#[test]
fn leftovers_of_an_interrupted_compaction_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    append_batch(&mut log, &keyed_batch(0, 1, 10, 5), 0);
    drop(log);
    let leftover = dir.path().join("00000000000000000000.log.cleaned");
    fs::write(&leftover, b"half written").unwrap();
    let log = open(dir.path(), small_config());
    assert_eq!(log.recovery().removed_leftovers, vec![leftover.clone()]);
    assert!(!leftover.exists());
    assert_eq!(log.next_index(), idx(1));
}

#[test]
fn after_a_failed_write_the_log_goes_back_to_what_was_made_durable() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let config = strand_log::LogConfig {
        flush: strand_log::FlushPolicy::Never,
        ..small_config()
    };
    let mut log = open(dir.path(), config.clone());
    for i in 0..3 {
        append_batch(&mut log, &keyed_batch(i, 1, 20, 1), 0);
    }
    let durable = log.sync_handle().unwrap().sync().unwrap();
    log.mark_flushed(durable);
    let kept = log.entries(Index(0)..durable).unwrap();
    for i in 3..6 {
        append_batch(&mut log, &keyed_batch(i, 1, 20, 1), 0);
    }
    // What a write cut short leaves past the end of the active segment.
    let active = log.segments().last().unwrap().path.clone();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&active)
        .unwrap()
        .write_all(b"half an entry")
        .unwrap();
    log.discard_unflushed().unwrap();
    assert_eq!(log.next_index(), durable);
    assert_eq!(log.flushed_next_index(), durable);
    assert_eq!(
        std::fs::metadata(&active).unwrap().len(),
        log.segments().last().unwrap().size_bytes
    );
    drop(log);
    let reopened = open(dir.path(), config);
    assert!(
        reopened.recovery().torn_tail.is_none(),
        "nothing left to cut"
    );
    assert_eq!(reopened.entries(Index(0)..durable).unwrap(), kept);
    assert_eq!(reopened.next_index(), durable);
}

/// Appends `count` one-record batches and makes them durable, with the durable mark.
fn durable_log(dir: &std::path::Path, count: usize) -> Log {
    let config = strand_log::LogConfig {
        flush: strand_log::FlushPolicy::Never,
        ..small_config()
    };
    let mut log = open(dir, config);
    for i in 0..count {
        append_batch(&mut log, &keyed_batch(i, 1, 20, 1), 0);
    }
    let handle = log.sync_handle().unwrap();
    let point = handle.point();
    let durable = handle.sync().unwrap();
    log.mark_flushed(durable);
    log.write_durable_mark(point).unwrap();
    log
}

#[test]
fn damage_below_the_durable_mark_is_reported_as_lost_durable_entries() {
    let dir = tempfile::tempdir().unwrap();
    let log = durable_log(dir.path(), 6);
    let end = log.next_index();
    let active = log.segments().last().unwrap().clone();
    drop(log);
    // A byte in the middle of the active segment: recovery cuts there as at a torn tail,
    // but the entries after the cut had been made durable.
    let middle = (SEGMENT_HEADER_LEN as u64 + active.size_bytes) / 2;
    let file = OpenOptions::new().write(true).open(&active.path).unwrap();
    file.write_at(&[0xff], middle).unwrap();
    drop(file);
    let reopened = Log::open(dir.path(), small_config()).unwrap();
    assert!(reopened.recovery().torn_tail.is_some());
    assert!(reopened.next_index() < end);
    assert_eq!(reopened.recovery().lost_durable, Some(end));
}

#[test]
fn a_torn_tail_past_the_durable_mark_or_a_truncation_loses_nothing_durable() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = durable_log(dir.path(), 4);
    let marked = log.next_index();
    // Appended after the mark and cut short by a crash: an ordinary torn tail.
    append_batch(&mut log, &keyed_batch(9, 1, 20, 1), 0);
    let active = log.segments().last().unwrap().clone();
    drop(log);
    let file = OpenOptions::new().write(true).open(&active.path).unwrap();
    file.set_len(active.size_bytes - 3).unwrap();
    drop(file);
    let mut reopened = Log::open(dir.path(), small_config()).unwrap();
    assert!(reopened.recovery().torn_tail.is_some());
    assert_eq!(reopened.next_index(), marked);
    assert_eq!(reopened.recovery().lost_durable, None);
    // Raft removing entries on purpose takes the mark with it.
    reopened.truncate_after(Some(Index(1))).unwrap();
    drop(reopened);
    let again = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(again.recovery().lost_durable, None);
}

#[test]
fn a_new_log_whose_first_segment_was_cut_short_at_creation_opens_empty() {
    // A full disk (or a crash) while a new log wrote its first segment's header.
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join(format!("{:020}.log", 0));
    fs::write(&first, b"").unwrap();
    let mut log = open(dir.path(), small_config());
    assert_eq!(log.next_index(), Index(0));
    assert_eq!(log.recovery().removed_leftovers, vec![first]);
    append_batch(&mut log, &keyed_batch(0, 2, 100, 1000), 0);
    assert_eq!(log.next_offset(), Offset(2));
    drop(log);

    // A later segment cut short as the only one: its offset was in the header alone.
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(format!("{:020}.log", 7)), b"abc").unwrap();
    assert!(matches!(
        Log::open(dir.path(), small_config()),
        Err(LogError::Corrupt { .. })
    ));
}
