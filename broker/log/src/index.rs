//! Sparse indexes of a segment: the offset index and the time index, and their files.
//!
//! Both are kept in memory for every segment and written beside a segment when it is closed.
//! A file carries the segment length it describes and its own checksum; at open a file that is
//! missing, damaged or describes another length is stale and the index is rebuilt by scanning.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::{LogError, Result};
use crate::types::{Index, Offset};

/// One point of the offset index: the entry at `position` has this index and first offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexPoint {
    /// Raft index of the entry.
    pub index: Index,
    /// First offset of the entry.
    pub offset: Offset,
    /// Byte position of the entry in the segment file.
    pub position: u64,
}

/// One point of the time index: every entry before `position` has a timestamp ≤ `max_timestamp_before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimePoint {
    /// Largest timestamp of the entries before `position` (-1 when none).
    pub max_timestamp_before: i64,
    /// Byte position of an entry in the segment file.
    pub position: u64,
}

/// The two sparse indexes of one segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SparseIndex {
    /// Offset index points in file order.
    pub offsets: Vec<IndexPoint>,
    /// Time index points in file order.
    pub times: Vec<TimePoint>,
}

const OFFSET_MAGIC: &[u8; 8] = b"STRNDIDX";
const TIME_MAGIC: &[u8; 8] = b"STRNDTIX";
const FILE_HEADER_LEN: usize = 24;

impl SparseIndex {
    /// Position to start scanning from to find the entry with Raft index `index`.
    pub fn position_for_index(&self, index: Index) -> Option<u64> {
        let at = self.offsets.partition_point(|p| p.index <= index);
        at.checked_sub(1).map(|i| self.offsets[i].position)
    }

    /// Position to start scanning from to find the entry holding `offset`.
    pub fn position_for_offset(&self, offset: Offset) -> Option<u64> {
        let at = self.offsets.partition_point(|p| p.offset <= offset);
        at.checked_sub(1).map(|i| self.offsets[i].position)
    }

    /// Position to start scanning from to find the first record with timestamp ≥ `timestamp`.
    pub fn position_for_timestamp(&self, timestamp: i64) -> Option<u64> {
        let at = self
            .times
            .partition_point(|p| p.max_timestamp_before < timestamp);
        at.checked_sub(1).map(|i| self.times[i].position)
    }

    /// Drops every point at or after `position` (the file was cut there).
    pub fn cut_at(&mut self, position: u64) {
        self.offsets.retain(|p| p.position < position);
        self.times.retain(|p| p.position < position);
    }

    /// Writes `<stem>.index` and `<stem>.timeindex` describing a segment of `segment_len` bytes,
    /// each to a temporary file that is synced and renamed into place.
    pub fn write_files(&self, log_path: &Path, segment_len: u64) -> Result<()> {
        let mut body = Vec::with_capacity(self.offsets.len() * 24);
        for p in &self.offsets {
            body.extend_from_slice(&p.index.0.to_le_bytes());
            body.extend_from_slice(&p.offset.0.to_le_bytes());
            body.extend_from_slice(&p.position.to_le_bytes());
        }
        write_index_file(
            &log_path.with_extension("index"),
            OFFSET_MAGIC,
            segment_len,
            &body,
        )?;
        let mut body = Vec::with_capacity(self.times.len() * 16);
        for p in &self.times {
            body.extend_from_slice(&p.max_timestamp_before.to_le_bytes());
            body.extend_from_slice(&p.position.to_le_bytes());
        }
        write_index_file(
            &log_path.with_extension("timeindex"),
            TIME_MAGIC,
            segment_len,
            &body,
        )
    }

    /// Reads both index files of a segment of `segment_len` bytes.
    /// `None` when either is missing, damaged or stale.
    pub fn read_files(log_path: &Path, segment_len: u64) -> Option<SparseIndex> {
        let offsets =
            read_index_file(&log_path.with_extension("index"), OFFSET_MAGIC, segment_len)?;
        let times = read_index_file(
            &log_path.with_extension("timeindex"),
            TIME_MAGIC,
            segment_len,
        )?;
        if offsets.len() % 24 != 0 || times.len() % 16 != 0 {
            return None;
        }
        let u64_at = |b: &[u8], at: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[at..at + 8]);
            u64::from_le_bytes(x)
        };
        let offsets = offsets
            .chunks_exact(24)
            .map(|c| IndexPoint {
                index: Index(u64_at(c, 0)),
                offset: Offset(u64_at(c, 8) as i64),
                position: u64_at(c, 16),
            })
            .collect();
        let times = times
            .chunks_exact(16)
            .map(|c| TimePoint {
                max_timestamp_before: u64_at(c, 0) as i64,
                position: u64_at(c, 8),
            })
            .collect();
        Some(SparseIndex { offsets, times })
    }

    /// Removes the index files of a segment, if present.
    pub fn remove_files(log_path: &Path) -> Result<()> {
        for ext in ["index", "timeindex"] {
            let path = log_path.with_extension(ext);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io(path)(e)),
            }
        }
        Ok(())
    }
}

fn write_index_file(path: &Path, magic: &[u8; 8], segment_len: u64, body: &[u8]) -> Result<()> {
    let mut bytes = Vec::with_capacity(FILE_HEADER_LEN + body.len());
    bytes.extend_from_slice(magic);
    bytes.extend_from_slice(&segment_len.to_le_bytes());
    bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
    bytes.extend_from_slice(body);
    let tmp = path.with_extension("tmp");
    let mut file = fs::File::create(&tmp).map_err(LogError::io(&tmp))?;
    file.write_all(&bytes).map_err(LogError::io(&tmp))?;
    file.sync_data().map_err(LogError::io(&tmp))?;
    fs::rename(&tmp, path).map_err(LogError::io(path))
}

fn read_index_file(path: &Path, magic: &[u8; 8], segment_len: u64) -> Option<Vec<u8>> {
    let bytes = fs::read(path).ok()?;
    if bytes.len() < FILE_HEADER_LEN || &bytes[0..8] != magic {
        return None;
    }
    let mut x = [0u8; 8];
    x.copy_from_slice(&bytes[8..16]);
    let covered = u64::from_le_bytes(x);
    let len = u32::from_le_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]) as usize;
    let crc = u32::from_le_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    let body = &bytes[FILE_HEADER_LEN..];
    if covered != segment_len || body.len() != len || crc32c::crc32c(body) != crc {
        return None;
    }
    Some(body.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SparseIndex {
        SparseIndex {
            offsets: vec![
                IndexPoint {
                    index: Index(0),
                    offset: Offset(0),
                    position: 32,
                },
                IndexPoint {
                    index: Index(10),
                    offset: Offset(100),
                    position: 5000,
                },
                IndexPoint {
                    index: Index(20),
                    offset: Offset(200),
                    position: 9000,
                },
            ],
            times: vec![
                TimePoint {
                    max_timestamp_before: -1,
                    position: 32,
                },
                TimePoint {
                    max_timestamp_before: 50,
                    position: 5000,
                },
                TimePoint {
                    max_timestamp_before: 90,
                    position: 9000,
                },
            ],
        }
    }

    #[test]
    fn lookups_pick_the_last_point_not_after_the_target() {
        let idx = sample();
        assert_eq!(idx.position_for_index(Index(15)), Some(5000));
        assert_eq!(idx.position_for_offset(Offset(99)), Some(32));
        assert_eq!(idx.position_for_offset(Offset(200)), Some(9000));
        assert_eq!(idx.position_for_timestamp(50), Some(32));
        assert_eq!(idx.position_for_timestamp(51), Some(5000));
    }

    #[test]
    fn files_round_trip_and_stale_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("00000000000000000000.log");
        sample().write_files(&log, 12345).unwrap();
        assert_eq!(SparseIndex::read_files(&log, 12345), Some(sample()));
        assert_eq!(SparseIndex::read_files(&log, 12346), None);
        let index = log.with_extension("index");
        let mut bytes = fs::read(&index).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&index, bytes).unwrap();
        assert_eq!(SparseIndex::read_files(&log, 12345), None);
    }
}
