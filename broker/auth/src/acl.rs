//! Kafka's ACL model and the authorizer that decides requests against it.
//!
//! The types mirror Kafka's `AclBinding`, `AclBindingFilter` and their parts, with the wire codes
//! used by CreateAcls, DescribeAcls and DeleteAcls. [`authorize`] decides one action the way
//! Kafka's `StandardAuthorizer` does, and [`authorize_any`] answers Kafka's
//! `authorizeByResourceType` question.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The only resource name a `Cluster` ACL may have, as in Kafka.
pub const CLUSTER_RESOURCE: &str = "kafka-cluster";

/// The resource name or host that stands for every resource or host.
pub const WILDCARD: &str = "*";

/// The principal that stands for every user.
pub const WILDCARD_PRINCIPAL: &str = "User:*";

/// The longest principal, host or resource name an ACL may carry, in bytes.
pub const MAX_ACL_STRING_LEN: usize = 1024;

/// Why an ACL, a filter or one of their parts was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    /// A name such as `Topic` or `Read` was not recognised.
    #[error("unknown {kind} `{value}`; expected one of: {expected}")]
    UnknownName {
        /// What was being parsed, e.g. "resource type".
        kind: &'static str,
        /// The text that was given.
        value: String,
        /// The accepted names.
        expected: String,
    },
    /// A wire code was not recognised, or stands for a filter-only value such as ANY.
    #[error("{kind} code {code} is not valid here; expected one of: {expected}")]
    UnknownCode {
        /// What was being decoded, e.g. "operation".
        kind: &'static str,
        /// The code that was given.
        code: i8,
        /// The accepted codes.
        expected: &'static str,
    },
    /// The principal is not of the form `Type:name`.
    #[error("principal `{0}` is not valid: write it as `Type:name`, e.g. `User:alice` or `User:*`")]
    InvalidPrincipal(String),
    /// The resource name is empty.
    #[error("the resource name is empty: name a resource, or use `*` for every resource")]
    EmptyResourceName,
    /// A `Cluster` ACL named something other than `kafka-cluster`, or used a prefixed pattern.
    #[error(
        "cluster ACLs must use the literal resource name `kafka-cluster`, not {pattern_type} `{name}`"
    )]
    InvalidClusterResource {
        /// The resource name that was given.
        name: String,
        /// The pattern type that was given.
        pattern_type: PatternType,
    },
    /// The wildcard resource name `*` was used with a prefixed pattern.
    #[error(
        "the wildcard resource name `*` cannot be prefixed: use a literal `*` to match every resource"
    )]
    PrefixedWildcard,
    /// The host is empty.
    #[error("the host is empty: give an IP address, or `*` for every host")]
    EmptyHost,
    /// A string is longer than [`MAX_ACL_STRING_LEN`].
    #[error("the ACL {field} is {len} bytes long; the limit is {max} bytes")]
    TooLong {
        /// Which field is too long.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
}

/// Removes `_`, `-` and spaces and lower-cases, so `TRANSACTIONAL_ID` and `TransactionalId` compare
/// equal.
fn normalize(s: &str) -> String {
    s.trim()
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Defines a Kafka enum with wire codes, Kafka's display names and case-insensitive parsing.
macro_rules! kafka_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $kind:literal, any_code = $any:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $code:literal, $display:literal; )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in wire-code order.
            pub const ALL_VALUES: &'static [$name] = &[$($name::$variant),+];

            /// Kafka's wire code.
            pub fn code(self) -> i8 {
                match self {
                    $( $name::$variant => $code, )+
                }
            }

            /// The value for a Kafka wire code; `None` for unknown codes and for ANY, which only
            /// filters use.
            pub fn from_code(code: i8) -> Option<Self> {
                match code {
                    $( $code => Some($name::$variant), )+
                    _ => None,
                }
            }

            /// Decodes a filter's wire code: ANY gives `Ok(None)`, a concrete value `Ok(Some(_))`.
            pub fn from_filter_code(code: i8) -> Result<Option<Self>, AclError> {
                if code == $any {
                    return Ok(None);
                }
                Self::from_code(code).map(Some).ok_or(AclError::UnknownCode {
                    kind: $kind,
                    code,
                    expected: concat!("ANY (", stringify!($any), ")" $(, ", ", $display, " (", stringify!($code), ")")+),
                })
            }

            /// The wire code for a filter value, where `None` is ANY.
            pub fn filter_code(value: Option<Self>) -> i8 {
                value.map_or($any, Self::code)
            }

            /// Parses a filter value: `Any` (in any case) gives `Ok(None)`.
            pub fn parse_filter(s: &str) -> Result<Option<Self>, AclError> {
                if normalize(s) == "any" {
                    return Ok(None);
                }
                s.parse().map(Some)
            }

            /// Kafka's name for this value, as the `kafka-acls` tool prints it.
            pub fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $display, )+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $name {
            type Err = AclError;

            /// Parses Kafka's name case-insensitively, ignoring `_` (so `TRANSACTIONAL_ID` works).
            fn from_str(s: &str) -> Result<Self, AclError> {
                let wanted = normalize(s);
                Self::ALL_VALUES
                    .iter()
                    .copied()
                    .find(|v| normalize(v.name()) == wanted)
                    .ok_or_else(|| AclError::UnknownName {
                        kind: $kind,
                        value: s.to_owned(),
                        expected: Self::ALL_VALUES
                            .iter()
                            .map(|v| v.name())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
            }
        }
    };
}

kafka_enum! {
    /// The kind of resource an ACL protects.
    ResourceType, "resource type", any_code = 1 {
        /// A topic.
        Topic = 2, "Topic";
        /// A consumer group.
        Group = 3, "Group";
        /// The cluster itself (always named `kafka-cluster`).
        Cluster = 4, "Cluster";
        /// A transactional producer id.
        TransactionalId = 5, "TransactionalId";
        /// A delegation token.
        DelegationToken = 6, "DelegationToken";
        /// A user, for creating tokens on someone's behalf.
        User = 7, "User";
    }
}

kafka_enum! {
    /// How an ACL's resource name is matched.
    PatternType, "pattern type", any_code = 1 {
        /// The name is matched exactly (or is `*`, matching every name).
        Literal = 3, "Literal";
        /// The name is a prefix of the resources it matches.
        Prefixed = 4, "Prefixed";
    }
}

kafka_enum! {
    /// An operation a request performs on a resource.
    Operation, "operation", any_code = 1 {
        /// Every operation.
        All = 2, "All";
        /// Read, e.g. fetch or join a group.
        Read = 3, "Read";
        /// Write, e.g. produce.
        Write = 4, "Write";
        /// Create.
        Create = 5, "Create";
        /// Delete.
        Delete = 6, "Delete";
        /// Alter.
        Alter = 7, "Alter";
        /// Describe.
        Describe = 8, "Describe";
        /// Inter-broker cluster actions.
        ClusterAction = 9, "ClusterAction";
        /// Describe configurations.
        DescribeConfigs = 10, "DescribeConfigs";
        /// Alter configurations.
        AlterConfigs = 11, "AlterConfigs";
        /// Idempotent produce.
        IdempotentWrite = 12, "IdempotentWrite";
        /// Create delegation tokens.
        CreateTokens = 13, "CreateTokens";
        /// Describe delegation tokens.
        DescribeTokens = 14, "DescribeTokens";
    }
}

kafka_enum! {
    /// Whether an ACL grants or refuses.
    Permission, "permission", any_code = 1 {
        /// Refuses; wins over any ALLOW.
        Deny = 2, "Deny";
        /// Grants.
        Allow = 3, "Allow";
    }
}

impl Operation {
    /// Whether an ALLOW for `self` also allows `wanted`: the same operation, `All`, or one of
    /// Kafka's implications (Read, Write, Delete and Alter imply Describe; AlterConfigs implies
    /// DescribeConfigs).
    pub fn allow_implies(self, wanted: Operation) -> bool {
        use Operation::*;
        self == wanted
            || self == All
            || (wanted == Describe && matches!(self, Read | Write | Delete | Alter))
            || (wanted == DescribeConfigs && self == AlterConfigs)
    }

    /// Whether a DENY for `self` refuses `wanted`: only the same operation or `All` (a DENY
    /// ignores implications, as in Kafka).
    pub fn deny_covers(self, wanted: Operation) -> bool {
        self == wanted || self == Operation::All
    }
}

/// One ACL: principal `User:alice` (or `User:*`), host (`*` for any), operation, permission on a
/// resource pattern.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    /// The kind of resource.
    pub resource_type: ResourceType,
    /// The resource name, prefix, or `*`.
    pub resource_name: String,
    /// How `resource_name` is matched.
    pub pattern_type: PatternType,
    /// The principal, `Type:name`; `User:*` for every user.
    pub principal: String,
    /// The client host, or `*` for every host.
    pub host: String,
    /// The operation.
    pub operation: Operation,
    /// Allow or deny.
    pub permission: Permission,
}

fn check_len(field: &'static str, value: &str) -> Result<(), AclError> {
    if value.len() > MAX_ACL_STRING_LEN {
        return Err(AclError::TooLong {
            field,
            len: value.len(),
            max: MAX_ACL_STRING_LEN,
        });
    }
    Ok(())
}

/// Checks that `principal` is `Type:name` with a non-empty type and name, as Kafka's
/// `SecurityUtils.parseKafkaPrincipal` requires.
pub fn validate_principal(principal: &str) -> Result<(), AclError> {
    match principal.split_once(':') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(()),
        _ => Err(AclError::InvalidPrincipal(principal.to_owned())),
    }
}

impl AclBinding {
    /// Kafka's checks before an ACL is stored: lengths, a `Type:name` principal, a non-empty
    /// resource name and host, `kafka-cluster` as the only (literal) cluster name, and no
    /// prefixed wildcard.
    pub fn validate(&self) -> Result<(), AclError> {
        check_len("principal", &self.principal)?;
        check_len("host", &self.host)?;
        check_len("resource name", &self.resource_name)?;
        validate_principal(&self.principal)?;
        if self.resource_name.is_empty() {
            return Err(AclError::EmptyResourceName);
        }
        if self.host.is_empty() {
            return Err(AclError::EmptyHost);
        }
        if self.resource_type == ResourceType::Cluster
            && (self.resource_name != CLUSTER_RESOURCE || self.pattern_type != PatternType::Literal)
        {
            return Err(AclError::InvalidClusterResource {
                name: self.resource_name.clone(),
                pattern_type: self.pattern_type,
            });
        }
        if self.pattern_type == PatternType::Prefixed && self.resource_name == WILDCARD {
            return Err(AclError::PrefixedWildcard);
        }
        Ok(())
    }

    /// Whether this ACL's resource pattern covers the resource `name` of type `resource_type`:
    /// a literal equal name, the literal `*`, or a prefix of `name`.
    pub fn matches_resource(&self, resource_type: ResourceType, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                PatternType::Literal => {
                    self.resource_name == name || self.resource_name == WILDCARD
                }
                PatternType::Prefixed => name.starts_with(self.resource_name.as_str()),
            }
    }

    /// Whether this ACL is for `principal` (exactly, or through `User:*`) connecting from `host`
    /// (exactly, or through `*`).
    pub fn matches_principal_and_host(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == WILDCARD_PRINCIPAL)
            && (self.host == host || self.host == WILDCARD)
    }
}

/// How a filter matches resource patterns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PatternFilter {
    /// Patterns of any type; with a name, only patterns with exactly that name.
    #[default]
    Any,
    /// With a name, every pattern that applies to a resource of that name: the literal name,
    /// the literal `*`, and prefixes of the name.
    Match,
    /// Literal patterns only.
    Literal,
    /// Prefixed patterns only.
    Prefixed,
}

impl PatternFilter {
    /// The filter for a Kafka pattern-type wire code: 1 Any, 2 Match, 3 Literal, 4 Prefixed.
    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            1 => Some(PatternFilter::Any),
            2 => Some(PatternFilter::Match),
            3 => Some(PatternFilter::Literal),
            4 => Some(PatternFilter::Prefixed),
            _ => None,
        }
    }

    /// Kafka's wire code.
    pub fn code(self) -> i8 {
        match self {
            PatternFilter::Any => 1,
            PatternFilter::Match => 2,
            PatternFilter::Literal => 3,
            PatternFilter::Prefixed => 4,
        }
    }

    fn exact(self) -> Option<PatternType> {
        match self {
            PatternFilter::Literal => Some(PatternType::Literal),
            PatternFilter::Prefixed => Some(PatternType::Prefixed),
            PatternFilter::Any | PatternFilter::Match => None,
        }
    }
}

impl From<PatternType> for PatternFilter {
    fn from(p: PatternType) -> Self {
        match p {
            PatternType::Literal => PatternFilter::Literal,
            PatternType::Prefixed => PatternFilter::Prefixed,
        }
    }
}

impl fmt::Display for PatternFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PatternFilter::Any => "Any",
            PatternFilter::Match => "Match",
            PatternFilter::Literal => "Literal",
            PatternFilter::Prefixed => "Prefixed",
        })
    }
}

impl FromStr for PatternFilter {
    type Err = AclError;

    fn from_str(s: &str) -> Result<Self, AclError> {
        match normalize(s).as_str() {
            "any" => Ok(PatternFilter::Any),
            "match" => Ok(PatternFilter::Match),
            "literal" => Ok(PatternFilter::Literal),
            "prefixed" => Ok(PatternFilter::Prefixed),
            _ => Err(AclError::UnknownName {
                kind: "pattern type filter",
                value: s.to_owned(),
                expected: "Any, Match, Literal, Prefixed".to_owned(),
            }),
        }
    }
}

/// A DescribeAcls/DeleteAcls filter: None = ANY.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclFilter {
    /// The resource type, or any.
    pub resource_type: Option<ResourceType>,
    /// The resource name, or any.
    pub resource_name: Option<String>,
    /// How patterns are matched against `resource_name`.
    pub pattern: PatternFilter,
    /// The exact principal, or any.
    pub principal: Option<String>,
    /// The exact host, or any.
    pub host: Option<String>,
    /// The operation, or any.
    pub operation: Option<Operation>,
    /// The permission, or any.
    pub permission: Option<Permission>,
}

impl AclFilter {
    /// The filter that matches exactly one binding (as DeleteAcls uses to remove it).
    pub fn exact(acl: &AclBinding) -> Self {
        AclFilter {
            resource_type: Some(acl.resource_type),
            resource_name: Some(acl.resource_name.clone()),
            pattern: acl.pattern_type.into(),
            principal: Some(acl.principal.clone()),
            host: Some(acl.host.clone()),
            operation: Some(acl.operation),
            permission: Some(acl.permission),
        }
    }

    /// Whether `acl` matches, with the semantics of Kafka's `ResourcePatternFilter` and
    /// `AccessControlEntryFilter`.
    pub fn matches(&self, acl: &AclBinding) -> bool {
        self.matches_pattern(acl)
            && self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && self.operation.is_none_or(|o| o == acl.operation)
            && self.permission.is_none_or(|p| p == acl.permission)
    }

    fn matches_pattern(&self, acl: &AclBinding) -> bool {
        if self.resource_type.is_some_and(|t| t != acl.resource_type) {
            return false;
        }
        if self.pattern.exact().is_some_and(|p| p != acl.pattern_type) {
            return false;
        }
        let Some(name) = &self.resource_name else {
            return true;
        };
        if self.pattern != PatternFilter::Match {
            return *name == acl.resource_name;
        }
        match acl.pattern_type {
            PatternType::Literal => *name == acl.resource_name || acl.resource_name == WILDCARD,
            PatternType::Prefixed => name.starts_with(acl.resource_name.as_str()),
        }
    }
}

/// How authorization is decided besides the ACLs.
#[derive(Debug, Clone, Default)]
pub struct AuthorizerSettings {
    /// Principals (`User:admin`) that are allowed everything, whatever the ACLs say.
    pub super_users: BTreeSet<String>,
    /// Whether a resource that no ACL's pattern matches is open to everyone (Kafka's
    /// `allow.everyone.if.no.acl.found`).
    pub allow_if_no_acls: bool,
}

/// Decides a request the way Kafka's StandardAuthorizer does.
///
/// Super users are always allowed. Otherwise, of the ACLs whose pattern covers the resource and
/// that are for this principal (or `User:*`) and host (or `*`): a DENY for the operation or `All`
/// refuses; else an ALLOW for the operation, `All`, or an operation implying it (see
/// [`Operation::allow_implies`]) allows. When no ACL of any principal covers the resource,
/// `allow_if_no_acls` decides. Everything else is refused.
pub fn authorize<'a>(
    acls: impl IntoIterator<Item = &'a AclBinding> + Copy,
    settings: &AuthorizerSettings,
    principal: &str,
    host: &str,
    operation: Operation,
    resource_type: ResourceType,
    resource_name: &str,
) -> bool {
    if settings.super_users.contains(principal) {
        return true;
    }
    let mut found_resource_acls = false;
    let mut allowed = false;
    for acl in acls
        .into_iter()
        .filter(|a| a.matches_resource(resource_type, resource_name))
    {
        found_resource_acls = true;
        if !acl.matches_principal_and_host(principal, host) {
            continue;
        }
        match acl.permission {
            Permission::Deny if acl.operation.deny_covers(operation) => return false,
            Permission::Deny => {}
            Permission::Allow => allowed |= acl.operation.allow_implies(operation),
        }
    }
    allowed || (!found_resource_acls && settings.allow_if_no_acls)
}

/// Whether the principal may do `operation` on some resource of `resource_type`: Kafka's
/// `authorizeByResourceType`, which the broker uses to allow idempotent produce.
///
/// This follows Kafka's default implementation:
/// 1. allowed if [`authorize`] allows the operation on a literal resource named `hardcode`
///    (this lets super users through, and `allow_if_no_acls` when no ACL covers that name);
/// 2. of the ACLs of this type for this principal (or `User:*`) and host (or `*`) whose
///    operation is `operation` or `All` (implications are not considered): a literal `*` DENY
///    refuses; a literal `*` ALLOW allows;
/// 3. else allowed if some literal ALLOW name is not denied by a literal DENY of the same name
///    nor by a prefixed DENY that is a prefix of it, or some prefixed ALLOW is not covered by a
///    prefixed DENY that is a prefix of it;
/// 4. else refused.
pub fn authorize_any<'a>(
    acls: impl IntoIterator<Item = &'a AclBinding> + Copy,
    settings: &AuthorizerSettings,
    principal: &str,
    host: &str,
    operation: Operation,
    resource_type: ResourceType,
) -> bool {
    if authorize(
        acls,
        settings,
        principal,
        host,
        operation,
        resource_type,
        "hardcode",
    ) {
        return true;
    }
    let mut deny_literal = BTreeSet::new();
    let mut deny_prefixed = BTreeSet::new();
    let mut allow_literal = BTreeSet::new();
    let mut allow_prefixed = BTreeSet::new();
    let mut wildcard_allow = false;
    for acl in acls.into_iter().filter(|a| {
        a.resource_type == resource_type
            && a.matches_principal_and_host(principal, host)
            && a.operation.deny_covers(operation)
    }) {
        let name = acl.resource_name.as_str();
        match (acl.permission, acl.pattern_type) {
            (Permission::Deny, PatternType::Literal) if name == WILDCARD => return false,
            (Permission::Deny, PatternType::Literal) => {
                deny_literal.insert(name);
            }
            (Permission::Deny, PatternType::Prefixed) => {
                deny_prefixed.insert(name);
            }
            (Permission::Allow, PatternType::Literal) if name == WILDCARD => wildcard_allow = true,
            (Permission::Allow, PatternType::Literal) => {
                allow_literal.insert(name);
            }
            (Permission::Allow, PatternType::Prefixed) => {
                allow_prefixed.insert(name);
            }
        }
    }
    if wildcard_allow {
        return true;
    }
    let denied_by_prefix = |name: &str| {
        name.char_indices()
            .map(|(i, c)| i + c.len_utf8())
            .any(|end| name.get(..end).is_some_and(|p| deny_prefixed.contains(p)))
    };
    allow_literal
        .iter()
        .any(|name| !deny_literal.contains(name) && !denied_by_prefix(name))
        || allow_prefixed.iter().any(|name| !denied_by_prefix(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        resource_type: ResourceType,
        name: &str,
        pattern_type: PatternType,
        principal: &str,
        host: &str,
        operation: Operation,
        permission: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type,
            resource_name: name.to_owned(),
            pattern_type,
            principal: principal.to_owned(),
            host: host.to_owned(),
            operation,
            permission,
        }
    }

    fn topic(
        name: &str,
        pattern: PatternType,
        principal: &str,
        op: Operation,
        perm: Permission,
    ) -> AclBinding {
        acl(ResourceType::Topic, name, pattern, principal, "*", op, perm)
    }

    use Operation::*;
    use PatternType::{Literal, Prefixed};
    use Permission::{Allow, Deny};

    #[test]
    fn codes_round_trip_and_match_kafka() {
        let expected_resource = [
            (ResourceType::Topic, 2),
            (ResourceType::Group, 3),
            (ResourceType::Cluster, 4),
            (ResourceType::TransactionalId, 5),
            (ResourceType::DelegationToken, 6),
            (ResourceType::User, 7),
        ];
        for (t, c) in expected_resource {
            assert_eq!(t.code(), c);
            assert_eq!(ResourceType::from_code(c), Some(t));
        }
        for c in [-1, 0, 1, 8, i8::MAX, i8::MIN] {
            assert_eq!(ResourceType::from_code(c), None);
        }
        assert_eq!(ResourceType::from_filter_code(1), Ok(None));
        assert!(ResourceType::from_filter_code(0).is_err());
        assert_eq!(ResourceType::filter_code(None), 1);
        assert_eq!(PatternType::Literal.code(), 3);
        assert_eq!(PatternType::Prefixed.code(), 4);
        assert_eq!(PatternType::from_code(2), None);
        for (i, op) in Operation::ALL_VALUES.iter().enumerate() {
            assert_eq!(i8::try_from(i).ok().map(|i| i + 2), Some(op.code()));
            assert_eq!(Operation::from_code(op.code()), Some(*op));
        }
        assert_eq!(Operation::DescribeTokens.code(), 14);
        assert_eq!(Operation::from_code(1), None);
        assert_eq!(Operation::from_filter_code(1), Ok(None));
        assert_eq!(Permission::Deny.code(), 2);
        assert_eq!(Permission::Allow.code(), 3);
        assert_eq!(Permission::from_code(1), None);
        for c in 1..=4 {
            assert_eq!(
                PatternFilter::from_code(c).map(PatternFilter::code),
                Some(c)
            );
        }
        assert_eq!(PatternFilter::from_code(0), None);
        assert_eq!(PatternFilter::from_code(5), None);
    }

    #[test]
    fn names_display_and_parse() {
        assert_eq!(ResourceType::TransactionalId.to_string(), "TransactionalId");
        assert_eq!(PatternType::Prefixed.to_string(), "Prefixed");
        assert_eq!(Operation::DescribeConfigs.to_string(), "DescribeConfigs");
        assert_eq!(Permission::Allow.to_string(), "Allow");
        for op in Operation::ALL_VALUES {
            assert_eq!(op.to_string().parse::<Operation>(), Ok(*op));
        }
        for t in ResourceType::ALL_VALUES {
            assert_eq!(t.to_string().to_uppercase().parse::<ResourceType>(), Ok(*t));
        }
        assert_eq!(
            "TRANSACTIONAL_ID".parse(),
            Ok(ResourceType::TransactionalId)
        );
        assert_eq!("describe_configs".parse(), Ok(Operation::DescribeConfigs));
        assert_eq!("ALL".parse(), Ok(Operation::All));
        assert_eq!("allow".parse(), Ok(Permission::Allow));
        assert_eq!("LITERAL".parse(), Ok(PatternType::Literal));
        assert_eq!(Operation::parse_filter("ANY"), Ok(None));
        assert_eq!(ResourceType::parse_filter("Any"), Ok(None));
        assert_eq!(
            ResourceType::parse_filter("topic"),
            Ok(Some(ResourceType::Topic))
        );
        assert_eq!("MATCH".parse(), Ok(PatternFilter::Match));
        let err = "Reed".parse::<Operation>().unwrap_err();
        assert!(
            err.to_string().contains("unknown operation `Reed`"),
            "{err}"
        );
        assert!(err.to_string().contains("DescribeConfigs"), "{err}");
        assert!("Any".parse::<Operation>().is_err());
    }

    #[test]
    fn serde_uses_snake_case() {
        let a = topic("orders", Prefixed, "User:alice", DescribeConfigs, Allow);
        let json = serde_json::to_string(&a).unwrap();
        assert!(json.contains("\"describe_configs\""), "{json}");
        assert!(json.contains("\"prefixed\""), "{json}");
        assert_eq!(serde_json::from_str::<AclBinding>(&json).unwrap(), a);
    }

    #[test]
    fn validate_table() {
        let good = topic("orders", Literal, "User:alice", Read, Allow);
        assert_eq!(good.validate(), Ok(()));
        let cases: Vec<(AclBinding, bool)> = vec![
            (good.clone(), true),
            (topic("*", Literal, "User:*", Read, Allow), true),
            (topic("ord", Prefixed, "User:alice", Read, Allow), true),
            (topic("*", Prefixed, "User:alice", Read, Allow), false),
            (topic("", Literal, "User:alice", Read, Allow), false),
            (topic("orders", Literal, "alice", Read, Allow), false),
            (topic("orders", Literal, "User:", Read, Allow), false),
            (topic("orders", Literal, ":alice", Read, Allow), false),
            (topic("orders", Literal, "Group:x:y", Read, Allow), true),
            (
                topic(&"x".repeat(1025), Literal, "User:alice", Read, Allow),
                false,
            ),
            (
                topic(&"x".repeat(1024), Literal, "User:alice", Read, Allow),
                true,
            ),
            (
                AclBinding {
                    host: String::new(),
                    ..good.clone()
                },
                false,
            ),
            (
                AclBinding {
                    host: "h".repeat(2000),
                    ..good.clone()
                },
                false,
            ),
            (
                acl(
                    ResourceType::Cluster,
                    CLUSTER_RESOURCE,
                    Literal,
                    "User:a",
                    "*",
                    ClusterAction,
                    Allow,
                ),
                true,
            ),
            (
                acl(
                    ResourceType::Cluster,
                    "other",
                    Literal,
                    "User:a",
                    "*",
                    ClusterAction,
                    Allow,
                ),
                false,
            ),
            (
                acl(
                    ResourceType::Cluster,
                    CLUSTER_RESOURCE,
                    Prefixed,
                    "User:a",
                    "*",
                    ClusterAction,
                    Allow,
                ),
                false,
            ),
            (
                acl(
                    ResourceType::DelegationToken,
                    "tok",
                    Literal,
                    "User:a",
                    "*",
                    Describe,
                    Allow,
                ),
                true,
            ),
            (
                acl(
                    ResourceType::User,
                    "bob",
                    Literal,
                    "User:a",
                    "*",
                    CreateTokens,
                    Allow,
                ),
                true,
            ),
        ];
        for (i, (binding, ok)) in cases.iter().enumerate() {
            assert_eq!(
                binding.validate().is_ok(),
                *ok,
                "case {i}: {binding:?} -> {:?}",
                binding.validate()
            );
        }
        let err = topic("orders", Literal, "alice", Read, Allow)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("User:alice"), "{err}");
    }

    #[test]
    fn filter_pattern_semantics() {
        let literal = topic("orders", Literal, "User:a", Read, Allow);
        let wildcard = topic("*", Literal, "User:a", Read, Allow);
        let prefix = topic("ord", Prefixed, "User:a", Read, Allow);
        let other_prefix = topic("pay", Prefixed, "User:a", Read, Allow);
        let group = acl(
            ResourceType::Group,
            "orders",
            Literal,
            "User:a",
            "*",
            Read,
            Allow,
        );
        let all = [&literal, &wildcard, &prefix, &other_prefix, &group];
        let f = |resource_type, name: Option<&str>, pattern| AclFilter {
            resource_type,
            resource_name: name.map(str::to_owned),
            pattern,
            ..AclFilter::default()
        };
        let matching =
            |filter: &AclFilter| -> Vec<bool> { all.iter().map(|a| filter.matches(a)).collect() };
        let topic_t = Some(ResourceType::Topic);
        // (filter, expected for [literal, wildcard, prefix, other_prefix, group])
        let cases = [
            (AclFilter::default(), [true, true, true, true, true]),
            (
                f(topic_t, None, PatternFilter::Any),
                [true, true, true, true, false],
            ),
            (
                f(None, Some("orders"), PatternFilter::Any),
                [true, false, false, false, true],
            ),
            (
                f(topic_t, Some("orders"), PatternFilter::Literal),
                [true, false, false, false, false],
            ),
            (
                f(topic_t, Some("ord"), PatternFilter::Prefixed),
                [false, false, true, false, false],
            ),
            (
                f(topic_t, Some("orders"), PatternFilter::Prefixed),
                [false, false, false, false, false],
            ),
            (
                f(topic_t, Some("orders"), PatternFilter::Match),
                [true, true, true, false, false],
            ),
            (
                f(topic_t, Some("payments"), PatternFilter::Match),
                [false, true, false, true, false],
            ),
            (
                f(topic_t, None, PatternFilter::Literal),
                [true, true, false, false, false],
            ),
            (
                f(topic_t, None, PatternFilter::Match),
                [true, true, true, true, false],
            ),
            (
                f(None, Some("*"), PatternFilter::Any),
                [false, true, false, false, false],
            ),
        ];
        for (i, (filter, expected)) in cases.iter().enumerate() {
            assert_eq!(matching(filter), expected.to_vec(), "case {i}: {filter:?}");
        }
    }

    #[test]
    fn filter_entry_semantics() {
        let a = acl(
            ResourceType::Topic,
            "t",
            Literal,
            "User:alice",
            "10.0.0.1",
            Write,
            Deny,
        );
        let base = AclFilter::default();
        assert!(base.matches(&a));
        assert!(AclFilter::exact(&a).matches(&a));
        let cases = [
            (
                AclFilter {
                    principal: Some("User:alice".into()),
                    ..base.clone()
                },
                true,
            ),
            (
                AclFilter {
                    principal: Some("User:*".into()),
                    ..base.clone()
                },
                false,
            ),
            (
                AclFilter {
                    host: Some("10.0.0.1".into()),
                    ..base.clone()
                },
                true,
            ),
            (
                AclFilter {
                    host: Some("*".into()),
                    ..base.clone()
                },
                false,
            ),
            (
                AclFilter {
                    operation: Some(Write),
                    ..base.clone()
                },
                true,
            ),
            (
                AclFilter {
                    operation: Some(All),
                    ..base.clone()
                },
                false,
            ),
            (
                AclFilter {
                    permission: Some(Deny),
                    ..base.clone()
                },
                true,
            ),
            (
                AclFilter {
                    permission: Some(Allow),
                    ..base.clone()
                },
                false,
            ),
        ];
        for (i, (filter, expected)) in cases.iter().enumerate() {
            assert_eq!(filter.matches(&a), *expected, "case {i}");
        }
    }

    fn settings(super_users: &[&str], allow_if_no_acls: bool) -> AuthorizerSettings {
        AuthorizerSettings {
            super_users: super_users.iter().map(|s| (*s).to_owned()).collect(),
            allow_if_no_acls,
        }
    }

    #[test]
    fn authorize_table() {
        let acls = vec![
            topic("orders", Literal, "User:alice", Read, Allow),
            topic("pay", Prefixed, "User:bob", Write, Allow),
            topic("payments-secret", Literal, "User:bob", All, Deny),
            topic("*", Literal, "User:*", Describe, Allow),
            topic("audit", Literal, "User:alice", Alter, Allow),
            topic("audit", Literal, "User:alice", Describe, Deny),
            topic("cfg", Literal, "User:carol", AlterConfigs, Allow),
            topic("everything", Literal, "User:dave", All, Allow),
            topic("everything", Literal, "User:dave", Read, Deny),
            acl(
                ResourceType::Topic,
                "hosted",
                Literal,
                "User:erin",
                "10.0.0.5",
                Read,
                Allow,
            ),
            acl(
                ResourceType::Group,
                "g1",
                Literal,
                "User:alice",
                "*",
                Read,
                Allow,
            ),
        ];
        let s = settings(&["User:admin"], false);
        let t = ResourceType::Topic;
        let cases: &[(&str, &str, Operation, ResourceType, &str, bool)] = &[
            ("User:alice", "1.2.3.4", Read, t, "orders", true),
            ("User:alice", "1.2.3.4", Write, t, "orders", false),
            ("User:alice", "1.2.3.4", Describe, t, "orders", true), // wildcard Describe, and Read implies it
            ("User:alice", "1.2.3.4", Read, t, "orders2", false),
            ("User:bob", "1.2.3.4", Write, t, "payments", true), // prefixed
            ("User:bob", "1.2.3.4", Write, t, "pa", false),      // shorter than prefix
            ("User:bob", "1.2.3.4", Write, t, "payments-secret", false), // DENY All wins
            ("User:bob", "1.2.3.4", Describe, t, "payments-secret", false),
            ("User:alice", "1.2.3.4", Describe, t, "audit", false), // DENY Describe beats implied and wildcard
            ("User:alice", "1.2.3.4", Alter, t, "audit", true),
            ("User:carol", "1.2.3.4", DescribeConfigs, t, "cfg", true), // implied by AlterConfigs
            ("User:carol", "1.2.3.4", Describe, t, "cfg", true),        // wildcard Describe
            ("User:carol", "1.2.3.4", Read, t, "cfg", false),
            ("User:dave", "1.2.3.4", Write, t, "everything", true),
            ("User:dave", "1.2.3.4", Read, t, "everything", false), // DENY Read ignores the ALLOW All
            ("User:erin", "10.0.0.5", Read, t, "hosted", true),
            ("User:erin", "10.0.0.6", Read, t, "hosted", false),
            ("User:admin", "1.2.3.4", Write, t, "payments-secret", true), // super user
            (
                "User:alice",
                "1.2.3.4",
                Read,
                ResourceType::Group,
                "g1",
                true,
            ),
            (
                "User:alice",
                "1.2.3.4",
                Read,
                ResourceType::Group,
                "orders",
                false,
            ), // type must match
            (
                "User:nobody",
                "1.2.3.4",
                Read,
                ResourceType::Group,
                "nogroup",
                false,
            ), // no ACLs, default deny
        ];
        for (i, (p, h, op, rt, name, expected)) in cases.iter().enumerate() {
            assert_eq!(
                authorize(&acls, &s, p, h, *op, *rt, name),
                *expected,
                "case {i}: {p} {h} {op} {rt} {name}"
            );
        }
    }

    #[test]
    fn allow_if_no_acls_only_when_no_acl_matches_the_resource() {
        let acls = vec![topic("orders", Literal, "User:alice", Read, Allow)];
        let open = settings(&[], true);
        let closed = settings(&[], false);
        let t = ResourceType::Topic;
        // orders has an ACL (for someone else): the open default does not apply.
        assert!(!authorize(&acls, &open, "User:bob", "h", Read, t, "orders"));
        assert!(authorize(&acls, &open, "User:bob", "h", Read, t, "other"));
        assert!(!authorize(
            &acls, &closed, "User:bob", "h", Read, t, "other"
        ));
        assert!(authorize(
            &[],
            &open,
            "User:bob",
            "h",
            Write,
            ResourceType::Cluster,
            CLUSTER_RESOURCE
        ));
        assert!(!authorize(
            &[],
            &closed,
            "User:bob",
            "h",
            Write,
            ResourceType::Cluster,
            CLUSTER_RESOURCE
        ));
        assert!(!authorize(&[], &closed, "User:root", "h", Write, t, "x"));
        assert!(authorize(
            &[],
            &settings(&["User:root"], false),
            "User:root",
            "h",
            Write,
            t,
            "x"
        ));
    }

    #[test]
    fn authorize_any_table() {
        let s = settings(&["User:admin"], false);
        let t = ResourceType::Topic;
        let w = Write;
        let cases: Vec<(Vec<AclBinding>, &str, bool)> = vec![
            (vec![], "User:alice", false),
            (vec![], "User:admin", true),
            (
                vec![topic("orders", Literal, "User:alice", Write, Allow)],
                "User:alice",
                true,
            ),
            (
                vec![topic("orders", Literal, "User:alice", Write, Allow)],
                "User:bob",
                false,
            ),
            (
                vec![topic("orders", Literal, "User:*", All, Allow)],
                "User:bob",
                true,
            ),
            (
                vec![topic("orders", Literal, "User:alice", Read, Allow)],
                "User:alice",
                false,
            ),
            (
                vec![
                    topic("orders", Literal, "User:alice", Write, Allow),
                    topic("orders", Literal, "User:alice", Write, Deny),
                ],
                "User:alice",
                false,
            ),
            (
                vec![
                    topic("orders", Literal, "User:alice", Write, Allow),
                    topic("ord", Prefixed, "User:alice", All, Deny),
                ],
                "User:alice",
                false,
            ),
            (
                vec![
                    topic("orders", Literal, "User:alice", Write, Allow),
                    topic("pay", Prefixed, "User:alice", All, Deny),
                ],
                "User:alice",
                true,
            ),
            (
                vec![
                    topic("ord", Prefixed, "User:alice", Write, Allow),
                    topic("o", Prefixed, "User:alice", Write, Deny),
                ],
                "User:alice",
                false,
            ),
            (
                vec![
                    topic("o", Prefixed, "User:alice", Write, Allow),
                    topic("ord", Prefixed, "User:alice", Write, Deny),
                ],
                "User:alice",
                true,
            ),
            (
                vec![
                    topic("orders", Literal, "User:alice", Write, Allow),
                    topic("*", Literal, "User:*", Write, Deny),
                ],
                "User:alice",
                false,
            ),
            (
                vec![topic("*", Literal, "User:alice", Write, Allow)],
                "User:alice",
                true,
            ),
            (
                vec![acl(
                    ResourceType::Group,
                    "g",
                    Literal,
                    "User:alice",
                    "*",
                    Write,
                    Allow,
                )],
                "User:alice",
                false,
            ),
        ];
        for (i, (acls, principal, expected)) in cases.iter().enumerate() {
            assert_eq!(
                authorize_any(acls, &s, principal, "h", w, t),
                *expected,
                "case {i}"
            );
        }
        // With allow_if_no_acls, the probe on `hardcode` opens it when nothing covers that name.
        assert!(authorize_any(
            &[],
            &settings(&[], true),
            "User:x",
            "h",
            w,
            t
        ));
    }
}
