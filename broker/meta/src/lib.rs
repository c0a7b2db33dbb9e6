//! The metadata core of Strand: the state machine of the metadata Raft group and the pure
//! decisions the controller makes before proposing to it.
//!
//! Every broker applies the same [`Command`]s in the same order to a [`ClusterState`] and
//! reaches the same state: [`ClusterState::apply`] depends on nothing but the state and the
//! command (no clock, no randomness, no hash-map order; ids and times come in the command).
//! The crate does no I/O and knows nothing of Raft libraries, sockets or async runtimes.

mod apply;
mod codec;
mod command;
mod config;
mod ids;
mod placement;
mod planner;
mod query;
mod security;
mod state;

pub use codec::{CodecError, MAX_COMMAND_BYTES, OLDEST_SNAPSHOT_FORMAT, SNAPSHOT_FORMAT};
pub use command::{
    Applied, Command, CommandError, InternalTopicChange, MAX_ADDR_LEN, MAX_LISTENERS,
    MAX_OWNER_LEN, MAX_PARTITIONS_PER_TOPIC, MAX_PRODUCER_ID_BLOCK, MAX_TOPIC_NAME_LEN,
    Registration, TopicNameError, validate_topic_name,
};
pub use config::{
    CleanupPolicy, CompressionType, ConfigError, KEYS, KeySpec, STORED_ONLY, TimestampType,
    TopicConfig, ValueKind, check_entry, default_value, key_spec, validate_topic_config,
};
pub use ids::{BrokerId, ClusterId, NodeId, PartitionId, TopicId};
pub use placement::{Load, PlacementBroker, PlacementError, place_new_partitions};
pub use planner::{
    LeaderTransfer, Plan, PlanBroker, PlanPartition, PlanState, ReplicaMove, apply_plan, plan,
};
pub use query::{BrokerSummary, ClusterDescription};
pub use security::{MAX_SCRAM_USER_LEN, check_scram_user};
pub use state::{Broker, BrokerState, ClusterState, PartitionAssignment, Topic, TopicKind};
