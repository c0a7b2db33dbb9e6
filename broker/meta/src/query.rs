//! Read-only views of the cluster state that the admin API and the controller need.

use std::collections::BTreeMap;

use crate::ids::{BrokerId, ClusterId, NodeId, PartitionId, TopicId};
use crate::placement::{Load, PlacementBroker};
use crate::state::{BrokerState, ClusterState, Topic};

/// One broker as DescribeCluster shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerSummary {
    /// Stable id.
    pub id: BrokerId,
    /// Current incarnation.
    pub node_id: NodeId,
    /// Active, draining or decommissioned.
    pub state: BrokerState,
    /// Advertised Kafka listener.
    pub kafka_addr: String,
    /// Advertised gRPC listener.
    pub grpc_addr: String,
    /// Failure domain, if any.
    pub rack: Option<String>,
    /// Replicas assigned to it.
    pub replicas: u64,
    /// Partitions whose preferred leader it is.
    pub preferred_leaders: u64,
}

/// What the metadata says about the cluster as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDescription {
    /// The cluster's id, once bootstrapped.
    pub cluster_id: Option<ClusterId>,
    /// Every registered broker, by id.
    pub brokers: Vec<BrokerSummary>,
    /// Number of topics.
    pub topics: usize,
    /// Number of partitions over all topics.
    pub partitions: u64,
    /// The metadata version the description was taken at.
    pub version: u64,
}

impl ClusterState {
    /// A topic by its Kafka name.
    pub fn topic_by_name(&self, name: &str) -> Option<&Topic> {
        self.topic_names
            .get(name)
            .and_then(|id| self.topics.get(id))
    }

    /// Every topic, sorted by name.
    pub fn topics(&self) -> impl Iterator<Item = &Topic> {
        self.topic_names
            .values()
            .filter_map(|id| self.topics.get(id))
    }

    /// Replicas and preferred leaderships per broker, from the current assignments. Every
    /// registered broker is present, with zeros if it hosts nothing.
    pub fn load(&self) -> BTreeMap<BrokerId, Load> {
        let mut load: BTreeMap<BrokerId, Load> = self
            .brokers
            .keys()
            .map(|id| (*id, Load::default()))
            .collect();
        for topic in self.topics.values() {
            for partition in &topic.partitions {
                for (position, broker) in partition.replicas.iter().enumerate() {
                    let entry = load.entry(*broker).or_default();
                    entry.replicas += 1;
                    if position == 0 {
                        entry.leaders += 1;
                    }
                }
            }
        }
        load
    }

    /// The brokers as placement sees them.
    pub fn placement_brokers(&self) -> Vec<PlacementBroker> {
        self.brokers
            .values()
            .map(|b| PlacementBroker {
                id: b.id,
                rack: b.rack.clone(),
                state: b.state,
            })
            .collect()
    }

    /// Brokers with their states and counts, for DescribeCluster.
    pub fn describe_cluster(&self) -> ClusterDescription {
        let load = self.load();
        let brokers = self
            .brokers
            .values()
            .map(|b| {
                let counts = load.get(&b.id).copied().unwrap_or_default();
                BrokerSummary {
                    id: b.id,
                    node_id: b.node_id,
                    state: b.state,
                    kafka_addr: b.kafka_addr.clone(),
                    grpc_addr: b.grpc_addr.clone(),
                    rack: b.rack.clone(),
                    replicas: counts.replicas,
                    preferred_leaders: counts.leaders,
                }
            })
            .collect();
        ClusterDescription {
            cluster_id: self.cluster_id,
            brokers,
            topics: self.topics.len(),
            partitions: self
                .topics
                .values()
                .map(|t| t.partitions.len() as u64)
                .sum(),
            version: self.version,
        }
    }

    /// The partitions a broker hosts a replica of (listed or leaving), with their replica
    /// lists, in topic-id and partition order: what the broker must run locally.
    pub fn assignments_for(&self, broker: BrokerId) -> Vec<(TopicId, PartitionId, Vec<BrokerId>)> {
        self.topics
            .values()
            .flat_map(|topic| {
                topic
                    .partitions
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.hosts().any(|b| b == broker))
                    .map(|(n, p)| (topic.id, PartitionId(n as u32), p.replicas.clone()))
            })
            .collect()
    }
}
