//! Mutual TLS on the gRPC port, against in-process brokers: brokers holding certificates of
//! their cluster's CA form the cluster, replicate and answer admin calls made with such a
//! certificate; a caller without a certificate or with another CA's, and a broker of another
//! cluster, are refused; a certificate of the cluster's CA that names neither a broker nor an
//! admin reaches neither the admin API nor Raft; renewed certificates are used without a restart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use strand_proto::admin::admin_client::AdminClient;
use strand_proto::admin::{CreateTopicRequest, DescribeClusterRequest};
use strand_server::{Broker, BrokerConfig, GrpcAccess, RaftTuning, TlsFiles};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// A CA and the certificates it issued, as PEM files.
struct Pki {
    dir: PathBuf,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "cluster CA");
        let ca = params.self_signed(&ca_key).unwrap();
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Pki {
            dir: dir.to_path_buf(),
            ca,
            ca_key,
        }
    }

    /// Certificate and key for `name`, valid for 127.0.0.1, with the CA as client CA.
    fn files(&self, name: &str) -> TlsFiles {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let (cert_path, key_path) = (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}-key.pem")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        TlsFiles {
            cert: cert_path,
            key: key_path,
            client_ca: Some(self.dir.join("ca.pem")),
        }
    }
}

fn config(dir: &Path, id: u32, grpc: SocketAddr, seeds: &[String], tls: TlsFiles) -> BrokerConfig {
    let (kafka, http) = (strand_e2e::free_addr(), strand_e2e::free_addr());
    BrokerConfig {
        broker_id: id,
        data_dir: dir.join(format!("broker-{id}")),
        grpc_listen: grpc,
        grpc_advertised: grpc.to_string(),
        peer_source_address: None,
        kafka_advertised: kafka.to_string(),
        kafka_listen: kafka,
        kafka: Default::default(),
        http_listen: http,
        http_advertised: http.to_string(),
        seeds: seeds.to_vec(),
        rack: None,
        tuning: RaftTuning::default(),
        balancing: Default::default(),
        disk_reserve_bytes: 0,
        grpc_tls: Some(tls),
        grpc_access: GrpcAccess {
            broker_principals: (0..3).map(|i| format!("User:CN=broker-{i}")).collect(),
            admin_principals: vec!["User:CN=operator".into()],
        },
        http_tls: None,
    }
}

/// An admin client of `addr` presenting `identity` (none: no client certificate), trusting
/// `ca`.
async fn admin(
    addr: SocketAddr,
    ca: &Path,
    identity: Option<&TlsFiles>,
) -> Result<AdminClient<tonic::transport::Channel>, tonic::transport::Error> {
    let mut tls =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(std::fs::read(ca).unwrap()));
    if let Some(files) = identity {
        tls = tls.identity(Identity::from_pem(
            std::fs::read(&files.cert).unwrap(),
            std::fs::read(&files.key).unwrap(),
        ));
    }
    let channel = Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .connect()
        .await?;
    Ok(AdminClient::new(channel))
}

/// Whether the admin API at `addr` answers a DescribeCluster from a client presenting
/// `identity` and trusting `ca`.
async fn answered(addr: SocketAddr, ca: &Path, identity: Option<&TlsFiles>) -> bool {
    match admin(addr, ca, identity).await {
        Ok(mut client) => client
            .describe_cluster(DescribeClusterRequest::default())
            .await
            .is_ok(),
        Err(_) => false,
    }
}

/// A channel to `addr` presenting `identity`, trusting `ca`.
async fn connect(addr: SocketAddr, ca: &Path, identity: &TlsFiles) -> tonic::transport::Channel {
    Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(std::fs::read(ca).unwrap()))
                .identity(Identity::from_pem(
                    std::fs::read(&identity.cert).unwrap(),
                    std::fs::read(&identity.key).unwrap(),
                )),
        )
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// Waits until every broker sees all three registered and a controller elected.
async fn formed(brokers: &[Broker]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while brokers.iter().any(|b| {
        b.inner().cluster.state().brokers().len() < 3 || b.inner().cluster.controller().is_none()
    }) {
        assert!(
            Instant::now() < deadline,
            "the cluster did not form over TLS"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_holders_of_the_cluster_ca_reach_the_grpc_port() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let grpc: Vec<SocketAddr> = (0..3).map(|_| strand_e2e::free_addr()).collect();
    let seeds: Vec<String> = grpc.iter().map(|a| a.to_string()).collect();
    let mut brokers = Vec::new();
    for i in 0..3u32 {
        let files = pki.files(&format!("broker-{i}"));
        let config = config(dir.path(), i, grpc[i as usize], &seeds, files);
        brokers.push(Broker::start(config).await.unwrap());
    }
    // The cluster forms over mutual TLS: every broker registered, a controller elected.
    formed(&brokers).await;

    // An admin client with a certificate of the cluster's CA creates a replicated topic.
    let operator = pki.files("operator");
    let ca = pki.dir.join("ca.pem");
    let mut client = admin(grpc[1], &ca, Some(&operator)).await.unwrap();
    let created = client
        .create_topic(CreateTopicRequest {
            name: "secured".into(),
            partitions: 2,
            replication_factor: 3,
            ..Default::default()
        })
        .await
        .expect("an admin with the cluster's certificate is served")
        .into_inner();
    assert!(
        created.partitions.iter().all(|p| p.leader.is_some()),
        "{created:?}"
    );

    // Without a client certificate, or with another CA's, nothing is answered.
    let anonymous = answered(grpc[0], &ca, None).await;
    assert!(!anonymous, "a caller without a certificate was answered");
    let other = Pki::new(&dir.path().join("other"));
    let stranger = other.files("stranger");
    let foreign = answered(grpc[0], &ca, Some(&stranger)).await;
    assert!(
        !foreign,
        "a caller with another CA's certificate was answered"
    );

    // A broker of another cluster (another CA) cannot join: it never registers.
    let intruder_grpc = strand_e2e::free_addr();
    let intruder_files = other.files("broker-3");
    let intruder = Broker::start(config(dir.path(), 3, intruder_grpc, &seeds, intruder_files))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(brokers[0].inner().cluster.state().brokers().len(), 3);
    assert!(intruder.inner().cluster.state().brokers().is_empty());
    intruder.stop().await;

    // A certificate of the cluster's CA that names neither a broker nor an admin is refused
    // by the admin API, and by the Raft service.
    let alice = pki.files("alice");
    let mut client_alice = admin(grpc[0], &ca, Some(&alice)).await.unwrap();
    let refused = client_alice
        .describe_cluster(DescribeClusterRequest::default())
        .await
        .expect_err("a non-admin principal was answered");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("User:CN=alice"), "{refused:?}");
    let channel = connect(grpc[0], &ca, &alice).await;
    let vote = strand_proto::raft::raft_client::RaftClient::new(channel.clone())
        .vote(strand_proto::raft::VoteRequest::default())
        .await
        .expect_err("a non-broker principal's Raft call was answered");
    assert_eq!(vote.code(), tonic::Code::PermissionDenied, "{vote:?}");
    let propose = strand_proto::broker::broker_client::BrokerClient::new(channel)
        .propose_metadata(strand_proto::broker::ProposeRequest::default())
        .await
        .expect_err("a non-broker principal's metadata proposal was answered");
    assert_eq!(propose.code(), tonic::Code::PermissionDenied, "{propose:?}");
    // The operator's certificate is an admin but not a broker: no Raft calls.
    let channel = connect(grpc[0], &ca, &operator).await;
    let vote = strand_proto::raft::raft_client::RaftClient::new(channel)
        .vote(strand_proto::raft::VoteRequest::default())
        .await
        .expect_err("the operator's Raft call was answered");
    assert_eq!(vote.code(), tonic::Code::PermissionDenied, "{vote:?}");

    // The cluster's own brokers still answer.
    client
        .describe_cluster(DescribeClusterRequest::default())
        .await
        .expect("the cluster still serves its admins");
    for broker in brokers {
        broker.stop().await;
    }
}

/// Copies `from`'s certificate, key and CA over `to`'s files, as a renewal writes them.
fn renew(from: &TlsFiles, to: &TlsFiles) {
    std::fs::copy(&from.key, &to.key).unwrap();
    std::fs::copy(&from.cert, &to.cert).unwrap();
    std::fs::copy(
        from.client_ca.as_ref().unwrap(),
        to.client_ca.as_ref().unwrap(),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn renewed_grpc_certificates_are_used_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let old = Pki::new(&dir.path().join("pki"));
    let grpc: Vec<SocketAddr> = (0..3).map(|_| strand_e2e::free_addr()).collect();
    let seeds: Vec<String> = grpc.iter().map(|a| a.to_string()).collect();
    let mut configs = Vec::new();
    let mut brokers = Vec::new();
    for i in 0..3u32 {
        let files = old.files(&format!("broker-{i}"));
        let config = config(dir.path(), i, grpc[i as usize], &seeds, files);
        configs.push(config.clone());
        brokers.push(Broker::start(config).await.unwrap());
    }
    formed(&brokers).await;

    // Every broker's files are replaced by those of a new CA, as a CA renewal does.
    let new = Pki::new(&dir.path().join("renewed"));
    for (i, config) in configs.iter().enumerate() {
        renew(
            &new.files(&format!("broker-{i}")),
            config.grpc_tls.as_ref().unwrap(),
        );
    }
    let (old_ca, new_ca) = (old.dir.join("ca.pem"), new.dir.join("ca.pem"));
    let (old_operator, new_operator) = (old.files("operator"), new.files("operator"));

    // Each gRPC port serves the new certificate and takes the new CA's clients, with no
    // restart; the old CA's are refused from then on.
    for addr in &grpc {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let served = answered(*addr, &new_ca, Some(&new_operator)).await;
            if served {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{addr} did not take the renewed certificates"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let stale = answered(*addr, &old_ca, Some(&old_operator)).await;
        assert!(!stale, "{addr} still answers the old CA's certificate");
    }

    // A broker restarted now accepts only the new CA's certificates, so the others reach it
    // only if their own calls present their renewed certificates: it receives a topic
    // created after its restart.
    let restarted = brokers.pop().unwrap();
    restarted.stop().await;
    let restarted = Broker::start(configs[2].clone()).await.unwrap();
    let mut client = admin(grpc[0], &new_ca, Some(&new_operator)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let created = client
            .create_topic(CreateTopicRequest {
                name: "after-renewal".into(),
                partitions: 1,
                replication_factor: 3,
                ..Default::default()
            })
            .await;
        if created.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no topic could be created after the renewal: {created:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while restarted
        .inner()
        .cluster
        .state()
        .topic_by_name("after-renewal")
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "the restarted broker never learned of the topic: its peers' calls were refused"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    restarted.stop().await;
    for broker in brokers {
        broker.stop().await;
    }
}

/// An HTTP/1.1 GET of `path` over TLS trusting `ca`, presenting `identity` if any: the
/// response's first line, or the error.
async fn https_get(
    addr: SocketAddr,
    ca: &Path,
    identity: Option<&TlsFiles>,
    path: &str,
) -> Result<String, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some(files) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(&files.cert)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_file(&files.key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    tls.read_to_end(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    let response = String::from_utf8_lossy(&response).to_string();
    response
        .lines()
        .next()
        .map(str::to_string)
        .filter(|l| l.starts_with("HTTP/"))
        .ok_or(format!("no HTTP response: {response:?}"))
}

/// The HTTP port over TLS (`--http-tls-cert`, `--http-tls-key`, and with
/// `--http-tls-client-ca` client certificates required): probes and scrapes answered over
/// HTTPS; a plaintext request, and without a client certificate when one is required, get no
/// answer; a client stalled in its handshake holds up nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_http_port_speaks_tls_and_asks_for_client_certificates_when_told() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let grpc = strand_e2e::free_addr();
    let seeds = vec![grpc.to_string()];
    let mut server_only = pki.files("broker-0");
    let ca = server_only.client_ca.take().unwrap();
    let mut one = config(dir.path(), 0, grpc, &seeds, pki.files("broker-0"));
    one.http_tls = Some(server_only);
    let http = one.http_listen;
    let broker = Broker::start(one).await.unwrap();
    // A client that opens a connection and says nothing does not hold up the others.
    let _stalled = tokio::net::TcpStream::connect(http).await.unwrap();
    assert_eq!(
        https_get(http, &ca, None, "/healthz").await,
        Ok("HTTP/1.1 200 OK".to_string())
    );
    let metrics = https_get(http, &ca, None, "/metrics").await;
    assert_eq!(metrics, Ok("HTTP/1.1 200 OK".to_string()));
    // Plaintext HTTP to the TLS port gets no HTTP answer.
    let mut plain = tokio::net::TcpStream::connect(http).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    assert!(
        !String::from_utf8_lossy(&answer).contains("200 OK"),
        "{answer:?}"
    );
    broker.stop().await;

    // With a client CA: only holders of its certificates are answered.
    let grpc = strand_e2e::free_addr();
    let seeds = vec![grpc.to_string()];
    let mut two = config(
        &dir.path().join("two"),
        0,
        grpc,
        &seeds,
        pki.files("broker-0"),
    );
    two.http_tls = Some(pki.files("broker-0"));
    let http = two.http_listen;
    let broker = Broker::start(two).await.unwrap();
    let prober = pki.files("prober");
    assert_eq!(
        https_get(http, &ca, Some(&prober), "/healthz").await,
        Ok("HTTP/1.1 200 OK".to_string())
    );
    assert!(https_get(http, &ca, None, "/healthz").await.is_err());
    broker.stop().await;
}
