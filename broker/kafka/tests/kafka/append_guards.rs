//! Every writer of a partition meets the same guards: Kafka Produce, the gRPC `Produce` and
//! offset commits (appends to `__consumer_offsets`) all go through `Replicas::append`, so each
//! guard refuses each of them, each in its own protocol's words (Kafka's coordinator maps a
//! refused append to its own errors, as Apache Kafka's does).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, OffsetCommitRequest,
    OffsetCommitResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strand_proto::broker::ProduceRequest;
use strand_proto::broker::broker_client::BrokerClient;

use super::{Cluster, produce_raw, produce_until, wire};

const GROUP: &str = "guarded-group";
const OFFSETS: &str = "__consumer_offsets";

/// Creates `__consumer_offsets` ahead of the first group, with one partition (so every group's
/// coordinator is its leader) and `configs`, and a user topic `topic` with the same configs.
async fn topics_with(cluster: &Cluster, topic: &str, configs: &[(&str, &str)]) {
    let mut offsets = vec![("cleanup.policy", "compact")];
    offsets.extend_from_slice(configs);
    cluster.create_topic_with(OFFSETS, 1, &offsets).await;
    cluster.create_topic_with(topic, 1, configs).await;
}

/// The gRPC `Produce` of one batch to partition 0 of `topic` at `grpc`.
async fn grpc_produce(grpc: SocketAddr, topic: &str, batch: Bytes) -> Result<i64, tonic::Status> {
    let mut client = BrokerClient::connect(format!("http://{grpc}"))
        .await
        .expect("gRPC connects");
    client
        .produce(ProduceRequest {
            topic: topic.to_string(),
            partition: 0,
            batch,
        })
        .await
        .map(|r| r.into_inner().base_offset)
}

/// The broker coordinating [`GROUP`], as FindCoordinator names it.
async fn coordinator(cluster: &Cluster) -> usize {
    let mut conn = wire::Conn::open(cluster.kafka[0]).await;
    for _ in 0..100 {
        let found: FindCoordinatorResponse = conn
            .call(
                ApiKey::FindCoordinator,
                3,
                &FindCoordinatorRequest::default().with_key(StrBytes::from_static_str(GROUP)),
            )
            .await;
        if found.error_code == 0 {
            return usize::try_from(found.node_id.0).expect("a broker id");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{GROUP} never had a coordinator");
}

/// Commits `offset` with `metadata` for partition 0 of `topic` as a group with no members
/// (generation -1), at broker `at`; the partition's error code.
async fn commit(cluster: &Cluster, at: usize, topic: &str, offset: i64, metadata: &str) -> i16 {
    let mut conn = wire::Conn::open(cluster.kafka[at]).await;
    let request = OffsetCommitRequest::default()
        .with_group_id(StrBytes::from_static_str(GROUP).into())
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::from_static_str(""))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)
                        .with_committed_metadata(Some(StrBytes::from_string(metadata.to_string()))),
                ]),
        ]);
    let answer: OffsetCommitResponse = conn.call(ApiKey::OffsetCommit, 8, &request).await;
    answer.topics[0].partitions[0].error_code
}

/// Commits until the answer is `code` (0: success); fails the test after 30 s.
async fn commit_until(cluster: &Cluster, at: usize, topic: &str, code: i16) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let answer = commit(cluster, at, topic, 1, "").await;
        if answer == code {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "an offset commit was never answered {code}; the last answer was {answer}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One plain batch of one record.
fn batch() -> Bytes {
    wire::idempotent_batch(-1, -1, -1, 1)
}

fn message(
    answer: &kafka_protocol::messages::produce_response::PartitionProduceResponse,
) -> String {
    answer
        .error_message
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_writer_is_refused_a_batch_over_max_message_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), false).await;
    topics_with(&cluster, "small", &[("max.message.bytes", "300")]).await;
    let leader = cluster.leader("small", 0).await;
    let big = wire::idempotent_batch(-1, -1, -1, 40);
    assert!(big.len() > 300, "the test batch is {} bytes", big.len());

    let mut conn = wire::Conn::open(cluster.kafka[leader]).await;
    let answer = produce_raw(&mut conn, "small", big.clone()).await;
    assert_eq!(answer.error_code, ResponseError::MessageTooLarge.code());
    assert!(
        message(&answer).contains("max.message.bytes of 300"),
        "{answer:?}"
    );

    let status = grpc_produce(cluster.grpc[leader], "small", big)
        .await
        .expect_err("the gRPC produce is refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("max.message.bytes of 300"),
        "{status:?}"
    );

    // A commit whose record is larger than `__consumer_offsets` takes, as Kafka answers it.
    let at = coordinator(&cluster).await;
    // The coordinator may still be loading its offsets partition (COORDINATOR_LOAD_IN_PROGRESS),
    // which clients retry.
    commit_until(&cluster, at, "small", 0).await;
    let metadata = "m".repeat(1000);
    assert_eq!(
        commit(&cluster, at, "small", 2, &metadata).await,
        ResponseError::InvalidCommitOffsetSize.code()
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_writer_is_refused_while_a_replicas_disk_is_short() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), false).await;
    topics_with(&cluster, "roomy", &[]).await;
    let at = coordinator(&cluster).await;
    // The coordinator may still be loading its offsets partition, which clients retry.
    commit_until(&cluster, at, "roomy", 0).await;
    // Broker `at` leads `__consumer_offsets`; the user topic's leader may be another broker,
    // so every broker's disk runs short here (each writer's leader checks its own).
    for broker in cluster.brokers.iter().flatten() {
        let disk = &broker.inner().disk;
        disk.set_reserve(u64::MAX);
        disk.measure(&broker.inner().config.data_dir);
    }
    let leader = cluster.leader("roomy", 0).await;
    let mut conn = wire::Conn::open(cluster.kafka[leader]).await;
    let answer = produce_raw(&mut conn, "roomy", batch()).await;
    assert_eq!(answer.error_code, ResponseError::KafkaStorageError.code());
    assert!(message(&answer).contains("below its reserve"), "{answer:?}");

    let status = grpc_produce(cluster.grpc[leader], "roomy", batch())
        .await
        .expect_err("the gRPC produce is refused");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(status.message().contains("below its reserve"), "{status:?}");

    // Kafka's coordinator answers a storage error as NOT_COORDINATOR.
    assert_eq!(
        commit(&cluster, at, "roomy", 2, "").await,
        ResponseError::NotCoordinator.code()
    );

    // With space again every writer goes on, and what was committed before is still there.
    for broker in cluster.brokers.iter().flatten() {
        let disk = &broker.inner().disk;
        disk.set_reserve(0);
        disk.measure(&broker.inner().config.data_dir);
    }
    produce_until(
        &mut conn,
        "roomy",
        0,
        Duration::from_secs(15),
        "produce did not resume",
    )
    .await;
    grpc_produce(cluster.grpc[leader], "roomy", batch())
        .await
        .expect("the gRPC produce goes through again");
    commit_until(&cluster, at, "roomy", 0).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acks_all_writer_is_refused_below_min_insync_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), false).await;
    topics_with(&cluster, "strict", &[("min.insync.replicas", "3")]).await;
    let leader = cluster.leader("strict", 0).await;
    let at = coordinator(&cluster).await;
    let mut conn = wire::Conn::open(cluster.kafka[leader]).await;
    produce_until(
        &mut conn,
        "strict",
        0,
        Duration::from_secs(20),
        "never all in sync",
    )
    .await;
    commit_until(&cluster, at, "strict", 0).await;

    // A broker leading neither partition stops: both are one replica short.
    let gone = (0..3)
        .find(|b| *b != leader && *b != at)
        .expect("a third broker");
    cluster.brokers[gone].take().unwrap().stop().await;
    let answer = produce_until(
        &mut conn,
        "strict",
        ResponseError::NotEnoughReplicas.code(),
        Duration::from_secs(30),
        "a write was never refused",
    )
    .await;
    assert!(
        message(&answer).contains("min.insync.replicas of 3"),
        "{answer:?}"
    );

    let status = grpc_produce(cluster.grpc[leader], "strict", batch())
        .await
        .expect_err("the gRPC produce is refused");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(
        status.message().contains("min.insync.replicas of 3"),
        "{status:?}"
    );

    // Kafka's coordinator answers NOT_ENOUGH_REPLICAS as COORDINATOR_NOT_AVAILABLE.
    commit_until(
        &cluster,
        at,
        "strict",
        ResponseError::CoordinatorNotAvailable.code(),
    )
    .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_writer_is_sent_to_the_leader_and_bad_batches_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), false).await;
    topics_with(&cluster, "led", &[]).await;
    let leader = cluster.leader("led", 0).await;
    let follower = (leader + 1) % 3;

    // At a replica that does not lead.
    let mut conn = wire::Conn::open(cluster.kafka[follower]).await;
    let answer = produce_raw(&mut conn, "led", batch()).await;
    assert_eq!(answer.error_code, ResponseError::NotLeaderOrFollower.code());
    let status = grpc_produce(cluster.grpc[follower], "led", batch())
        .await
        .expect_err("the gRPC produce is refused");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(status.message().contains("not led here"), "{status:?}");
    let at = coordinator(&cluster).await;
    assert_eq!(
        commit(&cluster, (at + 1) % 3, "led", 1, "").await,
        ResponseError::NotCoordinator.code()
    );

    // A batch whose CRC does not match its bytes.
    let mut corrupt = batch().to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let corrupt = Bytes::from(corrupt);
    let mut conn = wire::Conn::open(cluster.kafka[leader]).await;
    let answer = produce_raw(&mut conn, "led", corrupt.clone()).await;
    assert_eq!(answer.error_code, ResponseError::CorruptMessage.code());
    let status = grpc_produce(cluster.grpc[leader], "led", corrupt)
        .await
        .expect_err("the gRPC produce is refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);

    // Internal topics take only the broker's own writes (offset commits).
    let offsets_leader = cluster.leader(OFFSETS, 0).await;
    let mut conn = wire::Conn::open(cluster.kafka[offsets_leader]).await;
    let answer = produce_raw(&mut conn, OFFSETS, batch()).await;
    assert_eq!(
        answer.error_code,
        ResponseError::InvalidTopicException.code()
    );
    let status = grpc_produce(cluster.grpc[offsets_leader], OFFSETS, batch())
        .await
        .expect_err("the gRPC produce is refused");
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    // The coordinator may still be loading its offsets partition, which clients retry.
    commit_until(&cluster, at, "led", 0).await;
    cluster.shutdown().await;
}
