//! Retention and compaction on a timer. Every replica applies its topic's `retention.ms`,
//! `retention.bytes` and `cleanup.policy` to the closed segments of its log that lie wholly
//! below Raft's purge point (what Raft may still send a lagging follower entry by entry stays
//! as appended; a follower further behind gets a snapshot, which carries the log's files as
//! they are), and follows changes of `segment.bytes` and `segment.ms`. A replica with closed
//! segments past its last snapshot takes a snapshot first; what retention and compaction want
//! below the snapshot, Raft is asked to purge first. Snapshots here copy nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use strand_log::{CompactionPolicy, Index, RetentionPolicy};
use strand_meta::{CleanupPolicy, TopicConfig, validate_topic_config};

use crate::shared::Inner;
use strand_node::registry::PartitionReplica;

/// How long a pass waits for Raft to release (purge) the entries it wants to remove.
const PURGE_WAIT: Duration = Duration::from_secs(1);

/// Runs until the broker shuts down, one pass every `retention_check_interval`.
pub async fn run(inner: Arc<Inner>) {
    let mut stop = inner.shutdown.subscribe();
    // Per replica, the index below which its log was last compacted.
    let mut compacted: HashMap<String, Index> = HashMap::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(inner.config.kafka.retention_check_interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let state = inner.cluster.state();
        let partitions = inner.registry.partitions();
        compacted.retain(|group, _| partitions.iter().any(|(g, _)| **g == **group));
        for (group, replica) in partitions {
            let Some(topic) = state.topic_by_name(&replica.topic) else {
                continue;
            };
            // Stored configs were checked when set; a broken one keeps the defaults.
            let config = validate_topic_config(&topic.config).unwrap_or_default();
            let done = compacted.get(&*group).copied().unwrap_or(Index(0));
            // Compaction writes a new copy of each segment before the old one goes: not while
            // the disk is short of its reserve (retention, which only frees space, goes on).
            let disk_low = inner.disk.is_low();
            match tend(&replica, &config, done, disk_low).await {
                Ok(Some(below)) => {
                    compacted.insert(group.to_string(), below);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(%group, error = %e, "retention pass failed"),
            }
        }
    }
}

/// One pass over one replica; the new compaction mark when it compacted.
async fn tend(
    replica: &Arc<PartitionReplica>,
    config: &TopicConfig,
    compacted_below: Index,
    disk_low: bool,
) -> Result<Option<Index>, String> {
    let log = replica.store.log();
    let snapshot_next = replica
        .raft
        .metrics()
        .borrow_watched()
        .snapshot
        .map_or(Index(0), |s| Index(s.index + 1));
    let (deletes, compacts) = match config.cleanup_policy {
        CleanupPolicy::Delete => (true, false),
        CleanupPolicy::Compact => (false, true),
        CleanupPolicy::CompactDelete => (true, true),
    };
    let retention = RetentionPolicy {
        retention_ms: config
            .retention_ms
            .filter(|_| deletes)
            .map(|ms| ms.min(i64::MAX as u64) as i64),
        retention_bytes: config.retention_bytes.filter(|_| deletes),
    };
    let limited = retention.retention_ms.is_some() || retention.retention_bytes.is_some();
    // The store's clock, the one its appends were stamped with.
    let clock = replica.store.clock();
    // What retention would remove now, and the closed segments compaction would rewrite,
    // below the snapshot: Raft keeps the entries behind its snapshot that a follower slightly
    // behind may still be sent one by one, so they are released (purged) first; a follower
    // that needed them is sent a snapshot instead, which carries the files as they are.
    let wanted = {
        let log = log.read().map_err(|_| "log lock poisoned".to_string())?;
        let mut wanted = Index(0);
        if limited {
            wanted = wanted.max(log.retention_end(retention, snapshot_next, clock.now_ms()));
        }
        if compacts {
            let closed = log.segments();
            let compactable = closed
                .iter()
                .filter(|s| s.closed && s.next_index <= snapshot_next)
                .map(|s| s.next_index)
                .max();
            wanted = wanted.max(compactable.unwrap_or_default());
        }
        wanted
    };
    if wanted > replica.store.purged_next_index() && wanted > Index(0) {
        let _ = replica.raft.trigger().purge_log(wanted.0 - 1).await;
        // A leader purges once no replication reads those entries; the next pass finds them
        // released if this one does not.
        let mut metrics = replica.raft.metrics();
        let released = metrics.wait_until(|m: &openraft::RaftMetrics<strand_raft::TypeConfig>| {
            m.purged.is_some_and(|p| p.index + 1 >= wanted.0)
        });
        let _ = tokio::time::timeout(PURGE_WAIT, released).await;
    }
    // Never past Raft's purge point (which is never past the snapshot).
    let below = replica.store.purged_next_index().min(snapshot_next);
    let closed_past_snapshot = {
        let mut log = log.write().map_err(|_| "log lock poisoned".to_string())?;
        let bytes = u64::from(config.segment_bytes);
        let age = Duration::from_millis(config.segment_ms);
        if log.config().segment_bytes_max != bytes || log.config().segment_age_max != age {
            log.set_roll_limits(bytes, age);
        }
        log.segments()
            .iter()
            .filter(|s| s.closed)
            .any(|s| s.next_index > snapshot_next)
    };
    if (limited || compacts) && closed_past_snapshot {
        // A later pass finds these segments below the purge point.
        let _ = replica.raft.trigger().snapshot().await;
    }
    if !(limited || compacts) || below == Index(0) {
        return Ok(None);
    }
    let compact_now = compacts && below > compacted_below && !disk_low;
    let delete_retention_ms = config.delete_retention_ms.min(i64::MAX as u64) as i64;
    let topic = replica.topic.clone();
    let partition = replica.partition;
    tokio::task::spawn_blocking(move || {
        let mut log = log.write().map_err(|_| "log lock poisoned".to_string())?;
        let now = clock.now_ms();
        if limited {
            let retained = log
                .apply_retention(retention, below, now)
                .map_err(|e| e.to_string())?;
            if !retained.removed_segments.is_empty() {
                tracing::info!(%topic, partition, segments = retained.removed_segments.len(),
                    bytes = retained.removed_bytes, log_start_offset = retained.log_start_offset.0,
                    "retention removed old segments");
            }
        }
        if !compact_now {
            return Ok(None);
        }
        let compacted = log
            .compact(
                below,
                CompactionPolicy {
                    delete_retention_ms,
                },
                now,
            )
            .map_err(|e| e.to_string())?;
        if compacted.records_removed > 0 {
            tracing::info!(%topic, partition, records = compacted.records_removed,
                bytes_before = compacted.bytes_before, bytes_after = compacted.bytes_after,
                "compacted");
        }
        Ok(Some(below))
    })
    .await
    .map_err(|e| e.to_string())?
}
