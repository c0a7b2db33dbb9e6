//! The custom resources `Cluster`, `Topic` and `User`, and the CRD YAML generated from them.

mod cluster;
mod schema;
mod topic;
mod user;

pub use cluster::{
    BalancingSpec, BrokerState, BrokerStatus, CertificateAuthoritySpec, Cluster, ClusterSpec,
    ClusterStatus, DisruptionBudgetSpec, IngressListenerSpec, IssuerRef, ListenerAuthentication,
    ListenerCertificateSpec, ListenerSpec, ListenerStatus, ListenerType, PodOverrides, RackSpec,
    RebalanceStatus, StorageSpec, VolumeDeletionPolicy, default_broker_image, default_listeners,
};
pub use topic::{
    ClusterRef, DeletionPolicy, OWNER_PREFIX, ReplicaChangeStatus, Topic, TopicSpec, TopicStatus,
};
pub use user::{
    AclOperation, AclPatternType, AclPermission, AclResource, AclResourceType, AclRule, User,
    UserAuthentication, UserAuthenticationType, UserSpec, UserStatus,
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Condition types every resource reports.
pub mod condition {
    /// The resource matches its spec and is serving.
    pub const READY: &str = "Ready";
    /// The operator is working towards the spec.
    pub const RECONCILING: &str = "Reconciling";
    /// The operator cannot reach the spec without a change from a person; the message says why.
    pub const STALLED: &str = "Stalled";
    /// The `strand.dev/paused` annotation is set: the operator changes nothing.
    pub const PAUSED: &str = "Paused";
}

/// Why CRD YAML could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    /// A CRD did not serialize to YAML.
    #[error("cannot render crd as yaml")]
    Yaml(#[from] serde_saphyr::ser::Error),
}

/// Every CRD of Strand, with the file name it has under `crds/`.
pub fn crds() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        ("cluster.yaml", Cluster::crd()),
        ("topic.yaml", Topic::crd()),
        ("user.yaml", User::crd()),
    ]
}

/// One CRD as a YAML document.
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, CrdError> {
    Ok(serde_saphyr::to_string(crd)?)
}

/// Every CRD as one multi-document YAML stream, as `strand-operator crd` prints it.
pub fn all_to_yaml() -> Result<String, CrdError> {
    let mut out = String::new();
    for (_, crd) in crds() {
        out.push_str("---\n");
        out.push_str(&to_yaml(&crd)?);
    }
    Ok(out)
}
