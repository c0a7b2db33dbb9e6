//! Consumer groups: the coordinator, Kafka's classic membership protocol, and committed
//! offsets kept in the replicated, compacted `__consumer_offsets` topic.
//!
//! A group's coordinator is the leader of partition `hash(group) % partitions` of
//! `__consumer_offsets`. Membership lives in the coordinator's memory; as in Kafka, it is
//! also stored in that partition whenever a generation's assignments are handed out (before
//! they are) and when the group empties. Offsets are records in the same partition, written
//! through Raft like any produce. A new coordinator loads the partition once every earlier
//! entry is committed, before it answers any of its groups' requests: offsets into its
//! cache, and each group's stored membership into the core, so members keep their
//! generation and assignments across a coordinator failover and their commits are taken.
//! Offsets of groups that stayed empty for `offsets.retention.minutes` expire.
//!
//! - `membership`: the membership state machine, pure (time passed in), with the bounds it
//!   enforces; its table tests.
//! - `consumer`, `assignors` and `consumer_handlers`: Kafka's consumer group protocol
//!   (KIP-848): its pure core, the coordinator's assignors, and its two requests.
//! - `records`: the records of `__consumer_offsets`, in Kafka's format.
//! - `retention`: offsets retention.
//! - `offsets`: the offset store: records, the cache, writing and rebuilding.
//! - `state`: [`Groups`], both behind their locks, and the wake-ups of waiting requests.
//! - this module and `handlers`: the Kafka requests, thin over the two.

mod assignors;
mod consumer;
mod consumer_handlers;
mod handlers;
mod membership;
mod offsets;
mod records;
mod retention;
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

pub use consumer_handlers::{consumer_group_describe, consumer_group_heartbeat};
pub use handlers::{
    delete_groups, describe_groups, heartbeat, join_group, leave_group, list_groups, offset_commit,
    offset_delete, offset_fetch, sync_group,
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

/// Expires members whose sessions lapsed, completes rebalances that are due, stores the
/// records of groups that changed, and expires the offsets of groups empty for longer than
/// `offsets.retention.minutes`.
pub async fn run(ctx: Context) {
    let mut shutdown = ctx.handles().shutdown.clone();
    let settings = &ctx.handles().settings;
    let limits = settings.limits.clone();
    let mut next_retention = Instant::now() + settings.offsets_retention_check_interval;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = shutdown.changed() => return,
        }
        let (expired, unstored) = ctx.shared.groups.update_all(|core| {
            let expired = core.expire(&limits, &timing(settings), Instant::now());
            (expired, core.take_unstored())
        });
        for (group, member) in expired {
            tracing::info!(%group, %member, "consumer group member's session expired");
        }
        for (group, record) in unstored {
            if let Err(e) = store_group(&ctx, &group, record).await {
                tracing::debug!(%group, ?e, "consumer group's record not stored here");
            }
        }
        if Instant::now() >= next_retention {
            next_retention = Instant::now() + settings.offsets_retention_check_interval;
            retention::expire_offsets(&ctx, settings.offsets_retention).await;
        }
    }
}

/// The consumer protocol's timing, from the settings.
fn timing(settings: &crate::KafkaSettings) -> consumer::Timing {
    consumer::Timing {
        heartbeat_interval: settings.consumer_heartbeat_interval,
        session_timeout: settings.consumer_session_timeout,
    }
}

/// Writes `group`'s membership record, stamped now, if this broker coordinates it.
async fn store_group(
    ctx: &Context,
    group: &str,
    mut record: records::GroupRecord,
) -> Result<(), ResponseError> {
    let (_, term, partition) = coordinator(ctx, group)?;
    record.state_ms = strand_node::now_ms();
    ctx.shared
        .groups
        .offsets()
        .write(
            &ctx.handles().replicas,
            term,
            partition,
            vec![offsets::group_record(group, &record)],
        )
        .await
}

/// The coordinator check: the offsets partition of `group`, led here and loaded in this
/// term (COORDINATOR_LOAD_IN_PROGRESS until it is).
fn coordinator(
    ctx: &Context,
    group: &str,
) -> Result<(Arc<PartitionReplica>, i32, u32), ResponseError> {
    let state = ctx.state();
    let Some(topic) = state.topic_by_name(OFFSETS_TOPIC) else {
        return Err(ResponseError::CoordinatorNotAvailable);
    };
    let partitions = topic.partitions.len();
    let partition = partition_of(group, partitions);
    let (replica, term) = match ctx.leader_replica(OFFSETS_TOPIC, partition as i32) {
        Ok(led) => led,
        Err(ResponseError::NotLeaderOrFollower) => return Err(ResponseError::NotCoordinator),
        Err(e) => return Err(e),
    };
    ctx.shared
        .groups
        .ensure_loaded(&replica, term, partition, |g| {
            partition_of(g, partitions) == partition
        })?;
    Ok((replica, term, partition))
}

/// Loads every `__consumer_offsets` partition led here that this term has not loaded yet, so
/// the groups listed are all this broker coordinates (one still loading is left out).
fn load_led(ctx: &Context) {
    let Some(topic) = ctx.state().topic_by_name(OFFSETS_TOPIC).cloned() else {
        return;
    };
    let partitions = topic.partitions.len();
    for partition in 0..partitions as u32 {
        if let Ok((replica, term)) = ctx.leader_replica(OFFSETS_TOPIC, partition as i32) {
            let _ = ctx
                .shared
                .groups
                .ensure_loaded(&replica, term, partition, |g| {
                    partition_of(g, partitions) == partition
                });
        }
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
