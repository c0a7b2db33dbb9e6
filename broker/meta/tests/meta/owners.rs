//! Who may change a topic: owners checked at apply (so no change of owner slips in between a
//! caller's look and its change), updates that happen whole or not at all, and internal topics
//! that no command deletes, re-partitions, re-replicates or gives an owner.

use std::collections::BTreeMap;

use strand_meta::{
    Applied, BrokerId, ClusterState, Command, CommandError, InternalTopicChange, MAX_OWNER_LEN,
    PartitionId, TopicKind,
};

use super::{cluster, config, create_topic, topic_id};

const A: &str = "strand.dev/Topic/ns/a/uid1";
const B: &str = "strand.dev/Topic/ns/b/uid2";

fn owned(owner: Option<&str>) -> Option<Option<String>> {
    Some(owner.map(str::to_owned))
}

/// `orders` (topic 1, two partitions on brokers 0 and 1) created with `owner`.
fn with_orders(owner: Option<&str>) -> ClusterState {
    let mut state = cluster(3);
    let mut command = create_topic(1, "orders", &[&[0, 1], &[1, 0]]);
    if let Command::CreateTopic { owner: o, .. } = &mut command {
        *o = owner.map(str::to_owned);
    }
    state.apply(&command).unwrap();
    state
}

/// `__consumer_offsets` (topic 2, internal, two partitions) beside `orders`.
fn with_offsets() -> ClusterState {
    let mut state = with_orders(None);
    let mut command = create_topic(2, "__consumer_offsets", &[&[0, 1], &[1, 2]]);
    if let Command::CreateTopic { kind, .. } = &mut command {
        *kind = TopicKind::Internal;
    }
    state.apply(&command).unwrap();
    state
}

fn update(topic: u128) -> Command {
    Command::UpdateTopic {
        topic_id: topic_id(topic),
        expected_owner: None,
        assignments_to_add: Vec::new(),
        replication_factor: None,
        set_config: BTreeMap::new(),
        remove_config: Vec::new(),
        owner: None,
    }
}

/// An update of `orders` that adds a partition, raises the replication factor, sets a config
/// entry and hands the topic to `new_owner`, if `expected` owns it.
fn full_update(expected: Option<&str>, new_owner: Option<&str>) -> Command {
    Command::UpdateTopic {
        topic_id: topic_id(1),
        expected_owner: owned(expected),
        assignments_to_add: vec![vec![BrokerId(2), BrokerId(0)]],
        replication_factor: Some(3),
        set_config: config(&[("retention.ms", "1000")]),
        remove_config: Vec::new(),
        owner: owned(new_owner),
    }
}

fn delete(topic: u128, expected: Option<Option<String>>) -> Command {
    Command::DeleteTopic {
        topic_id: topic_id(topic),
        expected_owner: expected,
    }
}

/// Applies a command that must be refused, checks the state did not change at all, and
/// returns the error.
fn refused(state: &mut ClusterState, command: &Command) -> CommandError {
    let before = state.clone();
    let err = state.apply(command).unwrap_err();
    assert_eq!(*state, before, "{command:?} changed the state");
    err
}

#[test]
fn a_topic_keeps_the_owner_it_was_created_with() {
    let state = with_orders(Some(A));
    assert_eq!(state.topic(topic_id(1)).unwrap().owner.as_deref(), Some(A));
    assert_eq!(with_orders(None).topic(topic_id(1)).unwrap().owner, None);
}

#[test]
fn delete_by_another_owner_is_refused_naming_both() {
    let mut state = with_orders(Some(A));
    let err = refused(&mut state, &delete(1, owned(Some(B))));
    assert_eq!(
        err,
        CommandError::NotOwner {
            topic: "orders".into(),
            owner: Some(A.into()),
            expected: Some(B.into()),
        }
    );
    assert_eq!(
        err.to_string(),
        "topic `orders` is managed by strand.dev/Topic/ns/a/uid1, not by strand.dev/Topic/ns/b/uid2"
    );
    // Expecting no owner is a check as well.
    let err = refused(&mut state, &delete(1, owned(None)));
    assert_eq!(
        err.to_string(),
        "topic `orders` is managed by strand.dev/Topic/ns/a/uid1, not by no one"
    );
}

#[test]
fn delete_by_its_owner_or_without_a_check_succeeds() {
    let mut state = with_orders(Some(A));
    state.apply(&delete(1, owned(Some(A)))).unwrap();
    assert!(state.topic_by_name("orders").is_none());

    // Kafka clients know nothing of owners: a delete without an expected owner still works.
    let mut state = with_orders(Some(A));
    state.apply(&delete(1, None)).unwrap();
    assert!(state.topic_by_name("orders").is_none());

    let mut state = with_orders(None);
    state.apply(&delete(1, owned(None))).unwrap();
    assert!(state.topic_by_name("orders").is_none());
}

#[test]
fn update_by_another_owner_changes_nothing() {
    let mut state = with_orders(Some(A));
    let err = refused(&mut state, &full_update(Some(B), Some(B)));
    assert!(matches!(err, CommandError::NotOwner { .. }), "{err}");
}

#[test]
fn update_by_its_owner_makes_every_change_in_one_step() {
    let mut state = with_orders(Some(A));
    let version = state.version();
    let applied = state.apply(&full_update(Some(A), Some(B))).unwrap();
    assert_eq!(
        applied,
        Applied::TopicUpdated {
            topic_id: topic_id(1)
        }
    );
    assert_eq!(state.version(), version + 1);
    let topic = state.topic(topic_id(1)).unwrap();
    assert_eq!(topic.partitions.len(), 3);
    assert_eq!(topic.partitions[2].replicas, vec![BrokerId(2), BrokerId(0)]);
    assert_eq!(topic.replication_factor, 3);
    assert_eq!(topic.config, config(&[("retention.ms", "1000")]));
    assert_eq!(topic.owner.as_deref(), Some(B));
}

#[test]
fn an_update_with_one_bad_part_changes_nothing() {
    let mut state = with_orders(Some(A));
    let mut bad_config = full_update(Some(A), Some(B));
    if let Command::UpdateTopic { set_config, .. } = &mut bad_config {
        *set_config = config(&[("retention.ms", "soon")]);
    }
    assert!(matches!(
        refused(&mut state, &bad_config),
        CommandError::InvalidConfig { .. }
    ));
    let mut bad_partition = full_update(Some(A), Some(B));
    if let Command::UpdateTopic {
        assignments_to_add, ..
    } = &mut bad_partition
    {
        *assignments_to_add = vec![vec![BrokerId(9), BrokerId(0)]];
    }
    assert!(matches!(
        refused(&mut state, &bad_partition),
        CommandError::ReplicaOnUnknownBroker { .. }
    ));
    let mut too_many_replicas = full_update(Some(A), Some(B));
    if let Command::UpdateTopic {
        replication_factor, ..
    } = &mut too_many_replicas
    {
        *replication_factor = Some(4);
    }
    assert!(matches!(
        refused(&mut state, &too_many_replicas),
        CommandError::NotEnoughBrokers { .. }
    ));
}

#[test]
fn an_unowned_topic_is_adopted_and_released_by_update() {
    let mut state = with_orders(None);
    let mut adopt = update(1);
    if let Command::UpdateTopic {
        expected_owner,
        owner,
        ..
    } = &mut adopt
    {
        *expected_owner = owned(None);
        *owner = owned(Some(A));
    }
    state.apply(&adopt).unwrap();
    assert_eq!(state.topic(topic_id(1)).unwrap().owner.as_deref(), Some(A));
    // A second adoption, by anyone, finds it owned.
    let err = refused(&mut state, &adopt);
    assert_eq!(
        err.to_string(),
        "topic `orders` is managed by strand.dev/Topic/ns/a/uid1, not by no one"
    );

    let mut release = update(1);
    if let Command::UpdateTopic {
        expected_owner,
        owner,
        ..
    } = &mut release
    {
        *expected_owner = owned(Some(A));
        *owner = owned(None);
    }
    state.apply(&release).unwrap();
    assert_eq!(state.topic(topic_id(1)).unwrap().owner, None);
}

#[test]
fn owners_are_bounded_and_never_empty() {
    let mut state = with_orders(None);
    for bad in [
        String::new(),
        "a\nb".to_owned(),
        "x".repeat(MAX_OWNER_LEN + 1),
    ] {
        let mut set = update(1);
        if let Command::UpdateTopic { owner, .. } = &mut set {
            *owner = Some(Some(bad.clone()));
        }
        let err = refused(&mut state, &set);
        assert!(matches!(err, CommandError::InvalidOwner { .. }), "{err}");
        let mut create = create_topic(3, "other", &[&[0]]);
        if let Command::CreateTopic { owner, .. } = &mut create {
            *owner = Some(bad.clone());
        }
        let err = refused(&mut state, &create);
        assert!(matches!(err, CommandError::InvalidOwner { .. }), "{err}");
    }
}

#[test]
fn internal_topics_are_never_deleted_repartitioned_re_replicated_or_owned() {
    let mut state = with_offsets();
    let internal = |change| CommandError::InternalTopic {
        topic: "__consumer_offsets".into(),
        change,
    };
    let mut add = update(2);
    if let Command::UpdateTopic {
        assignments_to_add, ..
    } = &mut add
    {
        *assignments_to_add = vec![vec![BrokerId(2), BrokerId(0)]];
    }
    let mut replicate = update(2);
    if let Command::UpdateTopic {
        replication_factor, ..
    } = &mut replicate
    {
        *replication_factor = Some(3);
    }
    let mut own = update(2);
    if let Command::UpdateTopic {
        expected_owner,
        owner,
        ..
    } = &mut own
    {
        *expected_owner = owned(None);
        *owner = owned(Some(A));
    }
    let mut create_owned = create_topic(3, "__other", &[&[0]]);
    if let Command::CreateTopic { kind, owner, .. } = &mut create_owned {
        *kind = TopicKind::Internal;
        *owner = Some(A.into());
    }
    let cases = [
        (delete(2, None), InternalTopicChange::Delete),
        (delete(2, owned(None)), InternalTopicChange::Delete),
        (add, InternalTopicChange::AddPartitions),
        (
            Command::CreatePartitions {
                topic_id: topic_id(2),
                assignments_to_add: vec![vec![BrokerId(2), BrokerId(0)]],
            },
            InternalTopicChange::AddPartitions,
        ),
        (replicate, InternalTopicChange::ReplicationFactor),
        (
            Command::SetReplicationFactor {
                topic_id: topic_id(2),
                replication_factor: 1,
            },
            InternalTopicChange::ReplicationFactor,
        ),
        (own, InternalTopicChange::Owner),
    ];
    for (command, change) in &cases {
        assert_eq!(
            refused(&mut state, command),
            internal(*change),
            "{command:?}"
        );
    }
    let mut create_internal_topic = state.clone();
    let err = refused(&mut create_internal_topic, &create_owned);
    assert_eq!(
        err.to_string(),
        "`__other` is an internal topic: it cannot be given an owner"
    );
    assert_eq!(
        internal(InternalTopicChange::Delete).to_string(),
        "`__consumer_offsets` is an internal topic: it cannot be deleted"
    );
}

#[test]
fn internal_topics_still_take_config_changes_and_replica_moves() {
    let mut state = with_offsets();
    let mut set = update(2);
    if let Command::UpdateTopic {
        set_config,
        replication_factor,
        ..
    } = &mut set
    {
        *set_config = config(&[("segment.bytes", "1048576")]);
        // Its own replication factor again is no change.
        *replication_factor = Some(2);
    }
    state.apply(&set).unwrap();
    state
        .apply(&Command::AlterTopicConfig {
            topic_id: topic_id(2),
            set: config(&[("retention.ms", "1000")]),
            remove: vec!["segment.bytes".into()],
        })
        .unwrap();
    assert_eq!(
        state.topic(topic_id(2)).unwrap().config,
        config(&[("retention.ms", "1000")])
    );
    // Balancing moves its replicas like any other (draining a broker needs it).
    state
        .apply(&Command::ReassignPartition {
            topic_id: topic_id(2),
            partition: PartitionId(0),
            replicas: vec![BrokerId(2), BrokerId(1)],
        })
        .unwrap();
}
