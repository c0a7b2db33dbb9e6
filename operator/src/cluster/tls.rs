//! The Secrets of a Cluster's certificates ([`crate::pki`]): the CA, created once and never
//! replaced without a person deciding; the brokers' and the admin certificates, issued again
//! whenever they no longer fit (a new CA, other broker names, a hand edit, near expiry). The
//! admin certificate is what the operator's own admin calls present.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use time::OffsetDateTime;
use tracing::info;

use crate::admin::{AdminApi, AdminTls};
use crate::conditions::Standing;
use crate::context::{Context, Error, FIELD_MANAGER};
use crate::crd::Cluster;
use crate::desired::{ClusterNames, metadata};
use crate::pki::{self, ADMIN_CN, BROKER_CN, Pem};

/// Key of a certificate in a `kubernetes.io/tls` Secret.
pub const CERT_KEY: &str = "tls.crt";
/// Key of a private key in a `kubernetes.io/tls` Secret.
pub const KEY_KEY: &str = "tls.key";
/// Key of the CA certificate, in the CA Secret and beside each issued certificate.
pub const CA_CERT_KEY: &str = "ca.crt";
/// Key of the CA's private key in the CA Secret.
pub const CA_KEY_KEY: &str = "ca.key";

fn text(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

fn secret(
    names: &ClusterNames,
    owner: &OwnerReference,
    name: String,
    type_: &str,
    data: &[(&str, &str)],
) -> Secret {
    Secret {
        metadata: metadata(names, name, owner),
        type_: Some(type_.to_owned()),
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Secret::default()
    }
}

fn pki_failed(names: &ClusterNames, error: pki::PkiError) -> Standing {
    Standing::Stalled {
        reason: "CertificatesNotIssued",
        message: format!(
            "the certificates of cluster {} could not be issued: {error}",
            names.cluster()
        ),
    }
}

/// Reads the CA in Secret `name`, or makes one when there is none (created, never applied
/// over: two writers cannot both make a CA). `Ok(Err(standing))` when the stored CA cannot be
/// used.
async fn ensure_ca<A: AdminApi>(
    ctx: &Context<A>,
    cluster: &Cluster,
    names: &ClusterNames,
    owner: &OwnerReference,
    name: String,
    what: &str,
    readme: &str,
) -> Result<Result<Pem, Standing>, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), names.namespace());
    let now = OffsetDateTime::now_utc();
    if let Some(found) = secrets.get_opt(&name).await? {
        let ca = match (text(&found, CA_CERT_KEY), text(&found, CA_KEY_KEY)) {
            (Some(cert), Some(key)) => Pem { cert, key },
            _ => {
                return Ok(Err(ca_unusable(
                    &name,
                    what,
                    format!("it lacks {CA_CERT_KEY} or {CA_KEY_KEY}"),
                )));
            }
        };
        return Ok(match pki::ca_problem(&ca, now) {
            Some(why) => Err(ca_unusable(&name, what, why)),
            None => Ok(ca),
        });
    }
    let ca = match pki::new_ca(names.namespace(), names.cluster(), what, now) {
        Ok(ca) => ca,
        Err(error) => return Ok(Err(pki_failed(names, error))),
    };
    let object = secret(
        names,
        owner,
        name.clone(),
        "Opaque",
        &[
            (CA_CERT_KEY, &ca.cert),
            (CA_KEY_KEY, &ca.key),
            ("README", readme),
        ],
    );
    secrets.create(&PostParams::default(), &object).await?;
    info!(secret = name, "created the {what}");
    ctx.publish(
        cluster,
        EventType::Normal,
        "CreatedCA",
        "Certificates",
        format!("created the {what} in Secret {name}"),
    )
    .await;
    Ok(Ok(ca))
}

/// Makes sure the Cluster's CAs (the cluster CA and the clients CA), broker and admin
/// Secrets exist and fit, and points the admin client at the admin certificate. The brokers'
/// certificate is valid for their DNS names and for `node_addresses` (the nodes' addresses
/// `nodeport` listeners advertise). `Ok(Err(standing))` when a CA cannot be used: nothing is
/// issued from it, and the standing says what a person has to do.
pub async fn ensure<A: AdminApi>(
    ctx: &Context<A>,
    cluster: &Cluster,
    names: &ClusterNames,
    owner: &OwnerReference,
    node_addresses: &[String],
) -> Result<Result<(), Standing>, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), names.namespace());
    let now = OffsetDateTime::now_utc();
    let ca = match ensure_ca(
        ctx,
        cluster,
        names,
        owner,
        names.ca_secret(),
        "cluster CA",
        CA_README,
    )
    .await?
    {
        Ok(ca) => ca,
        Err(standing) => return Ok(Err(standing)),
    };
    let clients_ca = match ensure_ca(
        ctx,
        cluster,
        names,
        owner,
        names.clients_ca_secret(),
        "clients CA",
        CLIENTS_CA_README,
    )
    .await?
    {
        Ok(ca) => ca,
        Err(standing) => return Ok(Err(standing)),
    };
    let mut broker_names = names.broker_dns_names();
    broker_names.extend(node_addresses.iter().cloned());
    let mut admin = None;
    for (name, cn, dns_names) in [
        (names.broker_tls_secret(), BROKER_CN, broker_names.clone()),
        (names.admin_tls_secret(), ADMIN_CN, Vec::new()),
    ] {
        let found = secrets.get_opt(&name).await?;
        let current = found.as_ref().and_then(|found| {
            Some(Pem {
                cert: text(found, CERT_KEY)?,
                key: text(found, KEY_KEY)?,
            })
        });
        let stored_ca = found.as_ref().and_then(|found| text(found, CA_CERT_KEY));
        // The brokers also hold the clients CA, for listeners that authenticate by TLS.
        let stored_clients_ca = found
            .as_ref()
            .and_then(|found| text(found, pki::CLIENTS_CA_FILE));
        let why = match (&current, &stored_ca) {
            (None, _) if found.is_none() => Some("there was none".to_owned()),
            (None, _) => Some(format!("the Secret lacks {CERT_KEY} or {KEY_KEY}")),
            (Some(_), ca_cert) if ca_cert.as_deref() != Some(ca.cert.as_str()) => {
                Some(format!("its {CA_CERT_KEY} is not the cluster CA"))
            }
            (Some(_), _)
                if cn == BROKER_CN
                    && stored_clients_ca.as_deref() != Some(clients_ca.cert.as_str()) =>
            {
                Some(format!(
                    "its {} is not the clients CA",
                    pki::CLIENTS_CA_FILE
                ))
            }
            (Some(current), _) => pki::reissue_reason(current, &ca.cert, cn, &dns_names, now),
        };
        let issued = match (why, current) {
            (None, Some(current)) => current,
            (why, _) => {
                let why = why.unwrap_or_default();
                let issued = match pki::issue(&ca, cn, &dns_names, now) {
                    Ok(issued) => issued,
                    Err(error) => return Ok(Err(pki_failed(names, error))),
                };
                let mut data = vec![
                    (CERT_KEY, issued.cert.as_str()),
                    (KEY_KEY, issued.key.as_str()),
                    (CA_CERT_KEY, ca.cert.as_str()),
                ];
                if cn == BROKER_CN {
                    data.push((pki::CLIENTS_CA_FILE, clients_ca.cert.as_str()));
                }
                let object = secret(names, owner, name.clone(), "kubernetes.io/tls", &data);
                secrets
                    .patch(
                        &name,
                        &PatchParams::apply(FIELD_MANAGER).force(),
                        &Patch::Apply(&object),
                    )
                    .await?;
                info!(secret = name, reason = why, "issued a certificate");
                ctx.publish(
                    cluster,
                    EventType::Normal,
                    "IssuedCertificate",
                    "Certificates",
                    format!("issued the {cn} certificate in Secret {name}: {why}"),
                )
                .await;
                issued
            }
        };
        if cn == ADMIN_CN {
            admin = Some(issued);
        }
    }
    if let Some(admin) = admin {
        ctx.admin.use_tls(
            &names.admin_address(),
            AdminTls {
                ca: ca.cert,
                cert: admin.cert,
                key: admin.key,
            },
        );
    }
    Ok(Ok(()))
}

/// Points the admin client at the Cluster's admin certificate, as stored. When there is none
/// yet (the Cluster's reconcile makes it), admin calls fail as unavailable and are retried.
pub async fn use_admin_certificate<A: AdminApi>(
    ctx: &Context<A>,
    names: &ClusterNames,
) -> Result<(), Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), names.namespace());
    let Some(found) = secrets.get_opt(&names.admin_tls_secret()).await? else {
        return Ok(());
    };
    if let (Some(ca), Some(cert), Some(key)) = (
        text(&found, CA_CERT_KEY),
        text(&found, CERT_KEY),
        text(&found, KEY_KEY),
    ) {
        ctx.admin
            .use_tls(&names.admin_address(), AdminTls { ca, cert, key });
    }
    Ok(())
}

fn ca_unusable(secret: &str, what: &str, why: String) -> Standing {
    Standing::Stalled {
        reason: "InvalidCA",
        message: format!(
            "Secret {secret} holds the {what}, but {why}; no certificate is issued from it and \
             the brokers and users keep the ones they have. Restore the Secret, or delete it \
             to have a new CA made (each broker takes its new certificate when its files are \
             updated; until all have, some refuse each other)"
        ),
    }
}

/// The CA in Secret `name`, as stored, if it is there and whole.
pub async fn stored_ca<A>(
    ctx: &Context<A>,
    namespace: &str,
    name: &str,
) -> Result<Option<Pem>, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    Ok(secrets.get_opt(name).await?.and_then(|found| {
        Some(Pem {
            cert: text(&found, CA_CERT_KEY)?,
            key: text(&found, CA_KEY_KEY)?,
        })
    }))
}

/// What the clients CA Secret says of itself to someone who finds it.
const CLIENTS_CA_README: &str = "The clients CA of a Strand cluster, made by the Strand \
operator: it signs the certificates of Users that authenticate by TLS. Whoever holds ca.key can \
connect as any such User: keep access to this Secret as narrow as to the cluster itself.\n";

/// What the CA Secret says of itself to someone who finds it.
const CA_README: &str = "The CA of a Strand cluster's gRPC port (Raft between brokers and the \
admin API), made by the Strand operator. Whoever holds ca.key can join the cluster as a broker \
or administer it: keep access to this Secret as narrow as to the cluster itself.\n";
