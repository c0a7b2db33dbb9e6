//! The metadata group as the rest of the broker sees it: the applied cluster state, who the
//! controller is, and proposing metadata commands to it from anywhere.

use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, RaftError};
use strand_meta::{BrokerId, ClusterState, Command};
use strand_proto::admin::ErrorReason;
use strand_proto::broker::ProposeRequest;
use strand_proto::broker::broker_client::BrokerClient;
use tokio::sync::watch;

use crate::identity::Identity;
use crate::meta::{Outcome, Refusal, SharedState, encode_command};
use crate::network::Peers;
use crate::registry::MetaRaft;

/// Why one attempt at a metadata proposal failed (the caller may try again elsewhere).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// This broker stopped being the controller while proposing.
    #[error("the controller changed")]
    ControllerChanged,
    /// The metadata group refused or failed the write.
    #[error("the metadata group did not take it: {0}")]
    Raft(String),
    /// The controller applied it but gave no answer that could be read.
    #[error("the controller gave no answer")]
    NoAnswer,
    /// The broker at `addr` could not be reached or refused the call.
    #[error("controller at {addr}: {message}")]
    Unreachable {
        /// The broker asked.
        addr: String,
        /// What went wrong.
        message: String,
    },
}

/// The metadata group's handle. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    parts: Arc<Parts>,
}

struct Parts {
    identity: Identity,
    meta: MetaRaft,
    state: watch::Receiver<SharedState>,
    peers: Peers,
    seeds: Vec<String>,
    grpc_advertised: String,
}

impl Cluster {
    /// The handle of this broker (`identity`) to its metadata group `meta`, whose applied
    /// state arrives on `state`; `seeds` are asked for the controller while this broker is not
    /// in the group, and `grpc_advertised` is this broker's own address among them.
    pub fn new(
        identity: Identity,
        meta: MetaRaft,
        state: watch::Receiver<SharedState>,
        peers: Peers,
        seeds: Vec<String>,
        grpc_advertised: String,
    ) -> Cluster {
        Cluster {
            parts: Arc::new(Parts {
                identity,
                meta,
                state,
                peers,
                seeds,
                grpc_advertised,
            }),
        }
    }

    /// The applied cluster state now.
    pub fn state(&self) -> SharedState {
        self.parts.state.borrow().clone()
    }

    /// A receiver of every newly applied cluster state.
    pub fn watch(&self) -> watch::Receiver<SharedState> {
        self.parts.state.clone()
    }

    /// Whether `state` holds this incarnation's registration: everything committed to the
    /// metadata group before it (topics, users, ACLs) is then applied here too.
    pub fn registered_in(&self, state: &ClusterState) -> bool {
        state
            .broker(self.broker_id())
            .is_some_and(|b| b.node_id.0 == self.identity().node_id)
    }

    /// Waits until this incarnation's registration is applied here ([`Cluster::registered_in`]).
    pub async fn registered(&self) {
        let mut state = self.watch();
        let _ = state.wait_for(|s| self.registered_in(s)).await;
    }

    /// This broker's id and node id.
    pub fn identity(&self) -> &Identity {
        &self.parts.identity
    }

    /// This broker's id.
    pub fn broker_id(&self) -> BrokerId {
        BrokerId(self.parts.identity.broker_id)
    }

    /// This broker's Raft node id (its incarnation).
    pub fn node_id(&self) -> u64 {
        self.parts.identity.node_id
    }

    /// The metadata group's Raft handle.
    pub fn raft(&self) -> &MetaRaft {
        &self.parts.meta
    }

    /// The channels to peer brokers.
    pub fn peers(&self) -> &Peers {
        &self.parts.peers
    }

    /// The gRPC addresses of the seed brokers.
    pub fn seeds(&self) -> &[String] {
        &self.parts.seeds
    }

    /// This broker's own gRPC address, as others reach it.
    pub fn grpc_advertised(&self) -> &str {
        &self.parts.grpc_advertised
    }

    /// Whether this broker leads the metadata group (is the controller).
    pub fn is_controller(&self) -> bool {
        self.parts.meta.metrics().borrow_watched().state == openraft::ServerState::Leader
    }

    /// The controller's node id and gRPC address, when known.
    pub fn controller(&self) -> Option<(u64, String)> {
        let watch = self.parts.meta.metrics();
        let metrics = watch.borrow_watched();
        let leader = metrics.current_leader?;
        // After a restart a former controller still holds its own vote without leading.
        if leader == self.parts.identity.node_id && metrics.state != openraft::ServerState::Leader {
            return None;
        }
        let addr = metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())?;
        Some((leader, addr))
    }

    /// The broker id of a node id, from the cluster state.
    pub fn broker_of_node(state: &ClusterState, node: u64) -> Option<BrokerId> {
        state
            .brokers()
            .values()
            .find(|b| b.node_id.0 == node)
            .map(|b| b.id)
    }

    /// Proposes a metadata command: here if this broker is the controller, else through the
    /// controller. Retries while no controller is elected, up to `patience`.
    pub async fn propose(&self, command: &Command, patience: Duration) -> Result<Outcome, Refusal> {
        let deadline = Instant::now() + patience;
        let mut last_problem: Option<ProposeError> = None;
        while Instant::now() < deadline {
            match self.controller() {
                Some((leader, _)) if leader == self.parts.identity.node_id => {
                    match self.propose_here(command).await {
                        Ok(outcome) => return Ok(outcome),
                        Err(problem) => last_problem = Some(problem),
                    }
                }
                Some((_, addr)) => match self.propose_there(&addr, command).await {
                    Ok(outcome) => return Ok(outcome),
                    Err(problem) => last_problem = Some(problem),
                },
                // Not in the metadata group (yet): a seed knows the controller.
                None => {
                    for seed in self
                        .parts
                        .seeds
                        .iter()
                        .filter(|s| **s != self.parts.grpc_advertised)
                    {
                        match self.propose_there(seed, command).await {
                            Ok(outcome) => return Ok(outcome),
                            Err(problem) => last_problem = Some(problem),
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Refusal::new(
            ErrorReason::NotController,
            match last_problem {
                Some(problem) => format!("metadata change not accepted: {problem}"),
                None => "metadata change not accepted: no controller is elected yet".to_string(),
            },
        ))
    }

    /// Proposes on the local metadata group, which must lead.
    pub async fn propose_here(&self, command: &Command) -> Result<Outcome, ProposeError> {
        let batch = encode_command(command, now_ms());
        match self.parts.meta.client_write(batch).await {
            Ok(resp) => resp
                .data
                .answer
                .and_then(|a| serde_json::from_slice(&a).ok())
                .ok_or(ProposeError::NoAnswer),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                Err(ProposeError::ControllerChanged)
            }
            Err(e) => Err(ProposeError::Raft(e.to_string())),
        }
    }

    /// Proposes through the broker at `addr`, which passes it to the controller if it is not.
    pub async fn propose_there(
        &self,
        addr: &str,
        command: &Command,
    ) -> Result<Outcome, ProposeError> {
        self.send_proposal(
            addr,
            ProposeRequest {
                command: command.to_bytes().into(),
                forwarded: false,
            },
        )
        .await
    }

    /// Passes a command proposed elsewhere to the controller at `addr`, marked so it is not
    /// passed on again.
    pub async fn pass_to_controller(
        &self,
        addr: &str,
        command: &Command,
    ) -> Result<Outcome, ProposeError> {
        self.send_proposal(
            addr,
            ProposeRequest {
                command: command.to_bytes().into(),
                forwarded: true,
            },
        )
        .await
    }

    async fn send_proposal(
        &self,
        addr: &str,
        proposal: ProposeRequest,
    ) -> Result<Outcome, ProposeError> {
        let unreachable = |message: String| ProposeError::Unreachable {
            addr: addr.to_string(),
            message,
        };
        let channel = self
            .parts
            .peers
            .channel(addr)
            .map_err(|e| unreachable(e.to_string()))?;
        let mut client = BrokerClient::new(channel);
        let mut request = tonic::Request::new(proposal);
        request.set_timeout(Duration::from_secs(5));
        let answer = client
            .propose_metadata(request)
            .await
            .map_err(|s| unreachable(s.message().to_string()))?;
        serde_json::from_slice(&answer.into_inner().answer).map_err(|_| ProposeError::NoAnswer)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
