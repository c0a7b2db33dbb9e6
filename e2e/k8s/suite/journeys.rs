//! The journeys, in the order a platform team meets them: installing, creating, producing,
//! ownership and bad input here; broker disruptions and the cluster's life in `brokers.rs`.
//! Each asserts what a person would check, and waits for conditions with deadlines, never for
//! fixed times.

use crate::brokers::*;
use crate::kubectl::{apply, condition, events_of, get, kubectl, try_apply, wait_for};
use crate::security::secure_listeners_and_users;
use crate::suite::*;
use crate::traffic;

/// A journey: a name a run prints, and the function.
pub type Journey = (&'static str, fn(&Suite));

/// Every journey, in order; later ones build on earlier ones.
pub const ALL: &[Journey] = &[
    ("install the operator in-cluster", install_the_operator),
    ("create a Cluster and Topics", create_a_cluster_and_topics),
    (
        "produce and consume through the advertised names",
        produce_and_consume,
    ),
    (
        "the gRPC port answers only the cluster's certificates",
        control_plane_is_closed,
    ),
    (
        "an unchanged re-apply writes nothing",
        unchanged_reapply_writes_nothing,
    ),
    (
        "bad input is refused where the user looks",
        bad_input_is_refused,
    ),
    (
        "Topics never touch topics they do not own",
        topics_touch_only_their_own,
    ),
    ("grow partitions", grow_partitions),
    ("crash a broker pod under load", crash_a_broker_under_load),
    ("delete a broker pod", delete_a_broker_pod),
    (
        "a config change rolls every broker",
        config_change_rolls_every_broker,
    ),
    (
        "renew both CAs with rolling restarts under load",
        renew_the_cas,
    ),
    (
        "scale 3 to 5 with a roll during the moves, then back to 3",
        scale_out_and_in,
    ),
    ("pause and resume", pause_and_resume),
    (
        "storage changes the cluster cannot make hold nothing back",
        storage_changes,
    ),
    ("delete Topics with both deletion policies", delete_topics),
    (
        "a secure Cluster: listeners, Users and ACLs",
        secure_listeners_and_users,
    ),
    ("delete the Cluster", delete_the_cluster),
];

const ORDERS: &str =
    "  partitions: 3\n  replicationFactor: 3\n  config:\n    min.insync.replicas: 2\n";
const AUDIT: &str = "  partitions: 1\n  replicationFactor: 3\n  deletionPolicy: Retain\n  config:\n    retention.ms: 86400000\n";

fn install_the_operator(suite: &Suite) {
    let crds = suite.root.join("crds");
    kubectl(&["apply", "--server-side", "-f", crds.to_str().unwrap()]);
    for crd in [
        "clusters.strand.dev",
        "topics.strand.dev",
        "users.strand.dev",
    ] {
        kubectl(&[
            "wait",
            "--for=condition=Established",
            &format!("crd/{crd}"),
            "--timeout=60s",
        ]);
    }
    let install = suite.root.join("charts/install.yaml");
    kubectl(&["apply", "--server-side", "-f", install.to_str().unwrap()]);
    kubectl(&[
        "rollout",
        "status",
        "-n",
        OPERATOR_NS,
        "deploy/strand-operator",
        "--timeout=180s",
    ]);
    // In-cluster under its own ServiceAccount: the Lease is held by its pod.
    let holder = wait_for("the operator to hold its Lease", QUICK, || {
        let lease = get(OPERATOR_NS, "lease", "strand-operator").ok_or("no Lease yet")?;
        lease["spec"]["holderIdentity"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "no holder yet".to_owned())
    });
    let pod = get(OPERATOR_NS, "pod", &holder).expect("the Lease holder is a pod");
    assert_eq!(pod["spec"]["serviceAccountName"], "strand-operator");
    println!("    operator pod {holder} leads, as ServiceAccount strand-operator");
    kubectl(&["create", "namespace", NS]);
}

fn create_a_cluster_and_topics(_suite: &Suite) {
    apply(&cluster_yaml(3, ""));
    apply(&topic_yaml("orders", ORDERS));
    apply(&topic_yaml("audit", AUDIT));
    let cluster = wait_for("the Cluster to be Ready with 3 brokers", SLOW, || {
        cluster_ready(3)
    });
    let brokers = cluster["status"]["brokers"]
        .as_array()
        .expect("status.brokers");
    assert_eq!(brokers.len(), 3, "{brokers:?}");
    assert!(
        brokers
            .iter()
            .all(|b| b["state"] == "Active" && b["pod"].is_string())
    );
    for name in ["orders", "audit"] {
        let topic = wait_for(&format!("Topic {name} to be Ready"), SLOW, || {
            topic_ready(name)
        });
        assert!(topic["status"]["topicId"].is_string());
    }
    // What `kubectl get` shows a person.
    let table = kubectl(&["get", "clusters,topics", "-n", NS]);
    println!("{}", indent(&table));
    assert!(table.contains("READY"), "{table}");
}

fn produce_and_consume(suite: &Suite) {
    let description = suite.describe_cluster().expect("strand cluster describe");
    assert_eq!(description["brokers"].as_array().map(Vec::len), Some(3));
    let acked = traffic::produce(&bootstrap(), "orders", "first", 3_000);
    suite.record_orders(acked);
    suite.check_orders();
}

fn control_plane_is_closed(suite: &Suite) {
    // Without the admin certificate the admin API is out of reach.
    let refused = suite
        .strand_without_certificate(&["cluster", "describe"])
        .expect_err("the admin API answered a caller without the cluster's certificate");
    println!("    without a certificate: {refused}");
    // The CA's key stays in the CA's Secret; the brokers and the admin get certificates only.
    let ca = get(NS, "secret", &format!("{CLUSTER}-ca")).expect("the cluster CA");
    assert!(ca["data"]["ca.key"].is_string());
    for name in ["broker-tls", "admin-tls"] {
        let secret = get(NS, "secret", &format!("{CLUSTER}-{name}")).expect("a certificate");
        assert_eq!(secret["type"], "kubernetes.io/tls");
        assert!(
            secret["data"].get("ca.key").is_none(),
            "{name} holds the CA key"
        );
        assert_eq!(secret["data"]["ca.crt"], ca["data"]["ca.crt"]);
    }
    // Where the network enforces it, only brokers and the operator reach the gRPC port.
    let policy = get(NS, "networkpolicy", &format!("{CLUSTER}-brokers")).expect("a NetworkPolicy");
    assert_eq!(
        policy["spec"]["ingress"][1]["ports"][0]["port"], 9093,
        "{policy}"
    );
    // A deleted certificate Secret is issued again, with an Event saying why, and the
    // brokers go on serving.
    let old = get(NS, "secret", &format!("{CLUSTER}-broker-tls")).unwrap();
    kubectl(&[
        "delete",
        "-n",
        NS,
        "secret",
        &format!("{CLUSTER}-broker-tls"),
    ]);
    wait_for(
        "the brokers' certificate to be issued again",
        QUICK,
        || match get(NS, "secret", &format!("{CLUSTER}-broker-tls")) {
            Some(new) if new["metadata"]["uid"] != old["metadata"]["uid"] => Ok(()),
            _ => Err("not yet".to_owned()),
        },
    );
    assert!(
        events_of(NS, CLUSTER)
            .iter()
            .any(|e| e.starts_with("IssuedCertificate") && e.contains("there was none")),
        "{:?}",
        events_of(NS, CLUSTER)
    );
    wait_for("the Cluster to be Ready", SLOW, || cluster_ready(3));
    suite
        .describe_cluster()
        .expect("the admin API answers the admin certificate");
    suite.check_orders();
}

fn unchanged_reapply_writes_nothing(_suite: &Suite) {
    wait_for("the Cluster to be settled", SLOW, || cluster_ready(3));
    let before = written_versions();
    let (clusters, topics) = (reconciles("Cluster"), reconciles("Topic"));
    // Re-applying the same documents is a no-op for the API server; a label added by a
    // person changes metadata only and makes the operator look at every object again.
    apply(&cluster_yaml(3, ""));
    apply(&topic_yaml("orders", ORDERS));
    apply(&topic_yaml("audit", AUDIT));
    assert_eq!(
        written_versions(),
        before,
        "a re-apply of unchanged documents changed objects"
    );
    kubectl(&[
        "label",
        "-n",
        NS,
        "cluster",
        CLUSTER,
        "e2e/touched=1",
        "--overwrite",
    ]);
    kubectl(&[
        "label",
        "-n",
        NS,
        "topic",
        "orders",
        "e2e/touched=1",
        "--overwrite",
    ]);
    wait_for(
        "the operator to reconcile the touched objects",
        QUICK,
        || {
            let seen = (reconciles("Cluster"), reconciles("Topic"));
            if seen.0 > clusters && seen.1 > topics {
                Ok(())
            } else {
                Err(format!(
                    "reconciles {seen:?}, before ({clusters}, {topics})"
                ))
            }
        },
    );
    let after: Vec<(String, String)> = written_versions();
    let changed: Vec<&String> = after
        .iter()
        .filter(|(name, version)| {
            !before.contains(&(name.clone(), version.clone()))
                && name != &format!("cluster/{CLUSTER}")
                && name != "topic/orders"
        })
        .map(|(name, _)| name)
        .collect();
    assert!(
        changed.is_empty(),
        "the operator wrote {changed:?} for unchanged objects"
    );
}

fn bad_input_is_refused(suite: &Suite) {
    // Refused at apply time by the schema, with the reason in the error.
    let error = try_apply(&topic_yaml(
        "too-strict",
        "  partitions: 1\n  replicationFactor: 2\n  config:\n    min.insync.replicas: 3\n",
    ))
    .expect_err("min.insync.replicas above the replication factor is refused");
    assert!(error.contains("min.insync.replicas"), "{error}");
    let error = try_apply(&topic_yaml(
        "huge-messages",
        "  partitions: 1\n  replicationFactor: 1\n  config:\n    max.message.bytes: -5\n",
    ))
    .expect_err("a negative max.message.bytes is refused");
    assert!(error.contains("max.message.bytes"), "{error}");
    let error = try_apply(&cluster_yaml(3, "  config:\n    no.such.setting: \"1\"\n"))
        .expect_err("an unknown broker setting is refused");
    assert!(error.contains("no.such.setting"), "{error}");
    let error = try_apply(&topic_yaml(
        "orders",
        "  partitions: 2\n  replicationFactor: 3\n",
    ))
    .expect_err("fewer partitions are refused");
    assert!(error.contains("partitions cannot be decreased"), "{error}");
    // Accepted by the schema, refused by the cluster: Stalled with a message, and an Event.
    apply(&topic_yaml(
        "too-wide",
        "  partitions: 1\n  replicationFactor: 5\n",
    ));
    let topic = wait_for("Topic too-wide to stall", QUICK, || {
        topic_stalled("too-wide", "NotEnoughBrokers")
    });
    let message = condition(&topic, "Stalled").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    println!("    too-wide: {message}");
    assert!(message.contains('3') && message.contains('5'), "{message}");
    assert!(
        events_of(NS, "too-wide")
            .iter()
            .any(|e| e.starts_with("NotEnoughBrokers"))
    );
    assert!(
        suite.describe_topic("too-wide").is_none(),
        "nothing was created"
    );
    kubectl(&["delete", "-n", NS, "topic", "too-wide", "--timeout=60s"]);
    // Nothing already accepted was lost.
    assert_eq!(get(NS, "cluster", CLUSTER).unwrap()["spec"]["replicas"], 3);
    suite.check_orders();
}

fn topics_touch_only_their_own(suite: &Suite) {
    // A topic made outside Kubernetes, owned by no Topic.
    suite
        .strand(&[
            "topic",
            "create",
            "legacy",
            "--partitions",
            "2",
            "--replication-factor",
            "3",
            "--config",
            "retention.ms=3600000",
        ])
        .expect("strand topic create legacy");
    let legacy_before = suite.describe_topic("legacy").unwrap();
    apply(&topic_yaml(
        "legacy",
        "  partitions: 4\n  replicationFactor: 3\n",
    ));
    let topic = wait_for("Topic legacy to stall", QUICK, || {
        topic_stalled("legacy", "TopicNotOwned")
    });
    println!(
        "    legacy: {}",
        condition(&topic, "Stalled").unwrap()["message"]
    );
    assert!(
        topic["status"]["topicId"].is_null(),
        "a stalled Topic never binds"
    );
    // Deleting the Topic leaves the topic it never owned.
    kubectl(&["delete", "-n", NS, "topic", "legacy", "--timeout=60s"]);
    assert_eq!(
        suite.describe_topic("legacy").as_ref(),
        Some(&legacy_before)
    );

    // Adoption is explicit.
    apply(&topic_yaml(
        "legacy",
        "  partitions: 4\n  replicationFactor: 3\n  adopt: true\n",
    ));
    let topic = wait_for("Topic legacy to adopt the topic", QUICK, || {
        topic_ready("legacy")
    });
    assert_eq!(topic["status"]["partitions"], 4);
    assert!(
        events_of(NS, "legacy")
            .iter()
            .any(|e| e.starts_with("Adopted"))
    );

    // A second Topic for a topic another Topic owns stalls and changes nothing.
    let orders_before = suite.describe_topic("orders").unwrap();
    apply(&topic_yaml(
        "orders-again",
        "  topicName: orders\n  partitions: 6\n  replicationFactor: 3\n  config:\n    retention.ms: 1000\n",
    ));
    let topic = wait_for("the second Topic for orders to stall", QUICK, || {
        topic_stalled("orders-again", "TopicOwnedByAnotherTopic")
    });
    let message = condition(&topic, "Stalled").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains(&format!("{NS}/orders")), "{message}");
    kubectl(&["delete", "-n", NS, "topic", "orders-again", "--timeout=60s"]);
    let orders_after = suite.describe_topic("orders").unwrap();
    assert_eq!(orders_after["topic_id"], orders_before["topic_id"]);
    assert_eq!(orders_after["config"], orders_before["config"]);
    assert_eq!(orders_after["partitions"].as_array().map(Vec::len), Some(3));

    // Internal topics cannot be claimed, and a Topic for one stalls.
    apply(&topic_yaml(
        "offsets",
        "  topicName: __consumer_offsets\n  partitions: 1\n  replicationFactor: 1\n",
    ));
    wait_for("a Topic for an internal topic to stall", QUICK, || {
        topic_stalled("offsets", "InvalidTopicName")
    });
    kubectl(&["delete", "-n", NS, "topic", "offsets", "--timeout=60s"]);
    suite.check_orders();
}

fn grow_partitions(suite: &Suite) {
    kubectl(&[
        "patch",
        "-n",
        NS,
        "topic",
        "orders",
        "--type=merge",
        "-p",
        r#"{"spec":{"partitions":6}}"#,
    ]);
    wait_for("orders to have 6 partitions", SLOW, || {
        let topic = topic_ready("orders")?;
        if topic["status"]["partitions"] == 6 {
            Ok(())
        } else {
            Err(format!("{}", topic["status"]))
        }
    });
    let bootstrap = bootstrap();
    let offset = traffic::produce_to_partition(&bootstrap, "orders", 5, "to-a-new-partition");
    suite.record_orders(vec![(5, offset, "to-a-new-partition".to_owned())]);
    suite.record_orders(traffic::produce(&bootstrap, "orders", "grown", 600));
    suite.check_orders();
}
