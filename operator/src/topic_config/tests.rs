//! Tests of the topic config rules, without Kubernetes.

use super::*;

fn config(yaml: &str) -> Result<TopicConfig, serde_saphyr::Error> {
    serde_saphyr::from_str(yaml)
}

#[test]
fn typed_config_renders_kafka_entries() {
    let config = config(
        "cleanup.policy: compact,delete\nretention.ms: 604800000\ncompression.type: zstd\n\
         message.timestamp.type: LogAppendTime\n",
    )
    .unwrap();
    let entries: Vec<String> = config
        .to_entries()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert_eq!(
        entries,
        [
            "cleanup.policy=compact,delete",
            "compression.type=zstd",
            "message.timestamp.type=LogAppendTime",
            "retention.ms=604800000",
        ]
    );
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn unknown_key_is_refused_when_parsing() {
    let error = config("retention.msec: 5\n").unwrap_err().to_string();
    assert!(error.contains("unknown field `retention.msec`"), "{error}");
}

#[test]
fn bad_enum_value_is_refused_when_parsing() {
    let error = config("cleanup.policy: delete,compact\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("delete,compact"), "{error}");
}

#[test]
fn out_of_range_typed_value_names_key_and_bounds() {
    let config = TopicConfig {
        retention_ms: Some(-2),
        segment_ms: Some(0),
        ..TopicConfig::default()
    };
    let messages: Vec<String> = config
        .violations()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        messages,
        [
            format!("`retention.ms` must be between -1 and {}, not -2", i64::MAX),
            format!("`segment.ms` must be between 1 and {}, not 0", i64::MAX),
        ]
    );
    assert_eq!(config.validate().unwrap_err().key(), "retention.ms");
}

#[test]
fn string_entries_are_checked_against_the_table() {
    assert_eq!(check_entry("retention.bytes", "-1"), Ok(()));
    assert_eq!(check_entry("compression.type", "lz4"), Ok(()));
    let errors = [
        check_entry("retention.size", "1").unwrap_err().to_string(),
        check_entry("segment.bytes", "ten").unwrap_err().to_string(),
        check_entry("segment.bytes", "3000000000")
            .unwrap_err()
            .to_string(),
        check_entry("message.timestamp.type", "createtime")
            .unwrap_err()
            .to_string(),
    ];
    assert_eq!(
        errors,
        [
            "unknown topic config key `retention.size`".to_owned(),
            "`segment.bytes` must be an integer, not `ten`".to_owned(),
            "`segment.bytes` must be between 14 and 2147483647, not 3000000000".to_owned(),
            "`message.timestamp.type` must be one of `CreateTime`, `LogAppendTime`, not `createtime`"
                .to_owned(),
        ]
    );
}
