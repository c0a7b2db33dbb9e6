//! A secure Cluster beside the suite's own: TLS and SCRAM listeners (one inside the cluster,
//! one on node ports), Users with ACLs, what a client pod does with a User's Secret, what a
//! client outside the cluster sees through the node ports, a User without ACLs refused, and a
//! deleted User's credentials refused. Clients are `kcat` (librdkafka), in pods and on the
//! host, as an application team would try them.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::certmanager::{self, CompanyCa};
use crate::kubectl::{apply, condition_true, get, kubectl, list, try_kubectl, wait_for};
use crate::nodeports::NodePorts;
use crate::suite::*;

/// The secure Cluster's name.
const SECURE: &str = "secure";
/// Its broker pods.
const SECURE_BROKERS: &str = "app.kubernetes.io/instance=secure,app.kubernetes.io/component=broker";
/// The topic the Users are about.
const PAYMENTS: &str = "payments";
/// How many records the client pod writes.
const MESSAGES: usize = 50;
/// How long one `kcat` run may take before it is killed (its own timeouts are shorter).
const KCAT_LIMIT: Duration = Duration::from_secs(90);

pub(crate) fn secure_listeners_and_users(_suite: &Suite) {
    // 1. The Cluster, its Topic and two Users, as a platform team writes them.
    apply(&secure_cluster_yaml());
    apply(&format!(
        "apiVersion: strand.dev/v1alpha1
kind: Topic
metadata:
  name: {PAYMENTS}
  namespace: {NS}
spec:
  clusterRef:
    name: {SECURE}
  partitions: 3
  replicationFactor: 3
"
    ));
    apply(&format!(
        "apiVersion: strand.dev/v1alpha1
kind: User
metadata:
  name: payments-app
  namespace: {NS}
spec:
  clusterRef:
    name: {SECURE}
  authentication:
    type: scram-sha-512
  acls:
  - resource:
      type: topic
      name: {PAYMENTS}
      patternType: literal
    operations: [Read, Write, Describe]
  - resource:
      type: group
      name: payments-
      patternType: prefixed
    operations: [Read]
---
apiVersion: strand.dev/v1alpha1
kind: User
metadata:
  name: nobody
  namespace: {NS}
spec:
  clusterRef:
    name: {SECURE}
  authentication:
    type: scram-sha-512
"
    ));
    // The ingress listener's certificate comes from cert-manager, which is not installed: the
    // Cluster says so and starts no broker.
    let said = wait_for("the Cluster to say cert-manager is missing", QUICK, || {
        cluster_says(SECURE, "Stalled", "CertManagerNotInstalled")
    });
    println!("    Stalled: {said}");
    assert!(
        list(NS, "pod", SECURE_BROKERS).is_empty(),
        "no broker starts without its listener's certificate"
    );
    // Once cert-manager is there, the Cluster asks it for the certificate and waits for it;
    // the suite plays cert-manager with a company CA.
    certmanager::install();
    let said = wait_for(
        "the Cluster to wait for its listener's certificate",
        QUICK,
        || cluster_says(SECURE, "Reconciling", "WaitingForCertificate"),
    );
    println!("    Reconciling: {said}");
    let company = CompanyCa::new();
    let issued = company.issue(LISTENER_CERTIFICATE);
    println!("    cert-manager (the suite) issued {LISTENER_CERTIFICATE} for {issued:?}");
    assert_eq!(
        issued,
        std::iter::once(INGRESS_DOMAIN.to_owned())
            .chain((0..3).map(|o| format!("broker-{o}.{INGRESS_DOMAIN}")))
            .collect::<Vec<_>>(),
        "the Certificate names the ingress listener's hosts"
    );

    // No load balancer controller here: the Cluster says what it waits for; then the suite
    // gives the LoadBalancer Services their addresses, as a controller would.
    let waiting = wait_for("the Cluster to wait for load balancers", SLOW, || {
        cluster_says(SECURE, "Reconciling", "WaitingForLoadBalancer")
    });
    println!("    {waiting}");
    let before: Vec<String> = list(NS, "pod", SECURE_BROKERS)
        .iter()
        .filter_map(|p| p["metadata"]["uid"].as_str().map(str::to_owned))
        .collect();
    let load_balancers = provision_load_balancers();
    provision_ingress_addresses();
    // A broker reads its advertised addresses when it starts: every one restarts once.
    wait_for(
        "every broker to restart advertising its load balancer",
        SLOW,
        || {
            let pods = list(NS, "pod", SECURE_BROKERS);
            let replaced = pods
                .iter()
                .filter(|p| {
                    !before
                        .iter()
                        .any(|uid| p["metadata"]["uid"] == uid.as_str())
                        && condition_true(p, "Ready")
                })
                .count();
            if replaced == 3 && pods.len() == 3 {
                Ok(())
            } else {
                Err(format!("{replaced} of 3 brokers restarted and ready"))
            }
        },
    );
    let cluster = wait_for("Cluster secure to be Ready with 3 brokers", SLOW, || {
        cluster_named_ready(SECURE, 3)
    });
    assert_eq!(brokers_in_status(&cluster), 3, "{}", cluster["status"]);
    wait_for("Topic payments to be Ready", SLOW, || {
        ready("topic", PAYMENTS)
    });
    let user = wait_for("User payments-app to be Ready", SLOW, || {
        ready("user", "payments-app")
    });
    wait_for("User nobody to be Ready", SLOW, || ready("user", "nobody"));
    let table = kubectl(&["get", "clusters,topics,users", "-n", NS]);
    println!("{}", indent(&table));

    // 2. What the User gives its application: a Secret with everything a client needs.
    check_user_secret(&user);

    // 3. An application in the cluster writes and reads with the Secret alone.
    produce_and_consume_in_pods();

    // 4. A client outside the cluster, through the node ports.
    let forwarding = NodePorts::start_if_local(NS, &format!("{SECURE}-"));
    if forwarding.is_none() {
        println!("    (node ports routed by the cluster's kube-proxy)");
    }
    let credentials = tempfile::tempdir().expect("a temporary directory");
    let payments = KafkaUser::from_secret("payments-app", credentials.path());
    let nobody = KafkaUser::from_secret("nobody", credentials.path());
    let external = external_bootstrap();
    assert_eq!(
        payments.bootstrap, external,
        "the Secret's bootstrap.servers.external is the Cluster's external listener"
    );
    println!("    external listener: {external}");
    write_and_read_through_node_ports(&payments, &external, forwarding.as_ref());

    // ... and through the load balancers.
    write_and_read_through_load_balancers(&payments, &load_balancers);

    // ... and through the ingress controller, by TLS server name, with cert-manager's
    // certificate, renewed without restarting a broker.
    write_and_read_through_ingress(&payments, forwarding.as_ref(), &company, credentials.path());

    // 5. A User with no ACLs authenticates and is refused the topic.
    nobody_is_refused(&nobody, &external);

    // ... and a User with a certificate reads with it, until it is deleted: its certificate
    // is revoked, not only its ACLs.
    a_deleted_certificate_user_is_refused(credentials.path());

    // 6. Deleting a User revokes its credentials.
    let deleted = Instant::now();
    kubectl(&["delete", "-n", NS, "user", "payments-app", "--wait=false"]);
    let said = wait_for(
        "payments-app's saved credentials to be refused",
        QUICK,
        || {
            let run = payments.kcat(&external, &["-L", "-t", PAYMENTS], None);
            if run.ok {
                return Err("still accepted".to_owned());
            }
            run.stderr
                .lines()
                .find(|l| l.to_lowercase().contains("authenticat"))
                .map(str::to_owned)
                .ok_or_else(|| format!("refused, but not as an authentication failure: {run}"))
        },
    );
    println!(
        "    {:.1} s after deleting User payments-app: {}",
        deleted.elapsed().as_secs_f64(),
        said.trim()
    );
    wait_for("User payments-app to be gone", QUICK, || {
        match get(NS, "user", "payments-app") {
            None => Ok(()),
            Some(user) => Err(format!("still there: {}", user["status"])),
        }
    });
    wait_for(
        "Secret payments-app to be garbage-collected",
        QUICK,
        || match get(NS, "secret", "payments-app") {
            None => Ok(()),
            Some(_) => Err("still there".to_owned()),
        },
    );
    drop(forwarding);

    // 7. Nothing of it is left for the next journeys.
    delete_the_secure_cluster();
    certmanager::uninstall();
}

/// Load balancer addresses the suite gives, standing in for a load balancer controller: the
/// bootstrap Service's, then broker 0's, 1's and 2's (loopback addresses of the host, where
/// [`NodePorts`] forwards them).
const LOAD_BALANCER_IPS: [&str; 4] = ["127.0.0.10", "127.0.0.11", "127.0.0.12", "127.0.0.13"];
/// The load balancer listener's port.
const LB_PORT: u16 = 9096;

/// Writes an ingress IP into the status of each of the `lb` listener's LoadBalancer Services,
/// as a load balancer controller would; returns the expected advertised address per broker id
/// (ordinal).
fn provision_load_balancers() -> BTreeMap<i64, String> {
    let services = std::iter::once(format!("{SECURE}-lb-bootstrap"))
        .chain((0..3).map(|ordinal| format!("{SECURE}-{ordinal}-lb")));
    for (service, ip) in services.zip(LOAD_BALANCER_IPS) {
        wait_for(&format!("Service {service}"), QUICK, || {
            get(NS, "service", &service)
                .filter(|s| s["spec"]["type"] == "LoadBalancer")
                .ok_or_else(|| "not yet".to_owned())
        });
        let patch = format!(r#"{{"status":{{"loadBalancer":{{"ingress":[{{"ip":"{ip}"}}]}}}}}}"#);
        kubectl(&[
            "patch",
            "service",
            "-n",
            NS,
            &service,
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch,
        ]);
        println!("    load balancer of {service}: {ip}");
    }
    (0..3)
        .map(|ordinal| {
            (
                ordinal,
                format!("{}:{LB_PORT}", LOAD_BALANCER_IPS[ordinal as usize + 1]),
            )
        })
        .collect()
}

/// Through the load balancers: the listener's bootstrap in the Cluster's status and the
/// User's Secret is the bootstrap Service's address, every broker advertises its own load
/// balancer, and a record reaches each partition's leader that way.
fn write_and_read_through_load_balancers(payments: &KafkaUser, expected: &BTreeMap<i64, String>) {
    let bootstrap = format!("{}:{LB_PORT}", LOAD_BALANCER_IPS[0]);
    check_bootstrap("lb", "loadbalancer", &bootstrap);
    let metadata = wait_for(
        "every broker to advertise its load balancer over TLS",
        SLOW,
        || {
            let metadata = payments.metadata(&bootstrap, Some(PAYMENTS))?;
            let seen = advertised(&metadata);
            if seen == *expected {
                Ok(metadata)
            } else {
                Err(format!("advertised {seen:?}, expected {expected:?}"))
            }
        },
    );
    let leaders = leaders(&metadata).unwrap();
    for (partition, leader) in &leaders {
        let value = format!("through-lb-{partition}");
        let run = payments.kcat(
            &bootstrap,
            &[
                "-P",
                "-t",
                PAYMENTS,
                "-p",
                &partition.to_string(),
                "-X",
                "acks=all",
            ],
            Some(&value),
        );
        assert!(run.ok, "writing {value} through the load balancers: {run}");
        println!(
            "    {value} written through {} (the load balancer of broker {leader})",
            expected[leader]
        );
    }
}

/// The User `auditor` authenticates by a certificate of the clients CA, through the `mtls`
/// node port listener, and reads `payments`; deleted, its certificate is on the clients CA's
/// CRL and refused within seconds, with no broker restarted.
fn a_deleted_certificate_user_is_refused(dir: &Path) {
    apply(&format!(
        "apiVersion: strand.dev/v1alpha1
kind: User
metadata:
  name: auditor
  namespace: {NS}
spec:
  clusterRef:
    name: {SECURE}
  authentication:
    type: tls
  acls:
  - resource:
      type: topic
      name: {PAYMENTS}
      patternType: literal
    operations: [Read, Describe]
"
    ));
    let user = wait_for("User auditor to be Ready", SLOW, || {
        ready("user", "auditor")
    });
    assert_eq!(user["status"]["principal"], "User:CN=auditor", "{user}");
    let auditor = KafkaUser::from_tls_secret("auditor", dir);
    println!("    auditor's certificate, through {}", auditor.bootstrap);
    let read = wait_for(
        "auditor to read payments with its certificate",
        SLOW,
        || {
            let run = auditor.kcat(
                &auditor.bootstrap,
                &[
                    "-C",
                    "-t",
                    PAYMENTS,
                    "-p",
                    "0",
                    "-o",
                    "beginning",
                    "-c",
                    "1",
                    "-e",
                ],
                None,
            );
            if run.ok && !run.stdout.trim().is_empty() {
                Ok(run.stdout.trim().to_owned())
            } else {
                Err(run.to_string())
            }
        },
    );
    println!("    auditor read {read:?} from partition 0");
    let pods = broker_uids();
    kubectl(&["delete", "-n", NS, "user", "auditor", "--wait=false"]);
    let deleted = Instant::now();
    let said = wait_for("auditor's certificate to be refused", QUICK, || {
        let run = auditor.kcat(&auditor.bootstrap, &["-L", "-t", PAYMENTS], None);
        if run.ok {
            Err("still accepted".to_owned())
        } else {
            Ok(run.stderr)
        }
    });
    println!(
        "    {:.1} s after deleting User auditor, its certificate is refused: {}",
        deleted.elapsed().as_secs_f64(),
        said.lines()
            .rev()
            .find(|l| !l.trim().is_empty() && !l.starts_with("% Reading"))
            .unwrap_or_default()
            .trim()
    );
    let revoked = secret_text(&format!("{SECURE}-clients-ca"), "revoked");
    assert!(revoked.contains("/auditor"), "the revoked list: {revoked}");
    assert_eq!(
        broker_uids(),
        pods,
        "no broker restarted for the revocation"
    );
}

/// The domain of the ingress listener's host names: `<domain>` to bootstrap from,
/// `broker-<ordinal>.<domain>` per broker.
const INGRESS_DOMAIN: &str = "kafka.secure.test";
/// The address the suite's ingress controller stand-in ([`NodePorts`]) takes TLS on.
const INGRESS_IP: &str = "127.0.0.14";
const INGRESS_PORT: u16 = 9443;
/// The kafka-python client that reaches the Cluster through the ingress controller.
const INGRESS_CLIENT: &str = include_str!("ingress_client.py");
/// The cert-manager Certificate of the ingress listener, as the operator names it.
const LISTENER_CERTIFICATE: &str = "secure-listener-ingress";

/// Writes the ingress controller's address into the status of the `ingress` listener's
/// Ingresses, as the controller would.
fn provision_ingress_addresses() {
    let ingresses = std::iter::once(format!("{SECURE}-ingress-bootstrap"))
        .chain((0..3).map(|ordinal| format!("{SECURE}-{ordinal}-ingress")));
    for ingress in ingresses {
        let found = wait_for(&format!("Ingress {ingress}"), QUICK, || {
            get(NS, "ingress", &ingress).ok_or_else(|| "not yet".to_owned())
        });
        assert_eq!(
            found["metadata"]["annotations"]["nginx.ingress.kubernetes.io/ssl-passthrough"], "true",
            "{found}"
        );
        let patch = format!(
            r#"{{"status":{{"loadBalancer":{{"ingress":[{{"ip":"{INGRESS_IP}","ports":[{{"port":{INGRESS_PORT},"protocol":"TCP"}}]}}]}}}}}}"#
        );
        kubectl(&[
            "patch",
            "ingress",
            "-n",
            NS,
            &ingress,
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch,
        ]);
    }
    println!("    the ingress controller of the Ingresses: {INGRESS_IP}:{INGRESS_PORT}");
}

/// Through the ingress controller: the listener's bootstrap in the Cluster's status and the
/// User's Secret is the bootstrap host, every broker advertises its own host, a kafka-python
/// client outside checks the brokers' certificate against those hosts while writing a record
/// to each partition and reading it back, and the controller routed it to every broker by the
/// server name it asked for.
fn write_and_read_through_ingress(
    payments: &KafkaUser,
    forwarding: Option<&NodePorts>,
    company: &CompanyCa,
    dir: &Path,
) {
    let bootstrap = format!("{INGRESS_DOMAIN}:{INGRESS_PORT}");
    check_bootstrap("ingress", "ingress", &bootstrap);
    // The listener presents cert-manager's certificate: clients trust the company's CA, which
    // the User's Secret carries beside the cluster CA.
    let company_ca = dir.join("company-ca.crt");
    std::fs::write(&company_ca, company.pem()).expect("write the company CA");
    assert!(
        secret_text("payments-app", "ca.crt").contains(company.pem().trim()),
        "the User's ca.crt holds the CA of the ingress listener's certificate"
    );
    let answer = roundtrip_through_ingress(payments, &bootstrap, &company_ca);
    check_roundtrip(&answer, forwarding);

    // cert-manager renews the certificate (a new key too): every broker serves the new one
    // within seconds, without a restart, and clients go on.
    let hosts: Vec<String> = (0..3)
        .map(|o| format!("broker-{o}.{INGRESS_DOMAIN}"))
        .collect();
    let served = || -> Result<Vec<String>, String> {
        hosts
            .iter()
            .map(|host| served_certificate(host, &company_ca))
            .collect()
    };
    let before = wait_for("the certificate each broker serves", QUICK, served);
    let pods = broker_uids();
    company.issue(LISTENER_CERTIFICATE);
    let renewed = Instant::now();
    wait_for(
        "every broker to serve the renewed certificate",
        QUICK,
        || {
            let now = served()?;
            let old: Vec<&String> = hosts
                .iter()
                .zip(now.iter().zip(&before))
                .filter(|(_, (now, before))| now == before)
                .map(|(host, _)| host)
                .collect();
            if old.is_empty() {
                Ok(())
            } else {
                Err(format!("still the old certificate at {old:?}"))
            }
        },
    );
    println!(
        "    every broker served the renewed certificate {:.1} s after cert-manager wrote it",
        renewed.elapsed().as_secs_f64()
    );
    assert_eq!(broker_uids(), pods, "no broker restarted for the renewal");
    let answer = roundtrip_through_ingress(payments, &bootstrap, &company_ca);
    check_roundtrip(&answer, None);
}

/// The uids of the secure Cluster's broker pods, by name.
fn broker_uids() -> BTreeMap<String, String> {
    list(NS, "pod", SECURE_BROKERS)
        .iter()
        .map(|p| {
            let text = |key: &str| p["metadata"][key].as_str().unwrap_or_default().to_owned();
            (text("name"), text("uid"))
        })
        .collect()
}

/// The SHA-256 of the certificate served at the ingress controller for server name `host`,
/// checked against `ca` and `host`.
fn served_certificate(host: &str, ca: &Path) -> Result<String, String> {
    let mut command = Command::new("python3");
    command
        .arg("-c")
        .arg(INGRESS_CLIENT)
        .arg("certificate")
        .arg(host)
        .arg(INGRESS_PORT.to_string())
        .arg(ca)
        .arg(INGRESS_IP);
    let run = run_limited(
        "a TLS handshake through the ingress controller",
        command,
        None,
    );
    if run.ok {
        Ok(run.stdout.trim().to_owned())
    } else {
        Err(run.to_string())
    }
}

/// The kafka-python client's write and read through the ingress controller, retried until
/// it succeeds (for at most [`SLOW`]), trusting `ca`.
fn roundtrip_through_ingress(payments: &KafkaUser, bootstrap: &str, ca: &Path) -> Value {
    wait_for(
        "a client outside to write and read through the ingress controller",
        SLOW,
        || {
            let mut command = Command::new("python3");
            command
                .arg("-c")
                .arg(INGRESS_CLIENT)
                .arg("roundtrip")
                .arg(bootstrap)
                .arg(PAYMENTS)
                .arg(ca)
                .arg(secret_text(&payments.name, "username"))
                .arg(secret_text(&payments.name, "password"))
                .arg(secret_text(&payments.name, "sasl.mechanism"))
                .arg(INGRESS_DOMAIN)
                .arg(INGRESS_IP);
            let run = run_limited("the kafka-python client", command, None);
            if !run.ok {
                return Err(run.to_string());
            }
            serde_json::from_str::<Value>(run.stdout.trim())
                .map_err(|e| format!("{e}: {}", run.stdout))
        },
    )
}

/// What the kafka-python client must have seen: every broker advertising its own host, each
/// record read back, and (with the stand-in) the bootstrap host and each leader's host routed
/// by server name.
fn check_roundtrip(answer: &Value, forwarding: Option<&NodePorts>) {
    let brokers = answer["brokers"].as_object().expect("brokers");
    let expected: BTreeMap<String, String> = (0..3)
        .map(|ordinal| {
            (
                ordinal.to_string(),
                format!("broker-{ordinal}.{INGRESS_DOMAIN}:{INGRESS_PORT}"),
            )
        })
        .collect();
    let seen: BTreeMap<String, String> = brokers
        .iter()
        .map(|(id, address)| (id.clone(), address.as_str().unwrap_or_default().to_owned()))
        .collect();
    assert_eq!(
        seen, expected,
        "what the brokers advertise on the ingress listener"
    );
    let written = answer["written"].as_object().expect("written");
    assert_eq!(written.len(), 3, "{answer}");
    for (partition, record) in written {
        let value = record["value"].as_str().unwrap_or_default();
        assert_eq!(
            answer["read"][partition].as_str(),
            Some(value),
            "partition {partition} read back: {answer}"
        );
        println!(
            "    {value} written at offset {} and read back through {} (broker {}'s host)",
            record["offset"],
            expected[&answer["leaders"][partition].to_string()],
            answer["leaders"][partition]
        );
    }
    // The controller routed the bootstrap host, and each leader's host, by server name.
    if let Some(forwarding) = forwarding {
        let leaders: BTreeSet<String> = written
            .keys()
            .map(|partition| answer["leaders"][partition].to_string())
            .collect();
        let hosts = std::iter::once(INGRESS_DOMAIN.to_owned()).chain(
            leaders
                .iter()
                .map(|leader| format!("broker-{leader}.{INGRESS_DOMAIN}")),
        );
        for host in hosts {
            let count = forwarding.connections_to_host(&host);
            assert!(count > 0, "no connection asked for server name {host}");
            println!("    {count} connection(s) routed by server name {host}");
        }
    }
}

fn secure_cluster_yaml() -> String {
    format!(
        "apiVersion: strand.dev/v1alpha1
kind: Cluster
metadata:
  name: {SECURE}
  namespace: {NS}
spec:
  replicas: 3
  image: ghcr.io/strand-dev/strand:0.1.0
  storage:
    size: 1Gi
  deletionPolicy: Delete
  balancing:
    brokerFailureTimeout: 10m
  listeners:
  - name: tls
    port: 9092
    type: internal
    tls: true
    authentication: scram-sha-512
  - name: external
    port: 9094
    type: nodeport
    tls: true
    authentication: scram-sha-512
  - name: lb
    port: 9096
    type: loadbalancer
    tls: true
    authentication: scram-sha-512
  - name: mtls
    port: 9098
    type: nodeport
    tls: true
    authentication: tls
  - name: ingress
    port: 9097
    type: ingress
    tls: true
    authentication: scram-sha-512
    ingress:
      bootstrapHost: {INGRESS_DOMAIN}
      brokerHost: broker-{{ordinal}}.{INGRESS_DOMAIN}
      port: {INGRESS_PORT}
      className: nginx
    certificate:
      issuerRef:
        name: company-ca
        kind: ClusterIssuer
"
    )
}

/// Whether the object is Ready for its current generation.
fn ready(kind: &str, name: &str) -> Result<Value, String> {
    let object = get(NS, kind, name).ok_or_else(|| format!("no {kind} {name}"))?;
    if condition_true(&object, "Ready") {
        Ok(object)
    } else {
        Err(format!("{}", object["status"]))
    }
}

/// One key of a Secret, decoded.
fn secret_text(secret: &str, key: &str) -> String {
    let template = format!("--template={{{{index .data \"{key}\" | base64decode}}}}");
    kubectl(&[
        "get",
        "secret",
        "-n",
        NS,
        secret,
        "-o",
        "go-template",
        &template,
    ])
}

/// Listener `name` is of type `kind` and bootstraps at `bootstrap`, in the Cluster's status
/// and in payments-app's Secret.
fn check_bootstrap(name: &str, kind: &str, bootstrap: &str) {
    let (listed_kind, in_status) = listeners_in_status().unwrap()[name].clone();
    assert_eq!(
        (listed_kind.as_str(), in_status.as_str()),
        (kind, bootstrap)
    );
    assert_eq!(
        secret_text("payments-app", &format!("bootstrap.servers.{name}")),
        bootstrap
    );
}

/// The Cluster's `status.listeners`, by name: (type, bootstrapServers).
fn listeners_in_status() -> Result<BTreeMap<String, (String, String)>, String> {
    let cluster = get(NS, "cluster", SECURE).ok_or("no Cluster")?;
    let listeners = cluster["status"]["listeners"]
        .as_array()
        .ok_or_else(|| format!("no status.listeners: {}", cluster["status"]))?;
    Ok(listeners
        .iter()
        .map(|l| {
            let text = |key: &str| l[key].as_str().unwrap_or_default().to_owned();
            (text("name"), (text("type"), text("bootstrapServers")))
        })
        .collect())
}

/// The external listener's bootstrap address from the Cluster's status, once it is there.
fn external_bootstrap() -> String {
    let (kind, bootstrap) = wait_for(
        "the external listener's address in the Cluster's status",
        QUICK,
        || {
            let listeners = listeners_in_status()?;
            match listeners.get("external") {
                Some((_, bootstrap)) if !bootstrap.is_empty() => Ok(listeners["external"].clone()),
                _ => Err(format!("{listeners:?}")),
            }
        },
    );
    assert_eq!(kind, "nodeport");
    bootstrap
}

fn check_user_secret(user: &Value) {
    assert_eq!(user["status"]["secretName"], "payments-app", "{user}");
    let secret = get(NS, "secret", "payments-app").expect("the User's Secret");
    for key in [
        "username",
        "password",
        "sasl.mechanism",
        "sasl.jaas.config",
        "ca.crt",
        "bootstrap.servers.tls",
        "bootstrap.servers.external",
    ] {
        assert!(
            secret["data"][key].is_string(),
            "Secret payments-app has no {key}: keys {:?}",
            secret["data"]
                .as_object()
                .map(|d| d.keys().collect::<Vec<_>>())
        );
    }
    let owned_by_user = secret["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|o| o["kind"] == "User" && o["name"] == "payments-app");
    assert!(owned_by_user, "{}", secret["metadata"]);
    // The Cluster's CA, then the CA of the listener whose certificate cert-manager issues.
    let ca = secret_text(&format!("{SECURE}-ca"), "ca.crt");
    assert!(
        secret_text("payments-app", "ca.crt").starts_with(&ca),
        "the User's ca.crt begins with the Cluster's CA"
    );
    let username = secret_text("payments-app", "username");
    let password = secret_text("payments-app", "password");
    assert!(!password.is_empty());
    assert_eq!(
        user["status"]["principal"], "User:payments-app",
        "{}",
        user["status"]
    );
    assert_eq!(
        user["status"]["principal"],
        format!("User:{username}"),
        "the principal is the SCRAM username"
    );
    assert_eq!(
        secret_text("payments-app", "sasl.mechanism"),
        "SCRAM-SHA-512"
    );
    let jaas = secret_text("payments-app", "sasl.jaas.config");
    assert!(
        jaas.contains("ScramLoginModule") && jaas.contains(&username) && jaas.contains(&password),
        "sasl.jaas.config holds the credentials for a Java client"
    );
    assert_eq!(
        secret_text("payments-app", "bootstrap.servers.tls"),
        format!("{SECURE}-bootstrap.{NS}.svc:9092")
    );
    // Each address the Secret gives is the one the Cluster reports for that listener.
    let listeners = wait_for("every listener in the Cluster's status", QUICK, || {
        let listeners = listeners_in_status()?;
        if listeners.len() == 5 && listeners.values().all(|(_, b)| !b.is_empty()) {
            Ok(listeners)
        } else {
            Err(format!("{listeners:?}"))
        }
    });
    assert_eq!(listeners["tls"].0, "internal", "{listeners:?}");
    for name in ["tls", "external", "lb", "ingress"] {
        assert_eq!(
            secret_text("payments-app", &format!("bootstrap.servers.{name}")),
            listeners[name].1,
            "bootstrap.servers.{name}"
        );
    }
    println!(
        "    Secret payments-app: {username} ({}), listeners {:?}",
        user["status"]["principal"],
        listeners
            .iter()
            .map(|(name, (_, bootstrap))| format!("{name}={bootstrap}"))
            .collect::<Vec<_>>()
    );
}

/// A pod running `kcat MODE` as payments-app, with the Secret as its environment and files.
fn kcat_pod_yaml(name: &str, mode: &[&str]) -> String {
    let mut args = vec![
        "-b",
        "$(BOOTSTRAP)",
        "-X",
        "security.protocol=SASL_SSL",
        "-X",
        "sasl.mechanisms=SCRAM-SHA-512",
        "-X",
        "sasl.username=$(USERNAME)",
        "-X",
        "sasl.password=$(PASSWORD)",
        "-X",
        "ssl.ca.location=/etc/user/ca.crt",
        // The first metadata may take longer than kcat's default 5 s on a loaded machine.
        "-m",
        "30",
    ];
    args.extend_from_slice(mode);
    let args = serde_json::to_string(&args).unwrap();
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {NS}
spec:
  restartPolicy: Never
  containers:
  - name: kcat
    image: edenhill/kcat:1.7.1
    env:
    - name: BOOTSTRAP
      valueFrom:
        secretKeyRef: {{name: payments-app, key: bootstrap.servers.tls}}
    - name: USERNAME
      valueFrom:
        secretKeyRef: {{name: payments-app, key: username}}
    - name: PASSWORD
      valueFrom:
        secretKeyRef: {{name: payments-app, key: password}}
    args: {args}
    volumeMounts:
    - {{name: user, mountPath: /etc/user, readOnly: true}}
    - {{name: messages, mountPath: /etc/messages, readOnly: true}}
  volumes:
  - name: user
    secret:
      secretName: payments-app
  - name: messages
    configMap:
      name: payments-messages
"
    )
}

/// Waits for a pod that runs to completion; a failed one fails the journey with its logs.
fn wait_for_pod_to_succeed(name: &str) {
    let phase = wait_for(&format!("pod {name} to finish"), SLOW, || {
        let pod = get(NS, "pod", name).ok_or("no pod")?;
        match pod["status"]["phase"].as_str() {
            Some(phase @ ("Succeeded" | "Failed")) => Ok(phase.to_owned()),
            _ => Err(format!("{}", pod["status"])),
        }
    });
    if phase == "Failed" {
        let logs = try_kubectl(&["logs", "-n", NS, name]).unwrap_or_else(|e| e);
        panic!("pod {name} failed:\n{}", indent(&logs));
    }
}

fn produce_and_consume_in_pods() {
    let lines: String = (1..=MESSAGES)
        .map(|i| format!("    payment-{i}\n"))
        .collect();
    apply(&format!(
        "apiVersion: v1
kind: ConfigMap
metadata:
  name: payments-messages
  namespace: {NS}
data:
  messages.txt: |
{lines}"
    ));
    apply(&kcat_pod_yaml(
        "payments-producer",
        &["-t", PAYMENTS, "-P", "-l", "/etc/messages/messages.txt"],
    ));
    wait_for_pod_to_succeed("payments-producer");
    println!("    pod payments-producer wrote {MESSAGES} payments as payments-app");
    apply(&kcat_pod_yaml(
        "payments-consumer",
        &["-C", "-t", PAYMENTS, "-o", "beginning", "-e"],
    ));
    wait_for_pod_to_succeed("payments-consumer");
    let logs = kubectl(&["logs", "-n", NS, "payments-consumer"]);
    let mut read: BTreeMap<&str, usize> = BTreeMap::new();
    for line in logs.lines() {
        *read.entry(line.trim()).or_insert(0) += 1;
    }
    for i in 1..=MESSAGES {
        let value = format!("payment-{i}");
        assert_eq!(
            read.get(value.as_str()),
            Some(&1),
            "{value} read back once by payments-consumer; it printed:\n{logs}"
        );
    }
    println!("    pod payments-consumer read all {MESSAGES} back");
}

/// A User's credentials as a client outside the cluster keeps them: a `kcat` configuration
/// file and the CA, written from the User's Secret.
struct KafkaUser {
    name: String,
    config: PathBuf,
    /// The Secret's `bootstrap.servers.external`.
    bootstrap: String,
}

/// What a client run (`kcat`, or the kafka-python client) said.
struct Kcat {
    what: &'static str,
    ok: bool,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Kcat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.what,
            if self.ok { "succeeded" } else { "failed" },
            self.stderr.trim()
        )
    }
}

/// Runs `command` with `input` on standard input, killed after [`KCAT_LIMIT`].
fn run_limited(what: &'static str, mut command: Command, input: Option<&str>) -> Kcat {
    let mut child = command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("stdin is piped");
        stdin
            .write_all(input.as_bytes())
            .expect("write to the client");
    }
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().expect("stdout is piped")));
    let stderr = read_all(Box::new(child.stderr.take().expect("stderr is piped")));
    let deadline = Instant::now() + KCAT_LIMIT;
    let status = loop {
        match child.try_wait().expect("the client's status") {
            Some(status) => break Some(status),
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let mut stderr = stderr.join().unwrap_or_default();
    if status.is_none() {
        stderr.push_str(&format!("\n(killed after {KCAT_LIMIT:?})"));
    }
    Kcat {
        what,
        ok: status.is_some_and(|s| s.success()),
        stdout: stdout.join().unwrap_or_default(),
        stderr,
    }
}

impl KafkaUser {
    /// A User that authenticates by certificate, through the `mtls` listener.
    fn from_tls_secret(secret: &str, dir: &Path) -> KafkaUser {
        let file = |key: &str| {
            let path = dir.join(format!("{secret}-{key}"));
            std::fs::write(&path, secret_text(secret, key)).expect("write the credentials");
            path
        };
        let (ca, cert, key) = (file("ca.crt"), file("user.crt"), file("user.key"));
        let config = dir.join(format!("{secret}.conf"));
        let properties = format!(
            "security.protocol=SSL\nssl.ca.location={}\nssl.certificate.location={}\n\
             ssl.key.location={}\n",
            ca.display(),
            cert.display(),
            key.display()
        );
        std::fs::write(&config, properties).expect("write the kcat configuration");
        KafkaUser {
            name: secret.to_owned(),
            config,
            bootstrap: secret_text(secret, "bootstrap.servers.mtls"),
        }
    }

    fn from_secret(secret: &str, dir: &Path) -> KafkaUser {
        let ca = dir.join(format!("{secret}-ca.crt"));
        std::fs::write(&ca, secret_text(secret, "ca.crt")).expect("write the CA");
        let config = dir.join(format!("{secret}.conf"));
        let properties = format!(
            "security.protocol=SASL_SSL\nsasl.mechanisms={}\nsasl.username={}\n\
             sasl.password={}\nssl.ca.location={}\n",
            secret_text(secret, "sasl.mechanism"),
            secret_text(secret, "username"),
            secret_text(secret, "password"),
            ca.display()
        );
        std::fs::write(&config, properties).expect("write the kcat configuration");
        KafkaUser {
            name: secret.to_owned(),
            config,
            bootstrap: secret_text(secret, "bootstrap.servers.external"),
        }
    }

    /// `kcat -b BOOTSTRAP ARGS` with the User's credentials, `input` on standard input,
    /// killed after [`KCAT_LIMIT`].
    fn kcat(&self, bootstrap: &str, args: &[&str], input: Option<&str>) -> Kcat {
        let mut command = Command::new("kcat");
        // `cargo test` points the loader at the librdkafka it built for the suite, which has
        // no TLS; kcat must load its own.
        command
            .env_remove("LD_LIBRARY_PATH")
            .arg("-F")
            .arg(&self.config)
            .args(["-b", bootstrap, "-m", "10"])
            .args(args);
        run_limited("kcat", command, input)
    }

    /// `kcat -L -J` through `bootstrap`, of `topic` or of every topic.
    fn metadata(&self, bootstrap: &str, topic: Option<&str>) -> Result<Value, String> {
        let mut args = vec!["-L", "-J"];
        if let Some(topic) = topic {
            args.extend(["-t", topic]);
        }
        let run = self.kcat(bootstrap, &args, None);
        if !run.ok {
            return Err(format!("{} through {bootstrap}: {run}", self.name));
        }
        serde_json::from_str(run.stdout.trim())
            .map_err(|e| format!("kcat -L -J printed {:?}: {e}", run.stdout))
    }
}

/// The node port of a Service's only port, after checking it is a NodePort Service whose port
/// and target port are the external listener's.
fn node_port(service: &str) -> Result<u16, String> {
    let object = get(NS, "service", service).ok_or_else(|| format!("no Service {service}"))?;
    let port = &object["spec"]["ports"][0];
    if object["spec"]["type"] != "NodePort" || port["port"] != 9094 || port["targetPort"] != 9094 {
        return Err(format!("Service {service}: {}", object["spec"]));
    }
    port["nodePort"]
        .as_u64()
        .map(|p| p as u16)
        .ok_or_else(|| format!("Service {service} has no node port yet"))
}

/// Where each broker pod should be advertised on the external listener: its node's address
/// and the node port of its own Service, by pod.
fn expected_external_addresses() -> Result<BTreeMap<String, String>, String> {
    let mut addresses = BTreeMap::new();
    for n in 0..3 {
        let pod = format!("{SECURE}-{n}");
        let service = get(NS, "service", &format!("{pod}-external"))
            .ok_or_else(|| format!("no Service {pod}-external"))?;
        let selector = &service["spec"]["selector"];
        if selector["statefulset.kubernetes.io/pod-name"] != pod.as_str()
            || selector["app.kubernetes.io/instance"] != SECURE
        {
            return Err(format!("Service {pod}-external selects {selector}"));
        }
        let port = node_port(&format!("{pod}-external"))?;
        let object = get(NS, "pod", &pod).ok_or_else(|| format!("no pod {pod}"))?;
        let host = object["status"]["hostIP"]
            .as_str()
            .ok_or_else(|| format!("pod {pod} has no hostIP"))?;
        addresses.insert(pod, format!("{host}:{port}"));
    }
    Ok(addresses)
}

/// The advertised addresses of `kcat -L -J` output, by broker id.
fn advertised(metadata: &Value) -> BTreeMap<i64, String> {
    metadata["brokers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| Some((b["id"].as_i64()?, b["name"].as_str()?.to_owned())))
        .collect()
}

/// The leader of each partition of the one topic of `kcat -L -J -t TOPIC` output.
fn leaders(metadata: &Value) -> Result<BTreeMap<i64, i64>, String> {
    let topic = &metadata["topics"][0];
    if topic["error"].is_string() {
        return Err(format!("{topic}"));
    }
    Ok(topic["partitions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["partition"].as_i64()?, p["leader"].as_i64()?)))
        .collect())
}

/// The number after `key` in a line of words.
fn number_after(line: &str, key: &str) -> Option<i64> {
    let words: Vec<&str> = line
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter(|w| !w.is_empty())
        .collect();
    let at = words.iter().position(|w| *w == key)?;
    words.get(at + 1)?.parse().ok()
}

fn write_and_read_through_node_ports(
    payments: &KafkaUser,
    external: &str,
    forwarding: Option<&NodePorts>,
) {
    let bootstrap_port = node_port(&format!("{SECURE}-external-bootstrap")).expect("the bootstrap");
    let selector =
        get(NS, "service", &format!("{SECURE}-external-bootstrap")).unwrap()["spec"]["selector"]
            .clone();
    assert!(
        selector["app.kubernetes.io/instance"] == SECURE
            && selector["app.kubernetes.io/component"] == "broker"
            && selector["statefulset.kubernetes.io/pod-name"].is_null(),
        "the bootstrap Service selects every broker: {selector}"
    );
    assert!(
        external.ends_with(&format!(":{bootstrap_port}")),
        "{external} is on the bootstrap Service's node port {bootstrap_port}"
    );
    // The certificate for the node's address may reach the brokers some seconds after they
    // are Ready (the operator reissues it, the Secret's file is refreshed, the brokers
    // reload): retry until the bootstrap and every broker, each through its own node port,
    // answer over verified TLS and SCRAM. A failing try takes kcat's 10 s metadata timeout.
    let (metadata, by_pod) = wait_for(
        "every broker to answer through its node port over TLS",
        QUICK * 2,
        || {
            let expected = expected_external_addresses()?;
            let metadata = payments.metadata(external, Some(PAYMENTS))?;
            let advertised: BTreeSet<String> = advertised(&metadata).into_values().collect();
            let wanted: BTreeSet<String> = expected.values().cloned().collect();
            if advertised != wanted {
                return Err(format!("advertised {advertised:?}, expected {expected:?}"));
            }
            for address in &wanted {
                payments.metadata(address, Some(PAYMENTS))?;
            }
            Ok((metadata, expected))
        },
    );
    let brokers = advertised(&metadata);
    let ports: BTreeSet<&str> = brokers
        .values()
        .map(|a| a.rsplit(':').next().unwrap())
        .collect();
    assert_eq!(brokers.len(), 3, "{metadata}");
    assert_eq!(ports.len(), 3, "three distinct node ports: {brokers:?}");
    for (pod, address) in &by_pod {
        println!("    {pod} advertised at {address}, and answers there");
    }

    // One record to each partition, acknowledged by all replicas, written to its leader
    // through the leader's advertised address.
    let mut written = BTreeMap::new();
    for partition in 0..3 {
        let value = format!("external-{partition}");
        let run = payments.kcat(
            external,
            &[
                "-P",
                "-t",
                PAYMENTS,
                "-p",
                &partition.to_string(),
                "-X",
                "acks=all",
                "-X",
                "message.timeout.ms=30000",
                "-v",
                "-v",
            ],
            Some(&format!("{value}\n")),
        );
        // kcat exits non-zero when a delivery fails; the delivery report says where it went.
        assert!(run.ok, "writing to partition {partition}: {run}");
        let report = run
            .stderr
            .lines()
            .find(|l| l.contains("Message delivered to partition"))
            .unwrap_or_else(|| panic!("no delivery report: {run}"));
        let (Some(p), Some(offset), Some(broker)) = (
            number_after(report, "partition"),
            number_after(report, "offset"),
            number_after(report, "broker"),
        ) else {
            panic!("cannot read the delivery report {report:?}");
        };
        assert_eq!(p, partition, "{report}");
        for line in run.stderr.lines().filter(|l| l.contains("ERROR")) {
            println!("    (kcat, delivered anyway: {})", line.trim());
        }
        written.insert(partition, (offset, broker, value));
    }
    let leaders = leaders(
        &payments
            .metadata(external, Some(PAYMENTS))
            .expect("metadata"),
    )
    .expect("payments' partitions");
    for (partition, (offset, broker, _)) in &written {
        assert_eq!(
            leaders.get(partition),
            Some(broker),
            "partition {partition} (written at offset {offset}) was acknowledged by its leader"
        );
    }
    let reached: BTreeSet<i64> = written.values().map(|(_, broker, _)| *broker).collect();
    println!(
        "    one record written to each partition, acknowledged by brokers {reached:?} (the \
         leaders of {} partitions)",
        leaders.len()
    );
    if let Some(forwarding) = forwarding {
        for broker in &reached {
            let port: u16 = brokers[broker].rsplit(':').next().unwrap().parse().unwrap();
            assert!(
                forwarding.connections(port) > 0,
                "broker {broker} was reached through node port {port}"
            );
        }
        assert!(forwarding.connections(bootstrap_port) > 0);
    }

    // Each read back through the external listener, from its leader.
    for (partition, (offset, broker, value)) in &written {
        let run = payments.kcat(
            external,
            &[
                "-C",
                "-t",
                PAYMENTS,
                "-p",
                &partition.to_string(),
                "-o",
                &offset.to_string(),
                "-c",
                "1",
                "-e",
                "-J",
            ],
            None,
        );
        assert!(run.ok, "reading partition {partition}: {run}");
        let record: Value = run
            .stdout
            .lines()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("no record read from partition {partition}: {run}"));
        assert_eq!(record["payload"], value.as_str(), "{record}");
        assert_eq!(record["offset"], *offset, "{record}");
        println!(
            "    read {value} back from partition {partition} at offset {offset} (fetched from \
             broker {}, leader {broker})",
            record["broker"]
        );
    }
}

fn nobody_is_refused(nobody: &KafkaUser, external: &str) {
    let refusal = wait_for("nobody to be refused payments", QUICK, || {
        let run = nobody.kcat(
            external,
            &[
                "-P",
                "-t",
                PAYMENTS,
                "-p",
                "0",
                "-X",
                "message.timeout.ms=30000",
            ],
            Some("not-allowed\n"),
        );
        assert!(
            !run.ok,
            "a User with no ACLs wrote to payments: {}",
            run.stderr
        );
        run.stderr
            .lines()
            .find(|l| l.to_lowercase().contains("authoriz"))
            .map(str::to_owned)
            .ok_or_else(|| format!("refused, but not for authorization: {run}"))
    });
    println!("    nobody writing to payments: {}", refusal.trim());
    // It authenticates: the cluster answers it, with nothing of payments.
    let metadata = nobody
        .metadata(external, None)
        .unwrap_or_else(|e| panic!("nobody authenticates: {e}"));
    let sees_payments = metadata["topics"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|t| t["topic"] == PAYMENTS && t["error"].is_null());
    assert!(
        !sees_payments,
        "nobody, without Describe, was shown payments: {metadata}"
    );
}

/// Deletes the client pods and the secure Cluster with everything of it, and waits until its
/// brokers, their objects and volumes are gone.
fn delete_the_secure_cluster() {
    kubectl(&[
        "delete",
        "-n",
        NS,
        "pod",
        "payments-producer",
        "payments-consumer",
        "--ignore-not-found",
        "--timeout=120s",
    ]);
    kubectl(&[
        "delete",
        "-n",
        NS,
        "configmap",
        "payments-messages",
        "--ignore-not-found",
    ]);
    // Users and the Topic first, while the brokers are there to take their credentials, ACLs
    // and topic away.
    kubectl(&[
        "delete",
        "-n",
        NS,
        "user",
        "nobody",
        "payments-app",
        "--ignore-not-found",
        "--timeout=120s",
    ]);
    kubectl(&[
        "delete",
        "-n",
        NS,
        "topic",
        PAYMENTS,
        "--ignore-not-found",
        "--timeout=120s",
    ]);
    kubectl(&["delete", "-n", NS, "cluster", SECURE, "--timeout=180s"]);
    wait_for(
        "the secure Cluster's brokers, objects and volumes to go",
        SLOW,
        || {
            let mut left: Vec<String> = list(NS, "pod", SECURE_BROKERS)
                .iter()
                .map(|o| format!("pod/{}", o["metadata"]["name"].as_str().unwrap_or("")))
                .collect();
            if get(NS, "statefulset", SECURE).is_some() {
                left.push(format!("statefulset/{SECURE}"));
            }
            let prefixes = [format!("{SECURE}-"), format!("data-{SECURE}-")];
            for kind in ["service", "pvc"] {
                left.extend(
                    list(NS, kind, "")
                        .iter()
                        .filter_map(|o| o["metadata"]["name"].as_str())
                        .filter(|name| prefixes.iter().any(|p| name.starts_with(p.as_str())))
                        .map(|name| format!("{kind}/{name}")),
                );
            }
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("left: {left:?}"))
            }
        },
    );
    println!("    Cluster secure and all of it deleted");
}
