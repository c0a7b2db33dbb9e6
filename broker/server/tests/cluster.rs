//! In-process clusters: several brokers as tasks of one test process on loopback ports, talked
//! to through the admin API and the internal produce/fetch path.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use prost::Message;
use strand_meta::{BrokerId, Command, PartitionId, TopicId};
use strand_proto::admin::TransferLeadershipRequest;
use strand_proto::admin::admin_client::AdminClient;
use strand_proto::admin::{
    AdminError, CreateTopicRequest, DeleteTopicRequest, DescribeClusterRequest,
    DescribeTopicRequest, ErrorReason, TopicDescription, UpdateTopicRequest,
};
use strand_proto::broker::broker_client::BrokerClient;
use strand_proto::broker::{FetchRequest, ProduceRequest};
use strand_server::{BalancingSettings, Broker, BrokerConfig, RaftTuning};

fn free_addr() -> SocketAddr {
    strand_e2e::free_addr()
}

struct Cluster {
    configs: Vec<BrokerConfig>,
    brokers: Vec<Option<Broker>>,
}

impl Cluster {
    async fn start(dir: &Path, size: u32, tuning: RaftTuning) -> Cluster {
        Self::start_with(dir, size, tuning, BalancingSettings::default()).await
    }

    async fn start_with(
        dir: &Path,
        size: u32,
        tuning: RaftTuning,
        balancing: BalancingSettings,
    ) -> Cluster {
        // STRAND_TEST_LOG=<filter> shows the brokers' logs, e.g. `info,openraft=warn`.
        if let Ok(filter) = std::env::var("STRAND_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let grpc: Vec<SocketAddr> = (0..size).map(|_| free_addr()).collect();
        let kafka: Vec<SocketAddr> = (0..size).map(|_| free_addr()).collect();
        let seeds: Vec<String> = grpc.iter().take(3).map(|a| a.to_string()).collect();
        let configs: Vec<BrokerConfig> = (0..size)
            .map(|i| {
                let http = free_addr();
                BrokerConfig {
                    broker_id: i,
                    data_dir: dir.join(format!("broker-{i}")),
                    grpc_listen: grpc[i as usize],
                    grpc_advertised: grpc[i as usize].to_string(),
                    kafka_advertised: kafka[i as usize].to_string(),
                    kafka_listen: kafka[i as usize],
                    kafka: Default::default(),
                    http_listen: http,
                    http_advertised: http.to_string(),
                    seeds: seeds.clone(),
                    rack: None,
                    tuning,
                    balancing,
                    disk_reserve_bytes: 0,
                    grpc_tls: None,
                    grpc_access: Default::default(),
                }
            })
            .collect();
        let mut brokers = Vec::new();
        for config in &configs {
            brokers.push(Some(
                Broker::start(config.clone()).await.expect("broker starts"),
            ));
        }
        let cluster = Cluster { configs, brokers };
        cluster
            .wait_for("every broker registered", |c| async move {
                let d = c
                    .admin(0)
                    .await?
                    .describe_cluster(DescribeClusterRequest {})
                    .await
                    .ok()?
                    .into_inner();
                (d.brokers.len() == size as usize && d.controller_id.is_some()).then_some(())
            })
            .await;
        cluster
    }

    fn addr(&self, broker: u32) -> String {
        self.configs[broker as usize].grpc_advertised.clone()
    }

    fn alive(&self) -> Vec<u32> {
        (0..self.brokers.len() as u32)
            .filter(|b| self.brokers[*b as usize].is_some())
            .collect()
    }

    async fn admin(&self, broker: u32) -> Option<AdminClient<tonic::transport::Channel>> {
        AdminClient::connect(format!("http://{}", self.addr(broker)))
            .await
            .ok()
    }

    async fn data(&self, broker: u32) -> Option<BrokerClient<tonic::transport::Channel>> {
        BrokerClient::connect(format!("http://{}", self.addr(broker)))
            .await
            .ok()
    }

    /// Polls `check` until it returns something, failing the test after 30 s.
    async fn wait_for<'a, T, F, Fut>(&'a self, what: &str, check: F) -> T
    where
        F: Fn(&'a Cluster) -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(value) = check(self).await {
                return value;
            }
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn describe(&self, topic: &str) -> Option<TopicDescription> {
        for broker in self.alive() {
            let Some(mut admin) = self.admin(broker).await else {
                continue;
            };
            if let Ok(d) = admin
                .describe_topic(DescribeTopicRequest { name: topic.into() })
                .await
            {
                return Some(d.into_inner());
            }
        }
        None
    }

    /// Produces one batch to the partition's current leader, retrying through leader changes.
    /// Each new reason for a retry is printed, so a produce that times out says why.
    async fn produce(&self, topic: &str, partition: u32, batch: Vec<u8>) -> i64 {
        let what = format!("a produce to {topic}-{partition} to be acknowledged");
        let last_reason = std::sync::Mutex::new(String::new());
        let retry = |reason: String| {
            let mut last = last_reason.lock().unwrap();
            if *last != reason {
                eprintln!("{topic}-{partition}: {reason}");
                *last = reason;
            }
        };
        self.wait_for(&what, |c| {
            let batch = batch.clone();
            let retry = &retry;
            async move {
                let Some(d) = c.describe(topic).await else {
                    retry("no broker describes the topic".into());
                    return None;
                };
                let Some(leader) = d.partitions[partition as usize].leader else {
                    retry("the description names no leader".into());
                    return None;
                };
                if c.brokers.get(leader as usize)?.is_none() {
                    retry(format!("the description names stopped broker {leader}"));
                    return None;
                }
                let mut client = c.data(leader).await?;
                let req = ProduceRequest {
                    topic: topic.into(),
                    partition,
                    batch: batch.into(),
                };
                match client.produce(req).await {
                    Ok(r) => Some(r.into_inner().base_offset),
                    Err(status) => {
                        retry(format!("broker {leader}: {}", status.message()));
                        None
                    }
                }
            }
        })
        .await
    }

    /// Every record value of the partition as `broker`'s replica holds it, once `count` are there.
    async fn read_all(
        &self,
        broker: u32,
        topic: &str,
        partition: u32,
        count: usize,
    ) -> Vec<String> {
        let what = format!("broker {broker} to hold {count} records of {topic}-{partition}");
        self.wait_for(&what, |c| async move {
            let mut client = c.data(broker).await?;
            let req = FetchRequest {
                topic: topic.into(),
                partition,
                offset: 0,
                max_bytes: 1 << 24,
                max_wait_ms: 200,
            };
            let resp = client.fetch(req).await.ok()?.into_inner();
            let values = values_of(&resp.batches);
            (values.len() >= count).then_some(values)
        })
        .await
    }

    async fn stop(&mut self, broker: u32) {
        if let Some(b) = self.brokers[broker as usize].take() {
            b.stop().await;
        }
    }

    async fn restart(&mut self, broker: u32) {
        let config = self.configs[broker as usize].clone();
        self.brokers[broker as usize] = Some(Broker::start(config).await.expect("broker restarts"));
    }

    async fn shutdown(mut self) {
        for b in 0..self.brokers.len() as u32 {
            self.stop(b).await;
        }
    }
}

fn values_of(mut bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while bytes.len() >= 12 {
        let len = i32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize + 12;
        for r in strand_log::decode_records(&bytes[..len]).unwrap() {
            out.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
        bytes = &bytes[len..];
    }
    out
}

fn batch(values: &[String]) -> Vec<u8> {
    let records: Vec<strand_log::RecordSpec<'_>> = values
        .iter()
        .map(|v| (None, Some(v.as_bytes()), 1_700_000_000_000))
        .collect();
    strand_log::build_batch(&records)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicated_topic_survives_a_leader_kill_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 3, RaftTuning::default()).await;
    let mut admin = cluster.admin(1).await.unwrap();
    let created = admin
        .create_topic(CreateTopicRequest {
            name: "orders".into(),
            partitions: 6,
            replication_factor: 3,
            ..Default::default()
        })
        .await
        .expect("topic created")
        .into_inner();
    assert_eq!(created.partitions.len(), 6);
    assert!(created.partitions.iter().all(|p| p.replicas.len() == 3));

    // Writes to every partition, acknowledged by a majority.
    let mut acked: Vec<Vec<String>> = vec![Vec::new(); 6];
    for p in 0..6u32 {
        for n in 0..5 {
            let values: Vec<String> = (0..3).map(|r| format!("p{p}-b{n}-r{r}")).collect();
            let offset = cluster.produce("orders", p, batch(&values)).await;
            assert_eq!(
                offset,
                acked[p as usize].len() as i64,
                "offsets are contiguous"
            );
            acked[p as usize].extend(values);
        }
    }
    // Every replica holds every acknowledged record, in order.
    for broker in 0..3 {
        for p in 0..6 {
            assert_eq!(
                cluster
                    .read_all(broker, "orders", p, acked[p as usize].len())
                    .await,
                acked[p as usize]
            );
        }
    }

    // Kill the leader of partition 0: another replica takes writes.
    let leader = cluster.describe("orders").await.unwrap().partitions[0]
        .leader
        .unwrap();
    cluster.stop(leader).await;
    let values: Vec<String> = (0..3).map(|r| format!("p0-after-kill-r{r}")).collect();
    let offset = cluster.produce("orders", 0, batch(&values)).await;
    assert_eq!(offset, acked[0].len() as i64);
    acked[0].extend(values);
    let new_leader = cluster.describe("orders").await.unwrap().partitions[0]
        .leader
        .unwrap();
    assert_ne!(new_leader, leader);

    // The killed broker comes back and catches up; nothing acknowledged is lost anywhere.
    cluster.restart(leader).await;
    for broker in 0..3 {
        for p in 0..6 {
            assert_eq!(
                cluster
                    .read_all(broker, "orders", p, acked[p as usize].len())
                    .await,
                acked[p as usize]
            );
        }
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_moves_to_another_broker_and_leadership_follows_the_preferred_replica() {
    let dir = tempfile::tempdir().unwrap();
    // Only the reassignment made here moves replicas.
    let balancing = BalancingSettings {
        auto: false,
        ..BalancingSettings::default()
    };
    let cluster = Cluster::start_with(dir.path(), 4, RaftTuning::default(), balancing).await;
    create(&cluster, "moving", 1).await;
    let before = cluster.describe("moving").await.unwrap();
    let mut acked = Vec::new();
    for n in 0..10 {
        let values: Vec<String> = (0..3).map(|r| format!("before-b{n}-r{r}")).collect();
        cluster.produce("moving", 0, batch(&values)).await;
        acked.extend(values);
    }

    // Swap the preferred replica for the broker that holds none.
    let old = before.partitions[0].replicas.clone();
    let newcomer = (0..4).find(|b| !old.contains(b)).unwrap();
    let mut new = old.clone();
    new[0] = newcomer;
    let topic_id = TopicId(before.topic_id.parse().unwrap());
    let outcome = cluster.brokers[newcomer as usize]
        .as_ref()
        .unwrap()
        .inner()
        .cluster
        .propose(
            &Command::ReassignPartition {
                topic_id,
                partition: PartitionId(0),
                replicas: new.iter().copied().map(BrokerId).collect(),
            },
            Duration::from_secs(10),
        )
        .await
        .expect("reassignment proposed");
    assert!(
        matches!(outcome, strand_server::Outcome::Done { .. }),
        "{outcome:?}"
    );

    // The move finishes: the new replica holds everything, the old one is gone, and the
    // preferred replica leads.
    cluster
        .wait_for("the move to finish with the new replica leading", |c| {
            let new = new.clone();
            async move {
                let p = c.describe("moving").await?.partitions.remove(0);
                (p.replicas == new && p.leaving.is_empty() && p.leader == Some(newcomer))
                    .then_some(())
            }
        })
        .await;
    assert_eq!(
        cluster.read_all(newcomer, "moving", 0, acked.len()).await,
        acked
    );
    let gone = old[0];
    cluster
        .wait_for("the old replica to be removed", |c| async move {
            let broker = c.brokers[gone as usize].as_ref()?;
            broker
                .inner()
                .registry
                .partition_by_name("moving", 0)
                .is_none()
                .then_some(())
        })
        .await;

    // Writes go on through the new replica set, with contiguous offsets.
    let values: Vec<String> = (0..3).map(|r| format!("after-r{r}")).collect();
    let offset = cluster.produce("moving", 0, batch(&values)).await;
    assert_eq!(offset, acked.len() as i64);
    acked.extend(values);
    for broker in &new {
        assert_eq!(
            cluster.read_all(*broker, "moving", 0, acked.len()).await,
            acked
        );
    }

    // TransferLeadership makes another replica preferred, and it takes over.
    let mut admin = cluster.admin(0).await.unwrap();
    let to = new[2];
    let described = admin
        .transfer_leadership(TransferLeadershipRequest {
            topic: "moving".into(),
            partition: 0,
            broker_id: to,
        })
        .await
        .expect("leadership transferred")
        .into_inner();
    assert_eq!(described.partitions[0].replicas[0], to);
    assert_eq!(described.partitions[0].leader, Some(to));
    let refused = admin
        .transfer_leadership(TransferLeadershipRequest {
            topic: "moving".into(),
            partition: 0,
            broker_id: gone,
        })
        .await
        .expect_err("a broker without a replica cannot lead");
    assert_eq!(admin_reason(&refused).0, ErrorReason::BrokerState);
    cluster.shutdown().await;
}

/// A leader that offers its leadership takes no writes until another replica takes the offer.
/// Offered to a broker that cannot take it (here one that stopped a moment ago, before the
/// controller noticed), the group must not wait for that broker: another replica is elected
/// and takes writes, and the offered broker, back later behind the others, catches up and
/// leads as the preferred replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leadership_offered_to_a_broker_that_just_stopped_is_taken_by_another_replica() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 3, RaftTuning::default()).await;
    create(&cluster, "offered", 1).await;
    let described = cluster
        .wait_for("the preferred replica to lead", |c| async move {
            let d = c.describe("offered").await?;
            let p = &d.partitions[0];
            (p.leader == p.replicas.first().copied()).then_some(d)
        })
        .await;
    let before = &described.partitions[0];
    let leader = before.leader.unwrap();
    let mut acked = Vec::new();
    let mut write = async |cluster: &Cluster, label: &str| {
        let values: Vec<String> = (0..2).map(|r| format!("{label}-r{r}")).collect();
        let offset = cluster.produce("offered", 0, batch(&values)).await;
        assert_eq!(offset, acked.len() as i64, "offsets are contiguous");
        acked.extend(values);
    };
    write(&cluster, "before").await;

    // Stop a follower that is not the controller, so its absence shows only once its status
    // reports go stale; records written meanwhile leave it behind.
    let controller = cluster
        .admin(leader)
        .await
        .unwrap()
        .describe_cluster(DescribeClusterRequest {})
        .await
        .unwrap()
        .into_inner()
        .controller_id;
    let offered = *before
        .replicas
        .iter()
        .find(|b| **b != leader && Some(**b) != controller)
        .unwrap();
    cluster.stop(offered).await;
    write(&cluster, "while-down").await;

    // Make it the preferred replica at once: the leader's view still counts it alive and
    // caught up, so leader balancing offers it the leadership.
    let topic_id = TopicId(described.topic_id.parse().unwrap());
    let mut replicas = vec![offered];
    replicas.extend(before.replicas.iter().filter(|b| **b != offered));
    let outcome = cluster.brokers[leader as usize]
        .as_ref()
        .unwrap()
        .inner()
        .cluster
        .propose(
            &Command::ReassignPartition {
                topic_id,
                partition: PartitionId(0),
                replicas: replicas.iter().copied().map(BrokerId).collect(),
            },
            Duration::from_secs(10),
        )
        .await
        .expect("reorder proposed");
    assert!(
        matches!(outcome, strand_server::Outcome::Done { .. }),
        "{outcome:?}"
    );

    // The third replica is elected while the offered broker is down (the offer was made: the
    // leader gave up leading, and nobody waited for the offer to be taken) and takes writes.
    let third = *before
        .replicas
        .iter()
        .find(|b| **b != leader && **b != offered)
        .unwrap();
    let what = format!(
        "broker {third} to lead, after broker {leader} offered leadership to stopped broker \
         {offered}"
    );
    cluster
        .wait_for(&what, |c| async move {
            let p = c.describe("offered").await?.partitions.remove(0);
            (p.leader == Some(third)).then_some(())
        })
        .await;
    write(&cluster, "after-offer").await;

    // Back, the offered broker catches up and leads, and takes writes.
    cluster.restart(offered).await;
    cluster
        .wait_for("the offered broker to lead", |c| async move {
            let p = c.describe("offered").await?.partitions.remove(0);
            (p.leader == Some(offered)).then_some(())
        })
        .await;
    write(&cluster, "after-restart").await;
    for broker in 0..3 {
        assert_eq!(
            cluster.read_all(broker, "offered", 0, acked.len()).await,
            acked
        );
    }
    cluster.shutdown().await;
}

async fn create(cluster: &Cluster, name: &str, partitions: u32) {
    let mut admin = cluster.admin(0).await.unwrap();
    let req = CreateTopicRequest {
        name: name.into(),
        partitions,
        replication_factor: 3,
        ..Default::default()
    };
    admin.create_topic(req).await.expect("topic created");
}

async fn write_round(cluster: &Cluster, topic: &str, acked: &mut [Vec<String>], label: &str) {
    for (p, records) in acked.iter_mut().enumerate() {
        let values: Vec<String> = (0..2).map(|r| format!("{label}-p{p}-r{r}")).collect();
        let offset = cluster.produce(topic, p as u32, batch(&values)).await;
        assert_eq!(offset, records.len() as i64);
        records.extend(values);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_with_an_empty_disk_rejoins_as_a_new_incarnation() {
    let dir = tempfile::tempdir().unwrap();
    // Snapshots every few entries, keeping nothing behind them: the new incarnation can only
    // catch up by receiving a snapshot, whose log prefix is streamed as segment files.
    let tuning = RaftTuning {
        snapshot_every_entries: 8,
        entries_kept_after_snapshot: 0,
        ..RaftTuning::default()
    };
    let mut cluster = Cluster::start(dir.path(), 3, tuning).await;
    create(&cluster, "ledger", 3).await;
    let mut acked: Vec<Vec<String>> = vec![Vec::new(); 3];
    for n in 0..20 {
        write_round(&cluster, "ledger", &mut acked, &format!("before-{n}")).await;
    }
    let old = cluster
        .admin(0)
        .await
        .unwrap()
        .describe_cluster(DescribeClusterRequest {})
        .await
        .unwrap()
        .into_inner();
    let old_node = old
        .brokers
        .iter()
        .find(|b| b.broker_id == 2)
        .unwrap()
        .node_id;

    cluster.stop(2).await;
    std::fs::remove_dir_all(dir.path().join("broker-2")).unwrap();
    cluster.restart(2).await;
    let new_node = cluster
        .wait_for(
            "broker 2 to register as a new incarnation",
            |c| async move {
                let d = c
                    .admin(0)
                    .await?
                    .describe_cluster(DescribeClusterRequest {})
                    .await
                    .ok()?
                    .into_inner();
                d.brokers
                    .iter()
                    .find(|b| b.broker_id == 2 && b.node_id != old_node)
                    .map(|b| b.node_id)
            },
        )
        .await;
    assert_ne!(new_node, old_node);
    for p in 0..3 {
        assert_eq!(
            cluster
                .read_all(2, "ledger", p, acked[p as usize].len())
                .await,
            acked[p as usize]
        );
    }

    // With broker 0 gone, brokers 1 and 2 are a majority of every group only if the new
    // incarnation replaced the old one as a voter everywhere.
    cluster
        .wait_for(
            "every partition led with all replicas caught up",
            |c| async move {
                let d = c
                    .admin(1)
                    .await?
                    .describe_cluster(DescribeClusterRequest {})
                    .await
                    .ok()?
                    .into_inner();
                (d.under_replicated_partitions == 0 && d.leaderless_partitions == 0).then_some(())
            },
        )
        .await;
    cluster.stop(0).await;
    write_round(&cluster, "ledger", &mut acked, "after").await;
    for broker in [1, 2] {
        for p in 0..3 {
            assert_eq!(
                cluster
                    .read_all(broker, "ledger", p, acked[p as usize].len())
                    .await,
                acked[p as usize]
            );
        }
    }
    cluster.shutdown().await;
}

fn admin_reason(status: &tonic::Status) -> (ErrorReason, String) {
    let details = AdminError::decode(status.details()).expect("admin error details");
    (
        ErrorReason::try_from(details.reason).unwrap(),
        details.config_key,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_api_refuses_bad_requests_with_typed_errors_and_manages_topics() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), 3, RaftTuning::default()).await;
    // Any broker answers: those that are not the controller pass calls on.
    let mut admin = cluster.admin(2).await.unwrap();
    let request =
        |name: &str, partitions, replication_factor, config: &[(&str, &str)]| CreateTopicRequest {
            name: name.into(),
            partitions,
            replication_factor,
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
    admin
        .create_topic(request("events", 3, 3, &[("retention.ms", "60000")]))
        .await
        .expect("created");

    let exists = admin
        .create_topic(request("events", 3, 3, &[]))
        .await
        .unwrap_err();
    assert_eq!(exists.code(), tonic::Code::AlreadyExists);
    assert_eq!(admin_reason(&exists).0, ErrorReason::TopicExists);
    let bad_config = admin
        .create_topic(request("other", 1, 1, &[("retention.ms", "soon")]))
        .await
        .unwrap_err();
    assert_eq!(bad_config.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        admin_reason(&bad_config),
        (ErrorReason::InvalidConfig, "retention.ms".to_string())
    );
    let unknown_key = admin
        .create_topic(request("other", 1, 1, &[("retention.days", "3")]))
        .await
        .unwrap_err();
    assert_eq!(
        admin_reason(&unknown_key),
        (ErrorReason::InvalidConfig, "retention.days".to_string())
    );
    let too_many = admin
        .create_topic(request("other", 1, 5, &[]))
        .await
        .unwrap_err();
    assert_eq!(admin_reason(&too_many).0, ErrorReason::NotEnoughBrokers);
    assert!(
        too_many.message().contains('5') && too_many.message().contains('3'),
        "{}",
        too_many.message()
    );
    let bad_name = admin
        .create_topic(request("no spaces", 1, 1, &[]))
        .await
        .unwrap_err();
    assert_eq!(admin_reason(&bad_name).0, ErrorReason::InvalidTopicName);

    // Partitions only grow; config changes show in the description.
    let grown = admin
        .update_topic(UpdateTopicRequest {
            name: "events".into(),
            partitions: Some(5),
            set_config: [("cleanup.policy".to_string(), "compact".to_string())].into(),
            remove_config: vec!["retention.ms".into()],
            ..Default::default()
        })
        .await
        .expect("updated")
        .into_inner();
    assert_eq!(grown.partitions.len(), 5);
    assert_eq!(
        grown.config.get("cleanup.policy").map(String::as_str),
        Some("compact")
    );
    assert!(!grown.config.contains_key("retention.ms"));
    let shrink = UpdateTopicRequest {
        name: "events".into(),
        partitions: Some(2),
        ..Default::default()
    };
    let shrink = admin.update_topic(shrink).await.unwrap_err();
    assert_eq!(admin_reason(&shrink).0, ErrorReason::InvalidPartitions);
    let offset = cluster
        .produce("events", 4, batch(&["new partition".to_string()]))
        .await;
    assert_eq!(offset, 0);

    // Deleting removes every replica; deleting again is not an error.
    let deleted = admin
        .delete_topic(DeleteTopicRequest {
            name: "events".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(deleted.into_inner().deleted);
    let again = admin
        .delete_topic(DeleteTopicRequest {
            name: "events".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!again.into_inner().deleted);
    let gone = admin
        .describe_topic(DescribeTopicRequest {
            name: "events".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(admin_reason(&gone).0, ErrorReason::UnknownTopic);
    cluster
        .wait_for("every replica directory removed", |_| async {
            let left = (0..3).any(|b| {
                std::fs::read_dir(dir.path().join(format!("broker-{b}/partitions")))
                    .map(|entries| entries.count() > 0)
                    .unwrap_or(false)
            });
            (!left).then_some(())
        })
        .await;
    cluster.shutdown().await;
}
