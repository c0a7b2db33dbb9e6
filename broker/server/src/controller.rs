//! Keeping groups whole: the controller keeps the metadata group's membership in step with the
//! registered brokers, every partition leader replaces replicas of retired incarnations, and
//! every broker reports its replicas to the controller.

use openraft::async_runtime::WatchReceiver;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use openraft::ChangeMembers;
use openraft::impls::BasicNode;
use strand_meta::{BrokerId, BrokerState, ClusterState};
use strand_proto::broker::broker_client::BrokerClient;
use strand_proto::broker::{PartitionStatus, StatusReport};
use strand_raft::TypeConfig;

use crate::shared::{Inner, Report};

/// How often membership is checked.
const TICK: Duration = Duration::from_millis(300);
/// How often brokers report to the controller.
pub const REPORT_EVERY: Duration = Duration::from_secs(1);
/// A report older than this no longer counts: its broker may be down.
pub const REPORT_FRESH: Duration = Duration::from_secs(3);
/// A follower this many entries behind its leader is not caught up.
const CAUGHT_UP_ENTRIES: u64 = 100;
/// How often the controller takes a balancing step.
const BALANCE_EVERY: Duration = Duration::from_secs(1);

/// Runs the duties of the controller and of partition leaders until the broker shuts down.
pub async fn run(inner: Arc<Inner>) {
    let mut stop = inner.shutdown.subscribe();
    let mut last_balance = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let state = inner.cluster.state();
        if inner.cluster.is_controller() {
            if let Err(e) = keep_metadata_membership(&inner, &state).await {
                tracing::debug!(error = %e, "metadata membership change not done yet");
            }
            if last_balance.elapsed() >= BALANCE_EVERY {
                last_balance = Instant::now();
                crate::balance::execute(&inner, &state).await;
            }
        } else {
            crate::balance::not_controller(&inner);
        }
        for (group, replica) in inner.registry.partitions() {
            crate::balance::keep_group(&inner, &state, &group, &replica);
        }
    }
}

fn retired_nodes(state: &ClusterState) -> BTreeSet<u64> {
    state
        .brokers()
        .values()
        .flat_map(|b| b.retired_node_ids.iter().map(|n| n.0))
        .collect()
}

/// Whether `node` has matched the leader's log to within [`CAUGHT_UP_ENTRIES`].
pub fn caught_up(metrics: &openraft::RaftMetrics<TypeConfig>, node: u64) -> bool {
    let last = metrics.last_log_index.unwrap_or(0);
    metrics
        .replication
        .as_ref()
        .and_then(|r| r.get(&node).cloned().flatten())
        .is_some_and(|matched| matched.index + CAUGHT_UP_ENTRIES >= last)
}

/// How many voters the metadata group keeps among `live` brokers: 3 (all of them when fewer),
/// 5 from five brokers on.
pub fn metadata_voters_kept(live: usize) -> usize {
    if live >= 5 { 5 } else { live.min(3) }
}

/// Adds registered brokers to the metadata group as learners, keeps 3 voters (5 from five
/// brokers on) preferring caught-up learners, and drops retired incarnations.
async fn keep_metadata_membership(inner: &Inner, state: &ClusterState) -> Result<(), String> {
    let metrics = inner.cluster.raft().metrics().borrow_watched().clone();
    let membership = metrics.membership_config.membership().clone();
    let members: BTreeSet<u64> = membership.nodes().map(|(id, _)| *id).collect();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let live: Vec<_> = state
        .brokers()
        .values()
        .filter(|b| b.state != BrokerState::Decommissioned)
        .collect();
    for broker in &live {
        if !members.contains(&broker.node_id.0) {
            let node = BasicNode {
                addr: broker.grpc_addr.clone(),
            };
            inner
                .cluster
                .raft()
                .add_learner(broker.node_id.0, node, false)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(broker = %broker.id, node = broker.node_id.0, "added broker to the metadata group");
        }
    }
    let retired = retired_nodes(state);
    let target = metadata_voters_kept(live.len());
    let mut wanted: BTreeSet<u64> = voters.difference(&retired).copied().collect();
    for broker in &live {
        if wanted.len() >= target {
            break;
        }
        if !wanted.contains(&broker.node_id.0) && caught_up(&metrics, broker.node_id.0) {
            wanted.insert(broker.node_id.0);
        }
    }
    if wanted != voters
        && !wanted.is_empty()
        && !strand_node::failpoints::holds("controller::metadata_voters", &inner.config.data_dir)
    {
        inner
            .cluster
            .raft()
            .change_membership(ChangeMembers::ReplaceAllVoters(wanted.clone()), false)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(voters = ?wanted, "metadata group voters changed");
    }
    Ok(())
}

/// What this broker tells the controller about its replicas.
fn status_report(inner: &Inner, state: &ClusterState) -> StatusReport {
    let by_node: BTreeMap<u64, BrokerId> = state
        .brokers()
        .values()
        .flat_map(|b| {
            std::iter::once((b.node_id.0, b.id))
                .chain(b.retired_node_ids.iter().map(move |n| (n.0, b.id)))
        })
        .collect();
    let current_nodes: BTreeSet<u64> = state.brokers().values().map(|b| b.node_id.0).collect();
    let partitions = inner
        .registry
        .partitions()
        .into_iter()
        .map(|(group, replica)| {
            let watch = replica.raft.metrics();
            let metrics = watch.borrow_watched();
            // A restarted leader keeps its vote, so only the state says it leads now.
            let leader = metrics.state == openraft::ServerState::Leader;
            if !leader {
                // Who this follower hears from: a new leader is known from its followers'
                // reports before its own arrives.
                let me = inner.cluster.identity().node_id;
                let leader_node = metrics.current_leader.filter(|l| *l != me);
                return PartitionStatus {
                    group: group.to_string(),
                    term: leader_node.map_or(0, |_| metrics.vote.leader_id.term),
                    leader_node,
                    ..Default::default()
                };
            }
            // A retired incarnation still among the voters is a lost replica: its match index
            // may well be the last entry of an idle group, yet nothing holds that copy now.
            let lagging = metrics
                .membership_config
                .membership()
                .voter_ids()
                .filter(|n| *n != inner.cluster.identity().node_id)
                .filter(|n| !current_nodes.contains(n) || !caught_up(&metrics, *n))
                .filter_map(|n| by_node.get(&n).map(|b| b.0))
                .collect();
            let (log_start, size_bytes) = replica
                .store
                .log()
                .read()
                .map(|l| (l.log_start_offset().0, l.size_bytes()))
                .unwrap_or((0, 0));
            let membership = metrics.membership_config.membership();
            let voter_nodes = membership.voter_ids().collect();
            // A leader acts on a new configuration as soon as it appends it; until that is
            // committed (and while joint), losing the leader can leave the others in the old
            // configuration, without a majority.
            let membership_changing = metrics.membership_config.get_joint_config().len() > 1
                || metrics.membership_config.log_id()
                    != metrics.committed_membership_config.log_id();

            PartitionStatus {
                group: group.to_string(),
                leader: true,
                high_watermark: replica.sm.high_watermark().borrow().0,
                log_start_offset: log_start,
                lagging_replicas: lagging,
                term: metrics.vote.leader_id.term,
                voter_nodes,
                size_bytes,
                leader_node: None,
                membership_changing,
            }
        })
        .collect();
    StatusReport {
        broker_id: inner.cluster.identity().broker_id,
        node_id: inner.cluster.identity().node_id,
        partitions,
        disk_low: inner.disk.is_low(),
        leaving: inner.balancer.is_leaving(),
    }
}

/// Sends this broker's status report to the controller about once a second.
pub async fn report_loop(inner: Arc<Inner>) {
    let mut stop = inner.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(REPORT_EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        report_once(&inner).await;
    }
}

/// Sends this broker's status report to the controller now (records it, on the controller)
/// and takes the controller's view from the reply; whether the report arrived.
pub async fn report_once(inner: &Inner) -> bool {
    let report = status_report(inner, &inner.cluster.state());
    if inner.cluster.is_controller() {
        inner.record_report(report);
        inner.views.replace(&status_reply(inner));
        return true;
    }
    let Some((_, addr)) = inner.cluster.controller() else {
        return false;
    };
    let Ok(channel) = inner.cluster.peers().channel(&addr) else {
        return false;
    };
    let mut request = tonic::Request::new(report);
    request.set_timeout(Duration::from_secs(1));
    match BrokerClient::new(channel).report_status(request).await {
        Ok(reply) => {
            inner.views.replace(reply.get_ref());
            true
        }
        Err(status) => {
            tracing::debug!(controller = %addr, error = %status.message(), "status report not delivered");
            false
        }
    }
}

/// What the controller knows of a partition from fresh reports.
#[derive(Debug, Clone, Default)]
pub struct PartitionView {
    /// The broker that reported leading it.
    pub leader: Option<BrokerId>,
    /// High watermark reported by the leader.
    pub high_watermark: i64,
    /// Log start offset reported by the leader.
    pub log_start_offset: i64,
    /// Replicas the leader reported as not caught up.
    pub lagging: Vec<u32>,
    /// The leader's term.
    pub term: u64,
    /// Node ids of the group's voters; empty while the leader is known only from a follower.
    pub voter_nodes: Vec<u64>,
    /// Bytes of the leader's log.
    pub size_bytes: u64,
    /// The group's membership is changing (joint, or not yet committed).
    pub membership_changing: bool,
}

/// The controller's reply to a status report: its view of leaders and live brokers.
pub fn status_reply(inner: &Inner) -> strand_proto::broker::StatusReply {
    let (views, alive) = partition_views(inner);
    strand_proto::broker::StatusReply {
        leaders: views
            .into_iter()
            .filter_map(|(group, view)| {
                Some(strand_proto::broker::PartitionLeader {
                    group,
                    broker_id: view.leader?.0,
                    term: view.term,
                    lagging_replicas: view.lagging,
                })
            })
            .collect(),
        alive_brokers: alive.into_iter().map(|b| b.0).collect(),
        disk_low_brokers: disk_low_brokers(inner),
        leaving_brokers: leaving_brokers(inner),
    }
}

/// Brokers whose fresh reports say they are stopping.
fn leaving_brokers(inner: &Inner) -> Vec<u32> {
    let state = inner.cluster.state();
    let reports = inner.reports.lock().unwrap_or_else(|p| p.into_inner());
    current_reports(&reports, &state)
        .filter(|(_, r)| r.leaving)
        .map(|(b, _)| b.0)
        .collect()
}

/// Brokers whose fresh reports say their disk is nearly full.
fn disk_low_brokers(inner: &Inner) -> Vec<u32> {
    let state = inner.cluster.state();
    let reports = inner.reports.lock().unwrap_or_else(|p| p.into_inner());
    current_reports(&reports, &state)
        .filter(|(_, r)| r.disk_low)
        .map(|(b, _)| b.0)
        .collect()
}

/// The reports that still count: fresh, and sent by the broker's current incarnation. A
/// broker that came back with an empty disk leaves its old incarnation's last report behind,
/// which would otherwise speak for replicas that are gone (as leader of a group it led, with
/// every voter caught up) until it goes stale.
fn current_reports<'a>(
    reports: &'a HashMap<BrokerId, Report>,
    state: &'a ClusterState,
) -> impl Iterator<Item = (BrokerId, &'a Report)> {
    reports.iter().filter_map(move |(b, r)| {
        let current = state
            .broker(*b)
            .is_some_and(|info| info.node_id.0 == r.node_id);
        (current && r.at.elapsed() <= REPORT_FRESH).then_some((*b, r))
    })
}

/// The fresh reports' view of every partition, by group id; and which brokers reported lately.
pub fn partition_views(inner: &Inner) -> (BTreeMap<String, PartitionView>, BTreeSet<BrokerId>) {
    let state = inner.cluster.state();
    let reports = inner.reports.lock().unwrap_or_else(|p| p.into_inner());
    let mut views: BTreeMap<String, ((u64, Instant), PartitionView)> = BTreeMap::new();
    let fresh: Vec<(BrokerId, &Report)> = current_reports(&reports, &state).collect();
    let alive: BTreeSet<BrokerId> = fresh.iter().map(|(b, _)| *b).collect();
    for (broker, report) in &fresh {
        for p in report.partitions.iter().filter(|p| p.leader) {
            let view = PartitionView {
                leader: Some(*broker),
                high_watermark: p.high_watermark,
                log_start_offset: p.log_start_offset,
                lagging: p.lagging_replicas.clone(),
                term: p.term,
                voter_nodes: p.voter_nodes.clone(),
                size_bytes: p.size_bytes,
                membership_changing: p.membership_changing,
            };
            // The claim with the highest term wins; within a term, the latest report.
            let rank = (p.term, report.at);
            match views.get(&p.group) {
                Some((best, _)) if *best >= rank => {}
                _ => {
                    views.insert(p.group.clone(), (rank, view));
                }
            }
        }
    }
    // A follower's word for a leader of a newer term than any leader reported itself (its
    // own report is on its way), when that leader's broker reports at all.
    for (_, report) in &fresh {
        for p in &report.partitions {
            let Some(leader) = p
                .leader_node
                .and_then(|n| strand_node::Cluster::broker_of_node(&state, n))
                .filter(|b| alive.contains(b))
            else {
                continue;
            };
            if views
                .get(&p.group)
                .is_some_and(|((term, _), _)| *term >= p.term)
            {
                continue;
            }
            let view = PartitionView {
                leader: Some(leader),
                term: p.term,
                ..PartitionView::default()
            };
            views.insert(p.group.clone(), ((p.term, report.at), view));
        }
    }
    (views.into_iter().map(|(g, (_, v))| (g, v)).collect(), alive)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strand_meta::{ClusterId, Command, NodeId};

    fn register(state: &mut ClusterState, broker: u32, node: u64) {
        let addr = format!("127.0.0.1:{}", 9000 + broker);
        let command = Command::RegisterBroker {
            broker_id: BrokerId(broker),
            node_id: NodeId(node),
            kafka_addr: addr.clone(),
            listeners: Default::default(),
            grpc_addr: addr.clone(),
            http_addr: addr,
            rack: None,
            now_ms: 0,
        };
        state.apply(&command).expect("registration applies");
    }

    fn report(node_id: u64, age: Duration) -> Report {
        Report {
            at: Instant::now() - age,
            node_id,
            partitions: Vec::new(),
            disk_low: true,
            leaving: false,
        }
    }

    #[test]
    fn reports_of_retired_incarnations_and_stale_reports_do_not_count() {
        let mut state = ClusterState::default();
        let bootstrap = Command::Bootstrap {
            cluster_id: ClusterId(uuid::Uuid::from_u128(1)),
        };
        state.apply(&bootstrap).expect("bootstrap applies");
        register(&mut state, 0, 10);
        register(&mut state, 1, 11);
        register(&mut state, 2, 12);
        // Broker 2 came back with an empty disk: node 12 is retired, 22 is current.
        register(&mut state, 2, 22);
        let mut reports = HashMap::new();
        reports.insert(BrokerId(0), report(10, Duration::ZERO));
        reports.insert(BrokerId(1), report(11, REPORT_FRESH * 2));
        reports.insert(BrokerId(2), report(12, Duration::ZERO));
        let counted: Vec<BrokerId> = current_reports(&reports, &state).map(|(b, _)| b).collect();
        assert_eq!(counted, vec![BrokerId(0)]);

        reports.insert(BrokerId(2), report(22, Duration::ZERO));
        let mut counted: Vec<BrokerId> =
            current_reports(&reports, &state).map(|(b, _)| b).collect();
        counted.sort();
        assert_eq!(counted, vec![BrokerId(0), BrokerId(2)]);
    }
}
