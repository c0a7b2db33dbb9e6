//! The bounds on a Kafka connection (`strand_node::limits`): past each one only the
//! connection that crossed it is refused, closed or slowed, and the broker serves the others.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use strand_node::Limits;
use strand_server::KafkaSettings;

use super::{Cluster, produce_raw, wire};

/// A cluster whose brokers have `limits`.
async fn cluster_with(dir: &std::path::Path, limits: Limits) -> Cluster {
    Cluster::start_with(
        dir,
        KafkaSettings {
            limits,
            ..Default::default()
        },
    )
    .await
}

/// ApiVersions on `conn` answers.
async fn answers(conn: &mut wire::Conn) {
    let versions: ApiVersionsResponse = conn
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    assert_eq!(versions.error_code, 0);
}

/// Waits until the broker closes `conn` (a read ends), for at most `within`.
async fn closed_within(conn: &mut wire::Conn, within: Duration, what: &str) {
    let read = tokio::time::timeout(within, conn.read_frame()).await;
    assert!(
        matches!(read, Ok(None)),
        "{what}: the connection was not closed ({read:?})"
    );
}

async fn open(addr: SocketAddr) -> wire::Conn {
    wire::Conn::open(addr).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_over_request_bytes_max_closes_only_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster_with(
        dir.path(),
        Limits {
            request_bytes_max: 64 * 1024,
            ..Default::default()
        },
    )
    .await;
    let mut other = open(cluster.kafka[0]).await;
    answers(&mut other).await;
    let mut big = open(cluster.kafka[0]).await;
    // The size prefix alone is enough: the broker does not read a frame it will not take.
    let frame = vec![0u8; 64 * 1024 + 1];
    let _ = big.send_frame(&frame).await;
    closed_within(&mut big, Duration::from_secs(10), "an oversized request").await;
    answers(&mut other).await;
    // A request within the bound still goes through (a produce near the limit).
    cluster.create_topic("bounded", 1).await;
    let leader = cluster.leader("bounded", 0).await;
    let mut conn = open(cluster.kafka[leader]).await;
    let answer = produce_raw(
        &mut conn,
        "bounded",
        wire::idempotent_batch(-1, -1, -1, 100),
    )
    .await;
    assert_eq!(answer.error_code, 0);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_past_connections_max_are_closed_and_the_open_ones_served() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster_with(
        dir.path(),
        Limits {
            connections_max: 2,
            ..Default::default()
        },
    )
    .await;
    let addr = cluster.kafka[0];
    let mut first = open(addr).await;
    let mut second = open(addr).await;
    answers(&mut first).await;
    answers(&mut second).await;
    let mut third = open(addr).await;
    closed_within(
        &mut third,
        Duration::from_secs(10),
        "a connection past the limit",
    )
    .await;
    answers(&mut first).await;
    answers(&mut second).await;
    // Once one closes, its place is free again.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = open(addr).await;
        let _ = again.send_frame(&[0, 18, 0, 0, 0, 0, 0, 1, 0, 0]).await;
        if tokio::time::timeout(Duration::from_secs(2), again.read_frame())
            .await
            .ok()
            .flatten()
            .is_some()
        {
            break;
        }
        assert!(Instant::now() < deadline, "the freed place was never taken");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    answers(&mut second).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_connection_is_closed_after_idle_timeout_and_a_busy_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster_with(
        dir.path(),
        Limits {
            idle_timeout: Duration::from_millis(500),
            ..Default::default()
        },
    )
    .await;
    let mut idle = open(cluster.kafka[0]).await;
    answers(&mut idle).await;
    closed_within(&mut idle, Duration::from_secs(10), "an idle connection").await;
    // A connection that keeps asking stays open well past the timeout.
    let mut busy = open(cluster.kafka[0]).await;
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        answers(&mut busy).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A request started and never finished is closed too.
    let mut stalled = open(cluster.kafka[0]).await;
    stalled.send_raw(&[0, 0, 0, 20, 0, 18]).await;
    closed_within(&mut stalled, Duration::from_secs(10), "a stalled request").await;
    // `busy` has been idle meanwhile; a new connection is served.
    answers(&mut open(cluster.kafka[0]).await).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pipelined_requests_past_the_in_flight_bounds_wait_and_are_all_answered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster_with(
        dir.path(),
        Limits {
            in_flight_requests_max: 2,
            in_flight_bytes_max: 4096,
            ..Default::default()
        },
    )
    .await;
    cluster.create_topic("piped", 1).await;
    let leader = cluster.leader("piped", 0).await;
    let mut conn = open(cluster.kafka[leader]).await;
    // 20 produces of about 5 KiB each, every one over the byte allowance by itself, sent
    // without waiting for answers; then every answer, in order, each at the next offset.
    let batch = wire::idempotent_batch(-1, -1, -1, 400);
    assert!(batch.len() > 4096);
    let mut correlations = Vec::new();
    for _ in 0..20 {
        correlations.push(conn.send_produce("piped", batch.clone()).await);
    }
    let mut offsets = Vec::new();
    for correlation in correlations {
        let (answered, response) = conn.read_produce().await;
        assert_eq!(answered, correlation);
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(partition.error_code, 0, "{partition:?}");
        offsets.push(partition.base_offset);
    }
    let expected: Vec<i64> = (0..20).map(|i| i * 400).collect();
    assert_eq!(offsets, expected);
    cluster.shutdown().await;
}
