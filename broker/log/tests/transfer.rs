//! Sending a log prefix to another replica and adopting it there.

mod common;

use std::fs;
use std::io::{Read, Write};

use common::*;
use strand_log::{Index, Offset};

#[test]
fn a_prefix_sent_and_adopted_reproduces_the_log_up_to_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut source = open(&dir.path().join("source"), small_config());
    for i in 0..40 {
        append_batch(&mut source, &keyed_batch(i, 2, 100, 1000 + i as i64), 0);
    }
    let all = source.entries(Index(0)..Index(40)).unwrap();
    for last in [Index(4), Index(22), Index(39)] {
        let staged = dir.path().join(format!("staged-{last}"));
        fs::create_dir_all(&staged).unwrap();
        let spans = source.prefix(last).unwrap();
        for span in &spans {
            let mut bytes = Vec::new();
            fs::File::open(&span.path)
                .unwrap()
                .take(span.len)
                .read_to_end(&mut bytes)
                .unwrap();
            fs::File::create(staged.join(&span.name))
                .unwrap()
                .write_all(&bytes)
                .unwrap();
        }
        let mut target = open(&dir.path().join(format!("target-{last}")), small_config());
        append_batch(&mut target, &keyed_batch(0, 5, 10, 1), 0);
        let next_offset = all[last.0 as usize]
            .first_offset
            .plus(all[last.0 as usize].offset_count);
        target.adopt(&staged, last.next(), next_offset).unwrap();
        assert_eq!(target.next_index(), last.next());
        assert_eq!(target.next_offset(), next_offset);
        assert_eq!(
            target.entries(Index(0)..last.next()).unwrap(),
            all[..=last.0 as usize].to_vec()
        );
        append_batch(&mut target, &keyed_batch(0, 1, 10, 1), 0);
        assert_eq!(
            target.entries(last.next()..last.next().next()).unwrap()[0].first_offset,
            next_offset
        );
    }
}

#[test]
fn adopting_nothing_continues_the_log_where_the_snapshot_ends() {
    let dir = tempfile::tempdir().unwrap();
    let staged = dir.path().join("staged");
    fs::create_dir_all(&staged).unwrap();
    let mut log = open(&dir.path().join("log"), small_config());
    append_batch(&mut log, &keyed_batch(0, 5, 10, 1), 0);
    log.adopt(&staged, Index(8), Offset(70)).unwrap();
    assert_eq!(
        (log.next_index(), log.next_offset()),
        (Index(8), Offset(70))
    );
}

/// Copies every file of the log in `from` into a new directory `to`.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    fs::create_dir_all(to).unwrap();
    for item in fs::read_dir(from).unwrap() {
        let path = item.unwrap().path();
        fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

#[test]
fn an_adoption_cut_short_by_a_crash_leaves_the_old_log_or_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("log");
    let mut old = open(&log_dir, small_config());
    for i in 0..10 {
        append_batch(&mut old, &keyed_batch(i, 2, 50, 1), 0);
    }
    let old_entries = old.entries(Index(0)..Index(10)).unwrap();
    drop(old);
    let mut other = open(&dir.path().join("other"), small_config());
    for i in 0..3 {
        append_batch(&mut other, &keyed_batch(i + 100, 1, 50, 1), 0);
    }
    drop(other);

    // The new log put together beside the old one, the crash before the exchange: the old log
    // stays, the new one goes (the snapshot that needed it was not stored).
    copy_dir(&dir.path().join("other"), &dir.path().join("log.adopting"));
    let reopened = open(&log_dir, small_config());
    assert_eq!(reopened.entries(Index(0)..Index(10)).unwrap(), old_entries);
    assert!(!dir.path().join("log.adopting").exists());
    drop(reopened);

    // Without an atomic exchange, the crash between moving the old log aside and moving the
    // new one in: the old log comes back, whole.
    fs::rename(&log_dir, dir.path().join("log.retired")).unwrap();
    copy_dir(&dir.path().join("other"), &dir.path().join("log.adopting"));
    let reopened = open(&log_dir, small_config());
    assert_eq!(reopened.entries(Index(0)..Index(10)).unwrap(), old_entries);
    assert!(!dir.path().join("log.retired").exists());
    assert!(!dir.path().join("log.adopting").exists());
    drop(reopened);

    // After the exchange, the old log left where the new one was staged is removed.
    fs::rename(&log_dir, dir.path().join("log.adopting")).unwrap();
    copy_dir(&dir.path().join("other"), &log_dir);
    let reopened = open(&log_dir, small_config());
    assert_eq!(reopened.next_index(), Index(3));
    assert!(!dir.path().join("log.adopting").exists());
}

#[test]
fn adopting_moves_the_staged_directory_in_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut source = open(&dir.path().join("source"), small_config());
    for i in 0..6 {
        append_batch(&mut source, &keyed_batch(i, 1, 50, 1), 0);
    }
    let staged = dir.path().join("staged");
    copy_dir(&dir.path().join("source"), &staged);
    fs::write(staged.join("stray.tmp"), b"not a segment").unwrap();
    let mut log = open(&dir.path().join("log"), small_config());
    append_batch(&mut log, &keyed_batch(0, 5, 10, 1), 0);
    let next_offset = source.next_offset();
    log.adopt(&staged, Index(6), next_offset).unwrap();
    assert_eq!(
        log.entries(Index(0)..Index(6)).unwrap(),
        source.entries(Index(0)..Index(6)).unwrap()
    );
    assert!(!staged.exists());
    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with("log.")),
        "nothing left beside the log: {names:?}"
    );
}
