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
    /// `true` or `false`, in any case, as Kafka parses booleans.
    Bool,
    /// A decimal number from 0 to 1.
    Ratio,
    /// Kafka's throttled-replica list: empty, `*`, or `partition:broker` pairs separated by
    /// commas.
    ReplicaList,
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

const fn spec(name: &'static str, kind: ValueKind) -> KeySpec {
    KeySpec { name, kind }
}

const CLEANUP_POLICIES: &[&str] = &["delete", "compact", "compact,delete"];
const COMPRESSION_TYPES: &[&str] = &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"];
const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];

/// Every topic config key of Kafka's (3.x and 4.x) that Strand accepts, in Kafka's spelling,
/// sorted by name, with Kafka's type and bounds.
///
/// Minimums follow Kafka's: `-1` means "unlimited" for the retention keys, and a segment must
/// hold at least a record batch header (14 bytes). Keys stored as Kafka `int`s stop at
/// `i32::MAX`. Strand acts on the keys [`TopicConfig`] has a field for; the others (see
/// [`STORED_ONLY`]) are checked, stored and reported back as Kafka does, so configs written
/// for Kafka apply unchanged.
pub const KEYS: &[KeySpec] = &[
    spec("cleanup.policy", ValueKind::OneOf(CLEANUP_POLICIES)),
    // Kafka takes -1 (the codec's default) or 1 to 9.
    int("compression.gzip.level", -1, 9),
    int("compression.lz4.level", 1, 17),
    spec("compression.type", ValueKind::OneOf(COMPRESSION_TYPES)),
    int("compression.zstd.level", -131_072, 22),
    int("delete.retention.ms", 0, i64::MAX),
    int("file.delete.delay.ms", 0, i64::MAX),
    int("flush.messages", 1, i64::MAX),
    int("flush.ms", 0, i64::MAX),
    spec(
        "follower.replication.throttled.replicas",
        ValueKind::ReplicaList,
    ),
    int("index.interval.bytes", 0, I32_MAX),
    spec(
        "leader.replication.throttled.replicas",
        ValueKind::ReplicaList,
    ),
    int("local.retention.bytes", -2, i64::MAX),
    int("local.retention.ms", -2, i64::MAX),
    int("max.compaction.lag.ms", 1, i64::MAX),
    int("max.message.bytes", 0, I32_MAX),
    spec("message.downconversion.enable", ValueKind::Bool),
    int("message.timestamp.after.max.ms", 0, i64::MAX),
    int("message.timestamp.before.max.ms", 0, i64::MAX),
    int("message.timestamp.difference.max.ms", 0, i64::MAX),
    spec("message.timestamp.type", ValueKind::OneOf(TIMESTAMP_TYPES)),
    spec("min.cleanable.dirty.ratio", ValueKind::Ratio),
    int("min.compaction.lag.ms", 0, i64::MAX),
    int("min.insync.replicas", 1, I32_MAX),
    spec("preallocate", ValueKind::Bool),
    spec("remote.log.copy.disable", ValueKind::Bool),
    spec("remote.log.delete.on.disable", ValueKind::Bool),
    // Tiered storage is not there to enable: `true` is refused (see `check`), as Kafka
    // refuses it on a broker without tiered storage.
    spec("remote.storage.enable", ValueKind::Bool),
    int("retention.bytes", -1, i64::MAX),
    int("retention.ms", -1, i64::MAX),
    int("segment.bytes", 14, I32_MAX),
    int("segment.index.bytes", 4, I32_MAX),
    int("segment.jitter.ms", 0, i64::MAX),
    int("segment.ms", 1, i64::MAX),
    spec("unclean.leader.election.enable", ValueKind::Bool),
];

/// The keys of [`KEYS`] Strand checks, stores and reports back but does not act on: Raft
/// elects only replicas holding every committed record (so no unclean election), segments
/// are neither preallocated nor tiered, the log is fsynced on every Raft append, and
/// compaction runs on the retention timer whatever the dirty ratio.
pub const STORED_ONLY: &[&str] = &[
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
    "file.delete.delay.ms",
    "flush.messages",
    "follower.replication.throttled.replicas",
    "index.interval.bytes",
    "leader.replication.throttled.replicas",
    "local.retention.bytes",
    "local.retention.ms",
    "max.compaction.lag.ms",
    "message.downconversion.enable",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.difference.max.ms",
    "min.cleanable.dirty.ratio",
    "preallocate",
    "remote.log.copy.disable",
    "remote.log.delete.on.disable",
    "remote.storage.enable",
    "segment.index.bytes",
    "segment.jitter.ms",
    "unclean.leader.election.enable",
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
    /// The value is not of the key's kind (a boolean, a ratio, a replica list).
    #[error("`{key}` must be {expected}, not `{value}`")]
    NotOfKind {
        /// The key.
        key: String,
        /// The value as given.
        value: String,
        /// What the key takes.
        expected: &'static str,
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
            | ConfigError::NotOfKind { key, .. }
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
    let not_of_kind = |expected| ConfigError::NotOfKind {
        key: key.to_owned(),
        value: value.to_owned(),
        expected,
    };
    match spec.kind {
        ValueKind::Bool if key == "remote.storage.enable" => {
            if value.eq_ignore_ascii_case("false") {
                Ok(Value::Str(""))
            } else {
                Err(not_of_kind("`false` (Strand has no tiered storage)"))
            }
        }
        ValueKind::Bool => {
            if value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false") {
                Ok(Value::Str(""))
            } else {
                Err(not_of_kind("`true` or `false`"))
            }
        }
        ValueKind::Ratio => match value.parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(Value::Str("")),
            _ => Err(not_of_kind("a number from 0 to 1")),
        },
        ValueKind::ReplicaList => {
            if replica_list(value) {
                Ok(Value::Str(""))
            } else {
                Err(not_of_kind(
                    "empty, `*`, or `partition:broker` pairs separated by commas",
                ))
            }
        }
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
            if key == "compression.gzip.level" && parsed == 0 {
                // Kafka's validator takes -1 (the codec's default) or 1 to 9, not 0.
                Err(not_of_kind("-1 or from 1 to 9"))
            } else if (min..=max).contains(&parsed) {
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

/// Kafka's throttled-replica list: empty, `*`, or `partition:broker` pairs separated by
/// commas (spaces around them allowed).
fn replica_list(value: &str) -> bool {
    let value = value.trim();
    if value.is_empty() || value == "*" {
        return true;
    }
    value.split(',').all(|pair| {
        let mut parts = pair.trim().split(':');
        let number = |s: Option<&str>| s.is_some_and(|s| !s.is_empty() && s.parse::<u32>().is_ok());
        number(parts.next()) && number(parts.next()) && parts.next().is_none()
    })
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
        "compression.gzip.level" => "-1",
        "compression.lz4.level" => "9",
        "compression.type" => "producer",
        "compression.zstd.level" => "3",
        "delete.retention.ms" => "86400000",
        "file.delete.delay.ms" => "60000",
        "flush.messages" => "9223372036854775807",
        "follower.replication.throttled.replicas" => "",
        "index.interval.bytes" => "4096",
        "leader.replication.throttled.replicas" => "",
        "local.retention.bytes" => "-2",
        "local.retention.ms" => "-2",
        "max.compaction.lag.ms" => "9223372036854775807",
        "message.downconversion.enable" => "true",
        "message.timestamp.after.max.ms" => "9223372036854775807",
        "message.timestamp.before.max.ms" => "9223372036854775807",
        "message.timestamp.difference.max.ms" => "9223372036854775807",
        "min.cleanable.dirty.ratio" => "0.5",
        "preallocate" => "false",
        "remote.log.copy.disable" => "false",
        "remote.log.delete.on.disable" => "false",
        "remote.storage.enable" => "false",
        "segment.index.bytes" => "10485760",
        "segment.jitter.ms" => "0",
        "unclean.leader.election.enable" => "false",
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
            // The keys Strand acts on each have an arm above (a key added to KEYS without one
            // is caught by the test that sets every key); the others are stored only.
            _ => {}
        }
    }
    Ok(config)
}
