//! Compaction for `cleanup.policy=compact`: keep the latest record of every key.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{BufWriter, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use kafka_protocol::records::Record;

use crate::batch::{self, BatchHeader};
use crate::config::CompactionPolicy;
use crate::entry::{EntryHeader, encode_segment_header};
use crate::error::{LogError, Result};
use crate::log::Log;
use crate::segment::{Contiguity, ScanEnd, Segment, sync_dir};
use crate::types::{EntryKind, Index, Offset};

/// Approximate bytes a key map slot costs besides the key itself.
const MAP_SLOT_OVERHEAD_BYTES: usize = 64;

/// What a compaction pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compacted {
    /// Segments rewritten.
    pub segments_rewritten: usize,
    /// Records dropped because a later record has the same key, or as expired tombstones.
    pub records_removed: u64,
    /// Bytes of the rewritten segments before.
    pub bytes_before: u64,
    /// Bytes of the rewritten segments after.
    pub bytes_after: u64,
}

impl Log {
    /// Compacts the closed segments whose entries are all below `below`: within them only the
    /// latest record of each key stays, and tombstones older than `delete_retention_ms` (by
    /// `now_ms`) go. Each segment is rewritten atomically (new file, fsync, rename, fsync dir).
    /// Offsets of kept records do not change; batches that lose every record disappear.
    pub fn compact(
        &mut self,
        below: Index,
        policy: CompactionPolicy,
        now_ms: i64,
    ) -> Result<Compacted> {
        let closed = self.segments.len() - 1;
        let eligible = self.segments[..closed]
            .iter()
            .take_while(|s| s.next_index <= below)
            .count();
        let mut latest: HashMap<Box<[u8]>, i64> = HashMap::new();
        let mut map_bytes = 0usize;
        let mut mapped = 0;
        for segment in &self.segments[..eligible] {
            let keys = segment_keys(segment)?;
            let added: usize = keys
                .keys()
                .filter(|k| !latest.contains_key(*k))
                .map(|k| k.len() + MAP_SLOT_OVERHEAD_BYTES)
                .sum();
            if map_bytes + added > self.config.compaction_map_bytes_max {
                break;
            }
            map_bytes += added;
            latest.extend(keys);
            mapped += 1;
        }
        let mut done = Compacted::default();
        for i in 0..mapped {
            let segment = &self.segments[i];
            let rewrite = rewrite_segment(segment, &latest, policy, now_ms)?;
            if rewrite.records_removed == 0 {
                fs::remove_file(&rewrite.path).map_err(LogError::io(&rewrite.path))?;
                continue;
            }
            let path = segment.path.clone();
            done.bytes_before += segment.size;
            done.records_removed += rewrite.records_removed;
            fs::rename(&rewrite.path, &path).map_err(LogError::io(&path))?;
            sync_dir(&self.dir)?;
            let mut fresh = Segment::open(&path, self.config.index_interval_bytes)?;
            let end = fresh.load(None, Contiguity::Increasing)?;
            if let ScanEnd::Invalid { position, reason } = end {
                return Err(LogError::Corrupt {
                    path,
                    position,
                    reason,
                });
            }
            fresh.index.write_files(&path, fresh.size)?;
            done.bytes_after += fresh.size;
            done.segments_rewritten += 1;
            self.segments[i] = fresh;
        }
        Ok(done)
    }
}

/// The latest offset of every key in one segment.
fn segment_keys(segment: &Segment) -> Result<HashMap<Box<[u8]>, i64>> {
    let mut keys = HashMap::new();
    let mut failure = None;
    let end = segment.scan(
        crate::entry::SEGMENT_HEADER_LEN as u64,
        |position, header, payload| match compactable_records(header, payload) {
            Ok(Some((_, records))) => {
                for record in records {
                    if let Some(key) = record.key {
                        keys.insert(Box::<[u8]>::from(&key[..]), record.offset);
                    }
                }
                ControlFlow::Continue(())
            }
            Ok(None) => ControlFlow::Continue(()),
            Err(reason) => {
                failure = Some((position, reason));
                ControlFlow::Break(())
            }
        },
    )?;
    check_scan(segment, end, failure)?;
    Ok(keys)
}

/// The records of a data entry that compaction may filter; `None` for entries kept whole.
fn compactable_records(
    header: &EntryHeader,
    payload: &[u8],
) -> std::result::Result<Option<(BatchHeader, Vec<Record>)>, String> {
    if header.kind != EntryKind::Data {
        return Ok(None);
    }
    let batch = BatchHeader::parse(payload).map_err(|e| e.to_string())?;
    if batch.is_transactional_or_control() {
        return Ok(None);
    }
    let records = batch::decode_records(payload).map_err(|e| e.to_string())?;
    Ok(Some((batch, records)))
}

fn check_scan(segment: &Segment, end: ScanEnd, failure: Option<(u64, String)>) -> Result<()> {
    if let Some((position, reason)) = failure {
        return Err(LogError::Corrupt {
            path: segment.path.clone(),
            position,
            reason,
        });
    }
    if let ScanEnd::Invalid { position, reason } = end {
        return Err(LogError::Corrupt {
            path: segment.path.clone(),
            position,
            reason,
        });
    }
    Ok(())
}

struct Rewrite {
    path: PathBuf,
    records_removed: u64,
}

/// Writes the compacted copy of `segment` to `<segment>.cleaned` and syncs it.
fn rewrite_segment(
    segment: &Segment,
    latest: &HashMap<Box<[u8]>, i64>,
    policy: CompactionPolicy,
    now_ms: i64,
) -> Result<Rewrite> {
    let path = cleaned_path(&segment.path);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(LogError::io(&path))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(&encode_segment_header(
        segment.base_index,
        segment.base_offset,
    ))
    .map_err(LogError::io(&path))?;
    let mut removed = 0u64;
    let mut failure = None;
    let mut write_error = None;
    let keep = |r: &Record| match &r.key {
        None => true,
        Some(key) => {
            let is_latest = latest.get(&key[..]) == Some(&r.offset);
            let expired_tombstone = r.value.is_none()
                && now_ms.saturating_sub(r.timestamp) > policy.delete_retention_ms;
            is_latest && !expired_tombstone
        }
    };
    let end = segment.scan(
        crate::entry::SEGMENT_HEADER_LEN as u64,
        |position, header, payload| {
            let rewritten = match compactable_records(header, payload) {
                Ok(None) => Ok(Some((*header, payload.to_vec()))),
                Ok(Some((batch, records))) => {
                    let total = records.len();
                    let kept: Vec<Record> = records.into_iter().filter(|r| keep(r)).collect();
                    removed += (total - kept.len()) as u64;
                    if kept.len() == total {
                        Ok(Some((*header, payload.to_vec())))
                    } else if kept.is_empty() {
                        Ok(None)
                    } else {
                        batch::encode_records(&batch, &kept)
                            .map_err(|e| e.to_string())
                            .and_then(|bytes| {
                                let new = BatchHeader::parse(&bytes).map_err(|e| e.to_string())?;
                                let entry = EntryHeader {
                                    payload_len: bytes.len() as u32,
                                    first_offset: Offset(new.base_offset),
                                    offset_count: new.offset_count(),
                                    max_timestamp: new.max_timestamp,
                                    ..*header
                                };
                                Ok(Some((entry, bytes)))
                            })
                    }
                }
                Err(reason) => Err(reason),
            };
            match rewritten {
                Ok(Some((entry, bytes))) => {
                    let raw = entry.encode(&bytes);
                    if let Err(e) = out.write_all(&raw).and_then(|()| out.write_all(&bytes)) {
                        write_error = Some(e);
                        return ControlFlow::Break(());
                    }
                    ControlFlow::Continue(())
                }
                Ok(None) => ControlFlow::Continue(()),
                Err(reason) => {
                    failure = Some((position, reason));
                    ControlFlow::Break(())
                }
            }
        },
    )?;
    if let Some(e) = write_error {
        return Err(LogError::io(&path)(e));
    }
    check_scan(segment, end, failure)?;
    let file = out
        .into_inner()
        .map_err(|e| LogError::io(&path)(e.into_error()))?;
    file.sync_all().map_err(LogError::io(&path))?;
    Ok(Rewrite {
        path,
        records_removed: removed,
    })
}

fn cleaned_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".cleaned");
    path.with_file_name(name)
}
