//! The consumer-group requests, thin over the membership core and the offset store: each
//! checks that this broker coordinates the group, asks the core or the store, waits where
//! Kafka's protocol waits (a join for the rebalance, a sync for the leader's assignments),
//! and answers in Kafka's words.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;
use strand_node::now_ms;

use super::membership::{Join, Joined, Joining, Refused, State, Syncing};
use super::offsets::{
    Committed, GroupOffsets, OFFSET_METADATA_MAX, commit_record, group_record, group_tombstone,
    tombstone,
};
use super::{coordinator, load_led, text};
use strand_auth::Operation;

use crate::context::Context;
use crate::security::Resource;

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
    if !ctx.authorized(Operation::Read, Resource::group(&group_id)) {
        return failed(ResponseError::GroupAuthorizationFailed, "");
    }
    if let Err(e) = coordinator(&ctx, &group_id) {
        return failed(e, "");
    }
    let protocol_type = req.protocol_type.to_string();
    let instance_id = req.group_instance_id.as_ref().map(|s| s.to_string());
    let fresh_id = format!(
        "{}-{}",
        instance_id.as_deref().unwrap_or("member"),
        uuid::Uuid::new_v4()
    );
    let join = Join {
        member_id: req.member_id.to_string(),
        instance_id,
        protocol_type: protocol_type.clone(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        client_id,
        client_host: format!("/{}", ctx.peer.ip()),
        id_required: version >= 4,
        fresh_id,
    };
    let limits = &ctx.handles().settings.limits;
    let groups = &ctx.shared.groups;
    let joining = groups.update(&group_id, |core| {
        core.join(&group_id, join, limits, Instant::now())
    });
    let answer =
        |member_id: &str, joined: Joined| joined_answer(member_id, &protocol_type, joined, version);
    let (member_id, until) = match joining {
        Ok(Joining::IdRequired(id)) => return failed(ResponseError::MemberIdRequired, &id),
        Ok(Joining::Now { member_id, joined }) => return answer(&member_id, joined),
        Ok(Joining::Waiting { member_id, until }) => (member_id, until),
        Err(e) => {
            if let Refused::TooManyGroups { groups } = e {
                tracing::warn!(%group_id, groups, limit = limits.groups_max,
                    "consumer group refused: groups_max reached");
            }
            // A refused new member is answered without a member id, as in Kafka.
            let member = match e {
                Refused::InconsistentProtocol
                | Refused::UnknownMember
                | Refused::FencedInstance => req.member_id.as_str(),
                _ => "",
            };
            return failed(e.kafka(), member);
        }
    };
    // Waits for the rebalance: woken when the group changes, and at `until` at the latest,
    // when a rebalance due by then completes here rather than at the next sweep.
    let until = tokio::time::Instant::from_std(until);
    loop {
        let (outcome, watching) = groups.update_and_watch(&group_id, |core| {
            core.joined(&group_id, &member_id, Instant::now())
        });
        match outcome {
            Ok(Some(joined)) => return answer(&member_id, joined),
            Err(e) => return failed(e.kafka(), &member_id),
            Ok(None) => {}
        }
        let Some(mut watching) = watching else {
            return failed(ResponseError::UnknownMemberId, &member_id);
        };
        if tokio::time::timeout_at(until, watching.changed())
            .await
            .is_err()
        {
            let outcome = groups.update(&group_id, |core| {
                core.joined(&group_id, &member_id, Instant::now())
            });
            return match outcome {
                Ok(Some(joined)) => answer(&member_id, joined),
                _ => failed(ResponseError::RebalanceInProgress, &member_id),
            };
        }
    }
}

fn joined_answer(
    member_id: &str,
    protocol_type: &str,
    joined: Joined,
    version: i16,
) -> JoinGroupResponse {
    let members = joined
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
        .with_generation_id(joined.generation)
        .with_protocol_type(Some(text(protocol_type)))
        .with_protocol_name(joined.protocol.map(text))
        .with_leader(text(joined.leader))
        .with_member_id(text(member_id))
        .with_members(members)
}

/// SyncGroup: the leader hands in assignments; every member waits for its own.
pub async fn sync_group(ctx: Context, req: SyncGroupRequest, _version: i16) -> SyncGroupResponse {
    let failed = |e: ResponseError| SyncGroupResponse::default().with_error_code(e.code());
    let group_id = req.group_id.0.to_string();
    if !ctx.authorized(Operation::Read, Resource::group(&group_id)) {
        return failed(ResponseError::GroupAuthorizationFailed);
    }
    let (_, term, partition) = match coordinator(&ctx, &group_id) {
        Ok(found) => found,
        Err(e) => return failed(e),
    };
    let member_id = req.member_id.to_string();
    let generation = req.generation_id;
    let assignments = req
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
        .collect();
    let groups = &ctx.shared.groups;
    let (syncing, watching) = groups.update_and_watch(&group_id, |core| {
        core.sync(
            &group_id,
            &member_id,
            generation,
            assignments,
            Instant::now(),
        )
    });
    let until = match syncing {
        Ok(Syncing::Now(assigned)) => return assigned_answer(assigned),
        Ok(Syncing::Waiting { until }) => tokio::time::Instant::from_std(until),
        Ok(Syncing::Store { mut record, until }) => {
            // The leader's assignments are stored before anyone gets them, as in Kafka.
            record.state_ms = now_ms();
            let write = groups.offsets().write(
                &ctx.handles().replicas,
                term,
                partition,
                vec![group_record(&group_id, &record)],
            );
            let written = tokio::time::timeout_at(tokio::time::Instant::from_std(until), write)
                .await
                .unwrap_or(Err(ResponseError::RebalanceInProgress));
            let limits = &ctx.handles().settings.limits;
            let stored = groups.update(&group_id, |core| {
                core.stored(
                    &group_id,
                    &member_id,
                    generation,
                    written.is_ok(),
                    limits,
                    Instant::now(),
                )
            });
            return match (written, stored) {
                (Ok(()), Ok(assigned)) => assigned_answer(assigned),
                (Err(e), _) => {
                    tracing::warn!(%group_id, generation, ?e,
                        "consumer group's assignments not stored; the group rebalances again");
                    failed(e)
                }
                (Ok(()), Err(e)) => failed(e.kafka()),
            };
        }
        Err(e) => return failed(e.kafka()),
    };
    let Some(mut watching) = watching else {
        return failed(ResponseError::UnknownMemberId);
    };
    loop {
        if tokio::time::timeout_at(until, watching.changed())
            .await
            .is_err()
        {
            return failed(ResponseError::RebalanceInProgress);
        }
        match groups.read(|core| core.synced(&group_id, &member_id, generation)) {
            Ok(Some(assigned)) => return assigned_answer(assigned),
            Ok(None) => {}
            Err(e) => return failed(e.kafka()),
        }
    }
}

fn assigned_answer(assigned: super::membership::Assigned) -> SyncGroupResponse {
    SyncGroupResponse::default()
        .with_protocol_type(assigned.protocol_type.map(text))
        .with_protocol_name(assigned.protocol.map(text))
        .with_assignment(assigned.assignment)
}

/// Heartbeat: keeps a member's session and tells it when to join again.
pub async fn heartbeat(ctx: Context, req: HeartbeatRequest, _version: i16) -> HeartbeatResponse {
    let group_id = req.group_id.0.to_string();
    let code = match coordinator(&ctx, &group_id) {
        _ if !ctx.authorized(Operation::Read, Resource::group(&group_id)) => {
            ResponseError::GroupAuthorizationFailed.code()
        }
        Err(e) => e.code(),
        Ok(_) => ctx
            .shared
            .groups
            .update(&group_id, |core| {
                core.heartbeat(&group_id, &req.member_id, req.generation_id, Instant::now())
            })
            .err()
            .map_or(0, |e| e.kafka().code()),
    };
    HeartbeatResponse::default().with_error_code(code)
}

/// LeaveGroup: members leave, and the others rebalance at once.
pub async fn leave_group(ctx: Context, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let group_id = req.group_id.0.to_string();
    if !ctx.authorized(Operation::Read, Resource::group(&group_id)) {
        return LeaveGroupResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
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
    let limits = &ctx.handles().settings.limits;
    let now = Instant::now();
    let results: Vec<_> = ctx.shared.groups.update(&group_id, |core| {
        leaving
            .into_iter()
            .map(|(member_id, instance)| {
                let left = core.leave(&group_id, &member_id, instance.as_deref(), limits, now);
                leave_group_response::MemberResponse::default()
                    .with_member_id(text(member_id))
                    .with_group_instance_id(instance.map(text))
                    .with_error_code(left.err().map_or(0, |e| e.kafka().code()))
            })
            .collect()
    });
    if version >= 3 {
        LeaveGroupResponse::default().with_members(results)
    } else {
        LeaveGroupResponse::default().with_error_code(results.first().map_or(0, |r| r.error_code))
    }
}

/// OffsetCommit.
pub async fn offset_commit(
    ctx: Context,
    req: OffsetCommitRequest,
    _version: i16,
) -> OffsetCommitResponse {
    let group_id = req.group_id.0.to_string();
    if !ctx.authorized(Operation::Read, Resource::group(&group_id)) {
        return commit_answer(&req, |_, _| ResponseError::GroupAuthorizationFailed.code());
    }
    // Kafka answers the topics the client may not read and commits the others.
    let unreadable: BTreeSet<String> = req
        .topics
        .iter()
        .map(|t| t.name.0.to_string())
        .filter(|name| !ctx.authorized(Operation::Read, Resource::topic(name)))
        .collect();
    let checked = coordinator(&ctx, &group_id).and_then(|found| {
        ctx.shared
            .groups
            .read(|core| {
                core.check_commit(&group_id, &req.member_id, req.generation_id_or_member_epoch)
            })
            .map_err(|e| e.kafka())?;
        Ok(found)
    });
    let (_, term, partition) = match checked {
        Ok(found) => found,
        Err(e) => return commit_answer(&req, |_, _| e.code()),
    };
    let mut records = Vec::new();
    let mut too_large = BTreeSet::new();
    for topic in req
        .topics
        .iter()
        .filter(|t| !unreadable.contains(t.name.as_str()))
    {
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
            records.push(commit_record(
                &group_id,
                &topic.name.0,
                p.partition_index,
                &value,
            ));
        }
    }
    let written = ctx
        .shared
        .groups
        .offsets()
        .write(&ctx.handles().replicas, term, partition, records)
        .await;
    commit_answer(&req, |topic, p| {
        if unreadable.contains(topic) {
            ResponseError::TopicAuthorizationFailed.code()
        } else if too_large.contains(&(topic.to_string(), p)) {
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
    let found = if ctx.authorized(Operation::Describe, Resource::group(&group_id)) {
        coordinator(&ctx, &group_id)
    } else {
        Err(ResponseError::GroupAuthorizationFailed)
    };
    let found = found.and_then(|(_, term, partition)| {
        ctx.shared.groups.offsets().with(term, partition, |cache| {
            cache.group(&group_id).cloned().unwrap_or_default()
        })
    });
    let offsets: GroupOffsets = match found {
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
    let describable = |topic: &str| ctx.authorized(Operation::Describe, Resource::topic(topic));
    let entry = |topic: &str, p: i32| {
        let base = OffsetFetchResponsePartition::default()
            .with_partition_index(p)
            .with_committed_offset(-1)
            .with_committed_leader_epoch(-1)
            .with_metadata(Some(text("")));
        if !describable(topic) {
            return base.with_error_code(ResponseError::TopicAuthorizationFailed.code());
        }
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
            // Asked for every topic: those the client may not describe are left out.
            for (topic, p) in offsets.keys().filter(|(topic, _)| describable(topic)) {
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

/// The groups this broker coordinates: with members, committed offsets or a stored record.
/// ListGroups and DescribeGroups both answer from it, so they agree.
fn known_groups(ctx: &Context) -> BTreeMap<String, (String, &'static str)> {
    load_led(ctx);
    let mut out = BTreeMap::new();
    for group in ctx.shared.groups.offsets().groups() {
        out.insert(group, ("consumer".to_string(), State::Empty.name()));
    }
    ctx.shared.groups.read(|core| {
        for (id, group) in core.consumer_groups() {
            out.insert(
                id.clone(),
                ("consumer".to_string(), super::consumer::state_name(group)),
            );
        }
        for (id, group) in core.groups() {
            if group.members().is_empty() && !out.contains_key(id) {
                continue;
            }
            out.insert(
                id.clone(),
                (
                    group.protocol_type().unwrap_or_default().to_string(),
                    group.state().name(),
                ),
            );
        }
    });
    out.retain(|id, _| coordinator(ctx, id).is_ok());
    out
}

/// ListGroups.
pub async fn list_groups(ctx: Context, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_string()).collect();
    // Describe on the cluster lists every group; otherwise those the client may describe.
    let all = ctx.authorized(Operation::Describe, Resource::cluster());
    let groups = known_groups(&ctx)
        .into_iter()
        .filter(|(_, (_, state))| states.is_empty() || states.iter().any(|s| s == state))
        .filter(|(id, _)| all || ctx.authorized(Operation::Describe, Resource::group(id)))
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
    use describe_groups_response::{DescribedGroup, DescribedGroupMember};
    let known = known_groups(&ctx);
    let described = req
        .groups
        .iter()
        .map(|id| {
            let name = id.0.to_string();
            let base = DescribedGroup::default().with_group_id(id.clone());
            if !ctx.authorized(Operation::Describe, Resource::group(&name)) {
                return base.with_error_code(ResponseError::GroupAuthorizationFailed.code());
            }
            if let Err(e) = coordinator(&ctx, &name) {
                return base.with_error_code(e.code());
            }
            ctx.shared.groups.read(|core| match core.group(&name) {
                Some(group) if !group.members().is_empty() => base
                    .with_group_state(text(group.state().name()))
                    .with_protocol_type(text(group.protocol_type().unwrap_or_default()))
                    .with_protocol_data(text(group.protocol().unwrap_or_default()))
                    .with_members(
                        group
                            .members()
                            .iter()
                            .map(|(member_id, m)| {
                                DescribedGroupMember::default()
                                    .with_member_id(text(member_id.clone()))
                                    .with_group_instance_id(if version >= 4 {
                                        m.instance_id.clone().map(text)
                                    } else {
                                        None
                                    })
                                    .with_client_id(text(m.client_id.clone()))
                                    .with_client_host(text(m.client_host.clone()))
                                    .with_member_metadata(m.metadata(group.protocol()))
                                    .with_member_assignment(m.assignment.clone())
                            })
                            .collect(),
                    ),
                _ => match known.get(&name) {
                    Some((protocol_type, state)) => base
                        .with_group_state(text(*state))
                        .with_protocol_type(text(protocol_type.clone())),
                    // Kafka describes a group it has never heard of as Dead, without an error.
                    None => base.with_group_state(text("Dead")),
                },
            })
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
        let code = if !ctx.authorized(Operation::Delete, Resource::group(&name)) {
            ResponseError::GroupAuthorizationFailed.code()
        } else {
            match delete_group(&ctx, &name).await {
                Ok(()) => 0,
                Err(e) => e.code(),
            }
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
    let (_, term, partition) = coordinator(ctx, name)?;
    let store = ctx.shared.groups.offsets();
    let (offsets, recorded) = store.with(term, partition, |cache| {
        (cache.group(name).cloned(), cache.record(name).is_some())
    })?;
    let existed = ctx
        .shared
        .groups
        .update(name, |core| core.delete(name))
        .map_err(|e| e.kafka())?;
    if offsets.is_none() && !recorded && !existed {
        return Err(ResponseError::GroupIdNotFound);
    }
    let mut tombstones: Vec<_> = offsets
        .iter()
        .flat_map(|o| o.keys())
        .map(|(topic, p)| tombstone(name, topic, *p))
        .collect();
    if recorded {
        tombstones.push(group_tombstone(name));
    }
    store
        .write(&ctx.handles().replicas, term, partition, tombstones)
        .await
}

/// OffsetDelete (KIP-496): removes a group's committed offsets of some partitions, as Kafka
/// does: only of topics none of its members subscribes to (GROUP_SUBSCRIBED_TO_TOPIC), and
/// not at all from a group with members whose subscriptions are unknown (NON_EMPTY_GROUP).
pub async fn offset_delete(
    ctx: Context,
    req: OffsetDeleteRequest,
    _version: i16,
) -> OffsetDeleteResponse {
    use offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
    let group_id = req.group_id.0.to_string();
    let failed = |e: ResponseError| OffsetDeleteResponse::default().with_error_code(e.code());
    if !ctx.authorized(Operation::Delete, Resource::group(&group_id)) {
        return failed(ResponseError::GroupAuthorizationFailed);
    }
    let (_, term, partition) = match coordinator(&ctx, &group_id) {
        Ok(found) => found,
        Err(e) => return failed(e),
    };
    let groups = &ctx.shared.groups;
    let stored = groups.offsets().with(term, partition, |cache| {
        (
            cache.group(&group_id).cloned().unwrap_or_default(),
            cache.record(&group_id).is_some(),
        )
    });
    let (offsets, recorded) = match stored {
        Ok(found) => found,
        Err(e) => return failed(e),
    };
    let (held, live) = groups.read(|core| {
        (
            core.group(&group_id).is_some() || core.consumer_group(&group_id).is_some(),
            core.live_topics(&group_id),
        )
    });
    if !held && !recorded && offsets.is_empty() {
        return failed(ResponseError::GroupIdNotFound);
    }
    let subscribed = match live {
        None => BTreeSet::new(),
        Some(Some(topics)) => topics,
        Some(None) => return failed(ResponseError::NonEmptyGroup),
    };
    let mut tombstones = Vec::new();
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let code = if !ctx.authorized(Operation::Read, Resource::topic(&name)) {
                ResponseError::TopicAuthorizationFailed.code()
            } else if subscribed.contains(&name) {
                ResponseError::GroupSubscribedToTopic.code()
            } else {
                0
            };
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    if code == 0 && offsets.contains_key(&(name.clone(), p.partition_index)) {
                        tombstones.push(tombstone(&group_id, &name, p.partition_index));
                    }
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    let written = groups
        .offsets()
        .write(&ctx.handles().replicas, term, partition, tombstones)
        .await;
    match written {
        Ok(()) => OffsetDeleteResponse::default().with_topics(topics),
        Err(e) => failed(e),
    }
}
