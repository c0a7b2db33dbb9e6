//! The committed CRD YAML matches the Rust types, the schemas are structural, and the CEL
//! rules refuse what they promise to.

mod structural;

use std::path::{Path, PathBuf};

use kube::CustomResourceExt;
use kube::core::cel::Validator;
use serde_json::{Value, json};
use strand_operator::crd::{self, Cluster, Topic};
use strand_operator::topic_config::{KEYS, ValueKind};

/// Directories that hold a copy of the generated CRDs, relative to the repository root.
const CRD_DIRS: &[&str] = &["crds", "charts/strand-operator/crds"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("operator/ has a parent")
        .to_owned()
}

#[test]
fn committed_crds_match_the_rust_types() {
    let update = std::env::var_os("UPDATE_CRDS").is_some();
    let mut stale = Vec::new();
    for dir in CRD_DIRS {
        for (file, crd) in crd::crds() {
            let path = repo_root().join(dir).join(file);
            let generated = crd::to_yaml(&crd).unwrap();
            if update {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &generated).unwrap();
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(generated.as_str()) {
                stale.push(format!("{dir}/{file}"));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "out of date with the Rust types: {}\nregenerate with: UPDATE_CRDS=1 cargo test -p strand-operator --test crds",
        stale.join(", ")
    );
}

#[test]
fn crd_command_prints_every_crd() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_strand-operator"))
        .arg("crd")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8(output.stdout).unwrap();
    assert_eq!(printed, crd::all_to_yaml().unwrap());
    let documents: Vec<Value> = serde_saphyr::from_multiple(&printed).unwrap();
    let names: Vec<&str> = documents
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "clusters.strand.dev",
            "topics.strand.dev",
            "users.strand.dev"
        ]
    );
}

#[test]
fn crd_schemas_are_structural() {
    for (file, crd) in crd::crds() {
        let schema = open_api_schema(&serde_json::to_value(&crd).unwrap());
        let problems = structural::problems(&schema);
        assert!(
            problems.is_empty(),
            "{file} is not structural:\n{}",
            problems.join("\n")
        );
    }
}

#[test]
fn structural_check_finds_untyped_nodes_and_mixed_enums() {
    let schema = json!({
        "type": "object",
        "properties": {
            "untyped": { "properties": { "a": { "type": "string" } } },
            "mixed": { "type": "object", "anyOf": [ { "type": "string" }, { "type": "integer" } ] },
            "closed": { "type": "object", "additionalProperties": false },
        },
    });
    let problems = structural::problems(&schema);
    assert_eq!(
        problems,
        [
            ".properties.closed: additionalProperties: false is not allowed",
            ".properties.mixed.anyOf[0]: `type` is not allowed inside anyOf",
            ".properties.mixed.anyOf[1]: `type` is not allowed inside anyOf",
            ".properties.untyped: no `type`",
        ]
    );
}

/// Short names of the built-in resources of Kubernetes 1.33 (`kubectl api-resources`).
const BUILT_IN_SHORT_NAMES: &[&str] = &[
    "cm", "cs", "csr", "cj", "crd", "crds", "deploy", "ds", "ep", "ev", "hpa", "ing", "limits",
    "netpol", "no", "ns", "pc", "pdb", "po", "pv", "pvc", "quota", "rc", "rs", "sa", "sc", "sts",
    "svc", "vac",
];

#[test]
fn names_and_subresources_are_as_documented() {
    let cluster = serde_json::to_value(Cluster::crd()).unwrap();
    let topic = serde_json::to_value(Topic::crd()).unwrap();
    for (crd, short) in [(&cluster, "strc"), (&topic, "strt")] {
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        assert_eq!(crd["spec"]["names"]["shortNames"], json!([short]));
        assert!(!BUILT_IN_SHORT_NAMES.contains(&short), "{short} is taken");
        assert_eq!(crd["spec"]["names"]["categories"], json!(["strand"]));
        assert_eq!(crd["spec"]["versions"][0]["name"], "v1alpha1");
        assert!(crd["spec"]["versions"][0]["subresources"]["status"].is_object());
    }
    assert_eq!(
        cluster["spec"]["versions"][0]["subresources"]["scale"],
        json!({
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.labelSelector",
        })
    );
    let columns = |crd: &Value| -> Vec<String> {
        crd["spec"]["versions"][0]["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        columns(&cluster),
        [
            "Ready",
            "Reason",
            "Brokers",
            "Replicas",
            "Controller",
            "Under-replicated",
            "Age",
            "Message"
        ]
    );
    assert_eq!(
        columns(&topic),
        [
            "Ready",
            "Reason",
            "Cluster",
            "Topic",
            "Partitions",
            "Replication",
            "Age",
            "Message"
        ]
    );
}

#[test]
fn topic_config_schema_follows_the_key_table() {
    let topic = serde_json::to_value(Topic::crd()).unwrap();
    let config = &open_api_schema(&topic)["properties"]["spec"]["properties"]["config"];
    let properties = config["properties"].as_object().unwrap();
    let keys: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
    let mut schema_keys: Vec<&str> = properties.keys().map(String::as_str).collect();
    schema_keys.sort_unstable();
    assert_eq!(schema_keys, keys);
    for key in KEYS {
        let property = &properties[key.name];
        match key.kind {
            ValueKind::Int { min, .. } => {
                assert_eq!(property["type"], "integer", "{}", key.name);
                assert_eq!(
                    property["minimum"].as_f64(),
                    Some(min as f64),
                    "{}",
                    key.name
                );
            }
            ValueKind::OneOf(allowed) => {
                assert_eq!(property["type"], "string", "{}", key.name);
                assert_eq!(property["enum"], json!(allowed), "{}", key.name);
            }
            ValueKind::Bool => {
                assert_eq!(property["type"], "boolean", "{}", key.name);
                // Strand has no tiered storage: only `false` is taken.
                if key.name == "remote.storage.enable" {
                    assert_eq!(property["enum"], json!([false]), "{}", key.name);
                }
            }
            ValueKind::Ratio => {
                assert_eq!(property["type"], "number", "{}", key.name);
                assert_eq!(property["minimum"].as_f64(), Some(0.0), "{}", key.name);
                assert_eq!(property["maximum"].as_f64(), Some(1.0), "{}", key.name);
            }
            ValueKind::ReplicaList => {
                assert_eq!(property["type"], "string", "{}", key.name);
                assert!(property["pattern"].is_string(), "{}", key.name);
            }
        }
    }
}

fn open_api_schema(crd: &Value) -> Value {
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// Runs the CRD's CEL rules on `new` (an update of `old` when given), as the API server would,
/// and returns the messages of the rules that failed.
fn cel_errors(crd: &Value, new: &Value, old: Option<&Value>) -> Vec<String> {
    match Validator::new().validate(&open_api_schema(crd), new, old) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

fn topic(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "strand.dev/v1alpha1",
        "kind": "Topic",
        "metadata": { "name": name, "namespace": "default" },
        "spec": spec,
    })
}

fn orders(partitions: i64) -> Value {
    topic(
        "orders",
        json!({ "clusterRef": { "name": "main" }, "partitions": partitions, "replicationFactor": 3 }),
    )
}

#[test]
fn partitions_may_grow_but_never_shrink() {
    let crd = serde_json::to_value(Topic::crd()).unwrap();
    assert_eq!(
        cel_errors(&crd, &orders(12), Some(&orders(6))),
        Vec::<String>::new()
    );
    assert_eq!(
        cel_errors(&crd, &orders(6), Some(&orders(6))),
        Vec::<String>::new()
    );
    assert_eq!(
        cel_errors(&crd, &orders(3), Some(&orders(6))),
        ["spec.partitions: partitions cannot be decreased"]
    );
}

#[test]
fn topic_identity_cannot_change() {
    let crd = serde_json::to_value(Topic::crd()).unwrap();
    let spec = |cluster: &str, topic_name: Option<&str>| {
        let mut spec =
            json!({ "clusterRef": { "name": cluster }, "partitions": 1, "replicationFactor": 1 });
        if let Some(name) = topic_name {
            spec["topicName"] = json!(name);
        }
        topic("orders", spec)
    };
    let old = spec("main", Some("Orders_v1"));
    assert_eq!(
        cel_errors(&crd, &spec("other", Some("Orders_v1")), Some(&old)),
        ["spec.clusterRef: clusterRef is immutable"]
    );
    assert_eq!(
        cel_errors(&crd, &spec("main", Some("Orders_v2")), Some(&old)),
        ["spec.topicName: topicName is immutable"]
    );
    assert_eq!(
        cel_errors(&crd, &spec("main", None), Some(&old)),
        ["spec: topicName cannot be added or removed after creation"]
    );
}

#[test]
fn dot_names_and_overlong_object_names_are_refused() {
    let crd = serde_json::to_value(Topic::crd()).unwrap();
    let dots = topic(
        "dots",
        json!({ "clusterRef": { "name": "main" }, "topicName": "..", "partitions": 1, "replicationFactor": 1 }),
    );
    assert_eq!(
        cel_errors(&crd, &dots, None),
        ["spec.topicName: topicName cannot be '.' or '..'"]
    );
    let long = topic(
        &"a".repeat(250),
        json!({ "clusterRef": { "name": "main" }, "partitions": 1, "replicationFactor": 1 }),
    );
    assert_eq!(
        cel_errors(&crd, &long, None),
        ["metadata.name is longer than a topic name may be (249); set spec.topicName"]
    );
}

#[test]
fn broker_failure_timeout_must_be_a_duration() {
    let crd = serde_json::to_value(Cluster::crd()).unwrap();
    let cluster = |timeout: &str| {
        json!({
            "apiVersion": "strand.dev/v1alpha1",
            "kind": "Cluster",
            "metadata": { "name": "main", "namespace": "default" },
            "spec": {
                "replicas": 3,
                "image": "strand:dev",
                "storage": { "size": "10Gi" },
                "balancing": { "brokerFailureTimeout": timeout },
            },
        })
    };
    assert_eq!(
        cel_errors(&crd, &cluster("1h30m"), None),
        Vec::<String>::new()
    );
    assert_ne!(
        cel_errors(&crd, &cluster("soon"), None),
        Vec::<String>::new()
    );
}

#[test]
fn min_insync_replicas_above_the_replication_factor_is_refused() {
    let crd = serde_json::to_value(Topic::crd()).unwrap();
    let with = |min_insync: Option<i64>, replication_factor: i64| {
        let mut spec = json!({
            "clusterRef": { "name": "main" }, "partitions": 1,
            "replicationFactor": replication_factor, "config": {},
        });
        if let Some(n) = min_insync {
            spec["config"]["min.insync.replicas"] = json!(n);
        }
        topic("orders", spec)
    };
    assert_eq!(
        cel_errors(&crd, &with(Some(2), 3), None),
        Vec::<String>::new()
    );
    assert_eq!(
        cel_errors(&crd, &with(Some(3), 3), None),
        Vec::<String>::new()
    );
    assert_eq!(cel_errors(&crd, &with(None, 1), None), Vec::<String>::new());
    assert_eq!(
        cel_errors(&crd, &with(Some(3), 2), None),
        [
            "spec: config min.insync.replicas cannot exceed replicationFactor: acks=all writes would always be refused"
        ]
    );
}

#[test]
fn broker_settings_are_declared_under_both_names() {
    let crd = serde_json::to_value(Cluster::crd()).unwrap();
    let config = &open_api_schema(&crd)["properties"]["spec"]["properties"]["config"];
    let declared: Vec<&String> = config["properties"].as_object().unwrap().keys().collect();
    for key in [
        "retention_check_interval_ms",
        "log.retention.check.interval.ms",
        "num.partitions",
    ] {
        assert!(declared.iter().any(|k| *k == key), "{key} in {declared:?}");
    }
    // Anything else is not declared, so the API server's field validation refuses it.
    assert!(config.get("additionalProperties").is_none());
    assert!(config.get("x-kubernetes-preserve-unknown-fields").is_none());
}

#[test]
fn listeners_must_not_collide_or_contradict() {
    let crd = serde_json::to_value(Cluster::crd()).unwrap();
    let cluster = |listeners: Value| {
        json!({
            "apiVersion": "strand.dev/v1alpha1",
            "kind": "Cluster",
            "metadata": { "name": "main", "namespace": "default" },
            "spec": { "replicas": 3, "storage": { "size": "1Gi" }, "listeners": listeners },
        })
    };
    let listener = |name: &str, port: i64, tls: bool, authentication: &str| {
        json!({ "name": name, "port": port, "type": "internal", "tls": tls,
                "authentication": authentication })
    };
    let fine = cluster(json!([
        listener("tls", 9092, true, "scram-sha-512"),
        listener("mtls", 9094, true, "tls"),
        listener("plain", 9095, false, "none"),
    ]));
    assert_eq!(cel_errors(&crd, &fine, None), Vec::<String>::new());
    let same_port = cluster(json!([
        listener("a", 9092, true, "scram-sha-512"),
        listener("b", 9092, false, "none"),
    ]));
    assert_eq!(
        cel_errors(&crd, &same_port, None),
        ["spec.listeners: listener ports must be unique"]
    );
    let same_name = cluster(json!([
        listener("a", 9092, true, "scram-sha-512"),
        listener("a", 9094, false, "none"),
    ]));
    assert_eq!(
        cel_errors(&crd, &same_name, None),
        ["spec.listeners: listener names must be unique"]
    );
    let grpc = cluster(json!([listener("a", 9093, true, "scram-sha-512")]));
    assert_eq!(
        cel_errors(&crd, &grpc, None),
        ["spec.listeners[0].port: 9093 (gRPC) and 9644 (HTTP) are the brokers' own ports"]
    );
    let plaintext_certificates = cluster(json!([listener("a", 9092, false, "tls")]));
    assert_eq!(
        cel_errors(&crd, &plaintext_certificates, None),
        ["spec.listeners[0]: authentication tls needs tls: true"]
    );
    let mixed = cluster(json!([
        listener("mtls", 9092, true, "tls"),
        listener("open", 9094, true, "none"),
    ]));
    assert_eq!(cel_errors(&crd, &mixed, None).len(), 1);
}
