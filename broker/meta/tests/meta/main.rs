//! Behaviour tests of the metadata core: applying commands, config rules, placement and
//! encoding.

mod cluster;
mod codec;
mod config;
mod fuzz;
mod owners;
mod placement;
mod planner;
mod reassign;
mod replay;
mod topics;

use std::collections::BTreeMap;

use strand_meta::{BrokerId, ClusterId, ClusterState, Command, NodeId, TopicId, TopicKind};
use uuid::Uuid;

/// A cluster id that differs per seed, without randomness.
fn cluster_id(seed: u128) -> ClusterId {
    ClusterId(Uuid::from_u128(0xc1u128 << 120 | seed))
}

/// A topic id that differs per seed, without randomness.
fn topic_id(seed: u128) -> TopicId {
    TopicId(Uuid::from_u128(0x70u128 << 120 | seed))
}

fn register(broker: u32, node: u64, rack: Option<&str>) -> Command {
    Command::RegisterBroker {
        broker_id: BrokerId(broker),
        listeners: Default::default(),
        node_id: NodeId(node),
        kafka_addr: format!("broker-{broker}.strand:9092"),
        grpc_addr: format!("broker-{broker}.strand:9093"),
        http_addr: format!("broker-{broker}.strand:9644"),
        rack: rack.map(str::to_owned),
        now_ms: 1_000 + u64::from(broker),
    }
}

fn create_topic(seed: u128, name: &str, assignments: &[&[u32]]) -> Command {
    Command::CreateTopic {
        topic_id: topic_id(seed),
        name: name.to_owned(),
        kind: TopicKind::User,
        replication_factor: assignments.first().map_or(1, |a| a.len() as u16),
        config: BTreeMap::new(),
        assignments: assignments
            .iter()
            .map(|a| a.iter().copied().map(BrokerId).collect())
            .collect(),
        now_ms: 5_000,
        owner: None,
    }
}

/// A bootstrapped cluster with brokers 0..n, node id 100 + broker id, no racks.
fn cluster(brokers: u32) -> ClusterState {
    let mut state = ClusterState::new();
    state
        .apply(&Command::Bootstrap {
            cluster_id: cluster_id(1),
        })
        .unwrap();
    for b in 0..brokers {
        state.apply(&register(b, 100 + u64::from(b), None)).unwrap();
    }
    state
}

fn config(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}
