//! Principals from client certificates: the certificate subject as Kafka sees it (Java's
//! RFC 2253 form) and Kafka's `ssl.principal.mapping.rules` applied to it.

use regex::{Captures, Regex};
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::asn1_rs::{Any, Class, Tag, ToDer};
use x509_parser::prelude::FromDer;
use x509_parser::x509::AttributeTypeAndValue;

/// Why a principal could not be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    /// One entry of `ssl.principal.mapping.rules` cannot be parsed.
    #[error("invalid ssl.principal.mapping.rules entry `{rule}`: {reason}")]
    InvalidRule {
        /// The entry as written.
        rule: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `ssl.principal.mapping.rules` holds no rules, so no certificate could ever be accepted.
    #[error(
        "ssl.principal.mapping.rules has no rules; use DEFAULT to take the certificate subject as the user name"
    )]
    NoRules,
    /// No rule matched the subject name; the connection must be refused.
    #[error(
        "no ssl.principal.mapping.rules rule matches the certificate subject `{0}`; add a rule for it or end the rules with DEFAULT"
    )]
    NoMatchingRule(String),
    /// The certificate could not be read.
    #[error("cannot read the client certificate: {0}")]
    Certificate(String),
    /// The subject maps to an empty user name.
    #[error(
        "the client certificate subject `{0}` maps to an empty user name; give the certificate a subject or add a mapping rule"
    )]
    EmptyName(String),
}

/// How a rule changes the case of its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

/// One piece of a rule's replacement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Group(usize),
    Named(String),
}

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Replace {
        /// The pattern anchored at both ends, as Java's `Matcher.matches`.
        whole: Regex,
        /// The pattern itself, for replacing every match as Java's `String.replaceAll`.
        pattern: Regex,
        replacement: Vec<Piece>,
        case: Case,
    },
}

impl Rule {
    fn apply(&self, name: &str) -> Option<String> {
        let Rule::Replace {
            whole,
            pattern,
            replacement,
            case,
        } = self
        else {
            return Some(name.to_owned());
        };
        if !whole.is_match(name) {
            return None;
        }
        let replaced = pattern.replace_all(name, |caps: &Captures<'_>| expand(replacement, caps));
        Some(match case {
            Case::Keep => replaced.into_owned(),
            Case::Lower => replaced.to_lowercase(),
            Case::Upper => replaced.to_uppercase(),
        })
    }
}

fn expand(pieces: &[Piece], caps: &Captures<'_>) -> String {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Literal(text) => out.push_str(text),
            Piece::Group(i) => out.push_str(caps.get(*i).map_or("", |m| m.as_str())),
            Piece::Named(name) => out.push_str(caps.name(name).map_or("", |m| m.as_str())),
        }
    }
    out
}

/// Kafka's `ssl.principal.mapping.rules`: comma-separated `RULE:pattern/replacement/[LU]` and
/// `DEFAULT`, applied in order to the certificate subject's RFC 2253 name; the first rule whose
/// regex matches the whole name (anchored, as Java's Matcher.matches) gives `replacement` with
/// $1.. substituted, lower/upper-cased when /L or /U; DEFAULT gives the name unchanged; no rule
/// matching → error (Kafka then refuses the connection).
///
/// Patterns use Rust's `regex` syntax, which agrees with Java's for the usual rules (groups,
/// classes, `.*?`); backreferences and look-around are not supported. In a replacement, `$n`
/// and `${name}` insert groups, `\x` inserts `x`, and a `$n` beyond the pattern's groups is kept
/// as text, as in Kafka. Like Kafka's `String.replaceAll`, every match of the pattern in the
/// name is replaced.
#[derive(Debug, Clone)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
}

impl Default for PrincipalMapper {
    fn default() -> Self {
        Self::default_rules()
    }
}

/// Splits `s` at its first unescaped `/`: the text before it (escapes kept) and the text after.
fn until_slash(s: &str) -> Option<(&str, &str)> {
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next()?;
            }
            '/' => return Some((s.get(..i)?, s.get(i + 1..)?)),
            _ => {}
        }
    }
    None
}

/// Splits at the first comma: the text before it, and the text after it (empty at the end).
fn until_comma(s: &str) -> (&str, &str) {
    s.split_once(',').unwrap_or((s, ""))
}

fn invalid(rule: &str, reason: impl Into<String>) -> PrincipalError {
    PrincipalError::InvalidRule {
        rule: rule.trim().to_owned(),
        reason: reason.into(),
    }
}

/// Turns Kafka's escaped `\/` into `/` for the regex; other escapes are the regex's own.
fn unescape_pattern(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('/') => out.push('/'),
            Some(next) => {
                out.push('\\');
                out.push(next);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Parses a replacement as Java's `Matcher.replaceAll` reads it, after Kafka's escaping of
/// group numbers beyond the pattern's groups.
fn parse_replacement(rule: &str, raw: &str, pattern: &Regex) -> Result<Vec<Piece>, PrincipalError> {
    let groups = pattern.captures_len().saturating_sub(1);
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next) => literal.push(next),
                None => return Err(invalid(rule, "the replacement ends with a lone `\\`")),
            },
            '$' => {
                if chars.peek() == Some(&'{') {
                    chars.next();
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(ch) => name.push(ch),
                            None => {
                                return Err(invalid(
                                    rule,
                                    "`${` in the replacement is not closed with `}`",
                                ));
                            }
                        }
                    }
                    if !pattern.capture_names().any(|n| n == Some(name.as_str())) {
                        return Err(invalid(
                            rule,
                            format!(
                                "the replacement uses `${{{name}}}` but the pattern has no group named `{name}`"
                            ),
                        ));
                    }
                    pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    pieces.push(Piece::Named(name));
                    continue;
                }
                let mut digits = String::new();
                while let Some(d) = chars.next_if(char::is_ascii_digit) {
                    digits.push(d);
                }
                if digits.is_empty() {
                    return Err(invalid(
                        rule,
                        "`$` in the replacement must be followed by a group number or `{name}`; write `\\$` for a dollar sign",
                    ));
                }
                match digits.parse::<usize>() {
                    Ok(n) if n <= groups => {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                        pieces.push(Piece::Group(n));
                    }
                    _ => {
                        literal.push('$');
                        literal.push_str(&digits);
                    }
                }
            }
            _ => literal.push(c),
        }
    }
    pieces.push(Piece::Literal(literal));
    pieces.retain(|p| *p != Piece::Literal(String::new()));
    Ok(pieces)
}

fn build_rule(
    rule: &str,
    raw_pattern: &str,
    raw_replacement: &str,
    case: Case,
) -> Result<Rule, PrincipalError> {
    let source = unescape_pattern(raw_pattern);
    let pattern = Regex::new(&source).map_err(|e| {
        invalid(
            rule,
            format!("the pattern is not a valid regular expression: {e}"),
        )
    })?;
    // The pattern compiled on its own, so its parentheses balance and wrapping it is safe.
    let whole = Regex::new(&format!(r"\A(?:{source})\z")).map_err(|e| {
        invalid(
            rule,
            format!("the pattern is not a valid regular expression: {e}"),
        )
    })?;
    let replacement = parse_replacement(rule, raw_replacement, &pattern)?;
    Ok(Rule::Replace {
        whole,
        pattern,
        replacement,
        case,
    })
}

/// Parses one `RULE:pattern/replacement/[LU]` at the start of `rest` (which starts after
/// `RULE:`), returning the rule and the text after its comma; `None` when it lacks its slashes.
fn parse_replace_rule(rest: &str) -> Option<Result<(Rule, &str), PrincipalError>> {
    let (raw_pattern, after) = until_slash(rest)?;
    let (raw_replacement, after) = until_slash(after)?;
    let (case, after) = if let Some(a) = after.strip_prefix('L') {
        (Case::Lower, a)
    } else if let Some(a) = after.strip_prefix('U') {
        (Case::Upper, a)
    } else {
        (Case::Keep, after)
    };
    let (tail, next) = until_comma(after);
    let consumed = rest.len() - after.len() + tail.len();
    let text = format!("RULE:{}", rest.get(..consumed).unwrap_or(rest));
    if !tail.trim().is_empty() {
        return Some(Err(invalid(
            &text,
            format!(
                "unexpected `{}` after the rule; only L or U may follow the last `/`",
                tail.trim()
            ),
        )));
    }
    Some(build_rule(&text, raw_pattern, raw_replacement, case).map(|r| (r, next)))
}

impl PrincipalMapper {
    /// Parses `ssl.principal.mapping.rules`. Empty entries between commas are ignored, as in
    /// Kafka; a list with no rules at all is refused, since it would refuse every client.
    pub fn parse(rules: &str) -> Result<Self, PrincipalError> {
        let mut parsed = Vec::new();
        let mut rest = rules.trim();
        loop {
            rest = rest.trim_start();
            if rest.is_empty() {
                break;
            }
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                let after = after.trim_start();
                if after.is_empty() || after.starts_with(',') {
                    parsed.push(Rule::Default);
                    rest = after.strip_prefix(',').unwrap_or(after);
                    continue;
                }
            }
            if let Some(after) = rest.strip_prefix("RULE:")
                && let Some(result) = parse_replace_rule(after)
            {
                let (rule, next) = result?;
                parsed.push(rule);
                rest = next;
                continue;
            }
            let (text, next) = until_comma(rest);
            if !text.trim().is_empty() {
                return Err(invalid(
                    text,
                    "expected DEFAULT or RULE:pattern/replacement/ with an optional L or U after the last `/`",
                ));
            }
            rest = next;
        }
        if parsed.is_empty() {
            return Err(PrincipalError::NoRules);
        }
        Ok(PrincipalMapper { rules: parsed })
    }

    /// The mapper for `DEFAULT`: the subject name is the user name.
    pub fn default_rules() -> Self {
        PrincipalMapper {
            rules: vec![Rule::Default],
        }
    }

    /// The user name for a subject name: the first rule that matches decides.
    pub fn map(&self, distinguished_name: &str) -> Result<String, PrincipalError> {
        self.rules
            .iter()
            .find_map(|rule| rule.apply(distinguished_name))
            .ok_or_else(|| PrincipalError::NoMatchingRule(distinguished_name.to_owned()))
    }
}

/// Attribute types Java's `X500Principal.getName()` prints by keyword; others print as OIDs.
const KEYWORDS: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.9", "STREET"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
];

/// The text of a string value Java's RFC 2253 printing shows as a string, or `None` when it
/// prints the value as `#hex`.
fn string_value(value: &Any<'_>) -> Option<String> {
    if value.class() != Class::Universal || value.header.is_constructed() {
        return None;
    }
    let tag = value.tag();
    let data = value.data;
    if tag == Tag::Utf8String {
        Some(String::from_utf8_lossy(data).into_owned())
    } else if tag == Tag::PrintableString || tag == Tag::Ia5String || tag == Tag::GeneralString {
        Some(
            data.iter()
                .map(|&b| {
                    if b.is_ascii() {
                        char::from(b)
                    } else {
                        char::REPLACEMENT_CHARACTER
                    }
                })
                .collect(),
        )
    } else if tag == Tag::T61String {
        Some(data.iter().map(|&b| char::from(b)).collect())
    } else if tag == Tag::BmpString {
        let units = data.chunks(2).map(|pair| match pair {
            [hi, lo] => u16::from_be_bytes([*hi, *lo]),
            _ => 0xFFFD,
        });
        Some(
            char::decode_utf16(units)
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect(),
        )
    } else {
        None
    }
}

/// Escapes a value as Java's `AVA.toRFC2253String` does: `,=+<>#;"\` anywhere, NUL as `\00`,
/// and leading and trailing spaces (and carriage returns).
fn escape_value(value: &str) -> String {
    let mut escaped: Vec<char> = Vec::with_capacity(value.len());
    for c in value.chars() {
        if ",=+<>#;\"\\".contains(c) {
            escaped.push('\\');
            escaped.push(c);
        } else if c == '\0' {
            escaped.extend(['\\', '0', '0']);
        } else {
            escaped.push(c);
        }
    }
    let is_space = |c: &char| *c == ' ' || *c == '\r';
    let lead = escaped.iter().take_while(|c| is_space(c)).count();
    let trail_start = escaped.len() - escaped.iter().rev().take_while(|c| is_space(c)).count();
    let mut out = String::with_capacity(escaped.len() + 4);
    for (i, c) in escaped.iter().enumerate() {
        if i < lead || i >= trail_start {
            out.push('\\');
        }
        out.push(*c);
    }
    out
}

fn format_ava(ava: &AttributeTypeAndValue<'_>) -> Result<String, PrincipalError> {
    let oid = ava.attr_type().to_id_string();
    let keyword = KEYWORDS.iter().find(|(o, _)| *o == oid).map(|(_, k)| *k);
    let value = ava.attr_value();
    match (keyword, string_value(value)) {
        (Some(keyword), Some(text)) => Ok(format!("{keyword}={}", escape_value(&text))),
        (keyword, _) => {
            let der = value.to_der_vec().map_err(|e| {
                PrincipalError::Certificate(format!("cannot re-encode a subject attribute: {e}"))
            })?;
            let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
            Ok(format!("{}=#{hex}", keyword.unwrap_or(&oid)))
        }
    }
}

/// The RFC 2253 subject name of a DER certificate as Java's X500Principal.getName() prints it:
/// RDNs from the last in the certificate to the first, `CN=client,OU=apps,O=Example` (attribute
/// types CN, C, L, ST, O, OU, STREET, DC, UID by short name, others as dotted OID=#hex), values
/// escaped as Java does (`,` `=` `+` `<` `>` `#` `;` `"` `\` anywhere, leading and trailing
/// spaces).
pub fn subject_name(certificate_der: &[u8]) -> Result<String, PrincipalError> {
    let (rest, certificate) = X509Certificate::from_der(certificate_der)
        .map_err(|e| PrincipalError::Certificate(format!("not a DER X.509 certificate ({e})")))?;
    if !rest.is_empty() {
        return Err(PrincipalError::Certificate(format!(
            "{} unexpected bytes follow the DER certificate",
            rest.len()
        )));
    }
    let rdns: Vec<_> = certificate.subject().iter().collect();
    let mut parts = Vec::with_capacity(rdns.len());
    for rdn in rdns.into_iter().rev() {
        let avas = rdn.iter().map(format_ava).collect::<Result<Vec<_>, _>>()?;
        parts.push(avas.join("+"));
    }
    Ok(parts.join(","))
}

/// `User:` + the mapped name: the principal a client certificate authenticates as.
pub fn principal_of_certificate(
    certificate_der: &[u8],
    mapper: &PrincipalMapper,
) -> Result<String, PrincipalError> {
    let subject = subject_name(certificate_der)?;
    let name = mapper.map(&subject)?;
    if name.is_empty() {
        return Err(PrincipalError::EmptyName(subject));
    }
    Ok(format!("User:{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, DnValue, KeyPair};

    /// A self-signed certificate whose subject has `entries` in certificate order (the first
    /// is printed last).
    fn certificate(entries: Vec<(DnType, DnValue)>) -> Vec<u8> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        for (kind, value) in entries {
            dn.push(kind, value);
        }
        params.distinguished_name = dn;
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn alice() -> Vec<u8> {
        certificate(vec![
            (DnType::OrganizationName, "Example".into()),
            (DnType::OrganizationalUnitName, "apps".into()),
            (DnType::CommonName, "alice".into()),
        ])
    }

    #[test]
    fn subject_name_in_rfc2253_order() {
        assert_eq!(
            subject_name(&alice()).unwrap(),
            "CN=alice,OU=apps,O=Example"
        );
    }

    #[test]
    fn subject_name_types_and_escaping() {
        let der = certificate(vec![
            (
                DnType::CountryName,
                DnValue::PrintableString("US".try_into().unwrap()),
            ),
            (DnType::StateOrProvinceName, "CA".into()),
            (DnType::LocalityName, "San Jose".into()),
            (
                DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 25]),
                DnValue::Ia5String("example".try_into().unwrap()),
            ),
            (
                DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
                DnValue::Ia5String("a@b.c".try_into().unwrap()),
            ),
            (DnType::CommonName, " a,b+c=d#e\"f\\g<h>i;j ".into()),
        ]);
        assert_eq!(
            subject_name(&der).unwrap(),
            "CN=\\ a\\,b\\+c\\=d\\#e\\\"f\\\\g\\<h\\>i\\;j\\ ,\
             1.2.840.113549.1.9.1=#16056140622e63,DC=example,L=San Jose,ST=CA,C=US"
        );
    }

    #[test]
    fn escape_value_like_java() {
        assert_eq!(escape_value("plain"), "plain");
        assert_eq!(escape_value("#lead"), "\\#lead");
        assert_eq!(escape_value("  two  "), "\\ \\ two\\ \\ ");
        assert_eq!(escape_value("a\0b"), "a\\00b");
        assert_eq!(escape_value("j\u{f6}rg"), "j\u{f6}rg");
        assert_eq!(escape_value(""), "");
        assert_eq!(escape_value(" "), "\\ ");
    }

    #[test]
    fn bmp_and_t61_values() {
        let bmp = Any::from_tag_and_data(Tag::BmpString, &[0, b'h', 0, 0xe9]);
        assert_eq!(string_value(&bmp).as_deref(), Some("h\u{e9}"));
        let odd = Any::from_tag_and_data(Tag::BmpString, &[0, b'h', 0]);
        assert_eq!(string_value(&odd).as_deref(), Some("h\u{fffd}"));
        let t61 = Any::from_tag_and_data(Tag::T61String, &[b'x', 0xe9]);
        assert_eq!(string_value(&t61).as_deref(), Some("x\u{e9}"));
        let octets = Any::from_tag_and_data(Tag::OctetString, &[1]);
        assert_eq!(string_value(&octets), None);
    }

    #[test]
    fn default_rule_keeps_the_name() {
        let der = alice();
        assert_eq!(
            principal_of_certificate(&der, &PrincipalMapper::default_rules()).unwrap(),
            "User:CN=alice,OU=apps,O=Example"
        );
        let mapper = PrincipalMapper::parse("DEFAULT").unwrap();
        assert_eq!(mapper.map("CN=x").unwrap(), "CN=x");
    }

    #[test]
    fn rule_with_groups_and_lower_case() {
        let mapper = PrincipalMapper::parse("RULE:^CN=(.*?),OU=(.*?),.*$/$1@$2/L,DEFAULT").unwrap();
        let der = certificate(vec![
            (DnType::OrganizationName, "Example".into()),
            (DnType::OrganizationalUnitName, "Apps".into()),
            (DnType::CommonName, "Alice".into()),
        ]);
        assert_eq!(
            principal_of_certificate(&der, &mapper).unwrap(),
            "User:alice@apps"
        );
        // Not matching the first rule falls through to DEFAULT.
        assert_eq!(mapper.map("CN=bob,O=Example").unwrap(), "CN=bob,O=Example");
    }

    /// Kafka's own `SslPrincipalMapperTest` cases.
    #[test]
    fn kafka_rule_table() {
        let rules = [
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L",
            "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L",
            "RULE:^cn=(.*?),ou=(.*?),dc=(.*?),dc=(.*?)$/$1@$2/U",
            "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U",
            "DEFAULT",
        ]
        .join(", ");
        let mapper = PrincipalMapper::parse(&rules).unwrap();
        let cases = [
            ("CN=Duke,OU=ServiceUsers,O=Org,C=US", "duke"),
            ("CN=Duke,OU=SME,O=mycp,L=Fulton,ST=MD,C=US", "duke@sme"),
            ("cn=duke,ou=sme,dc=mycp,dc=com", "DUKE@SME"),
            ("cN=duke,OU=JavaSoft,O=Sun Microsystems", "DUKE"),
            (
                "OU=JavaSoft,O=Sun Microsystems,C=US",
                "OU=JavaSoft,O=Sun Microsystems,C=US",
            ),
        ];
        for (name, expected) in cases {
            assert_eq!(mapper.map(name).unwrap(), expected, "{name}");
        }
    }

    #[test]
    fn upper_case_rule() {
        let mapper = PrincipalMapper::parse("RULE:^CN=([^,]*).*$/$1/U").unwrap();
        assert_eq!(mapper.map("CN=alice,OU=apps,O=Example").unwrap(), "ALICE");
        let der = alice();
        assert_eq!(
            principal_of_certificate(&der, &mapper).unwrap(),
            "User:ALICE"
        );
    }

    #[test]
    fn no_matching_rule_is_an_error() {
        let mapper = PrincipalMapper::parse("RULE:^CN=(.*),OU=ops.*$/$1/").unwrap();
        let err = principal_of_certificate(&alice(), &mapper).unwrap_err();
        assert_eq!(
            err,
            PrincipalError::NoMatchingRule("CN=alice,OU=apps,O=Example".into())
        );
        assert!(err.to_string().contains("DEFAULT"));
    }

    #[test]
    fn rule_syntax() {
        // Commas inside patterns and replacements, escaped slashes, spaces and empty entries.
        let mapper = PrincipalMapper::parse(
            "  RULE:^CN=([^,]*),O=(.*)$/$2\\/$1,x/ , , RULE:^UID=(.*)$/u\\$$1/ ,DEFAULT ",
        )
        .unwrap();
        assert_eq!(mapper.map("CN=a,O=b").unwrap(), "b/a,x");
        assert_eq!(mapper.map("UID=7").unwrap(), "u$7");
        assert_eq!(mapper.map("O=z").unwrap(), "O=z");
        let escaped_slash = PrincipalMapper::parse("RULE:^CN=a\\/b$/ab/").unwrap();
        assert_eq!(escaped_slash.map("CN=a/b").unwrap(), "ab");
        // A group number beyond the pattern's groups stays text, as in Kafka.
        let literal_ref = PrincipalMapper::parse("RULE:^CN=(.*)$/$1-$2/").unwrap();
        assert_eq!(literal_ref.map("CN=a").unwrap(), "a-$2");
        let named = PrincipalMapper::parse("RULE:^CN=(?<who>[a-z]+)$/${who}!/").unwrap();
        assert_eq!(named.map("CN=bob").unwrap(), "bob!");
        // Every match is replaced, as Java's String.replaceAll does.
        let lazy = PrincipalMapper::parse("RULE:CN=(.*?)/[$1]/").unwrap();
        assert_eq!(lazy.map("CN=a").unwrap(), "[]a");
    }

    #[test]
    fn malformed_rules_are_errors() {
        let cases = [
            "",
            " , ",
            "garbage",
            "DEFAULTX",
            "DEFAULT x",
            "RULE:^CN=(.*)$",
            "RULE:^CN=(.*)$/$1",
            "RULE:^CN=(.*)$/$1/X",
            "RULE:^CN=(.*)$/$1/Lx,DEFAULT",
            "RULE:^CN=((.*)$/$1/",
            "RULE:^CN=(.*)$/$/",
            "RULE:^CN=(.*)$/${nope}/",
            "RULE:^CN=(.*)$/${1/",
            "RULE:^CN=(.*)$/a\\/",
            "DEFAULT,RULE:x",
        ];
        for rules in cases {
            let err = PrincipalMapper::parse(rules).unwrap_err();
            assert!(
                matches!(
                    err,
                    PrincipalError::InvalidRule { .. } | PrincipalError::NoRules
                ),
                "{rules}: {err:?}"
            );
        }
        let err = PrincipalMapper::parse("DEFAULT,bogus").unwrap_err();
        assert!(err.to_string().contains("`bogus`"), "{err}");
    }

    #[test]
    fn garbage_der_is_an_error() {
        let mapper = PrincipalMapper::default_rules();
        let mut truncated = alice();
        truncated.truncate(truncated.len() / 2);
        let mut trailing = alice();
        trailing.push(0);
        for der in [
            vec![],
            vec![0x30],
            b"not a certificate".to_vec(),
            vec![0xff; 300],
            truncated,
            trailing,
        ] {
            assert!(
                matches!(
                    principal_of_certificate(&der, &mapper),
                    Err(PrincipalError::Certificate(_))
                ),
                "{der:?}"
            );
        }
    }

    #[test]
    fn empty_mapped_name_is_an_error() {
        let mapper = PrincipalMapper::parse("RULE:^CN=.*$//").unwrap();
        assert!(matches!(
            principal_of_certificate(&alice(), &PrincipalMapper::parse("RULE:^(.*)$//").unwrap()),
            Err(PrincipalError::EmptyName(_))
        ));
        assert_eq!(mapper.map("CN=a").unwrap(), "");
    }
}
