//! The `Cluster` resource: a set of Strand brokers run as one StatefulSet.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, PodSecurityContext, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Strand cluster: `replicas` brokers with their storage, config and placement.
// Several printer columns share a type, which clippy takes for repeated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "strand.dev",
    version = "v1alpha1",
    kind = "Cluster",
    namespaced,
    status = "ClusterStatus",
    derive = "PartialEq",
    shortname = "strc",
    category = "strand",
    doc = "A Strand cluster: a StatefulSet of brokers that speak the Kafka protocol.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.labelSelector"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#,
        description = "Whether every broker is ready and nothing is under-replicated"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#,
        description = "Why the cluster is or is not ready"
    ),
    printcolumn(
        name = "Brokers",
        type_ = "integer",
        json_path = ".status.readyReplicas",
        description = "Brokers ready"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".spec.replicas",
        description = "Brokers wanted"
    ),
    printcolumn(
        name = "Controller",
        type_ = "integer",
        json_path = ".status.controllerId",
        description = "Broker id of the metadata group's leader"
    ),
    printcolumn(
        name = "Under-replicated",
        type_ = "integer",
        json_path = ".status.underReplicatedPartitions",
        description = "Partitions with fewer in-sync replicas than their replication factor"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].message"#,
        description = "What the operator says of the cluster",
        priority = "1"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// Number of brokers.
    #[schemars(range(min = 1))]
    pub replicas: i32,
    /// Broker container image, such as `ghcr.io/strand-dev/strand:0.1.0`; by default the
    /// broker image of the operator's own version ([`default_broker_image`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,
    /// CPU and memory of each broker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Persistent volume of each broker.
    pub storage: StorageSpec,
    /// Broker settings for the brokers' `broker.yaml`, under Strand's names
    /// (`retention_check_interval_ms`) or Kafka's (`log.retention.check.interval.ms`,
    /// `num.partitions`, `default.replication.factor`, `auto.create.topics.enable`,
    /// `auto.leader.rebalance.enable`); numbers and flags may be given as strings. Unknown
    /// keys are refused when the Cluster is applied.
    ///
    /// Listeners, data directory, advertised address, seeds and rack are set by the operator
    /// on the command line and win over the same settings here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "super::schema::broker_config")]
    pub config: BTreeMap<String, serde_json::Value>,
    /// Spread brokers, and so replicas, across failure domains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<RackSpec>,
    /// Additions to the broker pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodOverrides>,
    /// The PodDisruptionBudget of the brokers.
    #[serde(default)]
    pub disruption_budget: DisruptionBudgetSpec,
    /// How the cluster moves leaders and replicas.
    #[serde(default)]
    pub balancing: BalancingSpec,
    /// How the Cluster's CAs are renewed.
    #[serde(default)]
    pub certificate_authority: CertificateAuthoritySpec,
    /// What happens to the brokers' volumes when the Cluster is deleted: `Retain` (the
    /// default) keeps them, so the data outlives a mistaken delete; `Delete` removes them with
    /// the brokers.
    #[serde(default)]
    pub deletion_policy: VolumeDeletionPolicy,
    /// Start the brokers on volumes left by an earlier Cluster of the same name (kept by
    /// `deletionPolicy: Retain`), with that cluster's topics and records. Without it, a new
    /// Cluster that finds such volumes is Stalled and starts nothing, so old data never comes
    /// back by accident.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopt_retained_volumes: bool,
    /// The Kafka listeners: where clients connect, whether they speak TLS and how they
    /// authenticate. Without any, the brokers have one internal listener on 9092 with TLS and
    /// SCRAM-SHA-512 ([`default_listeners`]); a plaintext listener has to be asked for. When any
    /// listener authenticates clients, the brokers check every request against Kafka ACLs and
    /// refuse what none allows; `User` resources hold the credentials and ACLs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    #[x_kube(
        validation = Rule::new("self.all(a, self.exists_one(b, b.name == a.name))")
            .message("listener names must be unique"),
        validation = Rule::new("self.all(a, self.exists_one(b, b.port == a.port))")
            .message("listener ports must be unique"),
        validation = Rule::new(
            "!self.exists(l, l.authentication == 'tls') || \
             !self.exists(l, l.tls && l.authentication == 'none')"
        )
        .message("a TLS listener without authentication cannot be combined with one that authenticates by client certificate: the brokers would ask its clients for certificates too"),
    )]
    pub listeners: Vec<ListenerSpec>,
}

/// One Kafka listener of a Cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.authentication != 'tls' || self.tls")
        .message("authentication tls needs tls: true"),
    validation = Rule::new("self.type != 'ingress' || (has(self.ingress) && self.tls)")
        .message("an ingress listener needs tls: true and `ingress` (its host names): the ingress controller passes TLS through to the brokers and routes by the server name clients ask for"),
    validation = Rule::new("!has(self.ingress) || self.type == 'ingress'")
        .message("`ingress` is only for listeners of type ingress"),
    validation = Rule::new("!has(self.certificate) || self.tls")
        .message("`certificate` is for listeners with tls: true"),
)]
pub struct ListenerSpec {
    /// Name of the listener, such as `tls` or `external`: the Kafka listener name (in capitals)
    /// and part of its Services' names.
    #[schemars(
        length(min = 1, max = 12),
        regex(pattern = r"^[a-z]([a-z0-9-]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Port the brokers listen on (and, for `nodeport`, the Services' port).
    #[schemars(range(min = 1024, max = 65535))]
    #[x_kube(validation = Rule::new("self != 9093 && self != 9644")
        .message("9093 (gRPC) and 9644 (HTTP) are the brokers' own ports"))]
    pub port: i32,
    /// How clients reach the listener: `internal` (pod names inside the Kubernetes cluster,
    /// bootstrap Service `<cluster>-bootstrap`), `nodeport` (from outside, through a
    /// NodePort Service per broker; each broker advertises its node's address and its own
    /// node port), `loadbalancer` (from outside, through a LoadBalancer Service per broker;
    /// each broker advertises its load balancer's address once it has one, restarting once
    /// to take it) or `ingress` (from outside, through an ingress controller that passes TLS
    /// through and routes by server name (SNI): an Ingress per broker, each broker
    /// advertising its own host name of `ingress`).
    #[serde(default, rename = "type")]
    pub type_: ListenerType,
    /// Whether the listener speaks TLS, with a certificate of the Cluster's CA.
    #[serde(default)]
    pub tls: bool,
    /// How clients authenticate: `none`, `scram-sha-512` (SASL with the credentials of a
    /// `User`), or `tls` (a client certificate of the Cluster's clients CA, from a `User`).
    #[serde(default)]
    pub authentication: ListenerAuthentication,
    /// The host names of an `ingress` listener, and how its Ingresses are made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressListenerSpec>,
    /// The certificate a TLS listener presents, when not one of the Cluster's CA: one
    /// cert-manager issues, or one in a Secret someone else keeps. Renewals are picked up
    /// without restarting the brokers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<ListenerCertificateSpec>,
}

/// Where a listener's certificate comes from: exactly one of `issuerRef` and `secretName`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.issuerRef) != has(self.secretName)")
    .message("give exactly one of issuerRef (cert-manager issues the certificate) and secretName (a Secret you keep)"))]
pub struct ListenerCertificateSpec {
    /// A cert-manager issuer: the operator asks it for the certificate with a cert-manager
    /// `Certificate` `<cluster>-listener-<listener>`, naming the listener's addresses, and
    /// cert-manager keeps it in Secret `<cluster>-listener-<listener>-tls` and renews it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_ref: Option<IssuerRef>,
    /// A Secret in the Cluster's namespace with `tls.crt` and `tls.key` (and `ca.crt`, the
    /// CA clients should trust, if not a public one), made and renewed by someone else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: Option<String>,
    /// How long cert-manager makes the certificate valid for, such as `2160h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// How long before expiry cert-manager renews it, such as `360h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_before: Option<String>,
}

/// A cert-manager issuer, as a cert-manager `Certificate` names it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IssuerRef {
    /// The issuer's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// `Issuer` (in the Cluster's namespace), `ClusterIssuer`, or an external issuer's kind.
    #[serde(default = "default_issuer_kind")]
    pub kind: String,
    /// The issuer's API group.
    #[serde(default = "default_issuer_group")]
    pub group: String,
}

fn default_issuer_kind() -> String {
    "Issuer".to_owned()
}

fn default_issuer_group() -> String {
    "cert-manager.io".to_owned()
}

/// Regular expression of a DNS host name (lower case).
const HOST_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// How an `ingress` listener is reached: a host name to bootstrap from and one per broker,
/// all resolving to the ingress controller, which passes TLS through to the broker the server
/// name (SNI) names. With ingress-nginx that takes `--enable-ssl-passthrough`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IngressListenerSpec {
    /// Host name clients bootstrap from, such as `kafka.example.com`.
    #[schemars(length(min = 1, max = 253), regex(pattern = HOST_PATTERN))]
    pub bootstrap_host: String,
    /// Host name of each broker, with `{ordinal}` standing for the broker pod's ordinal, such
    /// as `broker-{ordinal}.kafka.example.com`.
    #[schemars(length(min = 1, max = 240))]
    #[x_kube(
        validation = Rule::new("self.contains('{ordinal}')")
            .message("brokerHost needs {ordinal}: every broker has a host name of its own"),
        validation = Rule::new(
            "self.replace('{ordinal}', '0').matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')"
        )
        .message("brokerHost must be a DNS host name in lower case once {ordinal} is replaced"),
    )]
    pub broker_host: String,
    /// The port the ingress controller takes TLS on, which clients connect to.
    #[serde(default = "default_ingress_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// The IngressClass of the Ingresses; without one, the Kubernetes cluster's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// Annotations of the Ingresses, besides `nginx.ingress.kubernetes.io/ssl-passthrough:
    /// "true"`, which they always carry: another controller's way of asking for TLS
    /// passthrough, for instance.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

fn default_ingress_port() -> i32 {
    443
}

impl IngressListenerSpec {
    /// The host name of the broker with pod ordinal `ordinal`.
    pub fn broker_host(&self, ordinal: i32) -> String {
        self.broker_host.replace("{ordinal}", &ordinal.to_string())
    }
}

/// How clients reach a listener.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ListenerType {
    /// From inside the Kubernetes cluster, by pod DNS names.
    #[default]
    Internal,
    /// From outside, through a NodePort Service per broker.
    Nodeport,
    /// From outside, through a LoadBalancer Service per broker.
    Loadbalancer,
    /// From outside, through an ingress controller passing TLS through by server name.
    Ingress,
}

impl ListenerType {
    /// Whether clients outside the Kubernetes cluster reach it, through Services of their own.
    pub fn external(self) -> bool {
        self != ListenerType::Internal
    }
}

/// How clients of a listener authenticate.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ListenerAuthentication {
    /// They do not: every client is `User:ANONYMOUS`.
    #[default]
    #[serde(rename = "none")]
    None,
    /// SASL SCRAM-SHA-512.
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
    /// A client certificate signed by the Cluster's clients CA; the principal is
    /// `User:CN=<name>`.
    #[serde(rename = "tls")]
    Tls,
}

impl ListenerSpec {
    /// The Kafka listener name: the name in capitals, `-` as `_`.
    pub fn kafka_name(&self) -> String {
        self.name.to_uppercase().replace('-', "_")
    }

    /// Kafka's security protocol of the listener.
    pub fn protocol(&self) -> &'static str {
        match (self.tls, self.authentication) {
            (false, ListenerAuthentication::None) => "PLAINTEXT",
            (false, _) => "SASL_PLAINTEXT",
            (true, ListenerAuthentication::ScramSha512) => "SASL_SSL",
            (true, _) => "SSL",
        }
    }
}

/// The listeners a Cluster has when it names none: one internal listener on 9092 with TLS and
/// SCRAM-SHA-512.
pub fn default_listeners() -> Vec<ListenerSpec> {
    vec![ListenerSpec {
        name: "tls".to_owned(),
        port: 9092,
        type_: ListenerType::Internal,
        tls: true,
        authentication: ListenerAuthentication::ScramSha512,
        ingress: None,
        certificate: None,
    }]
}

impl ClusterSpec {
    /// The Cluster's listeners: `spec.listeners`, or [`default_listeners`].
    pub fn listeners(&self) -> Vec<ListenerSpec> {
        if self.listeners.is_empty() {
            default_listeners()
        } else {
            self.listeners.clone()
        }
    }

    /// Whether any listener authenticates its clients, which turns the brokers' ACL
    /// authorizer on.
    pub fn authenticates(&self) -> bool {
        self.listeners()
            .iter()
            .any(|l| l.authentication != ListenerAuthentication::None)
    }
}

/// What happens to a Cluster's volumes when it is deleted.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VolumeDeletionPolicy {
    /// Keep the volumes and their data.
    #[default]
    Retain,
    /// Delete the volumes with the brokers.
    Delete,
}

/// The broker image a Cluster runs when it names none: the one released with this operator.
pub fn default_broker_image() -> String {
    format!("ghcr.io/strand-dev/strand:{}", env!("CARGO_PKG_VERSION"))
}

/// Persistent volume of each broker.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Volume size, such as `100Gi`. Raising it expands every broker's volume when its
    /// StorageClass allows expansion; volumes cannot shrink.
    pub size: Quantity,
    /// StorageClass of the volumes; the cluster's default class when absent. It cannot change
    /// once the volumes exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// Rack awareness: brokers learn their rack from a label of the node they run on.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RackSpec {
    /// Node label whose value is the broker's rack, such as `topology.kubernetes.io/zone`.
    #[serde(default = "default_topology_key")]
    #[schemars(length(min = 1))]
    pub topology_key: String,
}

fn default_topology_key() -> String {
    "topology.kubernetes.io/zone".to_owned()
}

/// Additions to the broker pod template.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodOverrides {
    /// Extra pod labels; they never replace the labels the operator selects pods by.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Extra pod annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Node labels the brokers must run on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the brokers tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Replaces the default anti-affinity, which prefers one broker per node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// PriorityClass of the broker pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// Replaces the brokers' pod security context (non-root, `fsGroup` 65532 so the image's
    /// user can write its volume, the runtime's default seccomp profile). On OpenShift set it
    /// to `{}`: the restricted SCC then assigns the user and group from the namespace's range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<PodSecurityContext>,
}

/// The PodDisruptionBudget of the brokers.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DisruptionBudgetSpec {
    /// Brokers that voluntary disruptions (node drains) may take down at once.
    ///
    /// At least 1: with 0 a node drain could never finish.
    #[serde(default = "default_max_unavailable")]
    #[schemars(range(min = 1))]
    pub max_unavailable: i32,
}

fn default_max_unavailable() -> i32 {
    1
}

impl Default for DisruptionBudgetSpec {
    fn default() -> Self {
        DisruptionBudgetSpec {
            max_unavailable: default_max_unavailable(),
        }
    }
}

/// How the cluster moves leaders and replicas.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BalancingSpec {
    /// Move partition leaders so that every broker leads about as many partitions.
    #[serde(default = "default_leader_balancing")]
    pub leader_balancing: bool,
    /// How long a broker may be down before its replicas are re-created on other brokers,
    /// as a duration such as `10m` or `1h30m`.
    #[serde(default = "default_broker_failure_timeout")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('0s')")
        .message("must be a duration such as 10m or 1h30m"))]
    pub broker_failure_timeout: kube::core::Duration,
    /// Replica moves in flight at once, across the cluster.
    #[serde(default = "default_max_concurrent_moves")]
    #[schemars(range(min = 1))]
    pub max_concurrent_moves: i32,
}

/// How the Cluster's CAs (the cluster CA and the clients CA) are renewed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CertificateAuthoritySpec {
    /// How long a CA renewal waits for Kafka clients, as a duration such as `24h`: for the
    /// cluster CA, from the moment every broker trusts the new CA beside the old to the
    /// moment the brokers get certificates of the new one, which a client that trusts only
    /// the old CA can no longer connect to; for the clients CA, from the moment Users'
    /// certificates are issued again to the moment the old CA is no longer trusted, which
    /// refuses a client still presenting an old certificate. Clients take `ca.crt`,
    /// `user.crt` and `user.key` again from their User's Secret within this time.
    #[serde(default = "default_client_trust_period")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('0s')")
        .message("must be a duration such as 24h or 30m"))]
    pub client_trust_period: kube::core::Duration,
}

fn default_client_trust_period() -> kube::core::Duration {
    "24h".parse().expect("24h is a duration")
}

impl Default for CertificateAuthoritySpec {
    fn default() -> Self {
        CertificateAuthoritySpec {
            client_trust_period: default_client_trust_period(),
        }
    }
}

fn default_leader_balancing() -> bool {
    true
}

fn default_broker_failure_timeout() -> kube::core::Duration {
    "5m".parse().expect("5m is a duration")
}

fn default_max_concurrent_moves() -> i32 {
    2
}

impl Default for BalancingSpec {
    fn default() -> Self {
        BalancingSpec {
            leader_balancing: default_leader_balancing(),
            broker_failure_timeout: default_broker_failure_timeout(),
            max_concurrent_moves: default_max_concurrent_moves(),
        }
    }
}

/// What the operator observed of a Cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling` and `Stalled`, each with the generation it was computed for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::schema::conditions")]
    pub conditions: Vec<Condition>,
    /// Broker pods that exist (the scale subresource's status replicas).
    #[serde(default)]
    pub replicas: i32,
    /// Broker pods that are ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Every broker the metadata group knows, with the pod it runs in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub brokers: Vec<BrokerStatus>,
    /// Broker id of the controller, the metadata group's leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_id: Option<i64>,
    /// Partitions with fewer in-sync replicas than their replication factor.
    #[serde(default)]
    pub under_replicated_partitions: i32,
    /// Partitions without a leader, which refuse produce and fetch.
    #[serde(default)]
    pub leaderless_partitions: i32,
    /// Progress of the replica moves in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebalance: Option<RebalanceStatus>,
    /// `host:port` list for Kafka clients in the cluster: the first internal listener's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_servers: Option<String>,
    /// Every listener, with where its clients bootstrap.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<ListenerStatus>,
    /// Label selector of the broker pods (the scale subresource's selector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
}

/// Where clients of one listener bootstrap.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    /// The listener's name.
    pub name: String,
    /// `internal`, `nodeport`, `loadbalancer` or `ingress`.
    #[serde(rename = "type")]
    pub type_: ListenerType,
    /// Kafka's security protocol on it, such as `SASL_SSL`.
    pub security_protocol: String,
    /// `host:port` to bootstrap from; for a `nodeport` listener, a node's address and the
    /// node port of the bootstrap Service, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_servers: Option<String>,
}

/// One broker: its id, its pod and its load.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BrokerStatus {
    /// Broker id; not the pod's ordinal, since a broker that lost its disk gets a new id.
    pub id: i64,
    /// Pod the broker runs in, if it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Rack the broker reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
    /// Where the broker is in its life.
    pub state: BrokerState,
    /// Partitions the broker leads.
    #[serde(default)]
    pub leaders: i32,
    /// Partition replicas the broker holds, including ones moving away (a draining broker is
    /// empty at zero).
    #[serde(default)]
    pub replicas: i32,
}

/// Where a broker is in its life.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokerState {
    /// Serving and taking new replicas.
    Active,
    /// Having its replicas moved away before it is removed.
    Draining,
    /// Registered but not heard from.
    Down,
    /// Holds nothing and may be removed.
    Decommissioned,
}

/// Progress of the replica moves in flight.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RebalanceStatus {
    /// What balancing is doing, such as `2 partitions moving; broker 4 draining: 6 replicas
    /// left`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Partitions whose replicas are moving now.
    #[serde(default)]
    pub moves_in_flight: i32,
    /// Moves planned after those.
    #[serde(default)]
    pub moves_pending: i32,
}
