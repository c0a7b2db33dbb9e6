//! In-process clusters: several brokers as tasks of one test process on loopback ports, talked
//! to through the admin API and the internal produce/fetch path.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use prost::Message;
use strand_meta::{BrokerId, Command, PartitionId, TopicId};
use strand_node::{AppendError, Appended};
use strand_proto::admin::TransferLeadershipRequest;
use strand_proto::admin::admin_client::AdminClient;
use strand_proto::admin::{
    AdminError, ClusterDescription, CreateTopicRequest, DeleteTopicRequest, DescribeClusterRequest,
    DescribeTopicRequest, ErrorReason, TopicDescription, UpdateTopicRequest,
};
use strand_proto::broker::broker_client::BrokerClient;
use strand_proto::broker::{FetchRequest, ProduceRequest};
use strand_server::{BalancingSettings, Broker, BrokerConfig, KafkaSettings, RaftTuning};

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
        Self::start_configured(dir, size, tuning, balancing, KafkaSettings::default()).await
    }

    async fn start_configured(
        dir: &Path,
        size: u32,
        tuning: RaftTuning,
        balancing: BalancingSettings,
        settings: KafkaSettings,
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
                    peer_source_address: None,
                    kafka_advertised: kafka[i as usize].to_string(),
                    kafka_listen: kafka[i as usize],
                    kafka: settings.clone(),
                    http_listen: http,
                    http_advertised: http.to_string(),
                    seeds: seeds.clone(),
                    rack: None,
                    tuning,
                    balancing,
                    disk_reserve_bytes: 0,
                    grpc_tls: None,
                    grpc_access: Default::default(),
                    http_tls: None,
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
                let d = c.describe_cluster(0).await?;
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

    /// The cluster as `broker` describes it, if it answers.
    async fn describe_cluster(&self, broker: u32) -> Option<ClusterDescription> {
        let mut admin = self.admin(broker).await?;
        let d = admin
            .describe_cluster(DescribeClusterRequest {})
            .await
            .ok()?;
        Some(d.into_inner())
    }

    /// The broker leading partition 0 of `topic`, once one does.
    async fn leader(&self, topic: &str) -> u32 {
        self.wait_for("a leader", |c| async move {
            c.describe(topic).await?.partitions[0].leader
        })
        .await
    }

    /// A client of `broker`'s Raft service, as a peer calls it.
    async fn raft_client(
        &self,
        broker: u32,
    ) -> strand_proto::raft::raft_client::RaftClient<tonic::transport::Channel> {
        let channel =
            tonic::transport::Channel::from_shared(format!("http://{}", self.addr(broker)))
                .unwrap()
                .connect()
                .await
                .unwrap();
        strand_proto::raft::raft_client::RaftClient::new(channel)
    }

    async fn stop(&mut self, broker: u32) {
        if let Some(b) = self.brokers[broker as usize].take() {
            b.stop().await;
        }
    }

    /// Waits until `broker` says it is ready (`/readyz`'s condition).
    async fn wait_ready(&self, broker: u32) {
        self.wait_for(&format!("broker {broker} to be ready"), |c| async move {
            strand_server::not_ready(c.brokers[broker as usize].as_ref()?.inner())
                .is_none()
                .then_some(())
        })
        .await;
    }

    /// Stops `broker` as a crash would, empties its data directory under `dir` and starts it
    /// again: a new incarnation.
    async fn restart_on_an_empty_disk(&mut self, dir: &Path, broker: u32) {
        self.stop(broker).await;
        std::fs::remove_dir_all(dir.join(format!("broker-{broker}"))).unwrap();
        self.restart(broker).await;
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
        .describe_cluster(leader)
        .await
        .unwrap()
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

/// Snapshots every few entries, keeping nothing behind them: a new incarnation can only catch
/// up by receiving a snapshot, whose log prefix is streamed as segment files.
fn snapshots_only() -> RaftTuning {
    RaftTuning {
        snapshot_every_entries: 8,
        entries_kept_after_snapshot: 0,
        ..RaftTuning::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_with_an_empty_disk_rejoins_as_a_new_incarnation() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 3, snapshots_only()).await;
    create(&cluster, "ledger", 3).await;
    let mut acked: Vec<Vec<String>> = vec![Vec::new(); 3];
    for n in 0..20 {
        write_round(&cluster, "ledger", &mut acked, &format!("before-{n}")).await;
    }
    let old = cluster.describe_cluster(0).await.unwrap();
    let old_node = old
        .brokers
        .iter()
        .find(|b| b.broker_id == 2)
        .unwrap()
        .node_id;

    // The controller does not change the metadata group's voters for now: the new incarnation
    // stays a learner there, with the old one still counted among the voters.
    let held = format!("return({})", dir.path().display());
    fail::cfg("controller::metadata_voters", &held).unwrap();
    cluster.restart_on_an_empty_disk(dir.path(), 2).await;
    let new_node = cluster
        .wait_for(
            "broker 2 to register as a new incarnation",
            |c| async move {
                let d = c.describe_cluster(0).await?;
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

    // Its partition replicas are voters, but the metadata group has two voters of three among
    // the brokers' current incarnations: another broker on an empty disk now would leave it
    // one, and no controller could be elected again. Broker 2 is not ready.
    cluster
        .wait_for("broker 2's replicas to be voters", |c| async move {
            let broker = c.brokers[2].as_ref()?;
            let inner = broker.inner();
            let partitions = inner.registry.partitions();
            (partitions.len() == 3
                && partitions.iter().all(|(_, r)| {
                    use openraft::async_runtime::WatchReceiver;
                    let metrics = r.raft.metrics().borrow_watched().clone();
                    metrics
                        .membership_config
                        .membership()
                        .voter_ids()
                        .any(|v| v == metrics.id)
                }))
            .then_some(())
        })
        .await;
    // Its replicas caught up too (the controller's view of them lags a little): the one reason
    // left, if any, is the metadata group's.
    let why = cluster
        .wait_for("broker 2's replicas to be caught up", |c| async move {
            let why = strand_server::not_ready(c.brokers[2].as_ref()?.inner());
            (!why
                .as_deref()
                .is_some_and(|w| w.contains("replicas not caught up")))
            .then_some(why)
        })
        .await;
    assert!(
        why.as_deref()
            .is_some_and(|w| w.contains("not a voter of the metadata group yet")),
        "broker 2 is a learner of the metadata group, which lacks a voter, yet says: {why:?}"
    );
    fail::remove("controller::metadata_voters");

    // Once broker 2 says it is ready (what Kubernetes waits for before restarting the next
    // pod), another broker may go: with broker 0 gone, brokers 1 and 2 are a majority of
    // every group only if the new incarnation replaced the old one as a voter everywhere.
    cluster.wait_ready(2).await;
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

/// The log of the one partition replica `broker` hosts, opened from its files while the
/// broker is stopped.
fn replica_log(dir: &Path, broker: u32) -> strand_log::Log {
    let partitions = dir.join(format!("broker-{broker}")).join("partitions");
    let mut groups: Vec<_> = std::fs::read_dir(&partitions)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(groups.len(), 1, "one partition replica in {partitions:?}");
    strand_log::Log::open(&groups.remove(0).join("log"), Default::default()).unwrap()
}

/// A follower stopped while the leader writes less than Raft keeps behind its snapshot
/// (`entries_kept_after_snapshot`), and then runs retention (or compaction) over small
/// segments, must still catch up to exactly the leader's log: Raft sends it the entries after
/// its position one by one while it keeps them, so retention may only remove (and compaction
/// rewrite) what Raft has released, and then the follower is sent a snapshot.
async fn a_lagging_follower_catches_up_to_an_identical_log(compacted: bool) {
    let dir = tempfile::tempdir().unwrap();
    let tuning = RaftTuning {
        snapshot_every_entries: 1_000_000,
        entries_kept_after_snapshot: 60,
        ..RaftTuning::default()
    };
    let kafka = KafkaSettings {
        retention_check_interval: Duration::from_millis(100),
        ..KafkaSettings::default()
    };
    let mut cluster =
        Cluster::start_configured(dir.path(), 3, tuning, BalancingSettings::default(), kafka).await;
    let policy: &[(&str, &str)] = if compacted {
        &[("cleanup.policy", "compact"), ("delete.retention.ms", "0")]
    } else {
        &[("retention.bytes", "1")]
    };
    let mut config: Vec<(String, String)> = vec![("segment.bytes".into(), "1024".into())];
    config.extend(policy.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    cluster
        .admin(0)
        .await
        .unwrap()
        .create_topic(CreateTopicRequest {
            name: "ledger".into(),
            partitions: 1,
            replication_factor: 3,
            config: config.into_iter().collect(),
            ..Default::default()
        })
        .await
        .expect("topic created");
    // Three records per batch over five keys, so compaction empties some batches and takes the
    // last record of others (a batch then spans fewer offsets than it was appended with).
    let mut n = 0;
    let mut write = async |cluster: &Cluster, batches: usize| {
        for _ in 0..batches {
            let records: Vec<(String, String)> = (0..3)
                .map(|r| (format!("k{}", (n * 3 + r) % 5), format!("value-{n}-{r}")))
                .collect();
            let specs: Vec<strand_log::RecordSpec<'_>> = records
                .iter()
                .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_bytes()), 1_700_000_000_000))
                .collect();
            cluster
                .produce("ledger", 0, strand_log::build_batch(&specs))
                .await;
            n += 1;
        }
    };
    write(&cluster, 80).await;
    let leader = cluster.leader("ledger").await;
    let follower = (leader + 1) % 3;
    cluster
        .wait_for("the follower to hold every batch", |c| async move {
            let mut client = c.data(follower).await?;
            let hw = client
                .fetch(FetchRequest {
                    topic: "ledger".into(),
                    partition: 0,
                    offset: 240,
                    max_bytes: 1,
                    max_wait_ms: 0,
                })
                .await
                .ok()?
                .into_inner()
                .high_watermark;
            (hw == 240).then_some(())
        })
        .await;
    cluster.stop(follower).await;
    let stopped_at = replica_log(dir.path(), follower).next_index();

    // Fewer entries than Raft keeps behind a snapshot, which alone would not make Raft send
    // the follower one.
    write(&cluster, 40).await;
    // Retention or compaction passes every 100 ms, and a snapshot whenever closed segments
    // lie past the last one; before Raft's purge point bounded them, these passes removed or
    // rewrote the entries right after the follower's position.
    tokio::time::sleep(Duration::from_secs(2)).await;

    cluster.restart(follower).await;
    write(&cluster, 5).await;
    let end = 125 * 3;
    cluster
        .wait_for("the follower to catch up", |c| async move {
            let mut client = c.data(follower).await?;
            let hw = client
                .fetch(FetchRequest {
                    topic: "ledger".into(),
                    partition: 0,
                    offset: end,
                    max_bytes: 1,
                    max_wait_ms: 0,
                })
                .await
                .ok()?
                .into_inner()
                .high_watermark;
            (hw == end).then_some(())
        })
        .await;
    cluster.shutdown().await;

    let logs: Vec<strand_log::Log> = (0..3).map(|b| replica_log(dir.path(), b)).collect();
    for (broker, log) in logs.iter().enumerate() {
        assert_eq!(log.next_offset().0, end, "broker {broker}'s log end");
        assert!(
            log.next_index() > stopped_at,
            "broker {broker} holds the new entries"
        );
    }
    // Offset for offset: a record two replicas both hold is the same record.
    let records: Vec<Records> = logs.iter().map(records_of).collect();
    if compacted {
        assert!(
            records[leader as usize].len() < end as usize,
            "the leader compacted"
        );
    } else {
        assert!(
            logs[leader as usize].log_start_offset().0 > 0,
            "retention ran"
        );
    }
    for (broker, held) in records.iter().enumerate() {
        for (offset, record) in held {
            if let Some(theirs) = records[leader as usize].get(offset) {
                assert!(
                    theirs == record,
                    "broker {broker}'s record at offset {offset}"
                );
            }
        }
    }
    // Nothing lost: every replica holds each key's last value where it was written.
    let latest = |held: &Records| {
        let mut latest = BTreeMap::new();
        for (offset, (key, value)) in held {
            latest.insert(key.clone(), (*offset, value.clone()));
        }
        latest
    };
    let expected = latest(&records[leader as usize]);
    assert_eq!(expected.len(), 5);
    for (broker, held) in records.iter().enumerate() {
        assert!(latest(held) == expected, "broker {broker}'s latest values");
    }
    if !compacted {
        // Byte for byte wherever the replicas' logs overlap (compaction runs on each replica
        // on its own, so compacted segments may differ in what they have dropped so far).
        let from = logs.iter().map(|l| l.first_index()).max().unwrap();
        let to = logs.iter().map(|l| l.next_index()).min().unwrap();
        let reference = logs[leader as usize].entries(from..to).unwrap();
        assert!(!reference.is_empty());
        for (broker, log) in logs.iter().enumerate() {
            let entries = log.entries(from..to).unwrap();
            for (theirs, ours) in reference.iter().zip(&entries) {
                assert!(theirs == ours, "broker {broker}'s entry {}", ours.index);
            }
            assert_eq!(entries.len(), reference.len());
        }
    }
}

/// Records by offset: (key, value).
type Records = BTreeMap<i64, (Vec<u8>, Vec<u8>)>;

/// Every record of a log by offset.
fn records_of(log: &strand_log::Log) -> Records {
    let mut records = BTreeMap::new();
    for entry in log.entries(log.first_index()..log.next_index()).unwrap() {
        if entry.kind != strand_log::EntryKind::Data {
            continue;
        }
        for r in strand_log::decode_records(&entry.payload).unwrap() {
            let key = r.key.map(|k| k.to_vec()).unwrap_or_default();
            let value = r.value.map(|v| v.to_vec()).unwrap_or_default();
            records.insert(r.offset, (key, value));
        }
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_behind_retention_catches_up_to_an_identical_log() {
    a_lagging_follower_catches_up_to_an_identical_log(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_behind_compaction_catches_up_to_an_identical_log() {
    a_lagging_follower_catches_up_to_an_identical_log(true).await;
}

/// Sends one InstallSnapshot stream (a header and no files) to `broker`'s group `group`.
async fn send_snapshot(
    cluster: &Cluster,
    broker: u32,
    node_id: u64,
    vote_term: u64,
    meta: &strand_raft::SnapshotMeta,
) -> Result<(), tonic::Status> {
    use strand_proto::raft::{SnapshotChunk, SnapshotHeader, Target, Vote, snapshot_chunk};
    let header = SnapshotHeader {
        target: Some(Target {
            group: "meta".into(),
            node_id,
        }),
        vote: Some(Vote {
            term: vote_term,
            node_id: 999,
            committed: true,
        }),
        meta_json: serde_json::to_vec(meta).unwrap().into(),
        next_offset: 0,
        machine_state: Default::default(),
    };
    let chunks = vec![SnapshotChunk {
        part: Some(snapshot_chunk::Part::Header(header)),
    }];
    cluster
        .raft_client(broker)
        .await
        .install_snapshot(tokio_stream::iter(chunks))
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_snapshot_no_replica_could_send_is_refused_and_the_group_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), 1, RaftTuning::default()).await;
    let described = cluster.describe_cluster(0).await.unwrap();
    let node_id = described.brokers[0].node_id;
    let term = 1_000;
    let bad = [
        // Entries from a term after the sender's own.
        strand_raft::SnapshotMeta {
            last_log_id: Some(strand_raft::log_id(term + 5, 3)),
            last_membership: Default::default(),
        },
        // A membership from after the snapshot's last entry.
        strand_raft::SnapshotMeta {
            last_log_id: Some(strand_raft::log_id(term, 3)),
            last_membership: strand_raft::StoredMembership::new(
                Some(strand_raft::log_id(term, 9)),
                Default::default(),
            ),
        },
        // Ends in a later term at an index this replica has already committed.
        strand_raft::SnapshotMeta {
            last_log_id: Some(strand_raft::log_id(term, 1)),
            last_membership: Default::default(),
        },
    ];
    for (meta, why) in bad
        .iter()
        .zip(["a term after", "membership from", "contradicts"])
    {
        let refused = send_snapshot(&cluster, 0, node_id, term, meta)
            .await
            .expect_err("a snapshot no replica could send was installed");
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
        assert!(refused.message().contains(why), "{refused:?}");
    }
    // The metadata group still takes commands.
    cluster
        .admin(0)
        .await
        .unwrap()
        .create_topic(CreateTopicRequest {
            name: "after".into(),
            partitions: 1,
            replication_factor: 1,
            ..Default::default()
        })
        .await
        .expect("the metadata group still takes commands");
    cluster.shutdown().await;
}

/// Asks `broker`'s replica of `group` for its vote in `term` for node `candidate`, whose log
/// is empty.
async fn ask_vote(
    cluster: &Cluster,
    broker: u32,
    node_id: u64,
    group: &str,
    term: u64,
    candidate: u64,
) -> Result<strand_proto::raft::VoteResponse, tonic::Status> {
    use strand_proto::raft::{Target, Vote, VoteRequest};
    cluster
        .raft_client(broker)
        .await
        .vote(VoteRequest {
            target: Some(Target {
                group: group.into(),
                node_id,
            }),
            vote: Some(Vote {
                term,
                node_id: candidate,
                committed: false,
            }),
            last_log_id: None,
            leadership_transfer: false,
            pre_vote: false,
        })
        .await
        .map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_whose_directory_was_lost_votes_only_once_it_has_caught_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 3, RaftTuning::default()).await;
    create(&cluster, "ledger", 1).await;
    let mut acked = vec![Vec::new()];
    for n in 0..10 {
        write_round(&cluster, "ledger", &mut acked, &format!("before-{n}")).await;
    }
    let leader = cluster.leader("ledger").await;
    let follower = (leader + 1) % 3;
    cluster
        .read_all(follower, "ledger", 0, acked[0].len())
        .await;
    let nodes = cluster.describe_cluster(leader).await.unwrap().brokers;
    let node_of = |b: u32| nodes.iter().find(|n| n.broker_id == b).unwrap().node_id;

    let other = (leader + 2) % 3;

    // The follower loses its partition directory, and only that: the broker keeps its
    // identity. Then the leader stops too: the records committed on it and the follower alone
    // are now only on the leader, so the remaining broker must not be elected with the
    // emptied follower's vote.
    cluster.stop(follower).await;
    let partitions = dir
        .path()
        .join(format!("broker-{follower}"))
        .join("partitions");
    let replica_dir = std::fs::read_dir(&partitions)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    let name = replica_dir
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let (topic_id, partition) = name.rsplit_once('-').unwrap();
    let group = format!("{topic_id}/{partition}");
    std::fs::remove_dir_all(&replica_dir).unwrap();
    cluster.stop(leader).await;
    cluster.restart(follower).await;

    // Empty, it would grant its vote to any candidate in any term, though it may have voted
    // in that term already and may have held entries the candidate lacks: it refuses.
    let answer = cluster
        .wait_for("the replica to be hosted again", |c| {
            let group = group.clone();
            let (follower_node, other_node) = (node_of(follower), node_of(other));
            async move {
                match ask_vote(c, follower, follower_node, &group, 1_000, other_node).await {
                    Err(status) if status.code() == tonic::Code::NotFound => None,
                    answer => Some(answer),
                }
            }
        })
        .await;
    let refused = answer.expect_err("a replica that lost its state granted a vote");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("lost its state"), "{refused:?}");

    // The leader comes back; the follower catches up and takes part again: a vote request is
    // answered (refused on its merits: a stale term).
    cluster.restart(leader).await;
    assert_eq!(
        cluster
            .read_all(follower, "ledger", 0, acked[0].len())
            .await,
        acked[0]
    );
    write_round(&cluster, "ledger", &mut acked, "after").await;
    let answer = cluster
        .wait_for("the replica to vote again", |c| {
            let group = group.clone();
            let (follower_node, other_node) = (node_of(follower), node_of(other));
            async move {
                ask_vote(c, follower, follower_node, &group, 0, other_node)
                    .await
                    .ok()
            }
        })
        .await;
    assert!(!answer.vote_granted);
    // With whichever broker leads now gone, the other two elect one of them, and every
    // acknowledged record is there.
    let now_leading = cluster.leader("ledger").await;
    cluster.stop(now_leading).await;
    write_round(&cluster, "ledger", &mut acked, "leader-gone").await;
    for broker in cluster.alive() {
        assert_eq!(
            cluster.read_all(broker, "ledger", 0, acked[0].len()).await,
            acked[0]
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_whose_disk_filled_up_catches_up_once_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    // Every broker on its own small file system; the disk guard is off (no reserve), so a
    // follower's appends run into the full disk itself.
    let disks: Vec<strand_e2e::Tmpfs> = (0..3)
        .map(|b| strand_e2e::Tmpfs::mount(&dir.path().join(format!("broker-{b}")), 64 << 20))
        .collect();
    let cluster = Cluster::start(dir.path(), 3, RaftTuning::default()).await;
    create(&cluster, "ledger", 1).await;
    let leader = cluster.leader("ledger").await;
    let follower = (leader + 1) % 3;
    let value = "x".repeat(60 << 10);
    let mut acked = Vec::new();
    for n in 0..5 {
        let values = vec![format!("{n:04}-{value}")];
        cluster.produce("ledger", 0, batch(&values)).await;
        acked.extend(values);
    }
    cluster.read_all(follower, "ledger", 0, acked.len()).await;

    // The follower's disk fills up while the other two go on taking writes.
    disks[follower as usize].fill(1 << 20);
    for n in 5..60 {
        let values = vec![format!("{n:04}-{value}")];
        cluster.produce("ledger", 0, batch(&values)).await;
        acked.extend(values);
    }
    // Space comes back: the follower's replica opens again and catches up by itself.
    disks[follower as usize].free();
    assert_eq!(
        cluster.read_all(follower, "ledger", 0, acked.len()).await,
        acked
    );
    cluster.shutdown().await;
    drop(disks);
}

/// A leader whose disk fails under its partition (its writes refused as by a full disk, or its
/// fsyncs failing as by a broken device, injected with the `failpoint`) loses nothing
/// acknowledged: its group stops, the other replicas go on, and once the disk works again the
/// replica reopens by itself and catches up to the same records. (A write the failing leader
/// answered with an error may still be there, once more after its retry: the internal produce
/// path has no producer ids to tell a retry apart.)
async fn a_leader_whose_disk_fails_loses_nothing_acknowledged(failpoint: &str) {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), 3, RaftTuning::default()).await;
    create(&cluster, "ledger", 1).await;
    let mut acked = Vec::new();
    let mut write = async |label: &str, count: usize| {
        for n in 0..count {
            let values = vec![format!("{label}-{n}")];
            cluster.produce("ledger", 0, batch(&values)).await;
            acked.extend(values);
        }
    };
    write("before", 5).await;
    let leader = cluster.leader("ledger").await;
    // Only the leader's partition files: the failpoints are the whole process's.
    let files = dir
        .path()
        .join(format!("broker-{leader}"))
        .join("partitions");
    fail::cfg(failpoint, &format!("return({}/)", files.display())).unwrap();
    // The first write fails on the leader's disk and stops its group: another replica takes
    // it (the stopped one comes back only after some seconds).
    write("failing", 1).await;
    assert_ne!(
        cluster.leader("ledger").await,
        leader,
        "another replica leads"
    );
    write("failing-more", 20).await;
    fail::remove(failpoint);
    write("after", 5).await;
    let mut held = Vec::new();
    for b in 0..3 {
        let what = format!("broker {b} to hold every acknowledged record, in order");
        let acked = &acked;
        held.push(
            cluster
                .wait_for(&what, |c| async move {
                    let all = c.read_all(b, "ledger", 0, 0).await;
                    let mut once = all.clone();
                    once.dedup();
                    (once == *acked).then_some(all)
                })
                .await,
        );
    }
    assert!(
        held.iter().all(|h| *h == held[0]),
        "replicas alike: {held:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_whose_fsyncs_fail_loses_nothing_acknowledged() {
    a_leader_whose_disk_fails_loses_nothing_acknowledged("log::fsync").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_whose_writes_fail_loses_nothing_acknowledged() {
    a_leader_whose_disk_fails_loses_nothing_acknowledged("log::write").await;
}

/// A batch of producer 7 with one record, `seq-N`, at sequence `seq`.
fn producer_batch(seq: i32) -> Vec<u8> {
    let value = format!("seq-{seq}");
    strand_log::build_producer_batch(
        (7, 0, seq),
        &[(None, Some(value.as_bytes()), 1_700_000_000_000)],
    )
}

/// An idempotent producer's batch that Raft refuses because the leader's quorum lease lapsed
/// (a renewal not answered in time; the failpoint skips it) is refused before the producer's
/// next batch goes to Raft, and that next batch is refused too until the first is sent
/// again. Raft refuses a write when it comes to it in its queue, and a later write may be
/// taken once the lease is renewed: the next batch would then stand in the log without the
/// refused one, and librdkafka reads a later batch's acknowledgement as the delivery of the
/// earlier ones. Sent again, both are written once each, in order, on every replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idempotent_batch_refused_for_a_lapsed_lease_holds_the_producers_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), 3, RaftTuning::default()).await;
    create(&cluster, "lapsed", 1).await;
    let first = cluster.produce("lapsed", 0, producer_batch(0)).await;
    let leader = cluster.leader("lapsed").await;
    let broker = cluster.brokers[leader as usize].as_ref().unwrap();
    let replica = broker
        .inner()
        .registry
        .partition_by_name("lapsed", 0)
        .unwrap();
    // Only this test's topic: the failpoints are the whole process's.
    fail::cfg("raft::lease_renewal", "return(lapsed)").unwrap();
    // The partition is idle and its heartbeats are coalesced, which renews no lease.
    let lease = Duration::from_millis(replica.raft.config().election_timeout_max);
    cluster
        .wait_for("the leader's lease to lapse", |_| {
            let replica = replica.clone();
            async move {
                use openraft::async_runtime::WatchReceiver;
                let acked = replica.raft.metrics().borrow_watched().last_quorum_acked;
                acked
                    .is_some_and(|acked| openraft::Instant::elapsed(&*acked) > lease)
                    .then_some(())
            }
        })
        .await;
    let replicas = broker.inner().replicas();
    let writer = strand_node::Writer::Client { acks_all: true };
    let refused = replicas
        .append("lapsed", 0, Some(producer_batch(1).into()), writer)
        .await;
    fail::remove("raft::lease_renewal");
    // The connection's next request: its renewal goes through, and the lease is valid again.
    let next = replicas
        .append("lapsed", 0, Some(producer_batch(2).into()), writer)
        .await;
    let outcome = async |appended: Result<Appended, AppendError>| match appended? {
        Appended::Submitted { submitted, .. } => submitted.applied().await.map(|a| a.base_offset.0),
        Appended::Duplicate(offset) => Ok(offset),
    };
    let refused = outcome(refused).await;
    let next = outcome(next).await;
    assert!(
        refused.is_err(),
        "the batch written with the lease lapsed is refused: {refused:?}"
    );
    assert!(
        next.is_err(),
        "the producer's next batch is refused while the one before it is not written: {next:?}"
    );
    // The client sends both again, in order.
    let second = cluster.produce("lapsed", 0, producer_batch(1)).await;
    let third = cluster.produce("lapsed", 0, producer_batch(2)).await;
    assert_eq!((second, third), (first + 1, first + 2));
    let expected = vec!["seq-0", "seq-1", "seq-2"];
    for b in 0..3 {
        assert_eq!(cluster.read_all(b, "lapsed", 0, 3).await, expected);
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

/// Produces the producer's batches `seqs` to partition 0 of `topic`, each acknowledged at the
/// offset of its sequence number.
async fn produce_in_sequence(cluster: &Cluster, topic: &str, seqs: std::ops::Range<i32>) {
    for seq in seqs {
        assert_eq!(
            cluster.produce(topic, 0, producer_batch(seq)).await,
            i64::from(seq)
        );
    }
}

/// An idempotent producer goes on at a replica that came back on an empty disk, caught up
/// from a snapshot and was handed the leadership: the producer's state travels in the
/// snapshot, so its next batch is in sequence and a retry of its last one is a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idempotent_producer_goes_on_at_a_leader_rebuilt_from_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 3, snapshots_only()).await;
    create(&cluster, "rebuilt", 1).await;
    produce_in_sequence(&cluster, "rebuilt", 0..30).await;
    let leader = cluster.leader("rebuilt").await;
    let wiped = (leader + 1) % 3;
    cluster.restart_on_an_empty_disk(dir.path(), wiped).await;
    cluster.wait_ready(wiped).await;
    let mut admin = cluster.admin(leader).await.unwrap();
    let described = admin
        .transfer_leadership(TransferLeadershipRequest {
            topic: "rebuilt".into(),
            partition: 0,
            broker_id: wiped,
        })
        .await
        .expect("leadership transferred")
        .into_inner();
    assert_eq!(described.partitions[0].leader, Some(wiped));
    assert_eq!(cluster.produce("rebuilt", 0, producer_batch(29)).await, 29);
    produce_in_sequence(&cluster, "rebuilt", 30..40).await;
    cluster.shutdown().await;
}

/// A leader that crashed and came back keeps its vote, and openraft would restore it as
/// leader at once, in the same term, with its state machine as its last snapshot left it:
/// the producers' sequences it checked then were those of the snapshot, not of the batches
/// after it, and the producer's next batch looked like a gap (OUT_OF_ORDER_SEQUENCE_NUMBER,
/// fatal to librdkafka). A restarted replica now stands for election like any other, and a
/// leader checks producers only once it has applied every entry before its own first one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_restarted_after_a_crash_checks_producers_against_its_whole_log() {
    let dir = tempfile::tempdir().unwrap();
    // Snapshots often: the last one is well behind the producer's last batch.
    let tuning = RaftTuning {
        snapshot_every_entries: 8,
        ..RaftTuning::default()
    };
    let mut cluster = Cluster::start(dir.path(), 3, tuning).await;
    // Two replicas: with both down, the third broker and the restarted leader still make the
    // metadata group's majority, so the leader starts its partition again.
    let mut admin = cluster.admin(0).await.unwrap();
    let req = CreateTopicRequest {
        name: "restored".into(),
        partitions: 1,
        replication_factor: 2,
        ..Default::default()
    };
    admin.create_topic(req).await.expect("topic created");
    produce_in_sequence(&cluster, "restored", 0..21).await;
    let leader = cluster.leader("restored").await;
    let follower = cluster.describe("restored").await.unwrap().partitions[0]
        .replicas
        .iter()
        .copied()
        .find(|b| *b != leader)
        .unwrap();
    // Both replicas crash; the leader comes back first, alone in its group: it cannot commit
    // anything there.
    cluster.stop(follower).await;
    cluster.stop(leader).await;
    cluster.restart(leader).await;
    let replica = cluster
        .wait_for("the partition to be started again", |c| async move {
            c.brokers[leader as usize]
                .as_ref()?
                .inner()
                .registry
                .partition_by_name("restored", 0)
        })
        .await;
    let state = {
        use openraft::async_runtime::WatchReceiver;
        replica.raft.metrics().borrow_watched().state
    };
    let replicas = cluster.brokers[leader as usize]
        .as_ref()
        .unwrap()
        .inner()
        .replicas();
    let writer = strand_node::Writer::Client { acks_all: true };
    let alone = replicas
        .append("restored", 0, Some(producer_batch(21).into()), writer)
        .await;
    if let Err(AppendError::Producer(e)) = &alone {
        panic!(
            "the restarted leader ({state:?}) refused the producer's next batch: {e:?}, as if its last batches were not written"
        );
    }
    drop(alone);
    cluster.restart(follower).await;
    produce_in_sequence(&cluster, "restored", 21..24).await;
    cluster.shutdown().await;
}
