//! Kafka's classic consumer-group membership protocol as a pure state machine: JoinGroup,
//! SyncGroup, Heartbeat, LeaveGroup and session expiry are functions of the groups, the
//! request, the bounds and the time, which the caller passes in. No I/O, no clock, no tokio:
//! the handlers wait and answer, and wake a group's waiters when its [`Group::changes`] moves.
//!
//! The bounds of `strand_node::Limits` that are membership decisions are taken here:
//! `groups_max`, `group_members_max`, `pending_members_max` and `rebalance_wait_max`.

mod group;

use std::collections::{BTreeSet, HashMap};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use strand_node::Limits;

pub(crate) use group::Group;

use super::consumer::{Beat, Beaten, ConsumerGroup, Timing, Topics};

use super::records::GroupRecord;

/// Kafka's `group.min.session.timeout.ms` and `group.max.session.timeout.ms`.
const SESSION_TIMEOUT_MS: RangeInclusive<i32> = 6_000..=1_800_000;

/// Where a group is in Kafka's classic protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// No members.
    Empty,
    /// Members are joining a new generation.
    PreparingRebalance,
    /// The generation is formed; the leader's assignments are awaited.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
}

impl State {
    /// The name Kafka gives the state in ListGroups and DescribeGroups.
    pub(crate) fn name(self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::PreparingRebalance => "PreparingRebalance",
            State::CompletingRebalance => "CompletingRebalance",
            State::Stable => "Stable",
        }
    }
}

/// Why the coordinator refuses a membership request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    /// The session timeout is outside Kafka's bounds.
    #[error("session timeout outside {SESSION_TIMEOUT_MS:?} ms")]
    InvalidSessionTimeout,
    /// The group already runs another protocol type.
    #[error("the group uses another protocol type")]
    InconsistentProtocol,
    /// The member is not in the group (nor one of its pending ids).
    #[error("unknown member")]
    UnknownMember,
    /// The member id belongs to another instance of a static member.
    #[error("the group instance id belongs to another member")]
    FencedInstance,
    /// The request names a generation other than the group's.
    #[error("illegal generation")]
    IllegalGeneration,
    /// The group is between generations: the member must join again.
    #[error("rebalance in progress")]
    RebalanceInProgress,
    /// The group has members, so it cannot be deleted.
    #[error("the group is not empty")]
    NotEmpty,
    /// A new member would take the group past `group_members_max`.
    #[error("the group has group_members_max members")]
    GroupFull,
    /// The group has handed out `pending_members_max` member ids not used yet.
    #[error("the group has pending_members_max member ids pending")]
    TooManyPending,
    /// A new group would take the coordinator past `groups_max`.
    #[error("the coordinator holds {groups} groups, groups_max")]
    TooManyGroups {
        /// The groups held.
        groups: usize,
    },
    /// The group runs the other protocol (classic, or the consumer protocol of KIP-848).
    #[error("the group runs the other group protocol")]
    WrongGroupType,
    /// A consumer-protocol member's epoch is not the group's view of it: it must give up its
    /// partitions and join again.
    #[error("fenced member epoch")]
    FencedMemberEpoch,
    /// An offset commit names a member epoch other than the member's.
    #[error("stale member epoch")]
    StaleMemberEpoch,
    /// The assignor named is not one the coordinator has.
    #[error("unsupported assignor")]
    UnsupportedAssignor,
    /// The subscription's regular expression does not compile.
    #[error("invalid regular expression")]
    InvalidRegex,
    /// Another live member holds the static member's instance id.
    #[error("the instance id is held by another member")]
    UnreleasedInstance,
    /// The request lacks what it must carry.
    #[error("{0}")]
    InvalidRequest(&'static str),
}

impl Refused {
    /// The Kafka error of the refusal: the one mapping.
    pub(crate) fn kafka(&self) -> ResponseError {
        match self {
            Refused::InvalidSessionTimeout => ResponseError::InvalidSessionTimeout,
            Refused::InconsistentProtocol => ResponseError::InconsistentGroupProtocol,
            Refused::UnknownMember => ResponseError::UnknownMemberId,
            Refused::FencedInstance => ResponseError::FencedInstanceId,
            Refused::IllegalGeneration => ResponseError::IllegalGeneration,
            Refused::RebalanceInProgress => ResponseError::RebalanceInProgress,
            Refused::NotEmpty => ResponseError::NonEmptyGroup,
            Refused::GroupFull | Refused::TooManyPending => ResponseError::GroupMaxSizeReached,
            // Retriable: the client looks the coordinator up again and retries later.
            Refused::TooManyGroups { .. } => ResponseError::CoordinatorNotAvailable,
            Refused::WrongGroupType => ResponseError::GroupIdNotFound,
            Refused::FencedMemberEpoch => ResponseError::FencedMemberEpoch,
            Refused::StaleMemberEpoch => ResponseError::StaleMemberEpoch,
            Refused::UnsupportedAssignor => ResponseError::UnsupportedAssignor,
            Refused::InvalidRegex => ResponseError::InvalidRegularExpression,
            Refused::UnreleasedInstance => ResponseError::UnreleasedInstanceId,
            Refused::InvalidRequest(_) => ResponseError::InvalidRequest,
        }
    }
}

/// A group member.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    /// The static member's `group.instance.id`.
    pub(crate) instance_id: Option<String>,
    /// The client id of its latest join.
    pub(crate) client_id: String,
    /// Where it joined from, as Kafka shows it (`/ip`).
    pub(crate) client_host: String,
    session_timeout: Duration,
    /// Its rebalance timeout, capped at `rebalance_wait_max`.
    rebalance_timeout: Duration,
    protocols: Vec<(String, Bytes)>,
    last_seen: Instant,
    /// What the leader assigned it.
    pub(crate) assignment: Bytes,
}

impl Member {
    /// Its metadata for `protocol`, empty if it does not speak it.
    pub(crate) fn metadata(&self, protocol: Option<&str>) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| Some(n.as_str()) == protocol)
            .map(|(_, meta)| meta.clone())
            .unwrap_or_default()
    }
}

/// What a member gets back from the join it waited on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Joined {
    /// The generation formed.
    pub(crate) generation: i32,
    /// The protocol every member speaks.
    pub(crate) protocol: Option<String>,
    /// The leader's member id.
    pub(crate) leader: String,
    /// For the leader: every member with its instance id and metadata; empty for the others.
    pub(crate) members: Vec<(String, Option<String>, Bytes)>,
}

/// A member's assignment, as SyncGroup answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assigned {
    /// The group's protocol type.
    pub(crate) protocol_type: Option<String>,
    /// The group's protocol.
    pub(crate) protocol: Option<String>,
    /// The member's assignment.
    pub(crate) assignment: Bytes,
}

/// A JoinGroup as the membership core needs it.
#[derive(Debug, Clone)]
pub(crate) struct Join {
    /// The member id the client sent ("" for a new member).
    pub(crate) member_id: String,
    /// The static member's `group.instance.id`.
    pub(crate) instance_id: Option<String>,
    /// The protocol type (`consumer`).
    pub(crate) protocol_type: String,
    /// The protocols it speaks, by preference, with its metadata for each.
    pub(crate) protocols: Vec<(String, Bytes)>,
    /// Its session timeout, in ms as sent.
    pub(crate) session_timeout_ms: i32,
    /// Its rebalance timeout, in ms as sent (-1 before JoinGroup v1).
    pub(crate) rebalance_timeout_ms: i32,
    /// Its client id.
    pub(crate) client_id: String,
    /// Where it connects from.
    pub(crate) client_host: String,
    /// Whether a new member is handed an id to join with (MEMBER_ID_REQUIRED, JoinGroup v4
    /// and later) rather than joining at once.
    pub(crate) id_required: bool,
    /// The id a new member gets: drawn by the caller, so the core stays deterministic.
    pub(crate) fresh_id: String,
}

/// Where a JoinGroup stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Joining {
    /// MEMBER_ID_REQUIRED: join again with this id.
    IdRequired(String),
    /// Answered now.
    Now {
        /// The member's id.
        member_id: String,
        /// The generation it is in.
        joined: Joined,
    },
    /// In the rebalance: ask [`Membership::joined`] when the group changes, until `until`.
    Waiting {
        /// The member's id.
        member_id: String,
        /// The longest it waits: its rebalance timeout, at most `rebalance_wait_max`.
        until: Instant,
    },
}

/// Where a SyncGroup stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Syncing {
    /// The assignment, now.
    Now(Assigned),
    /// The leader's assignments are awaited: ask [`Membership::synced`] when the group
    /// changes, until `until` (the member's rebalance timeout, at most `rebalance_wait_max`).
    Waiting {
        /// The longest it waits.
        until: Instant,
    },
    /// The leader handed in the assignments: store `record`, then report with
    /// [`Membership::stored`], which hands them out.
    Store {
        /// The group with its new assignments.
        record: GroupRecord,
        /// The longest the leader's sync waits.
        until: Instant,
    },
}

/// Every group a coordinator holds in memory: classic groups and consumer-protocol groups
/// (KIP-848), which share one namespace of group ids.
#[derive(Debug, Default)]
pub(crate) struct Membership {
    groups: HashMap<String, Group>,
    consumer: HashMap<String, ConsumerGroup>,
}

impl Membership {
    /// A group, if held.
    pub(crate) fn group(&self, id: &str) -> Option<&Group> {
        self.groups.get(id)
    }

    /// Every group held.
    pub(crate) fn groups(&self) -> impl Iterator<Item = (&String, &Group)> {
        self.groups.iter()
    }

    fn get_mut(&mut self, id: &str) -> Result<&mut Group, Refused> {
        self.groups.get_mut(id).ok_or(Refused::UnknownMember)
    }

    /// A consumer-protocol group, if held.
    pub(crate) fn consumer_group(&self, id: &str) -> Option<&ConsumerGroup> {
        self.consumer.get(id)
    }

    /// Every consumer-protocol group held.
    pub(crate) fn consumer_groups(&self) -> impl Iterator<Item = (&String, &ConsumerGroup)> {
        self.consumer.iter()
    }

    /// Makes room for a new group unless `groups_max` are held and none is idle.
    fn room_for_one_more(&mut self, limits: &Limits, now: Instant) -> Result<(), Refused> {
        let held = self.groups.len() + self.consumer.len();
        if held < limits.groups_max {
            return Ok(());
        }
        // Groups nobody is in are forgotten first: they hold nothing but a generation.
        self.groups.retain(|_, g| !g.idle(now));
        self.consumer.retain(|_, g| !g.idle());
        let held = self.groups.len() + self.consumer.len();
        if held >= limits.groups_max {
            return Err(Refused::TooManyGroups { groups: held });
        }
        Ok(())
    }

    /// ConsumerGroupHeartbeat (KIP-848). A new group is created as JoinGroup creates one; a
    /// classic group with members is refused as Kafka refuses it, an empty one replaced.
    pub(crate) fn consumer_heartbeat(
        &mut self,
        group_id: &str,
        beat: Beat,
        topics: &Topics,
        limits: &Limits,
        now: Instant,
    ) -> Result<Beaten, Refused> {
        if let Some(classic) = self.groups.get(group_id) {
            if !classic.members().is_empty() {
                return Err(Refused::WrongGroupType);
            }
            self.groups.remove(group_id);
        }
        if !self.consumer.contains_key(group_id) {
            if beat.member_epoch != 0 {
                return Err(Refused::UnknownMember);
            }
            self.room_for_one_more(limits, now)?;
        }
        self.consumer
            .entry(group_id.to_string())
            .or_default()
            .heartbeat(beat, topics, limits.group_members_max, now)
    }

    /// JoinGroup. A new group is created unless `groups_max` are held and none is idle.
    pub(crate) fn join(
        &mut self,
        group_id: &str,
        req: Join,
        limits: &Limits,
        now: Instant,
    ) -> Result<Joining, Refused> {
        if !SESSION_TIMEOUT_MS.contains(&req.session_timeout_ms) {
            return Err(Refused::InvalidSessionTimeout);
        }
        if let Some(consumer) = self.consumer.get(group_id) {
            if !consumer.idle() {
                return Err(Refused::InconsistentProtocol);
            }
            self.consumer.remove(group_id);
        }
        if !self.groups.contains_key(group_id) {
            self.room_for_one_more(limits, now)?;
        }
        self.groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(now))
            .join(req, limits, now)
    }

    /// A waiting JoinGroup looks again: the rebalance completes here if it is due, and the
    /// member's generation is returned once it has; `None` while the rebalance goes on.
    pub(crate) fn joined(
        &mut self,
        group_id: &str,
        member_id: &str,
        now: Instant,
    ) -> Result<Option<Joined>, Refused> {
        self.get_mut(group_id)?.joined(member_id, now)
    }

    /// SyncGroup: the leader hands in `assignments`; the others wait for theirs.
    pub(crate) fn sync(
        &mut self,
        group_id: &str,
        member_id: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> Result<Syncing, Refused> {
        self.get_mut(group_id)?
            .sync(member_id, generation, assignments, now)
    }

    /// The leader's assignments were stored, or could not be; see [`Syncing::Store`].
    pub(crate) fn stored(
        &mut self,
        group_id: &str,
        member_id: &str,
        generation: i32,
        ok: bool,
        limits: &Limits,
        now: Instant,
    ) -> Result<Assigned, Refused> {
        self.get_mut(group_id)?
            .stored(member_id, generation, ok, limits, now)
    }

    /// A new coordinator takes over the groups of a `__consumer_offsets` partition: those
    /// `owned` it held before are forgotten (their members join again, as in Kafka) and
    /// those with a stored record are taken from it.
    pub(crate) fn restore<'a>(
        &mut self,
        owned: impl Fn(&str) -> bool,
        records: impl IntoIterator<Item = (&'a String, &'a GroupRecord)>,
        now: Instant,
    ) {
        self.groups.retain(|id, _| !owned(id));
        // Consumer-protocol groups are not stored yet: their members join again.
        self.consumer.retain(|id, _| !owned(id));
        for (id, record) in records {
            self.groups
                .insert(id.clone(), Group::from_record(record, now));
        }
    }

    /// The groups whose records must be written again, with the records.
    pub(crate) fn take_unstored(&mut self) -> Vec<(String, GroupRecord)> {
        self.groups
            .iter_mut()
            .filter_map(|(id, g)| g.take_unstored().then(|| (id.clone(), g.record())))
            .collect()
    }

    /// Forgets a group (its offsets expired and it is empty).
    pub(crate) fn forget(&mut self, group_id: &str) {
        if self
            .groups
            .get(group_id)
            .is_some_and(|g| g.members().is_empty())
        {
            self.groups.remove(group_id);
        }
    }

    /// A waiting SyncGroup looks again: the assignment once the leader has handed it in;
    /// `None` while it has not.
    pub(crate) fn synced(
        &self,
        group_id: &str,
        member_id: &str,
        generation: i32,
    ) -> Result<Option<Assigned>, Refused> {
        let group = self.groups.get(group_id).ok_or(Refused::UnknownMember)?;
        group.synced(member_id, generation)
    }

    /// Heartbeat: keeps the member's session, and tells it to join again when the group is
    /// rebalancing.
    pub(crate) fn heartbeat(
        &mut self,
        group_id: &str,
        member_id: &str,
        generation: i32,
        now: Instant,
    ) -> Result<(), Refused> {
        self.get_mut(group_id)?
            .heartbeat(member_id, generation, now)
    }

    /// LeaveGroup of one member, by id, or by instance id alone for a static member (an empty
    /// `member_id`); the others rebalance at once.
    pub(crate) fn leave(
        &mut self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        limits: &Limits,
        now: Instant,
    ) -> Result<(), Refused> {
        self.get_mut(group_id)?
            .leave(member_id, instance_id, limits, now)
    }

    /// Whether an OffsetCommit of `member_id` in `generation` (-1: from outside the group)
    /// is taken.
    pub(crate) fn check_commit(
        &self,
        group_id: &str,
        member_id: &str,
        generation: i32,
    ) -> Result<(), Refused> {
        if let Some(consumer) = self.consumer.get(group_id) {
            return consumer.check_commit(member_id, generation);
        }
        match self.groups.get(group_id) {
            Some(group) => group.check_commit(member_id, generation),
            None if generation >= 0 => Err(Refused::UnknownMember),
            None => Ok(()),
        }
    }

    /// DeleteGroups: forgets the group if it has no members; whether it was held.
    pub(crate) fn delete(&mut self, group_id: &str) -> Result<bool, Refused> {
        if let Some(consumer) = self.consumer.get(group_id) {
            if !consumer.idle() {
                return Err(Refused::NotEmpty);
            }
            return Ok(self.consumer.remove(group_id).is_some());
        }
        match self.groups.get(group_id) {
            Some(group) if !group.members().is_empty() => Err(Refused::NotEmpty),
            Some(_) => Ok(self.groups.remove(group_id).is_some()),
            None => Ok(false),
        }
    }

    /// The sweep: expires pending ids and lapsed sessions and completes the rebalances that
    /// are due. The members removed, as (group, member).
    pub(crate) fn expire(
        &mut self,
        limits: &Limits,
        timing: &Timing,
        now: Instant,
    ) -> Vec<(String, String)> {
        let mut expired = Vec::new();
        for (id, group) in self.groups.iter_mut() {
            for member in group.expire(now, limits) {
                expired.push((id.clone(), member));
            }
        }
        for (id, group) in self.consumer.iter_mut() {
            for member in group.expire(timing, now) {
                expired.push((id.clone(), member));
            }
        }
        expired
    }

    /// For offsets retention: `None` if the group has no members; otherwise the topics its
    /// members subscribe to, or `None` inside when they are not known (not a `consumer`
    /// protocol type, or a subscription that does not decode).
    pub(crate) fn live_topics(&self, group_id: &str) -> Option<Option<BTreeSet<String>>> {
        if let Some(consumer) = self.consumer.get(group_id) {
            return (!consumer.idle()).then(|| Some(consumer.subscribed_names()));
        }
        let group = self
            .groups
            .get(group_id)
            .filter(|g| !g.members().is_empty())?;
        if group.protocol_type() != Some("consumer") {
            return Some(None);
        }
        let protocol = group.protocol();
        Some(
            group
                .members()
                .values()
                .map(|m| super::records::subscribed_topics(&m.metadata(protocol)))
                .try_fold(BTreeSet::new(), |mut all, topics| {
                    all.extend(topics?);
                    Some(all)
                }),
        )
    }
}

#[cfg(test)]
mod tests;
