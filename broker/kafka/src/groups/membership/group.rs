//! One consumer group's state machine: its members, generation and rebalance, and each
//! request's transition of it. Pure, as [`super`]: time is an argument.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strand_node::Limits;

use super::{Assigned, Join, Joined, Joining, Member, Refused, State, Syncing};
use crate::groups::records::{GroupRecord, MemberRecord};

/// How long the first join of an empty group waits for more members (Kafka's
/// `group.initial.rebalance.delay.ms`, default 3 s), so a group that starts together settles
/// in one rebalance.
const INITIAL_REBALANCE_DELAY: Duration = Duration::from_millis(1_000);

/// One consumer group's membership.
#[derive(Debug)]
pub(crate) struct Group {
    state: State,
    protocol_type: Option<String>,
    protocol: Option<String>,
    generation: i32,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with when they expire.
    pending: HashMap<String, Instant>,
    /// Members that joined in the rebalance under way.
    joined: BTreeSet<String>,
    /// When the rebalance under way completes at the latest, and at the earliest.
    deadline: Instant,
    not_before: Instant,
    /// The latest completed join, per member.
    results: HashMap<String, Joined>,
    /// Bumped when a rebalance starts or completes or a sync delivers assignments: what
    /// waiters of a join or a sync wait for.
    changes: u64,
    /// The leader's assignments are being stored; the group turns Stable once they are.
    storing: bool,
    /// The group changed in a way its stored record must follow (it emptied, a static member
    /// was replaced); the coordinator's sweep writes the record.
    unstored: bool,
}

impl Group {
    pub(super) fn new(now: Instant) -> Group {
        Group {
            state: State::Empty,
            protocol_type: None,
            protocol: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            joined: BTreeSet::new(),
            deadline: now,
            not_before: now,
            results: HashMap::new(),
            changes: 0,
            storing: false,
            unstored: false,
        }
    }

    /// The group as a new coordinator takes it over from its stored record: Stable with the
    /// record's members, generation and assignments (their sessions start now), or Empty.
    pub(super) fn from_record(record: &GroupRecord, now: Instant) -> Group {
        let mut group = Group::new(now);
        group.protocol_type = Some(record.protocol_type.clone());
        group.generation = record.generation;
        if record.members.is_empty() {
            return group;
        }
        group.state = State::Stable;
        group.protocol = record.protocol.clone();
        group.leader = record.leader.clone();
        for m in &record.members {
            let protocols = record
                .protocol
                .iter()
                .map(|p| (p.clone(), m.subscription.clone()))
                .collect();
            group.members.insert(
                m.member_id.clone(),
                Member {
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout: Duration::from_millis(m.session_timeout_ms.max(0) as u64),
                    rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64),
                    protocols,
                    last_seen: now,
                    assignment: m.assignment.clone(),
                },
            );
        }
        group
    }

    /// The record that stores the group (its state time left for the writer to stamp).
    pub(crate) fn record(&self) -> GroupRecord {
        let protocol = self.protocol.as_deref();
        GroupRecord {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_ms: -1,
            members: self
                .members
                .iter()
                .map(|(id, m)| MemberRecord {
                    member_id: id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis().min(i32::MAX as u128)
                        as i32,
                    session_timeout_ms: m.session_timeout.as_millis().min(i32::MAX as u128) as i32,
                    subscription: m.metadata(protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Takes the flag that says the group's record must be written again.
    pub(super) fn take_unstored(&mut self) -> bool {
        std::mem::take(&mut self.unstored)
    }

    /// The group's state.
    pub(crate) fn state(&self) -> State {
        self.state
    }

    /// Its protocol type, once a member joined.
    pub(crate) fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    /// The protocol of the current generation.
    pub(crate) fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The generation: bumped by every completed rebalance.
    #[cfg(test)]
    pub(crate) fn generation(&self) -> i32 {
        self.generation
    }

    /// Member ids handed out and not used yet (some may have expired).
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The members, by id.
    pub(crate) fn members(&self) -> &BTreeMap<String, Member> {
        &self.members
    }

    /// A count that moves whenever waiters of a join or sync must look again.
    pub(crate) fn changes(&self) -> u64 {
        self.changes
    }

    fn bump(&mut self) {
        self.changes += 1;
    }

    /// Holds nothing worth keeping in memory: no members, no ids pending.
    pub(super) fn idle(&self, now: Instant) -> bool {
        self.state == State::Empty
            && self.members.is_empty()
            && self.pending.values().all(|expires| *expires <= now)
    }

    pub(super) fn join(
        &mut self,
        req: Join,
        limits: &Limits,
        now: Instant,
    ) -> Result<Joining, Refused> {
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return Err(Refused::InconsistentProtocol);
        }
        if self.state != State::Empty && self.protocol_type.as_deref() != Some(&req.protocol_type) {
            return Err(Refused::InconsistentProtocol);
        }
        // As in Kafka, a member must speak a protocol every other member speaks.
        let others: Vec<&Member> = self
            .members
            .iter()
            .filter(|(id, _)| **id != req.member_id)
            .map(|(_, m)| m)
            .collect();
        if !others.is_empty()
            && !req.protocols.iter().any(|(name, _)| {
                others
                    .iter()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
        {
            return Err(Refused::InconsistentProtocol);
        }
        let session_timeout = Duration::from_millis(req.session_timeout_ms as u64);
        let rebalance_timeout =
            Duration::from_millis(req.rebalance_timeout_ms.max(req.session_timeout_ms) as u64)
                .min(limits.rebalance_wait_max);
        let mut member_id = req.member_id;
        // A member joining by its own id (not a static member's new incarnation).
        let by_own_id = !member_id.is_empty();
        if member_id.is_empty() {
            let fresh = req.fresh_id;
            if let Some(instance) = &req.instance_id {
                self.replace_static(instance, &fresh, now);
            } else if req.id_required {
                if self.members.len() >= limits.group_members_max {
                    return Err(Refused::GroupFull);
                }
                self.pending.retain(|_, expires| *expires > now);
                if self.pending.len() >= limits.pending_members_max {
                    return Err(Refused::TooManyPending);
                }
                self.pending.insert(fresh.clone(), now + session_timeout);
                return Ok(Joining::IdRequired(fresh));
            }
            member_id = fresh;
        } else if !self.members.contains_key(&member_id)
            && self.pending.remove(&member_id).is_none()
        {
            return Err(Refused::UnknownMember);
        } else if let (Some(instance), Some(member)) =
            (&req.instance_id, self.members.get(&member_id))
            && member.instance_id.as_ref() != Some(instance)
        {
            return Err(Refused::FencedInstance);
        }
        let known = self.members.get(&member_id);
        if known.is_none() && self.members.len() >= limits.group_members_max {
            return Err(Refused::GroupFull);
        }
        let unchanged = known.is_some_and(|m| m.protocols == req.protocols);
        let assignment = known.map(|m| m.assignment.clone()).unwrap_or_default();
        self.members.insert(
            member_id.clone(),
            Member {
                instance_id: req.instance_id,
                client_id: req.client_id,
                client_host: req.client_host,
                session_timeout,
                rebalance_timeout,
                protocols: req.protocols,
                last_seen: now,
                assignment,
            },
        );
        self.protocol_type = Some(req.protocol_type);
        // As in Kafka, the leader of a stable group joining again always starts a rebalance:
        // that is how a change affecting the assignment but not the members' metadata (a
        // subscribed topic's new partitions, which the leader sees in its metadata) reaches
        // the group.
        let leader_rejoins = by_own_id
            && self.state == State::Stable
            && self.leader.as_deref() == Some(member_id.as_str());
        match self.state {
            // A known member rejoining with nothing new gets the current generation back (a
            // consumer that lost the join response, or a static member), unless it is a
            // stable group's leader.
            State::Stable | State::CompletingRebalance
                if unchanged && !leader_rejoins && self.results.contains_key(&member_id) =>
            {
                let joined = self.results[&member_id].clone();
                return Ok(Joining::Now { member_id, joined });
            }
            State::Empty | State::Stable | State::CompletingRebalance => {
                self.prepare_rebalance(now, limits)
            }
            State::PreparingRebalance => {}
        }
        self.joined.insert(member_id.clone());
        self.maybe_complete(now);
        Ok(match self.outcome(&member_id)? {
            Some(joined) => Joining::Now { member_id, joined },
            None => Joining::Waiting {
                member_id,
                until: now + rebalance_timeout,
            },
        })
    }

    /// A static member that restarts (joins with no member id) replaces its old incarnation,
    /// which keeps its place, under the new id.
    fn replace_static(&mut self, instance: &str, fresh: &str, now: Instant) {
        let old = self
            .members
            .iter()
            .find(|(_, m)| m.instance_id.as_deref() == Some(instance))
            .map(|(id, _)| id.clone());
        if let Some((old, mut member)) = old.and_then(|old| self.members.remove_entry(&old)) {
            member.last_seen = now;
            self.members.insert(fresh.to_string(), member);
            if self.leader.as_deref() == Some(old.as_str()) {
                self.leader = Some(fresh.to_string());
            }
            if let Some(result) = self.results.remove(&old) {
                self.results.insert(fresh.to_string(), result);
            }
            // The stored record names the old id, which the new coordinator would not know.
            self.unstored = self.state == State::Stable;
        }
    }

    /// The member's join once the rebalance under way is over; `None` while it is not.
    fn outcome(&self, member_id: &str) -> Result<Option<Joined>, Refused> {
        if self.state == State::PreparingRebalance {
            return Ok(None);
        }
        match self.results.get(member_id) {
            Some(joined) => Ok(Some(joined.clone())),
            None => Err(Refused::UnknownMember),
        }
    }

    /// Starts a rebalance: every member must join again within its rebalance timeout, and
    /// the rebalance lasts at most `rebalance_wait_max`.
    fn prepare_rebalance(&mut self, now: Instant, limits: &Limits) {
        let was_empty = self.state == State::Empty;
        self.state = State::PreparingRebalance;
        self.storing = false;
        self.joined.clear();
        let longest = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        self.deadline = now
            + longest
                .max(INITIAL_REBALANCE_DELAY)
                .min(limits.rebalance_wait_max);
        self.not_before = if was_empty {
            now + INITIAL_REBALANCE_DELAY
        } else {
            now
        };
        // Waiters of a sync learn that it will not come.
        self.bump();
    }

    /// Completes the rebalance if it is due: every member joined (and the initial delay is
    /// over), or the deadline passed.
    fn maybe_complete(&mut self, now: Instant) {
        if self.state != State::PreparingRebalance {
            return;
        }
        let all_joined =
            !self.members.is_empty() && self.members.keys().all(|id| self.joined.contains(id));
        if !(now >= self.deadline || (all_joined && now >= self.not_before)) {
            return;
        }
        self.members.retain(|id, _| self.joined.contains(id));
        self.joined.clear();
        self.generation += 1;
        self.results.clear();
        if self.members.is_empty() {
            self.state = State::Empty;
            self.protocol = None;
            self.leader = None;
            self.unstored = true;
            self.bump();
            return;
        }
        let leader = match &self.leader {
            Some(l) if self.members.contains_key(l) => l.clone(),
            _ => self.members.keys().next().cloned().unwrap_or_default(),
        };
        let protocol = self.vote(&leader);
        let members: Vec<(String, Option<String>, Bytes)> = self
            .members
            .iter()
            .map(|(id, m)| {
                (
                    id.clone(),
                    m.instance_id.clone(),
                    m.metadata(protocol.as_deref()),
                )
            })
            .collect();
        for id in self.members.keys() {
            let joined = Joined {
                generation: self.generation,
                protocol: protocol.clone(),
                leader: leader.clone(),
                members: if *id == leader {
                    members.clone()
                } else {
                    Vec::new()
                },
            };
            self.results.insert(id.clone(), joined);
        }
        self.protocol = protocol;
        self.leader = Some(leader);
        self.state = State::CompletingRebalance;
        self.bump();
    }

    /// The generation's protocol, as Kafka picks it: among the protocols every member speaks,
    /// each member votes for the first in its own order of preference, and the most votes
    /// win; a tie goes to the protocol the leader prefers.
    fn vote(&self, leader: &str) -> Option<String> {
        let candidates: Vec<&String> = self.members[leader]
            .protocols
            .iter()
            .map(|(name, _)| name)
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == *name))
            })
            .collect();
        let mut votes: HashMap<&String, usize> = HashMap::new();
        for member in self.members.values() {
            if let Some((name, _)) = member
                .protocols
                .iter()
                .find(|(n, _)| candidates.contains(&n))
            {
                *votes.entry(name).or_default() += 1;
            }
        }
        let most = votes.values().copied().max().unwrap_or_default();
        candidates
            .into_iter()
            .find(|name| votes.get(name).copied().unwrap_or_default() == most)
            .cloned()
    }

    fn remove_member(&mut self, id: &str, now: Instant, limits: &Limits) {
        if self.members.remove(id).is_none() {
            return;
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
        match self.state {
            State::Stable | State::CompletingRebalance => self.prepare_rebalance(now, limits),
            State::PreparingRebalance => self.maybe_complete(now),
            State::Empty => {}
        }
        if self.members.is_empty() && self.state != State::PreparingRebalance {
            self.state = State::Empty;
        }
    }

    pub(super) fn sync(
        &mut self,
        member_id: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> Result<Syncing, Refused> {
        let member = self
            .members
            .get_mut(member_id)
            .ok_or(Refused::UnknownMember)?;
        member.last_seen = now;
        let until = now + member.rebalance_timeout;
        if generation != self.generation {
            return Err(Refused::IllegalGeneration);
        }
        match self.state {
            State::PreparingRebalance | State::Empty => return Err(Refused::RebalanceInProgress),
            State::Stable => return self.assigned(member_id).map(Syncing::Now),
            State::CompletingRebalance => {}
        }
        if self.leader.as_deref() != Some(member_id) || self.storing {
            return Ok(Syncing::Waiting { until });
        }
        let given: HashMap<String, Bytes> = assignments.into_iter().collect();
        for (id, member) in self.members.iter_mut() {
            member.assignment = given.get(id).cloned().unwrap_or_default();
        }
        // The assignments are handed out once stored, so a new coordinator knows them.
        self.storing = true;
        Ok(Syncing::Store {
            record: self.record(),
            until,
        })
    }

    /// The leader's assignments of `generation` were stored (`ok`) or could not be: the group
    /// turns Stable, or rebalances again as in Kafka. The leader's assignment once Stable.
    pub(super) fn stored(
        &mut self,
        member_id: &str,
        generation: i32,
        ok: bool,
        limits: &Limits,
        now: Instant,
    ) -> Result<Assigned, Refused> {
        if !self.storing
            || self.state != State::CompletingRebalance
            || self.generation != generation
        {
            return Err(Refused::RebalanceInProgress);
        }
        self.storing = false;
        if !ok {
            for member in self.members.values_mut() {
                member.assignment = Bytes::new();
            }
            self.prepare_rebalance(now, limits);
            return Err(Refused::RebalanceInProgress);
        }
        self.state = State::Stable;
        self.bump();
        self.assigned(member_id)
    }

    fn assigned(&self, member_id: &str) -> Result<Assigned, Refused> {
        let member = self.members.get(member_id).ok_or(Refused::UnknownMember)?;
        Ok(Assigned {
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            assignment: member.assignment.clone(),
        })
    }

    /// A waiting join looks again; see [`super::Membership::joined`].
    pub(super) fn joined(
        &mut self,
        member_id: &str,
        now: Instant,
    ) -> Result<Option<Joined>, Refused> {
        self.maybe_complete(now);
        self.outcome(member_id)
    }

    /// A waiting sync looks again; see [`super::Membership::synced`].
    pub(super) fn synced(
        &self,
        member_id: &str,
        generation: i32,
    ) -> Result<Option<Assigned>, Refused> {
        match self.state {
            State::Stable if self.generation == generation => self.assigned(member_id).map(Some),
            State::CompletingRebalance if self.generation == generation => Ok(None),
            _ => Err(Refused::RebalanceInProgress),
        }
    }

    /// Heartbeat; see [`super::Membership::heartbeat`].
    pub(super) fn heartbeat(
        &mut self,
        member_id: &str,
        generation: i32,
        now: Instant,
    ) -> Result<(), Refused> {
        let member = self
            .members
            .get_mut(member_id)
            .ok_or(Refused::UnknownMember)?;
        member.last_seen = now;
        if generation != self.generation {
            return Err(Refused::IllegalGeneration);
        }
        match self.state {
            // As in Kafka, a member may heartbeat between its join and its sync.
            State::Stable | State::CompletingRebalance => Ok(()),
            _ => Err(Refused::RebalanceInProgress),
        }
    }

    /// LeaveGroup of one member; see [`super::Membership::leave`].
    pub(super) fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        limits: &Limits,
        now: Instant,
    ) -> Result<(), Refused> {
        let id = if member_id.is_empty() {
            self.members
                .iter()
                .find(|(_, m)| m.instance_id.is_some() && m.instance_id.as_deref() == instance_id)
                .map(|(id, _)| id.clone())
        } else {
            Some(member_id.to_string())
        };
        match id.filter(|id| self.members.contains_key(id)) {
            Some(id) => {
                self.remove_member(&id, now, limits);
                Ok(())
            }
            None => Err(Refused::UnknownMember),
        }
    }

    /// Whether an OffsetCommit is taken; see [`super::Membership::check_commit`].
    pub(super) fn check_commit(&self, member_id: &str, generation: i32) -> Result<(), Refused> {
        if generation >= 0 {
            if !self.members.contains_key(member_id) {
                return Err(Refused::UnknownMember);
            }
            if generation != self.generation {
                return Err(Refused::IllegalGeneration);
            }
            if self.state == State::CompletingRebalance {
                return Err(Refused::RebalanceInProgress);
            }
        } else if !self.members.is_empty() {
            // Only an empty group takes commits from outside its membership.
            return Err(Refused::UnknownMember);
        }
        Ok(())
    }

    /// Forgets pending ids past their time, removes members whose sessions lapsed (and that
    /// are not waiting in a join), and completes the rebalance if it is due. The members
    /// removed.
    pub(super) fn expire(&mut self, now: Instant, limits: &Limits) -> Vec<String> {
        self.pending.retain(|_, expires| *expires > now);
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(id, m)| {
                now.duration_since(m.last_seen) > m.session_timeout && !self.joined.contains(*id)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            self.remove_member(id, now, limits);
        }
        self.maybe_complete(now);
        expired
    }
}
