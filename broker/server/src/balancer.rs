//! Balancing's settings and its memory on one broker (what the controller's executor and the
//! partition leaders' hand-overs remember between rounds; `balance.rs` does the work).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;

use strand_meta::BrokerId;

/// A leadership offer this broker made while it led a partition group.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Offer {
    /// The term it led in: the offer stands until that term ends.
    pub(crate) term: u64,
    /// When it was made.
    pub(crate) at: Instant,
}

/// How the cluster balances itself. The controller's settings are the ones that count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalancingSettings {
    /// Move replicas by itself whenever the planner finds the cluster uneven (new brokers,
    /// draining brokers, failed brokers, replication-factor changes). When off, only
    /// `Rebalance` calls and draining move replicas.
    pub auto: bool,
    /// Hand leadership to each partition's preferred replica when it is caught up.
    pub leader_balancing: bool,
    /// Replica moves in flight at once, across the cluster.
    pub max_concurrent_moves: usize,
    /// How long a broker may be unreachable before its replicas are re-created elsewhere.
    pub broker_failure_timeout: Duration,
}

impl Default for BalancingSettings {
    fn default() -> Self {
        BalancingSettings {
            auto: true,
            leader_balancing: true,
            max_concurrent_moves: 2,
            broker_failure_timeout: Duration::from_secs(300),
        }
    }
}

/// Balancing's memory on one broker: none of it needs to survive a restart.
#[derive(Default)]
pub struct Balancer {
    /// A `Rebalance` call asked for moves; cleared once the cluster is balanced.
    pub(crate) requested: AtomicBool,
    /// When this broker, as controller, last saw each broker report.
    pub(crate) seen: Mutex<BTreeMap<BrokerId, Instant>>,
    /// Since when this broker has been the controller.
    pub(crate) controller_since: Mutex<Option<Instant>>,
    /// Partition groups whose membership change is running in a task.
    pub(crate) busy: Mutex<HashSet<String>>,
    /// The last leadership offer made from here, per partition group: at most one per group
    /// this broker offered and still hosts (dropped with the replica, or replaced when the
    /// group offers again).
    pub(crate) offers: Mutex<HashMap<String, Offer>>,
    /// Set once the broker starts stopping (the pre-stop hook or SIGTERM, `hand_over.rs`): it
    /// hands its leaderships away and takes none back until it restarts.
    pub(crate) leaving: AtomicBool,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Balancer {
    /// Asks the controller's executor to run until the cluster is balanced, even with
    /// automatic balancing off.
    pub fn request(&self) {
        self.requested.store(true, Ordering::Relaxed);
    }

    /// Whether this broker is shutting down and handing its leaderships away.
    pub fn is_leaving(&self) -> bool {
        self.leaving.load(Ordering::Relaxed)
    }

    /// Whether this broker offered the leadership of `group` while leading it in `term`: if
    /// it still leads in that term, the offer stands (see `balance::offer_leadership`).
    pub(crate) fn offered(&self, group: &str, term: u64) -> bool {
        lock(&self.offers)
            .get(group)
            .is_some_and(|o| o.term == term)
    }

    /// Forgets what balancing remembers of a group this broker no longer hosts.
    pub(crate) fn forget(&self, group: &str) {
        lock(&self.offers).remove(group);
    }
}
