//! Helpers shared by the log's integration tests.
#![allow(dead_code)]

use std::path::Path;

use strand_log::{Index, Log, LogConfig, NewEntry, Payload, Term, build_batch};

/// A config with tiny segments and dense indexes, so tests cross segment boundaries.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 4096,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

/// A batch of `count` records with keys `k<first>`.. and values of `value_len` bytes, timestamp `ts`.
pub fn keyed_batch(first: usize, count: usize, value_len: usize, ts: i64) -> Vec<u8> {
    let keys: Vec<String> = (first..first + count).map(|i| format!("k{i}")).collect();
    let value = vec![b'v'; value_len];
    let records: Vec<strand_log::RecordSpec<'_>> = keys
        .iter()
        .map(|k| (Some(k.as_bytes()), Some(&value[..]), ts))
        .collect();
    build_batch(&records)
}

/// Appends one data entry at the log's next index in term 1.
pub fn append_batch(log: &mut Log, batch: &[u8], now_ms: i64) {
    let index = log.next_index();
    log.append(
        &[NewEntry {
            index,
            term: Term(1),
            payload: Payload::Data(batch),
        }],
        now_ms,
    )
    .unwrap();
}

/// Opens the log at `dir` with `config`, panicking with the error on failure.
pub fn open(dir: &Path, config: LogConfig) -> Log {
    Log::open(dir, config).unwrap()
}

/// The closed segment files, oldest first.
pub fn closed_segments(log: &Log) -> Vec<std::path::PathBuf> {
    log.segments()
        .into_iter()
        .filter(|s| s.closed)
        .map(|s| s.path)
        .collect()
}

/// Index helper.
pub fn idx(i: u64) -> Index {
    Index(i)
}
