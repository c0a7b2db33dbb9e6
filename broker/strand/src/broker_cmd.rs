//! `strand broker`: run one broker until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::Deserialize;
use std::sync::Arc;

use strand_auth::{AuthorizerSettings, PrincipalMapper};
use strand_server::{
    BalancingSettings, Broker, BrokerConfig, DEFAULT_DISK_RESERVE_BYTES, GrpcAccess, KafkaSettings,
    Limits, ListenerCertificate, ListenerSpec, RaftTuning, SaslMechanism, SecurityProtocol,
    SecuritySettings, TlsFiles,
};

use crate::admin_cmd::BrokerAdminCommand;
use crate::pre_stop_cmd::PreStopArgs;

/// `strand broker`: runs a broker, or with a subcommand changes a broker's state in the
/// cluster through the admin API, or asks a stopping broker to hand its leaderships over.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BrokerCommandArgs {
    /// Decommission, recommission or pre-stop a broker instead of running one.
    #[command(subcommand)]
    pub command: Option<BrokerSubcommand>,
    /// How to run the broker.
    #[command(flatten)]
    pub run: BrokerArgs,
}

/// What `strand broker` does instead of running a broker.
#[derive(Debug, Subcommand)]
pub enum BrokerSubcommand {
    /// Changes of a broker's state through the admin API.
    #[command(flatten)]
    Admin(BrokerAdminCommand),
    /// Hand every leadership of the broker on this host to other brokers before it stops
    /// (the broker container's preStop hook); prints what was handed over. Fails only when
    /// the broker cannot be reached.
    PreStop(PreStopArgs),
}

/// Options of `strand broker`. Every flag can also be set by the environment variable named.
#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// Broker id. Defaults to the ordinal at the end of POD_NAME (`events-2` is broker 2), as in a
    /// StatefulSet.
    #[arg(long, env = "STRAND_BROKER_ID")]
    broker_id: Option<u32>,
    /// Directory for the broker's identity, metadata and partitions.
    #[arg(long, env = "STRAND_DATA_DIR", default_value = "/var/lib/strand")]
    data_dir: PathBuf,
    /// Kafka protocol listener address.
    #[arg(long, env = "STRAND_KAFKA_LISTEN", default_value = "0.0.0.0:9092")]
    kafka_listen: SocketAddr,
    /// Address Kafka clients of the main listener are told to reach this broker at; by
    /// default the advertised host and the main listener's port.
    #[arg(long, env = "STRAND_KAFKA_ADVERTISED")]
    kafka_advertised: Option<String>,
    /// File of advertised addresses that replace the ones given, one `NAME=[HOST]:PORT` line
    /// per Kafka listener (an empty host keeps the given host): on Kubernetes, the node ports
    /// of a broker's own Services, known only once they are allocated. The broker waits for
    /// the file to exist before it starts.
    #[arg(long, env = "STRAND_ADVERTISED_FILE")]
    advertised_file: Option<PathBuf>,
    /// gRPC listener address (Raft between brokers, admin API).
    #[arg(long, env = "STRAND_GRPC_LISTEN", default_value = "0.0.0.0:9093")]
    grpc_listen: SocketAddr,
    /// Local address this broker's connections to other brokers leave from, on a host with
    /// several addresses (firewall rules, or brokers sharing one host on loopback addresses);
    /// by default the system chooses.
    #[arg(long, env = "STRAND_PEER_SOURCE_ADDRESS")]
    peer_source_address: Option<std::net::IpAddr>,
    /// HTTP listener address (/healthz, /readyz, /metrics).
    #[arg(long, env = "STRAND_HTTP_LISTEN", default_value = "0.0.0.0:9644")]
    http_listen: SocketAddr,
    /// Host name or address other brokers and clients reach this broker at; the listeners'
    /// ports are added to it. Defaults to 127.0.0.1.
    #[arg(long, env = "STRAND_ADVERTISED_HOST", default_value = "127.0.0.1")]
    advertised_host: String,
    /// gRPC addresses (host:port) of the seed brokers, comma-separated: the brokers that form a
    /// new cluster's metadata group. Defaults to this broker alone.
    #[arg(long, env = "STRAND_SEEDS", value_delimiter = ',')]
    seeds: Vec<String>,
    /// Broker settings file (YAML).
    #[arg(long, env = "STRAND_CONFIG")]
    config: Option<PathBuf>,
    /// File holding this broker's rack (written from the node's topology label on Kubernetes).
    #[arg(long, env = "STRAND_RACK_FILE")]
    rack_file: Option<PathBuf>,
    /// Create topics that Kafka clients ask for and that do not exist (Kafka's
    /// `auto.create.topics.enable`); overrides the settings file.
    #[arg(long, env = "STRAND_AUTO_CREATE_TOPICS")]
    auto_create_topics: Option<bool>,
    /// PEM certificate chain of the Kafka listener: with `--kafka-tls-key`, the listener speaks
    /// TLS (Kafka's `SSL` security protocol). Read again when the file changes.
    #[arg(long, env = "STRAND_KAFKA_TLS_CERT", requires = "kafka_tls_key")]
    kafka_tls_cert: Option<PathBuf>,
    /// PEM private key of the Kafka listener's certificate.
    #[arg(long, env = "STRAND_KAFKA_TLS_KEY", requires = "kafka_tls_cert")]
    kafka_tls_key: Option<PathBuf>,
    /// PEM CA certificates Kafka clients must present a certificate signed by (mutual TLS),
    /// and optionally CRLs of those CAs (`X509 CRL` blocks): a client certificate a CRL lists
    /// is refused. Read again when the file changes.
    #[arg(long, env = "STRAND_KAFKA_TLS_CLIENT_CA", requires = "kafka_tls_cert")]
    kafka_tls_client_ca: Option<PathBuf>,
    /// PEM certificate chain of the HTTP port (`/healthz`, `/readyz`, `/metrics`,
    /// `/v1/pre-stop`): with `--http-tls-key` the port speaks HTTPS. Read again when the file
    /// changes.
    #[arg(long, env = "STRAND_HTTP_TLS_CERT", requires = "http_tls_key")]
    http_tls_cert: Option<PathBuf>,
    /// PEM private key of the HTTP certificate.
    #[arg(long, env = "STRAND_HTTP_TLS_KEY", requires = "http_tls_cert")]
    http_tls_key: Option<PathBuf>,
    /// PEM CA whose client certificates the HTTP port requires (probes and scrapers then
    /// present one).
    #[arg(long, env = "STRAND_HTTP_TLS_CLIENT_CA", requires = "http_tls_cert")]
    http_tls_client_ca: Option<PathBuf>,
    /// PEM certificate chain of this broker on the gRPC port (Raft, admin API, broker calls):
    /// with `--grpc-tls-key` and `--grpc-tls-ca`, the port speaks mutual TLS and this broker
    /// presents the certificate to other brokers.
    #[arg(long, env = "STRAND_GRPC_TLS_CERT", requires_all = ["grpc_tls_key", "grpc_tls_ca"])]
    grpc_tls_cert: Option<PathBuf>,
    /// PEM private key of the gRPC certificate.
    #[arg(long, env = "STRAND_GRPC_TLS_KEY", requires = "grpc_tls_cert")]
    grpc_tls_key: Option<PathBuf>,
    /// PEM CA of the cluster: every gRPC caller (brokers, the operator, admin clients) must
    /// present a certificate it signed, and other brokers' certificates are checked against it.
    #[arg(long, env = "STRAND_GRPC_TLS_CA", requires = "grpc_tls_cert")]
    grpc_tls_ca: Option<PathBuf>,
    /// Clients of the main Kafka listener authenticate with SASL (PLAIN, SCRAM-SHA-256,
    /// SCRAM-SHA-512): SASL_SSL with `--kafka-tls-cert`, SASL_PLAINTEXT without.
    #[arg(long, env = "STRAND_KAFKA_SASL")]
    kafka_sasl: bool,
    /// Name of the main Kafka listener (Kafka's listener names); by default its security
    /// protocol's name, such as SASL_SSL.
    #[arg(long, env = "STRAND_KAFKA_LISTENER_NAME")]
    kafka_listener_name: Option<String>,
    /// A further Kafka listener, `NAME,PROTOCOL,BIND[,ADVERTISED]`: for example
    /// `EXTERNAL,SASL_SSL,0.0.0.0:9094,broker-0.example.com:31094`. Metadata answers each
    /// client with the advertised addresses of the listener it connected to. Repeatable;
    /// separated by `;` in the environment variable.
    #[arg(long = "listener", env = "STRAND_LISTENERS", value_delimiter = ';')]
    listeners: Vec<String>,
    /// The certificate a TLS listener presents instead of `--kafka-tls-cert`,
    /// `NAME,CERT,KEY` (PEM files, reloaded when they change): for example
    /// `EXTERNAL,/etc/external/tls.crt,/etc/external/tls.key`. Client certificates of an `SSL`
    /// listener are still checked against `--kafka-tls-client-ca`. Repeatable; separated by
    /// `;` in the environment variable.
    #[arg(
        long = "listener-certificate",
        env = "STRAND_LISTENER_CERTIFICATES",
        value_delimiter = ';'
    )]
    listener_certificates: Vec<String>,
    /// SASL mechanisms offered, comma-separated (Kafka's `sasl.enabled.mechanisms`).
    #[arg(
        long,
        env = "STRAND_SASL_MECHANISMS",
        value_delimiter = ',',
        default_value = "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN"
    )]
    sasl_mechanisms: Vec<SaslMechanism>,
    /// `acl` turns Kafka's ACL authorizer on: every request is checked against the ACLs, and
    /// what no ACL allows is refused. `none` allows every client everything.
    #[arg(long, env = "STRAND_AUTHORIZER", default_value = "none", value_parser = ["none", "acl"])]
    authorizer: String,
    /// Principals allowed everything, `;`-separated (Kafka's `super.users`), such as
    /// `User:admin;User:CN=operator`.
    #[arg(long, env = "STRAND_SUPER_USERS", value_delimiter = ';')]
    super_users: Vec<String>,
    /// Allow a request on a resource no ACL names (Kafka's
    /// `allow.everyone.if.no.acl.found`).
    #[arg(long, env = "STRAND_ALLOW_EVERYONE_IF_NO_ACL_FOUND")]
    allow_everyone_if_no_acl_found: bool,
    /// How a client certificate's subject becomes a principal (Kafka's
    /// `ssl.principal.mapping.rules`), such as `RULE:^CN=(.*?),.*$/$1/,DEFAULT`.
    #[arg(
        long,
        env = "STRAND_SSL_PRINCIPAL_MAPPING_RULES",
        default_value = "DEFAULT"
    )]
    ssl_principal_mapping_rules: String,
    /// Principals of the cluster's brokers on the gRPC port, `;`-separated; by default the
    /// principal of this broker's own gRPC certificate.
    #[arg(long, env = "STRAND_GRPC_BROKER_PRINCIPALS", value_delimiter = ';')]
    grpc_broker_principals: Vec<String>,
    /// Principals allowed the gRPC admin API besides brokers and super users, `;`-separated
    /// (the operator, administrators).
    #[arg(long, env = "STRAND_GRPC_ADMIN_PRINCIPALS", value_delimiter = ';')]
    grpc_admin_principals: Vec<String>,
    /// Stop when standard input closes: used by `strand dev` so brokers never outlive it.
    #[arg(long, hide = true)]
    stop_when_stdin_closes: bool,
}

/// The settings file. Unknown keys are refused so a typo is not silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// tracing filter, e.g. `info` or `strand_server=debug`.
    log_level: Option<String>,
    /// Replication factor for topics that Kafka clients create without naming one (capped at
    /// the number of active brokers for automatically created topics). Default 3.
    default_replication_factor: Option<u16>,
    /// Partitions of topics that Kafka clients create without naming a count. Default 1.
    default_partitions: Option<u32>,
    /// `auto.create.topics.enable`: Kafka Metadata requests for unknown topics create them.
    /// Default false.
    auto_create_topics: Option<bool>,
    /// Raft heartbeat interval in milliseconds.
    raft_heartbeat_ms: Option<u64>,
    /// Shortest Raft election timeout in milliseconds.
    raft_election_timeout_ms: Option<u64>,
    /// How often replicas apply retention and compaction, in milliseconds (Kafka's
    /// `log.retention.check.interval.ms`). Default 300000.
    retention_check_interval_ms: Option<u64>,
    /// How long a consumer group keeps its committed offsets once it has no members, in
    /// minutes (Kafka's `offsets.retention.minutes`). Default 10080 (7 days).
    offsets_retention_minutes: Option<u64>,
    /// How often group coordinators expire offsets, in milliseconds (Kafka's
    /// `offsets.retention.check.interval.ms`). Default 600000.
    offsets_retention_check_interval_ms: Option<u64>,
    /// How often members of consumer-protocol groups (KIP-848) heartbeat, in milliseconds
    /// (Kafka's `group.consumer.heartbeat.interval.ms`). Default 5000.
    consumer_heartbeat_interval_ms: Option<u64>,
    /// How long such a member stays without a heartbeat, in milliseconds (Kafka's
    /// `group.consumer.session.timeout.ms`). Default 45000.
    consumer_session_timeout_ms: Option<u64>,
    /// Free bytes the data directory keeps in reserve; below it, partitions with a replica on
    /// this broker refuse produce. Default 1073741824 (1 GiB).
    disk_reserve_bytes: Option<u64>,
    /// Move replicas automatically when brokers join, drain or fail. Default true.
    auto_balance: Option<bool>,
    /// Hand leadership to each partition's preferred replica. Default true.
    leader_balancing: Option<bool>,
    /// Replica moves in flight at once across the cluster. Default 2.
    max_concurrent_moves: Option<usize>,
    /// How long a broker may be unreachable before its replicas are re-created on other
    /// brokers, in milliseconds. Default 300000 (5 minutes).
    broker_failure_timeout_ms: Option<u64>,
    /// Largest Kafka request, in bytes (`socket.request.max.bytes`). Default 104857600.
    socket_request_max_bytes: Option<usize>,
    /// Kafka connections open at once (`max.connections`). Default 10000.
    max_connections: Option<usize>,
    /// Idle Kafka connections are closed after this many milliseconds
    /// (`connections.max.idle.ms`). Default 600000.
    connections_max_idle_ms: Option<u64>,
    /// Members of one consumer group (`group.max.size`). Default 1000.
    group_max_size: Option<usize>,
    /// An idempotent producer silent this many milliseconds is forgotten
    /// (`producer.id.expiration.ms`). Default 86400000 (1 day).
    producer_id_expiration_ms: Option<u64>,
}

/// The Kafka listener's bounds: the defaults, with the ones Kafka lets a broker's config set.
fn limits_of(settings: &Settings) -> anyhow::Result<Limits> {
    let mut limits = Limits::default();
    let positive = |name: &str, value: u64| {
        if value == 0 {
            bail!("{name} must be at least 1");
        }
        Ok(value)
    };
    if let Some(bytes) = settings.socket_request_max_bytes {
        limits.request_bytes_max = positive("socket_request_max_bytes", bytes as u64)? as usize;
    }
    if let Some(count) = settings.max_connections {
        limits.connections_max = positive("max_connections", count as u64)? as usize;
    }
    if let Some(ms) = settings.connections_max_idle_ms {
        limits.idle_timeout = Duration::from_millis(positive("connections_max_idle_ms", ms)?);
    }
    if let Some(count) = settings.group_max_size {
        limits.group_members_max = positive("group_max_size", count as u64)? as usize;
    }
    if let Some(ms) = settings.producer_id_expiration_ms {
        limits.producer_expiry = Duration::from_millis(positive("producer_id_expiration_ms", ms)?);
    }
    Ok(limits)
}

fn read_settings(path: Option<&Path>) -> anyhow::Result<Settings> {
    let Some(path) = path else {
        return Ok(Settings::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read settings {}", path.display()))?;
    if text.trim().is_empty() {
        return Ok(Settings::default());
    }
    serde_saphyr::from_str(&text)
        .with_context(|| format!("settings file {} is not valid", path.display()))
}

fn broker_id(args: &BrokerArgs) -> anyhow::Result<u32> {
    if let Some(id) = args.broker_id {
        return Ok(id);
    }
    let Ok(pod) = std::env::var("POD_NAME") else {
        bail!(
            "no broker id: pass --broker-id (or STRAND_BROKER_ID), or run in a pod whose POD_NAME ends in its ordinal"
        );
    };
    pod.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("POD_NAME `{pod}` does not end in an ordinal; pass --broker-id"))
}

/// Waits up to a minute for a non-empty rack file: on Kubernetes the operator fills it in once
/// the pod is scheduled.
async fn read_rack(path: Option<&Path>) -> Option<String> {
    let path = path?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            let rack = text.trim();
            if !rack.is_empty() {
                return Some(rack.to_string());
            }
        }
        if Instant::now() >= deadline {
            tracing::warn!(file = %path.display(), "rack file is still empty; starting without a rack");
            return None;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Runs `strand broker`.
pub fn run(args: BrokerArgs) -> anyhow::Result<()> {
    let settings = read_settings(args.config.as_deref())?;
    let filter = settings
        .log_level
        .clone()
        .unwrap_or_else(|| "info,openraft=warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| filter.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let broker_id = broker_id(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(args, settings, broker_id))
}

async fn serve(args: BrokerArgs, settings: Settings, broker_id: u32) -> anyhow::Result<()> {
    let host = &args.advertised_host;
    let grpc_advertised = format!("{host}:{}", args.grpc_listen.port());
    let mut tuning = RaftTuning::default();
    if let Some(ms) = settings.raft_heartbeat_ms {
        tuning.heartbeat = Duration::from_millis(ms);
    }
    if let Some(ms) = settings.raft_election_timeout_ms {
        tuning.election_min = Duration::from_millis(ms);
    }
    if tuning.heartbeat.is_zero() || tuning.heartbeat >= tuning.election_min {
        bail!(
            "raft_heartbeat_ms ({} ms) must be above zero and below raft_election_timeout_ms ({} ms)",
            tuning.heartbeat.as_millis(),
            tuning.election_min.as_millis()
        );
    }
    let defaults = KafkaSettings::default();
    let kafka = KafkaSettings {
        auto_create_topics: args
            .auto_create_topics
            .or(settings.auto_create_topics)
            .unwrap_or(defaults.auto_create_topics),
        default_partitions: settings
            .default_partitions
            .unwrap_or(defaults.default_partitions),
        default_replication_factor: settings
            .default_replication_factor
            .unwrap_or(defaults.default_replication_factor),
        retention_check_interval: settings
            .retention_check_interval_ms
            .map_or(defaults.retention_check_interval, Duration::from_millis),
        offsets_retention: settings
            .offsets_retention_minutes
            .map_or(defaults.offsets_retention, |m| {
                Duration::from_secs(m.saturating_mul(60))
            }),
        offsets_retention_check_interval: settings.offsets_retention_check_interval_ms.map_or(
            defaults.offsets_retention_check_interval,
            Duration::from_millis,
        ),
        consumer_heartbeat_interval: settings
            .consumer_heartbeat_interval_ms
            .map_or(defaults.consumer_heartbeat_interval, Duration::from_millis),
        consumer_session_timeout: settings
            .consumer_session_timeout_ms
            .map_or(defaults.consumer_session_timeout, Duration::from_millis),
        limits: limits_of(&settings)?,
        tls: match (&args.kafka_tls_cert, &args.kafka_tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: args.kafka_tls_client_ca.clone(),
            }),
            _ => None,
        },
        listener_certificates: args
            .listener_certificates
            .iter()
            .map(|c| parse_listener_certificate(c))
            .collect::<anyhow::Result<_>>()?,
        security: SecuritySettings {
            sasl_mechanisms: args.sasl_mechanisms.clone(),
            authorizer: (args.authorizer == "acl").then(|| AuthorizerSettings {
                super_users: args.super_users.iter().cloned().collect(),
                allow_if_no_acls: args.allow_everyone_if_no_acl_found,
            }),
            principal_mapping: Arc::new(
                PrincipalMapper::parse(&args.ssl_principal_mapping_rules)
                    .context("--ssl-principal-mapping-rules")?,
            ),
        },
        listener_name: args.kafka_listener_name.clone(),
        sasl: args.kafka_sasl,
        more_listeners: args
            .listeners
            .iter()
            .map(|l| parse_listener(l, &args.advertised_host))
            .collect::<anyhow::Result<_>>()?,
    };
    let mut kafka_advertised = args
        .kafka_advertised
        .clone()
        .unwrap_or_else(|| format!("{host}:{}", args.kafka_listen.port()));
    let mut kafka = kafka;
    if let Some(path) = &args.advertised_file {
        let overrides = read_advertised_file(path).await?;
        let main_name = kafka
            .main_listener(args.kafka_listen, &kafka_advertised)
            .name;
        for (name, address) in &overrides {
            if *name == main_name {
                kafka_advertised = replace_address(&kafka_advertised, address);
            } else if let Some(listener) = kafka.more_listeners.iter_mut().find(|l| l.name == *name)
            {
                listener.advertised = replace_address(&listener.advertised, address);
            } else {
                bail!(
                    "{}: names listener {name}, which this broker does not have",
                    path.display()
                );
            }
            tracing::info!(listener = %name, address = %address, "advertised address from {}", path.display());
        }
    }
    let main_name = kafka
        .main_listener(args.kafka_listen, &kafka_advertised)
        .name;
    for name in kafka.listener_certificates.keys() {
        if *name != main_name && !kafka.more_listeners.iter().any(|l| l.name == *name) {
            bail!("--listener-certificate names listener {name}, which this broker does not have");
        }
    }
    if kafka.default_partitions == 0 || kafka.default_replication_factor == 0 {
        bail!("default_partitions and default_replication_factor must be at least 1");
    }
    let mut balancing = BalancingSettings::default();
    if let Some(auto) = settings.auto_balance {
        balancing.auto = auto;
    }
    if let Some(on) = settings.leader_balancing {
        balancing.leader_balancing = on;
    }
    if let Some(n) = settings.max_concurrent_moves {
        if n == 0 {
            bail!("max_concurrent_moves must be at least 1");
        }
        balancing.max_concurrent_moves = n;
    }
    if kafka.retention_check_interval < Duration::from_millis(100) {
        bail!("retention_check_interval_ms must be at least 100");
    }
    if kafka.offsets_retention_check_interval < Duration::from_millis(100) {
        bail!("offsets_retention_check_interval_ms must be at least 100");
    }
    if kafka.offsets_retention.is_zero() {
        bail!("offsets_retention_minutes must be at least 1");
    }
    if kafka.consumer_heartbeat_interval < Duration::from_millis(100)
        || kafka.consumer_session_timeout <= kafka.consumer_heartbeat_interval
    {
        bail!(
            "consumer_heartbeat_interval_ms must be at least 100 and below consumer_session_timeout_ms"
        );
    }
    if let Some(ms) = settings.broker_failure_timeout_ms {
        balancing.broker_failure_timeout = Duration::from_millis(ms);
    }
    let config = BrokerConfig {
        broker_id,
        data_dir: args.data_dir.clone(),
        grpc_listen: args.grpc_listen,
        grpc_advertised: grpc_advertised.clone(),
        peer_source_address: args.peer_source_address,
        kafka_advertised,
        kafka_listen: args.kafka_listen,
        kafka,
        http_listen: args.http_listen,
        http_advertised: format!("{host}:{}", args.http_listen.port()),
        seeds: if args.seeds.is_empty() {
            vec![grpc_advertised]
        } else {
            args.seeds.clone()
        },
        rack: read_rack(args.rack_file.as_deref()).await,
        tuning,
        balancing,
        disk_reserve_bytes: settings
            .disk_reserve_bytes
            .unwrap_or(DEFAULT_DISK_RESERVE_BYTES),
        grpc_tls: match (&args.grpc_tls_cert, &args.grpc_tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: args.grpc_tls_ca.clone(),
            }),
            _ => None,
        },
        grpc_access: GrpcAccess {
            broker_principals: args.grpc_broker_principals.clone(),
            admin_principals: args.grpc_admin_principals.clone(),
        },
        http_tls: match (&args.http_tls_cert, &args.http_tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: args.http_tls_client_ca.clone(),
            }),
            _ => None,
        },
    };
    let broker = Broker::start(config)
        .await
        .context("broker did not start")?;
    tokio::select! {
        () = wait_for_stop(args.stop_when_stdin_closes) => {}
        why = broker.metadata_failed() => {
            tracing::error!(error = %why,
                "the metadata group stopped on an error: the broker stops, to be started again \
                 once its data directory can be written");
            broker.stop().await;
            bail!("the metadata group stopped: {why}");
        }
    }
    tracing::info!("shutting down");
    broker.shutdown().await;
    Ok(())
}

/// The `NAME=[HOST]:PORT` lines of an `--advertised-file`, waiting for the file to exist:
/// on Kubernetes it comes from a ConfigMap the operator writes before the pod starts, but a
/// volume's files can lag behind their source.
async fn read_advertised_file(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut waited = Duration::ZERO;
    let text = loop {
        match tokio::fs::read_to_string(path).await {
            Ok(text) => break text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if waited.as_secs().is_multiple_of(10) {
                    tracing::info!("waiting for {} (advertised addresses)", path.display());
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                waited += Duration::from_secs(1);
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    };
    parse_advertised_file(&text).with_context(|| format!("{}", path.display()))
}

fn parse_advertised_file(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut entries = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, address)) = line.split_once('=') else {
            bail!(
                "line {}: expected NAME=[HOST]:PORT, found `{line}`",
                number + 1
            );
        };
        let port = address.rsplit_once(':').map(|(_, port)| port);
        if name.trim().is_empty() || port.and_then(|p| p.parse::<u16>().ok()).is_none() {
            bail!(
                "line {}: expected NAME=[HOST]:PORT, found `{line}`",
                number + 1
            );
        }
        entries.push((name.trim().to_owned(), address.trim().to_owned()));
    }
    Ok(entries)
}

/// `advertised` with the port of `address`, and its host too unless `address` has none.
fn replace_address(advertised: &str, address: &str) -> String {
    match address.strip_prefix(':') {
        Some(port) => {
            let host = advertised
                .rsplit_once(':')
                .map_or(advertised, |(host, _)| host);
            format!("{host}:{port}")
        }
        None => address.to_owned(),
    }
}

/// A `--listener`: `NAME,PROTOCOL,BIND[,ADVERTISED]`; the advertised address defaults to
/// the advertised host and the bound port.
fn parse_listener(text: &str, advertised_host: &str) -> anyhow::Result<ListenerSpec> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let [name, protocol, bind, rest @ ..] = parts.as_slice() else {
        bail!("--listener `{text}`: expected NAME,PROTOCOL,BIND[,ADVERTISED]");
    };
    let protocol: SecurityProtocol = protocol
        .parse()
        .map_err(|e| anyhow::anyhow!("--listener `{text}`: {e}"))?;
    let listen: SocketAddr = bind.parse().with_context(|| {
        format!("--listener `{text}`: BIND must be host:port, such as 0.0.0.0:9094")
    })?;
    let advertised = match rest {
        [] => format!("{advertised_host}:{}", listen.port()),
        [advertised] => advertised.to_string(),
        _ => bail!("--listener `{text}`: expected NAME,PROTOCOL,BIND[,ADVERTISED]"),
    };
    if name.is_empty() {
        bail!("--listener `{text}`: the name is empty");
    }
    Ok(ListenerSpec {
        name: name.to_string(),
        listen,
        advertised,
        protocol,
    })
}

/// A `--listener-certificate`: `NAME,CERT,KEY`.
fn parse_listener_certificate(text: &str) -> anyhow::Result<(String, ListenerCertificate)> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let [name, cert, key] = parts.as_slice() else {
        bail!("--listener-certificate `{text}`: expected NAME,CERT,KEY");
    };
    if name.is_empty() || cert.is_empty() || key.is_empty() {
        bail!("--listener-certificate `{text}`: expected NAME,CERT,KEY, none of them empty");
    }
    Ok((
        name.to_string(),
        ListenerCertificate {
            cert: cert.into(),
            key: key.into(),
        },
    ))
}

async fn wait_for_stop(stop_when_stdin_closes: bool) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM");
            return;
        }
    };
    let stdin_closed = async {
        if !stop_when_stdin_closes {
            return std::future::pending().await;
        }
        // Standard input is read on a thread: it only ever ends, it never carries data.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            let _ = tx.send(());
        });
        let _ = rx.await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = stdin_closed => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advertised_file_replaces_ports_or_whole_addresses() {
        let entries =
            parse_advertised_file("# node ports\nEXTERNAL=:31094\n\nLB=lb.example.com:9094\n")
                .unwrap();
        assert_eq!(
            entries,
            vec![
                ("EXTERNAL".to_owned(), ":31094".to_owned()),
                ("LB".to_owned(), "lb.example.com:9094".to_owned())
            ]
        );
        assert_eq!(replace_address("10.0.0.7:9094", ":31094"), "10.0.0.7:31094");
        assert_eq!(
            replace_address("10.0.0.7:9094", "lb.example.com:9094"),
            "lb.example.com:9094"
        );
        for bad in ["EXTERNAL", "=:1", "EXTERNAL=host", "EXTERNAL=:99999"] {
            let error = parse_advertised_file(bad).unwrap_err().to_string();
            assert!(error.contains("line 1"), "{bad}: {error}");
        }
    }
}
