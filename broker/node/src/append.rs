//! What may be appended to a partition: a [`CheckedBatch`], the only thing a partition's Raft
//! group takes, and [`AppendError`], every reason a write is refused. Every writer (Kafka
//! Produce, the gRPC `Produce`, offset commits) goes through [`crate::Replicas::append`],
//! which applies the guards in one place.

use bytes::Bytes;
use kafka_protocol::ResponseError;
use strand_log::{BatchHeader, Compression};

/// Who is writing: the guards differ only where Kafka's do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// A client's produce; `acks_all` when it waits for every in-sync replica (acks=-1), which
    /// is when `min.insync.replicas` applies.
    Client {
        /// acks=-1.
        acks_all: bool,
    },
    /// The broker itself, for an internal topic (consumer group offsets): internal topics take
    /// only these, and they are always acks=all.
    Broker,
}

impl Writer {
    pub(crate) fn acks_all(self) -> bool {
        match self {
            Writer::Client { acks_all } => acks_all,
            Writer::Broker => true,
        }
    }
}

/// Why a write is refused. Each listener maps these to its protocol's errors in one place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// The request carried no records for the partition.
    #[error("no records")]
    NoRecords,
    /// The batch is larger than the topic's `max.message.bytes`.
    #[error("batch of {size} bytes is over the topic's max.message.bytes of {max}")]
    TooLarge {
        /// The batch's size.
        size: usize,
        /// The topic's limit.
        max: u32,
    },
    /// Not a RecordBatch of magic 2.
    #[error("{0}")]
    UnsupportedFormat(String),
    /// The batch is malformed or its CRC does not match.
    #[error("{0}")]
    Corrupt(String),
    /// Transactional and control batches are not taken yet.
    #[error("transactional and control batches are not supported")]
    Transactional,
    /// Clients may not write internal topics.
    #[error("cannot append to internal topic `{0}`")]
    InternalTopic(String),
    /// No such topic or partition.
    #[error("unknown topic or partition {0}")]
    UnknownPartition(String),
    /// This replica does not lead the partition (or stopped leading it before the write was
    /// committed).
    #[error("{0}")]
    NotLeader(String),
    /// A broker holding a replica is short of disk space, or the log could not be written.
    #[error("{0}")]
    Storage(String),
    /// Fewer replicas in sync than the topic's `min.insync.replicas` (acks=all only).
    #[error("{0}")]
    NotEnoughReplicas(String),
    /// The batch was committed, but fewer replicas than the topic's `min.insync.replicas`
    /// held it in time (acks=all only): it is in the log, and a retry may write it twice
    /// unless the producer is idempotent.
    #[error("{0}")]
    NotEnoughReplicasAfterAppend(String),
    /// The batch was not committed by the request's deadline; it may still be.
    #[error("{0}")]
    TimedOut(String),
    /// An idempotent producer's batch is out of sequence or of a fenced epoch.
    #[error("{0}")]
    Producer(ResponseError),
    /// An earlier attempt of the same idempotent batch is still being replicated.
    #[error("an earlier attempt of this batch is still being replicated")]
    InFlight,
}

/// What a topic's config asks of the batches written to it.
#[derive(Debug, Clone, Copy)]
pub struct TopicRules {
    /// `max.message.bytes`.
    pub max_message_bytes: u32,
    /// `min.insync.replicas`.
    pub min_insync_replicas: u32,
    /// The codec batches are stored with (`compression.type`); `None` keeps the producer's.
    pub compression: Option<Compression>,
    /// `message.timestamp.type=LogAppendTime`.
    pub log_append_time: bool,
}

impl TopicRules {
    /// The rules of a topic's config; Kafka's defaults for a topic unknown here.
    pub fn of(config: Option<strand_meta::TopicConfig>) -> TopicRules {
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
}

/// A batch that passed every check of its own bytes: exactly one RecordBatch v2, a good CRC,
/// within the topic's `max.message.bytes`, not transactional or control; stored with the
/// topic's codec and timestamp type. Its header is parsed once, here.
#[derive(Debug, Clone)]
pub struct CheckedBatch {
    records: Bytes,
    header: BatchHeader,
    log_append_time: i64,
}

impl CheckedBatch {
    /// Checks `records` against `rules` and shapes them as the topic stores them; `now_ms`
    /// is the time stamped under `LogAppendTime`.
    pub fn check(
        records: Option<Bytes>,
        rules: &TopicRules,
        now_ms: i64,
    ) -> Result<CheckedBatch, AppendError> {
        let Some(records) = records.filter(|r| !r.is_empty()) else {
            return Err(AppendError::NoRecords);
        };
        if records.len() > rules.max_message_bytes as usize {
            return Err(AppendError::TooLarge {
                size: records.len(),
                max: rules.max_message_bytes,
            });
        }
        let header = BatchHeader::parse(&records).map_err(|e| match e {
            strand_log::BatchError::Magic(_) => AppendError::UnsupportedFormat(e.to_string()),
            _ => AppendError::Corrupt(e.to_string()),
        })?;
        strand_log::verify_crc(&records).map_err(|e| AppendError::Corrupt(e.to_string()))?;
        if header.is_transactional_or_control() {
            return Err(AppendError::Transactional);
        }
        let recompress = rules.compression.filter(|c| *c != header.compression());
        if recompress.is_none() && !rules.log_append_time {
            return Ok(CheckedBatch {
                records,
                header,
                log_append_time: -1,
            });
        }
        let mut bytes = match recompress {
            Some(codec) => strand_log::recompress(&records, codec).map_err(|e| {
                AppendError::Corrupt(format!(
                    "cannot recompress the batch for the topic's compression.type: {e}"
                ))
            })?,
            None => records.to_vec(),
        };
        let mut log_append_time = -1;
        if rules.log_append_time {
            log_append_time = now_ms;
            strand_log::set_log_append_time(&mut bytes, log_append_time);
        }
        let header = BatchHeader::parse(&bytes).map_err(|e| AppendError::Corrupt(e.to_string()))?;
        Ok(CheckedBatch {
            records: Bytes::from(bytes),
            header,
            log_append_time,
        })
    }

    /// The batch's header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The time stamped into the batch under `LogAppendTime`; -1 otherwise.
    pub fn log_append_time(&self) -> i64 {
        self.log_append_time
    }

    /// The batch as Raft writes it.
    pub(crate) fn into_raft(self) -> strand_raft::Batch {
        strand_raft::Batch(self.records)
    }

    /// Whether an idempotent producer wrote it.
    pub(crate) fn is_idempotent(&self) -> bool {
        self.header.producer_id >= 0
    }
}
