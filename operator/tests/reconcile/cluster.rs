//! The Cluster reconciler against the mock API server: the five objects by server-side apply,
//! status from pods and DescribeCluster, and a refused scale-down.

use std::sync::Arc;

use serde_json::{Value, json};
use strand_operator::cluster;
use strand_operator::context::Context;
use strand_operator::crd::Cluster;
use strand_operator::metrics::Metrics;

use super::mock::{self, AdminCall, ApiState, Call, DEADLINE, FakeCluster};
use super::{CLUSTER_PATH, EVENTS_PATH, cluster_object, condition, lines};

const NS: &str = "/namespaces/default";
const PODS_PATH: &str = "/api/v1/namespaces/default/pods";

fn owned_paths() -> [String; 6] {
    [
        format!("/api/v1{NS}/configmaps/main-config"),
        format!("/api/v1{NS}/services/main-brokers"),
        format!("/api/v1{NS}/services/main-bootstrap"),
        format!("/apis/apps/v1{NS}/statefulsets/main"),
        format!("/apis/policy/v1{NS}/poddisruptionbudgets/main"),
        format!("/apis/networking.k8s.io/v1{NS}/networkpolicies/main-brokers"),
    ]
}

fn pod(ordinal: u32, ready: bool) -> Value {
    json!({
        "metadata": {"name": format!("main-{ordinal}"), "namespace": "default"},
        "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
    })
}

fn pod_list(pods: Vec<Value>) -> Value {
    json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": pods})
}

/// The certificate Secrets of a Cluster that has run before: a CA and the brokers' and admin
/// certificates issued from it.
fn certificates() -> Vec<(String, Value)> {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    use strand_operator::pki;
    let now = time::OffsetDateTime::now_utc();
    let ca = pki::new_ca("default", "main", "cluster CA", now).unwrap();
    let clients_ca = pki::new_ca("default", "main", "clients CA", now).unwrap();
    let brokers = pki::issue(
        &ca,
        pki::BROKER_CN,
        &[
            "*.main-brokers.default.svc".to_owned(),
            "*.main-brokers.default.svc.cluster.local".to_owned(),
            "main-brokers.default.svc".to_owned(),
            "main-brokers.default.svc.cluster.local".to_owned(),
            "main-bootstrap.default.svc".to_owned(),
            "main-bootstrap.default.svc.cluster.local".to_owned(),
        ],
        now,
    )
    .unwrap();
    let admin = pki::issue(&ca, pki::ADMIN_CN, &[], now).unwrap();
    let secret = |name: &str, data: &[(&str, &str)]| {
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some("default".to_owned()),
                ..Default::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        };
        (
            format!("/api/v1{NS}/secrets/{name}"),
            serde_json::to_value(secret).unwrap(),
        )
    };
    vec![
        secret(
            "main-ca",
            &[("ca.crt", &ca.cert), ("ca.key", &ca.key), ("README", "")],
        ),
        secret(
            "main-clients-ca",
            &[
                ("ca.crt", &clients_ca.cert),
                ("ca.key", &clients_ca.key),
                ("README", ""),
            ],
        ),
        secret(
            "main-broker-tls",
            &[
                ("tls.crt", &brokers.cert),
                ("tls.key", &brokers.key),
                ("ca.crt", &ca.cert),
                ("clients-ca.crt", &clients_ca.cert),
            ],
        ),
        secret(
            "main-admin-tls",
            &[
                ("tls.crt", &admin.cert),
                ("tls.key", &admin.key),
                ("ca.crt", &ca.cert),
            ],
        ),
    ]
}

/// Reconciles `cluster` once, its certificates already issued, with `objects` stored.
async fn reconcile_cluster(
    cluster: Value,
    objects: Vec<(String, Value)>,
    admin: &FakeCluster,
) -> (Vec<Call>, ApiState) {
    let mut objects = objects;
    objects.extend(certificates());
    reconcile_new_cluster(cluster, objects, admin).await
}

/// Reconciles `cluster` once with only `objects` stored.
async fn reconcile_new_cluster(
    cluster: Value,
    objects: Vec<(String, Value)>,
    admin: &FakeCluster,
) -> (Vec<Call>, ApiState) {
    let mut state = ApiState::default();
    state
        .objects
        .insert(CLUSTER_PATH.to_owned(), cluster.clone());
    state.objects.extend(objects);
    let (client, server) = mock::client(state);
    let ctx = Arc::new(Context::new(client, admin.clone(), Metrics::default()));
    let cluster: Cluster = serde_json::from_value(cluster).unwrap();
    tokio::time::timeout(DEADLINE, cluster::reconcile(Arc::new(cluster), ctx))
        .await
        .expect("reconcile finishes")
        .unwrap();
    tokio::time::timeout(DEADLINE, server)
        .await
        .expect("the mock api server stops once the client is gone")
        .unwrap()
}

#[tokio::test]
async fn a_new_cluster_creates_its_objects_by_server_side_apply() {
    let admin = FakeCluster::new("cluster-1", 3);
    let (calls, state) = reconcile_new_cluster(
        cluster_object(),
        vec![(PODS_PATH.to_owned(), pod_list(vec![]))],
        &admin,
    )
    .await;
    let statefulset = format!("/apis/apps/v1{NS}/statefulsets/main");
    let secrets = format!("/api/v1{NS}/secrets");
    let mut expected = vec![
        format!("GET {statefulset}"),
        // Volumes an earlier Cluster of the name left behind, looked for before creating.
        format!("GET /api/v1{NS}/persistentvolumeclaims"),
        format!("GET {PODS_PATH}"),
        // The CAs are created (never applied over), then the certificates issued from them.
        format!("GET {secrets}/main-ca"),
        format!("POST {secrets}"),
        format!("POST {EVENTS_PATH}"),
        format!("GET {secrets}/main-clients-ca"),
        format!("POST {secrets}"),
        format!("POST {EVENTS_PATH}"),
        format!("GET {secrets}/main-broker-tls"),
        format!("PATCH {secrets}/main-broker-tls"),
        format!("POST {EVENTS_PATH}"),
        format!("GET {secrets}/main-admin-tls"),
        format!("PATCH {secrets}/main-admin-tls"),
        format!("POST {EVENTS_PATH}"),
    ];
    expected.extend(owned_paths().iter().map(|p| format!("PATCH {p}")));
    expected.push(format!("PATCH {CLUSTER_PATH}/status"));
    assert_eq!(lines(&calls), expected);
    // The brokers' Secret holds a certificate for every broker's DNS name, the CA beside it;
    // the CA's key is only in the CA's Secret.
    let broker_tls = &state.objects[&format!("{secrets}/main-broker-tls")];
    assert_eq!(broker_tls["type"], "kubernetes.io/tls");
    let ca = &state.objects[&format!("{secrets}/main-ca")];
    assert_eq!(broker_tls["data"]["ca.crt"], ca["data"]["ca.crt"]);
    // and the clients CA, whose certificates listeners with `authentication: tls` accept.
    let clients_ca = &state.objects[&format!("{secrets}/main-clients-ca")];
    assert_eq!(
        broker_tls["data"]["clients-ca.crt"],
        clients_ca["data"]["ca.crt"]
    );
    assert_ne!(clients_ca["data"]["ca.crt"], ca["data"]["ca.crt"]);
    for object in [
        broker_tls,
        &state.objects[&format!("{secrets}/main-admin-tls")],
    ] {
        assert!(object["data"].get("ca.key").is_none());
        assert_eq!(object["metadata"]["ownerReferences"][0]["uid"], "c-uid");
    }
    assert_eq!(ca["metadata"]["ownerReferences"][0]["uid"], "c-uid");
    for call in calls.iter().filter(|c| c.method == "PATCH") {
        assert_eq!(
            call.content_type, "application/apply-patch+yaml",
            "{}",
            call.path
        );
        assert!(
            call.query.contains("fieldManager=strand-operator"),
            "{}: {}",
            call.path,
            call.query
        );
        assert!(call.query.contains("force=true"), "{}", call.query);
    }
    for path in owned_paths() {
        let object = &state.objects[&path];
        assert_eq!(
            object["metadata"]["ownerReferences"][0]["uid"], "c-uid",
            "{path} is owned by the Cluster"
        );
    }
    assert_eq!(state.objects[&statefulset]["spec"]["replicas"], 3);
    let stored = &state.objects[CLUSTER_PATH];
    assert_eq!(condition(stored, "Reconciling")["status"], "True");
    assert_eq!(
        condition(stored, "Reconciling")["reason"],
        "BrokersNotReady"
    );
    assert_eq!(
        stored["status"]["bootstrapServers"],
        "main-bootstrap.default.svc:9092"
    );
}

#[tokio::test]
async fn a_cluster_with_ready_brokers_reports_them_and_is_ready() {
    let admin = FakeCluster::new("cluster-1", 3);
    let pods = pod_list((0..3).map(|i| pod(i, true)).collect());
    let (_, state) =
        reconcile_cluster(cluster_object(), vec![(PODS_PATH.to_owned(), pods)], &admin).await;
    let stored = &state.objects[CLUSTER_PATH];
    assert_eq!(condition(stored, "Ready")["status"], "True", "{stored}");
    assert_eq!(stored["status"]["readyReplicas"], 3);
    assert_eq!(stored["status"]["controllerId"], 0);
    assert_eq!(stored["status"]["brokers"][1]["pod"], "main-1");
    assert_eq!(stored["status"]["brokers"][1]["state"], "Active");
}

/// A roll under way: all brokers ready, one of three on the new template. The Cluster is not
/// Ready until every broker runs it, and says how far the roll has come.
#[tokio::test]
async fn a_cluster_whose_brokers_restart_for_a_new_template_is_not_ready_yet() {
    let admin = FakeCluster::new("cluster-1", 3);
    let pods = pod_list((0..3).map(|i| pod(i, true)).collect());
    let (path, mut set) = statefulset_of(3);
    set["metadata"]["generation"] = json!(2);
    set["status"] = json!({
        "observedGeneration": 2, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 1,
        "currentRevision": "main-old", "updateRevision": "main-new",
    });
    let objects = vec![(path.clone(), set), (PODS_PATH.to_owned(), pods)];
    let (_, state) = reconcile_cluster(cluster_object(), objects, &admin).await;
    let stored = &state.objects[CLUSTER_PATH];
    assert_eq!(condition(stored, "Ready")["status"], "False", "{stored}");
    let reconciling = condition(stored, "Reconciling");
    assert_eq!(reconciling["reason"], "RollingRestart", "{stored}");
    assert!(
        reconciling["message"]
            .as_str()
            .unwrap()
            .contains("1 of 3 done"),
        "{reconciling}"
    );

    // Once every broker runs it, the Cluster is Ready.
    let (_, mut set) = statefulset_of(3);
    set["metadata"]["generation"] = json!(2);
    set["status"] = json!({
        "observedGeneration": 2, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 3,
        "currentRevision": "main-new", "updateRevision": "main-new",
    });
    let pods = pod_list((0..3).map(|i| pod(i, true)).collect());
    let objects = vec![(path, set), (PODS_PATH.to_owned(), pods)];
    let (_, state) = reconcile_cluster(cluster_object(), objects, &admin).await;
    let stored = &state.objects[CLUSTER_PATH];
    assert_eq!(condition(stored, "Ready")["status"], "True", "{stored}");
}

fn statefulset_of(replicas: u32) -> (String, Value) {
    (
        format!("/apis/apps/v1{NS}/statefulsets/main"),
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "main", "namespace": "default"},
            "spec": {"replicas": replicas, "serviceName": "main-brokers", "selector": {},
                     "template": {"metadata": {}, "spec": {"containers": []}}},
        }),
    )
}

async fn orders_with_factor(admin: &FakeCluster, replication_factor: u32) {
    use strand_operator::admin::AdminApi;
    admin
        .create_topic(
            "",
            strand_proto::admin::CreateTopicRequest {
                name: "orders".into(),
                partitions: 6,
                replication_factor,
                config: Default::default(),
                owner: String::new(),
            },
        )
        .await
        .unwrap();
    admin.state().calls.clear();
}

#[tokio::test]
async fn a_scale_down_decommissions_then_waits_for_the_drain_then_shrinks() {
    let admin = FakeCluster::new("cluster-1", 5);
    orders_with_factor(&admin, 3).await;
    let pods = pod_list((0..5).map(|i| pod(i, true)).collect());
    let objects = vec![statefulset_of(5), (PODS_PATH.to_owned(), pods.clone())];
    let statefulset = statefulset_of(5).0;

    // First pass: brokers 3 and 4 are decommissioned; the StatefulSet keeps five pods.
    let (calls, state) = reconcile_cluster(cluster_object(), objects.clone(), &admin).await;
    assert_eq!(
        admin.state().calls,
        [AdminCall::Decommission(3), AdminCall::Decommission(4)]
    );
    assert_eq!(state.objects[&statefulset]["spec"]["replicas"], 5);
    let stored = state.objects[CLUSTER_PATH].clone();
    let reconciling = condition(&stored, "Reconciling");
    assert_eq!(reconciling["reason"], "DrainingBrokers");
    assert_eq!(
        reconciling["message"],
        "draining brokers 3, 4 before removing their pods: 8 replicas left to move"
    );
    assert_eq!(stored["status"]["brokers"][3]["state"], "Draining");
    assert_eq!(stored["status"]["brokers"][3]["replicas"], 4);
    assert_eq!(
        stored["status"]["rebalance"]["summary"],
        "2 brokers draining"
    );
    let events: Vec<&Call> = calls.iter().filter(|c| c.path == EVENTS_PATH).collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].body["reason"], "DecommissioningBroker");

    // Still draining: nothing is asked again and the size stays.
    admin
        .state()
        .broker_states
        .insert(3, ("draining".into(), 1));
    admin.state().calls.clear();
    let (_, state) = reconcile_cluster(stored.clone(), objects.clone(), &admin).await;
    assert!(admin.state().calls.is_empty(), "{:?}", admin.state().calls);
    assert_eq!(state.objects[&statefulset]["spec"]["replicas"], 5);
    let stored = state.objects[CLUSTER_PATH].clone();
    assert_eq!(
        condition(&stored, "Reconciling")["message"],
        "draining brokers 3, 4 before removing their pods: 5 replicas left to move"
    );

    // Both drained and decommissioned: only now does the StatefulSet shrink.
    for id in [3, 4] {
        admin
            .state()
            .broker_states
            .insert(id, ("decommissioned".into(), 0));
    }
    let (_, state) = reconcile_cluster(stored, objects, &admin).await;
    assert_eq!(state.objects[&statefulset]["spec"]["replicas"], 3);
    assert!(admin.state().calls.is_empty());
}

#[tokio::test]
async fn a_scale_down_below_the_largest_replication_factor_is_refused() {
    let admin = FakeCluster::new("cluster-1", 3);
    orders_with_factor(&admin, 3).await;
    let mut cluster = cluster_object();
    cluster["spec"]["replicas"] = json!(2);
    let pods = pod_list((0..3).map(|i| pod(i, true)).collect());
    let (calls, state) = reconcile_cluster(
        cluster,
        vec![statefulset_of(3), (PODS_PATH.to_owned(), pods)],
        &admin,
    )
    .await;
    assert!(admin.state().calls.is_empty(), "nothing is decommissioned");
    assert_eq!(state.objects[&statefulset_of(3).0]["spec"]["replicas"], 3);
    let stored = &state.objects[CLUSTER_PATH];
    let stalled = condition(stored, "Stalled");
    assert_eq!(stalled["status"], "True");
    assert_eq!(stalled["reason"], "ScaleDownBelowReplicationFactor");
    let event = calls.iter().find(|c| c.path == EVENTS_PATH).unwrap();
    assert_eq!(event.body["type"], "Warning");
    // The spec is never written: the Cluster object itself gets only a status patch.
    let cluster_writes: Vec<&Call> = calls
        .iter()
        .filter(|c| c.path.starts_with(CLUSTER_PATH) && c.is_write())
        .collect();
    assert_eq!(cluster_writes.len(), 1);
    assert!(cluster_writes[0].path.ends_with("/status"));
}

#[tokio::test]
async fn a_scale_down_taken_back_recommissions_the_brokers() {
    let admin = FakeCluster::new("cluster-1", 5);
    admin
        .state()
        .broker_states
        .insert(4, ("draining".into(), 2));
    let mut cluster = cluster_object();
    cluster["spec"]["replicas"] = json!(5);
    let pods = pod_list((0..5).map(|i| pod(i, true)).collect());
    let (_, state) = reconcile_cluster(
        cluster,
        vec![statefulset_of(5), (PODS_PATH.to_owned(), pods)],
        &admin,
    )
    .await;
    assert_eq!(admin.state().calls, [AdminCall::Recommission(4)]);
    assert_eq!(state.objects[&statefulset_of(5).0]["spec"]["replicas"], 5);
}

#[tokio::test]
async fn a_rack_aware_cluster_copies_the_node_rack_onto_its_pods() {
    let admin = FakeCluster::new("cluster-1", 3);
    let mut cluster = cluster_object();
    cluster["spec"]["rack"] = json!({"topologyKey": "topology.kubernetes.io/zone"});
    let mut scheduled = pod(0, false);
    scheduled["spec"] = json!({"nodeName": "node-a", "containers": []});
    let mut labelled = pod(1, false);
    labelled["spec"] = json!({"nodeName": "node-b", "containers": []});
    labelled["metadata"]["annotations"] = json!({"strand.dev/rack": "zone-b"});
    let pending = pod(2, false);
    let node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-a", "labels": {"topology.kubernetes.io/zone": "zone-a"}},
    });
    let pod_path = format!("{PODS_PATH}/main-0");
    let (calls, state) = reconcile_cluster(
        cluster,
        vec![
            (
                PODS_PATH.to_owned(),
                pod_list(vec![scheduled.clone(), labelled, pending]),
            ),
            ("/api/v1/nodes/node-a".to_owned(), node),
            (pod_path.clone(), scheduled),
        ],
        &admin,
    )
    .await;
    let rack_calls: Vec<String> = lines(&calls)
        .into_iter()
        .filter(|l| l.contains("/nodes/") || l.contains("/pods/"))
        .collect();
    assert_eq!(
        rack_calls,
        [
            "GET /api/v1/nodes/node-a".to_owned(),
            format!("PATCH {pod_path}")
        ]
    );
    assert_eq!(
        state.objects[&pod_path]["metadata"]["annotations"]["strand.dev/rack"],
        "zone-a"
    );
}

#[tokio::test]
async fn a_new_cluster_that_finds_an_earlier_clusters_volumes_starts_nothing() {
    let admin = FakeCluster::new("cluster-1", 3);
    let mut cluster = cluster_object();
    cluster["metadata"]["creationTimestamp"] = json!("2026-06-01T00:00:00Z");
    let claims = json!({
        "kind": "PersistentVolumeClaimList", "apiVersion": "v1", "metadata": {},
        "items": (0..3).map(|i| json!({
            "metadata": {
                "name": format!("data-main-{i}"), "namespace": "default",
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {"app.kubernetes.io/instance": "main"},
            },
        })).collect::<Vec<_>>(),
    });
    let claims_path = format!("/api/v1{NS}/persistentvolumeclaims");
    let (calls, state) = reconcile_cluster(
        cluster.clone(),
        vec![
            (PODS_PATH.to_owned(), pod_list(vec![])),
            (claims_path.clone(), claims.clone()),
        ],
        &admin,
    )
    .await;
    assert!(
        !calls
            .iter()
            .any(|c| c.is_write() && c.path.contains("statefulsets")),
        "no broker is started on old volumes unasked"
    );
    let stored = &state.objects[CLUSTER_PATH];
    let stalled = condition(stored, "Stalled");
    assert_eq!(stalled["reason"], "RetainedVolumes");
    let message = stalled["message"].as_str().unwrap();
    assert!(
        message.contains("data-main-0") && message.contains("adoptRetainedVolumes"),
        "{message}"
    );
    let event = calls.iter().find(|c| c.path == EVENTS_PATH).unwrap();
    assert_eq!(event.body["reason"], "RetainedVolumes");

    // Asked to adopt them, it starts the brokers and says so.
    cluster["spec"]["adoptRetainedVolumes"] = json!(true);
    let (calls, state) = reconcile_cluster(
        cluster,
        vec![
            (PODS_PATH.to_owned(), pod_list(vec![])),
            (claims_path, claims),
        ],
        &admin,
    )
    .await;
    assert!(
        state
            .objects
            .contains_key(&format!("/apis/apps/v1{NS}/statefulsets/main"))
    );
    assert!(
        calls
            .iter()
            .any(|c| c.path == EVENTS_PATH && c.body["reason"] == "AdoptedVolumes")
    );
}
