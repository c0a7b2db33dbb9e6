//! The `User` resource: a Kafka client identity of a Cluster, with its credentials and ACLs.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ClusterRef;

/// A Kafka user of a Strand Cluster in the same namespace: the operator makes its credentials
/// (a SCRAM password or a client certificate) and writes them, with everything a client
/// needs, to a Secret named after the User; its ACLs are the only ones its principal has.
/// Deleting the User revokes it.
// Several printer columns share a type, which clippy takes for repeated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "strand.dev",
    version = "v1alpha1",
    kind = "User",
    namespaced,
    status = "UserStatus",
    derive = "PartialEq",
    shortname = "stru",
    category = "strand",
    doc = "A Kafka user of a Strand Cluster in the same namespace: credentials in a Secret, and ACLs.",
    // The SCRAM user name is the object's name; Kafka's tools take names up to this length.
    validation = Rule::new("size(self.metadata.name) <= 64")
        .message("metadata.name is the user name and may be at most 64 characters"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#,
        description = "Whether the user's credentials and ACLs are in place"
    ),
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".spec.clusterRef.name",
        description = "Cluster the user belongs to"
    ),
    printcolumn(
        name = "Authentication",
        type_ = "string",
        json_path = ".spec.authentication.type",
        description = "How the user authenticates"
    ),
    printcolumn(
        name = "Principal",
        type_ = "string",
        json_path = ".status.principal",
        description = "The Kafka principal ACLs name"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].message"#,
        description = "What the operator says of the user",
        priority = "1"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct UserSpec {
    /// The Cluster, in the same namespace, the user belongs to.
    #[x_kube(validation = Rule::new("self == oldSelf").message("clusterRef is immutable"))]
    pub cluster_ref: ClusterRef,
    /// How the user authenticates.
    #[x_kube(validation = Rule::new("self == oldSelf")
        .message("authentication is immutable; make a new User instead"))]
    pub authentication: UserAuthentication,
    /// What the user may do. A User with none may connect but do nothing: brokers refuse what
    /// no ACL allows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub acls: Vec<AclRule>,
}

/// How a User authenticates.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UserAuthentication {
    /// `scram-sha-512` (a password, for listeners with `authentication: scram-sha-512`) or
    /// `tls` (a client certificate of the Cluster's clients CA, for listeners with
    /// `authentication: tls`).
    #[serde(rename = "type")]
    pub type_: UserAuthenticationType,
}

/// How a User authenticates.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserAuthenticationType {
    /// SASL SCRAM-SHA-512; the principal is `User:<name>`.
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
    /// A client certificate with common name `<name>`; the principal is `User:CN=<name>`.
    #[serde(rename = "tls")]
    Tls,
}

/// One ACL rule: operations on a resource, allowed or denied.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AclRule {
    /// What the rule is about.
    pub resource: AclResource,
    /// Kafka's operations: `Read`, `Write`, `Create`, `Delete`, `Alter`, `Describe`,
    /// `ClusterAction`, `DescribeConfigs`, `AlterConfigs`, `IdempotentWrite`, `All`.
    #[schemars(length(min = 1))]
    pub operations: Vec<AclOperation>,
    /// Host the user connects from, `*` for any.
    #[serde(default = "any_host")]
    #[schemars(length(min = 1))]
    pub host: String,
    /// `allow` (the default) or `deny`; a deny wins over any allow.
    #[serde(default, rename = "type")]
    pub type_: AclPermission,
}

fn any_host() -> String {
    "*".to_owned()
}

/// The resource an ACL rule names.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type != 'cluster' || self.name == 'kafka-cluster'")
    .message("a cluster resource is named kafka-cluster"))]
pub struct AclResource {
    /// `topic`, `group`, `cluster` or `transactionalId`.
    #[serde(rename = "type")]
    pub type_: AclResourceType,
    /// The resource's name, a prefix of names (`patternType: prefixed`), or `*` for every one.
    /// A cluster resource is named `kafka-cluster`.
    #[serde(default = "any_name")]
    #[schemars(length(min = 1, max = 249))]
    pub name: String,
    /// `literal` (the default: exactly `name`, or every resource for `*`) or `prefixed`.
    #[serde(default)]
    pub pattern_type: AclPatternType,
}

fn any_name() -> String {
    "*".to_owned()
}

/// Kafka's resource types an ACL may name.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum AclResourceType {
    /// A topic.
    Topic,
    /// A consumer group.
    Group,
    /// The cluster.
    Cluster,
    /// A transactional id.
    TransactionalId,
}

impl AclResourceType {
    /// The name Kafka's tools print, as the admin API takes it.
    pub fn kafka_name(self) -> &'static str {
        match self {
            AclResourceType::Topic => "Topic",
            AclResourceType::Group => "Group",
            AclResourceType::Cluster => "Cluster",
            AclResourceType::TransactionalId => "TransactionalId",
        }
    }
}

/// How an ACL's resource name matches.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum AclPatternType {
    /// Exactly the name (or every resource, for `*`).
    #[default]
    Literal,
    /// Every name that starts with it.
    Prefixed,
}

impl AclPatternType {
    /// The name Kafka's tools print.
    pub fn kafka_name(self) -> &'static str {
        match self {
            AclPatternType::Literal => "Literal",
            AclPatternType::Prefixed => "Prefixed",
        }
    }
}

/// Kafka's ACL operations.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AclOperation {
    /// Read records; join a group.
    Read,
    /// Write records.
    Write,
    /// Create topics.
    Create,
    /// Delete topics or records.
    Delete,
    /// Alter partitions and ACLs.
    Alter,
    /// Describe the resource.
    Describe,
    /// Cluster actions between brokers.
    ClusterAction,
    /// Describe configs.
    DescribeConfigs,
    /// Alter configs.
    AlterConfigs,
    /// Idempotent produce.
    IdempotentWrite,
    /// Every operation.
    All,
}

impl AclOperation {
    /// The name Kafka's tools print, as the admin API takes it.
    pub fn kafka_name(self) -> &'static str {
        match self {
            AclOperation::Read => "Read",
            AclOperation::Write => "Write",
            AclOperation::Create => "Create",
            AclOperation::Delete => "Delete",
            AclOperation::Alter => "Alter",
            AclOperation::Describe => "Describe",
            AclOperation::ClusterAction => "ClusterAction",
            AclOperation::DescribeConfigs => "DescribeConfigs",
            AclOperation::AlterConfigs => "AlterConfigs",
            AclOperation::IdempotentWrite => "IdempotentWrite",
            AclOperation::All => "All",
        }
    }
}

/// Whether an ACL rule allows or denies.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum AclPermission {
    /// Allows the operations.
    #[default]
    Allow,
    /// Denies them, whatever else allows them.
    Deny,
}

impl AclPermission {
    /// The name Kafka's tools print.
    pub fn kafka_name(self) -> &'static str {
        match self {
            AclPermission::Allow => "Allow",
            AclPermission::Deny => "Deny",
        }
    }
}

/// What the operator observed of a User.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UserStatus {
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling` and `Stalled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::schema::conditions")]
    pub conditions: Vec<Condition>,
    /// The Kafka principal the user's ACLs name: `User:<name>` or `User:CN=<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// The Secret holding the credentials and client settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// Id of the cluster the credentials were made in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// ACL rules on topics whose names match no topic that exists now, such as `topic
    /// payments (literal)`: allowed, but shown, since a typo looks the same.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acls_matching_nothing: Vec<String>,
}
