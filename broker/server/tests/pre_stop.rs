//! `POST /v1/pre-stop` on a broker's HTTP port, against in-process brokers: the broker hands
//! every leadership to another replica and answers once it leads nothing; where nobody can take
//! them it answers anyway, saying what is left. It is taken only from the broker's own host.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use strand_proto::admin::admin_client::AdminClient;
use strand_proto::admin::{CreateTopicRequest, DescribeTopicRequest, TopicDescription};
use strand_proto::broker::ProduceRequest;
use strand_proto::broker::broker_client::BrokerClient;
use strand_server::{Broker, BrokerConfig, HandOver, RaftTuning};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Broker `id`'s settings, in `dir`, with its gRPC and HTTP addresses.
fn config(
    dir: &Path,
    id: u32,
    grpc: SocketAddr,
    http: SocketAddr,
    seeds: &[String],
) -> BrokerConfig {
    let kafka = strand_e2e::free_addr();
    BrokerConfig {
        broker_id: id,
        data_dir: dir.join(format!("broker-{id}")),
        grpc_listen: grpc,
        grpc_advertised: grpc.to_string(),
        peer_source_address: None,
        kafka_advertised: kafka.to_string(),
        kafka_listen: kafka,
        kafka: Default::default(),
        http_listen: http,
        http_advertised: http.to_string(),
        seeds: seeds.to_vec(),
        rack: None,
        tuning: RaftTuning::default(),
        balancing: Default::default(),
        disk_reserve_bytes: 0,
        grpc_tls: None,
        grpc_access: Default::default(),
        http_tls: None,
    }
}

/// `size` brokers in this process, with their gRPC and HTTP addresses.
struct Cluster {
    brokers: Vec<Option<Broker>>,
    grpc: Vec<SocketAddr>,
    http: Vec<SocketAddr>,
}

impl Cluster {
    async fn start(dir: &Path, size: usize) -> Cluster {
        if let Ok(filter) = std::env::var("STRAND_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let grpc: Vec<SocketAddr> = (0..size).map(|_| strand_e2e::free_addr()).collect();
        let http: Vec<SocketAddr> = (0..size).map(|_| strand_e2e::free_addr()).collect();
        let seeds: Vec<String> = grpc.iter().map(|a| a.to_string()).collect();
        let mut brokers = Vec::new();
        for i in 0..size {
            let config = config(dir, i as u32, grpc[i], http[i], &seeds);
            brokers.push(Some(Broker::start(config).await.unwrap()));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while brokers.iter().flatten().any(|b| {
            b.inner().cluster.state().brokers().len() < size
                || b.inner().cluster.controller().is_none()
        }) {
            assert!(Instant::now() < deadline, "cluster did not form");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Cluster {
            brokers,
            grpc,
            http,
        }
    }

    fn broker(&self, i: usize) -> &Broker {
        self.brokers[i].as_ref().expect("broker running")
    }

    /// Creates `name` and waits until every partition has a leader.
    async fn create(&self, name: &str, partitions: u32, replication_factor: u32) {
        let mut admin = AdminClient::connect(format!("http://{}", self.grpc[0]))
            .await
            .unwrap();
        admin
            .create_topic(CreateTopicRequest {
                name: name.into(),
                partitions,
                replication_factor,
                ..Default::default()
            })
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while (0..partitions).any(|p| self.leader(name, p).is_none()) {
            assert!(
                Instant::now() < deadline,
                "{name} has partitions without leaders"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every partition of `name` is led by its preferred replica, so leadership
    /// stays where it is unless something moves it.
    async fn wait_for_preferred_leaders(&self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let d = self.describe(name).await;
            if d.partitions.iter().all(|p| {
                p.leader == p.replicas.first().copied()
                    && self.leader(name, p.partition) == p.leader.map(|l| l as usize)
            }) {
                return;
            }
            assert!(Instant::now() < deadline, "leaders not preferred: {d:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Writes one record to `topic`/`partition` through the broker leading it, once.
    async fn produce_once(&self, topic: &str, partition: u32) -> Result<i64, String> {
        let leader = self
            .leader(topic, partition)
            .ok_or_else(|| format!("{topic}-{partition} has no leader"))?;
        let mut client = BrokerClient::connect(format!("http://{}", self.grpc[leader]))
            .await
            .map_err(|e| e.to_string())?;
        let batch = strand_log::build_batch(&[(None, Some(&b"v"[..]), 1_700_000_000_000)]);
        client
            .produce(ProduceRequest {
                topic: topic.into(),
                partition,
                batch: batch.into(),
            })
            .await
            .map(|r| r.into_inner().base_offset)
            .map_err(|s| format!("broker {leader}: {}", s.message()))
    }

    /// The running broker leading `topic`/`partition`, if one does.
    fn leader(&self, topic: &str, partition: u32) -> Option<usize> {
        (0..self.brokers.len()).find(|i| {
            self.brokers[*i]
                .as_ref()
                .is_some_and(|b| b.leads(topic, partition))
        })
    }

    async fn describe(&self, name: &str) -> TopicDescription {
        let mut admin = AdminClient::connect(format!("http://{}", self.grpc[0]))
            .await
            .unwrap();
        admin
            .describe_topic(DescribeTopicRequest { name: name.into() })
            .await
            .unwrap()
            .into_inner()
    }

    async fn shutdown(self) {
        for broker in self.brokers.into_iter().flatten() {
            broker.stop().await;
        }
    }
}

/// `POST path` over plain HTTP/1.1, as `strand broker pre-stop` sends it; status and body.
async fn post(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    (status, body.to_string())
}

async fn pre_stop(cluster: &Cluster, broker: usize, timeout_ms: u64) -> HandOver {
    let (status, body) = post(
        cluster.http[broker],
        &format!("/v1/pre-stop?timeout_ms={timeout_ms}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pre_stop_hands_every_leadership_to_another_broker() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 3).await;
    cluster.create("spread", 6, 3).await;
    cluster.wait_for_preferred_leaders("spread").await;
    // The broker leading the most partitions, so there is plenty to hand over.
    let led = |c: &Cluster, b: usize| (0..6).filter(|p| c.leader("spread", *p) == Some(b)).count();
    let leaving = (0..3).max_by_key(|b| led(&cluster, *b)).unwrap();
    let partitions_led = led(&cluster, leaving);
    assert!(partitions_led > 0);
    let was_controller = cluster.broker(leaving).inner().cluster.is_controller();

    let report = pre_stop(&cluster, leaving, 30_000).await;
    assert_eq!(report.remaining, 0, "{report:?}");
    assert!(!report.deadline_passed, "{report:?}");
    assert_eq!(
        report.handed_over,
        partitions_led + usize::from(was_controller),
        "{report:?}"
    );
    assert!(!cluster.broker(leaving).inner().cluster.is_controller());
    for p in 0..6 {
        let leader = cluster.leader("spread", p);
        assert!(
            leader.is_some_and(|b| b != leaving),
            "spread-{p} is led by {leader:?}"
        );
    }
    // They stay with the others, which take writes all along: leader balancing offers none
    // back to the stopping broker, though it is the preferred replica of some (it would
    // refuse, and a leader takes no writes while its offer stands). Three seconds are three
    // rounds of balancing.
    let watch_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < watch_until {
        for p in 0..6 {
            assert!(!cluster.broker(leaving).leads("spread", p));
            if let Err(e) = cluster.produce_once("spread", p).await {
                panic!("spread-{p} refused a write after the hand-over: {e}");
            }
        }
    }

    // Calling it again finds nothing to do; SIGTERM's hand-over after it neither.
    let again = pre_stop(&cluster, leaving, 30_000).await;
    assert_eq!((again.handed_over, again.remaining), (0, 0), "{again:?}");
    if let Some(broker) = cluster.brokers[leaving].take() {
        broker.shutdown().await;
    }
    let described = cluster.describe("spread").await;
    assert!(
        described
            .partitions
            .iter()
            .all(|p| p.leader.is_some_and(|l| l as usize != leaving)),
        "{described:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pre_stop_answers_with_what_it_could_not_hand_over() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), 1).await;
    cluster.create("alone", 2, 1).await;
    // Nobody else holds a replica: it answers at once rather than at the deadline.
    let report = pre_stop(&cluster, 0, 600_000).await;
    assert_eq!(report.handed_over, 0);
    assert_eq!(report.remaining, 3, "{report:?}");
    assert_eq!(report.without_other_voter, 3, "{report:?}");
    assert!(!report.deadline_passed);
    let mut still = report.still_leading.clone();
    still.sort();
    assert_eq!(still, ["alone-0", "alone-1", "controller"]);

    // A malformed timeout is refused before anything happens.
    let (status, body) = post(cluster.http[0], "/v1/pre-stop?timeout_ms=soon").await;
    assert_eq!(status, 400, "{body}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pre_stop_returns_at_its_deadline_when_the_other_voters_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 3).await;
    cluster.create("stranded", 1, 3).await;
    let leader = cluster.leader("stranded", 0).unwrap();
    for other in (0..3).filter(|b| *b != leader) {
        if let Some(broker) = cluster.brokers[other].take() {
            broker.stop().await;
        }
    }
    // The other voters look caught up (they were, when they stopped), so it keeps offering
    // until the deadline, then says what it still leads.
    let report = pre_stop(&cluster, leader, 4_000).await;
    assert!(report.deadline_passed, "{report:?}");
    assert!(report.remaining >= 1, "{report:?}");
    assert_eq!(report.without_other_voter, 0, "{report:?}");
    assert!(
        report.still_leading.iter().any(|g| g == "stranded-0"),
        "{report:?}"
    );
    cluster.shutdown().await;
}

/// This host's address on the interface of its default route: not a loopback address.
fn outside_address() -> std::net::IpAddr {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    // Connecting a UDP socket sends nothing; it only picks the route and so the local address.
    socket
        .connect("203.0.113.1:9")
        .expect("this test needs a non-loopback interface with a default route");
    let ip = socket.local_addr().unwrap().ip();
    assert!(!ip.is_loopback(), "{ip}");
    ip
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_stop_is_taken_only_from_this_host() {
    let dir = tempfile::tempdir().unwrap();
    let grpc = strand_e2e::free_addr();
    // Listening on every interface, as in a pod.
    let http = SocketAddr::from(([0, 0, 0, 0], strand_e2e::free_addr().port()));
    let config = config(dir.path(), 0, grpc, http, &[grpc.to_string()]);
    let broker = Broker::start(config).await.unwrap();
    let from_outside = SocketAddr::new(outside_address(), http.port());
    let (status, body) = post(from_outside, "/v1/pre-stop?timeout_ms=100").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("only taken from this host"), "{body}");
    let from_here = SocketAddr::from(([127, 0, 0, 1], http.port()));
    let (status, body) = post(from_here, "/v1/pre-stop?timeout_ms=100").await;
    assert_eq!(status, 200, "{body}");
    broker.stop().await;
}
