//! The Kafka protocol listener of a broker: [`serve`] accepts connections (up to
//! `connections_max`) and serves each (`connection.rs`) over the broker's [`Handles`].

mod admin;
mod connection;
mod context;
mod dispatch;
mod errors;
mod fetch;
pub mod groups;
mod metadata;
mod produce;
mod versions;

pub use context::Handles;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strand_node::Limits;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::context::{Context, Shared};

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
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            auto_create_topics: false,
            default_partitions: 1,
            default_replication_factor: 3,
            retention_check_interval: Duration::from_secs(300),
            limits: Limits::default(),
        }
    }
}

/// Serves Kafka clients on `listener` until the broker shuts down.
pub async fn serve(handles: Handles, listener: TcpListener) {
    let mut shutdown = handles.shutdown.clone();
    let shared = Arc::new(Shared {
        handles,
        groups: Default::default(),
        producer_ids: Mutex::new(0..0),
    });
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
                    tokio::spawn(connection::serve(shared.clone(), stream, peer, permit));
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
