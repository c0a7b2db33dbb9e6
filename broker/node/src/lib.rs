//! What one Strand broker holds — its identity, the Raft groups it hosts, its view of the
//! cluster, its channels to peers — and the narrow handles its listeners and tasks use:
//! [`Cluster`] (the metadata group: the applied state, the controller, proposals),
//! [`Replicas`] (the partition replicas hosted here, and the one path that appends to them), [`SharedViews`] (the controller's view
//! of leaders and live brokers) and [`TopicAdmin`] (topic administration).

pub mod append;
mod append_stream;
mod cluster;
pub mod convert;
pub mod disk;
pub mod failpoints;
pub mod identity;
pub mod limits;
pub mod meta;
pub mod network;
pub mod producers;
pub mod registry;
mod replicas;
pub mod tls;
mod topic_admin;
pub mod views;

pub use append::{AppendError, CheckedBatch, TopicRules, Writer};
pub use cluster::{Cluster, ProposeError, now_ms};
pub use disk::{DEFAULT_DISK_RESERVE_BYTES, DiskGuard};
pub use identity::Identity;
pub use limits::Limits;
pub use meta::{MetaMachine, Outcome, Refusal, SharedState};
pub use network::{GroupNetwork, Peers};
pub use registry::{
    Group, META_GROUP, MetaRaft, PartitionRaft, PartitionReplica, Registry, partition_group,
};
pub use replicas::{Appended, Replicas};
pub use tls::{TlsError, TlsFiles};
pub use topic_admin::{AdminFuture, TopicAdmin};
pub use views::{LeaderView, SharedViews};
