//! The Kafka topic configuration a `Topic` resource declares, as typed values with a schema.
//!
//! The rules (known keys, bounds, allowed values) are not here: [`KEYS`], [`check_entry`] and
//! [`ConfigError`] are `strand-meta`'s, the same table the metadata group enforces. The
//! `Topic` resource embeds [`TopicConfig`], whose schema lets the API server reject bad values
//! at apply time; a test holds the schema to the table, so the two cannot drift apart.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use strand_meta::{ConfigError, KEYS, KeySpec, ValueKind, check_entry, key_spec};

/// The value types are `strand-meta`'s, with their schemas (its `schema` feature): one
/// definition of each for the broker, the operator and the CRDs.
pub use strand_meta::{CleanupPolicy, CompressionType, TimestampType};

/// Kafka topic config with typed values; absent keys take the cluster's defaults.
///
/// Field names are Kafka's keys, so the YAML reads like any Kafka topic config.
/// Unknown keys are refused: by the API server's field validation when applied with
/// `kubectl`, and by [`serde`] (`deny_unknown_fields`) everywhere else.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
// A structural CRD schema may not say `additionalProperties: false`; the API server prunes
// or refuses unknown fields on its own.
#[schemars(transform = allow_additional_properties)]
pub struct TopicConfig {
    /// What happens to old segments: `delete`, `compact` or `compact,delete`.
    #[serde(
        rename = "cleanup.policy",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cleanup_policy: Option<CleanupPolicy>,
    /// gzip level of batches the broker compresses (-1: the codec's default). Stored; not acted on.
    #[serde(
        rename = "compression.gzip.level",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = -1, max = 9))]
    pub compression_gzip_level: Option<i32>,
    /// LZ4 level of batches the broker compresses. Stored; not acted on.
    #[serde(
        rename = "compression.lz4.level",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1, max = 17))]
    pub compression_lz4_level: Option<i32>,
    /// Codec batches are stored with.
    #[serde(
        rename = "compression.type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub compression_type: Option<CompressionType>,
    /// zstd level of batches the broker compresses. Stored; not acted on.
    #[serde(
        rename = "compression.zstd.level",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = -131072, max = 22))]
    pub compression_zstd_level: Option<i32>,
    /// How long delete markers stay in a compacted topic, in milliseconds.
    #[serde(
        rename = "delete.retention.ms",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 0))]
    pub delete_retention_ms: Option<i64>,
    /// How long a deleted segment file is kept, in milliseconds. Stored; not acted on.
    #[serde(
        rename = "file.delete.delay.ms",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 0))]
    pub file_delete_delay_ms: Option<i64>,
    /// Records between forced fsyncs; Strand fsyncs every Raft append regardless.
    #[serde(
        rename = "flush.messages",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1))]
    pub flush_messages: Option<i64>,
    /// Milliseconds between forced fsyncs; Strand fsyncs every Raft append regardless.
    #[serde(rename = "flush.ms", default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub flush_ms: Option<i64>,
    /// Replicas throttled as followers: empty, `*`, or `partition:broker` pairs. Stored; not acted on.
    #[serde(
        rename = "follower.replication.throttled.replicas",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(regex(pattern = r"^\s*(\*|\d+\s*:\s*\d+(\s*,\s*\d+\s*:\s*\d+)*)?\s*$"))]
    pub follower_replication_throttled_replicas: Option<String>,
    /// Bytes between offset index entries. Stored; not acted on.
    #[serde(
        rename = "index.interval.bytes",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 0))]
    pub index_interval_bytes: Option<i32>,
    /// Replicas throttled as leaders: empty, `*`, or `partition:broker` pairs. Stored; not acted on.
    #[serde(
        rename = "leader.replication.throttled.replicas",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(regex(pattern = r"^\s*(\*|\d+\s*:\s*\d+(\s*,\s*\d+\s*:\s*\d+)*)?\s*$"))]
    pub leader_replication_throttled_replicas: Option<String>,
    /// Local bytes kept with tiered storage; `-2` for `retention.bytes`. Stored; not acted on.
    #[serde(
        rename = "local.retention.bytes",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = -2))]
    pub local_retention_bytes: Option<i64>,
    /// Local retention with tiered storage; `-2` for `retention.ms`. Stored; not acted on.
    #[serde(
        rename = "local.retention.ms",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = -2))]
    pub local_retention_ms: Option<i64>,
    /// Longest a record stays uncompacted, in milliseconds. Stored; not acted on.
    #[serde(
        rename = "max.compaction.lag.ms",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1))]
    pub max_compaction_lag_ms: Option<i64>,
    /// Largest record batch the topic accepts, in bytes.
    #[serde(
        rename = "max.message.bytes",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 0))]
    pub max_message_bytes: Option<i32>,
    /// Whether old clients get down-converted batches. Stored; not acted on.
    #[serde(
        rename = "message.downconversion.enable",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub message_downconversion_enable: Option<bool>,
    /// How far a record's timestamp may be ahead of the broker's clock, in milliseconds. Stored; not acted on yet.
    #[serde(
        rename = "message.timestamp.after.max.ms",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 0))]
    pub message_timestamp_after_max_ms: Option<i64>,
    /// How far a record's timestamp may be behind the broker's clock, in milliseconds. Stored; not acted on yet.
    #[serde(
        rename = "message.timestamp.before.max.ms",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 0))]
    pub message_timestamp_before_max_ms: Option<i64>,
    /// Kafka's older form of the two bounds above. Stored; not acted on.
    #[serde(
        rename = "message.timestamp.difference.max.ms",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 0))]
    pub message_timestamp_difference_max_ms: Option<i64>,
    /// Which timestamp records carry: `CreateTime` or `LogAppendTime`.
    #[serde(
        rename = "message.timestamp.type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub message_timestamp_type: Option<TimestampType>,
    /// Share of a log that must be uncompacted before compaction runs, from 0 to 1. Stored; compaction runs on the retention timer.
    #[serde(
        rename = "min.cleanable.dirty.ratio",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 0, max = 1))]
    pub min_cleanable_dirty_ratio: Option<serde_json::Number>,
    /// Minimum age of a record before compaction may remove it, in milliseconds.
    #[serde(
        rename = "min.compaction.lag.ms",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 0))]
    pub min_compaction_lag_ms: Option<i64>,
    /// Replicas that must be in sync for an `acks=all` write to be taken (fewer: refused with
    /// NOT_ENOUGH_REPLICAS); a taken write counts once a majority of replicas hold it.
    #[serde(
        rename = "min.insync.replicas",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1))]
    pub min_insync_replicas: Option<i32>,
    /// Whether segment files are preallocated. Stored; not acted on.
    #[serde(
        rename = "preallocate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub preallocate: Option<bool>,
    /// Tiered storage: stop copying segments. Stored; not acted on.
    #[serde(
        rename = "remote.log.copy.disable",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub remote_log_copy_disable: Option<bool>,
    /// Tiered storage: delete remote segments when it is disabled. Stored; not acted on.
    #[serde(
        rename = "remote.log.delete.on.disable",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub remote_log_delete_on_disable: Option<bool>,
    /// Tiered storage; Strand has none, so only `false` is taken.
    #[serde(
        rename = "remote.storage.enable",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(extend("enum" = [false]))]
    pub remote_storage_enable: Option<bool>,
    /// Bytes kept per partition before old segments are deleted; `-1` for no limit.
    #[serde(
        rename = "retention.bytes",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = -1))]
    pub retention_bytes: Option<i64>,
    /// How long records are kept, in milliseconds; `-1` for ever.
    #[serde(
        rename = "retention.ms",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = -1))]
    pub retention_ms: Option<i64>,
    /// Size at which a segment is closed, in bytes.
    #[serde(
        rename = "segment.bytes",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 14))]
    pub segment_bytes: Option<i32>,
    /// Size of a segment's index, in bytes. Stored; not acted on.
    #[serde(
        rename = "segment.index.bytes",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 4))]
    pub segment_index_bytes: Option<i32>,
    /// Random jitter subtracted from `segment.ms`, in milliseconds. Stored; not acted on.
    #[serde(
        rename = "segment.jitter.ms",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 0))]
    pub segment_jitter_ms: Option<i64>,
    /// Age at which a segment is closed, in milliseconds.
    #[serde(
        rename = "segment.ms",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1))]
    pub segment_ms: Option<i64>,
    /// Whether an out-of-sync replica may lead. Stored; Raft elects only replicas holding every committed record.
    #[serde(
        rename = "unclean.leader.election.enable",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub unclean_leader_election_enable: Option<bool>,
}

fn allow_additional_properties(schema: &mut schemars::Schema) {
    if let Some(object) = schema.as_object_mut() {
        object.remove("additionalProperties");
    }
}

impl TopicConfig {
    /// The config in Kafka's string form, as the admin API takes it, sorted by key.
    pub fn to_entries(&self) -> BTreeMap<String, String> {
        let value = serde_json::to_value(self).expect("topic config serializes to json");
        let serde_json::Value::Object(map) = value else {
            unreachable!("topic config serializes to a json object")
        };
        map.into_iter()
            .map(|(key, value)| {
                let value = match value {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (key, value)
            })
            .collect()
    }

    /// Every entry that breaks a rule of [`KEYS`]; empty when the config is valid.
    ///
    /// Typed fields cannot hold an unknown key or a malformed value, but they can hold a value
    /// out of range (a negative `segment.ms`), which only the schema would otherwise catch.
    pub fn violations(&self) -> Vec<ConfigError> {
        self.to_entries()
            .iter()
            .filter_map(|(key, value)| check_entry(key, value).err())
            .collect()
    }

    /// Checks the config against [`KEYS`], reporting the first broken rule.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.violations().into_iter().next() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
