//! The Strand broker's shell: starts one broker ([`Broker::start`]) from its parts in
//! `strand-node`, runs the Raft groups' background tasks (bootstrap, partition groups,
//! controller, heartbeats, elections, balancing, retention), and serves the gRPC port (Raft,
//! admin, broker calls), the HTTP port (health, metrics) and, through `strand-kafka`, the
//! Kafka listener.

mod admin;
mod admin_security;
mod admin_service;
mod balance;
mod balancer;
mod bootstrap;
mod broker;
mod broker_service;
mod config;
mod contacts;
mod controller;
mod elections;
mod guard;
mod hand_over;
mod heartbeat;
mod http;
mod partitions;
mod raft_service;
mod retention;
mod services;
mod shared;
mod tuning;

pub use balancer::BalancingSettings;
pub use broker::{Broker, StartError, Transport};
pub use config::{BrokerConfig, KafkaSettings};
pub use guard::{GrpcAccess, GuardError};
pub use hand_over::HandOver;
pub use http::not_ready;
pub use services::{GrpcConnection, GrpcConnections};
pub use shared::Inner;
pub use strand_kafka::TlsFiles;
pub use strand_kafka::{
    ListenerCertificate, ListenerSpec, SaslMechanism, SecurityProtocol, SecuritySettings,
};

pub use strand_node::{
    DEFAULT_DISK_RESERVE_BYTES, DiskGuard, Identity, Limits, Outcome, Refusal, now_ms,
};
pub use tuning::RaftTuning;
