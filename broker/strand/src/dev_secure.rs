//! `strand dev --secure`: a CA and certificates for a local cluster, the broker flags that use
//! them, an `admin` SCRAM user, and a client properties file (librdkafka and Java style) that
//! `kcat -F` reads as it is.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use strand_auth::ScramMechanism;
use strand_proto::admin::admin_client::AdminClient;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// The principal of the brokers' certificate.
const BROKER_CN: &str = "strand-broker";
/// The principal of the admin CLI's certificate.
const ADMIN_CN: &str = "strand-admin";

/// The files of a secured local cluster.
pub struct Secure {
    dir: PathBuf,
}

impl Secure {
    /// A new CA, a certificate for the brokers (127.0.0.1 and localhost) and one for the
    /// admin CLI, written to `dir`.
    pub fn generate(dir: &Path) -> anyhow::Result<Secure> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let ca_key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Strand dev CA");
        let ca = params.self_signed(&ca_key)?;
        write(&dir.join("ca.pem"), &ca.pem())?;
        for (name, cn) in [("broker", BROKER_CN), ("admin", ADMIN_CN)] {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(vec!["localhost".to_string()])?;
            params
                .subject_alt_names
                .push(SanType::IpAddress([127, 0, 0, 1].into()));
            params.distinguished_name.push(DnType::CommonName, cn);
            let cert = params.signed_by(&key, &ca, &ca_key)?;
            write(&dir.join(format!("{name}.pem")), &cert.pem())?;
            write(&dir.join(format!("{name}-key.pem")), &key.serialize_pem())?;
        }
        Ok(Secure {
            dir: dir.to_path_buf(),
        })
    }

    fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// The flags that secure a broker of the cluster.
    pub fn broker_args(&self) -> Vec<String> {
        let (cert, key, ca) = (
            self.file("broker.pem"),
            self.file("broker-key.pem"),
            self.file("ca.pem"),
        );
        [
            ("--kafka-tls-cert", cert.clone()),
            ("--kafka-tls-key", key.clone()),
            ("--grpc-tls-cert", cert),
            ("--grpc-tls-key", key),
            ("--grpc-tls-ca", ca),
            ("--authorizer", "acl".to_string()),
            ("--super-users", "User:admin".to_string()),
            ("--grpc-admin-principals", format!("User:CN={ADMIN_CN}")),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_string(), value])
        .chain(["--kafka-sasl".to_string()])
        .collect()
    }

    /// The admin API endpoint at `addr`, over mutual TLS with the admin certificate.
    pub fn admin_endpoint(&self, addr: &str) -> anyhow::Result<Endpoint> {
        let read = |name: &str| {
            std::fs::read(self.dir.join(name))
                .with_context(|| format!("cannot read {}", self.file(name)))
        };
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read("ca.pem")?))
            .identity(Identity::from_pem(
                read("admin.pem")?,
                read("admin-key.pem")?,
            ));
        Ok(Endpoint::from_shared(format!("https://{addr}"))?.tls_config(tls)?)
    }

    /// The environment the admin CLI needs, for people to copy.
    pub fn cli_env(&self) -> String {
        format!(
            "STRAND_TLS_CA={} STRAND_TLS_CERT={} STRAND_TLS_KEY={} strand cluster describe",
            self.file("ca.pem"),
            self.file("admin.pem"),
            self.file("admin-key.pem")
        )
    }

    /// Creates the `admin` user with a random password and writes the client properties file
    /// for it; returns the file's path.
    pub async fn create_admin_user(
        &self,
        admin: &Endpoint,
        bootstrap: &[String],
    ) -> anyhow::Result<PathBuf> {
        // 32 random bytes as hex.
        let password: String = strand_auth::ScramCredential::random_salt()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut client = AdminClient::new(admin.connect().await?);
        for mechanism in [ScramMechanism::Sha512, ScramMechanism::Sha256] {
            let request = crate::admin_cmd::upsert_request("admin", &password, mechanism, 4096);
            client
                .upsert_scram_user(request)
                .await
                .context("cannot create the admin user")?;
        }
        let path = self.dir.join("client.properties");
        let properties = format!(
            "# A Kafka client of the local Strand cluster, as user `admin` (a super user).\n\
             # librdkafka (kcat -F, confluent-kafka) reads it as it is; Java clients also need\n\
             # ssl.truststore.type=PEM and ssl.truststore.location={ca}.\n\
             bootstrap.servers={bootstrap}\n\
             security.protocol=SASL_SSL\n\
             sasl.mechanism=SCRAM-SHA-512\n\
             sasl.username=admin\n\
             sasl.password={password}\n\
             ssl.ca.location={ca}\n",
            bootstrap = bootstrap.join(","),
            ca = self.file("ca.pem"),
        );
        write(&path, &properties)?;
        Ok(path)
    }
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    // Keys and passwords are for this user only.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", path.display()))
}
