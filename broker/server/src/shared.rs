//! The broker's parts its background tasks and gRPC services share.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

use strand_meta::BrokerId;
use strand_node::{Cluster, DiskGuard, Registry, Replicas, SharedViews};
use strand_proto::broker::{PartitionStatus, StatusReport};
use strand_raft::RecentBudget;
use tokio::sync::watch;

use crate::balancer::Balancer;
use crate::config::BrokerConfig;
use crate::contacts::Contacts;

/// What the controller knows of one broker from its latest status report.
#[derive(Debug, Clone)]
pub struct Report {
    /// When it arrived.
    pub at: Instant,
    /// The incarnation that sent it: a report of a retired incarnation (the broker came back
    /// with an empty disk since) describes replicas that no longer exist.
    pub node_id: u64,
    /// The partitions the broker hosts, with details for those it leads.
    pub partitions: Vec<PartitionStatus>,
    /// Its data directory is short of free space.
    pub disk_low: bool,
    /// It is stopping and takes no leadership.
    pub leaving: bool,
}

/// A broker's parts, shared by its background tasks and gRPC services. The Kafka listener
/// gets only the handles it needs (`strand_kafka::Handles`).
pub struct Inner {
    /// How it was started.
    pub config: BrokerConfig,
    /// The metadata group: cluster state, controller, proposals, identity, peers.
    pub cluster: Cluster,
    /// Groups hosted here.
    pub registry: Registry,
    /// Status reports, fed while this broker is the controller.
    pub reports: Mutex<HashMap<BrokerId, Report>>,
    /// Set when the broker shuts down.
    pub shutdown: watch::Sender<bool>,
    /// When each local partition replica last heard from its leader.
    pub contacts: Contacts,
    /// The controller's latest view of leaders and live brokers.
    pub views: Arc<SharedViews>,
    /// Balancing's memory: the controller's executor and leadership hand-overs.
    pub balancer: Balancer,
    /// Free space of the data directory.
    pub disk: Arc<DiskGuard>,
    /// What the partition replicas may keep of their newest entries in memory, together.
    pub recent_entries: RecentBudget,
}

impl Inner {
    /// The partition replicas hosted here, as writers and readers use them.
    pub fn replicas(&self) -> Replicas {
        Replicas::new(
            self.cluster.clone(),
            self.registry.clone(),
            self.views.clone(),
            self.disk.clone(),
        )
    }

    /// Keeps a broker's status report, replacing its previous one (on the controller).
    pub fn record_report(&self, report: StatusReport) {
        let mut reports = self.reports.lock().unwrap_or_else(|p| p.into_inner());
        reports.insert(
            BrokerId(report.broker_id),
            Report {
                at: Instant::now(),
                node_id: report.node_id,
                partitions: report.partitions,
                disk_low: report.disk_low,
                leaving: report.leaving,
            },
        );
    }
}
