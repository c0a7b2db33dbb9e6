//! Per-partition log settings, named after the Kafka topic configs they implement.

use std::time::Duration;

/// When appended entries are made durable with an fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// After every append call (one fsync per call, however many entries: group commit).
    EveryAppend,
    /// When at least this long has passed since the last flush, checked on append and
    /// by [`crate::Log::flush_if_due`].
    Interval(Duration),
    /// Only when the caller asks, and when a segment is closed.
    Never,
}

/// Whether opening a log reads and checks every stored entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenCheck {
    /// Check the CRC of every entry of every segment; corruption fails the open.
    AllSegments,
    /// Check the active segment; closed segments with valid index files are trusted at open
    /// and checked as they are read.
    ActiveSegment,
}

/// Settings of one partition log.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Roll to a new segment before the active one would pass this size (`segment.bytes`).
    pub segment_bytes_max: u64,
    /// Roll to a new segment when the active one is older than this (`segment.ms`).
    pub segment_age_max: Duration,
    /// Bytes of entries between two points of the sparse indexes (`index.interval.bytes`).
    pub index_interval_bytes: u64,
    /// When to fsync.
    pub flush: FlushPolicy,
    /// What opening checks.
    pub open_check: OpenCheck,
    /// Upper bound on the memory the key map of one compaction pass may use.
    pub compaction_map_bytes_max: usize,
    /// Keep only the newest this many bytes of the active segment in the page cache: once a
    /// flush has made older bytes durable, they are dropped from it (`POSIX_FADV_DONTNEED`),
    /// so the log's memory stays bounded and new appends reuse the pages just freed. `None`
    /// leaves the page cache to the kernel.
    pub page_cache_window_bytes: Option<u64>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes_max: 1 << 30,
            segment_age_max: Duration::from_secs(7 * 24 * 3600),
            index_interval_bytes: 4096,
            flush: FlushPolicy::EveryAppend,
            open_check: OpenCheck::AllSegments,
            compaction_map_bytes_max: 128 << 20,
            page_cache_window_bytes: None,
        }
    }
}

/// What retention may remove (`retention.ms`, `retention.bytes`); `None` keeps forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Remove closed segments whose newest record is older than this.
    pub retention_ms: Option<i64>,
    /// Remove the oldest closed segments while the log is larger than this.
    pub retention_bytes: Option<u64>,
}

/// How compaction treats deletes (`delete.retention.ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionPolicy {
    /// A tombstone (record with a null value) older than this is dropped;
    /// younger ones are kept so consumers can see the delete.
    pub delete_retention_ms: i64,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            delete_retention_ms: 24 * 3600 * 1000,
        }
    }
}
