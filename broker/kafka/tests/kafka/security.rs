//! SASL/SCRAM, mutual TLS principals and ACLs with real clients: kafka-python, kcat and the
//! rdkafka crate (librdkafka with OpenSSL) over SASL_SSL and over an SSL listener whose client
//! certificates name the principal; users and ACLs through both the Kafka admin APIs and the
//! gRPC admin API; refusals in Kafka's words; ACLs made on one broker holding on every broker;
//! re-authentication; and the bad inputs of a SASL exchange (a request before authenticating,
//! an unknown mechanism, a 10 MB token, an exchange cut short, a wrong PLAIN password) answered
//! or closed while other clients are served.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, MetadataRequest, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rustls::pki_types::ServerName;
use strand_auth::{AuthorizerSettings, PrincipalMapper, ScramCredential, ScramMechanism};
use strand_proto::admin::admin_client::AdminClient;
use strand_proto::admin::{Acl, CreateAclsRequest, UpsertScramUserRequest};
use strand_server::{KafkaSettings, ListenerSpec, SecurityProtocol, SecuritySettings, TlsFiles};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Cluster;
use super::tls::{Pki, connector};

const ADMIN_PASSWORD: &str = "admin-secret";

/// Keeps the errors librdkafka reports.
#[derive(Default)]
struct Errors(std::sync::Mutex<Vec<String>>);

impl rdkafka::ClientContext for Errors {
    fn error(&self, error: KafkaError, reason: &str) {
        self.0.lock().unwrap().push(format!("{error:?}: {reason}"));
    }
}

impl rdkafka::consumer::ConsumerContext for Errors {}

/// Gives `user` the password `password` through the gRPC admin API of `grpc`.
async fn upsert_user(grpc: SocketAddr, user: &str, password: &str, mechanism: ScramMechanism) {
    let mut admin = AdminClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    let salt = ScramCredential::random_salt();
    admin
        .upsert_scram_user(UpsertScramUserRequest {
            user: user.into(),
            mechanism: mechanism.name().into(),
            salted_password: ScramCredential::salted_password(mechanism, password, &salt, 4096)
                .into(),
            salt: salt.into(),
            iterations: 4096,
        })
        .await
        .unwrap();
}

fn acl(principal: &str, kind: &str, name: &str, operation: &str) -> Acl {
    Acl {
        resource_type: kind.into(),
        resource_name: name.into(),
        pattern_type: "Literal".into(),
        principal: principal.into(),
        host: "*".into(),
        operation: operation.into(),
        permission: "Allow".into(),
    }
}

/// A librdkafka client of the SASL_SSL listeners as `user`.
fn sasl_config(bootstrap: &str, ca: &Path, user: &str, password: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("security.protocol", "SASL_SSL")
        .set("sasl.mechanism", "SCRAM-SHA-512")
        .set("sasl.username", user)
        .set("sasl.password", password)
        .set("ssl.ca.location", ca.display().to_string());
    config
}

/// Topics a client's Metadata shows.
fn visible_topics(config: &ClientConfig) -> BTreeSet<String> {
    let consumer: BaseConsumer = config.create().unwrap();
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(20))
        .unwrap();
    metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| t.name().to_string())
        .collect()
}

async fn produce(config: &ClientConfig, topic: &str, count: usize) -> Result<(), KafkaError> {
    let producer: FutureProducer = config
        .clone()
        .set("acks", "all")
        .set("message.timeout.ms", "20000")
        .create()
        .unwrap();
    for i in 0..count {
        let value = format!("record-{i}");
        producer
            .send(
                FutureRecord::<(), _>::to(topic).payload(&value),
                Duration::from_secs(20),
            )
            .await
            .map_err(|(e, _)| e)?;
    }
    Ok(())
}

/// One request and its answer on a raw connection; `None` when the broker closed it.
async fn call<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    key: ApiKey,
    version: i16,
    body: impl FnOnce(&mut BytesMut),
) -> Option<Bytes> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("raw")))
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    body(&mut buf);
    let mut frame = (buf.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&buf);
    stream.write_all(&frame).await.ok()?;
    let size = tokio::time::timeout(Duration::from_secs(20), stream.read_i32())
        .await
        .ok()?
        .ok()?;
    let mut answer = vec![0; usize::try_from(size).ok()?];
    stream.read_exact(&mut answer).await.ok()?;
    let mut answer = Bytes::from(answer);
    ResponseHeader::decode(&mut answer, key.response_header_version(version)).unwrap();
    Some(answer)
}

async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    mechanism: &str,
) -> SaslHandshakeResponse {
    let mut answer = call(stream, ApiKey::SaslHandshake, 1, |buf| {
        SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_string(mechanism.into()))
            .encode(buf, 1)
            .unwrap()
    })
    .await
    .expect("SaslHandshake is answered");
    SaslHandshakeResponse::decode(&mut answer, 1).unwrap()
}

async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    token: Vec<u8>,
) -> Option<SaslAuthenticateResponse> {
    let mut answer = call(stream, ApiKey::SaslAuthenticate, 2, |buf| {
        SaslAuthenticateRequest::default()
            .with_auth_bytes(Bytes::from(token))
            .encode(buf, 2)
            .unwrap()
    })
    .await?;
    Some(SaslAuthenticateResponse::decode(&mut answer, 2).unwrap())
}

/// Whether the broker has closed `stream` (a read ends, rather than waits).
async fn closed<S: AsyncRead + Unpin>(stream: &mut S) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sasl_scram_certificates_and_acls_with_real_clients() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"), "strand");
    let (cert, key) = pki.issue("broker", "broker");
    let (alice_cert, alice_key) = pki.issue("alice", "alice");
    let (carol_cert, carol_key) = pki.issue("carol", "carol");
    let mtls: Vec<SocketAddr> = (0..3).map(|_| strand_e2e::free_addr()).collect();
    let files = TlsFiles {
        cert,
        key,
        client_ca: Some(pki.ca()),
    };
    // The main listener speaks SASL_SSL; a second, MTLS, speaks SSL with client certificates,
    // whose subject `CN=alice` maps to the principal `User:alice`.
    let cluster = Cluster::start_each(dir.path(), |i| KafkaSettings {
        tls: Some(files.clone()),
        sasl: true,
        listener_name: Some("CLIENTS".into()),
        more_listeners: vec![ListenerSpec {
            name: "MTLS".into(),
            listen: mtls[i as usize],
            advertised: mtls[i as usize].to_string(),
            protocol: SecurityProtocol::Ssl,
        }],
        security: SecuritySettings {
            authorizer: Some(AuthorizerSettings {
                super_users: ["User:admin".to_string()].into(),
                allow_if_no_acls: false,
            }),
            principal_mapping: Arc::new(
                PrincipalMapper::parse("RULE:^CN=([^,]*)$/$1/L,DEFAULT").unwrap(),
            ),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    for mechanism in [ScramMechanism::Sha512, ScramMechanism::Sha256] {
        upsert_user(cluster.grpc[0], "admin", ADMIN_PASSWORD, mechanism).await;
    }
    let bootstrap = cluster.bootstrap.clone();
    let ca = pki.ca();

    // kafka-python: users and ACLs through the Kafka admin APIs, produce, consume, refusals.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka/sasl_smoke.py");
    let output = Command::new("python3")
        .args([
            script,
            &bootstrap,
            &ca.display().to_string(),
            ADMIN_PASSWORD,
        ])
        .output()
        .expect("python3 runs (kafka-python: `python3 -m pip install kafka-python`)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("over SASL_SSL with SCRAM and ACLs"),
        "kafka-python over SASL_SSL failed:\n{stdout}\n{stderr}"
    );

    // The rdkafka crate: the super user creates topics; dave, without ACLs, sees none of them
    // and may not write.
    let admin = sasl_config(&bootstrap, &ca, "admin", ADMIN_PASSWORD);
    produce(&admin, "rd-orders", 1).await.unwrap_err(); // no auto-creation
    {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        let client: AdminClient<_> = admin.create().unwrap();
        let topics = [
            NewTopic::new("rd-orders", 3, TopicReplication::Fixed(3)),
            NewTopic::new("rd-hidden", 1, TopicReplication::Fixed(3)),
        ];
        for result in client
            .create_topics(&topics, &AdminOptions::new())
            .await
            .unwrap()
        {
            result.unwrap();
        }
    }
    upsert_user(
        cluster.grpc[1],
        "dave",
        "dave-secret",
        ScramMechanism::Sha512,
    )
    .await;
    let dave = sasl_config(&bootstrap, &ca, "dave", "dave-secret");
    let seen = visible_topics(&dave);
    assert!(!seen.contains("rd-orders"), "{seen:?}");
    match produce(&dave, "rd-orders", 1).await {
        Err(KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed)) => {}
        other => panic!("dave produced without ACLs: {other:?}"),
    }

    // ACLs created through one broker's admin API hold on every broker: each broker's own
    // Metadata answer (a client bootstrapped to it alone) shows dave the topic.
    let before = cluster.brokers[2]
        .as_ref()
        .unwrap()
        .inner()
        .cluster
        .state()
        .acls()
        .len();
    let created = Instant::now();
    let mut grpc = AdminClient::connect(format!("http://{}", cluster.grpc[2]))
        .await
        .unwrap();
    grpc.create_acls(CreateAclsRequest {
        acls: vec![
            acl("User:dave", "Topic", "rd-orders", "Write"),
            acl("User:dave", "Topic", "rd-orders", "Read"),
            acl("User:dave", "Group", "rd-group", "Read"),
            acl("User:alice", "Topic", "rd-orders", "All"),
        ],
    })
    .await
    .unwrap();
    let mut propagation = BTreeMap::new();
    for (i, broker) in cluster.brokers.iter().enumerate() {
        let broker = broker.as_ref().unwrap();
        while broker.inner().cluster.state().acls().len() < before + 4 {
            assert!(
                created.elapsed() < Duration::from_secs(30),
                "ACLs never reached broker {i}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        propagation.insert(i, created.elapsed());
    }
    eprintln!("ACLs created on broker 2 applied on each broker after {propagation:?}");
    for addr in &cluster.kafka {
        let only = sasl_config(&addr.to_string(), &ca, "dave", "dave-secret");
        let seen = visible_topics(&only);
        assert!(
            seen.contains("rd-orders") && !seen.contains("rd-hidden"),
            "{addr}: {seen:?}"
        );
    }
    produce(&dave, "rd-orders", 50).await.unwrap();
    let consumer: BaseConsumer = dave
        .clone()
        .set("group.id", "rd-group")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["rd-orders"]).unwrap();
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while read < 50 && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(500)) {
            message.unwrap();
            read += 1;
        }
    }
    assert_eq!(read, 50, "dave read back what he wrote");
    drop(consumer);

    // A wrong password: SASL authentication fails, and the client says so.
    let wrong = sasl_config(&bootstrap, &ca, "dave", "not-his");
    let refused: BaseConsumer<Errors> = wrong.create_with_context(Errors::default()).unwrap();
    assert!(
        refused
            .fetch_metadata(None, Duration::from_secs(5))
            .is_err()
    );
    // Errors reach the context as the client is polled.
    let deadline = Instant::now() + Duration::from_secs(20);
    while refused.context().0.lock().unwrap().is_empty() && Instant::now() < deadline {
        let _ = refused.poll(Duration::from_millis(200));
    }
    let errors = refused.context().0.lock().unwrap().clone();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("Authentication") && e.contains("SASL")),
        "{errors:?}"
    );
    drop(refused);

    // The MTLS listener: alice's certificate is `User:alice`, which may write rd-orders;
    // carol's names a principal without ACLs. Metadata gives the MTLS listener's addresses.
    let mtls_bootstrap = mtls
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let certificate = |cert: &Path, key: &Path| {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &mtls_bootstrap)
            .set("broker.address.family", "v4")
            .set("security.protocol", "SSL")
            .set("ssl.ca.location", ca.display().to_string())
            .set("ssl.certificate.location", cert.display().to_string())
            .set("ssl.key.location", key.display().to_string());
        config
    };
    let alice = certificate(&alice_cert, &alice_key);
    produce(&alice, "rd-orders", 10).await.unwrap();
    {
        let consumer: BaseConsumer = alice.create().unwrap();
        let metadata = consumer
            .fetch_metadata(Some("rd-orders"), Duration::from_secs(20))
            .unwrap();
        let ports: BTreeSet<u16> = metadata.brokers().iter().map(|b| b.port() as u16).collect();
        let expected: BTreeSet<u16> = mtls.iter().map(SocketAddr::port).collect();
        assert_eq!(
            ports, expected,
            "Metadata on MTLS gives the MTLS listener's addresses"
        );
    }
    let carol = certificate(&carol_cert, &carol_key);
    match produce(&carol, "rd-orders", 1).await {
        Err(KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed)) => {}
        other => panic!("carol produced without ACLs: {other:?}"),
    }
    // kafka-python and kcat over the MTLS listener, as alice's and carol's certificates.
    let path = |p: &Path| p.display().to_string();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka/mtls_smoke.py");
    let output = Command::new("python3")
        .args([script, &mtls_bootstrap, &path(&ca), "rd-orders"])
        .args([
            path(&alice_cert),
            path(&alice_key),
            path(&carol_cert),
            path(&carol_key),
        ])
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "kafka-python over mTLS failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let kcat_tls = |cert: &Path, key: &Path| {
        Command::new("kcat")
            .env_remove("LD_LIBRARY_PATH")
            .args(["-b", &mtls_bootstrap, "-X", "broker.address.family=v4"])
            .args(["-X", "security.protocol=ssl"])
            .arg("-X")
            .arg(format!("ssl.ca.location={}", path(&ca)))
            .arg("-X")
            .arg(format!("ssl.certificate.location={}", path(cert)))
            .arg("-X")
            .arg(format!("ssl.key.location={}", path(key)))
            .args(["-C", "-t", "rd-orders", "-e", "-q", "-o", "beginning"])
            .output()
            .expect("kcat is installed")
    };
    let read = kcat_tls(&alice_cert, &alice_key);
    let lines = String::from_utf8_lossy(&read.stdout).lines().count();
    assert!(
        read.status.success() && lines >= 80,
        "kcat over mTLS read {lines}"
    );
    let refused = kcat_tls(&carol_cert, &carol_key);
    assert!(
        !refused.status.success()
            && String::from_utf8_lossy(&refused.stderr).contains("Topic authorization failed"),
        "kcat as carol: {}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // kcat (the system's librdkafka with OpenSSL) from a client properties file, as
    // `strand dev --secure` writes one.
    let properties = dir.path().join("dave.properties");
    std::fs::write(
        &properties,
        format!(
            "bootstrap.servers={bootstrap}\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nsasl.username=dave\nsasl.password=dave-secret\nssl.ca.location={}\nbroker.address.family=v4\n",
            ca.display()
        ),
    )
    .unwrap();
    let kcat = |args: &[&str]| {
        Command::new("kcat")
            .env_remove("LD_LIBRARY_PATH")
            .arg("-F")
            .arg(&properties)
            .args(args)
            .output()
            .expect("kcat is installed (apt-get install kcat)")
    };
    let listed = kcat(&["-L"]);
    let listing = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success() && listing.contains("rd-orders") && !listing.contains("rd-hidden"),
        "kcat -L as dave:\n{listing}\n{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let consumed = kcat(&["-C", "-t", "rd-orders", "-e", "-q", "-o", "beginning"]);
    let lines = String::from_utf8_lossy(&consumed.stdout).lines().count();
    assert!(
        consumed.status.success() && lines == 80,
        "kcat -C read {lines} of 80"
    );

    // Bad input on the SASL listener, over TLS.
    let tls = connector(&ca, None);
    let open = || async {
        let tcp = TcpStream::connect(cluster.kafka[0]).await.unwrap();
        tls.connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap()
    };
    // A request other than ApiVersions or SASL before authenticating closes the connection.
    let mut stream = open().await;
    let answer = call(&mut stream, ApiKey::Metadata, 9, |buf| {
        MetadataRequest::default().encode(buf, 9).unwrap()
    })
    .await;
    assert!(answer.is_none(), "Metadata before SASL was answered");
    // An unknown mechanism is refused with the list of those offered.
    let mut stream = open().await;
    let refused = handshake(&mut stream, "GSSAPI").await;
    assert_eq!(refused.error_code, 33, "{refused:?}");
    let offered: Vec<String> = refused.mechanisms.iter().map(|m| m.to_string()).collect();
    assert_eq!(offered, ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]);
    // A 10 MB token: as in Kafka (`sasl.server.max.receive.size`, 512 KiB), the connection is
    // closed before the token is read.
    let accepted = handshake(&mut stream, "SCRAM-SHA-512").await;
    assert_eq!(accepted.error_code, 0);
    let answer = authenticate(&mut stream, vec![b'n'; 10 << 20]).await;
    assert!(answer.is_none(), "a 10 MB token was answered: {answer:?}");
    // A token just under the limit is read and refused.
    let mut stream = open().await;
    handshake(&mut stream, "SCRAM-SHA-512").await;
    let answer = authenticate(&mut stream, vec![b'n'; 500 << 10])
        .await
        .unwrap();
    assert_eq!(answer.error_code, 58, "{answer:?}");
    assert!(
        closed(&mut stream).await,
        "the connection stayed open after a failure"
    );
    // An exchange cut short: the client leaves after its first message.
    let mut stream = open().await;
    handshake(&mut stream, "SCRAM-SHA-512").await;
    let first = b"n,,n=dave,r=abcdefghijklmnop".to_vec();
    let answer = authenticate(&mut stream, first).await.unwrap();
    assert_eq!(answer.error_code, 0, "{answer:?}");
    drop(stream);
    // PLAIN, checked against the SCRAM credential; the wrong password is refused.
    let mut stream = open().await;
    handshake(&mut stream, "PLAIN").await;
    let answer = authenticate(&mut stream, b"\0dave\0dave-secret".to_vec())
        .await
        .unwrap();
    assert_eq!(answer.error_code, 0, "{answer:?}");
    // Re-authentication (KIP-368) on the same connection: as the same user it succeeds; as
    // another it fails and the connection is closed.
    assert_eq!(handshake(&mut stream, "PLAIN").await.error_code, 0);
    let again = authenticate(&mut stream, b"\0dave\0dave-secret".to_vec())
        .await
        .unwrap();
    assert_eq!(again.error_code, 0, "{again:?}");
    assert_eq!(handshake(&mut stream, "PLAIN").await.error_code, 0);
    let other = authenticate(
        &mut stream,
        format!("\0admin\0{ADMIN_PASSWORD}").into_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(other.error_code, 58, "{other:?}");
    assert!(closed(&mut stream).await, "the connection stayed open");
    let mut stream = open().await;
    handshake(&mut stream, "PLAIN").await;
    let answer = authenticate(&mut stream, b"\0dave\0wrong".to_vec())
        .await
        .unwrap();
    assert_eq!(answer.error_code, 58, "{answer:?}");
    // An unknown user gets the same answer as a wrong password, with SCRAM and PLAIN.
    let mut stream = open().await;
    handshake(&mut stream, "SCRAM-SHA-512").await;
    let answer = authenticate(&mut stream, b"n,,n=nobody,r=abcdefghijklmnop".to_vec())
        .await
        .unwrap();
    assert_eq!(answer.error_code, 58, "{answer:?}");
    assert_eq!(
        answer.error_message.as_deref(),
        Some("Authentication failed: invalid credentials")
    );
    let mut stream = open().await;
    handshake(&mut stream, "PLAIN").await;
    let answer = authenticate(&mut stream, b"\0nobody\0pw".to_vec())
        .await
        .unwrap();
    assert_eq!(answer.error_code, 58, "{answer:?}");
    // Everyone else was served throughout.
    produce(&dave, "rd-orders", 1).await.unwrap();
    cluster.shutdown().await;
}
