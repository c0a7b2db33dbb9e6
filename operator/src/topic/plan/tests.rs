//! The Topic plan, from spec and observed topic to the next admin call.

use strand_proto::admin::PartitionDescription;

use super::*;

fn topic(yaml: &str) -> Topic {
    let mut topic: Topic = serde_saphyr::from_str(yaml).unwrap();
    topic.metadata.generation = Some(1);
    topic
}

fn orders(partitions: i32, config: &str) -> Topic {
    topic(&format!(
        "apiVersion: strand.dev/v1alpha1\nkind: Topic\nmetadata:\n  name: orders\n  \
         namespace: default\nspec:\n  clusterRef:\n    name: main\n  partitions: {partitions}\n  \
         replicationFactor: 3\n  config: {{{config}}}\n"
    ))
}

fn described(partitions: u32, config: &[(&str, &str)]) -> TopicDescription {
    TopicDescription {
        name: "orders".into(),
        topic_id: "t-1".into(),
        cluster_id: "c-1".into(),
        replication_factor: 3,
        config: config
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        partitions: (0..partitions)
            .map(|p| PartitionDescription {
                partition: p,
                replicas: vec![0, 1, 2],
                leader: Some(0),
                ..PartitionDescription::default()
            })
            .collect(),
        // The test Topic (no uid) manages it.
        owner: "strand.dev/Topic/default/orders/".into(),
        internal: false,
    }
}

#[test]
fn a_missing_topic_is_created_with_its_config() {
    let plan = plan(&orders(6, "retention.ms: 1000"), "orders", "c-1", None);
    let Plan::Create(request) = plan else {
        panic!("expected create, got {plan:?}")
    };
    assert_eq!(request.partitions, 6);
    assert_eq!(request.replication_factor, 3);
    assert_eq!(
        request.config.get("retention.ms").map(String::as_str),
        Some("1000")
    );
}

#[test]
fn partitions_and_config_changes_are_one_update() {
    let observed = described(6, &[("retention.ms", "604800000"), ("segment.ms", "10")]);
    let plan = plan(
        &orders(12, "retention.ms: 86400000"),
        "orders",
        "c-1",
        Some(&observed),
    );
    let Plan::Update {
        request, changes, ..
    } = plan
    else {
        panic!("expected update, got {plan:?}")
    };
    assert_eq!(request.partitions, Some(12));
    assert_eq!(
        request.set_config.get("retention.ms").map(String::as_str),
        Some("86400000")
    );
    assert_eq!(request.remove_config, ["segment.ms"]);
    assert_eq!(
        changes,
        [
            "partitions 6 → 12",
            "retention.ms 604800000 → 86400000",
            "segment.ms 10 → (default)"
        ]
    );
}

#[test]
fn a_matching_topic_needs_nothing() {
    let observed = described(6, &[("retention.ms", "1000")]);
    assert_eq!(
        plan(
            &orders(6, "retention.ms: 1000"),
            "orders",
            "c-1",
            Some(&observed)
        ),
        Plan::InSync
    );
}

#[test]
fn a_topic_bound_to_another_cluster_is_stalled_not_recreated() {
    let mut topic = orders(6, "");
    topic.status = Some(TopicStatus {
        cluster_id: Some("c-old".into()),
        ..TopicStatus::default()
    });
    let Plan::Stalled(stall) = plan(&topic, "orders", "c-new", None) else {
        panic!("expected stalled")
    };
    assert_eq!(stall.reason, "ClusterIdChanged");
    assert!(stall.message.contains("c-old"), "{}", stall.message);
}

#[test]
fn fewer_partitions_than_the_topic_has_is_stalled() {
    let observed = described(8, &[]);
    let Plan::Stalled(stall) = plan(&orders(6, ""), "orders", "c-1", Some(&observed)) else {
        panic!("expected stalled")
    };
    assert_eq!(stall.reason, "PartitionsBelowActual");
    assert!(stall.message.contains("at least 8"), "{}", stall.message);
}

#[test]
fn a_replication_factor_change_is_an_update_and_reconciles_until_replicas_moved() {
    let mut observed = described(6, &[]);
    observed.replication_factor = 1;
    let Plan::Update {
        request, changes, ..
    } = plan(&orders(6, ""), "orders", "c-1", Some(&observed))
    else {
        panic!("expected update")
    };
    assert_eq!(request.replication_factor, Some(3));
    assert_eq!(changes, ["replication factor 1 → 3"]);
    // The cluster took the new factor; two partitions still have one replica.
    let mut moving = described(6, &[]);
    for p in &mut moving.partitions[..2] {
        p.replicas = vec![0];
    }
    let standing = standing_of(&moving);
    assert_eq!(standing.reason(), "ReplicasMoving");
    assert_eq!(
        standing.message(),
        "2 of 6 partitions of topic orders are moving replicas to reach replication factor 3"
    );
    let mut topic = orders(6, "");
    topic.status = Some(TopicStatus {
        replication_factor: Some(1),
        ..TopicStatus::default()
    });
    let status = status(
        &topic,
        Some("c-1"),
        Some(&moving),
        &standing,
        k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
    );
    assert_eq!(
        status.replica_change,
        Some(ReplicaChangeStatus {
            from: 1,
            to: 3,
            partitions_done: 4
        })
    );
    assert_eq!(standing_of(&described(6, &[])).reason(), "TopicReady");
}

#[test]
fn invalid_names_and_config_are_stalled_before_any_call() {
    let Plan::Stalled(stall) = plan(&orders(6, ""), "__orders", "c-1", None) else {
        panic!("expected stalled")
    };
    assert_eq!(stall.reason, "InvalidTopicName");
    let Plan::Stalled(stall) = plan(&orders(6, "segment.ms: 0"), "orders", "c-1", None) else {
        panic!("expected stalled")
    };
    assert_eq!(stall.reason, "InvalidConfig");
    assert!(stall.message.contains("segment.ms"), "{}", stall.message);
}

#[test]
fn leaderless_partitions_keep_the_topic_reconciling() {
    let mut observed = described(3, &[]);
    observed.partitions[1].leader = None;
    assert_eq!(partition_health(&observed), (1, 0));
    assert_eq!(standing_of(&observed).reason(), "LeaderlessPartitions");
    observed.partitions[1].leader = Some(2);
    assert_eq!(standing_of(&observed).reason(), "TopicReady");
}
