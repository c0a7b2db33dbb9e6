//! Consumer groups: the coordinator, Kafka's classic membership protocol, and committed
//! offsets kept in the replicated, compacted `__consumer_offsets` topic.
//!
//! A group's coordinator is the leader of partition `hash(group) % partitions` of
//! `__consumer_offsets`. Membership lives in the coordinator's memory, as in Kafka: after a
//! coordinator failover members find the new one and join again. Offsets are records in that
//! partition, written through Raft like any produce, so they survive the failover; a new
//! coordinator rebuilds its cache from the partition once every earlier entry is committed.
//!
//! - `membership`: the membership state machine, pure (time passed in), with the bounds it
//!   enforces; its table tests.
//! - `offsets`: the offset store: records, the cache, writing and rebuilding.
//! - `state`: [`Groups`], both behind their locks, and the wake-ups of waiting requests.
//! - this module and `handlers`: the Kafka requests, thin over the two.

mod handlers;
mod membership;
mod offsets;
pub(crate) mod state;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use strand_node::PartitionReplica;

use strand_auth::Operation;

use crate::context::Context;
use crate::security::Resource;
use crate::{admin, metadata};

pub use handlers::{
    delete_groups, describe_groups, heartbeat, join_group, leave_group, list_groups, offset_commit,
    offset_fetch, sync_group,
};
pub use offsets::OFFSETS_TOPIC;
pub use state::Groups;

/// `__consumer_offsets`' partition count (Kafka's `offsets.topic.num.partitions` is 50; fewer
/// partitions keep an idle cluster's cost down, and each holds many groups).
const OFFSETS_PARTITIONS: u32 = 8;

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

/// Expires members whose sessions lapsed and completes rebalances that are due.
pub async fn run(ctx: Context) {
    let mut shutdown = ctx.handles().shutdown.clone();
    let limits = ctx.handles().settings.limits.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = shutdown.changed() => return,
        }
        let expired = ctx
            .shared
            .groups
            .update_all(|core| core.expire(&limits, Instant::now()));
        for (group, member) in expired {
            tracing::info!(%group, %member, "consumer group member's session expired");
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
        found.push(
            if req.key_type == 0 && !ctx.authorized(Operation::Describe, Resource::group(key)) {
                Err((
                    ResponseError::GroupAuthorizationFailed,
                    "not authorized to describe the group".to_string(),
                ))
            } else if req.key_type != 0 {
                Err((
                    ResponseError::CoordinatorNotAvailable,
                    "transactions are not supported".to_string(),
                ))
            } else {
                locate(&ctx, key).await
            },
        );
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
    let addr = ctx.advertised_addr(broker).ok_or((
        ResponseError::CoordinatorNotAvailable,
        format!(
            "the coordinator, broker {}, has no listener {}",
            broker.id, ctx.session.listener.name
        ),
    ))?;
    let (host, port) = metadata::host_port(addr);
    Ok((broker.id.0 as i32, host, port))
}
