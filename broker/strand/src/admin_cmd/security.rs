//! `strand acl create|list|delete` and `strand user create|list|delete`: Kafka ACLs and SCRAM
//! users through the admin API. A user's password never leaves this process: the salted
//! password is computed here and sent, as Kafka's AlterUserScramCredentials does.

use clap::{Args, Subcommand};
use serde::Serialize;
use strand_auth::{ScramCredential, ScramMechanism};
use strand_proto::admin::{
    Acl, AclFilter, CreateAclsRequest, DeleteAclsRequest, DeleteScramUserRequest, ListAclsRequest,
    ListScramUsersRequest, ScramUser, UpsertScramUserRequest,
};

use super::output::{self, Table};
use super::{Admin, ConnectArgs, block_on};

/// `strand acl …`.
#[derive(Debug, Args)]
pub struct AclArgs {
    #[command(flatten)]
    connect: ConnectArgs,

    #[command(subcommand)]
    command: AclCommand,
}

/// Kafka ACLs: who may do what on which topics, groups and the cluster.
#[derive(Debug, Subcommand)]
enum AclCommand {
    /// Allow (or deny) a principal an operation on a resource.
    Create(AclSpec),
    /// List ACLs, all or those matching the options given.
    List(AclFilterArgs),
    /// Delete every ACL matching the options given (at least one option is required).
    Delete(AclFilterArgs),
}

/// One ACL, as `kafka-acls.sh` takes it.
#[derive(Debug, Args)]
struct AclSpec {
    /// The principal, `User:name` (`User:*` for every principal).
    #[arg(long)]
    principal: String,
    /// The operation: Read, Write, Create, Delete, Alter, Describe, ClusterAction,
    /// DescribeConfigs, AlterConfigs, IdempotentWrite or All. Repeatable.
    #[arg(long = "operation", required = true)]
    operations: Vec<String>,
    /// A topic (`*` for every topic).
    #[arg(long, group = "resource")]
    topic: Option<String>,
    /// A consumer group (`*` for every group).
    #[arg(long, group = "resource")]
    group: Option<String>,
    /// The cluster itself.
    #[arg(long, group = "resource")]
    cluster: bool,
    /// A transactional id.
    #[arg(long, group = "resource")]
    transactional_id: Option<String>,
    /// The name is a prefix: the ACL covers every resource whose name starts with it.
    #[arg(long)]
    prefixed: bool,
    /// The client host the ACL covers; `*` for any.
    #[arg(long, default_value = "*")]
    host: String,
    /// Deny instead of allow.
    #[arg(long)]
    deny: bool,
}

/// Which ACLs: each option given narrows the match.
#[derive(Debug, Args)]
struct AclFilterArgs {
    /// Only this principal's ACLs.
    #[arg(long)]
    principal: Option<String>,
    /// Only ACLs on this topic name (exactly this pattern, literal or prefixed).
    #[arg(long, group = "resource")]
    topic: Option<String>,
    /// Only ACLs on this group name.
    #[arg(long, group = "resource")]
    group: Option<String>,
    /// Only ACLs on the cluster.
    #[arg(long, group = "resource")]
    cluster: bool,
    /// Only this operation.
    #[arg(long)]
    operation: Option<String>,
}

/// `strand user …`.
#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(flatten)]
    connect: ConnectArgs,

    #[command(subcommand)]
    command: UserCommand,
}

/// SCRAM users, for SASL/SCRAM and SASL/PLAIN clients.
#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user or set its password.
    Create(UserCreateArgs),
    /// List users and their mechanisms.
    List,
    /// Delete a user (every mechanism's credential).
    Delete {
        /// The user name.
        name: String,
    },
}

#[derive(Debug, Args)]
struct UserCreateArgs {
    /// The user name (clients authenticate as `User:NAME`).
    name: String,
    /// The password; by default read from STRAND_USER_PASSWORD so it stays out of shell
    /// history.
    #[arg(long, env = "STRAND_USER_PASSWORD", hide_env_values = true)]
    password: String,
    /// SCRAM-SHA-256, SCRAM-SHA-512, or both (the default).
    #[arg(
        long = "mechanism",
        value_delimiter = ',',
        default_value = "SCRAM-SHA-512,SCRAM-SHA-256"
    )]
    mechanisms: Vec<String>,
    /// PBKDF2 iterations (4096 to 16384).
    #[arg(long, default_value_t = 8192)]
    iterations: u32,
}

/// An ACL as printed; field names are a public interface for scripts.
#[derive(Debug, Serialize)]
struct AclView {
    principal: String,
    permission: String,
    operation: String,
    resource_type: String,
    pattern_type: String,
    resource_name: String,
    host: String,
}

impl From<Acl> for AclView {
    fn from(acl: Acl) -> Self {
        AclView {
            principal: acl.principal,
            permission: acl.permission,
            operation: acl.operation,
            resource_type: acl.resource_type,
            pattern_type: acl.pattern_type,
            resource_name: acl.resource_name,
            host: acl.host,
        }
    }
}

fn acl_table(acls: &Vec<AclView>) -> String {
    let mut table = Table::new(&[
        "PRINCIPAL",
        "PERMISSION",
        "OPERATION",
        "RESOURCE",
        "PATTERN",
        "NAME",
        "HOST",
    ]);
    for a in acls {
        table.row(vec![
            a.principal.clone(),
            a.permission.clone(),
            a.operation.clone(),
            a.resource_type.clone(),
            a.pattern_type.clone(),
            a.resource_name.clone(),
            a.host.clone(),
        ]);
    }
    table.render()
}

fn resource_of(
    topic: &Option<String>,
    group: &Option<String>,
    cluster: bool,
    transactional_id: &Option<String>,
) -> Option<(&'static str, String)> {
    if let Some(t) = topic {
        Some(("Topic", t.clone()))
    } else if let Some(g) = group {
        Some(("Group", g.clone()))
    } else if cluster {
        Some(("Cluster", strand_auth::CLUSTER_RESOURCE.to_string()))
    } else {
        transactional_id
            .as_ref()
            .map(|t| ("TransactionalId", t.clone()))
    }
}

fn filter_of(args: &AclFilterArgs) -> AclFilter {
    let resource = resource_of(&args.topic, &args.group, args.cluster, &None);
    AclFilter {
        resource_type: resource.as_ref().map(|(t, _)| (*t).to_string()),
        resource_name: resource.map(|(_, n)| n),
        pattern_type: String::new(),
        principal: args.principal.clone(),
        host: None,
        operation: args.operation.clone(),
        permission: None,
    }
}

/// Runs one `strand acl` command.
pub fn run_acl(args: AclArgs) -> anyhow::Result<()> {
    let AclArgs { connect, command } = args;
    block_on(async move {
        let mut admin = Admin::connect(&connect.server).await?;
        match command {
            AclCommand::Create(spec) => {
                let Some((resource_type, resource_name)) = resource_of(
                    &spec.topic,
                    &spec.group,
                    spec.cluster,
                    &spec.transactional_id,
                ) else {
                    anyhow::bail!(
                        "name a resource: --topic, --group, --cluster or --transactional-id"
                    );
                };
                let acls: Vec<Acl> = spec
                    .operations
                    .iter()
                    .map(|operation| Acl {
                        resource_type: resource_type.to_string(),
                        resource_name: resource_name.clone(),
                        pattern_type: if spec.prefixed { "Prefixed" } else { "Literal" }.into(),
                        principal: spec.principal.clone(),
                        host: spec.host.clone(),
                        operation: operation.clone(),
                        permission: if spec.deny { "Deny" } else { "Allow" }.into(),
                    })
                    .collect();
                let shown: Vec<AclView> = acls.iter().cloned().map(AclView::from).collect();
                let answer = admin.client.create_acls(CreateAclsRequest { acls }).await;
                admin.answer(answer)?;
                output::print(connect.output, &shown, acl_table)
            }
            AclCommand::List(filter) => {
                let answer = admin
                    .client
                    .list_acls(ListAclsRequest {
                        filter: Some(filter_of(&filter)),
                    })
                    .await;
                let acls: Vec<AclView> = admin
                    .answer(answer)?
                    .acls
                    .into_iter()
                    .map(AclView::from)
                    .collect();
                output::print(connect.output, &acls, acl_table)
            }
            AclCommand::Delete(filter) => {
                let f = filter_of(&filter);
                if f.resource_type.is_none() && f.principal.is_none() && f.operation.is_none() {
                    anyhow::bail!(
                        "name at least one of --principal, --topic, --group, --cluster or --operation; deleting every ACL at once is not offered"
                    );
                }
                let answer = admin
                    .client
                    .delete_acls(DeleteAclsRequest { filter: Some(f) })
                    .await;
                let acls: Vec<AclView> = admin
                    .answer(answer)?
                    .deleted
                    .into_iter()
                    .map(AclView::from)
                    .collect();
                output::print(connect.output, &acls, acl_table)
            }
        }
    })
}

/// A user as printed.
#[derive(Debug, Serialize)]
struct UserView {
    user: String,
    mechanisms: Vec<String>,
}

impl From<ScramUser> for UserView {
    fn from(user: ScramUser) -> Self {
        UserView {
            user: user.user,
            mechanisms: user
                .credentials
                .into_iter()
                .map(|c| format!("{} ({} iterations)", c.mechanism, c.iterations))
                .collect(),
        }
    }
}

fn user_table(users: &Vec<UserView>) -> String {
    let mut table = Table::new(&["USER", "MECHANISMS"]);
    for u in users {
        table.row(vec![u.user.clone(), u.mechanisms.join(", ")]);
    }
    table.render()
}

/// Runs one `strand user` command.
pub fn run_user(args: UserArgs) -> anyhow::Result<()> {
    let UserArgs { connect, command } = args;
    block_on(async move {
        let mut admin = Admin::connect(&connect.server).await?;
        match command {
            UserCommand::Create(create) => {
                let mut last = None;
                for name in &create.mechanisms {
                    let mechanism = ScramMechanism::from_name(&name.to_ascii_uppercase())
                        .ok_or_else(|| {
                            anyhow::anyhow!(
                                "unknown mechanism `{name}`; use SCRAM-SHA-256 or SCRAM-SHA-512"
                            )
                        })?;
                    let request = upsert_request(
                        &create.name,
                        &create.password,
                        mechanism,
                        create.iterations,
                    );
                    let answer = admin.client.upsert_scram_user(request).await;
                    last = Some(admin.answer(answer)?);
                }
                let users: Vec<UserView> = last.into_iter().map(UserView::from).collect();
                output::print(connect.output, &users, user_table)
            }
            UserCommand::List => {
                let answer = admin
                    .client
                    .list_scram_users(ListScramUsersRequest {})
                    .await;
                let users: Vec<UserView> = admin
                    .answer(answer)?
                    .users
                    .into_iter()
                    .map(UserView::from)
                    .collect();
                output::print(connect.output, &users, user_table)
            }
            UserCommand::Delete { name } => {
                let answer = admin
                    .client
                    .delete_scram_user(DeleteScramUserRequest {
                        user: name.clone(),
                        mechanism: None,
                    })
                    .await;
                if admin.answer(answer)?.deleted {
                    println!("user {name} deleted");
                } else {
                    println!("user {name} had no credentials");
                }
                Ok(())
            }
        }
    })
}

/// The admin request that gives `user` the password `password` for one mechanism: a fresh
/// random salt, and the salted password computed here.
pub fn upsert_request(
    user: &str,
    password: &str,
    mechanism: ScramMechanism,
    iterations: u32,
) -> UpsertScramUserRequest {
    let salt = ScramCredential::random_salt();
    let salted_password = ScramCredential::salted_password(mechanism, password, &salt, iterations);
    UpsertScramUserRequest {
        user: user.to_string(),
        mechanism: mechanism.name().to_string(),
        salt: salt.into(),
        salted_password: salted_password.into(),
        iterations,
    }
}
