//! The SASL exchange of one connection (SaslHandshake v1, SaslAuthenticate v0–v2) with PLAIN,
//! SCRAM-SHA-256 and SCRAM-SHA-512 against the credentials of the metadata group.
//!
//! On a SASL listener a connection may send only ApiVersions, SaslHandshake and
//! SaslAuthenticate until it has authenticated; anything else closes it, as Kafka does. A
//! failed authentication is answered with SASL_AUTHENTICATION_FAILED and the connection is
//! closed after the answer. An authenticated client may authenticate again (KIP-368) on the
//! same connection, as the same principal only.

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use strand_auth::{ScramServer, parse_plain};
use strand_meta::ClusterState;

use crate::security::SaslMechanism;

/// Where a connection is in its SASL exchange.
enum Stage {
    /// Waiting for a SaslHandshake.
    Handshake,
    /// The mechanism is chosen; waiting for the first SaslAuthenticate.
    Chosen(SaslMechanism),
    /// A SCRAM exchange waits for the client's final message.
    ScramFinal(Box<ScramServer>),
}

/// What a SaslAuthenticate did.
pub(crate) enum Step {
    /// The exchange goes on.
    Continue,
    /// The client is now this principal (`User:name`).
    Authenticated(String),
    /// Authentication failed; the connection closes after the answer.
    Failed,
}

/// One connection's SASL state.
pub(crate) struct Sasl {
    mechanisms: Vec<SaslMechanism>,
    stage: Stage,
    /// The principal once authenticated.
    principal: Option<String>,
}

impl Sasl {
    pub(crate) fn new(mechanisms: Vec<SaslMechanism>) -> Sasl {
        Sasl {
            mechanisms,
            stage: Stage::Handshake,
            principal: None,
        }
    }

    /// Whether a request of `api_key` may be served now.
    /// Whether the client has authenticated.
    pub(crate) fn authenticated(&self) -> bool {
        self.principal.is_some()
    }

    pub(crate) fn admits(&self, api_key: ApiKey) -> bool {
        self.principal.is_some()
            || matches!(
                api_key,
                ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
            )
    }

    /// Answers a SaslHandshake: the mechanism is chosen when it is enabled.
    pub(crate) fn handshake(&mut self, request: &SaslHandshakeRequest) -> SaslHandshakeResponse {
        let enabled: Vec<StrBytes> = self
            .mechanisms
            .iter()
            .map(|m| StrBytes::from_static_str(m.name()))
            .collect();
        let response = SaslHandshakeResponse::default().with_mechanisms(enabled);
        if !matches!(self.stage, Stage::Handshake) {
            return response.with_error_code(ResponseError::IllegalSaslState.code());
        }
        match SaslMechanism::from_name(&request.mechanism).filter(|m| self.mechanisms.contains(m)) {
            Some(mechanism) => {
                self.stage = Stage::Chosen(mechanism);
                response
            }
            None => {
                tracing::info!(mechanism = %request.mechanism.as_str(), "SASL mechanism not enabled");
                response.with_error_code(ResponseError::UnsupportedSaslMechanism.code())
            }
        }
    }

    /// Answers a SaslAuthenticate against the credentials in `state`.
    pub(crate) fn authenticate(
        &mut self,
        request: &SaslAuthenticateRequest,
        state: &ClusterState,
    ) -> (SaslAuthenticateResponse, Step) {
        let stage = std::mem::replace(&mut self.stage, Stage::Handshake);
        let outcome = match stage {
            Stage::Handshake => Err(Failure::State),
            Stage::Chosen(SaslMechanism::Plain) => plain(&request.auth_bytes, state),
            Stage::Chosen(SaslMechanism::Scram(mechanism)) => {
                let lookup = |user: &str| state.scram_credential(user, mechanism).cloned();
                match ScramServer::start(mechanism, &request.auth_bytes, lookup) {
                    Ok((server, first)) => {
                        self.stage = Stage::ScramFinal(Box::new(server));
                        return (ok(first), Step::Continue);
                    }
                    Err(e) => Err(Failure::Credentials(e.to_string())),
                }
            }
            Stage::ScramFinal(server) => match server.finish(&request.auth_bytes) {
                Ok((user, last)) => Ok((user, last)),
                Err(e) => Err(Failure::Credentials(e.to_string())),
            },
        };
        match outcome {
            Ok((user, last)) => {
                let principal = format!("User:{user}");
                if let Some(before) = &self.principal
                    && *before != principal
                {
                    // KIP-368: re-authentication may not change who the connection is.
                    tracing::info!(%before, after = %principal, "re-authentication as another principal refused");
                    return (
                        failed("re-authentication must keep the same principal"),
                        Step::Failed,
                    );
                }
                tracing::debug!(%principal, "SASL authentication succeeded");
                self.principal = Some(principal.clone());
                (ok(last), Step::Authenticated(principal))
            }
            Err(Failure::State) => (
                SaslAuthenticateResponse::default()
                    .with_error_code(ResponseError::IllegalSaslState.code())
                    .with_error_message(Some(StrBytes::from_static_str(
                        "SaslAuthenticate before a successful SaslHandshake",
                    ))),
                Step::Failed,
            ),
            Err(Failure::Credentials(reason)) => {
                tracing::info!(%reason, "SASL authentication failed");
                (
                    failed("Authentication failed: invalid credentials"),
                    Step::Failed,
                )
            }
        }
    }
}

enum Failure {
    /// SaslAuthenticate out of order.
    State,
    /// Wrong user, password or message; the reason is logged, not sent.
    Credentials(String),
}

fn plain(token: &[u8], state: &ClusterState) -> Result<(String, Vec<u8>), Failure> {
    let (user, password) = parse_plain(token).map_err(|e| Failure::Credentials(e.to_string()))?;
    let verified = state
        .scram_users()
        .get(&user)
        .and_then(|by_mechanism| by_mechanism.values().next())
        .is_some_and(|credential| credential.verify_password(&password));
    if verified {
        Ok((user, Vec::new()))
    } else {
        Err(Failure::Credentials(format!(
            "PLAIN: unknown user or wrong password for `{user}`"
        )))
    }
}

fn ok(bytes: Vec<u8>) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(bytes))
}

fn failed(message: &'static str) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(ResponseError::SaslAuthenticationFailed.code())
        .with_error_message(Some(StrBytes::from_static_str(message)))
}
