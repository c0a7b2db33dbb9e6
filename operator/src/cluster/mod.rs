//! The Cluster reconciler: applies the builders' five objects by server-side apply with one
//! field manager, and reports status from the broker pods and the admin API's
//! DescribeCluster and RebalanceStatus. A scale-down drains first: the brokers of the removed
//! ordinals are decommissioned, and the StatefulSet shrinks only once they hold nothing.

mod external;
pub(crate) mod listener_certs;
pub mod plan;
mod storage;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::{info, instrument, warn};

use crate::admin::AdminApi;
use crate::conditions::{Standing, paused};
use crate::context::{Context, Error, FIELD_MANAGER, is_paused};
use crate::crd::condition::PAUSED;
use crate::crd::{Cluster, ClusterStatus, ListenerSpec, ListenerType};
use crate::desired::{
    CONFIG_HASH_ANNOTATION, ClusterNames, Desired, DesiredError, RACK_ANNOTATION, desired,
    label_selector,
};
use plan::{Described, Pods};

/// How often a Ready Cluster's status is refreshed from its pods and brokers: leaders and
/// replica counts change without any Kubernetes object changing.
const RESYNC: Duration = Duration::from_secs(15);
/// How soon a Cluster that is getting there is looked at again.
const PROGRESS: Duration = Duration::from_secs(10);

/// Reconciles one Cluster.
#[instrument(skip_all, fields(cluster = %cluster.name_any(), namespace = cluster.namespace()))]
pub async fn reconcile<A: AdminApi>(
    cluster: Arc<Cluster>,
    ctx: Arc<Context<A>>,
) -> Result<Action, Error> {
    ctx.metrics.reconciled("Cluster");
    let _timer = ctx.metrics.timer("Cluster");
    let key = format!(
        "{}/{}",
        cluster.namespace().unwrap_or_default(),
        cluster.name_any()
    );
    if cluster.meta().deletion_timestamp.is_some() {
        // Garbage collection removes what the Cluster owns.
        ctx.metrics.stands("Cluster", key, None);
        return Ok(Action::await_change());
    }
    let names = ClusterNames::of(&cluster)?;
    let namespace = names.namespace().to_owned();
    if is_paused(&*cluster) {
        info!("paused by annotation");
        let old = cluster.status.clone().unwrap_or_default();
        let status = ClusterStatus {
            conditions: paused(
                &old.conditions,
                cluster.metadata.generation,
                Timestamp::now(),
            ),
            ..old.clone()
        };
        write_status(&ctx, &cluster, &old, status).await?;
        ctx.metrics.stands("Cluster", key, Some(PAUSED));
        return Ok(Action::await_change());
    }
    let mut objects = match desired(&cluster) {
        Ok(objects) => objects,
        Err(DesiredError::Setting { source, .. }) => {
            let standing = Standing::Stalled {
                reason: "InvalidBrokerConfig",
                message: format!("{source}; the brokers keep running with their last settings"),
            };
            stall(&ctx, &cluster, &names, standing).await?;
            return Ok(Action::requeue(RESYNC));
        }
        Err(error) => return Err(error.into()),
    };

    let stateful_sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let existing = stateful_sets.get_opt(&names.stateful_set()).await?;
    let current = existing
        .as_ref()
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.replicas);
    let claims = list_claims(&ctx, &namespace, &names).await?;
    let mut storage_standing = None;
    match &existing {
        None => {
            let created = cluster
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or(i64::MAX, |t| t.0.as_second());
            let ages: Vec<(String, i64)> = claims
                .iter()
                .map(|c| {
                    let created = c.metadata.creation_timestamp.as_ref();
                    (c.name_any(), created.map_or(0, |t| t.0.as_second()))
                })
                .collect();
            let retained = plan::retained_volumes(created, &ages);
            if !retained.is_empty() {
                if !cluster.spec.adopt_retained_volumes {
                    let standing = Standing::Stalled {
                        reason: "RetainedVolumes",
                        message: format!(
                            "found {} volumes of an earlier Cluster {} ({}), made before this \
                             one; no broker was started. To start empty, delete them (kubectl \
                             delete pvc -n {namespace} -l {}); to start the brokers on that \
                             cluster's data, set spec.adoptRetainedVolumes: true",
                            retained.len(),
                            names.cluster(),
                            retained.join(", "),
                            label_selector(names.cluster()),
                        ),
                    };
                    stall(&ctx, &cluster, &names, standing).await?;
                    return Ok(Action::requeue(PROGRESS));
                }
                ctx.publish(
                    &*cluster,
                    EventType::Normal,
                    "AdoptedVolumes",
                    "CreateBrokers",
                    format!(
                        "starting the brokers on {} volumes of an earlier Cluster ({}), as \
                         spec.adoptRetainedVolumes asks",
                        retained.len(),
                        retained.join(", ")
                    ),
                )
                .await;
            }
        }
        Some(existing) => {
            storage_standing =
                storage::converge(&ctx, &cluster, existing, &claims, &mut objects).await;
            announce_changes(&ctx, &cluster, existing, &objects).await;
        }
    }
    let owner = cluster
        .controller_owner_ref(&())
        .ok_or_else(|| DesiredError::MissingUid {
            name: names.cluster().to_owned(),
        })?;
    let broker_pods = list_pods(&ctx, &namespace, names.cluster()).await?;
    let listeners = cluster.spec.listeners();
    let has = |kind: ListenerType| listeners.iter().any(|l| l.type_ == kind);
    let nodes = if has(ListenerType::Nodeport) {
        node_addresses(&ctx, &broker_pods).await?
    } else {
        Vec::new()
    };
    let load_balancers = if has(ListenerType::Loadbalancer) {
        external::load_balancer_addresses(&ctx, &names).await?
    } else {
        Vec::new()
    };
    // What clients of each listener reach the brokers by, for its certificate: every broker
    // that may run has its Ingress host there, the server name its clients ask for.
    let may_run = cluster.spec.replicas.max(current.unwrap_or(0));
    let names_of = |listener: &ListenerSpec| {
        listener_certs::listener_names(&names, listener, &nodes, &load_balancers, may_run)
    };
    // The brokers' own certificate names the external ones too (the internal ones it has).
    let mut external_names: Vec<String> = listeners
        .iter()
        .filter(|l| l.type_ != ListenerType::Internal)
        .flat_map(&names_of)
        .collect();
    external_names.sort();
    external_names.dedup();
    // The template of a StatefulSet every broker runs: what the brokers have, for CA renewals.
    let rolled = existing
        .as_ref()
        .filter(|set| plan::rolled(set))
        .and_then(|set| {
            set.spec
                .as_ref()?
                .template
                .metadata
                .as_ref()?
                .annotations
                .as_ref()
        });
    let certificates =
        match tls::ensure(&ctx, &cluster, &names, &owner, &external_names, rolled).await? {
            Ok(certificates) => certificates,
            Err(standing) => {
                stall(&ctx, &cluster, &names, standing).await?;
                return Ok(Action::requeue(RESYNC));
            }
        };
    if let Some(annotations) = template_annotations(&mut objects.stateful_set) {
        annotations.extend(certificates.annotations.clone());
    }
    let pods = count(&broker_pods);
    let address = names.admin_address();
    let described = if pods.ready == 0 {
        Described::NotAsked
    } else {
        match ctx.admin.describe_cluster(&address).await {
            Ok(description) => Described::Answer(description),
            Err(error) => Described::Failed(error.to_string()),
        }
    };
    let scaling_down = current.is_some_and(|c| cluster.spec.replicas < c);
    let largest = if scaling_down && matches!(described, Described::Answer(_)) {
        largest_factor(&ctx, &address).await
    } else {
        None
    };
    let sizing = plan::sizing(&cluster, current, &described, &largest);
    let mut refused = None;
    let mut changed = false;
    for id in &sizing.decommission {
        match ctx.admin.decommission_broker(&address, *id).await {
            Ok(_) => {
                changed = true;
                info!(
                    broker = id,
                    "decommissioning broker before its pod is removed"
                );
                ctx.publish(
                    &*cluster,
                    EventType::Normal,
                    "DecommissioningBroker",
                    "ScaleDown",
                    format!("broker {id} is draining: its replicas move to other brokers"),
                )
                .await;
            }
            Err(error) if error.is_transient() => {
                warn!(broker = id, %error, "decommission not sent")
            }
            Err(error) => {
                refused = Some(Standing::Stalled {
                    reason: "DecommissionRefused",
                    message: format!("broker {id} cannot be decommissioned: {error}"),
                });
            }
        }
    }
    for id in &sizing.recommission {
        match ctx.admin.recommission_broker(&address, *id).await {
            Ok(_) => {
                changed = true;
                info!(broker = id, "broker within spec.replicas made active again");
            }
            Err(error) => warn!(broker = id, %error, "recommission not done"),
        }
    }
    if let Some(spec) = objects.stateful_set.spec.as_mut() {
        spec.replicas = Some(sizing.replicas);
    }
    if let Some(current) = current.filter(|c| *c != sizing.replicas) {
        let (reason, note) = if sizing.replicas > current {
            (
                "ScalingUp",
                "new brokers join and take replicas and leaders",
            )
        } else {
            ("ScalingDown", "the removed brokers were drained first")
        };
        ctx.publish(
            &*cluster,
            EventType::Normal,
            reason,
            "Scale",
            format!("brokers {current} → {}: {note}", sizing.replicas),
        )
        .await;
    }
    // The status shows brokers as they are after the calls just made.
    let described = if changed {
        match ctx.admin.describe_cluster(&address).await {
            Ok(description) => Described::Answer(description),
            Err(_) => described,
        }
    } else {
        described
    };

    apply(&ctx, &namespace, &objects.config_map).await?;
    apply(&ctx, &namespace, &objects.headless_service).await?;
    apply(&ctx, &namespace, &objects.client_service).await?;
    // Every broker pod that may run has its external Services, and its file of advertised
    // addresses, before the StatefulSet makes the pod.
    let host_ip = broker_pods
        .iter()
        .filter_map(|p| p.status.as_ref()?.host_ip.as_deref())
        .next();
    let external = if listeners.iter().any(|l| l.type_.external()) {
        let brokers = sizing
            .replicas
            .max(cluster.spec.replicas)
            .max(current.unwrap_or(0));
        let external =
            external::converge(&ctx, &names, &owner, &listeners, brokers, host_ip).await?;
        if listeners
            .iter()
            .any(|l| matches!(l.type_, ListenerType::Loadbalancer | ListenerType::Ingress))
            && let Some(annotations) = template_annotations(&mut objects.stateful_set)
        {
            annotations.insert(
                external::ADVERTISED_ANNOTATION.to_owned(),
                external.fingerprint.clone(),
            );
        }
        external
    } else {
        external::External::default()
    };
    // A listener with a certificate of its own needs its Secret before a broker can serve it:
    // until it is there the StatefulSet is left as it is.
    let certificate_standing =
        listener_certs::converge(&ctx, &names, &owner, &listeners, names_of).await?;
    let applied_set = match certificate_standing {
        None => Some(apply(&ctx, &namespace, &objects.stateful_set).await?),
        Some(_) => None,
    };
    apply(&ctx, &namespace, &objects.pod_disruption_budget).await?;
    apply(&ctx, &namespace, &objects.network_policy).await?;

    if let Some(rack) = &cluster.spec.rack {
        label_racks(&ctx, &namespace, &rack.topology_key, &broker_pods).await?;
    }
    let progress = match described {
        Described::Answer(_) => ctx.admin.rebalance_status(&address).await.ok(),
        _ => None,
    };
    let standing = refused
        .or(sizing.standing)
        .or(storage_standing)
        .or(certificate_standing)
        .unwrap_or_else(|| plan::standing(&cluster, pods, &described));
    // A CA renewal under way, a rollout not finished, or a load balancer without an address,
    // holds a Ready Cluster back, saying what it waits for.
    let waiting = certificates
        .renewing
        .or_else(|| applied_set.as_ref().and_then(plan::rollout_standing))
        .or_else(|| plan::load_balancer_standing(&external.pending, Timestamp::now().as_second()));
    let standing = match (standing, waiting) {
        (Standing::Ready { .. }, Some(waiting)) => waiting,
        (standing, _) => standing,
    };
    let requeue = match standing {
        Standing::Ready { .. } | Standing::Stalled { .. } => RESYNC,
        Standing::Reconciling { .. } => PROGRESS,
    };
    let mut status = plan::status(
        &cluster,
        &names,
        pods,
        &described,
        &standing,
        progress.as_ref(),
        Timestamp::now(),
    );
    status.listeners = plan::listener_statuses(&cluster, &names, &external.bootstrap);
    let old = cluster.status.clone().unwrap_or_default();
    ctx.warn_on_new_stall(&*cluster, &old.conditions, &standing)
        .await;
    ctx.metrics
        .stands("Cluster", key, Some(standing.condition()));
    write_status(&ctx, &cluster, &old, status).await?;
    ctx.backoff.succeeded(&*cluster);
    Ok(Action::requeue(requeue))
}

/// Says why nothing was applied: the status keeps what it said of the brokers, with the
/// conditions of `standing`.
async fn stall<A: AdminApi>(
    ctx: &Context<A>,
    cluster: &Cluster,
    names: &ClusterNames,
    standing: Standing,
) -> Result<(), Error> {
    let old = cluster.status.clone().unwrap_or_default();
    ctx.warn_on_new_stall(cluster, &old.conditions, &standing)
        .await;
    ctx.metrics.stands(
        "Cluster",
        format!("{}/{}", names.namespace(), names.cluster()),
        Some(standing.condition()),
    );
    let generation = cluster.metadata.generation;
    let status = ClusterStatus {
        observed_generation: generation,
        conditions: standing.conditions(generation, &old.conditions, Timestamp::now()),
        ..old.clone()
    };
    write_status(ctx, cluster, &old, status).await
}

/// Writes the Cluster's status by server-side apply, only when it differs from `old`.
async fn write_status<A: AdminApi>(
    ctx: &Context<A>,
    cluster: &Cluster,
    old: &ClusterStatus,
    status: ClusterStatus,
) -> Result<(), Error> {
    if status == *old {
        return Ok(());
    }
    ctx.write_status(cluster, &status).await
}

/// Publishes an Event when applying `objects` will restart the brokers one by one (their
/// config or image changed).
async fn announce_changes<A: AdminApi>(
    ctx: &Context<A>,
    cluster: &Cluster,
    existing: &StatefulSet,
    objects: &Desired,
) {
    let template = |set: &StatefulSet| {
        let pod = set.spec.as_ref().map(|s| &s.template);
        let hash = pod
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(CONFIG_HASH_ANNOTATION).cloned());
        let image = pod
            .and_then(|t| t.spec.as_ref())
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.clone());
        (hash, image)
    };
    let (old_hash, old_image) = template(existing);
    let (new_hash, new_image) = template(&objects.stateful_set);
    // A template the operator never wrote (no hash, no image) is not a roll to announce.
    let changed = |old: &Option<String>, new: &Option<String>| old.is_some() && old != new;
    let what = match (
        changed(&old_hash, &new_hash),
        changed(&old_image, &new_image),
    ) {
        (_, true) => format!(
            "image {} → {}",
            old_image.unwrap_or_default(),
            new_image.unwrap_or_default()
        ),
        (true, false) => "broker config changed".to_owned(),
        (false, false) => return,
    };
    ctx.publish(
        cluster,
        EventType::Normal,
        "RollingRestart",
        "Roll",
        format!(
            "{what}: brokers restart one at a time, each after handing over its leaderships, \
             the next once it is ready again"
        ),
    )
    .await;
}

/// The data volumes of the Cluster's brokers.
async fn list_claims<A>(
    ctx: &Context<A>,
    namespace: &str,
    names: &ClusterNames,
) -> Result<Vec<PersistentVolumeClaim>, Error> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), namespace);
    let list = claims
        .list(&ListParams::default().labels(&label_selector(names.cluster())))
        .await?;
    let prefix = format!("data-{}-", names.stateful_set());
    Ok(list
        .items
        .into_iter()
        .filter(|c| c.name_any().starts_with(&prefix))
        .collect())
}

/// The largest replication factor among the cluster's topics, and a topic that has it; `None`
/// when the topics cannot be listed (the scale-down then waits for the drain refusal).
async fn largest_factor<A: AdminApi>(ctx: &Context<A>, address: &str) -> plan::LargestFactor {
    match ctx.admin.list_topics(address).await {
        Ok(topics) => topics
            .into_iter()
            .max_by_key(|t| t.replication_factor)
            .map(|t| (t.name, t.replication_factor)),
        Err(error) => {
            warn!(%error, "topics not listed");
            None
        }
    }
}

/// Cluster `name` in `namespace`, unless it is gone or being deleted: what a Topic or User
/// names in its `clusterRef`.
pub async fn live_cluster<A>(
    ctx: &Context<A>,
    namespace: &str,
    name: &str,
) -> Result<Option<Cluster>, Error> {
    let clusters: Api<Cluster> = Api::namespaced(ctx.client.clone(), namespace);
    let cluster = clusters.get_opt(name).await?;
    Ok(cluster.filter(|c| c.meta().deletion_timestamp.is_none()))
}

/// The annotations of the StatefulSet's pod template, for what the reconcile adds to them.
fn template_annotations(set: &mut StatefulSet) -> Option<&mut BTreeMap<String, String>> {
    let metadata = set.spec.as_mut()?.template.metadata.as_mut()?;
    Some(metadata.annotations.get_or_insert_with(BTreeMap::new))
}

/// The Cluster a broker pod belongs to, by its instance label; `None` for other pods.
pub fn cluster_of_pod(pod: &Pod) -> Option<ObjectRef<Cluster>> {
    let labels = pod.labels();
    let is_broker = labels.get("app.kubernetes.io/name").map(String::as_str) == Some("strand")
        && labels
            .get("app.kubernetes.io/component")
            .map(String::as_str)
            == Some("broker");
    if !is_broker {
        return None;
    }
    let cluster = labels.get("app.kubernetes.io/instance")?;
    Some(ObjectRef::new(cluster).within(&pod.namespace()?))
}

/// What an error leaves the Cluster to do: wait out a backoff that grows per Cluster.
pub fn error_policy<A: AdminApi>(
    cluster: Arc<Cluster>,
    error: &Error,
    ctx: Arc<Context<A>>,
) -> Action {
    ctx.metrics.failed("Cluster");
    let delay = ctx.backoff.failed(&*cluster);
    tracing::warn!(cluster = %cluster.name_any(), %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Server-side applies `object` with the operator's field manager, taking over fields another
/// manager set: the operator is the one owner of what a Cluster owns.
async fn apply<K, A>(ctx: &Context<A>, namespace: &str, object: &K) -> Result<K, Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + Serialize
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    Ok(api
        .patch(
            &object.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(object),
        )
        .await?)
}

/// The addresses of the nodes the broker pods run on (IP addresses and DNS names the nodes
/// report), which the brokers' certificate must name for clients of `nodeport` listeners.
async fn node_addresses<A>(ctx: &Context<A>, pods: &[Pod]) -> Result<Vec<String>, Error> {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let mut node_names: Vec<&str> = pods
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.as_deref())
        .collect();
    node_names.sort_unstable();
    node_names.dedup();
    let mut addresses = Vec::new();
    for name in node_names {
        let Some(node) = nodes.get_opt(name).await? else {
            continue;
        };
        for address in node.status.and_then(|s| s.addresses).unwrap_or_default() {
            if matches!(
                address.type_.as_str(),
                "InternalIP" | "ExternalIP" | "InternalDNS" | "ExternalDNS"
            ) && !addresses.contains(&address.address)
            {
                addresses.push(address.address);
            }
        }
    }
    addresses.sort();
    Ok(addresses)
}

async fn list_pods<A>(ctx: &Context<A>, namespace: &str, cluster: &str) -> Result<Vec<Pod>, Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels(&label_selector(cluster)))
        .await?;
    Ok(list.items)
}

fn count(pods: &[Pod]) -> Pods {
    let ready = pods
        .iter()
        .filter(|pod| {
            pod.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|conditions| {
                    conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                })
        })
        .count();
    Pods {
        total: i32::try_from(pods.len()).unwrap_or(i32::MAX),
        ready: i32::try_from(ready).unwrap_or(i32::MAX),
    }
}

/// Copies the rack of each scheduled broker pod's node (the value of its `topology_key`
/// label) into the pod's rack annotation, which the broker reads through the downward API:
/// the downward API cannot read node labels. A pod that already has it is left alone, since a
/// pod never moves to another node.
async fn label_racks<A>(
    ctx: &Context<A>,
    namespace: &str,
    topology_key: &str,
    pods: &[Pod],
) -> Result<(), Error> {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    for pod in pods {
        if pod.annotations().contains_key(RACK_ANNOTATION) {
            continue;
        }
        let Some(node_name) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
            continue;
        };
        let Some(node) = nodes.get_opt(node_name).await? else {
            continue;
        };
        let Some(rack) = node.labels().get(topology_key) else {
            warn!(
                node = node_name,
                topology_key, "node has no rack label; the broker starts without a rack"
            );
            continue;
        };
        let patch = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod.name_any(), "annotations": {RACK_ANNOTATION: rack}},
        });
        pod_api
            .patch(
                &pod.name_any(),
                &PatchParams::apply(FIELD_MANAGER),
                &Patch::Apply(&patch),
            )
            .await?;
        info!(pod = %pod.name_any(), %rack, "rack annotation set");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::selector_labels;

    #[test]
    fn broker_pods_map_to_their_cluster_and_other_pods_to_none() {
        let mut pod = Pod::default();
        pod.metadata.namespace = Some("streaming".to_owned());
        pod.metadata.labels = Some(selector_labels("events"));
        let cluster = cluster_of_pod(&pod).unwrap();
        assert_eq!(
            (cluster.name.as_str(), cluster.namespace.as_deref()),
            ("events", Some("streaming"))
        );
        pod.metadata.labels =
            Some([("app.kubernetes.io/instance".to_owned(), "events".to_owned())].into());
        assert!(cluster_of_pod(&pod).is_none());
    }
}
