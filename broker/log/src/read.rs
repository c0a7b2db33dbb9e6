//! Reading the log: entries by Raft index, batches by offset, offsets by timestamp.

use std::ops::{ControlFlow, Range};

use crate::batch;
use crate::entry::SEGMENT_HEADER_LEN;
use crate::error::{LogError, Result};
use crate::log::{Batches, Entry, Log, corrupt_unless_clean};
use crate::types::{EntryKind, Index, Offset, Term};

impl Log {
    /// The segment that holds `index`, by position in `segments`.
    pub(crate) fn segment_for_index(&self, index: Index) -> usize {
        self.segments
            .partition_point(|s| s.base_index <= index)
            .saturating_sub(1)
    }

    /// The segment that holds `offset`, by position in `segments`.
    fn segment_for_offset(&self, offset: Offset) -> usize {
        self.segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1)
    }

    /// Reads the entries with indexes in `range`, for Raft replication.
    pub fn entries(&self, range: Range<Index>) -> Result<Vec<Entry>> {
        let (first, next) = (self.first_index(), self.next_index());
        for index in [range.start, range.end] {
            if index < first || index > next {
                return Err(LogError::IndexOutOfRange { index, first, next });
            }
        }
        let mut out = Vec::new();
        if range.start >= range.end {
            return Ok(out);
        }
        for segment in &self.segments[self.segment_for_index(range.start)..] {
            let from = segment
                .index
                .position_for_index(range.start)
                .unwrap_or(SEGMENT_HEADER_LEN as u64);
            let mut done = false;
            let end = segment.scan(from, |_, header, payload| {
                if header.index >= range.end {
                    done = true;
                    return ControlFlow::Break(());
                }
                if header.index >= range.start {
                    out.push(Entry {
                        index: header.index,
                        term: header.term,
                        kind: header.kind,
                        first_offset: header.first_offset,
                        offset_count: header.offset_count,
                        max_timestamp: header.max_timestamp,
                        payload: payload.to_vec(),
                    });
                }
                ControlFlow::Continue(())
            })?;
            corrupt_unless_clean(segment, end)?;
            if done {
                break;
            }
        }
        Ok(out)
    }

    /// Reads whole record batches from `offset` up to (not past) `max_offset`, typically the
    /// high watermark. The batch holding `offset` comes back whole even if it is larger than
    /// `max_bytes`, so a reader always makes progress; later batches only while they fit.
    pub fn read(&self, offset: Offset, max_offset: Offset, max_bytes: usize) -> Result<Batches> {
        let (start, end) = (self.log_start_offset(), self.next_offset());
        if offset < start || offset > end {
            return Err(LogError::OffsetOutOfRange { offset, start, end });
        }
        let mut out = Batches {
            bytes: Vec::new(),
            next_offset: offset,
            batch_count: 0,
        };
        if offset >= max_offset {
            return Ok(out);
        }
        for segment in &self.segments[self.segment_for_offset(offset)..] {
            let from = segment
                .index
                .position_for_offset(offset)
                .unwrap_or(SEGMENT_HEADER_LEN as u64);
            if out.bytes.capacity() == 0 {
                // At most what is left of this segment, or the bound: one allocation rather
                // than a doubling series of copies (a fetch reads up to a megabyte).
                let left = segment.size.saturating_sub(from);
                out.bytes
                    .reserve(usize::try_from(left).unwrap_or(usize::MAX).min(max_bytes));
            }
            let mut done = false;
            let end = segment.scan(from, |_, header, payload| {
                if header.kind != EntryKind::Data || header.next_offset() <= offset {
                    return ControlFlow::Continue(());
                }
                let fits = out.batch_count == 0 || out.bytes.len() + payload.len() <= max_bytes;
                if header.next_offset() > max_offset || !fits {
                    done = true;
                    return ControlFlow::Break(());
                }
                out.bytes.extend_from_slice(payload);
                out.batch_count += 1;
                out.next_offset = header.next_offset();
                ControlFlow::Continue(())
            })?;
            corrupt_unless_clean(segment, end)?;
            if done {
                break;
            }
        }
        Ok(out)
    }

    /// Kafka's OffsetForLeaderEpoch: the largest term at most `term` that has entries, and the
    /// offset where it ends (the first offset of the next term's entries, or the log end
    /// offset when it is the last term). `None` when every entry has a larger term.
    pub fn term_end(&self, term: Term) -> Result<Option<(Term, Offset)>> {
        let Some(at) = self
            .segments
            .iter()
            .position(|s| s.last_term.is_some_and(|t| t > term))
        else {
            return Ok(self
                .last_entry()
                .map(|(_, last)| (last, self.next_offset())));
        };
        let mut before = self.segments[..at].iter().rev().find_map(|s| s.last_term);
        let mut end = None;
        let segment = &self.segments[at];
        let scanned = segment.scan(SEGMENT_HEADER_LEN as u64, |_, header, _| {
            if header.term > term {
                end = Some(header.first_offset);
                return ControlFlow::Break(());
            }
            before = Some(header.term);
            ControlFlow::Continue(())
        })?;
        corrupt_unless_clean(segment, scanned)?;
        Ok(match (before, end) {
            (Some(before), Some(end)) => Some((before, end)),
            _ => None,
        })
    }

    /// The first offset below `max_offset` whose record timestamp is ≥ `timestamp`, with that
    /// record's timestamp; `None` when there is none.
    pub fn offset_for_timestamp(
        &self,
        timestamp: i64,
        max_offset: Offset,
    ) -> Result<Option<(Offset, i64)>> {
        let Some(first) = self
            .segments
            .iter()
            .position(|s| s.max_timestamp >= timestamp)
        else {
            return Ok(None);
        };
        for segment in &self.segments[first..] {
            let from = segment
                .index
                .position_for_timestamp(timestamp)
                .unwrap_or(SEGMENT_HEADER_LEN as u64);
            let mut found = None;
            let mut failure = None;
            let end = segment.scan(from, |position, header, payload| {
                if header.first_offset >= max_offset {
                    return ControlFlow::Break(());
                }
                if header.kind != EntryKind::Data || header.max_timestamp < timestamp {
                    return ControlFlow::Continue(());
                }
                match batch::decode_records(payload) {
                    Ok(records) => {
                        found = records
                            .iter()
                            .find(|r| r.timestamp >= timestamp && r.offset < max_offset.0)
                            .map(|r| (Offset(r.offset), r.timestamp));
                    }
                    Err(e) => failure = Some((position, e.to_string())),
                }
                if found.is_some() || failure.is_some() {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })?;
            if let Some((position, reason)) = failure {
                return Err(LogError::Corrupt {
                    path: segment.path.clone(),
                    position,
                    reason,
                });
            }
            corrupt_unless_clean(segment, end)?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }
}
