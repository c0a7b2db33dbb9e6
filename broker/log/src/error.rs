//! The one error type of the partition log.

use std::io;
use std::path::PathBuf;

use crate::types::{Index, Offset};

/// Everything that can go wrong in the partition log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The operating system refused a file operation.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// The error from the operating system.
        source: io::Error,
    },
    /// Stored bytes do not match their checksum or are not an entry at all.
    /// Outside the tail of the active segment this takes the partition out of service.
    #[error("corrupt log file {path} at byte {position}: {reason}")]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte position of the bad entry within the file.
        position: u64,
        /// What was wrong.
        reason: String,
    },
    /// An append did not continue the log at its next index.
    #[error("entry index {got} does not follow the log, which expects {expected}")]
    NonContiguousIndex {
        /// The index the log expected.
        expected: Index,
        /// The index it was given.
        got: Index,
    },
    /// A data entry's payload is not a valid Kafka RecordBatch v2.
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    /// An entry is larger than a segment may hold.
    #[error("entry of {size} bytes is larger than the segment limit of {limit} bytes")]
    EntryTooLarge {
        /// Size of the entry with its header.
        size: u64,
        /// The configured `segment_bytes_max`.
        limit: u64,
    },
    /// The requested Raft index is not in the log (removed by retention, or not yet written).
    #[error("index {index} is not in the log, which holds {first}..{next}")]
    IndexOutOfRange {
        /// The requested index.
        index: Index,
        /// First index the log holds.
        first: Index,
        /// The index the next append will take.
        next: Index,
    },
    /// The requested offset is before the log start offset or after the log end.
    #[error("offset {offset} is out of range {start}..={end}")]
    OffsetOutOfRange {
        /// The requested offset.
        offset: Offset,
        /// The log start offset.
        start: Offset,
        /// The log end offset (next offset to be written).
        end: Offset,
    },
}

/// Why a byte string is not an acceptable Kafka RecordBatch v2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Fewer bytes than a batch header.
    #[error("batch of {0} bytes is shorter than the 61-byte header")]
    TooShort(usize),
    /// The magic byte is not 2; older message formats are not accepted.
    #[error("unsupported batch magic {0}, only v2 record batches are accepted")]
    Magic(i8),
    /// The header's length field disagrees with the bytes given.
    #[error("batch length field says {declared} bytes but {actual} were given")]
    Length {
        /// `batchLength + 12` from the header.
        declared: i64,
        /// Bytes actually given.
        actual: usize,
    },
    /// The batch CRC does not match its contents.
    #[error("batch crc {stored:#010x} does not match computed {computed:#010x}")]
    Crc {
        /// CRC in the header.
        stored: u32,
        /// CRC of the contents.
        computed: u32,
    },
    /// A header field holds an impossible value.
    #[error("bad batch header field {field}: {value}")]
    Field {
        /// Field name as in the Kafka protocol.
        field: &'static str,
        /// The value found.
        value: i64,
    },
    /// Records inside the batch could not be decoded (or decompressed).
    #[error("records could not be decoded: {0}")]
    Records(String),
}

impl LogError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> LogError {
        let path = path.into();
        move |source| LogError::Io { path, source }
    }
}

/// Result with [`LogError`].
pub type Result<T, E = LogError> = std::result::Result<T, E>;
