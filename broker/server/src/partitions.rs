//! Keeps the partition replicas this broker runs in step with the applied metadata: opens the
//! groups of partitions assigned here, starts a new partition's group on its first replica,
//! stops and removes replicas of deleted topics, and opens again from disk a replica whose
//! group stopped on an error (a full or failing disk), at most every `REOPEN_AFTER`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use openraft::async_runtime::WatchReceiver;
use openraft::impls::BasicNode;
use strand_log::{FlushPolicy, LogConfig};
use strand_meta::{ClusterState, Topic};
use strand_raft::{Caching, GroupStateMachine, LogStore, PageCacheWindows, RECENT_AGE_MAX};

use crate::shared::Inner;
use strand_node::network::GroupNetwork;
use strand_node::registry::{Group, PartitionReplica, partition_group};

/// How often the manager looks again even without a metadata change (to retry failures).
const RESYNC: Duration = Duration::from_secs(1);

/// The shortest time between two reopenings of a replica whose group keeps stopping (a disk
/// still full): each costs a scan of its log.
const REOPEN_AFTER: Duration = Duration::from_secs(5);

/// Runs until the broker shuts down.
pub async fn run(inner: Arc<Inner>) {
    let mut state = inner.cluster.watch();
    let mut stop = inner.shutdown.subscribe();
    let mut reopened = HashMap::new();
    loop {
        let current = state.borrow_and_update().clone();
        sync(&inner, &current, &mut reopened).await;
        // Groups that stopped appending let go of the entries they kept in memory.
        for (_, replica) in inner.registry.partitions() {
            replica.store.trim_recent(RECENT_AGE_MAX);
        }
        tokio::select! {
            _ = state.changed() => {}
            _ = tokio::time::sleep(RESYNC) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// The directory of a partition replica.
pub fn replica_dir(inner: &Inner, group: &str) -> PathBuf {
    inner
        .config
        .data_dir
        .join("partitions")
        .join(group.replace('/', "-"))
}

/// How much of the end of a partition replica's log stays in the page cache once flushed.
/// Consumers read from the leader, so its window is wide: consumers up to that far behind read
/// from memory, older bytes come from disk. A follower keeps only enough for a moment behind.
/// Bounding both keeps a broker's page cache (charged to its pod's memory) from growing with
/// everything written, and lets appends reuse pages just freed, which on a virtual machine that
/// hands freed memory back to its host is most of an append's cost (BENCHMARKS.md).
const PAGE_CACHE_WINDOWS: PageCacheWindows = PageCacheWindows {
    leader: Some(256 << 20),
    follower: Some(32 << 20),
};

/// Payload bytes of newest entries all partition replicas of a broker keep in memory together,
/// so replication and the state machines need not read back what was just written. Under full
/// load they trail the appends by a few tens of megabytes per partition (BENCHMARKS.md).
pub(crate) const RECENT_ENTRIES_BYTES: usize = 256 << 20;

/// The log settings of a topic's partitions. Durability comes from the group's flusher, which
/// fsyncs before Raft counts an entry, so the log itself never syncs on append.
fn log_config(topic: &Topic) -> LogConfig {
    let mut config = LogConfig {
        flush: FlushPolicy::Never,
        ..LogConfig::default()
    };
    if let Some(bytes) = topic
        .config
        .get("segment.bytes")
        .and_then(|v| v.parse().ok())
    {
        config.segment_bytes_max = bytes;
    }
    if let Some(ms) = topic.config.get("segment.ms").and_then(|v| v.parse().ok()) {
        config.segment_age_max = Duration::from_millis(ms);
    }
    config
}

/// Whether a replica's group stopped on an error, and if so takes it out of the registry so it
/// is opened again from disk (at most every [`REOPEN_AFTER`]): the log's failed write was cut
/// back to what was last made durable, and Raft sends the rest again.
async fn stopped_on_error(
    inner: &Inner,
    group: &str,
    replica: &PartitionReplica,
    reopened: &mut HashMap<String, Instant>,
) -> bool {
    let error = match &replica.raft.metrics().borrow_watched().running_state {
        Ok(()) => return false,
        Err(e) => e.to_string(),
    };
    if reopened
        .get(group)
        .is_some_and(|at| at.elapsed() < REOPEN_AFTER)
    {
        return false;
    }
    tracing::warn!(%group, topic = %replica.topic, partition = replica.partition, %error,
        "the partition's group stopped; opening it again from disk");
    let _ = replica.raft.shutdown().await;
    inner.registry.remove(group);
    reopened.insert(group.to_string(), Instant::now());
    true
}

async fn sync(inner: &Inner, state: &ClusterState, reopened: &mut HashMap<String, Instant>) {
    let me = inner.cluster.broker_id();
    let mut wanted = HashSet::new();
    for (topic_id, partition, _) in state.assignments_for(me) {
        let group = partition_group(topic_id, partition.0);
        wanted.insert(group.clone());
        let Some(topic) = state.topic(topic_id) else {
            continue;
        };
        let running = match inner.registry.get(&group) {
            Some(Group::Partition(replica))
                if !stopped_on_error(inner, &group, &replica, reopened).await =>
            {
                Some(replica)
            }
            _ => None,
        };
        let replica = match running {
            Some(replica) => replica,
            None => match open_replica(inner, topic, partition.0, &group).await {
                Ok(replica) => replica,
                Err(e) => {
                    tracing::warn!(%group, error = %e, "cannot open partition replica; will retry");
                    continue;
                }
            },
        };
        if let Err(e) = start_group(inner, state, topic, &replica).await {
            tracing::warn!(%group, error = %e, "cannot start partition group; will retry");
        }
    }
    for (group, replica) in inner.registry.partitions() {
        if !wanted.contains(&*group) {
            tracing::info!(%group, topic = %replica.topic, "removing replica of a deleted partition");
            let _ = replica.raft.shutdown().await;
            inner.registry.remove(&group);
            inner.balancer.forget(&group);
            let dir = replica_dir(inner, &group);
            if let Err(e) = strand_raft::remove_group_dir(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot remove replica directory");
            }
        }
    }
}

async fn open_replica(
    inner: &Inner,
    topic: &Topic,
    partition: u32,
    group: &str,
) -> Result<Arc<PartitionReplica>, String> {
    let dir = replica_dir(inner, group);
    let store = LogStore::open(
        &dir,
        log_config(topic),
        inner.cluster.identity().node_id,
        Caching {
            windows: PAGE_CACHE_WINDOWS,
            recent: Some(inner.recent_entries.clone()),
        },
    )
    .map_err(|e| e.to_string())?;
    let producers = strand_node::producers::ProducerState::new(&inner.config.kafka.limits);
    let sm =
        GroupStateMachine::open(&dir, store.log(), producers.clone()).map_err(|e| e.to_string())?;
    let raft = openraft::Raft::new(
        inner.cluster.identity().node_id,
        Arc::new(inner.config.tuning.partition_config()),
        GroupNetwork::new(group.to_string(), inner.cluster.peers().clone()),
        store.clone(),
        sm.clone(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let replica = Arc::new(PartitionReplica {
        raft,
        store,
        sm,
        producers,
        topic: topic.name.clone(),
        partition,
    });
    inner
        .registry
        .insert(group, Group::Partition(replica.clone()));
    Ok(replica)
}

/// Starts a new partition's group, on the replica that was the first when it was created.
/// Other replicas, and later incarnations of that broker, wait to be reached by the group.
async fn start_group(
    inner: &Inner,
    state: &ClusterState,
    topic: &Topic,
    replica: &PartitionReplica,
) -> Result<(), String> {
    let Some(assignment) = topic.partitions.get(replica.partition as usize) else {
        return Ok(());
    };
    let starts_here =
        assignment.initial_nodes.first().map(|n| n.0) == Some(inner.cluster.identity().node_id);
    // A group with a membership is running; asking openraft would cost a call per second each.
    let has_members = replica
        .raft
        .metrics()
        .borrow_watched()
        .membership_config
        .membership()
        .voter_ids()
        .next()
        .is_some();
    if !starts_here || has_members || replica.raft.is_initialized().await.unwrap_or(true) {
        return Ok(());
    }
    let members: BTreeMap<u64, BasicNode> = assignment
        .replicas
        .iter()
        .zip(&assignment.initial_nodes)
        .filter_map(|(broker, node)| {
            state.broker(*broker).map(|b| {
                (
                    node.0,
                    BasicNode {
                        addr: b.grpc_addr.clone(),
                    },
                )
            })
        })
        .collect();
    replica
        .raft
        .initialize(members)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(topic = %topic.name, partition = replica.partition, "started partition group");
    Ok(())
}
