//! Reassigning partitions: replica moves with leaving replicas, finishing them, replication
//! factor changes, and decommissioning only once nothing is left.

use strand_meta::{Applied, BrokerId, BrokerState, Command, CommandError, PartitionId};

use super::{cluster, create_topic, topic_id};

fn brokers(ids: &[u32]) -> Vec<BrokerId> {
    ids.iter().copied().map(BrokerId).collect()
}

fn reassign(partition: u32, replicas: &[u32]) -> Command {
    Command::ReassignPartition {
        topic_id: topic_id(1),
        partition: PartitionId(partition),
        replicas: brokers(replicas),
    }
}

fn finish(partition: u32, replicas: &[u32]) -> Command {
    Command::FinishReassignment {
        topic_id: topic_id(1),
        partition: PartitionId(partition),
        replicas: brokers(replicas),
    }
}

#[test]
fn moved_replica_stays_hosted_until_the_move_finishes() {
    let mut state = cluster(4);
    state
        .apply(&create_topic(1, "orders", &[&[0, 1, 2]]))
        .unwrap();
    let applied = state.apply(&reassign(0, &[3, 1, 2])).unwrap();
    assert_eq!(
        applied,
        Applied::PartitionReassigned {
            topic_id: topic_id(1),
            partition: PartitionId(0),
            leaving: brokers(&[0]),
        }
    );
    let partition = &state.topic(topic_id(1)).unwrap().partitions[0];
    assert!(partition.is_moving());
    assert!(
        partition.initial_nodes.is_empty(),
        "the group has started; nobody starts it again"
    );
    assert_eq!(state.assignments_for(BrokerId(0)).len(), 1);
    assert_eq!(state.assignments_for(BrokerId(3)).len(), 1);
    assert_eq!(
        state.load()[&BrokerId(0)].replicas,
        0,
        "load counts the target"
    );

    let applied = state.apply(&finish(0, &[3, 1, 2])).unwrap();
    assert_eq!(
        applied,
        Applied::ReassignmentFinished {
            topic_id: topic_id(1),
            partition: PartitionId(0),
            released: brokers(&[0]),
        }
    );
    assert!(state.assignments_for(BrokerId(0)).is_empty());
}

#[test]
fn finishing_a_replica_list_that_changed_since_is_refused() {
    let mut state = cluster(5);
    state
        .apply(&create_topic(1, "orders", &[&[0, 1, 2]]))
        .unwrap();
    state.apply(&reassign(0, &[3, 1, 2])).unwrap();
    state.apply(&reassign(0, &[4, 1, 2])).unwrap();
    let partition = &state.topic(topic_id(1)).unwrap().partitions[0];
    assert_eq!(
        partition.leaving,
        brokers(&[0, 3]),
        "both earlier hosts keep their replica"
    );
    assert_eq!(
        state.apply(&finish(0, &[3, 1, 2])),
        Err(CommandError::StaleReassignment {
            topic: "orders".into(),
            partition: PartitionId(0),
            current: brokers(&[4, 1, 2]),
            reported: brokers(&[3, 1, 2]),
        })
    );
    // Moving back to a leaving broker takes it off the leaving list.
    state.apply(&reassign(0, &[0, 1, 2])).unwrap();
    let partition = &state.topic(topic_id(1)).unwrap().partitions[0];
    assert_eq!(partition.leaving, brokers(&[3, 4]));
}

#[test]
fn reassignment_checks_every_broker() {
    let mut state = cluster(4);
    state
        .apply(&create_topic(1, "orders", &[&[0, 1, 2]]))
        .unwrap();
    state
        .apply(&Command::SetBrokerState {
            broker_id: BrokerId(3),
            state: BrokerState::Draining,
        })
        .unwrap();
    state
        .apply(&Command::SetBrokerState {
            broker_id: BrokerId(2),
            state: BrokerState::Draining,
        })
        .unwrap();
    let version = state.version();
    let partition = PartitionId(0);
    let cases = [
        (reassign(0, &[]), CommandError::NoReplicas { partition }),
        (
            reassign(0, &[0, 1, 0]),
            CommandError::DuplicateReplica {
                partition,
                broker_id: BrokerId(0),
            },
        ),
        (
            reassign(0, &[0, 1, 9]),
            CommandError::ReplicaOnUnknownBroker {
                partition,
                broker_id: BrokerId(9),
            },
        ),
        (
            reassign(0, &[0, 1, 3]),
            CommandError::ReplicaOnInactiveBroker {
                partition,
                broker_id: BrokerId(3),
                state: BrokerState::Draining,
            },
        ),
        (
            reassign(1, &[0]),
            CommandError::UnknownPartition {
                topic: "orders".into(),
                partition: PartitionId(1),
            },
        ),
    ];
    for (command, error) in cases {
        assert_eq!(state.apply(&command), Err(error));
    }
    assert_eq!(state.version(), version);
    // A replica already on a draining broker may stay while the order changes.
    state.apply(&reassign(0, &[2, 1, 0])).unwrap();
}

#[test]
fn replication_factor_needs_enough_active_brokers() {
    let mut state = cluster(3);
    state.apply(&create_topic(1, "orders", &[&[0]])).unwrap();
    let set = |rf| Command::SetReplicationFactor {
        topic_id: topic_id(1),
        replication_factor: rf,
    };
    assert_eq!(
        state.apply(&set(4)),
        Err(CommandError::NotEnoughBrokers {
            needed: 4,
            available: 3
        })
    );
    assert_eq!(
        state.apply(&set(0)),
        Err(CommandError::ZeroReplicationFactor)
    );
    assert_eq!(
        state.apply(&set(3)),
        Ok(Applied::ReplicationFactorSet {
            topic_id: topic_id(1),
            previous: 1
        })
    );
    assert_eq!(state.topic(topic_id(1)).unwrap().replication_factor, 3);
}

#[test]
fn leaving_replicas_keep_a_broker_from_being_decommissioned() {
    let mut state = cluster(4);
    state
        .apply(&create_topic(1, "orders", &[&[0, 1, 2]]))
        .unwrap();
    state
        .apply(&Command::SetBrokerState {
            broker_id: BrokerId(0),
            state: BrokerState::Draining,
        })
        .unwrap();
    state.apply(&reassign(0, &[3, 1, 2])).unwrap();
    let decommission = Command::SetBrokerState {
        broker_id: BrokerId(0),
        state: BrokerState::Decommissioned,
    };
    assert_eq!(
        state.apply(&decommission),
        Err(CommandError::BrokerHostsReplicas {
            broker_id: BrokerId(0),
            replicas: 1
        })
    );
    state.apply(&finish(0, &[3, 1, 2])).unwrap();
    state.apply(&decommission).unwrap();
}
