//! The durable mark: a small file beside the segments, `durable.mark`, saying how far the log
//! was known to be on disk: the index after the last entry an fsync covered. It is written
//! now and then by the log's owner (not on every flush, which would double the fsyncs), so it
//! trails what is durable by at most that interval, and never claims more.
//!
//! At open, a log that ends before its mark lost entries it had made durable (and a replica
//! may have acknowledged): corruption in the middle of the active segment, cut like a torn
//! tail, or files lost. That is reported in `Recovery::lost_durable`, so the replica can
//! stay out of elections until it has fetched them again. Everything that removes entries on
//! purpose (truncation, reset, adoption, going back after a failed write) removes the mark.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{LogError, Result};
use crate::log::Log;
use crate::segment::sync_dir;
use crate::types::Index;

const MARK_FILE: &str = "durable.mark";
const MARK_LEN: usize = 12;

/// Where a log was durable, taken with a [`crate::SyncHandle`] before its fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurablePoint {
    /// The index after the last entry the fsync covers.
    pub(crate) next_index: Index,
    /// `Log::rewrites` when the handle was taken: a point from before a truncation claims
    /// entries that are gone.
    pub(crate) rewrites: u64,
}

fn mark_path(dir: &Path) -> PathBuf {
    dir.join(MARK_FILE)
}

/// The mark in `dir`, if there is a whole one.
pub(crate) fn read_mark(dir: &Path) -> Option<Index> {
    let bytes = fs::read(mark_path(dir)).ok()?;
    if bytes.len() != MARK_LEN {
        return None;
    }
    let crc = u32::from_le_bytes(bytes[8..12].try_into().ok()?);
    if crc != crc32c::crc32c(&bytes[..8]) {
        return None;
    }
    Some(Index(u64::from_le_bytes(bytes[..8].try_into().ok()?)))
}

impl Log {
    /// Records durably that the log holds every entry before `point` on disk, when `point`
    /// still describes this log (no truncation since its handle was taken) and has been made
    /// durable ([`Log::mark_flushed`]). Takes `&self`: callers hold the log shared, which
    /// keeps truncations (they need it exclusively) from removing the mark meanwhile.
    pub fn write_durable_mark(&self, point: DurablePoint) -> Result<()> {
        if point.rewrites != self.rewrites || point.next_index > self.flushed_next_index() {
            return Ok(());
        }
        let mut bytes = [0u8; MARK_LEN];
        bytes[..8].copy_from_slice(&point.next_index.0.to_le_bytes());
        let crc = crc32c::crc32c(&bytes[..8]);
        bytes[8..].copy_from_slice(&crc.to_le_bytes());
        // Overwritten in place: one fsync, and a write torn by a crash fails its checksum,
        // which makes no claim at all. A new file's entry in the directory is synced once.
        let path = mark_path(&self.dir);
        let existed = path.exists();
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(LogError::io(&path))?;
        file.write_all_at(&bytes, 0).map_err(LogError::io(&path))?;
        file.sync_data().map_err(LogError::io(&path))?;
        if !existed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// The point everything the log holds now is at, once it is durable.
    pub fn durable_point(&self) -> DurablePoint {
        DurablePoint {
            next_index: self.next_index(),
            rewrites: self.rewrites,
        }
    }

    /// Removes the mark, durably: entries are about to be removed on purpose.
    pub(crate) fn remove_durable_mark(&self) -> Result<()> {
        let path = mark_path(&self.dir);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(LogError::io(&path)(e)),
        }
    }
}
