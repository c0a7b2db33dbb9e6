//! `strand topic …` and `strand cluster …`: the admin CLI, a thin client of the admin gRPC API.
//!
//! Each command parses and checks its arguments, makes one call, and prints the answer as a
//! table, JSON or YAML. Nothing here knows how the cluster works beyond what the API says.

mod balance;
mod cluster;
mod config_arg;
mod error;
mod output;
mod security;
mod topic;
mod topic_view;

use std::future::Future;
use std::time::Duration;

use clap::Args;
use strand_proto::admin::admin_client::AdminClient;
use tonic::transport::{Channel, Endpoint};

pub use balance::{BrokerAdminCommand, run_broker_admin};
pub use cluster::{ClusterArgs, run_cluster};
pub use output::OutputFormat;
pub use security::{AclArgs, UserArgs, run_acl, run_user, upsert_request};
pub use topic::{TopicArgs, run_topic};

use error::CliError;

/// The admin API address used when neither `--server` nor `STRAND_SERVER` is given: broker 0
/// of `strand dev`.
pub(crate) const DEFAULT_SERVER: &str = "127.0.0.1:9093";

/// How long to wait for the TCP and HTTP/2 handshake before telling the user.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one admin call may take; creating a topic waits for the metadata group to commit.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Where to send admin calls and how to print the answer; shared by every admin command.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Admin gRPC address of any broker, as HOST:PORT.
    #[arg(
        long,
        global = true,
        env = "STRAND_SERVER",
        default_value = DEFAULT_SERVER,
        value_name = "HOST:PORT"
    )]
    pub server: String,

    /// Output format.
    #[arg(
        short = 'o',
        long = "output",
        global = true,
        value_name = "FORMAT",
        value_enum,
        default_value_t = OutputFormat::Table
    )]
    pub output: OutputFormat,
}

/// A connected admin client, remembering the address for error messages.
pub(crate) struct Admin {
    pub(crate) client: AdminClient<Channel>,
    server: String,
}

impl Admin {
    /// Connects eagerly, so an unreachable address is reported as such rather than as a
    /// failed call.
    /// With `STRAND_TLS_CA`, `STRAND_TLS_CERT` and `STRAND_TLS_KEY` set (PEM files: the
    /// cluster's CA and an admin client's certificate and key), it speaks mutual TLS, as a
    /// broker started with `--grpc-tls-*` requires.
    pub(crate) async fn connect(server: &str) -> Result<Self, CliError> {
        let mut endpoint = endpoint(server)?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT);
        if let Some(tls) = tls_from_env()? {
            let url = format!(
                "https://{}",
                endpoint.uri().authority().map_or(server, |a| a.as_str())
            );
            endpoint = Endpoint::from_shared(url)
                .and_then(|e| e.tls_config(tls))
                .map_err(|error| CliError {
                    message: format!("cannot use TLS for `{server}`: {error}"),
                    hint: None,
                })?
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(CALL_TIMEOUT);
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|error| error::connect_failed(server, &error))?;
        Ok(Self {
            client: AdminClient::new(channel),
            server: server.to_owned(),
        })
    }

    /// The answer of a call, or the error a person can act on.
    pub(crate) fn answer<T>(
        &self,
        result: Result<tonic::Response<T>, tonic::Status>,
    ) -> Result<T, CliError> {
        result
            .map(tonic::Response::into_inner)
            .map_err(|status| error::from_status(&self.server, &status))
    }
}

/// The client TLS of `STRAND_TLS_CA`, `STRAND_TLS_CERT` and `STRAND_TLS_KEY`, when set.
fn tls_from_env() -> Result<Option<tonic::transport::ClientTlsConfig>, CliError> {
    let var = |name: &str| std::env::var_os(name).map(std::path::PathBuf::from);
    let (ca, cert, key) = (
        var("STRAND_TLS_CA"),
        var("STRAND_TLS_CERT"),
        var("STRAND_TLS_KEY"),
    );
    let (Some(ca), Some(cert), Some(key)) = (ca.clone(), cert.clone(), key.clone()) else {
        if ca.is_some() || cert.is_some() || key.is_some() {
            return Err(CliError {
                message: "STRAND_TLS_CA, STRAND_TLS_CERT and STRAND_TLS_KEY go together".to_owned(),
                hint: Some("set all three, or none for a plaintext admin port".to_owned()),
            });
        }
        return Ok(None);
    };
    let files = strand_node::TlsFiles {
        cert,
        key,
        client_ca: Some(ca),
    };
    strand_node::tls::grpc_client(&files)
        .map(Some)
        .map_err(|error| CliError {
            message: error.to_string(),
            hint: None,
        })
}

/// The endpoint for `server`; `HOST:PORT` is taken as plain-text HTTP/2, and a full URL is
/// accepted as it is.
fn endpoint(server: &str) -> Result<Endpoint, CliError> {
    let url = if server.contains("://") {
        server.to_owned()
    } else {
        format!("http://{server}")
    };
    Endpoint::from_shared(url).map_err(|error| CliError {
        message: format!("invalid admin address `{server}`: {error}"),
        hint: Some("pass --server HOST:PORT, for example --server 127.0.0.1:9093".to_owned()),
    })
}

/// Runs one command's async body on a runtime of its own: the CLI makes a single call, so a
/// current-thread runtime is enough.
pub(crate) fn block_on<T>(body: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_addresses_become_http_urls() {
        let plain = endpoint("127.0.0.1:9093").unwrap();
        assert_eq!(plain.uri().to_string(), "http://127.0.0.1:9093/");
        let url = endpoint("http://broker-0.strand:9093").unwrap();
        assert_eq!(url.uri().host(), Some("broker-0.strand"));
    }

    #[test]
    fn unparseable_addresses_are_rejected_with_a_hint() {
        let error = endpoint("not an address").unwrap_err();
        assert!(
            error
                .message
                .starts_with("invalid admin address `not an address`")
        );
        assert!(error.hint.is_some());
    }
}
