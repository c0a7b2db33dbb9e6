//! Checks of the Helm chart that need no `helm` binary: values against their schema, every
//! value a template reads exists, templates have balanced actions and, with their actions
//! blanked out, parse as the Kubernetes objects they should be; the examples are valid
//! resources; and the RBAC covers what the operator writes.

use std::path::{Path, PathBuf};

use kube::CustomResourceExt;
use kube::core::cel::Validator;
use serde_json::Value;
use strand_operator::crd::{Cluster, Topic, User};
use strand_operator::desired::desired;

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/strand-operator")
}

fn read(relative: &str) -> String {
    let path = chart().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml_documents(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap()
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

/// Names of the chart's templates that produce objects.
fn templates() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(chart().join("templates"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    names.sort();
    names
}

/// The template with every action blanked out: a line holding only actions goes, any other
/// action becomes `x`. What is left is the YAML skeleton the template always produces.
fn skeleton(template: &str) -> String {
    let mut out = String::new();
    for line in template.lines() {
        let trimmed = line.trim();
        let only_action = trimmed.starts_with("{{") && trimmed.ends_with("}}");
        if only_action && trimmed.matches("{{").count() == 1 {
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find("{{") {
            let end = rest[start..]
                .find("}}")
                .expect("action is closed on its line")
                + start;
            out.push_str(rest[..start].trim_end_matches(' '));
            out.push_str(if rest[..start].ends_with(' ') {
                " x"
            } else {
                "x"
            });
            rest = &rest[end + 2..];
        }
        out.push_str(rest);
        out.push('\n');
    }
    out
}

fn objects() -> Vec<Value> {
    templates()
        .iter()
        .flat_map(|t| yaml_documents(&skeleton(&read(&format!("templates/{t}")))))
        .collect()
}

/// Whether a template renders anything with the default values: one that starts with
/// `{{- if .Values.X }}` renders only when X is true in values.yaml.
fn rendered_by_default(template: &str) -> bool {
    let values: Value = serde_saphyr::from_str(&read("values.yaml")).unwrap();
    let first = template.lines().next().unwrap_or_default().trim();
    match first
        .strip_prefix("{{- if .Values.")
        .and_then(|rest| rest.strip_suffix("}}"))
    {
        Some(path) => path
            .trim()
            .split('.')
            .try_fold(&values, |node, key| node.get(key))
            .map(|value| match value {
                // Go templates take empty lists, maps and strings as false.
                Value::Bool(b) => *b,
                Value::Array(a) => !a.is_empty(),
                Value::Object(o) => !o.is_empty(),
                Value::String(s) => !s.is_empty(),
                other => panic!("a template's condition is {other}"),
            })
            .expect("a template's condition is a value"),
        None => true,
    }
}

/// The skeletons of the templates that render with the default values.
fn default_objects() -> Vec<Value> {
    templates()
        .iter()
        .map(|t| read(&format!("templates/{t}")))
        .filter(|text| rendered_by_default(text))
        .flat_map(|text| yaml_documents(&skeleton(&text)))
        .collect()
}

fn object<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

#[test]
fn templates_are_kubernetes_objects() {
    let kinds: Vec<String> = objects()
        .iter()
        .map(|o| o["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Service",
            "PodMonitor",
            "Role",
            "RoleBinding",
            "RoleBinding",
            "ServiceAccount"
        ]
    );
    for object in objects() {
        assert!(object["apiVersion"].is_string(), "{object}");
        assert!(object["metadata"]["name"].is_string(), "{object}");
    }
}

#[test]
fn template_actions_are_balanced() {
    for name in templates().into_iter().chain(["_helpers.tpl".to_owned()]) {
        let text = read(&format!("templates/{name}"));
        assert_eq!(
            text.matches("{{").count(),
            text.matches("}}").count(),
            "{name}"
        );
        let actions: Vec<&str> = text
            .split("{{")
            .skip(1)
            .map(|a| {
                a.trim_start_matches('-')
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
            })
            .collect();
        let opened = actions
            .iter()
            .filter(|a| ["if", "with", "range", "define"].contains(a))
            .count();
        let closed = actions.iter().filter(|a| a.starts_with("end")).count();
        assert_eq!(opened, closed, "{name}: blocks opened and ended");
    }
}

#[test]
fn every_value_a_template_reads_is_defined() {
    let values: Value = serde_saphyr::from_str(&read("values.yaml")).unwrap();
    let mut used_top_level = std::collections::BTreeSet::new();
    for name in templates().into_iter().chain(["_helpers.tpl".to_owned()]) {
        let text = read(&format!("templates/{name}"));
        for reference in text.split(".Values.").skip(1) {
            let path: String = reference
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '_')
                .collect();
            let found = path.split('.').try_fold(&values, |node, key| node.get(key));
            assert!(
                found.is_some(),
                "{name} reads .Values.{path}, which values.yaml lacks"
            );
            used_top_level.insert(path.split('.').next().unwrap().to_owned());
        }
    }
    let defined: std::collections::BTreeSet<String> =
        values.as_object().unwrap().keys().cloned().collect();
    assert_eq!(defined, used_top_level, "values that no template reads");
}

/// The part of JSON Schema that `values.schema.json` uses.
fn schema_errors(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let type_ok = match schema["type"].as_str() {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("boolean") => value.is_boolean(),
        Some(other) => panic!("{path}: schema type {other} not handled"),
        None => true,
    };
    if !type_ok {
        errors.push(format!("{path}: {value} is not a {}", schema["type"]));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array().filter(|a| !a.contains(value)) {
        errors.push(format!("{path}: {value} is not one of {allowed:?}"));
    }
    if let (Some(min), Some(n)) = (schema["minimum"].as_i64(), value.as_i64())
        && n < min
    {
        errors.push(format!("{path}: {n} is below {min}"));
    }
    if let Some(object) = value.as_object() {
        for (key, child) in object {
            let child_path = format!("{path}.{key}");
            match (
                schema["properties"].get(key),
                &schema["additionalProperties"],
            ) {
                (Some(property), _) => schema_errors(property, child, &child_path, errors),
                (None, Value::Bool(false)) => errors.push(format!("{child_path}: not allowed")),
                (None, extra @ Value::Object(_)) => {
                    schema_errors(extra, child, &child_path, errors)
                }
                (None, _) => {}
            }
        }
        for required in schema["required"].as_array().into_iter().flatten() {
            if !object.contains_key(required.as_str().unwrap()) {
                errors.push(format!("{path}: {required} is required"));
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, item) in array.iter().enumerate() {
            schema_errors(items, item, &format!("{path}[{i}]"), errors);
        }
    }
}

#[test]
fn default_values_follow_the_values_schema() {
    let schema: Value = serde_json::from_str(&read("values.schema.json")).unwrap();
    let values: Value = serde_saphyr::from_str(&read("values.yaml")).unwrap();
    let mut errors = Vec::new();
    schema_errors(&schema, &values, "", &mut errors);
    assert_eq!(errors, Vec::<String>::new());
    let mut typo = values.clone();
    typo["image"]["pulPolicy"] = "Always".into();
    typo["replicaCount"] = (-1).into();
    let mut errors = Vec::new();
    schema_errors(&schema, &typo, "", &mut errors);
    assert_eq!(
        errors,
        [
            ".image.pulPolicy: not allowed",
            ".replicaCount: -1 is below 0"
        ]
    );
}

#[test]
fn operator_pod_is_locked_down() {
    let objects = objects();
    let pod = &object(&objects, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    // No fixed user id, so OpenShift's restricted SCC admits the pod.
    assert!(pod["securityContext"].get("runAsUser").is_none());
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(container["ports"][0]["containerPort"], 9644);
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
}

fn allows(rules: &Value, group: &str, resource: &str, verb: &str) -> bool {
    let has = |list: &Value, item: &str| list.as_array().unwrap().iter().any(|v| v == item);
    rules.as_array().unwrap().iter().any(|rule| {
        has(&rule["apiGroups"], group)
            && has(&rule["resources"], resource)
            && has(&rule["verbs"], verb)
    })
}

fn example_cluster() -> Cluster {
    let mut cluster: Cluster = serde_saphyr::from_str(&read("examples/cluster.yaml")).unwrap();
    cluster.metadata.uid = Some("00000000-0000-0000-0000-000000000001".to_owned());
    cluster
}

#[test]
fn cluster_role_lets_the_operator_apply_what_a_cluster_owns() {
    let objects = objects();
    let rules = &object(&objects, "ClusterRole")["rules"];
    let desired = desired(&example_cluster()).unwrap();
    let owned = [
        serde_json::to_value(&desired.config_map).unwrap(),
        serde_json::to_value(&desired.headless_service).unwrap(),
        serde_json::to_value(&desired.stateful_set).unwrap(),
        serde_json::to_value(&desired.pod_disruption_budget).unwrap(),
        serde_json::to_value(&desired.network_policy).unwrap(),
    ];
    for object in owned {
        let api_version = object["apiVersion"].as_str().unwrap();
        let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
        let kind = object["kind"].as_str().unwrap().to_lowercase();
        let resource = match kind.strip_suffix('y') {
            Some(stem) => format!("{stem}ies"),
            None => format!("{kind}s"),
        };
        for verb in ["get", "list", "watch", "create", "patch"] {
            assert!(allows(rules, group, &resource, verb), "{verb} {resource}");
        }
        assert!(
            !allows(rules, group, &resource, "delete"),
            "delete {resource}"
        );
    }
    // The certificates' Secrets, by name: the operator lists and watches no Secret.
    for verb in ["get", "create", "patch"] {
        assert!(allows(rules, "", "secrets", verb), "{verb} secrets");
    }
    for verb in ["list", "watch", "delete"] {
        assert!(!allows(rules, "", "secrets", verb), "{verb} secrets");
    }
    for (resource, verb) in [("pods", "patch"), ("events", "create")] {
        assert!(allows(rules, "", resource, verb), "{verb} {resource}");
    }
    // Nodes in a ClusterRole of their own, bound cluster-wide even when the operator serves
    // only some namespaces.
    let nodes = objects
        .iter()
        .find(|o| o["kind"] == "ClusterRole" && allows(&o["rules"], "", "nodes", "get"))
        .expect("a ClusterRole that reads nodes");
    assert_eq!(nodes["rules"].as_array().map(Vec::len), Some(1));
    for resource in ["clusters/status", "topics/status"] {
        assert!(
            allows(rules, "strand.dev", resource, "patch"),
            "patch {resource}"
        );
    }
    let lease_rules = &object(&objects, "Role")["rules"];
    assert!(allows(
        lease_rules,
        "coordination.k8s.io",
        "leases",
        "update"
    ));
}

#[test]
fn examples_are_valid_resources() {
    let cluster = example_cluster();
    desired(&cluster).unwrap();
    let cluster_schema = open_api_schema(&serde_json::to_value(Cluster::crd()).unwrap());
    let raw: Value = serde_saphyr::from_str(&read("examples/cluster.yaml")).unwrap();
    assert!(
        Validator::new()
            .validate(&cluster_schema, &raw, None)
            .is_ok()
    );

    let topic_schema = open_api_schema(&serde_json::to_value(Topic::crd()).unwrap());
    let documents = yaml_documents(&read("examples/topics.yaml"));
    let mut names = Vec::new();
    for document in documents {
        assert!(
            Validator::new()
                .validate(&topic_schema, &document, None)
                .is_ok(),
            "{document}"
        );
        let topic: Topic = serde_json::from_value(document).unwrap();
        assert_eq!(topic.spec.config.validate(), Ok(()));
        assert_eq!(
            topic.spec.cluster_ref.name,
            cluster.metadata.name.clone().unwrap()
        );
        names.push(topic.kafka_name().unwrap().to_owned());
    }
    assert_eq!(names, ["orders", "Customers_v1"]);

    let user_schema = open_api_schema(&serde_json::to_value(User::crd()).unwrap());
    let mut users = Vec::new();
    for document in yaml_documents(&read("examples/users.yaml")) {
        assert!(
            Validator::new()
                .validate(&user_schema, &document, None)
                .is_ok(),
            "{document}"
        );
        let user: User = serde_json::from_value(document).unwrap();
        assert_eq!(
            user.spec.cluster_ref.name,
            cluster.metadata.name.clone().unwrap()
        );
        assert!(strand_operator::user::plan::no_listener(&user, &cluster).is_none());
        users.push(strand_operator::user::plan::principal(&user));
    }
    assert_eq!(users, ["User:orders-app", "User:audit-reader"]);
}

fn open_api_schema(crd: &Value) -> Value {
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// `charts/install.yaml`, the chart rendered with its default values for users without Helm
/// (and for the end-to-end suite), as objects.
fn install_manifest() -> Vec<Value> {
    let path = chart().join("../install.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    yaml_documents(&text)
}

/// Whether `text` matches `pattern`, where each `x` of the pattern that stood for a template
/// action may stand for any text (a literal `x` matches itself as well).
fn glob_matches(pattern: &str, text: &str) -> bool {
    match pattern.split_once('x') {
        None => pattern == text,
        Some((head, tail)) => {
            text.starts_with(head)
                && (head.len()..=text.len())
                    .filter(|&i| text.is_char_boundary(i))
                    .any(|i| glob_matches(tail, &text[i..]))
        }
    }
}

/// Differences between a template's skeleton and the rendered object: a skeleton scalar the
/// object lacks or contradicts, or an object field the skeleton has no place for. A field may
/// come from an action only where the skeleton has `x` or an empty key (a line of actions).
fn skeleton_differences(skeleton: &Value, rendered: &Value, path: &str, out: &mut Vec<String>) {
    match (skeleton, rendered) {
        (Value::Null, _) => {}
        (Value::String(pattern), rendered) if pattern.contains('x') => {
            let text = match rendered {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if !glob_matches(pattern, &text) {
                out.push(format!("{path}: {text} does not match {pattern}"));
            }
        }
        (Value::Object(skeleton), Value::Object(rendered)) => {
            for (key, child) in skeleton {
                match rendered.get(key) {
                    Some(value) => {
                        skeleton_differences(child, value, &format!("{path}.{key}"), out)
                    }
                    // Filled only by a block the default values leave out.
                    None if child.is_null() || *child == "x" => {}
                    None => out.push(format!("{path}.{key}: missing from install.yaml")),
                }
            }
            for key in rendered.keys().filter(|k| !skeleton.contains_key(*k)) {
                out.push(format!("{path}.{key}: not in the chart"));
            }
        }
        (Value::Array(skeleton), Value::Array(rendered)) => {
            if skeleton.len() != rendered.len() {
                out.push(format!(
                    "{path}: {} items in the chart, {} in install.yaml",
                    skeleton.len(),
                    rendered.len()
                ));
            }
            for (i, (s, r)) in skeleton.iter().zip(rendered).enumerate() {
                skeleton_differences(s, r, &format!("{path}[{i}]"), out);
            }
        }
        (skeleton, rendered) if skeleton == rendered => {}
        (skeleton, rendered) => out.push(format!(
            "{path}: chart has {skeleton}, install.yaml {rendered}"
        )),
    }
}

#[test]
fn install_manifest_is_the_chart_rendered() {
    let install = install_manifest();
    let kinds: Vec<&str> = install
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    let mut expected: Vec<String> = default_objects()
        .iter()
        .map(|o| o["kind"].as_str().unwrap().to_owned())
        .collect();
    expected.insert(0, "Namespace".to_owned());
    assert_eq!(kinds, expected);
    let mut differences = Vec::new();
    for (skeleton, rendered) in default_objects().iter().zip(&install[1..]) {
        let kind = skeleton["kind"].as_str().unwrap();
        skeleton_differences(skeleton, rendered, kind, &mut differences);
    }
    assert_eq!(differences, Vec::<String>::new());
    // Values the skeleton leaves open, rendered with the defaults.
    let values: Value = serde_saphyr::from_str(&read("values.yaml")).unwrap();
    let container = &object(&install, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    let chart: Value = serde_saphyr::from_str(&read("Chart.yaml")).unwrap();
    assert_eq!(
        container["image"],
        format!(
            "{}:{}",
            values["image"]["repository"].as_str().unwrap(),
            chart["appVersion"].as_str().unwrap()
        )
    );
    assert_eq!(container["imagePullPolicy"], values["image"]["pullPolicy"]);
    assert_eq!(container["resources"], values["resources"]);
    assert_eq!(container["args"][4], values["logFormat"]);
    assert_eq!(container["env"][2]["value"], values["logLevel"]);
    assert_eq!(container["env"][3]["value"], "");
    for object in &install[1..] {
        let namespaced = !object["kind"].as_str().unwrap().starts_with("Cluster");
        assert_eq!(
            object["metadata"]["namespace"].as_str(),
            namespaced.then_some("strand-system"),
            "{}",
            object["kind"]
        );
        assert_eq!(
            object["metadata"]["labels"]["app.kubernetes.io/version"],
            chart["appVersion"]
        );
    }
}

#[test]
fn chart_skeleton_comparison_finds_drift() {
    let skeleton: Value =
        serde_saphyr::from_str("a: {b: 1, c: x, d: \"img:x\", e: {h: }, f: }").unwrap();
    let same: Value = serde_saphyr::from_str("a: {b: 1, c: 7, d: \"img:1.0\", e: {h: 2}}").unwrap();
    let drift: Value = serde_saphyr::from_str("a: {b: 2, c: 7, d: \"other\", g: 1}").unwrap();
    let mut out = Vec::new();
    skeleton_differences(&skeleton, &same, "", &mut out);
    assert_eq!(out, Vec::<String>::new());
    skeleton_differences(&skeleton, &drift, "", &mut out);
    assert_eq!(
        out,
        [
            ".a.b: chart has 1, install.yaml 2",
            ".a.d: other does not match img:x",
            ".a.e: missing from install.yaml",
            ".a.g: not in the chart"
        ]
    );
}

#[test]
fn the_network_policy_lets_the_charts_operator_reach_the_grpc_port() {
    // The chart rendered (its templates' skeletons have no label values).
    let installed =
        yaml_documents(&std::fs::read_to_string(chart().join("../install.yaml")).unwrap());
    let pod_labels = &object(&installed, "Deployment")["spec"]["template"]["metadata"]["labels"];
    let policy = serde_json::to_value(desired(&example_cluster()).unwrap().network_policy).unwrap();
    let grpc_rule = policy["spec"]["ingress"]
        .as_array()
        .unwrap()
        .iter()
        .find(|rule| rule["ports"][0]["port"] == 9093)
        .expect("a rule for the gRPC port");
    let operator = grpc_rule["from"]
        .as_array()
        .unwrap()
        .iter()
        .find(|peer| peer.get("namespaceSelector").is_some())
        .expect("the operator's pods, in any namespace");
    let wanted = operator["podSelector"]["matchLabels"].as_object().unwrap();
    assert!(!wanted.is_empty());
    for (key, value) in wanted {
        assert_eq!(&pod_labels[key], value, "{key} in {pod_labels}");
    }
}
