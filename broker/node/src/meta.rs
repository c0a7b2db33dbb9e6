//! The metadata group's machine: cluster state built from metadata commands, which are stored
//! as records (one command per record value, JSON) in the group's log, as Kafka's own metadata
//! log does.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use strand_meta::{Applied as MetaApplied, ClusterState, Command, CommandError};
use strand_proto::admin::ErrorReason;
use strand_raft::{Batch, LogId, Machine, Offset};
use tokio::sync::watch;

/// The cluster state, shared with everything that watches metadata.
pub type SharedState = Arc<ClusterState>;

/// The result of a metadata command, as sent back to whoever proposed it (maybe over the
/// network, so it is plain data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Applied.
    Done {
        /// The topic the command created, when it created one.
        topic_id: Option<String>,
        /// The first id of an allocated producer id block.
        first_producer_id: Option<u64>,
    },
    /// Refused; the state is unchanged.
    Refused(Refusal),
}

/// Why a metadata command or admin request was refused, for a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The admin API's error reason, as its number.
    pub reason: i32,
    /// What went wrong.
    pub message: String,
    /// The config key at fault, for invalid config.
    pub config_key: Option<String>,
}

impl Refusal {
    /// A refusal with a reason and message.
    pub fn new(reason: ErrorReason, message: impl Into<String>) -> Refusal {
        Refusal {
            reason: reason as i32,
            message: message.into(),
            config_key: None,
        }
    }
}

/// Maps a metadata command error to the admin API's reason: the one place this mapping lives.
pub fn refusal(error: &CommandError) -> Refusal {
    use CommandError as E;
    let reason = match error {
        E::TopicAlreadyExists { .. } | E::TopicIdInUse { .. } => ErrorReason::TopicExists,
        E::UnknownTopicId { .. } | E::UnknownTopicName { .. } => ErrorReason::UnknownTopic,
        E::InvalidTopicName { .. } => ErrorReason::InvalidTopicName,
        E::InvalidConfig { .. } | E::ConflictingConfigChange { .. } => ErrorReason::InvalidConfig,
        E::NoPartitions { .. } | E::PartitionsMustIncrease { .. } | E::TooManyPartitions { .. } => {
            ErrorReason::InvalidPartitions
        }
        E::ZeroReplicationFactor | E::WrongReplicaCount { .. } | E::NoReplicas { .. } => {
            ErrorReason::InvalidReplicationFactor
        }
        E::UnknownBroker { .. } => ErrorReason::UnknownBroker,
        E::UnknownPartition { .. } => ErrorReason::UnknownPartition,
        E::BrokerHostsReplicas { .. } | E::DuplicateReplica { .. } => ErrorReason::BrokerState,
        E::NotEnoughBrokers { .. }
        | E::ReplicaOnUnknownBroker { .. }
        | E::ReplicaOnInactiveBroker { .. } => ErrorReason::NotEnoughBrokers,
        E::NotOwner { .. } => ErrorReason::NotOwner,
        E::InternalTopic { .. } => ErrorReason::InternalTopic,
        E::InvalidAcl(_) => ErrorReason::InvalidAcl,
        E::InvalidScramUser { .. } | E::InvalidScramIterations { .. } => {
            ErrorReason::InvalidCredential
        }
        E::UnknownScramCredential { .. } => ErrorReason::UnknownUser,
        _ => ErrorReason::Unspecified,
    };
    let config_key = match error {
        E::InvalidConfig { source, .. } => Some(source.key().to_string()),
        _ => None,
    };
    Refusal {
        reason: reason as i32,
        message: error.to_string(),
        config_key,
    }
}

fn outcome_of(result: Result<MetaApplied, CommandError>) -> Outcome {
    match result {
        Ok(MetaApplied::TopicCreated { topic_id }) => Outcome::Done {
            topic_id: Some(topic_id.0.to_string()),
            first_producer_id: None,
        },
        Ok(MetaApplied::ProducerIdsAllocated { first, .. }) => Outcome::Done {
            topic_id: None,
            first_producer_id: Some(first),
        },
        Ok(_) => Outcome::Done {
            topic_id: None,
            first_producer_id: None,
        },
        Err(e) => Outcome::Refused(refusal(&e)),
    }
}

/// Encodes a command as the record batch the metadata log stores.
pub fn encode_command(command: &Command, now_ms: i64) -> Batch {
    let json = command.to_bytes();
    Batch(Bytes::from(strand_log::build_batch(&[(
        None,
        Some(&json[..]),
        now_ms,
    )])))
}

/// The metadata machine: applies commands to the cluster state and publishes each new state.
pub struct MetaMachine {
    state: ClusterState,
    publish: watch::Sender<SharedState>,
}

impl MetaMachine {
    /// A machine starting from an empty cluster state, and the watch of its states.
    pub fn new() -> (MetaMachine, watch::Receiver<SharedState>) {
        let state = ClusterState::new();
        let (publish, watch) = watch::channel(Arc::new(state.clone()));
        (MetaMachine { state, publish }, watch)
    }
}

impl Machine for MetaMachine {
    fn apply(
        &mut self,
        log_id: LogId,
        batch: &Batch,
        _header: &strand_log::BatchHeader,
        _base_offset: Offset,
    ) -> Option<Bytes> {
        let records = match strand_log::decode_records(&batch.0) {
            Ok(records) => records,
            Err(e) => {
                tracing::error!(%log_id, error = %e, "metadata entry holds no readable records; skipped");
                return None;
            }
        };
        let mut last = None;
        for record in records {
            let outcome = match record.value.as_deref().map(Command::from_bytes) {
                Some(Ok(command)) => outcome_of(self.state.apply(&command)),
                Some(Err(e)) => {
                    Outcome::Refused(Refusal::new(ErrorReason::Unspecified, e.to_string()))
                }
                None => Outcome::Refused(Refusal::new(
                    ErrorReason::Unspecified,
                    "empty metadata record",
                )),
            };
            last = Some(outcome);
        }
        self.publish.send_replace(Arc::new(self.state.clone()));
        last.and_then(|o| serde_json::to_vec(&o).ok())
            .map(Bytes::from)
    }

    fn snapshot(&self) -> Vec<u8> {
        self.state.to_bytes()
    }

    fn restore(&mut self, state: &[u8]) -> io::Result<()> {
        self.state = if state.is_empty() {
            ClusterState::new()
        } else {
            ClusterState::from_bytes(state)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?
        };
        self.publish.send_replace(Arc::new(self.state.clone()));
        Ok(())
    }
}
