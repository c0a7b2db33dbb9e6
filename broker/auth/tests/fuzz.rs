//! Fuzz targets, run as tests with random inputs (`STRAND_FUZZ_ITERATIONS` of them, 20,000 by
//! default) and under libFuzzer by `cargo bolero test --package strand-auth --test fuzz
//! <name>`: what a client or a certificate sends the security core. None may panic.

use std::sync::OnceLock;

use strand_auth::{
    PrincipalMapper, ScramCredential, ScramMechanism, ScramServer, parse_plain, subject_name,
};

fn iterations() -> usize {
    std::env::var("STRAND_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// One credential for every input: deriving it is deliberately slow.
fn credential() -> &'static ScramCredential {
    static CREDENTIAL: OnceLock<ScramCredential> = OnceLock::new();
    CREDENTIAL.get_or_init(|| {
        ScramCredential::from_password(ScramMechanism::Sha256, "secret", b"salty", 4096).unwrap()
    })
}

/// Any client-first and client-final messages, for a user that exists: refused or answered.
#[test]
fn scram_exchanges_from_any_client_messages() {
    bolero::check!()
        .with_iterations(iterations())
        .with_type::<(Vec<u8>, Vec<u8>, bool)>()
        .for_each(|(first, last, well_formed_first)| {
            let mut client_first = first.clone();
            if *well_formed_first {
                // Far enough to reach the final step: a valid first message with a nonce.
                client_first = b"n,,n=alice,r=".to_vec();
                client_first.extend(first.iter().filter(|b| b.is_ascii_alphanumeric()));
                client_first.push(b'x');
            }
            if let Ok((server, _)) =
                ScramServer::start(ScramMechanism::Sha256, &client_first, |_| {
                    Some(credential().clone())
                })
            {
                let _ = server.finish(last);
            }
        });
}

#[test]
fn plain_tokens_from_any_bytes() {
    bolero::check!()
        .with_iterations(iterations())
        .for_each(|bytes: &[u8]| {
            let _ = parse_plain(bytes);
        });
}

/// Any `ssl.principal.mapping.rules`, applied to any subject.
#[test]
fn principal_mapping_rules_from_any_text() {
    bolero::check!()
        .with_iterations(iterations())
        .with_type::<(String, String)>()
        .for_each(|(rules, subject)| {
            if let Ok(mapper) = PrincipalMapper::parse(rules) {
                let _ = mapper.map(subject);
                let _ = mapper.map("CN=alice,OU=payments,O=Example");
            }
        });
}

#[test]
fn certificate_subjects_from_any_der() {
    bolero::check!()
        .with_iterations(iterations())
        .for_each(|bytes: &[u8]| {
            let _ = subject_name(bytes);
        });
}
