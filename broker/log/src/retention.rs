//! Retention: removing whole old segments by age and by size.

use crate::config::RetentionPolicy;
use crate::error::Result;
use crate::log::{Log, Retained};
use crate::segment::sync_dir;
use crate::types::Index;

impl Log {
    /// Removes whole closed segments whose entries are all below `below` and that retention
    /// says are too old, or that make the log larger than allowed. Oldest first, never the
    /// active segment; the log start offset moves to the first remaining segment.
    pub fn apply_retention(
        &mut self,
        policy: RetentionPolicy,
        below: Index,
        now_ms: i64,
    ) -> Result<Retained> {
        let count = self.segments_to_retire(policy, below, now_ms);
        let mut retained = Retained::default();
        for segment in self.segments.drain(..count) {
            retained.removed_bytes += segment.size;
            retained.removed_segments.push(segment.path.clone());
            segment.remove()?;
        }
        if count > 0 {
            sync_dir(&self.dir)?;
        }
        retained.log_start_offset = self.log_start_offset();
        Ok(retained)
    }

    /// The index after the last entry [`Log::apply_retention`] would remove with these
    /// arguments now (the log's first index when it would remove nothing): what a caller that
    /// bounds `below` must release first for retention to go on.
    pub fn retention_end(&self, policy: RetentionPolicy, below: Index, now_ms: i64) -> Index {
        match self.segments_to_retire(policy, below, now_ms) {
            0 => self.first_index(),
            count => self.segments[count - 1].next_index,
        }
    }

    /// How many segments, oldest first, retention removes.
    fn segments_to_retire(&self, policy: RetentionPolicy, below: Index, now_ms: i64) -> usize {
        let mut total = self.size_bytes();
        let mut count = 0;
        for segment in &self.segments[..self.segments.len() - 1] {
            if segment.next_index > below {
                break;
            }
            let too_old = policy
                .retention_ms
                .is_some_and(|ms| now_ms.saturating_sub(segment.max_timestamp) > ms);
            let too_big = policy
                .retention_bytes
                .is_some_and(|bytes| total.saturating_sub(segment.size) >= bytes);
            if !(too_old || too_big) {
                break;
            }
            total -= segment.size;
            count += 1;
        }
        count
    }
}
