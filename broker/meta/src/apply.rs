//! Applying one command to the cluster state: check everything first, then change the state,
//! so a refused command changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use crate::command::{
    Applied, Command, CommandError, InternalTopicChange, MAX_ADDR_LEN, MAX_LISTENERS,
    MAX_OWNER_LEN, MAX_PARTITIONS_PER_TOPIC, MAX_PRODUCER_ID_BLOCK, Registration,
    validate_topic_name,
};
use crate::config::validate_topic_config;
use crate::ids::{BrokerId, ClusterId, NodeId, PartitionId, TopicId};
use crate::state::{Broker, BrokerState, ClusterState, PartitionAssignment, Topic, TopicKind};

/// Producer ids go on the wire as Kafka `int64`, where negative values mean "none".
const MAX_PRODUCER_ID: u64 = i64::MAX as u64;

impl ClusterState {
    /// Applies one command. On success the state has changed and [`version`](Self::version)
    /// grew by one; on error the state is exactly as before.
    ///
    /// Deterministic: the result depends only on the state and the command, so every broker
    /// that applies the same log reaches the same state and the same errors.
    pub fn apply(&mut self, command: &Command) -> Result<Applied, CommandError> {
        let applied = match command {
            Command::Bootstrap { cluster_id } => self.bootstrap(*cluster_id)?,
            _ if self.cluster_id.is_none() => return Err(CommandError::NotBootstrapped),
            Command::RegisterBroker {
                broker_id,
                node_id,
                kafka_addr,
                listeners,
                grpc_addr,
                http_addr,
                rack,
                now_ms,
            } => self.register_broker(
                *broker_id,
                *node_id,
                [kafka_addr, grpc_addr, http_addr],
                listeners,
                rack,
                *now_ms,
            )?,
            Command::CreateTopic {
                topic_id,
                name,
                kind,
                replication_factor,
                config,
                assignments,
                now_ms,
                owner,
            } => self.create_topic(NewTopic {
                id: *topic_id,
                name,
                kind: *kind,
                replication_factor: *replication_factor,
                config,
                assignments,
                now_ms: *now_ms,
                owner: owner.as_deref(),
            })?,
            Command::DeleteTopic {
                topic_id,
                expected_owner,
            } => self.delete_topic(*topic_id, expected_owner.as_ref())?,
            Command::UpdateTopic {
                topic_id,
                expected_owner,
                assignments_to_add,
                replication_factor,
                set_config,
                remove_config,
                owner,
            } => self.update_topic(
                *topic_id,
                &TopicUpdate {
                    expected_owner: expected_owner.as_ref(),
                    assignments_to_add,
                    replication_factor: *replication_factor,
                    set_config,
                    remove_config,
                    owner: owner.as_ref(),
                },
            )?,
            Command::CreatePartitions {
                topic_id,
                assignments_to_add,
            } => self.create_partitions(*topic_id, assignments_to_add)?,
            Command::AlterTopicConfig {
                topic_id,
                set,
                remove,
            } => self.alter_topic_config(*topic_id, set, remove)?,
            Command::SetBrokerState { broker_id, state } => {
                self.set_broker_state(*broker_id, *state)?
            }
            Command::ReassignPartition {
                topic_id,
                partition,
                replicas,
            } => self.reassign_partition(*topic_id, *partition, replicas)?,
            Command::FinishReassignment {
                topic_id,
                partition,
                replicas,
            } => self.finish_reassignment(*topic_id, *partition, replicas)?,
            Command::SetReplicationFactor {
                topic_id,
                replication_factor,
            } => self.set_replication_factor(*topic_id, *replication_factor)?,
            Command::AllocateProducerIds { count } => self.allocate_producer_ids(*count)?,
            Command::CreateAcls { acls } => self.create_acls(acls)?,
            Command::DeleteAcls { acls } => self.delete_acls(acls),
            Command::UpsertScramCredential { user, credential } => {
                self.upsert_scram_credential(user, credential)?
            }
            Command::DeleteScramCredential { user, mechanism } => {
                self.delete_scram_credential(user, *mechanism)?
            }
        };
        self.version += 1;
        Ok(applied)
    }

    fn bootstrap(&mut self, cluster_id: ClusterId) -> Result<Applied, CommandError> {
        if let Some(existing) = self.cluster_id {
            return Err(CommandError::AlreadyBootstrapped {
                cluster_id: existing,
            });
        }
        self.cluster_id = Some(cluster_id);
        Ok(Applied::Bootstrapped { cluster_id })
    }

    fn register_broker(
        &mut self,
        broker_id: BrokerId,
        node_id: NodeId,
        [kafka_addr, grpc_addr, http_addr]: [&String; 3],
        listeners: &BTreeMap<String, String>,
        rack: &Option<String>,
        now_ms: u64,
    ) -> Result<Applied, CommandError> {
        let named = listeners.iter().map(|(name, addr)| (name.as_str(), addr));
        for (listener, addr) in [
            ("kafka", kafka_addr),
            ("grpc", grpc_addr),
            ("http", http_addr),
        ]
        .into_iter()
        .chain(named)
        {
            if !is_host_port(addr) {
                return Err(CommandError::InvalidAddress {
                    broker_id,
                    listener: listener.to_string(),
                    addr: addr.clone(),
                });
            }
        }
        if listeners.len() > MAX_LISTENERS || listeners.keys().any(|name| !is_listener_name(name)) {
            return Err(CommandError::InvalidListeners { broker_id });
        }
        // A node id is one incarnation's identity: whoever held it, now or before, keeps it.
        for other in self.brokers.values() {
            let held = other.node_id == node_id || other.retired_node_ids.contains(&node_id);
            if !held {
                continue;
            }
            if other.id != broker_id {
                return Err(CommandError::NodeIdInUse {
                    broker_id,
                    node_id,
                    owner: other.id,
                });
            }
            if other.node_id != node_id {
                return Err(CommandError::NodeIdRetired { broker_id, node_id });
            }
        }
        let registration = match self.brokers.get_mut(&broker_id) {
            None => {
                self.brokers.insert(
                    broker_id,
                    Broker {
                        id: broker_id,
                        node_id,
                        retired_node_ids: Vec::new(),
                        kafka_addr: kafka_addr.clone(),
                        listeners: listeners.clone(),
                        grpc_addr: grpc_addr.clone(),
                        http_addr: http_addr.clone(),
                        rack: rack.clone(),
                        state: BrokerState::Active,
                        registered_at_ms: now_ms,
                    },
                );
                Registration::NewBroker
            }
            Some(broker) => {
                let registration = if broker.node_id == node_id {
                    Registration::SameIncarnation
                } else {
                    let retired = broker.node_id;
                    broker.retired_node_ids.push(retired);
                    broker.node_id = node_id;
                    broker.registered_at_ms = now_ms;
                    Registration::NewIncarnation { retired }
                };
                broker.kafka_addr = kafka_addr.clone();
                broker.listeners = listeners.clone();
                broker.grpc_addr = grpc_addr.clone();
                broker.http_addr = http_addr.clone();
                broker.rack = rack.clone();
                registration
            }
        };
        Ok(Applied::BrokerRegistered {
            broker_id,
            node_id,
            registration,
        })
    }

    fn create_topic(&mut self, new: NewTopic<'_>) -> Result<Applied, CommandError> {
        if let Some(existing) = self.topics.get(&new.id) {
            return Err(CommandError::TopicIdInUse {
                topic_id: new.id,
                name: existing.name.clone(),
            });
        }
        validate_topic_name(new.name, new.kind).map_err(|source| {
            CommandError::InvalidTopicName {
                name: new.name.to_owned(),
                source,
            }
        })?;
        if self.topic_names.contains_key(new.name) {
            return Err(CommandError::TopicAlreadyExists {
                name: new.name.to_owned(),
            });
        }
        validate_topic_config(new.config).map_err(|source| CommandError::InvalidConfig {
            topic: new.name.to_owned(),
            source,
        })?;
        if new.kind == TopicKind::Internal && new.owner.is_some() {
            return Err(CommandError::InternalTopic {
                topic: new.name.to_owned(),
                change: InternalTopicChange::Owner,
            });
        }
        check_owner_value(new.owner)?;
        if new.assignments.is_empty() {
            return Err(CommandError::NoPartitions {
                name: new.name.to_owned(),
            });
        }
        check_partition_limit(new.name, new.assignments.len() as u64)?;
        if new.replication_factor == 0 {
            return Err(CommandError::ZeroReplicationFactor);
        }
        let available = self.active_broker_count();
        if usize::from(new.replication_factor) > available {
            return Err(CommandError::NotEnoughBrokers {
                needed: new.replication_factor,
                available,
            });
        }
        let partitions = self.check_assignments(0, new.replication_factor, new.assignments)?;
        self.topic_names.insert(new.name.to_owned(), new.id);
        self.topics.insert(
            new.id,
            Topic {
                id: new.id,
                name: new.name.to_owned(),
                kind: new.kind,
                replication_factor: new.replication_factor,
                config: new.config.clone(),
                partitions,
                created_at_ms: new.now_ms,
                owner: new.owner.map(str::to_owned),
            },
        );
        Ok(Applied::TopicCreated { topic_id: new.id })
    }

    fn delete_topic(
        &mut self,
        topic_id: TopicId,
        expected_owner: Option<&Option<String>>,
    ) -> Result<Applied, CommandError> {
        let topic = self.existing_topic(topic_id)?;
        refuse_internal(topic, InternalTopicChange::Delete)?;
        check_expected_owner(topic, expected_owner)?;
        let topic = self
            .topics
            .remove(&topic_id)
            .ok_or(CommandError::UnknownTopicId { topic_id })?;
        self.topic_names.remove(&topic.name);
        Ok(Applied::TopicDeleted {
            topic_id,
            name: topic.name,
        })
    }

    /// Checks every part of the update against a copy of the topic and replaces the topic
    /// only when all of them pass, so the update happens whole or not at all.
    fn update_topic(
        &mut self,
        topic_id: TopicId,
        update: &TopicUpdate<'_>,
    ) -> Result<Applied, CommandError> {
        let topic = self.existing_topic(topic_id)?;
        let change_to_internal = if !update.assignments_to_add.is_empty() {
            Some(InternalTopicChange::AddPartitions)
        } else if update
            .replication_factor
            .is_some_and(|rf| rf != topic.replication_factor)
        {
            Some(InternalTopicChange::ReplicationFactor)
        } else if update.owner.is_some_and(Option::is_some) {
            Some(InternalTopicChange::Owner)
        } else {
            None
        };
        if let Some(change) = change_to_internal {
            refuse_internal(topic, change)?;
        }
        check_expected_owner(topic, update.expected_owner)?;
        let mut next = topic.clone();
        if !update.assignments_to_add.is_empty() {
            let added = self.new_partitions(topic, update.assignments_to_add)?;
            next.partitions.extend(added);
        }
        if let Some(rf) = update.replication_factor {
            self.check_replication_factor(topic, rf)?;
            next.replication_factor = rf;
        }
        if !update.set_config.is_empty() || !update.remove_config.is_empty() {
            next.config = altered_config(topic, update.set_config, update.remove_config)?;
        }
        if let Some(owner) = update.owner {
            check_owner_value(owner.as_deref())?;
            next.owner = owner.clone();
        }
        self.topics.insert(topic_id, next);
        Ok(Applied::TopicUpdated { topic_id })
    }

    fn create_partitions(
        &mut self,
        topic_id: TopicId,
        to_add: &[Vec<BrokerId>],
    ) -> Result<Applied, CommandError> {
        let topic = self.existing_topic(topic_id)?;
        let current = topic.partitions.len() as u32;
        if to_add.is_empty() {
            return Err(CommandError::PartitionsMustIncrease {
                topic: topic.name.clone(),
                current,
                requested: u64::from(current),
            });
        }
        let added = self.new_partitions(topic, to_add)?;
        let count = added.len() as u32;
        let topic = self
            .topics
            .get_mut(&topic_id)
            .ok_or(CommandError::UnknownTopicId { topic_id })?;
        topic.partitions.extend(added);
        Ok(Applied::PartitionsCreated {
            topic_id,
            first: PartitionId(current),
            count,
        })
    }

    /// Checks partitions to add to `topic` and turns them into assignments.
    fn new_partitions(
        &self,
        topic: &Topic,
        to_add: &[Vec<BrokerId>],
    ) -> Result<Vec<PartitionAssignment>, CommandError> {
        refuse_internal(topic, InternalTopicChange::AddPartitions)?;
        let current = topic.partitions.len() as u32;
        check_partition_limit(&topic.name, u64::from(current) + to_add.len() as u64)?;
        self.check_assignments(current, topic.replication_factor, to_add)
    }

    fn alter_topic_config(
        &mut self,
        topic_id: TopicId,
        set: &BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<Applied, CommandError> {
        // Config changes are allowed on internal topics too, as Kafka allows them on
        // `__consumer_offsets` (its controller checks no topic kind when altering configs).
        let config = altered_config(self.existing_topic(topic_id)?, set, remove)?;
        if let Some(topic) = self.topics.get_mut(&topic_id) {
            topic.config = config;
        }
        Ok(Applied::TopicConfigAltered { topic_id })
    }

    fn set_broker_state(
        &mut self,
        broker_id: BrokerId,
        state: BrokerState,
    ) -> Result<Applied, CommandError> {
        let previous = self
            .brokers
            .get(&broker_id)
            .ok_or(CommandError::UnknownBroker { broker_id })?
            .state;
        if state == BrokerState::Decommissioned {
            let replicas = self.assignments_for(broker_id).len();
            if replicas > 0 {
                return Err(CommandError::BrokerHostsReplicas {
                    broker_id,
                    replicas,
                });
            }
        }
        if let Some(broker) = self.brokers.get_mut(&broker_id) {
            broker.state = state;
        }
        Ok(Applied::BrokerStateSet {
            broker_id,
            previous,
            state,
        })
    }

    fn existing_partition(
        &self,
        topic_id: TopicId,
        partition: PartitionId,
    ) -> Result<(&Topic, &PartitionAssignment), CommandError> {
        let topic = self.existing_topic(topic_id)?;
        let assignment = topic.partitions.get(partition.0 as usize).ok_or_else(|| {
            CommandError::UnknownPartition {
                topic: topic.name.clone(),
                partition,
            }
        })?;
        Ok((topic, assignment))
    }

    fn reassign_partition(
        &mut self,
        topic_id: TopicId,
        partition: PartitionId,
        replicas: &[BrokerId],
    ) -> Result<Applied, CommandError> {
        let (_, current) = self.existing_partition(topic_id, partition)?;
        if replicas.is_empty() {
            return Err(CommandError::NoReplicas { partition });
        }
        let mut seen = BTreeSet::new();
        for &broker_id in replicas {
            if !seen.insert(broker_id) {
                return Err(CommandError::DuplicateReplica {
                    partition,
                    broker_id,
                });
            }
            let broker =
                self.brokers
                    .get(&broker_id)
                    .ok_or(CommandError::ReplicaOnUnknownBroker {
                        partition,
                        broker_id,
                    })?;
            // A replica may stay on a draining broker (a reorder while it drains); only new
            // replicas need an active one.
            let new = !current.hosts().any(|b| b == broker_id);
            if new && broker.state != BrokerState::Active {
                return Err(CommandError::ReplicaOnInactiveBroker {
                    partition,
                    broker_id,
                    state: broker.state,
                });
            }
        }
        let leaving: Vec<BrokerId> = current
            .hosts()
            .filter(|b| !seen.contains(b))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if let Some(assignment) = self
            .topics
            .get_mut(&topic_id)
            .and_then(|t| t.partitions.get_mut(partition.0 as usize))
        {
            assignment.replicas = replicas.to_vec();
            assignment.leaving = leaving.clone();
            assignment.initial_nodes.clear();
        }
        Ok(Applied::PartitionReassigned {
            topic_id,
            partition,
            leaving,
        })
    }

    fn finish_reassignment(
        &mut self,
        topic_id: TopicId,
        partition: PartitionId,
        replicas: &[BrokerId],
    ) -> Result<Applied, CommandError> {
        let (topic, current) = self.existing_partition(topic_id, partition)?;
        if current.replicas != replicas {
            return Err(CommandError::StaleReassignment {
                topic: topic.name.clone(),
                partition,
                current: current.replicas.clone(),
                reported: replicas.to_vec(),
            });
        }
        let mut released = Vec::new();
        if let Some(assignment) = self
            .topics
            .get_mut(&topic_id)
            .and_then(|t| t.partitions.get_mut(partition.0 as usize))
        {
            released = std::mem::take(&mut assignment.leaving);
        }
        Ok(Applied::ReassignmentFinished {
            topic_id,
            partition,
            released,
        })
    }

    fn set_replication_factor(
        &mut self,
        topic_id: TopicId,
        replication_factor: u16,
    ) -> Result<Applied, CommandError> {
        let topic = self.existing_topic(topic_id)?;
        let previous = topic.replication_factor;
        self.check_replication_factor(topic, replication_factor)?;
        if let Some(topic) = self.topics.get_mut(&topic_id) {
            topic.replication_factor = replication_factor;
        }
        Ok(Applied::ReplicationFactorSet { topic_id, previous })
    }

    /// Checks a new replication factor for `topic`; its current one always passes.
    fn check_replication_factor(
        &self,
        topic: &Topic,
        replication_factor: u16,
    ) -> Result<(), CommandError> {
        if replication_factor == 0 {
            return Err(CommandError::ZeroReplicationFactor);
        }
        if replication_factor == topic.replication_factor {
            return Ok(());
        }
        refuse_internal(topic, InternalTopicChange::ReplicationFactor)?;
        let available = self.active_broker_count();
        if usize::from(replication_factor) > available {
            return Err(CommandError::NotEnoughBrokers {
                needed: replication_factor,
                available,
            });
        }
        Ok(())
    }

    fn allocate_producer_ids(&mut self, count: u64) -> Result<Applied, CommandError> {
        if count == 0 || count > MAX_PRODUCER_ID_BLOCK {
            return Err(CommandError::InvalidProducerIdCount {
                count,
                max: MAX_PRODUCER_ID_BLOCK,
            });
        }
        let first = self.next_producer_id;
        let last = first
            .checked_add(count - 1)
            .filter(|last| *last <= MAX_PRODUCER_ID)
            .ok_or(CommandError::ProducerIdsExhausted { next: first, count })?;
        self.next_producer_id = last + 1;
        Ok(Applied::ProducerIdsAllocated { first, count })
    }

    fn existing_topic(&self, topic_id: TopicId) -> Result<&Topic, CommandError> {
        self.topics
            .get(&topic_id)
            .ok_or(CommandError::UnknownTopicId { topic_id })
    }

    fn active_broker_count(&self) -> usize {
        self.brokers
            .values()
            .filter(|b| b.state == BrokerState::Active)
            .count()
    }

    /// Checks the replica lists of new partitions numbered from `first` and turns them into
    /// assignments.
    fn check_assignments(
        &self,
        first: u32,
        replication_factor: u16,
        assignments: &[Vec<BrokerId>],
    ) -> Result<Vec<PartitionAssignment>, CommandError> {
        let mut checked = Vec::with_capacity(assignments.len());
        for (n, replicas) in assignments.iter().enumerate() {
            let partition = PartitionId(first + n as u32);
            if replicas.len() != usize::from(replication_factor) {
                return Err(CommandError::WrongReplicaCount {
                    partition,
                    expected: replication_factor,
                    actual: replicas.len(),
                });
            }
            let mut seen = BTreeSet::new();
            let mut initial_nodes = Vec::with_capacity(replicas.len());
            for &broker_id in replicas {
                if !seen.insert(broker_id) {
                    return Err(CommandError::DuplicateReplica {
                        partition,
                        broker_id,
                    });
                }
                let broker =
                    self.brokers
                        .get(&broker_id)
                        .ok_or(CommandError::ReplicaOnUnknownBroker {
                            partition,
                            broker_id,
                        })?;
                if broker.state != BrokerState::Active {
                    return Err(CommandError::ReplicaOnInactiveBroker {
                        partition,
                        broker_id,
                        state: broker.state,
                    });
                }
                initial_nodes.push(broker.node_id);
            }
            checked.push(PartitionAssignment {
                replicas: replicas.clone(),
                initial_nodes,
                leaving: Vec::new(),
            });
        }
        Ok(checked)
    }
}

/// The fields of [`Command::CreateTopic`], borrowed.
struct NewTopic<'a> {
    id: TopicId,
    name: &'a str,
    kind: TopicKind,
    replication_factor: u16,
    config: &'a BTreeMap<String, String>,
    assignments: &'a [Vec<BrokerId>],
    now_ms: u64,
    owner: Option<&'a str>,
}

/// The fields of [`Command::UpdateTopic`] after the topic id, borrowed.
struct TopicUpdate<'a> {
    expected_owner: Option<&'a Option<String>>,
    assignments_to_add: &'a [Vec<BrokerId>],
    replication_factor: Option<u16>,
    set_config: &'a BTreeMap<String, String>,
    remove_config: &'a [String],
    owner: Option<&'a Option<String>>,
}

/// The config `topic` would have after setting `set` and removing `remove`, checked.
fn altered_config(
    topic: &Topic,
    set: &BTreeMap<String, String>,
    remove: &[String],
) -> Result<BTreeMap<String, String>, CommandError> {
    let invalid = |source| CommandError::InvalidConfig {
        topic: topic.name.clone(),
        source,
    };
    let mut config = topic.config.clone();
    for key in remove {
        if set.contains_key(key) {
            return Err(CommandError::ConflictingConfigChange {
                topic: topic.name.clone(),
                key: key.clone(),
            });
        }
        // Removing a key Strand does not know is a typo worth reporting, not a no-op.
        if crate::config::key_spec(key).is_none() {
            return Err(invalid(crate::ConfigError::UnknownKey { key: key.clone() }));
        }
        config.remove(key);
    }
    config.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
    validate_topic_config(&config).map_err(invalid)?;
    Ok(config)
}

/// Refuses `change` when `topic` is internal.
fn refuse_internal(topic: &Topic, change: InternalTopicChange) -> Result<(), CommandError> {
    if topic.is_internal() {
        return Err(CommandError::InternalTopic {
            topic: topic.name.clone(),
            change,
        });
    }
    Ok(())
}

/// Refuses a command whose expected owner (when it names one) is not the topic's owner.
fn check_expected_owner(
    topic: &Topic,
    expected: Option<&Option<String>>,
) -> Result<(), CommandError> {
    match expected {
        Some(expected) if *expected != topic.owner => Err(CommandError::NotOwner {
            topic: topic.name.clone(),
            owner: topic.owner.clone(),
            expected: expected.clone(),
        }),
        _ => Ok(()),
    }
}

/// Refuses an owner that is empty (no one is `None`), too long or holds control characters.
fn check_owner_value(owner: Option<&str>) -> Result<(), CommandError> {
    match owner {
        Some(owner)
            if owner.is_empty()
                || owner.len() > MAX_OWNER_LEN
                || owner.chars().any(char::is_control) =>
        {
            Err(CommandError::InvalidOwner {
                owner: owner.chars().take(64).collect(),
            })
        }
        _ => Ok(()),
    }
}

fn check_partition_limit(topic: &str, requested: u64) -> Result<(), CommandError> {
    if requested > u64::from(MAX_PARTITIONS_PER_TOPIC) {
        return Err(CommandError::TooManyPartitions {
            topic: topic.to_owned(),
            requested,
            max: MAX_PARTITIONS_PER_TOPIC,
        });
    }
    Ok(())
}

/// `host:port` with a non-empty host and a port that fits in 16 bits; IPv6 hosts in brackets.
fn is_host_port(addr: &str) -> bool {
    if addr.len() > MAX_ADDR_LEN || addr.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    match addr.rsplit_once(':') {
        Some((host, port)) => {
            let host_ok = match host.strip_prefix('[') {
                Some(inner) => inner.strip_suffix(']').is_some_and(|h| !h.is_empty()),
                None => !host.is_empty() && !host.contains(':'),
            };
            host_ok && port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok()
        }
        None => false,
    }
}

/// Kafka's listener names: letters, digits, `_` and `-`, at most 64 of them.
fn is_listener_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
