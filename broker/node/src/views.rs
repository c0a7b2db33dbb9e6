//! The cluster-wide view of partition leaders and live brokers: built by the controller from
//! status reports and shared with every broker in its reply, so any broker can answer Kafka
//! Metadata for partitions it does not host.

use std::collections::{BTreeSet, HashMap};
use std::sync::RwLock;
use std::time::Duration;
use tokio::time::Instant;

use strand_meta::BrokerId;
use strand_proto::broker as pb;

/// A view older than this is not trusted for liveness.
const STALE: Duration = Duration::from_secs(5);

/// One partition's leader as the controller last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderView {
    /// The leading broker.
    pub leader: BrokerId,
    /// Its term (the leader epoch).
    pub term: u64,
    /// Voters not caught up with the leader.
    pub lagging: Vec<BrokerId>,
}

#[derive(Default)]
struct Views {
    groups: HashMap<String, LeaderView>,
    alive: BTreeSet<BrokerId>,
    disk_low: BTreeSet<BrokerId>,
    leaving: BTreeSet<BrokerId>,
    at: Option<Instant>,
}

/// The latest view, shared by the broker's tasks.
#[derive(Default)]
pub struct SharedViews(RwLock<Views>);

impl SharedViews {
    /// Replaces the view with the controller's latest.
    pub fn replace(&self, reply: &pb::StatusReply) {
        let groups = reply
            .leaders
            .iter()
            .map(|l| {
                (
                    l.group.clone(),
                    LeaderView {
                        leader: BrokerId(l.broker_id),
                        term: l.term,
                        lagging: l.lagging_replicas.iter().map(|b| BrokerId(*b)).collect(),
                    },
                )
            })
            .collect();
        let alive = reply.alive_brokers.iter().map(|b| BrokerId(*b)).collect();
        let disk_low = reply
            .disk_low_brokers
            .iter()
            .map(|b| BrokerId(*b))
            .collect();
        let leaving = reply.leaving_brokers.iter().map(|b| BrokerId(*b)).collect();
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Views {
            groups,
            alive,
            disk_low,
            leaving,
            at: Some(Instant::now()),
        };
    }

    /// The leader of a group, when the view has one.
    pub fn get(&self, group: &str) -> Option<LeaderView> {
        let views = self.0.read().unwrap_or_else(|p| p.into_inner());
        views.groups.get(group).cloned()
    }

    /// Whether a broker said lately that its disk is nearly full.
    pub fn disk_low(&self, broker: BrokerId) -> bool {
        let views = self.0.read().unwrap_or_else(|p| p.into_inner());
        matches!(views.at, Some(at) if at.elapsed() < STALE) && views.disk_low.contains(&broker)
    }

    /// Whether a broker said lately that it is stopping and takes no leadership.
    pub fn leaving(&self, broker: BrokerId) -> bool {
        let views = self.0.read().unwrap_or_else(|p| p.into_inner());
        matches!(views.at, Some(at) if at.elapsed() < STALE) && views.leaving.contains(&broker)
    }

    /// Whether a broker reported lately; `true` while there is no fresh view to say otherwise.
    pub fn alive(&self, broker: BrokerId) -> bool {
        let views = self.0.read().unwrap_or_else(|p| p.into_inner());
        match views.at {
            Some(at) if at.elapsed() < STALE => views.alive.contains(&broker),
            _ => true,
        }
    }
}
