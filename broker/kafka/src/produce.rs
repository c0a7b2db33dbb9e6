//! Produce: batches checked, shaped by their topic's config (`compression.type`,
//! `message.timestamp.type`; `min.insync.replicas` for acks=all), handed to their partitions'
//! Raft groups in request order, and answered once committed (acks=1 is served as acks=all;
//! acks=0 gets no answer). Internal topics take no client writes.

use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use strand_auth::{Operation, ResourceType};
use strand_node::registry::Submitted;
use strand_node::{AppendError, Appended, Writer};

use crate::errors::append_error_code;

use crate::context::Context;
use crate::dispatch::Pending;
use crate::security::Resource;

/// One partition's part of the answer, before or after the commit.
enum Slot {
    Done(PartitionProduceResponse),
    Waiting {
        index: i32,
        log_start_offset: i64,
        /// The time stamped into the batch under `LogAppendTime`; -1 otherwise.
        log_append_time: i64,
        submitted: Submitted,
    },
}

fn error_response(
    index: i32,
    error: ResponseError,
    message: impl Into<String>,
) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(Some(StrBytes::from_string(message.into())))
}

fn failed(index: i32, error: ResponseError, message: impl Into<String>) -> Slot {
    Slot::Done(error_response(index, error, message))
}

fn refused(index: i32, error: &AppendError) -> Slot {
    failed(index, append_error_code(error), error.to_string())
}

/// Starts a produce: every batch is checked and handed to Raft before this returns.
pub async fn produce(ctx: Context, req: ProduceRequest, version: i16) -> Pending {
    let _ = version;
    let acks = req.acks;
    if !matches!(acks, -1..=1) {
        let response = answer_all(&req, ResponseError::InvalidRequiredAcks);
        return Box::pin(async move { Some(ResponseKind::Produce(response)) });
    }
    let writer = Writer::Client {
        acks_all: acks == -1,
    };
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for topic in req.topic_data {
        let name = topic.name.0.to_string();
        let mut slots = Vec::with_capacity(topic.partition_data.len());
        let writable = ctx.authorized(Operation::Write, Resource::topic(&name));
        for data in topic.partition_data {
            let index = data.index;
            if !writable {
                slots.push(failed(
                    index,
                    ResponseError::TopicAuthorizationFailed,
                    "not authorized to write to the topic",
                ));
                continue;
            }
            let appended = ctx
                .handles()
                .replicas
                .append(&name, index, data.records, writer)
                .await;
            slots.push(match appended {
                Ok(Appended::Submitted {
                    submitted,
                    log_start_offset,
                    log_append_time,
                }) => Slot::Waiting {
                    index,
                    log_start_offset,
                    log_append_time,
                    submitted,
                },
                Ok(Appended::Duplicate(base_offset)) => Slot::Done(
                    PartitionProduceResponse::default()
                        .with_index(index)
                        .with_base_offset(base_offset)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1),
                ),
                Err(e) => refused(index, &e),
            });
        }
        topics.push((topic.name, slots));
    }
    let timeout = Duration::from_millis(u64::try_from(req.timeout_ms.max(0)).unwrap_or(0));
    let deadline = tokio::time::Instant::now() + timeout;
    Box::pin(async move {
        let mut responses = Vec::with_capacity(topics.len());
        for (name, slots) in topics {
            let mut partitions = Vec::with_capacity(slots.len());
            for slot in slots {
                partitions.push(match slot {
                    Slot::Done(done) => done,
                    Slot::Waiting {
                        index,
                        log_start_offset,
                        log_append_time,
                        submitted,
                    } => match submitted.applied_by(Some(deadline)).await {
                        Ok(applied) => PartitionProduceResponse::default()
                            .with_index(index)
                            .with_base_offset(applied.base_offset.0)
                            .with_log_append_time_ms(log_append_time)
                            .with_log_start_offset(log_start_offset),
                        // The batch is in the log and may still commit: it stays reserved
                        // (see `ProducerState::unreserve`), and a retry is told it is in
                        // flight until it is applied or the term ends.
                        Err(AppendError::TimedOut(_)) => error_response(
                            index,
                            ResponseError::RequestTimedOut,
                            format!(
                                "not committed within the request's {} ms",
                                timeout.as_millis()
                            ),
                        ),
                        Err(e) => error_response(index, append_error_code(&e), e.to_string()),
                    },
                });
            }
            responses.push(
                TopicProduceResponse::default()
                    .with_name(name)
                    .with_partition_responses(partitions),
            );
        }
        (acks != 0)
            .then(|| ResponseKind::Produce(ProduceResponse::default().with_responses(responses)))
    })
}

/// Every partition of the request answered with one error.
fn answer_all(req: &ProduceRequest, error: ResponseError) -> ProduceResponse {
    ProduceResponse::default().with_responses(
        req.topic_data
            .iter()
            .map(|t| {
                TopicProduceResponse::default()
                    .with_name(t.name.clone())
                    .with_partition_responses(
                        t.partition_data
                            .iter()
                            .map(|p| error_response(p.index, error, error.to_string()))
                            .collect(),
                    )
            })
            .collect(),
    )
}

/// Producer ids a broker takes from the controller at a time.
const PRODUCER_ID_BLOCK: u64 = 1000;

/// InitProducerId: a new producer id with epoch 0, or (v3+) the caller's id with its epoch
/// bumped. Transactions are not supported, so a transactional id is refused.
pub async fn init_producer_id(
    ctx: Context,
    req: kafka_protocol::messages::InitProducerIdRequest,
    _version: i16,
) -> kafka_protocol::messages::InitProducerIdResponse {
    use kafka_protocol::messages::{InitProducerIdResponse, ProducerId};
    let failed = |e: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(e.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if req
        .transactional_id
        .as_ref()
        .is_some_and(|t| !t.0.is_empty())
    {
        return failed(ResponseError::TransactionalIdAuthorizationFailed);
    }
    // Kafka's rule for an idempotent producer: IdempotentWrite on the cluster, or Write on
    // some topic.
    if !ctx.authorized(Operation::IdempotentWrite, Resource::cluster())
        && !ctx.authorized_any(Operation::Write, ResourceType::Topic)
    {
        return failed(ResponseError::ClusterAuthorizationFailed);
    }
    if req.producer_id.0 >= 0 {
        return match req.producer_epoch.checked_add(1) {
            Some(epoch) if req.producer_epoch >= 0 => InitProducerIdResponse::default()
                .with_producer_id(req.producer_id)
                .with_producer_epoch(epoch),
            // An exhausted epoch starts over with a new id.
            _ => match next_producer_id(&ctx).await {
                Ok(id) => InitProducerIdResponse::default()
                    .with_producer_id(ProducerId(id as i64))
                    .with_producer_epoch(0),
                Err(e) => failed(e),
            },
        };
    }
    match next_producer_id(&ctx).await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id as i64))
            .with_producer_epoch(0),
        Err(e) => failed(e),
    }
}

/// The next producer id from this broker's block, taking a new block from the controller
/// when it is used up.
async fn next_producer_id(ctx: &Context) -> Result<u64, ResponseError> {
    {
        let mut ids = ctx
            .shared
            .producer_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(id) = ids.next() {
            return Ok(id);
        }
    }
    let outcome = ctx
        .handles()
        .cluster
        .propose(
            &strand_meta::Command::AllocateProducerIds {
                count: PRODUCER_ID_BLOCK,
            },
            Duration::from_secs(10),
        )
        .await
        .map_err(|refusal| {
            tracing::warn!(message = %refusal.message, "cannot allocate producer ids");
            ResponseError::CoordinatorNotAvailable
        })?;
    let strand_node::Outcome::Done {
        first_producer_id: Some(first),
        ..
    } = outcome
    else {
        return Err(ResponseError::CoordinatorNotAvailable);
    };
    let mut ids = ctx
        .shared
        .producer_ids
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    *ids = first + 1..first + PRODUCER_ID_BLOCK;
    Ok(first)
}
