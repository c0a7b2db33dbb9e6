//! Consumer groups: the coordinator, Kafka's classic membership protocol, and committed
//! offsets kept in the replicated, compacted `__consumer_offsets` topic.
//!
//! A group's coordinator is the leader of partition `hash(group) % partitions` of
//! `__consumer_offsets`. Membership lives in the coordinator's memory, as in Kafka: after a
//! coordinator failover members find the new one and join again. Offsets are records in that
//! partition, written through Raft like any produce, so they survive the failover; a new
//! coordinator rebuilds its cache from the partition once every earlier entry is committed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use strand_node::{Appended, PartitionReplica, Writer, now_ms};

use crate::context::Context;
use crate::errors::commit_error_code;
use crate::{admin, metadata};

/// The topic that holds committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Its partition count (Kafka's `offsets.topic.num.partitions` is 50; fewer partitions keep an
/// idle cluster's cost down, and each holds many groups).
const OFFSETS_PARTITIONS: u32 = 8;
/// Kafka's `group.min.session.timeout.ms` and `group.max.session.timeout.ms`.
const SESSION_TIMEOUT_MS: std::ops::RangeInclusive<i32> = 6_000..=1_800_000;
/// How long the first join of an empty group waits for more members (Kafka's
/// `group.initial.rebalance.delay.ms`, default 3 s), so a group that starts together settles
/// in one rebalance.
const INITIAL_REBALANCE_DELAY: Duration = Duration::from_millis(1_000);
/// Kafka's `offset.metadata.max.bytes`.
const OFFSET_METADATA_MAX: usize = 4096;

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Java's `String.hashCode`, which Kafka uses to pick a group's partition.
fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The `__consumer_offsets` partition of a group.
fn partition_of(group: &str, partitions: usize) -> u32 {
    java_hash(group).unsigned_abs() % partitions.max(1) as u32
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::PreparingRebalance => "PreparingRebalance",
            State::CompletingRebalance => "CompletingRebalance",
            State::Stable => "Stable",
        }
    }
}

#[derive(Debug, Clone)]
struct Member {
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Bytes)>,
    last_seen: Instant,
    assignment: Bytes,
}

/// What a member gets back from the join it waited on.
#[derive(Debug, Clone)]
struct Joined {
    generation: i32,
    protocol: Option<String>,
    leader: String,
    members: Vec<(String, Option<String>, Bytes)>,
}

#[derive(Debug)]
struct Group {
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
    /// Bumped when a join completes or a sync delivers assignments.
    changed: watch::Sender<u64>,
}

impl Group {
    fn new() -> Group {
        let now = Instant::now();
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
            changed: watch::channel(0).0,
        }
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    /// Starts a rebalance: every member must join again within its rebalance timeout.
    fn prepare_rebalance(&mut self, now: Instant) {
        let was_empty = self.state == State::Empty;
        self.state = State::PreparingRebalance;
        self.joined.clear();
        let longest = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        self.deadline = now + longest.max(INITIAL_REBALANCE_DELAY);
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
            self.bump();
            return;
        }
        let leader = match &self.leader {
            Some(l) if self.members.contains_key(l) => l.clone(),
            _ => self.members.keys().next().cloned().unwrap_or_default(),
        };
        // The leader's first protocol that every member speaks.
        let protocol = self.members[&leader]
            .protocols
            .iter()
            .map(|(name, _)| name.clone())
            .find(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            });
        let members: Vec<(String, Option<String>, Bytes)> = self
            .members
            .iter()
            .map(|(id, m)| {
                let metadata = m
                    .protocols
                    .iter()
                    .find(|(n, _)| Some(n) == protocol.as_ref())
                    .map(|(_, meta)| meta.clone())
                    .unwrap_or_default();
                (id.clone(), m.instance_id.clone(), metadata)
            })
            .collect();
        for id in self.members.keys() {
            self.results.insert(
                id.clone(),
                Joined {
                    generation: self.generation,
                    protocol: protocol.clone(),
                    leader: leader.clone(),
                    members: if *id == leader {
                        members.clone()
                    } else {
                        Vec::new()
                    },
                },
            );
        }
        self.protocol = protocol;
        self.leader = Some(leader);
        self.state = State::CompletingRebalance;
        self.bump();
    }

    fn remove_member(&mut self, id: &str, now: Instant) {
        if self.members.remove(id).is_none() {
            return;
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
        match self.state {
            State::Stable | State::CompletingRebalance => self.prepare_rebalance(now),
            State::PreparingRebalance => self.maybe_complete(now),
            State::Empty => {}
        }
        if self.members.is_empty() && self.state != State::PreparingRebalance {
            self.state = State::Empty;
        }
    }
}

/// A committed offset as stored in `__consumer_offsets`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Committed {
    offset: i64,
    leader_epoch: i32,
    metadata: String,
    commit_ms: i64,
}

/// One `__consumer_offsets` partition's offsets, as loaded by its current leader.
struct OffsetCache {
    term: i32,
    groups: HashMap<String, BTreeMap<(String, i32), Committed>>,
}

/// The coordinator's state for every group this broker coordinates.
#[derive(Default)]
pub struct Groups {
    groups: Mutex<HashMap<String, Group>>,
    offsets: Mutex<HashMap<u32, OffsetCache>>,
}

impl Groups {
    /// The groups and their members.
    fn members(&self) -> std::sync::MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The offsets of every `__consumer_offsets` partition led here.
    fn offsets(&self) -> std::sync::MutexGuard<'_, HashMap<u32, OffsetCache>> {
        self.offsets.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Expires members whose sessions lapsed and completes rebalances that are due.
pub async fn run(ctx: Context) {
    let mut shutdown = ctx.handles().shutdown.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = shutdown.changed() => return,
        }
        let now = Instant::now();
        let mut groups = ctx.shared.groups.members();
        for group in groups.values_mut() {
            group.pending.retain(|_, expires| *expires > now);
            let expired: Vec<String> = group
                .members
                .iter()
                .filter(|(id, m)| {
                    now.duration_since(m.last_seen) > m.session_timeout
                        && !group.joined.contains(*id)
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in expired {
                tracing::info!(member = %id, "consumer group member's session expired");
                group.remove_member(&id, now);
            }
            group.maybe_complete(now);
        }
    }
}

/// The coordinator check: the offsets partition of `group`, led here.
fn coordinator(
    ctx: &Context,
    group: &str,
) -> Result<(Arc<PartitionReplica>, i32, u32), ResponseError> {
    let state = ctx.state();
    let Some(topic) = state.topic_by_name(OFFSETS_TOPIC) else {
        return Err(ResponseError::CoordinatorNotAvailable);
    };
    let partition = partition_of(group, topic.partitions.len());
    match ctx.leader_replica(OFFSETS_TOPIC, partition as i32) {
        Ok((replica, term)) => Ok((replica, term, partition)),
        Err(ResponseError::NotLeaderOrFollower) => Err(ResponseError::NotCoordinator),
        Err(e) => Err(e),
    }
}

/// Creates `__consumer_offsets` if it does not exist yet.
async fn ensure_offsets_topic(ctx: &Context) -> Result<(), ResponseError> {
    if ctx.state().topic_by_name(OFFSETS_TOPIC).is_some() {
        return Ok(());
    }
    let config = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
    match admin::create_topic(ctx, OFFSETS_TOPIC, Some(OFFSETS_PARTITIONS), None, config).await {
        Ok(()) | Err((ResponseError::TopicAlreadyExists, _)) => Ok(()),
        Err((code, message)) => {
            tracing::warn!(?code, %message, "cannot create {OFFSETS_TOPIC}");
            Err(ResponseError::CoordinatorNotAvailable)
        }
    }
}

/// FindCoordinator: the broker leading the group's offsets partition.
pub async fn find_coordinator(
    ctx: Context,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let keys: Vec<String> = if version >= 4 {
        req.coordinator_keys.iter().map(|k| k.to_string()).collect()
    } else {
        vec![req.key.to_string()]
    };
    let mut found = Vec::with_capacity(keys.len());
    for key in &keys {
        found.push(if req.key_type != 0 {
            Err((
                ResponseError::CoordinatorNotAvailable,
                "transactions are not supported".to_string(),
            ))
        } else {
            locate(&ctx, key).await
        });
    }
    if version >= 4 {
        let coordinators = keys
            .into_iter()
            .zip(found)
            .map(|(key, found)| {
                let base = find_coordinator_response::Coordinator::default().with_key(text(key));
                match found {
                    Ok((id, host, port)) => base
                        .with_node_id(BrokerId(id))
                        .with_host(text(host))
                        .with_port(port),
                    Err((code, message)) => base
                        .with_node_id(BrokerId(-1))
                        .with_error_code(code.code())
                        .with_error_message(Some(text(message))),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match found.into_iter().next() {
        Some(Ok((id, host, port))) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(id))
            .with_host(text(host))
            .with_port(port),
        Some(Err((code, message))) => {
            let response = FindCoordinatorResponse::default()
                .with_node_id(BrokerId(-1))
                .with_error_code(code.code());
            if version >= 1 {
                response.with_error_message(Some(text(message)))
            } else {
                response
            }
        }
        None => FindCoordinatorResponse::default().with_node_id(BrokerId(-1)),
    }
}

async fn locate(ctx: &Context, group: &str) -> Result<(i32, String, i32), (ResponseError, String)> {
    ensure_offsets_topic(ctx)
        .await
        .map_err(|e| (e, format!("{OFFSETS_TOPIC} is not available yet")))?;
    let state = ctx.state();
    let topic = state.topic_by_name(OFFSETS_TOPIC).ok_or((
        ResponseError::CoordinatorNotAvailable,
        format!("{OFFSETS_TOPIC} is not available yet"),
    ))?;
    let partition = partition_of(group, topic.partitions.len());
    let leader = ctx.leadership(topic.id, partition).leader;
    let broker = leader.and_then(|b| state.broker(b)).ok_or((
        ResponseError::CoordinatorNotAvailable,
        format!("{OFFSETS_TOPIC} partition {partition} has no leader yet"),
    ))?;
    let (host, port) = metadata::host_port(&broker.kafka_addr);
    Ok((broker.id.0 as i32, host, port))
}

/// JoinGroup.
pub async fn join_group(
    ctx: Context,
    req: JoinGroupRequest,
    version: i16,
    client_id: String,
) -> JoinGroupResponse {
    let failed = |e: ResponseError, member: &str| {
        JoinGroupResponse::default()
            .with_error_code(e.code())
            .with_generation_id(-1)
            .with_member_id(text(member))
    };
    let group_id = req.group_id.0.to_string();
    if group_id.is_empty() {
        return failed(ResponseError::InvalidGroupId, "");
    }
    if let Err(e) = coordinator(&ctx, &group_id) {
        return failed(e, "");
    }
    if !SESSION_TIMEOUT_MS.contains(&req.session_timeout_ms) {
        return failed(ResponseError::InvalidSessionTimeout, "");
    }
    let protocol_type = req.protocol_type.to_string();
    let instance_id = req.group_instance_id.as_ref().map(|s| s.to_string());
    let now = Instant::now();
    let (member_id, mut changed, seen) = {
        let mut groups = ctx.shared.groups.members();
        let group = groups.entry(group_id.clone()).or_insert_with(Group::new);
        if group.state != State::Empty
            && group.protocol_type.as_deref() != Some(protocol_type.as_str())
        {
            return failed(ResponseError::InconsistentGroupProtocol, &req.member_id);
        }
        let mut member_id = req.member_id.to_string();
        if member_id.is_empty() {
            let fresh = format!(
                "{}-{}",
                instance_id.as_deref().unwrap_or("member"),
                uuid::Uuid::new_v4()
            );
            if let Some(instance) = &instance_id {
                // A static member that restarts replaces its old incarnation.
                let old = group
                    .members
                    .iter()
                    .find(|(_, m)| m.instance_id.as_ref() == Some(instance))
                    .map(|(id, _)| id.clone());
                if let Some((old, mut member)) =
                    old.and_then(|old| group.members.remove_entry(&old))
                {
                    member.last_seen = now;
                    group.members.insert(fresh.clone(), member);
                    if group.leader.as_deref() == Some(old.as_str()) {
                        group.leader = Some(fresh.clone());
                    }
                    if let Some(result) = group.results.remove(&old) {
                        group.results.insert(fresh.clone(), result);
                    }
                }
            } else if version >= 4 {
                let session = Duration::from_millis(req.session_timeout_ms as u64);
                group.pending.insert(fresh.clone(), now + session);
                return failed(ResponseError::MemberIdRequired, &fresh);
            }
            member_id = fresh;
        } else if !group.members.contains_key(&member_id)
            && group.pending.remove(&member_id).is_none()
        {
            return failed(ResponseError::UnknownMemberId, &member_id);
        } else if let (Some(instance), Some(member)) = (&instance_id, group.members.get(&member_id))
            && member.instance_id.as_ref() != Some(instance)
        {
            return failed(ResponseError::FencedInstanceId, &member_id);
        }
        let protocols: Vec<(String, Bytes)> = req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect();
        let unchanged = group
            .members
            .get(&member_id)
            .is_some_and(|m| m.protocols == protocols);
        let assignment = group
            .members
            .get(&member_id)
            .map(|m| m.assignment.clone())
            .unwrap_or_default();
        group.members.insert(
            member_id.clone(),
            Member {
                instance_id: instance_id.clone(),
                client_id: client_id.clone(),
                client_host: format!("/{}", ctx.peer.ip()),
                session_timeout: Duration::from_millis(req.session_timeout_ms as u64),
                rebalance_timeout: Duration::from_millis(
                    req.rebalance_timeout_ms.max(req.session_timeout_ms) as u64,
                ),
                protocols,
                last_seen: now,
                assignment,
            },
        );
        group.protocol_type = Some(protocol_type.clone());
        match group.state {
            // A known member rejoining a stable group with nothing new gets the current
            // generation back (a consumer that lost the join response, or a static member).
            State::Stable | State::CompletingRebalance
                if unchanged && group.results.contains_key(&member_id) =>
            {
                let result = group.results[&member_id].clone();
                return joined(&member_id, &protocol_type, result, version);
            }
            State::Empty | State::Stable | State::CompletingRebalance => {
                group.prepare_rebalance(now)
            }
            State::PreparingRebalance => {}
        }
        group.joined.insert(member_id.clone());
        group.maybe_complete(now);
        let changed = group.changed.subscribe();
        let seen = *changed.borrow();
        (member_id, changed, seen)
    };
    let wait = Duration::from_millis(req.rebalance_timeout_ms.max(req.session_timeout_ms) as u64)
        + INITIAL_REBALANCE_DELAY;
    let deadline = tokio::time::Instant::now() + wait;
    let _ = seen;
    loop {
        {
            let groups = ctx.shared.groups.members();
            let Some(group) = groups.get(&group_id) else {
                return failed(ResponseError::UnknownMemberId, &member_id);
            };
            if group.state != State::PreparingRebalance {
                return match group.results.get(&member_id) {
                    Some(result) => joined(&member_id, &protocol_type, result.clone(), version),
                    None => failed(ResponseError::UnknownMemberId, &member_id),
                };
            }
        }
        if tokio::time::timeout_at(deadline, changed.changed())
            .await
            .is_err()
        {
            return failed(ResponseError::RebalanceInProgress, &member_id);
        }
    }
}

fn joined(member_id: &str, protocol_type: &str, result: Joined, version: i16) -> JoinGroupResponse {
    let members = result
        .members
        .into_iter()
        .map(|(id, instance, metadata)| {
            join_group_response::JoinGroupResponseMember::default()
                .with_member_id(text(id))
                .with_group_instance_id(if version >= 5 {
                    instance.map(text)
                } else {
                    None
                })
                .with_metadata(metadata)
        })
        .collect();
    JoinGroupResponse::default()
        .with_generation_id(result.generation)
        .with_protocol_type(Some(text(protocol_type)))
        .with_protocol_name(result.protocol.map(text))
        .with_leader(text(result.leader))
        .with_member_id(text(member_id))
        .with_members(members)
}

/// SyncGroup: the leader hands in assignments; every member waits for its own.
pub async fn sync_group(ctx: Context, req: SyncGroupRequest, _version: i16) -> SyncGroupResponse {
    let failed = |e: ResponseError| SyncGroupResponse::default().with_error_code(e.code());
    let group_id = req.group_id.0.to_string();
    if let Err(e) = coordinator(&ctx, &group_id) {
        return failed(e);
    }
    let member_id = req.member_id.to_string();
    let mut changed = {
        let mut groups = ctx.shared.groups.members();
        let Some(group) = groups.get_mut(&group_id) else {
            return failed(ResponseError::UnknownMemberId);
        };
        let Some(member) = group.members.get_mut(&member_id) else {
            return failed(ResponseError::UnknownMemberId);
        };
        member.last_seen = Instant::now();
        if req.generation_id != group.generation {
            return failed(ResponseError::IllegalGeneration);
        }
        match group.state {
            State::PreparingRebalance | State::Empty => {
                return failed(ResponseError::RebalanceInProgress);
            }
            State::Stable => return assigned(group, &member_id),
            State::CompletingRebalance => {}
        }
        if group.leader.as_deref() == Some(member_id.as_str()) {
            let given: HashMap<String, Bytes> = req
                .assignments
                .iter()
                .map(|a| (a.member_id.to_string(), a.assignment.clone()))
                .collect();
            for (id, member) in group.members.iter_mut() {
                member.assignment = given.get(id).cloned().unwrap_or_default();
            }
            group.state = State::Stable;
            group.bump();
            return assigned(group, &member_id);
        }
        group.changed.subscribe()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if tokio::time::timeout_at(deadline, changed.changed())
            .await
            .is_err()
        {
            return failed(ResponseError::RebalanceInProgress);
        }
        let groups = ctx.shared.groups.members();
        let Some(group) = groups.get(&group_id) else {
            return failed(ResponseError::UnknownMemberId);
        };
        match group.state {
            State::Stable if group.generation == req.generation_id => {
                return assigned(group, &member_id);
            }
            State::CompletingRebalance if group.generation == req.generation_id => continue,
            _ => return failed(ResponseError::RebalanceInProgress),
        }
    }
}

fn assigned(group: &Group, member_id: &str) -> SyncGroupResponse {
    match group.members.get(member_id) {
        Some(member) => SyncGroupResponse::default()
            .with_protocol_type(group.protocol_type.clone().map(text))
            .with_protocol_name(group.protocol.clone().map(text))
            .with_assignment(member.assignment.clone()),
        None => SyncGroupResponse::default().with_error_code(ResponseError::UnknownMemberId.code()),
    }
}

/// Heartbeat: keeps a member's session and tells it when to join again.
pub async fn heartbeat(ctx: Context, req: HeartbeatRequest, _version: i16) -> HeartbeatResponse {
    let code = (|| {
        let group_id = req.group_id.0.to_string();
        coordinator(&ctx, &group_id)?;
        let mut groups = ctx.shared.groups.members();
        let group = groups
            .get_mut(&group_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        let member = group
            .members
            .get_mut(&req.member_id.to_string())
            .ok_or(ResponseError::UnknownMemberId)?;
        member.last_seen = Instant::now();
        if req.generation_id != group.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        match group.state {
            State::Stable => Ok(()),
            _ => Err(ResponseError::RebalanceInProgress),
        }
    })();
    HeartbeatResponse::default().with_error_code(code.err().map_or(0, |e| e.code()))
}

/// LeaveGroup: members leave, and the others rebalance at once.
pub async fn leave_group(ctx: Context, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let group_id = req.group_id.0.to_string();
    if let Err(e) = coordinator(&ctx, &group_id) {
        return LeaveGroupResponse::default().with_error_code(e.code());
    }
    let leaving: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let now = Instant::now();
    let mut groups = ctx.shared.groups.members();
    let mut results = Vec::new();
    for (member_id, instance) in leaving {
        let code = match groups.get_mut(&group_id) {
            None => ResponseError::UnknownMemberId.code(),
            Some(group) => {
                // A static member may leave by instance id alone.
                let id = if member_id.is_empty() {
                    group
                        .members
                        .iter()
                        .find(|(_, m)| m.instance_id.is_some() && m.instance_id == instance)
                        .map(|(id, _)| id.clone())
                } else {
                    Some(member_id.clone())
                };
                match id.filter(|id| group.members.contains_key(id)) {
                    Some(id) => {
                        group.remove_member(&id, now);
                        0
                    }
                    None => ResponseError::UnknownMemberId.code(),
                }
            }
        };
        results.push(
            leave_group_response::MemberResponse::default()
                .with_member_id(text(member_id))
                .with_group_instance_id(instance.map(text))
                .with_error_code(code),
        );
    }
    if version >= 3 {
        LeaveGroupResponse::default().with_members(results)
    } else {
        LeaveGroupResponse::default().with_error_code(results.first().map_or(0, |r| r.error_code))
    }
}

/// The offsets of the partition `replica` leads, loaded for its current term.
fn with_offsets<T>(
    ctx: &Context,
    replica: &PartitionReplica,
    term: i32,
    partition: u32,
    f: impl FnOnce(&mut OffsetCache) -> T,
) -> Result<T, ResponseError> {
    use std::collections::hash_map::Entry;
    let mut caches = ctx.shared.groups.offsets();
    let cache = match caches.entry(partition) {
        Entry::Occupied(e) if e.get().term == term => e.into_mut(),
        Entry::Occupied(mut e) => {
            e.insert(load_offsets(replica, term)?);
            e.into_mut()
        }
        Entry::Vacant(e) => e.insert(load_offsets(replica, term)?),
    };
    Ok(f(cache))
}

/// Reads every committed offset record of a partition. Refused (retriably) until the new
/// leader has committed every entry it holds, so nothing an earlier leader wrote is missed.
fn load_offsets(replica: &PartitionReplica, term: i32) -> Result<OffsetCache, ResponseError> {
    let hw = *replica.sm.high_watermark().borrow();
    let log = replica.store.log();
    let log = log.read().unwrap_or_else(|p| p.into_inner());
    if hw < log.next_offset() {
        return Err(ResponseError::CoordinatorLoadInProgress);
    }
    let mut cache = OffsetCache {
        term,
        groups: HashMap::new(),
    };
    let mut at = log.log_start_offset();
    while at < hw {
        let batches = log.read(at, hw, 1 << 20).map_err(|e| {
            tracing::error!(error = %e, "cannot read {OFFSETS_TOPIC}");
            ResponseError::CoordinatorLoadInProgress
        })?;
        if batches.batch_count == 0 {
            break;
        }
        let mut rest: &[u8] = &batches.bytes;
        while rest.len() >= 12 {
            let len =
                12 + i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]).max(0) as usize;
            let (batch, tail) = rest.split_at(len.min(rest.len()));
            rest = tail;
            let Ok(records) = strand_log::decode_records(batch) else {
                continue;
            };
            for record in records {
                apply_record(&mut cache, record.key.as_deref(), record.value.as_deref());
            }
        }
        at = batches.next_offset;
    }
    Ok(cache)
}

fn offset_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    serde_json::to_vec(&("offset", group, topic, partition)).unwrap_or_default()
}

fn apply_record(cache: &mut OffsetCache, key: Option<&[u8]>, value: Option<&[u8]>) {
    let Some(Ok((kind, group, topic, partition))) =
        key.map(serde_json::from_slice::<(String, String, String, i32)>)
    else {
        return;
    };
    if kind != "offset" {
        return;
    }
    match value.map(serde_json::from_slice::<Committed>) {
        Some(Ok(committed)) => {
            cache
                .groups
                .entry(group)
                .or_default()
                .insert((topic, partition), committed);
        }
        // A tombstone removes the offset.
        None => {
            if let Some(offsets) = cache.groups.get_mut(&group) {
                offsets.remove(&(topic, partition));
                if offsets.is_empty() {
                    cache.groups.remove(&group);
                }
            }
        }
        Some(Err(_)) => {}
    }
}

/// Writes offset records (a `None` value is a tombstone) and, once committed, the cache.
async fn write_offsets(
    ctx: &Context,
    replica: &PartitionReplica,
    term: i32,
    partition: u32,
    records: Vec<(Vec<u8>, Option<Vec<u8>>)>,
) -> Result<(), ResponseError> {
    if records.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let specs: Vec<strand_log::RecordSpec<'_>> = records
        .iter()
        .map(|(k, v)| (Some(k.as_slice()), v.as_deref(), now))
        .collect();
    let batch = Bytes::from(strand_log::build_batch(&specs));
    let appended = ctx
        .handles()
        .replicas
        .append(OFFSETS_TOPIC, partition as i32, Some(batch), Writer::Broker)
        .await
        .map_err(|e| commit_error_code(&e))?;
    // Offset commits carry no producer id, so they are never duplicates.
    if let Appended::Submitted { submitted, .. } = appended {
        submitted
            .applied()
            .await
            .map_err(|e| commit_error_code(&e))?;
    }
    with_offsets(ctx, replica, term, partition, |cache| {
        for (k, v) in &records {
            apply_record(cache, Some(k), v.as_deref());
        }
    })
}

/// OffsetCommit.
pub async fn offset_commit(
    ctx: Context,
    req: OffsetCommitRequest,
    _version: i16,
) -> OffsetCommitResponse {
    let group_id = req.group_id.0.to_string();
    let checked = (|| {
        let (replica, term, partition) = coordinator(&ctx, &group_id)?;
        let groups = ctx.shared.groups.members();
        let group = groups.get(&group_id);
        let generation = req.generation_id_or_member_epoch;
        if generation >= 0 {
            let group = group.ok_or(ResponseError::UnknownMemberId)?;
            if !group.members.contains_key(&req.member_id.to_string()) {
                return Err(ResponseError::UnknownMemberId);
            }
            if generation != group.generation {
                return Err(ResponseError::IllegalGeneration);
            }
            if group.state == State::CompletingRebalance {
                return Err(ResponseError::RebalanceInProgress);
            }
        } else if group.is_some_and(|g| !g.members.is_empty()) {
            // Only an empty group takes commits from outside its membership.
            return Err(ResponseError::UnknownMemberId);
        }
        Ok((replica, term, partition))
    })();
    let (replica, term, partition) = match checked {
        Ok(found) => found,
        Err(e) => return commit_answer(&req, |_, _| e.code()),
    };
    let mut records = Vec::new();
    let mut too_large = BTreeSet::new();
    for topic in &req.topics {
        for p in &topic.partitions {
            let metadata = p
                .committed_metadata
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default();
            if metadata.len() > OFFSET_METADATA_MAX {
                too_large.insert((topic.name.0.to_string(), p.partition_index));
                continue;
            }
            let value = Committed {
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata,
                commit_ms: now_ms(),
            };
            records.push((
                offset_key(&group_id, &topic.name.0, p.partition_index),
                Some(serde_json::to_vec(&value).unwrap_or_default()),
            ));
        }
    }
    let written = write_offsets(&ctx, &replica, term, partition, records).await;
    commit_answer(&req, |topic, p| {
        if too_large.contains(&(topic.to_string(), p)) {
            ResponseError::OffsetMetadataTooLarge.code()
        } else {
            written.err().map_or(0, |e| e.code())
        }
    })
}

/// The OffsetCommit answer, every partition with the error code `code(topic, partition)`.
fn commit_answer(
    req: &OffsetCommitRequest,
    code: impl Fn(&str, i32) -> i16,
) -> OffsetCommitResponse {
    use offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
    let topics = req
        .topics
        .iter()
        .map(|t| {
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code(&t.name.0, p.partition_index))
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// OffsetFetch.
pub async fn offset_fetch(
    ctx: Context,
    req: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    use offset_fetch_response::{OffsetFetchResponsePartition, OffsetFetchResponseTopic};
    let group_id = req.group_id.0.to_string();
    let found = coordinator(&ctx, &group_id).and_then(|(replica, term, partition)| {
        with_offsets(&ctx, &replica, term, partition, |cache| {
            cache.groups.get(&group_id).cloned().unwrap_or_default()
        })
    });
    let offsets = match found {
        Ok(offsets) => offsets,
        Err(e) => {
            if version >= 2 {
                return OffsetFetchResponse::default().with_error_code(e.code());
            }
            // v1 has no top-level error: every partition carries it.
            let topics = req
                .topics
                .iter()
                .flatten()
                .map(|t| {
                    OffsetFetchResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partition_indexes
                                .iter()
                                .map(|p| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(*p)
                                        .with_committed_offset(-1)
                                        .with_error_code(e.code())
                                })
                                .collect(),
                        )
                })
                .collect();
            return OffsetFetchResponse::default().with_topics(topics);
        }
    };
    let entry = |topic: &str, p: i32| {
        let base = OffsetFetchResponsePartition::default()
            .with_partition_index(p)
            .with_committed_offset(-1)
            .with_committed_leader_epoch(-1)
            .with_metadata(Some(text("")));
        match offsets.get(&(topic.to_string(), p)) {
            Some(c) => base
                .with_committed_offset(c.offset)
                .with_committed_leader_epoch(c.leader_epoch)
                .with_metadata(Some(text(c.metadata.clone()))),
            None => base,
        }
    };
    let topics: Vec<OffsetFetchResponseTopic> = match &req.topics {
        Some(topics) => topics
            .iter()
            .map(|t| {
                OffsetFetchResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partition_indexes
                            .iter()
                            .map(|p| entry(&t.name.0, *p))
                            .collect(),
                    )
            })
            .collect(),
        None => {
            let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (topic, p) in offsets.keys() {
                by_topic.entry(topic).or_default().push(*p);
            }
            by_topic
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(text(topic)))
                        .with_partitions(partitions.into_iter().map(|p| entry(topic, p)).collect())
                })
                .collect()
        }
    };
    OffsetFetchResponse::default().with_topics(topics)
}

/// The groups this broker coordinates: with members, or with committed offsets.
fn known_groups(ctx: &Context) -> BTreeMap<String, (String, &'static str)> {
    let mut out = BTreeMap::new();
    {
        let caches = ctx.shared.groups.offsets();
        for cache in caches.values() {
            for group in cache.groups.keys() {
                out.insert(group.clone(), ("consumer".to_string(), State::Empty.name()));
            }
        }
    }
    let groups = ctx.shared.groups.members();
    for (id, group) in groups.iter() {
        if group.members.is_empty() && !out.contains_key(id) {
            continue;
        }
        out.insert(
            id.clone(),
            (
                group.protocol_type.clone().unwrap_or_default(),
                group.state.name(),
            ),
        );
    }
    out.retain(|id, _| coordinator(ctx, id).is_ok());
    out
}

/// ListGroups.
pub async fn list_groups(ctx: Context, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_string()).collect();
    let groups = known_groups(&ctx)
        .into_iter()
        .filter(|(_, (_, state))| states.is_empty() || states.iter().any(|s| s == state))
        .map(|(id, (protocol_type, state))| {
            let listed = list_groups_response::ListedGroup::default()
                .with_group_id(GroupId(text(id)))
                .with_protocol_type(text(protocol_type));
            if version >= 4 {
                listed.with_group_state(text(state))
            } else {
                listed
            }
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

/// DescribeGroups.
pub async fn describe_groups(
    ctx: Context,
    req: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let known = known_groups(&ctx);
    let described = req
        .groups
        .iter()
        .map(|id| {
            let name = id.0.to_string();
            let base =
                describe_groups_response::DescribedGroup::default().with_group_id(id.clone());
            if let Err(e) = coordinator(&ctx, &name) {
                return base.with_error_code(e.code());
            }
            let groups = ctx.shared.groups.members();
            match groups.get(&name) {
                Some(group) if !group.members.is_empty() => base
                    .with_group_state(text(group.state.name()))
                    .with_protocol_type(text(group.protocol_type.clone().unwrap_or_default()))
                    .with_protocol_data(text(group.protocol.clone().unwrap_or_default()))
                    .with_members(
                        group
                            .members
                            .iter()
                            .map(|(member_id, m)| {
                                let metadata = m
                                    .protocols
                                    .iter()
                                    .find(|(n, _)| Some(n) == group.protocol.as_ref())
                                    .map(|(_, meta)| meta.clone())
                                    .unwrap_or_default();
                                describe_groups_response::DescribedGroupMember::default()
                                    .with_member_id(text(member_id.clone()))
                                    .with_group_instance_id(if version >= 4 {
                                        m.instance_id.clone().map(text)
                                    } else {
                                        None
                                    })
                                    .with_client_id(text(m.client_id.clone()))
                                    .with_client_host(text(m.client_host.clone()))
                                    .with_member_metadata(metadata)
                                    .with_member_assignment(m.assignment.clone())
                            })
                            .collect(),
                    ),
                _ if known.contains_key(&name) => base
                    .with_group_state(text(State::Empty.name()))
                    .with_protocol_type(text("consumer")),
                // Kafka describes a group it has never heard of as Dead, without an error.
                _ => base.with_group_state(text("Dead")),
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(described)
}

/// DeleteGroups: only empty groups; their offsets are removed with tombstones.
pub async fn delete_groups(
    ctx: Context,
    req: DeleteGroupsRequest,
    _version: i16,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for id in &req.groups_names {
        let name = id.0.to_string();
        let code = match delete_group(&ctx, &name).await {
            Ok(()) => 0,
            Err(e) => e.code(),
        };
        results.push(
            delete_groups_response::DeletableGroupResult::default()
                .with_group_id(id.clone())
                .with_error_code(code),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

async fn delete_group(ctx: &Context, name: &str) -> Result<(), ResponseError> {
    let (replica, term, partition) = coordinator(ctx, name)?;
    {
        let groups = ctx.shared.groups.members();
        if groups.get(name).is_some_and(|g| !g.members.is_empty()) {
            return Err(ResponseError::NonEmptyGroup);
        }
    }
    let offsets = with_offsets(ctx, &replica, term, partition, |cache| {
        cache.groups.get(name).cloned()
    })?;
    let existed = ctx.shared.groups.members().remove(name).is_some();
    let Some(offsets) = offsets else {
        return if existed {
            Ok(())
        } else {
            Err(ResponseError::GroupIdNotFound)
        };
    };
    let tombstones = offsets
        .keys()
        .map(|(topic, p)| (offset_key(name, topic, *p), None))
        .collect();
    write_offsets(ctx, &replica, term, partition, tombstones).await
}
