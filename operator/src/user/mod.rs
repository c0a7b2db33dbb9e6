//! The User reconciler: the I/O shell around [`plan`]. It makes the User's credentials (a
//! SCRAM password, salted before it leaves the operator, or a certificate of the clients CA),
//! writes them with the client settings to a Secret the User owns, brings its principal's
//! ACLs to its rules, and on deletion revokes it: its ACLs and SCRAM credential go before the
//! finalizer lets the object go.

pub mod plan;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalize, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use strand_auth::{ScramCredential, ScramMechanism};
use strand_proto::admin::{AclFilter, UpsertScramUserRequest};
use time::OffsetDateTime;
use tracing::{info, instrument, warn};

use crate::admin::AdminApi;
use crate::cluster::listener_certs::listener_cas;
use crate::cluster::live_cluster;
use crate::cluster::tls::{CA_CERT_KEY, stored_ca, text};
use crate::conditions::{Standing, paused};
use crate::context::{Context, Error, FIELD_MANAGER, is_paused};
use crate::crd::condition::PAUSED;
use crate::crd::{Cluster, User, UserAuthenticationType, UserStatus};
use crate::desired::ClusterNames;
use crate::pki::{self, Pem};

/// The finalizer that keeps a User until it is revoked in its cluster.
pub const FINALIZER: &str = "strand.dev/user";

/// How often a Ready User is compared with the cluster, to notice ACLs changed around it.
const RESYNC: Duration = Duration::from_secs(300);
/// How soon a User that is getting there is looked at again.
const PROGRESS: Duration = Duration::from_secs(10);
/// PBKDF2 iterations of the SCRAM credentials the operator makes (Kafka's default).
const SCRAM_ITERATIONS: u32 = 4096;
/// Secret keys of a certificate user.
const USER_CERT_KEY: &str = "user.crt";
const USER_KEY_KEY: &str = "user.key";

/// Reconciles one User.
#[instrument(skip_all, fields(user = %user.name_any(), namespace = user.namespace()))]
pub async fn reconcile<A: AdminApi>(
    user: Arc<User>,
    ctx: Arc<Context<A>>,
) -> Result<Action, Error> {
    ctx.metrics.reconciled("User");
    let _timer = ctx.metrics.timer("User");
    let namespace = user
        .namespace()
        .ok_or_else(|| Error::MissingNamespace(user.name_any()))?;
    let key = format!("{namespace}/{}", user.name_any());
    if is_paused(&*user) {
        info!("paused by annotation");
        let old = user.status.clone().unwrap_or_default();
        let status = UserStatus {
            conditions: paused(&old.conditions, user.metadata.generation, Timestamp::now()),
            ..old.clone()
        };
        if status != old {
            ctx.write_status(&*user, &status).await?;
        }
        ctx.metrics.stands("User", key, Some(PAUSED));
        return Ok(Action::await_change());
    }
    let users: Api<User> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&users, FINALIZER, user, |event| async {
        match event {
            Finalize::Apply(user) => apply(&user, &namespace, &ctx).await,
            Finalize::Cleanup(user) => {
                ctx.metrics.stands("User", key.clone(), None);
                revoke(&user, &namespace, &ctx).await
            }
        }
    })
    .await
    .map_err(|error| Error::Finalizer(Box::new(error)))
}

/// The Users that name `cluster`, among `users`.
pub fn users_of(cluster: &Cluster, users: &[Arc<User>]) -> Vec<ObjectRef<User>> {
    let namespace = cluster.namespace();
    let name = cluster.name_any();
    users
        .iter()
        .filter(|user| user.namespace() == namespace && user.spec.cluster_ref.name == name)
        .map(|user| ObjectRef::from_obj(&**user))
        .collect()
}

/// What an error leaves the User to do: wait out a backoff that grows per User.
pub fn error_policy<A: AdminApi>(user: Arc<User>, error: &Error, ctx: Arc<Context<A>>) -> Action {
    ctx.metrics.failed("User");
    let delay = ctx.backoff.failed(&*user);
    tracing::warn!(user = %user.name_any(), %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Where a User's credentials stand after [`credentials`].
enum Credentials {
    /// In the Secret and in the cluster.
    InPlace { changed: Option<String> },
    /// Not made; the standing says why.
    Waiting(Standing),
}

async fn apply<A: AdminApi>(
    user: &User,
    namespace: &str,
    ctx: &Context<A>,
) -> Result<Action, Error> {
    let Some(cluster) = live_cluster(ctx, namespace, &user.spec.cluster_ref.name).await? else {
        let standing = Standing::Stalled {
            reason: "ClusterNotFound",
            message: format!(
                "Cluster {} does not exist in namespace {namespace}; create it or fix \
                 spec.clusterRef",
                user.spec.cluster_ref.name
            ),
        };
        finish(user, namespace, ctx, None, Vec::new(), standing).await?;
        return Ok(Action::requeue(RESYNC));
    };
    if let Some(message) = plan::no_listener(user, &cluster) {
        let standing = Standing::Stalled {
            reason: "NoListener",
            message,
        };
        finish(user, namespace, ctx, None, Vec::new(), standing).await?;
        return Ok(Action::requeue(RESYNC));
    }
    let names = ClusterNames::of(&cluster)?;
    crate::cluster::tls::use_admin_certificate(ctx, &names).await?;
    let address = names.admin_address();
    let outcome = converge(user, &cluster, &names, &address, namespace, ctx).await;
    let (cluster_id, nothing, standing, error) = match outcome {
        Ok((cluster_id, nothing, standing)) => (Some(cluster_id), nothing, standing, None),
        Err(Error::Admin(error)) if error.is_transient() => {
            let standing = Standing::Reconciling {
                reason: error.reason_word(),
                message: error.to_string(),
            };
            (None, Vec::new(), standing, Some(Error::from(error)))
        }
        Err(Error::Admin(error)) => {
            let standing = Standing::Stalled {
                reason: error.reason_word(),
                message: format!("the cluster refused user {}: {error}", user.name_any()),
            };
            (None, Vec::new(), standing, None)
        }
        Err(error) => return Err(error),
    };
    let requeue = match standing {
        Standing::Ready { .. } | Standing::Stalled { .. } => RESYNC,
        Standing::Reconciling { .. } => PROGRESS,
    };
    finish(
        user,
        namespace,
        ctx,
        cluster_id.as_deref(),
        nothing,
        standing,
    )
    .await?;
    if let Some(error) = error {
        return Err(error);
    }
    ctx.backoff.succeeded(user);
    Ok(Action::requeue(requeue))
}

/// Makes the credentials, the Secret and the ACLs match the User; returns the cluster's id,
/// the rules that match no topic, and the standing.
async fn converge<A: AdminApi>(
    user: &User,
    cluster: &Cluster,
    names: &ClusterNames,
    address: &str,
    namespace: &str,
    ctx: &Context<A>,
) -> Result<(String, Vec<String>, Standing), Error> {
    let cluster_id = ctx.admin.describe_cluster(address).await?.cluster_id;
    if let Some(bound) = user.status.as_ref().and_then(|s| s.cluster_id.as_deref())
        && bound != cluster_id
    {
        let standing = Standing::Stalled {
            reason: "ClusterChanged",
            message: format!(
                "this User was made in cluster {bound}, but Cluster {} now answers as \
                 {cluster_id}; delete and re-create the User to make it there",
                names.cluster()
            ),
        };
        return Ok((bound.to_owned(), Vec::new(), standing));
    }
    let changed = match credentials(user, cluster, names, address, namespace, ctx).await? {
        Credentials::InPlace { changed } => changed,
        Credentials::Waiting(standing) => return Ok((cluster_id, Vec::new(), standing)),
    };
    if let Some(note) = changed {
        info!(%note);
        ctx.publish(user, EventType::Normal, "Credentials", "Credentials", note)
            .await;
    }
    let principal = plan::principal(user);
    let wanted = plan::desired_acls(user);
    let present = ctx
        .admin
        .list_acls(
            address,
            AclFilter {
                principal: Some(principal.clone()),
                pattern_type: "Any".to_owned(),
                ..AclFilter::default()
            },
        )
        .await?;
    let (create, delete) = plan::acl_changes(&wanted, &present);
    if !create.is_empty() {
        ctx.admin.create_acls(address, create.clone()).await?;
    }
    for acl in &delete {
        ctx.admin
            .delete_acls(
                address,
                AclFilter {
                    resource_type: Some(acl.resource_type.clone()),
                    resource_name: Some(acl.resource_name.clone()),
                    pattern_type: acl.pattern_type.clone(),
                    principal: Some(acl.principal.clone()),
                    host: Some(acl.host.clone()),
                    operation: Some(acl.operation.clone()),
                    permission: Some(acl.permission.clone()),
                },
            )
            .await?;
    }
    if !create.is_empty() || !delete.is_empty() {
        let note = format!(
            "ACLs of {principal}: {} added, {} removed; it has {} now",
            create.len(),
            delete.len(),
            wanted.len()
        );
        info!(%note);
        ctx.publish(user, EventType::Normal, "AclsChanged", "Acls", note)
            .await;
    }
    let topics: Vec<String> = ctx
        .admin
        .list_topics(address)
        .await?
        .into_iter()
        .map(|t| t.name)
        .collect();
    let nothing = plan::matching_nothing(user, &topics);
    let mut message = format!(
        "{principal} has {} ACLs; its credentials are in Secret {}",
        wanted.len(),
        user.name_any()
    );
    if !nothing.is_empty() {
        message.push_str(&format!(
            "; rules that match no topic yet: {}",
            nothing.join(", ")
        ));
    }
    Ok((
        cluster_id,
        nothing,
        Standing::Ready {
            reason: "UserReady",
            message,
        },
    ))
}

/// Makes sure the User's credentials exist, in its Secret and in the cluster. A Secret of the
/// User's name that another owner made is never written over, and neither is a SCRAM user of
/// the name that this User did not make.
async fn credentials<A: AdminApi>(
    user: &User,
    cluster: &Cluster,
    names: &ClusterNames,
    address: &str,
    namespace: &str,
    ctx: &Context<A>,
) -> Result<Credentials, Error> {
    let name = user.name_any();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let found = secrets.get_opt(&name).await?;
    let uid = user.metadata.uid.clone().unwrap_or_default();
    let ours = |secret: &Secret| {
        secret
            .owner_references()
            .iter()
            .any(|o| o.uid == uid && o.kind == "User")
    };
    if let Some(found) = &found
        && !ours(found)
    {
        return Ok(Credentials::Waiting(Standing::Stalled {
            reason: "SecretNotOwned",
            message: format!(
                "Secret {name} exists and this User did not make it; delete or rename it, \
                 or give the User another name"
            ),
        }));
    }
    let Some((_, mut trusted)) = stored_ca(ctx, namespace, &names.ca_secret()).await? else {
        return Ok(Credentials::Waiting(Standing::Reconciling {
            reason: "WaitingForCertificates",
            message: format!("Cluster {} has no CA yet", names.cluster()),
        }));
    };
    let mut data: BTreeMap<String, String> = plan::bootstrap_entries(user, cluster, names);
    // Every CA the brokers' certificates may come from (two while the CA is renewed), and
    // the CAs of listeners that present a certificate of their own.
    for ca in listener_cas(ctx, names, &cluster.spec.listeners()).await? {
        if !trusted.ends_with('\n') {
            trusted.push('\n');
        }
        trusted.push_str(&ca);
    }
    data.insert(CA_CERT_KEY.to_owned(), trusted);
    let made_before = user.status.as_ref().is_some_and(|s| s.principal.is_some());
    let mut changed = None;
    match user.spec.authentication.type_ {
        UserAuthenticationType::ScramSha512 => {
            let stored = found.as_ref().and_then(|s| text(s, "password"));
            let present = ctx
                .admin
                .list_scram_users(address)
                .await?
                .into_iter()
                .any(|u| u.user == name);
            if present && stored.is_none() && !made_before {
                return Ok(Credentials::Waiting(Standing::Stalled {
                    reason: "UserExists",
                    message: format!(
                        "the cluster has a SCRAM user {name} that this User did not make; \
                         delete it there (strand user delete {name}) for this User to take \
                         the name"
                    ),
                }));
            }
            let password = match &stored {
                Some(password) => password.clone(),
                None => random_password(),
            };
            data.insert("username".to_owned(), name.clone());
            data.insert("password".to_owned(), password.clone());
            data.insert("sasl.mechanism".to_owned(), "SCRAM-SHA-512".to_owned());
            data.insert(
                "sasl.jaas.config".to_owned(),
                plan::jaas_config(&name, &password),
            );
            // The Secret first: a password the cluster takes is never one nobody holds.
            write_secret(user, &secrets, found.as_ref(), &data).await?;
            if stored.is_none() || !present {
                let mechanism = ScramMechanism::Sha512;
                let salt = ScramCredential::random_salt();
                let salted =
                    ScramCredential::salted_password(mechanism, &password, &salt, SCRAM_ITERATIONS);
                ctx.admin
                    .upsert_scram_user(
                        address,
                        UpsertScramUserRequest {
                            user: name.clone(),
                            mechanism: mechanism.name().to_owned(),
                            salt: salt.into(),
                            salted_password: salted.into(),
                            iterations: SCRAM_ITERATIONS,
                        },
                    )
                    .await?;
                changed = Some(if stored.is_none() && made_before {
                    format!(
                        "made a new password for {name}: its Secret had none; clients must take the new one from Secret {name}"
                    )
                } else {
                    format!("made SCRAM-SHA-512 credentials for {name} in Secret {name}")
                });
            }
        }
        UserAuthenticationType::Tls => {
            let Some((clients_ca, _)) =
                stored_ca(ctx, namespace, &names.clients_ca_secret()).await?
            else {
                return Ok(Credentials::Waiting(Standing::Reconciling {
                    reason: "WaitingForCertificates",
                    message: format!("Cluster {} has no clients CA yet", names.cluster()),
                }));
            };
            let now = OffsetDateTime::now_utc();
            let current = found.as_ref().and_then(|s| {
                Some(Pem {
                    cert: text(s, USER_CERT_KEY)?,
                    key: text(s, USER_KEY_KEY)?,
                })
            });
            let why = match &current {
                None => Some("there was none".to_owned()),
                Some(current) => pki::reissue_reason(current, &clients_ca.cert, &name, &[], now),
            };
            let issued = match (why, current) {
                (None, Some(current)) => current,
                (why, _) => {
                    let issued = match pki::issue(&clients_ca, &name, &[], now) {
                        Ok(issued) => issued,
                        Err(error) => {
                            return Ok(Credentials::Waiting(Standing::Stalled {
                                reason: "CertificateNotIssued",
                                message: format!(
                                    "the certificate of {name} could not be issued from the \
                                     clients CA: {error}"
                                ),
                            }));
                        }
                    };
                    changed = Some(format!(
                        "issued the certificate of {name} (User:CN={name}) in Secret {name}: {}",
                        why.unwrap_or_default()
                    ));
                    issued
                }
            };
            data.insert(USER_CERT_KEY.to_owned(), issued.cert);
            data.insert(USER_KEY_KEY.to_owned(), issued.key);
            write_secret(user, &secrets, found.as_ref(), &data).await?;
        }
    }
    Ok(Credentials::InPlace { changed })
}

/// 32 random bytes as hex.
fn random_password() -> String {
    ScramCredential::random_salt()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes the User's Secret, owned by it, unless it already holds exactly `data`.
async fn write_secret(
    user: &User,
    secrets: &Api<Secret>,
    found: Option<&Secret>,
    data: &BTreeMap<String, String>,
) -> Result<(), Error> {
    let data: BTreeMap<String, ByteString> = data
        .iter()
        .map(|(k, v)| (k.clone(), ByteString(v.as_bytes().to_vec())))
        .collect();
    if found.and_then(|s| s.data.as_ref()) == Some(&data) {
        return Ok(());
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(user.name_any()),
            namespace: user.namespace(),
            labels: Some(BTreeMap::from([
                (
                    "app.kubernetes.io/managed-by".to_owned(),
                    "strand-operator".to_owned(),
                ),
                (
                    "strand.dev/cluster".to_owned(),
                    user.spec.cluster_ref.name.clone(),
                ),
            ])),
            owner_references: user.controller_owner_ref(&()).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(data),
        ..Secret::default()
    };
    secrets
        .patch(
            &user.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await?;
    Ok(())
}

/// Writes the User's status if it changed, with a Warning Event when it newly stalls.
async fn finish<A: AdminApi>(
    user: &User,
    namespace: &str,
    ctx: &Context<A>,
    cluster_id: Option<&str>,
    nothing: Vec<String>,
    standing: Standing,
) -> Result<(), Error> {
    let status = plan::status(user, cluster_id, nothing, &standing, Timestamp::now());
    let old = user.status.clone().unwrap_or_default();
    ctx.metrics.stands(
        "User",
        format!("{namespace}/{}", user.name_any()),
        Some(standing.condition()),
    );
    ctx.warn_on_new_stall(user, &old.conditions, &standing)
        .await;
    if status == old {
        return Ok(());
    }
    ctx.write_status(user, &status).await
}

/// The User is being deleted: its principal loses every ACL and its SCRAM credential, so
/// neither a new connection nor a request on an open one is allowed any more. Its Secret goes
/// with it (garbage collection, by the owner reference).
async fn revoke<A: AdminApi>(
    user: &User,
    namespace: &str,
    ctx: &Context<A>,
) -> Result<Action, Error> {
    let status = user.status.clone().unwrap_or_default();
    let Some(bound) = status.cluster_id.as_deref() else {
        info!("nothing was ever made for this User");
        return Ok(Action::await_change());
    };
    let Some(cluster) = live_cluster(ctx, namespace, &user.spec.cluster_ref.name).await? else {
        info!("the Cluster is gone; releasing the finalizer");
        return Ok(Action::await_change());
    };
    let names = ClusterNames::of(&cluster)?;
    crate::cluster::tls::use_admin_certificate(ctx, &names).await?;
    let address = names.admin_address();
    let cluster_id = ctx.admin.describe_cluster(&address).await?.cluster_id;
    if cluster_id != bound {
        info!(%cluster_id, %bound, "the Cluster is another cluster now; nothing to revoke there");
        return Ok(Action::await_change());
    }
    let principal = plan::principal(user);
    let deleted = ctx
        .admin
        .delete_acls(
            &address,
            AclFilter {
                principal: Some(principal.clone()),
                pattern_type: "Any".to_owned(),
                ..AclFilter::default()
            },
        )
        .await?;
    let mut scram = false;
    let mut certificate = false;
    match user.spec.authentication.type_ {
        UserAuthenticationType::ScramSha512 => {
            scram = ctx
                .admin
                .delete_scram_user(&address, &user.name_any())
                .await?;
        }
        UserAuthenticationType::Tls => {
            // The certificate goes on the clients CA's CRL, so it no longer authenticates
            // at all (its Secret, owned by the User, still holds it until the User is gone).
            let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
            let uid = user.metadata.uid.clone().unwrap_or_default();
            let cert = secrets
                .get_opt(&user.name_any())
                .await?
                .filter(|s| s.owner_references().iter().any(|o| o.uid == uid))
                .and_then(|s| text(&s, USER_CERT_KEY));
            match cert {
                Some(cert) => {
                    let who = format!("{namespace}/{}", user.name_any());
                    certificate =
                        crate::cluster::tls::revoke_client_certificate(ctx, &names, &who, &cert)
                            .await?;
                }
                None => warn!("the User's Secret holds no certificate to revoke"),
            }
        }
    }
    info!(%principal, acls = deleted.len(), scram, certificate, "revoked");
    Ok(Action::await_change())
}
