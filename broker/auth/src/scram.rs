//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka uses them: stored credentials,
//! the server's half of an exchange, and a small client for tests and Strand's own tools.
//!
//! As in Kafka, passwords are used as their UTF-8 bytes without SASLprep, channel binding is not
//! supported, and credentials hold only the salt, the iteration count, `StoredKey` and
//! `ServerKey`, never the password.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// The most PBKDF2 iterations a credential may use, as in Kafka.
pub const MAX_ITERATIONS: u32 = 16384;

/// The longest SCRAM message accepted from a peer, in bytes.
pub const MAX_MESSAGE_LEN: usize = 4096;

/// The longest user name accepted, in bytes.
pub const MAX_USERNAME_LEN: usize = 1024;

/// Length of the salts [`ScramCredential::random_salt`] makes, in bytes.
pub const SALT_LEN: usize = 32;

/// Random bytes in a nonce (before base64).
const NONCE_BYTES: usize = 24;

/// The gs2 header of a client that uses no channel binding and no authorization id.
const GS2_HEADER: &str = "n,,";

/// A SCRAM mechanism Strand supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ScramMechanism {
    /// SCRAM-SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    /// SCRAM-SHA-512.
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl ScramMechanism {
    /// The SASL mechanism name, e.g. `SCRAM-SHA-256`.
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism for a SASL mechanism name (exact, as SaslHandshake sends it).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "SCRAM-SHA-256" => Some(ScramMechanism::Sha256),
            "SCRAM-SHA-512" => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    /// Kafka's `ScramMechanism` code: 1 for SHA-256, 2 for SHA-512.
    pub fn code(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    /// The mechanism for Kafka's code (0, unknown, gives `None`).
    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            1 => Some(ScramMechanism::Sha256),
            2 => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    /// The fewest iterations Kafka accepts: 4096 for both.
    pub fn min_iterations(self) -> u32 {
        4096
    }

    /// The hash output length in bytes: 32 or 64. Salted passwords, keys and proofs are this long.
    pub fn output_len(self) -> usize {
        match self {
            ScramMechanism::Sha256 => 32,
            ScramMechanism::Sha512 => 64,
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC takes keys of any length, so building it cannot fail.
        match self {
            ScramMechanism::Sha256 => {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
                    .expect("HMAC accepts keys of any length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            ScramMechanism::Sha512 => {
                let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(key)
                    .expect("HMAC accepts keys of any length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    fn check_iterations(self, iterations: u32) -> Result<(), ScramError> {
        if iterations < self.min_iterations() || iterations > MAX_ITERATIONS {
            return Err(ScramError::IterationsOutOfRange {
                mechanism: self,
                iterations,
                min: self.min_iterations(),
                max: MAX_ITERATIONS,
            });
        }
        Ok(())
    }
}

impl fmt::Display for ScramMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a SCRAM exchange or credential was refused. Messages never contain passwords, keys or
/// proofs.
///
/// [`ScramError::UnknownUser`] and [`ScramError::BadProof`] are for Strand's logs: tell the client
/// the same thing for both, as Kafka does, so user names cannot be probed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// A message is longer than [`MAX_MESSAGE_LEN`].
    #[error("SCRAM message is {len} bytes; the limit is {max} bytes")]
    MessageTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// A message does not follow RFC 5802's syntax.
    #[error("malformed SCRAM message: {0}")]
    Malformed(String),
    /// The client asked for channel binding, which Strand does not support.
    #[error(
        "the client requested channel binding `{0}`, which Strand does not support; configure the client without channel binding"
    )]
    ChannelBindingUnsupported(String),
    /// The client asked for delegation-token authentication (`tokenauth=true`).
    #[error(
        "the client requested delegation-token authentication (tokenauth=true), which Strand does not support; authenticate with a SCRAM user and password"
    )]
    TokenAuthUnsupported,
    /// The client sent an extension Strand does not know.
    #[error("the client sent the unsupported SCRAM extension `{0}`")]
    UnsupportedExtension(String),
    /// The user name is longer than [`MAX_USERNAME_LEN`].
    #[error("the SCRAM user name is {len} bytes; the limit is {max} bytes")]
    UserNameTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The client asked to act as a different user than it authenticates as.
    #[error(
        "the client requested authorization id `{authzid}` but authenticates as `{user}`; Strand only allows an empty authorization id or the user name itself"
    )]
    AuthzidMismatch {
        /// The requested authorization id.
        authzid: String,
        /// The user name.
        user: String,
    },
    /// No credential exists for this user and mechanism.
    #[error(
        "no SCRAM credential for user `{0}` with this mechanism; create one with AlterUserScramCredentials (kafka-configs --alter --add-config)"
    )]
    UnknownUser(String),
    /// The stored credential is for another mechanism than the exchange.
    #[error("the credential looked up is for {found}, but the exchange uses {expected}")]
    MechanismMismatch {
        /// The exchange's mechanism.
        expected: ScramMechanism,
        /// The credential's mechanism.
        found: ScramMechanism,
    },
    /// A stored credential cannot be used.
    #[error("the stored SCRAM credential cannot be used ({0}); set the user's credential again")]
    InvalidCredential(String),
    /// The iteration count is outside what Kafka accepts.
    #[error("{mechanism} iterations must be between {min} and {max}, got {iterations}")]
    IterationsOutOfRange {
        /// The mechanism.
        mechanism: ScramMechanism,
        /// The count given.
        iterations: u32,
        /// The fewest allowed.
        min: u32,
        /// The most allowed.
        max: u32,
    },
    /// A salted password is not as long as the mechanism's hash.
    #[error("a {mechanism} salted password must be {expected} bytes, got {len}")]
    SaltedPasswordLength {
        /// The mechanism.
        mechanism: ScramMechanism,
        /// The length given.
        len: usize,
        /// The hash output length.
        expected: usize,
    },
    /// The salt is empty.
    #[error("the SCRAM salt is empty; use a random salt (32 bytes)")]
    EmptySalt,
    /// The nonce in a later message is not the one the exchange agreed.
    #[error("the SCRAM nonce does not match the one sent earlier in this exchange")]
    NonceMismatch,
    /// The channel binding data in client-final-message does not match client-first-message.
    #[error(
        "the channel binding `c=` in client-final-message does not match the gs2 header of client-first-message"
    )]
    ChannelBindingMismatch,
    /// The client's proof is wrong: the password does not match.
    #[error("the SCRAM client proof is wrong: the password does not match the stored credential")]
    BadProof,
    /// The server's signature is wrong: the server does not hold this user's credential.
    #[error("the SCRAM server signature is wrong: the server does not know this user's credential")]
    BadServerSignature,
    /// The server reported an error (`e=`).
    #[error("the SCRAM server refused authentication: {0}")]
    ServerError(String),
    /// A client method was called out of order.
    #[error("SCRAM client used out of order: {0}")]
    OutOfOrder(&'static str),
    /// The operating system's random number generator failed.
    #[error("could not get random bytes from the operating system: {0}")]
    Random(String),
}

/// Serializes bytes as a standard base64 string.
mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&BASE64.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        BASE64
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))
    }
}

/// A stored credential: never the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    /// The mechanism this credential is for.
    pub mechanism: ScramMechanism,
    /// The salt.
    #[serde(with = "base64_bytes")]
    pub salt: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// `H(HMAC(SaltedPassword, "Client Key"))`.
    #[serde(with = "base64_bytes")]
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`.
    #[serde(with = "base64_bytes")]
    pub server_key: Vec<u8>,
}

impl fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredential")
            .field("mechanism", &self.mechanism)
            .field("salt", &BASE64.encode(&self.salt))
            .field("iterations", &self.iterations)
            .field("stored_key", &"<redacted>")
            .field("server_key", &"<redacted>")
            .finish()
    }
}

/// Fills a buffer from the operating system's random number generator.
fn random_bytes(len: usize) -> Result<Vec<u8>, ScramError> {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).map_err(|e| ScramError::Random(e.to_string()))?;
    Ok(bytes)
}

/// A fresh nonce: random bytes in base64, printable and without commas.
fn random_nonce() -> Result<String, ScramError> {
    Ok(BASE64.encode(random_bytes(NONCE_BYTES)?))
}

impl ScramCredential {
    /// The credential for `password`, checking the iteration bounds and that the salt is not
    /// empty.
    pub fn from_password(
        mechanism: ScramMechanism,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, ScramError> {
        mechanism.check_iterations(iterations)?;
        let salted = Self::salted_password(mechanism, password, salt, iterations);
        Self::from_salted_password(mechanism, &salted, salt, iterations)
    }

    /// The credential for a salted password, as AlterUserScramCredentials sends it. The salted
    /// password must be as long as the mechanism's hash output.
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salted_password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, ScramError> {
        mechanism.check_iterations(iterations)?;
        if salt.is_empty() {
            return Err(ScramError::EmptySalt);
        }
        if salted_password.len() != mechanism.output_len() {
            return Err(ScramError::SaltedPasswordLength {
                mechanism,
                len: salted_password.len(),
                expected: mechanism.output_len(),
            });
        }
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        Ok(ScramCredential {
            mechanism,
            salt: salt.to_vec(),
            iterations,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
        })
    }

    /// RFC 5802's `Hi(password, salt, iterations)`: PBKDF2 with HMAC of the mechanism's hash,
    /// as long as the hash output. An iteration count of 0 is treated as 1.
    pub fn salted_password(
        mechanism: ScramMechanism,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Vec<u8> {
        let mut out = vec![0u8; mechanism.output_len()];
        match mechanism {
            ScramMechanism::Sha256 => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut out);
            }
            ScramMechanism::Sha512 => {
                pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), salt, iterations, &mut out);
            }
        }
        out
    }

    /// [`SALT_LEN`] random bytes from the operating system's random number generator.
    ///
    /// # Panics
    ///
    /// If the operating system cannot give random bytes; use [`ScramCredential::try_random_salt`]
    /// to handle that instead.
    pub fn random_salt() -> Vec<u8> {
        Self::try_random_salt().expect("the operating system's random number generator failed")
    }

    /// [`SALT_LEN`] random bytes, or an error if the operating system cannot give them.
    pub fn try_random_salt() -> Result<Vec<u8>, ScramError> {
        random_bytes(SALT_LEN)
    }

    /// Checks that the credential can be used: iteration bounds, a salt, and keys as long as the
    /// mechanism's hash output.
    pub fn validate(&self) -> Result<(), ScramError> {
        self.mechanism.check_iterations(self.iterations)?;
        if self.salt.is_empty() {
            return Err(ScramError::EmptySalt);
        }
        let expected = self.mechanism.output_len();
        for (name, key) in [
            ("stored key", &self.stored_key),
            ("server key", &self.server_key),
        ] {
            if key.len() != expected {
                return Err(ScramError::InvalidCredential(format!(
                    "the {name} is {} bytes, {} needs {expected}",
                    key.len(),
                    self.mechanism
                )));
            }
        }
        Ok(())
    }

    /// Whether `password` is this credential's password, compared in constant time; used for
    /// SASL/PLAIN. An unusable credential (see [`ScramCredential::validate`]) matches nothing.
    pub fn verify_password(&self, password: &str) -> bool {
        if self.validate().is_err() {
            return false;
        }
        let salted = Self::salted_password(self.mechanism, password, &self.salt, self.iterations);
        let client_key = self.mechanism.hmac(&salted, b"Client Key");
        let stored_key = self.mechanism.hash(&client_key);
        bool::from(stored_key.ct_eq(&self.stored_key))
    }
}

/// Checks the size and encoding of a message from a peer.
fn message_text<'a>(message: &'a [u8], what: &str) -> Result<&'a str, ScramError> {
    if message.len() > MAX_MESSAGE_LEN {
        return Err(ScramError::MessageTooLong {
            len: message.len(),
            max: MAX_MESSAGE_LEN,
        });
    }
    std::str::from_utf8(message)
        .map_err(|_| ScramError::Malformed(format!("the {what} is not valid UTF-8")))
}

/// The value of attribute `key` (`key=value`), or an error naming what was expected.
fn attribute<'a>(part: Option<&'a str>, key: char, what: &str) -> Result<&'a str, ScramError> {
    part.and_then(|p| p.strip_prefix(key))
        .and_then(|p| p.strip_prefix('='))
        .ok_or_else(|| ScramError::Malformed(format!("expected `{key}=` ({what})")))
}

/// Decodes RFC 5802's saslname: `=2C` is `,` and `=3D` is `=`; any other `=` is an error.
fn decode_saslname(encoded: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(i) = rest.find('=') {
        out.push_str(rest.get(..i).unwrap_or_default());
        let after = rest.get(i + 1..).unwrap_or_default();
        if let Some(tail) = after.strip_prefix("2C") {
            out.push(',');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("3D") {
            out.push('=');
            rest = tail;
        } else {
            return Err(ScramError::Malformed(
                "a user name may contain `=` only as `=2C` (for `,`) or `=3D` (for `=`)".into(),
            ));
        }
    }
    out.push_str(rest);
    if out.contains('\0') {
        return Err(ScramError::Malformed(
            "the user name contains a NUL character".into(),
        ));
    }
    Ok(out)
}

/// Encodes a user name as RFC 5802's saslname.
fn encode_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// Checks a nonce: printable ASCII without commas, not empty.
fn check_nonce(nonce: &str) -> Result<(), ScramError> {
    if nonce.is_empty()
        || !nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
    {
        return Err(ScramError::Malformed(
            "the nonce must be non-empty printable ASCII without commas".into(),
        ));
    }
    Ok(())
}

fn decode_base64(value: &str, what: &str) -> Result<Vec<u8>, ScramError> {
    BASE64
        .decode(value.as_bytes())
        .map_err(|_| ScramError::Malformed(format!("the {what} is not valid base64")))
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// What client-first-message says.
struct ClientFirst<'a> {
    gs2_header: &'a str,
    bare: &'a str,
    user: String,
    nonce: &'a str,
}

fn parse_client_first(message: &str) -> Result<ClientFirst<'_>, ScramError> {
    const SHAPE: &str = "expected `n,,n=<user>,r=<nonce>`";
    let mut parts = message.splitn(3, ',');
    let flag = parts.next().unwrap_or_default();
    let authz = parts.next();
    let bare = parts.next();
    if let Some(binding) = flag.strip_prefix("p=") {
        return Err(ScramError::ChannelBindingUnsupported(binding.to_owned()));
    }
    if flag != "n" && flag != "y" {
        return Err(ScramError::Malformed(format!(
            "client-first-message must start with the gs2 flag `n`; {SHAPE}"
        )));
    }
    let (Some(authz), Some(bare)) = (authz, bare) else {
        return Err(ScramError::Malformed(format!(
            "client-first-message has no complete gs2 header; {SHAPE}"
        )));
    };
    let gs2_header = message.get(..flag.len() + authz.len() + 2).ok_or_else(|| {
        ScramError::Malformed(format!("client-first-message is cut short; {SHAPE}"))
    })?;
    let authzid = if authz.is_empty() {
        None
    } else {
        Some(decode_saslname(attribute(
            Some(authz),
            'a',
            "the authorization id",
        )?)?)
    };

    let mut attrs = bare.split(',');
    let first = attrs.next();
    if first.is_some_and(|a| a.starts_with("m=")) {
        return Err(ScramError::Malformed(
            "the client requires a mandatory extension (`m=`), which Strand does not support"
                .into(),
        ));
    }
    let encoded_user = attribute(first, 'n', "the user name")?;
    if encoded_user.len() > MAX_USERNAME_LEN * 3 {
        return Err(ScramError::UserNameTooLong {
            len: encoded_user.len(),
            max: MAX_USERNAME_LEN,
        });
    }
    let user = decode_saslname(encoded_user)?;
    if user.is_empty() {
        return Err(ScramError::Malformed("the user name is empty".into()));
    }
    if user.len() > MAX_USERNAME_LEN {
        return Err(ScramError::UserNameTooLong {
            len: user.len(),
            max: MAX_USERNAME_LEN,
        });
    }
    let nonce = attribute(attrs.next(), 'r', "the client nonce")?;
    check_nonce(nonce)?;
    for extension in attrs {
        let (name, value) = extension.split_once('=').ok_or_else(|| {
            ScramError::Malformed(format!("extension `{extension}` is not `name=value`"))
        })?;
        if name == "tokenauth" {
            if value.eq_ignore_ascii_case("true") {
                return Err(ScramError::TokenAuthUnsupported);
            }
        } else {
            return Err(ScramError::UnsupportedExtension(name.to_owned()));
        }
    }
    if let Some(authzid) = authzid
        && !authzid.is_empty()
        && authzid != user
    {
        return Err(ScramError::AuthzidMismatch { authzid, user });
    }
    Ok(ClientFirst {
        gs2_header,
        bare,
        user,
        nonce,
    })
}

/// The server's half of one SCRAM exchange.
#[derive(Debug)]
pub struct ScramServer {
    mechanism: ScramMechanism,
    user: String,
    credential: ScramCredential,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl ScramServer {
    /// Handles client-first-message (`n,,n=user,r=nonce`, optional `a=authzid` must equal user or
    /// be empty; reject `p=` channel binding and the `tokenauth=true` extension with clear errors;
    /// SASLname decoding of `=2C` and `=3D`); `lookup(user)` returns the user's credential for
    /// this mechanism. Returns the server-first-message `r=<client nonce><server nonce>,s=<base64
    /// salt>,i=<iterations>`.
    pub fn start(
        mechanism: ScramMechanism,
        client_first: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<(ScramServer, Vec<u8>), ScramError> {
        Self::start_with_nonce(mechanism, client_first, lookup, &random_nonce()?)
    }

    /// [`ScramServer::start`] with a chosen server nonce (for test vectors).
    pub(crate) fn start_with_nonce(
        mechanism: ScramMechanism,
        client_first: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
        server_nonce: &str,
    ) -> Result<(ScramServer, Vec<u8>), ScramError> {
        let text = message_text(client_first, "client-first-message")?;
        let parsed = parse_client_first(text)?;
        let credential =
            lookup(&parsed.user).ok_or_else(|| ScramError::UnknownUser(parsed.user.clone()))?;
        if credential.mechanism != mechanism {
            return Err(ScramError::MechanismMismatch {
                expected: mechanism,
                found: credential.mechanism,
            });
        }
        credential.validate()?;
        let nonce = format!("{}{server_nonce}", parsed.nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&credential.salt),
            credential.iterations
        );
        let server = ScramServer {
            mechanism,
            user: parsed.user,
            credential,
            gs2_header: parsed.gs2_header.to_owned(),
            client_first_bare: parsed.bare.to_owned(),
            server_first: server_first.clone(),
            nonce,
        };
        Ok((server, server_first.into_bytes()))
    }

    /// The user this exchange authenticates.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The mechanism of this exchange.
    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// Handles client-final-message (`c=biws,r=<nonce>,p=<proof>`): checks channel binding
    /// `biws` (= base64 "n,,"), the combined nonce, and the proof (ClientKey = proof XOR
    /// ClientSignature; H(ClientKey) == StoredKey, constant time). Returns the authenticated
    /// user name and the server-final-message `v=<base64 ServerSignature>`.
    pub fn finish(self, client_final: &[u8]) -> Result<(String, Vec<u8>), ScramError> {
        const SHAPE: &str = "expected `c=biws,r=<nonce>,p=<proof>`";
        let text = message_text(client_final, "client-final-message")?;
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or_else(|| {
            ScramError::Malformed(format!("client-final-message has no proof; {SHAPE}"))
        })?;
        let mut attrs = without_proof.split(',');
        let binding = attribute(attrs.next(), 'c', "the channel binding")?;
        let nonce = attribute(attrs.next(), 'r', "the nonce")?;
        if decode_base64(binding, "channel binding")? != self.gs2_header.as_bytes() {
            return Err(ScramError::ChannelBindingMismatch);
        }
        // Kafka accepts a nonce that ends with the combined one (ScramSaslServer checks
        // `endsWith`), and librdkafka before 2.1 sends its client nonce twice: the proof covers
        // the message as sent, so nothing is weakened by taking it.
        if !nonce.ends_with(self.nonce.as_str()) {
            return Err(ScramError::NonceMismatch);
        }
        let proof = decode_base64(proof, "client proof")?;
        let mechanism = self.mechanism;
        if proof.len() != mechanism.output_len() {
            return Err(ScramError::Malformed(format!(
                "the client proof is {} bytes; {mechanism} proofs are {} bytes",
                proof.len(),
                mechanism.output_len()
            )));
        }
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let client_signature = mechanism.hmac(&self.credential.stored_key, auth_message.as_bytes());
        let client_key = xor(&proof, &client_signature);
        if !bool::from(
            mechanism
                .hash(&client_key)
                .ct_eq(&self.credential.stored_key),
        ) {
            return Err(ScramError::BadProof);
        }
        let server_signature = mechanism.hmac(&self.credential.server_key, auth_message.as_bytes());
        let server_final = format!("v={}", BASE64.encode(server_signature));
        Ok((self.user, server_final.into_bytes()))
    }
}

enum ClientState {
    AwaitingServerFirst { password: String },
    AwaitingServerFinal { server_signature: Vec<u8> },
    Done,
}

/// The client's half of one SCRAM exchange, for tests and Strand's own tools.
pub struct ScramClient {
    mechanism: ScramMechanism,
    client_nonce: String,
    client_first_bare: String,
    state: ClientState,
}

impl fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramClient")
            .field("mechanism", &self.mechanism)
            .field("client_first_bare", &self.client_first_bare)
            .finish_non_exhaustive()
    }
}

impl ScramClient {
    /// Starts an exchange for `user`, returning the client and its client-first-message.
    ///
    /// # Panics
    ///
    /// If the operating system cannot give random bytes for the nonce.
    pub fn new(mechanism: ScramMechanism, user: &str, password: &str) -> (ScramClient, Vec<u8>) {
        let nonce = random_nonce().expect("the operating system's random number generator failed");
        Self::with_nonce(mechanism, user, password, &nonce)
    }

    /// [`ScramClient::new`] with a chosen client nonce (for test vectors).
    pub(crate) fn with_nonce(
        mechanism: ScramMechanism,
        user: &str,
        password: &str,
        nonce: &str,
    ) -> (ScramClient, Vec<u8>) {
        let client_first_bare = format!("n={},r={nonce}", encode_saslname(user));
        let client_first = format!("{GS2_HEADER}{client_first_bare}");
        let client = ScramClient {
            mechanism,
            client_nonce: nonce.to_owned(),
            client_first_bare,
            state: ClientState::AwaitingServerFirst {
                password: password.to_owned(),
            },
        };
        (client, client_first.into_bytes())
    }

    /// Handles server-first-message and returns client-final-message.
    pub fn server_first(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramError> {
        let ClientState::AwaitingServerFirst { password } = &self.state else {
            return Err(ScramError::OutOfOrder(
                "server_first must be called once, right after new",
            ));
        };
        let text = message_text(server_first, "server-first-message")?;
        if let Some(error) = text.strip_prefix("e=") {
            return Err(ScramError::ServerError(error.to_owned()));
        }
        let mut attrs = text.split(',');
        let first = attrs.next();
        if first.is_some_and(|a| a.starts_with("m=")) {
            return Err(ScramError::Malformed(
                "the server requires a mandatory extension (`m=`)".into(),
            ));
        }
        let nonce = attribute(first, 'r', "the nonce")?;
        let salt = decode_base64(attribute(attrs.next(), 's', "the salt")?, "salt")?;
        let iterations: u32 = attribute(attrs.next(), 'i', "the iteration count")?
            .parse()
            .map_err(|_| ScramError::Malformed("the iteration count is not a number".into()))?;
        check_nonce(nonce)?;
        if nonce.len() <= self.client_nonce.len() || !nonce.starts_with(self.client_nonce.as_str())
        {
            return Err(ScramError::NonceMismatch);
        }
        if salt.is_empty() {
            return Err(ScramError::EmptySalt);
        }
        let mechanism = self.mechanism;
        mechanism.check_iterations(iterations)?;
        let salted = ScramCredential::salted_password(mechanism, password, &salt, iterations);
        let client_key = mechanism.hmac(&salted, b"Client Key");
        let stored_key = mechanism.hash(&client_key);
        let server_key = mechanism.hmac(&salted, b"Server Key");
        let without_proof = format!("c={},r={nonce}", BASE64.encode(GS2_HEADER));
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare);
        let client_signature = mechanism.hmac(&stored_key, auth_message.as_bytes());
        let proof = xor(&client_key, &client_signature);
        self.state = ClientState::AwaitingServerFinal {
            server_signature: mechanism.hmac(&server_key, auth_message.as_bytes()),
        };
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes())
    }

    /// Handles server-final-message, checking the server's signature.
    pub fn server_final(&mut self, server_final: &[u8]) -> Result<(), ScramError> {
        let ClientState::AwaitingServerFinal { server_signature } = &self.state else {
            return Err(ScramError::OutOfOrder(
                "server_final must be called once, after server_first",
            ));
        };
        let text = message_text(server_final, "server-final-message")?;
        if let Some(error) = text.strip_prefix("e=") {
            return Err(ScramError::ServerError(error.to_owned()));
        }
        let verifier = attribute(text.split(',').next(), 'v', "the server signature")?;
        let signature = decode_base64(verifier, "server signature")?;
        if !bool::from(signature.ct_eq(server_signature)) {
            return Err(ScramError::BadServerSignature);
        }
        self.state = ClientState::Done;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether an error is the one a test case expects.
    type Check = fn(&ScramError) -> bool;

    const RFC_SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
    const RFC_CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const RFC_SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const RFC_CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const RFC_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc_credential() -> ScramCredential {
        let salt = BASE64.decode(RFC_SALT).unwrap();
        ScramCredential::from_password(ScramMechanism::Sha256, "pencil", &salt, 4096).unwrap()
    }

    fn lookup_for(
        user: &'static str,
        credential: ScramCredential,
    ) -> impl FnOnce(&str) -> Option<ScramCredential> {
        move |u| (u == user).then_some(credential)
    }

    fn start(
        mechanism: ScramMechanism,
        client_first: &[u8],
        credential: ScramCredential,
    ) -> Result<(ScramServer, Vec<u8>), ScramError> {
        ScramServer::start(mechanism, client_first, lookup_for("user", credential))
    }

    #[test]
    fn mechanism_names_and_codes() {
        for m in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            assert_eq!(ScramMechanism::from_name(m.name()), Some(m));
            assert_eq!(ScramMechanism::from_code(m.code()), Some(m));
            assert_eq!(m.min_iterations(), 4096);
        }
        assert_eq!(ScramMechanism::Sha256.code(), 1);
        assert_eq!(ScramMechanism::Sha512.code(), 2);
        assert_eq!(ScramMechanism::from_code(0), None);
        assert_eq!(ScramMechanism::from_name("scram-sha-256"), None);
        assert_eq!(ScramMechanism::from_name("PLAIN"), None);
    }

    #[test]
    fn rfc7677_server_side() {
        let client_first = format!("n,,n=user,r={RFC_CLIENT_NONCE}");
        let (server, server_first) = ScramServer::start_with_nonce(
            ScramMechanism::Sha256,
            client_first.as_bytes(),
            lookup_for("user", rfc_credential()),
            RFC_SERVER_NONCE,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(server_first).unwrap(),
            format!("r={RFC_CLIENT_NONCE}{RFC_SERVER_NONCE},s={RFC_SALT},i=4096")
        );
        let (user, server_final) = server.finish(RFC_CLIENT_FINAL.as_bytes()).unwrap();
        assert_eq!(user, "user");
        assert_eq!(String::from_utf8(server_final).unwrap(), RFC_SERVER_FINAL);
    }

    #[test]
    fn rfc7677_client_side() {
        let (mut client, client_first) =
            ScramClient::with_nonce(ScramMechanism::Sha256, "user", "pencil", RFC_CLIENT_NONCE);
        assert_eq!(
            client_first,
            format!("n,,n=user,r={RFC_CLIENT_NONCE}").into_bytes()
        );
        let server_first = format!("r={RFC_CLIENT_NONCE}{RFC_SERVER_NONCE},s={RFC_SALT},i=4096");
        let client_final = client.server_first(server_first.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(client_final).unwrap(), RFC_CLIENT_FINAL);
        client.server_final(RFC_SERVER_FINAL.as_bytes()).unwrap();
        // A second call is out of order.
        assert!(matches!(
            client.server_final(RFC_SERVER_FINAL.as_bytes()),
            Err(ScramError::OutOfOrder(_))
        ));
    }

    #[test]
    fn client_rejects_wrong_server_signature() {
        let (mut client, _) =
            ScramClient::with_nonce(ScramMechanism::Sha256, "user", "pencil", RFC_CLIENT_NONCE);
        let server_first = format!("r={RFC_CLIENT_NONCE}{RFC_SERVER_NONCE},s={RFC_SALT},i=4096");
        client.server_first(server_first.as_bytes()).unwrap();
        let bad = format!("v={}", BASE64.encode([0u8; 32]));
        assert_eq!(
            client.server_final(bad.as_bytes()),
            Err(ScramError::BadServerSignature)
        );
        assert_eq!(
            client.server_final(b"e=invalid-proof"),
            Err(ScramError::ServerError("invalid-proof".into()))
        );
    }

    #[test]
    fn client_rejects_bad_server_first() {
        let mk = || ScramClient::with_nonce(ScramMechanism::Sha256, "user", "pencil", "abc").0;
        let cases: &[(&str, Check)] = &[
            ("r=xyz123,s=c2FsdA==,i=4096", |e| {
                *e == ScramError::NonceMismatch
            }),
            ("r=abc,s=c2FsdA==,i=4096", |e| {
                *e == ScramError::NonceMismatch
            }),
            ("r=abcd,s=c2FsdA==,i=1", |e| {
                matches!(e, ScramError::IterationsOutOfRange { .. })
            }),
            ("r=abcd,s=c2FsdA==,i=99999999", |e| {
                matches!(e, ScramError::IterationsOutOfRange { .. })
            }),
            ("r=abcd,s=!!,i=4096", |e| {
                matches!(e, ScramError::Malformed(_))
            }),
            ("r=abcd,s=c2FsdA==", |e| {
                matches!(e, ScramError::Malformed(_))
            }),
            ("r=abcd,s=c2FsdA==,i=x", |e| {
                matches!(e, ScramError::Malformed(_))
            }),
            ("m=x,r=abcd,s=c2FsdA==,i=4096", |e| {
                matches!(e, ScramError::Malformed(_))
            }),
            ("e=unknown-user", |e| {
                matches!(e, ScramError::ServerError(_))
            }),
        ];
        for (message, check) in cases {
            let err = mk().server_first(message.as_bytes()).unwrap_err();
            assert!(check(&err), "{message}: {err:?}");
        }
        assert!(matches!(
            mk().server_final(b"v=abc"),
            Err(ScramError::OutOfOrder(_))
        ));
    }

    fn round_trip(
        mechanism: ScramMechanism,
        user: &str,
        password: &str,
        credential: ScramCredential,
    ) -> Result<String, ScramError> {
        let (mut client, client_first) = ScramClient::new(mechanism, user, password);
        let (server, server_first) = ScramServer::start(mechanism, &client_first, |u| {
            (u == user).then_some(credential)
        })?;
        assert_eq!(server.user(), user);
        let client_final = client.server_first(&server_first)?;
        let (authenticated, server_final) = server.finish(&client_final)?;
        client.server_final(&server_final)?;
        Ok(authenticated)
    }

    #[test]
    fn sha512_round_trip() {
        let salt = ScramCredential::random_salt();
        assert_eq!(salt.len(), SALT_LEN);
        let credential =
            ScramCredential::from_password(ScramMechanism::Sha512, "s3cret", &salt, 4096).unwrap();
        assert_eq!(credential.stored_key.len(), 64);
        assert_eq!(credential.server_key.len(), 64);
        assert_eq!(
            round_trip(ScramMechanism::Sha512, "bob", "s3cret", credential).unwrap(),
            "bob"
        );
    }

    #[test]
    fn sha256_round_trip_with_special_user_name() {
        let name = "a,b=c";
        let credential =
            ScramCredential::from_password(ScramMechanism::Sha256, "pw", b"salt", 8192).unwrap();
        assert_eq!(
            round_trip(ScramMechanism::Sha256, name, "pw", credential).unwrap(),
            name
        );
    }

    #[test]
    fn wrong_password_is_bad_proof() {
        let credential =
            ScramCredential::from_password(ScramMechanism::Sha512, "right", b"salt", 4096).unwrap();
        assert_eq!(
            round_trip(ScramMechanism::Sha512, "bob", "wrong", credential),
            Err(ScramError::BadProof)
        );
    }

    #[test]
    fn unknown_user() {
        let err =
            ScramServer::start(ScramMechanism::Sha256, b"n,,n=nobody,r=abc", |_| None).unwrap_err();
        assert_eq!(err, ScramError::UnknownUser("nobody".into()));
        assert!(err.to_string().contains("nobody"));
    }

    #[test]
    fn credential_for_other_mechanism_is_refused() {
        let err = start(ScramMechanism::Sha512, b"n,,n=user,r=abc", rfc_credential()).unwrap_err();
        assert!(
            matches!(err, ScramError::MechanismMismatch { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn unusable_stored_credential_is_refused() {
        let mut credential = rfc_credential();
        credential.stored_key.truncate(3);
        let err = start(ScramMechanism::Sha256, b"n,,n=user,r=abc", credential).unwrap_err();
        assert!(matches!(err, ScramError::InvalidCredential(_)), "{err:?}");
    }

    fn rfc_server() -> ScramServer {
        ScramServer::start_with_nonce(
            ScramMechanism::Sha256,
            format!("n,,n=user,r={RFC_CLIENT_NONCE}").as_bytes(),
            lookup_for("user", rfc_credential()),
            RFC_SERVER_NONCE,
        )
        .unwrap()
        .0
    }

    /// librdkafka before 2.1 repeats its client nonce in the final message; Kafka accepts that
    /// (the nonce must end with the combined one) and so does Strand.
    #[test]
    fn a_final_nonce_ending_with_the_combined_one_is_accepted() {
        let server = rfc_server();
        let without_proof =
            format!("c=biws,r={RFC_CLIENT_NONCE}{RFC_CLIENT_NONCE}{RFC_SERVER_NONCE}");
        let mechanism = ScramMechanism::Sha256;
        let salt = BASE64.decode(RFC_SALT).unwrap();
        let salted = ScramCredential::salted_password(mechanism, "pencil", &salt, 4096);
        let client_key = mechanism.hmac(&salted, b"Client Key");
        let auth_message = format!(
            "n=user,r={RFC_CLIENT_NONCE},r={RFC_CLIENT_NONCE}{RFC_SERVER_NONCE},s={RFC_SALT},i=4096,{without_proof}"
        );
        let signature = mechanism.hmac(&mechanism.hash(&client_key), auth_message.as_bytes());
        let proof = BASE64.encode(xor(&client_key, &signature));
        let (user, _) = server
            .finish(format!("{without_proof},p={proof}").as_bytes())
            .unwrap();
        assert_eq!(user, "user");
    }

    #[test]
    fn tampered_client_final() {
        let full_nonce = format!("{RFC_CLIENT_NONCE}{RFC_SERVER_NONCE}");
        let proof = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        let other_proof = BASE64.encode([7u8; 32]);
        let cases: Vec<(String, Check)> = vec![
            (format!("c=biws,r={full_nonce}X,p={proof}"), |e| {
                *e == ScramError::NonceMismatch
            }),
            (format!("c=biws,r={RFC_CLIENT_NONCE},p={proof}"), |e| {
                *e == ScramError::NonceMismatch
            }),
            (format!("c=eSws,r={full_nonce},p={proof}"), |e| {
                *e == ScramError::ChannelBindingMismatch
            }),
            (format!("c=biws,r={full_nonce},p={other_proof}"), |e| {
                *e == ScramError::BadProof
            }),
            (format!("c=biws,r={full_nonce},p=dHzb"), |e| {
                matches!(e, ScramError::Malformed(_))
            }),
            (format!("c=biws,r={full_nonce},p=!!!"), |e| {
                matches!(e, ScramError::Malformed(_))
            }),
            (format!("c=biws,r={full_nonce}"), |e| {
                matches!(e, ScramError::Malformed(_))
            }),
            (format!("r={full_nonce},p={proof}"), |e| {
                matches!(e, ScramError::Malformed(_))
            }),
            (format!("c=biws,p={proof}"), |e| {
                matches!(e, ScramError::Malformed(_))
            }),
            (format!("c=%%%,r={full_nonce},p={proof}"), |e| {
                matches!(e, ScramError::Malformed(_))
            }),
            ("x".repeat(10 * 1024), |e| {
                matches!(e, ScramError::MessageTooLong { .. })
            }),
        ];
        for (message, check) in cases {
            let err = rfc_server().finish(message.as_bytes()).unwrap_err();
            assert!(check(&err), "{message:.80}: {err:?}");
        }
        let err = rfc_server().finish(&[0xff, 0xfe]).unwrap_err();
        assert!(matches!(err, ScramError::Malformed(_)), "{err:?}");
    }

    #[test]
    fn malformed_client_first() {
        let cases: Vec<(Vec<u8>, Check)> = vec![
            (b"".to_vec(), |e| matches!(e, ScramError::Malformed(_))),
            (b"n,,".to_vec(), |e| matches!(e, ScramError::Malformed(_))),
            (b"n=user,r=abc".to_vec(), |e| {
                matches!(e, ScramError::Malformed(_))
            }),
            (b"x,,n=user,r=abc".to_vec(), |e| {
                matches!(e, ScramError::Malformed(_))
            }),
            (b"n,,n=user".to_vec(), |e| {
                matches!(e, ScramError::Malformed(_))
            }),
            (b"n,,r=abc".to_vec(), |e| {
                matches!(e, ScramError::Malformed(_))
            }),
            (b"n,,n=,r=abc".to_vec(), |e| {
                matches!(e, ScramError::Malformed(_))
            }),
            (b"n,,n=user,r=".to_vec(), |e| {
                matches!(e, ScramError::Malformed(_))
            }),
            (b"n,,n=us=er,r=abc".to_vec(), |e| {
                matches!(e, ScramError::Malformed(_))
            }),
            (b"n,,n=user=2,r=abc".to_vec(), |e| {
                matches!(e, ScramError::Malformed(_))
            }),
            (b"n,,n=user,r=a\x7fc".to_vec(), |e| {
                matches!(e, ScramError::Malformed(_))
            }),
            (b"n,,m=ext,n=user,r=abc".to_vec(), |e| {
                matches!(e, ScramError::Malformed(_))
            }),
            (b"n,x,n=user,r=abc".to_vec(), |e| {
                matches!(e, ScramError::Malformed(_))
            }),
            (b"n,,n=user,r=abc,junk".to_vec(), |e| {
                matches!(e, ScramError::Malformed(_))
            }),
            (b"n,,n=\xff,r=abc".to_vec(), |e| {
                matches!(e, ScramError::Malformed(_))
            }),
            (
                b"p=tls-unique,,n=user,r=abc".to_vec(),
                |e| matches!(e, ScramError::ChannelBindingUnsupported(b) if b == "tls-unique"),
            ),
            (b"n,,n=user,r=abc,tokenauth=true".to_vec(), |e| {
                *e == ScramError::TokenAuthUnsupported
            }),
            (
                b"n,,n=user,r=abc,foo=bar".to_vec(),
                |e| matches!(e, ScramError::UnsupportedExtension(n) if n == "foo"),
            ),
            (b"n,a=admin,n=user,r=abc".to_vec(), |e| {
                matches!(e, ScramError::AuthzidMismatch { .. })
            }),
            (
                format!("n,,n={},r=abc", "u".repeat(MAX_USERNAME_LEN + 1)).into_bytes(),
                |e| matches!(e, ScramError::UserNameTooLong { .. }),
            ),
            (vec![b'n'; 10 * 1024], |e| {
                matches!(e, ScramError::MessageTooLong { .. })
            }),
        ];
        for (message, check) in cases {
            let err = start(ScramMechanism::Sha256, &message, rfc_credential()).unwrap_err();
            assert!(
                check(&err),
                "{:.80}: {err:?}",
                String::from_utf8_lossy(&message)
            );
        }
    }

    #[test]
    fn client_first_variants_accepted() {
        let ok: &[&[u8]] = &[
            b"n,,n=user,r=abc",
            b"y,,n=user,r=abc",
            b"n,a=user,n=user,r=abc",
            b"n,,n=user,r=abc,tokenauth=false",
        ];
        for message in ok {
            let (server, server_first) = start(ScramMechanism::Sha256, message, rfc_credential())
                .unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(message)));
            assert_eq!(server.user(), "user");
            let text = String::from_utf8(server_first).unwrap();
            let nonce = text
                .strip_prefix("r=abc")
                .unwrap()
                .split(',')
                .next()
                .unwrap();
            assert!(nonce.len() >= 32, "{text}");
            assert!(!nonce.contains(','));
        }
    }

    #[test]
    fn saslname_escapes() {
        assert_eq!(decode_saslname("a=2Cb=3Dc").unwrap(), "a,b=c");
        assert_eq!(encode_saslname("a,b=c"), "a=2Cb=3Dc");
        assert!(decode_saslname("a=2c").is_err());
        assert!(decode_saslname("a=").is_err());
        let (server, _) = ScramServer::start(
            ScramMechanism::Sha256,
            b"n,a=a=2Cb=3Dc,n=a=2Cb=3Dc,r=abc",
            |u| (u == "a,b=c").then(rfc_credential),
        )
        .unwrap();
        assert_eq!(server.user(), "a,b=c");
    }

    #[test]
    fn credential_bounds() {
        let m = ScramMechanism::Sha256;
        assert!(matches!(
            ScramCredential::from_password(m, "pw", b"salt", 4095),
            Err(ScramError::IterationsOutOfRange {
                iterations: 4095,
                ..
            })
        ));
        assert!(ScramCredential::from_password(m, "pw", b"salt", MAX_ITERATIONS).is_ok());
        assert!(ScramCredential::from_password(m, "pw", b"salt", MAX_ITERATIONS + 1).is_err());
        assert_eq!(
            ScramCredential::from_password(m, "pw", b"", 4096),
            Err(ScramError::EmptySalt)
        );
        assert!(matches!(
            ScramCredential::from_salted_password(m, &[0u8; 64], b"salt", 4096),
            Err(ScramError::SaltedPasswordLength {
                len: 64,
                expected: 32,
                ..
            })
        ));
        let salted = ScramCredential::salted_password(m, "pw", b"salt", 4096);
        assert_eq!(
            ScramCredential::from_salted_password(m, &salted, b"salt", 4096).unwrap(),
            ScramCredential::from_password(m, "pw", b"salt", 4096).unwrap()
        );
    }

    #[test]
    fn verify_password_for_plain() {
        let credential = rfc_credential();
        assert!(credential.verify_password("pencil"));
        assert!(!credential.verify_password("pencil "));
        assert!(!credential.verify_password(""));
        let broken = ScramCredential {
            iterations: 0,
            ..credential
        };
        assert!(!broken.verify_password("pencil"));
    }

    #[test]
    fn credential_serde_uses_base64() {
        let credential = rfc_credential();
        let json = serde_json::to_value(&credential).unwrap();
        assert_eq!(json["mechanism"], "SCRAM-SHA-256");
        assert_eq!(json["salt"], RFC_SALT);
        assert_eq!(json["iterations"], 4096);
        assert!(json["stored_key"].is_string());
        let back: ScramCredential = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, credential);
        let mut bad = json;
        bad["salt"] = "not base64!".into();
        assert!(serde_json::from_value::<ScramCredential>(bad).is_err());
    }

    #[test]
    fn debug_redacts_keys() {
        let credential = rfc_credential();
        let shown = format!("{credential:?}");
        assert!(shown.contains("<redacted>"));
        assert!(!shown.contains(&BASE64.encode(&credential.stored_key)));
        let (client, _) = ScramClient::new(ScramMechanism::Sha256, "user", "hunter2");
        assert!(!format!("{client:?}").contains("hunter2"));
    }
}
