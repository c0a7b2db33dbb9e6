//! The page cache window: flushed bytes before it leave the page cache, the newest stay.

mod common;

use std::path::Path;
use std::process::Command;

use common::{append_batch, keyed_batch};
use strand_log::{FlushPolicy, Log, LogConfig};

const WINDOW: u64 = 1 << 20;
const PAGE: u64 = 4096;

/// `bytes` rounded up to whole pages: the page cache holds a file's last page whole.
fn in_pages(bytes: u64) -> u64 {
    bytes.div_ceil(PAGE) * PAGE
}

/// Bytes of `path` in the page cache, as util-linux's `fincore` reports them.
fn resident_bytes(path: &Path) -> u64 {
    let out = Command::new("fincore")
        .args(["--bytes", "--noheadings", "--raw", "--output", "RES"])
        .arg(path)
        .output()
        .expect("fincore (Debian package util-linux-extra) runs");
    assert!(out.status.success(), "fincore: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// A log on the disk of the build (not a tmpfs, whose pages cannot be dropped), holding
/// about 8 MiB in its active segment, appended but not flushed.
fn filled_log(dir: &Path) -> (Log, std::path::PathBuf) {
    let config = LogConfig {
        flush: FlushPolicy::Never,
        page_cache_window_bytes: Some(WINDOW),
        ..LogConfig::default()
    };
    let mut log = Log::open(dir, config).unwrap();
    let batch = keyed_batch(0, 16, 1000, 1);
    while log.size_bytes() < 8 << 20 {
        append_batch(&mut log, &batch, 0);
    }
    let path = log.segments().last().unwrap().path.clone();
    (log, path)
}

#[test]
fn a_sync_drops_flushed_bytes_before_the_window_from_the_page_cache() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (log, path) = filled_log(dir.path());
    let size = log.size_bytes();
    assert_eq!(
        resident_bytes(&path),
        in_pages(size),
        "appended bytes are in the page cache"
    );

    let flushed = log.sync_handle().unwrap().sync().unwrap();
    assert_eq!(flushed, log.next_index());

    // The window, give or take the pages it starts and ends in.
    let resident = resident_bytes(&path);
    assert!(
        resident >= WINDOW && resident <= in_pages(WINDOW) + 2 * PAGE,
        "{resident} of {size} bytes still cached with a window of {WINDOW}"
    );
    // Everything is still readable, now from disk.
    assert_eq!(
        log.entries(log.first_index()..log.next_index())
            .unwrap()
            .len() as u64,
        log.next_index().0 - log.first_index().0
    );
}

#[test]
fn without_a_window_a_sync_drops_nothing() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (log, path) = filled_log(dir.path());
    log.set_page_cache_window(None);
    log.sync_handle().unwrap().sync().unwrap();
    assert_eq!(resident_bytes(&path), in_pages(log.size_bytes()));
}

#[test]
fn flushing_by_policy_and_closing_a_segment_drop_what_lies_before_the_window() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let config = LogConfig {
        flush: FlushPolicy::EveryAppend,
        segment_bytes_max: 4 << 20,
        page_cache_window_bytes: Some(WINDOW),
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    let batch = keyed_batch(0, 16, 1000, 1);
    while log.segments().len() < 2 || log.segments()[1].size_bytes < 3 << 20 {
        append_batch(&mut log, &batch, 0);
    }
    let segments = log.segments();
    // The closed segment keeps only its window; the active one at most a further megabyte,
    // which waits for the next flush.
    let closed = resident_bytes(&segments[0].path);
    assert!(
        (WINDOW..=in_pages(WINDOW) + 2 * PAGE).contains(&closed),
        "closed segment: {closed} bytes cached"
    );
    let active = resident_bytes(&segments[1].path);
    assert!(
        (WINDOW..=in_pages(2 * WINDOW) + 2 * PAGE).contains(&active),
        "active segment: {active} bytes cached"
    );
}
