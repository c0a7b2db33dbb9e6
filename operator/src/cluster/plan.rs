//! What a Cluster needs, decided without I/O: whether its StatefulSet may take the spec's
//! replica count, and the status its pods and the cluster's description give.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::jiff::Timestamp;
use strand_proto::admin::{ClusterDescription, RebalanceProgress};

use crate::conditions::Standing;
use crate::crd::{
    BrokerState, BrokerStatus, Cluster, ClusterStatus, ListenerStatus, ListenerType,
    RebalanceStatus,
};
use crate::desired::{ClusterNames, label_selector};

/// What a Cluster's size asks of its brokers and its StatefulSet.
#[derive(Debug, Clone, PartialEq)]
pub struct Sizing {
    /// The replica count to give the StatefulSet.
    pub replicas: i32,
    /// Brokers to decommission through the admin API: active brokers whose pods are to go.
    pub decommission: Vec<u32>,
    /// Brokers to make active again: draining or decommissioned brokers whose pods stay.
    pub recommission: Vec<u32>,
    /// Where the Cluster stands because of its size, when that decides it (a refused or
    /// draining scale-down).
    pub standing: Option<Standing>,
}

/// The largest replication factor among a cluster's topics, and a topic that has it.
pub type LargestFactor = Option<(String, u32)>;

/// The StatefulSet's size and the admin calls that get there.
///
/// A scale-down drains first: the brokers of the ordinals being removed (broker ids are pod
/// ordinals) are decommissioned, the StatefulSet keeps its size while any of them still holds
/// a replica, and shrinks once all are decommissioned. It is refused (Stalled) when fewer
/// brokers than a topic's replication factor would remain, and waits while the admin API
/// cannot be asked. Brokers within the spec's size that are draining or decommissioned (a
/// scale-down taken back) are made active again.
pub fn sizing(
    cluster: &Cluster,
    current: Option<i32>,
    described: &Described,
    largest: &LargestFactor,
) -> Sizing {
    let wanted = cluster.spec.replicas;
    let current = current.unwrap_or(wanted);
    let brokers = match described {
        Described::Answer(description) => description.brokers.as_slice(),
        _ => &[],
    };
    let keep = u32::try_from(wanted).unwrap_or(0);
    let recommission = brokers
        .iter()
        .filter(|b| b.broker_id < keep && b.state != "active")
        .map(|b| b.broker_id)
        .collect();
    let mut sizing = Sizing {
        replicas: wanted,
        decommission: Vec::new(),
        recommission,
        standing: None,
    };
    if wanted >= current {
        return sizing;
    }
    sizing.replicas = current;
    if let Some((topic, factor)) = largest
        && i64::from(*factor) > i64::from(wanted)
    {
        sizing.standing = Some(Standing::Stalled {
            reason: "ScaleDownBelowReplicationFactor",
            message: format!(
                "spec.replicas is {wanted} but topic {topic} has replication factor {factor}, \
                 which needs {factor} brokers: lower that topic's replication factor first, or \
                 set spec.replicas back to {current}"
            ),
        });
        return sizing;
    }
    if !matches!(described, Described::Answer(_)) {
        sizing.standing = Some(Standing::Reconciling {
            reason: "DrainingBrokers",
            message: format!(
                "spec.replicas is {wanted}; waiting for the admin API to drain brokers {wanted} \
                 to {} before removing their pods",
                current - 1
            ),
        });
        return sizing;
    }
    let leaving: Vec<&strand_proto::admin::BrokerDescription> = brokers
        .iter()
        .filter(|b| b.broker_id >= keep && b.broker_id < u32::try_from(current).unwrap_or(0))
        .collect();
    sizing.decommission = leaving
        .iter()
        .filter(|b| b.state == "active")
        .map(|b| b.broker_id)
        .collect();
    let draining: Vec<&&strand_proto::admin::BrokerDescription> = leaving
        .iter()
        .filter(|b| b.state != "decommissioned")
        .collect();
    if draining.is_empty() {
        // Every broker of the removed pods holds nothing (or never registered).
        sizing.replicas = wanted;
        return sizing;
    }
    let left: u32 = draining
        .iter()
        .map(|b| b.replica_count + b.leaving_count)
        .sum();
    let ids: Vec<String> = draining.iter().map(|b| b.broker_id.to_string()).collect();
    sizing.standing = Some(Standing::Reconciling {
        reason: "DrainingBrokers",
        message: format!(
            "draining broker{} {} before removing {}: {left} replica{} left to move",
            if ids.len() == 1 { "" } else { "s" },
            ids.join(", "),
            if ids.len() == 1 {
                "its pod"
            } else {
                "their pods"
            },
            if left == 1 { "" } else { "s" },
        ),
    });
    sizing
}

/// Broker pods that exist and that are ready.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pods {
    /// Pods that exist.
    pub total: i32,
    /// Pods whose `Ready` condition is true.
    pub ready: i32,
}

/// The cluster's description, or why there is none.
#[derive(Debug, Clone, PartialEq)]
pub enum Described {
    /// The admin API answered.
    Answer(ClusterDescription),
    /// No broker pod is ready, so the admin API was not asked.
    NotAsked,
    /// The admin API failed; the message says how.
    Failed(String),
}

/// Where the Cluster stands, when nothing held back its spec.
pub fn standing(cluster: &Cluster, pods: Pods, described: &Described) -> Standing {
    let wanted = cluster.spec.replicas;
    if pods.ready < wanted {
        return Standing::Reconciling {
            reason: "BrokersNotReady",
            message: format!("{} of {wanted} broker pods are ready", pods.ready),
        };
    }
    let description = match described {
        Described::Answer(description) => description,
        Described::NotAsked => {
            return Standing::Reconciling {
                reason: "BrokersNotReady",
                message: "no broker pod is ready".to_owned(),
            };
        }
        Described::Failed(message) => {
            return Standing::Reconciling {
                reason: "ClusterUnavailable",
                message: message.clone(),
            };
        }
    };
    let alive = description.brokers.iter().filter(|b| b.alive).count();
    if alive < usize::try_from(wanted).unwrap_or(0) {
        return Standing::Reconciling {
            reason: "BrokersNotRegistered",
            message: format!("{alive} of {wanted} brokers are registered and alive"),
        };
    }
    if description.leaderless_partitions > 0 {
        return Standing::Reconciling {
            reason: "LeaderlessPartitions",
            message: format!(
                "{} partitions have no leader",
                description.leaderless_partitions
            ),
        };
    }
    if description.under_replicated_partitions > 0 {
        return Standing::Reconciling {
            reason: "UnderReplicatedPartitions",
            message: format!(
                "{} partitions are under-replicated",
                description.under_replicated_partitions
            ),
        };
    }
    Standing::Ready {
        reason: "ClusterReady",
        message: format!(
            "{wanted} brokers ready, controller is broker {}",
            controller(description)
        ),
    }
}

fn controller(description: &ClusterDescription) -> String {
    description
        .controller_id
        .map_or_else(|| "unknown".to_owned(), |id| id.to_string())
}

/// The pod a broker runs in: the first label of its advertised gRPC host, when that is one of
/// this Cluster's pods (`<cluster>-<ordinal>`).
fn pod_of(cluster: &str, grpc_address: &str) -> Option<String> {
    let host = grpc_address.split(':').next()?;
    let pod = host.split('.').next()?;
    let ordinal = pod.strip_prefix(cluster)?.strip_prefix('-')?;
    (!ordinal.is_empty() && ordinal.bytes().all(|b| b.is_ascii_digit())).then(|| pod.to_owned())
}

fn saturate(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Whether every pod of `set` runs its current template and is ready: a rollout is done.
pub fn rolled(set: &StatefulSet) -> bool {
    let (Some(spec), Some(status)) = (set.spec.as_ref(), set.status.as_ref()) else {
        return false;
    };
    let replicas = spec.replicas.unwrap_or(1);
    status.observed_generation == set.metadata.generation
        && status.update_revision.is_some()
        && status.update_revision == status.current_revision
        && status.updated_replicas == Some(replicas)
        && status.ready_replicas == Some(replicas)
}

/// A rollout of the StatefulSet `set` (as the API server returned it from the apply) that has
/// not finished: the brokers restart one at a time to run a new pod template. `None` when
/// every pod runs the current template, or when the StatefulSet controller has not seen a
/// change yet that changes no template (pods not ready are [`standing`]'s business).
pub fn rollout_standing(set: &StatefulSet) -> Option<Standing> {
    if rolled(set) {
        return None;
    }
    let status = set.status.as_ref()?;
    let seen = status.observed_generation == set.metadata.generation;
    let same_template = status.update_revision.is_some()
        && status.update_revision == status.current_revision
        && status.updated_replicas == Some(status.replicas);
    if seen && same_template {
        return None;
    }
    let replicas = set.spec.as_ref()?.replicas.unwrap_or(1);
    let updated = if seen {
        status.updated_replicas.unwrap_or(0)
    } else {
        0
    };
    Some(Standing::Reconciling {
        reason: "RollingRestart",
        message: format!(
            "brokers restart one at a time to run the new pod template, each after handing \
             over its leaderships: {updated} of {replicas} done"
        ),
    })
}

/// Where clients of each listener bootstrap: the bootstrap Service inside the cluster, or for
/// an external listener what `external` says (a node's address and the bootstrap Service's
/// node port, or its load balancer's address), once known.
pub fn listener_statuses(
    cluster: &Cluster,
    names: &ClusterNames,
    external: &BTreeMap<String, String>,
) -> Vec<ListenerStatus> {
    cluster
        .spec
        .listeners()
        .iter()
        .map(|listener| ListenerStatus {
            name: listener.name.clone(),
            type_: listener.type_,
            security_protocol: listener.protocol().to_owned(),
            bootstrap_servers: match listener.type_ {
                ListenerType::Internal => Some(names.bootstrap_servers(listener)),
                _ => external.get(&listener.name).cloned(),
            },
        })
        .collect()
}

/// How long a LoadBalancer Service may go without an address before the Cluster says the
/// Kubernetes cluster may not provide load balancers.
pub const LOAD_BALANCER_TIMEOUT_SECONDS: i64 = 300;

/// What LoadBalancer Services still without an address (name, creation time in Unix seconds)
/// mean at `now`: waiting, or, past [`LOAD_BALANCER_TIMEOUT_SECONDS`], stalled.
pub fn load_balancer_standing(pending: &[(String, i64)], now: i64) -> Option<Standing> {
    let oldest = pending.iter().min_by_key(|(_, created)| *created)?;
    let waited = now - oldest.1;
    let names: Vec<&str> = pending.iter().map(|(name, _)| name.as_str()).collect();
    Some(if waited >= LOAD_BALANCER_TIMEOUT_SECONDS {
        Standing::Stalled {
            reason: "LoadBalancerNotProvisioned",
            message: format!(
                "{} has had no load balancer address for {} minutes: this Kubernetes cluster \
                 may have no LoadBalancer controller. Clients outside cannot reach the \
                 loadbalancer listener; clients inside are unaffected. Use a nodeport \
                 listener instead, or install a load balancer controller",
                names.join(", "),
                waited / 60
            ),
        }
    } else {
        Standing::Reconciling {
            reason: "WaitingForLoadBalancer",
            message: format!(
                "waiting for load balancer addresses of {}; the brokers restart once to \
                 advertise them",
                names.join(", ")
            ),
        }
    })
}

/// The status a Cluster should have.
pub fn status(
    cluster: &Cluster,
    names: &ClusterNames,
    pods: Pods,
    described: &Described,
    standing: &Standing,
    progress: Option<&RebalanceProgress>,
    now: Timestamp,
) -> ClusterStatus {
    let old = cluster.status.clone().unwrap_or_default();
    let generation = cluster.metadata.generation;
    let mut status = ClusterStatus {
        observed_generation: generation,
        conditions: standing.conditions(generation, &old.conditions, now),
        replicas: pods.total,
        ready_replicas: pods.ready,
        bootstrap_servers: names.internal_bootstrap_servers(&cluster.spec.listeners()),
        label_selector: Some(label_selector(names.cluster())),
        ..old
    };
    if let Described::Answer(description) = described {
        status.controller_id = description.controller_id.map(i64::from);
        status.under_replicated_partitions = saturate(description.under_replicated_partitions);
        status.leaderless_partitions = saturate(description.leaderless_partitions);
        // A decommissioned broker whose pod is gone (scaled away) is history, not a broker
        // of the cluster.
        let gone = |broker: &&strand_proto::admin::BrokerDescription| {
            broker.state == "decommissioned"
                && pod_of(names.cluster(), &broker.grpc_address)
                    .and_then(|pod| pod.rsplit('-').next()?.parse::<i32>().ok())
                    .is_none_or(|ordinal| ordinal >= cluster.spec.replicas)
        };
        status.brokers = description
            .brokers
            .iter()
            .filter(|broker| !gone(broker))
            .map(|broker| BrokerStatus {
                id: i64::from(broker.broker_id),
                pod: pod_of(names.cluster(), &broker.grpc_address),
                rack: broker.rack.clone(),
                state: match broker.state.as_str() {
                    _ if !broker.alive && broker.state != "decommissioned" => BrokerState::Down,
                    "draining" => BrokerState::Draining,
                    "decommissioned" => BrokerState::Decommissioned,
                    _ => BrokerState::Active,
                },
                leaders: saturate(broker.leader_count),
                replicas: saturate(broker.replica_count.saturating_add(broker.leaving_count)),
            })
            .collect();
    }
    if let Some(progress) = progress {
        status.rebalance = (!progress.balanced).then(|| RebalanceStatus {
            summary: Some(progress.summary.clone()),
            moves_in_flight: saturate(
                u32::try_from(progress.in_progress.len()).unwrap_or(u32::MAX),
            ),
            moves_pending: saturate(u32::try_from(progress.pending.len()).unwrap_or(u32::MAX)),
        });
    }
    status
}

/// Bytes a Kubernetes quantity (`1Gi`, `500M`, `1.5e9`) stands for; `None` when it does not
/// parse.
pub fn quantity_bytes(quantity: &str) -> Option<f64> {
    let quantity = quantity.trim();
    let suffixes: [(&str, f64); 13] = [
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
        ("m", 1e-3),
    ];
    for (suffix, factor) in suffixes {
        if let Some(number) = quantity.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    quantity.parse::<f64>().ok()
}

/// Names of the volumes in `claims` (name and creation time, in seconds since the epoch) made
/// before the Cluster was (created at `cluster_created`): left by an earlier Cluster of the
/// same name.
pub fn retained_volumes(cluster_created: i64, claims: &[(String, i64)]) -> Vec<String> {
    claims
        .iter()
        .filter(|(_, created)| *created < cluster_created)
        .map(|(name, _)| name.clone())
        .collect()
}

#[cfg(test)]
mod load_balancer_tests {
    use super::*;

    #[test]
    fn a_load_balancer_without_an_address_is_waited_for_then_reported() {
        assert_eq!(load_balancer_standing(&[], 1_000), None);
        let pending = [
            ("main-0-external".to_owned(), 1_000),
            ("main-external-bootstrap".to_owned(), 900),
        ];
        let waiting = load_balancer_standing(&pending, 1_100).unwrap();
        assert_eq!(waiting.reason(), "WaitingForLoadBalancer");
        assert!(waiting.message().contains("main-0-external"));
        let stalled =
            load_balancer_standing(&pending, 900 + LOAD_BALANCER_TIMEOUT_SECONDS).unwrap();
        assert_eq!(stalled.reason(), "LoadBalancerNotProvisioned");
        assert!(
            stalled.message().contains("5 minutes"),
            "{}",
            stalled.message()
        );
    }
}

#[cfg(test)]
mod tests {
    use strand_proto::admin::BrokerDescription;

    use super::*;

    fn cluster(replicas: i32) -> Cluster {
        let mut cluster: Cluster = serde_saphyr::from_str(&format!(
            "apiVersion: strand.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: main\n  \
             namespace: default\nspec:\n  replicas: {replicas}\n  image: strand:test\n  \
             storage:\n    size: 1Gi\n"
        ))
        .unwrap();
        cluster.metadata.generation = Some(4);
        cluster
    }

    fn description(alive: u32, under: u32) -> ClusterDescription {
        ClusterDescription {
            cluster_id: "c".into(),
            controller_id: Some(1),
            brokers: (0..alive)
                .map(|i| BrokerDescription {
                    broker_id: i,
                    state: "active".into(),
                    grpc_address: format!("main-{i}.main-brokers.default.svc:9093"),
                    alive: true,
                    ..BrokerDescription::default()
                })
                .collect(),
            under_replicated_partitions: under,
            leaderless_partitions: 0,
        }
    }

    fn with_states(mut d: ClusterDescription, states: &[(u32, &str, u32)]) -> ClusterDescription {
        for (id, state, replicas) in states {
            let b = d.brokers.iter_mut().find(|b| b.broker_id == *id).unwrap();
            b.state = (*state).into();
            b.replica_count = *replicas;
        }
        d
    }

    #[test]
    fn a_scale_down_decommissions_the_highest_ordinals_and_keeps_the_size_while_they_drain() {
        let described = Described::Answer(description(5, 0));
        let sizing = sizing(
            &cluster(3),
            Some(5),
            &described,
            &Some(("orders".into(), 3)),
        );
        assert_eq!(sizing.replicas, 5);
        assert_eq!(sizing.decommission, [3, 4]);
        let standing = sizing.standing.unwrap();
        assert_eq!(standing.reason(), "DrainingBrokers");

        let draining = Described::Answer(with_states(
            description(5, 0),
            &[(3, "draining", 2), (4, "decommissioned", 0)],
        ));
        let sizing = super::sizing(&cluster(3), Some(5), &draining, &None);
        assert_eq!(sizing.replicas, 5);
        assert!(
            sizing.decommission.is_empty(),
            "broker 3 is already draining"
        );
        assert_eq!(
            sizing.standing.unwrap().message(),
            "draining broker 3 before removing its pod: 2 replicas left to move"
        );
    }

    #[test]
    fn the_statefulset_shrinks_once_every_removed_broker_is_decommissioned() {
        let done = Described::Answer(with_states(
            description(5, 0),
            &[(3, "decommissioned", 0), (4, "decommissioned", 0)],
        ));
        let sizing = sizing(&cluster(3), Some(5), &done, &None);
        assert_eq!(sizing.replicas, 3);
        assert_eq!(sizing.standing, None);
    }

    #[test]
    fn a_scale_down_below_a_replication_factor_is_refused_and_drains_nothing() {
        let described = Described::Answer(description(3, 0));
        let sizing = sizing(
            &cluster(2),
            Some(3),
            &described,
            &Some(("orders".into(), 3)),
        );
        assert_eq!(sizing.replicas, 3);
        assert!(sizing.decommission.is_empty());
        let stall = sizing.standing.unwrap();
        assert_eq!(stall.reason(), "ScaleDownBelowReplicationFactor");
        assert!(
            stall
                .message()
                .contains("topic orders has replication factor 3")
        );
    }

    #[test]
    fn a_scale_down_taken_back_recommissions_and_a_scale_up_takes_the_spec() {
        let draining = Described::Answer(with_states(
            description(5, 0),
            &[(3, "draining", 2), (4, "decommissioned", 0)],
        ));
        let sizing = sizing(&cluster(5), Some(5), &draining, &None);
        assert_eq!(sizing.replicas, 5);
        assert_eq!(sizing.recommission, [3, 4]);
        assert_eq!(
            super::sizing(&cluster(5), Some(3), &Described::NotAsked, &None).replicas,
            5
        );
        assert_eq!(
            super::sizing(&cluster(3), None, &Described::NotAsked, &None).replicas,
            3
        );
    }

    #[test]
    fn ready_needs_ready_pods_registered_brokers_and_healthy_partitions() {
        let pods = Pods { total: 3, ready: 3 };
        let ready = standing(&cluster(3), pods, &Described::Answer(description(3, 0)));
        assert_eq!(ready.reason(), "ClusterReady");
        let two = standing(
            &cluster(3),
            Pods { total: 3, ready: 2 },
            &Described::NotAsked,
        );
        assert_eq!(two.message(), "2 of 3 broker pods are ready");
        let under = standing(&cluster(3), pods, &Described::Answer(description(3, 4)));
        assert_eq!(under.reason(), "UnderReplicatedPartitions");
        let missing = standing(&cluster(3), pods, &Described::Answer(description(2, 0)));
        assert_eq!(missing.reason(), "BrokersNotRegistered");
    }

    #[test]
    fn status_maps_brokers_to_their_pods() {
        let cluster = cluster(3);
        let names = ClusterNames::of(&cluster).unwrap();
        let described = Described::Answer(description(3, 0));
        let pods = Pods { total: 3, ready: 3 };
        let standing = standing(&cluster, pods, &described);
        let status = status(
            &cluster,
            &names,
            pods,
            &described,
            &standing,
            None,
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(status.brokers[2].pod.as_deref(), Some("main-2"));
        assert_eq!(status.controller_id, Some(1));
        assert_eq!(
            status.bootstrap_servers.as_deref(),
            Some("main-bootstrap.default.svc:9092")
        );
        assert_eq!(status.observed_generation, Some(4));
        assert!(
            status
                .label_selector
                .unwrap()
                .contains("app.kubernetes.io/instance=main")
        );
        assert_eq!(pod_of("main", "other-1.x.svc:9093"), None);
        assert_eq!(pod_of("main", "main-x.x.svc:9093"), None);
    }

    #[test]
    fn quantities_are_read_as_kubernetes_writes_them() {
        assert_eq!(quantity_bytes("1Gi"), Some(1024.0 * 1024.0 * 1024.0));
        assert_eq!(quantity_bytes("500M"), Some(5e8));
        assert_eq!(quantity_bytes("1.5e9"), Some(1.5e9));
        assert_eq!(quantity_bytes("2048"), Some(2048.0));
        assert!(quantity_bytes("10Gi").unwrap() > quantity_bytes("10G").unwrap());
        assert_eq!(quantity_bytes("lots"), None);
    }

    #[test]
    fn only_volumes_older_than_the_cluster_are_retained_ones() {
        let claims = [
            ("data-events-0".to_owned(), 100),
            ("data-events-1".to_owned(), 250),
        ];
        assert_eq!(retained_volumes(200, &claims), ["data-events-0"]);
        assert!(retained_volumes(50, &claims).is_empty());
    }
}
