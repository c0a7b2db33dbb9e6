//! Election timers of partition groups. openraft would run a timer task per group ticking
//! several times per heartbeat interval; with hundreds of groups that is thousands of wake-ups a
//! second doing nothing. Instead one task per broker watches when each local follower last heard
//! from a leader (an append or a coalesced heartbeat) and asks the group to start an election
//! (with a pre-vote first) once that is longer ago than its randomized election timeout.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;

use crate::broker::Inner;

/// How often the timers are checked.
const CHECK_EVERY: Duration = Duration::from_millis(100);
/// The shortest wait before a follower stands again after standing (the longest is twice it).
const RETRY_AFTER: Duration = Duration::from_millis(100);
/// How many timeouts a follower whose leader's broker is alive waits without hearing of its
/// own group before it stands anyway.
const LEADER_ALIVE_PATIENCE: u32 = 4;
/// How many checks pass between clean-ups of groups no longer hosted here.
const CHECKS_PER_CLEANUP: u32 = 50;

/// The commit index (term, index) last handed to a group, and when.
type Delivered = (Option<(u64, u64)>, Instant);

/// When each group last heard from a leader, and when it may start an election.
#[derive(Default)]
pub struct Contacts {
    deadlines: Mutex<HashMap<String, Instant>>,
    /// Per group: the commit index last handed to it and when.
    delivered: Mutex<HashMap<String, Delivered>>,
    /// Per leader node: when its broker's last heartbeat message arrived.
    leaders: Mutex<HashMap<u64, Instant>>,
}

impl Contacts {
    /// Records that a heartbeat message from the broker of leader node `leader` arrived.
    pub fn leader_alive(&self, leader: u64) {
        let mut leaders = self.leaders.lock().unwrap_or_else(|p| p.into_inner());
        leaders.insert(leader, Instant::now());
    }

    /// Whether the broker of leader node `leader` sent heartbeats within `timeout`.
    fn leader_heard(&self, leader: u64, timeout: Duration) -> bool {
        let leaders = self.leaders.lock().unwrap_or_else(|p| p.into_inner());
        leaders
            .get(&leader)
            .is_some_and(|at| at.elapsed() < timeout)
    }

    /// Records a coalesced heartbeat for `group` (its election deadline moves out by about
    /// `election_timeout`); returns whether the group itself should get it: when the commit
    /// index moved, or when the last one it got is `renew_after` old. openraft's follower lease,
    /// which keeps a live leader's followers from voting for others, lasts the longest election
    /// timeout, so `renew_after` plus a heartbeat interval must stay below that.
    pub fn heard(
        &self,
        group: &str,
        commit: Option<(u64, u64)>,
        election_timeout: Duration,
        renew_after: Duration,
    ) -> bool {
        self.touch(group, election_timeout);
        let now = Instant::now();
        let mut delivered = self.delivered.lock().unwrap_or_else(|p| p.into_inner());
        let due = match delivered.get(group) {
            Some((last_commit, at)) => {
                *last_commit != commit || now.duration_since(*at) >= renew_after
            }
            None => true,
        };
        if due {
            delivered.insert(group.to_string(), (commit, now));
        }
        due
    }

    /// Records contact from a leader: the group's election deadline moves out again.
    pub fn touch(&self, group: &str, timeout: Duration) {
        let deadline = Instant::now() + randomized(group, timeout);
        let mut deadlines = self.deadlines.lock().unwrap_or_else(|p| p.into_inner());
        match deadlines.get_mut(group) {
            Some(d) => *d = deadline,
            None => {
                deadlines.insert(group.to_string(), deadline);
            }
        }
    }

    fn due(&self, group: &str, timeout: Duration) -> bool {
        let now = Instant::now();
        let mut deadlines = self.deadlines.lock().unwrap_or_else(|p| p.into_inner());
        match deadlines.get(group) {
            Some(deadline) => now >= *deadline,
            None => {
                // First seen: a new replica waits a full timeout for a leader to appear.
                deadlines.insert(group.to_string(), now + randomized(group, timeout));
                false
            }
        }
    }

    /// Whether the group's election deadline passed more than `extra` ago.
    fn overdue(&self, group: &str, extra: Duration) -> bool {
        let deadlines = self.deadlines.lock().unwrap_or_else(|p| p.into_inner());
        deadlines
            .get(group)
            .is_some_and(|d| Instant::now() >= *d + extra)
    }

    fn forget_missing(&self, present: &HashSet<String>) {
        let mut deadlines = self.deadlines.lock().unwrap_or_else(|p| p.into_inner());
        deadlines.retain(|g, _| present.contains(g));
        let mut delivered = self.delivered.lock().unwrap_or_else(|p| p.into_inner());
        delivered.retain(|g, _| present.contains(g));
    }
}

/// The election timeout of a group: between `timeout` and one and a half times it (the
/// leader lease, see `tuning.rs`), different per group and per call so replicas of a group
/// rarely stand at once.
fn randomized(group: &str, timeout: Duration) -> Duration {
    use std::hash::{BuildHasher, RandomState};
    let spread = RandomState::new().hash_one(group) % 1000;
    timeout + timeout.mul_f64(spread as f64 / 2000.0)
}

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
        let me = inner.identity.node_id;
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
            if state == ServerState::Leader || !voter {
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
