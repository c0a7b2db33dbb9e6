//! The two Services of a Cluster: headless for peers, ClusterIP for Kafka clients.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{ClusterNames, GRPC_PORT, HTTP_PORT, KAFKA_PORT, metadata, selector_labels};

fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_owned()),
        port,
        target_port: Some(IntOrString::String(name.to_owned())),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    }
}

/// The headless Service behind the brokers' DNS names (`<pod>.<cluster>-brokers.<ns>.svc`).
///
/// It publishes pods before they are ready: a broker is ready only once it has joined the
/// metadata group, and it can only join by reaching its peers by these names.
pub(super) fn headless(names: &ClusterNames, owner: &OwnerReference) -> Service {
    Service {
        metadata: metadata(names, names.headless_service(), owner),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(names.cluster())),
            ports: Some(vec![
                port("kafka", KAFKA_PORT),
                port("grpc", GRPC_PORT),
                port("http", HTTP_PORT),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The Service Kafka clients bootstrap from; it routes only to ready brokers, and clients
/// then reach each partition leader by its advertised pod name.
pub(super) fn client(names: &ClusterNames, owner: &OwnerReference) -> Service {
    Service {
        metadata: metadata(names, names.client_service(), owner),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(selector_labels(names.cluster())),
            ports: Some(vec![port("kafka", KAFKA_PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}
