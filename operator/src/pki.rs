//! The certificates of a Cluster: a CA per Cluster, one certificate its brokers share on the
//! gRPC port (which carries Raft between brokers and the admin API) and on their TLS Kafka
//! listeners (server and client: brokers call each other), one admin certificate, which the
//! operator calls the admin API with and which people and tools can use too (`strand` with
//! `STRAND_TLS_*`), and a clients CA per Cluster that issues the certificates of Users that
//! authenticate by TLS.
//!
//! Brokers accept on the gRPC port only certificates of their Cluster's CA, Raft and
//! broker-to-broker calls only from [`BROKER_CN`], and admin calls only from [`ADMIN_CN`] (and
//! brokers). Only the operator holds the CA keys, so only it can make either.
//!
//! Pure: issuing and checking certificates here; reading and writing the Secrets that hold
//! them is [`crate::cluster::tls`].

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

/// Common name of the brokers' certificate; their principal is `User:CN=strand-broker`.
pub const BROKER_CN: &str = "strand-broker";
/// Common name of the admin certificate; its principal is `User:CN=strand-admin`.
pub const ADMIN_CN: &str = "strand-admin";
/// File name of the clients CA's certificate beside the brokers' certificate: brokers accept
/// on listeners with `authentication: tls` client certificates it signed.
pub const CLIENTS_CA_FILE: &str = "clients-ca.crt";
/// How long a Cluster's CA is valid.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How long a broker or admin certificate is valid.
pub const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// How long before it expires a certificate is issued again. Brokers read renewed files
/// without a restart, so renewing early costs nothing.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// The Kafka principal of a certificate with common name `cn` (Kafka's default mapping).
pub fn principal(cn: &str) -> String {
    format!("User:CN={cn}")
}

/// A certificate and its private key, PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Pem {
    /// The certificate.
    pub cert: String,
    /// The private key (PKCS#8).
    pub key: String,
}

impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never a private key in a log line.
        f.debug_struct("Pem").field("cert", &self.cert).finish()
    }
}

/// Why a certificate could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// The CA's certificate or key cannot be used.
    #[error("the cluster CA cannot be used: {0}")]
    Ca(String),
    /// Issuing failed.
    #[error("cannot issue a certificate: {0}")]
    Issue(#[from] rcgen::Error),
}

fn validity(params: &mut CertificateParams, now: OffsetDateTime, lasts: Duration) {
    // A little back-dating covers clocks a few minutes apart.
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + lasts;
}

/// A new CA for the Cluster `cluster` in `namespace`; `what` names it (`cluster CA`,
/// `clients CA`).
pub fn new_ca(
    namespace: &str,
    cluster: &str,
    what: &str,
    now: OffsetDateTime,
) -> Result<Pem, PkiError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Strand");
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{namespace}/{cluster} {what}"));
    validity(&mut params, now, CA_VALIDITY);
    let cert = params.self_signed(&key)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// The CA `ca` as rcgen signs with it: its certificate as parameters (name, key identifier)
/// and its key.
fn issuer(ca: &Pem) -> Result<(rcgen::Certificate, KeyPair), PkiError> {
    let ca_key = KeyPair::from_pem(&ca.key).map_err(|e| PkiError::Ca(e.to_string()))?;
    let ca_params =
        CertificateParams::from_ca_cert_pem(&ca.cert).map_err(|e| PkiError::Ca(e.to_string()))?;
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .map_err(|e| PkiError::Ca(e.to_string()))?;
    Ok((ca_cert, ca_key))
}

/// A certificate for `common_name`, valid for `dns_names` (DNS names, or IP addresses as
/// text; none for a client-only one), for both server and client authentication, signed by
/// `ca`.
pub fn issue(
    ca: &Pem,
    common_name: &str,
    dns_names: &[String],
    now: OffsetDateTime,
) -> Result<Pem, PkiError> {
    let (ca_cert, ca_key) = issuer(ca)?;
    let key = KeyPair::generate()?;
    let (ips, dns): (Vec<&String>, Vec<&String>) = dns_names
        .iter()
        .partition(|n| n.parse::<std::net::IpAddr>().is_ok());
    let mut params = CertificateParams::new(dns.into_iter().cloned().collect::<Vec<_>>())?;
    for ip in ips {
        if let Ok(ip) = ip.parse() {
            params.subject_alt_names.push(SanType::IpAddress(ip));
        }
    }
    if !dns_names.is_empty() {
        // The broker's own tools inside its pod reach it on the loopback address.
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
    }
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, now, LEAF_VALIDITY);
    let cert = params.signed_by(&key, &ca_cert, &ca_key)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

fn der(pem: &str) -> Result<Vec<u8>, String> {
    let (_, parsed) =
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| format!("not PEM: {e}"))?;
    Ok(parsed.contents)
}

/// Why a CA cannot be used to issue from, if it cannot: it does not parse, its key is not its
/// own, or it is not a CA.
pub fn ca_problem(ca: &Pem) -> Option<String> {
    let der = match der(&ca.cert) {
        Ok(der) => der,
        Err(e) => return Some(format!("its certificate is {e}")),
    };
    let cert = match X509Certificate::from_der(&der) {
        Ok((_, cert)) => cert,
        Err(e) => return Some(format!("its certificate does not parse: {e}")),
    };
    let key = match KeyPair::from_pem(&ca.key) {
        Ok(key) => key,
        Err(e) => return Some(format!("its key does not parse: {e}")),
    };
    if cert.public_key().raw != key.public_key_der().as_slice() {
        return Some("its key does not belong to its certificate".to_owned());
    }
    if !cert.is_ca() {
        return Some("its certificate is not a CA's".to_owned());
    }
    None
}

/// Why a CA must be renewed now, if it must: it expires within [`RENEW_BEFORE`].
pub fn ca_renewal_due(ca_cert: &str, now: OffsetDateTime) -> Option<String> {
    let der = der(ca_cert).ok()?;
    let (_, cert) = X509Certificate::from_der(&der).ok()?;
    let expires = cert.validity().not_after.to_datetime();
    (expires <= now + RENEW_BEFORE).then(|| format!("it expires at {expires}"))
}

/// Why the certificate `issued` must be issued again, if it must: it does not parse, was not
/// signed by `ca_cert`, is not for `common_name` and exactly `dns_names`, does not go with
/// `key`, or expires within [`RENEW_BEFORE`].
pub fn reissue_reason(
    issued: &Pem,
    ca_cert: &str,
    common_name: &str,
    dns_names: &[String],
    now: OffsetDateTime,
) -> Option<String> {
    let (issued_der, ca_der) = match (der(&issued.cert), der(ca_cert)) {
        (Ok(issued), Ok(ca)) => (issued, ca),
        (Err(e), _) | (_, Err(e)) => return Some(format!("the certificate is {e}")),
    };
    let (cert, ca) = match (
        X509Certificate::from_der(&issued_der),
        X509Certificate::from_der(&ca_der),
    ) {
        (Ok((_, cert)), Ok((_, ca))) => (cert, ca),
        _ => return Some("the certificate does not parse".to_owned()),
    };
    if cert.verify_signature(Some(ca.public_key())).is_err() {
        return Some("it was not signed by the cluster CA".to_owned());
    }
    match KeyPair::from_pem(&issued.key) {
        Ok(key) if cert.public_key().raw == key.public_key_der().as_slice() => {}
        _ => return Some("its key does not belong to it".to_owned()),
    }
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok());
    if cn != Some(common_name) {
        return Some(format!("it is not for {common_name}"));
    }
    let mut names: Vec<String> = cert
        .extensions()
        .iter()
        .filter_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => Some(san),
            _ => None,
        })
        .flat_map(|san| san.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(dns.to_string()),
            GeneralName::IPAddress(bytes) => ip_text(bytes),
            _ => None,
        })
        // Every issued server certificate carries the loopback address.
        .filter(|name| name != "127.0.0.1")
        .collect();
    names.sort();
    let mut wanted = dns_names.to_vec();
    wanted.sort();
    if names != wanted {
        return Some(format!(
            "it names {} where the brokers are now {}",
            names.join(", "),
            wanted.join(", ")
        ));
    }
    let expires = cert.validity().not_after.to_datetime();
    if expires <= now + RENEW_BEFORE {
        return Some(format!("it expires at {expires}"));
    }
    None
}

/// A certificate's serial number (big-endian bytes) and when it expires (Unix seconds).
pub fn serial_and_expiry(cert_pem: &str) -> Result<(Vec<u8>, i64), String> {
    let der = der(cert_pem)?;
    let (_, cert) =
        X509Certificate::from_der(&der).map_err(|e| format!("it does not parse: {e}"))?;
    Ok((
        cert.raw_serial().to_vec(),
        cert.validity().not_after.timestamp(),
    ))
}

/// A CRL of `ca` revoking the certificates with serial numbers `serials` (big-endian bytes),
/// as PEM, issued at `now`. Brokers do not hold it to an expiry: it lasts until replaced.
pub fn crl(ca: &Pem, serials: &[Vec<u8>], now: OffsetDateTime) -> Result<String, PkiError> {
    let (ca_cert, ca_key) = issuer(ca)?;
    let params = rcgen::CertificateRevocationListParams {
        this_update: now - time::Duration::minutes(5),
        next_update: now + CA_VALIDITY,
        // Increasing with time, as CRL numbers must.
        crl_number: rcgen::SerialNumber::from(u64::try_from(now.unix_timestamp()).unwrap_or(0)),
        issuing_distribution_point: None,
        revoked_certs: serials
            .iter()
            .map(|serial| rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from_slice(serial),
                revocation_time: now,
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    Ok(params.signed_by(&ca_cert, &ca_key)?.pem()?)
}

/// An IP address SAN as text, as [`issue`] takes it.
fn ip_text(bytes: &[u8]) -> Option<String> {
    let ip = match bytes.len() {
        4 => std::net::IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
        16 => std::net::IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?),
        _ => return None,
    };
    Some(ip.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crl_of_the_ca_lists_the_serial_of_a_revoked_certificate() {
        let ca = new_ca("ns", "c", "clients CA", now()).unwrap();
        let issued = issue(&ca, "alice", &[], now()).unwrap();
        let (serial, expires) = serial_and_expiry(&issued.cert).unwrap();
        assert_eq!(expires, (now() + LEAF_VALIDITY).unix_timestamp());
        let crl = crl(&ca, std::slice::from_ref(&serial), now()).unwrap();
        assert!(crl.starts_with("-----BEGIN X509 CRL-----"), "{crl}");
        let der = der(&crl).unwrap();
        let (_, parsed) = x509_parser::prelude::parse_x509_crl(&der).unwrap();
        let listed: Vec<&[u8]> = parsed
            .iter_revoked_certificates()
            .map(|r| r.raw_serial())
            .collect();
        assert_eq!(listed, [serial.as_slice()]);
        let (_, ca_der) = x509_parser::pem::parse_x509_pem(ca.cert.as_bytes()).unwrap();
        let (_, ca_cert) = X509Certificate::from_der(&ca_der.contents).unwrap();
        assert_eq!(parsed.issuer(), ca_cert.subject());
        assert!(parsed.verify_signature(ca_cert.public_key()).is_ok());
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn names() -> Vec<String> {
        vec![
            "*.main-brokers.ns.svc".to_owned(),
            "main-brokers.ns.svc".to_owned(),
        ]
    }

    #[test]
    fn an_issued_certificate_is_kept_until_it_is_near_its_end() {
        let ca = new_ca("ns", "main", "cluster CA", now()).unwrap();
        assert_eq!(ca_problem(&ca), None);
        assert_eq!(ca_renewal_due(&ca.cert, now()), None);
        let broker = issue(&ca, BROKER_CN, &names(), now()).unwrap();
        assert_eq!(
            reissue_reason(&broker, &ca.cert, BROKER_CN, &names(), now()),
            None
        );
        let later = now() + LEAF_VALIDITY - RENEW_BEFORE + Duration::from_secs(60);
        let why = reissue_reason(&broker, &ca.cert, BROKER_CN, &names(), later).unwrap();
        assert!(why.contains("expires"), "{why}");
        // The admin certificate names no host.
        let admin = issue(&ca, ADMIN_CN, &[], now()).unwrap();
        assert_eq!(reissue_reason(&admin, &ca.cert, ADMIN_CN, &[], now()), None);
    }

    #[test]
    fn a_certificate_of_another_ca_or_for_other_names_is_issued_again() {
        let ca = new_ca("ns", "main", "cluster CA", now()).unwrap();
        let other = new_ca("ns", "main", "cluster CA", now()).unwrap();
        let broker = issue(&other, BROKER_CN, &names(), now()).unwrap();
        let why = reissue_reason(&broker, &ca.cert, BROKER_CN, &names(), now()).unwrap();
        assert!(why.contains("not signed by the cluster CA"), "{why}");

        let broker = issue(&ca, BROKER_CN, &names(), now()).unwrap();
        let fewer = &names()[..1];
        let why = reissue_reason(&broker, &ca.cert, BROKER_CN, fewer, now()).unwrap();
        assert!(why.contains("where the brokers are now"), "{why}");
        let why = reissue_reason(&broker, &ca.cert, ADMIN_CN, &names(), now()).unwrap();
        assert!(why.contains("not for strand-admin"), "{why}");
        // Node addresses are IP names; a node joining means issuing again.
        let mut with_node = names();
        with_node.push("10.0.0.7".to_owned());
        let why = reissue_reason(&broker, &ca.cert, BROKER_CN, &with_node, now()).unwrap();
        assert!(why.contains("10.0.0.7"), "{why}");
        let broker = issue(&ca, BROKER_CN, &with_node, now()).unwrap();
        assert_eq!(
            reissue_reason(&broker, &ca.cert, BROKER_CN, &with_node, now()),
            None
        );

        let mismatched = Pem {
            cert: broker.cert.clone(),
            key: issue(&ca, BROKER_CN, &names(), now()).unwrap().key,
        };
        let why = reissue_reason(&mismatched, &ca.cert, BROKER_CN, &names(), now()).unwrap();
        assert!(why.contains("key does not belong"), "{why}");
        let garbage = Pem {
            cert: "not a certificate".to_owned(),
            key: broker.key,
        };
        assert!(reissue_reason(&garbage, &ca.cert, BROKER_CN, &names(), now()).is_some());
    }

    #[test]
    fn a_ca_edited_by_hand_is_refused_and_one_near_its_end_is_due() {
        let ca = new_ca("ns", "main", "cluster CA", now()).unwrap();
        let other = new_ca("ns", "main", "cluster CA", now()).unwrap();
        let swapped = Pem {
            cert: ca.cert.clone(),
            key: other.key,
        };
        let why = ca_problem(&swapped).unwrap();
        assert!(why.contains("does not belong"), "{why}");
        let late = now() + CA_VALIDITY;
        // Near its end a CA is renewed, not refused.
        assert_eq!(ca_problem(&ca), None);
        assert!(ca_renewal_due(&ca.cert, late).unwrap().contains("expires"));
        let leaf = issue(&ca, ADMIN_CN, &[], now()).unwrap();
        assert!(ca_problem(&leaf).unwrap().contains("not a CA"));
        // Nothing secret in a debug line.
        assert!(!format!("{ca:?}").contains("PRIVATE KEY"));
    }
}
