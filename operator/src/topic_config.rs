//! The Kafka topic configuration Strand accepts: known keys, typed values and their bounds.
//!
//! This module knows nothing of Kubernetes. The `Topic` resource embeds [`TopicConfig`], whose
//! schema lets the API server reject bad values at apply time; `strand apply -f` and
//! `strand topic` check the same rules with [`TopicConfig::validate`] and [`check_entry`]
//! without a cluster. [`KEYS`] is the one table of rules: the typed struct's schema is tested
//! against it, so the two cannot drift apart.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a value of one config key may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// A decimal integer within `min..=max`.
    Int {
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
    /// Exactly one of these strings.
    OneOf(&'static [&'static str]),
}

/// One known topic config key and the values it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    /// The Kafka name of the key, such as `retention.ms`.
    pub name: &'static str,
    /// The values the key accepts.
    pub kind: ValueKind,
}

const I32_MAX: i64 = i32::MAX as i64;

/// Every topic config key Strand accepts, in Kafka's spelling, sorted by name.
///
/// Minimums follow Kafka's own: `-1` means "unlimited" for the retention keys, and a segment
/// must hold at least one record batch header (14 bytes).
pub const KEYS: &[KeySpec] = &[
    KeySpec {
        name: "cleanup.policy",
        kind: ValueKind::OneOf(&["delete", "compact", "compact,delete"]),
    },
    KeySpec {
        name: "compression.type",
        kind: ValueKind::OneOf(&["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]),
    },
    KeySpec {
        name: "delete.retention.ms",
        kind: ValueKind::Int {
            min: 0,
            max: i64::MAX,
        },
    },
    KeySpec {
        name: "flush.ms",
        kind: ValueKind::Int {
            min: 0,
            max: i64::MAX,
        },
    },
    KeySpec {
        name: "max.message.bytes",
        kind: ValueKind::Int {
            min: 0,
            max: I32_MAX,
        },
    },
    KeySpec {
        name: "message.timestamp.type",
        kind: ValueKind::OneOf(&["CreateTime", "LogAppendTime"]),
    },
    KeySpec {
        name: "min.compaction.lag.ms",
        kind: ValueKind::Int {
            min: 0,
            max: i64::MAX,
        },
    },
    KeySpec {
        name: "retention.bytes",
        kind: ValueKind::Int {
            min: -1,
            max: i64::MAX,
        },
    },
    KeySpec {
        name: "retention.ms",
        kind: ValueKind::Int {
            min: -1,
            max: i64::MAX,
        },
    },
    KeySpec {
        name: "segment.bytes",
        kind: ValueKind::Int {
            min: 14,
            max: I32_MAX,
        },
    },
    KeySpec {
        name: "segment.ms",
        kind: ValueKind::Int {
            min: 1,
            max: i64::MAX,
        },
    },
];

/// Why one config entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The key is not in [`KEYS`].
    #[error("unknown topic config key `{key}`")]
    UnknownKey {
        /// The key as given.
        key: String,
    },
    /// The value is not one of the strings the key accepts.
    #[error("`{key}` must be one of {}, not `{value}`", quoted(allowed))]
    NotOneOf {
        /// The key.
        key: String,
        /// The value as given.
        value: String,
        /// The accepted values.
        allowed: &'static [&'static str],
    },
    /// The value is not a decimal integer.
    #[error("`{key}` must be an integer, not `{value}`")]
    NotInteger {
        /// The key.
        key: String,
        /// The value as given.
        value: String,
    },
    /// The integer is outside the key's bounds.
    #[error("`{key}` must be between {min} and {max}, not {value}")]
    OutOfRange {
        /// The key.
        key: String,
        /// The value as given.
        value: i64,
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
}

impl ConfigError {
    /// The config key the error is about.
    pub fn key(&self) -> &str {
        match self {
            ConfigError::UnknownKey { key }
            | ConfigError::NotOneOf { key, .. }
            | ConfigError::NotInteger { key, .. }
            | ConfigError::OutOfRange { key, .. } => key,
        }
    }
}

fn quoted(allowed: &[&str]) -> String {
    allowed
        .iter()
        .map(|a| format!("`{a}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rules for `key`, if Strand knows it.
pub fn key_spec(key: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|spec| spec.name == key)
}

/// Checks one `key=value` entry in Kafka's string form, as `strand topic alter --config` and
/// the admin API carry them.
pub fn check_entry(key: &str, value: &str) -> Result<(), ConfigError> {
    let spec = key_spec(key).ok_or_else(|| ConfigError::UnknownKey {
        key: key.to_owned(),
    })?;
    match spec.kind {
        ValueKind::OneOf(allowed) if allowed.contains(&value) => Ok(()),
        ValueKind::OneOf(allowed) => Err(ConfigError::NotOneOf {
            key: key.to_owned(),
            value: value.to_owned(),
            allowed,
        }),
        ValueKind::Int { min, max } => {
            let parsed: i64 = value.parse().map_err(|_| ConfigError::NotInteger {
                key: key.to_owned(),
                value: value.to_owned(),
            })?;
            if (min..=max).contains(&parsed) {
                Ok(())
            } else {
                Err(ConfigError::OutOfRange {
                    key: key.to_owned(),
                    value: parsed,
                    min,
                    max,
                })
            }
        }
    }
}

/// `cleanup.policy`: what happens to old segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CleanupPolicy {
    /// Delete segments past retention.
    #[serde(rename = "delete")]
    Delete,
    /// Keep the latest record of every key.
    #[serde(rename = "compact")]
    Compact,
    /// Compact, and also delete past retention.
    #[serde(rename = "compact,delete")]
    CompactDelete,
}

/// `compression.type`: how the broker stores batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CompressionType {
    /// Keep whatever codec the producer used.
    Producer,
    /// Store uncompressed.
    Uncompressed,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
    /// Zstandard.
    Zstd,
}

/// `message.timestamp.type`: which timestamp records carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TimestampType {
    /// The producer's timestamp.
    CreateTime,
    /// The broker's time of append.
    LogAppendTime,
}

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
