//! Encoding commands and snapshots: round trips, and malformed bytes refused without a panic.

use proptest::prelude::*;
use strand_meta::{
    BrokerId, BrokerState, ClusterState, CodecError, Command, MAX_COMMAND_BYTES, PartitionId,
    SNAPSHOT_FORMAT,
};

use super::{cluster, config, create_topic, register, topic_id};

fn sample_commands() -> Vec<Command> {
    vec![
        Command::Bootstrap {
            cluster_id: super::cluster_id(3),
        },
        register(4, 104, Some("zone-a")),
        create_topic(1, "orders", &[&[0, 1], &[1, 0]]),
        Command::DeleteTopic {
            topic_id: topic_id(1),
            expected_owner: None,
        },
        Command::CreatePartitions {
            topic_id: topic_id(1),
            assignments_to_add: vec![vec![BrokerId(2)]],
        },
        Command::AlterTopicConfig {
            topic_id: topic_id(1),
            set: config(&[("retention.ms", "-1")]),
            remove: vec!["segment.ms".into()],
        },
        Command::SetBrokerState {
            broker_id: BrokerId(1),
            state: BrokerState::Draining,
        },
        Command::AllocateProducerIds { count: 1000 },
        Command::ReassignPartition {
            topic_id: topic_id(1),
            partition: PartitionId(2),
            replicas: vec![BrokerId(3), BrokerId(1)],
        },
        Command::FinishReassignment {
            topic_id: topic_id(1),
            partition: PartitionId(2),
            replicas: vec![BrokerId(3), BrokerId(1)],
        },
        Command::SetReplicationFactor {
            topic_id: topic_id(1),
            replication_factor: 3,
        },
        owned_topic(2, "a"),
        Command::DeleteTopic {
            topic_id: topic_id(1),
            expected_owner: Some(None),
        },
        Command::DeleteTopic {
            topic_id: topic_id(1),
            expected_owner: Some(Some("a".into())),
        },
        Command::UpdateTopic {
            topic_id: topic_id(1),
            expected_owner: Some(None),
            assignments_to_add: vec![vec![BrokerId(1)]],
            replication_factor: Some(2),
            set_config: config(&[("retention.ms", "-1")]),
            remove_config: vec!["segment.ms".into()],
            owner: Some(Some("b".into())),
        },
        Command::UpdateTopic {
            topic_id: topic_id(1),
            expected_owner: Some(Some("b".into())),
            assignments_to_add: vec![],
            replication_factor: None,
            set_config: config(&[]),
            remove_config: vec![],
            owner: Some(None),
        },
    ]
}

fn owned_topic(seed: u128, owner: &str) -> Command {
    let mut command = create_topic(seed, "owned", &[&[0]]);
    if let Command::CreateTopic { owner: o, .. } = &mut command {
        *o = Some(owner.into());
    }
    command
}

#[test]
fn every_command_survives_encoding() {
    for command in sample_commands() {
        assert_eq!(Command::from_bytes(&command.to_bytes()).unwrap(), command);
    }
}

#[test]
fn commands_are_readable_json() {
    let bytes = Command::SetBrokerState {
        broker_id: BrokerId(1),
        state: BrokerState::Draining,
    }
    .to_bytes();
    assert_eq!(
        String::from_utf8(bytes).unwrap(),
        r#"{"type":"SetBrokerState","broker_id":1,"state":"draining"}"#
    );
}

#[test]
fn an_expected_owner_of_no_one_is_not_the_absence_of_a_check() {
    let delete = |expected_owner| Command::DeleteTopic {
        topic_id: topic_id(1),
        expected_owner,
    };
    let unchecked = String::from_utf8(delete(None).to_bytes()).unwrap();
    assert!(!unchecked.contains("expected_owner"), "{unchecked}");
    let no_one = String::from_utf8(delete(Some(None)).to_bytes()).unwrap();
    assert!(no_one.contains(r#""expected_owner":null"#), "{no_one}");
    assert_eq!(
        Command::from_bytes(no_one.as_bytes()).unwrap(),
        delete(Some(None))
    );
}

#[test]
fn commands_of_logs_written_before_owners_still_decode() {
    let id = topic_id(1).0;
    let old = format!(r#"{{"type":"DeleteTopic","topic_id":"{id}"}}"#);
    assert_eq!(
        Command::from_bytes(old.as_bytes()).unwrap(),
        Command::DeleteTopic {
            topic_id: topic_id(1),
            expected_owner: None,
        }
    );
    // A command without owners encodes as before, so older brokers can still read it.
    let create = String::from_utf8(create_topic(1, "t", &[&[0]]).to_bytes()).unwrap();
    assert!(!create.contains("owner"), "{create}");
}

#[test]
fn commands_with_unknown_fields_are_refused() {
    // A newer broker's field that this one would silently drop would make states diverge.
    let err =
        Command::from_bytes(br#"{"type":"AllocateProducerIds","count":1,"extra":2}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field `extra`"), "{err}");
}

#[test]
fn oversized_command_is_refused_before_parsing() {
    let bytes = vec![b' '; MAX_COMMAND_BYTES + 1];
    assert!(matches!(
        Command::from_bytes(&bytes),
        Err(CodecError::CommandTooLarge { .. })
    ));
}

#[test]
fn snapshot_restores_the_same_state() {
    let mut state = cluster(3);
    state
        .apply(&create_topic(1, "orders", &[&[0, 1], &[1, 2]]))
        .unwrap();
    state.apply(&register(1, 201, Some("b"))).unwrap();
    let restored = ClusterState::from_bytes(&state.to_bytes()).unwrap();
    assert_eq!(restored, state);
    assert_eq!(restored.topic_by_name("orders").unwrap().id, topic_id(1));
}

#[test]
fn snapshot_of_another_format_is_refused_by_number() {
    let mut json: serde_json::Value = serde_json::from_slice(&cluster(1).to_bytes()).unwrap();
    let next = SNAPSHOT_FORMAT + 1;
    json["format"] = serde_json::json!(next);
    let err = ClusterState::from_bytes(&serde_json::to_vec(&json).unwrap()).unwrap_err();
    assert!(
        matches!(err, CodecError::UnsupportedFormat { found } if found == next),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "metadata snapshot format {next} is not supported; this build reads formats 1 to 3"
        )
    );
}

#[test]
fn snapshot_without_owners_stays_in_the_format_older_brokers_read() {
    let mut state = cluster(2);
    state.apply(&create_topic(1, "t", &[&[0, 1]])).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&state.to_bytes()).unwrap();
    assert_eq!(json["format"], 1);
    let topic = &json["state"]["topics"][topic_id(1).0.to_string()];
    assert!(topic.get("owner").is_none(), "{topic}");
    // What a build before owners wrote loads, with no owner.
    let restored = ClusterState::from_bytes(&state.to_bytes()).unwrap();
    assert_eq!(restored.topic(topic_id(1)).unwrap().owner, None);
}

#[test]
fn snapshot_with_owners_is_format_2_and_keeps_them() {
    let mut state = cluster(1);
    state.apply(&owned_topic(1, "a")).unwrap();
    let bytes = state.to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(json["format"], 2);
    let restored = ClusterState::from_bytes(&bytes).unwrap();
    assert_eq!(restored, state);
    assert_eq!(
        restored.topic(topic_id(1)).unwrap().owner.as_deref(),
        Some("a")
    );
}

#[test]
fn snapshot_with_two_topics_of_one_name_is_refused() {
    let mut state = cluster(1);
    state.apply(&create_topic(1, "a", &[&[0]])).unwrap();
    state.apply(&create_topic(2, "b", &[&[0]])).unwrap();
    let text = String::from_utf8(state.to_bytes()).unwrap();
    let tampered = text.replace(r#""name":"b""#, r#""name":"a""#);
    let err = ClusterState::from_bytes(tampered.as_bytes()).unwrap_err();
    assert!(
        err.to_string().contains("two topics are named `a`"),
        "{err}"
    );
}

#[test]
fn snapshot_with_a_broker_under_the_wrong_key_is_refused() {
    let text = String::from_utf8(cluster(1).to_bytes()).unwrap();
    let tampered = text.replace(r#""0":{"id":0"#, r#""0":{"id":5"#);
    assert_ne!(tampered, text);
    assert!(ClusterState::from_bytes(tampered.as_bytes()).is_err());
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Command::from_bytes(&bytes);
        let _ = ClusterState::from_bytes(&bytes);
    }

    #[test]
    fn truncated_encodings_are_errors(cut in 0usize..1000) {
        let mut state = cluster(2);
        state.apply(&create_topic(1, "t", &[&[0, 1]])).unwrap();
        let snapshot = state.to_bytes();
        let command = create_topic(2, "u", &[&[1, 0]]).to_bytes();
        if cut < snapshot.len() {
            prop_assert!(ClusterState::from_bytes(&snapshot[..cut]).is_err());
        }
        if cut < command.len() {
            prop_assert!(Command::from_bytes(&command[..cut]).is_err());
        }
    }
}

#[test]
fn acls_scram_credentials_and_named_listeners_take_format_3_and_round_trip() {
    use strand_auth::{
        AclBinding, Operation, PatternType, Permission, ResourceType, ScramCredential,
        ScramMechanism,
    };
    use strand_meta::{Applied, CommandError};
    let mut state = cluster(1);
    let acl = AclBinding {
        resource_type: ResourceType::Topic,
        resource_name: "orders".into(),
        pattern_type: PatternType::Prefixed,
        principal: "User:alice".into(),
        host: "*".into(),
        operation: Operation::Write,
        permission: Permission::Allow,
    };
    // The same ACL twice is kept once.
    let created = state.apply(&Command::CreateAcls {
        acls: vec![acl.clone(), acl.clone()],
    });
    assert_eq!(created, Ok(Applied::AclsCreated { added: 1 }));
    let credential =
        ScramCredential::from_password(ScramMechanism::Sha512, "pw", &[7; 32], 4096).unwrap();
    state
        .apply(&Command::UpsertScramCredential {
            user: "alice".into(),
            credential: credential.clone(),
        })
        .unwrap();
    let bytes = state.to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(json["format"], 3);
    assert!(!String::from_utf8_lossy(&bytes).contains("\"pw\""));
    assert_eq!(ClusterState::from_bytes(&bytes).unwrap(), state);

    // Refusals change nothing, not even the version.
    let version = state.version();
    let mut bad = acl.clone();
    bad.resource_type = ResourceType::Cluster;
    assert!(matches!(
        state.apply(&Command::CreateAcls {
            acls: vec![acl.clone(), bad]
        }),
        Err(CommandError::InvalidAcl(_))
    ));
    let mut weak = credential.clone();
    weak.iterations = 10;
    assert!(matches!(
        state.apply(&Command::UpsertScramCredential {
            user: "bob".into(),
            credential: weak
        }),
        Err(CommandError::InvalidScramIterations { .. })
    ));
    assert!(matches!(
        state.apply(&Command::DeleteScramCredential {
            user: "alice".into(),
            mechanism: ScramMechanism::Sha256
        }),
        Err(CommandError::UnknownScramCredential { .. })
    ));
    assert_eq!(state.version(), version);

    // Removing them returns the snapshot to the format older brokers read.
    let deleted = state.apply(&Command::DeleteAcls {
        acls: vec![acl.clone(), acl],
    });
    assert_eq!(deleted, Ok(Applied::AclsDeleted { removed: 1 }));
    state
        .apply(&Command::DeleteScramCredential {
            user: "alice".into(),
            mechanism: ScramMechanism::Sha512,
        })
        .unwrap();
    assert!(state.scram_users().is_empty());
    let json: serde_json::Value = serde_json::from_slice(&state.to_bytes()).unwrap();
    assert_eq!(json["format"], 1);

    // A broker with named listeners.
    let mut listeners = std::collections::BTreeMap::new();
    listeners.insert("INTERNAL".to_string(), "b0.internal:9092".to_string());
    listeners.insert("EXTERNAL".to_string(), "b0.example.com:31092".to_string());
    let Command::RegisterBroker {
        broker_id,
        node_id,
        grpc_addr,
        http_addr,
        rack,
        now_ms,
        ..
    } = register(0, 1, None)
    else {
        unreachable!()
    };
    let registration = Command::RegisterBroker {
        broker_id,
        node_id,
        kafka_addr: "b0.internal:9092".into(),
        listeners: listeners.clone(),
        grpc_addr: grpc_addr.clone(),
        http_addr: http_addr.clone(),
        rack: rack.clone(),
        now_ms,
    };
    state.apply(&registration).unwrap();
    assert_eq!(state.broker(broker_id).unwrap().listeners, listeners);
    let bytes = state.to_bytes();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()["format"],
        3
    );
    assert_eq!(ClusterState::from_bytes(&bytes).unwrap(), state);
    let mut bad = listeners;
    bad.insert("no spaces".into(), "b0:1".into());
    let refused = state.apply(&Command::RegisterBroker {
        broker_id,
        node_id,
        kafka_addr: "b0.internal:9092".into(),
        listeners: bad,
        grpc_addr,
        http_addr,
        rack,
        now_ms,
    });
    assert!(
        matches!(refused, Err(CommandError::InvalidListeners { .. })),
        "{refused:?}"
    );
}
