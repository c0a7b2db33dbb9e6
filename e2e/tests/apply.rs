//! `strand apply` against three real `strand broker` processes: a dry run changes nothing,
//! apply creates, applying again reports the topic unchanged, and an edit is reported and made.

use std::path::Path;
use std::process::Command;

use strand_e2e::{ProcessCluster, strand_bin};

const ORDERS: &str = "\
apiVersion: strand.dev/v1alpha1
kind: Topic
metadata:
  name: orders
spec:
  clusterRef:
    name: events
  partitions: 6
  replicationFactor: 3
  config:
    retention.ms: 604800000
";

/// Runs `strand apply` with `args`; its standard output, or a panic with both outputs.
fn apply(server: &str, args: &[&str]) -> String {
    let output = Command::new(strand_bin())
        .arg("apply")
        .args(args)
        .args(["--server", server])
        .output()
        .expect("strand runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "strand apply {args:?} failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temporary path")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_creates_reports_unchanged_and_changes_topics() {
    let cluster = ProcessCluster::start(3).await;
    let server = cluster.grpc_address(0);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("topics.yaml");
    std::fs::write(&file, ORDERS).unwrap();

    let dry = apply(&server, &["-f", path(&file), "--dry-run"]);
    assert_eq!(dry, "(dry run) created topic orders (6 partitions, RF 3)\n");
    assert!(
        cluster.describe("orders").await.is_none(),
        "a dry run creates nothing"
    );

    let created = apply(&server, &["-f", path(&file)]);
    assert_eq!(created, "created topic orders (6 partitions, RF 3)\n");
    let topic = cluster.describe("orders").await.expect("orders exists");
    assert_eq!(topic.partitions.len(), 6);
    assert_eq!(topic.replication_factor, 3);
    assert_eq!(topic.config["retention.ms"], "604800000");

    let again = apply(&server, &["-f", path(dir.path())]);
    assert_eq!(again, "orders: unchanged\n");

    let edited = ORDERS
        .replace("partitions: 6", "partitions: 12")
        .replace("604800000", "86400000");
    std::fs::write(&file, edited).unwrap();
    let dry = apply(&server, &["-f", path(&file), "--dry-run"]);
    assert_eq!(
        dry,
        "(dry run) orders: partitions 6 → 12\n(dry run) orders: retention.ms 604800000 → 86400000\n"
    );
    assert_eq!(
        cluster.describe("orders").await.unwrap().partitions.len(),
        6
    );
    let changed = apply(&server, &["-f", path(&file)]);
    assert_eq!(
        changed,
        "orders: partitions 6 → 12\norders: retention.ms 604800000 → 86400000\n"
    );
    let topic = cluster.describe("orders").await.unwrap();
    assert_eq!(topic.partitions.len(), 12);
    assert_eq!(topic.config["retention.ms"], "86400000");
    assert_eq!(apply(&server, &["-f", path(&file)]), "orders: unchanged\n");

    // The chart's example Topics, written for the operator, apply as they are.
    let example = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../charts/strand-operator/examples/topics.yaml");
    let dry = apply(&server, &["-f", path(&example), "--dry-run"]);
    assert!(
        dry.contains("(dry run) created topic Customers_v1 (6 partitions, RF 3)"),
        "{dry}"
    );
    assert!(cluster.describe("Customers_v1").await.is_none());
}
