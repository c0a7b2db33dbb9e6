//! Placeholder of the balancing planner's interface, replaced by the planner itself.

use serde::{Deserialize, Serialize};

use crate::ids::{BrokerId, TopicId};

/// A broker's state for the planner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlanState {
    /// Takes replicas.
    Active,
    /// Being emptied.
    Draining,
    /// Failed for longer than the failure timeout.
    Down,
}

/// A broker as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanBroker {
    /// Id.
    pub id: BrokerId,
    /// Rack.
    pub rack: Option<String>,
    /// State.
    pub state: PlanState,
}

/// One partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanPartition {
    /// Topic.
    pub topic: TopicId,
    /// Partition.
    pub partition: u32,
    /// Replicas.
    pub replicas: Vec<BrokerId>,
    /// Leader.
    pub leader: Option<BrokerId>,
    /// Replication factor.
    pub replication_factor: u16,
    /// Size.
    pub size_bytes: u64,
}

/// A move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaMove {
    /// Topic.
    pub topic: TopicId,
    /// Partition.
    pub partition: u32,
    /// From.
    pub from: Vec<BrokerId>,
    /// To.
    pub to: Vec<BrokerId>,
    /// Bytes.
    pub bytes: u64,
}

/// A transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderTransfer {
    /// Topic.
    pub topic: TopicId,
    /// Partition.
    pub partition: u32,
    /// From.
    pub from: Option<BrokerId>,
    /// To.
    pub to: BrokerId,
}

/// A plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Moves.
    pub moves: Vec<ReplicaMove>,
    /// Transfers.
    pub leader_transfers: Vec<LeaderTransfer>,
}

impl Plan {
    /// Bytes.
    pub fn bytes_moved(&self) -> u64 {
        self.moves.iter().map(|m| m.bytes).sum()
    }
}

/// Plans.
pub fn plan(_brokers: &[PlanBroker], _partitions: &[PlanPartition]) -> Plan {
    Plan::default()
}
