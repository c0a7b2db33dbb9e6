//! Applying topic commands: names, assignments, partitions and configs.

use strand_meta::{
    Applied, BrokerId, BrokerState, Command, CommandError, ConfigError, PartitionId, TopicKind,
    TopicNameError,
};

use super::{cluster, config, create_topic, topic_id};

#[test]
fn created_topic_is_found_by_name_and_id() {
    let mut state = cluster(3);
    let applied = state
        .apply(&create_topic(1, "orders", &[&[0, 1], &[1, 2], &[2, 0]]))
        .unwrap();
    assert_eq!(
        applied,
        Applied::TopicCreated {
            topic_id: topic_id(1)
        }
    );
    let topic = state.topic_by_name("orders").unwrap();
    assert_eq!(topic.id, topic_id(1));
    assert_eq!(topic.replication_factor, 2);
    assert_eq!(topic.partitions.len(), 3);
    assert_eq!(topic.partitions[1].preferred_leader(), Some(BrokerId(1)));
    assert_eq!(topic.created_at_ms, 5_000);
    assert_eq!(state.topic(topic_id(1)), Some(topic));
}

#[test]
fn topics_are_listed_by_name() {
    let mut state = cluster(1);
    for (seed, name) in [(1, "zeta"), (2, "alpha"), (3, "mid")] {
        state.apply(&create_topic(seed, name, &[&[0]])).unwrap();
    }
    let names: Vec<&str> = state.topics().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["alpha", "mid", "zeta"]);
}

#[test]
fn topic_name_in_use_is_refused() {
    let mut state = cluster(1);
    state.apply(&create_topic(1, "orders", &[&[0]])).unwrap();
    assert_eq!(
        state.apply(&create_topic(2, "orders", &[&[0]])),
        Err(CommandError::TopicAlreadyExists {
            name: "orders".into()
        })
    );
    assert_eq!(
        state.apply(&create_topic(1, "other", &[&[0]])),
        Err(CommandError::TopicIdInUse {
            topic_id: topic_id(1),
            name: "orders".into()
        })
    );
}

#[test]
fn topic_names_follow_kafka_rules() {
    let long = "x".repeat(250);
    let cases: &[(&str, Option<TopicNameError>)] = &[
        ("orders.v1_eu-west", None),
        (&long[..249], None),
        ("", Some(TopicNameError::Empty)),
        (&long, Some(TopicNameError::TooLong { len: 250 })),
        (".", Some(TopicNameError::DotOrDotDot)),
        ("..", Some(TopicNameError::DotOrDotDot)),
        ("a/b", Some(TopicNameError::InvalidCharacter { found: '/' })),
        (
            "café",
            Some(TopicNameError::InvalidCharacter { found: 'é' }),
        ),
        ("__consumer_offsets", Some(TopicNameError::Reserved)),
    ];
    for (name, expected) in cases {
        let mut state = cluster(1);
        let got = state.apply(&create_topic(1, name, &[&[0]]));
        match expected {
            None => assert!(got.is_ok(), "{name:?}: {got:?}"),
            Some(source) => assert_eq!(
                got,
                Err(CommandError::InvalidTopicName {
                    name: (*name).to_owned(),
                    source: source.clone()
                }),
                "{name:?}"
            ),
        }
    }
}

#[test]
fn internal_topics_may_use_reserved_names() {
    let mut state = cluster(1);
    let mut command = create_topic(1, "__consumer_offsets", &[&[0]]);
    if let Command::CreateTopic { kind, .. } = &mut command {
        *kind = TopicKind::Internal;
    }
    state.apply(&command).unwrap();
    assert_eq!(
        state.topic_by_name("__consumer_offsets").unwrap().kind,
        TopicKind::Internal
    );
}

#[test]
fn replication_factor_beyond_active_brokers_is_refused() {
    let mut state = cluster(3);
    state
        .apply(&Command::SetBrokerState {
            broker_id: BrokerId(2),
            state: BrokerState::Draining,
        })
        .unwrap();
    assert_eq!(
        state.apply(&create_topic(1, "t", &[&[0, 1, 2]])),
        Err(CommandError::NotEnoughBrokers {
            needed: 3,
            available: 2
        })
    );
    assert_eq!(
        state.apply(&create_topic(1, "t", &[&[]])),
        Err(CommandError::ZeroReplicationFactor)
    );
    assert_eq!(
        state.apply(&create_topic(1, "t", &[])),
        Err(CommandError::NoPartitions { name: "t".into() })
    );
}

#[test]
fn bad_assignments_are_refused_naming_the_partition() {
    let mut state = cluster(3);
    state
        .apply(&Command::SetBrokerState {
            broker_id: BrokerId(2),
            state: BrokerState::Draining,
        })
        .unwrap();
    let p1 = PartitionId(1);
    let cases: &[(&[&[u32]], CommandError)] = &[
        (
            &[&[0, 1], &[1]],
            CommandError::WrongReplicaCount {
                partition: p1,
                expected: 2,
                actual: 1,
            },
        ),
        (
            &[&[0, 1], &[1, 1]],
            CommandError::DuplicateReplica {
                partition: p1,
                broker_id: BrokerId(1),
            },
        ),
        (
            &[&[0, 1], &[1, 9]],
            CommandError::ReplicaOnUnknownBroker {
                partition: p1,
                broker_id: BrokerId(9),
            },
        ),
        (
            &[&[0, 1], &[2, 0]],
            CommandError::ReplicaOnInactiveBroker {
                partition: p1,
                broker_id: BrokerId(2),
                state: BrokerState::Draining,
            },
        ),
    ];
    for (assignments, expected) in cases {
        assert_eq!(
            state.apply(&create_topic(1, "t", assignments)).as_ref(),
            Err(expected)
        );
    }
    assert!(state.topic_by_name("t").is_none());
}

#[test]
fn deleting_a_topic_frees_its_name() {
    let mut state = cluster(1);
    state.apply(&create_topic(1, "t", &[&[0]])).unwrap();
    let applied = state
        .apply(&Command::DeleteTopic {
            topic_id: topic_id(1),
            expected_owner: None,
        })
        .unwrap();
    assert_eq!(
        applied,
        Applied::TopicDeleted {
            topic_id: topic_id(1),
            name: "t".into()
        }
    );
    assert!(state.topic_by_name("t").is_none());
    state.apply(&create_topic(2, "t", &[&[0]])).unwrap();
    assert_eq!(state.topic_by_name("t").unwrap().id, topic_id(2));
    assert_eq!(
        state.apply(&Command::DeleteTopic {
            topic_id: topic_id(1),
            expected_owner: None,
        }),
        Err(CommandError::UnknownTopicId {
            topic_id: topic_id(1)
        })
    );
}

#[test]
fn new_partitions_are_numbered_after_existing_ones() {
    let mut state = cluster(2);
    state.apply(&create_topic(1, "t", &[&[0, 1]])).unwrap();
    let applied = state
        .apply(&Command::CreatePartitions {
            topic_id: topic_id(1),
            assignments_to_add: vec![vec![BrokerId(1), BrokerId(0)]; 2],
        })
        .unwrap();
    assert_eq!(
        applied,
        Applied::PartitionsCreated {
            topic_id: topic_id(1),
            first: PartitionId(1),
            count: 2
        }
    );
    assert_eq!(state.topic(topic_id(1)).unwrap().partitions.len(), 3);
    assert_eq!(
        state.apply(&Command::CreatePartitions {
            topic_id: topic_id(1),
            assignments_to_add: vec![],
        }),
        Err(CommandError::PartitionsMustIncrease {
            topic: "t".into(),
            current: 3,
            requested: 3
        })
    );
}

#[test]
fn partition_count_has_a_ceiling() {
    let mut state = cluster(1);
    state.apply(&create_topic(1, "t", &[&[0]])).unwrap();
    let err = state
        .apply(&Command::CreatePartitions {
            topic_id: topic_id(1),
            assignments_to_add: vec![
                vec![BrokerId(0)];
                strand_meta::MAX_PARTITIONS_PER_TOPIC as usize
            ],
        })
        .unwrap_err();
    assert!(
        matches!(
            err,
            CommandError::TooManyPartitions {
                requested: 10_001,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn config_changes_set_and_remove_keys() {
    let mut state = cluster(1);
    let mut command = create_topic(1, "t", &[&[0]]);
    if let Command::CreateTopic { config: c, .. } = &mut command {
        *c = config(&[("retention.ms", "1000"), ("cleanup.policy", "compact")]);
    }
    state.apply(&command).unwrap();
    state
        .apply(&Command::AlterTopicConfig {
            topic_id: topic_id(1),
            set: config(&[("segment.bytes", "1048576")]),
            remove: vec!["retention.ms".into(), "flush.ms".into()],
        })
        .unwrap();
    assert_eq!(
        state.topic(topic_id(1)).unwrap().config,
        config(&[("cleanup.policy", "compact"), ("segment.bytes", "1048576")])
    );
}

#[test]
fn config_changes_that_make_no_sense_are_refused() {
    let mut state = cluster(1);
    state.apply(&create_topic(1, "t", &[&[0]])).unwrap();
    let alter = |set: &[(&str, &str)], remove: &[&str]| Command::AlterTopicConfig {
        topic_id: topic_id(1),
        set: config(set),
        remove: remove.iter().map(|k| (*k).to_owned()).collect(),
    };
    assert_eq!(
        state.apply(&alter(&[("retention.ms", "1")], &["retention.ms"])),
        Err(CommandError::ConflictingConfigChange {
            topic: "t".into(),
            key: "retention.ms".into()
        })
    );
    assert_eq!(
        state.apply(&alter(&[], &["retention.msec"])),
        Err(CommandError::InvalidConfig {
            topic: "t".into(),
            source: ConfigError::UnknownKey {
                key: "retention.msec".into()
            }
        })
    );
    let err = state
        .apply(&alter(&[("min.insync.replicas", "0")], &[]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid config for topic `t`: `min.insync.replicas` must be between 1 and 2147483647, not 0"
    );
}
