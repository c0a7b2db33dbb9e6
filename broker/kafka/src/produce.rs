//! Produce: batches checked, shaped by their topic's config (`compression.type`,
//! `message.timestamp.type`; `min.insync.replicas` for acks=all), handed to their partitions'
//! Raft groups in request order, and answered once committed (acks=1 is served as acks=all;
//! acks=0 gets no answer). Internal topics take no client writes.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use strand_log::{BatchHeader, Compression};

use super::{Context, Pending};
use crate::producers::Verdict;
use crate::registry::{PartitionReplica, Submitted};

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

/// Checks a partition's records: exactly one RecordBatch v2 with a good CRC, within the
/// topic's `max.message.bytes`.
fn check(
    records: Option<&Bytes>,
    max_message_bytes: u32,
) -> Result<BatchHeader, (ResponseError, String)> {
    let Some(records) = records.filter(|r| !r.is_empty()) else {
        return Err((ResponseError::InvalidRecord, "no records".into()));
    };
    if records.len() > max_message_bytes as usize {
        return Err((
            ResponseError::MessageTooLarge,
            format!(
                "batch of {} bytes is over the topic's max.message.bytes of {max_message_bytes}",
                records.len()
            ),
        ));
    }
    let header = BatchHeader::parse(records).map_err(|e| match e {
        strand_log::BatchError::Magic(_) => {
            (ResponseError::UnsupportedForMessageFormat, e.to_string())
        }
        _ => (ResponseError::CorruptMessage, e.to_string()),
    })?;
    strand_log::verify_crc(records).map_err(|e| (ResponseError::CorruptMessage, e.to_string()))?;
    if header.is_transactional_or_control() {
        return Err((
            ResponseError::InvalidRecord,
            "transactional and control batches are not supported".into(),
        ));
    }
    Ok(header)
}

/// What a topic's config asks of the batches produced to it.
struct TopicRules {
    max_message_bytes: u32,
    min_insync_replicas: u32,
    /// The codec batches are stored with; `None` keeps the producer's.
    compression: Option<Compression>,
    log_append_time: bool,
}

impl TopicRules {
    /// The rules of a topic's config; Kafka's defaults for a topic unknown here.
    fn of(config: Option<strand_meta::TopicConfig>) -> TopicRules {
        use strand_meta::{CompressionType, TimestampType};
        let config = config.unwrap_or_default();
        TopicRules {
            max_message_bytes: config.max_message_bytes,
            min_insync_replicas: config.min_insync_replicas,
            compression: match config.compression_type {
                CompressionType::Producer => None,
                CompressionType::Uncompressed => Some(Compression::None),
                CompressionType::Gzip => Some(Compression::Gzip),
                CompressionType::Snappy => Some(Compression::Snappy),
                CompressionType::Lz4 => Some(Compression::Lz4),
                CompressionType::Zstd => Some(Compression::Zstd),
            },
            log_append_time: config.message_timestamp_type == TimestampType::LogAppendTime,
        }
    }

    /// The batch as the topic stores it: recompressed when `compression.type` names another
    /// codec than the producer's, its timestamps the broker's under `LogAppendTime` (then with
    /// that time).
    fn conform(
        &self,
        records: Bytes,
        header: &BatchHeader,
    ) -> Result<(Bytes, i64), (ResponseError, String)> {
        let recompress = self.compression.filter(|c| *c != header.compression());
        if recompress.is_none() && !self.log_append_time {
            return Ok((records, -1));
        }
        let mut bytes = match recompress {
            Some(codec) => strand_log::recompress(&records, codec).map_err(|e| {
                (
                    ResponseError::CorruptMessage,
                    format!("cannot recompress the batch for the topic's compression.type: {e}"),
                )
            })?,
            None => records.to_vec(),
        };
        let mut log_append_time = -1;
        if self.log_append_time {
            log_append_time = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            strand_log::set_log_append_time(&mut bytes, log_append_time);
        }
        Ok((Bytes::from(bytes), log_append_time))
    }
}

/// Why an acks=all write to a partition must be refused: fewer replicas in sync (Kafka's ISR,
/// as Metadata reports it) than the topic's `min.insync.replicas`.
fn too_few_in_sync(
    ctx: &Context,
    meta: &strand_meta::Topic,
    partition: i32,
    min_insync_replicas: u32,
) -> Option<String> {
    let topic = &meta.name;
    let index = u32::try_from(partition).ok()?;
    let assignment = meta.partitions.get(index as usize)?;
    let in_sync = ctx.in_sync(meta.id, index, &assignment.replicas);
    (in_sync.len() < min_insync_replicas as usize).then(|| {
        let brokers: Vec<String> = in_sync.iter().map(|b| b.0.to_string()).collect();
        format!(
            "{topic}-{partition} has {} replicas in sync (brokers [{}]), fewer than its min.insync.replicas of {min_insync_replicas}",
            in_sync.len(),
            brokers.join(", ")
        )
    })
}

/// Checks an idempotent producer's batch: a retry of a written batch is answered with its
/// offset, a gap or an old epoch is refused, and anything else is reserved and written.
fn check_idempotent(
    replica: &PartitionReplica,
    header: &BatchHeader,
    index: i32,
) -> Result<(), Box<Slot>> {
    use openraft::async_runtime::WatchReceiver;
    let (leading, applied_term, term) = {
        let watch = replica.raft.metrics();
        let metrics = watch.borrow_watched();
        (
            metrics.state == openraft::ServerState::Leader,
            metrics.last_applied.map(|l| l.leader_id.term),
            metrics.current_term,
        )
    };
    // Leadership first, as Kafka checks it: a follower's producer state lags the leader's, so
    // a batch sent to a replica that just stopped leading looked like a sequence gap there
    // (OUT_OF_ORDER_SEQUENCE_NUMBER, fatal to an idempotent client) instead of being sent on
    // to the new leader.
    if !leading {
        return Err(Box::new(failed(
            index,
            ResponseError::NotLeaderOrFollower,
            "this replica does not lead the partition",
        )));
    }
    // Until this leader has applied its own first entry, earlier leaders' batches may still be
    // unapplied, and a retry of one of them would not be recognised.
    if applied_term != Some(term) {
        return Err(Box::new(failed(
            index,
            ResponseError::NotLeaderOrFollower,
            "the new leader is still applying earlier entries",
        )));
    }
    match replica.producers.check(term, header) {
        Verdict::Append => Ok(()),
        Verdict::Duplicate(base_offset) => Err(Box::new(Slot::Done(
            PartitionProduceResponse::default()
                .with_index(index)
                .with_base_offset(base_offset)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1),
        ))),
        Verdict::InFlight => Err(Box::new(failed(
            index,
            ResponseError::RequestTimedOut,
            "an earlier attempt of this batch is still being replicated",
        ))),
        Verdict::Refused(e) => Err(Box::new(failed(index, e, e.to_string()))),
    }
}

/// Starts a produce: every batch is checked and handed to Raft before this returns.
pub async fn produce(ctx: Context, req: ProduceRequest, version: i16) -> Pending {
    let _ = version;
    let acks = req.acks;
    if !matches!(acks, -1..=1) {
        let response = answer_all(&req, ResponseError::InvalidRequiredAcks);
        return Box::pin(async move { Some(ResponseKind::Produce(response)) });
    }
    let state = ctx.state();
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for topic in req.topic_data {
        let name = topic.name.0.to_string();
        let meta = state.topic_by_name(&name);
        let rules =
            TopicRules::of(meta.and_then(|t| strand_meta::validate_topic_config(&t.config).ok()));
        let mut slots = Vec::with_capacity(topic.partition_data.len());
        for data in topic.partition_data {
            let index = data.index;
            // Clients may not write internal topics; the broker writes offset commits through
            // its own path (`groups.rs`), not this one. Kafka answers the same
            // (ReplicaManager.appendToLocalLog: "Cannot append to internal topic").
            if meta.is_some_and(strand_meta::Topic::is_internal) {
                slots.push(failed(
                    index,
                    ResponseError::InvalidTopicException,
                    format!("cannot append to internal topic `{name}`"),
                ));
                continue;
            }
            let replica = match ctx.leader_replica(&name, index) {
                Ok((replica, _)) => replica,
                Err(e) => {
                    slots.push(failed(index, e, format!("{name}-{index} is not led here")));
                    continue;
                }
            };
            if let Some(message) = short_of_space(&ctx, &state, &name, index) {
                slots.push(failed(index, ResponseError::KafkaStorageError, message));
                continue;
            }
            // The leader itself is always in sync, so one replica needs no look.
            if acks == -1
                && rules.min_insync_replicas > 1
                && let Some(message) = meta
                    .and_then(|meta| too_few_in_sync(&ctx, meta, index, rules.min_insync_replicas))
            {
                slots.push(failed(index, ResponseError::NotEnoughReplicas, message));
                continue;
            }
            let header = match check(data.records.as_ref(), rules.max_message_bytes) {
                Ok(header) => header,
                Err((e, message)) => {
                    slots.push(failed(index, e, message));
                    continue;
                }
            };
            let (records, log_append_time) =
                match rules.conform(data.records.unwrap_or_default(), &header) {
                    Ok(conformed) => conformed,
                    Err((e, message)) => {
                        slots.push(failed(index, e, message));
                        continue;
                    }
                };
            if header.producer_id >= 0
                && let Err(done) = check_idempotent(&replica, &header, index)
            {
                slots.push(*done);
                continue;
            }
            let batch = strand_raft::Batch(records);
            let log_start_offset = replica
                .store
                .log()
                .read()
                .map(|l| l.log_start_offset().0)
                .unwrap_or(-1);
            match replica.submit(batch).await {
                Ok(submitted) => slots.push(Slot::Waiting {
                    index,
                    log_start_offset,
                    log_append_time,
                    submitted,
                }),
                Err(message) => {
                    if header.producer_id >= 0 {
                        replica.producers.unreserve(&header);
                    }
                    slots.push(failed(index, ResponseError::NotLeaderOrFollower, message))
                }
            }
        }
        topics.push((topic.name, slots));
    }
    let timeout = Duration::from_millis(u64::try_from(req.timeout_ms.max(0)).unwrap_or(0));
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
                    } => match tokio::time::timeout(timeout, submitted.applied()).await {
                        Ok(Ok(applied)) => PartitionProduceResponse::default()
                            .with_index(index)
                            .with_base_offset(applied.base_offset.0)
                            .with_log_append_time_ms(log_append_time)
                            .with_log_start_offset(log_start_offset),
                        // The batch is in the log and may still commit: it stays reserved
                        // (see `ProducerState::unreserve`), and a retry is told it is in
                        // flight until it is applied or the term ends.
                        Ok(Err(message)) => {
                            error_response(index, ResponseError::NotLeaderOrFollower, message)
                        }
                        Err(_) => error_response(
                            index,
                            ResponseError::RequestTimedOut,
                            format!(
                                "not committed within the request's {} ms",
                                timeout.as_millis()
                            ),
                        ),
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

/// Why a partition must not take writes now: a broker holding one of its replicas is short of
/// disk space (this one, as measured here, or another, as the controller last heard).
fn short_of_space(
    ctx: &Context,
    state: &strand_meta::ClusterState,
    topic: &str,
    partition: i32,
) -> Option<String> {
    let disk = &ctx.inner.disk;
    if disk.is_low() {
        return Some(format!(
            "broker {} has {} bytes of disk free, below its reserve of {}; retry once space is freed",
            ctx.inner.identity.broker_id,
            disk.free(),
            disk.reserve()
        ));
    }
    let hosts = state
        .topic_by_name(topic)?
        .partitions
        .get(usize::try_from(partition).ok()?)?
        .hosts()
        .collect::<Vec<_>>();
    let full = hosts.into_iter().find(|b| ctx.inner.views.disk_low(*b))?;
    Some(format!(
        "broker {full}, which holds a replica of {topic}-{partition}, is nearly out of disk space; retry once space is freed"
    ))
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
            .inner
            .producer_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(id) = ids.next() {
            return Ok(id);
        }
    }
    let outcome = ctx
        .inner
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
    let crate::meta::Outcome::Done {
        first_producer_id: Some(first),
        ..
    } = outcome
    else {
        return Err(ResponseError::CoordinatorNotAvailable);
    };
    let mut ids = ctx
        .inner
        .producer_ids
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    *ids = first + 1..first + PRODUCER_ID_BLOCK;
    Ok(first)
}
