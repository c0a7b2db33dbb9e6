//! Kafka's consumer group protocol (KIP-848, `group.protocol=consumer`) as a pure state
//! machine, like the classic core in `membership`: ConsumerGroupHeartbeat and session expiry
//! are functions of the group, the request, the topics the coordinator sees and the time.
//!
//! The coordinator assigns (the `uniform` and `range` assignors of `assignors`). Each group
//! has an epoch, bumped when its members, their subscriptions or the subscribed topics'
//! partitions change; a target assignment is computed for each epoch. Each member moves
//! towards its target by heartbeats, as Kafka's `CurrentAssignmentBuilder` moves it: first it
//! gives up the partitions it must revoke (keeping its epoch), then it takes the partitions
//! of its target that no other member still holds (taking the group's epoch). A partition
//! is never handed to a member while another still owns it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use regex::Regex;
use uuid::Uuid;

use super::assignors;
use super::membership::Refused;

/// Partitions by topic id.
pub(crate) type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// A topic as the coordinator sees it: its id and partition count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TopicView {
    pub(crate) id: Uuid,
    pub(crate) partitions: i32,
}

/// Every topic clients may subscribe to, by name.
pub(crate) type Topics = BTreeMap<String, TopicView>;

/// The coordinator's timing of the protocol (Kafka's `group.consumer.*` settings).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// `group.consumer.heartbeat.interval.ms`.
    pub(crate) heartbeat_interval: Duration,
    /// `group.consumer.session.timeout.ms`.
    pub(crate) session_timeout: Duration,
}

/// The assignor used when no member names one (Kafka's default).
pub(crate) const DEFAULT_ASSIGNOR: &str = "uniform";

/// A ConsumerGroupHeartbeat as the core needs it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Beat {
    pub(crate) member_id: String,
    /// 0 to join, -1 to leave, -2 for a static member leaving for now; else its epoch.
    pub(crate) member_epoch: i32,
    pub(crate) instance_id: Option<String>,
    pub(crate) rack_id: Option<String>,
    /// -1: unchanged.
    pub(crate) rebalance_timeout_ms: i32,
    /// `None`: unchanged.
    pub(crate) subscribed: Option<Vec<String>>,
    /// `None`: unchanged; empty: no regular expression any more.
    pub(crate) regex: Option<String>,
    pub(crate) assignor: Option<String>,
    /// The partitions it owns; `None`: unchanged.
    pub(crate) owned: Option<Assignment>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    /// The id a member joining without one gets (version 0), drawn by the caller.
    pub(crate) fresh_id: String,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Beaten {
    pub(crate) member_id: String,
    pub(crate) member_epoch: i32,
    /// The partitions it may own now, sent when they changed.
    pub(crate) assignment: Option<Assignment>,
}

/// Where a member is on its way to its target assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemberState {
    Stable,
    /// It must give up `revoking` before it goes on.
    UnrevokedPartitions,
    /// Part of its target is still owned by others.
    UnreleasedPartitions,
}

/// A member.
#[derive(Debug, Clone)]
pub(crate) struct ConsumerMember {
    pub(crate) epoch: i32,
    previous_epoch: i32,
    pub(crate) state: MemberState,
    pub(crate) instance_id: Option<String>,
    pub(crate) rack_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    rebalance_timeout: Duration,
    pub(crate) subscribed: Vec<String>,
    pub(crate) regex: Option<String>,
    compiled: Option<Regex>,
    assignor: Option<String>,
    /// What it may own now.
    pub(crate) assigned: Assignment,
    /// What it must give up.
    revoking: Assignment,
    /// When it was asked to give `revoking` up.
    revoking_since: Instant,
    /// What it last said it owns.
    owned: Assignment,
    /// What it was last sent.
    sent: Option<Assignment>,
    last_seen: Instant,
}

impl ConsumerMember {
    fn subscribes_to(&self, topic: &str) -> bool {
        self.subscribed.iter().any(|t| t == topic)
            || self
                .compiled
                .as_ref()
                .is_some_and(|r| !topic.starts_with("__") && r.is_match(topic))
    }
}

/// A consumer group of the KIP-848 protocol.
#[derive(Debug, Clone)]
pub(crate) struct ConsumerGroup {
    epoch: i32,
    assignment_epoch: i32,
    members: BTreeMap<String, ConsumerMember>,
    target: BTreeMap<String, Assignment>,
    assignor: String,
    /// The subscribed topics' ids and partition counts the target was computed from.
    seen: BTreeMap<String, TopicView>,
}

impl Default for ConsumerGroup {
    fn default() -> Self {
        ConsumerGroup {
            epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            assignor: DEFAULT_ASSIGNOR.to_string(),
            seen: BTreeMap::new(),
        }
    }
}

/// The group states Kafka names for this protocol.
pub(crate) fn state_name(group: &ConsumerGroup) -> &'static str {
    if group.members.is_empty() {
        "Empty"
    } else if group.epoch > group.assignment_epoch {
        "Assigning"
    } else if group
        .members
        .values()
        .any(|m| m.epoch != group.assignment_epoch || m.state != MemberState::Stable)
    {
        "Reconciling"
    } else {
        "Stable"
    }
}

impl ConsumerGroup {
    /// The group epoch.
    pub(crate) fn epoch(&self) -> i32 {
        self.epoch
    }

    /// The epoch of the target assignment.
    pub(crate) fn assignment_epoch(&self) -> i32 {
        self.assignment_epoch
    }

    /// The assignor of the target assignment.
    pub(crate) fn assignor(&self) -> &str {
        &self.assignor
    }

    /// The members, by id.
    pub(crate) fn members(&self) -> &BTreeMap<String, ConsumerMember> {
        &self.members
    }

    /// A member's target assignment.
    pub(crate) fn target(&self, member: &str) -> Assignment {
        self.target.get(member).cloned().unwrap_or_default()
    }

    /// The topics its members subscribe to, of those in `topics`; every name a member
    /// lists, whether or not it exists yet, for offsets retention.
    pub(crate) fn subscribed_names(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.subscribed.iter().cloned())
            .collect()
    }

    fn subscribed(&self, topics: &Topics) -> BTreeMap<String, TopicView> {
        topics
            .iter()
            .filter(|(name, _)| self.members.values().any(|m| m.subscribes_to(name)))
            .map(|(name, view)| (name.clone(), *view))
            .collect()
    }

    /// ConsumerGroupHeartbeat.
    pub(crate) fn heartbeat(
        &mut self,
        beat: Beat,
        topics: &Topics,
        members_max: usize,
        now: Instant,
    ) -> Result<Beaten, Refused> {
        if beat.member_epoch < 0 {
            return self.leave(&beat.member_id, beat.member_epoch);
        }
        let member_id = match (beat.member_id.is_empty(), beat.member_epoch) {
            (true, 0) => beat.fresh_id.clone(),
            (true, _) => return Err(Refused::UnknownMember),
            (false, _) => beat.member_id.clone(),
        };
        let compiled = match beat.regex.as_deref() {
            Some("") | None => None,
            Some(pattern) => Some(Regex::new(pattern).map_err(|_| Refused::InvalidRegex)?),
        };
        let assignor = beat.assignor.clone();
        if let Some(name) = &assignor
            && !assignors::known(name)
        {
            return Err(Refused::UnsupportedAssignor);
        }
        if beat.member_epoch == 0 {
            if beat.subscribed.is_none() && beat.regex.is_none() {
                return Err(Refused::InvalidRequest(
                    "a joining member names its subscription",
                ));
            }
            if let Some(instance) = &beat.instance_id
                && self
                    .members
                    .iter()
                    .any(|(id, m)| *id != member_id && m.instance_id.as_ref() == Some(instance))
            {
                return Err(Refused::UnreleasedInstance);
            }
            match self.members.get_mut(&member_id) {
                // A member that was fenced joins again, owning nothing.
                Some(member) => {
                    member.epoch = 0;
                    member.previous_epoch = -1;
                    member.state = MemberState::Stable;
                    member.assigned.clear();
                    member.revoking.clear();
                    member.owned.clear();
                    member.sent = None;
                }
                None => {
                    if self.members.len() >= members_max {
                        return Err(Refused::GroupFull);
                    }
                    self.members.insert(
                        member_id.clone(),
                        ConsumerMember {
                            epoch: 0,
                            previous_epoch: -1,
                            state: MemberState::Stable,
                            instance_id: beat.instance_id.clone(),
                            rack_id: None,
                            client_id: String::new(),
                            client_host: String::new(),
                            rebalance_timeout: Duration::from_secs(300),
                            subscribed: Vec::new(),
                            regex: None,
                            compiled: None,
                            assignor: None,
                            assigned: Assignment::new(),
                            revoking: Assignment::new(),
                            revoking_since: now,
                            owned: Assignment::new(),
                            sent: None,
                            last_seen: now,
                        },
                    );
                    self.epoch += 1;
                }
            }
        } else {
            let member = self.members.get(&member_id).ok_or(Refused::UnknownMember)?;
            let owned_within = beat.owned.as_ref().is_some_and(|owned| {
                owned.iter().all(|(t, ps)| {
                    ps.iter()
                        .all(|p| member.assigned.get(t).is_some_and(|a| a.contains(p)))
                })
            });
            // As in Kafka: a member ahead of the group is fenced; one behind only if it is
            // not the previous epoch with nothing it should not own (a lost response).
            if beat.member_epoch > member.epoch
                || (beat.member_epoch < member.epoch
                    && !(beat.member_epoch == member.previous_epoch && owned_within))
            {
                return Err(Refused::FencedMemberEpoch);
            }
        }
        let Some(member) = self.members.get_mut(&member_id) else {
            return Err(Refused::UnknownMember);
        };
        member.last_seen = now;
        member.client_id = beat.client_id;
        member.client_host = beat.client_host;
        if beat.rack_id.is_some() {
            member.rack_id = beat.rack_id;
        }
        if beat.rebalance_timeout_ms > 0 {
            member.rebalance_timeout = Duration::from_millis(beat.rebalance_timeout_ms as u64);
        }
        let mut changed = false;
        if let Some(mut subscribed) = beat.subscribed {
            subscribed.sort();
            subscribed.dedup();
            if subscribed != member.subscribed {
                member.subscribed = subscribed;
                changed = true;
            }
        }
        if let Some(pattern) = beat.regex {
            let pattern = Some(pattern).filter(|p| !p.is_empty());
            if pattern != member.regex {
                member.regex = pattern;
                member.compiled = compiled;
                changed = true;
            }
        }
        if assignor != member.assignor && assignor.is_some() {
            member.assignor = assignor;
            changed = true;
        }
        if let Some(owned) = beat.owned {
            member.owned = owned;
        }
        if changed {
            self.epoch = self.epoch.max(self.assignment_epoch + 1);
        }
        self.assign_if_due(topics);
        self.reconcile(&member_id, now);
        let member = &self.members[&member_id];
        let send = beat.member_epoch == 0 || member.sent.as_ref() != Some(&member.assigned);
        let assignment = send.then(|| member.assigned.clone());
        let member = self
            .members
            .get_mut(&member_id)
            .ok_or(Refused::UnknownMember)?;
        if send {
            member.sent = Some(member.assigned.clone());
        }
        Ok(Beaten {
            member_id,
            member_epoch: member.epoch,
            assignment,
        })
    }

    fn leave(&mut self, member_id: &str, epoch: i32) -> Result<Beaten, Refused> {
        if self.members.remove(member_id).is_none() {
            return Err(Refused::UnknownMember);
        }
        self.target.remove(member_id);
        self.epoch = self.epoch.max(self.assignment_epoch + 1);
        Ok(Beaten {
            member_id: member_id.to_string(),
            member_epoch: epoch,
            assignment: None,
        })
    }

    /// Computes a new target assignment if the group's epoch moved past the target's or the
    /// subscribed topics changed (partitions added, a topic created or deleted).
    fn assign_if_due(&mut self, topics: &Topics) {
        let subscribed = self.subscribed(topics);
        if subscribed != self.seen {
            self.epoch = self.epoch.max(self.assignment_epoch + 1);
        }
        if self.epoch <= self.assignment_epoch {
            return;
        }
        // The assignor most members ask for; Kafka's default if none does.
        let mut asked: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.assignor {
                *asked.entry(a.as_str()).or_default() += 1;
            }
        }
        let most = asked.values().copied().max().unwrap_or_default();
        self.assignor = asked
            .iter()
            .find(|(_, n)| **n == most)
            .map_or(DEFAULT_ASSIGNOR, |(a, _)| a)
            .to_string();
        let members: BTreeMap<String, BTreeSet<String>> = self
            .members
            .iter()
            .map(|(id, m)| {
                let topics = subscribed
                    .keys()
                    .filter(|t| m.subscribes_to(t))
                    .cloned()
                    .collect();
                (id.clone(), topics)
            })
            .collect();
        self.target = assignors::assign(&self.assignor, &members, &subscribed, &self.target);
        self.assignment_epoch = self.epoch;
        self.seen = subscribed;
    }

    /// Moves a member towards its target, as far as the others let it.
    fn reconcile(&mut self, member_id: &str, now: Instant) {
        let Some(member) = self.members.get(member_id) else {
            return;
        };
        match member.state {
            MemberState::UnrevokedPartitions => {
                let still_owned = member.revoking.iter().any(|(t, ps)| {
                    member
                        .owned
                        .get(t)
                        .is_some_and(|owned| ps.iter().any(|p| owned.contains(p)))
                });
                if still_owned {
                    return;
                }
            }
            MemberState::Stable if member.epoch == self.assignment_epoch => return,
            _ => {}
        }
        let target = self.target(member_id);
        // What every other member owns or is still giving up.
        let mut held: BTreeSet<(Uuid, i32)> = BTreeSet::new();
        for (id, m) in &self.members {
            if id != member_id {
                for (t, ps) in m.assigned.iter().chain(m.revoking.iter()) {
                    held.extend(ps.iter().map(|p| (*t, *p)));
                }
            }
        }
        let member = &self.members[member_id];
        let mut keep = Assignment::new();
        let mut revoke = Assignment::new();
        let mut take = Assignment::new();
        let mut unreleased = false;
        for (t, ps) in &member.assigned {
            for p in ps {
                let wanted = target.get(t).is_some_and(|x| x.contains(p));
                let into = if wanted { &mut keep } else { &mut revoke };
                into.entry(*t).or_default().insert(*p);
            }
        }
        for (t, ps) in &target {
            for p in ps {
                if member.assigned.get(t).is_some_and(|x| x.contains(p)) {
                    continue;
                }
                if held.contains(&(*t, *p)) {
                    unreleased = true;
                } else {
                    take.entry(*t).or_default().insert(*p);
                }
            }
        }
        let epoch = self.assignment_epoch;
        let Some(member) = self.members.get_mut(member_id) else {
            return;
        };
        if !revoke.is_empty() {
            member.state = MemberState::UnrevokedPartitions;
            member.assigned = keep;
            member.revoking = revoke;
            member.revoking_since = now;
            return;
        }
        for (t, ps) in take {
            keep.entry(t).or_default().extend(ps);
        }
        member.assigned = keep;
        member.revoking.clear();
        if member.epoch != epoch {
            member.previous_epoch = member.epoch;
            member.epoch = epoch;
        }
        member.state = if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
    }

    /// Whether an OffsetCommit of `member_id` at `epoch` (-1: from outside the group) is
    /// taken.
    pub(crate) fn check_commit(&self, member_id: &str, epoch: i32) -> Result<(), Refused> {
        if epoch < 0 && member_id.is_empty() {
            return if self.members.is_empty() {
                Ok(())
            } else {
                Err(Refused::UnknownMember)
            };
        }
        let member = self.members.get(member_id).ok_or(Refused::UnknownMember)?;
        if epoch != member.epoch {
            return Err(Refused::StaleMemberEpoch);
        }
        Ok(())
    }

    /// Removes members whose sessions lapsed or that did not give up partitions within their
    /// rebalance timeout; the members removed.
    pub(crate) fn expire(&mut self, timing: &Timing, now: Instant) -> Vec<String> {
        let gone: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| {
                now.duration_since(m.last_seen) > timing.session_timeout
                    || (m.state == MemberState::UnrevokedPartitions
                        && now.duration_since(m.revoking_since) > m.rebalance_timeout)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            let _ = self.leave(id, -1);
        }
        gone
    }

    /// Holds nothing worth keeping in memory.
    pub(crate) fn idle(&self) -> bool {
        self.members.is_empty()
    }
}

#[cfg(test)]
mod tests;
