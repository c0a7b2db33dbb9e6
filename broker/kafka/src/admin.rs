//! Kafka's topic administration, served through the broker's topic admin (the same core as
//! the gRPC admin API), whose refusals map to Kafka error codes here, in one place.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use strand_proto::admin as pb;

use strand_auth::Operation;

use crate::context::Context;
use crate::errors::{Refused, refused};
use crate::security::Resource;

/// The refusal of a topic the client may not act on.
fn topic_denied() -> Refused {
    (
        ResponseError::TopicAuthorizationFailed,
        "not authorized for this topic".to_string(),
    )
}

/// Creates a topic; partitions and replication factor default to the broker's settings, the
/// replication factor capped at the number of active brokers.
pub async fn create_topic(
    ctx: &Context,
    name: &str,
    partitions: Option<u32>,
    replication_factor: Option<u16>,
    config: BTreeMap<String, String>,
) -> Result<(), Refused> {
    let settings = &ctx.handles().settings;
    let replication_factor = replication_factor.unwrap_or_else(|| {
        let active = ctx
            .state()
            .brokers()
            .values()
            .filter(|b| b.state == strand_meta::BrokerState::Active)
            .count();
        let active = u16::try_from(active).unwrap_or(u16::MAX).max(1);
        settings.default_replication_factor.min(active)
    });
    ctx.handles()
        .admin
        .create_topic(pb::CreateTopicRequest {
            name: name.to_string(),
            partitions: partitions.unwrap_or(settings.default_partitions),
            replication_factor: u32::from(replication_factor),
            config: config.into_iter().collect(),
            owner: String::new(),
        })
        .await
        .map_err(refused)
}

fn message(text: impl Into<String>) -> Option<kafka_protocol::protocol::StrBytes> {
    Some(kafka_protocol::protocol::StrBytes::from_string(text.into()))
}

/// CreateTopics: each topic through the admin API's create. `-1` partitions or replication
/// factor take the broker's defaults; explicit replica assignments are refused (placement is
/// Strand's); `validate_only` checks without creating.
pub async fn create_topics(
    ctx: Context,
    req: kafka_protocol::messages::CreateTopicsRequest,
    _version: i16,
) -> kafka_protocol::messages::CreateTopicsResponse {
    use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
    let mut results = Vec::with_capacity(req.topics.len());
    let create_any = ctx.authorized(Operation::Create, Resource::cluster());
    for topic in req.topics {
        let name = topic.name.0.to_string();
        let base = CreatableTopicResult::default()
            .with_name(topic.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        let config: BTreeMap<String, String> = topic
            .configs
            .iter()
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .collect();
        let partitions = match topic.num_partitions {
            -1 => None,
            n => Some(u32::try_from(n).unwrap_or(0)),
        };
        let replication_factor = match topic.replication_factor {
            -1 => None,
            n => Some(u16::try_from(n).unwrap_or(0)),
        };
        let outcome = if !create_any && !ctx.authorized(Operation::Create, Resource::topic(&name)) {
            Err(topic_denied())
        } else if !topic.assignments.is_empty() {
            Err((
                ResponseError::InvalidRequest,
                "manual replica assignments are not accepted; Strand places replicas".to_string(),
            ))
        } else if req.validate_only {
            validate_new_topic(&ctx, &name, partitions, replication_factor, &config)
        } else {
            create_topic(&ctx, &name, partitions, replication_factor, config).await
        };
        results.push(match outcome {
            Ok(()) => {
                let state = ctx.state();
                match state.topic_by_name(&name) {
                    Some(t) => base
                        .with_topic_id(t.id.0)
                        .with_num_partitions(t.partitions.len() as i32)
                        .with_replication_factor(t.replication_factor as i16),
                    None => base,
                }
            }
            Err((code, text)) => base
                .with_error_code(code.code())
                .with_error_message(message(text)),
        });
    }
    kafka_protocol::messages::CreateTopicsResponse::default().with_topics(results)
}

fn validate_new_topic(
    ctx: &Context,
    name: &str,
    partitions: Option<u32>,
    replication_factor: Option<u16>,
    config: &BTreeMap<String, String>,
) -> Result<(), Refused> {
    let state = ctx.state();
    if state.topic_by_name(name).is_some() {
        return Err((
            ResponseError::TopicAlreadyExists,
            format!("topic `{name}` already exists"),
        ));
    }
    if partitions == Some(0) {
        return Err((
            ResponseError::InvalidPartitions,
            "a topic needs at least 1 partition".into(),
        ));
    }
    let active = state
        .brokers()
        .values()
        .filter(|b| b.state == strand_meta::BrokerState::Active)
        .count();
    if let Some(rf) = replication_factor
        && (rf == 0 || usize::from(rf) > active)
    {
        return Err((
            ResponseError::InvalidReplicationFactor,
            format!("replication factor {rf} needs {rf} active brokers, but {active} are active"),
        ));
    }
    strand_meta::validate_topic_config(config)
        .map(|_| ())
        .map_err(|e| (ResponseError::InvalidConfig, format!("invalid config: {e}")))
}

/// DeleteTopics, by name (topic ids arrive only in versions not spoken here).
pub async fn delete_topics(
    ctx: Context,
    req: kafka_protocol::messages::DeleteTopicsRequest,
    _version: i16,
) -> kafka_protocol::messages::DeleteTopicsResponse {
    use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
    let mut names: Vec<kafka_protocol::messages::TopicName> = req.topic_names;
    names.extend(req.topics.into_iter().filter_map(|t| t.name));
    let mut results = Vec::with_capacity(names.len());
    for name in names {
        let outcome = if ctx.authorized(Operation::Delete, Resource::topic(&name)) {
            ctx.handles()
                .admin
                .delete_topic(pb::DeleteTopicRequest {
                    name: name.0.to_string(),
                    topic_id: String::new(),
                    expected_owner: None,
                })
                .await
                .map(|_| ())
                .map_err(refused)
        } else {
            Err(topic_denied())
        };
        let base = DeletableTopicResult::default().with_name(Some(name));
        results.push(match outcome {
            Ok(()) => base,
            Err((code, text)) => base
                .with_error_code(code.code())
                .with_error_message(message(text)),
        });
    }
    kafka_protocol::messages::DeleteTopicsResponse::default().with_responses(results)
}

/// CreatePartitions: grows a topic to `count` partitions.
pub async fn create_partitions(
    ctx: Context,
    req: kafka_protocol::messages::CreatePartitionsRequest,
    _version: i16,
) -> kafka_protocol::messages::CreatePartitionsResponse {
    use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
    let mut results = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let name = topic.name.0.to_string();
        let current = ctx.state().topic_by_name(&name).map(|t| t.partitions.len());
        let outcome = match (current, u32::try_from(topic.count)) {
            _ if !ctx.authorized(Operation::Alter, Resource::topic(&name)) => Err(topic_denied()),
            (None, _) => Err((
                ResponseError::UnknownTopicOrPartition,
                format!("unknown topic `{name}`"),
            )),
            (_, Err(_)) => Err((
                ResponseError::InvalidPartitions,
                "partition count must be positive".into(),
            )),
            (Some(_), Ok(_)) if topic.assignments.is_some() => Err((
                ResponseError::InvalidRequest,
                "manual replica assignments are not accepted; Strand places replicas".into(),
            )),
            (Some(now), Ok(count)) if count as usize <= now => Err((
                ResponseError::InvalidPartitions,
                format!("topic `{name}` has {now} partitions; it can only grow"),
            )),
            (Some(_), Ok(_)) if req.validate_only => Ok(()),
            (Some(_), Ok(count)) => ctx
                .handles()
                .admin
                .update_topic(pb::UpdateTopicRequest {
                    name: name.clone(),
                    partitions: Some(count),
                    ..Default::default()
                })
                .await
                .map_err(refused),
        };
        let base = CreatePartitionsTopicResult::default().with_name(topic.name);
        results.push(match outcome {
            Ok(()) => base,
            Err((code, text)) => base
                .with_error_code(code.code())
                .with_error_message(message(text)),
        });
    }
    kafka_protocol::messages::CreatePartitionsResponse::default().with_results(results)
}

/// Kafka's resource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// Kafka's config sources.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// DescribeConfigs: a topic's keys (set, or Kafka's default), and the broker settings that
/// shape what Kafka clients see.
pub async fn describe_configs(
    ctx: Context,
    req: kafka_protocol::messages::DescribeConfigsRequest,
    _version: i16,
) -> kafka_protocol::messages::DescribeConfigsResponse {
    use kafka_protocol::messages::describe_configs_response::{
        DescribeConfigsResourceResult, DescribeConfigsResult,
    };
    let state = ctx.state();
    let entry = |name: &str, value: String, source: i8, read_only: bool| {
        DescribeConfigsResourceResult::default()
            .with_name(kafka_protocol::protocol::StrBytes::from_string(
                name.to_string(),
            ))
            .with_value(message(value))
            .with_config_source(source)
            .with_read_only(read_only)
    };
    let results =
        req.resources
            .iter()
            .map(|resource| {
                let wanted = |key: &str| {
                    resource
                        .configuration_keys
                        .as_ref()
                        .is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| &**k == key))
                };
                let base = DescribeConfigsResult::default()
                    .with_resource_type(resource.resource_type)
                    .with_resource_name(resource.resource_name.clone());
                let denied = match resource.resource_type {
                    RESOURCE_TOPIC => (!ctx.authorized(
                        Operation::DescribeConfigs,
                        Resource::topic(&resource.resource_name),
                    ))
                    .then_some(ResponseError::TopicAuthorizationFailed),
                    RESOURCE_BROKER => (!ctx
                        .authorized(Operation::DescribeConfigs, Resource::cluster()))
                    .then_some(ResponseError::ClusterAuthorizationFailed),
                    _ => None,
                };
                if let Some(code) = denied {
                    return base
                        .with_error_code(code.code())
                        .with_error_message(message("not authorized to describe its configs"));
                }
                match resource.resource_type {
                RESOURCE_TOPIC => match state.topic_by_name(&resource.resource_name) {
                    None => base
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        .with_error_message(message(format!(
                            "unknown topic `{}`",
                            &*resource.resource_name
                        ))),
                    Some(topic) => base.with_configs(
                        strand_meta::KEYS
                            .iter()
                            .filter(|k| wanted(k.name))
                            .map(|k| match topic.config.get(k.name) {
                                Some(v) => entry(k.name, v.clone(), SOURCE_TOPIC, false),
                                None => entry(
                                    k.name,
                                    strand_meta::default_value(k.name)
                                        .unwrap_or_default()
                                        .to_string(),
                                    SOURCE_DEFAULT,
                                    false,
                                ),
                            })
                            .collect(),
                    ),
                },
                RESOURCE_BROKER => {
                    let settings = &ctx.handles().settings;
                    let configs = [
                        ("auto.create.topics.enable", settings.auto_create_topics.to_string()),
                        (
                            "default.replication.factor",
                            settings.default_replication_factor.to_string(),
                        ),
                        ("num.partitions", settings.default_partitions.to_string()),
                    ]
                    .into_iter()
                    .filter(|(k, _)| wanted(k))
                    .map(|(k, v)| entry(k, v, SOURCE_STATIC_BROKER, true))
                    .collect();
                    base.with_configs(configs)
                }
                other => base
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(message(format!(
                        "resource type {other} has no configs here; topics (2) and brokers (4) do"
                    ))),
            }
            })
            .collect();
    kafka_protocol::messages::DescribeConfigsResponse::default().with_results(results)
}

/// IncrementalAlterConfigs for topics: SET and DELETE, through the admin API's update.
/// Internal topics take config changes too, as Kafka's `__consumer_offsets` does.
pub async fn incremental_alter_configs(
    ctx: Context,
    req: kafka_protocol::messages::IncrementalAlterConfigsRequest,
    _version: i16,
) -> kafka_protocol::messages::IncrementalAlterConfigsResponse {
    use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
    let mut responses = Vec::with_capacity(req.resources.len());
    for resource in &req.resources {
        let name = resource.resource_name.to_string();
        let outcome = match resource.resource_type {
            RESOURCE_TOPIC if !ctx.authorized(Operation::AlterConfigs, Resource::topic(&name)) => {
                Err(topic_denied())
            }
            RESOURCE_BROKER if !ctx.authorized(Operation::AlterConfigs, Resource::cluster()) => {
                Err((
                    ResponseError::ClusterAuthorizationFailed,
                    "not authorized to alter broker configs".to_string(),
                ))
            }
            RESOURCE_TOPIC => alter_topic_config(&ctx, &name, resource, req.validate_only).await,
            RESOURCE_BROKER => Err((
                ResponseError::InvalidRequest,
                "broker settings come from the broker's settings file and flags".to_string(),
            )),
            other => Err((
                ResponseError::InvalidRequest,
                format!("resource type {other} has no configs here"),
            )),
        };
        let base = AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        responses.push(match outcome {
            Ok(()) => base,
            Err((code, text)) => base
                .with_error_code(code.code())
                .with_error_message(message(text)),
        });
    }
    kafka_protocol::messages::IncrementalAlterConfigsResponse::default().with_responses(responses)
}

async fn alter_topic_config(
    ctx: &Context,
    name: &str,
    resource: &kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource,
    validate_only: bool,
) -> Result<(), Refused> {
    let Some(topic) = ctx.state().topic_by_name(name).cloned() else {
        return Err((
            ResponseError::UnknownTopicOrPartition,
            format!("unknown topic `{name}`"),
        ));
    };
    let mut set = BTreeMap::new();
    let mut remove = Vec::new();
    for config in &resource.configs {
        let key = config.name.to_string();
        match (config.config_operation, &config.value) {
            (0, Some(value)) => {
                set.insert(key, value.to_string());
            }
            (0, None) => {
                return Err((
                    ResponseError::InvalidConfig,
                    format!("`{key}` is set without a value"),
                ));
            }
            (1, _) => remove.push(key),
            (op, _) => {
                return Err((
                    ResponseError::InvalidConfig,
                    format!("operation {op} on `{key}`: only SET (0) and DELETE (1) are supported"),
                ));
            }
        }
    }
    if validate_only {
        let mut merged = topic.config.clone();
        for key in &remove {
            merged.remove(key);
        }
        merged.extend(set);
        return strand_meta::validate_topic_config(&merged)
            .map(|_| ())
            .map_err(|e| (ResponseError::InvalidConfig, format!("invalid config: {e}")));
    }
    ctx.handles()
        .admin
        .update_topic(pb::UpdateTopicRequest {
            name: name.to_string(),
            set_config: set.into_iter().collect(),
            remove_config: remove,
            ..Default::default()
        })
        .await
        .map_err(refused)
}

/// DescribeCluster: the brokers and the controller.
pub async fn describe_cluster(
    ctx: Context,
    _req: kafka_protocol::messages::DescribeClusterRequest,
    _version: i16,
) -> kafka_protocol::messages::DescribeClusterResponse {
    use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
    let state = ctx.state();
    let brokers = state
        .brokers()
        .values()
        .filter(|b| b.state != strand_meta::BrokerState::Decommissioned)
        .filter_map(|b| Some((b, ctx.advertised_addr(b)?)))
        .map(|(b, addr)| {
            let (host, port) = crate::metadata::host_port(addr);
            DescribeClusterBroker::default()
                .with_broker_id(kafka_protocol::messages::BrokerId(b.id.0 as i32))
                .with_host(kafka_protocol::protocol::StrBytes::from_string(host))
                .with_port(port)
                .with_rack(
                    b.rack
                        .clone()
                        .map(kafka_protocol::protocol::StrBytes::from_string),
                )
        })
        .collect();
    kafka_protocol::messages::DescribeClusterResponse::default()
        .with_cluster_id(kafka_protocol::protocol::StrBytes::from_string(
            state
                .cluster_id()
                .map(|c| c.0.to_string())
                .unwrap_or_default(),
        ))
        .with_controller_id(kafka_protocol::messages::BrokerId(
            crate::metadata::controller_id(&ctx),
        ))
        .with_brokers(brokers)
}
