//! Who a Kafka client is and what it may do: listeners and their security protocols, the
//! client's principal, and the authorizer's checks as Kafka makes them.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use strand_auth::{AuthorizerSettings, Operation, PrincipalMapper, ResourceType, ScramMechanism};

/// Kafka's security protocols: whether a listener speaks TLS and whether clients authenticate
/// with SASL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    /// Neither TLS nor SASL.
    Plaintext,
    /// TLS; with a client CA, client certificates are required and name the principal.
    Ssl,
    /// SASL without TLS.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Kafka's name: `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether the listener speaks TLS.
    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether clients authenticate with SASL.
    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

impl std::fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SecurityProtocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(SecurityProtocol::Plaintext),
            "SSL" => Ok(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Ok(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Ok(SecurityProtocol::SaslSsl),
            _ => Err(format!(
                "unknown security protocol `{s}`; use PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
            )),
        }
    }
}

/// One Kafka listener: a name, the address it binds, the address clients are told, and its
/// security protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    /// Its name, as in Kafka's `listeners` (`INTERNAL`, `EXTERNAL`, `SASL_SSL`…).
    pub name: String,
    /// The address it binds.
    pub listen: SocketAddr,
    /// `host:port` Metadata gives clients that connected to it.
    pub advertised: String,
    /// TLS and SASL.
    pub protocol: SecurityProtocol,
}

/// The SASL mechanisms Strand offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    /// `PLAIN` (RFC 4616), checked against the user's SCRAM credential; only sensible over TLS.
    Plain,
    /// `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    Scram(ScramMechanism),
}

impl SaslMechanism {
    /// Every mechanism, in the order Strand lists them.
    pub const ALL: [SaslMechanism; 3] = [
        SaslMechanism::Scram(ScramMechanism::Sha512),
        SaslMechanism::Scram(ScramMechanism::Sha256),
        SaslMechanism::Plain,
    ];

    /// Its SASL name.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::Scram(m) => m.name(),
        }
    }

    /// The mechanism of a SASL name.
    pub fn from_name(name: &str) -> Option<SaslMechanism> {
        if name == "PLAIN" {
            return Some(SaslMechanism::Plain);
        }
        ScramMechanism::from_name(name).map(SaslMechanism::Scram)
    }
}

impl FromStr for SaslMechanism {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        SaslMechanism::from_name(&s.to_ascii_uppercase()).ok_or_else(|| {
            format!("unknown SASL mechanism `{s}`; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
        })
    }
}

/// How clients are authenticated and authorized on every listener.
#[derive(Debug, Clone)]
pub struct SecuritySettings {
    /// Mechanisms SASL listeners offer (Kafka's `sasl.enabled.mechanisms`).
    pub sasl_mechanisms: Vec<SaslMechanism>,
    /// Kafka's ACL authorizer, or `None` for none: every client may do everything, and the
    /// ACL APIs answer SECURITY_DISABLED.
    pub authorizer: Option<AuthorizerSettings>,
    /// How a client certificate's subject becomes a principal (`ssl.principal.mapping.rules`).
    pub principal_mapping: Arc<PrincipalMapper>,
}

impl Default for SecuritySettings {
    fn default() -> Self {
        SecuritySettings {
            sasl_mechanisms: SaslMechanism::ALL.to_vec(),
            authorizer: None,
            principal_mapping: Arc::new(PrincipalMapper::default_rules()),
        }
    }
}

/// The principal of a client that did not authenticate, as Kafka names it.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// One connection's identity: the listener it came in on, the client's host and principal.
#[derive(Debug, Clone)]
pub struct Session {
    /// The listener.
    pub listener: Arc<ListenerSpec>,
    /// The client's IP address, as ACL hosts name it.
    pub host: String,
    /// `User:name`: from SASL, from the client certificate, or [`ANONYMOUS`].
    pub principal: String,
}

/// What an authorization check is about.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resource<'a> {
    pub(crate) kind: ResourceType,
    pub(crate) name: &'a str,
}

impl<'a> Resource<'a> {
    pub(crate) fn topic(name: &'a str) -> Self {
        Resource {
            kind: ResourceType::Topic,
            name,
        }
    }

    pub(crate) fn group(name: &'a str) -> Self {
        Resource {
            kind: ResourceType::Group,
            name,
        }
    }

    pub(crate) fn cluster() -> Self {
        Resource {
            kind: ResourceType::Cluster,
            name: strand_auth::CLUSTER_RESOURCE,
        }
    }
}

impl crate::context::Context {
    /// Whether the client may do `operation` on `resource`; always when no authorizer is on.
    pub(crate) fn authorized(&self, operation: Operation, resource: Resource<'_>) -> bool {
        let Some(settings) = &self.shared.handles.settings.security.authorizer else {
            return true;
        };
        let state = self.state();
        let allowed = strand_auth::authorize(
            state.acls(),
            settings,
            &self.session.principal,
            &self.session.host,
            operation,
            resource.kind,
            resource.name,
        );
        if !allowed {
            tracing::debug!(principal = %self.session.principal, host = %self.session.host,
                ?operation, resource = ?resource.kind, name = resource.name, "not authorized");
        }
        allowed
    }

    /// Whether the client may do `operation` on some resource of a type (Kafka's
    /// authorize-by-resource-type, used for idempotent produce).
    pub(crate) fn authorized_any(&self, operation: Operation, kind: ResourceType) -> bool {
        let Some(settings) = &self.shared.handles.settings.security.authorizer else {
            return true;
        };
        let state = self.state();
        strand_auth::authorize_any(
            state.acls(),
            settings,
            &self.session.principal,
            &self.session.host,
            operation,
            kind,
        )
    }
}
