//! Joining a cluster. A new cluster's metadata group is formed by its seed brokers: once every
//! seed answers and none belongs to a cluster yet, the seed with the lowest broker id
//! initializes the group with all seeds as voters and proposes the cluster's id. Every broker
//! then registers itself (its broker id, this incarnation's node id, its addresses) through the
//! controller, which adds it to the metadata group.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::impls::BasicNode;
use strand_meta::{BrokerId, ClusterId, Command, NodeId};
use strand_proto::broker::HelloRequest;
use strand_proto::broker::broker_client::BrokerClient;

use crate::shared::Inner;
use strand_node::meta::Outcome;
use strand_node::now_ms;

/// Pause between attempts while the seeds are not all up.
const RETRY: Duration = Duration::from_millis(300);

/// What a seed said about itself.
struct Seed {
    broker_id: u32,
    node_id: u64,
    addr: String,
    cluster: bool,
    initialized: bool,
}

async fn hello(inner: &Inner, addr: &str) -> Option<Seed> {
    if addr == inner.config.grpc_advertised {
        return Some(Seed {
            broker_id: inner.cluster.identity().broker_id,
            node_id: inner.cluster.identity().node_id,
            addr: addr.to_string(),
            cluster: inner.cluster.state().cluster_id().is_some(),
            initialized: inner.cluster.raft().is_initialized().await.unwrap_or(false),
        });
    }
    let channel = inner.cluster.peers().channel(addr).ok()?;
    let mut request = tonic::Request::new(HelloRequest {
        broker_id: inner.cluster.identity().broker_id,
        node_id: inner.cluster.identity().node_id,
        grpc_address: inner.config.grpc_advertised.clone(),
    });
    request.set_timeout(Duration::from_secs(1));
    let resp = BrokerClient::new(channel)
        .hello(request)
        .await
        .ok()?
        .into_inner();
    Some(Seed {
        broker_id: resp.broker_id,
        node_id: resp.node_id,
        addr: addr.to_string(),
        cluster: !resp.cluster_id.is_empty(),
        initialized: resp.initialized,
    })
}

/// Forms the metadata group when this broker is the seed that should, then registers.
pub async fn run(inner: Arc<Inner>) {
    let mut stop = inner.shutdown.subscribe();
    let work = async {
        let formed_here = form_or_join(&inner).await;
        if formed_here {
            let cluster_id = ClusterId(uuid::Uuid::new_v4());
            match inner
                .cluster
                .propose(&Command::Bootstrap { cluster_id }, Duration::from_secs(60))
                .await
            {
                Ok(_) => tracing::info!(%cluster_id, "new cluster bootstrapped"),
                Err(refusal) => tracing::warn!(reason = %refusal.message, "bootstrap not accepted"),
            }
        }
        register(&inner).await;
    };
    tokio::select! {
        _ = work => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}

/// Returns whether this broker initialized a new metadata group.
async fn form_or_join(inner: &Inner) -> bool {
    loop {
        if inner.cluster.raft().is_initialized().await.unwrap_or(false) {
            return false;
        }
        let mut seeds = Vec::new();
        for addr in &inner.config.seeds {
            if let Some(seed) = hello(inner, addr).await {
                seeds.push(seed);
            }
        }
        if seeds
            .iter()
            .any(|s| s.cluster || (s.initialized && s.node_id != inner.cluster.identity().node_id))
        {
            // A cluster exists: this broker joins it by registering; the controller adds it.
            tracing::info!("joining the existing cluster");
            return false;
        }
        let all_answered = seeds.len() == inner.config.seeds.len();
        let lowest = seeds.iter().map(|s| s.broker_id).min();
        if all_answered && lowest == Some(inner.cluster.identity().broker_id) {
            let members: BTreeMap<u64, BasicNode> = seeds
                .iter()
                .map(|s| {
                    (
                        s.node_id,
                        BasicNode {
                            addr: s.addr.clone(),
                        },
                    )
                })
                .collect();
            match inner.cluster.raft().initialize(members).await {
                Ok(()) => {
                    tracing::info!(seeds = seeds.len(), "formed the metadata group");
                    return true;
                }
                Err(e) => tracing::warn!(error = %e, "could not form the metadata group"),
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Registers this incarnation until the controller accepts it.
async fn register(inner: &Inner) {
    let config = &inner.config;
    let command = Command::RegisterBroker {
        broker_id: BrokerId(inner.cluster.identity().broker_id),
        node_id: NodeId(inner.cluster.identity().node_id),
        kafka_addr: config.kafka_advertised.clone(),
        listeners: registered_listeners(config),
        grpc_addr: config.grpc_advertised.clone(),
        http_addr: config.http_advertised.clone(),
        rack: config.rack.clone(),
        now_ms: now_ms() as u64,
    };
    loop {
        match inner
            .cluster
            .propose(&command, Duration::from_secs(5))
            .await
        {
            Ok(Outcome::Done { .. }) => {
                tracing::info!(
                    broker = inner.cluster.identity().broker_id,
                    "registered with the controller"
                );
                return;
            }
            Ok(Outcome::Refused(refusal)) => {
                tracing::debug!(reason = %refusal.message, "registration not accepted yet")
            }
            Err(refusal) => {
                tracing::debug!(reason = %refusal.message, "registration not accepted yet")
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// The named listeners a broker registers: none when it has only its main listener under its
/// default name (then its Kafka address serves every client, as before listeners had names).
fn registered_listeners(
    config: &crate::BrokerConfig,
) -> std::collections::BTreeMap<String, String> {
    let kafka = &config.kafka;
    if kafka.more_listeners.is_empty() && kafka.listener_name.is_none() {
        return Default::default();
    }
    let main = kafka.main_listener(config.kafka_listen, &config.kafka_advertised);
    std::iter::once(main)
        .chain(kafka.more_listeners.iter().cloned())
        .map(|l| (l.name, l.advertised))
        .collect()
}
