//! The partition log of Strand: segments of Raft entries that hold Kafka record batches.
//!
//! The log is both the Raft log of a partition's group and the data Kafka clients read:
//! a produced batch is written once, here. Offsets are a function of the log (each data entry's
//! first offset is the previous one's plus its record count), so every replica computes the
//! same offsets. This crate does file I/O but knows nothing of sockets, async runtimes or Raft
//! libraries; time is passed in by the caller, which may read it from a [`Clock`].

mod batch;
mod clock;
mod compact;
mod config;
mod durable;
mod entry;
mod error;
pub mod failpoints;
mod index;
mod log;
mod read;
mod retention;
mod segment;
mod transfer;
mod types;

pub use batch::{
    BATCH_HEADER_LEN, BatchHeader, RecordSpec, build_batch, build_batch_with, build_producer_batch,
    decode_records, recompress, set_log_append_time, stamp, verify_crc,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use compact::Compacted;
pub use config::{CompactionPolicy, FlushPolicy, LogConfig, OpenCheck, RetentionPolicy};
pub use durable::DurablePoint;
pub use entry::{ENTRY_HEADER_LEN, SEGMENT_HEADER_LEN};
pub use error::{BatchError, LogError, Result};
pub use kafka_protocol::records::{Compression, Record};
pub use log::{
    Appended, Batches, Entry, Log, NewEntry, Payload, Recovery, Retained, SegmentInfo, SyncHandle,
    TornTail,
};
pub use transfer::FileSpan;
pub use types::{EntryKind, Index, Offset, Term};
