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
