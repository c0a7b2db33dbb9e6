//! Applying commands to the cluster as a whole: bootstrap, broker incarnations and states,
//! producer ids, versions, and the views built from them.

use strand_meta::{
    Applied, BrokerId, BrokerState, ClusterState, Command, CommandError, Load, NodeId, PartitionId,
    Registration,
};

use super::{cluster, cluster_id, config, create_topic, register, topic_id};

#[test]
fn commands_before_bootstrap_are_refused() {
    let mut state = ClusterState::new();
    assert_eq!(
        state.apply(&register(0, 100, None)),
        Err(CommandError::NotBootstrapped)
    );
    assert_eq!(state, ClusterState::new());
}

#[test]
fn second_bootstrap_is_refused_naming_the_existing_cluster() {
    let mut state = cluster(0);
    let err = state
        .apply(&Command::Bootstrap {
            cluster_id: cluster_id(2),
        })
        .unwrap_err();
    assert_eq!(
        err,
        CommandError::AlreadyBootstrapped {
            cluster_id: cluster_id(1)
        }
    );
    assert_eq!(state.cluster_id(), Some(cluster_id(1)));
}

#[test]
fn broker_back_with_new_node_id_retires_the_old_incarnation() {
    let mut state = cluster(1);
    let applied = state.apply(&register(0, 200, Some("a"))).unwrap();
    assert_eq!(
        applied,
        Applied::BrokerRegistered {
            broker_id: BrokerId(0),
            node_id: NodeId(200),
            registration: Registration::NewIncarnation {
                retired: NodeId(100)
            },
        }
    );
    let broker = state.broker(BrokerId(0)).unwrap();
    assert_eq!(broker.node_id, NodeId(200));
    assert_eq!(broker.retired_node_ids, vec![NodeId(100)]);
    assert_eq!(broker.rack.as_deref(), Some("a"));
}

#[test]
fn retired_node_id_is_never_accepted_again() {
    let mut state = cluster(1);
    state.apply(&register(0, 200, None)).unwrap();
    let before = state.clone();
    assert_eq!(
        state.apply(&register(0, 100, None)),
        Err(CommandError::NodeIdRetired {
            broker_id: BrokerId(0),
            node_id: NodeId(100)
        })
    );
    // Nor by another broker: a node id names one incarnation for ever.
    assert_eq!(
        state.apply(&register(7, 100, None)),
        Err(CommandError::NodeIdInUse {
            broker_id: BrokerId(7),
            node_id: NodeId(100),
            owner: BrokerId(0)
        })
    );
    assert_eq!(state, before);
}

#[test]
fn node_id_of_another_broker_is_refused() {
    let mut state = cluster(2);
    assert_eq!(
        state.apply(&register(1, 100, None)),
        Err(CommandError::NodeIdInUse {
            broker_id: BrokerId(1),
            node_id: NodeId(100),
            owner: BrokerId(0)
        })
    );
}

#[test]
fn same_incarnation_registering_again_updates_addresses_only() {
    let mut state = cluster(1);
    let before = state.broker(BrokerId(0)).unwrap().clone();
    let moved = Command::RegisterBroker {
        broker_id: BrokerId(0),
        listeners: Default::default(),
        node_id: NodeId(100),
        kafka_addr: "10.0.0.9:9092".into(),
        grpc_addr: "10.0.0.9:9093".into(),
        http_addr: "[fd00::9]:9644".into(),
        rack: Some("b".into()),
        now_ms: 99_999,
    };
    let applied = state.apply(&moved).unwrap();
    assert!(matches!(
        applied,
        Applied::BrokerRegistered {
            registration: Registration::SameIncarnation,
            ..
        }
    ));
    let after = state.broker(BrokerId(0)).unwrap();
    assert_eq!(after.kafka_addr, "10.0.0.9:9092");
    assert_eq!(after.http_addr, "[fd00::9]:9644");
    assert_eq!(after.rack.as_deref(), Some("b"));
    assert_eq!(after.registered_at_ms, before.registered_at_ms);
    assert!(after.retired_node_ids.is_empty());
}

#[test]
fn addresses_that_are_not_host_port_are_refused() {
    for bad in [
        "",
        "host",
        "host:",
        ":9092",
        "host:99999",
        "host:+80",
        "a b:1",
        "[::1:9092",
        "::1:9092",
    ] {
        let mut state = cluster(0);
        let command = Command::RegisterBroker {
            broker_id: BrokerId(0),
            listeners: Default::default(),
            node_id: NodeId(1),
            kafka_addr: "ok:9092".into(),
            grpc_addr: bad.into(),
            http_addr: "ok:9644".into(),
            rack: None,
            now_ms: 0,
        };
        assert_eq!(
            state.apply(&command),
            Err(CommandError::InvalidAddress {
                broker_id: BrokerId(0),
                listener: "grpc".into(),
                addr: bad.into()
            }),
            "{bad:?}"
        );
    }
}

#[test]
fn refused_commands_change_nothing_not_even_the_version() {
    let mut state = cluster(2);
    state.apply(&create_topic(1, "t", &[&[0, 1]])).unwrap();
    let bad = [
        create_topic(2, "t", &[&[0]]),
        Command::DeleteTopic {
            topic_id: topic_id(9),
            expected_owner: None,
        },
        Command::CreatePartitions {
            topic_id: topic_id(1),
            assignments_to_add: vec![vec![BrokerId(0), BrokerId(1)], vec![BrokerId(0)]],
        },
        Command::AlterTopicConfig {
            topic_id: topic_id(1),
            set: config(&[("retention.ms", "1000"), ("segment.ms", "0")]),
            remove: vec![],
        },
        Command::SetBrokerState {
            broker_id: BrokerId(0),
            state: BrokerState::Decommissioned,
        },
        Command::AllocateProducerIds { count: 0 },
    ];
    for command in &bad {
        let before = state.clone();
        assert!(state.apply(command).is_err(), "{command:?}");
        assert_eq!(state, before, "{command:?}");
    }
}

#[test]
fn every_applied_command_bumps_the_version() {
    let mut state = cluster(2);
    assert_eq!(state.version(), 3);
    state.apply(&create_topic(1, "t", &[&[0, 1]])).unwrap();
    state
        .apply(&Command::AllocateProducerIds { count: 10 })
        .unwrap();
    assert_eq!(state.version(), 5);
}

#[test]
fn broker_hosting_replicas_cannot_be_decommissioned() {
    let mut state = cluster(2);
    state
        .apply(&create_topic(1, "t", &[&[0, 1], &[1, 0]]))
        .unwrap();
    let decommission = Command::SetBrokerState {
        broker_id: BrokerId(1),
        state: BrokerState::Decommissioned,
    };
    assert_eq!(
        state.apply(&decommission),
        Err(CommandError::BrokerHostsReplicas {
            broker_id: BrokerId(1),
            replicas: 2
        })
    );
    state
        .apply(&Command::DeleteTopic {
            topic_id: topic_id(1),
            expected_owner: None,
        })
        .unwrap();
    assert_eq!(
        state.apply(&decommission),
        Ok(Applied::BrokerStateSet {
            broker_id: BrokerId(1),
            previous: BrokerState::Active,
            state: BrokerState::Decommissioned
        })
    );
    assert_eq!(
        state.apply(&Command::SetBrokerState {
            broker_id: BrokerId(5),
            state: BrokerState::Active,
        }),
        Err(CommandError::UnknownBroker {
            broker_id: BrokerId(5)
        })
    );
}

#[test]
fn producer_id_blocks_follow_each_other() {
    let mut state = cluster(0);
    let first = state.apply(&Command::AllocateProducerIds { count: 1000 });
    let second = state.apply(&Command::AllocateProducerIds { count: 5 });
    assert_eq!(
        first,
        Ok(Applied::ProducerIdsAllocated {
            first: 0,
            count: 1000
        })
    );
    assert_eq!(
        second,
        Ok(Applied::ProducerIdsAllocated {
            first: 1000,
            count: 5
        })
    );
    assert_eq!(state.next_producer_id(), 1005);
}

#[test]
fn producer_ids_stop_at_the_largest_kafka_id() {
    let mut json: serde_json::Value = serde_json::from_slice(&cluster(0).to_bytes()).unwrap();
    json["state"]["next_producer_id"] = serde_json::json!(i64::MAX as u64 - 1);
    let mut state = ClusterState::from_bytes(&serde_json::to_vec(&json).unwrap()).unwrap();
    assert_eq!(
        state.apply(&Command::AllocateProducerIds { count: 3 }),
        Err(CommandError::ProducerIdsExhausted {
            next: i64::MAX as u64 - 1,
            count: 3
        })
    );
    assert_eq!(
        state.apply(&Command::AllocateProducerIds { count: 2 }),
        Ok(Applied::ProducerIdsAllocated {
            first: i64::MAX as u64 - 1,
            count: 2
        })
    );
}

#[test]
fn broker_partitions_and_counts_are_described() {
    let mut state = cluster(3);
    state
        .apply(&create_topic(1, "a", &[&[0, 1], &[1, 2]]))
        .unwrap();
    state.apply(&create_topic(2, "b", &[&[1, 0]])).unwrap();
    let hosted = state.assignments_for(BrokerId(0));
    assert_eq!(
        hosted,
        vec![
            (topic_id(1), PartitionId(0), vec![BrokerId(0), BrokerId(1)]),
            (topic_id(2), PartitionId(0), vec![BrokerId(1), BrokerId(0)]),
        ]
    );
    let load = state.load();
    assert_eq!(
        load[&BrokerId(1)],
        Load {
            replicas: 3,
            leaders: 2
        }
    );
    assert_eq!(
        load[&BrokerId(2)],
        Load {
            replicas: 1,
            leaders: 0
        }
    );
    let description = state.describe_cluster();
    assert_eq!(description.cluster_id, Some(cluster_id(1)));
    assert_eq!((description.topics, description.partitions), (2, 3));
    let counts: Vec<(u32, u64, u64)> = description
        .brokers
        .iter()
        .map(|b| (b.id.0, b.replicas, b.preferred_leaders))
        .collect();
    assert_eq!(counts, [(0, 2, 1), (1, 3, 2), (2, 1, 0)]);
}
