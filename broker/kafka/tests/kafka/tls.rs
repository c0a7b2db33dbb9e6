//! TLS on the Kafka listener: kafka-python (Python's own TLS), kcat (librdkafka with OpenSSL)
//! and a rustls client produce and read over it; a plaintext client, an untrusted server certificate and (with a client CA) a
//! client without a certificate are refused while others are served; a renewed certificate is
//! served to new connections without a restart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use strand_server::{KafkaSettings, ListenerCertificate, ListenerSpec, SecurityProtocol, TlsFiles};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{Cluster, wire};

/// A CA, and certificates it signed, as PEM files in a directory.
pub(crate) struct Pki {
    dir: PathBuf,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    pub(crate) fn new(dir: &Path, name: &str) -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} CA"));
        let ca = params.self_signed(&ca_key).unwrap();
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Pki {
            dir: dir.to_path_buf(),
            ca,
            ca_key,
        }
    }

    pub(crate) fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A CRL of this CA listing the certificates with serial numbers `serials`, as PEM.
    pub(crate) fn crl(&self, serials: &[u64]) -> String {
        rcgen::CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2025, 1, 1),
            next_update: rcgen::date_time_ymd(2099, 1, 1),
            crl_number: rcgen::SerialNumber::from(serials.len() as u64 + 1),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|serial| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(*serial),
                    revocation_time: rcgen::date_time_ymd(2025, 1, 1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&self.ca, &self.ca_key)
        .unwrap()
        .pem()
        .unwrap()
    }

    /// A certificate for `common_name` (and 127.0.0.1, localhost) written as `<file>.pem`
    /// and `<file>-key.pem`.
    pub(crate) fn issue(&self, file: &str, common_name: &str) -> (PathBuf, PathBuf) {
        self.issue_with(file, common_name, |_| {})
    }

    /// Like [`Pki::issue`], with the certificate's parameters changed by `change` first.
    pub(crate) fn issue_with(
        &self,
        file: &str,
        common_name: &str,
        change: impl FnOnce(&mut CertificateParams),
    ) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        change(&mut params);
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let (cert_path, key_path) = (
            self.dir.join(format!("{file}.pem")),
            self.dir.join(format!("{file}-key.pem")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }
}

/// A rustls client trusting `ca`, with a client certificate when given.
pub(crate) fn connector(ca: &Path, client: Option<(&Path, &Path)>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(cert)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
    };
    TlsConnector::from(Arc::new(config))
}

/// ApiVersions over TLS to `addr`: `Ok` with the answer's error code, `Err` with why the
/// connection failed (handshake refused, or closed).
async fn api_versions_over_tls(addr: SocketAddr, tls: &TlsConnector) -> Result<i16, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let mut stream = tls
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(ApiKey::ApiVersions as i16)
        .with_request_api_version(3)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("tls-test")))
        .encode(&mut buf, ApiKey::ApiVersions.request_header_version(3))
        .unwrap();
    ApiVersionsRequest::default().encode(&mut buf, 3).unwrap();
    let mut frame = (buf.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&buf);
    stream.write_all(&frame).await.map_err(|e| e.to_string())?;
    let size = stream
        .read_i32()
        .await
        .map_err(|e| format!("closed: {e}"))?;
    let mut body = vec![0; size as usize];
    stream
        .read_exact(&mut body)
        .await
        .map_err(|e| e.to_string())?;
    let mut body = bytes::Bytes::from(body);
    ResponseHeader::decode(&mut body, ApiKey::ApiVersions.response_header_version(3)).unwrap();
    let answer = ApiVersionsResponse::decode(&mut body, 3).unwrap();
    assert!(!body.has_remaining());
    Ok(answer.error_code)
}

fn tls_cluster_settings(files: TlsFiles) -> KafkaSettings {
    KafkaSettings {
        tls: Some(files),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_produce_and_consume_over_tls_and_plaintext_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"), "strand");
    let (cert, key) = pki.issue("broker", "broker");
    let cluster = Cluster::start_with(
        dir.path(),
        tls_cluster_settings(TlsFiles {
            cert,
            key,
            client_ca: None,
        }),
    )
    .await;
    let trusting = connector(&pki.ca(), None);
    assert_eq!(
        api_versions_over_tls(cluster.kafka[0], &trusting).await,
        Ok(0)
    );

    // kafka-python, through Python's ssl module: creates a topic, produces with acks=all,
    // reads back through a group and commits.
    let bootstrap: Vec<String> = cluster.kafka.iter().map(|a| a.to_string()).collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka/tls_smoke.py");
    let output = Command::new("python3")
        .args([
            script,
            &bootstrap.join(","),
            &pki.ca().display().to_string(),
        ])
        .output()
        .expect("python3 runs (kafka-python: `python3 -m pip install kafka-python`)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("500 records over TLS"),
        "kafka-python over TLS failed:\n{stdout}\n{stderr}"
    );

    // kcat (librdkafka, with OpenSSL) over TLS: 100 more records in, and all 600 out.
    let ca = pki.ca().display().to_string();
    let kcat = |args: &[&str]| {
        let mut command = Command::new("kcat");
        command
            // The system's librdkafka (built with OpenSSL), not the one the rdkafka crate
            // built without it, which cargo's library path would find first.
            .env_remove("LD_LIBRARY_PATH")
            .args(["-b", &bootstrap.join(","), "-t", "over-tls"])
            .args([
                "-X",
                "security.protocol=ssl",
                "-X",
                &format!("ssl.ca.location={ca}"),
            ])
            .args(["-X", "broker.address.family=v4"])
            .args(args);
        command
    };
    let mut producer = kcat(&["-P", "-X", "acks=all"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("kcat is installed (apt-get install kcat)");
    {
        use std::io::Write;
        let mut stdin = producer.stdin.take().unwrap();
        for i in 0..100 {
            writeln!(stdin, "kcat-{i:03}").unwrap();
        }
    }
    assert!(
        producer.wait().unwrap().success(),
        "kcat -P over TLS failed"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = kcat(&["-C", "-e", "-q"]).output().unwrap();
        let lines = String::from_utf8_lossy(&out.stdout).lines().count();
        if out.status.success() && lines == 600 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "kcat -C over TLS read {lines} records, not 600: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A plaintext client gets no Kafka answer; clients over TLS are still served.
    let mut plain = wire::Conn::open(cluster.kafka[0]).await;
    let _ = plain.send_frame(&[0, 18, 0, 0, 0, 0, 0, 1, 0, 0]).await;
    let read = tokio::time::timeout(Duration::from_secs(10), plain.read_frame()).await;
    assert!(matches!(read, Ok(None)), "plaintext was answered: {read:?}");
    assert_eq!(
        api_versions_over_tls(cluster.kafka[0], &trusting).await,
        Ok(0)
    );

    // A client that trusts another CA refuses the broker's certificate.
    let other = Pki::new(&dir.path().join("other"), "other");
    let refused = api_versions_over_tls(cluster.kafka[0], &connector(&other.ca(), None)).await;
    assert!(refused.is_err(), "{refused:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_ca_requires_client_certificates_signed_by_it() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"), "strand");
    let (cert, key) = pki.issue("broker", "broker");
    let (alice, alice_key) = pki.issue("alice", "alice");
    let stranger_pki = Pki::new(&dir.path().join("stranger"), "stranger");
    let (stranger, stranger_key) = stranger_pki.issue("stranger", "stranger");
    let cluster = Cluster::start_with(
        dir.path(),
        tls_cluster_settings(TlsFiles {
            cert,
            key,
            client_ca: Some(pki.ca()),
        }),
    )
    .await;
    let with_cert = connector(&pki.ca(), Some((&alice, &alice_key)));
    assert_eq!(
        api_versions_over_tls(cluster.kafka[1], &with_cert).await,
        Ok(0)
    );
    // TLS 1.3 reports a refused client certificate after the handshake: either way, no answer.
    let without = api_versions_over_tls(cluster.kafka[1], &connector(&pki.ca(), None)).await;
    assert!(without.is_err(), "{without:?}");
    let foreign = connector(&pki.ca(), Some((&stranger, &stranger_key)));
    let foreign = api_versions_over_tls(cluster.kafka[1], &foreign).await;
    assert!(foreign.is_err(), "{foreign:?}");
    // A certificate of the right CA that has expired is refused too.
    let (expired, expired_key) = pki.issue_with("expired", "expired", |params| {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    let expired = connector(&pki.ca(), Some((&expired, &expired_key)));
    let expired = api_versions_over_tls(cluster.kafka[1], &expired).await;
    assert!(expired.is_err(), "{expired:?}");
    assert_eq!(
        api_versions_over_tls(cluster.kafka[1], &with_cert).await,
        Ok(0)
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = Pki::new(&dir.path().join("first"), "first");
    let (cert, key) = first.issue("broker", "broker");
    let cluster = Cluster::start_with(
        dir.path(),
        tls_cluster_settings(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: None,
        }),
    )
    .await;
    let trusts_first = connector(&first.ca(), None);
    assert_eq!(
        api_versions_over_tls(cluster.kafka[2], &trusts_first).await,
        Ok(0)
    );

    // The certificate is replaced in place by one from another CA (as a renewal that also
    // rotates the CA would): new connections get it within a few seconds.
    let second = Pki::new(&dir.path().join("second"), "second");
    let (new_cert, new_key) = second.issue("broker", "broker");
    std::fs::copy(&new_key, &key).unwrap();
    std::fs::copy(&new_cert, &cert).unwrap();
    let trusts_second = connector(&second.ca(), None);
    let deadline = Instant::now() + Duration::from_secs(20);
    while api_versions_over_tls(cluster.kafka[2], &trusts_second).await != Ok(0) {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let old = api_versions_over_tls(cluster.kafka[2], &trusts_first).await;
    assert!(old.is_err(), "the old certificate is still served: {old:?}");

    // Files that do not load (a key without its certificate) keep the working configuration.
    std::fs::write(&cert, "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        api_versions_over_tls(cluster.kafka[2], &trusts_second).await,
        Ok(0)
    );
    cluster.shutdown().await;
}

/// A listener with a certificate of its own (as from a public or corporate issuer) presents
/// it, and only it, while the other listeners present the broker's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_listener_presents_its_own_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cluster_pki = Pki::new(&dir.path().join("cluster"), "cluster");
    let (cert, key) = cluster_pki.issue("broker", "broker");
    let public_pki = Pki::new(&dir.path().join("public"), "public");
    let (public_cert, public_key) = public_pki.issue("external", "kafka.example.com");
    let external: Vec<SocketAddr> = (0..3).map(|_| strand_e2e::free_addr()).collect();
    let cluster = Cluster::start_each(dir.path(), |i| KafkaSettings {
        tls: Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: None,
        }),
        listener_name: Some("INTERNAL".into()),
        more_listeners: vec![ListenerSpec {
            name: "EXTERNAL".into(),
            listen: external[i as usize],
            advertised: external[i as usize].to_string(),
            protocol: SecurityProtocol::Ssl,
        }],
        listener_certificates: [(
            "EXTERNAL".to_string(),
            ListenerCertificate {
                cert: public_cert.clone(),
                key: public_key.clone(),
            },
        )]
        .into(),
        ..Default::default()
    })
    .await;
    let trusts_cluster = connector(&cluster_pki.ca(), None);
    let trusts_public = connector(&public_pki.ca(), None);
    for (external, internal) in external.iter().zip(&cluster.kafka) {
        assert_eq!(
            api_versions_over_tls(*external, &trusts_public).await,
            Ok(0)
        );
        assert_eq!(
            api_versions_over_tls(*internal, &trusts_cluster).await,
            Ok(0)
        );
        let refused = api_versions_over_tls(*external, &trusts_cluster).await;
        assert!(refused.is_err(), "{refused:?}");
        let refused = api_versions_over_tls(*internal, &trusts_public).await;
        assert!(refused.is_err(), "{refused:?}");
    }
    cluster.shutdown().await;
}

/// CRLs in the client CA file revoke the client certificates they list, and a CRL written
/// into the file later revokes a certificate for new connections without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_client_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"), "strand");
    let (cert, key) = pki.issue("broker", "broker");
    let with_serial = |serial: u64| {
        move |params: &mut CertificateParams| {
            params.serial_number = Some(rcgen::SerialNumber::from(serial));
        }
    };
    let (alice, alice_key) = pki.issue_with("alice", "alice", with_serial(1001));
    let (bob, bob_key) = pki.issue_with("bob", "bob", with_serial(1002));
    let client_ca = dir.path().join("clients.pem");
    let ca = std::fs::read_to_string(pki.ca()).unwrap();
    std::fs::write(&client_ca, format!("{ca}{}", pki.crl(&[1002]))).unwrap();
    let cluster = Cluster::start_with(
        dir.path(),
        tls_cluster_settings(TlsFiles {
            cert,
            key,
            client_ca: Some(client_ca.clone()),
        }),
    )
    .await;
    let alice = connector(&pki.ca(), Some((&alice, &alice_key)));
    let bob = connector(&pki.ca(), Some((&bob, &bob_key)));
    assert_eq!(api_versions_over_tls(cluster.kafka[0], &alice).await, Ok(0));
    let refused = api_versions_over_tls(cluster.kafka[0], &bob).await;
    assert!(refused.is_err(), "bob's revoked certificate: {refused:?}");

    // Alice is revoked too: new connections are refused within a few seconds.
    std::fs::write(&client_ca, format!("{ca}{}", pki.crl(&[1001, 1002]))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while api_versions_over_tls(cluster.kafka[0], &alice)
        .await
        .is_ok()
    {
        assert!(
            Instant::now() < deadline,
            "alice's certificate was still taken after it was revoked"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster.shutdown().await;
}
