//! Raft tuning: how often leaders send heartbeats, how long followers wait before an election,
//! and how often partitions take snapshots. Short timings fail over faster and cost more idle
//! traffic.

use std::time::Duration;

use openraft::{Config, SnapshotPolicy};

/// Raft settings of a broker's groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftTuning {
    /// Interval between a leader's heartbeats to each follower.
    pub heartbeat: Duration,
    /// Shortest wait of a follower without heartbeats before it starts an election; the longest
    /// is one and a half times this, which is also how long a follower refuses votes after
    /// hearing from its leader (openraft's leader lease is the longest election timeout).
    pub election_min: Duration,
    /// A partition takes a snapshot after this many entries since its last one.
    pub snapshot_every_entries: u64,
    /// Entries Raft keeps readable behind a snapshot, so a follower slightly behind catches up
    /// from the log rather than by a snapshot.
    pub entries_kept_after_snapshot: u64,
}

impl Default for RaftTuning {
    fn default() -> Self {
        RaftTuning {
            heartbeat: Duration::from_millis(150),
            election_min: Duration::from_millis(500),
            snapshot_every_entries: 10_000,
            entries_kept_after_snapshot: 1_000,
        }
    }
}

impl RaftTuning {
    fn config(&self, name: &str) -> Config {
        let config = Config {
            cluster_name: name.to_string(),
            heartbeat_interval: self.heartbeat.as_millis() as u64,
            election_timeout_min: self.election_min.as_millis() as u64,
            election_timeout_max: self.election_min.as_millis() as u64 * 3 / 2,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_every_entries),
            max_in_snapshot_log_to_keep: self.entries_kept_after_snapshot,
            // A replica that led before a crash stands for election like any other. Restored
            // as leader at once, in its old term, its state machine is where its last snapshot
            // left it until the group commits again, yet its applied entry is of its own term,
            // which is what shows a new leader has applied its predecessors' entries: it
            // checked producers' sequences against the snapshot (a fatal
            // OUT_OF_ORDER_SEQUENCE_NUMBER for the next batch) and could answer from a stale
            // state. Winning an election costs about one election timeout.
            enable_leader_restore: Some(false),
            ..Default::default()
        };
        // Only out-of-range values can fail validation; these are in range by construction.
        config.validate().unwrap_or_default()
    }

    /// The config of the metadata group.
    pub fn meta_config(&self) -> Config {
        self.config("strand-metadata")
    }

    /// The config of a partition group. Its heartbeats are sent coalesced per peer broker
    /// (`heartbeat.rs`) and its election timer is one task per broker (`elections.rs`), so
    /// openraft runs neither per group.
    pub fn partition_config(&self) -> Config {
        Config {
            enable_heartbeat: false,
            enable_tick: false,
            // Entries are whole record batches of up to `max.message.bytes` (1 MiB by
            // default): 32 of them keep an AppendEntries well under the gRPC message limit.
            max_payload_entries: 32,
            ..self.config("strand-partition")
        }
    }
}
