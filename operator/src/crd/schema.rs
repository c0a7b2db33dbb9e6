//! Hand-written schema pieces for fields whose derived schema the API server would not take
//! as it is, or would merge badly under server-side apply.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

/// A list of conditions keyed by `type`, so that server-side apply merges one condition per
/// type instead of replacing the list.
pub(crate) fn conditions(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = Vec::<Condition>::json_schema(generator);
    schema.insert("x-kubernetes-list-type".to_owned(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".to_owned(),
        serde_json::json!(["type"]),
    );
    schema
}

/// `spec.config` of a Cluster: one property per broker setting, under Strand's name and
/// under Kafka's where it has one ([`crate::broker_config::SETTINGS`]), so the API server
/// refuses an unknown key at apply time (field validation) instead of a broker refusing it on
/// restart. Counts take numbers or numeric strings, as Kafka configs are often written.
pub(crate) fn broker_config(_: &mut SchemaGenerator) -> Schema {
    use crate::broker_config::{SETTINGS, SettingKind};
    let mut properties = serde_json::Map::new();
    for setting in SETTINGS {
        let schema = match setting.kind {
            SettingKind::Count => serde_json::json!({
                "x-kubernetes-int-or-string": true,
                "description": format!("broker setting {}", setting.name),
            }),
            SettingKind::Flag => serde_json::json!({
                "type": "boolean",
                "description": format!("broker setting {}", setting.name),
            }),
            SettingKind::Text => serde_json::json!({
                "type": "string",
                "description": format!("broker setting {}", setting.name),
            }),
        };
        for name in std::iter::once(setting.name).chain(setting.kafka) {
            properties.insert(name.to_owned(), schema.clone());
        }
    }
    json_schema!({
        "type": "object",
        "properties": properties,
    })
}
