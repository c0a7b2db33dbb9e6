//! The replicated cluster metadata: brokers, topics, their assignments, producer-id blocks.
//!
//! Fields are private: the state changes only through [`ClusterState::apply`], so every broker
//! that applies the same commands holds the same state.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use strand_auth::{AclBinding, ScramCredential, ScramMechanism};

use crate::ids::{BrokerId, ClusterId, NodeId, TopicId};

/// What a broker is doing in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerState {
    /// Takes new replicas and leadership.
    Active,
    /// Being emptied: takes nothing new, its replicas are moved away.
    Draining,
    /// Emptied and out of the cluster; it hosts no replica.
    Decommissioned,
}

impl std::fmt::Display for BrokerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BrokerState::Active => "active",
            BrokerState::Draining => "draining",
            BrokerState::Decommissioned => "decommissioned",
        })
    }
}

/// One broker as the metadata group knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Broker {
    /// Stable identity.
    pub id: BrokerId,
    /// The Raft node id of the current incarnation.
    pub node_id: NodeId,
    /// Node ids of previous incarnations, oldest first; none of them is ever accepted again.
    pub retired_node_ids: Vec<NodeId>,
    /// Advertised Kafka listener, `host:port`: the first of `listeners`.
    pub kafka_addr: String,
    /// Every advertised Kafka listener by name, `host:port` each; empty for a broker that
    /// registered a single listener (then `kafka_addr` serves every client).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub listeners: BTreeMap<String, String>,
    /// Advertised gRPC listener (Raft and admin), `host:port`.
    pub grpc_addr: String,
    /// Advertised HTTP listener (metrics and probes), `host:port`.
    pub http_addr: String,
    /// Failure domain, when the cluster is rack aware.
    pub rack: Option<String>,
    /// Active, draining or decommissioned.
    pub state: BrokerState,
    /// When the current incarnation registered, in milliseconds since the Unix epoch.
    pub registered_at_ms: u64,
}

/// Whether a topic is a user's or one Strand keeps for itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopicKind {
    /// A user topic; its name may not start with `__`.
    User,
    /// An internal topic such as `__consumer_offsets`; only these may start with `__`.
    Internal,
}

/// The replicas of one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionAssignment {
    /// Brokers holding a replica, in preference order: the first is the preferred leader.
    pub replicas: Vec<BrokerId>,
    /// The node ids (incarnations) of the replicas when the partition was created. The first of
    /// them starts the partition's Raft group; a later incarnation of that broker must not,
    /// because the group already exists on the other replicas.
    ///
    /// Emptied by the first reassignment: by then the group has run, and a broker that starts
    /// hosting the partition later must be brought in by the group's leader.
    #[serde(default)]
    pub initial_nodes: Vec<NodeId>,
    /// Brokers dropped from `replicas` by a reassignment that is not finished: they keep their
    /// replica until the partition's group has exactly `replicas` as voters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leaving: Vec<BrokerId>,
}

impl PartitionAssignment {
    /// The broker that should lead this partition when it is up.
    pub fn preferred_leader(&self) -> Option<BrokerId> {
        self.replicas.first().copied()
    }

    /// Whether a reassignment of this partition is under way.
    pub fn is_moving(&self) -> bool {
        !self.leaving.is_empty()
    }

    /// Every broker that hosts a replica now: the replica list, then the leaving ones.
    pub fn hosts(&self) -> impl Iterator<Item = BrokerId> + '_ {
        self.replicas.iter().chain(&self.leaving).copied()
    }
}

/// One topic as the metadata group knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    /// Identity, distinct from the name.
    pub id: TopicId,
    /// Kafka name.
    pub name: String,
    /// User or internal.
    pub kind: TopicKind,
    /// Replicas per partition.
    pub replication_factor: u16,
    /// Config entries set on the topic, in Kafka's string form; absent keys take defaults.
    /// Always valid by [`validate_topic_config`](crate::validate_topic_config).
    pub config: BTreeMap<String, String>,
    /// Partitions by number: index `i` is partition `i`.
    pub partitions: Vec<PartitionAssignment>,
    /// When the topic was created, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// Who manages the topic (such as `strand.dev/Topic/<namespace>/<name>/<uid>` for the
    /// operator's Topic resources); `None` for no one. Strand only records it and compares it
    /// with the `expected_owner` of the commands that change or delete the topic.
    ///
    /// Absent from snapshots of format 1, written before topics had owners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl Topic {
    /// Whether Strand keeps this topic for itself (`__consumer_offsets`).
    pub fn is_internal(&self) -> bool {
        self.kind == TopicKind::Internal
    }
}

/// The whole replicated metadata of a cluster.
///
/// It serializes without its name index; deserializing rebuilds the index and checks that the
/// maps agree with what they hold, so a snapshot cannot bring in a state `apply` could never
/// have produced in those respects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StateRepr")]
pub struct ClusterState {
    pub(crate) cluster_id: Option<ClusterId>,
    pub(crate) brokers: BTreeMap<BrokerId, Broker>,
    pub(crate) topics: BTreeMap<TopicId, Topic>,
    #[serde(skip_serializing)]
    pub(crate) topic_names: BTreeMap<String, TopicId>,
    pub(crate) next_producer_id: u64,
    pub(crate) version: u64,
    /// Kafka ACLs, in order.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub(crate) acls: BTreeSet<AclBinding>,
    /// SCRAM credentials by user and mechanism.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) scram: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
}

/// The serialized form of [`ClusterState`], checked on the way in.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateRepr {
    cluster_id: Option<ClusterId>,
    brokers: BTreeMap<BrokerId, Broker>,
    topics: BTreeMap<TopicId, Topic>,
    next_producer_id: u64,
    version: u64,
    #[serde(default)]
    acls: BTreeSet<AclBinding>,
    #[serde(default)]
    scram: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
}

impl TryFrom<StateRepr> for ClusterState {
    type Error = String;

    fn try_from(repr: StateRepr) -> Result<Self, String> {
        if let Some((key, broker)) = repr.brokers.iter().find(|(key, b)| **key != b.id) {
            return Err(format!("broker under key {key} has id {}", broker.id));
        }
        let mut topic_names = BTreeMap::new();
        for (key, topic) in &repr.topics {
            if *key != topic.id {
                return Err(format!("topic under key {key} has id {}", topic.id));
            }
            if topic_names.insert(topic.name.clone(), topic.id).is_some() {
                return Err(format!("two topics are named `{}`", topic.name));
            }
        }
        Ok(ClusterState {
            cluster_id: repr.cluster_id,
            brokers: repr.brokers,
            topics: repr.topics,
            topic_names,
            next_producer_id: repr.next_producer_id,
            version: repr.version,
            acls: repr.acls,
            scram: repr.scram,
        })
    }
}

impl Default for ClusterState {
    fn default() -> Self {
        Self::new()
    }
}

impl ClusterState {
    /// The state before any command: no cluster id, no brokers, no topics.
    pub fn new() -> Self {
        ClusterState {
            cluster_id: None,
            brokers: BTreeMap::new(),
            topics: BTreeMap::new(),
            topic_names: BTreeMap::new(),
            next_producer_id: 0,
            version: 0,
            acls: BTreeSet::new(),
            scram: BTreeMap::new(),
        }
    }

    /// The cluster's id, once bootstrapped.
    pub fn cluster_id(&self) -> Option<ClusterId> {
        self.cluster_id
    }

    /// Every broker ever registered, by id.
    pub fn brokers(&self) -> &BTreeMap<BrokerId, Broker> {
        &self.brokers
    }

    /// One broker.
    pub fn broker(&self, id: BrokerId) -> Option<&Broker> {
        self.brokers.get(&id)
    }

    /// Every topic, by id.
    pub fn topics_by_id(&self) -> &BTreeMap<TopicId, Topic> {
        &self.topics
    }

    /// One topic by id.
    pub fn topic(&self, id: TopicId) -> Option<&Topic> {
        self.topics.get(&id)
    }

    /// The first producer id the next block will hand out.
    pub fn next_producer_id(&self) -> u64 {
        self.next_producer_id
    }

    /// Every Kafka ACL.
    pub fn acls(&self) -> &BTreeSet<AclBinding> {
        &self.acls
    }

    /// A user's SCRAM credential for a mechanism.
    pub fn scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Option<&ScramCredential> {
        self.scram.get(user)?.get(&mechanism)
    }

    /// Every user with SCRAM credentials, and their credentials by mechanism.
    pub fn scram_users(&self) -> &BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>> {
        &self.scram
    }

    /// How many commands have been applied successfully; a command that fails leaves it as is.
    pub fn version(&self) -> u64 {
        self.version
    }
}
