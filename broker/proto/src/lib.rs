//! Strand's gRPC API, generated from `proto/`. Only this crate knows protobuf message layouts;
//! conversions to Raft and metadata types live with those types' users.

#![allow(missing_docs)]

/// Raft RPCs of every group, carried by one server per broker.
pub mod raft {
    tonic::include_proto!("strand.raft.v1");
}

/// The admin API used by the operator and the CLI.
pub mod admin {
    tonic::include_proto!("strand.admin.v1");
}

/// Broker-to-broker calls besides Raft.
pub mod broker {
    tonic::include_proto!("strand.broker.v1");
}
