//! One broker: its identity, its groups, its servers and the background tasks that keep it
//! in step with the cluster's metadata.

use openraft::async_runtime::WatchReceiver;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use strand_meta::{BrokerId, ClusterState, Command};
use strand_proto::admin::ErrorReason;
use strand_proto::broker::broker_client::BrokerClient;
use strand_proto::broker::{PartitionStatus, ProposeRequest, StatusReport};
use strand_raft::{Caching, GroupStateMachine, LogStore, RecentBudget};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::identity::{self, Identity};
use crate::meta::{MetaMachine, Outcome, Refusal, SharedState, encode_command};
use crate::network::{GroupNetwork, Peers};
use crate::registry::{Group, META_GROUP, MetaRaft, Registry};
use crate::tuning::RaftTuning;

/// How a broker is started.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// The stable broker id (the pod ordinal on Kubernetes).
    pub broker_id: u32,
    /// Where the broker keeps its identity, metadata log and partitions.
    pub data_dir: PathBuf,
    /// Address the gRPC server (Raft, admin, broker calls) listens on.
    pub grpc_listen: SocketAddr,
    /// host:port other brokers and clients use to reach the gRPC server.
    pub grpc_advertised: String,
    /// host:port Kafka clients will use (recorded in metadata).
    pub kafka_advertised: String,
    /// Address the Kafka listener binds.
    pub kafka_listen: SocketAddr,
    /// How the Kafka listener behaves.
    pub kafka: KafkaSettings,
    /// Address the HTTP server (/healthz, /readyz, /metrics) listens on.
    pub http_listen: SocketAddr,
    /// host:port of the HTTP server, recorded in metadata.
    pub http_advertised: String,
    /// gRPC addresses of the seed brokers, which form the metadata group of a new cluster.
    pub seeds: Vec<String>,
    /// The broker's rack, for spreading replicas.
    pub rack: Option<String>,
    /// Raft heartbeats, election timeouts and snapshots.
    pub tuning: RaftTuning,
    /// How the cluster balances replicas and leaders (the controller's settings count).
    pub balancing: crate::balance::BalancingSettings,
    /// Free bytes the data directory keeps in reserve: below this, partitions with a replica
    /// here refuse produce.
    pub disk_reserve_bytes: u64,
}

/// Kafka listener settings.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `auto.create.topics.enable`: Metadata for an unknown topic creates it.
    pub auto_create_topics: bool,
    /// `num.partitions`: partitions of an automatically created topic or of a CreateTopics
    /// request that leaves the count to the broker.
    pub default_partitions: u32,
    /// `default.replication.factor`: likewise for the replication factor; capped at the
    /// number of active brokers when a topic is created automatically.
    pub default_replication_factor: u16,
    /// `log.retention.check.interval.ms`: how often replicas apply retention and compaction.
    pub retention_check_interval: Duration,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            auto_create_topics: false,
            default_partitions: 1,
            default_replication_factor: 3,
            retention_check_interval: Duration::from_secs(300),
        }
    }
}

/// Errors starting a broker.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The identity file could not be used.
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    /// The metadata group's storage could not be opened.
    #[error("metadata log: {0}")]
    MetaStorage(#[from] strand_raft::StorageError),
    /// The metadata state machine could not be opened.
    #[error("metadata snapshot: {0}")]
    MetaSnapshot(std::io::Error),
    /// Raft refused to start.
    #[error("metadata group: {0}")]
    Raft(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// What the controller knows of one broker from its latest status report.
#[derive(Debug, Clone)]
pub struct Report {
    /// When it arrived.
    pub at: Instant,
    /// The incarnation that sent it: a report of a retired incarnation (the broker came back
    /// with an empty disk since) describes replicas that no longer exist.
    pub node_id: u64,
    /// The partitions the broker hosts, with details for those it leads.
    pub partitions: Vec<PartitionStatus>,
    /// Its data directory is short of free space.
    pub disk_low: bool,
    /// It is stopping and takes no leadership.
    pub leaving: bool,
}

/// A broker's parts, shared by its tasks and services.
pub struct Inner {
    /// How it was started.
    pub config: BrokerConfig,
    /// Broker id and node id.
    pub identity: Identity,
    /// Groups hosted here.
    pub registry: Registry,
    /// Channels to peers.
    pub peers: Peers,
    /// The metadata group.
    pub meta: MetaRaft,
    /// The applied cluster state.
    pub state: watch::Receiver<SharedState>,
    /// Status reports, fed while this broker is the controller.
    pub reports: Mutex<HashMap<BrokerId, Report>>,
    /// Set when the broker shuts down.
    pub shutdown: watch::Sender<bool>,
    /// When each local partition replica last heard from its leader.
    pub contacts: crate::elections::Contacts,
    /// The controller's latest view of leaders and live brokers.
    pub views: crate::views::SharedViews,
    /// Consumer groups this broker coordinates.
    pub groups: crate::kafka::groups::Groups,
    /// Producer ids this broker may hand out, from a block the controller allocated.
    pub producer_ids: Mutex<std::ops::Range<u64>>,
    /// Balancing's memory: the controller's executor and leadership hand-overs.
    pub balancer: crate::balance::Balancer,
    /// Free space of the data directory.
    pub disk: crate::disk::DiskGuard,
    /// What the partition replicas may keep of their newest entries in memory, together.
    pub recent_entries: RecentBudget,
}

/// How long a stopping broker waits for its leaderships to be taken over.
const HAND_OVER_PATIENCE: Duration = Duration::from_secs(10);

/// A running broker. Dropping it does not stop it; call [`Broker::shutdown`].
pub struct Broker {
    inner: Arc<Inner>,
    tasks: JoinSet<()>,
}

impl Broker {
    /// Starts a broker: opens its data, binds its listeners, and starts joining its cluster.
    pub async fn start(config: BrokerConfig) -> Result<Broker, StartError> {
        let (identity, fresh) = identity::load_or_create(&config.data_dir, config.broker_id)?;
        tracing::info!(
            broker = identity.broker_id,
            node = identity.node_id,
            fresh,
            "starting broker"
        );
        let meta_dir = config.data_dir.join("meta");
        let store = LogStore::open(
            &meta_dir,
            strand_log::LogConfig::default(),
            identity.node_id,
            Caching::default(),
        )?;
        let (machine, state) = MetaMachine::new();
        let sm = GroupStateMachine::open(&meta_dir, store.log(), machine)
            .map_err(StartError::MetaSnapshot)?;
        let peers = Peers::default();
        let meta = openraft::Raft::new(
            identity.node_id,
            Arc::new(config.tuning.meta_config()),
            GroupNetwork::new(META_GROUP.to_string(), peers.clone()),
            store,
            sm,
        )
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;
        let registry = Registry::default();
        registry.insert(META_GROUP, Group::Meta(meta.clone(), meta_dir));
        let grpc = tokio::net::TcpListener::bind(config.grpc_listen)
            .await
            .map_err(|source| StartError::Listen {
                addr: config.grpc_listen,
                source,
            })?;
        let kafka = tokio::net::TcpListener::bind(config.kafka_listen)
            .await
            .map_err(|source| StartError::Listen {
                addr: config.kafka_listen,
                source,
            })?;
        let http = tokio::net::TcpListener::bind(config.http_listen)
            .await
            .map_err(|source| StartError::Listen {
                addr: config.http_listen,
                source,
            })?;
        let (shutdown, _) = watch::channel(false);
        let disk = crate::disk::DiskGuard::new(config.disk_reserve_bytes);
        disk.measure(&config.data_dir);
        let inner = Arc::new(Inner {
            config,
            identity,
            registry,
            peers,
            meta,
            state,
            reports: Mutex::new(HashMap::new()),
            shutdown,
            contacts: Default::default(),
            views: Default::default(),
            groups: Default::default(),
            producer_ids: Mutex::new(0..0),
            balancer: Default::default(),
            disk,
            recent_entries: RecentBudget::new(crate::partitions::RECENT_ENTRIES_BYTES),
        });
        let mut tasks = JoinSet::new();
        tasks.spawn(crate::services::serve_grpc(inner.clone(), grpc));
        tasks.spawn(crate::http::serve(inner.clone(), http));
        tasks.spawn(crate::kafka::serve(inner.clone(), kafka));
        tasks.spawn(crate::bootstrap::run(inner.clone()));
        tasks.spawn(crate::partitions::run(inner.clone()));
        tasks.spawn(crate::controller::run(inner.clone()));
        tasks.spawn(crate::controller::report_loop(inner.clone()));
        tasks.spawn(crate::heartbeat::run(inner.clone()));
        tasks.spawn(crate::elections::run(inner.clone()));
        tasks.spawn(crate::retention::run(inner.clone()));
        tasks.spawn(crate::disk::run(inner.clone()));
        Ok(Broker { inner, tasks })
    }

    /// The broker's shared parts.
    pub fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// Whether this broker's replica of `topic`/`partition` leads it.
    pub fn leads(&self, topic: &str, partition: u32) -> bool {
        self.inner
            .registry
            .partition_by_name(topic, partition)
            .is_some_and(|r| {
                r.raft.metrics().borrow_watched().state == openraft::ServerState::Leader
            })
    }

    /// Stops the broker: hands its leaderships to other replicas (waiting up to 10 s), then
    /// stops servers, tasks and every Raft group.
    pub async fn shutdown(self) {
        crate::hand_over::hand_over_all(&self.inner, HAND_OVER_PATIENCE).await;
        self.stop().await;
    }

    /// Stops the broker at once, as a crash would, without handing leadership over.
    pub async fn stop(mut self) {
        self.inner.shutdown.send_replace(true);
        for (_, replica) in self.inner.registry.partitions() {
            let _ = replica.raft.shutdown().await;
        }
        let _ = self.inner.meta.shutdown().await;
        let deadline = tokio::time::sleep(Duration::from_secs(5));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = self.tasks.join_next() => if next.is_none() { break },
                _ = &mut deadline => { self.tasks.abort_all(); break }
            }
        }
    }
}

impl Inner {
    /// The applied cluster state now.
    pub fn cluster(&self) -> SharedState {
        self.state.borrow().clone()
    }

    /// The broker id.
    pub fn broker_id(&self) -> BrokerId {
        BrokerId(self.identity.broker_id)
    }

    /// Keeps a broker's status report, replacing its previous one (on the controller).
    pub fn record_report(&self, report: StatusReport) {
        let mut reports = self.reports.lock().unwrap_or_else(|p| p.into_inner());
        reports.insert(
            BrokerId(report.broker_id),
            Report {
                at: Instant::now(),
                node_id: report.node_id,
                partitions: report.partitions,
                disk_low: report.disk_low,
                leaving: report.leaving,
            },
        );
    }

    /// Whether this broker leads the metadata group (is the controller).
    pub fn is_controller(&self) -> bool {
        self.meta.metrics().borrow_watched().state == openraft::ServerState::Leader
    }

    /// The controller's node id and gRPC address, when known.
    pub fn controller(&self) -> Option<(u64, String)> {
        let watch = self.meta.metrics();
        let metrics = watch.borrow_watched();
        let leader = metrics.current_leader?;
        // After a restart a former controller still holds its own vote without leading.
        if leader == self.identity.node_id && metrics.state != openraft::ServerState::Leader {
            return None;
        }
        let addr = metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())?;
        Some((leader, addr))
    }

    /// The broker id of a node id, from the cluster state.
    pub fn broker_of_node(state: &ClusterState, node: u64) -> Option<BrokerId> {
        state
            .brokers()
            .values()
            .find(|b| b.node_id.0 == node)
            .map(|b| b.id)
    }

    /// Proposes a metadata command: here if this broker is the controller, else through the
    /// controller. Retries while no controller is elected, up to `patience`.
    pub async fn propose(&self, command: &Command, patience: Duration) -> Result<Outcome, Refusal> {
        let deadline = Instant::now() + patience;
        let mut last_problem = "no controller is elected yet".to_string();
        while Instant::now() < deadline {
            match self.controller() {
                Some((leader, _)) if leader == self.identity.node_id => {
                    match self.propose_here(command).await {
                        Ok(outcome) => return Ok(outcome),
                        Err(problem) => last_problem = problem,
                    }
                }
                Some((_, addr)) => match self.propose_there(&addr, command).await {
                    Ok(outcome) => return Ok(outcome),
                    Err(problem) => last_problem = problem,
                },
                // Not in the metadata group (yet): a seed knows the controller.
                None => {
                    for seed in self
                        .config
                        .seeds
                        .iter()
                        .filter(|s| **s != self.config.grpc_advertised)
                    {
                        match self.propose_there(seed, command).await {
                            Ok(outcome) => return Ok(outcome),
                            Err(problem) => last_problem = problem,
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Refusal::new(
            ErrorReason::NotController,
            format!("metadata change not accepted: {last_problem}"),
        ))
    }

    /// Proposes on the local metadata group, which must lead.
    pub async fn propose_here(&self, command: &Command) -> Result<Outcome, String> {
        let batch = encode_command(command, now_ms());
        match self.meta.client_write(batch).await {
            Ok(resp) => resp
                .data
                .answer
                .and_then(|a| serde_json::from_slice(&a).ok())
                .ok_or_else(|| "the controller gave no answer".to_string()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                Err("the controller changed".to_string())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Proposes through the broker at `addr`, which passes it to the controller if it is not.
    pub async fn propose_there(&self, addr: &str, command: &Command) -> Result<Outcome, String> {
        self.send_proposal(
            addr,
            ProposeRequest {
                command: command.to_bytes().into(),
                forwarded: false,
            },
        )
        .await
    }

    /// Passes a command proposed elsewhere to the controller at `addr`, marked so it is not
    /// passed on again.
    pub async fn pass_to_controller(
        &self,
        addr: &str,
        command: &Command,
    ) -> Result<Outcome, String> {
        self.send_proposal(
            addr,
            ProposeRequest {
                command: command.to_bytes().into(),
                forwarded: true,
            },
        )
        .await
    }

    async fn send_proposal(&self, addr: &str, proposal: ProposeRequest) -> Result<Outcome, String> {
        let channel = self.peers.channel(addr).map_err(|e| e.to_string())?;
        let mut client = BrokerClient::new(channel);
        let mut request = tonic::Request::new(proposal);
        request.set_timeout(Duration::from_secs(5));
        let answer = client
            .propose_metadata(request)
            .await
            .map_err(|s| format!("controller at {addr}: {}", s.message()))?;
        serde_json::from_slice(&answer.into_inner().answer).map_err(|e| e.to_string())
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
