//! Journeys that disrupt brokers or change the cluster's shape and life: crashes, deletions,
//! rolls, scaling, pausing, storage changes, and deleting Topics and the Cluster.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use crate::kubectl::{apply, condition, events_of, get, kubectl, list, wait_for};
use crate::suite::*;
use crate::traffic::Traffic;

pub(crate) fn crash_a_broker_under_load(suite: &Suite) {
    let traffic = Traffic::start(&bootstrap(), "orders", "crash", 300);
    traffic.wait_acked(300, QUICK);
    let pod = format!("{CLUSTER}-1");
    let object = get(NS, "pod", &pod).unwrap();
    let uid = object["metadata"]["uid"].as_str().unwrap().to_owned();
    let restarts = object["status"]["containerStatuses"][0]["restartCount"]
        .as_i64()
        .unwrap_or(0);
    match std::env::var("STRAND_E2E_PKUBELET") {
        Ok(command) => {
            let mut words = command.split_whitespace();
            let status = Command::new(words.next().unwrap())
                .args(words)
                .args(["kill-pod", &format!("{NS}/{pod}")])
                .status()
                .expect("pkubelet kill-pod");
            assert!(status.success());
        }
        Err(_) => {
            kubectl(&[
                "delete",
                "pod",
                "-n",
                NS,
                &pod,
                "--grace-period=0",
                "--force",
            ]);
        }
    }
    println!("    killed {pod} with SIGKILL");
    wait_for("the crashed broker to be back and ready", SLOW, || {
        pod_back(&pod, &uid, restarts)
    });
    wait_for("the Cluster to be Ready again", SLOW, || cluster_ready(3));
    suite.settle(traffic, 300);
}

pub(crate) fn delete_a_broker_pod(suite: &Suite) {
    let traffic = Traffic::start(&bootstrap(), "orders", "delete", 300);
    traffic.wait_acked(300, QUICK);
    let pod = format!("{CLUSTER}-2");
    let uid = get(NS, "pod", &pod).unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    kubectl(&["delete", "pod", "-n", NS, &pod, "--timeout=180s"]);
    wait_for("the deleted broker to be back and ready", SLOW, || {
        pod_back(&pod, &uid, 0)
    });
    let failed_hooks: Vec<String> = events_of(NS, &pod)
        .into_iter()
        .filter(|e| e.contains("PreStop"))
        .collect();
    assert!(failed_hooks.is_empty(), "preStop failed: {failed_hooks:?}");
    wait_for("the Cluster to be Ready again", SLOW, || cluster_ready(3));
    suite.settle(traffic, 300);
}

pub(crate) fn config_change_rolls_every_broker(suite: &Suite) {
    let before = broker_pod_uids();
    let traffic = Traffic::start(&bootstrap(), "orders", "roll", 200);
    traffic.wait_acked(200, QUICK);
    // Kafka's own name for a setting Strand has.
    apply(&cluster_yaml(
        3,
        "  config:\n    log.retention.check.interval.ms: \"120000\"\n",
    ));
    wait_for(
        "every broker to restart with the new config",
        SLOW * 2,
        || every_broker_replaced(&before),
    );
    let config = get(NS, "configmap", &format!("{CLUSTER}-config")).unwrap();
    let broker_yaml = config["data"]["broker.yaml"].as_str().unwrap();
    assert!(
        broker_yaml.contains("retention_check_interval_ms: 120000"),
        "{broker_yaml}"
    );
    wait_for("the Cluster to be Ready after the roll", SLOW, || {
        cluster_ready(3)
    });
    suite.settle(traffic, 200);
}

/// Both CAs renewed on request while a producer writes: three steps, each finished by a
/// rolling restart, with no record lost or refused, and the old CA trusted nowhere after.
pub(crate) fn renew_the_cas(suite: &Suite) {
    let ca_secrets = [format!("{CLUSTER}-ca"), format!("{CLUSTER}-clients-ca")];
    let old: Vec<Value> = ca_secrets
        .iter()
        .map(|name| get(NS, "secret", name).unwrap()["data"]["ca.crt"].clone())
        .collect();
    let (_kept, old_admin) = suite.saved_admin_certificate();
    let traffic = Traffic::start(&bootstrap(), "orders", "renew", 200);
    traffic.wait_acked(200, QUICK);
    for name in &ca_secrets {
        kubectl(&[
            "annotate",
            "secret",
            "-n",
            NS,
            name,
            "strand.dev/renew=true",
        ]);
    }
    let said = wait_for("the Cluster to say it renews its CAs", QUICK, || {
        cluster_says(CLUSTER, "Reconciling", "RenewingCA")
    });
    println!("    {said}");
    // Each renewal waits for clients once (clientTrustPeriod), and says until when.
    let mut waits = BTreeSet::new();
    wait_for("both CAs to be renewed", SLOW * 3, || {
        let cluster = get(NS, "cluster", CLUSTER).ok_or("no Cluster")?;
        if let Some(message) = condition(&cluster, "Reconciling")
            .and_then(|c| c["message"].as_str())
            .filter(|m| m.contains("clientTrustPeriod"))
            && waits.insert(message.to_owned())
        {
            println!("    {message}");
        }
        for (name, old) in ca_secrets.iter().zip(&old) {
            let secret = get(NS, "secret", name).ok_or("no CA Secret")?;
            let data = &secret["data"];
            let step = &secret["metadata"]["annotations"]["strand.dev/renewal"];
            if data["ca.crt"] == *old || !step.is_null() || !data["previous.crt"].is_null() {
                return Err(format!("{name}: step {step}"));
            }
        }
        Ok(())
    });
    for what in ["cluster CA, step 1", "clients CA, step 2"] {
        assert!(
            waits.iter().any(|m| m.contains(what)),
            "the {what} never said it waits for clients: {waits:?}"
        );
    }
    wait_for("the last restart to finish", SLOW, rolled);
    wait_for("the Cluster to be Ready", SLOW, || cluster_ready(3));
    let events = events_of(NS, CLUSTER);
    for what in ["cluster CA", "clients CA"] {
        for step in ["step 1 of 3", "step 2 of 3", "step 3 of 3"] {
            assert!(
                events
                    .iter()
                    .any(|e| e.contains(&format!("the {what}")) && e.contains(step)),
                "no Event for {what} {step}: {events:?}"
            );
        }
    }
    // The brokers trust the new cluster CA alone, and hold a certificate it issued.
    let new_ca = get(NS, "secret", &ca_secrets[0]).unwrap()["data"]["ca.crt"].clone();
    let brokers = get(NS, "secret", &format!("{CLUSTER}-broker-tls")).unwrap();
    assert_eq!(brokers["data"]["ca.crt"], new_ca);
    suite
        .describe_cluster()
        .expect("the admin API answers the new admin certificate");
    // The old admin certificate, presented by a client that trusts the new CA, is refused by
    // the brokers: the old CA is trusted nowhere.
    let (_new_kept, new_admin) = suite.saved_admin_certificate();
    let old_certificate: Vec<_> = new_admin
        .iter()
        .filter(|(variable, _)| *variable == "STRAND_TLS_CA")
        .chain(
            old_admin
                .iter()
                .filter(|(variable, _)| *variable != "STRAND_TLS_CA"),
        )
        .cloned()
        .collect();
    let refused = suite
        .strand_with(&["cluster", "describe"], &old_certificate)
        .expect_err("the admin API still answers a certificate of the old CA");
    println!("    the old CA's admin certificate: {refused}");
    suite.settle(traffic, 200);
}

pub(crate) fn scale_out_and_in(suite: &Suite) {
    let traffic = Traffic::start(&bootstrap(), "orders", "scale", 200);
    traffic.wait_acked(200, QUICK);
    kubectl(&["scale", "-n", NS, "cluster", CLUSTER, "--replicas=5"]);
    // While replicas move onto the new brokers, a config change rolls every broker: each
    // hands its leaderships over and restarts in the middle of the moves.
    wait_for("the new brokers to start taking replicas", SLOW, || {
        let description = suite.describe_cluster()?;
        let brokers = description["brokers"].as_array().ok_or("no brokers")?;
        if brokers.len() == 5 {
            Ok(())
        } else {
            Err(format!("{} brokers", brokers.len()))
        }
    });
    patch_cluster(r#"{"spec":{"config":{"log.retention.check.interval.ms":"150000"}}}"#);
    wait_for(
        "5 brokers rolled and Ready with replicas spread",
        SLOW * 2,
        || {
            rolled()?;
            let cluster = cluster_ready(5)?;
            let description = suite.describe_cluster()?;
            let spread = description["brokers"]
                .as_array()
                .ok_or("no brokers")?
                .iter()
                .filter(|b| b["state"] == "active" || b["state"] == "Active")
                .all(|b| b["replica_count"].as_u64().unwrap_or(0) > 0);
            let moving = !cluster["status"]["rebalance"].is_null();
            if brokers_in_status(&cluster) == 5 && spread && !moving {
                Ok(())
            } else {
                Err(format!("{description}"))
            }
        },
    );
    println!("    5 brokers, every one holding replicas");
    kubectl(&["scale", "-n", NS, "cluster", CLUSTER, "--replicas=3"]);
    let cluster = wait_for("3 brokers Ready after draining two", SLOW * 2, || {
        let cluster = cluster_ready(3)?;
        let set = get(NS, "statefulset", CLUSTER).ok_or("no StatefulSet")?;
        if set["spec"]["replicas"] == 3 && brokers_in_status(&cluster) == 3 {
            Ok(cluster)
        } else {
            Err(format!("{}", cluster["status"]))
        }
    });
    let reasons: Vec<String> = events_of(NS, CLUSTER);
    assert!(
        reasons
            .iter()
            .any(|e| e.starts_with("ScalingDown") || e.starts_with("Draining")),
        "{reasons:?}"
    );
    assert_eq!(brokers_in_status(&cluster), 3);
    suite.settle(traffic, 200);
}

pub(crate) fn pause_and_resume(suite: &Suite) {
    annotate_cluster("strand.dev/paused=true");
    wait_for("the Cluster to say it is paused", QUICK, || {
        let cluster = get(NS, "cluster", CLUSTER).ok_or("no Cluster")?;
        match condition(&cluster, "Paused") {
            Some(c) if c["status"] == "True" => Ok(()),
            _ => Err(format!("{}", cluster["status"])),
        }
    });
    let template = |set: &Value| set["spec"]["template"]["metadata"]["annotations"].clone();
    let before = template(&get(NS, "statefulset", CLUSTER).unwrap());
    apply(&cluster_yaml(
        3,
        "  config:\n    log.retention.check.interval.ms: \"180000\"\n",
    ));
    // The operator looks at the change (its metrics count it) and leaves the StatefulSet be.
    let seen = reconciles("Cluster");
    kubectl(&[
        "label",
        "-n",
        NS,
        "cluster",
        CLUSTER,
        "e2e/touched=2",
        "--overwrite",
    ]);
    wait_for("the operator to see the paused Cluster", QUICK, || {
        if reconciles("Cluster") > seen {
            Ok(())
        } else {
            Err("no reconcile yet".into())
        }
    });
    assert_eq!(
        template(&get(NS, "statefulset", CLUSTER).unwrap()),
        before,
        "a paused Cluster changed its StatefulSet"
    );
    annotate_cluster("strand.dev/paused-");
    wait_for("the change to apply once resumed", SLOW, || {
        let set = get(NS, "statefulset", CLUSTER).ok_or("no StatefulSet")?;
        let cluster = get(NS, "cluster", CLUSTER).ok_or("no Cluster")?;
        let paused = condition(&cluster, "Paused").is_some_and(|c| c["status"] == "True");
        if template(&set) != before && !paused {
            Ok(())
        } else {
            Err(format!("{}", cluster["status"]))
        }
    });
    wait_for("the Cluster to be Ready after the roll", SLOW * 2, || {
        rolled()?;
        cluster_ready(3)
    });
    suite.check_orders();
}

pub(crate) fn storage_changes(suite: &Suite) {
    // The local cluster's volumes have no StorageClass that allows expansion: the API server
    // refuses to grow them, and the Cluster says so.
    set_storage("2Gi");
    let cluster = wait_for("a refused expansion to be reported", QUICK, || {
        cluster_stalled("VolumeExpansionRefused")
    });
    println!("    {}", condition(&cluster, "Stalled").unwrap()["message"]);
    // It holds nothing back: a config change still rolls every broker.
    let before = broker_pod_uids();
    patch_cluster(r#"{"spec":{"config":{"log.retention.check.interval.ms":"200000"}}}"#);
    wait_for(
        "every broker to restart while storage is stalled",
        SLOW * 2,
        || every_broker_replaced(&before),
    );
    let set = get(NS, "statefulset", CLUSTER).unwrap();
    assert_eq!(
        set["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"], "1Gi",
        "the claim template stays as created"
    );
    // Volumes never shrink.
    set_storage("512Mi");
    wait_for("a shrink to be refused", QUICK, || {
        cluster_stalled("VolumeShrinkRefused")
    });
    set_storage("1Gi");
    wait_for("the Cluster to be Ready again", SLOW, || cluster_ready(3));
    suite.check_orders();
}

pub(crate) fn delete_topics(suite: &Suite) {
    kubectl(&["delete", "-n", NS, "topic", "orders", "--timeout=120s"]);
    wait_for("topic orders to be deleted from the cluster", QUICK, || {
        if suite.describe_topic("orders").is_none() {
            Ok(())
        } else {
            Err("still there".into())
        }
    });
    kubectl(&["delete", "-n", NS, "topic", "audit", "--timeout=120s"]);
    assert!(
        suite.describe_topic("audit").is_some(),
        "a Retain Topic's topic stays"
    );
    kubectl(&["delete", "-n", NS, "topic", "legacy", "--timeout=120s"]);
    assert!(
        suite.describe_topic("legacy").is_none(),
        "an adopted topic is owned, and deleted with its Topic"
    );
}

pub(crate) fn delete_the_cluster(suite: &Suite) {
    kubectl(&["delete", "-n", NS, "cluster", CLUSTER, "--timeout=120s"]);
    wait_for("the brokers and their objects to go", SLOW, || {
        let left: Vec<String> = [
            "statefulset",
            "pod",
            "service",
            "configmap",
            "poddisruptionbudget",
        ]
        .iter()
        .flat_map(|kind| list(NS, kind, "app.kubernetes.io/instance=events"))
        .map(|o| o["metadata"]["name"].as_str().unwrap_or("").to_owned())
        .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("left: {left:?}"))
        }
    });
    // The default deletionPolicy keeps the volumes (five: a scale-down keeps the drained
    // brokers' volumes too), and says so in the docs.
    let claims = list(NS, "pvc", "");
    assert_eq!(claims.len(), 5, "volumes are retained");
    // A new Cluster of the same name finds them, and says so instead of starting on them.
    apply(&cluster_yaml(3, ""));
    let cluster = wait_for(
        "the re-created Cluster to stall on the old volumes",
        QUICK,
        || {
            let cluster = get(NS, "cluster", CLUSTER).ok_or("no Cluster")?;
            match condition(&cluster, "Stalled") {
                Some(c) if c["status"] == "True" && c["reason"] == "RetainedVolumes" => Ok(cluster),
                _ => Err(format!("{}", cluster["status"])),
            }
        },
    );
    println!("    {}", condition(&cluster, "Stalled").unwrap()["message"]);
    assert!(
        get(NS, "statefulset", CLUSTER).is_none(),
        "no broker starts on old volumes unasked"
    );
    // Adopting them is a choice written in the spec: the brokers start on their data, and
    // the topic kept by its Retain policy is there again.
    apply(&cluster_yaml(
        3,
        "  deletionPolicy: Delete\n  adoptRetainedVolumes: true\n",
    ));
    wait_for("the Cluster to be Ready on its old volumes", SLOW, || {
        cluster_ready(3)
    });
    assert!(
        suite.describe_topic("audit").is_some(),
        "the old cluster's data is back"
    );
    assert!(
        events_of(NS, CLUSTER)
            .iter()
            .any(|e| e.starts_with("AdoptedVolumes"))
    );
    // deletionPolicy Delete takes the brokers' volumes with the Cluster; those of brokers a
    // scale-down removed were kept by the StatefulSet's whenScaled: Retain, and stay.
    kubectl(&["delete", "-n", NS, "cluster", CLUSTER, "--timeout=120s"]);
    wait_for(
        "the brokers' volumes to be deleted with the Cluster",
        SLOW,
        || {
            let left: Vec<String> = list(NS, "pvc", "")
                .iter()
                .map(|c| c["metadata"]["name"].as_str().unwrap_or("").to_owned())
                .collect();
            if left == [format!("data-{CLUSTER}-3"), format!("data-{CLUSTER}-4")] {
                Ok(())
            } else {
                Err(format!("volumes left: {left:?}"))
            }
        },
    );
    kubectl(&["delete", "-n", NS, "pvc", "--all", "--timeout=120s"]);
}

/// `kubectl annotate` of the suite's Cluster (`KEY=VALUE`, or `KEY-` to remove).
fn annotate_cluster(annotation: &str) {
    kubectl(&[
        "annotate",
        "-n",
        NS,
        "cluster",
        CLUSTER,
        annotation,
        "--overwrite",
    ]);
}
