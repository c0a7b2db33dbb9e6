//! Fetch, ListOffsets and OffsetForLeaderEpoch: reads from partition leaders, up to the high
//! watermark.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, TopicName,
};
use strand_auth::Operation;
use strand_log::{LogError, Offset};
use tokio::time::Instant;

use strand_node::PartitionReplica;

use crate::context::Context;
use crate::security::Resource;

/// The longest a fetch waits for data, whatever it asks for.
const FETCH_WAIT_MAX: Duration = Duration::from_secs(30);
/// Kafka's `replica.fetch.response.max.bytes`-like cap on one fetch response.
const FETCH_RESPONSE_MAX: usize = 64 * 1024 * 1024;

/// One partition of a fetch, resolved once.
struct Wanted {
    topic: usize,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    replica: Result<(Arc<PartitionReplica>, i32), ResponseError>,
}

/// The Fetch answer: waits up to `max_wait_ms` for `min_bytes`, woken by commits.
pub async fn fetch(ctx: Context, req: FetchRequest, version: i16) -> FetchResponse {
    let mut wanted = Vec::new();
    for (t, topic) in req.topics.iter().enumerate() {
        let readable = ctx.authorized(Operation::Read, Resource::topic(&topic.topic.0));
        for p in &topic.partitions {
            let replica = if readable {
                ctx.leader_replica(&topic.topic.0, p.partition)
                    .and_then(|(replica, epoch)| {
                        Context::check_epoch(p.current_leader_epoch, epoch)
                            .map(|()| (replica, epoch))
                    })
            } else {
                Err(ResponseError::TopicAuthorizationFailed)
            };
            wanted.push(Wanted {
                topic: t,
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: usize::try_from(p.partition_max_bytes.max(0)).unwrap_or(0),
                replica,
            });
        }
    }
    let response_max = if version >= 3 {
        usize::try_from(req.max_bytes.max(0))
            .unwrap_or(0)
            .min(FETCH_RESPONSE_MAX)
    } else {
        FETCH_RESPONSE_MAX
    };
    let wanted = Arc::new(wanted);
    let min_bytes = usize::try_from(req.min_bytes.max(0)).unwrap_or(0);
    let wait = Duration::from_millis(u64::try_from(req.max_wait_ms.max(0)).unwrap_or(0));
    let deadline = Instant::now() + wait.min(FETCH_WAIT_MAX);
    let mut watches: Vec<_> = wanted
        .iter()
        .filter_map(|w| w.replica.as_ref().ok())
        .map(|(replica, _)| replica.sm.high_watermark())
        .collect();
    let mut shutdown = ctx.handles().shutdown.clone();
    let partitions = loop {
        for watch in &mut watches {
            watch.borrow_and_update();
        }
        // Reading segment files blocks: off the async workers.
        let reading = wanted.clone();
        let read = tokio::task::spawn_blocking(move || read_all(&reading, response_max)).await;
        let Ok((partitions, bytes, errors)) = read else {
            tracing::error!("a fetch read failed");
            break Vec::new();
        };
        if bytes >= min_bytes.max(1)
            || errors
            || watches.is_empty()
            || Instant::now() >= deadline
            || *shutdown.borrow()
        {
            break partitions;
        }
        let changed =
            futures_util::future::select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.changed() => {}
        }
    };
    let mut responses: Vec<FetchableTopicResponse> = req
        .topics
        .iter()
        .map(|t| {
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_topic_id(t.topic_id)
        })
        .collect();
    for (w, data) in wanted.iter().zip(partitions) {
        responses[w.topic].partitions.push(data);
    }
    FetchResponse::default().with_responses(responses)
}

/// Reads every partition once; also says how many bytes came back and whether any partition
/// failed (an error is answered at once, as Kafka does).
fn read_all(wanted: &[Wanted], response_max: usize) -> (Vec<PartitionData>, usize, bool) {
    let mut total = 0usize;
    let mut errors = false;
    let out = wanted
        .iter()
        .map(|w| {
            let base = PartitionData::default()
                .with_partition_index(w.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_preferred_read_replica(kafka_protocol::messages::BrokerId(-1));
            let (replica, _) = match &w.replica {
                Ok(r) => r,
                Err(e) => {
                    errors = true;
                    return base.with_error_code(e.code());
                }
            };
            let hw = *replica.sm.high_watermark().borrow();
            let log = replica.store.log();
            let log = log.read().unwrap_or_else(|p| p.into_inner());
            let start = log.log_start_offset().0;
            let base = base
                .with_high_watermark(hw.0)
                .with_last_stable_offset(hw.0)
                .with_log_start_offset(start);
            // The first batch of a response comes back even when larger than the limits.
            let room = if total == 0 {
                w.max_bytes.max(1)
            } else {
                w.max_bytes.min(response_max.saturating_sub(total))
            };
            if total > 0 && room == 0 {
                return base.with_records(Some(Bytes::new()));
            }
            match log.read(Offset(w.offset), hw, room) {
                Ok(batches) => {
                    total += batches.bytes.len();
                    base.with_records(Some(Bytes::from(batches.bytes)))
                }
                Err(LogError::OffsetOutOfRange { .. }) => {
                    errors = true;
                    base.with_error_code(ResponseError::OffsetOutOfRange.code())
                }
                Err(e) => {
                    errors = true;
                    tracing::error!(partition = w.partition, error = %e, "fetch cannot read the log");
                    base.with_error_code(ResponseError::KafkaStorageError.code())
                }
            }
        })
        .collect();
    (out, total, errors)
}

/// The ListOffsets answer: earliest (-2), latest (-1), or the first offset at or after a
/// timestamp.
pub async fn list_offsets(
    ctx: Context,
    req: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    // A timestamp lookup reads segment files: off the async workers.
    let answer = tokio::task::spawn_blocking(move || list_offsets_now(&ctx, &req, version)).await;
    answer.unwrap_or_else(|e| {
        tracing::error!(error = %e, "ListOffsets failed");
        ListOffsetsResponse::default()
    })
}

fn list_offsets_now(ctx: &Context, req: &ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let topics = req
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let base = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1);
                    match list_one(
                        ctx,
                        &topic.name,
                        p.partition_index,
                        p.current_leader_epoch,
                        p.timestamp,
                    ) {
                        Ok((offset, timestamp, epoch)) => base
                            .with_offset(offset)
                            .with_timestamp(timestamp)
                            // The field exists from v4; earlier versions refuse a value.
                            .with_leader_epoch(if version >= 4 { epoch } else { -1 }),
                        Err(e) => base.with_error_code(e.code()),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

fn list_one(
    ctx: &Context,
    topic: &TopicName,
    partition: i32,
    client_epoch: i32,
    timestamp: i64,
) -> Result<(i64, i64, i32), ResponseError> {
    if !ctx.authorized(Operation::Describe, Resource::topic(topic)) {
        return Err(ResponseError::TopicAuthorizationFailed);
    }
    let (replica, epoch) = ctx.leader_replica(&topic.0, partition)?;
    Context::check_epoch(client_epoch, epoch)?;
    let hw = *replica.sm.high_watermark().borrow();
    let log = replica.store.log();
    let log = log.read().unwrap_or_else(|p| p.into_inner());
    match timestamp {
        -2 => Ok((log.log_start_offset().0, -1, epoch)),
        -1 => Ok((hw.0, -1, epoch)),
        t if t >= 0 => match log.offset_for_timestamp(t, hw) {
            Ok(Some((offset, ts))) => Ok((offset.0, ts, epoch)),
            Ok(None) => Ok((-1, -1, epoch)),
            Err(e) => {
                tracing::error!(partition, error = %e, "timestamp lookup cannot read the log");
                Err(ResponseError::KafkaStorageError)
            }
        },
        _ => Err(ResponseError::InvalidRequest),
    }
}

/// The OffsetForLeaderEpoch answer: where each asked-for epoch ends in the leader's log.
pub async fn offset_for_leader_epoch(
    ctx: Context,
    req: OffsetForLeaderEpochRequest,
    _version: i16,
) -> OffsetForLeaderEpochResponse {
    // An epoch lookup may read segment files: off the async workers.
    let answer = tokio::task::spawn_blocking(move || epoch_ends_now(&ctx, &req)).await;
    answer.unwrap_or_else(|e| {
        tracing::error!(error = %e, "OffsetForLeaderEpoch failed");
        OffsetForLeaderEpochResponse::default()
    })
}

fn epoch_ends_now(
    ctx: &Context,
    req: &OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = req
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let base = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let describable =
                        ctx.authorized(Operation::Describe, Resource::topic(&topic.topic));
                    let found = describable
                        .then_some(())
                        .ok_or(ResponseError::TopicAuthorizationFailed)
                        .and_then(|()| ctx.leader_replica(&topic.topic.0, p.partition))
                        .and_then(|(replica, epoch)| {
                            Context::check_epoch(p.current_leader_epoch, epoch)?;
                            let log = replica.store.log();
                            let log = log.read().unwrap_or_else(|p| p.into_inner());
                            let asked = u64::try_from(p.leader_epoch).unwrap_or(0);
                            log.term_end(strand_log::Term(asked)).map_err(|e| {
                                tracing::error!(error = %e, "epoch lookup cannot read the log");
                                ResponseError::KafkaStorageError
                            })
                        });
                    match found {
                        Ok(Some((term, end))) => base
                            .with_leader_epoch(i32::try_from(term.0).unwrap_or(i32::MAX))
                            .with_end_offset(end.0),
                        Ok(None) => base,
                        Err(e) => base.with_error_code(e.code()),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
