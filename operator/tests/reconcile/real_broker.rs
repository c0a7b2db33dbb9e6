//! The Topic and User reconcilers with the real admin client, `GrpcAdmin`, against one
//! in-process broker: the mock API server stands in for Kubernetes, the broker is real.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use strand_operator::admin::{AdminApi, AdminError, GrpcAdmin};
use strand_operator::context::Context;
use strand_operator::crd::{Topic, User};
use strand_operator::metrics::Metrics;
use strand_operator::{pki, topic, user};
use strand_proto::admin::{
    Acl, AclFilter, ClusterDescription, CreateTopicRequest, DeleteTopicRequest, ScramUser,
    TopicDescription, UpdateTopicRequest, UpsertScramUserRequest,
};
use strand_server::{Broker, BrokerConfig, RaftTuning};

use super::mock::{self, ApiState, Call, DEADLINE};
use super::{
    CLUSTER_PATH, EVENTS_PATH, TOPIC_PATH, cluster_object, condition, orders_spec, topic_object,
};

/// `GrpcAdmin`, sent to the test broker's address whatever the Cluster's DNS name is.
struct Redirect {
    inner: GrpcAdmin,
    to: String,
}

impl AdminApi for Redirect {
    async fn describe_cluster(&self, _: &str) -> Result<ClusterDescription, AdminError> {
        self.inner.describe_cluster(&self.to).await
    }
    async fn describe_topic(
        &self,
        _: &str,
        name: &str,
    ) -> Result<Option<TopicDescription>, AdminError> {
        self.inner.describe_topic(&self.to, name).await
    }
    async fn create_topic(
        &self,
        _: &str,
        request: CreateTopicRequest,
    ) -> Result<TopicDescription, AdminError> {
        self.inner.create_topic(&self.to, request).await
    }
    async fn update_topic(
        &self,
        _: &str,
        request: UpdateTopicRequest,
    ) -> Result<TopicDescription, AdminError> {
        self.inner.update_topic(&self.to, request).await
    }
    async fn delete_topic(&self, _: &str, request: DeleteTopicRequest) -> Result<bool, AdminError> {
        self.inner.delete_topic(&self.to, request).await
    }
    async fn list_topics(&self, _: &str) -> Result<Vec<TopicDescription>, AdminError> {
        self.inner.list_topics(&self.to).await
    }
    async fn decommission_broker(
        &self,
        _: &str,
        id: u32,
    ) -> Result<strand_proto::admin::BrokerDescription, AdminError> {
        self.inner.decommission_broker(&self.to, id).await
    }
    async fn recommission_broker(
        &self,
        _: &str,
        id: u32,
    ) -> Result<strand_proto::admin::BrokerDescription, AdminError> {
        self.inner.recommission_broker(&self.to, id).await
    }
    async fn rebalance_status(
        &self,
        _: &str,
    ) -> Result<strand_proto::admin::RebalanceProgress, AdminError> {
        self.inner.rebalance_status(&self.to).await
    }
    async fn list_acls(&self, _: &str, filter: AclFilter) -> Result<Vec<Acl>, AdminError> {
        self.inner.list_acls(&self.to, filter).await
    }
    async fn create_acls(&self, _: &str, acls: Vec<Acl>) -> Result<(), AdminError> {
        self.inner.create_acls(&self.to, acls).await
    }
    async fn delete_acls(&self, _: &str, filter: AclFilter) -> Result<Vec<Acl>, AdminError> {
        self.inner.delete_acls(&self.to, filter).await
    }
    async fn list_scram_users(&self, _: &str) -> Result<Vec<ScramUser>, AdminError> {
        self.inner.list_scram_users(&self.to).await
    }
    async fn upsert_scram_user(
        &self,
        _: &str,
        request: UpsertScramUserRequest,
    ) -> Result<(), AdminError> {
        self.inner.upsert_scram_user(&self.to, request).await
    }
    async fn delete_scram_user(&self, _: &str, user: &str) -> Result<bool, AdminError> {
        self.inner.delete_scram_user(&self.to, user).await
    }
}

fn free_addr() -> SocketAddr {
    strand_e2e::free_addr()
}

async fn one_broker(dir: &std::path::Path) -> (Broker, String) {
    let grpc = free_addr();
    let http = free_addr();
    let kafka = free_addr();
    let broker = Broker::start(BrokerConfig {
        broker_id: 0,
        data_dir: dir.join("broker-0"),
        grpc_listen: grpc,
        grpc_advertised: grpc.to_string(),
        peer_source_address: None,
        kafka_advertised: kafka.to_string(),
        kafka_listen: kafka,
        kafka: Default::default(),
        http_listen: http,
        http_advertised: http.to_string(),
        seeds: vec![grpc.to_string()],
        rack: None,
        tuning: RaftTuning::default(),
        balancing: Default::default(),
        disk_reserve_bytes: 0,
        grpc_tls: None,
        grpc_access: Default::default(),
        http_tls: None,
    })
    .await
    .expect("broker starts");
    let address = format!("http://{grpc}");
    let admin = GrpcAdmin::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(d) = admin.describe_cluster(&address).await
            && d.controller_id.is_some()
            && d.brokers.len() == 1
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the broker did not form a cluster"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (broker, address)
}

async fn reconcile(topic: Value, address: &str) -> (Vec<Call>, Option<Value>) {
    let mut state = ApiState::default();
    state.objects.insert(TOPIC_PATH.to_owned(), topic.clone());
    state
        .objects
        .insert(CLUSTER_PATH.to_owned(), cluster_object());
    let (client, server) = mock::client(state);
    let admin = Redirect {
        inner: GrpcAdmin::new(),
        to: address.to_owned(),
    };
    let ctx = Arc::new(Context::new(client, admin, Metrics::default()));
    let topic: Topic = serde_json::from_value(topic).unwrap();
    tokio::time::timeout(
        Duration::from_secs(60),
        topic::reconcile(Arc::new(topic), ctx),
    )
    .await
    .expect("reconcile finishes")
    .unwrap();
    let (calls, state) = tokio::time::timeout(DEADLINE, server)
        .await
        .unwrap()
        .unwrap();
    (calls, state.objects.get(TOPIC_PATH).cloned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_is_created_refused_and_deleted_by_a_real_broker() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, address) = one_broker(dir.path()).await;
    let grpc = GrpcAdmin::new();

    let mut spec = orders_spec();
    spec["replicationFactor"] = json!(1);
    let (_, stored) = reconcile(topic_object(spec), &address).await;
    let stored = stored.unwrap();
    let created = grpc
        .describe_topic(&address, "orders")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(created.partitions.len(), 6);
    assert_eq!(created.config["retention.ms"], "604800000");
    assert_eq!(stored["status"]["topicId"], created.topic_id.as_str());
    assert_eq!(stored["status"]["clusterId"], created.cluster_id.as_str());

    // Ready once every partition has elected its leader; until then it is Reconciling.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stored = stored;
    while condition(&stored, "Ready")["status"] != "True" {
        assert!(Instant::now() < deadline, "never ready: {stored}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        stored = reconcile(stored, &address).await.1.unwrap();
    }
    let (calls, _) = reconcile(stored.clone(), &address).await;
    assert!(!calls.iter().any(Call::is_write), "{calls:?}");

    // Three replicas on one broker: the broker refuses, the Topic stalls with its reason.
    let mut spec = orders_spec();
    spec["topicName"] = json!("payments");
    let (calls, refused) = reconcile(topic_object(spec), &address).await;
    let refused = refused.unwrap();
    let stalled = condition(&refused, "Stalled");
    assert_eq!(stalled["reason"], "NotEnoughBrokers", "{refused}");
    assert!(calls.iter().any(|c| c.path == EVENTS_PATH));
    assert!(
        grpc.describe_topic(&address, "payments")
            .await
            .unwrap()
            .is_none()
    );

    // Deleting the Topic deletes the topic.
    stored["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    let (_, gone) = reconcile(stored, &address).await;
    assert_eq!(gone.unwrap()["metadata"]["finalizers"], json!([]));
    assert!(
        grpc.describe_topic(&address, "orders")
            .await
            .unwrap()
            .is_none()
    );

    broker.shutdown().await;
}

const SECRETS_PATH: &str = "/api/v1/namespaces/default/secrets";

fn user_path(name: &str) -> String {
    format!("/apis/strand.dev/v1alpha1/namespaces/default/users/{name}")
}

fn user_object(name: &str, acls: Value) -> Value {
    json!({
        "apiVersion": "strand.dev/v1alpha1",
        "kind": "User",
        "metadata": {
            "name": name, "namespace": "default", "uid": format!("{name}-uid"), "generation": 1,
            "finalizers": [user::FINALIZER],
        },
        "spec": {
            "clusterRef": {"name": "main"},
            "authentication": {"type": "scram-sha-512"},
            "acls": acls,
        },
    })
}

/// The cluster CA's Secret, as the Cluster's reconcile leaves it.
fn ca_secret() -> Value {
    let ca = pki::new_ca(
        "default",
        "main",
        "cluster CA",
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let b64 = |text: &str| {
        serde_json::to_value(k8s_openapi::ByteString(text.as_bytes().to_vec())).unwrap()
    };
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "main-ca", "namespace": "default"},
        "data": {"ca.crt": b64(&ca.cert), "ca.key": b64(&ca.key)},
    })
}

/// Reconciles `user` once with `objects` stored besides it and the Cluster; returns the calls
/// and what the mock API server holds after.
async fn reconcile_user(
    user: Value,
    objects: &[(String, Value)],
    address: &str,
) -> (Vec<Call>, ApiState) {
    let name = user["metadata"]["name"].as_str().unwrap().to_owned();
    let mut state = ApiState::default();
    state.objects.insert(user_path(&name), user.clone());
    state
        .objects
        .insert(CLUSTER_PATH.to_owned(), cluster_object());
    state.objects.extend(objects.iter().cloned());
    let (client, server) = mock::client(state);
    let admin = Redirect {
        inner: GrpcAdmin::new(),
        to: address.to_owned(),
    };
    let ctx = Arc::new(Context::new(client, admin, Metrics::default()));
    let user: User = serde_json::from_value(user).unwrap();
    tokio::time::timeout(
        Duration::from_secs(60),
        user::reconcile(Arc::new(user), ctx),
    )
    .await
    .expect("reconcile finishes")
    .unwrap();
    tokio::time::timeout(DEADLINE, server)
        .await
        .unwrap()
        .unwrap()
}

async fn acls_of(admin: &GrpcAdmin, address: &str, principal: &str) -> Vec<(String, String)> {
    let mut acls: Vec<(String, String)> = admin
        .list_acls(
            address,
            AclFilter {
                principal: Some(principal.to_owned()),
                pattern_type: "Any".to_owned(),
                ..AclFilter::default()
            },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|acl| {
            (
                format!("{} {}", acl.resource_type, acl.resource_name),
                acl.operation,
            )
        })
        .collect();
    acls.sort();
    acls
}

async fn has_scram_user(admin: &GrpcAdmin, address: &str, name: &str) -> bool {
    admin
        .list_scram_users(address)
        .await
        .unwrap()
        .iter()
        .any(|u| u.user == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_gets_credentials_and_acls_and_is_revoked_by_a_real_broker() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, address) = one_broker(dir.path()).await;
    let grpc = GrpcAdmin::new();
    let ca = (
        "/api/v1/namespaces/default/secrets/main-ca".to_owned(),
        ca_secret(),
    );
    let rules = json!([
        {"resource": {"type": "topic", "name": "payments"}, "operations": ["Read", "Write"]},
        {"resource": {"type": "group", "name": "payments-", "patternType": "prefixed"},
         "operations": ["Read"]},
    ]);

    // Credentials in a Secret the User owns, then in the cluster; ACLs exactly as listed.
    let (_, state) = reconcile_user(
        user_object("payments-app", rules),
        std::slice::from_ref(&ca),
        &address,
    )
    .await;
    let stored = state.objects[&user_path("payments-app")].clone();
    assert_eq!(condition(&stored, "Ready")["status"], "True", "{stored}");
    assert_eq!(stored["status"]["principal"], "User:payments-app");
    // No topic payments yet: shown, not refused.
    assert_eq!(
        stored["status"]["aclsMatchingNothing"],
        json!(["topic payments (literal)"])
    );
    let secret_path = format!("{SECRETS_PATH}/payments-app");
    let secret = state.objects[&secret_path].clone();
    assert_eq!(
        secret["metadata"]["ownerReferences"][0]["uid"],
        "payments-app-uid"
    );
    assert!(secret["data"]["password"].is_string());
    assert_eq!(secret["data"]["ca.crt"], ca.1["data"]["ca.crt"]);
    assert!(has_scram_user(&grpc, &address, "payments-app").await);
    assert_eq!(
        acls_of(&grpc, &address, "User:payments-app").await,
        [
            ("Group payments-".to_owned(), "Read".to_owned()),
            ("Topic payments".to_owned(), "Read".to_owned()),
            ("Topic payments".to_owned(), "Write".to_owned()),
        ]
    );

    // Again, unchanged: the Secret is not written, and the ACLs stay.
    let with_secret = [ca.clone(), (secret_path.clone(), secret.clone())];
    let (calls, _) = reconcile_user(stored.clone(), &with_secret, &address).await;
    assert!(
        !calls
            .iter()
            .any(|c| c.is_write() && c.path.starts_with(SECRETS_PATH)),
        "{calls:?}"
    );
    // A rule removed: its ACL goes.
    let mut fewer = stored.clone();
    fewer["spec"]["acls"] = json!([
        {"resource": {"type": "topic", "name": "payments"}, "operations": ["Read"]},
    ]);
    reconcile_user(fewer, &with_secret, &address).await;
    assert_eq!(
        acls_of(&grpc, &address, "User:payments-app").await,
        [("Topic payments".to_owned(), "Read".to_owned())]
    );

    // Its Secret deleted by hand: made again, with a new password the cluster takes.
    let (calls, state) = reconcile_user(stored.clone(), std::slice::from_ref(&ca), &address).await;
    let remade = &state.objects[&secret_path];
    assert_ne!(remade["data"]["password"], secret["data"]["password"]);
    assert!(has_scram_user(&grpc, &address, "payments-app").await);
    assert!(
        calls
            .iter()
            .any(|c| c.path == EVENTS_PATH && c.body.to_string().contains("made a new password")),
        "{calls:?}"
    );
    let with_secret = [ca.clone(), (secret_path.clone(), remade.clone())];

    // A SCRAM user this User did not make is not taken over.
    grpc.upsert_scram_user(
        &address,
        UpsertScramUserRequest {
            user: "taken".to_owned(),
            mechanism: "SCRAM-SHA-512".to_owned(),
            salt: vec![1; 16].into(),
            salted_password: vec![2; 64].into(),
            iterations: 4096,
        },
    )
    .await
    .unwrap();
    let (_, state) = reconcile_user(
        user_object("taken", json!([])),
        std::slice::from_ref(&ca),
        &address,
    )
    .await;
    let taken = &state.objects[&user_path("taken")];
    assert_eq!(
        condition(taken, "Stalled")["reason"],
        "UserExists",
        "{taken}"
    );
    assert!(!state.objects.contains_key(&format!("{SECRETS_PATH}/taken")));

    // Deleting the User revokes it: no ACLs, no credential; the finalizer goes.
    let mut deleted = stored;
    deleted["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    let (_, state) = reconcile_user(deleted, &with_secret, &address).await;
    assert_eq!(
        state.objects[&user_path("payments-app")]["metadata"]["finalizers"],
        json!([])
    );
    assert!(
        acls_of(&grpc, &address, "User:payments-app")
            .await
            .is_empty()
    );
    assert!(!has_scram_user(&grpc, &address, "payments-app").await);
    assert!(has_scram_user(&grpc, &address, "taken").await);

    broker.shutdown().await;
}
