//! Topic config rules: the keys Strand accepts, their bounds, and the typed config with Kafka's
//! defaults.
//!
//! The operator's `Topic` resource checks the same keys with the same bounds at apply time;
//! this module is what the metadata group enforces, whatever the caller.

use std::collections::BTreeMap;

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

const fn int(name: &'static str, min: i64, max: i64) -> KeySpec {
    KeySpec {
        name,
        kind: ValueKind::Int { min, max },
    }
}

const CLEANUP_POLICIES: &[&str] = &["delete", "compact", "compact,delete"];
const COMPRESSION_TYPES: &[&str] = &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"];
const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];

/// Every topic config key Strand accepts, in Kafka's spelling, sorted by name.
///
/// Minimums follow Kafka's: `-1` means "unlimited" for the retention keys, and a segment must
/// hold at least a record batch header (14 bytes). Keys stored as Kafka `int`s stop at
/// `i32::MAX`.
pub const KEYS: &[KeySpec] = &[
    KeySpec {
        name: "cleanup.policy",
        kind: ValueKind::OneOf(CLEANUP_POLICIES),
    },
    KeySpec {
        name: "compression.type",
        kind: ValueKind::OneOf(COMPRESSION_TYPES),
    },
    int("delete.retention.ms", 0, i64::MAX),
    int("flush.ms", 0, i64::MAX),
    int("max.message.bytes", 0, I32_MAX),
    KeySpec {
        name: "message.timestamp.type",
        kind: ValueKind::OneOf(TIMESTAMP_TYPES),
    },
    int("min.compaction.lag.ms", 0, i64::MAX),
    int("min.insync.replicas", 1, I32_MAX),
    int("retention.bytes", -1, i64::MAX),
    int("retention.ms", -1, i64::MAX),
    int("segment.bytes", 14, I32_MAX),
    int("segment.ms", 1, i64::MAX),
];

/// Why a topic config entry was refused.
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

/// A checked config value.
enum Value<'a> {
    Int(i64),
    Str(&'a str),
}

fn check(key: &str, value: &str) -> Result<Value<'static>, ConfigError> {
    let spec = key_spec(key).ok_or_else(|| ConfigError::UnknownKey {
        key: key.to_owned(),
    })?;
    match spec.kind {
        ValueKind::OneOf(allowed) => match allowed.iter().find(|a| **a == value) {
            Some(found) => Ok(Value::Str(found)),
            None => Err(ConfigError::NotOneOf {
                key: key.to_owned(),
                value: value.to_owned(),
                allowed,
            }),
        },
        ValueKind::Int { min, max } => {
            let parsed: i64 = value.parse().map_err(|_| ConfigError::NotInteger {
                key: key.to_owned(),
                value: value.to_owned(),
            })?;
            if (min..=max).contains(&parsed) {
                Ok(Value::Int(parsed))
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

/// Checks one `key=value` entry in Kafka's string form.
pub fn check_entry(key: &str, value: &str) -> Result<(), ConfigError> {
    check(key, value).map(|_| ())
}

/// `cleanup.policy`: what happens to old segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum TimestampType {
    /// The producer's timestamp.
    CreateTime,
    /// The broker's time of append.
    LogAppendTime,
}

/// A topic's config with typed values; absent keys hold Kafka's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    /// `cleanup.policy`; default `delete`.
    pub cleanup_policy: CleanupPolicy,
    /// `retention.ms`: how long records are kept; `None` (`-1`) keeps them for ever.
    /// Default 7 days.
    pub retention_ms: Option<u64>,
    /// `retention.bytes`: bytes kept per partition; `None` (`-1`, the default) for no limit.
    pub retention_bytes: Option<u64>,
    /// `segment.bytes`: size at which a segment is closed; default 1 GiB.
    pub segment_bytes: u32,
    /// `segment.ms`: age at which a segment is closed; default 7 days.
    pub segment_ms: u64,
    /// `max.message.bytes`: largest record batch the topic accepts; default 1048588.
    pub max_message_bytes: u32,
    /// `delete.retention.ms`: how long tombstones stay in a compacted topic; default 1 day.
    pub delete_retention_ms: u64,
    /// `min.compaction.lag.ms`: minimum age before compaction may remove a record; default 0.
    pub min_compaction_lag_ms: u64,
    /// `compression.type`; default `producer`.
    pub compression_type: CompressionType,
    /// `message.timestamp.type`; default `CreateTime`.
    pub message_timestamp_type: TimestampType,
    /// `flush.ms`: milliseconds between forced fsyncs; `None` (the default) fsyncs every
    /// append, which Raft needs anyway.
    pub flush_ms: Option<u64>,
    /// `min.insync.replicas`; default 1.
    pub min_insync_replicas: u32,
}

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            cleanup_policy: CleanupPolicy::Delete,
            retention_ms: Some(7 * DAY_MS),
            retention_bytes: None,
            segment_bytes: 1 << 30,
            segment_ms: 7 * DAY_MS,
            max_message_bytes: 1_048_588,
            delete_retention_ms: DAY_MS,
            min_compaction_lag_ms: 0,
            compression_type: CompressionType::Producer,
            message_timestamp_type: TimestampType::CreateTime,
            flush_ms: None,
            min_insync_replicas: 1,
        }
    }
}

/// Kafka's default value of a topic config key, in Kafka's string form: what a topic without
/// the key behaves as (see [`TopicConfig::default`]).
pub fn default_value(key: &str) -> Option<&'static str> {
    Some(match key {
        "cleanup.policy" => "delete",
        "compression.type" => "producer",
        "delete.retention.ms" => "86400000",
        // Kafka's default is Long.MAX_VALUE: no forced fsync; Strand fsyncs every append anyway.
        "flush.ms" => "9223372036854775807",
        "max.message.bytes" => "1048588",
        "message.timestamp.type" => "CreateTime",
        "min.compaction.lag.ms" => "0",
        "min.insync.replicas" => "1",
        "retention.bytes" => "-1",
        "retention.ms" => "604800000",
        "segment.bytes" => "1073741824",
        "segment.ms" => "604800000",
        _ => return None,
    })
}

/// Checks every entry of a topic config in Kafka's string form and returns the typed config,
/// with Kafka's defaults for absent keys. The first broken rule, in key order, is the error.
pub fn validate_topic_config(
    entries: &BTreeMap<String, String>,
) -> Result<TopicConfig, ConfigError> {
    let mut config = TopicConfig::default();
    for (key, value) in entries {
        // The bounds in KEYS make every conversion below lossless; `-1` is the only negative
        // value any key accepts, and it means "unlimited".
        let unlimited = |n: i64| u64::try_from(n).ok();
        match (key.as_str(), check(key, value)?) {
            ("cleanup.policy", Value::Str(s)) => {
                config.cleanup_policy = match s {
                    "compact" => CleanupPolicy::Compact,
                    "compact,delete" => CleanupPolicy::CompactDelete,
                    _ => CleanupPolicy::Delete,
                }
            }
            ("compression.type", Value::Str(s)) => {
                config.compression_type = match s {
                    "uncompressed" => CompressionType::Uncompressed,
                    "gzip" => CompressionType::Gzip,
                    "snappy" => CompressionType::Snappy,
                    "lz4" => CompressionType::Lz4,
                    "zstd" => CompressionType::Zstd,
                    _ => CompressionType::Producer,
                }
            }
            ("message.timestamp.type", Value::Str(s)) => {
                config.message_timestamp_type = match s {
                    "LogAppendTime" => TimestampType::LogAppendTime,
                    _ => TimestampType::CreateTime,
                }
            }
            ("retention.ms", Value::Int(n)) => config.retention_ms = unlimited(n),
            ("retention.bytes", Value::Int(n)) => config.retention_bytes = unlimited(n),
            ("segment.bytes", Value::Int(n)) => config.segment_bytes = n as u32,
            ("segment.ms", Value::Int(n)) => config.segment_ms = n as u64,
            ("max.message.bytes", Value::Int(n)) => config.max_message_bytes = n as u32,
            ("delete.retention.ms", Value::Int(n)) => config.delete_retention_ms = n as u64,
            ("min.compaction.lag.ms", Value::Int(n)) => config.min_compaction_lag_ms = n as u64,
            ("flush.ms", Value::Int(n)) => config.flush_ms = Some(n as u64),
            ("min.insync.replicas", Value::Int(n)) => config.min_insync_replicas = n as u32,
            // Every key of KEYS has an arm above; a key added there without one is caught by
            // the test that sets every key.
            _ => {}
        }
    }
    Ok(config)
}
