//! What a Cluster needs, decided without I/O: whether its StatefulSet may take the spec's
//! replica count, and the status its pods and the cluster's description give.

use k8s_openapi::jiff::Timestamp;
use strand_proto::admin::ClusterDescription;

use crate::conditions::Standing;
use crate::crd::{BrokerState, BrokerStatus, Cluster, ClusterStatus};
use crate::desired::{ClusterNames, label_selector};

/// The replica count to give the StatefulSet, and the stall that held it back, if any.
///
/// A scale-down would stop the brokers of the highest ordinals with their replicas on them;
/// until brokers can be drained first, the StatefulSet keeps its size and the Cluster says so.
pub fn replicas(cluster: &Cluster, current: Option<i32>) -> (i32, Option<Standing>) {
    let wanted = cluster.spec.replicas;
    match current {
        Some(current) if wanted < current => (
            current,
            Some(Standing::Stalled {
                reason: "ScaleDownNeedsDraining",
                message: format!(
                    "spec.replicas is {wanted} but the cluster runs {current} brokers; removing \
                     brokers needs their partitions drained first, which this version cannot \
                     do: set spec.replicas back to {current}"
                ),
            }),
        ),
        _ => (wanted, None),
    }
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

/// The status a Cluster should have.
pub fn status(
    cluster: &Cluster,
    names: &ClusterNames,
    pods: Pods,
    described: &Described,
    standing: &Standing,
    now: Timestamp,
) -> ClusterStatus {
    let old = cluster.status.clone().unwrap_or_default();
    let generation = cluster.metadata.generation;
    let mut status = ClusterStatus {
        observed_generation: generation,
        conditions: standing.conditions(generation, &old.conditions, now),
        replicas: pods.total,
        ready_replicas: pods.ready,
        bootstrap_servers: Some(names.bootstrap_servers()),
        label_selector: Some(label_selector(names.cluster())),
        ..old
    };
    if let Described::Answer(description) = described {
        status.controller_id = description.controller_id.map(i64::from);
        status.under_replicated_partitions = saturate(description.under_replicated_partitions);
        status.leaderless_partitions = saturate(description.leaderless_partitions);
        status.brokers = description
            .brokers
            .iter()
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
                replicas: saturate(broker.replica_count),
            })
            .collect();
    }
    status
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

    #[test]
    fn a_scale_down_keeps_the_current_size_and_stalls() {
        let (replicas, stall) = replicas(&cluster(3), Some(5));
        assert_eq!(replicas, 5);
        let stall = stall.unwrap();
        assert_eq!(stall.reason(), "ScaleDownNeedsDraining");
        assert!(stall.message().contains("set spec.replicas back to 5"));
    }

    #[test]
    fn a_scale_up_or_a_new_cluster_takes_the_spec() {
        assert_eq!(replicas(&cluster(5), Some(3)), (5, None));
        assert_eq!(replicas(&cluster(3), None), (3, None));
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
}
