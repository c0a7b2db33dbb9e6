//! A replica that lost its Raft state while its broker kept its identity: its group's
//! directory went missing (or its vote record did), under a broker that did not come back as
//! a new incarnation. Opened again it would be empty and free to vote, though it may already
//! have voted in the current term, and may have acknowledged entries it no longer holds, which
//! a leader counted towards a commit. So such a replica is *rejoining*: it grants no vote and
//! stands for no election until it holds, durably, everything its group had committed by the
//! time it first heard from a leader that had committed in its own term. That is recorded in
//! its state file, so a restart in between keeps it.
//!
//! How it is told: the first time a replica records a vote, a marker file is made beside the
//! group's directory (`<group>.voted`). A group opened with the marker but no vote recorded
//! lost its state. Removing a replica removes its directory and then the marker
//! ([`remove_group_dir`]).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The marker beside a group directory that says the replica once recorded a vote.
pub(crate) fn marker_path(dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.with_file_name(format!("{name}.voted"))
}

/// Makes the marker durably (the file and its entry in the parent directory).
pub(crate) fn mark(dir: &Path) -> io::Result<()> {
    let marker = marker_path(dir);
    fs::File::create(&marker)?.sync_all()?;
    if let Some(parent) = marker.parent() {
        fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Removes a group's directory, then its marker: a replica that is no longer hosted here (its
/// partition deleted or moved away). A crash in between leaves the marker, and a replica
/// hosted here again later rejoins carefully, which is safe.
pub fn remove_group_dir(dir: &Path) -> io::Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    match fs::remove_file(marker_path(dir)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
