//! The Services of a Cluster: headless for peers, ClusterIP for Kafka clients inside the
//! Kubernetes cluster, and for each external listener (`nodeport`, `loadbalancer`, `ingress`)
//! a Service of that type (ClusterIP behind an Ingress) to bootstrap from and one per broker,
//! with an Ingress each for `ingress` listeners.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{ClusterNames, GRPC_PORT, HTTP_PORT, metadata, selector_labels};
use crate::crd::{ListenerSpec, ListenerType};

/// Label a StatefulSet's controller puts on each of its pods, naming the pod.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";

fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_owned()),
        port,
        target_port: Some(IntOrString::String(name.to_owned())),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    }
}

/// The name of a listener's port on the broker container and the Services.
pub fn listener_port_name(listener: &ListenerSpec) -> String {
    format!("tcp-{}", listener.name)
}

fn listener_ports(listeners: &[ListenerSpec]) -> Vec<ServicePort> {
    listeners
        .iter()
        .map(|l| port(&listener_port_name(l), l.port))
        .collect()
}

/// The headless Service behind the brokers' DNS names (`<pod>.<cluster>-brokers.<ns>.svc`).
///
/// It publishes pods before they are ready: a broker is ready only once it has joined the
/// metadata group, and it can only join by reaching its peers by these names.
pub(super) fn headless(
    names: &ClusterNames,
    owner: &OwnerReference,
    listeners: &[ListenerSpec],
) -> Service {
    let mut ports = listener_ports(listeners);
    ports.push(port("grpc", GRPC_PORT));
    ports.push(port("http", HTTP_PORT));
    Service {
        metadata: metadata(names, names.headless_service(), owner),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(names.cluster())),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The Service Kafka clients inside the Kubernetes cluster bootstrap from, on every listener's
/// port; it routes only to ready brokers, and clients then reach each partition leader by its
/// advertised name.
pub(super) fn client(
    names: &ClusterNames,
    owner: &OwnerReference,
    listeners: &[ListenerSpec],
) -> Service {
    Service {
        metadata: metadata(names, names.client_service(), owner),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(selector_labels(names.cluster())),
            ports: Some(listener_ports(listeners)),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The Services of external listeners for brokers `0..brokers`, NodePort, LoadBalancer or
/// (behind an Ingress) ClusterIP: per listener one to bootstrap from (any ready broker) and
/// one per broker pod, whose node port, load balancer address or Ingress host that broker
/// advertises. Node ports are left to the API server to allocate; the target port is the
/// listener's port on the pod.
pub fn external_services(
    names: &ClusterNames,
    owner: &OwnerReference,
    listeners: &[ListenerSpec],
    brokers: i32,
) -> Vec<Service> {
    let service = |name: String, selector: BTreeMap<String, String>, listener: &ListenerSpec| {
        let mut metadata = metadata(names, name, owner);
        metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert("strand.dev/listener".to_owned(), listener.name.clone());
        Service {
            metadata,
            spec: Some(ServiceSpec {
                type_: Some(
                    match listener.type_ {
                        ListenerType::Loadbalancer => "LoadBalancer",
                        ListenerType::Ingress => "ClusterIP",
                        _ => "NodePort",
                    }
                    .to_owned(),
                ),
                selector: Some(selector),
                ports: Some(vec![ServicePort {
                    name: Some(listener_port_name(listener)),
                    port: listener.port,
                    target_port: Some(IntOrString::Int(listener.port)),
                    protocol: Some("TCP".to_owned()),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    };
    let mut services = Vec::new();
    for listener in listeners.iter().filter(|l| l.type_.external()) {
        services.push(service(
            names.listener_bootstrap_service(&listener.name),
            selector_labels(names.cluster()),
            listener,
        ));
        for ordinal in 0..brokers {
            let mut selector = selector_labels(names.cluster());
            selector.insert(POD_NAME_LABEL.to_owned(), names.pod(ordinal));
            services.push(service(
                names.broker_listener_service(ordinal, &listener.name),
                selector,
                listener,
            ));
        }
    }
    services
}

/// Annotation asking ingress-nginx to pass TLS through to the backend, routing by SNI.
pub const NGINX_PASSTHROUGH: &str = "nginx.ingress.kubernetes.io/ssl-passthrough";

/// The Ingresses of `ingress` listeners for brokers `0..brokers`: per listener one for the
/// bootstrap host and one per broker host, each routing its host to the Service of the same
/// name from [`external_services`]. TLS passes through to the broker, so the Ingress names its
/// host under `tls` without a Secret: the broker presents its own certificate.
pub fn ingresses(
    names: &ClusterNames,
    owner: &OwnerReference,
    listeners: &[ListenerSpec],
    brokers: i32,
) -> Vec<Ingress> {
    let mut ingresses = Vec::new();
    for listener in listeners
        .iter()
        .filter(|l| l.type_ == ListenerType::Ingress)
    {
        let Some(spec) = &listener.ingress else {
            continue;
        };
        let ingress = |name: String, host: String| {
            let mut metadata = metadata(names, name.clone(), owner);
            metadata
                .labels
                .get_or_insert_with(BTreeMap::new)
                .insert("strand.dev/listener".to_owned(), listener.name.clone());
            let mut annotations = spec.annotations.clone();
            annotations.insert(NGINX_PASSTHROUGH.to_owned(), "true".to_owned());
            metadata.annotations = Some(annotations);
            Ingress {
                metadata,
                spec: Some(IngressSpec {
                    ingress_class_name: spec.class_name.clone(),
                    rules: Some(vec![IngressRule {
                        host: Some(host.clone()),
                        http: Some(HTTPIngressRuleValue {
                            paths: vec![HTTPIngressPath {
                                path: Some("/".to_owned()),
                                path_type: "Prefix".to_owned(),
                                backend: IngressBackend {
                                    service: Some(IngressServiceBackend {
                                        name,
                                        port: Some(ServiceBackendPort {
                                            number: Some(listener.port),
                                            ..ServiceBackendPort::default()
                                        }),
                                    }),
                                    ..IngressBackend::default()
                                },
                            }],
                        }),
                    }]),
                    tls: Some(vec![IngressTLS {
                        hosts: Some(vec![host]),
                        ..IngressTLS::default()
                    }]),
                    ..IngressSpec::default()
                }),
                ..Ingress::default()
            }
        };
        ingresses.push(ingress(
            names.listener_bootstrap_service(&listener.name),
            spec.bootstrap_host.clone(),
        ));
        for ordinal in 0..brokers {
            ingresses.push(ingress(
                names.broker_listener_service(ordinal, &listener.name),
                spec.broker_host(ordinal),
            ));
        }
    }
    ingresses
}
