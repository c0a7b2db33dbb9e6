//! Reconcile tests against a mock API server (tower-test) and a fake Strand cluster behind the
//! admin trait: what the reconcilers write to Kubernetes and ask of the cluster.

mod cluster;
mod mock;
mod real_broker;

use std::sync::Arc;

use kube::runtime::controller::Action;
use serde_json::{Value, json};
use strand_operator::context::{Context, Error};
use strand_operator::crd::Topic;
use strand_operator::metrics::Metrics;
use strand_operator::topic;

use mock::{AdminCall, ApiState, Call, DEADLINE, FakeCluster};

const CLUSTER_PATH: &str = "/apis/strand.dev/v1alpha1/namespaces/default/clusters/main";
const TOPIC_PATH: &str = "/apis/strand.dev/v1alpha1/namespaces/default/topics/orders";
const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/default/events";
const ADMIN_TLS_PATH: &str = "/api/v1/namespaces/default/secrets/main-admin-tls";

fn cluster_object() -> Value {
    json!({
        "apiVersion": "strand.dev/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": "main", "namespace": "default", "uid": "c-uid", "generation": 1},
        "spec": {"replicas": 3, "image": "strand:test", "storage": {"size": "1Gi"}},
    })
}

fn topic_object(spec: Value) -> Value {
    json!({
        "apiVersion": "strand.dev/v1alpha1",
        "kind": "Topic",
        "metadata": {
            "name": "orders", "namespace": "default", "uid": "t-uid", "generation": 1,
            "finalizers": [topic::FINALIZER],
        },
        "spec": spec,
    })
}

fn orders_spec() -> Value {
    json!({
        "clusterRef": {"name": "main"},
        "partitions": 6,
        "replicationFactor": 3,
        "config": {"retention.ms": 604800000},
    })
}

/// Runs one Topic reconcile against the mock API server holding `objects` and the fake
/// cluster; returns the result, the calls the API server saw, and the stored Topic after.
async fn reconcile_topic(
    topic: Value,
    objects: Vec<(&str, Value)>,
    admin: &FakeCluster,
) -> (Result<Action, Error>, Vec<Call>, Option<Value>) {
    let mut state = ApiState::default();
    state.objects.insert(TOPIC_PATH.to_owned(), topic.clone());
    for (path, object) in objects {
        state.objects.insert(path.to_owned(), object);
    }
    let (client, server) = mock::client(state);
    let ctx = Arc::new(Context::new(client, admin.clone(), Metrics::default()));
    let topic: Topic = serde_json::from_value(topic).unwrap();
    let result = tokio::time::timeout(DEADLINE, topic::reconcile(Arc::new(topic), ctx))
        .await
        .expect("reconcile finishes");
    let (calls, state) = tokio::time::timeout(DEADLINE, server)
        .await
        .expect("the mock api server stops once the client is gone")
        .unwrap();
    (result, calls, state.objects.get(TOPIC_PATH).cloned())
}

fn lines(calls: &[Call]) -> Vec<String> {
    calls.iter().map(Call::line).collect()
}

fn condition<'a>(topic: &'a Value, type_: &str) -> &'a Value {
    topic["status"]["conditions"]
        .as_array()
        .and_then(|conditions| conditions.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {topic}"))
}

#[tokio::test]
async fn a_topic_is_created_through_the_admin_api_and_reaches_ready() {
    let admin = FakeCluster::new("cluster-1", 3);
    let (result, calls, stored) = reconcile_topic(
        topic_object(orders_spec()),
        vec![(CLUSTER_PATH, cluster_object())],
        &admin,
    )
    .await;
    result.unwrap();
    assert_eq!(admin.state().calls, [AdminCall::Create("orders".into())]);
    let created = admin.state().topics["orders"].clone();
    assert_eq!(created.partitions.len(), 6);
    assert_eq!(created.config["retention.ms"], "604800000");

    assert_eq!(
        lines(&calls),
        [
            format!("GET {CLUSTER_PATH}"),
            // The admin certificate, which the admin calls present.
            format!("GET {ADMIN_TLS_PATH}"),
            format!("POST {EVENTS_PATH}"),
            format!("PATCH {TOPIC_PATH}/status"),
        ]
    );
    let patch = &calls[3];
    assert_eq!(patch.content_type, "application/apply-patch+yaml");
    assert!(
        patch.query.contains("fieldManager=strand-operator"),
        "{}",
        patch.query
    );
    assert!(
        patch.body.get("spec").is_none(),
        "the operator never writes spec"
    );
    let stored = stored.unwrap();
    assert_eq!(condition(&stored, "Ready")["status"], "True");
    assert_eq!(condition(&stored, "Ready")["observedGeneration"], 1);
    assert_eq!(condition(&stored, "Stalled")["status"], "False");
    assert_eq!(stored["status"]["clusterId"], "cluster-1");
    assert_eq!(stored["status"]["topicId"], "id-orders");
    assert_eq!(stored["status"]["partitions"], 6);
    assert_eq!(calls[2].body["reason"], "Created");
}

#[tokio::test]
async fn an_unchanged_topic_reconciled_twice_makes_no_write_the_second_time() {
    let admin = FakeCluster::new("cluster-1", 3);
    let cluster = vec![(CLUSTER_PATH, cluster_object())];
    let (first, _, stored) =
        reconcile_topic(topic_object(orders_spec()), cluster.clone(), &admin).await;
    first.unwrap();
    let (second, calls, _) = reconcile_topic(stored.unwrap(), cluster, &admin).await;
    second.unwrap();
    assert_eq!(
        lines(&calls),
        [
            format!("GET {CLUSTER_PATH}"),
            format!("GET {ADMIN_TLS_PATH}")
        ]
    );
    assert!(!calls.iter().any(Call::is_write));
    assert_eq!(admin.state().calls, [AdminCall::Create("orders".into())]);
}

#[tokio::test]
async fn an_edited_topic_gets_partitions_and_config_through_one_update() {
    let admin = FakeCluster::new("cluster-1", 3);
    let cluster = vec![(CLUSTER_PATH, cluster_object())];
    let (first, _, stored) =
        reconcile_topic(topic_object(orders_spec()), cluster.clone(), &admin).await;
    first.unwrap();
    let mut edited = stored.unwrap();
    edited["spec"]["partitions"] = json!(12);
    edited["spec"]["config"] = json!({"retention.ms": 86400000});
    edited["metadata"]["generation"] = json!(2);
    let (second, calls, stored) = reconcile_topic(edited, cluster, &admin).await;
    second.unwrap();
    assert_eq!(
        admin.state().calls,
        [
            AdminCall::Create("orders".into()),
            AdminCall::Update("orders".into())
        ]
    );
    assert_eq!(admin.state().topics["orders"].partitions.len(), 12);
    let event = calls.iter().find(|c| c.path == EVENTS_PATH).unwrap();
    assert_eq!(
        event.body["note"],
        "orders: partitions 6 → 12, retention.ms 604800000 → 86400000"
    );
    let stored = stored.unwrap();
    assert_eq!(stored["status"]["partitions"], 12);
    assert_eq!(condition(&stored, "Ready")["observedGeneration"], 2);
}

#[tokio::test]
async fn a_replication_factor_edit_moves_replicas_and_reports_progress() {
    let admin = FakeCluster::new("cluster-1", 3);
    let cluster = vec![(CLUSTER_PATH, cluster_object())];
    let (first, _, stored) =
        reconcile_topic(topic_object(orders_spec()), cluster.clone(), &admin).await;
    first.unwrap();
    let mut edited = stored.unwrap();
    edited["spec"]["replicationFactor"] = json!(1);
    edited["metadata"]["generation"] = json!(2);
    let (second, calls, stored) = reconcile_topic(edited, cluster.clone(), &admin).await;
    second.unwrap();
    assert_eq!(
        admin.state().calls.last(),
        Some(&AdminCall::Update("orders".into()))
    );
    let event = calls.iter().find(|c| c.path == EVENTS_PATH).unwrap();
    assert_eq!(event.body["note"], "orders: replication factor 3 → 1");
    let stored = stored.unwrap();
    let reconciling = condition(&stored, "Reconciling");
    assert_eq!(reconciling["status"], "True");
    assert_eq!(reconciling["reason"], "ReplicasMoving");
    assert_eq!(
        stored["status"]["replicaChange"],
        json!({"from": 3, "to": 1, "partitionsDone": 0})
    );

    // The cluster has moved the replicas: Ready, and the progress is gone.
    for p in &mut admin.state().topics.get_mut("orders").unwrap().partitions {
        p.replicas.truncate(1);
    }
    let (third, _, stored) = reconcile_topic(stored, cluster, &admin).await;
    third.unwrap();
    let stored = stored.unwrap();
    assert_eq!(condition(&stored, "Ready")["status"], "True");
    assert!(stored["status"].get("replicaChange").is_none(), "{stored}");
}

#[tokio::test]
async fn an_invalid_topic_is_stalled_with_the_reason_and_an_event() {
    let admin = FakeCluster::new("cluster-1", 3);
    let mut spec = orders_spec();
    spec["topicName"] = json!("__orders");
    let (result, calls, stored) = reconcile_topic(
        topic_object(spec),
        vec![(CLUSTER_PATH, cluster_object())],
        &admin,
    )
    .await;
    result.unwrap();
    assert!(admin.state().calls.is_empty(), "nothing is created");
    let stored = stored.unwrap();
    let stalled = condition(&stored, "Stalled");
    assert_eq!(stalled["status"], "True");
    assert_eq!(stalled["reason"], "InvalidTopicName");
    assert!(
        stalled["message"]
            .as_str()
            .unwrap()
            .contains("spec.topicName"),
        "{stalled}"
    );
    assert_eq!(condition(&stored, "Ready")["status"], "False");
    let event = calls.iter().find(|c| c.path == EVENTS_PATH).unwrap();
    assert_eq!(event.body["type"], "Warning");
    assert_eq!(event.body["reason"], "InvalidTopicName");
}

#[tokio::test]
async fn a_topic_the_cluster_refuses_is_stalled_and_warns_once() {
    let admin = FakeCluster::new("cluster-1", 1);
    let cluster = vec![(CLUSTER_PATH, cluster_object())];
    let (result, calls, stored) =
        reconcile_topic(topic_object(orders_spec()), cluster.clone(), &admin).await;
    result.unwrap();
    let stored = stored.unwrap();
    assert_eq!(condition(&stored, "Stalled")["reason"], "NotEnoughBrokers");
    assert_eq!(calls.iter().filter(|c| c.path == EVENTS_PATH).count(), 1);
    // Still refused: the same condition, so no second Event and no status write.
    let (again, calls, _) = reconcile_topic(stored, cluster, &admin).await;
    again.unwrap();
    assert_eq!(
        lines(&calls),
        [
            format!("GET {CLUSTER_PATH}"),
            format!("GET {ADMIN_TLS_PATH}")
        ]
    );
}

fn deleted(mut topic: Value, status: Value) -> Value {
    topic["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    topic["status"] = status;
    topic
}

fn created_status() -> Value {
    json!({"clusterId": "cluster-1", "topicId": "id-orders", "partitions": 6})
}

async fn existing_orders(admin: &FakeCluster) {
    use strand_operator::admin::AdminApi;
    admin
        .create_topic(
            "",
            strand_proto::admin::CreateTopicRequest {
                name: "orders".into(),
                partitions: 6,
                replication_factor: 3,
                config: Default::default(),
                // Made by the test's Topic earlier.
                owner: "strand.dev/Topic/default/orders/t-uid".into(),
            },
        )
        .await
        .unwrap();
    admin.state().calls.clear();
}

#[tokio::test]
async fn a_deleted_retain_topic_leaves_the_topic_and_drops_the_finalizer() {
    let admin = FakeCluster::new("cluster-1", 3);
    existing_orders(&admin).await;
    let mut spec = orders_spec();
    spec["deletionPolicy"] = json!("Retain");
    let topic = deleted(topic_object(spec), created_status());
    let (result, calls, stored) =
        reconcile_topic(topic, vec![(CLUSTER_PATH, cluster_object())], &admin).await;
    result.unwrap();
    assert!(admin.state().calls.is_empty(), "no DeleteTopic");
    assert!(admin.state().topics.contains_key("orders"));
    assert_eq!(lines(&calls), [format!("PATCH {TOPIC_PATH}")]);
    assert_eq!(calls[0].content_type, "application/json-patch+json");
    assert_eq!(stored.unwrap()["metadata"]["finalizers"], json!([]));
}

#[tokio::test]
async fn a_deleted_topic_is_deleted_in_its_cluster() {
    let admin = FakeCluster::new("cluster-1", 3);
    existing_orders(&admin).await;
    let topic = deleted(topic_object(orders_spec()), created_status());
    let (result, calls, stored) =
        reconcile_topic(topic, vec![(CLUSTER_PATH, cluster_object())], &admin).await;
    result.unwrap();
    assert_eq!(admin.state().calls, [AdminCall::Delete("orders".into())]);
    assert_eq!(
        lines(&calls),
        [
            format!("GET {CLUSTER_PATH}"),
            format!("GET {ADMIN_TLS_PATH}"),
            format!("PATCH {TOPIC_PATH}")
        ]
    );
    assert_eq!(stored.unwrap()["metadata"]["finalizers"], json!([]));
}

#[tokio::test]
async fn a_topic_whose_cluster_is_gone_loses_its_finalizer() {
    let admin = FakeCluster::new("cluster-1", 3);
    existing_orders(&admin).await;
    let topic = deleted(topic_object(orders_spec()), created_status());
    let (result, calls, stored) = reconcile_topic(topic, vec![], &admin).await;
    result.unwrap();
    assert!(admin.state().calls.is_empty());
    assert_eq!(
        lines(&calls),
        [format!("GET {CLUSTER_PATH}"), format!("PATCH {TOPIC_PATH}")]
    );
    assert_eq!(stored.unwrap()["metadata"]["finalizers"], json!([]));
}

#[tokio::test]
async fn a_topic_of_a_recreated_cluster_is_stalled_not_recreated() {
    let admin = FakeCluster::new("cluster-2", 3);
    let mut topic = topic_object(orders_spec());
    topic["status"] = created_status();
    let (result, _, stored) =
        reconcile_topic(topic, vec![(CLUSTER_PATH, cluster_object())], &admin).await;
    result.unwrap();
    assert!(admin.state().calls.is_empty());
    let stored = stored.unwrap();
    assert_eq!(condition(&stored, "Stalled")["reason"], "ClusterIdChanged");
    assert_eq!(stored["status"]["clusterId"], "cluster-1");
}

#[tokio::test]
async fn a_topic_without_its_cluster_is_stalled() {
    let admin = FakeCluster::new("cluster-1", 3);
    let (result, _, stored) = reconcile_topic(topic_object(orders_spec()), vec![], &admin).await;
    result.unwrap();
    let stored = stored.unwrap();
    assert_eq!(condition(&stored, "Stalled")["reason"], "ClusterNotFound");
}

#[tokio::test]
async fn a_paused_topic_says_so_and_changes_nothing() {
    let admin = FakeCluster::new("cluster-1", 3);
    let mut topic = topic_object(orders_spec());
    topic["metadata"]["annotations"] = json!({"strand.dev/paused": "true"});
    let (result, calls, stored) =
        reconcile_topic(topic, vec![(CLUSTER_PATH, cluster_object())], &admin).await;
    result.unwrap();
    assert_eq!(lines(&calls), [format!("PATCH {TOPIC_PATH}/status")]);
    assert!(admin.state().calls.is_empty());
    let stored = stored.unwrap();
    assert_eq!(condition(&stored, "Paused")["status"], "True");
    assert_eq!(stored["metadata"]["finalizers"], json!([topic::FINALIZER]));
}

/// A topic made outside Kubernetes (by a Kafka client or `strand topic create`).
async fn unowned(admin: &FakeCluster, name: &str, owner: &str) {
    use strand_operator::admin::AdminApi;
    admin
        .create_topic(
            "",
            strand_proto::admin::CreateTopicRequest {
                name: name.into(),
                partitions: 2,
                replication_factor: 3,
                config: [("retention.ms".to_owned(), "1000".to_owned())].into(),
                owner: owner.into(),
            },
        )
        .await
        .unwrap();
    admin.state().calls.clear();
}

/// Reconciles the test's Topic against an existing `orders` owned by `owner`, checks the
/// topic was left exactly as it was, and returns the stored Topic.
async fn reconcile_against_existing(owner: &str) -> Value {
    let admin = FakeCluster::new("cluster-1", 3);
    unowned(&admin, "orders", owner).await;
    let before = admin.state().topics["orders"].clone();
    let (result, _, stored) = reconcile_topic(
        topic_object(orders_spec()),
        vec![(CLUSTER_PATH, cluster_object())],
        &admin,
    )
    .await;
    result.unwrap();
    assert!(admin.state().calls.is_empty(), "no call changed the topic");
    assert_eq!(admin.state().topics["orders"], before);
    stored.unwrap()
}

#[tokio::test]
async fn a_topic_that_exists_unowned_is_stalled_and_untouched() {
    let stored = reconcile_against_existing("").await;
    let stalled = condition(&stored, "Stalled");
    assert_eq!(stalled["reason"], "TopicNotOwned");
    assert!(stalled["message"].as_str().unwrap().contains("spec.adopt"));
    assert!(
        stored["status"]["topicId"].is_null(),
        "the Topic did not bind to it"
    );
    assert!(stored["status"]["clusterId"].is_null());
}

#[tokio::test]
async fn deleting_a_topic_that_never_bound_deletes_nothing() {
    let admin = FakeCluster::new("cluster-1", 3);
    unowned(&admin, "orders", "").await;
    // Stalled on the unowned topic, then deleted.
    let (result, _, stored) = reconcile_topic(
        topic_object(orders_spec()),
        vec![(CLUSTER_PATH, cluster_object())],
        &admin,
    )
    .await;
    result.unwrap();
    let mut topic = stored.unwrap();
    topic["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    topic["metadata"]["finalizers"] = json!(["strand.dev/topic"]);
    let (result, _, _) =
        reconcile_topic(topic, vec![(CLUSTER_PATH, cluster_object())], &admin).await;
    result.unwrap();
    assert!(admin.state().topics.contains_key("orders"));
    assert!(
        !admin
            .state()
            .calls
            .contains(&AdminCall::Delete("orders".into()))
    );
}

#[tokio::test]
async fn deleting_a_topic_whose_topic_changed_owner_leaves_it() {
    let admin = FakeCluster::new("cluster-1", 3);
    // Bound once (status), but the topic is another Topic's now.
    unowned(&admin, "orders", "strand.dev/Topic/other/orders/x-uid").await;
    let topic = deleted(topic_object(orders_spec()), created_status());
    let (result, _, stored) =
        reconcile_topic(topic, vec![(CLUSTER_PATH, cluster_object())], &admin).await;
    result.unwrap();
    assert!(admin.state().topics.contains_key("orders"), "not deleted");
    assert_eq!(stored.unwrap()["metadata"]["finalizers"], json!([]));
}

#[tokio::test]
async fn a_second_topic_for_one_topic_is_stalled_naming_the_first() {
    let stored = reconcile_against_existing("strand.dev/Topic/team-a/orders/first-uid").await;
    let stalled = condition(&stored, "Stalled");
    assert_eq!(stalled["reason"], "TopicOwnedByAnotherTopic");
    assert!(
        stalled["message"]
            .as_str()
            .unwrap()
            .contains("team-a/orders"),
        "{stalled}"
    );
}

#[tokio::test]
async fn adopting_an_unowned_topic_takes_it_over() {
    let admin = FakeCluster::new("cluster-1", 3);
    unowned(&admin, "orders", "").await;
    let mut spec = orders_spec();
    spec["adopt"] = json!(true);
    let (result, _, stored) = reconcile_topic(
        topic_object(spec),
        vec![(CLUSTER_PATH, cluster_object())],
        &admin,
    )
    .await;
    result.unwrap();
    assert_eq!(admin.state().calls, [AdminCall::Update("orders".into())]);
    assert_eq!(
        admin.state().topics["orders"].owner,
        "strand.dev/Topic/default/orders/t-uid"
    );
    let stored = stored.unwrap();
    assert!(stored["status"]["topicId"].is_string());
}
