//! Moving a log prefix between replicas: what to send for a snapshot, and adopting what arrived.

use std::fs;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use crate::entry::SEGMENT_HEADER_LEN;
use crate::error::{LogError, Result};
use crate::log::Log;
use crate::segment::{segment_file_name, sync_dir};
use crate::types::{Index, Offset};

/// The first `len` bytes of a segment file. Those bytes never change while the entries in them
/// are committed, so they can be read and sent while the log goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpan {
    /// The segment file.
    pub path: PathBuf,
    /// The file name to give the copy on the receiving replica.
    pub name: String,
    /// Bytes to send from the start of the file.
    pub len: u64,
}

impl Log {
    /// The segment files, and how much of each, that hold the log from its start through the
    /// entry at `last`: what a snapshot at `last` sends to a replica that is far behind.
    pub fn prefix(&self, last: Index) -> Result<Vec<FileSpan>> {
        let mut spans = Vec::new();
        for segment in &self.segments {
            if segment.base_index > last {
                break;
            }
            let mut len = segment.size;
            if segment.next_index > last.next() {
                let from = segment
                    .index
                    .position_for_index(last.next())
                    .unwrap_or(SEGMENT_HEADER_LEN as u64);
                segment.scan(from, |position, header, _| {
                    if header.index > last {
                        len = position;
                        return ControlFlow::Break(());
                    }
                    ControlFlow::Continue(())
                })?;
            }
            spans.push(FileSpan {
                path: segment.path.clone(),
                name: segment_file_name(segment.base_index),
                len,
            });
        }
        Ok(spans)
    }

    /// Replaces the whole log with the segment files in `staged` (a directory on the same file
    /// system, as a snapshot transfer left them), then makes sure the log continues at
    /// `next_index` and `next_offset` even if the files hold less.
    pub fn adopt(&mut self, staged: &Path, next_index: Index, next_offset: Offset) -> Result<()> {
        let mut incoming = Vec::new();
        for item in fs::read_dir(staged).map_err(LogError::io(staged))? {
            let path = item.map_err(LogError::io(staged))?.path();
            if path.extension().and_then(|e| e.to_str()) == Some("log") {
                incoming.push(path);
            }
        }
        incoming.sort();
        let rewrites = self.rewrites + 1;
        self.rewrites = rewrites;
        let moved = self.swap_segments(&incoming);
        // Whatever happened, the log must describe the directory again before returning.
        let reopened = Log::open(&self.dir, self.config.clone());
        moved?;
        let window = self.page_cache_window.load(Ordering::Relaxed);
        *self = reopened?;
        self.rewrites = rewrites;
        self.page_cache_window.store(window, Ordering::Relaxed);
        if self.next_index() < next_index {
            self.reset(next_index, next_offset)?;
        }
        Ok(())
    }

    fn swap_segments(&mut self, incoming: &[PathBuf]) -> Result<()> {
        for segment in std::mem::take(&mut self.segments) {
            segment.remove()?;
        }
        for path in incoming {
            let target = self.dir.join(path.file_name().unwrap_or_default());
            fs::rename(path, &target).map_err(LogError::io(&target))?;
        }
        sync_dir(&self.dir)
    }
}
