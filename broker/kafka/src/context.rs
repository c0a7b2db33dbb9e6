//! What every Kafka handler may use: the broker's handles, the listener's own state (consumer
//! groups, producer ids) and the client's address, with the lookups most handlers share.

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use kafka_protocol::ResponseError;
use openraft::async_runtime::WatchReceiver;
use strand_meta::BrokerId;
use strand_node::{
    Cluster, Group, PartitionReplica, Replicas, SharedState, SharedViews, TopicAdmin,
    partition_group,
};
use tokio::sync::watch;

use crate::KafkaSettings;
use crate::errors::append_error_code;
use crate::groups::state::Groups;
use crate::security::Session;

/// The broker's parts the Kafka listener works with, handed to it by the broker.
#[derive(Clone)]
pub struct Handles {
    /// The metadata group: cluster state, controller, proposals.
    pub cluster: Cluster,
    /// The partition replicas hosted here, and the one path that appends to them.
    pub replicas: Replicas,
    /// The controller's view of leaders, in-sync replicas and live brokers.
    pub views: Arc<SharedViews>,
    /// Topic administration (served by the controller).
    pub admin: Arc<dyn TopicAdmin>,
    /// How the listener behaves.
    pub settings: KafkaSettings,
    /// host:port Kafka clients use to reach this broker.
    pub advertised: String,
    /// This broker's rack.
    pub rack: Option<String>,
    /// Turns true when the broker shuts down.
    pub shutdown: watch::Receiver<bool>,
}

/// The listener's state: the broker's handles and what only the Kafka protocol keeps.
pub(crate) struct Shared {
    pub(crate) handles: Handles,
    /// Consumer groups this broker coordinates.
    pub(crate) groups: Groups,
    /// Producer ids this broker may hand out, from a block the controller allocated.
    pub(crate) producer_ids: Mutex<Range<u64>>,
}

/// What every handler may use.
#[derive(Clone)]
pub struct Context {
    pub(crate) shared: Arc<Shared>,
    /// The client's address.
    pub(crate) peer: SocketAddr,
    /// The listener the client came in on, and who it is.
    pub(crate) session: Arc<Session>,
}

/// The leader of a partition as this broker knows it.
#[derive(Debug, Clone, Copy)]
pub struct Leadership {
    /// The leading broker, when known.
    pub leader: Option<strand_meta::BrokerId>,
    /// Its Raft term, which is the partition's leader epoch.
    pub epoch: i32,
}

impl Context {
    pub(crate) fn state(&self) -> SharedState {
        self.shared.handles.cluster.state()
    }

    /// The broker's handles.
    pub(crate) fn handles(&self) -> &Handles {
        &self.shared.handles
    }

    /// Who leads `topic`/`partition`: the local replica's view when this broker holds one,
    /// else the cluster-wide view the controller last shared.
    pub(crate) fn leadership(&self, topic_id: strand_meta::TopicId, partition: u32) -> Leadership {
        let group = partition_group(topic_id, partition);
        if let Some(Group::Partition(replica)) = self.shared.handles.replicas.registry().get(&group)
        {
            let (leader, term) = {
                let watch = replica.raft.metrics();
                let metrics = watch.borrow_watched();
                (metrics.current_leader, metrics.current_term)
            };
            return Leadership {
                leader: leader.and_then(|n| Cluster::broker_of_node(&self.state(), n)),
                epoch: i32::try_from(term).unwrap_or(i32::MAX),
            };
        }
        match self.shared.handles.views.get(&group) {
            Some(view) => Leadership {
                leader: Some(view.leader),
                epoch: i32::try_from(view.term).unwrap_or(i32::MAX),
            },
            None => Leadership {
                leader: None,
                epoch: -1,
            },
        }
    }

    /// The replicas caught up with the leader (Kafka's ISR), from the controller's view.
    pub(crate) fn in_sync(&self, topic: &strand_meta::Topic, partition: u32) -> Vec<BrokerId> {
        self.shared.handles.replicas.in_sync(topic, partition)
    }

    /// Whether a broker reports to the controller.
    pub(crate) fn broker_alive(&self, broker: BrokerId) -> bool {
        self.shared.handles.views.alive(broker)
    }

    /// The local replica of `topic`/`partition` if it leads; the Kafka error otherwise.
    pub(crate) fn leader_replica(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<(Arc<PartitionReplica>, i32), ResponseError> {
        self.shared
            .handles
            .replicas
            .leader(&self.state(), topic, partition)
            .map_err(|e| append_error_code(&e))
    }

    /// The address of `broker` on the listener this client came in on: `None` when the broker
    /// does not have that listener. A broker that registered a single listener serves all.
    pub(crate) fn advertised_addr<'a>(&self, broker: &'a strand_meta::Broker) -> Option<&'a str> {
        match broker.listeners.get(&self.session.listener.name) {
            Some(addr) => Some(addr),
            None if broker.listeners.is_empty() => Some(&broker.kafka_addr),
            None => None,
        }
    }

    /// Checks a client's idea of the leader epoch (`-1` means it has none).
    pub(crate) fn check_epoch(client: i32, ours: i32) -> Result<(), ResponseError> {
        match client {
            -1 => Ok(()),
            e if e < ours => Err(ResponseError::FencedLeaderEpoch),
            e if e > ours => Err(ResponseError::UnknownLeaderEpoch),
            _ => Ok(()),
        }
    }
}
