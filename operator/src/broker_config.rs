//! The broker settings a Cluster's `spec.config` may hold: Strand's own names and Kafka's
//! names for the same settings, one table for the CRD's apply-time check and for writing
//! `broker.yaml`, so an unknown key is refused by the API server instead of crash-looping a
//! restarted broker.

use std::collections::BTreeMap;

use serde_json::Value;

/// The kind of value a setting takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingKind {
    /// A whole number at least 0.
    Count,
    /// `true` or `false`.
    Flag,
    /// Any text.
    Text,
}

/// One broker setting: its name in `broker.yaml`, Kafka's name for it if Kafka has one, and
/// its kind.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The name `strand broker` reads.
    pub name: &'static str,
    /// Kafka's broker config key for the same setting.
    pub kafka: Option<&'static str>,
    /// What values it takes.
    pub kind: SettingKind,
}

/// Every setting `strand broker --config` accepts.
pub const SETTINGS: &[Setting] = &[
    setting("log_level", None, SettingKind::Text),
    setting(
        "default_replication_factor",
        Some("default.replication.factor"),
        SettingKind::Count,
    ),
    setting(
        "default_partitions",
        Some("num.partitions"),
        SettingKind::Count,
    ),
    setting(
        "auto_create_topics",
        Some("auto.create.topics.enable"),
        SettingKind::Flag,
    ),
    setting("raft_heartbeat_ms", None, SettingKind::Count),
    setting("raft_election_timeout_ms", None, SettingKind::Count),
    setting(
        "retention_check_interval_ms",
        Some("log.retention.check.interval.ms"),
        SettingKind::Count,
    ),
    setting(
        "offsets_retention_minutes",
        Some("offsets.retention.minutes"),
        SettingKind::Count,
    ),
    setting(
        "offsets_retention_check_interval_ms",
        Some("offsets.retention.check.interval.ms"),
        SettingKind::Count,
    ),
    setting(
        "consumer_heartbeat_interval_ms",
        Some("group.consumer.heartbeat.interval.ms"),
        SettingKind::Count,
    ),
    setting(
        "consumer_session_timeout_ms",
        Some("group.consumer.session.timeout.ms"),
        SettingKind::Count,
    ),
    setting("disk_reserve_bytes", None, SettingKind::Count),
    setting("auto_balance", None, SettingKind::Flag),
    setting(
        "leader_balancing",
        Some("auto.leader.rebalance.enable"),
        SettingKind::Flag,
    ),
    setting("max_concurrent_moves", None, SettingKind::Count),
    setting("broker_failure_timeout_ms", None, SettingKind::Count),
    setting(
        "socket_request_max_bytes",
        Some("socket.request.max.bytes"),
        SettingKind::Count,
    ),
    setting(
        "max_connections",
        Some("max.connections"),
        SettingKind::Count,
    ),
    setting(
        "connections_max_idle_ms",
        Some("connections.max.idle.ms"),
        SettingKind::Count,
    ),
    setting("group_max_size", Some("group.max.size"), SettingKind::Count),
    setting(
        "producer_id_expiration_ms",
        Some("producer.id.expiration.ms"),
        SettingKind::Count,
    ),
];

const fn setting(name: &'static str, kafka: Option<&'static str>, kind: SettingKind) -> Setting {
    Setting { name, kafka, kind }
}

/// The setting a `spec.config` key names, by either of its names.
pub fn setting_of(key: &str) -> Option<&'static Setting> {
    SETTINGS
        .iter()
        .find(|s| s.name == key || s.kafka == Some(key))
}

/// Why a `spec.config` entry cannot be written for the brokers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    /// No broker setting has this name.
    #[error("spec.config: unknown broker setting `{key}`")]
    Unknown {
        /// The key.
        key: String,
    },
    /// The value is not of the setting's kind.
    #[error("spec.config: `{key}` must be {expected}, not {value}")]
    Invalid {
        /// The key.
        key: String,
        /// What it takes.
        expected: &'static str,
        /// What it was given.
        value: String,
    },
    /// The same setting under both of its names.
    #[error("spec.config: `{key}` and `{other}` are the same setting; keep one")]
    Twice {
        /// One name.
        key: String,
        /// The other.
        other: String,
    },
}

/// `spec.config` under the names and types `broker.yaml` takes: Kafka's names mapped to
/// Strand's, numbers and flags given as strings (as Kafka configs usually are) made numbers
/// and flags.
pub fn to_broker_settings(
    config: &BTreeMap<String, Value>,
) -> Result<BTreeMap<String, Value>, SettingError> {
    let mut out = BTreeMap::new();
    let mut given_as: BTreeMap<&str, &str> = BTreeMap::new();
    for (key, value) in config {
        let setting = setting_of(key).ok_or_else(|| SettingError::Unknown { key: key.clone() })?;
        if let Some(other) = given_as.insert(setting.name, key) {
            return Err(SettingError::Twice {
                key: other.to_owned(),
                other: key.clone(),
            });
        }
        out.insert(setting.name.to_owned(), typed(key, setting.kind, value)?);
    }
    Ok(out)
}

fn typed(key: &str, kind: SettingKind, value: &Value) -> Result<Value, SettingError> {
    let invalid = |expected| SettingError::Invalid {
        key: key.to_owned(),
        expected,
        value: value.to_string(),
    };
    match kind {
        SettingKind::Count => match value {
            Value::Number(n) if n.is_u64() => Ok(value.clone()),
            Value::String(s) => s
                .trim()
                .parse::<u64>()
                .map(Value::from)
                .map_err(|_| invalid("a whole number at least 0")),
            _ => Err(invalid("a whole number at least 0")),
        },
        SettingKind::Flag => match value {
            Value::Bool(_) => Ok(value.clone()),
            Value::String(s) if s == "true" || s == "false" => Ok(Value::Bool(s == "true")),
            _ => Err(invalid("true or false")),
        },
        SettingKind::Text => match value {
            Value::String(_) => Ok(value.clone()),
            _ => Err(invalid("text")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(value: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn kafka_names_and_string_values_become_broker_settings() {
        let settings = to_broker_settings(&config(json!({
            "log.retention.check.interval.ms": "120000",
            "auto.create.topics.enable": "true",
            "disk_reserve_bytes": 1024,
            "log_level": "debug",
        })))
        .unwrap();
        assert_eq!(
            Value::from(serde_json::Map::from_iter(settings)),
            json!({
                "retention_check_interval_ms": 120000,
                "auto_create_topics": true,
                "disk_reserve_bytes": 1024,
                "log_level": "debug",
            })
        );
    }

    #[test]
    fn unknown_wrong_and_doubled_settings_are_refused() {
        let check = |value| to_broker_settings(&config(value)).unwrap_err().to_string();
        assert_eq!(
            check(json!({"no.such.setting": "1"})),
            "spec.config: unknown broker setting `no.such.setting`"
        );
        assert_eq!(
            check(json!({"num.partitions": "many"})),
            "spec.config: `num.partitions` must be a whole number at least 0, not \"many\""
        );
        assert_eq!(
            check(json!({"leader_balancing": "yes"})),
            "spec.config: `leader_balancing` must be true or false, not \"yes\""
        );
        assert_eq!(
            check(json!({"num.partitions": 3, "default_partitions": 3})),
            "spec.config: `default_partitions` and `num.partitions` are the same setting; keep one"
        );
    }

    #[test]
    fn every_setting_has_one_entry_per_name() {
        let keys: Vec<&str> = SETTINGS
            .iter()
            .flat_map(|s| std::iter::once(s.name).chain(s.kafka))
            .collect();
        let unique: std::collections::BTreeSet<&str> = keys.iter().copied().collect();
        assert_eq!(unique.len(), keys.len());
    }
}
