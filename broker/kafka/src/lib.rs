//! The Kafka protocol listener of a broker: [`Listener::serve`] accepts connections (up to
//! `connections_max`), over TLS when it has [`TlsFiles`], and serves each (`connection.rs`)
//! over the broker's [`Handles`].

mod acls;
mod admin;
mod connection;
mod context;
mod dispatch;
mod errors;
mod fetch;
pub mod groups;
mod metadata;
mod produce;
mod sasl;
mod security;
mod versions;

pub use context::Handles;
pub use security::{
    ANONYMOUS, ListenerSpec, SaslMechanism, SecurityProtocol, SecuritySettings, Session,
};
pub use strand_node::{TlsError, TlsFiles};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strand_node::Limits;
use strand_node::tls::Reloading;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::context::{Context, Shared};

/// A TLS listener's acceptor, rebuilt when its files change.
type Tls = Reloading<TlsAcceptor>;

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
    /// `offsets.retention.minutes`: how long a consumer group keeps its committed offsets
    /// once it has no members (and a live group those of topics it no longer reads).
    pub offsets_retention: Duration,
    /// `offsets.retention.check.interval.ms`: how often coordinators expire offsets.
    pub offsets_retention_check_interval: Duration,
    /// `group.consumer.heartbeat.interval.ms`: how often members of consumer-protocol groups
    /// (KIP-848) heartbeat.
    pub consumer_heartbeat_interval: Duration,
    /// `group.consumer.session.timeout.ms`: how long such a member stays without a heartbeat.
    pub consumer_session_timeout: Duration,
    /// The bounds on what clients send (`strand_node::limits`).
    pub limits: Limits,
    /// The certificate, key and client CA of listeners that speak TLS (`SSL`, `SASL_SSL`). A
    /// client CA makes `SSL` listeners require client certificates, which name the principal;
    /// `SASL_SSL` listeners do not ask for them.
    pub tls: Option<TlsFiles>,
    /// Certificate and key of a listener that presents its own rather than `tls`'s, by
    /// listener name (a certificate from a public or corporate issuer on an external
    /// listener, say). It still asks for client certificates of `tls`'s client CA.
    pub listener_certificates: BTreeMap<String, ListenerCertificate>,
    /// SASL mechanisms, the authorizer, and principals from certificates.
    pub security: SecuritySettings,
    /// The name of the broker's main listener (the one on its Kafka address); by default its
    /// security protocol's name.
    pub listener_name: Option<String>,
    /// Whether clients of the main listener authenticate with SASL: `SASL_SSL` with `tls`,
    /// `SASL_PLAINTEXT` without; otherwise it is `SSL` or `PLAINTEXT`.
    pub sasl: bool,
    /// Listeners besides the main one, each with its own address and protocol.
    pub more_listeners: Vec<ListenerSpec>,
}

impl KafkaSettings {
    /// The security protocol of the main listener.
    pub fn main_protocol(&self) -> SecurityProtocol {
        match (self.tls.is_some(), self.sasl) {
            (false, false) => SecurityProtocol::Plaintext,
            (true, false) => SecurityProtocol::Ssl,
            (false, true) => SecurityProtocol::SaslPlaintext,
            (true, true) => SecurityProtocol::SaslSsl,
        }
    }

    /// The main listener bound to `listen` and advertised as `advertised`.
    pub fn main_listener(&self, listen: SocketAddr, advertised: &str) -> ListenerSpec {
        let protocol = self.main_protocol();
        ListenerSpec {
            name: self
                .listener_name
                .clone()
                .unwrap_or_else(|| protocol.name().to_string()),
            listen,
            advertised: advertised.to_string(),
            protocol,
        }
    }
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            auto_create_topics: false,
            default_partitions: 1,
            default_replication_factor: 3,
            retention_check_interval: Duration::from_secs(300),
            offsets_retention: Duration::from_secs(7 * 24 * 3600),
            offsets_retention_check_interval: Duration::from_secs(600),
            consumer_heartbeat_interval: Duration::from_secs(5),
            consumer_session_timeout: Duration::from_secs(45),
            limits: Limits::default(),
            tls: None,
            listener_certificates: BTreeMap::new(),
            security: SecuritySettings::default(),
            listener_name: None,
            sasl: false,
            more_listeners: Vec::new(),
        }
    }
}

/// The certificate a listener presents instead of the broker's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerCertificate {
    /// PEM certificate chain, the listener's certificate first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Why a listener cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// Its TLS files cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// It speaks TLS but the broker has no TLS files.
    #[error("listener {0} speaks TLS but no certificate and key are configured")]
    NoTlsFiles(String),
}

/// The Kafka listeners of a broker, ready to serve: they share the consumer groups this
/// broker coordinates and its producer ids.
pub struct Listener {
    shared: Arc<Shared>,
    listeners: Vec<(Arc<ListenerSpec>, Option<Tls>, TcpListener)>,
}

impl Listener {
    /// The Kafka service over `handles`, serving no listener yet.
    pub fn new(handles: Handles) -> Listener {
        let shared = Arc::new(Shared {
            handles,
            groups: Default::default(),
            producer_ids: Mutex::new(0..0),
        });
        Listener {
            shared,
            listeners: Vec::new(),
        }
    }

    /// Adds a listener bound to `socket`. Its TLS files, if it speaks TLS, are read now, so a
    /// broker does not start with a listener it cannot serve.
    pub fn add(&mut self, spec: ListenerSpec, socket: TcpListener) -> Result<(), ListenerError> {
        let tls = if spec.protocol.tls() {
            let settings = &self.shared.handles.settings;
            let mut files = match (
                &settings.tls,
                settings.listener_certificates.get(&spec.name),
            ) {
                (broker, Some(own)) => TlsFiles {
                    cert: own.cert.clone(),
                    key: own.key.clone(),
                    client_ca: broker.as_ref().and_then(|b| b.client_ca.clone()),
                },
                (Some(broker), None) => broker.clone(),
                (None, None) => return Err(ListenerError::NoTlsFiles(spec.name)),
            };
            if spec.protocol.sasl() {
                // SASL names the client; a certificate is not asked for.
                files.client_ca = None;
            }
            Some(Tls::start(
                "kafka listener",
                files,
                strand_node::tls::kafka_acceptor,
            )?)
        } else {
            None
        };
        self.listeners.push((Arc::new(spec), tls, socket));
        Ok(())
    }

    /// Serves Kafka clients on every listener until the broker shuts down.
    pub async fn serve(self) {
        let local = self
            .listeners
            .first()
            .and_then(|(_, _, l)| l.local_addr().ok())
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        tokio::spawn(groups::run(Context {
            shared: self.shared.clone(),
            peer: local,
            session: Arc::new(Session {
                listener: Arc::new(ListenerSpec {
                    name: "internal".into(),
                    listen: local,
                    advertised: self.shared.handles.advertised.clone(),
                    protocol: SecurityProtocol::Plaintext,
                }),
                host: local.ip().to_string(),
                principal: ANONYMOUS.into(),
            }),
        }));
        // A Kafka broker serves no request before it has caught up with the metadata log: a
        // broker back on an empty disk would otherwise tell clients that every topic is gone
        // (librdkafka then fails what it has queued for them). Connections wait in the
        // listen backlog until this incarnation's registration is applied here, and with it
        // everything committed before.
        let mut shutdown = self.shared.handles.shutdown.clone();
        tokio::select! {
            () = self.shared.handles.cluster.registered() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let connections = Arc::new(Semaphore::new(
            self.shared.handles.settings.limits.connections_max,
        ));
        let mut serving = tokio::task::JoinSet::new();
        for (spec, tls, socket) in self.listeners {
            serving.spawn(serve(
                self.shared.clone(),
                spec,
                tls,
                socket,
                connections.clone(),
            ));
        }
        while serving.join_next().await.is_some() {}
    }
}

async fn serve(
    shared: Arc<Shared>,
    spec: Arc<ListenerSpec>,
    tls: Option<Tls>,
    listener: TcpListener,
    connections: Arc<Semaphore>,
) {
    let mut shutdown = shared.handles.shutdown.clone();
    let limits = &shared.handles.settings.limits;
    let mut refused_since_warning = 0u64;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = connections.clone().try_acquire_owned() else {
                        // Closed at once: the client sees the connection end and retries
                        // later; the connections already open go on.
                        refused_since_warning += 1;
                        if refused_since_warning == 1 || refused_since_warning.is_multiple_of(1000) {
                            tracing::warn!(%peer, limit = limits.connections_max,
                                refused = refused_since_warning,
                                "kafka connection refused: connections_max reached");
                        }
                        drop(stream);
                        continue;
                    };
                    refused_since_warning = 0;
                    let _ = stream.set_nodelay(true);
                    let session = Session {
                        listener: spec.clone(),
                        host: peer.ip().to_string(),
                        principal: ANONYMOUS.into(),
                    };
                    match &tls {
                        None => {
                            let (reader, writer) = stream.into_split();
                            tokio::spawn(connection::serve(shared.clone(), reader, writer, peer, session, permit));
                        }
                        Some(tls) => {
                            let (acceptor, _) = tls.current();
                            let shared = shared.clone();
                            tokio::spawn(async move {
                                let handshake = shared.handles.settings.limits.idle_timeout;
                                match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                                    Ok(Ok(stream)) => {
                                        let mut session = session;
                                        if let Some(certificate) = stream.get_ref().1.peer_certificates().and_then(|c| c.first()) {
                                            let mapping = &shared.handles.settings.security.principal_mapping;
                                            match strand_auth::principal_of_certificate(certificate, mapping) {
                                                Ok(principal) => session.principal = principal,
                                                Err(e) => {
                                                    tracing::info!(%peer, error = %e, "kafka client certificate names no principal; connection closed");
                                                    return;
                                                }
                                            }
                                        }
                                        let (reader, writer) = tokio::io::split(stream);
                                        connection::serve(shared, reader, writer, peer, session, permit).await;
                                    }
                                    Ok(Err(e)) => tracing::info!(%peer, error = %e, "kafka TLS handshake failed"),
                                    Err(_) => tracing::info!(%peer, "kafka TLS handshake did not finish within idle_timeout"),
                                }
                            });
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "kafka listener cannot accept");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}
