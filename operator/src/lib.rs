//! Strand's Kubernetes operator: the `Cluster` and `Topic` resources and the objects that run a
//! Cluster's brokers.
//!
//! Everything here is pure: types, schemas and builders that return objects. Talking to the
//! API server and to the brokers' admin API belongs to the reconcilers.

pub mod crd;
pub mod desired;
pub mod topic_config;
