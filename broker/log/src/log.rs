//! The partition log: an ordered list of segments, the last of which takes appends.

use std::fs;
use std::io::IoSlice;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::batch::{self, BatchHeader};

use crate::config::{FlushPolicy, LogConfig, OpenCheck};
use crate::entry::{ENTRY_HEADER_LEN, EntryHeader, SEGMENT_HEADER_LEN};
use crate::error::{LogError, Result};
use crate::index::SparseIndex;
use crate::segment::{
    Contiguity, ScanEnd, Segment, create_dir_durably, drop_from_page_cache, segment_file_name,
    sync_dir,
};
use crate::types::{EntryKind, Index, Offset, Term};

/// An entry to append: Raft decides its index and term, the log decides its offsets.
#[derive(Debug, Clone, Copy)]
pub struct NewEntry<'a> {
    /// Raft index; must be the log's next index.
    pub index: Index,
    /// Raft term.
    pub term: Term,
    /// What the entry holds.
    pub payload: Payload<'a>,
}

/// The payload of an entry to append.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// One Kafka RecordBatch v2. Its `baseOffset` and `partitionLeaderEpoch` are overwritten.
    Data(&'a [u8]),
    /// A Raft membership change, opaque to the log.
    Membership(&'a [u8]),
    /// A Raft blank entry.
    Blank,
}

/// An entry read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Raft index.
    pub index: Index,
    /// Raft term.
    pub term: Term,
    /// What the payload is.
    pub kind: EntryKind,
    /// First Kafka offset (the next offset for non-data entries).
    pub first_offset: Offset,
    /// Number of offsets the entry takes.
    pub offset_count: u32,
    /// Largest record timestamp, -1 for non-data entries.
    pub max_timestamp: i64,
    /// The stored payload: for data entries the stamped record batch.
    pub payload: Vec<u8>,
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// First offset of the first appended entry.
    pub first_offset: Offset,
    /// The log end offset after the append.
    pub next_offset: Offset,
    /// Whether the append ended with an fsync, so every entry is durable.
    pub flushed: bool,
}

/// Whole record batches read by offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batches {
    /// Concatenated record batches, each exactly as stored.
    pub bytes: Vec<u8>,
    /// The offset after the last batch returned (the requested offset when none was).
    pub next_offset: Offset,
    /// Number of batches in `bytes`.
    pub batch_count: usize,
}

/// What opening the log found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// A torn tail cut from the active segment.
    pub torn_tail: Option<TornTail>,
    /// Segments whose index files were missing or stale and were rebuilt.
    pub rebuilt_indexes: Vec<PathBuf>,
    /// Leftover temporary files of an interrupted compaction or index write, removed.
    pub removed_leftovers: Vec<PathBuf>,
    /// The log ends before the index its durable mark says was on disk (`durable.rs`):
    /// entries it had made durable were lost (corruption cut like a torn tail, or files gone).
    pub lost_durable: Option<Index>,
}

/// The end of the active segment that was cut at open because it was not whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The segment file.
    pub path: PathBuf,
    /// Byte position the file was cut at.
    pub position: u64,
    /// Bytes removed.
    pub bytes_removed: u64,
    /// Why the entry at `position` was not whole.
    pub reason: String,
}

/// A description of one segment, for snapshots and tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The segment file.
    pub path: PathBuf,
    /// Index of the first entry the segment was created for.
    pub base_index: Index,
    /// Offset of the first entry the segment was created for.
    pub base_offset: Offset,
    /// Index after the last entry.
    pub next_index: Index,
    /// Offset after the last data entry.
    pub next_offset: Offset,
    /// File size in bytes.
    pub size_bytes: u64,
    /// Largest record timestamp, -1 when none.
    pub max_timestamp: i64,
    /// Whether the segment is closed (immutable); only the last one is not.
    pub closed: bool,
}

/// What retention removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retained {
    /// Segments removed, oldest first.
    pub removed_segments: Vec<PathBuf>,
    /// Bytes freed.
    pub removed_bytes: u64,
    /// The log start offset afterwards.
    pub log_start_offset: Offset,
}

/// Flushed bytes dropped from the page cache at once: smaller runs wait for the next flush,
/// so a busy log makes one `fadvise` call per megabyte rather than per flush.
const PAGE_CACHE_DROP_MIN_BYTES: u64 = 1 << 20;

/// The largest folio (block of pages the page cache holds as one) a file system may use: a
/// PMD-sized huge page on x86-64.
const LARGE_FOLIO_BYTES_MAX: u64 = 2 << 20;

/// `Log::page_cache_window` when there is none.
const NO_WINDOW: u64 = u64::MAX;

/// Syncs a log's active segment from outside the log; see [`Log::sync_handle`].
#[derive(Debug)]
pub struct SyncHandle {
    file: fs::File,
    path: PathBuf,
    next_index: Index,
    /// Bytes of the segment this sync makes durable that then leave the page cache.
    uncache: Option<(u64, u64)>,
    point: crate::durable::DurablePoint,
}

impl SyncHandle {
    /// Makes the entries appended before the handle was taken durable; returns the index
    /// to pass to [`Log::mark_flushed`].
    pub fn sync(&self) -> Result<Index> {
        let error = crate::failpoints::DiskError::Failing;
        if let Some(e) = crate::failpoints::injected("log::fsync", &self.path, error) {
            return Err(LogError::io(&self.path)(e));
        }
        self.file.sync_data().map_err(LogError::io(&self.path))?;
        if let Some((from, to)) = self.uncache {
            drop_from_page_cache(&self.file, from, to);
        }
        Ok(self.next_index)
    }

    /// What the log holds durably once [`SyncHandle::sync`] returns, for
    /// [`Log::write_durable_mark`].
    pub fn point(&self) -> crate::durable::DurablePoint {
        self.point
    }
}

/// An entry to append after its checks: (kind, payload, offset count, max timestamp).
type Checked<'a> = (EntryKind, &'a [u8], u32, i64);

/// A partition log in one directory.
#[derive(Debug)]
pub struct Log {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    /// Never empty; the last segment is the active one.
    pub(crate) segments: Vec<Segment>,
    flushed_next_index: Index,
    last_flush_ms: Option<i64>,
    scratch: Vec<u8>,
    recovery: Recovery,
    /// Position in the active segment below which flushed bytes were dropped from the page
    /// cache. Atomic so a [`SyncHandle`] can claim the next run while the log is shared for
    /// reading.
    uncached_to: AtomicU64,
    /// The page cache window in effect ([`NO_WINDOW`] for none); see
    /// [`Log::set_page_cache_window`].
    pub(crate) page_cache_window: AtomicU64,
    /// How many times entries already appended were removed or replaced; see [`Log::rewrites`].
    pub(crate) rewrites: u64,
}

impl Log {
    /// Opens (or creates) the log in `dir`, recovering from a crash: a torn tail of the active
    /// segment is cut, missing or stale indexes are rebuilt, and corruption anywhere else fails
    /// with an error naming the file and byte position.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Log> {
        let mut recovery = Recovery {
            removed_leftovers: crate::transfer::finish_interrupted_adoption(dir)?,
            ..Recovery::default()
        };
        create_dir_durably(dir)?;
        let mut paths = Vec::new();
        for item in fs::read_dir(dir).map_err(LogError::io(dir))? {
            let path = item.map_err(LogError::io(dir))?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name.ends_with(".cleaned") || name.ends_with(".tmp") {
                fs::remove_file(&path).map_err(LogError::io(&path))?;
                recovery.removed_leftovers.push(path);
            } else if let Some(stem) = name.strip_suffix(".log")
                && let Ok(index) = stem.parse::<u64>()
            {
                paths.push((index, path));
            }
        }
        paths.sort();
        let mut segments: Vec<Segment> = Vec::with_capacity(paths.len().max(1));
        let count = paths.len();
        for (i, (_, path)) in paths.into_iter().enumerate() {
            let active = i + 1 == count;
            let segment = if active {
                open_active(&path, &config, segments.last(), &mut recovery)?
            } else {
                open_closed(&path, &config, &mut recovery)?
            };
            if let Some(prev) = segments.last()
                && (segment.base_index < prev.next_index || segment.base_offset < prev.next_offset)
            {
                return Err(LogError::Corrupt {
                    path: segment.path.clone(),
                    position: 0,
                    reason: format!(
                        "segment starts at index {} offset {} but the one before ends at index {} offset {}",
                        segment.base_index, segment.base_offset, prev.next_index, prev.next_offset
                    ),
                });
            }
            segments.push(segment);
        }
        if segments.is_empty() {
            segments.push(Segment::create(
                dir,
                Index(0),
                Offset(0),
                config.index_interval_bytes,
            )?);
        }
        let next_index = segments.last().map(|s| s.next_index).unwrap_or_default();
        for ext in ["index", "timeindex"] {
            remove_orphans(dir, ext, &segments)?;
        }
        // What recovery keeps is counted as durable from here on, but after a crash of the
        // process (not of the machine) the active segment's last writes may still be only in
        // the page cache: make them durable before Raft reports them to anyone. Closed
        // segments were synced before the next one was made; removals need the directory.
        if let Some(active) = segments.last() {
            active.sync()?;
        }
        sync_dir(dir)?;
        recovery.lost_durable =
            crate::durable::read_mark(dir).filter(|durable| *durable > next_index);
        Ok(Log {
            dir: dir.to_path_buf(),
            page_cache_window: AtomicU64::new(config.page_cache_window_bytes.unwrap_or(NO_WINDOW)),
            config,
            segments,
            // Everything found on disk at open is treated as durable.
            flushed_next_index: next_index,
            last_flush_ms: None,
            scratch: Vec::new(),
            recovery,
            uncached_to: AtomicU64::new(0),
            rewrites: 0,
        })
    }

    /// Changes the page cache window (`LogConfig::page_cache_window_bytes`) from the next flush
    /// on; `None` leaves the page cache to the kernel. Takes `&self` so the log's owner can
    /// change it while others read (a replica that starts or stops leading).
    pub fn set_page_cache_window(&self, window: Option<u64>) {
        self.page_cache_window
            .store(window.unwrap_or(NO_WINDOW), Ordering::Relaxed);
    }

    /// How many times since it was opened the log removed or replaced entries it had taken
    /// (`truncate_after`, `reset`, `adopt`). While it is unchanged, every entry appended since
    /// is still in the log as appended, so a copy of them kept elsewhere is still right.
    pub fn rewrites(&self) -> u64 {
        self.rewrites
    }

    /// What the last open found and repaired.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The directory of the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The first index the log holds (entries before it were removed by retention).
    pub fn first_index(&self) -> Index {
        self.segments[0].base_index
    }

    /// The index the next append must have.
    pub fn next_index(&self) -> Index {
        self.active().next_index
    }

    /// The index and term of the last entry, if the log has one.
    pub fn last_entry(&self) -> Option<(Index, Term)> {
        self.segments
            .iter()
            .rev()
            .find_map(|s| s.last_term.map(|t| (Index(s.next_index.0 - 1), t)))
    }

    /// The log end offset: the offset the next data entry takes.
    pub fn next_offset(&self) -> Offset {
        self.active().next_offset
    }

    /// The first offset still retained.
    pub fn log_start_offset(&self) -> Offset {
        self.segments[0].base_offset
    }

    /// Entries before this index are durable (fsynced).
    pub fn flushed_next_index(&self) -> Index {
        self.flushed_next_index
    }

    /// Total bytes of all segment files.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    /// A description of every segment, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let last = self.segments.len() - 1;
        self.segments
            .iter()
            .enumerate()
            .map(|(i, s)| SegmentInfo {
                path: s.path.clone(),
                base_index: s.base_index,
                base_offset: s.base_offset,
                next_index: s.next_index,
                next_offset: s.next_offset,
                size_bytes: s.size,
                max_timestamp: s.max_timestamp,
                closed: i != last,
            })
            .collect()
    }

    pub(crate) fn active(&self) -> &Segment {
        // `segments` is never empty: open creates one and nothing removes the last.
        self.segments.last().expect("log has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments.last_mut().expect("log has an active segment")
    }

    /// Appends entries in one write and, per the flush policy, one fsync (group commit).
    /// Data entries get their offsets from the log and have them stamped into the batch.
    /// Every entry is checked before anything is written, so a bad entry appends nothing.
    pub fn append(&mut self, entries: &[NewEntry<'_>], now_ms: i64) -> Result<Appended> {
        let checked = self.check_entries(entries)?;
        let first_offset = self.next_offset();
        let mut next_offset = first_offset;
        self.scratch.clear();
        // Per entry: its header, and the part of its payload not copied into `scratch`. Only
        // a data entry's first bytes change (the stamp), so only they are copied; the rest of
        // the batch goes to the file from the caller's buffer in the same vectored write.
        let mut pending: Vec<(EntryHeader, &[u8])> = Vec::with_capacity(entries.len());
        let mut pending_bytes = 0u64;
        for (entry, (kind, bytes, offset_count, max_timestamp)) in entries.iter().zip(checked) {
            let stored = (ENTRY_HEADER_LEN + bytes.len()) as u64;
            if self.roll_due(pending_bytes + stored, now_ms) {
                self.write_pending(&pending)?;
                pending.clear();
                pending_bytes = 0;
                self.scratch.clear();
                self.roll()?;
            }
            let header = EntryHeader {
                crc: 0,
                payload_len: bytes.len() as u32,
                index: entry.index,
                term: entry.term,
                kind,
                first_offset: next_offset,
                offset_count,
                max_timestamp,
            };
            let (head, tail) = match kind {
                EntryKind::Data => bytes.split_at(batch::STAMPED_PREFIX_LEN.min(bytes.len())),
                _ => (bytes, &[][..]),
            };
            let at = self.scratch.len();
            self.scratch.resize(at + ENTRY_HEADER_LEN, 0);
            self.scratch.extend_from_slice(head);
            let head = &mut self.scratch[at + ENTRY_HEADER_LEN..];
            if kind == EntryKind::Data {
                batch::stamp(head, next_offset.0, entry.term.as_leader_epoch());
            }
            let raw = header.encode_parts(head, tail);
            self.scratch[at..at + ENTRY_HEADER_LEN].copy_from_slice(&raw);
            pending.push((header, tail));
            pending_bytes += stored;
            next_offset = header.next_offset();
        }
        self.write_pending(&pending)?;
        let active = self.active_mut();
        if !active.is_empty() && active.roll_clock_ms.is_none() {
            active.roll_clock_ms = Some(now_ms);
        }
        let flushed = match self.config.flush {
            FlushPolicy::EveryAppend => true,
            FlushPolicy::Interval(every) => self
                .last_flush_ms
                .is_none_or(|last| now_ms.saturating_sub(last) >= every.as_millis() as i64),
            FlushPolicy::Never => false,
        };
        if flushed {
            self.flush(now_ms)?;
        }
        Ok(Appended {
            first_offset,
            next_offset,
            flushed,
        })
    }

    /// Checks that `entries` continue the log and fit in a segment, and reads what the entry
    /// headers need from each payload.
    fn check_entries<'a>(&self, entries: &[NewEntry<'a>]) -> Result<Vec<Checked<'a>>> {
        let limit = self
            .config
            .segment_bytes_max
            .saturating_sub(SEGMENT_HEADER_LEN as u64);
        let mut expected = self.next_index();
        let mut checked = Vec::with_capacity(entries.len());
        for entry in entries {
            if entry.index != expected {
                return Err(LogError::NonContiguousIndex {
                    expected,
                    got: entry.index,
                });
            }
            expected = expected.next();
            let item = match entry.payload {
                Payload::Data(bytes) => {
                    let header = BatchHeader::parse(bytes)?;
                    let count = header.offset_count();
                    (EntryKind::Data, bytes, count, header.max_timestamp)
                }
                Payload::Membership(bytes) => (EntryKind::Membership, bytes, 0, -1),
                Payload::Blank => (EntryKind::Blank, &[][..], 0, -1),
            };
            let stored = (ENTRY_HEADER_LEN + item.1.len()) as u64;
            if stored > limit || item.1.len() > u32::MAX as usize {
                return Err(LogError::EntryTooLarge {
                    size: stored,
                    limit,
                });
            }
            checked.push(item);
        }
        Ok(checked)
    }

    /// Writes the pending entries to the active segment in one vectored write (headers and
    /// stamped batch heads from `scratch`, the rest of each batch from the caller) and records
    /// them.
    fn write_pending(&mut self, pending: &[(EntryHeader, &[u8])]) -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let scratch = std::mem::take(&mut self.scratch);
        let mut parts = Vec::with_capacity(pending.len() * 2);
        let mut at = 0;
        for (header, tail) in pending {
            let head_len = ENTRY_HEADER_LEN + header.payload_len as usize - tail.len();
            parts.push(IoSlice::new(&scratch[at..at + head_len]));
            if !tail.is_empty() {
                parts.push(IoSlice::new(tail));
            }
            at += head_len;
        }
        debug_assert_eq!(at, scratch.len(), "every copied byte is written");
        let written = self.active_mut().write_at_end(&mut parts);
        drop(parts);
        self.scratch = scratch;
        let mut position = written?;
        let active = self.active_mut();
        for (header, _) in pending {
            assert_eq!(header.index, active.next_index, "log index continuity");
            assert_eq!(
                header.first_offset, active.next_offset,
                "log offset continuity"
            );
            active.record_entry(position, header);
            position += header.stored_len();
        }
        Ok(())
    }

    /// Changes when the active segment is closed (`segment.bytes`, `segment.ms`), from the
    /// next append on: a topic's config changed while its log is open.
    pub fn set_roll_limits(&mut self, segment_bytes_max: u64, segment_age_max: Duration) {
        self.config.segment_bytes_max = segment_bytes_max;
        self.config.segment_age_max = segment_age_max;
    }

    /// The log's settings.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    fn roll_due(&mut self, incoming_bytes: u64, now_ms: i64) -> bool {
        let max_bytes = self.config.segment_bytes_max;
        let max_age_ms = self.config.segment_age_max.as_millis() as i64;
        let active = self.active_mut();
        if active.is_empty() {
            return false;
        }
        let clock = active.roll_clock_ms.unwrap_or(now_ms);
        active.size + incoming_bytes > max_bytes || now_ms.saturating_sub(clock) >= max_age_ms
    }

    /// Closes the active segment (fsync and index files) and starts a new one.
    fn roll(&mut self) -> Result<()> {
        let (index, offset) = (self.next_index(), self.next_offset());
        self.active().close()?;
        if let Some((from, to)) = self.claim_uncache(0) {
            self.active().drop_cached(from, to);
        }
        self.uncached_to.store(0, Ordering::Relaxed);
        self.flushed_next_index = index;
        let segment = Segment::create(&self.dir, index, offset, self.config.index_interval_bytes)?;
        self.segments.push(segment);
        Ok(())
    }

    /// Makes every appended entry durable.
    pub fn flush(&mut self, now_ms: i64) -> Result<()> {
        if self.flushed_next_index != self.next_index() {
            self.active().sync()?;
            self.flushed_next_index = self.next_index();
            if let Some((from, to)) = self.claim_uncache(PAGE_CACHE_DROP_MIN_BYTES) {
                self.active().drop_cached(from, to);
            }
        }
        self.last_flush_ms = Some(now_ms);
        Ok(())
    }

    /// The bytes of the active segment, all appended before this call, that leave the page
    /// cache once they are durable: from where the last run ended to the page cache window
    /// before the end, if that is at least `min_bytes`. Claims them, so each run is dropped once.
    fn claim_uncache(&self, min_bytes: u64) -> Option<(u64, u64)> {
        let window = self.page_cache_window.load(Ordering::Relaxed);
        if window == NO_WINDOW {
            return None;
        }
        let to = self.active().size.saturating_sub(window);
        let from = self.uncached_to.load(Ordering::Relaxed);
        if to <= from || to - from < min_bytes {
            return None;
        }
        self.uncached_to.store(to, Ordering::Relaxed);
        // The kernel keeps a large folio that a range only partly covers, so each run reaches
        // back over the end of the last one; dropping a page twice costs nothing.
        Some((from.saturating_sub(LARGE_FOLIO_BYTES_MAX), to))
    }

    /// A handle to make the entries appended so far durable without holding the log, so appends
    /// can go on while an fsync is under way (group commit across appends). Closed segments are
    /// already durable; the handle syncs the active one. The bytes it makes durable that lie
    /// before the page cache window then leave the page cache.
    pub fn sync_handle(&self) -> Result<SyncHandle> {
        let active = self.active();
        Ok(SyncHandle {
            file: active.duplicate_file()?,
            path: active.path.clone(),
            next_index: active.next_index,
            uncache: self.claim_uncache(PAGE_CACHE_DROP_MIN_BYTES),
            point: self.durable_point(),
        })
    }

    /// Records that a [`SyncHandle`] finished: entries before its `next_index` are durable
    /// (unless they were truncated meanwhile).
    pub fn mark_flushed(&mut self, next_index: Index) {
        let durable = next_index.min(self.next_index());
        self.flushed_next_index = self.flushed_next_index.max(durable);
    }

    /// Flushes when the interval flush policy says it is time. Returns whether it flushed.
    pub fn flush_if_due(&mut self, now_ms: i64) -> Result<bool> {
        let FlushPolicy::Interval(every) = self.config.flush else {
            return Ok(false);
        };
        let due = self
            .last_flush_ms
            .is_none_or(|last| now_ms.saturating_sub(last) >= every.as_millis() as i64);
        if due && self.flushed_next_index != self.next_index() {
            self.flush(now_ms)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Drops every entry appended but not yet made durable, and any bytes a failed write left
    /// past the end of the active segment: after a write or an fsync fails, the page cache
    /// cannot be trusted to hold what reached the disk (a failed fsync may leave pages marked
    /// clean that were never written), so the log goes back to the last point an fsync
    /// confirmed, and Raft sends the rest again.
    pub fn discard_unflushed(&mut self) -> Result<()> {
        self.remove_durable_mark()?;
        let flushed = self.flushed_next_index;
        if flushed < self.next_index() {
            self.truncate_after(flushed.0.checked_sub(1).map(Index))?;
        }
        let active = self.active_mut();
        let size = active.size;
        active.cut_file(size)
    }

    /// Removes every entry after `last_kept` (every entry when `None`), durably.
    /// Offsets continue from the surviving tail. Only for the uncommitted tail.
    pub fn truncate_after(&mut self, last_kept: Option<Index>) -> Result<()> {
        let cut = last_kept.map_or(Index(0), Index::next);
        if cut >= self.next_index() {
            return Ok(());
        }
        self.remove_durable_mark()?;
        self.rewrites += 1;
        let keep = self.segment_for_index(cut);
        let removed: Vec<Segment> = self.segments.drain(keep + 1..).collect();
        let had_removed = !removed.is_empty();
        for segment in removed {
            segment.remove()?;
        }
        if had_removed {
            sync_dir(&self.dir)?;
        }
        let segment = self.active_mut();
        let from = segment
            .index
            .position_for_index(cut)
            .unwrap_or(SEGMENT_HEADER_LEN as u64);
        let mut position = segment.size;
        segment.scan(from, |at, header, _| {
            if header.index >= cut {
                position = at;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        })?;
        segment.cut_file(position)?;
        let index = std::mem::take(&mut segment.index);
        let end = segment.load(Some(index), Contiguity::Increasing)?;
        corrupt_unless_clean(segment, end)?;
        segment.roll_clock_ms = None;
        let (next, size) = (segment.next_index, segment.size);
        self.flushed_next_index = self.flushed_next_index.min(next);
        self.uncached_to.fetch_min(size, Ordering::Relaxed);
        Ok(())
    }

    /// Removes every segment and starts the log again, empty, at `next_index` and `next_offset`
    /// (a replica that installed a snapshot ending there).
    pub fn reset(&mut self, next_index: Index, next_offset: Offset) -> Result<()> {
        self.remove_durable_mark()?;
        self.rewrites += 1;
        let fresh = Segment::create(
            &self.dir,
            next_index,
            next_offset,
            self.config.index_interval_bytes,
        )?;
        let fresh_path = fresh.path.clone();
        for segment in std::mem::replace(&mut self.segments, vec![fresh]) {
            if segment.path != fresh_path {
                segment.remove()?;
            }
        }
        sync_dir(&self.dir)?;
        self.flushed_next_index = next_index;
        self.uncached_to.store(0, Ordering::Relaxed);
        Ok(())
    }
}

fn open_closed(path: &Path, config: &LogConfig, recovery: &mut Recovery) -> Result<Segment> {
    let mut segment = Segment::open(path, config.index_interval_bytes)?;
    let on_disk = SparseIndex::read_files(path, segment.size);
    let trusted = match config.open_check {
        OpenCheck::ActiveSegment => on_disk.clone(),
        OpenCheck::AllSegments => None,
    };
    let end = segment.load(trusted, Contiguity::Increasing)?;
    corrupt_unless_clean(&segment, end)?;
    if on_disk.as_ref() != Some(&segment.index) {
        segment.index.write_files(path, segment.size)?;
        recovery.rebuilt_indexes.push(path.to_path_buf());
    }
    Ok(segment)
}

fn open_active(
    path: &Path,
    config: &LogConfig,
    prev: Option<&Segment>,
    recovery: &mut Recovery,
) -> Result<Segment> {
    let mut segment = match Segment::open(path, config.index_interval_bytes) {
        Ok(segment) => segment,
        // A crash (or a full disk) while the active segment was being created leaves its
        // header cut short; it held nothing, so it is made again where the previous segment
        // ends, or, for the first segment of a new log, at the start.
        Err(e @ LogError::Corrupt { position: 0, .. })
            if fs::metadata(path).map(|m| m.len()).unwrap_or(0) < SEGMENT_HEADER_LEN as u64 =>
        {
            let (index, offset) = match prev {
                Some(prev) => (prev.next_index, prev.next_offset),
                None if path.file_name() == Some(segment_file_name(Index(0)).as_ref()) => {
                    (Index(0), Offset(0))
                }
                // A later first segment's offset is in its header alone.
                None => return Err(e),
            };
            let dir = path.parent().unwrap_or(Path::new("."));
            fs::remove_file(path).map_err(LogError::io(path))?;
            recovery.removed_leftovers.push(path.to_path_buf());
            return Segment::create(dir, index, offset, config.index_interval_bytes);
        }
        Err(e) => return Err(e),
    };
    let size_before = segment.size;
    SparseIndex::remove_files(path)?;
    if let ScanEnd::Invalid { position, reason } = segment.load(None, Contiguity::Contiguous)? {
        segment.cut_file(position)?;
        recovery.torn_tail = Some(TornTail {
            path: path.to_path_buf(),
            position,
            bytes_removed: size_before - position,
            reason,
        });
    }
    Ok(segment)
}

/// Turns a scan that stopped at an invalid entry into the error that names file and position.
pub(crate) fn corrupt_unless_clean(segment: &Segment, end: ScanEnd) -> Result<()> {
    match end {
        ScanEnd::Invalid { position, reason } => Err(LogError::Corrupt {
            path: segment.path.clone(),
            position,
            reason,
        }),
        ScanEnd::End | ScanEnd::Stopped => Ok(()),
    }
}

/// Removes index files whose segment no longer exists.
fn remove_orphans(dir: &Path, ext: &str, segments: &[Segment]) -> Result<()> {
    for item in fs::read_dir(dir).map_err(LogError::io(dir))? {
        let path = item.map_err(LogError::io(dir))?.path();
        if path.extension().and_then(|e| e.to_str()) == Some(ext)
            && !segments
                .iter()
                .any(|s| s.path == path.with_extension("log"))
        {
            fs::remove_file(&path).map_err(LogError::io(&path))?;
        }
    }
    Ok(())
}
