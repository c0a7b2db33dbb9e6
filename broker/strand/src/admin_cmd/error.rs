//! Turns what went wrong talking to the admin API into a message and a hint a person can act on.
//!
//! This is the one place that reads `AdminError` out of a status's details.

use std::fmt;

use prost::Message as _;
use strand_proto::admin::{AdminError, ErrorReason};
use tonic::{Code, Status};

/// An admin command failed: what happened, and what to try next when we can tell.
///
/// `main` prints it as `error: {message}`; the hint follows on its own line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// What went wrong, lowercase without a trailing period.
    pub message: String,
    /// What the user can do about it.
    pub hint: Option<String>,
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CliError {}

/// The hint for an address that could not be reached, shared by connection failures and
/// calls that came back `UNAVAILABLE` without details.
fn server_hint() -> String {
    "pass --server HOST:PORT or set STRAND_SERVER to a broker's admin gRPC address".to_owned()
}

/// The connection to `server` could not be made.
pub fn connect_failed(server: &str, error: &tonic::transport::Error) -> CliError {
    CliError {
        message: format!(
            "could not reach the admin API at {server}: {}",
            error_chain(error)
        ),
        hint: Some(server_hint()),
    }
}

/// A call to `server` came back with a non-OK `status`.
pub fn from_status(server: &str, status: &Status) -> CliError {
    match decode_admin_error(status) {
        Some(admin) => from_admin_error(&admin, status),
        None => from_plain_status(server, status),
    }
}

/// The `AdminError` in a status's details, when there is one and it decodes.
fn decode_admin_error(status: &Status) -> Option<AdminError> {
    if status.details().is_empty() {
        return None;
    }
    AdminError::decode(status.details()).ok()
}

fn from_admin_error(admin: &AdminError, status: &Status) -> CliError {
    // A server that filled in only the status message still deserves to be heard.
    let message = if admin.message.is_empty() {
        status.message().to_owned()
    } else {
        admin.message.clone()
    };
    CliError {
        message,
        hint: hint_for(admin),
    }
}

/// What to try next for each reason the admin API can give.
fn hint_for(admin: &AdminError) -> Option<String> {
    let reason = ErrorReason::try_from(admin.reason).unwrap_or(ErrorReason::Unspecified);
    let hint = match reason {
        ErrorReason::Unspecified => return None,
        ErrorReason::TopicExists => {
            "`strand topic describe NAME` shows the existing topic; `strand topic alter NAME` changes it"
                .to_owned()
        }
        ErrorReason::UnknownTopic => "`strand topic list` shows the topics that exist".to_owned(),
        ErrorReason::InvalidTopicName => {
            "topic names are 1 to 249 of the characters a-z A-Z 0-9 . _ - and must not start with `__`"
                .to_owned()
        }
        ErrorReason::InvalidConfig if admin.config_key.is_empty() => {
            "check the --config settings".to_owned()
        }
        ErrorReason::InvalidConfig => {
            format!("the rejected config key is `{}`", admin.config_key)
        }
        ErrorReason::NotEnoughBrokers => {
            "lower --replication-factor or add brokers; `strand cluster describe` lists the brokers"
                .to_owned()
        }
        ErrorReason::NotController => not_controller_hint(admin),
        ErrorReason::InvalidPartitions => {
            "a topic needs at least 1 partition, and its partition count can only grow".to_owned()
        }
        ErrorReason::InvalidReplicationFactor => {
            "the replication factor must be at least 1 and at most the number of brokers"
                .to_owned()
        }
        ErrorReason::Unavailable => {
            "the cluster cannot serve this right now (for example while it elects a controller); retry shortly"
                .to_owned()
        }
        ErrorReason::UnknownBroker => {
            "`strand cluster describe` lists the brokers and their ids".to_owned()
        }
        ErrorReason::UnknownPartition => {
            "`strand topic describe NAME` lists the topic's partitions".to_owned()
        }
        ErrorReason::BrokerState => {
            "`strand cluster describe` shows each broker's state and load".to_owned()
        }
        ErrorReason::NotOwner => {
            "`strand topic describe NAME` shows who manages the topic; change it through its owner (for a Topic resource, edit the resource)"
                .to_owned()
        }
        ErrorReason::InternalTopic => {
            "Strand keeps internal topics such as __consumer_offsets for itself: they cannot be deleted, re-partitioned, re-replicated or owned; their config can still be changed"
                .to_owned()
        }
        ErrorReason::InvalidAcl => {
            "an ACL names a resource type (Topic, Group, Cluster, TransactionalId), a pattern (Literal, Prefixed), a principal `User:name`, a host (`*` for any), an operation and Allow or Deny; a Cluster ACL's resource is kafka-cluster"
                .to_owned()
        }
        ErrorReason::InvalidCredential => {
            "a SCRAM user needs a non-empty name, SCRAM-SHA-256 or SCRAM-SHA-512, and 4096 to 16384 iterations"
                .to_owned()
        }
        ErrorReason::UnknownUser => "`strand user list` lists the SCRAM users".to_owned(),
    };
    Some(hint)
}

fn not_controller_hint(admin: &AdminError) -> String {
    match (admin.controller_id, admin.controller_address.as_str()) {
        (Some(id), "") => format!("the controller is broker {id}"),
        (Some(id), address) => {
            format!("the controller is broker {id} at {address}; retry with --server {address}")
        }
        (None, "") => "no controller is known yet; retry shortly".to_owned(),
        (None, address) => {
            format!("the controller is at {address}; retry with --server {address}")
        }
    }
}

/// A status without `AdminError` details: shown by its message, with a hint when the code
/// alone says enough.
fn from_plain_status(server: &str, status: &Status) -> CliError {
    let message = match (status.message(), std::error::Error::source(status)) {
        ("", _) => format!("the server answered {:?}", status.code()),
        // A failed call carries its transport's error, which says why ("received fatal
        // alert: BadCertificate") where the message says "transport error".
        (message, Some(source)) => {
            let causes = error_chain(source);
            if causes.is_empty() || message.contains(&causes) {
                message.to_owned()
            } else {
                format!("{message}: {causes}")
            }
        }
        (message, None) => message.to_owned(),
    };
    let hint = match status.code() {
        Code::Unavailable => Some(format!(
            "the admin API at {server} is unavailable; {}",
            server_hint()
        )),
        Code::Unimplemented => Some(format!(
            "the server at {server} does not offer this call; is it a Strand broker of the same version?"
        )),
        Code::DeadlineExceeded => Some("the call timed out; retry shortly".to_owned()),
        _ => None,
    };
    // A plaintext call to a port that speaks TLS fails without a word about why.
    let without_tls = std::env::var_os("STRAND_TLS_CA").is_none()
        && ["transport error", "h2 protocol error"]
            .iter()
            .any(|m| status.message().starts_with(m));
    let hint = match (hint, without_tls) {
        (hint, true) => Some(format!(
            "{}if the cluster's gRPC port speaks mutual TLS (every cluster the Strand operator \
             runs does), set STRAND_TLS_CA, STRAND_TLS_CERT and STRAND_TLS_KEY to its CA and an \
             admin certificate and key (on Kubernetes: the <cluster>-admin-tls Secret)",
            hint.map(|h| format!("{h}; ")).unwrap_or_default()
        )),
        (hint, false) => hint,
    };
    CliError { message, hint }
}

/// The transport error's causes joined by `: `, because tonic's own message ("transport
/// error") says nothing a person can act on; the causes say "connection refused" or "dns error".
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(cause) = next {
        let text = cause.to_string();
        // hyper and tonic sometimes repeat the inner message in the outer one.
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        next = cause.source();
    }
    if parts.len() > 1 && parts[0] == "transport error" {
        parts.remove(0);
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    fn status_with(admin: AdminError) -> Status {
        Status::with_details(
            Code::FailedPrecondition,
            "ignored",
            admin.encode_to_vec().into(),
        )
    }

    #[test]
    fn not_controller_names_the_controller_and_its_address() {
        let status = status_with(AdminError {
            reason: ErrorReason::NotController.into(),
            message: "broker 0 is not the controller".into(),
            controller_id: Some(2),
            controller_address: "10.0.0.2:9093".into(),
            config_key: String::new(),
        });
        let error = from_status("127.0.0.1:9093", &status);
        assert_eq!(
            error.to_string(),
            "broker 0 is not the controller\n\
             hint: the controller is broker 2 at 10.0.0.2:9093; retry with --server 10.0.0.2:9093"
        );
    }

    #[test]
    fn invalid_config_names_the_key() {
        let status = status_with(AdminError {
            reason: ErrorReason::InvalidConfig.into(),
            message: "invalid config".into(),
            config_key: "retention.ms".into(),
            ..AdminError::default()
        });
        let error = from_status("s:1", &status);
        assert_eq!(
            error.hint.as_deref(),
            Some("the rejected config key is `retention.ms`")
        );
    }

    #[test]
    fn status_without_details_is_shown_by_its_message() {
        let error = from_status("s:1", &Status::internal("disk full"));
        assert_eq!(error.to_string(), "disk full");
    }

    #[test]
    fn undecodable_details_fall_back_to_the_status_message() {
        let status = Status::with_details(Code::Internal, "boom", vec![0xff, 0xff].into());
        assert_eq!(from_status("s:1", &status).message, "boom");
    }

    #[test]
    fn unknown_reason_numbers_get_no_hint() {
        let status = status_with(AdminError {
            reason: 999,
            message: "something new".into(),
            ..AdminError::default()
        });
        assert_eq!(from_status("s:1", &status).to_string(), "something new");
    }
}
