//! The offset store: committed offsets as records of `__consumer_offsets` (their keys and
//! values), written through the one append path, and the cache of each partition led here,
//! rebuilt from the partition by its new leader.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use strand_node::{Appended, PartitionReplica, Replicas, Writer, now_ms};

use super::records::{self, GroupRecord, Key};
use crate::errors::commit_error_code;

pub(crate) use super::records::Committed;

/// The topic that holds committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Kafka's `offset.metadata.max.bytes`.
pub(crate) const OFFSET_METADATA_MAX: usize = 4096;

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
        records::offset_key(group, topic, partition),
        Some(records::offset_value(committed)),
    )
}

/// The tombstone that removes `group`'s offset of `topic`/`partition`.
pub(crate) fn tombstone(group: &str, topic: &str, partition: i32) -> OffsetRecord {
    (records::offset_key(group, topic, partition), None)
}

/// The record that stores `group`'s membership.
pub(crate) fn group_record(group: &str, record: &GroupRecord) -> OffsetRecord {
    (
        records::group_key(group),
        Some(records::group_value(record)),
    )
}

/// The tombstone that removes `group`'s membership record.
pub(crate) fn group_tombstone(group: &str) -> OffsetRecord {
    (records::group_key(group), None)
}

/// One `__consumer_offsets` partition's offsets and group records, as loaded by its current
/// leader.
#[derive(Debug, Default)]
pub(crate) struct OffsetCache {
    term: i32,
    groups: HashMap<String, GroupOffsets>,
    records: HashMap<String, GroupRecord>,
}

impl OffsetCache {
    /// The offsets of `group`.
    pub(crate) fn group(&self, group: &str) -> Option<&GroupOffsets> {
        self.groups.get(group)
    }

    /// Every group's offsets.
    pub(crate) fn offsets(&self) -> &HashMap<String, GroupOffsets> {
        &self.groups
    }

    /// The membership record of `group`, the latest written.
    pub(crate) fn record(&self, group: &str) -> Option<&GroupRecord> {
        self.records.get(group)
    }

    /// Every group with offsets or a membership record.
    pub(crate) fn group_ids(&self) -> impl Iterator<Item = &String> {
        self.groups.keys().chain(
            self.records
                .keys()
                .filter(|g| !self.groups.contains_key(*g)),
        )
    }

    /// Every membership record.
    pub(crate) fn records(&self) -> &HashMap<String, GroupRecord> {
        &self.records
    }

    /// Applies one record: an offset or a group's membership, or a tombstone that removes
    /// one. Records of other kinds, or that do not decode, are skipped.
    fn apply(&mut self, key: Option<&[u8]>, value: Option<&[u8]>) {
        match key.and_then(records::decode_key) {
            Some(Key::Offset {
                group,
                topic,
                partition,
            }) => match value.map(records::decode_offset) {
                Some(Some(committed)) => {
                    self.groups
                        .entry(group)
                        .or_default()
                        .insert((topic, partition), committed);
                }
                None => {
                    if let Some(offsets) = self.groups.get_mut(&group) {
                        offsets.remove(&(topic, partition));
                        if offsets.is_empty() {
                            self.groups.remove(&group);
                        }
                    }
                }
                Some(None) => {}
            },
            Some(Key::Group(group)) => match value.map(records::decode_group) {
                Some(Some(record)) => {
                    self.records.insert(group, record);
                }
                None => {
                    self.records.remove(&group);
                }
                Some(None) => {}
            },
            None => {}
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

    /// Every group with committed offsets or a membership record in a cache loaded here.
    pub(crate) fn groups(&self) -> Vec<String> {
        self.caches()
            .values()
            .flat_map(|cache| cache.group_ids().cloned().collect::<Vec<_>>())
            .collect()
    }

    /// Loads the cache of `partition`, which `replica` leads in `term`, unless this term has
    /// loaded it already; `on_load` sees a fresh load, under the caches' lock, so no request
    /// finds the cache loaded before `on_load` has run.
    pub(crate) fn ensure(
        &self,
        replica: &PartitionReplica,
        term: i32,
        partition: u32,
        on_load: impl FnOnce(&OffsetCache),
    ) -> Result<(), ResponseError> {
        let mut caches = self.caches();
        if caches.get(&partition).is_some_and(|c| c.term == term) {
            return Ok(());
        }
        let cache = load(replica, term)?;
        on_load(&cache);
        caches.insert(partition, cache);
        Ok(())
    }

    /// Runs `f` on the cache of `partition` as loaded in `term`; NOT_COORDINATOR if it is
    /// not (leadership moved since the caller looked).
    pub(crate) fn with<T>(
        &self,
        term: i32,
        partition: u32,
        f: impl FnOnce(&mut OffsetCache) -> T,
    ) -> Result<T, ResponseError> {
        match self.caches().get_mut(&partition) {
            Some(cache) if cache.term == term => Ok(f(cache)),
            _ => Err(ResponseError::NotCoordinator),
        }
    }

    /// Every loaded cache: its partition and term, and what `f` makes of it.
    pub(crate) fn each<T>(&self, mut f: impl FnMut(u32, i32, &OffsetCache) -> T) -> Vec<T> {
        self.caches()
            .iter()
            .map(|(partition, cache)| f(*partition, cache.term, cache))
            .collect()
    }

    /// Writes offset records through `replicas`' append path and, once they are committed,
    /// into the cache.
    pub(crate) async fn write(
        &self,
        replicas: &Replicas,
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
        // Once leadership moved on, the next term's load reads these records from the log.
        let _ = self.with(term, partition, |cache| {
            for (k, v) in &records {
                cache.apply(Some(k), v.as_deref());
            }
        });
        Ok(())
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
        ..Default::default()
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
                (b"not a key".to_vec(), Some(b"{}".to_vec())),
            ],
            &[],
        );
    }
}
