//! Raft timings: how often leaders send heartbeats and how long followers wait before an
//! election. Short timings fail over faster and cost more idle traffic.

use std::time::Duration;

use openraft::{Config, SnapshotPolicy};

/// Raft timings of a broker's groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Interval between a leader's heartbeats to each follower.
    pub heartbeat: Duration,
    /// Shortest wait of a follower without heartbeats before it starts an election; the longest
    /// is twice this.
    pub election_min: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat: Duration::from_millis(150),
            election_min: Duration::from_millis(600),
        }
    }
}

impl Timing {
    fn config(&self, name: &str, snapshot_every: u64) -> Config {
        let config = Config {
            cluster_name: name.to_string(),
            heartbeat_interval: self.heartbeat.as_millis() as u64,
            election_timeout_min: self.election_min.as_millis() as u64,
            election_timeout_max: 2 * self.election_min.as_millis() as u64,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(snapshot_every),
            max_in_snapshot_log_to_keep: 1000,
            ..Default::default()
        };
        // Only out-of-range values can fail validation; these are in range by construction.
        config.validate().unwrap_or_default()
    }

    /// The config of the metadata group.
    pub fn meta_config(&self) -> Config {
        self.config("strand-metadata", 1000)
    }

    /// The config of a partition group.
    pub fn partition_config(&self) -> Config {
        self.config("strand-partition", 10_000)
    }
}
