//! Balancing in the cluster: the controller turns the planner's moves into reassignments
//! (recorded in the metadata group, so a new controller carries on where the old one stopped),
//! finishes them once the partition's group has the new replicas as voters, and decommissions
//! drained brokers; every partition leader brings its group's voters to the assigned replicas
//! (add learner → catch up → joint membership change → remove) and hands leadership to the
//! preferred replica.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

use openraft::ChangeMembers;
use openraft::async_runtime::WatchReceiver;
use openraft::impls::BasicNode;
use strand_meta::{
    BrokerId, BrokerState, ClusterState, Command, PartitionId, Plan, PlanBroker, PlanPartition,
    PlanState, TopicId,
};

use crate::balancer::{Offer, lock};
use crate::controller::{PartitionView, caught_up, partition_views};
use crate::shared::Inner;
use strand_node::registry::{PartitionReplica, partition_group};

/// How long a metadata change made by balancing may wait for the controller.
const PATIENCE: Duration = Duration::from_secs(5);
/// Shortest time between two leadership hand-overs of one partition.
const TRANSFER_EVERY: Duration = Duration::from_secs(5);

/// What the planner is given, and why nothing may be planned right now.
pub struct PlanInput {
    /// Brokers that are not decommissioned.
    pub brokers: Vec<PlanBroker>,
    /// Every partition.
    pub partitions: Vec<PlanPartition>,
    /// Brokers unreachable for less than the failure timeout: planning waits for them.
    pub unreachable: Vec<BrokerId>,
}

/// The planner's input from the metadata, the fresh status reports and the controller's
/// memory of when each broker last reported.
pub fn plan_input(inner: &Inner, state: &ClusterState) -> PlanInput {
    let (views, alive) = partition_views(inner);
    let now = Instant::now();
    let since = {
        let mut since = lock(&inner.balancer.controller_since);
        *since.get_or_insert(now)
    };
    let mut seen = lock(&inner.balancer.seen);
    for b in &alive {
        seen.insert(*b, now);
    }
    let timeout = inner.config.balancing.broker_failure_timeout;
    let mut unreachable = Vec::new();
    let brokers = state
        .brokers()
        .values()
        .filter(|b| b.state != BrokerState::Decommissioned)
        .map(|b| {
            let last = seen.get(&b.id).copied().unwrap_or(since);
            let down = !alive.contains(&b.id) && now.duration_since(last) >= timeout;
            if !alive.contains(&b.id) && !down {
                unreachable.push(b.id);
            }
            PlanBroker {
                id: b.id,
                rack: b.rack.clone(),
                state: match b.state {
                    _ if down => PlanState::Down,
                    BrokerState::Draining => PlanState::Draining,
                    _ => PlanState::Active,
                },
            }
        })
        .collect();
    let partitions = state
        .topics()
        .flat_map(|topic| {
            let views = &views;
            topic.partitions.iter().enumerate().map(move |(p, a)| {
                let view = views.get(&partition_group(topic.id, p as u32));
                PlanPartition {
                    topic: topic.id,
                    partition: p as u32,
                    replicas: a.replicas.clone(),
                    leader: view.and_then(|v| v.leader),
                    replication_factor: topic.replication_factor,
                    size_bytes: view.map_or(0, |v| v.size_bytes),
                }
            })
        })
        .collect();
    PlanInput {
        brokers,
        partitions,
        unreachable,
    }
}

/// The plan for the cluster as it is now.
pub fn current_plan(inner: &Inner, state: &ClusterState) -> (Plan, PlanInput) {
    let input = plan_input(inner, state);
    (strand_meta::plan(&input.brokers, &input.partitions), input)
}

/// The controller's balancing step, run about once a second while this broker leads the
/// metadata group.
pub async fn execute(inner: &Inner, state: &ClusterState) {
    let (views, _) = partition_views(inner);
    finish_moves(inner, state, &views).await;
    decommission_drained(inner, state).await;
    let requested = inner.balancer.requested.load(Ordering::Relaxed);
    let draining = state
        .brokers()
        .values()
        .any(|b| b.state == BrokerState::Draining);
    if !(inner.config.balancing.auto || requested || draining) {
        return;
    }
    let (plan, input) = current_plan(inner, state);
    if !input.unreachable.is_empty() {
        tracing::debug!(brokers = ?input.unreachable, "balancing waits for unreachable brokers");
        return;
    }
    let mut in_flight = state
        .topics()
        .flat_map(|t| &t.partitions)
        .filter(|a| a.is_moving())
        .count();
    if plan.moves.is_empty() && in_flight == 0 {
        inner.balancer.requested.store(false, Ordering::Relaxed);
        return;
    }
    for mv in &plan.moves {
        let Some(topic) = state.topic(mv.topic) else {
            continue;
        };
        let Some(assignment) = topic.partitions.get(mv.partition as usize) else {
            continue;
        };
        let led = views
            .get(&partition_group(mv.topic, mv.partition))
            .is_some_and(|v| v.leader.is_some());
        if assignment.is_moving() || !led {
            continue;
        }
        let same_set: BTreeSet<_> = mv.from.iter().collect::<BTreeSet<_>>();
        let reorder = same_set == mv.to.iter().collect::<BTreeSet<_>>();
        if !reorder {
            if in_flight >= inner.config.balancing.max_concurrent_moves {
                continue;
            }
            in_flight += 1;
        }
        let command = Command::ReassignPartition {
            topic_id: mv.topic,
            partition: PartitionId(mv.partition),
            replicas: mv.to.clone(),
        };
        match inner.cluster.propose(&command, PATIENCE).await {
            Ok(strand_node::meta::Outcome::Refused(r)) => {
                tracing::warn!(topic = %topic.name, partition = mv.partition, reason = %r.message, "replica move refused");
            }
            Ok(_) => tracing::info!(topic = %topic.name, partition = mv.partition,
                from = ?mv.from, to = ?mv.to, "moving replicas"),
            Err(r) => {
                tracing::debug!(error = %r.message, "replica move not proposed");
                return;
            }
        }
    }
}

/// Node ids of the brokers of a replica list, when every broker is known.
fn nodes_of(state: &ClusterState, replicas: &[BrokerId]) -> Option<Vec<u64>> {
    replicas
        .iter()
        .map(|b| state.broker(*b).map(|b| b.node_id.0))
        .collect()
}

/// Reassignments whose group has exactly the new replicas as voters are finished, so the
/// leaving replicas are released.
async fn finish_moves(
    inner: &Inner,
    state: &ClusterState,
    views: &BTreeMap<String, PartitionView>,
) {
    for topic in state.topics() {
        for (p, assignment) in topic.partitions.iter().enumerate() {
            if !assignment.is_moving() {
                continue;
            }
            let Some(view) = views.get(&partition_group(topic.id, p as u32)) else {
                continue;
            };
            let Some(target) = nodes_of(state, &assignment.replicas) else {
                continue;
            };
            if !move_done(view, &target) {
                continue;
            }
            let command = Command::FinishReassignment {
                topic_id: topic.id,
                partition: PartitionId(p as u32),
                replicas: assignment.replicas.clone(),
            };
            match inner.cluster.propose(&command, PATIENCE).await {
                Ok(strand_node::meta::Outcome::Refused(r)) => {
                    tracing::debug!(reason = %r.message, "finishing a move refused");
                }
                Ok(_) => tracing::info!(topic = %topic.name, partition = p,
                    replicas = ?assignment.replicas, "replica move finished"),
                Err(r) => tracing::debug!(error = %r.message, "finishing a move not proposed"),
            }
        }
    }
}

/// Whether a partition's group has the nodes of its new replica list as voters, for good.
///
/// The voters a leader reports are those of the configuration it acts on, which it appends
/// before a quorum has it. Until that commits, losing the leader (a rolling restart, say) can
/// leave the next one with the joint configuration, which still counts the leaving replicas:
/// released then, they would be deleted while the group still replicated to them and needed
/// them for a majority.
fn move_done(view: &PartitionView, target: &[u64]) -> bool {
    let voters: BTreeSet<u64> = view.voter_nodes.iter().copied().collect();
    view.leader.is_some()
        && !view.membership_changing
        && voters == target.iter().copied().collect::<BTreeSet<u64>>()
}

/// A draining broker that hosts nothing any more becomes decommissioned.
async fn decommission_drained(inner: &Inner, state: &ClusterState) {
    for broker in state.brokers().values() {
        if broker.state != BrokerState::Draining || !state.assignments_for(broker.id).is_empty() {
            continue;
        }
        let command = Command::SetBrokerState {
            broker_id: broker.id,
            state: BrokerState::Decommissioned,
        };
        if let Ok(strand_node::meta::Outcome::Done { .. }) =
            inner.cluster.propose(&command, PATIENCE).await
        {
            tracing::info!(broker = %broker.id, "broker drained and decommissioned");
        }
    }
}

/// Forgets the controller's memory when this broker stops being the controller, so a later
/// term starts counting failure timeouts afresh.
pub fn not_controller(inner: &Inner) {
    lock(&inner.balancer.controller_since).take();
    lock(&inner.balancer.seen).clear();
}

/// What a partition leader does next to bring its group to the assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// Add assigned replicas that are not members, as learners.
    AddLearners(Vec<(u64, BasicNode)>),
    /// Every assigned replica is caught up: make them the voters (this leader stays a voter
    /// until it hands over).
    ChangeVoters(BTreeSet<u64>),
    /// Hand leadership to this node.
    HandOver(u64),
    /// Remove learners nobody assigned (left by a move that changed course).
    RemoveStrays(BTreeSet<u64>),
}

/// The next step for a group this broker leads, from its metrics and the assignment; `None`
/// when the group is where it should be (the common case, checked without allocating much).
fn next_step(
    inner: &Inner,
    state: &ClusterState,
    group: &str,
    replica: &PartitionReplica,
) -> Option<Step> {
    let watch = replica.raft.metrics();
    let metrics = watch.borrow_watched();
    if metrics.state != openraft::ServerState::Leader {
        return None;
    }
    let (topic_id, partition) = parse_group(group)?;
    let assignment = state
        .topic(topic_id)
        .and_then(|t| t.partitions.get(partition as usize))?;
    let target = nodes_of(state, &assignment.replicas)?;
    let me = inner.cluster.identity().node_id;
    let membership = metrics.membership_config.membership();
    let in_step = membership.voter_ids().count() == target.len()
        && membership.voter_ids().all(|n| target.contains(&n))
        && membership.nodes().count() == target.len();
    if in_step {
        let leader_balancing = inner.config.balancing.leader_balancing
            && target[0] != me
            && !assignment.is_moving()
            && inner.views.alive(assignment.replicas[0])
            // A stopping broker refuses leadership, and openraft's leader stops taking writes
            // as soon as it offers leadership, until an election ends the offer.
            && !inner.views.leaving(assignment.replicas[0])
            && caught_up(&metrics, target[0])
            && !recently_handed_over(inner, group);
        return leader_balancing.then_some(Step::HandOver(target[0]));
    }
    let members: BTreeSet<u64> = membership.nodes().map(|(id, _)| *id).collect();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let missing: Vec<(u64, BasicNode)> = target
        .iter()
        .zip(&assignment.replicas)
        .filter(|(node, _)| !members.contains(node))
        .filter_map(|(node, broker)| {
            let b = state.broker(*broker)?;
            Some((
                *node,
                BasicNode {
                    addr: b.grpc_addr.clone(),
                },
            ))
        })
        .collect();
    if !missing.is_empty() {
        return Some(Step::AddLearners(missing));
    }
    if !target.iter().all(|n| *n == me || caught_up(&metrics, *n)) {
        return None;
    }
    let mut wanted: BTreeSet<u64> = target.iter().copied().collect();
    let assigned_here = wanted.contains(&me);
    wanted.insert(me);
    if wanted != voters {
        return Some(Step::ChangeVoters(wanted));
    }
    if !assigned_here {
        // To the first assigned replica that can take it now. An offer stops this leader's
        // writes until it is taken or an election ends it (`offer_leadership`); a broker that
        // is down (restarting, say), stopping or behind cannot take it, so this leader keeps
        // leading until one can.
        let to = target
            .iter()
            .zip(&assignment.replicas)
            .find(|(node, broker)| {
                inner.views.alive(**broker)
                    && !inner.views.leaving(**broker)
                    && caught_up(&metrics, **node)
            })
            .map(|(node, _)| *node)?;
        return (!recently_handed_over(inner, group)).then_some(Step::HandOver(to));
    }
    let strays: BTreeSet<u64> = members.difference(&voters).copied().collect();
    (!strays.is_empty()).then_some(Step::RemoveStrays(strays))
}

fn recently_handed_over(inner: &Inner, group: &str) -> bool {
    lock(&inner.balancer.offers)
        .get(group)
        .is_some_and(|o| o.at.elapsed() < TRANSFER_EVERY)
}

/// On a partition leader: when the group is not where its assignment says, takes the next
/// step in a task of its own, unless one is running for the group.
pub fn keep_group(
    inner: &Arc<Inner>,
    state: &ClusterState,
    group: &str,
    replica: &Arc<PartitionReplica>,
) {
    if inner.balancer.is_leaving() {
        return;
    }
    let Some(step) = next_step(inner, state, group, replica) else {
        return;
    };
    if !lock(&inner.balancer.busy).insert(group.to_string()) {
        return;
    }
    let inner = inner.clone();
    let replica = replica.clone();
    let group = group.to_string();
    tokio::spawn(async move {
        if let Err(e) = take_step(&inner, &group, &replica, step).await {
            tracing::debug!(%group, error = %e, "membership change not done yet");
        }
        lock(&inner.balancer.busy).remove(&group);
    });
}

/// An idle leader's quorum lease lapses (coalesced heartbeats do not report back), and
/// openraft refuses membership changes without it: one heartbeat round renews it.
async fn renew_lease(replica: &PartitionReplica) {
    let mut metrics = replica.raft.metrics();
    let before = metrics.borrow_watched().last_quorum_acked;
    if replica.raft.trigger().heartbeat().await.is_err() {
        return;
    }
    let renewed = metrics.wait_until(|m: &openraft::RaftMetrics<strand_raft::TypeConfig>| {
        m.last_quorum_acked != before
    });
    let _ = tokio::time::timeout(Duration::from_secs(1), renewed).await;
}

fn parse_group(group: &str) -> Option<(TopicId, u32)> {
    let (topic, partition) = group.split_once('/')?;
    Some((TopicId(topic.parse().ok()?), partition.parse().ok()?))
}

async fn take_step(
    inner: &Inner,
    group: &str,
    replica: &PartitionReplica,
    step: Step,
) -> Result<(), String> {
    if !matches!(step, Step::HandOver(_)) {
        renew_lease(replica).await;
    }
    match step {
        Step::AddLearners(nodes) => {
            for (node, addr) in nodes {
                replica
                    .raft
                    .add_learner(node, addr, false)
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::info!(%group, node, "adding a replica; it catches up as a learner");
            }
        }
        Step::ChangeVoters(voters) => {
            replica
                .raft
                .change_membership(ChangeMembers::ReplaceAllVoters(voters.clone()), false)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(%group, ?voters, "partition voters changed");
        }
        Step::RemoveStrays(nodes) => {
            replica
                .raft
                .change_membership(ChangeMembers::RemoveNodes(nodes), false)
                .await
                .map_err(|e| e.to_string())?;
        }
        Step::HandOver(to) => {
            // The next attempt waits [`TRANSFER_EVERY`].
            tracing::info!(%group, to, "handing leadership over");
            offer_leadership(inner, group, replica, to).await?;
        }
    }
    Ok(())
}

/// Offers node `to` the leadership of a partition group this broker leads: the one way
/// partition leaderships are handed over (leader balancing, moves, and `hand_over.rs`).
///
/// From the offer until its term ends, openraft's leader takes no writes and makes no
/// membership change; it never withdraws the offer. It also sends no heartbeats, which are
/// what restarts replication to a follower whose stream broke, so a target that is down,
/// stopping or behind may never be able to take it. openraft counts on the other followers
/// timing out then and electing a leader, but a partition's followers hear this broker's
/// coalesced heartbeats instead: the offer is remembered here with its term, and
/// `heartbeat.rs` stops them for the group as openraft stops its own. Without that, an offer
/// to a broker that was restarting left its partition without writes, and a move of it
/// stuck, for good.
pub(crate) async fn offer_leadership(
    inner: &Inner,
    group: &str,
    replica: &PartitionReplica,
    to: u64,
) -> Result<(), String> {
    let term = replica.raft.metrics().borrow_watched().vote.leader_id.term;
    let offer = Offer {
        term,
        at: Instant::now(),
    };
    lock(&inner.balancer.offers).insert(group.to_string(), offer);
    // A leader's election timer moves only when it comes due (`elections.rs`), so it may be
    // due the moment the offer is taken, before the new leader is heard from: this broker
    // would stand at once against the leader it chose, and often win, its log being as long.
    inner
        .contacts
        .touch(group, inner.config.tuning.election_min);
    replica
        .raft
        .trigger()
        .transfer_leader(to)
        .await
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_move_is_done_once_its_leader_has_the_new_voters_committed() {
        let view = |voters: &[u64], changing: bool| PartitionView {
            leader: Some(BrokerId(1)),
            voter_nodes: voters.to_vec(),
            membership_changing: changing,
            ..PartitionView::default()
        };
        assert!(move_done(&view(&[12, 11, 13], false), &[11, 12, 13]));
        // Appended but not committed, or still joint: the leaving replicas may yet be needed.
        assert!(!move_done(&view(&[11, 12, 13], true), &[11, 12, 13]));
        assert!(!move_done(&view(&[10, 11, 12, 13], false), &[11, 12, 13]));
        let leaderless = PartitionView {
            leader: None,
            ..view(&[11, 12, 13], false)
        };
        assert!(!move_done(&leaderless, &[11, 12, 13]));
    }
}
