//! TLS for a broker's ports, from PEM files that are read again when they change: the Kafka
//! listeners (Kafka's `SSL` and `SASL_SSL`), the gRPC port (mutual TLS: the cluster's brokers,
//! the operator and admin clients all present a certificate of the cluster's CA), and the
//! broker's own calls to other brokers. A renewed certificate (cert-manager or the operator
//! writes new files into the same volume) is served to new connections, and presented on new
//! connections to peers, without a restart; connections already open keep theirs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// A listener's TLS files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, the server's certificate first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA certificates client certificates must chain to; `None` asks for none.
    pub client_ca: Option<PathBuf>,
}

/// Why TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM item.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The certificate, key or CA was refused.
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| file_error(path, e))
}

/// The server side of TLS 1.3 and 1.2 for `files`, offering the ALPN protocols `alpn` (none
/// for Kafka, `h2` for gRPC). With a client CA, a client certificate chaining to it is
/// required; CRLs (`X509 CRL` PEM blocks) in the client CA file revoke the client
/// certificates they list. A certificate whose CA has no CRL there is not checked.
pub fn server_config(files: &TlsFiles, alpn: &[&[u8]]) -> Result<ServerConfig, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| file_error(&files.cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(&files.cert, e))?;
    if chain.is_empty() {
        return Err(file_error(&files.cert, "holds no certificate"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| file_error(&files.key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in CertificateDer::pem_file_iter(path).map_err(|e| file_error(path, e))? {
                roots
                    .add(ca.map_err(|e| file_error(path, e))?)
                    .map_err(|e| file_error(path, e))?;
            }
            if roots.is_empty() {
                return Err(file_error(path, "holds no CA certificate"));
            }
            let crls: Vec<CertificateRevocationListDer<'static>> =
                CertificateRevocationListDer::pem_file_iter(path)
                    .map_err(|e| file_error(path, e))?
                    .collect::<Result<_, _>>()
                    .map_err(|e| file_error(path, e))?;
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if !crls.is_empty() {
                // Only the client's own certificate can be revoked (its CA is the one the
                // file names), and a CA without a CRL here (one being brought in by a renewal)
                // revokes nothing.
                verifier = verifier
                    .with_crls(crls)
                    .only_check_end_entity_revocation()
                    .allow_unknown_revocation_status();
            }
            let verifier = verifier
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The acceptor of a Kafka listener.
pub fn kafka_acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    Ok(TlsAcceptor::from(Arc::new(server_config(files, &[])?)))
}

/// The acceptor of the HTTP port (HTTP/1.1).
pub fn http_acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    Ok(TlsAcceptor::from(Arc::new(server_config(
        files,
        &[b"http/1.1"],
    )?)))
}

/// The acceptor of the gRPC port: HTTP/2, and a client certificate of the cluster's CA
/// required.
pub fn grpc_acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    if files.client_ca.is_none() {
        return Err(TlsError::Config(
            "the gRPC port's TLS needs the cluster CA (client certificates are required)".into(),
        ));
    }
    Ok(TlsAcceptor::from(Arc::new(server_config(files, &[b"h2"])?)))
}

/// The TLS a broker's calls to other brokers use: its own certificate as the client identity,
/// and the cluster's CA (`client_ca`) to check theirs.
pub fn grpc_client(files: &TlsFiles) -> Result<ClientTlsConfig, TlsError> {
    let mut config =
        ClientTlsConfig::new().identity(Identity::from_pem(read(&files.cert)?, read(&files.key)?));
    if let Some(ca) = &files.client_ca {
        config = config.ca_certificate(Certificate::from_pem(read(ca)?));
    }
    Ok(config)
}

/// How often the files are looked at for changes.
const RELOAD_CHECK_EVERY: Duration = Duration::from_secs(2);

struct Loaded<T> {
    value: T,
    /// Counts reloads, so a user of the value can tell it changed.
    generation: u64,
}

/// A value built from TLS files (an acceptor, a client configuration), built again whenever
/// the files change, for as long as a clone of it lives.
pub struct Reloading<T> {
    loaded: Arc<RwLock<Loaded<T>>>,
}

impl<T> Clone for Reloading<T> {
    fn clone(&self) -> Self {
        Reloading {
            loaded: self.loaded.clone(),
        }
    }
}

impl<T: Clone + Send + Sync + 'static> Reloading<T> {
    /// Builds the value from `files` now (an error here stops the broker from starting with a
    /// port it cannot serve) and again whenever they change. `what` names the port in logs.
    /// Needs a Tokio runtime.
    pub fn start(
        what: &'static str,
        files: TlsFiles,
        build: fn(&TlsFiles) -> Result<T, TlsError>,
    ) -> Result<Self, TlsError> {
        let value = build(&files)?;
        let reloading = Reloading {
            loaded: Arc::new(RwLock::new(Loaded {
                value,
                generation: 0,
            })),
        };
        tokio::spawn(watch_files(
            what,
            files,
            build,
            Arc::downgrade(&reloading.loaded),
        ));
        Ok(reloading)
    }

    /// How many times the value was built again; cheaper than [`Reloading::current`].
    pub fn generation(&self) -> u64 {
        self.loaded
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .generation
    }

    /// The value new connections use, and its generation.
    pub fn current(&self) -> (T, u64) {
        let loaded = self.loaded.read().unwrap_or_else(|p| p.into_inner());
        (loaded.value.clone(), loaded.generation)
    }
}

/// The modification times of the files, to notice a change.
fn stamps(files: &TlsFiles) -> Vec<Option<SystemTime>> {
    [
        Some(&files.cert),
        Some(&files.key),
        files.client_ca.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
    .collect()
}

/// Builds the value again when a file changes, until the last [`Reloading`] is dropped. A
/// change that does not load (a key written before its certificate, say) keeps the previous
/// value, is logged once, and is tried again until it loads.
async fn watch_files<T>(
    what: &'static str,
    files: TlsFiles,
    build: fn(&TlsFiles) -> Result<T, TlsError>,
    loaded: Weak<RwLock<Loaded<T>>>,
) {
    let mut seen = stamps(&files);
    let mut warned = None;
    loop {
        tokio::time::sleep(RELOAD_CHECK_EVERY).await;
        if loaded.strong_count() == 0 {
            return;
        }
        let now = stamps(&files);
        if now == seen {
            continue;
        }
        match build(&files) {
            Ok(value) => {
                let Some(loaded) = loaded.upgrade() else {
                    return;
                };
                let mut loaded = loaded.write().unwrap_or_else(|p| p.into_inner());
                loaded.value = value;
                loaded.generation += 1;
                tracing::info!(cert = %files.cert.display(), "{what} TLS reloaded");
                seen = now;
                warned = None;
            }
            Err(e) if warned.as_ref() != Some(&now) => {
                tracing::warn!(error = %e, "{what} TLS files changed but cannot be used; keeping the previous ones");
                warned = Some(now);
            }
            Err(_) => {}
        }
    }
}
