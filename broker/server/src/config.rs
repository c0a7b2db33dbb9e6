//! How a broker is started: its addresses, data directory, seeds and settings.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

pub use strand_kafka::KafkaSettings;

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
    /// The local address connections to other brokers leave from, on a host with several;
    /// `None`: the system chooses.
    pub peer_source_address: Option<IpAddr>,
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
    pub balancing: crate::balancer::BalancingSettings,
    /// Free bytes the data directory keeps in reserve: below this, partitions with a replica
    /// here refuse produce.
    pub disk_reserve_bytes: u64,
    /// Mutual TLS on the gRPC port (Raft, admin API, broker calls): this broker's certificate
    /// and key, and the cluster's CA (`client_ca`), which every caller's certificate (other
    /// brokers', the operator's, admin clients') must be signed by, and which this broker
    /// checks other brokers against. `None`: plaintext, open to anyone who can reach it.
    pub grpc_tls: Option<strand_node::TlsFiles>,
    /// With `grpc_tls`, the principals of the cluster's brokers and of its administrators:
    /// the only callers the gRPC port answers.
    pub grpc_access: crate::guard::GrpcAccess,
    /// TLS on the HTTP port (`/healthz`, `/readyz`, `/metrics`, `/v1/pre-stop`): its
    /// certificate and key (read again when they change) and, with `client_ca`, client
    /// certificates of that CA required. `None`: plain HTTP.
    pub http_tls: Option<strand_node::TlsFiles>,
}
