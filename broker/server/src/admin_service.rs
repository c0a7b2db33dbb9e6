//! The admin API (`strand.admin.v1`): served by the controller; any other broker passes calls
//! on to it, so a client may use any broker's address.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use strand_meta::{
    BrokerId, BrokerState, Command, PartitionId, Topic, TopicId, TopicKind, place_new_partitions,
    validate_topic_config,
};
use strand_proto::admin as pb;
use strand_proto::admin::ErrorReason;
use strand_proto::admin::admin_client::AdminClient;
use strand_proto::admin::admin_server::Admin;
use strand_proto::broker::HelloRequest;
use strand_proto::broker::broker_client::BrokerClient;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::broker::{Inner, now_ms};
use crate::controller::partition_views;
use crate::meta::{Outcome, Refusal};
use crate::registry::partition_group;

/// How long a metadata change may wait for a controller.
const PATIENCE: Duration = Duration::from_secs(10);
/// How long a new topic's description waits for its partitions to have leaders.
const LEADER_WAIT: Duration = Duration::from_secs(5);
/// How long TransferLeadership waits for the new leader to be reported.
const TRANSFER_WAIT: Duration = Duration::from_secs(10);

/// Turns a refusal into a status carrying an `AdminError`: the one place this mapping lives.
pub fn status_of(refusal: Refusal) -> Status {
    let reason = ErrorReason::try_from(refusal.reason).unwrap_or(ErrorReason::Unspecified);
    let code = match reason {
        ErrorReason::TopicExists => tonic::Code::AlreadyExists,
        ErrorReason::UnknownTopic | ErrorReason::UnknownBroker | ErrorReason::UnknownPartition => {
            tonic::Code::NotFound
        }
        // The topic's owner or kind forbids the change: the request is well formed, the
        // topic is not in the state it needs.
        ErrorReason::BrokerState | ErrorReason::NotOwner | ErrorReason::InternalTopic => {
            tonic::Code::FailedPrecondition
        }
        ErrorReason::InvalidTopicName
        | ErrorReason::InvalidConfig
        | ErrorReason::InvalidPartitions
        | ErrorReason::InvalidReplicationFactor => tonic::Code::InvalidArgument,
        ErrorReason::NotEnoughBrokers => tonic::Code::FailedPrecondition,
        ErrorReason::NotController | ErrorReason::Unavailable => tonic::Code::Unavailable,
        ErrorReason::Unspecified => tonic::Code::FailedPrecondition,
    };
    let details = pb::AdminError {
        reason: refusal.reason,
        message: refusal.message.clone(),
        controller_id: None,
        controller_address: String::new(),
        config_key: refusal.config_key.unwrap_or_default(),
    };
    Status::with_details(code, refusal.message, details.encode_to_vec().into())
}

/// The admin service of one broker.
pub struct AdminService {
    inner: Arc<Inner>,
}

enum Route {
    Here,
    Controller(AdminClient<Channel>),
}

impl AdminService {
    /// The service of the broker `inner`.
    pub fn new(inner: Arc<Inner>) -> Self {
        AdminService { inner }
    }

    /// Where a call is served: here when this broker is the controller, else at the controller
    /// (found from this broker's metadata group, or from a seed while this broker is not in it).
    async fn route(&self) -> Result<Route, Status> {
        if self.inner.is_controller() {
            return Ok(Route::Here);
        }
        let mut addr = self.inner.controller().map(|(_, a)| a);
        if addr.is_none() {
            for seed in &self.inner.config.seeds {
                let Ok(channel) = self.inner.peers.channel(seed) else {
                    continue;
                };
                let mut request = Request::new(HelloRequest::default());
                request.set_timeout(Duration::from_secs(1));
                if let Ok(resp) = BrokerClient::new(channel).hello(request).await {
                    let known = resp.into_inner().controller_address;
                    if !known.is_empty() {
                        addr = Some(known);
                        break;
                    }
                }
            }
        }
        match addr {
            Some(addr) if addr == self.inner.config.grpc_advertised => Ok(Route::Here),
            Some(addr) => {
                let channel = self
                    .inner
                    .peers
                    .channel(&addr)
                    .map_err(|e| Status::unavailable(e.to_string()))?;
                Ok(Route::Controller(AdminClient::new(channel)))
            }
            None => Err(status_of(Refusal::new(
                ErrorReason::NotController,
                "no controller is elected yet; the cluster may be starting or lost its majority, try again shortly",
            ))),
        }
    }

    fn topic(&self, name: &str) -> Result<Topic, Status> {
        self.inner
            .cluster()
            .topic_by_name(name)
            .cloned()
            .ok_or_else(|| {
                status_of(Refusal::new(
                    ErrorReason::UnknownTopic,
                    format!("unknown topic `{name}`"),
                ))
            })
    }

    fn describe(&self, topic: &Topic) -> pb::TopicDescription {
        let (views, _) = partition_views(&self.inner);
        let state = self.inner.cluster();
        pb::TopicDescription {
            name: topic.name.clone(),
            topic_id: topic.id.0.to_string(),
            cluster_id: state
                .cluster_id()
                .map(|c| c.0.to_string())
                .unwrap_or_default(),
            replication_factor: u32::from(topic.replication_factor),
            config: topic.config.clone().into_iter().collect(),
            owner: topic.owner.clone().unwrap_or_default(),
            internal: topic.is_internal(),
            partitions: topic
                .partitions
                .iter()
                .enumerate()
                .map(|(p, assignment)| {
                    let view = views
                        .get(&partition_group(topic.id, p as u32))
                        .cloned()
                        .unwrap_or_default();
                    pb::PartitionDescription {
                        partition: p as u32,
                        replicas: assignment.replicas.iter().map(|b| b.0).collect(),
                        leader: view.leader.map(|b| b.0),
                        high_watermark: view.high_watermark,
                        log_start_offset: view.log_start_offset,
                        leaving: assignment.leaving.iter().map(|b| b.0).collect(),
                    }
                })
                .collect(),
        }
    }

    /// Waits (briefly) until every partition of the topic has a reported leader.
    async fn describe_when_led(&self, name: &str) -> Result<pb::TopicDescription, Status> {
        let deadline = Instant::now() + LEADER_WAIT;
        loop {
            let description = self.describe(&self.topic(name)?);
            if description.partitions.iter().all(|p| p.leader.is_some())
                || Instant::now() >= deadline
            {
                return Ok(description);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn propose(&self, command: Command) -> Result<Outcome, Status> {
        match self
            .inner
            .propose(&command, PATIENCE)
            .await
            .map_err(status_of)?
        {
            Outcome::Refused(refusal) => Err(status_of(refusal)),
            done => Ok(done),
        }
    }

    fn place(
        &self,
        partitions: u32,
        replication_factor: u16,
    ) -> Result<Vec<Vec<strand_meta::BrokerId>>, Status> {
        let state = self.inner.cluster();
        place_new_partitions(
            &state.placement_brokers(),
            &state.load(),
            partitions,
            replication_factor,
        )
        .map_err(|e| {
            let reason = match e {
                strand_meta::PlacementError::NotEnoughBrokers { .. } => {
                    ErrorReason::NotEnoughBrokers
                }
                strand_meta::PlacementError::ZeroReplicationFactor => {
                    ErrorReason::InvalidReplicationFactor
                }
                strand_meta::PlacementError::TooManyPartitions { .. } => {
                    ErrorReason::InvalidPartitions
                }
            };
            status_of(Refusal::new(reason, e.to_string()))
        })
    }

    async fn create_here(
        &self,
        req: pb::CreateTopicRequest,
    ) -> Result<pb::TopicDescription, Status> {
        if req.partitions == 0 {
            return Err(status_of(Refusal::new(
                ErrorReason::InvalidPartitions,
                "a topic needs at least 1 partition",
            )));
        }
        let replication_factor = u16::try_from(req.replication_factor).unwrap_or(u16::MAX);
        let config: BTreeMap<String, String> = req.config.into_iter().collect();
        if let Err(e) = validate_topic_config(&config) {
            let mut refusal =
                Refusal::new(ErrorReason::InvalidConfig, format!("invalid config: {e}"));
            refusal.config_key = Some(e.key().to_string());
            return Err(status_of(refusal));
        }
        let assignments = self.place(req.partitions, replication_factor)?;
        self.propose(Command::CreateTopic {
            topic_id: TopicId(uuid::Uuid::new_v4()),
            name: req.name.clone(),
            // The one internal topic Strand creates, when the first consumer group needs it.
            kind: if req.name == crate::kafka::groups::OFFSETS_TOPIC {
                TopicKind::Internal
            } else {
                TopicKind::User
            },
            replication_factor,
            config,
            assignments,
            now_ms: now_ms() as u64,
            owner: owner_of(req.owner),
        })
        .await?;
        self.describe_when_led(&req.name).await
    }

    /// Every change of the request goes into one `UpdateTopic` command, which the metadata
    /// group applies whole or not at all, after checking `expected_owner` itself.
    async fn update_here(
        &self,
        req: pb::UpdateTopicRequest,
    ) -> Result<pb::TopicDescription, Status> {
        let topic = self.topic(&req.name)?;
        let mut assignments_to_add = Vec::new();
        if let Some(partitions) = req.partitions {
            let current = topic.partitions.len() as u32;
            if partitions < current {
                return Err(status_of(Refusal::new(
                    ErrorReason::InvalidPartitions,
                    format!(
                        "topic `{}` has {current} partitions; partitions can only be added, not removed",
                        topic.name
                    ),
                )));
            }
            if partitions > current {
                assignments_to_add = self.place(partitions - current, topic.replication_factor)?;
            }
        }
        let replication_factor = match req.replication_factor {
            Some(rf) if rf != u32::from(topic.replication_factor) => {
                Some(u16::try_from(rf).map_err(|_| {
                    status_of(Refusal::new(
                        ErrorReason::InvalidReplicationFactor,
                        format!("replication factor {rf} is too large"),
                    ))
                })?)
            }
            _ => None,
        };
        // A request without a change or a check has nothing to commit.
        let anything = !assignments_to_add.is_empty()
            || replication_factor.is_some()
            || !req.set_config.is_empty()
            || !req.remove_config.is_empty()
            || req.expected_owner.is_some()
            || req.owner.is_some();
        if anything {
            self.propose(Command::UpdateTopic {
                topic_id: topic.id,
                expected_owner: req.expected_owner.map(owner_of),
                assignments_to_add,
                replication_factor,
                set_config: req.set_config.into_iter().collect(),
                remove_config: req.remove_config,
                owner: req.owner.map(owner_of),
            })
            .await?;
        }
        if replication_factor.is_some() {
            self.inner.balancer.request();
        }
        self.describe_when_led(&req.name).await
    }

    async fn delete_here(
        &self,
        req: pb::DeleteTopicRequest,
    ) -> Result<pb::DeleteTopicResponse, Status> {
        let Some(topic) = self.inner.cluster().topic_by_name(&req.name).cloned() else {
            return Ok(pb::DeleteTopicResponse { deleted: false });
        };
        if !req.topic_id.is_empty() && req.topic_id != topic.id.0.to_string() {
            return Err(status_of(Refusal::new(
                ErrorReason::UnknownTopic,
                format!(
                    "topic `{}` now has id {}, not {}; it was not deleted",
                    req.name, topic.id.0, req.topic_id
                ),
            )));
        }
        self.propose(Command::DeleteTopic {
            topic_id: topic.id,
            expected_owner: req.expected_owner.map(owner_of),
        })
        .await?;
        Ok(pb::DeleteTopicResponse { deleted: true })
    }

    fn describe_cluster_here(&self) -> pb::ClusterDescription {
        let state = self.inner.cluster();
        let (views, alive) = partition_views(&self.inner);
        let mut leaders: BTreeMap<u32, u32> = BTreeMap::new();
        for view in views.values() {
            if let Some(b) = view.leader {
                *leaders.entry(b.0).or_default() += 1;
            }
        }
        let load = state.load();
        let mut leaderless = 0;
        let mut under_replicated = 0;
        for topic in state.topics() {
            for (p, assignment) in topic.partitions.iter().enumerate() {
                // As Kafka's ISR: a replica on a broker that stopped reporting is not in sync.
                // A leader known only from its followers' word (its own report, with the
                // voters and their progress, is still on its way) is not counted as in sync,
                // nor is a group whose membership is changing.
                let replica_down = assignment.replicas.iter().any(|b| !alive.contains(b));
                match views.get(&partition_group(topic.id, p as u32)) {
                    Some(view)
                        if !view.lagging.is_empty()
                            || view.voter_nodes.is_empty()
                            || view.membership_changing
                            || replica_down =>
                    {
                        under_replicated += 1
                    }
                    Some(_) => {}
                    None => leaderless += 1,
                }
            }
        }
        let controller_id = self
            .inner
            .controller()
            .and_then(|(node, _)| Inner::broker_of_node(&state, node))
            .map(|b| b.0);
        pb::ClusterDescription {
            cluster_id: state
                .cluster_id()
                .map(|c| c.0.to_string())
                .unwrap_or_default(),
            controller_id,
            brokers: state
                .brokers()
                .values()
                .map(|b| {
                    let leaving = state
                        .topics()
                        .flat_map(|t| &t.partitions)
                        .filter(|a| a.leaving.contains(&b.id))
                        .count();
                    pb::BrokerDescription {
                        broker_id: b.id.0,
                        node_id: b.node_id.0,
                        state: b.state.to_string(),
                        kafka_address: b.kafka_addr.clone(),
                        grpc_address: b.grpc_addr.clone(),
                        rack: b.rack.clone(),
                        leader_count: leaders.get(&b.id.0).copied().unwrap_or(0),
                        replica_count: load.get(&b.id).map(|l| l.replicas as u32).unwrap_or(0),
                        alive: alive.contains(&b.id),
                        leaving_count: leaving as u32,
                    }
                })
                .collect(),
            under_replicated_partitions: under_replicated,
            leaderless_partitions: leaderless,
        }
    }
}

impl AdminService {
    fn broker_description(&self, id: u32) -> Result<pb::BrokerDescription, Status> {
        self.describe_cluster_here()
            .brokers
            .into_iter()
            .find(|b| b.broker_id == id)
            .ok_or_else(|| unknown_broker(id))
    }

    async fn decommission_here(&self, id: u32) -> Result<pb::BrokerDescription, Status> {
        let state = self.inner.cluster();
        let broker = state
            .broker(BrokerId(id))
            .ok_or_else(|| unknown_broker(id))?;
        if broker.state == BrokerState::Active {
            let active = state
                .brokers()
                .values()
                .filter(|b| b.state == BrokerState::Active && b.id != broker.id)
                .count();
            if let Some(topic) = state
                .topics()
                .filter(|t| usize::from(t.replication_factor) > active)
                .max_by_key(|t| t.replication_factor)
            {
                return Err(status_of(Refusal::new(
                    ErrorReason::BrokerState,
                    format!(
                        "decommissioning broker {id} would leave {active} active brokers, but topic `{}` has replication factor {}; add a broker or lower that topic's replication factor first",
                        topic.name, topic.replication_factor
                    ),
                )));
            }
            self.propose(Command::SetBrokerState {
                broker_id: broker.id,
                state: BrokerState::Draining,
            })
            .await?;
            self.inner.balancer.request();
        }
        self.broker_description(id)
    }

    async fn recommission_here(&self, id: u32) -> Result<pb::BrokerDescription, Status> {
        let state = self.inner.cluster();
        let broker = state
            .broker(BrokerId(id))
            .ok_or_else(|| unknown_broker(id))?;
        if broker.state != BrokerState::Active {
            self.propose(Command::SetBrokerState {
                broker_id: broker.id,
                state: BrokerState::Active,
            })
            .await?;
            self.inner.balancer.request();
        }
        self.broker_description(id)
    }

    fn rebalance_here(&self, dry_run: bool) -> pb::RebalancePlan {
        let state = self.inner.cluster();
        let (plan, _) = crate::balance::current_plan(&self.inner, &state);
        if !dry_run {
            self.inner.balancer.request();
        }
        pb::RebalancePlan {
            moves: plan.moves.iter().map(|m| move_pb(&state, m)).collect(),
            leader_transfers: plan
                .leader_transfers
                .iter()
                .map(|t| transfer_pb(&state, t))
                .collect(),
            bytes_to_move: plan.bytes_moved(),
        }
    }

    fn rebalance_status_here(&self) -> pb::RebalanceProgress {
        let state = self.inner.cluster();
        let (plan, input) = crate::balance::current_plan(&self.inner, &state);
        let (views, _) = partition_views(&self.inner);
        let mut in_progress = Vec::new();
        for topic in state.topics() {
            for (p, a) in topic
                .partitions
                .iter()
                .enumerate()
                .filter(|(_, a)| a.is_moving())
            {
                let size = views
                    .get(&partition_group(topic.id, p as u32))
                    .map_or(0, |v| v.size_bytes);
                in_progress.push(pb::ReplicaMove {
                    topic: topic.name.clone(),
                    partition: p as u32,
                    from: a.hosts().map(|b| b.0).collect(),
                    to: a.replicas.iter().map(|b| b.0).collect(),
                    bytes: size,
                });
            }
        }
        let moving: BTreeSet<(String, u32)> = in_progress
            .iter()
            .map(|m| (m.topic.clone(), m.partition))
            .collect();
        let pending: Vec<pb::ReplicaMove> = plan
            .moves
            .iter()
            .map(|m| move_pb(&state, m))
            .filter(|m| !moving.contains(&(m.topic.clone(), m.partition)))
            .collect();
        let draining: Vec<pb::BrokerDrain> = state
            .brokers()
            .values()
            .filter(|b| b.state == BrokerState::Draining)
            .map(|b| {
                let left = state.assignments_for(b.id).len() as u32;
                let on_the_way = |m: &pb::ReplicaMove| m.from.contains(&b.id.0);
                let stuck = left > 0
                    && !in_progress.iter().any(on_the_way)
                    && !pending.iter().any(on_the_way);
                pb::BrokerDrain {
                    broker_id: b.id.0,
                    replicas_left: left,
                    blocked: if stuck && input.unreachable.is_empty() {
                        "no active broker can take its remaining replicas: add brokers or lower replication factors".to_string()
                    } else {
                        String::new()
                    },
                }
            })
            .collect();
        let balanced = in_progress.is_empty() && pending.is_empty() && draining.is_empty();
        let mut summary = Vec::new();
        if !input.unreachable.is_empty() {
            let ids: Vec<String> = input.unreachable.iter().map(|b| b.to_string()).collect();
            summary.push(format!(
                "waiting: broker {} unreachable (replicas move elsewhere after {} s)",
                ids.join(", "),
                self.inner.config.balancing.broker_failure_timeout.as_secs()
            ));
        }
        if !in_progress.is_empty() {
            summary.push(format!("{} moving", count(in_progress.len(), "partition")));
        }
        if !pending.is_empty() {
            summary.push(format!("{} planned", count(pending.len(), "move")));
        }
        for d in &draining {
            summary.push(format!(
                "broker {} draining: {} left{}",
                d.broker_id,
                count(d.replicas_left as usize, "replica"),
                if d.blocked.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", d.blocked)
                }
            ));
        }
        if !plan.leader_transfers.is_empty() {
            summary.push(format!(
                "{} led by another broker than the preferred leader",
                count(plan.leader_transfers.len(), "partition")
            ));
        }
        if summary.is_empty() {
            summary.push("balanced".to_string());
        }
        pb::RebalanceProgress {
            in_progress,
            pending,
            leader_transfers: plan
                .leader_transfers
                .iter()
                .map(|t| transfer_pb(&state, t))
                .collect(),
            draining,
            balanced,
            summary: summary.join("; "),
        }
    }

    async fn transfer_here(
        &self,
        req: pb::TransferLeadershipRequest,
    ) -> Result<pb::TopicDescription, Status> {
        let topic = self.topic(&req.topic)?;
        let assignment = topic
            .partitions
            .get(req.partition as usize)
            .ok_or_else(|| {
                status_of(Refusal::new(
                    ErrorReason::UnknownPartition,
                    format!(
                        "topic `{}` has {} partitions; there is no partition {}",
                        topic.name,
                        topic.partitions.len(),
                        req.partition
                    ),
                ))
            })?;
        let to = BrokerId(req.broker_id);
        if !assignment.replicas.contains(&to) {
            return Err(status_of(Refusal::new(
                ErrorReason::BrokerState,
                format!(
                    "broker {to} holds no replica of {}/{}; its replicas are on brokers {:?}",
                    topic.name,
                    req.partition,
                    assignment.replicas.iter().map(|b| b.0).collect::<Vec<_>>()
                ),
            )));
        }
        if assignment.replicas[0] != to {
            let mut replicas = vec![to];
            replicas.extend(assignment.replicas.iter().filter(|b| **b != to));
            self.propose(Command::ReassignPartition {
                topic_id: topic.id,
                partition: PartitionId(req.partition),
                replicas,
            })
            .await?;
        }
        let group = partition_group(topic.id, req.partition);
        let deadline = Instant::now() + TRANSFER_WAIT;
        while Instant::now() < deadline {
            let (views, _) = partition_views(&self.inner);
            if views.get(&group).and_then(|v| v.leader) == Some(to) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(self.describe(&self.topic(&req.topic)?))
    }
}

/// An owner as the metadata holds it: the admin API's empty string is no one.
fn owner_of(owner: String) -> Option<String> {
    (!owner.is_empty()).then_some(owner)
}

/// `1 partition`, `2 partitions`.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn unknown_broker(id: u32) -> Status {
    status_of(Refusal::new(
        ErrorReason::UnknownBroker,
        format!("no broker {id} is registered in this cluster"),
    ))
}

fn topic_name(state: &strand_meta::ClusterState, id: TopicId) -> String {
    state
        .topic(id)
        .map(|t| t.name.clone())
        .unwrap_or_else(|| id.0.to_string())
}

fn move_pb(state: &strand_meta::ClusterState, m: &strand_meta::ReplicaMove) -> pb::ReplicaMove {
    pb::ReplicaMove {
        topic: topic_name(state, m.topic),
        partition: m.partition,
        from: m.from.iter().map(|b| b.0).collect(),
        to: m.to.iter().map(|b| b.0).collect(),
        bytes: m.bytes,
    }
}

fn transfer_pb(
    state: &strand_meta::ClusterState,
    t: &strand_meta::LeaderTransfer,
) -> pb::LeaderTransfer {
    pb::LeaderTransfer {
        topic: topic_name(state, t.topic),
        partition: t.partition,
        from: t.from.map(|b| b.0),
        to: t.to.0,
    }
}

/// Serves a call here or passes it to the controller.
macro_rules! routed {
    ($self:ident, $request:ident, $method:ident, $here:expr) => {
        match $self.route().await? {
            Route::Controller(mut client) => client.$method($request.into_inner()).await,
            Route::Here => $here.map(Response::new),
        }
    };
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn create_topic(
        &self,
        request: Request<pb::CreateTopicRequest>,
    ) -> Result<Response<pb::TopicDescription>, Status> {
        routed!(
            self,
            request,
            create_topic,
            self.create_here(request.into_inner()).await
        )
    }

    async fn delete_topic(
        &self,
        request: Request<pb::DeleteTopicRequest>,
    ) -> Result<Response<pb::DeleteTopicResponse>, Status> {
        routed!(
            self,
            request,
            delete_topic,
            self.delete_here(request.into_inner()).await
        )
    }

    async fn update_topic(
        &self,
        request: Request<pb::UpdateTopicRequest>,
    ) -> Result<Response<pb::TopicDescription>, Status> {
        routed!(
            self,
            request,
            update_topic,
            self.update_here(request.into_inner()).await
        )
    }

    async fn describe_topic(
        &self,
        request: Request<pb::DescribeTopicRequest>,
    ) -> Result<Response<pb::TopicDescription>, Status> {
        routed!(self, request, describe_topic, {
            let name = request.into_inner().name;
            self.topic(&name).map(|t| self.describe(&t))
        })
    }

    async fn list_topics(
        &self,
        request: Request<pb::ListTopicsRequest>,
    ) -> Result<Response<pb::ListTopicsResponse>, Status> {
        routed!(self, request, list_topics, {
            let state = self.inner.cluster();
            let topics = state.topics().map(|t| self.describe(t)).collect();
            Ok::<_, Status>(pb::ListTopicsResponse { topics })
        })
    }

    async fn describe_cluster(
        &self,
        request: Request<pb::DescribeClusterRequest>,
    ) -> Result<Response<pb::ClusterDescription>, Status> {
        routed!(
            self,
            request,
            describe_cluster,
            Ok::<_, Status>(self.describe_cluster_here())
        )
    }

    async fn decommission_broker(
        &self,
        request: Request<pb::DecommissionBrokerRequest>,
    ) -> Result<Response<pb::BrokerDescription>, Status> {
        routed!(self, request, decommission_broker, {
            let id = request.into_inner().broker_id;
            self.decommission_here(id).await
        })
    }

    async fn recommission_broker(
        &self,
        request: Request<pb::RecommissionBrokerRequest>,
    ) -> Result<Response<pb::BrokerDescription>, Status> {
        routed!(self, request, recommission_broker, {
            let id = request.into_inner().broker_id;
            self.recommission_here(id).await
        })
    }

    async fn rebalance(
        &self,
        request: Request<pb::RebalanceRequest>,
    ) -> Result<Response<pb::RebalancePlan>, Status> {
        routed!(self, request, rebalance, {
            let dry_run = request.into_inner().dry_run;
            Ok::<_, Status>(self.rebalance_here(dry_run))
        })
    }

    async fn rebalance_status(
        &self,
        request: Request<pb::RebalanceStatusRequest>,
    ) -> Result<Response<pb::RebalanceProgress>, Status> {
        routed!(
            self,
            request,
            rebalance_status,
            Ok::<_, Status>(self.rebalance_status_here())
        )
    }

    async fn transfer_leadership(
        &self,
        request: Request<pb::TransferLeadershipRequest>,
    ) -> Result<Response<pb::TopicDescription>, Status> {
        routed!(
            self,
            request,
            transfer_leadership,
            self.transfer_here(request.into_inner()).await
        )
    }
}
