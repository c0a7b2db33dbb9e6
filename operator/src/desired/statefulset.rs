//! The brokers' StatefulSet: pod template, command line, volumes, probes and placement.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapProjection, ConfigMapVolumeSource, Container, ContainerPort,
    DownwardAPIProjection, DownwardAPIVolumeFile, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    ExecAction, HTTPGetAction, KeyToPath, Lifecycle, LifecycleHandler, ObjectFieldSelector,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PodAffinityTerm, PodAntiAffinity,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ProjectedVolumeSource, SeccompProfile,
    SecretVolumeSource, SecurityContext, TopologySpreadConstraint, Volume, VolumeMount,
    VolumeProjection, VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    BROKER_CONFIG_KEY, CONFIG_HASH_ANNOTATION, ClusterNames, GRPC_PORT, HTTP_PORT, RACK_ANNOTATION,
    fingerprint, labels, listener_port_name, metadata, selector_labels,
};
use crate::crd::{
    Cluster, ListenerAuthentication, ListenerSpec, ListenerType, PodOverrides, RackSpec,
    VolumeDeletionPolicy,
};
use crate::pki;

/// Where the broker binary is in the broker image.
const STRAND_BINARY: &str = "/usr/local/bin/strand";
/// Where the broker's persistent volume is mounted.
const DATA_DIR: &str = "/var/lib/strand";
/// Where the ConfigMap and pod information are mounted.
const CONFIG_DIR: &str = "/etc/strand";
/// Where the brokers' certificate, key, the cluster CA and the clients CA are mounted (the
/// Secret's `tls.crt`, `tls.key`, `ca.crt` and `clients-ca.crt`). The broker reads them again
/// when they change.
const TLS_DIR: &str = "/etc/strand-tls";
/// Where the ConfigMap of the addresses brokers advertise on external listeners is mounted:
/// one file per broker pod ([`advertised_file`]).
const ADVERTISED_DIR: &str = "/etc/strand-advertised";
/// Where a listener's own certificate is mounted: one directory per listener.
const LISTENER_CERTIFICATES_DIR: &str = "/etc/strand-listeners";
/// Group that owns the data volume: the `nonroot` group of distroless images, which the
/// broker image runs as.
const BROKER_UID: i64 = 65532;
/// Time a stopping broker gets to hand over leadership and close its logs cleanly before
/// it is killed; leader transfers of many partitions take a few Raft round trips each.
const TERMINATION_GRACE_SECONDS: i64 = 120;

/// The StatefulSet that runs `cluster`'s brokers.
pub(super) fn stateful_set(
    cluster: &Cluster,
    names: &ClusterNames,
    owner: &OwnerReference,
    broker_config: &str,
) -> StatefulSet {
    let spec = &cluster.spec;
    let selector = selector_labels(names.cluster());
    StatefulSet {
        metadata: metadata(names, names.stateful_set(), owner),
        spec: Some(StatefulSetSpec {
            replicas: Some(spec.replicas),
            service_name: Some(names.headless_service()),
            // Brokers find each other through the metadata group, not through start order,
            // and a broker waiting for its predecessor would block a cluster restart.
            pod_management_policy: Some("Parallel".to_owned()),
            // One broker at a time: the next pod is replaced only when the last one is ready,
            // and `/readyz` holds until every replica on it has caught up.
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: None,
            }),
            // A broker's volume is its log. Deleting it with the Cluster is a decision the
            // Cluster's deletionPolicy states; a scale-down keeps them (the brokers were
            // drained first, and a later scale-up reuses them).
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(
                        match spec.deletion_policy {
                            VolumeDeletionPolicy::Retain => "Retain",
                            VolumeDeletionPolicy::Delete => "Delete",
                        }
                        .to_owned(),
                    ),
                    when_scaled: Some("Retain".to_owned()),
                },
            ),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..LabelSelector::default()
            },
            template: pod_template(cluster, names, broker_config),
            volume_claim_templates: Some(vec![data_claim(cluster, names)]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

fn pod_template(cluster: &Cluster, names: &ClusterNames, broker_config: &str) -> PodTemplateSpec {
    let spec = &cluster.spec;
    let overrides = spec.pod.clone().unwrap_or_default();
    // The operator's labels come last so that an override never changes which pods the
    // StatefulSet and Services select.
    let mut pod_labels = overrides.labels.clone();
    pod_labels.extend(labels(names.cluster()));
    let mut annotations = overrides.annotations.clone();
    annotations.insert(
        CONFIG_HASH_ANNOTATION.to_owned(),
        fingerprint(broker_config),
    );
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![broker_container(cluster, names)],
            volumes: Some(volumes(names, spec.rack.as_ref(), &spec.listeners())),
            affinity: Some(affinity(&overrides, names)),
            topology_spread_constraints: spec.rack.as_ref().map(|rack| spread(rack, names)),
            node_selector: non_empty(overrides.node_selector.clone()),
            tolerations: non_empty_vec(overrides.tolerations.clone()),
            priority_class_name: overrides.priority_class_name.clone(),
            termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
            // Brokers never call the Kubernetes API.
            automount_service_account_token: Some(false),
            // Service links would put variables for every Service of the namespace into the
            // broker's environment.
            enable_service_links: Some(false),
            // No fixed user id: the image runs as its non-root user, and OpenShift's
            // restricted SCC assigns one of its own range.
            security_context: Some(overrides.security_context.clone().unwrap_or(
                PodSecurityContext {
                    run_as_non_root: Some(true),
                    // Makes the data volume writable by the broker's group.
                    fs_group: Some(BROKER_UID),
                    fs_group_change_policy: Some("OnRootMismatch".to_owned()),
                    seccomp_profile: Some(SeccompProfile {
                        type_: "RuntimeDefault".to_owned(),
                        ..SeccompProfile::default()
                    }),
                    ..PodSecurityContext::default()
                },
            )),
            ..PodSpec::default()
        }),
    }
}

fn has_node_ports(listeners: &[ListenerSpec]) -> bool {
    listeners.iter().any(|l| l.type_ == ListenerType::Nodeport)
}

fn has_external(listeners: &[ListenerSpec]) -> bool {
    listeners.iter().any(|l| l.type_.external())
}

/// The advertised address of `listener` as the broker command line gives it: the pod's DNS
/// name for internal listeners; for `nodeport` ones the node's address, whose port the
/// broker replaces with its own node port from [`advertised_file`]; for `loadbalancer` and
/// `ingress` ones the pod's name until [`advertised_file`] gives its load balancer's address
/// or its Ingress host.
fn advertised(listener: &ListenerSpec, names: &ClusterNames) -> String {
    match listener.type_ {
        // Kubernetes expands $(VAR) from the container's env.
        ListenerType::Internal | ListenerType::Loadbalancer | ListenerType::Ingress => format!(
            "$(POD_NAME).{}.$(POD_NAMESPACE).svc:{}",
            names.headless_service(),
            listener.port
        ),
        ListenerType::Nodeport => format!("$(HOST_IP):{}", listener.port),
    }
}

/// What a broker pod's file in the advertised-addresses ConfigMap holds: one line per
/// external listener whose address is known, `NAME=:PORT` (a `nodeport` listener: the node
/// port of the broker's own Service, advertised on its node's address) or `NAME=HOST:PORT`
/// (a `loadbalancer` listener: its load balancer's address; an `ingress` listener: its host
/// name and the ingress controller's port).
pub fn advertised_file(addresses: &[(String, String)]) -> String {
    addresses
        .iter()
        .map(|(listener, address)| format!("{listener}={address}\n"))
        .collect()
}

/// The `strand broker` command line.
fn broker_args(cluster: &Cluster, names: &ClusterNames) -> Vec<String> {
    let listeners = cluster.spec.listeners();
    // The broker's main listener takes the TLS files' protocol, so a TLS one is main when
    // any listener speaks TLS; the others are `--listener`s.
    let main = listeners
        .iter()
        .find(|l| l.tls)
        .unwrap_or(&listeners[0])
        .clone();
    let mut args = vec![
        "broker".to_owned(),
        "--data-dir".to_owned(),
        DATA_DIR.to_owned(),
        "--kafka-listen".to_owned(),
        format!("0.0.0.0:{}", main.port),
        "--kafka-listener-name".to_owned(),
        main.kafka_name(),
        "--kafka-advertised".to_owned(),
        advertised(&main, names),
        "--grpc-listen".to_owned(),
        format!("0.0.0.0:{GRPC_PORT}"),
        "--http-listen".to_owned(),
        format!("0.0.0.0:{HTTP_PORT}"),
        "--advertised-host".to_owned(),
        format!(
            "$(POD_NAME).{}.$(POD_NAMESPACE).svc",
            names.headless_service()
        ),
        "--seeds".to_owned(),
        names.seeds(cluster.spec.replicas).join(","),
        "--config".to_owned(),
        format!("{CONFIG_DIR}/{BROKER_CONFIG_KEY}"),
        // The gRPC port speaks mutual TLS with certificates of the cluster's CA: Raft and
        // broker-to-broker calls only from the brokers, the admin API only from brokers and
        // the admin certificate (see `pki.rs`).
        "--grpc-tls-cert".to_owned(),
        format!("{TLS_DIR}/tls.crt"),
        "--grpc-tls-key".to_owned(),
        format!("{TLS_DIR}/tls.key"),
        "--grpc-tls-ca".to_owned(),
        format!("{TLS_DIR}/ca.crt"),
        "--grpc-broker-principals".to_owned(),
        pki::principal(pki::BROKER_CN),
        "--grpc-admin-principals".to_owned(),
        pki::principal(pki::ADMIN_CN),
    ];
    if main.authentication == ListenerAuthentication::ScramSha512 {
        args.push("--kafka-sasl".to_owned());
    }
    if listeners.iter().any(|l| l.tls) {
        // Kafka clients see the brokers' certificate too, so they check it with the
        // cluster CA the User Secrets hold.
        args.extend([
            "--kafka-tls-cert".to_owned(),
            format!("{TLS_DIR}/tls.crt"),
            "--kafka-tls-key".to_owned(),
            format!("{TLS_DIR}/tls.key"),
        ]);
    }
    if listeners
        .iter()
        .any(|l| l.authentication == ListenerAuthentication::Tls)
    {
        args.extend([
            "--kafka-tls-client-ca".to_owned(),
            format!("{TLS_DIR}/{}", pki::CLIENTS_CA_FILE),
        ]);
    }
    for listener in listeners.iter().filter(|l| l.name != main.name) {
        args.push("--listener".to_owned());
        args.push(format!(
            "{},{},0.0.0.0:{},{}",
            listener.kafka_name(),
            listener.protocol(),
            listener.port,
            advertised(listener, names)
        ));
    }
    if listeners
        .iter()
        .any(|l| l.authentication == ListenerAuthentication::ScramSha512)
    {
        args.extend(["--sasl-mechanisms".to_owned(), "SCRAM-SHA-512".to_owned()]);
    }
    if cluster.spec.authenticates() {
        // Deny by default: a User's ACLs are all its principal may do.
        args.extend(["--authorizer".to_owned(), "acl".to_owned()]);
    }
    for listener in listeners.iter().filter(|l| l.certificate.is_some()) {
        // The listener presents its own certificate; the files follow the Secret, and the
        // broker reloads them when they change.
        let dir = format!("{LISTENER_CERTIFICATES_DIR}/{}", listener.name);
        args.push("--listener-certificate".to_owned());
        args.push(format!(
            "{},{dir}/tls.crt,{dir}/tls.key",
            listener.kafka_name()
        ));
    }
    if has_external(&listeners) {
        args.extend([
            "--advertised-file".to_owned(),
            format!("{ADVERTISED_DIR}/$(POD_NAME)"),
        ]);
    }
    if cluster.spec.rack.is_some() {
        args.push("--rack-file".to_owned());
        args.push(format!("{CONFIG_DIR}/{RACK_FILE}"));
    }
    args
}

/// The rack file, relative to [`CONFIG_DIR`]. It is empty until the operator has copied the
/// node's topology label into the pod's [`RACK_ANNOTATION`], so the broker waits for it to
/// hold a value.
const RACK_FILE: &str = "podinfo/rack";

fn broker_container(cluster: &Cluster, names: &ClusterNames) -> Container {
    let http_probe = |path: &str, period_seconds: i32, failure_threshold: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("http".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    };
    let listeners = cluster.spec.listeners();
    let mut env = vec![
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
    ];
    let mut volume_mounts = vec![
        mount("data", DATA_DIR),
        VolumeMount {
            read_only: Some(true),
            ..mount("config", CONFIG_DIR)
        },
        mount("tmp", "/tmp"),
        VolumeMount {
            read_only: Some(true),
            ..mount("tls", TLS_DIR)
        },
    ];
    if has_node_ports(&listeners) {
        env.push(field_env("HOST_IP", "status.hostIP"));
    }
    if has_external(&listeners) {
        volume_mounts.push(VolumeMount {
            read_only: Some(true),
            ..mount("advertised", ADVERTISED_DIR)
        });
    }
    for listener in listeners.iter().filter(|l| l.certificate.is_some()) {
        volume_mounts.push(VolumeMount {
            read_only: Some(true),
            ..mount(
                &listener_certificate_volume(listener),
                &format!("{LISTENER_CERTIFICATES_DIR}/{}", listener.name),
            )
        });
    }
    Container {
        name: "broker".to_owned(),
        image: Some(
            cluster
                .spec
                .image
                .clone()
                .unwrap_or_else(crate::crd::default_broker_image),
        ),
        command: Some(vec![STRAND_BINARY.to_owned()]),
        args: Some(broker_args(cluster, names)),
        ports: Some(
            listeners
                .iter()
                .map(|l| container_port(&listener_port_name(l), l.port))
                .chain([
                    container_port("grpc", GRPC_PORT),
                    container_port("http", HTTP_PORT),
                ])
                .collect(),
        ),
        env: Some(env),
        resources: cluster.spec.resources.clone(),
        volume_mounts: Some(volume_mounts),
        // After a crash the broker scans the tail of every partition's active segment before
        // it serves; that may take minutes, and liveness must not kill it meanwhile.
        startup_probe: Some(http_probe("/healthz", 5, 120)),
        liveness_probe: Some(http_probe("/healthz", 10, 3)),
        readiness_probe: Some(http_probe("/readyz", 5, 3)),
        lifecycle: Some(Lifecycle {
            // Moves the leadership of this broker's partitions (and the controller role) to
            // caught-up replicas before it stops, and waits until they are taken or a
            // deadline passes, so that clients see a leader change instead of a timeout.
            pre_stop: Some(LifecycleHandler {
                exec: Some(ExecAction {
                    command: Some(vec![
                        STRAND_BINARY.to_owned(),
                        "broker".to_owned(),
                        "pre-stop".to_owned(),
                    ]),
                }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: port,
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }
}

fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        ..VolumeMount::default()
    }
}

/// The pod's volumes. `config` is one projected volume so that `broker.yaml` and the rack
/// file share [`CONFIG_DIR`] and both follow their sources while the pod runs.
fn volumes(
    names: &ClusterNames,
    rack: Option<&RackSpec>,
    listeners: &[ListenerSpec],
) -> Vec<Volume> {
    let mut sources = vec![VolumeProjection {
        config_map: Some(ConfigMapProjection {
            name: names.config_map(),
            items: Some(vec![KeyToPath {
                key: BROKER_CONFIG_KEY.to_owned(),
                path: BROKER_CONFIG_KEY.to_owned(),
                ..KeyToPath::default()
            }]),
            ..ConfigMapProjection::default()
        }),
        ..VolumeProjection::default()
    }];
    if rack.is_some() {
        sources.push(VolumeProjection {
            downward_api: Some(DownwardAPIProjection {
                items: Some(vec![DownwardAPIVolumeFile {
                    path: RACK_FILE.to_owned(),
                    field_ref: Some(ObjectFieldSelector {
                        field_path: format!("metadata.annotations['{RACK_ANNOTATION}']"),
                        ..ObjectFieldSelector::default()
                    }),
                    ..DownwardAPIVolumeFile::default()
                }]),
            }),
            ..VolumeProjection::default()
        });
    }
    let mut volumes = vec![
        Volume {
            name: "config".to_owned(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(sources),
                ..ProjectedVolumeSource::default()
            }),
            ..Volume::default()
        },
        // The root filesystem is read-only; this is the only scratch space.
        Volume {
            name: "tmp".to_owned(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
        Volume {
            name: "tls".to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(names.broker_tls_secret()),
                // Readable by the owner and the pod's fsGroup (the broker's group) only.
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        },
    ];
    if has_external(listeners) {
        volumes.push(Volume {
            name: "advertised".to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: names.advertised_config_map(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    for listener in listeners {
        if let Some(secret) = names.listener_certificate_secret(listener) {
            volumes.push(Volume {
                name: listener_certificate_volume(listener),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(secret),
                    default_mode: Some(0o440),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            });
        }
    }
    volumes
}

fn listener_certificate_volume(listener: &ListenerSpec) -> String {
    format!("listener-{}", listener.name)
}

fn data_claim(cluster: &Cluster, names: &ClusterNames) -> PersistentVolumeClaim {
    let storage = &cluster.spec.storage;
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".to_owned()),
            labels: Some(selector_labels(names.cluster())),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            storage_class_name: storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    storage.size.clone(),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

/// The user's affinity if given, else a preference for one broker per node: two brokers on
/// one node would let one node failure take two replicas of a partition. A preference, not a
/// requirement, so that small clusters with fewer nodes than brokers still start.
fn affinity(overrides: &PodOverrides, names: &ClusterNames) -> Affinity {
    if let Some(affinity) = &overrides.affinity {
        return affinity.clone();
    }
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        topology_key: "kubernetes.io/hostname".to_owned(),
                        label_selector: Some(broker_selector(names)),
                        ..PodAffinityTerm::default()
                    },
                },
            ]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    }
}

/// Brokers spread evenly over the racks. A hard constraint: rack awareness is worth something
/// only if brokers really sit in different racks, and a pod that cannot be placed shows as
/// Pending, while a skewed placement would go unnoticed.
fn spread(rack: &RackSpec, names: &ClusterNames) -> Vec<TopologySpreadConstraint> {
    vec![TopologySpreadConstraint {
        max_skew: 1,
        topology_key: rack.topology_key.clone(),
        when_unsatisfiable: "DoNotSchedule".to_owned(),
        label_selector: Some(broker_selector(names)),
        ..TopologySpreadConstraint::default()
    }]
}

fn broker_selector(names: &ClusterNames) -> LabelSelector {
    LabelSelector {
        match_labels: Some(selector_labels(names.cluster())),
        ..LabelSelector::default()
    }
}

fn non_empty(map: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!map.is_empty()).then_some(map)
}

fn non_empty_vec<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}
