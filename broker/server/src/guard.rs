//! Who may call the gRPC port. With mutual TLS every caller presents a certificate signed by
//! the cluster's CA, and its subject names a principal (through the same mapping rules as
//! Kafka client certificates). The Raft and broker-to-broker services answer only the
//! cluster's brokers; the admin API answers brokers, the admin principals, Kafka super users
//! and principals the ACLs allow to Alter the cluster. Without TLS the port is open, and the
//! broker says so when it starts.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use strand_auth::{Operation, PrincipalMapper, ResourceType};
use strand_kafka::SecuritySettings;
use strand_node::Cluster;
use tonic::{Request, Status};

/// Who may call the gRPC port besides the brokers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrpcAccess {
    /// Principals of the cluster's brokers (`User:CN=…`). Empty: the principal of this
    /// broker's own gRPC certificate, so brokers that share a certificate subject need no
    /// setting.
    pub broker_principals: Vec<String>,
    /// Principals allowed the admin API (the operator, cluster administrators).
    pub admin_principals: Vec<String>,
}

/// The checks of one broker's gRPC port.
#[derive(Clone)]
pub(crate) struct GrpcGuard {
    brokers: Arc<BTreeSet<String>>,
    admins: Arc<BTreeSet<String>>,
    cluster: Cluster,
    security: Arc<SecuritySettings>,
    /// Principals of the certificates seen, by their DER bytes: every Raft RPC presents its
    /// broker's certificate, and parsing it once per certificate rather than once per call
    /// keeps X.509 parsing off the replication path. Bounded; emptied when full.
    principals: Arc<Mutex<HashMap<Vec<u8>, String>>>,
}

/// Certificates whose principals are remembered (brokers, the operator, a few admins, and
/// their renewed certificates).
const PRINCIPALS_CACHED: usize = 64;

/// Why the guard cannot be set up.
#[derive(Debug, thiserror::Error)]
#[error("gRPC certificate {path}: {message}")]
pub struct GuardError {
    path: String,
    message: String,
}

impl GrpcGuard {
    /// The guard for a port whose certificate is `own_cert` (PEM).
    pub(crate) fn new(
        access: &GrpcAccess,
        own_cert: &Path,
        cluster: Cluster,
        security: SecuritySettings,
    ) -> Result<GrpcGuard, GuardError> {
        let mut brokers: BTreeSet<String> = access.broker_principals.iter().cloned().collect();
        if brokers.is_empty() {
            brokers.insert(principal_of_file(own_cert, &security.principal_mapping)?);
        }
        tracing::info!(brokers = ?brokers, admins = ?access.admin_principals,
            "gRPC port answers only these principals (and Kafka super users and cluster Alter ACLs for the admin API)");
        Ok(GrpcGuard {
            brokers: Arc::new(brokers),
            admins: Arc::new(access.admin_principals.iter().cloned().collect()),
            cluster,
            security: Arc::new(security),
            principals: Arc::default(),
        })
    }

    /// The caller's principal, from its client certificate.
    fn principal<T>(&self, request: &Request<T>) -> Result<String, Status> {
        let certs = request
            .peer_certs()
            .ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
        let first = certs
            .first()
            .ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
        let der: &[u8] = first.as_ref();
        let mut cache = self.principals.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(principal) = cache.get(der) {
            return Ok(principal.clone());
        }
        let principal =
            strand_auth::principal_of_certificate(first, &self.security.principal_mapping)
                .map_err(|e| {
                    Status::unauthenticated(format!(
                        "the client certificate names no principal: {e}"
                    ))
                })?;
        if cache.len() >= PRINCIPALS_CACHED {
            cache.clear();
        }
        cache.insert(der.to_vec(), principal.clone());
        Ok(principal)
    }

    /// Lets through the cluster's brokers only.
    pub(crate) fn brokers_only<T>(&self, request: Request<T>) -> Result<Request<T>, Status> {
        let principal = self.principal(&request)?;
        if self.brokers.contains(&principal) {
            return Ok(request);
        }
        tracing::warn!(%principal, remote = ?request.remote_addr(),
            "gRPC call to a broker-only service refused: not a broker of this cluster");
        Err(Status::permission_denied(format!(
            "{principal} is not a broker of this cluster"
        )))
    }

    /// Lets through brokers, admin principals, super users and principals allowed to Alter
    /// the cluster.
    pub(crate) fn admins_only<T>(&self, request: Request<T>) -> Result<Request<T>, Status> {
        let principal = self.principal(&request)?;
        if self.brokers.contains(&principal) || self.admins.contains(&principal) {
            return Ok(request);
        }
        if let Some(authorizer) = &self.security.authorizer {
            let host = request
                .remote_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default();
            let state = self.cluster.state();
            if strand_auth::authorize(
                state.acls(),
                authorizer,
                &principal,
                &host,
                Operation::Alter,
                ResourceType::Cluster,
                strand_auth::CLUSTER_RESOURCE,
            ) {
                return Ok(request);
            }
        }
        tracing::warn!(%principal, remote = ?request.remote_addr(), "gRPC admin call refused");
        Err(Status::permission_denied(format!(
            "{principal} may not use the admin API: it is not a broker, an admin principal, a super user, or allowed to Alter the cluster"
        )))
    }
}

/// The principal of the first certificate in a PEM file.
fn principal_of_file(path: &Path, mapping: &PrincipalMapper) -> Result<String, GuardError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let error = |message: String| GuardError {
        path: path.display().to_string(),
        message,
    };
    let cert = CertificateDer::from_pem_file(path).map_err(|e| error(e.to_string()))?;
    strand_auth::principal_of_certificate(&cert, mapping).map_err(|e| error(e.to_string()))
}
