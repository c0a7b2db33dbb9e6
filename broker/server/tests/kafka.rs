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
