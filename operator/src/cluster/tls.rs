//! The Secrets of a Cluster's certificates ([`crate::pki`]): the cluster CA and the clients
//! CA, each created once and never replaced by a write over it; the brokers' and the admin
//! certificates, issued again whenever they no longer fit (a new CA, other broker names, a
//! hand edit, near expiry). The admin certificate is what the operator's own admin calls
//! present.
//!
//! A CA is renewed in three steps, each finished by a rolling restart of the brokers, so that
//! no broker or client ever meets a certificate it does not trust: (1) a new CA is made beside
//! the old and both are trusted everywhere; (2) the new CA issues, certificates are issued
//! again from it, and the old is still trusted; (3) the old is no longer trusted. A CA is
//! renewed 30 days before it expires, or when its Secret is annotated
//! `strand.dev/renew: "true"`.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use serde_json::json;
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
/// Keys of the CA being brought in (renewal step 1), in the CA Secret.
const NEXT_CERT_KEY: &str = "next.crt";
const NEXT_KEY_KEY: &str = "next.key";
/// Key of the CA being retired (renewal step 2), still trusted, in the CA Secret.
const PREVIOUS_CERT_KEY: &str = "previous.crt";
/// Key of the clients CA Secret listing the certificates of deleted Users: a line per
/// certificate, `<serial in hex> <expiry, Unix seconds> <namespace>/<user>`, kept until it
/// expires.
const REVOKED_KEY: &str = "revoked";
/// Key of the clients CA Secret holding the CRL of [`REVOKED_KEY`], which the brokers get
/// beside the clients CA.
const CRL_KEY: &str = "crl.pem";
/// Annotation of a CA Secret that asks for its CA to be renewed now.
pub const RENEW_ANNOTATION: &str = "strand.dev/renew";
/// Annotation of a CA Secret saying which renewal step is under way.
pub const RENEWAL_ANNOTATION: &str = "strand.dev/renewal";
/// Annotation of a CA Secret saying when the renewal step under way began (RFC 3339).
pub const RENEWAL_SINCE_ANNOTATION: &str = "strand.dev/renewal-since";
/// Pod template annotation holding what the cluster CA's trust is, so that a change of it
/// restarts the brokers one at a time, and a finished rollout says every broker has it.
pub const CLUSTER_CA_TRUST_ANNOTATION: &str = "strand.dev/cluster-ca-trust";
/// The same for the clients CA.
pub const CLIENTS_CA_TRUST_ANNOTATION: &str = "strand.dev/clients-ca-trust";

/// A renewal step under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Step 1: the new CA is trusted beside the old, which still issues.
    Trust,
    /// Step 2: the new CA issues; the old is still trusted.
    Switch,
}

impl Step {
    fn parse(text: &str) -> Option<Step> {
        match text {
            "trust" => Some(Step::Trust),
            "switch" => Some(Step::Switch),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Step::Trust => "trust",
            Step::Switch => "switch",
        }
    }
}

/// A CA as its Secret holds it.
#[derive(Debug, Clone)]
pub struct CaState {
    /// The CA that issues certificates now.
    pub issuing: Pem,
    /// Every CA certificate to trust now: the retiring one, the issuing one, the coming one.
    pub trusted: String,
    /// The renewal step under way, if one is.
    pub step: Option<Step>,
    /// Until when (Unix seconds) the step under way waits for Kafka clients, if it does.
    pub clients_until: Option<i64>,
    /// The CRL of the certificates this CA issued to Users since deleted, if there are any.
    pub crl: Option<String>,
}

impl CaState {
    /// What the brokers check client certificates with: the CAs to trust, then the CRL.
    pub fn with_crl(&self) -> String {
        match &self.crl {
            Some(crl) => format!("{}{crl}", self.trusted),
            None => self.trusted.clone(),
        }
    }

    /// What the brokers' pod template records of this CA: a change restarts them.
    pub fn trust_fingerprint(&self) -> String {
        let step = self.step.map_or("", Step::name);
        crate::desired::fingerprint(&format!("{step}\n{}", self.trusted))
    }
}

/// The certificates to trust, in a fixed order (retiring, issuing, coming), so the bundle is
/// the same text in step 1 and step 2.
fn trusted_bundle(previous: Option<&str>, issuing: &str, next: Option<&str>) -> String {
    let mut bundle = String::new();
    for cert in [previous, Some(issuing), next].into_iter().flatten() {
        bundle.push_str(cert.trim_end());
        bundle.push('\n');
    }
    bundle
}

/// The UTF-8 value of `key` in `secret`, if it has one.
pub(crate) fn text(secret: &Secret, key: &str) -> Option<String> {
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
/// over: two writers cannot both make a CA), and takes its renewal a step further when the
/// brokers have `rolled` to what the current step needs. `Ok(Err(standing))` when the stored
/// CA cannot be used.
/// `waits` is the step that, once the brokers have rolled, waits `clients` before it ends,
/// for Kafka clients to take what the step gave them.
#[allow(clippy::too_many_arguments)]
async fn ensure_ca<A: AdminApi>(
    ctx: &Context<A>,
    cluster: &Cluster,
    names: &ClusterNames,
    owner: &OwnerReference,
    name: String,
    what: &str,
    readme: &str,
    rolled_to: Option<&str>,
    (waits, clients): (Step, std::time::Duration),
) -> Result<Result<CaState, Standing>, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), names.namespace());
    let now = OffsetDateTime::now_utc();
    let Some(found) = secrets.get_opt(&name).await? else {
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
        return Ok(Ok(CaState {
            trusted: trusted_bundle(None, &ca.cert, None),
            issuing: ca,
            step: None,
            clients_until: None,
            crl: None,
        }));
    };
    let issuing = match (text(&found, CA_CERT_KEY), text(&found, CA_KEY_KEY)) {
        (Some(cert), Some(key)) => Pem { cert, key },
        _ => {
            return Ok(Err(ca_unusable(
                &name,
                what,
                format!("it lacks {CA_CERT_KEY} or {CA_KEY_KEY}"),
            )));
        }
    };
    if let Some(why) = pki::ca_problem(&issuing) {
        return Ok(Err(ca_unusable(&name, what, why)));
    }
    let annotations = found.metadata.annotations.clone().unwrap_or_default();
    let step = match annotations.get(RENEWAL_ANNOTATION) {
        None => None,
        Some(text) => match Step::parse(text) {
            Some(step) => Some(step),
            None => {
                return Ok(Err(ca_unusable(
                    &name,
                    what,
                    format!("its {RENEWAL_ANNOTATION} annotation `{text}` is not a renewal step"),
                )));
            }
        },
    };
    let next = match (text(&found, NEXT_CERT_KEY), text(&found, NEXT_KEY_KEY)) {
        (Some(cert), Some(key)) => Some(Pem { cert, key }),
        _ => None,
    };
    let previous = text(&found, PREVIOUS_CERT_KEY);
    let crl = text(&found, CRL_KEY).filter(|crl| !crl.trim().is_empty());
    let state = |issuing: Pem, previous: Option<&str>, next: Option<&str>, step| CaState {
        trusted: trusted_bundle(previous, &issuing.cert, next),
        issuing,
        step,
        clients_until: None,
        crl: crl.clone(),
    };
    let mut current = state(
        issuing.clone(),
        previous.as_deref(),
        next.as_ref().map(|n| n.cert.as_str()),
        step,
    );
    // The step that waits for clients ends no sooner than `clients` after it began (a step
    // begun by an operator that did not record when waits for nothing).
    if step == Some(waits) {
        current.clients_until = annotations
            .get(RENEWAL_SINCE_ANNOTATION)
            .and_then(|since| since.parse::<Timestamp>().ok())
            .map(|since| since.as_second() + i64::try_from(clients.as_secs()).unwrap_or(i64::MAX));
    }
    let clients_waiting = current
        .clients_until
        .is_some_and(|until| now.unix_timestamp() < until);
    // Whether every broker runs with what the current step gives it.
    let rolled = rolled_to == Some(current.trust_fingerprint().as_str());
    let began = Timestamp::now().to_string();
    let patch = |data: serde_json::Value, renewal: Option<Step>| {
        json!({
            "metadata": {
                "resourceVersion": found.metadata.resource_version,
                "annotations": {
                    RENEW_ANNOTATION: null,
                    RENEWAL_ANNOTATION: renewal.map(Step::name),
                    RENEWAL_SINCE_ANNOTATION: renewal.map(|_| began.clone()),
                },
            },
            "data": data,
        })
    };
    let b64 =
        |text: &str| serde_json::to_value(ByteString(text.as_bytes().to_vec())).unwrap_or_default();
    let (write, next_state, note) = match step {
        None => {
            let asked = annotations
                .get(RENEW_ANNOTATION)
                .is_some_and(|v| v == "true");
            let due = pki::ca_renewal_due(&issuing.cert, now);
            let why = match (asked, due) {
                (_, Some(due)) => due,
                (true, None) => format!("Secret {name} asks for it ({RENEW_ANNOTATION})"),
                (false, None) => return Ok(Ok(current)),
            };
            let new = match pki::new_ca(names.namespace(), names.cluster(), what, now) {
                Ok(ca) => ca,
                Err(error) => return Ok(Err(pki_failed(names, error))),
            };
            let write = patch(
                json!({NEXT_CERT_KEY: b64(&new.cert), NEXT_KEY_KEY: b64(&new.key)}),
                Some(Step::Trust),
            );
            let note = format!(
                "renewing the {what} ({why}), step 1 of 3: the brokers restart one at a time \
                 trusting both the old and the new CA"
            );
            let next_state = state(issuing.clone(), None, Some(&new.cert), Some(Step::Trust));
            (write, next_state, note)
        }
        Some(Step::Trust) => {
            let Some(new) = next else {
                return Ok(Err(ca_unusable(
                    &name,
                    what,
                    format!(
                        "a renewal is under way but it lacks {NEXT_CERT_KEY} or {NEXT_KEY_KEY}"
                    ),
                )));
            };
            if !rolled || clients_waiting {
                return Ok(Ok(current));
            }
            let write = patch(
                json!({
                    CA_CERT_KEY: b64(&new.cert),
                    CA_KEY_KEY: b64(&new.key),
                    PREVIOUS_CERT_KEY: b64(&issuing.cert),
                    NEXT_CERT_KEY: null,
                    NEXT_KEY_KEY: null,
                }),
                Some(Step::Switch),
            );
            let note = format!(
                "renewing the {what}, step 2 of 3: every broker trusts the new CA; it issues \
                 now, certificates are issued again from it, and the brokers restart one at a \
                 time still trusting the old one"
            );
            let next_state = state(new, Some(&issuing.cert), None, Some(Step::Switch));
            (write, next_state, note)
        }
        Some(Step::Switch) => {
            if !rolled || clients_waiting {
                return Ok(Ok(current));
            }
            let write = patch(json!({PREVIOUS_CERT_KEY: null}), None);
            let note = format!(
                "renewed the {what}, step 3 of 3: every broker has certificates of the new CA; \
                 the old one is no longer trusted, and the brokers restart once more to drop it"
            );
            (write, state(issuing.clone(), None, None, None), note)
        }
    };
    secrets
        .patch(&name, &PatchParams::default(), &Patch::Merge(&write))
        .await?;
    info!(secret = name, %note);
    let reason = if next_state.step.is_some() {
        "RenewingCA"
    } else {
        "RenewedCA"
    };
    ctx.publish(cluster, EventType::Normal, reason, "Certificates", note)
        .await;
    Ok(Ok(next_state))
}

/// What a CA renewal under way says, as the Cluster's standing, at `now` (Unix seconds).
pub fn renewal_standing(what: &str, state: &CaState, now: i64) -> Option<Standing> {
    let until = state
        .clients_until
        .filter(|until| now < *until)
        .and_then(|until| Timestamp::from_second(until).ok());
    let message = match (state.step?, until) {
        (Step::Trust, None) => format!(
            "renewing the {what}, step 1 of 3: waiting for every broker to restart trusting \
             both the old and the new CA"
        ),
        (Step::Trust, Some(until)) => format!(
            "renewing the {what}, step 1 of 3: the brokers trust both the old and the new CA \
             once restarted; they get certificates of the new CA after {until} \
             (certificateAuthority.clientTrustPeriod). Kafka clients must take ca.crt again \
             from their User's Secret before then: it holds both CAs"
        ),
        (Step::Switch, None) => format!(
            "renewing the {what}, step 2 of 3: waiting for every broker to restart with \
             certificates of the new CA"
        ),
        (Step::Switch, Some(until)) => format!(
            "renewing the {what}, step 2 of 3: certificates are issued from the new CA; the \
             old one is no longer trusted after {until} \
             (certificateAuthority.clientTrustPeriod). Kafka clients must take user.crt and \
             user.key again from their User's Secret before then"
        ),
    };
    Some(Standing::Reconciling {
        reason: "RenewingCA",
        message,
    })
}

/// Two renewals under way as one standing, saying what each waits for.
fn both(cluster_ca: Option<Standing>, clients_ca: Option<Standing>) -> Option<Standing> {
    match (cluster_ca, clients_ca) {
        (
            Some(Standing::Reconciling { reason, message }),
            Some(Standing::Reconciling {
                message: clients, ..
            }),
        ) => Some(Standing::Reconciling {
            reason,
            message: format!("{message}; {clients}"),
        }),
        (cluster_ca, clients_ca) => cluster_ca.or(clients_ca),
    }
}

/// What [`ensure`] leaves for the rest of the reconcile.
#[derive(Debug, Clone)]
pub struct Certificates {
    /// The pod template annotations recording each CA's trust.
    pub annotations: BTreeMap<String, String>,
    /// Reconciling while a CA renewal waits for the brokers to restart.
    pub renewing: Option<Standing>,
}

/// Makes sure the Cluster's CAs (the cluster CA and the clients CA), broker and admin
/// Secrets exist and fit, takes CA renewals a step further once `rolled` (the pod template
/// annotations of a StatefulSet whose every broker runs its current template) shows the
/// brokers have what the step needs, and points the admin client at the admin certificate.
/// The brokers' certificate is valid for their DNS names and for `node_addresses` (the
/// nodes' addresses `nodeport` listeners advertise). `Ok(Err(standing))` when a CA cannot be
/// used: nothing is issued from it, and the standing says what a person has to do.
pub async fn ensure<A: AdminApi>(
    ctx: &Context<A>,
    cluster: &Cluster,
    names: &ClusterNames,
    owner: &OwnerReference,
    node_addresses: &[String],
    rolled: Option<&BTreeMap<String, String>>,
) -> Result<Result<Certificates, Standing>, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), names.namespace());
    let now = OffsetDateTime::now_utc();
    let clients: std::time::Duration = cluster
        .spec
        .certificate_authority
        .client_trust_period
        .into();
    let rolled_to = |annotation: &str| rolled.and_then(|a| a.get(annotation)).map(String::as_str);
    let ca = match ensure_ca(
        ctx,
        cluster,
        names,
        owner,
        names.ca_secret(),
        "cluster CA",
        CA_README,
        rolled_to(CLUSTER_CA_TRUST_ANNOTATION),
        // Clients check the brokers' certificates with the cluster CA: they need the new
        // one before the brokers present certificates of it.
        (Step::Trust, clients),
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
        rolled_to(CLIENTS_CA_TRUST_ANNOTATION),
        // Clients present certificates of the clients CA: they need new ones before the
        // old CA is no longer trusted.
        (Step::Switch, clients),
    )
    .await?
    {
        Ok(ca) => ca,
        Err(standing) => return Ok(Err(standing)),
    };
    // The brokers check client certificates against the clients CA and its CRL.
    let clients_file = clients_ca.with_crl();
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
        let why = match &current {
            None if found.is_none() => Some("there was none".to_owned()),
            None => Some(format!("the Secret lacks {CERT_KEY} or {KEY_KEY}")),
            Some(current) => pki::reissue_reason(current, &ca.issuing.cert, cn, &dns_names, now),
        };
        let (issued, why) = match (why, current) {
            (None, Some(current)) => (current, None),
            (why, _) => match pki::issue(&ca.issuing, cn, &dns_names, now) {
                Ok(issued) => (issued, Some(why.unwrap_or_default())),
                Err(error) => return Ok(Err(pki_failed(names, error))),
            },
        };
        // Beside the certificate, the CAs to trust: the cluster CA's, and for the brokers the
        // clients CA's too, for listeners that authenticate by TLS.
        let mut data = vec![
            (CERT_KEY, issued.cert.as_str()),
            (KEY_KEY, issued.key.as_str()),
            (CA_CERT_KEY, ca.trusted.as_str()),
        ];
        if cn == BROKER_CN {
            data.push((pki::CLIENTS_CA_FILE, clients_file.as_str()));
        }
        let object = secret(names, owner, name.clone(), "kubernetes.io/tls", &data);
        if found.as_ref().and_then(|f| f.data.as_ref()) != object.data.as_ref() {
            secrets
                .patch(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&object),
                )
                .await?;
            match &why {
                Some(why) => {
                    info!(secret = name, reason = why, "issued a certificate");
                    ctx.publish(
                        cluster,
                        EventType::Normal,
                        "IssuedCertificate",
                        "Certificates",
                        format!("issued the {cn} certificate in Secret {name}: {why}"),
                    )
                    .await;
                }
                None => info!(secret = name, "the CAs it trusts changed"),
            }
        }
        if cn == ADMIN_CN {
            admin = Some(issued);
        }
    }
    if let Some(admin) = admin {
        ctx.admin.use_tls(
            &names.admin_address(),
            AdminTls {
                ca: ca.trusted.clone(),
                cert: admin.cert,
                key: admin.key,
            },
        );
    }
    Ok(Ok(Certificates {
        annotations: BTreeMap::from([
            (
                CLUSTER_CA_TRUST_ANNOTATION.to_owned(),
                ca.trust_fingerprint(),
            ),
            (
                CLIENTS_CA_TRUST_ANNOTATION.to_owned(),
                clients_ca.trust_fingerprint(),
            ),
        ]),
        renewing: both(
            renewal_standing("cluster CA", &ca, now.unix_timestamp()),
            renewal_standing("clients CA", &clients_ca, now.unix_timestamp()),
        ),
    }))
}

/// Revokes the client certificate `cert` of the User `user` (`<namespace>/<name>`), a deleted
/// one: lists it in the clients CA Secret, issues the CRL again from the clients CA, and gives
/// the brokers the new CRL at once (they load it within seconds, without a restart; the
/// Cluster's reconcile writes the same). Listed certificates that have expired are dropped.
/// `Ok(false)` when there is nothing to do: no clients CA, a certificate that does not parse,
/// or one listed already.
pub async fn revoke_client_certificate<A>(
    ctx: &Context<A>,
    names: &ClusterNames,
    user: &str,
    cert: &str,
) -> Result<bool, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), names.namespace());
    let Some(found) = secrets.get_opt(&names.clients_ca_secret()).await? else {
        return Ok(false);
    };
    let Some((issuing, trusted)) = ca_of(&found) else {
        return Ok(false);
    };
    let (serial, expires) = match pki::serial_and_expiry(cert) {
        Ok(found) => found,
        Err(why) => {
            tracing::warn!(user, %why, "the User's certificate cannot be revoked");
            return Ok(false);
        }
    };
    let now = OffsetDateTime::now_utc();
    let serial = hex(&serial);
    let mut revoked: Vec<(String, i64, String)> = text(&found, REVOKED_KEY)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let serial = words.next()?.to_owned();
            let expires = words.next()?.parse().ok()?;
            Some((serial, expires, words.next().unwrap_or_default().to_owned()))
        })
        .filter(|(_, expires, _)| *expires > now.unix_timestamp())
        .collect();
    if revoked.iter().any(|(listed, _, _)| *listed == serial) {
        return Ok(false);
    }
    revoked.push((serial.clone(), expires, user.to_owned()));
    let serials: Vec<Vec<u8>> = revoked
        .iter()
        .filter_map(|(serial, _, _)| unhex(serial))
        .collect();
    let crl = pki::crl(&issuing, &serials, now)?;
    let list: String = revoked
        .iter()
        .map(|(serial, expires, user)| format!("{serial} {expires} {user}\n"))
        .collect();
    let b64 =
        |text: &str| serde_json::to_value(ByteString(text.as_bytes().to_vec())).unwrap_or_default();
    let patch = json!({
        "metadata": { "resourceVersion": found.metadata.resource_version },
        "data": { REVOKED_KEY: b64(&list), CRL_KEY: b64(&crl) },
    });
    secrets
        .patch(
            &names.clients_ca_secret(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    let brokers = json!({ "data": { pki::CLIENTS_CA_FILE: b64(&format!("{trusted}{crl}")) } });
    match secrets
        .patch(
            &names.broker_tls_secret(),
            &PatchParams::default(),
            &Patch::Merge(&brokers),
        )
        .await
    {
        Ok(_) => {}
        // No brokers' Secret yet: the Cluster's reconcile makes it with the CRL.
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(error) => return Err(error.into()),
    }
    info!(user, serial, "revoked the User's certificate");
    Ok(true)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
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

/// The CA in Secret `name` as stored, if it is there and whole: the CA that issues, and the
/// certificates to trust (more than one while it is renewed).
pub async fn stored_ca<A>(
    ctx: &Context<A>,
    namespace: &str,
    name: &str,
) -> Result<Option<(Pem, String)>, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    Ok(secrets.get_opt(name).await?.as_ref().and_then(ca_of))
}

/// The CA a CA Secret holds, if it is whole: the CA that issues, and the certificates to
/// trust.
fn ca_of(found: &Secret) -> Option<(Pem, String)> {
    let issuing = Pem {
        cert: text(found, CA_CERT_KEY)?,
        key: text(found, CA_KEY_KEY)?,
    };
    let trusted = trusted_bundle(
        text(found, PREVIOUS_CERT_KEY).as_deref(),
        &issuing.cert,
        text(found, NEXT_CERT_KEY).as_deref(),
    );
    Some((issuing, trusted))
}

/// What the clients CA Secret says of itself to someone who finds it.
const CLIENTS_CA_README: &str = "The clients CA of a Strand cluster, made by the Strand \
operator: it signs the certificates of Users that authenticate by TLS. Whoever holds ca.key can \
connect as any such User: keep access to this Secret as narrow as to the cluster itself.\n";

/// What the CA Secret says of itself to someone who finds it.
const CA_README: &str = "The CA of a Strand cluster's gRPC port (Raft between brokers and the \
admin API), made by the Strand operator. Whoever holds ca.key can join the cluster as a broker \
or administer it: keep access to this Secret as narrow as to the cluster itself.\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trust_bundle_is_the_same_text_in_both_renewal_steps() {
        let (old, new) = ("OLD\n", "NEW\n");
        let step1 = trusted_bundle(None, old, Some(new));
        let step2 = trusted_bundle(Some(old), new, None);
        assert_eq!(step1, "OLD\nNEW\n");
        assert_eq!(step1, step2);
        // The fingerprint still tells the steps apart, so each ends with its own roll.
        let state = |step| CaState {
            issuing: Pem {
                cert: old.into(),
                key: String::new(),
            },
            trusted: step1.clone(),
            step,
            clients_until: None,
            crl: None,
        };
        let fingerprints = [None, Some(Step::Trust), Some(Step::Switch)]
            .map(|step| state(step).trust_fingerprint());
        assert_ne!(fingerprints[0], fingerprints[1]);
        assert_ne!(fingerprints[1], fingerprints[2]);
        assert_eq!(Step::parse(Step::Switch.name()), Some(Step::Switch));
        assert_eq!(Step::parse("later"), None);
    }

    #[test]
    fn a_step_waiting_for_clients_says_until_when_and_two_renewals_say_both() {
        let state = |step, clients_until| CaState {
            issuing: Pem {
                cert: String::new(),
                key: String::new(),
            },
            trusted: String::new(),
            step,
            clients_until,
            crl: None,
        };
        let message = |standing: Option<Standing>| match standing {
            Some(Standing::Reconciling { message, .. }) => message,
            other => panic!("{other:?}"),
        };
        let waiting = message(renewal_standing(
            "cluster CA",
            &state(Some(Step::Trust), Some(1_000)),
            999,
        ));
        assert!(waiting.contains("after 1970-01-01T00:16:40Z"), "{waiting}");
        assert!(waiting.contains("clientTrustPeriod"), "{waiting}");
        // Once the time has come, the step waits only for the brokers.
        let rolling = message(renewal_standing(
            "cluster CA",
            &state(Some(Step::Trust), Some(1_000)),
            1_000,
        ));
        assert!(!rolling.contains("clientTrustPeriod"), "{rolling}");
        assert!(renewal_standing("clients CA", &state(None, None), 0).is_none());
        let clients = renewal_standing("clients CA", &state(Some(Step::Switch), Some(50)), 0);
        let together = message(both(
            renewal_standing("cluster CA", &state(Some(Step::Switch), None), 0),
            clients,
        ));
        assert!(
            together.contains("the cluster CA, step 2")
                && together.contains("the clients CA, step 2"),
            "{together}"
        );
    }
}
