//! Kafka's security administration: CreateAcls, DescribeAcls, DeleteAcls, and the SCRAM
//! credentials of DescribeUserScramCredentials and AlterUserScramCredentials. Every change is
//! a command of the metadata group, so it applies on every broker once committed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strand_auth::{
    AclBinding, AclFilter, Operation, PatternFilter, PatternType, Permission, ResourceType,
    ScramCredential, ScramMechanism,
};
use strand_meta::Command;
use strand_node::Outcome;

use crate::context::Context;
use crate::errors::refused;
use crate::security::Resource;

/// How long a change waits for the metadata group.
const PATIENCE: Duration = Duration::from_secs(10);

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Why a request could not be served, with Kafka's code.
type Failure = (ResponseError, String);

/// Proposes `command`; a refusal is answered with its Kafka error.
async fn propose(ctx: &Context, command: &Command) -> Result<(), Failure> {
    match ctx.handles().cluster.propose(command, PATIENCE).await {
        Ok(Outcome::Done { .. }) => Ok(()),
        Ok(Outcome::Refused(refusal)) | Err(refusal) => Err(refused(refusal)),
    }
}

/// The refusal when no authorizer is configured.
fn security_disabled() -> Failure {
    (
        ResponseError::SecurityDisabled,
        "no authorizer is configured on this cluster".into(),
    )
}

/// The check every ACL request makes first: an authorizer is on and the client may
/// `operation` the cluster.
fn check_cluster(ctx: &Context, operation: Operation) -> Result<(), Failure> {
    if ctx.handles().settings.security.authorizer.is_none() {
        return Err(security_disabled());
    }
    if !ctx.authorized(operation, Resource::cluster()) {
        return Err((
            ResponseError::ClusterAuthorizationFailed,
            format!("not authorized to {operation:?} the cluster"),
        ));
    }
    Ok(())
}

fn binding_of(creation: &create_acls_request::AclCreation) -> Result<AclBinding, Failure> {
    let invalid = |what: &str| (ResponseError::InvalidRequest, format!("invalid {what}"));
    let binding = AclBinding {
        resource_type: ResourceType::from_code(creation.resource_type)
            .ok_or_else(|| invalid("resource type"))?,
        resource_name: creation.resource_name.to_string(),
        pattern_type: match creation.resource_pattern_type {
            3 => PatternType::Literal,
            4 => PatternType::Prefixed,
            _ => return Err(invalid("pattern type: use LITERAL or PREFIXED")),
        },
        principal: creation.principal.to_string(),
        host: creation.host.to_string(),
        operation: Operation::from_code(creation.operation).ok_or_else(|| invalid("operation"))?,
        permission: Permission::from_code(creation.permission_type)
            .ok_or_else(|| invalid("permission"))?,
    };
    binding
        .validate()
        .map_err(|e| (ResponseError::InvalidRequest, e.to_string()))?;
    Ok(binding)
}

/// A filter from a request's fields (ANY, code 1, is no constraint).
#[allow(clippy::too_many_arguments)]
fn filter_of(
    resource_type: i8,
    resource_name: Option<&StrBytes>,
    pattern: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    operation: i8,
    permission: i8,
) -> Result<AclFilter, Failure> {
    let invalid = |what: &str| {
        (
            ResponseError::InvalidRequest,
            format!("invalid {what} filter"),
        )
    };
    Ok(AclFilter {
        resource_type: match resource_type {
            1 => None,
            code => Some(ResourceType::from_code(code).ok_or_else(|| invalid("resource type"))?),
        },
        resource_name: resource_name.map(|s| s.to_string()),
        pattern: PatternFilter::from_code(pattern).ok_or_else(|| invalid("pattern type"))?,
        principal: principal.map(|s| s.to_string()),
        host: host.map(|s| s.to_string()),
        operation: match operation {
            1 => None,
            code => Some(Operation::from_code(code).ok_or_else(|| invalid("operation"))?),
        },
        permission: match permission {
            1 => None,
            code => Some(Permission::from_code(code).ok_or_else(|| invalid("permission"))?),
        },
    })
}

fn pattern_code(pattern: PatternType) -> i8 {
    match pattern {
        PatternType::Literal => 3,
        PatternType::Prefixed => 4,
    }
}

/// CreateAcls: all creations in one metadata command; each invalid one is answered alone.
pub async fn create_acls(
    ctx: Context,
    req: CreateAclsRequest,
    _version: i16,
) -> CreateAclsResponse {
    use create_acls_response::AclCreationResult;
    let answer = |outcomes: Vec<Result<(), Failure>>| {
        CreateAclsResponse::default().with_results(
            outcomes
                .into_iter()
                .map(|o| match o {
                    Ok(()) => AclCreationResult::default(),
                    Err((code, message)) => AclCreationResult::default()
                        .with_error_code(code.code())
                        .with_error_message(Some(text(message))),
                })
                .collect(),
        )
    };
    if let Err(e) = check_cluster(&ctx, Operation::Alter) {
        return answer(req.creations.iter().map(|_| Err(e.clone())).collect());
    }
    let mut outcomes: Vec<Result<(), Failure>> = Vec::with_capacity(req.creations.len());
    let mut acls = Vec::new();
    for creation in &req.creations {
        match binding_of(creation) {
            Ok(binding) => {
                acls.push(binding);
                outcomes.push(Ok(()));
            }
            Err(e) => outcomes.push(Err(e)),
        }
    }
    if !acls.is_empty()
        && let Err(e) = propose(&ctx, &Command::CreateAcls { acls }).await
    {
        for outcome in outcomes.iter_mut().filter(|o| o.is_ok()) {
            *outcome = Err(e.clone());
        }
    }
    answer(outcomes)
}

/// DescribeAcls: the ACLs the filter matches, grouped by resource pattern.
pub async fn describe_acls(
    ctx: Context,
    req: DescribeAclsRequest,
    _version: i16,
) -> DescribeAclsResponse {
    use describe_acls_response::{AclDescription, DescribeAclsResource};
    let failed = |(code, message): Failure| {
        DescribeAclsResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(text(message)))
    };
    if let Err(e) = check_cluster(&ctx, Operation::Describe) {
        return failed(e);
    }
    let filter = match filter_of(
        req.resource_type_filter,
        req.resource_name_filter.as_ref(),
        req.pattern_type_filter,
        req.principal_filter.as_ref(),
        req.host_filter.as_ref(),
        req.operation,
        req.permission_type,
    ) {
        Ok(f) => f,
        Err(e) => return failed(e),
    };
    let state = ctx.state();
    let mut by_resource: BTreeMap<(ResourceType, String, PatternType), Vec<AclDescription>> =
        BTreeMap::new();
    for acl in state.acls().iter().filter(|acl| filter.matches(acl)) {
        by_resource
            .entry((
                acl.resource_type,
                acl.resource_name.clone(),
                acl.pattern_type,
            ))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(text(acl.principal.clone()))
                    .with_host(text(acl.host.clone()))
                    .with_operation(acl.operation.code())
                    .with_permission_type(acl.permission.code()),
            );
    }
    let resources = by_resource
        .into_iter()
        .map(|((kind, name, pattern), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(kind.code())
                .with_resource_name(text(name))
                .with_pattern_type(pattern_code(pattern))
                .with_acls(acls)
        })
        .collect();
    DescribeAclsResponse::default().with_resources(resources)
}

/// DeleteAcls: each filter's matches, removed in one metadata command.
pub async fn delete_acls(
    ctx: Context,
    req: DeleteAclsRequest,
    _version: i16,
) -> DeleteAclsResponse {
    use delete_acls_response::{DeleteAclsFilterResult, DeleteAclsMatchingAcl};
    let failed = |(code, message): Failure| {
        DeleteAclsFilterResult::default()
            .with_error_code(code.code())
            .with_error_message(Some(text(message)))
    };
    if let Err(e) = check_cluster(&ctx, Operation::Alter) {
        return DeleteAclsResponse::default()
            .with_filter_results(req.filters.iter().map(|_| failed(e.clone())).collect());
    }
    let state = ctx.state();
    let matched: Vec<Result<Vec<AclBinding>, Failure>> = req
        .filters
        .iter()
        .map(|f| {
            let filter = filter_of(
                f.resource_type_filter,
                f.resource_name_filter.as_ref(),
                f.pattern_type_filter,
                f.principal_filter.as_ref(),
                f.host_filter.as_ref(),
                f.operation,
                f.permission_type,
            )?;
            Ok(state
                .acls()
                .iter()
                .filter(|acl| filter.matches(acl))
                .cloned()
                .collect())
        })
        .collect();
    let all: BTreeSet<AclBinding> = matched.iter().flatten().flatten().cloned().collect();
    let deleted = if all.is_empty() {
        Ok(())
    } else {
        propose(
            &ctx,
            &Command::DeleteAcls {
                acls: all.into_iter().collect(),
            },
        )
        .await
    };
    let results = matched
        .into_iter()
        .map(|m| match (m, &deleted) {
            (Err(e), _) => failed(e),
            (Ok(_), Err(e)) => failed(e.clone()),
            (Ok(acls), Ok(())) => DeleteAclsFilterResult::default().with_matching_acls(
                acls.into_iter()
                    .map(|acl| {
                        DeleteAclsMatchingAcl::default()
                            .with_resource_type(acl.resource_type.code())
                            .with_resource_name(text(acl.resource_name))
                            .with_pattern_type(pattern_code(acl.pattern_type))
                            .with_principal(text(acl.principal))
                            .with_host(text(acl.host))
                            .with_operation(acl.operation.code())
                            .with_permission_type(acl.permission.code())
                    })
                    .collect(),
            ),
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}

/// DescribeUserScramCredentials: mechanisms and iterations (never salts or keys) of the users
/// asked for, or of every user.
pub async fn describe_user_scram_credentials(
    ctx: Context,
    req: DescribeUserScramCredentialsRequest,
    _version: i16,
) -> DescribeUserScramCredentialsResponse {
    use describe_user_scram_credentials_response::{
        CredentialInfo, DescribeUserScramCredentialsResult,
    };
    if !ctx.authorized(Operation::Describe, Resource::cluster()) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(text("not authorized to describe the cluster")));
    }
    let state = ctx.state();
    let users: Vec<String> = match &req.users {
        Some(users) if !users.is_empty() => users.iter().map(|u| u.name.to_string()).collect(),
        _ => state.scram_users().keys().cloned().collect(),
    };
    let mut seen = BTreeMap::new();
    for user in &users {
        *seen.entry(user.as_str()).or_insert(0) += 1;
    }
    let results = users
        .iter()
        .map(|user| {
            let base = DescribeUserScramCredentialsResult::default().with_user(text(user.clone()));
            if seen.get(user.as_str()).copied().unwrap_or(0) > 1 {
                return base
                    .with_error_code(ResponseError::DuplicateResource.code())
                    .with_error_message(Some(text("user named more than once")));
            }
            match state.scram_users().get(user) {
                Some(credentials) => base.with_credential_infos(
                    credentials
                        .values()
                        .map(|c| {
                            CredentialInfo::default()
                                .with_mechanism(c.mechanism.code())
                                .with_iterations(i32::try_from(c.iterations).unwrap_or(i32::MAX))
                        })
                        .collect(),
                ),
                None => base
                    .with_error_code(ResponseError::ResourceNotFound.code())
                    .with_error_message(Some(text(format!(
                        "no SCRAM credentials for user `{user}`"
                    )))),
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

/// AlterUserScramCredentials: deletions and upsertions, each its own metadata command and
/// answered per user. The client sends the salted password (never the password); the broker
/// keeps only the keys derived from it.
pub async fn alter_user_scram_credentials(
    ctx: Context,
    req: AlterUserScramCredentialsRequest,
    _version: i16,
) -> AlterUserScramCredentialsResponse {
    use alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
    let authorized = ctx.authorized(Operation::Alter, Resource::cluster());
    // Kafka refuses a user altered twice for the same mechanism in one request.
    let mut count: BTreeMap<(String, i8), usize> = BTreeMap::new();
    for (name, mechanism) in req
        .deletions
        .iter()
        .map(|d| (&d.name, d.mechanism))
        .chain(req.upsertions.iter().map(|u| (&u.name, u.mechanism)))
    {
        *count.entry((name.to_string(), mechanism)).or_default() += 1;
    }
    let mut outcomes: BTreeMap<String, Result<(), Failure>> = BTreeMap::new();
    let mut record = |user: String, outcome: Result<(), Failure>| {
        let slot = outcomes.entry(user).or_insert(Ok(()));
        if slot.is_ok() {
            *slot = outcome;
        }
    };
    let mechanism_of = |code: i8| {
        ScramMechanism::from_code(code).ok_or((
            ResponseError::UnsupportedSaslMechanism,
            format!("unknown SCRAM mechanism {code}"),
        ))
    };
    for deletion in &req.deletions {
        let user = deletion.name.to_string();
        let outcome = async {
            if !authorized {
                return Err(cluster_denied());
            }
            if count[&(user.clone(), deletion.mechanism)] > 1 {
                return Err(duplicate());
            }
            let mechanism = mechanism_of(deletion.mechanism)?;
            if ctx.state().scram_credential(&user, mechanism).is_none() {
                return Err((
                    ResponseError::ResourceNotFound,
                    format!("user `{user}` has no {} credential", mechanism.name()),
                ));
            }
            let command = Command::DeleteScramCredential {
                user: user.clone(),
                mechanism,
            };
            propose(&ctx, &command).await
        }
        .await;
        record(user, outcome);
    }
    for upsertion in &req.upsertions {
        let user = upsertion.name.to_string();
        let outcome = async {
            if !authorized {
                return Err(cluster_denied());
            }
            if count[&(user.clone(), upsertion.mechanism)] > 1 {
                return Err(duplicate());
            }
            let mechanism = mechanism_of(upsertion.mechanism)?;
            strand_meta::check_scram_user(&user)
                .map_err(|e| (ResponseError::UnacceptableCredential, e.to_string()))?;
            let iterations = u32::try_from(upsertion.iterations).unwrap_or(0);
            let credential = ScramCredential::from_salted_password(
                mechanism,
                &upsertion.salted_password,
                &upsertion.salt,
                iterations,
            )
            .map_err(|e| (ResponseError::UnacceptableCredential, e.to_string()))?;
            let command = Command::UpsertScramCredential {
                user: user.clone(),
                credential,
            };
            propose(&ctx, &command).await
        }
        .await;
        record(user, outcome);
    }
    let results = outcomes
        .into_iter()
        .map(|(user, outcome)| {
            let base = AlterUserScramCredentialsResult::default().with_user(text(user));
            match outcome {
                Ok(()) => base,
                Err((code, message)) => base
                    .with_error_code(code.code())
                    .with_error_message(Some(text(message))),
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

fn cluster_denied() -> Failure {
    (
        ResponseError::ClusterAuthorizationFailed,
        "not authorized to alter the cluster".into(),
    )
}

fn duplicate() -> Failure {
    (
        ResponseError::DuplicateResource,
        "the same user and mechanism appear more than once in the request".into(),
    )
}
