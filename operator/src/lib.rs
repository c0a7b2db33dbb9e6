//! Strand's Kubernetes operator: the `Cluster`, `Topic` and `User` resources and the objects
//! that run a Cluster's brokers.
//!
//! Types, schemas and builders (`crd`, `desired`, `topic_config`) are pure; the reconcilers
//! (`topic`, `cluster`, `user`) are thin shells that talk to the API server and, through `admin`, to
//! the brokers' admin API.

pub mod admin;
pub mod broker_config;
pub mod cluster;
pub mod conditions;
pub mod context;
pub mod crd;
pub mod desired;
pub mod http;
pub mod metrics;
pub mod pki;
pub mod topic;
pub mod topic_config;
pub mod user;
