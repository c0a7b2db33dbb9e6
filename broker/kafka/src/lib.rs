//! The Kafka protocol listener of a broker: [`Listener::serve`] accepts connections (up to
//! `connections_max`), over TLS when it has [`TlsFiles`], and serves each (`connection.rs`)
//! over the broker's [`Handles`].

mod admin;
mod connection;
mod context;
mod dispatch;
mod errors;
mod fetch;
pub mod groups;
mod metadata;
mod produce;
mod tls;
mod versions;

pub use context::Handles;
pub use strand_node::{TlsError, TlsFiles};
pub use tls::server_config;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strand_node::Limits;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::context::{Context, Shared};
use crate::tls::Tls;

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
    /// The bounds on what clients send (`strand_node::limits`).
    pub limits: Limits,
    /// TLS (Kafka's `SSL` security protocol), or plaintext when `None`.
    pub tls: Option<TlsFiles>,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            auto_create_topics: false,
            default_partitions: 1,
            default_replication_factor: 3,
            retention_check_interval: Duration::from_secs(300),
            limits: Limits::default(),
            tls: None,
        }
    }
}

/// The Kafka listener of a broker, ready to serve.
pub struct Listener {
    shared: Arc<Shared>,
    tls: Option<Tls>,
}

impl Listener {
    /// The listener over `handles`; its TLS files, if any, are read now, so a broker does not
    /// start with a listener it cannot serve.
    pub fn new(handles: Handles) -> Result<Listener, TlsError> {
        let tls = match &handles.settings.tls {
            Some(files) => Some(Tls::start(files.clone(), handles.shutdown.clone())?),
            None => None,
        };
        let shared = Arc::new(Shared {
            handles,
            groups: Default::default(),
            producer_ids: Mutex::new(0..0),
        });
        Ok(Listener { shared, tls })
    }

    /// Serves Kafka clients on `listener` until the broker shuts down.
    pub async fn serve(self, listener: TcpListener) {
        serve(self.shared, self.tls, listener).await
    }
}

async fn serve(shared: Arc<Shared>, tls: Option<Tls>, listener: TcpListener) {
    let mut shutdown = shared.handles.shutdown.clone();
    let local = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    tokio::spawn(groups::run(Context {
        shared: shared.clone(),
        peer: local,
    }));
    let limits = &shared.handles.settings.limits;
    let connections = Arc::new(Semaphore::new(limits.connections_max));
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
                    match &tls {
                        None => {
                            let (reader, writer) = stream.into_split();
                            tokio::spawn(connection::serve(shared.clone(), reader, writer, peer, permit));
                        }
                        Some(tls) => {
                            let acceptor = tls.acceptor();
                            let shared = shared.clone();
                            tokio::spawn(async move {
                                let handshake = shared.handles.settings.limits.idle_timeout;
                                match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                                    Ok(Ok(stream)) => {
                                        let (reader, writer) = tokio::io::split(stream);
                                        connection::serve(shared, reader, writer, peer, permit).await;
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
