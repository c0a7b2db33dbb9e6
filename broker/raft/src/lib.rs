//! Strand's Raft glue: the openraft types of every group, the log storage that *is* the
//! partition log, and the group state machine with its snapshots.
//!
//! Every group — each partition and the metadata group — uses the same types: an entry's
//! application data is one Kafka RecordBatch v2, stored once, in the group's partition log.
//! The metadata group stores its commands as records too, like Kafka's own metadata log.

mod log_store;
mod rejoin;
mod state_file;
mod state_machine;

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use log_store::{
    Caching, LogStore, PageCacheWindows, RECENT_AGE_MAX, RecentBudget, StorageError,
};
pub use rejoin::remove_group_dir;
pub use state_machine::{GroupStateMachine, Machine, NoMachine, SnapshotData, SnapshotSource};
pub use strand_log::Offset;

/// The openraft type configuration shared by every Strand group.
#[derive(Debug, Clone, Copy, Default, Eq, PartialEq, Ord, PartialOrd)]
pub struct TypeConfig;

impl openraft::RaftTypeConfig for TypeConfig {
    type D = Batch;
    type R = Applied;
    type NodeId = u64;
    type Node = openraft::impls::BasicNode;
    type Term = u64;
    // One leader per term, as in standard Raft: log entries then carry just the term, which
    // is also what the partition log stores and stamps into `partitionLeaderEpoch`.
    type LeaderId = openraft::impls::leader_id_std::LeaderId<u64, u64>;
    type Vote = openraft::impls::Vote<Self::LeaderId>;
    type Payload = openraft::EntryPayload<Self::D, Self::NodeId, Self::Node>;
    type Entry =
        openraft::Entry<openraft::vote::leader_id_std::CommittedLeaderId<u64>, Self::Payload>;
    type Responder<T>
        = openraft::impls::ProgressResponder<Self, T>
    where
        T: openraft::OptionalSend + 'static;
    type Batch<T>
        = openraft::impls::InlineBatch<T>
    where
        T: openraft::OptionalSend + 'static;
    type AsyncRuntime = openraft::impls::TokioRuntime;
    type ErrorSource = openraft::impls::BoxedErrorSource;
}

/// A Raft node id: one incarnation of one broker.
pub type NodeId = u64;
/// An openraft log id in Strand's groups.
pub type LogId = openraft::LogId<openraft::vote::leader_id_std::CommittedLeaderId<u64>>;
/// An openraft entry in Strand's groups.
pub type Entry = <TypeConfig as openraft::RaftTypeConfig>::Entry;
/// An openraft vote in Strand's groups.
pub type Vote = openraft::impls::Vote<openraft::impls::leader_id_std::LeaderId<u64, u64>>;
/// The membership of a group, with each node's address.
pub type Membership = openraft::Membership<NodeId, openraft::impls::BasicNode>;
/// A membership with the log id that set it.
pub type StoredMembership = openraft::StoredMembership<
    openraft::vote::leader_id_std::CommittedLeaderId<u64>,
    NodeId,
    openraft::impls::BasicNode,
>;
/// Snapshot metadata in Strand's groups.
pub type SnapshotMeta = openraft::SnapshotMeta<
    openraft::vote::leader_id_std::CommittedLeaderId<u64>,
    NodeId,
    openraft::impls::BasicNode,
>;

/// A snapshot of a Strand group.
pub type Snapshot = openraft::Snapshot<
    openraft::vote::leader_id_std::CommittedLeaderId<u64>,
    NodeId,
    openraft::impls::BasicNode,
    SnapshotData,
>;

/// Builds a log id from a term and an index.
pub fn log_id(term: u64, index: u64) -> LogId {
    openraft::LogId::new(
        openraft::vote::leader_id_std::CommittedLeaderId::new(term),
        index,
    )
}

/// The application data of an entry: one Kafka RecordBatch v2, as produced.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch(pub Bytes);

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Batch({} bytes)", self.0.len())
    }
}

impl fmt::Display for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "batch of {} bytes", self.0.len())
    }
}

/// What applying an entry produced, returned to the writer once the entry is committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The offset of the entry's first record (for non-data entries, the next offset).
    pub base_offset: Offset,
    /// What the group's machine answered, if anything (for example a metadata command result).
    pub answer: Option<Bytes>,
}
