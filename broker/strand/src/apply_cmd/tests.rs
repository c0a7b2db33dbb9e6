//! Parsing Topic YAML and planning each topic's change, without a cluster.

use strand_proto::admin::PartitionDescription;

use super::*;

const ORDERS: &str = "\
apiVersion: strand.dev/v1alpha1
kind: Topic
metadata:
  name: orders
  namespace: streaming
spec:
  clusterRef:
    name: events
  partitions: 6
  replicationFactor: 3
  config:
    retention.ms: 604800000
    compression.type: zstd
---
apiVersion: strand.dev/v1alpha1
kind: Cluster
metadata:
  name: events
spec:
  replicas: 3
---
apiVersion: strand.dev/v1alpha1
kind: Topic
metadata:
  name: customers
spec:
  clusterRef:
    name: events
  topicName: Customers_v1
  partitions: 1
  replicationFactor: 1
  deletionPolicy: Retain
";

fn described(partitions: u32, config: &[(&str, &str)]) -> TopicDescription {
    TopicDescription {
        name: "orders".into(),
        replication_factor: 3,
        config: config
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        partitions: (0..partitions)
            .map(|p| PartitionDescription {
                partition: p,
                ..PartitionDescription::default()
            })
            .collect(),
        ..TopicDescription::default()
    }
}

#[test]
fn topics_are_read_from_a_multi_document_stream_and_other_kinds_skipped() {
    let topics = parse("topics.yaml", ORDERS).unwrap();
    assert_eq!(topics.len(), 2);
    assert_eq!(topics[0].name, "orders");
    assert_eq!(topics[0].source, "topics.yaml, document 1");
    assert_eq!(topics[0].config["retention.ms"], "604800000");
    assert_eq!(topics[0].config["compression.type"], "zstd");
    assert_eq!(topics[1].name, "Customers_v1");
    assert_eq!(topics[1].source, "topics.yaml, document 3");
}

#[test]
fn bad_documents_are_refused_with_their_place_and_reason() {
    let error = |yaml: &str| format!("{:#}", parse("t.yaml", yaml).unwrap_err());
    let topic = |spec: &str| {
        format!(
            "apiVersion: strand.dev/v1alpha1\nkind: Topic\nmetadata:\n  name: orders\nspec:\n{spec}"
        )
    };
    let unknown_key = error(&topic(
        "  partitions: 1\n  replicationFactor: 1\n  config:\n    retention.msec: 5\n",
    ));
    assert!(
        unknown_key.contains("t.yaml, document 1")
            && unknown_key.contains("unknown topic config key `retention.msec`"),
        "{unknown_key}"
    );
    let out_of_range = error(&topic(
        "  partitions: 1\n  replicationFactor: 1\n  config:\n    segment.ms: 0\n",
    ));
    assert!(
        out_of_range.contains("`segment.ms` must be between 1"),
        "{out_of_range}"
    );
    let zero = error(&topic("  partitions: 0\n  replicationFactor: 1\n"));
    assert!(zero.contains("spec.partitions is 0"), "{zero}");
    let typo = error(&topic("  partitions: 1\n  replicationFactr: 1\n"));
    assert!(typo.contains("spec is not valid"), "{typo}");
    let bad_name = error(&topic(
        "  topicName: a/b\n  partitions: 1\n  replicationFactor: 1\n",
    ));
    assert!(
        bad_name.contains("topic name `a/b` is not valid"),
        "{bad_name}"
    );
    let version = error("apiVersion: strand.dev/v2\nkind: Topic\nmetadata:\n  name: x\n");
    assert!(version.contains("apiVersion strand.dev/v2"), "{version}");
    let not_yaml = error("kind: [unclosed\n");
    assert!(not_yaml.contains("not valid YAML"), "{not_yaml}");
}

#[test]
fn a_missing_topic_is_created() {
    let topics = parse("t.yaml", ORDERS).unwrap();
    let Step::Create(request) = plan(&topics[0], None).unwrap() else {
        panic!("expected create")
    };
    assert_eq!((request.partitions, request.replication_factor), (6, 3));
}

#[test]
fn changes_are_listed_one_per_line() {
    let mut orders = parse("t.yaml", ORDERS).unwrap().remove(0);
    orders.partitions = 12;
    orders
        .config
        .insert("retention.ms".into(), "86400000".into());
    let observed = described(6, &[("retention.ms", "604800000"), ("segment.ms", "10")]);
    let Step::Update(request, changes) = plan(&orders, Some(&observed)).unwrap() else {
        panic!("expected update")
    };
    assert_eq!(
        changes,
        [
            "partitions 6 → 12",
            "compression.type (default) → zstd",
            "retention.ms 604800000 → 86400000",
            "segment.ms 10 → (default)",
        ]
    );
    assert_eq!(request.partitions, Some(12));
    assert_eq!(request.remove_config, ["segment.ms"]);
}

#[test]
fn a_matching_topic_is_unchanged_and_fewer_partitions_are_refused() {
    let orders = parse("t.yaml", ORDERS).unwrap().remove(0);
    let same = described(
        6,
        &[("retention.ms", "604800000"), ("compression.type", "zstd")],
    );
    assert_eq!(plan(&orders, Some(&same)).unwrap(), Step::Unchanged);
    let more = described(8, &[]);
    let error = plan(&orders, Some(&more)).unwrap_err().to_string();
    assert!(error.contains("partitions can only grow"), "{error}");
}

#[test]
fn a_new_replication_factor_is_an_update() {
    let orders = parse("t.yaml", ORDERS).unwrap().remove(0);
    let mut rf = described(
        6,
        &[("retention.ms", "604800000"), ("compression.type", "zstd")],
    );
    rf.replication_factor = 1;
    let Step::Update(request, changes) = plan(&orders, Some(&rf)).unwrap() else {
        panic!("a replication factor change is an update");
    };
    assert_eq!(request.replication_factor, Some(orders.replication_factor));
    assert_eq!(
        changes,
        [format!(
            "replication factor 1 → {} (replicas move in the background)",
            orders.replication_factor
        )]
    );
}

#[test]
fn a_directory_is_read_in_name_order_and_duplicates_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.yaml"), ORDERS).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not yaml: [").unwrap();
    let topics = read_all(&[dir.path().to_owned()]).unwrap();
    assert_eq!(topics.len(), 2);
    std::fs::write(dir.path().join("a.yml"), ORDERS).unwrap();
    let error = read_all(&[dir.path().to_owned()]).unwrap_err().to_string();
    assert!(error.contains("topic orders is declared twice"), "{error}");
}
