//! SASL/PLAIN (RFC 4616) as Kafka uses it: the client sends `authzid NUL authcid NUL passwd`.
//!
//! Strand checks the password against the user's stored SCRAM credential with
//! [`crate::ScramCredential::verify_password`], so PLAIN users need no separate password store.

/// The longest SASL/PLAIN token accepted, in bytes.
pub const MAX_PLAIN_TOKEN_LEN: usize = 4096;

/// The longest user name accepted, in bytes.
pub const MAX_PLAIN_USERNAME_LEN: usize = 1024;

/// Why a SASL/PLAIN token was refused. Messages never contain the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlainError {
    /// The token is longer than [`MAX_PLAIN_TOKEN_LEN`].
    #[error("SASL/PLAIN token is {len} bytes; the limit is {max} bytes")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The token does not have exactly three NUL-separated fields.
    #[error(
        "invalid SASL/PLAIN token: expected 3 NUL-separated fields (authzid, user, password), got {0}"
    )]
    WrongFieldCount(usize),
    /// A field is not valid UTF-8.
    #[error("invalid SASL/PLAIN token: the {0} is not valid UTF-8")]
    NotUtf8(&'static str),
    /// The user name is empty.
    #[error("SASL/PLAIN user name not specified")]
    EmptyUser,
    /// The password is empty.
    #[error("SASL/PLAIN password not specified")]
    EmptyPassword,
    /// The user name is longer than [`MAX_PLAIN_USERNAME_LEN`].
    #[error("SASL/PLAIN user name is {len} bytes; the limit is {max} bytes")]
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
}

fn utf8(field: &[u8], what: &'static str) -> Result<String, PlainError> {
    std::str::from_utf8(field)
        .map(str::to_owned)
        .map_err(|_| PlainError::NotUtf8(what))
}

/// Parses `authzid NUL authcid NUL passwd`; authzid must be empty or equal authcid. Returns
/// (user, password).
pub fn parse_plain(token: &[u8]) -> Result<(String, String), PlainError> {
    if token.len() > MAX_PLAIN_TOKEN_LEN {
        return Err(PlainError::TooLong {
            len: token.len(),
            max: MAX_PLAIN_TOKEN_LEN,
        });
    }
    let fields: Vec<&[u8]> = token.split(|b| *b == 0).collect();
    let [authzid, user, password] = fields.as_slice() else {
        return Err(PlainError::WrongFieldCount(fields.len()));
    };
    let authzid = utf8(authzid, "authorization id")?;
    let user = utf8(user, "user name")?;
    let password = utf8(password, "password")?;
    if user.is_empty() {
        return Err(PlainError::EmptyUser);
    }
    if user.len() > MAX_PLAIN_USERNAME_LEN {
        return Err(PlainError::UserNameTooLong {
            len: user.len(),
            max: MAX_PLAIN_USERNAME_LEN,
        });
    }
    if password.is_empty() {
        return Err(PlainError::EmptyPassword);
    }
    if !authzid.is_empty() && authzid != user {
        return Err(PlainError::AuthzidMismatch { authzid, user });
    }
    Ok((user, password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_tokens() {
        assert_eq!(
            parse_plain(b"\0alice\0secret"),
            Ok(("alice".into(), "secret".into()))
        );
        assert_eq!(
            parse_plain(b"alice\0alice\0secret"),
            Ok(("alice".into(), "secret".into()))
        );
        assert_eq!(
            parse_plain("\0j\u{f6}rg\0p\u{e4}ss w,rd".as_bytes()),
            Ok(("j\u{f6}rg".into(), "p\u{e4}ss w,rd".into()))
        );
    }

    #[test]
    fn rejects_bad_tokens() {
        let long_user = format!("\0{}\0pw", "u".repeat(MAX_PLAIN_USERNAME_LEN + 1));
        let cases: Vec<(Vec<u8>, PlainError)> = vec![
            (b"".to_vec(), PlainError::WrongFieldCount(1)),
            (b"alice".to_vec(), PlainError::WrongFieldCount(1)),
            (b"\0alice".to_vec(), PlainError::WrongFieldCount(2)),
            (
                b"\0alice\0pw\0extra".to_vec(),
                PlainError::WrongFieldCount(4),
            ),
            (b"\0\0secret".to_vec(), PlainError::EmptyUser),
            (b"\0alice\0".to_vec(), PlainError::EmptyPassword),
            (
                b"\0al\xffice\0pw".to_vec(),
                PlainError::NotUtf8("user name"),
            ),
            (b"\0alice\0p\xff".to_vec(), PlainError::NotUtf8("password")),
            (
                b"\xff\0alice\0pw".to_vec(),
                PlainError::NotUtf8("authorization id"),
            ),
            (
                b"admin\0alice\0pw".to_vec(),
                PlainError::AuthzidMismatch {
                    authzid: "admin".into(),
                    user: "alice".into(),
                },
            ),
            (
                long_user.into_bytes(),
                PlainError::UserNameTooLong {
                    len: MAX_PLAIN_USERNAME_LEN + 1,
                    max: MAX_PLAIN_USERNAME_LEN,
                },
            ),
            (
                vec![b'a'; 5000],
                PlainError::TooLong {
                    len: 5000,
                    max: MAX_PLAIN_TOKEN_LEN,
                },
            ),
        ];
        for (token, expected) in cases {
            assert_eq!(
                parse_plain(&token),
                Err(expected),
                "{}",
                String::from_utf8_lossy(&token)
            );
        }
    }

    #[test]
    fn errors_never_show_the_password() {
        let err = parse_plain(b"admin\0alice\0hunter2").unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn works_with_scram_credentials() {
        let credential = crate::ScramCredential::from_password(
            crate::ScramMechanism::Sha256,
            "secret",
            b"salt",
            4096,
        )
        .unwrap();
        let (_, password) = parse_plain(b"\0alice\0secret").unwrap();
        assert!(credential.verify_password(&password));
        let (_, password) = parse_plain(b"\0alice\0Secret").unwrap();
        assert!(!credential.verify_password(&password));
    }
}
