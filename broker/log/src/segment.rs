//! One segment file: its header, its entries, its sparse indexes, and scanning it.

use std::fs::{self, File, OpenOptions};
use std::io::{IoSlice, Seek, SeekFrom, Write};
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::entry::{
    ENTRY_HEADER_LEN, EntryHeader, SEGMENT_HEADER_LEN, decode_segment_header, encode_segment_header,
};
use crate::error::{LogError, Result};
use crate::failpoints::{self, DiskError};
use crate::index::{IndexPoint, SparseIndex, TimePoint};
use crate::types::{Index, Offset, Term};

/// Bytes read from a segment file by the first read of a scan; later reads double it.
const SCAN_CHUNK_MIN_BYTES: usize = 16 << 10;
/// Upper bound on the bytes one read of a scan asks for (unless a single entry is larger).
const SCAN_CHUNK_MAX_BYTES: usize = 1 << 20;

/// How a scan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScanEnd {
    /// The visitor asked to stop.
    Stopped,
    /// Every entry to the end of the file was valid.
    End,
    /// The entry at `position` is invalid (torn, corrupt, or out of sequence).
    Invalid {
        /// Byte position of the bad entry.
        position: u64,
        /// What is wrong with it.
        reason: String,
    },
}

/// One segment of a partition log.
#[derive(Debug)]
pub(crate) struct Segment {
    pub path: PathBuf,
    file: File,
    /// Index of the first entry this segment was created for.
    pub base_index: Index,
    /// Offset of the first entry this segment was created for.
    pub base_offset: Offset,
    /// File length in bytes, header included.
    pub size: u64,
    /// Index the next entry in this segment would take.
    pub next_index: Index,
    /// Offset the next data entry in this segment would take.
    pub next_offset: Offset,
    /// Term of the last entry, if any.
    pub last_term: Option<Term>,
    /// Largest record timestamp in the segment, -1 when none.
    pub max_timestamp: i64,
    pub index: SparseIndex,
    bytes_since_point: u64,
    /// Bytes of entries between two index points.
    index_interval_bytes: u64,
    /// When this segment got its first entry since it was created or opened, for `segment.ms`.
    pub roll_clock_ms: Option<i64>,
}

/// The file name of the segment starting at `index`.
pub(crate) fn segment_file_name(index: Index) -> String {
    format!("{:020}.log", index.0)
}

impl Segment {
    /// Creates an empty segment file whose first entry will be `index` at `offset`.
    pub fn create(
        dir: &Path,
        index: Index,
        offset: Offset,
        index_interval_bytes: u64,
    ) -> Result<Segment> {
        let path = dir.join(segment_file_name(index));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(LogError::io(&path))?;
        let header = file
            .write_all_at(&encode_segment_header(index, offset), 0)
            .and_then(|()| file.sync_data());
        if let Err(e) = header {
            // A full disk: no half-made segment is left for the next open to stumble on.
            let _ = fs::remove_file(&path);
            return Err(LogError::io(&path)(e));
        }
        sync_dir(dir)?;
        SparseIndex::remove_files(&path)?;
        Ok(Segment::empty(
            path,
            file,
            index,
            offset,
            index_interval_bytes,
        ))
    }

    fn empty(
        path: PathBuf,
        file: File,
        index: Index,
        offset: Offset,
        index_interval_bytes: u64,
    ) -> Segment {
        Segment {
            path,
            file,
            base_index: index,
            base_offset: offset,
            size: SEGMENT_HEADER_LEN as u64,
            next_index: index,
            next_offset: offset,
            last_term: None,
            max_timestamp: -1,
            index: SparseIndex::default(),
            bytes_since_point: 0,
            index_interval_bytes,
            roll_clock_ms: None,
        }
    }

    /// Opens a segment file and reads its header. Entries are not read yet: see [`Segment::load`].
    pub fn open(path: &Path, index_interval_bytes: u64) -> Result<Segment> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(LogError::io(path))?;
        let size = file.metadata().map_err(LogError::io(path))?.len();
        let mut header = [0u8; SEGMENT_HEADER_LEN];
        if size < SEGMENT_HEADER_LEN as u64 {
            return Err(LogError::Corrupt {
                path: path.to_path_buf(),
                position: 0,
                reason: format!("segment header is cut short at {size} bytes"),
            });
        }
        file.read_exact_at(&mut header, 0)
            .map_err(LogError::io(path))?;
        let (index, offset) =
            decode_segment_header(&header).map_err(|reason| LogError::Corrupt {
                path: path.to_path_buf(),
                position: 0,
                reason: reason.to_string(),
            })?;
        let mut segment = Segment::empty(
            path.to_path_buf(),
            file,
            index,
            offset,
            index_interval_bytes,
        );
        segment.size = size;
        Ok(segment)
    }

    /// Reads the entries of an opened segment to know its end and build its indexes.
    ///
    /// `trusted_index` (from valid index files) lets the scan start at the last index point.
    /// Entries must follow each other; with `contiguous` they must also take consecutive
    /// indexes and offsets (true of every segment that compaction has not rewritten).
    /// Returns how the scan ended; on `Invalid` the segment's state covers the valid prefix.
    pub fn load(
        &mut self,
        trusted_index: Option<SparseIndex>,
        contiguous: Contiguity,
    ) -> Result<ScanEnd> {
        let mut from = SEGMENT_HEADER_LEN as u64;
        self.index = SparseIndex::default();
        self.next_index = self.base_index;
        self.next_offset = self.base_offset;
        self.max_timestamp = -1;
        self.last_term = None;
        self.bytes_since_point = 0;
        if let Some(index) = trusted_index
            && let (Some(point), Some(time)) = (index.offsets.last(), index.times.last())
        {
            {
                from = point.position;
                self.next_index = point.index;
                self.next_offset = point.offset;
                self.max_timestamp = time.max_timestamp_before;
                self.index = index;
            }
        }
        let mut expected = (self.next_index, self.next_offset);
        let mut problem = None;
        let mut records = Vec::new();
        let end = self.scan(from, |position, header, _payload| {
            let in_sequence = match contiguous {
                Contiguity::Contiguous => {
                    header.index == expected.0 && header.first_offset == expected.1
                }
                Contiguity::Increasing => {
                    header.index >= expected.0 && header.first_offset >= expected.1
                }
            };
            if !in_sequence {
                problem = Some((
                    position,
                    format!(
                        "entry index {} offset {} does not follow index {} offset {}",
                        header.index, header.first_offset, expected.0, expected.1
                    ),
                ));
                return ControlFlow::Break(());
            }
            expected = (header.index.next(), header.next_offset());
            records.push((position, *header));
            ControlFlow::Continue(())
        })?;
        for (position, header) in records {
            self.record_entry(position, &header);
        }
        self.size = match (&problem, &end) {
            (Some((position, _)), _) | (None, ScanEnd::Invalid { position, .. }) => *position,
            _ => self.size,
        };
        Ok(match problem {
            Some((position, reason)) => ScanEnd::Invalid { position, reason },
            None => end,
        })
    }

    /// Updates the in-memory state for an entry stored at `position`.
    pub fn record_entry(&mut self, position: u64, header: &EntryHeader) {
        let last_point = self.index.offsets.last().map(|p| p.position);
        if (last_point.is_none() || self.bytes_since_point >= self.index_interval_bytes)
            && last_point != Some(position)
        {
            self.index.offsets.push(IndexPoint {
                index: header.index,
                offset: header.first_offset,
                position,
            });
            self.index.times.push(TimePoint {
                max_timestamp_before: self.max_timestamp,
                position,
            });
            self.bytes_since_point = 0;
        }
        self.bytes_since_point += header.stored_len();
        self.next_index = header.index.next();
        self.next_offset = header.next_offset();
        self.last_term = Some(header.term);
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
        self.size = self.size.max(position + header.stored_len());
    }

    /// Whether the segment holds no entry.
    pub fn is_empty(&self) -> bool {
        self.next_index == self.base_index
    }

    /// Writes bytes (whole encoded entries, in parts) at the end of the file with vectored
    /// writes, so the parts need not be copied into one buffer first. On failure (a full disk)
    /// whatever part was written is cut off again, so the file ends at the last whole entry.
    pub fn write_at_end(&mut self, parts: &mut [IoSlice<'_>]) -> Result<u64> {
        let position = self.size;
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let written = match failpoints::injected("log::write", &self.path, DiskError::Full) {
            Some(e) => Err(e),
            None => write_all_vectored_at(&self.file, parts, position),
        };
        if let Err(e) = written {
            // Best effort: if this fails too, recovery at open cuts the partial entry.
            let _ = self.file.set_len(position);
            return Err(LogError::io(&self.path)(e));
        }
        self.size += total as u64;
        Ok(position)
    }

    /// A second handle on the segment file, to fsync it without holding the log.
    pub fn duplicate_file(&self) -> Result<File> {
        self.file.try_clone().map_err(LogError::io(&self.path))
    }

    /// Makes everything written so far durable.
    pub fn sync(&self) -> Result<()> {
        if let Some(e) = failpoints::injected("log::fsync", &self.path, DiskError::Failing) {
            return Err(LogError::io(&self.path)(e));
        }
        self.file.sync_data().map_err(LogError::io(&self.path))
    }

    /// Cuts the file at `position` and makes the cut durable. The caller reloads the state.
    pub fn cut_file(&mut self, position: u64) -> Result<()> {
        self.file
            .set_len(position)
            .map_err(LogError::io(&self.path))?;
        self.file.sync_all().map_err(LogError::io(&self.path))?;
        self.size = position;
        self.index.cut_at(position);
        SparseIndex::remove_files(&self.path)
    }

    /// Makes the segment durable and writes its index files; it takes no more entries after this.
    pub fn close(&self) -> Result<()> {
        self.sync()?;
        self.index.write_files(&self.path, self.size)
    }

    /// Deletes the segment's files.
    pub fn remove(self) -> Result<()> {
        SparseIndex::remove_files(&self.path)?;
        fs::remove_file(&self.path).map_err(LogError::io(&self.path))
    }

    /// Asks the kernel to drop `from..to` of this segment from the page cache; see
    /// [`drop_from_page_cache`].
    pub fn drop_cached(&self, from: u64, to: u64) {
        drop_from_page_cache(&self.file, from, to);
    }

    /// Reads exactly `buf.len()` bytes at `position`.
    pub fn read_at(&self, buf: &mut [u8], position: u64) -> Result<()> {
        self.file
            .read_exact_at(buf, position)
            .map_err(LogError::io(&self.path))
    }

    /// Visits every valid entry from `from` (an entry boundary) to the end of the file, checking
    /// each checksum. Stops at the first entry that is cut short or does not match its checksum.
    pub fn scan(
        &self,
        from: u64,
        mut visit: impl FnMut(u64, &EntryHeader, &[u8]) -> ControlFlow<()>,
    ) -> Result<ScanEnd> {
        let mut buf: Vec<u8> = Vec::new();
        // `buf[..valid]` holds file bytes starting at `buf_start`.
        let mut buf_start = from;
        let mut valid = 0usize;
        let mut position = from;
        // Small first so reading one entry at the tail stays cheap; larger as a scan goes on.
        let mut chunk = SCAN_CHUNK_MIN_BYTES;
        let invalid = |position: u64, reason: &str| {
            Ok(ScanEnd::Invalid {
                position,
                reason: reason.to_string(),
            })
        };
        loop {
            if position >= self.size {
                return Ok(ScanEnd::End);
            }
            let left = self.size - position;
            if left < ENTRY_HEADER_LEN as u64 {
                return invalid(position, "entry header is cut short");
            }
            let mut need = ENTRY_HEADER_LEN;
            for pass in 0..2 {
                let have = (buf_start + valid as u64).saturating_sub(position);
                if position < buf_start || have < need as u64 {
                    let want = need.max(chunk).min(left as usize);
                    chunk = (chunk * 2).min(SCAN_CHUNK_MAX_BYTES);
                    if buf.len() < want {
                        buf.resize(want, 0);
                    }
                    self.read_at(&mut buf[..want], position)?;
                    buf_start = position;
                    valid = want;
                }
                let at = (position - buf_start) as usize;
                if pass == 0 {
                    let mut raw = [0u8; ENTRY_HEADER_LEN];
                    raw.copy_from_slice(&buf[at..at + ENTRY_HEADER_LEN]);
                    let header = match EntryHeader::decode(&raw) {
                        Ok(h) => h,
                        Err(reason) => return invalid(position, reason),
                    };
                    if header.stored_len() > left {
                        return invalid(position, "entry runs past the end of the file");
                    }
                    need = header.stored_len() as usize;
                } else {
                    let mut raw = [0u8; ENTRY_HEADER_LEN];
                    raw.copy_from_slice(&buf[at..at + ENTRY_HEADER_LEN]);
                    // Decoded successfully in pass 0 from the same bytes.
                    let header = EntryHeader::decode(&raw).map_err(|reason| LogError::Corrupt {
                        path: self.path.clone(),
                        position,
                        reason: reason.to_string(),
                    })?;
                    let payload = &buf[at + ENTRY_HEADER_LEN..at + need];
                    if !header.crc_matches(&raw, payload) {
                        return invalid(position, "entry checksum mismatch");
                    }
                    if visit(position, &header, payload).is_break() {
                        return Ok(ScanEnd::Stopped);
                    }
                }
            }
            position += need as u64;
        }
    }
}

/// What order the entries of a segment must be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Contiguity {
    /// Consecutive indexes and offsets: every segment compaction has not rewritten.
    Contiguous,
    /// Increasing indexes and offsets, gaps allowed: segments rewritten by compaction.
    Increasing,
}

/// Creates `dir` and any missing parents, making each new directory's entry in its parent
/// durable (a new directory is lost in a crash until its parent is synced).
pub fn create_dir_durably(dir: &Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.exists() {
        missing.push(at);
        match at.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => at = parent,
            _ => break,
        }
    }
    fs::create_dir_all(dir).map_err(LogError::io(dir))?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Makes a directory's entries (new, renamed or removed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(LogError::io(dir))
}

/// Writes every part at `position`, in order. Only the log writes to a segment file (under
/// its lock), and every read is positional, so moving the file's cursor disturbs nothing.
fn write_all_vectored_at(
    mut file: &File,
    mut parts: &mut [IoSlice<'_>],
    position: u64,
) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(position))?;
    IoSlice::advance_slices(&mut parts, 0);
    while !parts.is_empty() {
        match file.write_vectored(parts) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut parts, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Asks the kernel to drop bytes `from..to` of `file` from the page cache. Only pages that are
/// clean (already written back, as after an fsync) are dropped; the request is advice, so a
/// failure changes nothing but memory use and is ignored.
pub(crate) fn drop_from_page_cache(file: &File, from: u64, to: u64) {
    if let Some(len) = to.checked_sub(from).and_then(std::num::NonZeroU64::new) {
        let _ = rustix::fs::fadvise(file, from, Some(len), rustix::fs::Advice::DontNeed);
    }
}
