//! The APIs and versions this broker speaks, and ApiVersions.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, ResponseKind};

/// An API with the versions accepted and the versions advertised.
struct Api {
    key: ApiKey,
    /// The lowest version advertised. Produce advertises 0 although it accepts only 3 and up:
    /// librdkafka derives its compression support from Produce v0 being listed, and every
    /// client that sends compressed batches sends RecordBatch v2, so v3 or later, anyway.
    advertised_min: i16,
    min: i16,
    max: i16,
}

const fn api(key: ApiKey, min: i16, max: i16) -> Api {
    Api {
        key,
        advertised_min: min,
        min,
        max,
    }
}

/// Maximum versions stop before those that name topics by id only or belong to protocols
/// Strand does not implement (share groups, transactions).
const APIS: &[Api] = &[
    Api {
        key: ApiKey::Produce,
        advertised_min: 0,
        min: 3,
        max: 9,
    },
    api(ApiKey::Fetch, 4, 12),
    // v7 adds the max-timestamp lookup (-3), which is not implemented.
    api(ApiKey::ListOffsets, 1, 6),
    api(ApiKey::Metadata, 0, 12),
    // v9 is v8 for members of the consumer protocol (STALE_MEMBER_EPOCH); v10 names topics
    // by id.
    api(ApiKey::OffsetCommit, 2, 9),
    api(ApiKey::OffsetFetch, 1, 7),
    api(ApiKey::OffsetDelete, 0, 0),
    api(ApiKey::FindCoordinator, 0, 4),
    api(ApiKey::JoinGroup, 0, 9),
    api(ApiKey::Heartbeat, 0, 4),
    api(ApiKey::LeaveGroup, 0, 5),
    api(ApiKey::SyncGroup, 0, 5),
    api(ApiKey::DescribeGroups, 0, 5),
    api(ApiKey::ListGroups, 0, 4),
    api(ApiKey::ApiVersions, 0, 3),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 5),
    api(ApiKey::InitProducerId, 0, 4),
    api(ApiKey::OffsetForLeaderEpoch, 2, 4),
    api(ApiKey::DescribeConfigs, 1, 4),
    api(ApiKey::CreatePartitions, 0, 3),
    api(ApiKey::DeleteGroups, 0, 2),
    api(ApiKey::IncrementalAlterConfigs, 0, 1),
    api(ApiKey::DescribeCluster, 0, 1),
    // v0 (a handshake followed by raw SASL tokens, without SaslAuthenticate) is not spoken,
    // but advertised: librdkafka before 2.x enables SASL only when v0 is listed, then uses v1.
    Api {
        key: ApiKey::SaslHandshake,
        advertised_min: 0,
        min: 1,
        max: 1,
    },
    api(ApiKey::SaslAuthenticate, 0, 2),
    api(ApiKey::DescribeAcls, 1, 3),
    api(ApiKey::CreateAcls, 1, 3),
    api(ApiKey::DeleteAcls, 1, 3),
    api(ApiKey::ConsumerGroupHeartbeat, 0, 1),
    api(ApiKey::ConsumerGroupDescribe, 0, 1),
    api(ApiKey::DescribeUserScramCredentials, 0, 0),
    api(ApiKey::AlterUserScramCredentials, 0, 0),
];

/// Whether requests of this API and version are accepted.
/// Every (api key, version) the listener takes, for tests that walk them all.
#[cfg(test)]
pub(crate) fn supported_pairs() -> Vec<(i16, i16)> {
    APIS.iter()
        .flat_map(|api| (api.min..=api.max).map(move |v| (api.key as i16, v)))
        .collect()
}

pub fn supported(key: ApiKey, version: i16) -> bool {
    APIS.iter()
        .any(|a| a.key == key && (a.min..=a.max).contains(&version))
}

fn listed(keep: impl Fn(&Api) -> bool) -> Vec<ApiVersion> {
    APIS.iter()
        .filter(|a| keep(a))
        .map(|a| {
            ApiVersion::default()
                .with_api_key(a.key as i16)
                .with_min_version(a.advertised_min)
                .with_max_version(a.max)
        })
        .collect()
}

/// The ApiVersions answer.
pub fn api_versions() -> ResponseKind {
    ResponseKind::ApiVersions(ApiVersionsResponse::default().with_api_keys(listed(|_| true)))
}

/// The answer to an ApiVersions request of a version this broker does not speak: the error
/// and the ApiVersions range, which the client uses to retry with a version both speak.
pub fn unsupported_version() -> ResponseKind {
    ResponseKind::ApiVersions(
        ApiVersionsResponse::default()
            .with_error_code(ResponseError::UnsupportedVersion.code())
            .with_api_keys(listed(|a| a.key == ApiKey::ApiVersions)),
    )
}
