//! The objects built for a Cluster: golden files for whole Clusters, unit tests for the rules.

use expect_test::{ExpectFile, expect_file};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use strand_operator::crd::Cluster;
use strand_operator::desired::{Desired, DesiredError, desired, label_selector};

/// A Cluster as `kubectl get -o yaml` would show it: what the API server adds included.
fn cluster(yaml: &str) -> Cluster {
    let mut cluster: Cluster = serde_saphyr::from_str(yaml).unwrap();
    cluster.metadata.uid = Some("6d1e2f1c-4c1a-4b8e-9a57-0f5c2b7d9e11".to_owned());
    cluster
}

fn render(desired: &Desired) -> String {
    let mut objects = vec![
        serde_json::to_value(&desired.config_map).unwrap(),
        serde_json::to_value(&desired.headless_service).unwrap(),
        serde_json::to_value(&desired.client_service).unwrap(),
        serde_json::to_value(&desired.stateful_set).unwrap(),
        serde_json::to_value(&desired.pod_disruption_budget).unwrap(),
        serde_json::to_value(&desired.network_policy).unwrap(),
    ];
    objects.extend(
        desired
            .external_services
            .iter()
            .map(|s| serde_json::to_value(s).unwrap()),
    );
    objects.extend(
        desired
            .ingresses
            .iter()
            .map(|i| serde_json::to_value(i).unwrap()),
    );
    serde_saphyr::to_string_multiple(&objects).unwrap()
}

/// Builds the objects of the Cluster in `input` and compares them with the golden file.
/// `UPDATE_EXPECT=1 cargo test -p strand-operator --test desired` rewrites the file.
fn check(input: &str, expect: ExpectFile) {
    expect.assert_eq(&render(&desired(&cluster(input)).unwrap()));
}

const THREE_BROKERS_WITH_RACKS: &str = r#"
apiVersion: strand.dev/v1alpha1
kind: Cluster
metadata:
  name: events
  namespace: streaming
spec:
  replicas: 3
  image: ghcr.io/strand-dev/strand:0.1.0
  resources:
    requests: { cpu: "1", memory: 2Gi }
    limits: { memory: 2Gi }
  storage:
    size: 100Gi
    storageClassName: fast-ssd
  config:
    log_level: info
    default_replication_factor: 3
  rack:
    topologyKey: topology.kubernetes.io/zone
"#;

#[test]
fn three_brokers_with_rack_awareness() {
    check(
        THREE_BROKERS_WITH_RACKS,
        expect_file!["golden/three-brokers-with-racks.yaml"],
    );
}

const MINIMAL: &str = r#"
apiVersion: strand.dev/v1alpha1
kind: Cluster
metadata: { name: dev, namespace: default }
spec:
  # No image: the broker image of the operator's own version.
  replicas: 1
  storage: { size: 1Gi }
"#;

#[test]
fn single_broker_with_defaults() {
    check(MINIMAL, expect_file!["golden/single-broker-defaults.yaml"]);
}

const LISTENERS: &str = r#"
apiVersion: strand.dev/v1alpha1
kind: Cluster
metadata: { name: payments, namespace: default }
spec:
  replicas: 2
  image: ghcr.io/strand-dev/strand:0.1.0
  storage: { size: 1Gi }
  listeners:
    - { name: plain, port: 9092, type: internal, tls: false, authentication: none }
    - { name: mtls, port: 9093, type: internal, tls: true, authentication: tls }
    - { name: external, port: 9094, type: nodeport, tls: true, authentication: scram-sha-512 }
    - { name: lb, port: 9096, type: loadbalancer, tls: true, authentication: scram-sha-512 }
    - name: ingress
      port: 9097
      type: ingress
      tls: true
      authentication: scram-sha-512
      ingress:
        bootstrapHost: kafka.example.com
        brokerHost: broker-{ordinal}.kafka.example.com
        className: nginx
      certificate:
        issuerRef: { name: letsencrypt, kind: ClusterIssuer }
"#;

/// Listeners of every kind: the TLS one is the broker's main listener, the others are
/// `--listener`s; the nodeport one advertises its node's address and gets NodePort Services,
/// the loadbalancer one LoadBalancer Services (and the pod's name until its address is known),
/// the ingress one ClusterIP Services behind Ingresses that pass TLS through, and presents
/// the certificate cert-manager keeps in its own Secret.
#[test]
fn listeners_of_every_kind() {
    // 9093 is the gRPC port: the schema refuses it, so the golden case uses 9095.
    check(
        &LISTENERS.replace("port: 9093", "port: 9095"),
        expect_file!["golden/listeners.yaml"],
    );
}

fn pod_spec(stateful_set: &StatefulSet) -> &PodSpec {
    stateful_set
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
}

fn broker(stateful_set: &StatefulSet) -> &Container {
    &pod_spec(stateful_set).containers[0]
}

fn arg_after<'a>(container: &'a Container, flag: &str) -> Option<&'a str> {
    let args = container.args.as_ref().unwrap();
    args.iter()
        .position(|a| a == flag)
        .map(|i| args[i + 1].as_str())
}

#[test]
fn omitted_settings_take_their_defaults() {
    let cluster = cluster(MINIMAL);
    let spec = &cluster.spec;
    assert_eq!(spec.disruption_budget.max_unavailable, 1);
    assert!(spec.balancing.leader_balancing);
    assert_eq!(
        spec.balancing.broker_failure_timeout,
        std::time::Duration::from_secs(300)
    );
    assert_eq!(spec.balancing.max_concurrent_moves, 2);
    let desired = desired(&cluster).unwrap();
    let broker = broker(&desired.stateful_set);
    assert_eq!(arg_after(broker, "--rack-file"), None);
    assert_eq!(
        pod_spec(&desired.stateful_set).topology_spread_constraints,
        None
    );
    // The balancing settings reach the brokers through their settings file.
    assert_eq!(
        desired.config_map.data.unwrap()["broker.yaml"],
        "broker_failure_timeout_ms: 300000\nleader_balancing: true\nmax_concurrent_moves: 2\n"
    );
}

#[test]
fn seeds_are_the_first_three_brokers_at_most() {
    for (replicas, seeds) in [(1, 1), (2, 2), (3, 3), (7, 3)] {
        let yaml = MINIMAL.replace("replicas: 1", &format!("replicas: {replicas}"));
        let desired = desired(&cluster(&yaml)).unwrap();
        let list = arg_after(broker(&desired.stateful_set), "--seeds")
            .unwrap()
            .to_owned();
        assert_eq!(list.split(',').count(), seeds, "{list}");
        assert!(
            list.starts_with("dev-0.dev-brokers.default.svc:9093"),
            "{list}"
        );
    }
}

#[test]
fn pod_overrides_never_change_the_selector() {
    let yaml = format!(
        "{MINIMAL}  pod:\n    labels:\n      app.kubernetes.io/instance: hijack\n      team: payments\n\
         \x20   annotations:\n      prometheus.io/scrape: \"true\"\n    priorityClassName: streaming\n"
    );
    let desired = desired(&cluster(&yaml)).unwrap();
    let template = &desired.stateful_set.spec.as_ref().unwrap().template;
    let labels = template.metadata.as_ref().unwrap().labels.as_ref().unwrap();
    assert_eq!(labels["app.kubernetes.io/instance"], "dev");
    assert_eq!(labels["team"], "payments");
    let annotations = template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap();
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(
        pod_spec(&desired.stateful_set)
            .priority_class_name
            .as_deref(),
        Some("streaming")
    );
    assert_eq!(
        label_selector("dev"),
        "app.kubernetes.io/component=broker,app.kubernetes.io/instance=dev,app.kubernetes.io/name=strand"
    );
}

#[test]
fn user_affinity_replaces_the_default_anti_affinity() {
    let yaml = format!(
        "{MINIMAL}  pod:\n    affinity:\n      nodeAffinity:\n        requiredDuringSchedulingIgnoredDuringExecution:\n\
         \x20         nodeSelectorTerms:\n          - matchExpressions:\n            - {{ key: pool, operator: In, values: [brokers] }}\n"
    );
    let desired = desired(&cluster(&yaml)).unwrap();
    let affinity = pod_spec(&desired.stateful_set).affinity.as_ref().unwrap();
    assert!(affinity.node_affinity.is_some());
    assert!(affinity.pod_anti_affinity.is_none());
}

#[test]
fn broker_config_change_restarts_the_brokers() {
    let hash = |yaml: &str| {
        let desired = desired(&cluster(yaml)).unwrap();
        let template = desired.stateful_set.spec.unwrap().template;
        template.metadata.unwrap().annotations.unwrap()["strand.dev/config-hash"].clone()
    };
    let info = hash(THREE_BROKERS_WITH_RACKS);
    assert_eq!(info, hash(THREE_BROKERS_WITH_RACKS));
    assert_ne!(
        info,
        hash(&THREE_BROKERS_WITH_RACKS.replace("log_level: info", "log_level: debug"))
    );
}

#[test]
fn every_object_is_owned_by_the_cluster() {
    let desired = desired(&cluster(MINIMAL)).unwrap();
    let metas = [
        &desired.config_map.metadata,
        &desired.headless_service.metadata,
        &desired.client_service.metadata,
        &desired.stateful_set.metadata,
        &desired.pod_disruption_budget.metadata,
        &desired.network_policy.metadata,
    ];
    for meta in metas {
        let owners = meta.owner_references.as_ref().unwrap();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].kind, "Cluster");
        assert_eq!(owners[0].controller, Some(true));
        assert_eq!(meta.namespace.as_deref(), Some("default"));
        assert_eq!(
            meta.labels.as_ref().unwrap()["app.kubernetes.io/managed-by"],
            "strand-operator"
        );
    }
}

#[test]
fn cluster_not_yet_stored_has_no_objects() {
    let mut cluster = cluster(MINIMAL);
    cluster.metadata.uid = None;
    let error = desired(&cluster).unwrap_err();
    assert!(matches!(error, DesiredError::MissingUid { .. }));
    assert_eq!(error.to_string(), "cluster dev has no uid");
}
