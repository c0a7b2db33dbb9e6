//! The Topic reconciler with the real admin client, `GrpcAdmin`, against one in-process
//! broker: the mock API server stands in for Kubernetes, the broker is real.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use strand_operator::admin::{AdminApi, AdminError, GrpcAdmin};
use strand_operator::context::Context;
use strand_operator::crd::Topic;
use strand_operator::metrics::Metrics;
use strand_operator::topic;
use strand_proto::admin::{
    ClusterDescription, CreateTopicRequest, DeleteTopicRequest, TopicDescription,
    UpdateTopicRequest,
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
