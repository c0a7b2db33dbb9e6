//! Who may change a topic, on an in-process cluster of three brokers: `__consumer_offsets`
//! refused on every path that would delete, grow or reshape it (Kafka clients through
//! librdkafka, and the admin API), and owners checked by the metadata group when a caller names
//! the owner it expects.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use prost::Message as _;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use strand_proto::admin::admin_client::AdminClient as GrpcAdmin;
use strand_proto::admin::{
    AdminError, CreateTopicRequest, DeleteTopicRequest, DescribeTopicRequest, ErrorReason,
    TopicDescription, UpdateTopicRequest,
};
use strand_server::{Broker, BrokerConfig, RaftTuning};
use tonic::transport::Channel;

const OFFSETS: &str = "__consumer_offsets";
const A: &str = "strand.dev/Topic/shop/a/uid1";
const B: &str = "strand.dev/Topic/shop/b/uid2";

/// Three brokers in this process, with their Kafka and gRPC addresses.
struct Cluster {
    brokers: Vec<Broker>,
    kafka: Vec<SocketAddr>,
    grpc: Vec<SocketAddr>,
}

impl Cluster {
    async fn start(dir: &Path) -> Cluster {
        if let Ok(filter) = std::env::var("STRAND_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let grpc: Vec<SocketAddr> = (0..3).map(|_| strand_e2e::free_addr()).collect();
        let kafka: Vec<SocketAddr> = (0..3).map(|_| strand_e2e::free_addr()).collect();
        let seeds: Vec<String> = grpc.iter().map(|a| a.to_string()).collect();
        let mut brokers = Vec::new();
        for i in 0..3 {
            let http = strand_e2e::free_addr();
            let config = BrokerConfig {
                broker_id: i as u32,
                data_dir: dir.join(format!("broker-{i}")),
                grpc_listen: grpc[i],
                grpc_advertised: grpc[i].to_string(),
                peer_source_address: None,
                kafka_advertised: kafka[i].to_string(),
                kafka_listen: kafka[i],
                kafka: Default::default(),
                http_listen: http,
                http_advertised: http.to_string(),
                seeds: seeds.clone(),
                rack: None,
                tuning: RaftTuning::default(),
                balancing: Default::default(),
                disk_reserve_bytes: 0,
                grpc_tls: None,
                grpc_access: Default::default(),
                http_tls: None,
            };
            brokers.push(Broker::start(config).await.unwrap());
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while brokers.iter().any(|b| {
            b.inner().cluster.state().brokers().len() < 3
                || b.inner().cluster.controller().is_none()
        }) {
            assert!(Instant::now() < deadline, "cluster did not form");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Cluster {
            brokers,
            kafka,
            grpc,
        }
    }

    fn kafka_config(&self) -> ClientConfig {
        let bootstrap: Vec<String> = self.kafka.iter().map(|a| a.to_string()).collect();
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", bootstrap.join(","))
            .set("broker.address.family", "v4");
        config
    }

    fn kafka_admin(&self) -> AdminClient<DefaultClientContext> {
        self.kafka_config().create().unwrap()
    }

    async fn admin(&self) -> GrpcAdmin<Channel> {
        GrpcAdmin::connect(format!("http://{}", self.grpc[1]))
            .await
            .unwrap()
    }

    async fn describe(&self, name: &str) -> Option<TopicDescription> {
        self.admin()
            .await
            .describe_topic(DescribeTopicRequest { name: name.into() })
            .await
            .ok()
            .map(tonic::Response::into_inner)
    }

    async fn shutdown(self) {
        for broker in self.brokers {
            broker.stop().await;
        }
    }
}

/// The reason and message of a refused admin call.
fn refusal<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, tonic::Status>,
) -> (ErrorReason, String) {
    let status = result.expect_err("the call is refused");
    let error = AdminError::decode(status.details()).expect("AdminError details");
    (ErrorReason::try_from(error.reason).unwrap(), error.message)
}

/// The topic without what moves on its own (leaders, high watermarks, log starts): what the
/// refused calls must leave as it was.
fn shape(topic: &TopicDescription) -> TopicDescription {
    let mut shape = topic.clone();
    for partition in &mut shape.partitions {
        partition.leader = None;
        partition.high_watermark = 0;
        partition.log_start_offset = 0;
    }
    shape
}

/// The group member reads its next record and commits the offset after it; that offset.
fn consume_and_commit(consumer: &BaseConsumer) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "no record read");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                consumer
                    .commit_message(&message, CommitMode::Sync)
                    .expect("offset committed");
                return rdkafka::Message::offset(&message) + 1;
            }
            Some(Err(e)) => eprintln!("consumer: {e}"),
            None => {}
        }
    }
}

async fn produce_one(config: &ClientConfig, topic: &str) -> Result<(), KafkaError> {
    let producer: FutureProducer = config
        .clone()
        .set("message.timeout.ms", "20000")
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(topic).partition(0).key("k").payload("v"),
            Duration::from_secs(20),
        )
        .await
        .map(|_| ())
        .map_err(|(e, _)| e)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consumer_offsets_cannot_be_deleted_grown_reshaped_or_written_by_clients() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path()).await;
    let kafka = cluster.kafka_admin();
    let topic = NewTopic::new("events", 1, TopicReplication::Fixed(3));
    let created = kafka
        .create_topics([&topic], &AdminOptions::new())
        .await
        .unwrap();
    assert!(created[0].is_ok(), "{created:?}");
    produce_one(&cluster.kafka_config(), "events")
        .await
        .unwrap();
    produce_one(&cluster.kafka_config(), "events")
        .await
        .unwrap();
    // A consumer group's first offset commit creates the offsets topic.
    let consumer: BaseConsumer = cluster
        .kafka_config()
        .set("group.id", "guards")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["events"]).unwrap();
    let consumer = tokio::task::spawn_blocking(move || {
        assert_eq!(consume_and_commit(&consumer), 1);
        consumer
    })
    .await
    .unwrap();
    let before = cluster
        .describe(OFFSETS)
        .await
        .expect("offsets topic exists");
    assert!(before.internal);
    assert_eq!(before.owner, "");

    // Kafka DeleteTopics and CreatePartitions: refused with INVALID_REQUEST.
    let deleted = kafka
        .delete_topics(&[OFFSETS], &AdminOptions::new())
        .await
        .unwrap();
    assert_eq!(
        deleted[0],
        Err((OFFSETS.to_string(), RDKafkaErrorCode::InvalidRequest))
    );
    let grown = kafka
        .create_partitions([&NewPartitions::new(OFFSETS, 16)], &AdminOptions::new())
        .await
        .unwrap();
    assert_eq!(
        grown[0],
        Err((OFFSETS.to_string(), RDKafkaErrorCode::InvalidRequest))
    );
    // Kafka Produce from a client: refused as Kafka does, INVALID_TOPIC_EXCEPTION.
    let written = produce_one(&cluster.kafka_config(), OFFSETS).await;
    assert_eq!(
        written,
        Err(KafkaError::MessageProduction(
            RDKafkaErrorCode::InvalidTopic
        ))
    );

    // The admin API: INTERNAL_TOPIC, whatever is asked, with or without an expected owner.
    let mut admin = cluster.admin().await;
    let (reason, message) = refusal(
        admin
            .delete_topic(DeleteTopicRequest {
                name: OFFSETS.into(),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(reason, ErrorReason::InternalTopic);
    assert_eq!(
        message,
        "`__consumer_offsets` is an internal topic: it cannot be deleted"
    );
    let updates = [
        (
            UpdateTopicRequest {
                partitions: Some(16),
                ..Default::default()
            },
            "re-partitioned",
        ),
        (
            UpdateTopicRequest {
                replication_factor: Some(1),
                ..Default::default()
            },
            "given another replication factor",
        ),
        (
            UpdateTopicRequest {
                expected_owner: Some(String::new()),
                owner: Some(A.into()),
                ..Default::default()
            },
            "given an owner",
        ),
    ];
    for (update, what) in updates {
        let (reason, message) = refusal(
            admin
                .update_topic(UpdateTopicRequest {
                    name: OFFSETS.into(),
                    ..update
                })
                .await,
        );
        assert_eq!(reason, ErrorReason::InternalTopic, "{message}");
        assert_eq!(
            message,
            format!("`__consumer_offsets` is an internal topic: it cannot be {what}")
        );
    }

    let after = cluster.describe(OFFSETS).await.expect("offsets topic kept");
    assert_eq!(shape(&after), shape(&before));
    // The broker's own writes to it go on: the group commits its next offset.
    produce_one(&cluster.kafka_config(), "events")
        .await
        .unwrap();
    let committed = tokio::task::spawn_blocking(move || consume_and_commit(&consumer))
        .await
        .unwrap();
    assert_eq!(committed, 2);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_expected_owner_changes_or_deletes_an_owned_topic() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path()).await;
    let mut admin = cluster.admin().await;
    let create = |name: &str, owner: &str| CreateTopicRequest {
        name: name.into(),
        partitions: 2,
        replication_factor: 1,
        config: Default::default(),
        owner: owner.into(),
    };
    let created = admin
        .create_topic(create("orders", A))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.owner, A);
    assert!(!created.internal);

    // Another owner: refused, naming both, and nothing changed.
    let (reason, message) = refusal(
        admin
            .delete_topic(DeleteTopicRequest {
                name: "orders".into(),
                expected_owner: Some(B.into()),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(reason, ErrorReason::NotOwner);
    assert_eq!(
        message,
        format!("topic `orders` is managed by {A}, not by {B}")
    );
    let mut take_over = UpdateTopicRequest {
        name: "orders".into(),
        partitions: Some(4),
        replication_factor: Some(2),
        set_config: [("retention.ms".to_owned(), "1000".to_owned())].into(),
        expected_owner: Some(B.into()),
        owner: Some(B.into()),
        ..Default::default()
    };
    let (reason, _) = refusal(admin.update_topic(take_over.clone()).await);
    assert_eq!(reason, ErrorReason::NotOwner);
    // Expecting no owner is a check too.
    let (reason, _) = refusal(
        admin
            .update_topic(UpdateTopicRequest {
                name: "orders".into(),
                expected_owner: Some(String::new()),
                owner: Some(B.into()),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(reason, ErrorReason::NotOwner);
    let unchanged = cluster.describe("orders").await.unwrap();
    assert_eq!(shape(&unchanged), shape(&created));
    assert!(unchanged.config.is_empty(), "{:?}", unchanged.config);

    // Its owner: every change of the request at once.
    take_over.expected_owner = Some(A.into());
    let updated = admin.update_topic(take_over).await.unwrap().into_inner();
    assert_eq!(updated.partitions.len(), 4);
    assert_eq!(updated.replication_factor, 2);
    assert_eq!(updated.config["retention.ms"], "1000");
    assert_eq!(updated.owner, B);
    let deleted = admin
        .delete_topic(DeleteTopicRequest {
            name: "orders".into(),
            expected_owner: Some(B.into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(deleted.deleted);
    assert!(cluster.describe("orders").await.is_none());

    // An unowned topic is adopted by naming no one as its expected owner, once.
    admin.create_topic(create("legacy", "")).await.unwrap();
    let adopt = UpdateTopicRequest {
        name: "legacy".into(),
        expected_owner: Some(String::new()),
        owner: Some(A.into()),
        ..Default::default()
    };
    let adopted = admin
        .update_topic(adopt.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(adopted.owner, A);
    assert_eq!(cluster.describe("legacy").await.unwrap().owner, A);
    let (reason, _) = refusal(admin.update_topic(adopt).await);
    assert_eq!(reason, ErrorReason::NotOwner);

    // Kafka clients know nothing of owners: their requests still work on owned topics.
    let kafka = cluster.kafka_admin();
    let grown = kafka
        .create_partitions([&NewPartitions::new("legacy", 3)], &AdminOptions::new())
        .await
        .unwrap();
    assert_eq!(grown[0], Ok("legacy".to_string()));
    let described = cluster.describe("legacy").await.unwrap();
    assert_eq!(
        (described.partitions.len(), described.owner.as_str()),
        (3, A)
    );
    let deleted = kafka
        .delete_topics(&["legacy"], &AdminOptions::new())
        .await
        .unwrap();
    assert_eq!(deleted[0], Ok("legacy".to_string()));
    cluster.shutdown().await;
}
