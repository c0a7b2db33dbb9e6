//! The offset store: committed offsets as records of `__consumer_offsets` (their keys and
//! values), written through the one append path, and the cache of each partition led here,
//! rebuilt from the partition by its new leader.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};
use strand_node::{Appended, PartitionReplica, Replicas, Writer, now_ms};

use crate::errors::commit_error_code;

/// The topic that holds committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Kafka's `offset.metadata.max.bytes`.
pub(crate) const OFFSET_METADATA_MAX: usize = 4096;

/// A committed offset as stored in `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Committed {
    /// The offset.
    pub(crate) offset: i64,
    /// The leader epoch the client saw at that offset.
    pub(crate) leader_epoch: i32,
    /// The client's metadata, at most [`OFFSET_METADATA_MAX`] bytes.
    pub(crate) metadata: String,
    /// When it was committed, in ms since the epoch.
    pub(crate) commit_ms: i64,
}

/// A group's committed offsets, by topic and partition.
pub(crate) type GroupOffsets = BTreeMap<(String, i32), Committed>;

/// A record of `__consumer_offsets`: its key and its value (`None`: a tombstone).
pub(crate) type OffsetRecord = (Vec<u8>, Option<Vec<u8>>);

/// The record that commits `committed` for `group`'s `topic`/`partition`.
pub(crate) fn commit_record(
    group: &str,
    topic: &str,
    partition: i32,
    committed: &Committed,
) -> OffsetRecord {
    (
        offset_key(group, topic, partition),
        Some(serde_json::to_vec(committed).unwrap_or_default()),
    )
}

/// The tombstone that removes `group`'s offset of `topic`/`partition`.
pub(crate) fn tombstone(group: &str, topic: &str, partition: i32) -> OffsetRecord {
    (offset_key(group, topic, partition), None)
}

fn offset_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    serde_json::to_vec(&("offset", group, topic, partition)).unwrap_or_default()
}

/// One `__consumer_offsets` partition's offsets, as loaded by its current leader.
#[derive(Debug, Default)]
pub(crate) struct OffsetCache {
    term: i32,
    groups: HashMap<String, GroupOffsets>,
}

impl OffsetCache {
    /// The offsets of `group`.
    pub(crate) fn group(&self, group: &str) -> Option<&GroupOffsets> {
        self.groups.get(group)
    }

    /// Applies one record: an offset, or a tombstone that removes one. Records of other
    /// kinds, or that do not decode, are skipped.
    fn apply(&mut self, key: Option<&[u8]>, value: Option<&[u8]>) {
        let Some(Ok((kind, group, topic, partition))) =
            key.map(serde_json::from_slice::<(String, String, String, i32)>)
        else {
            return;
        };
        if kind != "offset" {
            return;
        }
        match value.map(serde_json::from_slice::<Committed>) {
            Some(Ok(committed)) => {
                self.groups
                    .entry(group)
                    .or_default()
                    .insert((topic, partition), committed);
            }
            // A tombstone removes the offset.
            None => {
                if let Some(offsets) = self.groups.get_mut(&group) {
                    offsets.remove(&(topic, partition));
                    if offsets.is_empty() {
                        self.groups.remove(&group);
                    }
                }
            }
            Some(Err(_)) => {}
        }
    }
}

/// The caches of every `__consumer_offsets` partition led here.
#[derive(Default)]
pub(crate) struct OffsetStore {
    caches: Mutex<HashMap<u32, OffsetCache>>,
}

impl OffsetStore {
    fn caches(&self) -> MutexGuard<'_, HashMap<u32, OffsetCache>> {
        self.caches.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every group with committed offsets in a cache loaded here.
    pub(crate) fn groups(&self) -> Vec<String> {
        self.caches()
            .values()
            .flat_map(|cache| cache.groups.keys().cloned())
            .collect()
    }

    /// Runs `f` on the offsets of `partition`, which `replica` leads in `term`, loading them
    /// first if this term has not yet.
    pub(crate) fn with<T>(
        &self,
        replica: &PartitionReplica,
        term: i32,
        partition: u32,
        f: impl FnOnce(&mut OffsetCache) -> T,
    ) -> Result<T, ResponseError> {
        use std::collections::hash_map::Entry;
        let mut caches = self.caches();
        let cache = match caches.entry(partition) {
            Entry::Occupied(e) if e.get().term == term => e.into_mut(),
            Entry::Occupied(mut e) => {
                e.insert(load(replica, term)?);
                e.into_mut()
            }
            Entry::Vacant(e) => e.insert(load(replica, term)?),
        };
        Ok(f(cache))
    }

    /// Writes offset records through `replicas`' append path and, once they are committed,
    /// into the cache.
    pub(crate) async fn write(
        &self,
        replicas: &Replicas,
        replica: &PartitionReplica,
        term: i32,
        partition: u32,
        records: Vec<OffsetRecord>,
    ) -> Result<(), ResponseError> {
        if records.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let specs: Vec<strand_log::RecordSpec<'_>> = records
            .iter()
            .map(|(k, v)| (Some(k.as_slice()), v.as_deref(), now))
            .collect();
        let batch = Bytes::from(strand_log::build_batch(&specs));
        let appended = replicas
            .append(OFFSETS_TOPIC, partition as i32, Some(batch), Writer::Broker)
            .await
            .map_err(|e| commit_error_code(&e))?;
        // Offset commits carry no producer id, so they are never duplicates.
        if let Appended::Submitted { submitted, .. } = appended {
            submitted
                .applied()
                .await
                .map_err(|e| commit_error_code(&e))?;
        }
        self.with(replica, term, partition, |cache| {
            for (k, v) in &records {
                cache.apply(Some(k), v.as_deref());
            }
        })
    }
}

/// Reads every committed offset record of a partition. Refused (retriably) until the new
/// leader has committed every entry it holds, so nothing an earlier leader wrote is missed.
fn load(replica: &PartitionReplica, term: i32) -> Result<OffsetCache, ResponseError> {
    let hw = *replica.sm.high_watermark().borrow();
    let log = replica.store.log();
    let log = log.read().unwrap_or_else(|p| p.into_inner());
    if hw < log.next_offset() {
        return Err(ResponseError::CoordinatorLoadInProgress);
    }
    let mut cache = OffsetCache {
        term,
        groups: HashMap::new(),
    };
    let mut at = log.log_start_offset();
    while at < hw {
        let batches = log.read(at, hw, 1 << 20).map_err(|e| {
            tracing::error!(error = %e, "cannot read {OFFSETS_TOPIC}");
            ResponseError::CoordinatorLoadInProgress
        })?;
        if batches.batch_count == 0 {
            break;
        }
        let mut rest: &[u8] = &batches.bytes;
        while rest.len() >= 12 {
            let len =
                12 + i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]).max(0) as usize;
            let (batch, tail) = rest.split_at(len.min(rest.len()));
            rest = tail;
            let Ok(records) = strand_log::decode_records(batch) else {
                continue;
            };
            for record in records {
                cache.apply(record.key.as_deref(), record.value.as_deref());
            }
        }
        at = batches.next_offset;
    }
    Ok(cache)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed(offset: i64) -> Committed {
        Committed {
            offset,
            leader_epoch: 3,
            metadata: "m".into(),
            commit_ms: 1,
        }
    }

    /// Applies `records` to an empty cache; the offsets of group `g`, as (topic, partition,
    /// offset).
    fn check(records: &[OffsetRecord], expect: &[(&str, i32, i64)]) {
        let mut cache = OffsetCache::default();
        for (k, v) in records {
            cache.apply(Some(k), v.as_deref());
        }
        let got: Vec<(&str, i32, i64)> = cache
            .group("g")
            .into_iter()
            .flatten()
            .map(|((t, p), c)| (t.as_str(), *p, c.offset))
            .collect();
        assert_eq!(got, expect);
    }

    #[test]
    fn the_latest_commit_of_a_partition_wins_and_a_tombstone_removes_it() {
        check(&[commit_record("g", "t", 0, &committed(5))], &[("t", 0, 5)]);
        check(
            &[
                commit_record("g", "t", 0, &committed(5)),
                commit_record("g", "t", 0, &committed(7)),
                commit_record("g", "t", 1, &committed(2)),
            ],
            &[("t", 0, 7), ("t", 1, 2)],
        );
        check(
            &[
                commit_record("g", "t", 0, &committed(5)),
                tombstone("g", "t", 0),
            ],
            &[],
        );
        // Other groups' records and records that do not decode leave `g` alone.
        check(
            &[
                commit_record("other", "t", 0, &committed(5)),
                (b"not json".to_vec(), Some(b"{}".to_vec())),
            ],
            &[],
        );
    }
}
