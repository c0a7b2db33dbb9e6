//! External listeners (`nodeport`, `loadbalancer`, `ingress`): their Services and Ingresses,
//! and what each broker advertises on them, which for the first two is known only once the
//! API server has allocated a node port or a load balancer controller has given an address.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use kube::api::{Api, ListParams};

use super::apply;
use crate::admin::AdminApi;
use crate::context::{Context, Error};
use crate::crd::{ListenerSpec, ListenerType};
use crate::desired::{
    ClusterNames, POD_NAME_LABEL, advertised_file, external_services, ingresses, label_selector,
    metadata,
};

/// Label of an external listener's Services naming the listener.
pub const LISTENER_LABEL: &str = "strand.dev/listener";
/// Pod template annotation fingerprinting the load balancer addresses and Ingress hosts the
/// brokers advertise: a broker reads its advertised addresses when it starts, so a new
/// address restarts them.
pub const ADVERTISED_ANNOTATION: &str = "strand.dev/advertised";

/// The address a LoadBalancer Service was given, if it was: its first ingress IP or host name.
pub fn load_balancer_address(service: &Service) -> Option<String> {
    let ingress = service
        .status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?
        .first()?;
    ingress.ip.clone().or_else(|| ingress.hostname.clone())
}

fn is_load_balancer(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
}

/// The load balancer addresses the Cluster's external Services have now: the brokers'
/// certificate names them.
pub async fn load_balancer_addresses<A>(
    ctx: &Context<A>,
    names: &ClusterNames,
) -> Result<Vec<String>, Error> {
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), names.namespace());
    let selector = format!("{},{LISTENER_LABEL}", label_selector(names.cluster()));
    let mut addresses: Vec<String> = services
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .iter()
        .filter(|s| is_load_balancer(s))
        .filter_map(load_balancer_address)
        .collect();
    addresses.sort();
    addresses.dedup();
    Ok(addresses)
}

/// What [`converge`] found.
#[derive(Debug, Default)]
pub struct External {
    /// Where clients outside bootstrap, by listener name, where known.
    pub bootstrap: BTreeMap<String, String>,
    /// LoadBalancer Services without an address yet, with their creation time (Unix seconds).
    pub pending: Vec<(String, i64)>,
    /// The fingerprint for [`ADVERTISED_ANNOTATION`].
    pub fingerprint: String,
}

/// Applies the external Services and Ingresses of brokers `0..brokers`, and the ConfigMap of
/// what each broker pod advertises on them (written before the StatefulSet makes the pods).
/// `node_address` is the address of a node the brokers run on, for `nodeport` bootstrap.
pub async fn converge<A: AdminApi>(
    ctx: &Context<A>,
    names: &ClusterNames,
    owner: &OwnerReference,
    listeners: &[ListenerSpec],
    brokers: i32,
    node_address: Option<&str>,
) -> Result<External, Error> {
    let mut external = External::default();
    let mut advertised: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut fingerprinted = Vec::new();
    for ingress in ingresses(names, owner, listeners, brokers) {
        apply::<Ingress, A>(ctx, names.namespace(), &ingress).await?;
    }
    for service in external_services(names, owner, listeners, brokers) {
        let applied = apply(ctx, names.namespace(), &service).await?;
        let listener_name = service
            .labels()
            .get(LISTENER_LABEL)
            .cloned()
            .unwrap_or_default();
        let Some(listener) = listeners.iter().find(|l| l.name == listener_name) else {
            continue;
        };
        let address = match listener.type_ {
            ListenerType::Nodeport => applied
                .spec
                .as_ref()
                .and_then(|s| s.ports.as_ref())
                .and_then(|p| p.first())
                .and_then(|p| p.node_port)
                .map(|port| (String::new(), port)),
            ListenerType::Ingress => listener.ingress.as_ref().map(|ingress| {
                let pod = service
                    .spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .and_then(|s| s.get(POD_NAME_LABEL));
                let host = match pod.and_then(|pod| (0..brokers).find(|o| names.pod(*o) == *pod)) {
                    Some(ordinal) => ingress.broker_host(ordinal),
                    None => ingress.bootstrap_host.clone(),
                };
                (host, ingress.port)
            }),
            _ => match load_balancer_address(&applied) {
                Some(host) => Some((host, listener.port)),
                None => {
                    let created = applied
                        .metadata
                        .creation_timestamp
                        .as_ref()
                        .map_or(0, |t| t.0.as_second());
                    external.pending.push((applied.name_any(), created));
                    None
                }
            },
        };
        let Some((host, port)) = address else {
            continue;
        };
        let pod = service
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .and_then(|s| s.get(POD_NAME_LABEL));
        match pod {
            Some(pod) => {
                if !host.is_empty() {
                    fingerprinted.push(format!("{pod} {} {host}:{port}", listener.name));
                }
                advertised
                    .entry(pod.clone())
                    .or_default()
                    .push((listener.kafka_name(), format!("{host}:{port}")));
            }
            None => {
                let host = if host.is_empty() {
                    node_address.map(str::to_owned)
                } else {
                    Some(host)
                };
                if let Some(host) = host {
                    external
                        .bootstrap
                        .insert(listener.name.clone(), format!("{host}:{port}"));
                }
            }
        }
    }
    let config_map = ConfigMap {
        metadata: metadata(names, names.advertised_config_map(), owner),
        data: Some(
            advertised
                .iter()
                .map(|(pod, addresses)| (pod.clone(), advertised_file(addresses)))
                .collect(),
        ),
        ..ConfigMap::default()
    };
    apply(ctx, names.namespace(), &config_map).await?;
    fingerprinted.sort();
    external.fingerprint = crate::desired::fingerprint(&fingerprinted.join("\n"));
    Ok(external)
}
