//! When each local partition replica last heard from its leader, and when it may stand for
//! election: written by the Raft and heartbeat services, read by the election timers
//! (`elections.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

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
    pub(crate) fn leader_heard(&self, leader: u64, timeout: Duration) -> bool {
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

    pub(crate) fn due(&self, group: &str, timeout: Duration) -> bool {
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
    pub(crate) fn overdue(&self, group: &str, extra: Duration) -> bool {
        let deadlines = self.deadlines.lock().unwrap_or_else(|p| p.into_inner());
        deadlines
            .get(group)
            .is_some_and(|d| Instant::now() >= *d + extra)
    }

    pub(crate) fn forget_missing(&self, present: &HashSet<String>) {
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
