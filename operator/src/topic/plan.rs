//! What to do for one Topic, decided without I/O: from the spec, the cluster's id and the
//! topic the cluster describes, the one admin call to make (or none), or why nothing can be
//! done without a person.

use std::collections::BTreeMap;

use strand_meta::{TopicKind, validate_topic_name};
use strand_proto::admin::{CreateTopicRequest, TopicDescription, UpdateTopicRequest};

use crate::conditions::Standing;
use crate::crd::{OWNER_PREFIX, ReplicaChangeStatus, Topic, TopicStatus};

/// Why a Topic cannot reach its spec without a person: a condition reason and a message that
/// says what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stall {
    /// A `PascalCase` reason.
    pub reason: &'static str,
    /// What happened and what to do.
    pub message: String,
}

/// The admin call a Topic needs next.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Nothing can be done until a person acts.
    Stalled(Stall),
    /// The topic does not exist: create it.
    Create(CreateTopicRequest),
    /// The topic exists and differs (or is to be adopted): add partitions, set or remove
    /// config entries, record this Topic as its owner. The request names the owner the
    /// cluster must still see, so nothing changes if another took it meanwhile.
    Update {
        /// The call to make.
        request: UpdateTopicRequest,
        /// One line per change, such as `partitions 6 → 12`.
        changes: Vec<String>,
        /// The Topic takes the topic over from no one.
        adopts: bool,
    },
    /// The topic matches the spec.
    InSync,
}

/// Checks what the cluster would refuse anyway, so a bad Topic is reported without a call.
/// The schema catches most of this at apply time; this covers objects written around it.
pub fn check_spec(topic: &Topic, name: &str) -> Result<(), Stall> {
    if let Err(error) = validate_topic_name(name, TopicKind::User) {
        return Err(Stall {
            reason: "InvalidTopicName",
            message: format!(
                "topic name `{name}` is not valid: {error}; set spec.topicName to a valid name"
            ),
        });
    }
    if topic.spec.partitions < 1 {
        return Err(Stall {
            reason: "InvalidPartitions",
            message: format!(
                "spec.partitions is {}; a topic needs at least 1 partition",
                topic.spec.partitions
            ),
        });
    }
    if topic.spec.replication_factor < 1 {
        return Err(Stall {
            reason: "InvalidReplicationFactor",
            message: format!(
                "spec.replicationFactor is {}; it must be at least 1",
                topic.spec.replication_factor
            ),
        });
    }
    if let Err(error) = topic.spec.config.validate() {
        return Err(Stall {
            reason: "InvalidConfig",
            message: format!("spec.config: {error}"),
        });
    }
    Ok(())
}

/// The next step for `topic`, named `name` in the cluster whose id is `cluster_id`, given the
/// topic the cluster describes (`None` when it has none).
pub fn plan(
    topic: &Topic,
    name: &str,
    cluster_id: &str,
    observed: Option<&TopicDescription>,
) -> Plan {
    if let Err(stall) = check_spec(topic, name) {
        return Plan::Stalled(stall);
    }
    let bound = topic.status.as_ref().and_then(|s| s.cluster_id.as_deref());
    if let Some(bound) = bound.filter(|bound| *bound != cluster_id) {
        return Plan::Stalled(Stall {
            reason: "ClusterIdChanged",
            message: format!(
                "this Topic belongs to cluster {bound}, but Cluster {} now answers as cluster \
                 {cluster_id} (re-created?); the topic is not created there on its own: delete \
                 and re-apply the Topic to create it in the new cluster",
                topic.spec.cluster_ref.name
            ),
        });
    }
    let desired_config = topic.spec.config.to_entries();
    let owner = topic.owner();
    let Some(observed) = observed else {
        return Plan::Create(CreateTopicRequest {
            name: name.to_owned(),
            // check_spec made both at least 1.
            partitions: topic.spec.partitions.unsigned_abs(),
            replication_factor: topic.spec.replication_factor.unsigned_abs(),
            config: desired_config.into_iter().collect(),
            owner,
        });
    };
    let adopts = match ownership(topic, name, observed) {
        Ok(adopts) => adopts,
        Err(stall) => return Plan::Stalled(stall),
    };
    let actual_partitions = observed.partitions.len();
    let wanted_partitions = topic.spec.partitions.unsigned_abs() as usize;
    if wanted_partitions < actual_partitions {
        return Plan::Stalled(Stall {
            reason: "PartitionsBelowActual",
            message: format!(
                "topic {name} has {actual_partitions} partitions and spec.partitions is \
                 {wanted_partitions}; partitions cannot be removed: set spec.partitions to at \
                 least {actual_partitions}"
            ),
        });
    }
    let mut request = UpdateTopicRequest {
        name: name.to_owned(),
        expected_owner: Some(observed.owner.clone()),
        ..UpdateTopicRequest::default()
    };
    let mut changes = Vec::new();
    if adopts {
        request.owner = Some(owner);
        changes.push("adopted: managed by this Topic from now on".to_owned());
    }
    if wanted_partitions > actual_partitions {
        request.partitions = Some(topic.spec.partitions.unsigned_abs());
        changes.push(format!(
            "partitions {actual_partitions} → {wanted_partitions}"
        ));
    }
    let observed_config: BTreeMap<&str, &str> = observed
        .config
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for (key, value) in &desired_config {
        match observed_config.get(key.as_str()) {
            Some(old) if old == value => {}
            Some(old) => changes.push(format!("{key} {old} → {value}")),
            None => changes.push(format!("{key} (default) → {value}")),
        }
        if observed_config.get(key.as_str()) != Some(&value.as_str()) {
            request.set_config.insert(key.clone(), value.clone());
        }
    }
    for (key, old) in &observed_config {
        if !desired_config.contains_key(*key) {
            changes.push(format!("{key} {old} → (default)"));
            request.remove_config.push((*key).to_owned());
        }
    }
    let wanted_rf = topic.spec.replication_factor.unsigned_abs();
    if observed.replication_factor != wanted_rf {
        request.replication_factor = Some(wanted_rf);
        changes.push(format!(
            "replication factor {} → {wanted_rf}",
            observed.replication_factor
        ));
    }
    if !changes.is_empty() {
        return Plan::Update {
            request,
            changes,
            adopts,
        };
    }
    Plan::InSync
}

/// Whether the Topic may act on the existing topic `observed`: `Ok(false)` when it already
/// manages it, `Ok(true)` when it is to take it over from no one (it asked to, or it is the
/// Topic that created it before owners were recorded), otherwise why not.
fn ownership(topic: &Topic, name: &str, observed: &TopicDescription) -> Result<bool, Stall> {
    if observed.internal {
        return Err(Stall {
            reason: "InternalTopic",
            message: format!(
                "{name} is an internal topic of the cluster; it cannot be managed by a Topic"
            ),
        });
    }
    if observed.owner == topic.owner() {
        return Ok(false);
    }
    if observed.owner.is_empty() {
        let created_here = topic
            .status
            .as_ref()
            .and_then(|s| s.topic_id.as_deref())
            .is_some_and(|id| id == observed.topic_id);
        if topic.spec.adopt || created_here {
            return Ok(true);
        }
        return Err(Stall {
            reason: "TopicNotOwned",
            message: format!(
                "topic {name} already exists in the cluster and no Topic manages it (made by a \
                 Kafka client or `strand topic create`); nothing was changed. To manage it \
                 from this Topic, set spec.adopt: true: its partitions and config will then \
                 follow this spec, and deletionPolicy will apply to it"
            ),
        });
    }
    match observed.owner.strip_prefix(OWNER_PREFIX) {
        Some(other) => {
            let mut parts = other.splitn(3, '/');
            let (namespace, object) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            Err(Stall {
                reason: "TopicOwnedByAnotherTopic",
                message: format!(
                    "topic {name} is managed by Topic {namespace}/{object}; nothing was changed. \
                     Two Topics cannot manage one topic: delete this one, or give it another \
                     spec.topicName"
                ),
            })
        }
        None => Err(Stall {
            reason: "TopicOwnedElsewhere",
            message: format!(
                "topic {name} is managed by `{}`; nothing was changed",
                observed.owner
            ),
        }),
    }
}

/// Partitions of `topic` without a leader, and with fewer replicas assigned than its
/// replication factor. The admin API does not report in-sync replicas per partition, so the
/// second count is of assigned replicas; the cluster-wide under-replicated count on the
/// Cluster's status comes from the brokers' own reports.
pub fn partition_health(topic: &TopicDescription) -> (i32, i32) {
    let leaderless = topic
        .partitions
        .iter()
        .filter(|p| p.leader.is_none())
        .count();
    let under = topic
        .partitions
        .iter()
        .filter(|p| p.replicas.len() < topic.replication_factor as usize)
        .count();
    (saturate(leaderless), saturate(under))
}

fn saturate(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Partitions of `topic` whose replicas are still moving: a replica count other than the
/// replication factor, or replicas leaving.
pub fn moving_partitions(topic: &TopicDescription) -> usize {
    topic
        .partitions
        .iter()
        .filter(|p| p.replicas.len() != topic.replication_factor as usize || !p.leaving.is_empty())
        .count()
}

/// The standing of a topic the cluster describes, once no call is needed.
pub fn standing_of(topic: &TopicDescription) -> Standing {
    let (leaderless, _) = partition_health(topic);
    let moving = moving_partitions(topic);
    if moving > 0 {
        Standing::Reconciling {
            reason: "ReplicasMoving",
            message: format!(
                "{moving} of {} partitions of topic {} are moving replicas to reach replication \
                 factor {}",
                topic.partitions.len(),
                topic.name,
                topic.replication_factor
            ),
        }
    } else if leaderless > 0 {
        Standing::Reconciling {
            reason: "LeaderlessPartitions",
            message: format!(
                "{leaderless} of {} partitions of topic {} have no leader yet",
                topic.partitions.len(),
                topic.name
            ),
        }
    } else {
        Standing::Ready {
            reason: "TopicReady",
            message: format!(
                "topic {} has {} partitions with replication factor {}",
                topic.name,
                topic.partitions.len(),
                topic.replication_factor
            ),
        }
    }
}

/// The status a Topic should have: what the cluster describes, the cluster it is bound to,
/// and the conditions of `standing`. Fields the cluster did not answer for keep their values.
pub fn status(
    topic: &Topic,
    cluster_id: Option<&str>,
    observed: Option<&TopicDescription>,
    standing: &Standing,
    now: k8s_openapi::jiff::Timestamp,
) -> TopicStatus {
    let old = topic.status.clone().unwrap_or_default();
    let generation = topic.metadata.generation;
    let mut status = TopicStatus {
        observed_generation: generation,
        conditions: standing.conditions(generation, &old.conditions, now),
        topic_name: topic.kafka_name().map(str::to_owned),
        ..old.clone()
    };
    // Only the topic this Topic manages reaches its status: a stalled Topic never binds to a
    // topic that is someone else's.
    let owner = topic.owner();
    if let Some(observed) = observed.filter(|o| o.owner == owner) {
        let (leaderless, under) = partition_health(observed);
        status.topic_id = Some(observed.topic_id.clone());
        status.cluster_id = Some(observed.cluster_id.clone())
            .filter(|id| !id.is_empty())
            .or_else(|| cluster_id.map(str::to_owned));
        status.partitions = Some(saturate(observed.partitions.len()));
        status.replication_factor =
            Some(i32::try_from(observed.replication_factor).unwrap_or(i32::MAX));
        status.leaderless_partitions = leaderless;
        status.under_replicated_partitions = under;
        let to = i32::try_from(observed.replication_factor).unwrap_or(i32::MAX);
        let moving = moving_partitions(observed);
        status.replica_change = (moving > 0).then(|| {
            let from = old
                .replica_change
                .as_ref()
                .map(|c| c.from)
                .or(old.replication_factor)
                .unwrap_or(to);
            ReplicaChangeStatus {
                from,
                to,
                partitions_done: saturate(observed.partitions.len() - moving),
            }
        });
    }
    status
}

#[cfg(test)]
mod tests;
