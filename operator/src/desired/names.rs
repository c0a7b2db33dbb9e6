//! Names, addresses and labels of the objects a Cluster owns, in one place so that the
//! builders, the reconciler and the status agree on them.

use std::collections::BTreeMap;

use kube::ResourceExt;

use super::{DesiredError, GRPC_PORT};
use crate::crd::{Cluster, ListenerSpec, ListenerType};

/// Brokers whose gRPC addresses every broker starts with, to find the metadata group.
const SEED_BROKERS_MAX: i32 = 3;

/// The name and namespace of a Cluster, and every name derived from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNames {
    cluster: String,
    namespace: String,
}

impl ClusterNames {
    /// Names for `cluster`, which must have a name and a namespace.
    pub fn of(cluster: &Cluster) -> Result<Self, DesiredError> {
        let name = cluster
            .metadata
            .name
            .clone()
            .ok_or(DesiredError::MissingName)?;
        let namespace = cluster
            .namespace()
            .ok_or_else(|| DesiredError::MissingNamespace { name: name.clone() })?;
        Ok(ClusterNames {
            cluster: name,
            namespace,
        })
    }

    /// The Cluster's name.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The Cluster's namespace, which holds every object it owns.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The StatefulSet; its pods are `<cluster>-0`, `<cluster>-1`, ….
    pub fn stateful_set(&self) -> String {
        self.cluster.clone()
    }

    /// The headless Service that gives each broker pod its DNS name.
    pub fn headless_service(&self) -> String {
        format!("{}-brokers", self.cluster)
    }

    /// The Service Kafka clients bootstrap from.
    pub fn client_service(&self) -> String {
        format!("{}-bootstrap", self.cluster)
    }

    /// The ConfigMap holding `broker.yaml`.
    pub fn config_map(&self) -> String {
        format!("{}-config", self.cluster)
    }

    /// The NetworkPolicy of the broker pods.
    pub fn network_policy(&self) -> String {
        format!("{}-brokers", self.cluster)
    }

    /// The PodDisruptionBudget.
    pub fn disruption_budget(&self) -> String {
        self.cluster.clone()
    }

    /// DNS name of the broker pod with StatefulSet ordinal `ordinal`.
    pub fn pod_host(&self, ordinal: i32) -> String {
        format!(
            "{}-{ordinal}.{}.{}.svc",
            self.cluster,
            self.headless_service(),
            self.namespace
        )
    }

    /// gRPC addresses of the first brokers (at most three), which every broker contacts to
    /// join the metadata group.
    pub fn seeds(&self, replicas: i32) -> Vec<String> {
        (0..replicas.clamp(1, SEED_BROKERS_MAX))
            .map(|ordinal| format!("{}:{GRPC_PORT}", self.pod_host(ordinal)))
            .collect()
    }

    /// The Secret holding the Cluster's CA (certificate and key); only the operator reads it.
    pub fn ca_secret(&self) -> String {
        format!("{}-ca", self.cluster)
    }

    /// The Secret holding the brokers' gRPC certificate, key and the CA, mounted into every
    /// broker pod.
    pub fn broker_tls_secret(&self) -> String {
        format!("{}-broker-tls", self.cluster)
    }

    /// The Secret holding the admin certificate, key and the CA: what the operator calls the
    /// admin API with, and what `strand` needs to administer the cluster.
    pub fn admin_tls_secret(&self) -> String {
        format!("{}-admin-tls", self.cluster)
    }

    /// The Secret holding the Cluster's clients CA (certificate and key), which signs the
    /// certificates of `User`s that authenticate by TLS; only the operator reads it.
    pub fn clients_ca_secret(&self) -> String {
        format!("{}-clients-ca", self.cluster)
    }

    /// The cert-manager `Certificate` of `listener`, when cert-manager issues its certificate.
    pub fn listener_certificate(&self, listener: &str) -> String {
        format!("{}-listener-{listener}", self.cluster)
    }

    /// The Secret with the certificate `listener` presents, when it has its own:
    /// `certificate.secretName`, or the one cert-manager keeps.
    pub fn listener_certificate_secret(&self, listener: &ListenerSpec) -> Option<String> {
        let certificate = listener.certificate.as_ref()?;
        Some(match &certificate.secret_name {
            Some(secret) => secret.clone(),
            None => format!("{}-tls", self.listener_certificate(&listener.name)),
        })
    }

    /// The NodePort Service clients outside the cluster bootstrap from on `listener`.
    pub fn listener_bootstrap_service(&self, listener: &str) -> String {
        format!("{}-{listener}-bootstrap", self.cluster)
    }

    /// The NodePort Service of broker pod `ordinal` on `listener`.
    pub fn broker_listener_service(&self, ordinal: i32, listener: &str) -> String {
        format!("{}-{ordinal}-{listener}", self.cluster)
    }

    /// The ConfigMap holding, per broker pod, the addresses it advertises on its external
    /// listeners (known only once their node ports are allocated).
    pub fn advertised_config_map(&self) -> String {
        format!("{}-advertised", self.cluster)
    }

    /// The broker pod with StatefulSet ordinal `ordinal`.
    pub fn pod(&self, ordinal: i32) -> String {
        format!("{}-{ordinal}", self.cluster)
    }

    /// The DNS names the brokers' certificate is valid for: every broker pod, the headless
    /// Service and the bootstrap Service, with and without the cluster domain.
    pub fn broker_dns_names(&self) -> Vec<String> {
        let service = format!("{}.{}.svc", self.headless_service(), self.namespace);
        let bootstrap = format!("{}.{}.svc", self.client_service(), self.namespace);
        vec![
            format!("*.{service}"),
            format!("*.{service}.cluster.local"),
            service.clone(),
            format!("{service}.cluster.local"),
            bootstrap.clone(),
            format!("{bootstrap}.cluster.local"),
        ]
    }

    /// The admin gRPC address the operator calls, as a URL: the headless Service, whose name
    /// resolves to every broker pod; any broker passes an admin call on to the controller.
    /// Mutual TLS, with the admin certificate.
    pub fn admin_address(&self) -> String {
        format!(
            "https://{}.{}.svc:{GRPC_PORT}",
            self.headless_service(),
            self.namespace
        )
    }

    /// `host:port` Kafka clients in the cluster bootstrap from on `listener`, an internal
    /// one.
    pub fn bootstrap_servers(&self, listener: &ListenerSpec) -> String {
        format!(
            "{}.{}.svc:{}",
            self.client_service(),
            self.namespace,
            listener.port
        )
    }

    /// `host:port` Kafka clients in the cluster bootstrap from: the first internal listener's.
    pub fn internal_bootstrap_servers(&self, listeners: &[ListenerSpec]) -> Option<String> {
        listeners
            .iter()
            .find(|l| l.type_ == ListenerType::Internal)
            .map(|l| self.bootstrap_servers(l))
    }
}

/// Labels of every object a Cluster owns.
pub fn labels(cluster: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(cluster);
    labels.insert(
        "app.kubernetes.io/managed-by".to_owned(),
        "strand-operator".to_owned(),
    );
    labels
}

/// The labels that select a Cluster's broker pods. They never change for a Cluster, since a
/// StatefulSet's selector is immutable.
pub fn selector_labels(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "strand".to_owned()),
        ("app.kubernetes.io/instance".to_owned(), cluster.to_owned()),
        (
            "app.kubernetes.io/component".to_owned(),
            "broker".to_owned(),
        ),
    ])
}

/// [`selector_labels`] as a label selector string, for the scale subresource's
/// `status.labelSelector`.
pub fn label_selector(cluster: &str) -> String {
    selector_labels(cluster)
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",")
}
