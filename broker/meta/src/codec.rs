//! Bytes for the metadata log and its snapshots: JSON, because metadata is small and a person
//! reading a log entry or a snapshot should not need a tool.

use serde::{Deserialize, Serialize};

use crate::command::Command;
use crate::state::ClusterState;

/// The newest snapshot format, which this build reads and writes when the state needs it.
///
/// Formats: 1, the first; 2, topics may have an `owner`; 3, ACLs, SCRAM credentials and
/// named Kafka listeners. A state that format 1 can hold is
/// written as format 1, byte for byte what builds before owners wrote, so a broker of that
/// version can still install a snapshot from this one during a rolling upgrade; once a topic
/// has an owner the snapshot is format 2, which such a broker refuses by number instead of
/// silently dropping the owners.
pub const SNAPSHOT_FORMAT: u32 = 3;

/// The oldest snapshot format this build reads.
pub const OLDEST_SNAPSHOT_FORMAT: u32 = 1;

/// Largest encoded command accepted. The largest legitimate command, a topic of
/// [`MAX_PARTITIONS_PER_TOPIC`](crate::MAX_PARTITIONS_PER_TOPIC) partitions with a high
/// replication factor, is a few hundred KiB.
pub const MAX_COMMAND_BYTES: usize = 4 << 20;

/// Why bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The bytes are not a well-formed command or snapshot.
    #[error("malformed metadata {what}: {source}")]
    Malformed {
        /// `command` or `snapshot`.
        what: &'static str,
        /// Where and how the JSON is wrong.
        source: serde_json::Error,
    },
    /// The command is larger than [`MAX_COMMAND_BYTES`].
    #[error("metadata command of {len} bytes exceeds the limit of {MAX_COMMAND_BYTES} bytes")]
    CommandTooLarge {
        /// Its length.
        len: usize,
    },
    /// The snapshot was written in a format this build does not read.
    #[error(
        "metadata snapshot format {found} is not supported; this build reads formats {OLDEST_SNAPSHOT_FORMAT} to {SNAPSHOT_FORMAT}"
    )]
    UnsupportedFormat {
        /// The format the snapshot names.
        found: u32,
    },
}

#[derive(Serialize)]
struct SnapshotOut<'a> {
    format: u32,
    state: &'a ClusterState,
}

#[derive(Deserialize)]
struct FormatOnly {
    format: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotIn {
    // Already checked through `FormatOnly`; named here so `deny_unknown_fields` accepts it.
    #[serde(rename = "format")]
    _format: u32,
    state: ClusterState,
}

impl Command {
    /// The command as a metadata log entry.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Every map in a command is keyed by strings, so JSON encoding cannot fail.
        serde_json::to_vec(self).expect("a command always encodes to json")
    }

    /// A command from a metadata log entry.
    pub fn from_bytes(bytes: &[u8]) -> Result<Command, CodecError> {
        if bytes.len() > MAX_COMMAND_BYTES {
            return Err(CodecError::CommandTooLarge { len: bytes.len() });
        }
        serde_json::from_slice(bytes).map_err(|source| CodecError::Malformed {
            what: "command",
            source,
        })
    }
}

impl ClusterState {
    /// The state as a snapshot of the metadata group.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Maps are keyed by broker ids (numbers) and topic ids (UUIDs), both of which JSON
        // writes as string keys, so encoding cannot fail.
        serde_json::to_vec(&SnapshotOut {
            format: self.snapshot_format(),
            state: self,
        })
        .expect("cluster state always encodes to json")
    }

    /// A state from a snapshot; the snapshot's maps are checked for consistency.
    pub fn from_bytes(bytes: &[u8]) -> Result<ClusterState, CodecError> {
        let malformed = |source| CodecError::Malformed {
            what: "snapshot",
            source,
        };
        // The format is read first so that a future format fails with a clear error rather
        // than a confusing complaint about its fields.
        let FormatOnly { format } = serde_json::from_slice(bytes).map_err(malformed)?;
        if !(OLDEST_SNAPSHOT_FORMAT..=SNAPSHOT_FORMAT).contains(&format) {
            return Err(CodecError::UnsupportedFormat { found: format });
        }
        let snapshot: SnapshotIn = serde_json::from_slice(bytes).map_err(malformed)?;
        Ok(snapshot.state)
    }

    /// The oldest format that holds this state (see [`SNAPSHOT_FORMAT`]).
    fn snapshot_format(&self) -> u32 {
        if !self.acls.is_empty()
            || !self.scram.is_empty()
            || self.brokers.values().any(|b| !b.listeners.is_empty())
        {
            3
        } else if self.topics.values().any(|t| t.owner.is_some()) {
            2
        } else {
            1
        }
    }
}
