//! Hand-written schema pieces for fields whose derived schema the API server would not take
//! as it is, or would merge badly under server-side apply.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

/// A map from names to values of any shape, kept as they are.
pub(crate) fn free_form_map(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "additionalProperties": { "x-kubernetes-preserve-unknown-fields": true },
    })
}

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
