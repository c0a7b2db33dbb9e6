//! Election timers of partition groups. openraft would run a timer task per group ticking
//! several times per heartbeat interval; with hundreds of groups that is thousands of wake-ups a
//! second doing nothing. Instead one task per broker watches when each local follower last heard
//! from a leader (an append or a coalesced heartbeat) and asks the group to start an election
//! (with a pre-vote first) once that is longer ago than its randomized election timeout.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;

use crate::shared::Inner;

/// How often the timers are checked.
const CHECK_EVERY: Duration = Duration::from_millis(100);
/// The shortest wait before a follower stands again after standing (the longest is twice it).
const RETRY_AFTER: Duration = Duration::from_millis(100);
/// How many timeouts a follower whose leader's broker is alive waits without hearing of its
/// own group before it stands anyway.
const LEADER_ALIVE_PATIENCE: u32 = 4;
/// How many checks pass between clean-ups of groups no longer hosted here.
const CHECKS_PER_CLEANUP: u32 = 50;

/// Runs the timers until the broker shuts down.
pub async fn run(inner: Arc<Inner>) {
    let mut stop = inner.shutdown.subscribe();
    let timeout = inner.config.tuning.election_min;
    let mut checks = 0u32;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        // A stopping broker hands its leaderships away; it must not take any back.
        if inner.balancer.is_leaving() {
            continue;
        }
        let partitions = inner.registry.partitions();
        let me = inner.cluster.identity().node_id;
        for (group, replica) in &partitions {
            // The deadline first: it is one map lookup, where the group's metrics (membership
            // above all) cost far more, and most groups are not due.
            if !inner.contacts.due(group, timeout) {
                continue;
            }
            let (state, voter, leader) = {
                let metrics = replica.raft.metrics();
                let m = metrics.borrow_watched();
                (
                    m.state,
                    m.membership_config
                        .membership()
                        .voter_ids()
                        .any(|v| v == me),
                    m.current_leader.filter(|l| *l != me),
                )
            };
            // A replica that lost its state stands once it has caught up (`LogStore::rejoining`).
            if state == ServerState::Leader || !voter || replica.store.rejoining() {
                // Not a follower that could stand: looked at again a timeout from now.
                inner.contacts.touch(group, timeout);
                continue;
            }
            // While the leader's broker keeps sending heartbeats it is alive: a follower that
            // missed its group's own heartbeat (it just restarted, say) must not depose it, and
            // an idle leader would grant the vote, having no quorum acknowledgements to show.
            // Still, a group that hears nothing of its own for several timeouts stands anyway:
            // its leader may have stepped down while its broker lives on.
            if let Some(leader) = leader
                && inner.contacts.leader_heard(leader, timeout)
                && !inner
                    .contacts
                    .overdue(group, timeout * LEADER_ALIVE_PATIENCE)
            {
                continue;
            }
            // A failed attempt (the other followers still count the old leader's lease) is
            // retried soon, not a whole timeout later; a leader's contact pushes it out.
            inner.contacts.touch(group, RETRY_AFTER);
            let _ = replica.raft.trigger().elect(true).await;
        }
        checks += 1;
        if checks.is_multiple_of(CHECKS_PER_CLEANUP) {
            let present: HashSet<String> = partitions.iter().map(|(g, _)| g.to_string()).collect();
            inner.contacts.forget_missing(&present);
        }
    }
}
