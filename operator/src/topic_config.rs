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
    /// Codec batches are stored with.
    #[serde(
        rename = "compression.type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub compression_type: Option<CompressionType>,
    /// How long delete markers stay in a compacted topic, in milliseconds.
    #[serde(
        rename = "delete.retention.ms",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 0))]
    pub delete_retention_ms: Option<i64>,
    /// Milliseconds between forced fsyncs; Strand fsyncs every Raft append regardless.
    #[serde(rename = "flush.ms", default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub flush_ms: Option<i64>,
    /// Largest record batch the topic accepts, in bytes.
    #[serde(
        rename = "max.message.bytes",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 0))]
    pub max_message_bytes: Option<i32>,
    /// Which timestamp records carry: `CreateTime` or `LogAppendTime`.
    #[serde(
        rename = "message.timestamp.type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub message_timestamp_type: Option<TimestampType>,
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
    /// Age at which a segment is closed, in milliseconds.
    #[serde(
        rename = "segment.ms",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1))]
    pub segment_ms: Option<i64>,
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
