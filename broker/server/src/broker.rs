//! One broker: its identity, its groups, its servers and the background tasks that keep it
//! in step with the cluster's metadata.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use strand_node::identity;
use strand_node::tls::Reloading;
use strand_node::{Cluster, Group, GroupNetwork, META_GROUP, MetaMachine, Peers, Registry};
use strand_raft::{Caching, GroupStateMachine, LogStore, RecentBudget};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::admin::Admin;
use crate::config::BrokerConfig;
use crate::guard::GrpcGuard;
use crate::services::GrpcIncoming;
use crate::shared::Inner;

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
    /// The gRPC port's TLS files cannot be used.
    #[error("gRPC TLS: {0}")]
    GrpcTls(#[source] strand_node::TlsError),
    /// The HTTP port's TLS files cannot be used.
    #[error("HTTP TLS: {0}")]
    HttpTls(#[source] strand_node::TlsError),
    /// A Kafka listener cannot be served (its TLS files cannot be used).
    #[error("kafka listener: {0}")]
    KafkaListener(#[from] strand_kafka::ListenerError),
    /// The gRPC port's own certificate names no principal.
    #[error(transparent)]
    GrpcGuard(#[from] crate::guard::GuardError),
    /// Two Kafka listeners share a name.
    #[error("two kafka listeners are named {0}")]
    DuplicateListener(String),
    /// TLS was asked for the gRPC port over a transport other than TCP.
    #[error("the gRPC port's TLS is only served over TCP")]
    TlsOverOtherTransport,
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// How long a stopping broker waits for its leaderships to be taken over.
const HAND_OVER_PATIENCE: Duration = Duration::from_secs(10);

/// How a broker reaches its peers and is reached by them.
#[derive(Default)]
pub enum Transport {
    /// TCP: the gRPC, Kafka and HTTP ports are bound as configured.
    #[default]
    Tcp,
    /// Another transport (a simulated network, in tests): channels to peers are made by
    /// `dial`, and the gRPC port's connections come from `incoming`. The Kafka listener and the
    /// HTTP port are not served.
    Other {
        /// Makes the channel to a peer.
        dial: strand_node::network::Dial,
        /// The gRPC port's connections.
        incoming: crate::services::GrpcConnections,
    },
}

/// A running broker. Dropping it does not stop it; call [`Broker::shutdown`].
pub struct Broker {
    inner: Arc<Inner>,
    tasks: JoinSet<()>,
}

impl Broker {
    /// Starts a broker: opens its data, binds its listeners, and starts joining its cluster.
    pub async fn start(config: BrokerConfig) -> Result<Broker, StartError> {
        Broker::start_with(config, Transport::Tcp).await
    }

    /// [`Broker::start`] over `transport`.
    pub async fn start_with(
        config: BrokerConfig,
        transport: Transport,
    ) -> Result<Broker, StartError> {
        let (dial, incoming) = match transport {
            Transport::Tcp => (None, None),
            Transport::Other { .. } if config.grpc_tls.is_some() => {
                return Err(StartError::TlsOverOtherTransport);
            }
            Transport::Other { dial, incoming } => (Some(dial), Some(incoming)),
        };
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
        let (peers, grpc_tls) = match &config.grpc_tls {
            Some(files) => {
                let client =
                    Reloading::start("gRPC client", files.clone(), strand_node::tls::grpc_client)
                        .map_err(StartError::GrpcTls)?;
                let server =
                    Reloading::start("gRPC port", files.clone(), strand_node::tls::grpc_acceptor)
                        .map_err(StartError::GrpcTls)?;
                (Peers::with_tls(client), Some(server))
            }
            None => (Peers::default(), None),
        };
        let peers = peers.leaving_from(config.peer_source_address);
        let peers = match dial {
            Some(dial) => peers.dialing(dial),
            None => peers,
        };
        let meta = openraft::Raft::new(
            identity.node_id,
            Arc::new(config.tuning.meta_config()),
            GroupNetwork::new(META_GROUP.to_string(), peers.clone()),
            store.clone(),
            sm,
        )
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;
        stand_once_rejoined(&meta, &store);
        let registry = Registry::default();
        registry.insert(META_GROUP, Group::Meta(meta.clone(), store));
        let (grpc, kafka, http) = match incoming {
            Some(incoming) => (GrpcIncoming::Other(incoming), Vec::new(), None),
            None => bind(&config).await?,
        };
        let (shutdown, _) = watch::channel(false);
        let disk = Arc::new(strand_node::DiskGuard::new(config.disk_reserve_bytes));
        disk.measure(&config.data_dir);
        let cluster = Cluster::new(
            identity,
            meta,
            state,
            peers,
            config.seeds.clone(),
            config.grpc_advertised.clone(),
        );
        let inner = Arc::new(Inner {
            config,
            cluster,
            registry,
            reports: Mutex::new(Default::default()),
            shutdown,
            contacts: Default::default(),
            views: Default::default(),
            balancer: Default::default(),
            disk,
            recent_entries: RecentBudget::new(crate::partitions::RECENT_ENTRIES_BYTES),
        });
        let admin = Arc::new(Admin::new(inner.clone()));
        let kafka_handles = strand_kafka::Handles {
            cluster: inner.cluster.clone(),
            replicas: inner.replicas(),
            views: inner.views.clone(),
            admin: admin.clone(),
            settings: inner.config.kafka.clone(),
            advertised: inner.config.kafka_advertised.clone(),
            rack: inner.config.rack.clone(),
            shutdown: inner.shutdown.subscribe(),
        };
        let grpc_tls = match (grpc_tls, &inner.config.grpc_tls) {
            (Some(tls), Some(files)) => {
                let guard = GrpcGuard::new(
                    &inner.config.grpc_access,
                    &files.cert,
                    inner.cluster.clone(),
                    inner.config.kafka.security.clone(),
                )?;
                Some((tls, guard))
            }
            _ => {
                tracing::warn!(addr = %inner.config.grpc_listen,
                    "the gRPC port has no TLS: anyone who reaches it can administer the cluster and join its Raft groups; give the broker --grpc-tls-cert, --grpc-tls-key and --grpc-tls-ca");
                None
            }
        };
        let mut tasks = JoinSet::new();
        tasks.spawn(crate::services::serve_grpc(
            inner.clone(),
            admin,
            grpc,
            grpc_tls,
        ));
        if let Some(http) = http {
            let tls = match &inner.config.http_tls {
                Some(files) => Some(
                    Reloading::start("HTTP port", files.clone(), strand_node::tls::http_acceptor)
                        .map_err(StartError::HttpTls)?,
                ),
                None => None,
            };
            tasks.spawn(crate::http::serve(inner.clone(), http, tls));
        }
        if !kafka.is_empty() {
            let mut kafka_listener = strand_kafka::Listener::new(kafka_handles);
            for (spec, socket) in kafka {
                kafka_listener.add(spec, socket)?;
            }
            tasks.spawn(kafka_listener.serve());
        }
        tasks.spawn(crate::bootstrap::run(inner.clone()));
        tasks.spawn(crate::partitions::run(inner.clone()));
        tasks.spawn(crate::controller::run(inner.clone()));
        tasks.spawn(crate::controller::report_loop(inner.clone()));
        tasks.spawn(crate::heartbeat::run(inner.clone()));
        tasks.spawn(crate::elections::run(inner.clone()));
        tasks.spawn(crate::retention::run(inner.clone()));
        tasks.spawn(strand_node::disk::run(
            inner.disk.clone(),
            inner.config.data_dir.clone(),
            inner.shutdown.subscribe(),
        ));
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

    /// Waits until the metadata group's Raft stops on an error (a full or failing disk under
    /// the metadata log or its vote) and says why. The broker cannot go on without it: as a
    /// Kafka broker halts when its metadata log directory fails, the process should stop and
    /// be started again (by Kubernetes, or whoever runs it), which reopens the group from disk.
    /// Partition groups, by contrast, reopen by themselves (`partitions.rs`).
    pub async fn metadata_failed(&self) -> String {
        let mut metrics = self.inner.cluster.raft().metrics();
        loop {
            if let Err(e) = &metrics.borrow_watched().running_state {
                return e.to_string();
            }
            if metrics.changed().await.is_err() {
                return "the metadata group's Raft is gone".into();
            }
        }
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
        let _ = self.inner.cluster.raft().shutdown().await;
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

/// A metadata replica that lost its state under this broker's identity (`LogStore::rejoining`)
/// stands for no election until it has caught up; its votes are refused by the Raft service.
fn stand_once_rejoined(raft: &strand_node::MetaRaft, store: &LogStore) {
    if !store.rejoining() {
        return;
    }
    raft.runtime_config().elect(false);
    let raft = raft.clone();
    let mut changes = store.rejoining_changes();
    tokio::spawn(async move {
        let _ = changes.wait_for(|rejoining| !*rejoining).await;
        raft.runtime_config().elect(true);
    });
}

/// The Kafka listeners to serve, each with its socket.
type KafkaSockets = Vec<(strand_kafka::ListenerSpec, tokio::net::TcpListener)>;

/// Binds the gRPC port, the Kafka listeners and the HTTP port.
async fn bind(
    config: &BrokerConfig,
) -> Result<(GrpcIncoming, KafkaSockets, Option<tokio::net::TcpListener>), StartError> {
    let grpc = tokio::net::TcpListener::bind(config.grpc_listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.grpc_listen,
            source,
        })?;
    let mut kafka: KafkaSockets = Vec::new();
    let main = config
        .kafka
        .main_listener(config.kafka_listen, &config.kafka_advertised);
    for spec in std::iter::once(main).chain(config.kafka.more_listeners.iter().cloned()) {
        if kafka.iter().any(|(s, _)| s.name == spec.name) {
            return Err(StartError::DuplicateListener(spec.name));
        }
        let socket = tokio::net::TcpListener::bind(spec.listen)
            .await
            .map_err(|source| StartError::Listen {
                addr: spec.listen,
                source,
            })?;
        kafka.push((spec, socket));
    }
    let http = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.http_listen,
            source,
        })?;
    Ok((GrpcIncoming::Tcp(grpc), kafka, Some(http)))
}
