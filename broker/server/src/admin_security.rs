//! The admin API's security calls: Kafka ACLs and SCRAM users, each a command of the metadata
//! group (proposed to the controller from any broker), the same commands the Kafka listener's
//! CreateAcls, DeleteAcls and AlterUserScramCredentials propose.

use std::time::Duration;

use strand_auth::{AclBinding, AclFilter, PatternFilter, ScramCredential, ScramMechanism};
use strand_meta::Command;
use strand_node::{Cluster, Outcome, Refusal};
use strand_proto::admin as pb;
use strand_proto::admin::ErrorReason;

/// How long a change waits for the metadata group.
const PATIENCE: Duration = Duration::from_secs(10);

async fn propose(cluster: &Cluster, command: &Command) -> Result<(), Refusal> {
    match cluster.propose(command, PATIENCE).await? {
        Outcome::Done { .. } => Ok(()),
        Outcome::Refused(refusal) => Err(refusal),
    }
}

fn invalid_acl(message: impl Into<String>) -> Refusal {
    Refusal::new(ErrorReason::InvalidAcl, message)
}

fn parse<T: std::str::FromStr>(what: &str, text: &str) -> Result<T, Refusal>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e| invalid_acl(format!("{what} `{text}`: {e}")))
}

/// An ACL from its admin API form, checked.
pub(crate) fn binding_of(acl: &pb::Acl) -> Result<AclBinding, Refusal> {
    let binding = AclBinding {
        resource_type: parse("resource type", &acl.resource_type)?,
        resource_name: acl.resource_name.clone(),
        pattern_type: if acl.pattern_type.is_empty() {
            strand_auth::PatternType::Literal
        } else {
            parse("pattern type", &acl.pattern_type)?
        },
        principal: acl.principal.clone(),
        host: if acl.host.is_empty() {
            "*".to_string()
        } else {
            acl.host.clone()
        },
        operation: parse("operation", &acl.operation)?,
        permission: if acl.permission.is_empty() {
            strand_auth::Permission::Allow
        } else {
            parse("permission", &acl.permission)?
        },
    };
    binding.validate().map_err(|e| invalid_acl(e.to_string()))?;
    Ok(binding)
}

/// An ACL in its admin API form.
pub(crate) fn acl_of(binding: &AclBinding) -> pb::Acl {
    pb::Acl {
        resource_type: binding.resource_type.to_string(),
        resource_name: binding.resource_name.clone(),
        pattern_type: binding.pattern_type.to_string(),
        principal: binding.principal.clone(),
        host: binding.host.clone(),
        operation: binding.operation.to_string(),
        permission: binding.permission.to_string(),
    }
}

fn filter_of(filter: Option<&pb::AclFilter>) -> Result<AclFilter, Refusal> {
    let Some(f) = filter else {
        return Ok(AclFilter::default());
    };
    Ok(AclFilter {
        resource_type: f
            .resource_type
            .as_deref()
            .map(|t| parse("resource type", t))
            .transpose()?,
        resource_name: f.resource_name.clone(),
        pattern: match f.pattern_type.to_ascii_lowercase().as_str() {
            "" | "any" => PatternFilter::Any,
            "match" => PatternFilter::Match,
            "literal" => PatternFilter::Literal,
            "prefixed" => PatternFilter::Prefixed,
            other => {
                return Err(invalid_acl(format!(
                    "pattern type filter `{other}`: use Any, Match, Literal or Prefixed"
                )));
            }
        },
        principal: f.principal.clone(),
        host: f.host.clone(),
        operation: f
            .operation
            .as_deref()
            .map(|o| parse("operation", o))
            .transpose()?,
        permission: f
            .permission
            .as_deref()
            .map(|p| parse("permission", p))
            .transpose()?,
    })
}

/// CreateAcls.
pub(crate) async fn create_acls(
    cluster: &Cluster,
    request: pb::CreateAclsRequest,
) -> Result<pb::CreateAclsResponse, Refusal> {
    let acls = request
        .acls
        .iter()
        .map(binding_of)
        .collect::<Result<Vec<_>, _>>()?;
    let before = cluster.state().acls().len();
    propose(cluster, &Command::CreateAcls { acls }).await?;
    let after = cluster.state().acls().len();
    Ok(pb::CreateAclsResponse {
        created: u32::try_from(after.saturating_sub(before)).unwrap_or(u32::MAX),
    })
}

/// ListAcls.
pub(crate) fn list_acls(
    cluster: &Cluster,
    request: &pb::ListAclsRequest,
) -> Result<pb::ListAclsResponse, Refusal> {
    let filter = filter_of(request.filter.as_ref())?;
    let state = cluster.state();
    Ok(pb::ListAclsResponse {
        acls: state
            .acls()
            .iter()
            .filter(|a| filter.matches(a))
            .map(acl_of)
            .collect(),
    })
}

/// DeleteAcls: every ACL the filter matches.
pub(crate) async fn delete_acls(
    cluster: &Cluster,
    request: pb::DeleteAclsRequest,
) -> Result<pb::DeleteAclsResponse, Refusal> {
    let filter = filter_of(request.filter.as_ref())?;
    let acls: Vec<AclBinding> = cluster
        .state()
        .acls()
        .iter()
        .filter(|a| filter.matches(a))
        .cloned()
        .collect();
    if !acls.is_empty() {
        propose(cluster, &Command::DeleteAcls { acls: acls.clone() }).await?;
    }
    Ok(pb::DeleteAclsResponse {
        deleted: acls.iter().map(acl_of).collect(),
    })
}

fn mechanism_of(name: &str) -> Result<ScramMechanism, Refusal> {
    ScramMechanism::from_name(&name.to_ascii_uppercase()).ok_or_else(|| {
        Refusal::new(
            ErrorReason::InvalidCredential,
            format!("unknown SCRAM mechanism `{name}`; use SCRAM-SHA-256 or SCRAM-SHA-512"),
        )
    })
}

fn user_of(cluster: &Cluster, user: &str) -> pb::ScramUser {
    let state = cluster.state();
    pb::ScramUser {
        user: user.to_string(),
        credentials: state
            .scram_users()
            .get(user)
            .into_iter()
            .flat_map(|c| c.values())
            .map(|c| pb::ScramCredentialInfo {
                mechanism: c.mechanism.name().to_string(),
                iterations: c.iterations,
            })
            .collect(),
    }
}

/// UpsertScramUser.
pub(crate) async fn upsert_scram_user(
    cluster: &Cluster,
    request: pb::UpsertScramUserRequest,
) -> Result<pb::ScramUser, Refusal> {
    let mechanism = mechanism_of(&request.mechanism)?;
    strand_meta::check_scram_user(&request.user)
        .map_err(|e| Refusal::new(ErrorReason::InvalidCredential, e.to_string()))?;
    let credential = ScramCredential::from_salted_password(
        mechanism,
        &request.salted_password,
        &request.salt,
        request.iterations,
    )
    .map_err(|e| Refusal::new(ErrorReason::InvalidCredential, e.to_string()))?;
    let command = Command::UpsertScramCredential {
        user: request.user.clone(),
        credential,
    };
    propose(cluster, &command).await?;
    Ok(user_of(cluster, &request.user))
}

/// ListScramUsers: names, mechanisms and iterations; never salts or keys.
pub(crate) fn list_scram_users(cluster: &Cluster) -> pb::ListScramUsersResponse {
    let users: Vec<String> = cluster.state().scram_users().keys().cloned().collect();
    pb::ListScramUsersResponse {
        users: users.iter().map(|u| user_of(cluster, u)).collect(),
    }
}

/// DeleteScramUser: one mechanism's credential or all of them.
pub(crate) async fn delete_scram_user(
    cluster: &Cluster,
    request: pb::DeleteScramUserRequest,
) -> Result<pb::DeleteScramUserResponse, Refusal> {
    let mechanisms: Vec<ScramMechanism> = match &request.mechanism {
        Some(name) => vec![mechanism_of(name)?],
        None => cluster
            .state()
            .scram_users()
            .get(&request.user)
            .map(|c| c.keys().copied().collect())
            .unwrap_or_default(),
    };
    let mut deleted = false;
    for mechanism in mechanisms {
        if cluster
            .state()
            .scram_credential(&request.user, mechanism)
            .is_none()
        {
            continue;
        }
        let command = Command::DeleteScramCredential {
            user: request.user.clone(),
            mechanism,
        };
        propose(cluster, &command).await?;
        deleted = true;
    }
    Ok(pb::DeleteScramUserResponse { deleted })
}
