//! Real Kafka clients (librdkafka through the `rdkafka` crate) against an in-process cluster
//! of three brokers on loopback ports.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use strand_server::{Broker, BrokerConfig, KafkaSettings, RaftTuning};

fn free_addr() -> SocketAddr {
    strand_e2e::free_addr()
}

/// Prints librdkafka's log lines (shown with STRAND_TEST_RDKAFKA_DEBUG).
struct Printing;

impl rdkafka::ClientContext for Printing {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        eprintln!("rdkafka {level:?} {fac}: {message}");
    }
}

/// Three brokers in this process.
struct Cluster {
    brokers: Vec<Option<Broker>>,
    bootstrap: String,
    kafka: Vec<SocketAddr>,
    grpc: Vec<SocketAddr>,
}

impl Cluster {
    async fn start(dir: &Path, auto_create_topics: bool) -> Cluster {
        Cluster::start_with(
            dir,
            KafkaSettings {
                auto_create_topics,
                // Short, so the retention test need not wait long.
                retention_check_interval: Duration::from_millis(300),
                ..Default::default()
            },
        )
        .await
    }

    /// Three brokers with the Kafka listener settings `kafka` (lower limits, say).
    async fn start_with(dir: &Path, settings: KafkaSettings) -> Cluster {
        Cluster::start_each(dir, |_| settings.clone()).await
    }

    /// Three brokers, broker `i` with the Kafka listener settings `settings(i)` (its own
    /// further listeners, say).
    async fn start_each(dir: &Path, settings: impl Fn(u32) -> KafkaSettings) -> Cluster {
        if let Ok(filter) = std::env::var("STRAND_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let grpc: Vec<SocketAddr> = (0..3).map(|_| free_addr()).collect();
        let kafka: Vec<SocketAddr> = (0..3).map(|_| free_addr()).collect();
        let seeds: Vec<String> = grpc.iter().map(|a| a.to_string()).collect();
        let mut brokers = Vec::new();
        for i in 0..3u32 {
            let http = free_addr();
            let config = BrokerConfig {
                broker_id: i,
                data_dir: dir.join(format!("broker-{i}")),
                grpc_listen: grpc[i as usize],
                grpc_advertised: grpc[i as usize].to_string(),
                peer_source_address: None,
                kafka_advertised: kafka[i as usize].to_string(),
                kafka_listen: kafka[i as usize],
                kafka: settings(i),
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
        // Clients are started once the cluster has formed: every broker registered, and a
        // controller elected.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while brokers.iter().any(|b| {
            b.inner().cluster.state().brokers().len() < 3
                || b.inner().cluster.controller().is_none()
        }) {
            assert!(std::time::Instant::now() < deadline, "cluster did not form");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let bootstrap = kafka
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",");
        Cluster {
            brokers: brokers.into_iter().map(Some).collect(),
            bootstrap,
            kafka,
            grpc,
        }
    }

    fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap)
            .set("broker.address.family", "v4");
        // STRAND_TEST_RDKAFKA_DEBUG=<contexts> shows librdkafka's debug log, e.g. `admin,protocol`.
        if let Ok(contexts) = std::env::var("STRAND_TEST_RDKAFKA_DEBUG") {
            config.set("debug", contexts);
        }
        config
    }

    /// Creates a topic with the Kafka admin API, retrying while the cluster forms.
    async fn create_topic(&self, name: &str, partitions: i32) {
        self.create_topic_with(name, partitions, &[]).await
    }

    /// Like [`Cluster::create_topic`], with topic configs.
    async fn create_topic_with(&self, name: &str, partitions: i32, configs: &[(&str, &str)]) {
        let admin: AdminClient<Printing> = self.config().create_with_context(Printing).unwrap();
        let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(3));
        for (key, value) in configs {
            topic = topic.set(key, value);
        }
        for _ in 0..60 {
            let results = admin
                .create_topics([&topic], &AdminOptions::new())
                .await
                .unwrap();
            match &results[0] {
                Ok(_) => return,
                Err((_, e)) => eprintln!("create {name}: {e:?}, retrying"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("topic {name} was never created");
    }

    /// The broker leading `topic`/`partition`, once one leads it.
    async fn leader(&self, topic: &str, partition: u32) -> usize {
        for _ in 0..100 {
            if let Some(i) = self
                .brokers
                .iter()
                .position(|b| b.as_ref().is_some_and(|b| b.leads(topic, partition)))
            {
                return i;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{topic}-{partition} has no leader");
    }

    /// Stops the broker leading `topic`/`partition`, once one leads it.
    async fn kill_leader(&mut self, topic: &str, partition: u32) -> usize {
        let leader = self.leader(topic, partition).await;
        if let Some(broker) = self.brokers[leader].take() {
            broker.stop().await;
        }
        leader
    }

    async fn shutdown(self) {
        for broker in self.brokers.into_iter().flatten() {
            broker.stop().await;
        }
    }
}

/// A record read back: partition, offset, key, value.
type Consumed = (i32, i64, Option<Vec<u8>>, Option<Vec<u8>>);

/// Reads `count` records from the start of every partition.
fn read_back(config: &ClientConfig, topic: &str, partitions: i32, count: usize) -> Vec<Consumed> {
    let consumer: BaseConsumer = config
        .clone()
        .set("group.id", "read-back")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while out.len() < count {
        assert!(
            std::time::Instant::now() < deadline,
            "read {} of {count} records",
            out.len()
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push((
                m.partition(),
                m.offset(),
                m.key().map(<[u8]>::to_vec),
                m.payload().map(<[u8]>::to_vec),
            )),
            Some(Err(e)) => eprintln!("consumer: {e}"),
            None => {}
        }
    }
    out
}

/// Kafka's murmur2 hash of a record key, as the Java client and librdkafka's murmur2
/// partitioner compute it.
fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_round_trip_with_every_compression_and_keys_pick_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), false).await;
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("round-trip-{codec}");
        cluster.create_topic(&topic, 3).await;
        let producer: FutureProducer = cluster
            .config()
            .set("compression.codec", codec)
            .set("partitioner", "murmur2_random")
            .set("acks", "all")
            .set("linger.ms", "5")
            .create()
            .unwrap();
        let mut sent = BTreeMap::new();
        let mut deliveries = Vec::new();
        for i in 0..300u32 {
            let key = format!("key-{}", i % 17);
            let value = format!("{codec} value {i} {}", "x".repeat((i % 50) as usize));
            let record = FutureRecord::to(&topic).key(&key).payload(&value);
            deliveries.push((
                key.clone(),
                value.clone(),
                producer.send_result(record).unwrap(),
            ));
        }
        for (key, value, delivery) in deliveries {
            let delivered = delivery
                .await
                .unwrap()
                .unwrap_or_else(|(e, _)| panic!("{codec}: {e}"));
            sent.insert((delivered.partition, delivered.offset), (key, value));
        }
        // The Java client's partitioner (murmur2_random in librdkafka): the partition is a
        // function of the key alone.
        for ((partition, _), (key, _)) in &sent {
            let expected = (murmur2(key.as_bytes()) & 0x7fff_ffff) % 3;
            assert_eq!(*partition as u32, expected, "{codec}: key {key}");
        }
        let config = cluster.config();
        let topic2 = topic.clone();
        let got = tokio::task::spawn_blocking(move || read_back(&config, &topic2, 3, 300))
            .await
            .unwrap();
        assert_eq!(got.len(), sent.len());
        for (partition, offset, key, value) in got {
            let (k, v) = &sent[&(partition, offset)];
            assert_eq!(key.as_deref(), Some(k.as_bytes()), "{codec}");
            assert_eq!(value.as_deref(), Some(v.as_bytes()), "{codec}");
        }
    }
    cluster.shutdown().await;
}

#[test]
fn murmur2_matches_kafkas_test_vectors() {
    // From Kafka's UtilsTest.testMurmur2.
    for (key, expected) in [
        ("21", -973_932_308i32),
        ("foobar", -790_332_482),
        ("a-little-bit-long-string", -985_981_536),
        ("", 275_646_681),
    ] {
        assert_eq!(murmur2(key.as_bytes()) as i32, expected, "{key:?}");
    }
}

/// Produces `count` keyed records to `topic` and waits for every acknowledgement.
fn produce_blocking(config: &ClientConfig, topic: &str, count: usize, tag: &str) {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let producer: ThreadedProducer<DefaultProducerContext> =
        config.clone().set("acks", "all").create().unwrap();
    for i in 0..count {
        let key = format!("{tag}-{i}");
        loop {
            match producer.send(BaseRecord::to(topic).key(&key).payload(&key)) {
                Ok(()) => break,
                Err((e, _)) => {
                    eprintln!("produce: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

fn group_member(config: &ClientConfig, group: &str, topic: &str) -> BaseConsumer {
    group_member_with(
        config,
        group,
        topic,
        rdkafka::consumer::DefaultConsumerContext,
    )
}

/// Like [`group_member`], with `context` seeing the member's rebalances.
fn group_member_with<C: ConsumerContext>(
    config: &ClientConfig,
    group: &str,
    topic: &str,
    context: C,
) -> BaseConsumer<C> {
    let consumer: BaseConsumer<C> = config
        .clone()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create_with_context(context)
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    consumer
}

/// Polls every consumer in turn until `done` holds, collecting (partition, offset, key).
fn poll_until<C: ConsumerContext>(
    consumers: &[&BaseConsumer<C>],
    seen: &mut Vec<(i32, i64, String)>,
    what: &str,
    mut done: impl FnMut(&[&BaseConsumer<C>], &[(i32, i64, String)]) -> bool,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while !done(consumers, seen) {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        for consumer in consumers {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                let key = String::from_utf8_lossy(m.key().unwrap_or_default()).to_string();
                seen.push((m.partition(), m.offset(), key));
            }
        }
    }
}

fn assigned<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> Vec<i32> {
    consumer
        .assignment()
        .map(|a| a.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

fn covers_all<C: ConsumerContext>(consumers: &[&BaseConsumer<C>], partitions: i32) -> bool {
    let mut all: Vec<i32> = consumers.iter().flat_map(|c| assigned(c)).collect();
    all.sort_unstable();
    consumers.iter().all(|c| !assigned(c).is_empty()) && all == (0..partitions).collect::<Vec<_>>()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consumer_group_splits_partitions_takes_over_and_resumes_from_commits() {
    use rdkafka::consumer::CommitMode;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), false).await;
    cluster.create_topic("orders", 6).await;
    let config = cluster.config();
    tokio::task::spawn_blocking(move || {
        produce_blocking(&config, "orders", 600, "first");
        let a = group_member(&config, "billing", "orders");
        let b = group_member(&config, "billing", "orders");
        let c = group_member(&config, "billing", "orders");
        let mut seen = Vec::new();
        // Three members split six partitions, none shared, none left out.
        poll_until(
            &[&a, &b, &c],
            &mut seen,
            "three members to share six partitions",
            |cs, _| covers_all(cs, 6),
        );
        poll_until(&[&a, &b, &c], &mut seen, "600 records", |_, seen| {
            seen.len() >= 600
        });
        for consumer in [&a, &b, &c] {
            assert!(!assigned(consumer).is_empty());
            consumer.commit_consumer_state(CommitMode::Sync).unwrap();
        }
        // One member leaves; the other two take over its partitions.
        drop(c);
        poll_until(&[&a, &b], &mut seen, "two members to take over", |cs, _| {
            covers_all(cs, 6)
        });
        produce_blocking(&config, "orders", 60, "second");
        poll_until(&[&a, &b], &mut seen, "60 more records", |_, seen| {
            seen.len() >= 660
        });
        for consumer in [&a, &b] {
            consumer.commit_consumer_state(CommitMode::Sync).unwrap();
        }
        let mut keys: Vec<&str> = seen.iter().map(|(_, _, k)| k.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), 660, "every record read exactly once");
        assert_eq!(seen.len(), 660, "no record read twice");
        // Everyone stops; a restarted group resumes after what was committed.
        drop(a);
        drop(b);
        produce_blocking(&config, "orders", 30, "third");
        let restarted = group_member(&config, "billing", "orders");
        let mut after = Vec::new();
        poll_until(
            &[&restarted],
            &mut after,
            "the 30 records after the commits",
            |_, seen| seen.len() >= 30,
        );
        // Give a re-delivery the chance to show before checking there is none.
        poll_until(&[&restarted], &mut after, "a quiet second", {
            let until = std::time::Instant::now() + Duration::from_secs(1);
            move |_, _| std::time::Instant::now() >= until
        });
        assert_eq!(after.len(), 30, "{after:?}");
        assert!(
            after.iter().all(|(_, _, k)| k.starts_with("third-")),
            "{after:?}"
        );
    })
    .await
    .unwrap();
    cluster.shutdown().await;
}

/// Partitions added to a topic reach its consumer group: the group's leader notices them in
/// its metadata and joins again, which starts a rebalance that assigns them (a JoinGroup
/// from a stable group's leader always does, as in Kafka), and records written to them are
/// read.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumer_group_takes_partitions_added_to_its_topic() {
    use rdkafka::admin::NewPartitions;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), false).await;
    cluster.create_topic("growing", 2).await;
    let config = cluster.config();
    let admin: AdminClient<Printing> = config.create_with_context(Printing).unwrap();
    let mut member_config = config.clone();
    // A member looks at the topic's metadata every second (Kafka clients: 5 minutes).
    member_config.set("topic.metadata.refresh.interval.ms", "1000");
    let (grown_tx, grown_rx) = std::sync::mpsc::channel::<()>();
    let consuming = tokio::task::spawn_blocking(move || {
        let a = group_member(&member_config, "growers", "growing");
        let b = group_member(&member_config, "growers", "growing");
        let mut seen = Vec::new();
        poll_until(
            &[&a, &b],
            &mut seen,
            "two members to share two partitions",
            |cs, _| covers_all(cs, 2),
        );
        grown_tx.send(()).unwrap();
        poll_until(
            &[&a, &b],
            &mut seen,
            "the two added partitions to be assigned",
            |cs, _| covers_all(cs, 4),
        );
        produce_blocking(&member_config, "growing", 200, "after");
        poll_until(
            &[&a, &b],
            &mut seen,
            "records of all four partitions",
            |_, seen| (0..4).all(|p| seen.iter().any(|(partition, _, _)| *partition == p)),
        );
    });
    tokio::task::spawn_blocking(move || grown_rx.recv().unwrap())
        .await
        .unwrap();
    let results = admin
        .create_partitions([&NewPartitions::new("growing", 4)], &AdminOptions::new())
        .await
        .unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    consuming.await.unwrap();
    cluster.shutdown().await;
}

/// Counts a consumer's rebalances (assignments received).
#[derive(Clone, Default)]
struct Rebalances(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl rdkafka::ClientContext for Rebalances {}

impl ConsumerContext for Rebalances {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &rdkafka::consumer::Rebalance<'_>) {
        if let rdkafka::consumer::Rebalance::Assign(_) = rebalance {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

impl Rebalances {
    fn count(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The broker coordinating `group`, other than `not`, asked with FindCoordinator.
async fn coordinator_of(addr: SocketAddr, group: &str, not: Option<i32>) -> i32 {
    use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, FindCoordinatorResponse};
    let mut conn = wire::Conn::open(addr).await;
    for _ in 0..100 {
        let response: FindCoordinatorResponse = conn
            .call(
                ApiKey::FindCoordinator,
                3,
                &FindCoordinatorRequest::default().with_key(
                    kafka_protocol::protocol::StrBytes::from_string(group.into()),
                ),
            )
            .await;
        if response.error_code == 0 && Some(response.node_id.0) != not {
            return response.node_id.0;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no coordinator for {group}");
}

/// A coordinator failover keeps every member's assignment: the group's membership is stored
/// in `__consumer_offsets` when its assignments are handed out, and the new coordinator takes
/// it over from there, so its members go on heartbeating and committing in the same
/// generation, without a rebalance, and read on from where they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_coordinator_failover_keeps_every_members_assignment() {
    use rdkafka::consumer::CommitMode;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), false).await;
    cluster.create_topic("steady", 4).await;
    let config = cluster.config();
    let (settled_tx, settled_rx) = std::sync::mpsc::channel::<()>();
    let (failed_over_tx, failed_over_rx) = std::sync::mpsc::channel::<()>();
    let consuming = tokio::task::spawn_blocking(move || {
        let (count_a, count_b) = (Rebalances::default(), Rebalances::default());
        let member = |counter: &Rebalances| {
            group_member_with(&config, "steady-readers", "steady", counter.clone())
        };
        let (a, b) = (member(&count_a), member(&count_b));
        let mut seen = Vec::new();
        poll_until(
            &[&a, &b],
            &mut seen,
            "two members to share four partitions",
            |cs, _| covers_all(cs, 4),
        );
        produce_blocking(&config, "steady", 200, "before");
        poll_until(&[&a, &b], &mut seen, "200 records", |_, seen| {
            seen.len() >= 200
        });
        for consumer in [&a, &b] {
            consumer.commit_consumer_state(CommitMode::Sync).unwrap();
        }
        let assignments = (assigned(&a), assigned(&b));
        let rebalances = (count_a.count(), count_b.count());
        settled_tx.send(()).unwrap();
        failed_over_rx.recv().unwrap();
        // Longer than a session: members that lost the group would have been expired, and
        // members refused by the new coordinator would have joined again.
        poll_until(&[&a, &b], &mut seen, "a failover and a session", {
            let until = std::time::Instant::now() + Duration::from_secs(8);
            move |_, _| std::time::Instant::now() >= until
        });
        produce_blocking(&config, "steady", 200, "after");
        poll_until(&[&a, &b], &mut seen, "200 more records", |_, seen| {
            seen.len() >= 400
        });
        for consumer in [&a, &b] {
            consumer.commit_consumer_state(CommitMode::Sync).unwrap();
        }
        assert_eq!(
            (assigned(&a), assigned(&b)),
            assignments,
            "assignments changed"
        );
        assert_eq!(
            (count_a.count(), count_b.count()),
            rebalances,
            "the group rebalanced across the failover"
        );
        assert_eq!(seen.len(), 400, "records read twice: {seen:?}");
    });
    tokio::task::spawn_blocking(move || settled_rx.recv().unwrap())
        .await
        .unwrap();
    let coordinator = coordinator_of(cluster.kafka[0], "steady-readers", None).await as usize;
    if let Some(broker) = cluster.brokers[coordinator].take() {
        broker.stop().await;
    }
    let live = cluster.kafka[(coordinator + 1) % 3];
    coordinator_of(live, "steady-readers", Some(coordinator as i32)).await;
    failed_over_tx.send(()).unwrap();
    consuming.await.unwrap();
    cluster.shutdown().await;
}

/// The committed offset of `group` for partition 0 of `topic`, `None` if it has none.
fn committed(config: &ClientConfig, group: &str, topic: &str) -> Option<i64> {
    let consumer: BaseConsumer = config.clone().set("group.id", group).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let offsets = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    match offsets.elements()[0].offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

/// The groups ListGroups shows.
fn listed_groups(config: &ClientConfig) -> Vec<String> {
    let consumer: BaseConsumer = config.create().unwrap();
    let list = consumer
        .fetch_group_list(None, Duration::from_secs(10))
        .unwrap();
    list.groups().iter().map(|g| g.name().to_string()).collect()
}

/// Offsets retention (`offsets.retention.minutes`): the offsets of a group that stayed empty
/// for the retention expire and the group is gone from ListGroups, while a group with members
/// keeps the offsets of the topic it reads however old they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_offsets_of_a_group_left_empty_expire_and_a_live_groups_stay() {
    use rdkafka::consumer::CommitMode;
    let dir = tempfile::tempdir().unwrap();
    let retention = Duration::from_secs(10);
    let cluster = Cluster::start_with(
        dir.path(),
        KafkaSettings {
            offsets_retention: retention,
            offsets_retention_check_interval: Duration::from_millis(300),
            ..Default::default()
        },
    )
    .await;
    cluster.create_topic("kept", 1).await;
    let config = cluster.config();
    tokio::task::spawn_blocking(move || {
        produce_blocking(&config, "kept", 10, "r");
        let gone = group_member(&config, "gone", "kept");
        let live = group_member(&config, "live", "kept");
        let (mut seen_gone, mut seen_live) = (Vec::new(), Vec::new());
        poll_until(&[&gone], &mut seen_gone, "10 records", |_, s| s.len() >= 10);
        poll_until(&[&live], &mut seen_live, "10 records", |_, s| s.len() >= 10);
        gone.commit_consumer_state(CommitMode::Sync).unwrap();
        live.commit_consumer_state(CommitMode::Sync).unwrap();
        drop(gone);
        assert_eq!(committed(&config, "gone", "kept"), Some(10));
        assert!(listed_groups(&config).contains(&"gone".to_string()));
        // The live member polls on (and so stays) until the empty group's offsets are gone.
        poll_until(
            &[&live],
            &mut seen_live,
            "the empty group's offsets to expire",
            {
                let config = config.clone();
                let mut next_look = std::time::Instant::now();
                move |_, _| {
                    if std::time::Instant::now() < next_look {
                        return false;
                    }
                    next_look = std::time::Instant::now() + Duration::from_secs(1);
                    committed(&config, "gone", "kept").is_none()
                }
            },
        );
        let listed = listed_groups(&config);
        assert!(!listed.contains(&"gone".to_string()), "{listed:?}");
        assert!(listed.contains(&"live".to_string()), "{listed:?}");
        // Well past the retention since its commit, the live group keeps its offset.
        poll_until(&[&live], &mut seen_live, "a retention", {
            let until = std::time::Instant::now() + retention;
            move |_, _| std::time::Instant::now() >= until
        });
        assert_eq!(committed(&config, "live", "kept"), Some(10));
    })
    .await
    .unwrap();
    cluster.shutdown().await;
}

/// Kafka's consumer group protocol (KIP-848, `group.protocol=consumer`) with librdkafka: the
/// coordinator assigns; two members share a topic, each record read once; when one leaves
/// the other takes its partitions over and reads on from the commits; ConsumerGroupDescribe
/// shows the one left with every partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consumer_protocol_members_share_a_topic_and_take_over_when_one_leaves() {
    use rdkafka::consumer::CommitMode;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start_with(
        dir.path(),
        KafkaSettings {
            consumer_heartbeat_interval: Duration::from_millis(500),
            ..Default::default()
        },
    )
    .await;
    cluster.create_topic("shared", 4).await;
    let config = cluster.config();
    let kafka = cluster.kafka[0];
    let consuming = tokio::task::spawn_blocking(move || {
        let member = || -> BaseConsumer {
            let consumer: BaseConsumer = config
                .clone()
                .set("group.id", "kip848")
                .set("group.protocol", "consumer")
                .set("enable.auto.commit", "false")
                .set("auto.offset.reset", "earliest")
                .create()
                .unwrap();
            consumer.subscribe(&["shared"]).unwrap();
            consumer
        };
        let (a, b) = (member(), member());
        let mut seen = Vec::new();
        poll_until(
            &[&a, &b],
            &mut seen,
            "two members to share four partitions",
            |cs, _| covers_all(cs, 4),
        );
        let shared = (assigned(&a).len(), assigned(&b).len());
        produce_blocking(&config, "shared", 400, "first");
        poll_until(&[&a, &b], &mut seen, "400 records", |_, seen| {
            seen.len() >= 400
        });
        for consumer in [&a, &b] {
            consumer.commit_consumer_state(CommitMode::Sync).unwrap();
        }
        drop(b);
        poll_until(
            &[&a],
            &mut seen,
            "the remaining member to take over",
            |cs, _| covers_all(cs, 4),
        );
        produce_blocking(&config, "shared", 100, "second");
        poll_until(&[&a], &mut seen, "100 more records", |_, seen| {
            seen.len() >= 500
        });
        a.commit_consumer_state(CommitMode::Sync).unwrap();
        let mut keys: Vec<&str> = seen.iter().map(|(_, _, k)| k.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), 500, "every record read");
        assert_eq!(seen.len(), 500, "no record read twice");
        (shared, a)
    });
    // The remaining member stays in the group while it is described.
    let (shared, _member) = consuming.await.unwrap();
    assert_eq!(shared, (2, 2), "the uniform assignor splits evenly");
    // ConsumerGroupDescribe shows the member left and what it owns.
    use kafka_protocol::messages::ConsumerGroupDescribeResponse;
    use kafka_protocol::messages::{ApiKey, ConsumerGroupDescribeRequest, GroupId};
    let coordinator = coordinator_of(kafka, "kip848", None).await as usize;
    let mut conn = wire::Conn::open(cluster.kafka[coordinator]).await;
    let described: ConsumerGroupDescribeResponse = conn
        .call(
            ApiKey::ConsumerGroupDescribe,
            0,
            &ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(
                kafka_protocol::protocol::StrBytes::from_static_str("kip848"),
            )]),
        )
        .await;
    let group = &described.groups[0];
    assert_eq!(group.error_code, 0);
    assert_eq!(group.assignor_name.as_str(), "uniform");
    assert_eq!(group.members.len(), 1, "{group:?}");
    let owned: usize = group.members[0]
        .assignment
        .topic_partitions
        .iter()
        .map(|t| t.partitions.len())
        .sum();
    assert_eq!(owned, 4);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotent_producer_across_a_leader_kill_writes_each_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), false).await;
    cluster.create_topic("payments", 1).await;
    let producer: FutureProducer = cluster
        .config()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "60000")
        .create()
        .unwrap();
    let total = 3000usize;
    let sending = tokio::spawn(async move {
        let mut deliveries = Vec::with_capacity(total);
        for i in 0..total {
            let key = format!("payment-{i}");
            let record = FutureRecord::to("payments").key(&key).payload(&key);
            deliveries.push(producer.send_result(record).unwrap());
            if i % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let mut failed = Vec::new();
        for delivery in deliveries {
            if let Err((e, _)) = delivery.await.unwrap() {
                failed.push(e.to_string());
            }
        }
        failed
    });
    // Kill the leader while records are in flight.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = cluster.kill_leader("payments", 0).await;
    eprintln!("stopped broker {killed}, the leader");
    let failed = sending.await.unwrap();
    assert!(failed.is_empty(), "records not delivered: {failed:?}");
    let config = cluster.config();
    let got = tokio::task::spawn_blocking(move || read_back(&config, "payments", 1, total))
        .await
        .unwrap();
    // Nothing more than the records sent: give a duplicate the chance to arrive.
    let mut config = cluster.config();
    let again = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config
            .set("group.id", "count")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset("payments", 0, Offset::OffsetTail(1))
            .unwrap();
        consumer.assign(&assignment).unwrap();
        let (_, high) = consumer
            .fetch_watermarks("payments", 0, Duration::from_secs(10))
            .unwrap();
        high
    })
    .await
    .unwrap();
    let mut keys: Vec<String> = got
        .iter()
        .map(|(_, _, k, _)| String::from_utf8(k.clone().unwrap()).unwrap())
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), total, "every record arrived");
    assert_eq!(again, total as i64, "the log holds each record once");
    cluster.shutdown().await;
}

/// A client that speaks the Kafka wire format directly, for what librdkafka will not send.
mod append_guards;
mod connection_limits;
mod group_limits;
mod hand_over_order;
mod producer_limits;
mod security;
mod tls;

mod wire {
    use bytes::{Buf, BufMut, Bytes, BytesMut};
    use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    pub struct Conn {
        stream: TcpStream,
        correlation: i32,
    }

    impl Conn {
        pub async fn open(addr: std::net::SocketAddr) -> Conn {
            Conn {
                stream: TcpStream::connect(addr).await.unwrap(),
                correlation: 0,
            }
        }

        /// Sends raw bytes as one frame.
        pub async fn send_frame(&mut self, body: &[u8]) -> std::io::Result<()> {
            self.stream
                .write_all(&(body.len() as i32).to_be_bytes())
                .await?;
            self.stream.write_all(body).await
        }

        /// Sends bytes as they are, with no size prefix.
        pub async fn send_raw(&mut self, bytes: &[u8]) {
            self.stream.write_all(bytes).await.unwrap();
        }

        /// Sends a Produce v9 of `batch` to partition 0 of `topic` (acks=all) without waiting
        /// for the answer; its correlation id.
        pub async fn send_produce(&mut self, topic: &str, batch: Bytes) -> i32 {
            use kafka_protocol::messages::produce_request::{
                PartitionProduceData, TopicProduceData,
            };
            use kafka_protocol::messages::{ProduceRequest, TopicName};
            let request = ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(10_000)
                .with_topic_data(vec![
                    TopicProduceData::default()
                        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                        .with_partition_data(vec![
                            PartitionProduceData::default()
                                .with_index(0)
                                .with_records(Some(batch)),
                        ]),
                ]);
            self.correlation += 1;
            let mut buf = BytesMut::new();
            RequestHeader::default()
                .with_request_api_key(ApiKey::Produce as i16)
                .with_request_api_version(9)
                .with_correlation_id(self.correlation)
                .with_client_id(Some(StrBytes::from_static_str("wire-test")))
                .encode(&mut buf, ApiKey::Produce.request_header_version(9))
                .unwrap();
            request.encode(&mut buf, 9).unwrap();
            self.send_frame(&buf).await.unwrap();
            self.correlation
        }

        /// Reads the next Produce v9 answer: its correlation id and the response.
        pub async fn read_produce(&mut self) -> (i32, kafka_protocol::messages::ProduceResponse) {
            let mut frame = self.read_frame().await.expect("a response");
            let header =
                ResponseHeader::decode(&mut frame, ApiKey::Produce.response_header_version(9))
                    .unwrap();
            let response =
                kafka_protocol::messages::ProduceResponse::decode(&mut frame, 9).unwrap();
            (header.correlation_id, response)
        }

        /// Reads one frame; `None` when the broker closed the connection.
        pub async fn read_frame(&mut self) -> Option<Bytes> {
            let size = self.stream.read_i32().await.ok()?;
            let mut body = vec![0; size as usize];
            self.stream.read_exact(&mut body).await.ok()?;
            Some(Bytes::from(body))
        }

        pub async fn call<Req: Encodable, Resp: Decodable>(
            &mut self,
            key: ApiKey,
            version: i16,
            request: &Req,
        ) -> Resp {
            self.correlation += 1;
            let mut buf = BytesMut::new();
            RequestHeader::default()
                .with_request_api_key(key as i16)
                .with_request_api_version(version)
                .with_correlation_id(self.correlation)
                .with_client_id(Some(StrBytes::from_static_str("wire-test")))
                .encode(&mut buf, key.request_header_version(version))
                .unwrap();
            request.encode(&mut buf, version).unwrap();
            self.send_frame(&buf).await.unwrap();
            let mut frame = self.read_frame().await.expect("a response");
            let header =
                ResponseHeader::decode(&mut frame, key.response_header_version(version)).unwrap();
            assert_eq!(header.correlation_id, self.correlation);
            let response = Resp::decode(&mut frame, version).unwrap();
            assert!(!frame.has_remaining());
            response
        }
    }

    /// One idempotent batch of `count` records.
    pub fn idempotent_batch(producer_id: i64, epoch: i16, first_seq: i32, count: i32) -> Bytes {
        use kafka_protocol::records::*;
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id,
                producer_epoch: epoch,
                timestamp_type: TimestampType::Creation,
                offset: i64::from(i),
                sequence: first_seq + i,
                timestamp: 1_700_000_000_000,
                key: Some(Bytes::from(format!("k{}", first_seq + i))),
                value: Some(Bytes::from_static(b"v")),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        let mut out = BytesMut::new();
        out.put(buf);
        out.freeze()
    }
}

/// A new producer id from InitProducerId, as an idempotent client gets one.
async fn producer_id(conn: &mut wire::Conn) -> i64 {
    use kafka_protocol::messages::{
        ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId,
    };
    let init: InitProducerIdResponse = conn
        .call(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        )
        .await;
    assert_eq!(init.error_code, 0);
    assert!(init.producer_id.0 >= 0);
    init.producer_id.0
}

async fn produce_raw(
    conn: &mut wire::Conn,
    topic: &str,
    batch: bytes::Bytes,
) -> kafka_protocol::messages::produce_response::PartitionProduceResponse {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(kafka_protocol::protocol::StrBytes::from_string(
                    topic.to_string(),
                )))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch)),
                ]),
        ]);
    let response: ProduceResponse = conn.call(ApiKey::Produce, 9, &request).await;
    response.responses[0].partition_responses[0].clone()
}

/// Produces one batch to partition 0 of `topic` every 200 ms until the answer carries
/// `error_code` (0: success), and returns that answer; fails the test after `within`.
async fn produce_until(
    conn: &mut wire::Conn,
    topic: &str,
    error_code: i16,
    within: Duration,
    what: &str,
) -> kafka_protocol::messages::produce_response::PartitionProduceResponse {
    let deadline = std::time::Instant::now() + within;
    loop {
        let answer = produce_raw(conn, topic, wire::idempotent_batch(-1, -1, -1, 1)).await;
        if answer.error_code == error_code {
            return answer;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {answer:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retried_idempotent_batch_is_written_once_and_gaps_are_refused() {
    use kafka_protocol::ResponseError;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), false).await;
    cluster.create_topic("ledger", 1).await;
    let leader = cluster.leader("ledger", 0).await;
    let mut conn = wire::Conn::open(cluster.kafka[leader]).await;
    let id = producer_id(&mut conn).await;

    let first = produce_raw(&mut conn, "ledger", wire::idempotent_batch(id, 0, 0, 3)).await;
    assert_eq!((first.error_code, first.base_offset), (0, 0));
    // The same batch again (a retry whose answer was lost): same offset, nothing written.
    let retry = produce_raw(&mut conn, "ledger", wire::idempotent_batch(id, 0, 0, 3)).await;
    assert_eq!((retry.error_code, retry.base_offset), (0, 0));
    let next = produce_raw(&mut conn, "ledger", wire::idempotent_batch(id, 0, 3, 2)).await;
    assert_eq!((next.error_code, next.base_offset), (0, 3));
    // A gap in the sequence is refused, and so is an older epoch.
    let gap = produce_raw(&mut conn, "ledger", wire::idempotent_batch(id, 0, 9, 1)).await;
    assert_eq!(
        gap.error_code,
        ResponseError::OutOfOrderSequenceNumber.code()
    );
    let bumped = produce_raw(&mut conn, "ledger", wire::idempotent_batch(id, 1, 0, 1)).await;
    assert_eq!((bumped.error_code, bumped.base_offset), (0, 5));
    let old = produce_raw(&mut conn, "ledger", wire::idempotent_batch(id, 0, 5, 1)).await;
    assert_eq!(old.error_code, ResponseError::InvalidProducerEpoch.code());
    let after = produce_raw(&mut conn, "ledger", wire::idempotent_batch(id, 1, 1, 1)).await;
    assert_eq!((after.error_code, after.base_offset), (0, 6));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_request_bytes_get_an_answer_or_a_closed_connection_never_a_crash() {
    use bytes::Buf;
    use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), true).await;
    let addr = cluster.kafka[0];
    // Frames: a known API and version followed by random bytes, or random bytes alone.
    let keys: Vec<i16> = (0..=75).collect();
    let strategy = (
        proptest::sample::select(keys),
        -1i16..16,
        proptest::collection::vec(any::<u8>(), 0..300),
        any::<bool>(),
    );
    let mut runner = TestRunner::new(Config {
        cases: 300,
        ..Config::default()
    });
    let runtime = tokio::runtime::Handle::current();
    let outcome = tokio::task::spawn_blocking(move || {
        runner.run(&strategy, |(key, version, body, with_header)| {
            runtime.block_on(async {
                let mut frame = Vec::new();
                if with_header {
                    frame.extend_from_slice(&key.to_be_bytes());
                    frame.extend_from_slice(&version.to_be_bytes());
                    frame.extend_from_slice(&7i32.to_be_bytes());
                    frame.extend_from_slice(&(-1i16).to_be_bytes());
                }
                frame.extend_from_slice(&body);
                let mut conn = wire::Conn::open(addr).await;
                conn.send_frame(&frame).await.ok();
                let answer = tokio::time::timeout(Duration::from_secs(10), conn.read_frame()).await;
                // Either a response with our correlation id or a closed connection; never
                // silence.
                match answer {
                    Ok(Some(mut response)) if with_header => {
                        prop_assert!(response.len() >= 4);
                        prop_assert_eq!(response.get_i32(), 7);
                    }
                    Ok(_) => {}
                    Err(_) => prop_assert!(false, "no answer and no close for {key} v{version}"),
                }
                // The broker still serves a well-formed request.
                let mut fresh = wire::Conn::open(addr).await;
                let versions: ApiVersionsResponse = fresh
                    .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
                    .await;
                prop_assert_eq!(versions.error_code, 0);
                Ok(())
            })
        })
    })
    .await
    .unwrap();
    if let Err(e) = outcome {
        panic!("{e}");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn topic_configs_are_described_and_altered_and_the_cluster_is_described() {
    use kafka_protocol::ResponseError;
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), false).await;
    cluster.create_topic("settings", 1).await;
    let mut conn = wire::Conn::open(cluster.kafka[2]).await;
    let s = |v: &str| StrBytes::from_string(v.to_string());
    let alter = |op: i8, value: Option<&str>| {
        IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("settings"))
                .with_configs(vec![
                    AlterableConfig::default()
                        .with_name(s("retention.ms"))
                        .with_config_operation(op)
                        .with_value(value.map(s)),
                ]),
        ])
    };
    let describe = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("settings"))
            .with_configuration_keys(Some(vec![s("retention.ms")])),
    ]);
    let retention = |r: &DescribeConfigsResponse| {
        let c = &r.results[0].configs[0];
        (c.value.as_ref().map(|v| v.to_string()), c.config_source)
    };

    let before: DescribeConfigsResponse = conn.call(ApiKey::DescribeConfigs, 4, &describe).await;
    assert_eq!(retention(&before), (Some("604800000".into()), 5));
    let set: IncrementalAlterConfigsResponse = conn
        .call(
            ApiKey::IncrementalAlterConfigs,
            1,
            &alter(0, Some("3600000")),
        )
        .await;
    assert_eq!(
        set.responses[0].error_code, 0,
        "{:?}",
        set.responses[0].error_message
    );
    // This broker answers from its own copy of the metadata, which applies a change a moment
    // after the controller committed it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let after: DescribeConfigsResponse = conn.call(ApiKey::DescribeConfigs, 4, &describe).await;
        if retention(&after) == (Some("3600000".into()), 1) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "retention.ms not set: {:?}",
            retention(&after)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bad: IncrementalAlterConfigsResponse = conn
        .call(ApiKey::IncrementalAlterConfigs, 1, &alter(0, Some("soon")))
        .await;
    assert_eq!(
        bad.responses[0].error_code,
        ResponseError::InvalidConfig.code()
    );
    let removed: IncrementalAlterConfigsResponse = conn
        .call(ApiKey::IncrementalAlterConfigs, 1, &alter(1, None))
        .await;
    assert_eq!(removed.responses[0].error_code, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let reverted: DescribeConfigsResponse =
            conn.call(ApiKey::DescribeConfigs, 4, &describe).await;
        if retention(&reverted) == (Some("604800000".into()), 5) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "retention.ms not back to its default: {:?}",
            retention(&reverted)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let described: DescribeClusterResponse = conn
        .call(
            ApiKey::DescribeCluster,
            0,
            &DescribeClusterRequest::default(),
        )
        .await;
    assert_eq!(described.brokers.len(), 3);
    assert!(described.controller_id.0 >= 0);
    cluster.shutdown().await;
}

/// Records produced one at a time, each acknowledged before the next is sent, so each is a
/// batch of its own and small segments fill and roll quickly.
async fn produce_each(config: &ClientConfig, topic: &str, records: &[(String, String)]) {
    let producer: FutureProducer = config.clone().set("acks", "all").create().unwrap();
    for (key, value) in records {
        let record = FutureRecord::to(topic).key(key).payload(value);
        producer
            .send(record, Duration::from_secs(30))
            .await
            .expect("record acknowledged");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retention_and_compaction_remove_old_records_from_closed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), false).await;
    let admin: AdminClient<Printing> = cluster.config().create_with_context(Printing).unwrap();
    let retained = NewTopic::new("retained", 1, TopicReplication::Fixed(3))
        .set("segment.bytes", "2048")
        .set("retention.bytes", "4096");
    let compacted = NewTopic::new("compacted", 1, TopicReplication::Fixed(3))
        .set("segment.bytes", "2048")
        .set("cleanup.policy", "compact");
    for result in admin
        .create_topics([&retained, &compacted], &AdminOptions::new())
        .await
        .unwrap()
    {
        result.expect("topic created");
    }

    // Retention by size: the oldest segments go, the log start offset moves past them, and
    // what remains reads back from there, in order.
    let records: Vec<(String, String)> = (0..200)
        .map(|i| (format!("k{i}"), format!("value-{i:04}-{}", "x".repeat(60))))
        .collect();
    produce_each(&cluster.config(), "retained", &records).await;
    // Retention runs every 300 ms; once the start offset has moved and then stayed put for
    // a while, the log is as small as the policy makes it.
    let consumer: BaseConsumer = cluster.config().create().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut last = (0, 0);
    let mut steady = 0;
    let (low, high) = loop {
        let (low, high) = consumer
            .fetch_watermarks("retained", 0, Duration::from_secs(5))
            .unwrap();
        steady = if (low, high) == last { steady + 1 } else { 0 };
        last = (low, high);
        if low > 0 && steady >= 10 {
            break (low, high);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "retention never moved the log start offset"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(high, 200);
    let kept = read_back(&cluster.config(), "retained", 1, (high - low) as usize);
    assert_eq!(kept.first().map(|r| r.1), Some(low));
    for (n, record) in kept.iter().enumerate() {
        let i = low as usize + n;
        assert_eq!(
            record.1, i as i64,
            "offsets stay contiguous after retention"
        );
        assert_eq!(record.3.as_deref(), Some(records[i].1.as_bytes()));
    }

    // Compaction: ten keys written thirty times each; closed segments keep only the latest
    // record of each key, and every key still reads back with its last value.
    let updates: Vec<(String, String)> = (0..300)
        .map(|i| {
            (
                format!("key-{}", i % 10),
                format!("update-{i:04}-{}", "y".repeat(60)),
            )
        })
        .collect();
    produce_each(&cluster.config(), "compacted", &updates).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        // Count what a reader from the start sees now.
        let consumer: BaseConsumer = cluster
            .config()
            .set("group.id", "compaction-check")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset("compacted", 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&assignment).unwrap();
        let mut latest: BTreeMap<Vec<u8>, (i64, Vec<u8>)> = BTreeMap::new();
        let mut seen = 0;
        let mut last_offset = -1;
        while last_offset < 299 {
            match consumer.poll(Duration::from_secs(5)) {
                Some(Ok(m)) => {
                    seen += 1;
                    last_offset = m.offset();
                    latest.insert(
                        m.key().unwrap().to_vec(),
                        (m.offset(), m.payload().unwrap().to_vec()),
                    );
                }
                Some(Err(e)) => eprintln!("consumer: {e}"),
                None => panic!("the compacted topic did not read to its end"),
            }
        }
        for (i, (key, value)) in updates.iter().enumerate().skip(290) {
            assert_eq!(
                latest.get(key.as_bytes()),
                Some(&(i as i64, value.as_bytes().to_vec())),
                "key {key} keeps its latest value"
            );
        }
        if seen < 300 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "compaction removed nothing"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nearly_full_disk_refuses_produce_and_keeps_what_was_accepted() {
    use kafka_protocol::ResponseError;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), false).await;
    cluster.create_topic("full", 1).await;
    let accepted: Vec<(String, String)> = (0..10)
        .map(|i| (format!("k{i}"), format!("accepted-{i}")))
        .collect();
    produce_each(&cluster.config(), "full", &accepted).await;

    // A follower's disk runs short: the leader refuses produce with a retriable storage error.
    let leader = cluster.leader("full", 0).await;
    let follower = (leader + 1) % 3;
    let guard = |b: usize| &cluster.brokers[b].as_ref().unwrap().inner().disk;
    guard(follower).set_reserve(u64::MAX);
    let mut conn = wire::Conn::open(cluster.kafka[leader]).await;
    let refused = produce_until(
        &mut conn,
        "full",
        ResponseError::KafkaStorageError.code(),
        Duration::from_secs(15),
        "produce was never refused",
    )
    .await;
    let message = refused
        .error_message
        .map(|m| m.to_string())
        .unwrap_or_default();
    assert!(message.contains("nearly out of disk space"), "{message}");

    // The leader's own disk: refused at once, with the numbers.
    guard(follower).set_reserve(0);
    guard(leader).set_reserve(u64::MAX);
    guard(leader).measure(&dir.path().join(format!("broker-{leader}")));
    let refused = produce_raw(&mut conn, "full", wire::idempotent_batch(-1, -1, -1, 1)).await;
    assert_eq!(refused.error_code, ResponseError::KafkaStorageError.code());
    let message = refused
        .error_message
        .map(|m| m.to_string())
        .unwrap_or_default();
    assert!(message.contains("below its reserve"), "{message}");

    // What was accepted before reads back; with space again, produce goes on.
    guard(leader).set_reserve(0);
    guard(leader).measure(&dir.path().join(format!("broker-{leader}")));
    let read = read_back(&cluster.config(), "full", 1, accepted.len());
    let values: Vec<Vec<u8>> = read.into_iter().filter_map(|r| r.3).collect();
    let expected: Vec<Vec<u8>> = accepted
        .iter()
        .map(|(_, v)| v.clone().into_bytes())
        .collect();
    assert_eq!(values[..accepted.len()], expected[..]);
    produce_until(
        &mut conn,
        "full",
        0,
        Duration::from_secs(15),
        "produce did not resume",
    )
    .await;
    cluster.shutdown().await;
}

/// The first stored batch of partition 0 of `topic`, fetched raw from its leader.
async fn first_stored_batch(conn: &mut wire::Conn, topic: &str) -> bytes::Bytes {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(kafka_protocol::protocol::StrBytes::from_string(
                    topic.to_string(),
                )))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let response: FetchResponse = conn.call(ApiKey::Fetch, 4, &request).await;
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0, "{partition:?}");
    partition.records.clone().expect("records")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn topic_configs_decide_codec_timestamps_and_replicas_required() {
    use kafka_protocol::ResponseError;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), false).await;

    // compression.type and message.timestamp.type: an uncompressed batch with the producer's
    // timestamps is stored zstd-compressed with the broker's time.
    cluster
        .create_topic_with(
            "shaped",
            1,
            &[
                ("compression.type", "zstd"),
                ("message.timestamp.type", "LogAppendTime"),
            ],
        )
        .await;
    let leader = cluster.leader("shaped", 0).await;
    let mut conn = wire::Conn::open(cluster.kafka[leader]).await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let answer = produce_raw(&mut conn, "shaped", wire::idempotent_batch(-1, -1, -1, 3)).await;
    assert_eq!(answer.error_code, 0, "{answer:?}");
    assert!(
        answer.log_append_time_ms >= before,
        "log append time {} before the produce at {before}",
        answer.log_append_time_ms
    );
    let stored = first_stored_batch(&mut conn, "shaped").await;
    let header = strand_log::BatchHeader::parse(&stored).unwrap();
    assert_eq!(header.compression(), strand_log::Compression::Zstd);
    assert_eq!(
        header.attributes & 0x08,
        0x08,
        "timestamp type LogAppendTime"
    );
    assert_eq!(header.max_timestamp, answer.log_append_time_ms);
    let read = read_back(&cluster.config(), "shaped", 1, 3);
    let keys: Vec<Vec<u8>> = read.into_iter().filter_map(|r| r.2).collect();
    // The batch's keys are k<sequence>, its sequence starting at -1 (no producer id).
    assert_eq!(keys, [b"k-1".to_vec(), b"k0".to_vec(), b"k1".to_vec()]);
    // librdkafka reports the broker's time for every record.
    let consumer: BaseConsumer = cluster
        .config()
        .set("group.id", "shaped-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset("shaped", 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let timestamp = loop {
        assert!(std::time::Instant::now() < deadline, "no record read");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => break message.timestamp(),
            Some(Err(e)) => eprintln!("consumer: {e}"),
            None => {}
        }
    };
    assert_eq!(
        timestamp,
        rdkafka::Timestamp::LogAppendTime(answer.log_append_time_ms)
    );
    drop(consumer);

    // min.insync.replicas: with 3 required, acks=all writes are refused once a replica is
    // gone, from the first write on: before the controller notices the replica is gone, the
    // write is committed by the two left but not acknowledged (NOT_ENOUGH_REPLICAS_AFTER_APPEND);
    // once it has noticed, the write is refused before it is taken (NOT_ENOUGH_REPLICAS).
    cluster
        .create_topic_with("strict", 1, &[("min.insync.replicas", "3")])
        .await;
    let leader = cluster.leader("strict", 0).await;
    let mut conn = wire::Conn::open(cluster.kafka[leader]).await;
    produce_until(
        &mut conn,
        "strict",
        0,
        Duration::from_secs(20),
        "never all in sync",
    )
    .await;
    let follower = (leader + 1) % 3;
    cluster.brokers[follower].take().unwrap().stop().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut after_append = 0;
    loop {
        let answer = produce_raw(&mut conn, "strict", wire::idempotent_batch(-1, -1, -1, 1)).await;
        let message = answer
            .error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default();
        assert!(
            message.contains("min.insync.replicas of 3"),
            "a write with a replica gone: {answer:?}"
        );
        if answer.error_code == ResponseError::NotEnoughReplicas.code() {
            break;
        }
        assert_eq!(
            answer.error_code,
            ResponseError::NotEnoughReplicasAfterAppend.code(),
            "{answer:?}"
        );
        after_append += 1;
        assert!(
            std::time::Instant::now() < deadline,
            "the write was never refused up front"
        );
    }
    eprintln!("{after_append} writes committed but not acknowledged before the ISR shrank");
    cluster.shutdown().await;
}
