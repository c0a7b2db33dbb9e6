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
    /// system, as a snapshot transfer left them; it is moved, not copied), then makes sure the
    /// log continues at `next_index` and `next_offset` even if the files hold less.
    ///
    /// The log's directory is exchanged with the staged one in one atomic rename, so a crash
    /// leaves either the old log or the new one, never a directory without either; at open,
    /// what an interrupted adoption left beside the log is removed.
    pub fn adopt(&mut self, staged: &Path, next_index: Index, next_offset: Offset) -> Result<()> {
        let rewrites = self.rewrites + 1;
        self.rewrites = rewrites;
        let swapped = self.swap_directory(staged);
        // Whatever happened, the log must describe the directory again before returning.
        let reopened = Log::open(&self.dir, self.config.clone());
        swapped?;
        let window = self.page_cache_window.load(Ordering::Relaxed);
        *self = reopened?;
        self.rewrites = rewrites;
        self.page_cache_window.store(window, Ordering::Relaxed);
        if self.next_index() < next_index {
            self.reset(next_index, next_offset)?;
        }
        Ok(())
    }

    fn swap_directory(&mut self, staged: &Path) -> Result<()> {
        let incoming = adopting_dir(&self.dir);
        let parent = parent_of(&self.dir);
        if incoming.exists() {
            fs::remove_dir_all(&incoming).map_err(LogError::io(&incoming))?;
        }
        // Only segment files come along; anything else a transfer left stays behind.
        for item in fs::read_dir(staged).map_err(LogError::io(staged))? {
            let path = item.map_err(LogError::io(staged))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("log") {
                fs::remove_file(&path).map_err(LogError::io(&path))?;
            }
        }
        sync_dir(staged)?;
        fs::rename(staged, &incoming).map_err(LogError::io(&incoming))?;
        sync_dir(parent)?;
        if let Some(staged_parent) = staged.parent().filter(|p| *p != parent) {
            sync_dir(staged_parent)?;
        }
        // The old segments' files stay open until the log is reopened; removing them below
        // is safe on Unix.
        match rustix::fs::renameat_with(
            rustix::fs::CWD,
            &incoming,
            rustix::fs::CWD,
            &self.dir,
            rustix::fs::RenameFlags::EXCHANGE,
        ) {
            Ok(()) => {}
            // A file system without atomic exchange: two renames, which open rolls back if a
            // crash falls between them (the snapshot that needed this log is not yet stored).
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
                let retired = retired_dir(&self.dir);
                fs::rename(&self.dir, &retired).map_err(LogError::io(&retired))?;
                fs::rename(&incoming, &self.dir).map_err(LogError::io(&self.dir))?;
                sync_dir(parent)?;
                fs::rename(&retired, &incoming).map_err(LogError::io(&incoming))?;
            }
            Err(e) => return Err(LogError::io(&self.dir)(e.into())),
        }
        sync_dir(parent)?;
        self.segments.clear();
        fs::remove_dir_all(&incoming).map_err(LogError::io(&incoming))?;
        sync_dir(parent)
    }
}

/// Where a log's replacement is put together before it takes the log's place (and where the
/// old log goes after the exchange).
fn adopting_dir(dir: &Path) -> PathBuf {
    dir.with_extension("adopting")
}

/// Where the old log waits between the two renames of a file system without exchange.
fn retired_dir(dir: &Path) -> PathBuf {
    dir.with_extension("retired")
}

fn parent_of(dir: &Path) -> &Path {
    dir.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Finishes what an adoption interrupted by a crash left beside the log in `dir`: the old log
/// comes back if it had been moved aside and the new one not yet moved in; the other leftover
/// directory is removed. Returns the directories removed.
pub(crate) fn finish_interrupted_adoption(dir: &Path) -> Result<Vec<PathBuf>> {
    let retired = retired_dir(dir);
    let mut removed = Vec::new();
    if !dir.exists() && retired.exists() {
        fs::rename(&retired, dir).map_err(LogError::io(dir))?;
    }
    for leftover in [adopting_dir(dir), retired] {
        if leftover.exists() {
            fs::remove_dir_all(&leftover).map_err(LogError::io(&leftover))?;
            removed.push(leftover);
        }
    }
    if !removed.is_empty() {
        sync_dir(parent_of(dir))?;
    }
    Ok(removed)
}
