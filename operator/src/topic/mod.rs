//! The Topic reconciler: the I/O shell around [`plan`]. It reads the Topic's Cluster and the
//! topic through the admin API, makes the one call the plan asks for, and writes status only
//! when it changed, so an unchanged Topic costs no write.

pub mod plan;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalize, finalizer};
use kube::runtime::reflector::ObjectRef;
use strand_proto::admin::{DeleteTopicRequest, ErrorReason, TopicDescription};
use tracing::{info, instrument};

use crate::admin::{AdminApi, AdminError};
use crate::cluster::live_cluster;
use crate::conditions::{Standing, paused};
use crate::context::{Context, Error, is_paused};
use crate::crd::condition::PAUSED;
use crate::crd::{Cluster, DeletionPolicy, Topic, TopicStatus};
use crate::desired::ClusterNames;
use plan::{Plan, Stall};

/// The finalizer that keeps a Topic until its topic is deleted or retained.
pub const FINALIZER: &str = "strand.dev/topic";

/// How often a Ready Topic is compared with its topic, to notice changes made around it.
const RESYNC: Duration = Duration::from_secs(300);
/// How soon a Topic that is getting there is looked at again.
const PROGRESS: Duration = Duration::from_secs(10);

/// Reconciles one Topic.
#[instrument(skip_all, fields(topic = %topic.name_any(), namespace = topic.namespace()))]
pub async fn reconcile<A: AdminApi>(
    topic: Arc<Topic>,
    ctx: Arc<Context<A>>,
) -> Result<Action, Error> {
    ctx.metrics.reconciled("Topic");
    let _timer = ctx.metrics.timer("Topic");
    let key = format!(
        "{}/{}",
        topic.namespace().unwrap_or_default(),
        topic.name_any()
    );
    let namespace = topic
        .namespace()
        .ok_or_else(|| Error::MissingNamespace(topic.name_any()))?;
    if is_paused(&*topic) {
        info!("paused by annotation");
        let old = topic.status.clone().unwrap_or_default();
        let status = TopicStatus {
            conditions: paused(&old.conditions, topic.metadata.generation, Timestamp::now()),
            ..old.clone()
        };
        if status != old {
            ctx.write_status(&*topic, &status).await?;
        }
        ctx.metrics.stands("Topic", key, Some(PAUSED));
        return Ok(Action::await_change());
    }
    let topics: Api<Topic> = Api::namespaced(ctx.client.clone(), &namespace);
    let action = finalizer(&topics, FINALIZER, topic, |event| async {
        match event {
            Finalize::Apply(topic) => apply(&topic, &namespace, &ctx).await,
            Finalize::Cleanup(topic) => {
                ctx.metrics.stands("Topic", key.clone(), None);
                cleanup(&topic, &namespace, &ctx).await
            }
        }
    })
    .await
    .map_err(|error| Error::Finalizer(Box::new(error)))?;
    Ok(action)
}

/// The Topics that name `cluster`, among `topics`: the ones to look at again when it appears,
/// changes or goes.
pub fn topics_of(cluster: &Cluster, topics: &[Arc<Topic>]) -> Vec<ObjectRef<Topic>> {
    let namespace = cluster.namespace();
    let name = cluster.name_any();
    topics
        .iter()
        .filter(|topic| topic.namespace() == namespace && topic.spec.cluster_ref.name == name)
        .map(|topic| ObjectRef::from_obj(&**topic))
        .collect()
}

/// What an error leaves the Topic to do: wait out a backoff that grows per Topic.
pub fn error_policy<A: AdminApi>(topic: Arc<Topic>, error: &Error, ctx: Arc<Context<A>>) -> Action {
    ctx.metrics.failed("Topic");
    let delay = ctx.backoff.failed(&*topic);
    tracing::warn!(topic = %topic.name_any(), %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

async fn apply<A: AdminApi>(
    topic: &Topic,
    namespace: &str,
    ctx: &Context<A>,
) -> Result<Action, Error> {
    let Some(name) = topic.kafka_name().map(str::to_owned) else {
        return Err(Error::MissingName);
    };
    let Some(cluster) = live_cluster(ctx, namespace, &topic.spec.cluster_ref.name).await? else {
        let stall = Stall {
            reason: "ClusterNotFound",
            message: format!(
                "Cluster {} does not exist in namespace {namespace}; create it or fix \
                 spec.clusterRef",
                topic.spec.cluster_ref.name
            ),
        };
        finish(topic, namespace, ctx, None, None, stalled(stall)).await?;
        return Ok(Action::requeue(RESYNC));
    };
    let names = ClusterNames::of(&cluster)?;
    crate::cluster::tls::use_admin_certificate(ctx, &names).await?;
    let address = names.admin_address();
    let outcome = converge(topic, &name, &address, ctx).await;
    let (cluster_id, observed, standing, error) = match outcome {
        Ok((cluster_id, observed, standing)) => (Some(cluster_id), observed, standing, None),
        Err(error) if error.is_transient() => {
            let standing = Standing::Reconciling {
                reason: error.reason_word(),
                message: error.to_string(),
            };
            (None, None, standing, Some(error))
        }
        Err(error) => {
            let standing = stalled(Stall {
                reason: error.reason_word(),
                message: format!("the cluster refused topic {name}: {error}"),
            });
            (None, None, standing, None)
        }
    };
    let requeue = match standing {
        Standing::Ready { .. } | Standing::Stalled { .. } => RESYNC,
        Standing::Reconciling { .. } => PROGRESS,
    };
    finish(
        topic,
        namespace,
        ctx,
        cluster_id.as_deref(),
        observed.as_ref(),
        standing,
    )
    .await?;
    if let Some(error) = error {
        // Status says what is wrong; the error makes the controller back off this Topic.
        return Err(error.into());
    }
    ctx.backoff.succeeded(topic);
    Ok(Action::requeue(requeue))
}

fn stalled(stall: Stall) -> Standing {
    Standing::Stalled {
        reason: stall.reason,
        message: stall.message,
    }
}

/// Brings the topic to the spec with at most one write, and says where it stands: the
/// cluster's id, the topic as the cluster last described it, and the standing.
async fn converge<A: AdminApi>(
    topic: &Topic,
    name: &str,
    address: &str,
    ctx: &Context<A>,
) -> Result<(String, Option<TopicDescription>, Standing), AdminError> {
    let cluster_id = ctx.admin.describe_cluster(address).await?.cluster_id;
    let observed = ctx.admin.describe_topic(address, name).await?;
    match plan::plan(topic, name, &cluster_id, observed.as_ref()) {
        Plan::Stalled(stall) => {
            // A same-named topic of another cluster says nothing about this Topic's, and must
            // not reach its status (nor, by `plan::status`, a topic another owner manages).
            let bound = topic.status.as_ref().and_then(|s| s.cluster_id.as_deref());
            let observed = observed.filter(|_| bound.is_none_or(|b| b == cluster_id));
            Ok((cluster_id, observed, stalled(stall)))
        }
        Plan::InSync => {
            let observed = observed.ok_or_else(|| AdminError::Unavailable {
                address: address.to_owned(),
                message: format!("topic {name} was described as in sync but is missing"),
            })?;
            let standing = plan::standing_of(&observed);
            Ok((cluster_id, Some(observed), standing))
        }
        Plan::Create(request) => {
            let note = format!(
                "created topic {name} ({} partitions, RF {})",
                request.partitions, request.replication_factor
            );
            let created = ctx.admin.create_topic(address, request).await?;
            info!(%note);
            ctx.publish(topic, EventType::Normal, "Created", "CreateTopic", note)
                .await;
            let standing = plan::standing_of(&created);
            Ok((cluster_id, Some(created), standing))
        }
        Plan::Update {
            request,
            changes,
            adopts,
        } => {
            let updated = ctx.admin.update_topic(address, request).await?;
            let note = format!("{name}: {}", changes.join(", "));
            info!(%note);
            let (reason, action) = if adopts {
                ("Adopted", "AdoptTopic")
            } else {
                ("Updated", "UpdateTopic")
            };
            ctx.publish(topic, EventType::Normal, reason, action, note)
                .await;
            let standing = plan::standing_of(&updated);
            Ok((cluster_id, Some(updated), standing))
        }
    }
}

/// Writes the Topic's status if it changed, and publishes a Warning Event when the Topic
/// newly stalls (or stalls for a new reason), so a stalled Topic does not repeat it.
async fn finish<A>(
    topic: &Topic,
    namespace: &str,
    ctx: &Context<A>,
    cluster_id: Option<&str>,
    observed: Option<&TopicDescription>,
    standing: Standing,
) -> Result<(), Error>
where
    A: AdminApi,
{
    let status = plan::status(topic, cluster_id, observed, &standing, Timestamp::now());
    let old = topic.status.clone().unwrap_or_default();
    ctx.metrics.stands(
        "Topic",
        format!("{namespace}/{}", topic.name_any()),
        Some(standing.condition()),
    );
    ctx.warn_on_new_stall(topic, &old.conditions, &standing)
        .await;
    if status == old {
        return Ok(());
    }
    ctx.write_status(topic, &status).await
}

/// The Topic is being deleted: delete the topic unless the policy retains it or the Topic's
/// cluster is gone, then let the finalizer go.
async fn cleanup<A: AdminApi>(
    topic: &Topic,
    namespace: &str,
    ctx: &Context<A>,
) -> Result<Action, Error> {
    if topic.spec.deletion_policy == DeletionPolicy::Retain {
        info!("deletion policy Retain: the topic stays");
        return Ok(Action::await_change());
    }
    let status = topic.status.clone().unwrap_or_default();
    let (Some(bound), Some(name)) = (status.cluster_id.as_deref(), topic.kafka_name()) else {
        info!("no topic was ever created for this Topic");
        return Ok(Action::await_change());
    };
    let Some(cluster) = live_cluster(ctx, namespace, &topic.spec.cluster_ref.name).await? else {
        info!("the Cluster is gone; releasing the finalizer");
        return Ok(Action::await_change());
    };
    let names = ClusterNames::of(&cluster)?;
    crate::cluster::tls::use_admin_certificate(ctx, &names).await?;
    let address = names.admin_address();
    let cluster_id = ctx.admin.describe_cluster(&address).await?.cluster_id;
    if cluster_id != bound {
        info!(%cluster_id, %bound, "the Cluster is another cluster now; its topic is left alone");
        return Ok(Action::await_change());
    }
    let request = DeleteTopicRequest {
        name: name.to_owned(),
        topic_id: status.topic_id.unwrap_or_default(),
        // Deleted only if this Topic still manages it.
        expected_owner: Some(topic.owner()),
    };
    match ctx.admin.delete_topic(&address, request).await {
        Ok(deleted) => info!(deleted, "topic deleted"),
        Err(AdminError::Refused {
            reason: ErrorReason::NotOwner | ErrorReason::InternalTopic,
            message,
            ..
        }) => {
            let note = format!("topic {name} was not deleted: {message}");
            info!(%note);
            ctx.publish(topic, EventType::Warning, "NotDeleted", "DeleteTopic", note)
                .await;
        }
        Err(error) => return Err(error.into()),
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn topic(namespace: &str, name: &str, cluster: &str) -> Arc<Topic> {
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "strand.dev/v1alpha1", "kind": "Topic",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"clusterRef": {"name": cluster}, "partitions": 1, "replicationFactor": 1},
            }))
            .unwrap(),
        )
    }

    #[test]
    fn a_cluster_change_requeues_only_its_own_topics() {
        let cluster: Cluster = serde_json::from_value(json!({
            "apiVersion": "strand.dev/v1alpha1", "kind": "Cluster",
            "metadata": {"name": "main", "namespace": "a"},
            "spec": {"replicas": 1, "image": "strand", "storage": {"size": "1Gi"}},
        }))
        .unwrap();
        let topics = [
            topic("a", "orders", "main"),
            topic("a", "other", "second"),
            topic("b", "same-name-elsewhere", "main"),
            topic("a", "payments", "main"),
        ];
        let names: Vec<String> = topics_of(&cluster, &topics)
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["orders", "payments"]);
    }
}
