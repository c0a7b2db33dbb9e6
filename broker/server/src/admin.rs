//! The admin core: topic and cluster administration as plain async functions returning
//! [`Refusal`]s. Served by the controller; `admin_service.rs` puts the gRPC admin API
//! (`strand.admin.v1`) and the Kafka listener's `TopicAdmin` in front of it, and passes calls
//! made to any other broker on to the controller.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use strand_meta::{
    BrokerId, BrokerState, Command, PartitionId, Topic, TopicId, TopicKind, place_new_partitions,
    validate_topic_config,
};
use strand_proto::admin as pb;
use strand_proto::admin::ErrorReason;
use strand_proto::admin::admin_client::AdminClient;
use strand_proto::broker::HelloRequest;
use strand_proto::broker::broker_client::BrokerClient;
use tonic::Request;
use tonic::transport::Channel;

use strand_node::{Outcome, Refusal, now_ms, partition_group};

use crate::controller::partition_views;
use crate::shared::Inner;

/// How long a metadata change may wait for a controller.
const PATIENCE: Duration = Duration::from_secs(10);
/// How long a new topic's description waits for its partitions to have leaders.
const LEADER_WAIT: Duration = Duration::from_secs(5);
/// How long TransferLeadership waits for the new leader to be reported.
const TRANSFER_WAIT: Duration = Duration::from_secs(10);

/// The admin core of one broker.
pub struct Admin {
    inner: Arc<Inner>,
}

/// Where an admin call is served.
pub(crate) enum Route {
    /// Here: this broker is the controller.
    Here,
    /// At the controller, through its admin API.
    Controller(AdminClient<Channel>),
}

impl Admin {
    /// The admin core of the broker `inner`.
    pub fn new(inner: Arc<Inner>) -> Self {
        Admin { inner }
    }

    /// The metadata group, where the security calls propose.
    pub(crate) fn cluster(&self) -> &strand_node::Cluster {
        &self.inner.cluster
    }

    /// Where a call is served: here when this broker is the controller, else at the controller
    /// (found from this broker's metadata group, or from a seed while this broker is not in it).
    pub(crate) async fn route(&self) -> Result<Route, Refusal> {
        if self.inner.cluster.is_controller() {
            return Ok(Route::Here);
        }
        let mut addr = self.inner.cluster.controller().map(|(_, a)| a);
        if addr.is_none() {
            for seed in &self.inner.config.seeds {
                let Ok(channel) = self.inner.cluster.peers().channel(seed) else {
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
                    .cluster
                    .peers()
                    .channel(&addr)
                    .map_err(|e| Refusal::new(ErrorReason::Unavailable, e.to_string()))?;
                Ok(Route::Controller(AdminClient::new(channel)))
            }
            None => Err(Refusal::new(
                ErrorReason::NotController,
                "no controller is elected yet; the cluster may be starting or lost its majority, try again shortly",
            )),
        }
    }

    pub(crate) fn topic(&self, name: &str) -> Result<Topic, Refusal> {
        self.inner
            .cluster
            .state()
            .topic_by_name(name)
            .cloned()
            .ok_or_else(|| {
                Refusal::new(ErrorReason::UnknownTopic, format!("unknown topic `{name}`"))
            })
    }

    pub(crate) fn describe(&self, topic: &Topic) -> pb::TopicDescription {
        let (views, _) = partition_views(&self.inner);
        let state = self.inner.cluster.state();
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
    pub(crate) async fn describe_when_led(
        &self,
        name: &str,
    ) -> Result<pb::TopicDescription, Refusal> {
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

    pub(crate) async fn propose(&self, command: Command) -> Result<Outcome, Refusal> {
        match self.inner.cluster.propose(&command, PATIENCE).await? {
            Outcome::Refused(refusal) => Err(refusal),
            done => Ok(done),
        }
    }

    pub(crate) fn place(
        &self,
        partitions: u32,
        replication_factor: u16,
    ) -> Result<Vec<Vec<strand_meta::BrokerId>>, Refusal> {
        let state = self.inner.cluster.state();
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
            Refusal::new(reason, e.to_string())
        })
    }

    pub(crate) async fn create_here(
        &self,
        req: pb::CreateTopicRequest,
    ) -> Result<pb::TopicDescription, Refusal> {
        if req.partitions == 0 {
            return Err(Refusal::new(
                ErrorReason::InvalidPartitions,
                "a topic needs at least 1 partition",
            ));
        }
        let replication_factor = u16::try_from(req.replication_factor).unwrap_or(u16::MAX);
        let config: BTreeMap<String, String> = req.config.into_iter().collect();
        if let Err(e) = validate_topic_config(&config) {
            let mut refusal =
                Refusal::new(ErrorReason::InvalidConfig, format!("invalid config: {e}"));
            refusal.config_key = Some(e.key().to_string());
            return Err(refusal);
        }
        let assignments = self.place(req.partitions, replication_factor)?;
        self.propose(Command::CreateTopic {
            topic_id: TopicId(uuid::Uuid::new_v4()),
            name: req.name.clone(),
            // The one internal topic Strand creates, when the first consumer group needs it.
            kind: if req.name == strand_kafka::groups::OFFSETS_TOPIC {
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
    pub(crate) async fn update_here(
        &self,
        req: pb::UpdateTopicRequest,
    ) -> Result<pb::TopicDescription, Refusal> {
        let topic = self.topic(&req.name)?;
        let mut assignments_to_add = Vec::new();
        if let Some(partitions) = req.partitions {
            let current = topic.partitions.len() as u32;
            if partitions < current {
                return Err(Refusal::new(
                    ErrorReason::InvalidPartitions,
                    format!(
                        "topic `{}` has {current} partitions; partitions can only be added, not removed",
                        topic.name
                    ),
                ));
            }
            if partitions > current {
                assignments_to_add = self.place(partitions - current, topic.replication_factor)?;
            }
        }
        let replication_factor = match req.replication_factor {
            Some(rf) if rf != u32::from(topic.replication_factor) => {
                Some(u16::try_from(rf).map_err(|_| {
                    Refusal::new(
                        ErrorReason::InvalidReplicationFactor,
                        format!("replication factor {rf} is too large"),
                    )
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

    pub(crate) async fn delete_here(
        &self,
        req: pb::DeleteTopicRequest,
    ) -> Result<pb::DeleteTopicResponse, Refusal> {
        let Some(topic) = self.inner.cluster.state().topic_by_name(&req.name).cloned() else {
            return Ok(pb::DeleteTopicResponse { deleted: false });
        };
        if !req.topic_id.is_empty() && req.topic_id != topic.id.0.to_string() {
            return Err(Refusal::new(
                ErrorReason::UnknownTopic,
                format!(
                    "topic `{}` now has id {}, not {}; it was not deleted",
                    req.name, topic.id.0, req.topic_id
                ),
            ));
        }
        self.propose(Command::DeleteTopic {
            topic_id: topic.id,
            expected_owner: req.expected_owner.map(owner_of),
        })
        .await?;
        Ok(pb::DeleteTopicResponse { deleted: true })
    }

    pub(crate) fn list_topics_here(&self) -> pb::ListTopicsResponse {
        let state = self.inner.cluster.state();
        let topics = state.topics().map(|t| self.describe(t)).collect();
        pb::ListTopicsResponse { topics }
    }

    pub(crate) fn describe_cluster_here(&self) -> pb::ClusterDescription {
        let state = self.inner.cluster.state();
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
            .cluster
            .controller()
            .and_then(|(node, _)| strand_node::Cluster::broker_of_node(&state, node))
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

impl Admin {
    pub(crate) fn broker_description(&self, id: u32) -> Result<pb::BrokerDescription, Refusal> {
        self.describe_cluster_here()
            .brokers
            .into_iter()
            .find(|b| b.broker_id == id)
            .ok_or_else(|| unknown_broker(id))
    }

    pub(crate) async fn decommission_here(
        &self,
        id: u32,
    ) -> Result<pb::BrokerDescription, Refusal> {
        let state = self.inner.cluster.state();
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
                return Err(Refusal::new(
                    ErrorReason::BrokerState,
                    format!(
                        "decommissioning broker {id} would leave {active} active brokers, but topic `{}` has replication factor {}; add a broker or lower that topic's replication factor first",
                        topic.name, topic.replication_factor
                    ),
                ));
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

    pub(crate) async fn recommission_here(
        &self,
        id: u32,
    ) -> Result<pb::BrokerDescription, Refusal> {
        let state = self.inner.cluster.state();
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

    pub(crate) fn rebalance_here(&self, dry_run: bool) -> pb::RebalancePlan {
        let state = self.inner.cluster.state();
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

    pub(crate) fn rebalance_status_here(&self) -> pb::RebalanceProgress {
        let state = self.inner.cluster.state();
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

    pub(crate) async fn transfer_here(
        &self,
        req: pb::TransferLeadershipRequest,
    ) -> Result<pb::TopicDescription, Refusal> {
        let topic = self.topic(&req.topic)?;
        let assignment = topic
            .partitions
            .get(req.partition as usize)
            .ok_or_else(|| {
                Refusal::new(
                    ErrorReason::UnknownPartition,
                    format!(
                        "topic `{}` has {} partitions; there is no partition {}",
                        topic.name,
                        topic.partitions.len(),
                        req.partition
                    ),
                )
            })?;
        let to = BrokerId(req.broker_id);
        if !assignment.replicas.contains(&to) {
            return Err(Refusal::new(
                ErrorReason::BrokerState,
                format!(
                    "broker {to} holds no replica of {}/{}; its replicas are on brokers {:?}",
                    topic.name,
                    req.partition,
                    assignment.replicas.iter().map(|b| b.0).collect::<Vec<_>>()
                ),
            ));
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

fn unknown_broker(id: u32) -> Refusal {
    Refusal::new(
        ErrorReason::UnknownBroker,
        format!("no broker {id} is registered in this cluster"),
    )
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
