//! Newtypes for the numbers of the log that must never be mixed up.

use std::fmt;

/// A Raft log position. Never called "offset": offsets are what Kafka clients see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub struct Index(pub u64);

/// A Raft term; it is also written into a batch's `partitionLeaderEpoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub struct Term(pub u64);

/// A Kafka record offset. Never called "index".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub struct Offset(pub i64);

impl Index {
    /// The index after this one.
    pub fn next(self) -> Index {
        Index(self.0 + 1)
    }
}

impl Term {
    /// The term as a Kafka leader epoch, which is an `i32` on the wire.
    pub fn as_leader_epoch(self) -> i32 {
        i32::try_from(self.0).unwrap_or(i32::MAX)
    }
}

impl Offset {
    /// This offset moved forward by `count` offsets.
    pub fn plus(self, count: u32) -> Offset {
        Offset(self.0 + i64::from(count))
    }
}

impl fmt::Display for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// What an entry holds. Only `Data` entries carry Kafka records and take offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// One Kafka RecordBatch v2, byte for byte as produced.
    Data,
    /// A Raft membership change; opaque bytes to the log.
    Membership,
    /// A Raft blank entry (a new leader's first entry); no payload.
    Blank,
}

impl EntryKind {
    pub(crate) fn to_byte(self) -> u8 {
        match self {
            EntryKind::Data => 1,
            EntryKind::Membership => 2,
            EntryKind::Blank => 3,
        }
    }

    pub(crate) fn from_byte(byte: u8) -> Option<EntryKind> {
        match byte {
            1 => Some(EntryKind::Data),
            2 => Some(EntryKind::Membership),
            3 => Some(EntryKind::Blank),
            _ => None,
        }
    }
}
