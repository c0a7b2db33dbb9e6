//! The `Topic` resource: one Kafka topic of a Cluster, declared as YAML.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::topic_config::TopicConfig;

/// A Kafka topic of a Strand Cluster in the same namespace.
// Several printer columns share a type, which clippy takes for repeated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "strand.dev",
    version = "v1alpha1",
    kind = "Topic",
    namespaced,
    status = "TopicStatus",
    derive = "PartialEq",
    shortname = "strt",
    category = "strand",
    doc = "A Kafka topic of a Strand Cluster in the same namespace.",
    // Without topicName the topic is named after the object, so the object's name must be a
    // legal topic name; Kubernetes names allow 253 characters, Kafka topic names 249.
    validation = Rule::new("has(self.spec.topicName) || size(self.metadata.name) <= 249")
        .message("metadata.name is longer than a topic name may be (249); set spec.topicName"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#,
        description = "Whether the topic matches its spec"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#,
        description = "Why the topic is or is not ready"
    ),
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".spec.clusterRef.name",
        description = "Cluster the topic belongs to"
    ),
    printcolumn(
        name = "Topic",
        type_ = "string",
        json_path = ".status.topicName",
        description = "Kafka topic name"
    ),
    printcolumn(
        name = "Partitions",
        type_ = "integer",
        json_path = ".spec.partitions",
        description = "Partitions wanted"
    ),
    printcolumn(
        name = "Replication",
        type_ = "integer",
        json_path = ".spec.replicationFactor",
        description = "Replicas of each partition wanted"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].message"#,
        description = "What the operator says of the topic",
        priority = "1"
    )
)]
// A rule on an optional field runs only when the old and new objects both have it, so adding
// or removing topicName is caught here, one level up.
#[x_kube(
    validation = Rule::new("has(self.topicName) == has(oldSelf.topicName)")
        .message("topicName cannot be added or removed after creation"),
    // Kafka refuses acks=all writes for good when fewer replicas than min.insync.replicas
    // can ever be in sync.
    validation = Rule::new(
        "!has(self.config) || !has(self.config.min__dot__insync__dot__replicas) || \
         self.config.min__dot__insync__dot__replicas <= self.replicationFactor"
    )
    .message("config min.insync.replicas cannot exceed replicationFactor: acks=all writes would always be refused")
)]
#[serde(rename_all = "camelCase")]
pub struct TopicSpec {
    /// The Cluster, in the same namespace, that holds the topic.
    #[x_kube(validation = Rule::new("self == oldSelf").message("clusterRef is immutable"))]
    pub cluster_ref: ClusterRef,
    /// Kafka topic name; the object's name when absent. Set it for names Kubernetes cannot
    /// hold, such as ones with capitals or underscores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 249), regex(pattern = r"^[a-zA-Z0-9._-]+$"))]
    #[x_kube(
        validation = Rule::new("self != '.' && self != '..'")
            .message("topicName cannot be '.' or '..'"),
        validation = Rule::new("self == oldSelf").message("topicName is immutable")
    )]
    pub topic_name: Option<String>,
    /// Number of partitions. It can grow, never shrink: Kafka clients map keys to partitions
    /// by count, and records in a removed partition would be lost.
    #[schemars(range(min = 1))]
    #[x_kube(validation = Rule::new("self >= oldSelf").message("partitions cannot be decreased"))]
    pub partitions: i32,
    /// Replicas of each partition, on distinct brokers. Changing it re-replicates.
    #[schemars(range(min = 1, max = 7))]
    pub replication_factor: i32,
    /// Kafka topic config; absent keys take the cluster's defaults.
    #[serde(default)]
    pub config: TopicConfig,
    /// What happens to the Kafka topic when this object is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Take over a topic that already exists in the cluster and is managed by no one (made by
    /// a Kafka client or `strand topic create`): its partitions and config then follow this
    /// spec, and `deletionPolicy` applies to it. Without it such a topic is left untouched and
    /// the Topic is Stalled. A topic another Topic manages is never taken over.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopt: bool,
}

/// Prefix of the owner a Topic records on the topics it manages.
pub const OWNER_PREFIX: &str = "strand.dev/Topic/";

impl Topic {
    /// The owner this Topic records on the topic it manages: kind, namespace, name and uid,
    /// so that another object (or this name re-created) is never taken for it.
    pub fn owner(&self) -> String {
        let meta = &self.metadata;
        format!(
            "{OWNER_PREFIX}{}/{}/{}",
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default(),
            meta.uid.as_deref().unwrap_or_default()
        )
    }

    /// The Kafka topic name: `spec.topicName`, else the object's name.
    pub fn kafka_name(&self) -> Option<&str> {
        self.spec
            .topic_name
            .as_deref()
            .or(self.metadata.name.as_deref())
    }
}

/// The Cluster a Topic belongs to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ClusterRef {
    /// Name of the Cluster.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// What happens to the Kafka topic when its Topic object is deleted.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Delete the topic and its records.
    #[default]
    Delete,
    /// Keep the topic; only the object goes.
    Retain,
}

/// What the operator observed of a Topic.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TopicStatus {
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling` and `Stalled`, each with the generation it was computed for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::schema::conditions")]
    pub conditions: Vec<Condition>,
    /// Kafka topic name, once the operator has looked at the Topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_name: Option<String>,
    /// Kafka topic id (a UUID), once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    /// Id of the cluster the topic was created in, so that the Topic never acts on a
    /// same-named topic of another cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// Partitions the topic has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,
    /// Replicas each partition has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<i32>,
    /// Partitions without a leader.
    #[serde(default)]
    pub leaderless_partitions: i32,
    /// Partitions with fewer in-sync replicas than the replication factor.
    #[serde(default)]
    pub under_replicated_partitions: i32,
    /// Progress of a replication factor change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_change: Option<ReplicaChangeStatus>,
}

/// Progress of a replication factor change.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaChangeStatus {
    /// Replication factor before the change.
    pub from: i32,
    /// Replication factor being reached.
    pub to: i32,
    /// Partitions whose replicas already match `to`.
    pub partitions_done: i32,
}
