//! The Strand broker: Raft groups for the metadata and every partition replica, the gRPC
//! server that carries their RPCs and the admin API, and the HTTP health and metrics port.

mod admin_service;
mod append_stream;
mod balance;
mod bootstrap;
mod broker;
mod broker_service;
mod controller;
mod convert;
mod disk;
mod elections;
mod hand_over;
mod heartbeat;
mod http;
mod identity;
mod kafka;
mod meta;
mod network;
mod partitions;
mod producers;
mod raft_service;
mod registry;
mod retention;
mod services;
mod tuning;
mod views;

pub use balance::BalancingSettings;
pub use broker::{Broker, BrokerConfig, Inner, KafkaSettings, StartError, now_ms};
pub use disk::{DEFAULT_DISK_RESERVE_BYTES, DiskGuard};
pub use hand_over::HandOver;
pub use http::not_ready;
pub use identity::Identity;
pub use kafka::MAX_REQUEST_BYTES;
pub use meta::{Outcome, Refusal};
pub use tuning::RaftTuning;
