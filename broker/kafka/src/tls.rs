//! TLS on the Kafka listener (Kafka's `SSL` security protocol): TLS 1.2 and 1.3 with rustls,
//! from a PEM certificate chain and key, optionally requiring client certificates signed by a
//! CA (mutual TLS). The files are read again when they change, so a renewed certificate
//! (cert-manager writes new files into the same volume) is served to new connections without
//! a restart; connections already open keep theirs.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use strand_node::{TlsError, TlsFiles};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

fn file_error(path: &Path, message: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// The server configuration the files describe.
pub fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
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
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))
}

/// The listener's TLS: the configuration in use, replaced when its files change.
#[derive(Clone)]
pub(crate) struct Tls {
    current: Arc<RwLock<TlsAcceptor>>,
}

/// How often the files are looked at for changes.
const RELOAD_CHECK_EVERY: Duration = Duration::from_secs(2);

impl Tls {
    /// TLS from `files`, read now (an error here stops the broker from starting with a
    /// listener it cannot serve), and read again whenever they change until `stop` turns true.
    pub(crate) fn start(files: TlsFiles, stop: watch::Receiver<bool>) -> Result<Tls, TlsError> {
        let config = server_config(&files)?;
        let tls = Tls {
            current: Arc::new(RwLock::new(TlsAcceptor::from(Arc::new(config)))),
        };
        tokio::spawn(reload(files, tls.clone(), stop));
        Ok(tls)
    }

    /// The acceptor new connections use.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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

/// Reloads the configuration when a file changes. A change that does not load (a key written
/// before its certificate, say) keeps the previous configuration, is logged once, and is tried
/// again until it loads.
async fn reload(files: TlsFiles, tls: Tls, mut stop: watch::Receiver<bool>) {
    let mut loaded = stamps(&files);
    let mut warned = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RELOAD_CHECK_EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let now = stamps(&files);
        if now == loaded {
            continue;
        }
        match server_config(&files) {
            Ok(config) => {
                *tls.current.write().unwrap_or_else(|p| p.into_inner()) =
                    TlsAcceptor::from(Arc::new(config));
                tracing::info!(cert = %files.cert.display(), "kafka listener TLS reloaded");
                loaded = now;
                warned = None;
            }
            Err(e) if warned.as_ref() != Some(&now) => {
                tracing::warn!(error = %e, "kafka listener TLS files changed but cannot be used; keeping the previous ones");
                warned = Some(now);
            }
            Err(_) => {}
        }
    }
}
