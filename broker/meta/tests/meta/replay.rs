//! Random command logs, valid and not: every replica reaches the same state, refusals change
//! nothing, and a snapshot taken anywhere restores that exact state.

use std::collections::BTreeMap;

use proptest::prelude::*;
use strand_meta::{BrokerId, BrokerState, ClusterState, Command, NodeId, TopicKind};

use super::{cluster_id, config, topic_id};

/// `rf` distinct brokers of 0..6 in any order; broker 5 is never registered.
fn replica_list(rf: usize) -> impl Strategy<Value = Vec<BrokerId>> {
    Just((0u32..6).map(BrokerId).collect::<Vec<_>>())
        .prop_shuffle()
        .prop_map(move |ids| ids[..rf].to_vec())
}

/// Partitions of 1 to 3 replicas each, all of one size.
fn assignments(max_partitions: usize) -> impl Strategy<Value = Vec<Vec<BrokerId>>> {
    (1usize..4).prop_flat_map(move |rf| prop::collection::vec(replica_list(rf), 0..max_partitions))
}

/// A config entry, valid or not.
fn entry() -> impl Strategy<Value = (&'static str, &'static str)> {
    prop::sample::select(vec![
        ("retention.ms", "-1"),
        ("retention.ms", "1000"),
        ("cleanup.policy", "compact"),
        ("segment.ms", "0"),
        ("bogus", "1"),
    ])
}

fn command() -> impl Strategy<Value = Command> {
    let broker = (0u32..5).prop_map(BrokerId);
    let topic = (0u128..4).prop_map(topic_id);
    let state = prop_oneof![
        3 => Just(BrokerState::Active),
        1 => Just(BrokerState::Draining),
        1 => Just(BrokerState::Decommissioned),
    ];
    let key = prop::sample::select(vec!["retention.ms", "cleanup.policy", "bogus"]);
    // An owner as a check or a change: absent, no one, or one of two.
    let owner = || {
        prop::option::of(prop::option::of(prop::sample::select(vec!["a", "b"])))
            .prop_map(|o| o.map(|o| o.map(str::to_owned)))
    };
    prop_oneof![
        1 => (0u128..2).prop_map(|seed| Command::Bootstrap {
            cluster_id: cluster_id(seed)
        }),
        2 => (broker.clone(), 0u64..8, prop::option::of("[ab]")).prop_map(|(b, node, rack)| {
            Command::RegisterBroker {
                broker_id: b,
                listeners: Default::default(),
                node_id: NodeId(node),
                kafka_addr: format!("b{b}:9092"),
                grpc_addr: format!("b{b}:9093"),
                http_addr: format!("b{b}:9644"),
                rack,
                now_ms: node,
            }
        }),
        4 => (
            topic.clone(),
            prop::sample::select(vec!["a", "b", "c", "__d", ""]),
            assignments(4),
            prop::option::of(entry()),
            prop::option::of(prop::sample::select(vec!["a", "b", ""])),
        )
            .prop_map(|(id, name, assignments, entry, owner)| Command::CreateTopic {
                topic_id: id,
                name: name.to_owned(),
                // `__d` is the internal one, which no command may delete, grow or own.
                kind: if name == "__d" { TopicKind::Internal } else { TopicKind::User },
                replication_factor: assignments.first().map_or(2, |a| a.len() as u16),
                config: entry.map_or_else(BTreeMap::new, |(k, v)| config(&[(k, v)])),
                assignments,
                now_ms: 0,
                owner: owner.map(str::to_owned),
            }),
        1 => (topic.clone(), owner()).prop_map(|(id, expected_owner)| Command::DeleteTopic {
            topic_id: id,
            expected_owner,
        }),
        2 => (
            topic.clone(),
            owner(),
            assignments(2),
            prop::option::of(entry()),
            owner(),
        )
            // No new replication factor: replica lists follow one only by reassignment, which
            // would break the replica count checked below.
            .prop_map(|(id, expected_owner, add, entry, owner)| Command::UpdateTopic {
                topic_id: id,
                expected_owner,
                assignments_to_add: add,
                replication_factor: None,
                set_config: entry.map_or_else(BTreeMap::new, |(k, v)| config(&[(k, v)])),
                remove_config: Vec::new(),
                owner,
            }),
        2 => (topic.clone(), assignments(3)).prop_map(|(id, add)| Command::CreatePartitions {
            topic_id: id,
            assignments_to_add: add,
        }),
        2 => (topic, entry(), prop::collection::vec(key, 0..2)).prop_map(
            |(id, (k, v), remove)| Command::AlterTopicConfig {
                topic_id: id,
                set: config(&[(k, v)]),
                remove: remove.into_iter().map(str::to_owned).collect(),
            }
        ),
        1 => (broker, state).prop_map(|(b, s)| Command::SetBrokerState {
            broker_id: b,
            state: s
        }),
        1 => (0u64..3).prop_map(|count| Command::AllocateProducerIds { count }),
    ]
}

proptest! {
    #[test]
    fn replicas_applying_the_same_log_agree(
        log in prop::collection::vec(command(), 0..60),
    ) {
        // Most logs start as real ones do, so that topic commands find brokers to use.
        let start = (0..4).map(|b| super::register(b, u64::from(b), None));
        let log: Vec<Command> = std::iter::once(Command::Bootstrap { cluster_id: cluster_id(0) })
            .chain(start)
            .chain(log)
            .collect();
        let mut leader = ClusterState::new();
        let mut follower = ClusterState::new();
        for command in &log {
            // The follower receives the command as bytes, as it would from the Raft log.
            let received = Command::from_bytes(&command.to_bytes()).unwrap();
            let before = leader.clone();
            let on_leader = leader.apply(command);
            let on_follower = follower.apply(&received);
            prop_assert_eq!(&on_leader, &on_follower);
            if on_leader.is_err() {
                prop_assert_eq!(&leader, &before);
            } else {
                prop_assert_eq!(leader.version(), before.version() + 1);
            }
            prop_assert_eq!(&leader, &follower);
            for kept in before.topics().filter(|t| t.kind == TopicKind::Internal) {
                let now = leader.topic(kept.id);
                prop_assert!(now.is_some(), "internal topic {} deleted", kept.name);
                let now = now.unwrap();
                prop_assert_eq!(now.partitions.len(), kept.partitions.len());
                prop_assert_eq!(now.replication_factor, kept.replication_factor);
            }
            let restored = ClusterState::from_bytes(&leader.to_bytes()).unwrap();
            prop_assert_eq!(&restored, &leader);
            for topic in leader.topics() {
                prop_assert_eq!(leader.topic_by_name(&topic.name).map(|t| t.id), Some(topic.id));
                if topic.kind == TopicKind::Internal {
                    prop_assert_eq!(&topic.owner, &None);
                }
                prop_assert!(strand_meta::validate_topic_config(&topic.config).is_ok());
                for partition in &topic.partitions {
                    prop_assert_eq!(partition.replicas.len(), usize::from(topic.replication_factor));
                }
            }
        }
        prop_assert_eq!(leader.to_bytes(), follower.to_bytes());
    }
}
