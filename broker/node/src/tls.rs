//! Where a listener's TLS certificate, key and client CA are (PEM files), and the gRPC
//! configurations built from them: the broker's gRPC port requires client certificates signed
//! by the cluster's CA (mutual TLS), and its calls to other brokers present its own.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

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

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The gRPC port's TLS for `files`: its identity, and with a client CA, client certificates
/// required. The cluster's brokers, the operator and admin clients all present one.
pub fn grpc_server(files: &TlsFiles) -> Result<ServerTlsConfig, TlsError> {
    let mut config =
        ServerTlsConfig::new().identity(Identity::from_pem(read(&files.cert)?, read(&files.key)?));
    if let Some(ca) = &files.client_ca {
        config = config.client_ca_root(Certificate::from_pem(read(ca)?));
    }
    Ok(config)
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
