//! The Kubernetes objects a Cluster needs, built from the Cluster alone.
//!
//! No I/O: [`desired`] is a function of the Cluster object, so its output is tested as golden
//! YAML and the reconciler only has to apply it (server-side apply, one field manager).

mod names;
mod services;
mod statefulset;

pub use names::{ClusterNames, label_selector, labels, selector_labels};
pub use services::{
    NGINX_PASSTHROUGH, POD_NAME_LABEL, external_services, ingresses, listener_port_name,
};
pub use statefulset::advertised_file;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;

use crate::broker_config::{SettingError, to_broker_settings};
use crate::crd::{Cluster, ListenerSpec};

/// Port of gRPC: Raft RPCs of every group and the admin API.
pub const GRPC_PORT: i32 = 9093;
/// Port of HTTP: `/metrics`, `/healthz`, `/readyz`.
pub const HTTP_PORT: i32 = 9644;
/// Pod annotation holding the broker's rack, copied by the operator from the node's
/// topology label, since the downward API cannot read node labels.
pub const RACK_ANNOTATION: &str = "strand.dev/rack";
/// Pod template annotation that changes when `broker.yaml` changes, so that the brokers
/// restart (one at a time) with the new config.
pub const CONFIG_HASH_ANNOTATION: &str = "strand.dev/config-hash";
/// Key of the broker config file in the ConfigMap.
pub const BROKER_CONFIG_KEY: &str = "broker.yaml";

/// Why a Cluster's objects could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DesiredError {
    /// The Cluster has no `metadata.name`.
    #[error("cluster has no name")]
    MissingName,
    /// The Cluster has no `metadata.namespace`.
    #[error("cluster {name} has no namespace")]
    MissingNamespace {
        /// The Cluster's name.
        name: String,
    },
    /// The Cluster has no `metadata.uid`, so nothing can be owned by it; only objects read
    /// from the API server have one.
    #[error("cluster {name} has no uid")]
    MissingUid {
        /// The Cluster's name.
        name: String,
    },
    /// `spec.config` holds a setting the brokers would refuse.
    #[error("cluster {name}: {source}")]
    Setting {
        /// The Cluster's name.
        name: String,
        /// Which setting, and why.
        #[source]
        source: SettingError,
    },
    /// `spec.config` did not render as YAML.
    #[error("cannot render the broker config of cluster {name}")]
    BrokerConfig {
        /// The Cluster's name.
        name: String,
        /// What the YAML serializer said.
        #[source]
        source: serde_saphyr::ser::Error,
    },
}

/// Every object one Cluster owns.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// Holds `broker.yaml`.
    pub config_map: ConfigMap,
    /// Gives every broker pod a stable DNS name, ready or not, for its peers.
    pub headless_service: Service,
    /// Where Kafka clients bootstrap.
    pub client_service: Service,
    /// The brokers.
    pub stateful_set: StatefulSet,
    /// The Services of external listeners, for brokers `0..spec.replicas`.
    pub external_services: Vec<Service>,
    /// The Ingresses of `ingress` listeners, for brokers `0..spec.replicas`.
    pub ingresses: Vec<Ingress>,
    /// Limits voluntary disruptions of the brokers.
    pub pod_disruption_budget: PodDisruptionBudget,
    /// Who may reach which broker port.
    pub network_policy: NetworkPolicy,
}

/// Builds every object `cluster` needs, each owned by it.
pub fn desired(cluster: &Cluster) -> Result<Desired, DesiredError> {
    let names = ClusterNames::of(cluster)?;
    let owner = cluster
        .controller_owner_ref(&())
        .ok_or_else(|| DesiredError::MissingUid {
            name: names.cluster().to_owned(),
        })?;
    let settings = broker_settings(cluster).map_err(|source| DesiredError::Setting {
        name: names.cluster().to_owned(),
        source,
    })?;
    let broker_config =
        serde_saphyr::to_string(&settings).map_err(|source| DesiredError::BrokerConfig {
            name: names.cluster().to_owned(),
            source,
        })?;
    let listeners = cluster.spec.listeners();
    Ok(Desired {
        config_map: config_map(&names, &owner, &broker_config),
        headless_service: services::headless(&names, &owner, &listeners),
        client_service: services::client(&names, &owner, &listeners),
        stateful_set: statefulset::stateful_set(cluster, &names, &owner, &broker_config),
        external_services: services::external_services(
            &names,
            &owner,
            &listeners,
            cluster.spec.replicas,
        ),
        ingresses: services::ingresses(&names, &owner, &listeners, cluster.spec.replicas),
        pod_disruption_budget: pod_disruption_budget(cluster, &names, &owner),
        network_policy: network_policy(&names, &owner, &listeners),
    })
}

/// The broker settings file: `spec.config` under the broker's names and types, with
/// `spec.balancing` for what `spec.config` does not set itself.
fn broker_settings(cluster: &Cluster) -> Result<BTreeMap<String, serde_json::Value>, SettingError> {
    let balancing = &cluster.spec.balancing;
    let timeout: std::time::Duration = balancing.broker_failure_timeout.into();
    let mut settings = to_broker_settings(&cluster.spec.config)?;
    for (key, value) in [
        (
            "leader_balancing",
            serde_json::json!(balancing.leader_balancing),
        ),
        (
            "broker_failure_timeout_ms",
            serde_json::json!(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)),
        ),
        (
            "max_concurrent_moves",
            serde_json::json!(balancing.max_concurrent_moves.max(1)),
        ),
    ] {
        settings.entry(key.to_owned()).or_insert(value);
    }
    Ok(settings)
}

/// Labels of the operator's own pods, as the chart sets them.
const OPERATOR_POD_LABELS: [(&str, &str); 1] = [("app.kubernetes.io/name", "strand-operator")];

/// The brokers' ports by who may reach them, where the network enforces NetworkPolicies:
/// every Kafka listener and HTTP (metrics, probes) from anywhere; gRPC (Raft between brokers, the admin API)
/// only from the Cluster's brokers and the operator's pods. Mutual TLS on the gRPC port holds
/// either way; this keeps everyone else from even connecting.
fn network_policy(
    names: &ClusterNames,
    owner: &OwnerReference,
    listeners: &[ListenerSpec],
) -> NetworkPolicy {
    let port = |number: i32| NetworkPolicyPort {
        port: Some(IntOrString::Int(number)),
        protocol: Some("TCP".to_owned()),
        ..NetworkPolicyPort::default()
    };
    let brokers = LabelSelector {
        match_labels: Some(selector_labels(names.cluster())),
        ..LabelSelector::default()
    };
    let operator = NetworkPolicyPeer {
        // The operator runs in a namespace of its own, any one.
        namespace_selector: Some(LabelSelector::default()),
        pod_selector: Some(LabelSelector {
            match_labels: Some(
                OPERATOR_POD_LABELS
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    };
    NetworkPolicy {
        metadata: metadata(names, names.network_policy(), owner),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(brokers.clone()),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule {
                    from: None,
                    ports: Some(
                        listeners
                            .iter()
                            .map(|l| port(l.port))
                            .chain([port(HTTP_PORT)])
                            .collect(),
                    ),
                },
                NetworkPolicyIngressRule {
                    from: Some(vec![
                        NetworkPolicyPeer {
                            pod_selector: Some(brokers),
                            ..NetworkPolicyPeer::default()
                        },
                        operator,
                    ]),
                    ports: Some(vec![port(GRPC_PORT)]),
                },
            ]),
            ..NetworkPolicySpec::default()
        }),
    }
}

/// Metadata shared by every owned object: name, namespace, common labels, owner.
pub(crate) fn metadata(names: &ClusterNames, name: String, owner: &OwnerReference) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(names.namespace().to_owned()),
        labels: Some(labels(names.cluster())),
        owner_references: Some(vec![owner.clone()]),
        ..ObjectMeta::default()
    }
}

fn config_map(names: &ClusterNames, owner: &OwnerReference, broker_config: &str) -> ConfigMap {
    ConfigMap {
        metadata: metadata(names, names.config_map(), owner),
        data: Some(BTreeMap::from([(
            BROKER_CONFIG_KEY.to_owned(),
            broker_config.to_owned(),
        )])),
        ..ConfigMap::default()
    }
}

fn pod_disruption_budget(
    cluster: &Cluster,
    names: &ClusterNames,
    owner: &OwnerReference,
) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: metadata(names, names.disruption_budget(), owner),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(
                cluster.spec.disruption_budget.max_unavailable,
            )),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(names.cluster())),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

/// A short stable fingerprint of `text`: 64-bit FNV-1a in hex.
///
/// Stable across Rust releases and platforms, unlike `DefaultHasher`, because it ends up in
/// pod templates and golden files.
pub(crate) fn fingerprint(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}
