//! The fake admin server the CLI tests run against: canned topics and cluster, and an error
//! with `AdminError` details for each case the CLI must explain.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use prost::Message as _;
use strand_proto::admin::admin_server::{Admin, AdminServer};
use strand_proto::admin::{
    AdminError, BrokerDescription, BrokerDrain, ClusterDescription, CreateTopicRequest,
    DecommissionBrokerRequest, DeleteTopicRequest, DeleteTopicResponse, DescribeClusterRequest,
    DescribeTopicRequest, ErrorReason, LeaderTransfer, ListTopicsRequest, ListTopicsResponse,
    PartitionDescription, RebalancePlan, RebalanceProgress, RebalanceRequest,
    RebalanceStatusRequest, RecommissionBrokerRequest, ReplicaMove, TopicDescription,
    TransferLeadershipRequest, UpdateTopicRequest,
};
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Request, Response, Status};

/// The admin service as a test double: a fixed cluster with the topics `orders` and
/// `payments`, and an error with `AdminError` details for each case the CLI must explain.
struct FakeAdmin {
    calls: Arc<AtomicUsize>,
}

fn admin_error(code: Code, error: AdminError) -> Status {
    Status::with_details(code, error.message.clone(), error.encode_to_vec().into())
}

fn unknown_topic(name: &str) -> Status {
    admin_error(
        Code::NotFound,
        AdminError {
            reason: ErrorReason::UnknownTopic.into(),
            message: format!("unknown topic `{name}`"),
            ..AdminError::default()
        },
    )
}

fn partition(partition: u32, leader: Option<u32>, replicas: Vec<u32>) -> PartitionDescription {
    PartitionDescription {
        partition,
        replicas,
        leader,
        high_watermark: 100 * i64::from(partition) + 42,
        log_start_offset: i64::from(partition),
        leaving: vec![],
    }
}

/// `orders`: three partitions, returned out of order, the last without a leader; managed by
/// a Topic resource.
fn orders() -> TopicDescription {
    TopicDescription {
        name: "orders".into(),
        topic_id: "6f1c0e2a-0000-4000-8000-000000000001".into(),
        cluster_id: "test-cluster".into(),
        replication_factor: 3,
        config: HashMap::from([
            ("retention.ms".to_owned(), "86400000".to_owned()),
            ("cleanup.policy".to_owned(), "delete".to_owned()),
        ]),
        partitions: vec![
            partition(1, Some(2), vec![2, 3, 1]),
            partition(0, Some(1), vec![1, 2, 3]),
            partition(2, None, vec![3, 1, 2]),
        ],
        owner: "strand.dev/Topic/shop/orders/0b5e7f2c".into(),
        internal: false,
    }
}

fn payments() -> TopicDescription {
    TopicDescription {
        name: "payments".into(),
        topic_id: "6f1c0e2a-0000-4000-8000-000000000002".into(),
        cluster_id: "test-cluster".into(),
        replication_factor: 1,
        config: HashMap::new(),
        partitions: vec![partition(0, Some(1), vec![1])],
        owner: String::new(),
        internal: false,
    }
}

fn consumer_offsets() -> TopicDescription {
    TopicDescription {
        name: "__consumer_offsets".into(),
        topic_id: "6f1c0e2a-0000-4000-8000-000000000004".into(),
        cluster_id: "test-cluster".into(),
        replication_factor: 1,
        config: HashMap::from([("cleanup.policy".to_owned(), "compact".to_owned())]),
        partitions: vec![partition(0, Some(1), vec![1])],
        owner: String::new(),
        internal: true,
    }
}

fn internal_topic(what: &str) -> Status {
    admin_error(
        Code::FailedPrecondition,
        AdminError {
            reason: ErrorReason::InternalTopic.into(),
            message: format!("`__consumer_offsets` is an internal topic: it cannot be {what}"),
            ..AdminError::default()
        },
    )
}

fn broker(broker_id: u32, rack: Option<&str>, alive: bool) -> BrokerDescription {
    BrokerDescription {
        broker_id,
        node_id: 1000 + u64::from(broker_id),
        state: if alive { "active" } else { "draining" }.into(),
        kafka_address: format!("broker-{broker_id}.strand:9092"),
        grpc_address: format!("broker-{broker_id}.strand:9093"),
        rack: rack.map(str::to_owned),
        leader_count: broker_id + 1,
        replica_count: 3,
        alive,
        leaving_count: u32::from(!alive),
    }
}

#[tonic::async_trait]
impl Admin for FakeAdmin {
    async fn create_topic(
        &self,
        request: Request<CreateTopicRequest>,
    ) -> Result<Response<TopicDescription>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let request = request.into_inner();
        if request.name == "orders" {
            return Err(admin_error(
                Code::AlreadyExists,
                AdminError {
                    reason: ErrorReason::TopicExists.into(),
                    message: "topic `orders` already exists".into(),
                    ..AdminError::default()
                },
            ));
        }
        if request.name == "elsewhere" {
            return Err(admin_error(
                Code::FailedPrecondition,
                AdminError {
                    reason: ErrorReason::NotController.into(),
                    message: "broker 0 is not the controller".into(),
                    controller_id: Some(2),
                    controller_address: "broker-2.strand:9093".into(),
                    ..AdminError::default()
                },
            ));
        }
        if request.config.contains_key("retention.bogus") {
            return Err(admin_error(
                Code::InvalidArgument,
                AdminError {
                    reason: ErrorReason::InvalidConfig.into(),
                    message: "unknown topic config `retention.bogus`".into(),
                    config_key: "retention.bogus".into(),
                    ..AdminError::default()
                },
            ));
        }
        // Echo the request, so tests see how the CLI filled it in.
        let replicas: Vec<u32> = (1..=request.replication_factor).collect();
        Ok(Response::new(TopicDescription {
            name: request.name,
            topic_id: "6f1c0e2a-0000-4000-8000-000000000003".into(),
            cluster_id: "test-cluster".into(),
            replication_factor: request.replication_factor,
            config: request.config,
            partitions: (0..request.partitions)
                .map(|p| PartitionDescription {
                    partition: p,
                    replicas: replicas.clone(),
                    leader: Some(1),
                    high_watermark: 0,
                    log_start_offset: 0,
                    leaving: vec![],
                })
                .collect(),
            owner: request.owner,
            internal: false,
        }))
    }

    async fn delete_topic(
        &self,
        request: Request<DeleteTopicRequest>,
    ) -> Result<Response<DeleteTopicResponse>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let name = request.into_inner().name;
        if name == "__consumer_offsets" {
            return Err(internal_topic("deleted"));
        }
        Ok(Response::new(DeleteTopicResponse {
            deleted: name == "orders",
        }))
    }

    async fn update_topic(
        &self,
        request: Request<UpdateTopicRequest>,
    ) -> Result<Response<TopicDescription>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let request = request.into_inner();
        if request.name == "__consumer_offsets" {
            return Err(internal_topic("re-partitioned"));
        }
        if request.name == "claimed" {
            // What a caller naming another expected owner gets.
            return Err(admin_error(
                Code::FailedPrecondition,
                AdminError {
                    reason: ErrorReason::NotOwner.into(),
                    message: "topic `claimed` is managed by strand.dev/Topic/ns/a/uid1, not by strand.dev/Topic/ns/b/uid2".into(),
                    ..AdminError::default()
                },
            ));
        }
        if request.name != "orders" {
            return Err(unknown_topic(&request.name));
        }
        let mut topic = orders();
        for p in 3..request.partitions.unwrap_or(3) {
            topic.partitions.push(partition(p, Some(1), vec![1, 2, 3]));
        }
        topic.config.extend(request.set_config);
        for key in &request.remove_config {
            topic.config.remove(key);
        }
        Ok(Response::new(topic))
    }

    async fn describe_topic(
        &self,
        request: Request<DescribeTopicRequest>,
    ) -> Result<Response<TopicDescription>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match request.into_inner().name.as_str() {
            "orders" => Ok(Response::new(orders())),
            "__consumer_offsets" => Ok(Response::new(consumer_offsets())),
            // A failure outside the admin API's typed errors: no details.
            "broken" => Err(Status::internal(
                "storage of partition broken-0 is unreadable",
            )),
            name => Err(unknown_topic(name)),
        }
    }

    async fn list_topics(
        &self,
        _request: Request<ListTopicsRequest>,
    ) -> Result<Response<ListTopicsResponse>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(ListTopicsResponse {
            topics: vec![payments(), orders()],
        }))
    }

    async fn describe_cluster(
        &self,
        _request: Request<DescribeClusterRequest>,
    ) -> Result<Response<ClusterDescription>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(ClusterDescription {
            cluster_id: "test-cluster".into(),
            controller_id: Some(1),
            brokers: vec![
                broker(2, None, false),
                broker(0, Some("zone-a"), true),
                broker(1, Some("zone-b"), true),
            ],
            under_replicated_partitions: 1,
            leaderless_partitions: 1,
        }))
    }

    async fn decommission_broker(
        &self,
        request: Request<DecommissionBrokerRequest>,
    ) -> Result<Response<BrokerDescription>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match request.into_inner().broker_id {
            2 => Ok(Response::new(broker(2, None, false))),
            id => Err(admin_error(
                Code::NotFound,
                AdminError {
                    reason: ErrorReason::UnknownBroker.into(),
                    message: format!("no broker {id} is registered in this cluster"),
                    ..AdminError::default()
                },
            )),
        }
    }

    async fn recommission_broker(
        &self,
        request: Request<RecommissionBrokerRequest>,
    ) -> Result<Response<BrokerDescription>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(broker(
            request.into_inner().broker_id,
            None,
            true,
        )))
    }

    /// A plan moving one replica of `orders`/2 from broker 2 to broker 0.
    async fn rebalance(
        &self,
        _request: Request<RebalanceRequest>,
    ) -> Result<Response<RebalancePlan>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(RebalancePlan {
            moves: vec![ReplicaMove {
                topic: "orders".into(),
                partition: 2,
                from: vec![3, 1, 2],
                to: vec![3, 1, 0],
                bytes: 4096,
            }],
            leader_transfers: vec![LeaderTransfer {
                topic: "orders".into(),
                partition: 2,
                from: None,
                to: 3,
            }],
            bytes_to_move: 4096,
        }))
    }

    /// Broker 2 draining with one replica left; nothing else moving.
    async fn rebalance_status(
        &self,
        _request: Request<RebalanceStatusRequest>,
    ) -> Result<Response<RebalanceProgress>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(RebalanceProgress {
            draining: vec![BrokerDrain {
                broker_id: 2,
                replicas_left: 1,
                blocked: String::new(),
            }],
            summary: "broker 2 draining: 1 replica left".into(),
            ..RebalanceProgress::default()
        }))
    }

    async fn transfer_leadership(
        &self,
        _request: Request<TransferLeadershipRequest>,
    ) -> Result<Response<TopicDescription>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(orders()))
    }

    // The security calls are tested against real brokers (`broker/server/tests/security.rs`).
    async fn create_acls(
        &self,
        _request: Request<strand_proto::admin::CreateAclsRequest>,
    ) -> Result<Response<strand_proto::admin::CreateAclsResponse>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }

    async fn list_acls(
        &self,
        _request: Request<strand_proto::admin::ListAclsRequest>,
    ) -> Result<Response<strand_proto::admin::ListAclsResponse>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }

    async fn delete_acls(
        &self,
        _request: Request<strand_proto::admin::DeleteAclsRequest>,
    ) -> Result<Response<strand_proto::admin::DeleteAclsResponse>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }

    async fn upsert_scram_user(
        &self,
        _request: Request<strand_proto::admin::UpsertScramUserRequest>,
    ) -> Result<Response<strand_proto::admin::ScramUser>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }

    async fn list_scram_users(
        &self,
        _request: Request<strand_proto::admin::ListScramUsersRequest>,
    ) -> Result<Response<strand_proto::admin::ListScramUsersResponse>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }

    async fn delete_scram_user(
        &self,
        _request: Request<strand_proto::admin::DeleteScramUserRequest>,
    ) -> Result<Response<strand_proto::admin::DeleteScramUserResponse>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }
}

/// A running fake admin server; it stops when this is dropped.
pub struct FakeServer {
    /// Its address as HOST:PORT, for `--server`.
    pub address: String,
    calls: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

impl FakeServer {
    /// Starts a server on a free port of 127.0.0.1, on a runtime of its own so the tests can
    /// run the binary with blocking calls.
    pub fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        // Bound before the binary runs, so its connection waits in the backlog if the server
        // task has not started accepting yet.
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let address: SocketAddr = listener.local_addr().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let service = AdminServer::new(FakeAdmin {
            calls: Arc::clone(&calls),
        });
        runtime.spawn(
            Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpIncoming::from(listener)),
        );
        Self {
            address: address.to_string(),
            calls,
            _runtime: runtime,
        }
    }

    /// How many calls the server has answered.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}
