//! Handing leadership away before a broker stops: on SIGTERM, and earlier through the HTTP
//! port's `POST /v1/pre-stop` (a Kubernetes preStop hook), so clients see a leader change
//! instead of waiting out a leader's timeout.
//!
//! The broker marks itself leaving first: from then on it stands in no election and refuses
//! leadership transfers to itself, until it restarts. It tells the controller at once, in a
//! status report, and waits until every broker has had the controller's view since
//! ([`ANNOUNCE_WAIT`]): leader balancing on other brokers would otherwise hand partitions back
//! to it as their preferred replica, and an openraft leader takes no writes while such an
//! offer stands. It then offers every leadership it holds (partitions and the controller role)
//! to a caught-up voter, on a broker that is up and not stopping when there is one, again every
//! [`OFFER_AGAIN_AFTER`] while one is not taken, and returns once it leads nothing it could
//! hand over or the deadline passes. Calling it again (the hook, then SIGTERM) only finds less
//! to do. An offer nobody takes ends in an election among the other voters
//! (`balance::offer_leadership`).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

use openraft::async_runtime::WatchReceiver;
use serde::{Deserialize, Serialize};

use crate::controller::{REPORT_EVERY, caught_up};
use crate::shared::Inner;

/// How long the first hand-over waits after telling the controller it is leaving: every
/// broker sends a status report, and gets the controller's view back, once a [`REPORT_EVERY`].
const ANNOUNCE_WAIT: Duration = REPORT_EVERY.saturating_add(Duration::from_millis(500));
/// How long a leadership offered to a voter may stay untaken before it is offered again (to
/// the next caught-up voter): a transfer that works completes within one election.
const OFFER_AGAIN_AFTER: Duration = Duration::from_secs(3);
/// How often the hand-over looks at what this broker still leads.
const CHECK_EVERY: Duration = Duration::from_millis(50);
/// Most leaderships a report names; the counts cover all of them.
const NAMED_MAX: usize = 20;

/// The name of the controller role in a report.
const CONTROLLER: &str = "controller";

/// What a hand-over achieved by the time it returned; the answer of `POST /v1/pre-stop`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandOver {
    /// Leaderships (partitions and the controller role) another broker took from this one.
    pub handed_over: usize,
    /// Leaderships this broker still holds.
    pub remaining: usize,
    /// Of `remaining`, those no other broker can take: groups with no other voter, as a
    /// partition of replication factor 1 or the metadata group of a one-broker cluster.
    pub without_other_voter: usize,
    /// Whether it returned because the deadline passed with leaderships that other voters
    /// could have taken still here.
    pub deadline_passed: bool,
    /// The first [`NAMED_MAX`] of `remaining` (`topic-partition`, or `controller`).
    pub still_leading: Vec<String>,
}

/// One leadership this broker holds.
struct Led {
    /// The group's name in a report.
    name: String,
    /// Caught-up voters other than this broker, in membership order: only those on brokers
    /// that are up and not stopping, unless there are none.
    voters: Vec<u64>,
    /// No broker but this one is a voter of the group, so nobody can ever take it (a
    /// partition of replication factor 1, the metadata group of a one-broker cluster).
    alone: bool,
    /// Asks `to` to take leadership.
    transfer: Transfer,
}

enum Transfer {
    /// A partition group, by group id.
    Partition(
        String,
        std::sync::Arc<strand_node::registry::PartitionReplica>,
    ),
    Controller,
}

/// When a leadership was last offered, and how often.
struct Offer {
    at: Instant,
    count: usize,
}

/// Hands every leadership this broker holds to a caught-up voter and waits up to `patience`
/// for them to be taken; from the first call on, the broker takes no leadership back.
pub async fn hand_over_all(inner: &Inner, patience: Duration) -> HandOver {
    let deadline = Instant::now() + patience;
    if !inner.balancer.leaving.swap(true, Ordering::Relaxed) {
        crate::controller::report_once(inner).await;
        let announced = (Instant::now() + ANNOUNCE_WAIT).min(deadline);
        tokio::time::sleep_until(announced).await;
    }
    let mut offers: HashMap<String, Offer> = HashMap::new();
    loop {
        let leading = led_here(inner);
        let stuck = leading.iter().filter(|l| l.alone).count();
        let deadline_passed = Instant::now() >= deadline;
        if leading.len() == stuck || deadline_passed {
            let report = HandOver {
                handed_over: offers
                    .keys()
                    .filter(|name| !leading.iter().any(|l| l.name == **name))
                    .count(),
                remaining: leading.len(),
                without_other_voter: stuck,
                deadline_passed: deadline_passed && leading.len() > stuck,
                still_leading: leading
                    .iter()
                    .take(NAMED_MAX)
                    .map(|l| l.name.clone())
                    .collect(),
            };
            if report.remaining > 0 {
                tracing::warn!(
                    handed_over = report.handed_over,
                    remaining = report.remaining,
                    without_other_voter = report.without_other_voter,
                    "some leaderships were not handed over"
                );
            } else {
                tracing::info!(
                    handed_over = report.handed_over,
                    "every leadership handed over"
                );
            }
            return report;
        }
        for led in &leading {
            let offer = offers.get(&led.name);
            if led.voters.is_empty() || offer.is_some_and(|o| o.at.elapsed() < OFFER_AGAIN_AFTER) {
                continue;
            }
            // Each new offer goes to the next caught-up voter, in case the last one was
            // stopping too (it refuses) or unreachable.
            let count = offer.map_or(0, |o| o.count);
            let to = led.voters[count % led.voters.len()];
            let result = match &led.transfer {
                Transfer::Partition(group, replica) => {
                    crate::balance::offer_leadership(inner, group, replica, to).await
                }
                Transfer::Controller => inner
                    .cluster
                    .raft()
                    .trigger()
                    .transfer_leader(to)
                    .await
                    .map_err(|e| e.to_string()),
            };
            match result {
                Ok(()) => tracing::debug!(group = %led.name, to, "handing leadership over"),
                Err(e) => {
                    tracing::debug!(group = %led.name, to, error = %e, "hand-over not started")
                }
            }
            offers.insert(
                led.name.clone(),
                Offer {
                    at: Instant::now(),
                    count: count + 1,
                },
            );
        }
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

/// The leaderships this broker holds now, each with the caught-up voters that could take it.
fn led_here(inner: &Inner) -> Vec<Led> {
    let me = inner.cluster.identity().node_id;
    let state = inner.cluster.state();
    // Whether the broker of a node reported lately and is not stopping itself: an offer that
    // one cannot take leaves the group without writes until an election ends it.
    let can_take = |node: u64| {
        strand_node::Cluster::broker_of_node(&state, node)
            .is_some_and(|b| inner.views.alive(b) && !inner.views.leaving(b))
    };
    // The caught-up voters but this broker (only those that can take leadership, when there
    // are any), and whether there is any other voter at all.
    let others = |metrics: &openraft::RaftMetrics<strand_raft::TypeConfig>| {
        let membership = metrics.membership_config.membership();
        let alone = membership.voter_ids().all(|n| n == me);
        let voters: Vec<u64> = membership
            .voter_ids()
            .filter(|n| *n != me && caught_up(metrics, *n))
            .collect();
        let able: Vec<u64> = voters.iter().copied().filter(|n| can_take(*n)).collect();
        (if able.is_empty() { voters } else { able }, alone)
    };
    let mut led = Vec::new();
    for (group, replica) in inner.registry.partitions() {
        let (voters, alone) = {
            let watch = replica.raft.metrics();
            let metrics = watch.borrow_watched();
            if metrics.state != openraft::ServerState::Leader {
                continue;
            }
            others(&metrics)
        };
        led.push(Led {
            name: format!("{}-{}", replica.topic, replica.partition),
            voters,
            alone,
            transfer: Transfer::Partition(group.to_string(), replica),
        });
    }
    if inner.cluster.is_controller() {
        let watch = inner.cluster.raft().metrics();
        let (voters, alone) = others(&watch.borrow_watched());
        led.push(Led {
            name: CONTROLLER.to_string(),
            voters,
            alone,
            transfer: Transfer::Controller,
        });
    }
    led
}
