//! ConsumerGroupHeartbeat and ConsumerGroupDescribe, the requests of Kafka's consumer group
//! protocol (KIP-848), thin over the core in `consumer`.

use std::collections::BTreeMap;
use std::time::Instant;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;
use strand_auth::Operation;

use super::consumer::{Assignment, Beat, ConsumerGroup, TopicView, Topics, state_name};
use super::{coordinator, text, timing};
use crate::context::Context;
use crate::security::Resource;

/// The topics a member may subscribe to as `ctx`'s principal sees them: those it may
/// describe.
fn topics(ctx: &Context) -> Topics {
    ctx.state()
        .topics_by_id()
        .values()
        .filter(|t| ctx.authorized(Operation::Describe, Resource::topic(&t.name)))
        .map(|t| {
            (
                t.name.clone(),
                TopicView {
                    id: t.id.0,
                    partitions: t.partitions.len() as i32,
                },
            )
        })
        .collect()
}

fn wire_assignment(
    assignment: &Assignment,
) -> Vec<consumer_group_heartbeat_response::TopicPartitions> {
    assignment
        .iter()
        .map(|(topic, partitions)| {
            consumer_group_heartbeat_response::TopicPartitions::default()
                .with_topic_id(*topic)
                .with_partitions(partitions.iter().copied().collect())
        })
        .collect()
}

/// ConsumerGroupHeartbeat.
pub async fn consumer_group_heartbeat(
    ctx: Context,
    req: ConsumerGroupHeartbeatRequest,
    version: i16,
    client_id: String,
) -> ConsumerGroupHeartbeatResponse {
    let failed = |e: ResponseError, message: &str| {
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(text(message)))
            .with_member_epoch(-1)
    };
    let group_id = req.group_id.0.to_string();
    if group_id.is_empty() {
        return failed(ResponseError::InvalidRequest, "GroupId can't be empty");
    }
    if version >= 1 && req.member_id.is_empty() {
        return failed(ResponseError::InvalidRequest, "MemberId can't be empty");
    }
    if req.member_epoch == 0 && req.topic_partitions.as_ref().is_some_and(|t| !t.is_empty()) {
        return failed(
            ResponseError::InvalidRequest,
            "TopicPartitions must be empty when (re-)joining",
        );
    }
    if !ctx.authorized(Operation::Read, Resource::group(&group_id)) {
        return failed(ResponseError::GroupAuthorizationFailed, "");
    }
    let unauthorized = req
        .subscribed_topic_names
        .iter()
        .flatten()
        .find(|name| !ctx.authorized(Operation::Describe, Resource::topic(name)));
    if let Some(name) = unauthorized {
        return failed(
            ResponseError::TopicAuthorizationFailed,
            &format!("not authorized to describe subscribed topic {}", name.0),
        );
    }
    if let Err(e) = coordinator(&ctx, &group_id) {
        return failed(e, "");
    }
    let beat = Beat {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: req.rack_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed: req
            .subscribed_topic_names
            .as_ref()
            .map(|names| names.iter().map(|n| n.0.to_string()).collect()),
        regex: req.subscribed_topic_regex.as_ref().map(|s| s.to_string()),
        assignor: req.server_assignor.as_ref().map(|s| s.to_string()),
        owned: req.topic_partitions.as_ref().map(|owned| {
            let mut out = Assignment::new();
            for t in owned {
                out.entry(t.topic_id)
                    .or_default()
                    .extend(t.partitions.iter().copied());
            }
            out
        }),
        client_id,
        client_host: format!("/{}", ctx.peer.ip()),
        fresh_id: uuid::Uuid::new_v4().to_string(),
    };
    let topics = topics(&ctx);
    let limits = &ctx.handles().settings.limits;
    let outcome = ctx.shared.groups.update(&group_id, |core| {
        core.consumer_heartbeat(&group_id, beat, &topics, limits, Instant::now())
    });
    match outcome {
        Ok(beaten) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(text(beaten.member_id)))
            .with_member_epoch(beaten.member_epoch)
            .with_heartbeat_interval_ms(
                timing(&ctx.handles().settings)
                    .heartbeat_interval
                    .as_millis()
                    .min(i32::MAX as u128) as i32,
            )
            .with_assignment(beaten.assignment.map(|a| {
                consumer_group_heartbeat_response::Assignment::default()
                    .with_topic_partitions(wire_assignment(&a))
            })),
        Err(e) => {
            tracing::debug!(%group_id, member = %req.member_id, error = %e,
                "consumer group heartbeat refused");
            failed(e.kafka(), &e.to_string())
        }
    }
}

/// ConsumerGroupDescribe.
pub async fn consumer_group_describe(
    ctx: Context,
    req: ConsumerGroupDescribeRequest,
    version: i16,
) -> ConsumerGroupDescribeResponse {
    use consumer_group_describe_response::DescribedGroup;
    let names: BTreeMap<uuid::Uuid, String> = ctx
        .state()
        .topics_by_id()
        .values()
        .map(|t| (t.id.0, t.name.clone()))
        .collect();
    let groups = req
        .group_ids
        .iter()
        .map(|id| {
            let name = id.0.to_string();
            let base = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(i32::MIN);
            if !ctx.authorized(Operation::Describe, Resource::group(&name)) {
                return base.with_error_code(ResponseError::GroupAuthorizationFailed.code());
            }
            if let Err(e) = coordinator(&ctx, &name) {
                return base.with_error_code(e.code());
            }
            ctx.shared
                .groups
                .read(|core| match core.consumer_group(&name) {
                    Some(group) => describe(base, group, &names, version),
                    None => base
                        .with_error_code(ResponseError::GroupIdNotFound.code())
                        .with_error_message(Some(text(if core.group(&name).is_some() {
                            format!("group {name} is not a consumer group")
                        } else {
                            format!("group {name} not found")
                        }))),
                })
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}

fn describe(
    base: consumer_group_describe_response::DescribedGroup,
    group: &ConsumerGroup,
    names: &BTreeMap<uuid::Uuid, String>,
    version: i16,
) -> consumer_group_describe_response::DescribedGroup {
    use consumer_group_describe_response::{Assignment as Described, Member, TopicPartitions};
    let described = |a: &Assignment| {
        Described::default().with_topic_partitions(
            a.iter()
                .map(|(topic, partitions)| {
                    TopicPartitions::default()
                        .with_topic_id(*topic)
                        .with_topic_name(TopicName(text(
                            names.get(topic).cloned().unwrap_or_default(),
                        )))
                        .with_partitions(partitions.iter().copied().collect())
                })
                .collect(),
        )
    };
    let members = group
        .members()
        .iter()
        .map(|(id, m)| {
            let member = Member::default()
                .with_member_id(text(id.clone()))
                .with_instance_id(m.instance_id.clone().map(text))
                .with_rack_id(m.rack_id.clone().map(text))
                .with_member_epoch(m.epoch)
                .with_client_id(text(m.client_id.clone()))
                .with_client_host(text(m.client_host.clone()))
                .with_subscribed_topic_names(
                    m.subscribed
                        .iter()
                        .map(|t| TopicName(text(t.clone())))
                        .collect(),
                )
                .with_subscribed_topic_regex(m.regex.clone().map(text))
                .with_assignment(described(&m.assigned))
                .with_target_assignment(described(&group.target(id)));
            if version >= 1 {
                // 1: a member of the consumer protocol (0 would be a classic one).
                member.with_member_type(1)
            } else {
                member
            }
        })
        .collect();
    base.with_group_state(text(state_name(group)))
        .with_group_epoch(group.epoch())
        .with_assignment_epoch(group.assignment_epoch())
        .with_assignor_name(text(group.assignor()))
        .with_members(members)
}
