//! Topic config rules: keys, bounds, typed values and Kafka's defaults.

use strand_meta::{
    CleanupPolicy, CompressionType, ConfigError, KEYS, TimestampType, TopicConfig, ValueKind,
    validate_topic_config,
};

use super::config;

#[test]
fn absent_keys_take_kafkas_defaults() {
    let typed = validate_topic_config(&config(&[])).unwrap();
    assert_eq!(typed, TopicConfig::default());
    assert_eq!(typed.cleanup_policy, CleanupPolicy::Delete);
    assert_eq!(typed.retention_ms, Some(604_800_000));
    assert_eq!(typed.retention_bytes, None);
    assert_eq!(typed.segment_bytes, 1_073_741_824);
    assert_eq!(typed.max_message_bytes, 1_048_588);
    assert_eq!(typed.flush_ms, None);
    assert_eq!(typed.min_insync_replicas, 1);
}

#[test]
fn every_key_sets_its_typed_field() {
    let typed = validate_topic_config(&config(&[
        ("cleanup.policy", "compact,delete"),
        ("compression.type", "zstd"),
        ("delete.retention.ms", "7"),
        ("flush.ms", "8"),
        ("max.message.bytes", "9"),
        ("message.timestamp.type", "LogAppendTime"),
        ("min.compaction.lag.ms", "10"),
        ("min.insync.replicas", "2"),
        ("retention.bytes", "11"),
        ("retention.ms", "-1"),
        ("segment.bytes", "14"),
        ("segment.ms", "13"),
    ]))
    .unwrap();
    let expected = TopicConfig {
        cleanup_policy: CleanupPolicy::CompactDelete,
        compression_type: CompressionType::Zstd,
        delete_retention_ms: 7,
        flush_ms: Some(8),
        max_message_bytes: 9,
        message_timestamp_type: TimestampType::LogAppendTime,
        min_compaction_lag_ms: 10,
        min_insync_replicas: 2,
        retention_bytes: Some(11),
        retention_ms: None,
        segment_bytes: 14,
        segment_ms: 13,
    };
    assert_eq!(typed, expected);
    // The test above names every key Strand acts on; the others are stored only. A key added
    // to KEYS must be added here or to STORED_ONLY.
    assert_eq!(KEYS.len(), 12 + strand_meta::STORED_ONLY.len());
    for key in strand_meta::STORED_ONLY {
        assert!(strand_meta::key_spec(key).is_some(), "{key}");
    }
}

/// Keys Kafka defines that Strand does not act on are checked for their type and range as
/// Kafka checks them, stored, and leave the typed config as it was.
#[test]
fn keys_strand_does_not_act_on_are_checked_and_change_nothing() {
    let ok = [
        ("unclean.leader.election.enable", "TRUE"),
        ("preallocate", "false"),
        ("min.cleanable.dirty.ratio", "0.25"),
        ("index.interval.bytes", "0"),
        ("local.retention.ms", "-2"),
        ("compression.zstd.level", "-5"),
        ("leader.replication.throttled.replicas", "0:1, 1:2"),
        ("follower.replication.throttled.replicas", "*"),
        ("message.timestamp.after.max.ms", "3600000"),
    ];
    let typed = validate_topic_config(&config(&ok)).unwrap();
    assert_eq!(typed, TopicConfig::default());
    let refused = [
        (
            ("unclean.leader.election.enable", "yes"),
            "`unclean.leader.election.enable` must be `true` or `false`, not `yes`",
        ),
        (
            ("min.cleanable.dirty.ratio", "1.5"),
            "`min.cleanable.dirty.ratio` must be a number from 0 to 1, not `1.5`",
        ),
        (
            ("leader.replication.throttled.replicas", "0-1"),
            "`leader.replication.throttled.replicas` must be empty, `*`, or `partition:broker` pairs separated by commas, not `0-1`",
        ),
        (
            ("compression.lz4.level", "18"),
            "`compression.lz4.level` must be between 1 and 17, not 18",
        ),
        (
            ("compression.gzip.level", "0"),
            "`compression.gzip.level` must be -1 or from 1 to 9, not `0`",
        ),
        (
            ("remote.storage.enable", "true"),
            "`remote.storage.enable` must be `false` (Strand has no tiered storage), not `true`",
        ),
        (
            ("local.retention.bytes", "-3"),
            "`local.retention.bytes` must be between -2 and 9223372036854775807, not -3",
        ),
    ];
    for ((key, value), message) in refused {
        let err = validate_topic_config(&config(&[(key, value)])).unwrap_err();
        assert_eq!(err.to_string(), message);
    }
}

#[test]
fn keys_are_sorted_and_unique() {
    assert!(KEYS.windows(2).all(|w| w[0].name < w[1].name));
}

#[test]
fn every_bound_is_inclusive_and_nothing_beyond_it_passes() {
    for spec in KEYS {
        let ValueKind::Int { min, max } = spec.kind else {
            continue;
        };
        for ok in [min, max] {
            assert!(
                validate_topic_config(&config(&[(spec.name, &ok.to_string())])).is_ok(),
                "{} = {ok}",
                spec.name
            );
        }
        let below = min - 1;
        assert_eq!(
            validate_topic_config(&config(&[(spec.name, &below.to_string())])),
            Err(ConfigError::OutOfRange {
                key: spec.name.into(),
                value: below,
                min,
                max
            })
        );
        if max < i64::MAX {
            assert!(
                validate_topic_config(&config(&[(spec.name, &(max + 1).to_string())])).is_err()
            );
        }
    }
}

#[test]
fn bad_values_name_the_key_and_what_is_allowed() {
    let cases = [
        (
            ("retention.foo", "1"),
            "unknown topic config key `retention.foo`",
        ),
        (
            ("cleanup.policy", "delete,compact"),
            "`cleanup.policy` must be one of `delete`, `compact`, `compact,delete`, not `delete,compact`",
        ),
        (
            ("retention.ms", "7d"),
            "`retention.ms` must be an integer, not `7d`",
        ),
        (
            ("segment.bytes", "13"),
            "`segment.bytes` must be between 14 and 2147483647, not 13",
        ),
        (
            ("compression.type", "GZIP"),
            "`compression.type` must be one of `producer`, `uncompressed`, `gzip`, `snappy`, `lz4`, `zstd`, not `GZIP`",
        ),
    ];
    for ((key, value), message) in cases {
        let err = validate_topic_config(&config(&[(key, value)])).unwrap_err();
        assert_eq!(err.key(), key);
        assert_eq!(err.to_string(), message);
    }
}

#[test]
fn every_key_has_a_default_that_is_the_typed_default() {
    for spec in strand_meta::KEYS {
        let value = strand_meta::default_value(spec.name)
            .unwrap_or_else(|| panic!("{} has no default", spec.name));
        strand_meta::check_entry(spec.name, value).unwrap();
        let explicit =
            std::collections::BTreeMap::from([(spec.name.to_string(), value.to_string())]);
        let typed = strand_meta::validate_topic_config(&explicit).unwrap();
        // flush.ms's default means "never forced", which the typed config spells as None.
        if spec.name != "flush.ms" {
            assert_eq!(typed, TopicConfig::default(), "{}", spec.name);
        }
    }
}
