//! Real Kafka clients (librdkafka through the `rdkafka` crate) against an in-process cluster
//! of three brokers on loopback ports.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use strand_server::{Broker, BrokerConfig, KafkaSettings, RaftTuning};

fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
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
    brokers: Vec<Broker>,
    bootstrap: String,
}

impl Cluster {
    async fn start(dir: &Path, auto_create_topics: bool) -> Cluster {
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
                kafka_advertised: kafka[i as usize].to_string(),
                kafka_listen: kafka[i as usize],
                kafka: KafkaSettings {
                    auto_create_topics,
                    ..Default::default()
                },
                http_listen: http,
                http_advertised: http.to_string(),
                seeds: seeds.clone(),
                rack: None,
                tuning: RaftTuning::default(),
            };
            brokers.push(Broker::start(config).await.unwrap());
        }
        // Clients are started once the cluster has formed: every broker registered, and a
        // controller elected.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while brokers
            .iter()
            .any(|b| b.inner().cluster().brokers().len() < 3 || b.inner().controller().is_none())
        {
            assert!(std::time::Instant::now() < deadline, "cluster did not form");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let bootstrap = kafka
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",");
        Cluster { brokers, bootstrap }
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
        let admin: AdminClient<Printing> = self.config().create_with_context(Printing).unwrap();
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(3));
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

    async fn shutdown(self) {
        for broker in self.brokers {
            broker.shutdown().await;
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
    let consumer: BaseConsumer = config
        .clone()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    consumer
}

/// Polls every consumer in turn until `done` holds, collecting (partition, offset, key).
fn poll_until(
    consumers: &[&BaseConsumer],
    seen: &mut Vec<(i32, i64, String)>,
    what: &str,
    mut done: impl FnMut(&[&BaseConsumer], &[(i32, i64, String)]) -> bool,
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

fn assigned(consumer: &BaseConsumer) -> Vec<i32> {
    consumer
        .assignment()
        .map(|a| a.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

fn covers_all(consumers: &[&BaseConsumer], partitions: i32) -> bool {
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
