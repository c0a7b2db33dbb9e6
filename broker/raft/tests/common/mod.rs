//! Helpers shared by the raft glue's integration tests.
#![allow(dead_code)]

use bytes::Bytes;
use openraft::EntryPayload;
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use strand_log::build_batch;
use strand_raft::{Batch, Entry, LogStore, log_id};

/// A data entry at `index` in `term` holding one record with `value`.
pub fn data_entry(term: u64, index: u64, value: &[u8]) -> Entry {
    let batch = build_batch(&[(None, Some(value), 1)]);
    Entry::new(
        log_id(term, index),
        EntryPayload::Normal(Batch(Bytes::from(batch))),
    )
}

/// The value of the single record of a data entry.
pub fn value_of(entry: &Entry) -> Vec<u8> {
    match &entry.payload {
        EntryPayload::Normal(batch) => {
            let records = strand_log::decode_records(&batch.0).expect("a record batch");
            records[0].value.clone().expect("a value").to_vec()
        }
        other => panic!("expected data, found {other:?}"),
    }
}

/// Appends through openraft's storage API, as openraft does, not waiting for the flush.
pub async fn append(store: &mut LogStore, entries: Vec<Entry>) {
    store
        .append(entries, IOFlushed::noop())
        .await
        .expect("append");
}
