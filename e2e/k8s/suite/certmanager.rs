//! A stand-in for cert-manager, for a listener whose certificate cert-manager issues: the
//! suite installs cert-manager's `Certificate` resource definition (and only that), and then
//! does what cert-manager's controller would for one Certificate: issues a certificate for
//! the names it asks for from a CA of the suite's own (a company's CA), writes it into the
//! Certificate's Secret, and marks the Certificate Ready. Renewing writes a new certificate
//! and key into the same Secret, as cert-manager does before expiry.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use serde_json::{Value, json};

use crate::kubectl::{apply, get, kubectl, wait_for};
use crate::suite::*;

/// cert-manager's Certificate resource definition, reduced to what the API server needs to
/// store Certificates with a status.
const CERTIFICATE_CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: certificates.cert-manager.io
spec:
  group: cert-manager.io
  scope: Namespaced
  names:
    kind: Certificate
    listKind: CertificateList
    plural: certificates
    singular: certificate
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
";

/// Installs the Certificate resource definition and waits until the API server serves it.
pub(crate) fn install() {
    apply(CERTIFICATE_CRD);
    wait_for(
        "cert-manager's Certificate resource to be served",
        QUICK,
        || {
            let crd = get(NS, "crd", "certificates.cert-manager.io").ok_or("not yet")?;
            let established = crd["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Established" && c["status"] == "True");
            if established {
                Ok(())
            } else {
                Err("not established yet".to_owned())
            }
        },
    );
}

/// Removes the Certificate resource definition (and every Certificate).
pub(crate) fn uninstall() {
    kubectl(&[
        "delete",
        "crd",
        "certificates.cert-manager.io",
        "--ignore-not-found",
        "--wait=true",
    ]);
}

/// The company's CA, which the suite's cert-manager issues from.
pub(crate) struct CompanyCa {
    ca: rcgen::Certificate,
    key: KeyPair,
}

impl CompanyCa {
    pub(crate) fn new() -> CompanyCa {
        let key = KeyPair::generate().expect("a CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Example Company CA");
        let ca = params.self_signed(&key).expect("a self-signed CA");
        CompanyCa { ca, key }
    }

    pub(crate) fn pem(&self) -> String {
        self.ca.pem()
    }

    /// Issues the Certificate `name` of namespace [`NS`] as cert-manager would: a new key
    /// and a certificate for its `dnsNames` and `ipAddresses`, written into its `secretName`
    /// with the CA as `ca.crt`; then marks it Ready. Returns the names it was issued for.
    pub(crate) fn issue(&self, name: &str) -> Vec<String> {
        let certificate = get(NS, "certificate", name).expect("the Certificate");
        let spec = &certificate["spec"];
        let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
        let dns: Vec<String> = spec["dnsNames"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        let ips: Vec<String> = spec["ipAddresses"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        let secret = text(&spec["secretName"]);
        assert!(
            !secret.is_empty(),
            "a Certificate without secretName: {spec}"
        );
        let key = KeyPair::generate().expect("a key");
        let mut params = CertificateParams::new(dns.clone()).expect("certificate parameters");
        for ip in &ips {
            params.subject_alt_names.push(SanType::IpAddress(
                ip.parse().expect("ipAddresses holds IP addresses"),
            ));
        }
        let issued = params
            .signed_by(&key, &self.ca, &self.key)
            .expect("a certificate");
        let object = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {
                "name": secret,
                "namespace": NS,
                "labels": spec["secretTemplate"]["labels"],
            },
            "stringData": {
                "tls.crt": issued.pem(),
                "tls.key": key.serialize_pem(),
                "ca.crt": self.pem(),
            },
        });
        apply(&object.to_string());
        let ready = json!({"status": {"conditions": [{
            "type": "Ready",
            "status": "True",
            "reason": "Ready",
            "message": "Certificate is up to date and has not expired",
        }]}});
        kubectl(&[
            "patch",
            "certificate",
            "-n",
            NS,
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            &ready.to_string(),
        ]);
        dns.into_iter().chain(ips).collect()
    }
}
