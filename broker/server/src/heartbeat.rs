//! Coalesced heartbeats for partition groups. openraft's own heartbeats would be one RPC per
//! group and follower every interval; with hundreds of partitions that is thousands of idle
//! calls a second. Instead each broker sends, every interval, one message per peer broker with
//! a heartbeat for every group it leads that the peer follows; the peer hands each one to its
//! group as an empty AppendEntries, which resets the follower's election timer and carries the
//! commit index. A group is only handed a heartbeat when its commit index moved or its view of
//! the leader's lease needs renewing; the others just move the broker's election timer
//! (`elections.rs`). The metadata group keeps openraft's own heartbeats.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::future::join_all;
use openraft::async_runtime::WatchReceiver;
use openraft::raft::AppendEntriesRequest;
use strand_proto::raft as pb;
use strand_proto::raft::raft_client::RaftClient;

use crate::shared::Inner;
use strand_node::convert;
use strand_node::registry::{Group, PartitionReplica};

/// Sends this broker's coalesced heartbeats until it shuts down.
pub async fn run(inner: Arc<Inner>) {
    let mut stop = inner.shutdown.subscribe();
    let interval = inner.config.tuning.heartbeat;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let (batches, lagging) = collect(&inner);
        // A follower behind its leader needs replication, which openraft's own heartbeat
        // (re)starts after a failed send; idle groups whose followers are caught up need none.
        for replica in lagging {
            let _ = replica.raft.trigger().heartbeat().await;
        }
        let sends = batches.into_iter().map(|(addr, items)| {
            let inner = inner.clone();
            async move {
                let Ok(channel) = inner.cluster.peers().channel(&addr) else { return };
                let mut request = tonic::Request::new(pb::HeartbeatBatch { items });
                request.set_timeout(interval * 2);
                if let Err(status) = RaftClient::new(channel).heartbeat(request).await {
                    tracing::trace!(peer = %addr, error = %status.message(), "heartbeats not delivered");
                }
            }
        });
        join_all(sends).await;
    }
}

/// This broker's heartbeats, grouped by the address of the broker they go to; and the groups it
/// leads that have a follower behind.
fn collect(
    inner: &Inner,
) -> (
    BTreeMap<String, Vec<pb::GroupHeartbeat>>,
    Vec<Arc<PartitionReplica>>,
) {
    let me = inner.cluster.identity().node_id;
    let mut batches: BTreeMap<String, Vec<pb::GroupHeartbeat>> = BTreeMap::new();
    let mut lagging = Vec::new();
    for (group, replica) in inner.registry.partitions() {
        let watch = replica.raft.metrics();
        let metrics = watch.borrow_watched();
        if metrics.state != openraft::ServerState::Leader || !metrics.vote.committed {
            continue;
        }
        // A leader that offered its leadership away sends no heartbeats, as openraft's own
        // would not: if the offer is not taken, the followers time out and elect a leader
        // (see `balance::offer_leadership`). openraft refuses to heartbeat it anyway.
        if inner.balancer.offered(&group, metrics.vote.leader_id.term) {
            continue;
        }
        let empty = BTreeMap::new();
        let matched = metrics.replication.as_ref().unwrap_or(&empty);
        if matched
            .values()
            .any(|m| m.as_ref().map(|id| id.index) < metrics.last_log_index)
        {
            lagging.push(replica.clone());
        }
        let vote = convert::vote_to_pb(&metrics.vote);
        let leader_commit = metrics.local_committed.as_ref().map(convert::log_id_to_pb);
        for (node, info) in metrics.membership_config.membership().nodes() {
            if *node == me {
                continue;
            }
            batches
                .entry(info.addr.clone())
                .or_default()
                .push(pb::GroupHeartbeat {
                    target: Some(pb::Target {
                        group: group.to_string(),
                        node_id: *node,
                    }),
                    vote: Some(vote),
                    prev_log_id: matched
                        .get(node)
                        .cloned()
                        .flatten()
                        .as_ref()
                        .map(convert::log_id_to_pb),
                    leader_commit,
                });
        }
    }
    (batches, lagging)
}

/// Hands each heartbeat of a batch to its group, all at once.
pub async fn deliver(inner: &Inner, batch: pb::HeartbeatBatch) {
    let node_id = inner.cluster.identity().node_id;
    let senders: std::collections::BTreeSet<u64> = batch
        .items
        .iter()
        .filter_map(|i| i.vote.as_ref().map(|v| v.node_id))
        .collect();
    for leader in senders {
        inner.contacts.leader_alive(leader);
    }
    let deliveries = batch.items.into_iter().filter_map(|item| {
        let target = item.target.as_ref()?;
        if target.node_id != node_id {
            return None;
        }
        let Some(Group::Partition(replica)) = inner.registry.get(&target.group) else {
            return None;
        };
        let vote = convert::vote_from_pb(item.vote).ok()?;
        // A heartbeat of an older term than this replica has seen comes from a deposed leader
        // that has not learned it yet (it was cut off while the others elected another). It
        // is no leader's contact: counted as one, it kept this follower, and every other, from
        // ever standing, while the deposed leader, idle since clients were sent elsewhere,
        // never appended again to learn of the newer term. Ignored, the followers stand, and
        // the leader they elect deposes it with its first append.
        let seen_term = replica.raft.metrics().borrow_watched().vote.leader_id.term;
        if vote.leader_id.term < seen_term {
            return None;
        }
        let commit = item.leader_commit.as_ref().map(|c| (c.term, c.index));
        replica.store.heard_from_leader(vote.leader_id.term, commit);
        // Every heartbeat moves the election timer; openraft itself only needs one when the
        // commit index moved or its view of the leader's lease (the longest election timeout,
        // 1.5 × the shortest) is getting old. Renewing after 3/4 of the shortest timeout
        // leaves two heartbeat intervals (at the defaults) before that view would lapse, and
        // spares two of three idle calls into the groups.
        let tuning = &inner.config.tuning;
        let renew_after = tuning.election_min * 3 / 4;
        if !inner
            .contacts
            .heard(&target.group, commit, tuning.election_min, renew_after)
        {
            return None;
        }
        let request = AppendEntriesRequest {
            vote,
            prev_log_id: item.prev_log_id.map(convert::log_id_from_pb),
            entries: Vec::new(),
            leader_commit: item.leader_commit.map(convert::log_id_from_pb),
        };
        Some(async move {
            // A refusal (a higher vote, a log conflict) needs nothing here: the leader learns
            // it from its next real append.
            let _ = replica.raft.append_entries(request).await;
        })
    });
    join_all(deliveries).await;
}
