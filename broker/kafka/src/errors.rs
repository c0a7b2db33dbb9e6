//! Kafka error codes for the broker's typed refusals, each mapping in one place: appends
//! ([`AppendError`]) and admin calls ([`Refusal`]).

use kafka_protocol::ResponseError;
use strand_node::{AppendError, Refusal};
use strand_proto::admin::ErrorReason;

/// The Kafka error for a refused append: the one place this mapping lives (offset commits
/// map the same refusals to the coordinator's errors, as Kafka does, in [`commit_error_code`]).
pub fn append_error_code(error: &AppendError) -> ResponseError {
    match error {
        AppendError::NoRecords | AppendError::Transactional => ResponseError::InvalidRecord,
        AppendError::TooLarge { .. } => ResponseError::MessageTooLarge,
        AppendError::UnsupportedFormat(_) => ResponseError::UnsupportedForMessageFormat,
        AppendError::Corrupt(_) => ResponseError::CorruptMessage,
        AppendError::InternalTopic(_) => ResponseError::InvalidTopicException,
        AppendError::UnknownPartition(_) => ResponseError::UnknownTopicOrPartition,
        AppendError::NotLeader(_) => ResponseError::NotLeaderOrFollower,
        AppendError::Storage(_) => ResponseError::KafkaStorageError,
        AppendError::NotEnoughReplicas(_) => ResponseError::NotEnoughReplicas,
        AppendError::NotEnoughReplicasAfterAppend(_) => ResponseError::NotEnoughReplicasAfterAppend,
        AppendError::TimedOut(_) => ResponseError::RequestTimedOut,
        AppendError::Producer(code) => *code,
        AppendError::InFlight => ResponseError::RequestTimedOut,
    }
}

/// A refused admin call: the Kafka error and the message for the client.
pub type Refused = (ResponseError, String);

/// The Kafka error for a refused admin call.
pub fn refused(refusal: Refusal) -> Refused {
    let reason = ErrorReason::try_from(refusal.reason).ok();
    let code = match reason {
        Some(ErrorReason::TopicExists) => ResponseError::TopicAlreadyExists,
        Some(ErrorReason::UnknownTopic) => ResponseError::UnknownTopicOrPartition,
        Some(ErrorReason::InvalidTopicName) => ResponseError::InvalidTopicException,
        Some(ErrorReason::InvalidConfig) => ResponseError::InvalidConfig,
        Some(ErrorReason::NotEnoughBrokers) => ResponseError::InvalidReplicationFactor,
        Some(ErrorReason::InvalidPartitions) => ResponseError::InvalidPartitions,
        Some(ErrorReason::InvalidReplicationFactor) => ResponseError::InvalidReplicationFactor,
        Some(ErrorReason::NotController) => ResponseError::NotController,
        // The controller could not be reached or did not answer in time.
        Some(ErrorReason::Unavailable) => ResponseError::RequestTimedOut,
        Some(ErrorReason::UnknownBroker) => ResponseError::BrokerNotAvailable,
        Some(ErrorReason::UnknownPartition) => ResponseError::UnknownTopicOrPartition,
        Some(ErrorReason::BrokerState) => ResponseError::InvalidRequest,
        // Deleting, re-partitioning or re-replicating an internal topic. Apache Kafka's
        // controller checks no topic kind for DeleteTopics or CreatePartitions (only its old
        // `kafka-topics` tool refused to delete internal topics, on the client side); where it
        // does refuse an admin request for an internal topic, creating `__cluster_metadata`
        // (ControllerApis.createTopics), the answer is INVALID_REQUEST.
        Some(ErrorReason::InternalTopic) => ResponseError::InvalidRequest,
        // Kafka requests name no expected owner, so this does not arise from them.
        Some(ErrorReason::NotOwner) => ResponseError::InvalidRequest,
        Some(ErrorReason::InvalidAcl) => ResponseError::InvalidRequest,
        Some(ErrorReason::InvalidCredential) => ResponseError::UnacceptableCredential,
        Some(ErrorReason::UnknownUser) => ResponseError::ResourceNotFound,
        Some(ErrorReason::Unspecified) | None => ResponseError::UnknownServerError,
    };
    (code, refusal.message)
}

/// The Kafka error for a refused offset commit (an append to `__consumer_offsets`): Kafka's
/// coordinator answers a write it could not make with the coordinator's errors, so the client
/// looks for the coordinator again or retries (GroupMetadataManager.storeOffsets).
pub fn commit_error_code(error: &AppendError) -> ResponseError {
    match append_error_code(error) {
        ResponseError::UnknownTopicOrPartition
        | ResponseError::NotEnoughReplicas
        | ResponseError::RequestTimedOut => ResponseError::CoordinatorNotAvailable,
        ResponseError::NotLeaderOrFollower | ResponseError::KafkaStorageError => {
            ResponseError::NotCoordinator
        }
        ResponseError::MessageTooLarge => ResponseError::InvalidCommitOffsetSize,
        other => other,
    }
}
