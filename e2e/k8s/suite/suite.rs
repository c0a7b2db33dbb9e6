//! What the journeys share: the suite's names, the `strand` command line, the checks a person
//! makes (Ready, Stalled, rolled), and the YAML of the suite's Cluster and Topics.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use crate::kubectl::{condition, condition_true, get, kubectl, list, try_kubectl};
use crate::traffic::{self, Acked, Traffic};

/// Namespace of the suite's Cluster and Topics.
pub(crate) const NS: &str = "strand-e2e";
/// Namespace of the operator, as `charts/install.yaml` has it.
pub(crate) const OPERATOR_NS: &str = "strand-system";
/// The Cluster's name, and so its StatefulSet's and its pods' prefix.
pub(crate) const CLUSTER: &str = "events";
/// Broker pods and their objects.
pub(crate) const BROKERS: &str =
    "app.kubernetes.io/instance=events,app.kubernetes.io/component=broker";
/// How long a step that involves starting or moving brokers may take on a loaded 2-core
/// machine.
pub(crate) const SLOW: Duration = Duration::from_secs(300);
/// How long a step the operator answers alone may take.
pub(crate) const QUICK: Duration = Duration::from_secs(60);

/// What the journeys share: where things are, and every record acknowledged on `orders`.
pub struct Suite {
    pub(crate) root: PathBuf,
    strand: PathBuf,
    orders: Mutex<Vec<Acked>>,
    /// Where the admin certificate the operator issued is written for `strand`.
    tls: tempfile::TempDir,
}

impl Suite {
    /// Finds the repository and the `strand` binary.
    pub fn new() -> Suite {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let strand = std::env::var_os("STRAND_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/release/strand"));
        assert!(
            strand.exists(),
            "no strand binary at {} (set STRAND_BIN)",
            strand.display()
        );
        Suite {
            root,
            strand,
            orders: Mutex::new(Vec::new()),
            tls: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    /// The Cluster's CA and admin certificate and key, as files, from the Secret the operator
    /// writes (read each time: a Cluster made again has a new CA).
    fn admin_tls(&self) -> Result<[(&'static str, PathBuf); 3], String> {
        let secret = format!("{CLUSTER}-admin-tls");
        let mut files = Vec::new();
        for (variable, key, file) in [
            ("STRAND_TLS_CA", "ca.crt", "ca.pem"),
            ("STRAND_TLS_CERT", "tls.crt", "admin.pem"),
            ("STRAND_TLS_KEY", "tls.key", "admin-key.pem"),
        ] {
            let template = format!("--template={{{{index .data \"{key}\" | base64decode}}}}");
            let pem = try_kubectl(&[
                "get",
                "secret",
                "-n",
                NS,
                &secret,
                "-o",
                "go-template",
                &template,
            ])?;
            let path = self.tls.path().join(file);
            std::fs::write(&path, pem).map_err(|e| format!("cannot write {file}: {e}"))?;
            files.push((variable, path));
        }
        files.try_into().map_err(|_| "three files".to_owned())
    }

    /// `strand ARGS --server <broker 0>` with the admin certificate, returning standard
    /// output.
    pub(crate) fn strand(&self, args: &[&str]) -> Result<String, String> {
        let tls = self.admin_tls()?;
        self.run_strand(args, &tls)
            .map_err(|e| format!("strand {} failed: {e}", args.join(" ")))
    }

    /// `strand ARGS --server <broker 0>` with no certificate: what anyone in the cluster's
    /// network could try. The error is what `strand` said.
    pub(crate) fn strand_without_certificate(&self, args: &[&str]) -> Result<String, String> {
        self.run_strand(args, &[])
    }

    /// The admin certificate files as they are now, copied aside to try again later; the
    /// directory holds them while it lives.
    pub(crate) fn saved_admin_certificate(
        &self,
    ) -> (tempfile::TempDir, Vec<(&'static str, PathBuf)>) {
        let saved = tempfile::tempdir().expect("a temporary directory");
        let files = self
            .admin_tls()
            .expect("the admin certificate")
            .into_iter()
            .map(|(variable, path)| {
                let copy = saved.path().join(path.file_name().expect("a file name"));
                std::fs::copy(&path, &copy).expect("copy a certificate file");
                (variable, copy)
            })
            .collect();
        (saved, files)
    }

    /// `strand ARGS --server <broker 0>` with the certificate `files`.
    pub(crate) fn strand_with(
        &self,
        args: &[&str],
        files: &[(&str, PathBuf)],
    ) -> Result<String, String> {
        self.run_strand(args, files)
    }

    fn run_strand(&self, args: &[&str], env: &[(&str, PathBuf)]) -> Result<String, String> {
        let output = Command::new(&self.strand)
            .args(args)
            .args(["--server", &admin_address()])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .map_err(|e| format!("cannot run strand: {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
        }
    }

    /// `strand cluster describe -o json`.
    pub(crate) fn describe_cluster(&self) -> Result<Value, String> {
        let text = self.strand(&["cluster", "describe", "-o", "json"])?;
        serde_json::from_str(&text).map_err(|e| format!("describe output: {e}"))
    }

    /// `strand topic describe NAME -o json`, `None` when the cluster has no such topic.
    pub(crate) fn describe_topic(&self, name: &str) -> Option<Value> {
        match self.strand(&["topic", "describe", name, "-o", "json"]) {
            Ok(text) => Some(serde_json::from_str(&text).expect("describe prints JSON")),
            Err(error)
                if error.contains("no topic")
                    || error.contains("not found")
                    || error.contains("unknown topic") =>
            {
                None
            }
            Err(error) => panic!("{error}"),
        }
    }

    /// Waits for `more` acknowledgements of `traffic`, stops it, keeps what it wrote, and
    /// checks every record of `orders` is there.
    pub(crate) fn settle(&self, traffic: Traffic, more: usize) {
        traffic.wait_acked(more, SLOW);
        self.record_orders(traffic.finish());
        self.check_orders();
    }

    pub(crate) fn record_orders(&self, acked: Vec<Acked>) {
        self.orders.lock().unwrap().extend(acked);
    }

    /// Every record ever acknowledged on `orders` is still there, once, at its offset.
    pub(crate) fn check_orders(&self) {
        let partitions = topic_partitions("orders");
        let acked = self.orders.lock().unwrap().clone();
        let stored = traffic::check_all_present(&bootstrap(), "orders", partitions, &acked);
        println!(
            "    {} acknowledged records of orders read back ({stored} stored)",
            acked.len()
        );
    }

    /// What a person would look at when a journey fails.
    pub fn diagnostics(&self) {
        for args in [
            &[
                "get",
                "strand,statefulsets,pods,pvc",
                "-n",
                NS,
                "-o",
                "wide",
            ][..],
            &["describe", "clusters,topics", "-n", NS][..],
            &["get", "events", "-n", NS, "--sort-by=.lastTimestamp"][..],
            &[
                "logs",
                "-n",
                OPERATOR_NS,
                "deploy/strand-operator",
                "--tail=80",
            ][..],
        ] {
            println!("--- kubectl {}", args.join(" "));
            match try_kubectl(args) {
                Ok(text) | Err(text) => println!("{text}"),
            }
        }
        if let Ok(description) = self.describe_cluster() {
            println!("--- strand cluster describe\n{description:#}");
        }
    }

    /// Removes everything the suite created, so the cluster is as it found it.
    pub fn clean_up(&self) {
        let _ = try_kubectl(&[
            "delete",
            "topics.strand.dev",
            "--all",
            "-n",
            NS,
            "--wait=false",
        ]);
        let _ = try_kubectl(&[
            "delete",
            "clusters.strand.dev",
            "--all",
            "-n",
            NS,
            "--wait=false",
        ]);
        let _ = try_kubectl(&["delete", "namespace", NS, "--wait=true", "--timeout=120s"]);
        let install = self.root.join("charts/install.yaml");
        let _ = try_kubectl(&[
            "delete",
            "-f",
            install.to_str().unwrap(),
            "--ignore-not-found",
            "--wait=true",
            "--timeout=120s",
        ]);
        let crds = self.root.join("crds");
        let _ = try_kubectl(&["delete", "-f", crds.to_str().unwrap(), "--ignore-not-found"]);
    }
}

pub(crate) fn admin_address() -> String {
    format!("{CLUSTER}-0.{CLUSTER}-brokers.{NS}.svc:9093")
}

/// The Cluster's `status.bootstrapServers`, as a client in the cluster would be given it.
pub(crate) fn bootstrap() -> String {
    let cluster = get(NS, "cluster", CLUSTER).expect("the Cluster exists");
    cluster["status"]["bootstrapServers"]
        .as_str()
        .expect("status.bootstrapServers")
        .to_owned()
}

pub(crate) fn topic_partitions(name: &str) -> i32 {
    let topic = get(NS, "topic", name).expect("the Topic exists");
    topic["status"]["partitions"]
        .as_i64()
        .expect("status.partitions") as i32
}

pub(crate) fn cluster_ready(replicas: i64) -> Result<Value, String> {
    cluster_named_ready(CLUSTER, replicas)
}

/// Whether Cluster `name` is Ready with `replicas` ready brokers and every partition led and
/// fully replicated.
pub(crate) fn cluster_named_ready(name: &str, replicas: i64) -> Result<Value, String> {
    let cluster = get(NS, "cluster", name).ok_or("no Cluster")?;
    let ready = condition_true(&cluster, "Ready")
        && cluster["status"]["readyReplicas"] == replicas
        && cluster["status"]["underReplicatedPartitions"] == 0
        && cluster["status"]["leaderlessPartitions"] == 0;
    if ready {
        Ok(cluster)
    } else {
        Err(format!("{}", cluster["status"]))
    }
}

pub(crate) fn topic_ready(name: &str) -> Result<Value, String> {
    let topic = get(NS, "topic", name).ok_or("no Topic")?;
    if condition_true(&topic, "Ready") {
        Ok(topic)
    } else {
        Err(format!("{}", topic["status"]))
    }
}

pub(crate) fn topic_stalled(name: &str, reason: &str) -> Result<Value, String> {
    let topic = get(NS, "topic", name).ok_or("no Topic")?;
    match condition(&topic, "Stalled") {
        Some(c) if c["status"] == "True" && c["reason"] == reason => Ok(topic),
        _ => Err(format!("{}", topic["status"])),
    }
}

pub(crate) fn cluster_yaml(replicas: u32, extra: &str) -> String {
    format!(
        "apiVersion: strand.dev/v1alpha1
kind: Cluster
metadata:
  name: {CLUSTER}
  namespace: {NS}
spec:
  replicas: {replicas}
  image: ghcr.io/strand-dev/strand:0.1.0
  storage:
    size: 1Gi
  balancing:
    brokerFailureTimeout: 10m
  # CA renewals wait this long for Kafka clients to take the new CA (24h by default).
  certificateAuthority:
    clientTrustPeriod: 20s
  listeners:
  - name: plain
    port: 9092
    type: internal
    tls: false
    authentication: none
{extra}"
    )
}

pub(crate) fn topic_yaml(object: &str, spec: &str) -> String {
    format!(
        "apiVersion: strand.dev/v1alpha1
kind: Topic
metadata:
  name: {object}
  namespace: {NS}
spec:
  clusterRef:
    name: {CLUSTER}
{spec}"
    )
}

/// Resource versions of everything the operator writes for the suite's Cluster and Topics.
pub(crate) fn written_versions() -> Vec<(String, String)> {
    let mut versions = Vec::new();
    let owned = "app.kubernetes.io/instance=events";
    for (kind, selector) in [
        ("statefulset", owned),
        ("configmap", owned),
        ("service", owned),
        ("poddisruptionbudget", owned),
        ("cluster", ""),
        ("topic", ""),
    ] {
        for object in list(NS, kind, selector) {
            versions.push((
                format!("{kind}/{}", object["metadata"]["name"].as_str().unwrap()),
                object["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ));
        }
    }
    versions.sort();
    versions
}

/// The operator's count of reconciles of `kind`, read from its `/metrics`.
pub(crate) fn reconciles(kind: &str) -> u64 {
    let pod = list(OPERATOR_NS, "pod", "app.kubernetes.io/name=strand-operator")
        .into_iter()
        .find(|p| p["status"]["podIP"].is_string())
        .expect("an operator pod with an IP");
    let ip = pod["status"]["podIP"].as_str().unwrap().to_owned();
    let text = http_get(&format!("{ip}:9644"), "/metrics").expect("operator /metrics");
    text.lines()
        .filter(|l| {
            l.starts_with("strand_operator_reconciles_total")
                && l.contains(&format!("kind=\"{kind}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

pub(crate) fn http_get(address: &str, path: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect(address).map_err(|e| format!("connect {address}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    Ok(text)
}

/// Whether `pod` is running again as a new container and ready.
pub(crate) fn pod_back(pod: &str, old_uid: &str, old_restarts: i64) -> Result<(), String> {
    let object = get(NS, "pod", pod).ok_or("no pod")?;
    let status = &object["status"]["containerStatuses"][0];
    let restarted = object["metadata"]["uid"] != old_uid
        || status["restartCount"].as_i64().unwrap_or(0) > old_restarts;
    if restarted && status["ready"] == true {
        Ok(())
    } else {
        Err(format!("{}", object["status"]))
    }
}

/// Whether the StatefulSet has rolled every pod to its current template.
pub(crate) fn rolled() -> Result<(), String> {
    let set = get(NS, "statefulset", CLUSTER).ok_or("no StatefulSet")?;
    let status = &set["status"];
    let done = status["updateRevision"] == status["currentRevision"]
        && status["updatedReplicas"] == set["spec"]["replicas"]
        && status["readyReplicas"] == set["spec"]["replicas"]
        && status["observedGeneration"] == set["metadata"]["generation"];
    if done {
        Ok(())
    } else {
        Err(format!("{status}"))
    }
}

pub(crate) fn brokers_in_status(cluster: &Value) -> usize {
    cluster["status"]["brokers"].as_array().map_or(0, Vec::len)
}

/// The message of Cluster `name`'s condition `kind`, once it is True for `reason`.
pub(crate) fn cluster_says(name: &str, kind: &str, reason: &str) -> Result<String, String> {
    let cluster = get(NS, "cluster", name).ok_or("no Cluster")?;
    match condition(&cluster, kind) {
        Some(c) if c["status"] == "True" && c["reason"] == reason => {
            Ok(c["message"].as_str().unwrap_or_default().to_owned())
        }
        _ => Err(format!("{}", cluster["status"]["conditions"])),
    }
}

pub(crate) fn cluster_stalled(reason: &str) -> Result<Value, String> {
    let cluster = get(NS, "cluster", CLUSTER).ok_or("no Cluster")?;
    match condition(&cluster, "Stalled") {
        Some(c) if c["status"] == "True" && c["reason"] == reason => Ok(cluster),
        _ => Err(format!("{}", cluster["status"])),
    }
}

/// A merge patch of the suite's Cluster, as `kubectl patch` by a person.
pub(crate) fn patch_cluster(patch: &str) {
    kubectl(&[
        "patch",
        "-n",
        NS,
        "cluster",
        CLUSTER,
        "--type=merge",
        "-p",
        patch,
    ]);
}

/// The uids of the broker pods now.
pub(crate) fn broker_pod_uids() -> Vec<String> {
    list(NS, "pod", BROKERS)
        .iter()
        .map(|p| p["metadata"]["uid"].as_str().unwrap().to_owned())
        .collect()
}

/// Whether the StatefulSet has rolled and none of the broker pods of `before` is left.
pub(crate) fn every_broker_replaced(before: &[String]) -> Result<(), String> {
    rolled()?;
    let now = broker_pod_uids();
    let kept = now.iter().filter(|uid| before.contains(uid)).count();
    if kept == 0 {
        Ok(())
    } else {
        Err(format!("{kept} of {} pods not replaced yet", now.len()))
    }
}

pub(crate) fn set_storage(size: &str) {
    patch_cluster(&format!(r#"{{"spec":{{"storage":{{"size":"{size}"}}}}}}"#));
}

pub(crate) fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
