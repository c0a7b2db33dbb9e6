//! A check that an OpenAPI v3 schema is "structural", as the API server requires of CRDs.
//!
//! It covers the rules a derived schema can break: every node has a `type` unless it is
//! int-or-string or preserves unknown fields; `anyOf`/`allOf`/`oneOf`/`not` only restrict
//! fields declared outside them, and never set `type`, `default`, `description`, `nullable` or
//! `additionalProperties` (which is how an untagged enum mixing kinds shows up); `$ref` and
//! the other JSON Schema keywords Kubernetes does not know are absent; `properties` and
//! `additionalProperties` exclude each other; `enum` and `default` values match `type`.

use serde_json::{Map, Value};

const JUNCTORS: &[&str] = &["allOf", "anyOf", "oneOf", "not"];
const TYPES: &[&str] = &["object", "array", "string", "integer", "number", "boolean"];
/// Keywords the API server accepts in a CRD schema.
const KNOWN: &[&str] = &[
    "description",
    "type",
    "format",
    "title",
    "default",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "multipleOf",
    "enum",
    "maxProperties",
    "minProperties",
    "required",
    "items",
    "allOf",
    "oneOf",
    "anyOf",
    "not",
    "properties",
    "additionalProperties",
    "nullable",
    "example",
    "externalDocs",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-list-type",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
];

/// Every way `schema` is not structural, one line each, sorted; empty when it is.
pub fn problems(schema: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    node(schema, "", &mut problems);
    problems.sort();
    problems
}

fn flag(node: &Map<String, Value>, key: &str) -> bool {
    node.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn node(schema: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(node) = schema.as_object() else {
        problems.push(format!("{path}: not a schema object"));
        return;
    };
    for key in node.keys() {
        if !KNOWN.contains(&key.as_str()) {
            problems.push(format!("{path}: `{key}` is not allowed"));
        }
    }
    let int_or_string = flag(node, "x-kubernetes-int-or-string");
    let free_form = flag(node, "x-kubernetes-preserve-unknown-fields");
    match node.get("type") {
        None if !int_or_string && !free_form => problems.push(format!("{path}: no `type`")),
        None => {}
        Some(Value::String(t)) if TYPES.contains(&t.as_str()) => {
            type_matches(node, t, path, problems);
        }
        Some(other) => problems.push(format!("{path}: `type` {other} is not one type")),
    }
    if node.contains_key("properties") && node.contains_key("additionalProperties") {
        problems.push(format!("{path}: both properties and additionalProperties"));
    }
    if node.get("additionalProperties") == Some(&Value::Bool(false)) {
        problems.push(format!(
            "{path}: additionalProperties: false is not allowed"
        ));
    }
    if node.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map") {
        list_map_keys(node, path, problems);
    }
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            self::node(child, &format!("{path}.properties.{name}"), problems);
        }
    }
    if let Some(child @ Value::Object(_)) = node.get("additionalProperties") {
        self::node(child, &format!("{path}.additionalProperties"), problems);
    }
    if let Some(items) = node.get("items") {
        self::node(items, &format!("{path}.items"), problems);
    }
    for junctor in JUNCTORS {
        let branches = match node.get(*junctor) {
            Some(Value::Array(branches)) => branches.iter().collect(),
            Some(branch) => vec![branch],
            None => continue,
        };
        for (i, branch) in branches.into_iter().enumerate() {
            let branch_path = format!("{path}.{junctor}[{i}]");
            junction(branch, node, int_or_string, &branch_path, problems);
        }
    }
}

/// Checks one branch of `allOf`/`anyOf`/`oneOf`/`not` against the node that holds it.
fn junction(
    branch: &Value,
    outer: &Map<String, Value>,
    int_or_string: bool,
    path: &str,
    problems: &mut Vec<String>,
) {
    let Some(branch) = branch.as_object() else {
        problems.push(format!("{path}: not a schema object"));
        return;
    };
    let junctor = path
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .split('[')
        .next()
        .unwrap_or_default();
    for key in [
        "type",
        "default",
        "description",
        "nullable",
        "additionalProperties",
    ] {
        // `anyOf: [{type: integer}, {type: string}]` is the one allowed form of int-or-string.
        let int_or_string_type = int_or_string && key == "type" && branch.len() == 1;
        if branch.contains_key(key) && !int_or_string_type {
            problems.push(format!("{path}: `{key}` is not allowed inside {junctor}"));
        }
    }
    if let Some(properties) = branch.get("properties").and_then(Value::as_object) {
        let declared = outer.get("properties").and_then(Value::as_object);
        for name in properties.keys() {
            if !declared.is_some_and(|d| d.contains_key(name)) {
                problems.push(format!(
                    "{path}: property `{name}` is not declared outside {junctor}"
                ));
            }
        }
    }
    if branch.contains_key("items") && !outer.contains_key("items") {
        problems.push(format!("{path}: items are not declared outside {junctor}"));
    }
}

fn type_matches(node: &Map<String, Value>, t: &str, path: &str, problems: &mut Vec<String>) {
    let fits = |value: &Value| match (t, value) {
        (_, Value::Null) => flag(node, "nullable"),
        ("object", v) => v.is_object(),
        ("array", v) => v.is_array(),
        ("string", v) => v.is_string(),
        ("integer", v) => v.is_i64() || v.is_u64(),
        ("number", v) => v.is_number(),
        ("boolean", v) => v.is_boolean(),
        _ => false,
    };
    if let Some(values) = node.get("enum").and_then(Value::as_array) {
        for value in values.iter().filter(|v| !fits(v)) {
            problems.push(format!("{path}: enum value {value} is not of type {t}"));
        }
    }
    if let Some(default) = node.get("default").filter(|d| !fits(d)) {
        problems.push(format!("{path}: default {default} is not of type {t}"));
    }
}

/// A list with `x-kubernetes-list-type: map` needs keys that every item has.
fn list_map_keys(node: &Map<String, Value>, path: &str, problems: &mut Vec<String>) {
    let keys = node
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array);
    let Some(keys) = keys.filter(|k| !k.is_empty()) else {
        problems.push(format!("{path}: list-type map without list-map-keys"));
        return;
    };
    let required = node
        .get("items")
        .and_then(|items| items.get("required"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for key in keys.iter().filter(|k| !required.contains(k)) {
        problems.push(format!(
            "{path}: list map key {key} is not required in items"
        ));
    }
}
