//! Strand's security core: Kafka's ACL model and authorizer, SCRAM-SHA-256/512 and SASL/PLAIN
//! credentials, and principals from client certificates.
//!
//! The crate is pure: no I/O, no async, no network. The Kafka listener uses it to authenticate
//! connections (SASL/SCRAM, SASL/PLAIN, mutual TLS) and to authorize each request; the metadata
//! state machine stores the [`AclBinding`]s and [`ScramCredential`]s it defines; the gRPC control
//! plane validates and lists them.
//!
//! - [`acl`]: [`AclBinding`], [`AclFilter`], [`authorize`] and [`authorize_any`], with Kafka's
//!   wire codes and the semantics of Kafka's `StandardAuthorizer`.
//! - [`scram`]: [`ScramCredential`], the server side of an exchange ([`ScramServer`]) and a
//!   small [`ScramClient`].
//! - [`plain`]: [`parse_plain`], checked against a stored SCRAM credential.
//! - [`principal`]: [`subject_name`] of a certificate and Kafka's `ssl.principal.mapping.rules`
//!   ([`PrincipalMapper`]).

pub mod acl;
pub mod plain;
pub mod principal;
pub mod scram;

pub use acl::{
    AclBinding, AclError, AclFilter, AuthorizerSettings, CLUSTER_RESOURCE, MAX_ACL_STRING_LEN,
    Operation, PatternFilter, PatternType, Permission, ResourceType, WILDCARD, WILDCARD_PRINCIPAL,
    authorize, authorize_any, validate_principal,
};
pub use plain::{MAX_PLAIN_TOKEN_LEN, MAX_PLAIN_USERNAME_LEN, PlainError, parse_plain};
pub use principal::{PrincipalError, PrincipalMapper, principal_of_certificate, subject_name};
pub use scram::{
    MAX_ITERATIONS, MAX_MESSAGE_LEN, MAX_USERNAME_LEN, SALT_LEN, ScramClient, ScramCredential,
    ScramError, ScramMechanism, ScramServer,
};
