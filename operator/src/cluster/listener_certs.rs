//! Listeners that present a certificate of their own (`spec.listeners[].certificate`): the
//! cert-manager `Certificate` the operator asks for, and whether the Secret with the
//! certificate is there yet. The brokers cannot serve such a listener without it, so until it
//! is there the StatefulSet is left as it is and the Cluster says what it waits for.
//!
//! Renewals need nothing from the operator: cert-manager (or whoever keeps the Secret)
//! rewrites it, the kubelet updates the mounted files, and the brokers reload them.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::json;

use super::tls::text;
use crate::admin::AdminApi;
use crate::conditions::Standing;
use crate::context::{Context, Error, FIELD_MANAGER};
use crate::crd::{ListenerSpec, ListenerType};
use crate::desired::{ClusterNames, labels, metadata};

/// cert-manager's `Certificate` resource.
pub fn certificate_resource() -> ApiResource {
    ApiResource {
        group: "cert-manager.io".to_owned(),
        version: "v1".to_owned(),
        api_version: "cert-manager.io/v1".to_owned(),
        kind: "Certificate".to_owned(),
        plural: "certificates".to_owned(),
    }
}

/// How long cert-manager may take to issue a listener's certificate before the Cluster is
/// Stalled rather than waiting.
pub const ISSUE_TIMEOUT_SECONDS: i64 = 600;

/// The names (DNS names and IP addresses) clients of `listener` reach the brokers by, which
/// its certificate must be valid for: the pods' and Services' DNS names for `internal`; the
/// nodes' addresses (`nodes`) for `nodeport`; the load balancers' addresses (`load_balancers`)
/// for `loadbalancer`; the bootstrap host and the host of each of brokers `0..brokers` for
/// `ingress`.
pub fn listener_names(
    names: &ClusterNames,
    listener: &ListenerSpec,
    nodes: &[String],
    load_balancers: &[String],
    brokers: i32,
) -> Vec<String> {
    match listener.type_ {
        ListenerType::Internal => names.broker_dns_names(),
        ListenerType::Nodeport => nodes.to_vec(),
        ListenerType::Loadbalancer => load_balancers.to_vec(),
        ListenerType::Ingress => listener
            .ingress
            .iter()
            .flat_map(|ingress| {
                std::iter::once(ingress.bootstrap_host.clone())
                    .chain((0..brokers).map(|ordinal| ingress.broker_host(ordinal)))
            })
            .collect(),
    }
}

/// The cert-manager `Certificate` of `listener`, valid for `dns_names` (IP addresses among
/// them go to `ipAddresses`), if cert-manager issues its certificate.
pub fn certificate(
    names: &ClusterNames,
    owner: &OwnerReference,
    listener: &ListenerSpec,
    dns_names: &[String],
) -> Option<DynamicObject> {
    let spec = listener.certificate.as_ref()?;
    let issuer = spec.issuer_ref.as_ref()?;
    let secret = names.listener_certificate_secret(listener)?;
    let name = names.listener_certificate(&listener.name);
    let (ips, dns): (Vec<&String>, Vec<&String>) = dns_names
        .iter()
        .partition(|n| n.parse::<std::net::IpAddr>().is_ok());
    let mut certificate = json!({
        "secretName": secret,
        "secretTemplate": { "labels": labels(names.cluster()) },
        "issuerRef": { "name": issuer.name, "kind": issuer.kind, "group": issuer.group },
        "dnsNames": dns,
        "usages": ["server auth", "digital signature", "key encipherment"],
        "privateKey": { "rotationPolicy": "Always" },
    });
    if !ips.is_empty() {
        certificate["ipAddresses"] = json!(ips);
    }
    if let Some(duration) = &spec.duration {
        certificate["duration"] = json!(duration);
    }
    if let Some(renew_before) = &spec.renew_before {
        certificate["renewBefore"] = json!(renew_before);
    }
    let mut object = DynamicObject::new(&name, &certificate_resource());
    object.metadata = metadata(names, name, owner);
    object.data = json!({ "spec": certificate });
    Some(object)
}

/// What cert-manager says of a `Certificate` in its Ready condition, if anything.
fn ready_message(certificate: &DynamicObject) -> Option<String> {
    let conditions = certificate.data["status"]["conditions"].as_array()?;
    let ready = conditions.iter().find(|c| c["type"] == "Ready")?;
    Some(format!(
        "{} ({})",
        ready["message"].as_str().unwrap_or_default(),
        ready["reason"].as_str().unwrap_or_default()
    ))
}

/// Applies the cert-manager `Certificate` of every listener whose certificate cert-manager
/// issues, and looks for the Secret of every listener with a certificate of its own.
/// `names_of` gives the names a listener's certificate must be valid for. `None` when every
/// such Secret holds a certificate and key; otherwise what the Cluster waits for, or why it
/// cannot go on.
pub async fn converge<A: AdminApi>(
    ctx: &Context<A>,
    names: &ClusterNames,
    owner: &OwnerReference,
    listeners: &[ListenerSpec],
    names_of: impl Fn(&ListenerSpec) -> Vec<String>,
) -> Result<Option<Standing>, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), names.namespace());
    let certificates: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        names.namespace(),
        &certificate_resource(),
    );
    let mut waiting = Vec::new();
    for listener in listeners {
        let Some(secret) = names.listener_certificate_secret(listener) else {
            continue;
        };
        let mut issuing = None;
        if let Some(object) = certificate(names, owner, listener, &names_of(listener)) {
            let name = names.listener_certificate(&listener.name);
            let applied = match certificates
                .patch(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&object),
                )
                .await
            {
                Ok(applied) => applied,
                // The API server answers "404 page not found" for a resource it does not
                // serve, which kube does not take for NotFound.
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    return Ok(Some(Standing::Stalled {
                        reason: "CertManagerNotInstalled",
                        message: format!(
                            "listener {} asks cert-manager for its certificate, but this \
                             Kubernetes cluster has no cert-manager Certificate resource: \
                             install cert-manager, or give the listener \
                             certificate.secretName instead. The brokers are left as they are",
                            listener.name
                        ),
                    }));
                }
                Err(error) => return Err(error.into()),
            };
            let created = applied
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or(0, |t| t.0.as_second());
            issuing = Some((name, created, ready_message(&applied)));
        }
        let found = secrets.get_opt(&secret).await?;
        if found
            .as_ref()
            .is_some_and(|s| text(s, "tls.crt").is_some() && text(s, "tls.key").is_some())
        {
            continue;
        }
        waiting.push(match issuing {
            None => Standing::Stalled {
                reason: "CertificateSecretMissing",
                message: format!(
                    "listener {} presents the certificate in Secret {secret}, which does not \
                     exist or lacks tls.crt and tls.key: create it (type kubernetes.io/tls). \
                     The brokers are left as they are until it is there",
                    listener.name
                ),
            },
            Some((certificate, created, said)) => {
                let waited = Timestamp::now().as_second() - created;
                let said = said
                    .map(|s| format!("; cert-manager says: {s}"))
                    .unwrap_or_default();
                if waited >= ISSUE_TIMEOUT_SECONDS {
                    Standing::Stalled {
                        reason: "CertificateNotIssued",
                        message: format!(
                            "cert-manager has not issued the certificate of listener {} \
                             (Certificate {certificate}, Secret {secret}) in {} minutes{said}. \
                             Check the issuer; the brokers are left as they are until it is \
                             issued",
                            listener.name,
                            waited / 60
                        ),
                    }
                } else {
                    Standing::Reconciling {
                        reason: "WaitingForCertificate",
                        message: format!(
                            "waiting for cert-manager to issue the certificate of listener {} \
                             into Secret {secret}{said}",
                            listener.name
                        ),
                    }
                }
            }
        });
    }
    // A stall first: it needs a person; waiting does not.
    let stalled = waiting
        .iter()
        .position(|s| matches!(s, Standing::Stalled { .. }));
    Ok(match stalled {
        Some(at) => Some(waiting.swap_remove(at)),
        None => waiting.into_iter().next(),
    })
}

/// The CAs to trust for listeners that present a certificate of their own, as their Secrets
/// hold them (`ca.crt`; none for a certificate of a public CA, which clients trust already).
pub async fn listener_cas<A>(
    ctx: &Context<A>,
    names: &ClusterNames,
    listeners: &[ListenerSpec],
) -> Result<Vec<String>, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), names.namespace());
    let mut cas = Vec::new();
    for secret in listeners
        .iter()
        .filter_map(|l| names.listener_certificate_secret(l))
    {
        if let Some(ca) = secrets
            .get_opt(&secret)
            .await?
            .and_then(|s| text(&s, "ca.crt"))
            .filter(|ca| !ca.trim().is_empty())
            && !cas.contains(&ca)
        {
            cas.push(ca);
        }
    }
    Ok(cas)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{Cluster, ListenerCertificateSpec};

    fn cluster() -> Cluster {
        let mut cluster: Cluster = serde_saphyr::from_str(
            "apiVersion: strand.dev/v1alpha1
kind: Cluster
metadata: { name: payments, namespace: default, uid: 6d1e2f1c }
spec:
  replicas: 2
  storage: { size: 1Gi }
  listeners:
  - name: public
    port: 9094
    type: ingress
    tls: true
    authentication: scram-sha-512
    ingress: { bootstrapHost: kafka.example.com, brokerHost: 'b{ordinal}.kafka.example.com' }
    certificate:
      issuerRef: { name: letsencrypt, kind: ClusterIssuer }
      renewBefore: 360h
",
        )
        .unwrap();
        cluster.metadata.uid = Some("6d1e2f1c".to_owned());
        cluster
    }

    #[test]
    fn an_ingress_listener_asks_cert_manager_for_its_hosts() {
        let cluster = cluster();
        let names = ClusterNames::of(&cluster).unwrap();
        let owner = kube::Resource::controller_owner_ref(&cluster, &()).unwrap();
        let listener = &cluster.spec.listeners()[0];
        let dns = listener_names(&names, listener, &[], &[], 2);
        assert_eq!(
            dns,
            [
                "kafka.example.com",
                "b0.kafka.example.com",
                "b1.kafka.example.com"
            ]
        );
        let object = certificate(&names, &owner, listener, &dns).unwrap();
        assert_eq!(
            object.metadata.name.as_deref(),
            Some("payments-listener-public")
        );
        let spec = &object.data["spec"];
        assert_eq!(spec["secretName"], "payments-listener-public-tls");
        assert_eq!(
            spec["issuerRef"],
            json!({"name": "letsencrypt", "kind": "ClusterIssuer", "group": "cert-manager.io"})
        );
        assert_eq!(spec["dnsNames"], json!(dns));
        assert_eq!(spec["renewBefore"], "360h");
        assert!(spec.get("ipAddresses").is_none());
        assert!(
            spec["usages"]
                .as_array()
                .unwrap()
                .contains(&json!("server auth"))
        );
    }

    #[test]
    fn addresses_go_to_ip_addresses_and_a_kept_secret_needs_no_certificate() {
        let cluster = cluster();
        let names = ClusterNames::of(&cluster).unwrap();
        let owner = kube::Resource::controller_owner_ref(&cluster, &()).unwrap();
        let mut listener = cluster.spec.listeners[0].clone();
        listener.type_ = ListenerType::Nodeport;
        listener.ingress = None;
        let dns = listener_names(
            &names,
            &listener,
            &["10.0.0.7".to_owned(), "node-1.example.com".to_owned()],
            &[],
            2,
        );
        let object = certificate(&names, &owner, &listener, &dns).unwrap();
        assert_eq!(object.data["spec"]["ipAddresses"], json!(["10.0.0.7"]));
        assert_eq!(
            object.data["spec"]["dnsNames"],
            json!(["node-1.example.com"])
        );

        listener.certificate = Some(ListenerCertificateSpec {
            issuer_ref: None,
            secret_name: Some("corporate-cert".to_owned()),
            duration: None,
            renew_before: None,
        });
        assert!(certificate(&names, &owner, &listener, &dns).is_none());
        assert_eq!(
            names.listener_certificate_secret(&listener).as_deref(),
            Some("corporate-cert")
        );
    }
}
