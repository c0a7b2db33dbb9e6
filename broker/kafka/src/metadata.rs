//! Metadata: brokers, the controller, and topics with their partitions' leaders.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strand_meta::{Topic, TopicKind};

use strand_node::Cluster;

use strand_auth::Operation;

use crate::admin;
use crate::context::Context;
use crate::security::Resource;

/// Splits `host:port`; a bad port reads as 0, which no client can reach, so it shows.
pub fn host_port(addr: &str) -> (String, i32) {
    match addr.rsplit_once(':') {
        Some((host, port)) => (
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port.parse().unwrap_or(0),
        ),
        None => (addr.to_string(), 0),
    }
}

/// The controller's broker id, or -1.
pub fn controller_id(ctx: &Context) -> i32 {
    ctx.handles()
        .cluster
        .controller()
        .and_then(|(node, _)| Cluster::broker_of_node(&ctx.state(), node))
        .map_or(-1, |b| b.0 as i32)
}

/// The Metadata answer.
pub async fn metadata(ctx: Context, req: MetadataRequest, version: i16) -> MetadataResponse {
    let mut state = ctx.state();
    let names: Option<Vec<String>> = req.topics.as_ref().map(|topics| {
        topics
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
            .collect()
    });
    // Topics asked for by id alone (v10 and later): consumers of the KIP-848 protocol are
    // assigned partitions by topic id and look the names up so.
    let by_id: Vec<uuid::Uuid> = req
        .topics
        .iter()
        .flatten()
        .filter(|t| t.name.is_none() && !t.topic_id.is_nil())
        .map(|t| t.topic_id)
        .collect();
    // Unknown topics are created when both the request (v4+; always before) and the broker
    // allow it.
    // Kafka's order: a topic the client may not describe is refused whether or not it
    // exists; one it may describe but that does not exist is created when it may create it.
    let describable = |name: &str| ctx.authorized(Operation::Describe, Resource::topic(name));
    let mut created = Vec::new();
    let auto_create =
        ctx.handles().settings.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
    if let (Some(names), true) = (&names, auto_create) {
        for name in names {
            if state.topic_by_name(name).is_none()
                && describable(name)
                && (ctx.authorized(Operation::Create, Resource::cluster())
                    || ctx.authorized(Operation::Create, Resource::topic(name)))
            {
                match admin::create_topic(&ctx, name, None, None, Default::default()).await {
                    Ok(()) => created.push(name.clone()),
                    Err((code, message)) => {
                        tracing::info!(topic = %name, ?code, %message, "auto-creation refused");
                    }
                }
            }
        }
        if !created.is_empty() {
            state = ctx.state();
        }
    }
    let mut topics: Vec<MetadataResponseTopic> = match &names {
        None => state
            .topics_by_id()
            .values()
            .filter(|t| describable(&t.name))
            .map(|t| describe(&ctx, t))
            .collect(),
        Some(names) => names
            .iter()
            .map(|name| match state.topic_by_name(name) {
                _ if !describable(name) => MetadataResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_string(name.clone()))))
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code()),
                Some(topic) => describe(&ctx, topic),
                None => MetadataResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_string(name.clone()))))
                    .with_error_code(ResponseError::UnknownTopicOrPartition.code()),
            })
            .collect(),
    };
    for id in by_id {
        let found = state
            .topics_by_id()
            .get(&strand_meta::TopicId(id))
            .filter(|t| describable(&t.name));
        topics.push(match found {
            Some(topic) => describe(&ctx, topic),
            // As Kafka: an id the client may not describe is as unknown as one that is.
            None => MetadataResponseTopic::default()
                .with_topic_id(id)
                .with_error_code(ResponseError::UnknownTopicId.code()),
        });
    }
    // Each client is told the addresses of the listener it came in on; a broker without
    // that listener is left out, and one that registered a single listener serves all.
    let listener = &ctx.session.listener;
    let mut brokers: Vec<MetadataResponseBroker> = state
        .brokers()
        .values()
        .filter(|b| b.state != strand_meta::BrokerState::Decommissioned)
        .filter_map(|b| {
            ctx.advertised_addr(b)
                .map(|addr| broker_entry(b.id.0, addr, b.rack.clone()))
        })
        .collect();
    // A broker still joining lists itself, so clients keep a connection and ask again.
    let me = ctx.handles().cluster.identity().broker_id;
    if !brokers.iter().any(|b| b.node_id.0 == me as i32) {
        brokers.push(broker_entry(
            me,
            &listener.advertised,
            ctx.handles().rack.clone(),
        ));
    }
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(
            state
                .cluster_id()
                .map(|c| StrBytes::from_string(c.0.to_string())),
        )
        .with_controller_id(BrokerId(controller_id(&ctx)))
        .with_topics(topics)
}

fn broker_entry(id: u32, kafka_addr: &str, rack: Option<String>) -> MetadataResponseBroker {
    let (host, port) = host_port(kafka_addr);
    MetadataResponseBroker::default()
        .with_node_id(BrokerId(id as i32))
        .with_host(StrBytes::from_string(host))
        .with_port(port)
        .with_rack(rack.map(StrBytes::from_string))
}

fn describe(ctx: &Context, topic: &Topic) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(p, assignment)| {
            let leadership = ctx.leadership(topic.id, p as u32);
            let replicas: Vec<BrokerId> = assignment
                .replicas
                .iter()
                .map(|b| BrokerId(b.0 as i32))
                .collect();
            let isr = ctx.in_sync(topic, p as u32);
            let error = match leadership.leader {
                Some(_) => 0,
                None => ResponseError::LeaderNotAvailable.code(),
            };
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(p as i32)
                .with_leader_id(BrokerId(leadership.leader.map_or(-1, |b| b.0 as i32)))
                .with_leader_epoch(leadership.epoch)
                .with_isr_nodes(isr.iter().map(|b| BrokerId(b.0 as i32)).collect())
                .with_offline_replicas(
                    assignment
                        .replicas
                        .iter()
                        .filter(|b| !ctx.broker_alive(**b))
                        .map(|b| BrokerId(b.0 as i32))
                        .collect(),
                )
                .with_replica_nodes(replicas)
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic.id.0)
        .with_is_internal(topic.kind != TopicKind::User)
        .with_partitions(partitions)
}
